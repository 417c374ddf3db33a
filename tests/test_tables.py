"""Stack tables on real terminals of 80 and 120 columns: one line per layer, which columns go, what the notes explain.

Every example is drawn on a pseudo-terminal (``tests.test_terminal.on_terminal``)
and checked against the same table in a pipe, where every column is there and
every row takes one line. The policy the tables follow is the one
:mod:`convcalc.render` documents: ``#`` stays; an empty column goes first; then
jump, RF and MACs, in that order, each only where still needed; the arguments
turn compact (``3→64 k7 s2 p3 -b``) before any column with values is hidden.
"""

from __future__ import annotations

import functools
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from convcalc.cli import main
from convcalc.network import run_stack
from convcalc.render import STACK_EMPTY, STACK_OPTIONAL, _Unbroken, console, show, stack_report
from convcalc.stackfile import load_stack
from tests.test_terminal import _ENV, EXAMPLES, ROOT, on_terminal

COLUMNS = ["#", "layer", "arguments", "output", "params", "MACs", "RF", "jump", "!"]
KEPT = ["#", "layer", "arguments", "output", "params"]
NOT_ONE_LINE = {
    80: {
        "deeplabv3_mobilenet_v3_large",  # Upsample: size=[33,33] mode=bilinear -align_corners, 36 cells of 19 left
        "fasterrcnn_resnet50_fpn_backbone",  # name=Bottleneck width=128 s1 project=0, 38 cells of 20 left
        # the narrowest tables of these need 90 to 97 columns: 6-D shapes such as (1, 14, 2, 14, 2, 192), an
        # argument of 28 cells (kind=relative_position_index); they run past the edge rather than cut them
        "maxvit_t",
        "mvit_v2_s",  # 8-D shapes: (1, 1, 8, 56, 56, 1, 7, 1)
        "swin_t",
        "swin_v2_t",
    },
    # a Buffer's arguments (name=mask kind=shifted_window_mask size=[28,28] ...) take 63 to 82 cells, a
    # Constant's (name=dist_h kind=relative_distance size=[56,7]) 45
    120: {"maxvit_t", "mvit_v2_s", "swin_t", "swin_v2_t"},
}
"""The examples whose rows cannot all take one line at that width, whatever is hidden: every other must."""
NOTES = {
    "RF": "RF: receptive field, input pixels one output unit sees per spatial axis",
    "jump": "jump: input pixels between neighbouring output units",
    "MACs": "MACs: multiply-accumulates of conv, linear and attention layers.",
    "!": "!: the layer leaves input pixels that no window reads",
}


@functools.cache
def piped(name: str) -> str:
    """The table written to a pipe: every column, the arguments in full, each row on one line."""
    env = {key: value for key, value in _ENV.items() if key != "TERM"}
    run = [sys.executable, "-m", "convcalc", "stack", f"examples/{name}.yaml"]
    return subprocess.run(run, capture_output=True, text=True, env=env, cwd=ROOT, check=True).stdout


@functools.cache
def drawn(name: str, columns: int) -> str:
    return on_terminal(["stack", f"examples/{name}.yaml"], columns=columns)


@functools.cache
def nodes(name: str) -> tuple[dict, ...]:
    data = json.loads(CliRunner().invoke(main, ["stack", f"examples/{name}.yaml", "--json"]).stdout)

    def flat(entries: list[dict]) -> list[dict]:
        return [node for entry in entries for node in [entry, *flat([n for b in entry.get("blocks", {}).values()
                                                                      for n in b])]]  # fmt: skip

    return tuple(flat(data["layers"]))


def empty_columns(name: str) -> set[str]:
    """The columns no node has a value in (``-``, a field of no spatial axis, counting as none)."""
    everything = nodes(name)
    empty = {"!"} if not any(any(node["unread"]) for node in everything) else set()
    empty |= {column for column, key in (("RF", "receptive_field"), ("jump", "jump"))
              if not any(node[key] for node in everything)}  # fmt: skip
    return empty


