"""Seven modern networks as stack files, against references written in plain torch (tests/reference_nets.py).

For each example: convcalc's output shape, parameters, buffers and MACs equal
the reference's (MACs: FlopCounterMode FLOPs / 2 on the meta device), and the
module ``--emit torch`` writes, given the reference's weights, computes the
reference's outputs on a random input. That last check is what tells a
multiply gate from a broadcast add, or ``cat([x, new])`` from ``cat([new, x])``:
shapes and counts would agree either way.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from convcalc.cli import main
from convcalc.network import run_stack
from convcalc.stackfile import load_stack
from tests.reference_nets import PARAMS, REFERENCES, copy_state, macs, randomize

ROOT = Path(__file__).parent.parent
NAMES = sorted(REFERENCES)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One thread: on this 2-core machine, shared with other work, two threads made these forwards 5-20x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def example(name: str) -> tuple[Any, Any]:
    path = ROOT / "examples" / f"{name}.yaml"
    shape, specs = load_stack(path.read_text(), path.name)
    return shape, run_stack(shape, specs)


@pytest.mark.parametrize("name", NAMES)
def test_counts_match_the_reference(name: str) -> None:
    shape, result = example(name)
    assert result.error is None, result.error
    assert shape == (1, 3, 224, 224)
    assert result.output == (1, 1000)
    with torch.device("meta"):
        reference = REFERENCES[name]()
    params, buffers = sum(p.numel() for p in reference.parameters()), sum(b.numel() for b in reference.buffers())
    multiply_adds = macs(REFERENCES[name]())
    assert result.total_params == PARAMS[name] == params
    assert result.total_buffers == buffers
    assert result.total_macs == multiply_adds
    layers = json.loads(CliRunner().invoke(main, ["stack", str(ROOT / "examples" / f"{name}.yaml"), "--json"]).stdout)
    assert sum(layer["params"] for layer in layers["layers"]) == params  # a block's entry holds its subtotals
    assert sum(layer["macs"] for layer in layers["layers"]) == multiply_adds
    # --csv, at any --depth: the top-level rows add up to the reference's totals, and a block's row to its nodes'
    for depth in ([], ["--depth", "1"], ["--depth", "2"], ["--depth", "3"]):
        out = CliRunner().invoke(main, ["stack", str(ROOT / "examples" / f"{name}.yaml"), "--csv", *depth])
        rows = list(csv.DictReader(io.StringIO(out.stdout)))
        assert all(int(row["depth"]) < int(depth[1]) for row in rows) if depth else len(rows) == len(result.rows)
        for column, total in (("params", params), ("buffers", buffers), ("macs", multiply_adds)):
            assert sum(int(row[column]) for row in rows if row["depth"] == "0") == total, (depth, column)
            for block in (row for row in rows if any(other["parent"] == row["id"] for other in rows)):
                inside = sum(int(row[column]) for row in rows if row["parent"] == block["id"])
                assert int(block[column]) == inside, (depth, column, block["label"])


@pytest.mark.parametrize("name", NAMES)
def test_the_emitted_module_computes_what_the_reference_computes(name: str) -> None:
    result = CliRunner().invoke(main, ["stack", str(ROOT / "examples" / f"{name}.yaml"), "--emit", "torch"])
    assert result.exit_code == 0, result.stderr
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(result.stdout, f"{name}.py", "exec"), namespace)
    emitted = namespace["Network"]().double()
    reference = REFERENCES[name]().double()
    randomize(reference, seed=7)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64, generator=generator)
    copy_state(reference, emitted, x)  # pairs the tensors in the order a forward pass first uses them
    reference.eval()
    emitted.eval()
    with torch.no_grad():
        expected, got = reference(x), emitted(x)
    assert got.shape == expected.shape == (1, 1000)
    assert torch.allclose(got, expected, rtol=1e-9, atol=1e-9), (got - expected).abs().max()
