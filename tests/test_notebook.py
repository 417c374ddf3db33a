"""Results where students look: IPython's display machinery shows each result as the CLI's table (HTML for a
notebook, text for IPython's terminal), a plain repr is one short line, hostile names stay text, and
docs/notebook.ipynb runs in a real kernel with the sizes torch gives."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from IPython.core.formatters import DisplayFormatter

import convcalc
from convcalc.cli import main
from tests.profiles import scaled

ROOT = Path(__file__).parent.parent
LENET = ROOT / "examples" / "lenet5.yaml"


def shown(result: Any) -> dict[str, Any]:
    """What IPython's display machinery makes of ``result`` (as a notebook's last expression)."""
    data, _ = DisplayFormatter().format(result)
    return data


def results() -> dict[str, Any]:
    return {
        "layer": convcalc.conv((227, 227), kernel_size=11, stride=4, in_channels=3, out_channels=96),
        "network": convcalc.stack(LENET),
        "solutions": convcalc.solve(227, 55),
        "fit": convcalc.fit(LENET, 24, 40),
    }


@pytest.mark.parametrize("kind", ["layer", "network", "solutions", "fit"])
def test_every_result_shows_the_clis_table_in_a_notebook(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # IPython's terminal, 100 columns wide
    result = results()[kind]
    data = shown(result)
    assert data["text/plain"] == result.table(width=100)  # the terminal gets the CLI's table at its width
    cli = {"layer": ["conv", "227", "--k", "11", "--s", "4", "--in-channels", "3", "--out-channels", "96"],
           "network": ["stack", str(LENET)], "solutions": ["solve", "227", "55"],
           "fit": ["fit", str(LENET), "--range", "24:40"]}[kind]  # fmt: skip
    printed = CliRunner(env={"COLUMNS": "100"}).invoke(main, cli).stdout
    assert data["text/plain"].split("\n")[:4] == printed.split("\n")[:4]  # ... as `convcalc` itself prints it
    assert "<pre" in data["text/html"]
    visible = html.unescape(re.sub(r"<[^>]+>", "", data["text/html"]))
    wide = CliRunner(env={"COLUMNS": "120"}).invoke(main, cli).stdout  # the notebook's table is 120 wide
    assert all(line.strip() in visible for line in wide.split("\n")[:5])  # the HTML holds the same table
    assert "\n" not in repr(result) and len(repr(result)) < 200


def test_a_whole_resnet50_reprs_in_one_short_line() -> None:
    """The issue's hang: a stack result's repr held its whole graph, recursively (12.8 GB for ResNet-50)."""
    net = convcalc.stack(ROOT / "examples" / "resnet50.yaml")
    assert re.fullmatch(r"<Network 'resnet50.yaml' 1x3x224x224 -> 1x1000: 25,557,032 params, [0-9,]+ MACs>",
                        repr(net))  # fmt: skip
    assert len(repr(net.result)) < 300 and all(len(repr(node)) < 300 for node in net.nodes)


@settings(max_examples=scaled(60), deadline=None)
@given(name=st.one_of(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12),
                      st.sampled_from(["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\x1b[31mred",
                                       "<b>bold</b>", "a&amp;b", "[bold]rich[/bold]", "]]>"])))  # fmt: skip
@example(name="<script>alert(1)</script>")  # each accepted as a name: the test cannot pass by refusing them all
@example(name="<img src=x onerror=alert(1)>")
@example(name="[bold]rich[/bold]")
def test_a_hostile_name_stays_text_in_the_html_and_the_terminal(name: str) -> None:
    source = {"input": [1, 3, 8, 8], "layers": [{"Conv2d": {"out_channels": 2, "kernel_size": 3}}, {"Output": name}]}
    try:
        net = convcalc.stack(source)
    except convcalc.ConvcalcError:
        assume(False)  # a name the file format refuses, with its own message (tests/test_fuzz.py)
        raise
    data = shown(net)
    page = data["text/html"]
    for tag in ("<script", "<b>", "<img", "<iframe"):
        assert tag not in page.lower().replace("<pre", "").replace("<span", "").replace("<code", ""), tag
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", data["text/plain"])  # no terminal control gets through


def test_markup_in_a_name_is_escaped_not_rendered() -> None:
    net = convcalc.stack({"input": [1, 3, 8, 8], "layers": [{"Save": "<b>x</b>"}, {"Output": "<script>y"}]})
    page = shown(net)["text/html"]
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "<script>" not in page and "&lt;script&gt;y" in page


def test_a_diagram_shows_inline_as_svg() -> None:
    data = shown(convcalc.stack(LENET).draw())
    assert "<svg" in data["image/svg+xml"][:200]


# --- docs/notebook.ipynb, in a real kernel -----------------------------------------------------------------------


def _torch_size(layer: torch.nn.Module, size: tuple[int, ...], channels: int = 1) -> str:
    with torch.no_grad():
        return "x".join(map(str, layer(torch.zeros(1, channels, *size)).shape[2:]))


def test_the_notebook_runs_and_shows_the_sizes_torch_gives() -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "docs" / "notebook.ipynb", as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "docs")}}).execute()  # fmt: skip
    outputs = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert not [out for out in cell.outputs if out.output_type == "error"], cell.source
            outputs.append("\n".join(str(out.get("data", {}).get("text/plain", out.get("text", "")))
                                     for out in cell.outputs))  # fmt: skip
    text = "\n".join(outputs)
    nn = torch.nn
    expected = [  # each computed by torch from the notes' numbers, not by convcalc
        f"227x227 -> {_torch_size(nn.Conv2d(3, 96, 11, stride=4), (227, 227), 3)}",
        f"64x64 -> {_torch_size(nn.Conv2d(1, 1, 7, stride=2), (64, 64))}",
        f"32x32 -> {_torch_size(nn.Conv2d(1, 1, 5, padding=2), (32, 32))}",
        f"32x64 -> {_torch_size(nn.Conv2d(1, 1, 5), (32, 64))}",
        f"64x32 -> {_torch_size(nn.Conv2d(1, 1, 3, padding=1), (64, 32))}",
        f"24x24 -> {_torch_size(nn.MaxPool2d(2), (24, 24))}",
    ]
    for line in expected:
        assert line in text, line
    lenet = nn.Sequential(nn.Conv2d(1, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84),
                          nn.Tanh(), nn.Linear(84, 10))  # fmt: skip
    params = sum(p.numel() for p in lenet.parameters())
    assert f"((1, 10), {params}, " in text
    assert "<Diagram" in text  # the diagram cell shows SVG (its text form names it)
    assert re.search(r"^\s+11\s+4\s+0\s+1\s+yes", text, re.MULTILINE)  # solve: 227 -> 55 by k=11 s=4 p=0
