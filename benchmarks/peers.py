"""convcalc against the tools people use today, on the same networks.

    pip install '.[bench]'             # torch, torchinfo, torchsummary
    python benchmarks/peers.py --runs 3
    python benchmarks/peers.py --import --runs 7     # convcalc import of ResNet-50 against torchinfo

For LeNet-5, AlexNet, VGG-16 and ResNet-50 (the stack files in examples/), the
time and peak memory of a whole process that prints the network's summary:
convcalc stack (table and JSON), torchinfo.summary on the real model and with
device='meta', and torchsummary.summary. The torch models are the code that
`convcalc stack --emit torch` writes for the same files, so every tool
summarises the same network. Medians of --runs fresh processes, taking turns.

Writes docs/images/bench_peers.svg (a chart of the times) and prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
import tempfile
from pathlib import Path

from startup import measure

ROOT = Path(__file__).parent.parent
NETWORKS = ["lenet5", "alexnet", "vgg16", "resnet50"]

PEER = """
import contextlib, io, subprocess, sys
import torch
code = subprocess.run([sys.executable, "-m", "convcalc", "stack", sys.argv[1], "--emit", "torch"],
                      capture_output=True, text=True, check=True).stdout
namespace = {"__name__": "emitted"}
exec(code, namespace)
tool, device = sys.argv[2], sys.argv[3]
shape = tuple(int(n) for n in sys.argv[4].split("x"))
with torch.device(device):
    model = namespace["build"]() if "build" in namespace else namespace["Network"]()
if tool == "torchinfo":
    import torchinfo
    torchinfo.summary(model, input_size=shape, device=device, verbose=0)
else:
    import torchsummary
    with contextlib.redirect_stdout(io.StringIO()):
        torchsummary.summary(model, shape[1:], device="cpu")
