"""convcalc's own table layout: nothing is ever cut, and tables fit the terminal where they can."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st

from convcalc.cli import main
from convcalc.table import grid, table, wrap

ROOT = Path(__file__).parent.parent
VGG = str(ROOT / "examples" / "vgg16.yaml")
ANSI = re.compile(r"\x1b\[[0-9;]*m")

words = st.text(alphabet="abcxyz0123456789,()->=", min_size=1, max_size=12)
phrases = st.lists(words, min_size=1, max_size=6).map(" ".join)


@given(st.lists(phrases, min_size=1, max_size=4).map("\n".join), st.integers(1, 40))
def test_wrap_keeps_every_word_whole_and_in_order(text: str, width: int) -> None:
    lines = wrap(text, width)
    assert len(lines) >= text.count("\n") + 1
    assert " ".join(" ".join(lines).split()) == " ".join(text.split())
    for line in lines:  # within the width, or one word too long to fit any line
        assert len(line) <= width or len(line.split()) == 1
    assert all(word in text.split() for line in lines for word in line.split())


@given(
    headers=st.lists(words, min_size=1, max_size=6, unique=True),
    data=st.data(),
    width=st.integers(10, 120) | st.none(),
)
def test_table_never_cuts_a_value_and_fits_when_it_can(headers: list[str], data: st.DataObject, width: int) -> None:
    drawn = data.draw(st.lists(st.lists(phrases, min_size=len(headers), max_size=len(headers)), max_size=5))
    # every cell starts with its own tag, so that finding a cell's text cannot mean finding another's
    rows = [[f"r{r}c{c}:{cell}" for c, cell in enumerate(row)] for r, row in enumerate(drawn)]
    wrapping = data.draw(st.lists(st.sampled_from(headers), unique=True))
    optional = data.draw(st.lists(st.sampled_from(headers), unique=True))
    lines, hidden = table("title", headers, rows, width=width, wrapping=wrapping, optional=optional)
    plain = [ANSI.sub("", line) for line in lines]
    shown = [i for i, name in enumerate(headers) if name not in hidden]
    # only optional columns are hidden, in the order given, and only with a width to fit
    assert hidden == optional[: len(hidden)]
    assert width is not None or not hidden
    assert shown, "a table keeps at least one column"
    body = "\n".join(plain[4:])  # after title, blank line, header and rule
    for row in rows:
        for i in shown:
            if headers[i] in wrapping:  # its words stay whole, perhaps over several lines
                assert all(word in body for word in row[i].split())
            else:
                assert row[i] in body, f"{row[i]!r} was cut"
    for name in hidden:  # and a hidden column's cells are nowhere
        assert not any(f"c{headers.index(name)}:" in line for line in plain[4:])
    if width is not None:

        def narrowest(columns: list[int]) -> int:
            cells = [[headers[i], *(row[i] for row in rows)] for i in columns]
            return (
                sum(
                    max(len(word) for cell in column for word in cell.split())
                    if headers[i] in wrapping
                    else max(len(cell) for cell in column)
                    for i, column in zip(columns, cells)
                )
                + 3 * (len(columns) - 1)
                + 2
            )

        if narrowest(shown) <= width:
            assert max(len(line) for line in plain) <= width
        if hidden:  # the last column hidden was needed to fit
            assert narrowest(sorted([*shown, headers.index(hidden[-1])])) > width


def test_grid_wraps_values_under_one_another() -> None:
    lines = [ANSI.sub("", line) for line in grid([("params", "one two three four"), ("MACs", "5")], width=16)]
    assert lines == ["params  one two", "        three", "        four", "MACs    5"]


def run(*args: str, env: dict[str, str | None], color: bool = False) -> Result:
    return CliRunner(env=env).invoke(main, list(args), color=color)


def test_narrow_terminal_hides_columns_in_order_and_cuts_no_shape() -> None:
    result = run("stack", VGG, env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.lstrip().startswith("#"))
    assert header.split() == ["#", "layer", "arguments", "output", "params", "!"]
    assert "hidden to fit 80 columns: jump, RF, MACs" in " ".join(result.stdout.split())
    for shape in ("(1, 64, 224, 224)", "(1, 512, 7, 7)", "(1, 1000)"):
        assert shape in result.stdout
    assert "\u2026" not in result.stdout  # no ellipsis anywhere


def test_wide_terminal_shows_every_column_without_a_note() -> None:
    result = run("stack", VGG, env={"COLUMNS": "200"})
    header = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("#"))
    assert header.split() == ["#", "layer", "arguments", "output", "params", "MACs", "RF", "jump", "!"]
    assert "hidden" not in result.stdout


def test_output_that_is_not_a_terminal_has_no_width_limit() -> None:
    wide = run("stack", VGG, env={"COLUMNS": "200"}).stdout
    assert run("stack", VGG, env={"COLUMNS": None}).stdout.splitlines()[:45] == wide.splitlines()[:45]


def test_styles_only_where_asked_for() -> None:
    args = ("conv", "227", "--k", "11", "--s", "4")
    assert "\x1b[1m" in run(*args, env={"COLUMNS": "120"}, color=True).stdout  # a terminal
    assert "\x1b[" not in run(*args, env={"COLUMNS": "120"}).stdout  # a pipe
    assert "\x1b[" not in run(*args, env={"COLUMNS": "120", "NO_COLOR": "1"}, color=True).stdout
    assert "\x1b[" not in run(*args, env={"COLUMNS": "120", "TERM": "dumb"}, color=True).stdout
    assert "\x1b[1m" in run(*args, env={"COLUMNS": "120", "FORCE_COLOR": "1"}).stdout
    styled = run(*args, env={"COLUMNS": "120"}, color=True).stdout
    assert ANSI.sub("", styled) == run(*args, env={"COLUMNS": "120"}).stdout
