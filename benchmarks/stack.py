"""What `convcalc stack` costs, against its floor and against torchinfo.

    python benchmarks/stack.py [--runs 10]

Needs torch for the --verify rows and torchinfo for the comparison
(`pip install '.[bench]'` has both); rows whose tool is missing are skipped.
Every command runs as a fresh process, the commands taking turns; the table
shows median wall time and median peak memory. Targets from the project's
issues: the VGG-16 table at most 1.5x `python -c "import click, yaml,
rich.console, rich.table"` (the packages the table needs, imported and nothing
done), and at least 20x faster than torchinfo's summary; --verify on VGG-16 at
256x3x1024x1024 close to `import torch` and under about 320 MiB; 5,000 layers
in JSON well under a second, growing linearly.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
from pathlib import Path

from startup import measure

ROOT = Path(__file__).parent.parent
VGG = str(ROOT / "examples" / "vgg16.yaml")

# torchinfo on the same VGG-16, built in torch from the stack file (torchvision does not import beside torch here)
TORCHINFO = """
import sys
import torch, torchinfo
from convcalc.stackfile import load_stack
from convcalc.network import run_stack
shape, specs = load_stack(open(sys.argv[1]).read())
model = torch.nn.Sequential(*[getattr(torch.nn, row.type)(**row.arguments) for row in run_stack(shape, specs).rows])
torchinfo.summary(model, input_size=shape, device=sys.argv[2], verbose=0)
"""


def long_stack(layers: int, folder: Path) -> str:
    """A stack file of ``layers`` layers: 3x3 convs and ReLUs in turn."""
    body = "".join(
        "  - Conv2d: {out_channels: 8, kernel_size: 3, padding: 1}\n" if i % 2 == 0 else "  - ReLU\n"
        for i in range(layers)
    )
    path = folder / f"stack_{layers}.yaml"
    path.write_text(f"input: [1, 8, 32, 32]\nlayers:\n{body}")
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="processes per command (default 10)")
    args = parser.parse_args()
    python = sys.executable
    script = shutil.which("convcalc", path=str(Path(python).parent)) or shutil.which("convcalc")
    convcalc = [script] if script else [python, "-m", "convcalc"]  # the console script, as users run it
    has_torch = importlib.util.find_spec("torch") is not None
    has_torchinfo = has_torch and importlib.util.find_spec("torchinfo") is not None

    with tempfile.TemporaryDirectory() as folder:
        floor = "import click, yaml, rich.console, rich.table"
        cases = {f'python -c "{floor}"': [python, "-c", floor], 'python -c "import click, yaml"': [
            python, "-c", "import click, yaml"]}  # fmt: skip
        cases |= {
            "convcalc stack vgg16.yaml (table)": [*convcalc, "stack", VGG],
            "convcalc stack vgg16.yaml --json": [*convcalc, "stack", VGG, "--json"],
        }
        if has_torchinfo:
            script = Path(folder) / "torchinfo_vgg.py"
            script.write_text(TORCHINFO)
            cases["torchinfo.summary(VGG-16), real model"] = [python, str(script), VGG, "cpu"]
            cases["torchinfo.summary(VGG-16), device='meta'"] = [python, str(script), VGG, "meta"]
        if has_torch:
            cases['python -c "import torch"'] = [python, "-c", "import torch"]
            cases["convcalc stack vgg16.yaml --verify --input 256x3x1024x1024"] = [
                *convcalc, "stack", VGG, "--verify", "--input", "256x3x1024x1024", "-q",
            ]  # fmt: skip
        for layers in (100, 1000, 5000, 10000):
            cases[f"convcalc stack --json, {layers} layers"] = [
                *convcalc,
                "stack",
                long_stack(layers, Path(folder)),
                "--json",
            ]
        results = measure(cases, args.runs)

    seconds_floor = results[f'python -c "{floor}"'][0]
    print(f"Median of {args.runs} runs each.\n")
    print(f"| command | wall time (ms) | vs `{floor}` | peak RSS (MiB) |")
    print("|---|---:|---:|---:|")
    for name, (seconds, peak) in results.items():
        print(f"| `{name}` | {seconds * 1000:.0f} | {seconds / seconds_floor:.2f}x | {peak:.0f} |")


if __name__ == "__main__":
    main()
