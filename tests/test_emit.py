"""--emit torch: the emitted module runs in torch and gives every layer the calculator's shape and parameters."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc.catalog import LAYERS, Form
from convcalc.cli import main
from convcalc.emit import emit_torch
from convcalc.network import Order, run_stack
from convcalc.spec import resolve
from convcalc.stackfile import load_stack
from tests.profiles import scaled
from tests.test_saved_bytes import layer_modules

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def emitted(path: Path) -> str:
    result = CliRunner().invoke(main, ["stack", str(path), "--emit", "torch"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_emitted_code_matches_the_calculator_layer_by_layer(example: Path) -> None:
    """Every module the code builds makes the shape convcalc gives its node: the same shapes, as many times each
    (a graph with several outputs may run its branches in another order than convcalc walks them)."""
    code = emitted(example)
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, f"{example.stem}.py", "exec"), namespace)
    with torch.device("meta"):  # nothing allocated, however large the network
        model = namespace["build"]() if "build" in namespace else namespace["Network"]()
        shapes: list[tuple[int, ...]] = []

        def record(module: nn.Module, args: Any, out: Any) -> None:
            shapes.append(tuple((out[0] if isinstance(out, tuple) else out).shape))  # attention: (output, weights)

        for module in layer_modules(model):
            module.register_forward_hook(record)
        shape, specs = load_stack(example.read_text(), example.name)
        model.eval()
        out = model(torch.empty(shape))
    result = run_stack(shape, specs)
    modules = [node for node in result.walk(Order.EVALUATION)  # F.pad, and a size that follows, are no modules
               if node.type in LAYERS and LAYERS[node.type].form not in (Form.METHOD, Form.FUNCTION)
               and not node.written]  # fmt: skip
    assert Counter(shapes) == Counter(node.output for node in modules)
    if isinstance(out, dict):  # several outputs: the dict a model like torchvision's FPN returns
        assert {key: tuple(value.shape) for key, value in out.items()} == {
            key: node.output for key, node in result.outputs.items()}  # fmt: skip
    else:
        assert tuple(out.shape) == result.output
    assert sum(p.numel() for p in model.parameters()) == result.total_params


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_emitted_code_is_as_ruff_formats_it(example: Path, tmp_path: Path) -> None:
    path = tmp_path / f"{example.stem}.py"
    path.write_text(emitted(example))
    check = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--isolated", "--check", "--diff", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout


def test_emitted_module_runs_as_a_script(tmp_path: Path) -> None:
    path = tmp_path / "lenet.py"
    path.write_text(emitted(ROOT / "examples" / "lenet5.yaml"))
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, check=True)
    assert run.stdout == "torch.Size([1, 10])\n"


def test_inferred_arguments_are_written_out() -> None:
    code = emitted(ROOT / "examples" / "vgg16.yaml")
    assert "nn.Linear(in_features=25088, out_features=4096)" in code
    assert "in_channels=3, out_channels=64, kernel_size=3, padding=1" in code  # wrapped as black wraps it


def test_an_invalid_stack_emits_nothing() -> None:
    text = "input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 9}\n"
    result = CliRunner().invoke(main, ["stack", "-", "--emit", "torch"], input=text)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr.startswith("Error: <stdin>, line 3: layer 1 (Conv2d)")


# --- no text from the stack file becomes code ------------------------------------------------------------------

GENERATED = re.compile(r"(saved_[0-9]+|out_[0-9_a-z]+|x_in|layer[0-9_a-z]+)")
FIXED = {
    "torch", "nn", "x", "self", "Network", "build", "center_crop", "saved", "like", "starts", "index", "s", "n", "a",
    "model", "print", "zip", "slice", "tuple", "super", "float", "__init__", "forward", "__name__", "shape", "zeros",
    "cat", "Tensor", "Module", "Sequential", "dim", "in_features",
}  # fmt: skip
KNOWN = FIXED | set(LAYERS) | {arg.name for kind in LAYERS.values() for arg in kind.args}

# names from all of Unicode: quotes, backslashes, newlines, triple quotes, control characters, look-alikes
names = st.one_of(
    st.text(min_size=1, max_size=12),
    st.sampled_from(['"""', "'''", "\\", "a = x\n__import__('os').system('echo owned')\ndef _f(x):\n        saved_b",
                     "t = x; print('owned'); saved_u", "x", "\uff58", "\u0445", "\u2028", "\x00", "coding=utf-7"]),
)  # fmt: skip


