"""--emit torch: the emitted module runs in torch and gives every layer the calculator's shape and parameters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from convcalc.cli import main
from convcalc.stack import BLOCKS, JOINS, run_stack
from convcalc.stackfile import load_stack

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def emitted(path: Path) -> str:
    result = CliRunner().invoke(main, ["stack", str(path), "--emit", "torch"])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_emitted_code_matches_the_calculator_layer_by_layer(example: Path) -> None:
    code = emitted(example)
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, f"{example.stem}.py", "exec"), namespace)
    with torch.device("meta"):  # nothing allocated, however large the network
        model = namespace["build"]() if "build" in namespace else namespace["Network"]()
        shapes: list[tuple[int, ...]] = []
        leaves = [m for m in model.modules() if not list(m.children()) and not isinstance(m, nn.Sequential)]
        for leaf in leaves:
            leaf.register_forward_hook(lambda module, args, out: shapes.append(tuple(out.shape)))
        shape, specs = load_stack(example.read_text(), example.name)
        model.eval()
        out = model(torch.empty(shape))
    result = run_stack(shape, specs)
    layers = [row for row in result.rows if row.type not in BLOCKS and row.type not in JOINS]
    assert shapes == [row.output for row in layers]
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
