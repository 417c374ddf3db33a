"""convcalc fit: the input sizes a stack takes, checked size by size against run_stack and torch."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from convcalc.cli import main
from convcalc.fitting import compact, fit
from convcalc.spec import resolve

ROOT = Path(__file__).parent.parent


def test_padded_unet_takes_multiples_of_16() -> None:
    data = json.loads(CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "unet_padded.yaml"), "--json"]).stdout)
    assert data["valid"] == list(range(32, 1025, 16))
    assert data["smallest"] == 16


def test_original_unet_sizes_are_the_papers() -> None:
    """572 is one of the sizes that leave no pixel unread: 188 + 16k."""
    data = json.loads(
        CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "unet.yaml"), "--range", "100:700", "--json"]).stdout
    )
    assert data["smallest"] == 188
    assert 572 in data["lossless"] and data["lossless"] == list(range(188, 701, 16))


def test_fit_agrees_with_torch_size_by_size() -> None:
    """A small net, every size from 1 to 40 run through torch: valid exactly where torch runs it."""
    items = [
        ("Conv2d", {"out_channels": 2, "kernel_size": 5, "stride": 2}, None),
        ("MaxPool2d", {"kernel_size": 3, "stride": 2, "ceil_mode": True}, None),
        ("Conv2d", {"out_channels": 2, "kernel_size": 3}, None),
    ]
    net = nn.Sequential(nn.Conv2d(1, 2, 5, stride=2), nn.MaxPool2d(3, stride=2, ceil_mode=True), nn.Conv2d(2, 2, 3))
    runs = []
    for size in range(1, 41):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net(torch.zeros(1, 1, size, size))
            runs.append(size)
        except RuntimeError:
            pass
    found = fit((1, 1, 8, 8), resolve(items), 1, 40)
    assert list(found.valid) == runs
    assert found.smallest == runs[0]


def test_text_output_and_bad_range() -> None:
    result = CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "vgg16.yaml"), "--range", "16:64"])
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0].strip() == "input sizes from 16 to 64"
    rows = [re.split(r"\s{3,}", line) for line in lines[3:6]]
    assert rows == [["smallest input", "32x32"], ["valid", "32:64", "33"], ["no pixel left unread", "32, 64", "2"]]
    bad = CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "vgg16.yaml"), "--range", "64:16"])
    assert bad.exit_code == 2
    assert "--range '64:16' is not LOW:HIGH" in bad.stderr


def test_compact_runs() -> None:
    assert compact([]) == ""
    assert compact([5]) == "5"
    assert compact([1, 2]) == "1, 2"
    assert compact([2, 4, 6, 7]) == "2:6:2, 7"


TINY_VIT = """
input: [1, 3, 48, 48]
layers:
  - Conv2d: {out_channels: 16, kernel_size: 16, stride: 16}
  - flatten: {start_dim: 2}
  - permute: [0, 2, 1]
  - ClassToken
  - PositionEmbedding
  - Residual:
      body:
        - LayerNorm: {normalized_shape: 16}
        - MultiheadAttention: {num_heads: 2, batch_first: true}
  - select: [1, 0]
  - Linear: {out_features: 10}
"""


def _emitted_takes(text: str, name: str, sizes: range) -> list[int]:
    """The square sizes the module --emit torch writes for a stack file takes, run in torch one by one: an
    oracle that never reads convcalc's shapes, only the code it writes."""
    from convcalc.emit import emit_torch
    from convcalc.network import run_stack
    from convcalc.stackfile import load_stack

    shape, specs = load_stack(text, name)
    namespace: dict = {"__name__": "emitted"}
    exec(emit_torch(specs, run_stack(shape, specs), name), namespace)
    model = namespace["build"]() if "build" in namespace else namespace["Network"]()
    model.eval()
    taken = []
    for size in sizes:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model(torch.zeros(*shape[:2], size, size))
            taken.append(size)
        except RuntimeError:
            pass
    return taken


@pytest.mark.parametrize(("text", "sizes"), [((ROOT / "examples" / "lenet5.yaml").read_text(), range(1, 61)),
                                             (TINY_VIT, range(1, 100))])  # fmt: skip
def test_fit_takes_exactly_what_the_emitted_module_takes(text: str, sizes: range) -> None:
    """Arguments convcalc infers are inferred once, on the file's own input (LeNet's in_features 400, the position
    embedding's tokens): fit pushes every size through that same network."""
    from convcalc.stackfile import load_stack

    shape, specs = load_stack(text, "net.yaml")
    found = fit(shape, specs, sizes.start, sizes.stop - 1)
    assert list(found.valid) == _emitted_takes(text, "net.yaml", sizes)


def test_another_input_runs_through_the_network_the_file_built() -> None:
    result = CliRunner().invoke(main, ["stack", str(ROOT / "examples" / "lenet5.yaml"), "--input", "1x1x24x24", "-q"])
    assert result.exit_code == 1
    assert "in_features is 400, inferred when the network was built on the stack's own input, and this input gives " \
           "144" in result.stderr  # fmt: skip
    assert CliRunner().invoke(main, ["stack", str(ROOT / "examples" / "lenet5.yaml"), "--input", "1x1x35x35",
                                     "-q"]).stdout == "1x10\n"  # fmt: skip


@pytest.mark.parametrize("how", ["network", "function", "library"])
def test_an_input_without_spatial_axes_has_no_sizes_to_fit(how: str) -> None:
    """A review found Network.fit listing sizes 1:5 as valid for a Linear on (1, 10), which has none to vary."""
    import convcalc
    from convcalc.fitting import NoSpatialAxes
    from convcalc.fitting import fit as search
    from convcalc.spec import resolve

    source = {"input": [1, 10], "layers": [{"Linear": {"out_features": 3}}]}
    with pytest.raises(NoSpatialAxes, match="no spatial axes"):
        if how == "network":
            convcalc.stack(source).fit(1, 5)
        elif how == "function":
            convcalc.fit(source, 1, 5)
        else:
            search((1, 10), resolve([("Linear", {"out_features": 3}, None)]), 1, 5)
