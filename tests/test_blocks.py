"""Residual blocks, Repeat and the joins (Save, Add, Concat): against torch, and their errors."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import torch
from click.testing import CliRunner, Result
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from convcalc.cli import main
from convcalc.network import run_stack
from convcalc.spec import resolve
from tests.profiles import scaled
from tests.torch_oracle import TORCH_REJECTS, inferring_module

ROOT = Path(__file__).parent.parent


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner(env={"COLUMNS": "140"}).invoke(main, list(args), input=stdin)


# --- torch, written out by hand: what PyTorch code for the same graph does --------------------------------


class Refused(Exception):
    def __init__(self, label: str) -> None:
        self.label = label


def torch_graph(items: list[Any], x: torch.Tensor, prefix: str, saved: dict[str, torch.Tensor],
                seen: dict[str, tuple[tuple[int, ...], int]]) -> torch.Tensor:  # fmt: skip
    """Run items the way hand-written torch code would; record each step's output shape and params by label."""
    for position, (name, args, _) in enumerate(items, start=1):
        label = f"{prefix}{position}"
        params = 0
        try:
            if name == "Residual":
                body = torch_graph(args["body"], x, f"{label}.body.", saved, seen)
                side = torch_graph(args["shortcut"], x, f"{label}.shortcut.", saved, seen) if "shortcut" in args else x
                out = body + side
            elif name == "Repeat":
                out = x
                for copy in range(1, args["times"] + 1):
                    out = torch_graph(args["layers"], out, f"{label}.{copy}.", saved, seen)
            elif name == "Parallel":
                ends = [torch_graph(branch, x, f"{label}.branch{number}.", saved, seen)
                        for number, branch in enumerate(args["branches"], start=1)]  # fmt: skip
                if args["join"] == "Concat":
                    out = torch.cat(ends, dim=args.get("dim", 1))
                else:
                    out = ends[0]
                    for end in ends[1:]:
                        out = out + end if args["join"] == "Add" else out * end
            elif name == "Save":
                saved[args["name"]] = x
                out = x
            elif name == "From":
                out = saved[args["name"]]
            elif name in ("Add", "Mul"):
                out = x
                for other in [saved[n] for n in (args["with"] if isinstance(args["with"], list) else [args["with"]])]:
                    out = out + other if name == "Add" else out * other
            elif name == "Concat":
                others = [saved[n] for n in (args["with"] if isinstance(args["with"], list) else [args["with"]])]
                if args.get("crop"):
                    top = [[(o - n) // 2 for o, n in zip(other.shape[2:], x.shape[2:])] for other in others]
                    others = [other[(slice(None), slice(None), *(slice(t, t + n) for t, n in zip(tops, x.shape[2:])))]
                              for other, tops in zip(others, top)]  # fmt: skip
                out = torch.cat([x, *others], dim=args.get("dim", 1))
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    module = inferring_module(name, args, x).eval()  # torch infers what the file leaves out
                    out = module(x)
                params = sum(p.numel() for p in module.parameters())
        except (*TORCH_REJECTS, KeyError) as error:
            raise Refused(label) from error
        if 0 in out.shape:
            raise Refused(label)
        seen[label] = (tuple(out.shape), params)
        x = out
    return x


@st.composite
def simple_layer(draw: st.DrawFn) -> tuple[str, dict[str, Any], None]:
    choice = draw(st.sampled_from(["conv", "conv", "pool", "relu", "bn", "up"]))
    if choice == "conv":
        args = {"out_channels": draw(st.integers(1, 4)), "kernel_size": draw(st.integers(1, 3))}
        args["stride"] = draw(st.integers(1, 2))
        args["padding"] = draw(st.integers(0, 1))
        return "Conv2d", args, None
    if choice == "pool":
        return "MaxPool2d", {"kernel_size": 2}, None
    if choice == "bn":
        return "BatchNorm2d", {}, None
    if choice == "up":
        return "Upsample", {"scale_factor": 2}, None
    return "ReLU", {}, None


@st.composite
def graph_items(draw: st.DrawFn, depth: int = 0) -> list[tuple[str, dict[str, Any], None]]:
    items: list[tuple[str, dict[str, Any], None]] = []
    names: list[str] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["layer", "layer", "residual", "repeat", "parallel", "save", "add", "mul",
                                     "concat", "from"]))  # fmt: skip
        if kind == "residual" and depth < 2:
            args: dict[str, Any] = {"body": draw(graph_items(depth + 1))}
            if draw(st.booleans()):
                args["shortcut"] = draw(graph_items(depth + 1))
            items.append(("Residual", args, None))
        elif kind == "repeat" and depth < 2:
            items.append(("Repeat", {"times": draw(st.integers(1, 3)), "layers": draw(graph_items(depth + 1))}, None))
        elif kind == "parallel" and depth < 2:
            branches = [draw(st.one_of(st.just([]), graph_items(depth + 1))) for _ in range(draw(st.integers(1, 3)))]
            join = draw(st.sampled_from(["Concat", "Add", "Mul"]))
            items.append(("Parallel", {"join": join, "branches": branches, "dim": draw(st.sampled_from([1, 1, 0, -1]))},
                          None))  # fmt: skip
        elif kind == "from" and names:
            items.append(("From", {"name": draw(st.sampled_from(names))}, None))
        elif kind == "save":
            name = f"t{len(names)}"
            names.append(name)
            items.append(("Save", {"name": name}, None))
        elif kind in ("add", "mul", "concat") and names:
            target: Any = draw(st.one_of(st.sampled_from(names), st.lists(st.sampled_from(names), min_size=1,
                                                                         max_size=3)))  # fmt: skip
            if kind in ("add", "mul"):
                items.append((kind.capitalize(), {"with": target}, None))
            else:
                items.append(("Concat", {"with": target, "dim": 1, "crop": draw(st.booleans())}, None))
        else:
            items.append(draw(simple_layer()))
    return items