def identifiers(code: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(code)):
        for field in ("id", "attr", "name", "arg", "asname"):
            value = getattr(node, field, None)
            if isinstance(value, str):
                found.add(value)
    return found


def emit_items(items: list[tuple[str, dict[str, Any], None]], title: str) -> tuple[str, Any]:
    specs = resolve(items)
    result = run_stack((1, 2, 6, 6), specs)
    assert result.error is None, result.error
    return emit_torch(specs, result, title), result


@settings(max_examples=scaled(300), deadline=None)
@given(first=names, second=names, title=names)
def test_user_names_never_become_code(first: str, second: str, title: str) -> None:
    """Two Save names (equal or not, look-alikes included) and a file name, from all of Unicode."""
    items = [
        ("Save", {"name": first}, None),
        ("Conv2d", {"out_channels": 3, "kernel_size": 3, "padding": 1}, None),
        ("Save", {"name": second}, None),
        ("Concat", {"with": first}, None),
        ("Conv2d", {"out_channels": 3, "kernel_size": 1}, None),
        ("Add", {"with": second}, None),
    ]
    code, result = emit_items(items, title)
    found = identifiers(code)  # the code parses, whatever the names
    assert found <= KNOWN | {name for name in found if GENERATED.fullmatch(name)}, found - KNOWN
    # the same stack with plain stand-in names gives the same identifiers: none comes from the user's text
    stand_in = {first: "n1", second: "n2"} if first != second else {first: "n1"}
    plain = [(t, {k: stand_in.get(v, v) if k in ("name", "with") else v for k, v in a.items()}, None)
             for t, a, _ in items]  # fmt: skip
    assert identifiers(emit_items(plain, "title")[0]) == found
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, "emitted.py", "exec"), namespace)  # importing it runs nothing of the user's
    with torch.device("meta"):
        out = namespace["Network"]()(torch.empty(result.input))
    assert tuple(out.shape) == result.output


def test_look_alike_names_stay_two_variables() -> None:
    """'x' and fullwidth 'x' (U+FF58) normalise to one Python identifier; they are two tensors here."""
    items = [
        ("Save", {"name": "x"}, None),  # 2 channels
        ("Conv2d", {"out_channels": 1, "kernel_size": 1}, None),
        ("Save", {"name": "\uff58"}, None),  # 1 channel
        ("Conv2d", {"out_channels": 6, "kernel_size": 1}, None),
        ("Add", {"with": "\uff58"}, None),
        ("Concat", {"with": "x"}, None),  # 6 + 2, where one merged variable would give 6 + 1
    ]
    code, result = emit_items(items, "t")
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, "emitted.py", "exec"), namespace)
    with torch.device("meta"):
        out = namespace["Network"]()(torch.empty(result.input))
    assert tuple(out.shape) == result.output == (1, 8, 6, 6)


def test_a_file_name_with_triple_quotes_stays_a_comment(tmp_path: Path) -> None:
    path = tmp_path / 'x""";print("owned");""".yaml'
    path.write_text((ROOT / "examples" / "lenet5.yaml").read_text())
    result = CliRunner().invoke(main, ["stack", str(path), "--emit", "torch"])
    assert result.exit_code == 0
    run = subprocess.run([sys.executable, "-c", result.stdout], capture_output=True, text=True, check=True)
    assert "owned" not in run.stdout
    assert '# stack file: \'x""";print("owned");"""\'' in result.stdout


def test_a_name_saved_twice_is_two_tensors_and_the_shortcut_survives_it() -> None:
    """A Save inside a Residual's body that reuses a name: the shortcut (the block's input) and the second 'c'
    must stay two variables, or ``x + shortcut`` adds the wrong tensor (found by a hostile test)."""
    text = (
        "input: [2, 4]\nlayers:\n  - Residual:\n      body:\n        - Save: c\n"
        "        - Linear: {out_features: 1}\n        - Save: c\n        - ReLU\n        - Mul: {with: c}\n"
    )
    code = CliRunner().invoke(main, ["stack", "-", "--emit", "torch"], input=text).stdout
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, "emitted.py", "exec"), namespace)
    network = namespace["Network"]()
    x = torch.randn(2, 4)
    linear = next(module for module in network.modules() if isinstance(module, nn.Linear))
    expected = x + torch.relu(linear(x)) * linear(x)  # the block as torch code writes it
    torch.testing.assert_close(network(x), expected)