"""


def input_shape(network: str) -> str:
    for line in (ROOT / "examples" / f"{network}.yaml").read_text().splitlines():
        if line.startswith("input:"):
            return "x".join(part.strip() for part in line.split("[")[1].split("]")[0].split(","))
    raise SystemExit(f"no input in {network}")


def chart(results: dict[str, dict[str, float]], path: Path) -> None:
    """Grouped bars, one group per network, log-scaled seconds: plain SVG, no plotting library."""
    import math

    tools = list(next(iter(results.values())))
    colours = ["#4c8bf5", "#8ab4f8", "#f25c54", "#f5a623", "#2eb67d", "#9aa5b1"]
    width, height, left, bottom = 900, 420, 70, 360
    low, high = math.log10(0.01), math.log10(20)

    def y(seconds: float) -> float:
        return bottom - (math.log10(max(seconds, 0.01)) - low) / (high - low) * (bottom - 40)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="Helvetica, Arial, '
           'sans-serif" font-size="11">', f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           '<text x="450" y="22" text-anchor="middle" font-size="15">Time to summarise a network (seconds, log '
           "scale; lower is better)</text>"]  # fmt: skip
    for tick in (0.01, 0.1, 1, 10):
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#e1e4e8"/>')
        out.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:g}</text>')
    group = (width - left - 40) / len(results)
    bar = group / (len(tools) + 1)
    for g, (network, times) in enumerate(results.items()):
        for t, tool in enumerate(tools):
            if tool not in times:
                continue
            x = left + 10 + g * group + t * bar
            out.append(f'<rect x="{x:.1f}" y="{y(times[tool]):.1f}" width="{bar - 2:.1f}" '
                       f'height="{bottom - y(times[tool]):.1f}" fill="{colours[t % len(colours)]}">'
                       f"<title>{tool}: {times[tool]:.3f} s</title></rect>")  # fmt: skip
        out.append(f'<text x="{left + 10 + g * group + group / 2 - bar / 2:.1f}" y="{bottom + 16}" '
                   f'text-anchor="middle">{network}</text>')  # fmt: skip
    for t, tool in enumerate(tools):
        lx = left + (t % 3) * 270
        ly = bottom + 36 + 16 * (t // 3)
        out.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{colours[t % len(colours)]}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly}">{tool}</text>')
    out.append("</svg>")
    path.write_text("\n".join(out) + "\n")


def import_side_by_side(runs: int) -> None:
    """``convcalc import`` of torchvision's ResNet-50 and its table, against ``torchinfo.summary`` of the same
    model, in one process after ``import torch`` (which both pay, about a second), taking turns: medians of
    ``runs`` each. convcalc builds the model on the meta device, traces it, writes and runs the file and renders
    its table; torchinfo runs a forward pass with hooks, on the real model and on the meta device."""
    import statistics
    import time

    import torch

    sys.path.insert(0, str(ROOT))
    import torchinfo

    from convcalc.importer import import_module
    from convcalc.render import console, show, stack_report
    from tests.torchvision_models import models

    shape = (1, 3, 224, 224)

    def ours() -> None:
        with torch.device("meta"):
            model = models().resnet50()
        imported = import_module(model, shape, title="resnet50")
        output = console(io.StringIO())
        show(output, stack_report(output, imported.result, "float32", None, None))

    def theirs(device: str) -> None:
        with torch.device(device):
            model = models().resnet50()
        torchinfo.summary(model, input_size=shape, device=device, verbose=0)

    tools = {"convcalc import + table": ours, "torchinfo.summary, real model": lambda: theirs("cpu"),
             "torchinfo.summary, device='meta'": lambda: theirs("meta")}  # fmt: skip
    for tool in tools.values():  # first use: torch's lazy imports, caches
        tool()
    times: dict[str, list[float]] = {name: [] for name in tools}
    for _ in range(runs):
        for name, tool in tools.items():
            start = time.perf_counter()
            tool()
            times[name].append(time.perf_counter() - start)
    print(f"ResNet-50 at 1x3x224x224, in one process after import torch; median of {runs} runs each.\n")
    print("| tool | seconds |\n|---|---:|")
    for name, seconds in times.items():
        print(f"| {name} | {statistics.median(seconds):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="processes per command (default 3)")
    parser.add_argument("--import", dest="imports", action="store_true",
                        help="time convcalc import of ResNet-50 against torchinfo.summary, in one process")  # fmt: skip
    args = parser.parse_args()
    if args.imports:
        import_side_by_side(args.runs)
        return
    python = sys.executable
    has = {name: importlib.util.find_spec(name) is not None for name in ("torch", "torchinfo", "torchsummary")}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "peer.py"
        script.write_text(PEER)
        cases: dict[str, list[str]] = {}
        for network in NETWORKS:
            path, shape = str(ROOT / "examples" / f"{network}.yaml"), input_shape(network)
            cases[f"{network}|convcalc stack (table)"] = [python, "-m", "convcalc", "stack", path]
            cases[f"{network}|convcalc stack --json"] = [python, "-m", "convcalc", "stack", path, "--json"]
            if has["torch"] and has["torchinfo"]:
                cases[f"{network}|torchinfo, real model"] = [python, str(script), path, "torchinfo", "cpu", shape]
                cases[f"{network}|torchinfo, device='meta'"] = [python, str(script), path, "torchinfo", "meta", shape]
            if has["torch"] and has["torchsummary"]:
                cases[f"{network}|torchsummary"] = [python, str(script), path, "torchsummary", "cpu", shape]
        results = measure(cases, args.runs)
    table: dict[str, dict[str, float]] = {}
    memory: dict[str, dict[str, float]] = {}
    for key, (seconds, peak) in results.items():
        network, tool = key.split("|")
        table.setdefault(network, {})[tool] = seconds
        memory.setdefault(network, {})[tool] = peak
    chart(table, ROOT / "docs" / "images" / "bench_peers.svg")
    tools = list(next(iter(table.values())))
    print(f"Median of {args.runs} runs each; seconds (peak MiB).\n")
    print("| network | " + " | ".join(tools) + " |")
    print("|---|" + "---:|" * len(tools))
    for network, times in table.items():
        cells = [f"{times[tool]:.3f} ({memory[network][tool]:.0f})" if tool in times else "-" for tool in tools]
        print(f"| {network} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