@settings(max_examples=scaled(400), deadline=None)
@given(items=graph_items(), channels=st.integers(1, 3), size=st.integers(4, 12))
def test_graphs_match_torch_step_by_step(items: list[Any], channels: int, size: int) -> None:
    shape = (1, channels, size, size)
    result = run_stack(shape, resolve(items))
    assume(all(math.prod(row.output) <= 1 << 16 for row in result.rows))  # repeated upsampling: keep torch cheap
    seen: dict[str, tuple[tuple[int, ...], int]] = {}
    refused = None
    try:
        torch_graph(items, torch.zeros(shape), "", {}, seen)
    except Refused as stop:
        refused = stop.label
    ours = {row.label: (row.output, row.params) for row in result.rows}
    event("torch runs it" if refused is None else "torch refuses a step")
    # a block's row comes before its layers in convcalc, after them in torch: compare as sets of labels
    assert ours == seen, f"{items}: {result.error}"
    assert (result.error.label if result.error else None) == refused, f"{items}: {result.error}"


# --- examples and numbering ---------------------------------------------------------------------------


def test_resnets_have_torchvisions_parameter_counts() -> None:
    for name, params in (("resnet18", 11_689_512), ("resnet50", 25_557_032)):
        data = json.loads(run("stack", str(ROOT / "examples" / f"{name}.yaml"), "--json").stdout)
        assert (data["total_params"], data["output_shape"]) == (params, [1, 1000])


def test_original_unet_maps_572_to_388() -> None:
    result = run("stack", str(ROOT / "examples" / "unet.yaml"), "-q")
    assert (result.exit_code, result.stdout) == (0, "1x2x388x388\n")


BLOCK = """input: [1, 3, 16, 16]
layers:
  - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}
  - Residual:
      body:
        - Conv2d: {out_channels: 16, kernel_size: 3, stride: 2, padding: 1}
        - ReLU
      shortcut:
        - Conv2d: {out_channels: 16, kernel_size: 1, stride: 2}
  - Repeat:
      times: 2
      layers:
        - Conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
  - Save: skip
  - Conv2d: {out_channels: 16, kernel_size: 3, padding: 1}
  - Add: {with: skip}
"""


def test_rows_are_numbered_inside_blocks_and_json_keeps_the_nesting() -> None:
    data = json.loads(run("stack", "-", "--json", stdin=BLOCK).stdout)
    layers = data["layers"]
    assert [layer["label"] for layer in layers] == ["1", "2", "3", "4", "5", "6"]
    assert [layer["label"] for layer in layers[1]["blocks"]["body"]] == ["2.body.1", "2.body.2"]
    assert [layer["label"] for layer in layers[1]["blocks"]["shortcut"]] == ["2.shortcut.1"]
    assert list(layers[2]["blocks"]) == ["1", "2"]
    assert layers[2]["blocks"]["2"][0]["label"] == "3.2.1"
    assert data["output_shape"] == [1, 16, 8, 8]
    # params of the layers inside blocks count once, the blocks themselves add none
    assert data["total_params"] == (8 * 3 * 9 + 8) + (16 * 8 * 9 + 16) + (16 * 8 + 16) + 3 * (16 * 16 * 9 + 16)