class Drawn:
    """A stack table as printed: the notice above it, its header, its rows and the notes below it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        at = next(number for number, line in enumerate(self.lines) if line.startswith("#"))
        self.header = self.lines[at].split()
        self.rule = self.lines[at + 1]
        end = self.lines.index("", at)
        self.body = self.lines[at + 2 : end]
        self.notice = " ".join(self.lines[: at - 1])  # the line before the header is the title
        self.notes = " ".join(self.lines[end + 1 :])
        found = re.fullmatch(r"hidden to fit \d+ columns: (.*) \(a wider terminal, --markdown or --json shows them\)",
                             self.notice)  # fmt: skip
        assert found or not self.notice, self.notice
        named = found.group(1).split(", ") if found else []
        self.hidden = [column.removesuffix(" (empty)") for column in named]
        self.empty = [column.removesuffix(" (empty)") for column in named if column.endswith(" (empty)")]

    def widths(self) -> dict[str, int]:
        """Each column's width, read from the header (a table drawn with every column: the pipe's)."""
        header = self.lines[self.lines.index(self.rule) - 1]
        starts = {column: header.index(f" {column} ") + 1 for column in ("RF", "jump")}
        params_end = header.index("params") + len("params")
        return {
            "MACs": header.index("MACs") + len("MACs") - params_end - 3,
            "RF": starts["jump"] - 3 - starts["RF"],
            "jump": header.index(" !") + 1 - 3 - starts["jump"],
            "!": 1,
        }

    @property
    def compact(self) -> bool:
        return any("→" in line or "->" in line.replace(" -> ", "") for line in self.body)


CASES = [(name, columns) for name in EXAMPLES for columns in (80, 120)]


@pytest.mark.parametrize(("name", "columns"), CASES)
def test_every_row_takes_one_line_and_no_line_is_too_wide(name: str, columns: int) -> None:
    table, pipe = Drawn(drawn(name, columns)), Drawn(piped(name))
    assert "─" in table.rule, "not drawn for a terminal"
    if name in NOT_ONE_LINE[columns]:  # what is achievable: every optional column hidden, the arguments compact
        assert table.compact and not any(column in table.header for column in STACK_OPTIONAL)
        return
    too_wide = [line for line in table.lines if cell_len(line) > columns]
    assert not too_wide, f"{len(too_wide)} lines wider than {columns} cells, e.g. {too_wide[0]!r}"
    assert len(table.body) == len(pipe.body), "a row took more than one line"
    ids = [line.split()[0] for line in table.body if line[:1].isdigit()]
    assert ids == [line.split()[0] for line in pipe.body if line[:1].isdigit()]
    for row, whole in zip(table.body, pipe.body):
        if whole[:1].isdigit():
            shape = re.search(r"\(\d+(?:, \d+)*\)", whole[len(whole.split()[0]) :]).group()  # the output column
            assert shape in row, (row, whole)


@pytest.mark.parametrize(("name", "columns"), CASES)
def test_hidden_columns_follow_the_policy(name: str, columns: int) -> None:
    table, pipe = Drawn(drawn(name, columns)), Drawn(piped(name))
    assert table.header == [column for column in COLUMNS if column not in table.hidden]
    assert all(column in table.header for column in KEPT)  # '#' above all
    assert len(set(table.hidden)) == len(table.hidden)
    widths = pipe.widths()
    full = cell_len(pipe.rule)  # the table with every column, the arguments in full
    if full <= columns:
        assert not table.hidden and not table.compact
        return
    empty = [column for column in STACK_EMPTY if column in empty_columns(name)]
    assert table.empty == empty and table.hidden[: len(empty)] == empty  # empty columns first, all together
    assert table.compact == (full - sum(widths[column] + 3 for column in empty) > columns)  # only where needed
    rest = table.hidden[len(empty) :]
    assert rest == [column for column in STACK_OPTIONAL if column not in empty][: len(rest)]
    assert "!" not in rest  # a '!' column with a mark in it stays
    if rest and name not in NOT_ONE_LINE[columns]:  # the last column hidden had to go
        assert cell_len(table.rule) + widths[rest[-1]] + 3 > columns


@pytest.mark.parametrize(("name", "columns"), CASES)
def test_the_notes_explain_only_the_columns_shown(name: str, columns: int) -> None:
    table = Drawn(drawn(name, columns))
    for column, note in NOTES.items():
        if column not in table.header:
            assert note not in table.notes, column
        elif column != "!":
            assert note in table.notes, column
    marked = any(" -b" in row for row in table.body)
    assert ("-b: no bias (bias=False)" in table.notes) == (table.compact and marked)
    depthwise = any(re.search(r" dw( |$)", row) for row in table.body)
    assert ("dw: depthwise (groups = in_channels)" in table.notes) == depthwise


@pytest.mark.parametrize(("name", "columns"), CASES)
def test_no_line_breaks_inside_brackets(name: str, columns: int) -> None:
    table = Drawn(drawn(name, columns))
    for line in table.lines:
        assert line.count("[") == line.count("]"), line
    for line in table.body:
        assert line.count("(") == line.count(")"), line


def test_resnet50_at_80_columns() -> None:
    table = Drawn(drawn("resnet50", 80))
    assert table.hidden == ["jump", "RF", "MACs"] and table.empty == []
    assert table.header == ["#", "layer", "arguments", "output", "params", "!"]
    assert re.fullmatch(r"1 +Conv2d +3→64 k7 s2 p3 -b +\(1, 64, 112, 112\) +9\.41 K", table.body[0])
    assert re.fullmatch(r"6 +│ ├─Conv2d +64 k1 -b +\(1, 64, 56, 56\) +4\.10 K", table.body[6])
    assert "hidden to fit 80 columns: jump, RF, MACs" in table.notice


def test_a_wide_terminal_gets_the_arguments_in_full() -> None:
    table = Drawn(drawn("resnet50", 120))
    assert not table.hidden and table.compact  # 122 columns with the arguments in full: compact, every column
    wide = Drawn(on_terminal(["stack", "examples/resnet50.yaml"], columns=130))
    assert not wide.hidden and not wide.compact
    assert "3 -> 64, k=7 s=2 p=3 bias=false" in wide.body[0]
    assert wide.body == Drawn(piped("resnet50")).body


def test_an_output_that_cannot_show_the_arrow_gets_ascii() -> None:
    text = on_terminal(["stack", "examples/resnet50.yaml"], encoding="cp1252")  # rich draws its ASCII box there
    lines = text.splitlines()
    rule = next(number for number, line in enumerate(lines) if line.startswith("----+"))
    body = lines[rule + 1 : lines.index("", rule)]
    assert "→" not in text and all(cell_len(line) <= 80 for line in lines)
    assert re.fullmatch(r"1 +\| Conv2d +\| 3->64 k7 s2 p3 -b +\| \(1, 64, 112, 112\) \| 9\.41 K \|", body[0])
    assert re.fullmatch(r"12 +\| \| \|-Conv2d +\| 64->256 k1 -b +\| .*", body[12])
    assert len(body) == len(Drawn(piped("resnet50")).body)  # one line each


@pytest.mark.parametrize("form", ["--csv", "--markdown", "--json"])
def test_machine_output_keeps_the_full_arguments(form: str) -> None:
    out = CliRunner(env={"COLUMNS": "80"}).invoke(main, ["stack", "examples/resnet50.yaml", form]).stdout
    assert "→" not in out and "k7 s2" not in out
    if form == "--json":
        assert json.loads(out)["layers"][0]["arguments"]["bias"] is False
    else:
        assert "3 -> 64, k=7 s=2 p=3 bias=false" in out


def report(name: str, width: int) -> str:
    """The table of an example drawn in process on a console ``width`` columns wide."""
    stream = io.StringIO()
    output = console(stream)
    output.width = width
    shape, specs = load_stack((ROOT / "examples" / f"{name}.yaml").read_text())
    show(output, stack_report(output, run_stack(shape, specs)))
    return stream.getvalue()


@pytest.mark.parametrize("name", ["lenet5", "resnet18", "unet"])
def test_narrower_terminals_hide_more_never_less(name: str) -> None:
    steps = []
    for width in range(150, 49, -4):
        table = Drawn(report(name, width))
        steps.append((len(table.hidden), table.compact))
        assert cell_len(table.rule) <= width or table.hidden[-len(STACK_OPTIONAL) :] == list(STACK_OPTIONAL), width
    assert steps == sorted(steps), steps  # from every column and the full form, step by step, to the fewest


def test_a_list_is_one_unit_when_a_cell_wraps() -> None:
    cell = "dims=[0, 2, 3, 1] name=x"
    for width, lines in [(18, ["dims=[0, 2, 3, 1]", "name=x"]), (24, [cell])]:  # rich alone: 'dims=[0, 2, 3,'
        table = Table.grid()
        table.add_column(width=width)
        table.add_row(_Unbroken(cell))
        out = io.StringIO()
        Console(file=out, width=80).print(table)
        assert [line.rstrip() for line in out.getvalue().splitlines()] == lines
    assert Measurement.get(Console(), Console().options, _Unbroken(cell)) == Measurement(17, 24)


def test_a_table_too_wide_for_the_terminal_wraps_its_arguments_then_runs_past_the_edge(tmp_path: Path) -> None:
    stack = tmp_path / "net.yaml"
    conv = "{out_channels: 16, kernel_size: 3, stride: 1, padding: 1, dilation: 1, bias: false}"
    permutes = "  - permute: {dims: [0, 2, 3, 1]}\n  - permute: {dims: [0, 3, 1, 2]}\n"
    stack.write_text(f"input: [1, 3, 8, 8]\nlayers:\n{permutes}  - Conv2d: {conv}\n")
    fitted = Drawn(on_terminal(["stack", str(stack)], columns=60))
    assert fitted.hidden == ["!", "jump", "RF", "MACs"] and fitted.empty == ["!"]
    assert [row.split()[2] for row in fitted.body] == ["dims=[0,2,3,1]", "dims=[0,3,1,2]", "3→16"]
    assert all(cell_len(line) <= 60 for line in fitted.lines)
    past = Drawn(on_terminal(["stack", str(stack)], columns=40))
    assert past.header == KEPT and cell_len(past.rule) > 40  # the narrowest it can be: 53 columns
    assert [row.split()[2] for row in past.body[:2]] == ["dims=[0,2,3,1]", "dims=[0,3,1,2]"]  # lists whole
    assert past.body[2].split()[2:7] == ["3→16", "k3", "s1", "p1", "(1,"] and past.body[3].split() == ["d1", "-b"]