@pytest.mark.parametrize("shape", [(2,), (2, 3), (1, 2, 5)])
def test_centre_crop_below_two_spatial_axes(shape: tuple[int, ...]) -> None:
    """crop: center crops spatial axes only; a 1-D or 2-D tensor has none, and the emitted helper must not index
    axes it lacks (found by a hostile test)."""
    text = f"input: {list(shape)}\nlayers:\n  - Save: a\n  - Concat: {{with: a, dim: -1, crop: center}}\n"
    code = CliRunner().invoke(main, ["stack", "-", "--emit", "torch"], input=text).stdout
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, "emitted.py", "exec"), namespace)
    x = torch.randn(shape)
    torch.testing.assert_close(namespace["Network"]()(x), torch.cat([x, x], dim=-1))


@pytest.mark.parametrize(("length", "crop"), [(4, 0), (10, 4), (9, 3)])
def test_a_concat_crops_every_saved_tensor_to_the_input(length: int, crop: int) -> None:
    """Several saved tensors with crop: each is cropped to the input (the first tensor), not to what the
    concatenation has grown to; torch code written here, with its own centre crop (found by a hostile test)."""
    text = (f"input: [1, 1, {length}]\nlayers:\n  - Save: a\n  - ZeroPad1d: [[{-crop}, {-crop}]]\n"
            "  - Concat: {with: [a, a], dim: 2, crop: center}\n")  # fmt: skip
    result = CliRunner().invoke(main, ["stack", "-", "--emit", "torch"], input=text)
    assert result.exit_code == 0, result.stderr
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(result.stdout, "emitted.py", "exec"), namespace)
    x = torch.randn(1, 1, length)
    inner = x[..., crop : length - crop]
    middle = x[..., (length - inner.shape[-1]) // 2 :][..., : inner.shape[-1]]
    torch.testing.assert_close(namespace["Network"]()(x), torch.cat([inner, middle, middle], dim=2))
    quiet = CliRunner().invoke(main, ["stack", "-", "-q"], input=text).stdout.strip()
    assert quiet == "x".join(map(str, (1, 1, 3 * inner.shape[-1])))


def test_a_repeat_is_one_block_class_in_a_sequential_where_its_copies_are_alike() -> None:
    """ViT-B/16's 12 encoder layers are one class, built 12 times, not 12 copies of its code; DenseNet's dense
    layers, whose input channels grow copy by copy, are each written out."""
    vit = emitted(ROOT / "examples" / "vit_b_16.yaml")
    assert "nn.Sequential(*(Block7() for _ in range(12)))" in vit and vit.count("nn.MultiheadAttention(") == 1
    assert len(vit.splitlines()) < 120
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(vit, "vit.py", "exec"), namespace)
    with torch.device("meta"):
        model = namespace["Network"]()
    assert sum(p.numel() for p in model.parameters()) == 86_567_656  # torchvision's count: twelve copies built
    dense = emitted(ROOT / "examples" / "densenet121.yaml")
    assert "class Block" not in dense and dense.count("nn.BatchNorm2d(num_features=") > 100


@pytest.mark.parametrize("text", [
    "input: [1, 197, 768]\nlayers:\n  - MultiheadAttention: {num_heads: 12, batch_first: true, "
    "module: encoder.layers.encoder_layer_11.self_attention}\n",  # a call, then [0]: the call is split
    "input: [1, 3]\nlayers: []\n",
    "input: [1, 8, 4, 4]\nlayers:\n  - Repeat: {times: 3, layers: [Conv2d: {out_channels: 8, kernel_size: 3, "
    "padding: 1, module: features.denseblock_with_a_long_name.conv}]}\n",
])  # fmt: skip
def test_emitted_code_the_examples_do_not_reach_is_as_ruff_formats_it(text: str, tmp_path: Path) -> None:
    """Found by a review: an imported file's attention call was 107 characters, and an empty stack's Sequential
    split over two lines."""
    path = tmp_path / "emitted.py"
    result = CliRunner().invoke(main, ["stack", "-", "--emit", "torch"], input=text)
    assert result.exit_code == 0, result.stderr
    path.write_text(result.stdout)
    check = subprocess.run([sys.executable, "-m", "ruff", "format", "--isolated", "--check", "--diff", str(path)],
                           capture_output=True, text=True, check=False)  # fmt: skip
    assert check.returncode == 0, check.stdout
    subprocess.run([sys.executable, "-m", "ruff", "check", "--isolated", str(path)], check=True, capture_output=True)