def test_the_table_draws_blocks_as_a_tree() -> None:
    lines = run("stack", "-", stdin=BLOCK).stdout.splitlines()
    header = next(line for line in lines if line.startswith("#"))
    start, end = header.index("layer"), header.index("arguments")
    names = [line[start:end].rstrip() for line in lines[lines.index(header) + 2 :] if line[start:end].strip()]
    assert names[:11] == ["Conv2d", "Residual", "├─body", "│ ├─Conv2d", "│ └─ReLU", "└─shortcut", "  └─Conv2d",
                          "Repeat", "├─Conv2d", "└─Conv2d", "Save"]  # fmt: skip


def test_an_ascii_terminal_gets_ascii_guides() -> None:
    from click.testing import CliRunner

    from convcalc.cli import main

    result = CliRunner(env={"PYTHONIOENCODING": "ascii"}, charset="ascii").invoke(main, ["stack", "-"], input=BLOCK)
    assert result.exit_code == 0, result.output
    assert result.stdout.isascii(), result.stdout
    assert "|-body" in result.stdout and "| `-ReLU" in result.stdout and "`-shortcut" in result.stdout


def test_residual_field_is_the_larger_branch() -> None:
    data = json.loads(run("stack", "-", "--json", stdin=BLOCK).stdout)
    residual = data["layers"][1]
    body_field = residual["blocks"]["body"][-1]["receptive_field"]
    side_field = residual["blocks"]["shortcut"][-1]["receptive_field"]
    assert residual["receptive_field"] == [max(a, b) for a, b in zip(body_field, side_field)]


JOIN_ERRORS = [
    (
        "input: [1, 3, 16, 16]\nlayers:\n  - Residual:\n      body:\n"
        "        - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}\n",
        "Error: <stdin>, line 3: layer 1 (Residual) on input (1, 3, 16, 16): the body (1, 8, 16, 16) and the shortcut "
        "(1, 3, 16, 16) do not match: the channels differ (8 and 3): make both 8, or both 3\n",
    ),
    (
        "input: [1, 3, 15, 15]\nlayers:\n  - Save: a\n  - MaxPool2d: {kernel_size: 2}\n"
        "  - Upsample: {scale_factor: 2}\n  - Add: {with: a}\n",
        "Error: <stdin>, line 6: layer 4 (Add) on input (1, 3, 14, 14): the input (1, 3, 14, 14) and 'a' (1, 3, 15, "
        "15) (saved at layer 1) do not match: the sizes differ: change the strides or padding of one side, or the "
        "input size; input sizes near 15x15 that work: 14x14 and 16x16\n",
    ),
    (
        "input: [1, 3, 8, 8]\nlayers:\n  - Add: {with: nothing}\n",
        "Error: <stdin>, line 3: layer 1 (Add) on input (1, 3, 8, 8): no tensor was saved as 'nothing' before this "
        "layer (saved: none yet)\n",
    ),
    (
        "input: [1, 3, 8, 8]\nlayers:\n  - Save: a\n  - Conv2d: {out_channels: 4, kernel_size: 3}\n"
        "  - Concat: {with: a, dim: 1}\n",
        "Error: <stdin>, line 5: layer 3 (Concat) on input (1, 4, 6, 6): cannot concatenate the input (1, 4, 6, 6) "
        "with 'a' "
        "(1, 3, 8, 8) (saved at layer 1) along dim 1: dim 2 differs (6 and 8); crop the saved tensor (crop: center), "
        "or change the input size\n",
    ),
    (
        "input: [1, 3, 8, 8]\nlayers:\n  - Repeat: {times: 0, layers: [ReLU]}\n",
        "Error: <stdin>, line 3: layer 1 (Repeat): times must be a positive integer, got 0\n",
    ),
    (
        "input: [1, 3, 8, 8]\nlayers:\n  - Repeat: {times: 1000, layers: [{Repeat: {times: 1000, layers: [ReLU]}}]}\n",
        "Error: <stdin>: the stack expands to 1,001,001 layers; convcalc takes at most 100,000\n",
    ),
    (
        "input: [1, 3, 8, 8]\nlayers:\n  - Residual: {body: [ReLU], shorcut: [ReLU]}\n",
        "Error: <stdin>, line 3: layer 1 (Residual): unknown keyword 'shorcut' (did you mean shortcut?); Residual "
        "takes: body, shortcut\n",
    ),
    (
        "input: [1, 3, 8, 8]\nlayers:\n  - Residual:\n      body:\n"
        "        - Conv2D: {out_channels: 3, kernel_size: 1}\n",
        "Error: <stdin>, line 5: layer 1.body layer 1: unknown layer 'Conv2D' (did you mean Conv2d?)\n",
    ),
]


def test_join_and_block_errors_exit_1_naming_both_sides() -> None:
    for text, message in JOIN_ERRORS:
        result = run("stack", "-", "-q", stdin=text)
        assert result.exit_code == 1, text
        assert result.stderr == message
