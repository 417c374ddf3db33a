"""Whole-process cost of one convcalc command, against the floors it cannot beat.

    python benchmarks/startup.py [--runs 30]

Each command runs as a fresh process (as a shell script would run it), and
the median wall time and the median peak memory (max RSS) of the runs are
reported as a Markdown table. The target from the project's issue: a quiet
one-layer command costs at most about 1.25x `python -c "import click"`.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"{' '.join(command)} failed")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def measure(cases: dict[str, list[str]], runs: int) -> dict[str, tuple[float, float]]:
    """Median wall seconds and peak RSS per command; the commands take turns, so drift hits all alike.

    convcalc's modules are compiled to bytecode first, as `pip install` does, so
    that an editable install or PYTHONDONTWRITEBYTECODE=1 does not charge every
    run for compiling them (the packages it is compared with are compiled).
    """
    compileall.compile_dir(str(Path(__file__).parent.parent / "convcalc"), quiet=1)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for command in cases.values():
        run_once(command)  # warm the file cache
    for _ in range(runs):
        for name, command in cases.items():
            samples[name].append(run_once(command))
    return {
        name: (statistics.median(s for s, _ in runs_), statistics.median(m for _, m in runs_))
        for name, runs_ in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30, help="processes per command (default 30)")
    parser.add_argument("--no-torch", action="store_true", help="skip the commands that need torch")
    args = parser.parse_args()

    python = sys.executable
    script = shutil.which("convcalc", path=str(Path(python).parent)) or shutil.which("convcalc")
    convcalc = [script] if script else [python, "-m", "convcalc"]
    quiet = [*convcalc, "conv", "227", "--k", "11", "--s", "4", "-q"]
    cases = dict(
        [
            ("python -c pass", [python, "-c", "pass"]),
            ('python -c "import click"', [python, "-c", "import click"]),
            ('python -c "import convcalc"', [python, "-c", "import convcalc"]),
            ("convcalc conv 227 --k 11 --s 4 -q", quiet),
            ("convcalc conv 227 --k 11 --s 4 --json", [*quiet[:-1], "--json"]),
            ("convcalc conv 227 --k 11 --s 4 (table)", quiet[:-1]),
            ("convcalc pool 55 --k 3 --s 2 -q", [*convcalc, "pool", "55", "--k", "3", "--s", "2", "-q"]),
        ]
    )
    if not args.no_torch:
        cases['python -c "import torch"'] = [python, "-c", "import torch"]
        cases["convcalc conv 227 --k 11 --s 4 --verify -q"] = [*quiet, "--verify"]

    results = measure(cases, args.runs)
    click_time = results['python -c "import click"'][0]
    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"median of {args.runs} runs each.\n"
    )
    print("| command | wall time (ms) | vs `import click` | peak RSS (MiB) |")
    print("|---|---:|---:|---:|")
    for name, (seconds, peak) in results.items():
        print(f"| `{name}` | {seconds * 1000:.1f} | {seconds / click_time:.2f}x | {peak:.1f} |")


if __name__ == "__main__":
    main()
