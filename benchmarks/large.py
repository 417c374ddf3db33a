"""What a long stack costs as JSON, against reading the same file with PyYAML alone.

    python benchmarks/large.py [--runs 10] [--layers 10000]

Target (from the graph-model issue): `convcalc stack FILE --json` of a
10,000-layer stack takes at most 1.5x `python -c "import yaml; yaml.load(open(FILE),
Loader=yaml.CSafeLoader)"`: reading, checking, running and writing out every
layer costs at most half of what parsing the file alone costs. Two files: the
3x3 convs and ReLUs of benchmarks/stack.py, and a file of the same length made of
blocks (Residual, Parallel with a Mul gate, Save and Concat), as modern networks
are written. Every command runs as a fresh process, the commands taking turns.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from stack import long_stack  # 3x3 convs and ReLUs in turn
from startup import measure

LOADER = "import sys, yaml; yaml.load(open(sys.argv[1]), Loader=yaml.CSafeLoader)"


BLOCK = """  - Residual:
      body:
        - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1, bias: false}
        - BatchNorm2d
        - ReLU: {inplace: true}
  - Parallel:
      join: Mul
      branches:
        - []
        - [AdaptiveAvgPool2d: 1, Conv2d: {out_channels: 8, kernel_size: 1}, Sigmoid]
  - Save: skip
  - Conv2d: {out_channels: 8, kernel_size: 1}
  - Concat: {with: skip}
  - Conv2d: {out_channels: 8, kernel_size: 1}
"""
BLOCK_LAYERS = 13
"""Nodes one BLOCK makes: 2 blocks, 3 + 3 layers in them, Save, 2 convs, Concat."""


def blocks(layers: int, folder: Path) -> Path:
    """About ``layers`` nodes of residual, gated and concatenated blocks."""
    path = folder / f"blocks_{layers}.yaml"
    path.write_text("input: [1, 8, 32, 32]\nlayers:\n" + BLOCK * (layers // BLOCK_LAYERS))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="processes per command (default 10)")
    parser.add_argument("--layers", type=int, default=10_000, help="layers per file (default 10,000)")
    args = parser.parse_args()
    python = sys.executable
    script = shutil.which("convcalc", path=str(Path(python).parent)) or shutil.which("convcalc")
    convcalc = [script] if script else [python, "-m", "convcalc"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        files = {"convs and ReLUs": long_stack(args.layers, folder), "blocks": blocks(args.layers, folder)}
        cases: dict[str, list[str]] = {}
        for kind, path in files.items():
            cases[f"{kind}: PyYAML CSafeLoader alone"] = [python, "-c", LOADER, str(path)]
            cases[f"{kind}: convcalc stack --json"] = [*convcalc, "stack", str(path), "--json"]
        results = measure(cases, args.runs)
    print(f"{args.layers:,} layers, median of {args.runs} runs each.\n")
    print("| file | PyYAML alone (ms) | convcalc --json (ms) | ratio | peak RSS, convcalc (MiB) |")
    print("|---|---:|---:|---:|---:|")
    for kind in files:
        floor, _ = results[f"{kind}: PyYAML CSafeLoader alone"]
        ours, peak = results[f"{kind}: convcalc stack --json"]
        print(f"| {kind} | {floor * 1000:.0f} | {ours * 1000:.0f} | {ours / floor:.2f}x | {peak:.0f} |")


if __name__ == "__main__":
    main()
