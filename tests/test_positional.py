"""torch's positional form in stack files (``Conv2d: [1, 5, 5]`` is ``nn.Conv2d(1, 5, 5)``), against real torch.

Each case builds the torch module from the same positional list, runs it on a
zero tensor, and compares: torch's output shape where it runs, exit 1 where it
refuses, as the keyword form is held to. Also the student's friction points
the notes run into: a Linear after a conv with no Flatten, and ``MaxPool``
without its ``2d``.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc.cli import main
from tests.profiles import scaled
from tests.torch_oracle import TORCH_REJECTS

# (class, input shape) and how many leading positional arguments to draw (torch's own order)
LAYERS = [
    (nn.Conv1d, (1, 2, 9), 6),  # in_channels, out_channels, kernel_size, stride, padding, dilation
    (nn.Conv2d, (1, 2, 9, 9), 7),  # ... groups
    (nn.Conv3d, (1, 2, 5, 5, 5), 5),
    (nn.ConvTranspose2d, (1, 2, 5, 5), 6),  # in, out, kernel_size, stride, padding, output_padding
    (nn.MaxPool1d, (1, 2, 9), 4),  # kernel_size, stride, padding, dilation
    (nn.MaxPool2d, (1, 2, 9, 9), 4),
    (nn.AvgPool2d, (1, 2, 9, 9), 3),  # kernel_size, stride, padding
    (nn.Linear, (1, 2, 8), 2),  # in_features, out_features
    (nn.BatchNorm2d, (1, 2, 4, 4), 1),  # num_features
    (nn.Flatten, (1, 2, 3, 4), 2),  # start_dim, end_dim
    (nn.LayerNorm, (1, 2, 4), 1),  # normalized_shape
]


def run_stack(shape: tuple[int, ...], layer: object) -> object:
    text = json.dumps({"input": list(shape), "layers": [layer]})
    return CliRunner().invoke(main, ["stack", "-", "--json"], input=text)


def torch_shape(cls: type[nn.Module], args: list[int], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = cls(*args)(torch.zeros(shape))
    except TORCH_REJECTS:
        return None
    return None if 0 in out.shape else tuple(out.shape)


@settings(max_examples=scaled(600), deadline=None)
@given(data=st.data())
def test_the_positional_form_is_torchs(data: st.DataObject) -> None:
    cls, shape, most = data.draw(st.sampled_from(LAYERS))
    count = data.draw(st.integers(1, most))
    args = data.draw(st.lists(st.integers(-2, 10), min_size=count, max_size=count))
    expected = torch_shape(cls, args, shape)
    result = run_stack(shape, {cls.__name__: args})
    what = f"{cls.__name__}({', '.join(map(str, args))}) on {shape}"
    if expected is None:
        assert result.exit_code == 1, f"{what}: torch refuses, convcalc gives {result.stdout}"
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1, result.stderr
    else:
        assert result.exit_code == 0, f"{what}: torch gives {expected}, convcalc: {result.stderr}"
        assert tuple(json.loads(result.stdout)["output_shape"]) == expected, what


def test_a_bare_number_is_the_first_argument() -> None:
    """``MaxPool2d: 2`` as the notes write it is ``nn.MaxPool2d(2)``."""
    result = run_stack((1, 5, 24, 24), {"MaxPool2d": 2})
    assert json.loads(result.stdout)["output_shape"] == list(nn.MaxPool2d(2)(torch.zeros(1, 5, 24, 24)).shape)


def test_a_linear_without_flatten_says_to_add_one() -> None:
    shape = (1, 5, 12, 12)
    with pytest.raises(RuntimeError):  # torch refuses it too
        nn.Linear(720, 10)(torch.zeros(shape))
    text = json.dumps({"input": list(shape), "layers": [{"Linear": [720, 10]}]})
    result = CliRunner().invoke(main, ["stack", "-", "-q"], input=text)
    assert result.exit_code == 1
    assert "add a Flatten layer just before this Linear" in result.stderr
    assert "(5 x 12 x 12)" in result.stderr and "last dimension only (12)" in result.stderr


@pytest.mark.parametrize(("name", "shape", "suggested"), [
    ("MaxPool", (1, 3, 28, 28), "MaxPool2d"), ("maxpool", (1, 3, 28), "MaxPool1d"),
    ("Conv", (1, 3, 8, 8, 8), "Conv3d"), ("BatchNorm", (1, 3, 28, 28), "BatchNorm2d"),
])  # fmt: skip
def test_a_name_without_its_axes_suggests_the_one_for_the_input(name: str, shape: tuple[int, ...], suggested: str
                                                               ) -> None:  # fmt: skip
    assert hasattr(nn, suggested)
    text = json.dumps({"input": list(shape), "layers": [{name: {}}]})
    result = CliRunner().invoke(main, ["stack", "-", "-q"], input=text)
    assert result.exit_code == 1
    assert f"(did you mean {suggested}, for the input's {len(shape) - 2} spatial axes?)" in result.stderr.replace(
        "axis?", "axes?"
    )
