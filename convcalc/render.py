"""Human output, drawn by rich: the tables of one layer, a stack, solve's answers, fit's sizes and --explain.

Everything here formats what the core worked out (:mod:`convcalc.summary` for
a stack's rows and totals); nothing is computed anew. Cells are rich ``Text``
objects, never markup, and user text in them is shown with control characters
escaped, so no name can style or steer the terminal. Machine output
(``--json``, ``--csv``, ``--markdown``, ``-q``, ``--emit``) never comes here,
and this module is imported only to draw a table: rich costs a few tens of
milliseconds to import.

A stack's table fits the terminal in steps, each taken only where the one
before is still too wide, every row on one line wherever it can be:

1. every column, the arguments in full (:func:`~convcalc.text.arguments_text`);
2. an empty column hidden: one where no row has a value (``!`` in most tables);
3. the arguments compact (:func:`~convcalc.text.compact_arguments_text`:
   ``3→64 k7 s2 p3 -b``, ``->`` where the output cannot show the arrow);
4. the columns of :data:`STACK_OPTIONAL` hidden one by one: jump, then RF, then
   MACs;
5. the compact arguments wrap between words, never inside brackets; a table
   that still does not fit runs past the edge rather than cut a value.

``#``, layer, arguments, output, params, ``!`` where a row has one, and
``--verify``'s torch column are never hidden. A line above the table names what
was hidden; the notes below it explain only the columns shown. Written to a pipe
or a file, with no width set, a table takes the width it needs: every column,
the arguments in full, nothing cut.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, JustifyMethod, OverflowMethod, RenderableType
from rich.containers import Lines
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from convcalc.layers import Family
from convcalc.summary import MB, compact, footer, lines, megabytes
from convcalc.text import (
    arguments_text,
    check_text,
    compact_arguments_text,
    field_text,
    printable,
    shape_text,
    size_text,
    stack_verification_text,
    verification_text,
)

if TYPE_CHECKING:
    from convcalc.fitting import Fit
    from convcalc.layers import LayerResult
    from convcalc.network import StackResult
    from convcalc.solver import Answer
    from convcalc.summary import Line
    from convcalc.verify import StackVerification, Verification

__all__ = [
    "MACS_UNIT",
    "console",
    "explain_report",
    "fit_report",
    "isatty",
    "layer_report",
    "show",
    "solve_report",
    "stack_report",
]

MACS_UNIT = "multiply-accumulates for the whole batch; FLOPs = 2 x MACs"
UNCOVERED_NOTE = "uncovered: input pixels at the end of an axis that no window reads (after the last one read)"
UNREAD_NOTE = "unread: input pixels that no window reads, at the ends of the axis and between the taps"
UNKNOWN_NOTE = "?: not worked out (more than 65,536 classes of taps: a kernel and a stride both that large)"
DROPPED_NOTE = "- 1: with ceil_mode, torch drops a last window that would start in the right padding"
STACK_COLUMN_NOTES = {
    "RF": "RF: receptive field, input pixels one output unit sees per spatial axis",
    "jump": "jump: input pixels between neighbouring output units",
}
"""The notes under a stack table on its RF and jump columns, each shown only with its column."""
STACK_MACS_NOTE = "MACs: multiply-accumulates of conv, linear and attention layers."
STACK_NOTES = "A block's row counts everything inside it. K = 10**3, M = 10**6, G = 10**9; MB = 1,000,000 bytes."
UNREAD_MARK_NOTE = "!: the layer leaves input pixels that no window reads (at the end of an axis, or between the taps)"
COMPACT_MARKS = {"-b": "-b: no bias (bias=False)", "dw": "dw: depthwise (groups = in_channels)"}
"""The marks of the compact arguments, each explained under a table that shows it."""
STACK_EMPTY = ("!", "RF", "jump")
"""The columns a stack table hides first, all together, where no row has a value in them (``-``, a field of no
spatial axis, counting as none): ``!`` in most tables, RF and jump in a network without spatial axes."""
STACK_OPTIONAL = ("jump", "RF", "MACs")
"""The columns a stack table hides next, once its arguments are compact, in this order and only as many as needed
to fit the terminal: jump first (the effective stride, what the RF grows by), then the RF, then MACs, the count
people compare networks by, last."""

_UNLIMITED = 10_000
"""The width of a table written to a pipe or a file with no width set: as wide as it needs."""
_DIGITS = re.compile("[0-9]{1,6}")


def console(stream: Any = None) -> Console:
    """The one console tables are drawn on: standard output, as wide as the terminal (or ``$COLUMNS``), as wide as
    a table needs where standard output is no terminal; colours as rich decides them from the terminal and from
    NO_COLOR, FORCE_COLOR and TERM=dumb."""
    environ = dict(os.environ)
    for name in ("COLUMNS", "LINES"):  # rich reads these itself, and fails on '²', which isdigit() accepts
        if name in environ and not _DIGITS.fullmatch(environ[name]):
            del environ[name]
    stream = sys.stdout if stream is None else stream
    width = None
    if "COLUMNS" in environ:
        width = max(int(environ["COLUMNS"]), 20)
    elif not isatty(stream):
        width = _UNLIMITED
    return Console(file=stream, width=width, _environ=environ, highlight=False, emoji=False, soft_wrap=False)


def show(output: Console, *parts: RenderableType) -> None:
    """Print ``parts`` on ``output``, one after another with a blank line between, lines without trailing spaces
    (rich pads every line to the table's width, which a diff or a golden file would carry)."""
    with output.capture() as captured:
        for number, part in enumerate(parts):
            if number:
                output.print()
            _uncut(output, part)
            output.print(part, crop=False)
    output.file.write("\n".join(_trimmed(line) for line in captured.get().split("\n")))
    output.file.flush()


_STYLE = re.compile(r"\x1b\[[0-9;]*m")
"""A style code."""


def _trimmed(line: str) -> str:
    """A line without the spaces at its end, also those among the style codes that close it (rich pads an empty
    bold cell with bold spaces): read backwards from the end, in time linear in the line (a pattern that looks
    ahead of every run of spaces took quadratic time on a name of thousands of characters, folded into lines of
    padding)."""
    end = len(line)
    codes = []
    while end:
        if line[end - 1] == " ":
            end -= 1
            continue
        start = line.rfind("\x1b[", max(0, end - 64), end) if line[end - 1] == "m" else -1
        if start < 0 or not _STYLE.fullmatch(line, start, end):
            break
        codes.append(line[start:end])
        end = start
    return line[:end] + "".join(reversed(codes))


def isatty(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (False for a closed or fake stream)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _text(value: str, style: str = "") -> Text:
    """A cell: plain text (no markup), control characters escaped."""
    return Text(printable(value), style=style)


def _table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[str | Text]], right: Sequence[str] = (),
           wrap: Sequence[str] = (), *, whole: bool = False) -> Table:  # fmt: skip
    """A table in rich's SIMPLE_HEAD look. Only the ``wrap`` columns may break their cells (between words); the
    others are exactly as wide as their widest cell, so that rich never cuts a value short (and never measures
    their cells again, which is most of what drawing a table costs).

    ``whole``: for a table where nothing wraps (in a pipe, or a stack's table that fits the terminal so). The cells
    then come padded and justified here, and rich draws them with no padding of its own: the same table, drawn in
    two thirds of the time. Otherwise a ``wrap`` column's cells never break inside brackets (:class:`_Unbroken`)."""
    heading = None if title is None else _text(title, "bold")
    table = Table(title=heading, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="center",
                  padding=0 if whole else (0, 1))  # fmt: skip
    cells: list[list[str | Text]] = [[cell if isinstance(cell, Text) else printable(cell) for cell in row]
                                     for row in rows]  # fmt: skip
    for number, column in enumerate(columns):
        widths = [max(map(cell_len, (row[number] if isinstance(row[number], str) else row[number].plain).split("\n")))
                  for row in cells]  # fmt: skip
        widest = max([cell_len(column), *widths])
        justify: Literal["left", "right"] = "right" if column in right else "left"
        header: str | Text = column
        if whole:  # rich's padding, one space inside each column edge but the table's own, done here
            before, after = " " * (number > 0), " " * (number < len(columns) - 1)
            for row, width in zip(cells, widths):
                row[number] = _padded(row[number], widest - width, justify, before, after)
            header = Text(_padded(column, widest - cell_len(column), justify, before, after))
            widest += len(before) + len(after)
        table.add_column(
            header,
            justify="left" if whole else justify,
            overflow="fold",
            no_wrap=whole or column not in wrap,
            width=widest if whole or column not in wrap else None,  # fixed: rich measures no cell of it again
            header_style="bold",
            style="bold" if column == "output" else "",
        )
    wrapping = [not whole and column in wrap for column in columns]
    for row in cells:
        table.add_row(*((_Unbroken(cell) if wraps else Text(cell)) if isinstance(cell, str) else cell
                        for cell, wraps in zip(row, wrapping)))  # fmt: skip
    return table


class _Unbroken(Text):
    """A cell that wraps between words as rich's ``Text`` does, but never inside brackets: a list such as
    ``[0, 2, 1]`` or a shape such as ``(1, 64, 56, 56)`` is one unit, which moves to the next line whole."""

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        units = _units(self.plain)
        return Measurement(max(cell_len(unit.rstrip(" ")) for unit in units), cell_len(self.plain))

    def wrap(
        self,
        console: Console,
        width: int,
        *,
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        tab_size: int = 8,
        no_wrap: bool | None = None,
    ) -> Lines:
        breaks = None if no_wrap or self.no_wrap or "\n" in self.plain else _breaks(_units(self.plain), width)
        if breaks is None:  # a unit wider than the column: rich folds it (a table that fits never gets here)
            return super().wrap(console, width, justify=justify, overflow=overflow, tab_size=tab_size, no_wrap=no_wrap)
        lines = self.divide(breaks)
        for line in lines:
            line.rstrip_end(width)
        justify = justify or self.justify
        if justify:
            lines.justify(console, width, justify=justify, overflow=overflow or self.overflow or "fold")
        return lines


def _units(text: str) -> list[str]:
    """``text`` cut after each run of spaces that stands outside brackets: the pieces a line may break between,
    each with the spaces after it."""
    units = []
    start = depth = 0
    spaced = False
    for at, char in enumerate(text):
        if char == " " and not depth:
            spaced = at > start
            continue
        if spaced:
            units.append(text[start:at])
            start, spaced = at, False
        if char in "([":
            depth += 1
        elif char in ")]" and depth:
            depth -= 1
    units.append(text[start:])
    return units


def _breaks(units: list[str], width: int) -> list[int] | None:
    """Where lines of at most ``width`` cells break ``units`` (offsets into their text), filling each line as rich
    does; None where one unit is wider than ``width``."""
    breaks = []
    offset = used = 0
    for unit in units:
        length = cell_len(unit.rstrip(" "))
        if length > width:
            return None
        if used and used + length > width:
            breaks.append(offset)
            used = 0
        used += cell_len(unit)
        offset += len(unit)
    return breaks


def _padded(text: str | Text, fill: int, justify: str, before: str, after: str) -> str | Text:
    """``text`` justified in ``fill`` more cells, with the padding rich would add around it."""
    left, right = (before + " " * fill, after) if justify == "right" else (before, " " * fill + after)
    if isinstance(text, str):
        return left + text + right
    return Text(left) + text + Text(right) if left or right else text


def _narrowest(output: Console, table: Table) -> int:
    """The fewest columns ``table`` takes uncut (``Console.measure`` would stop at the terminal's width)."""
    return Measurement.get(output, output.options.update_width(_UNLIMITED), table).minimum


def _fits(output: Console, table: Table) -> bool:
    """Whether ``table`` fits the output uncut. Measuring a table costs as much as drawing it, so a pipe (which
    takes any width) is not measured."""
    return output.width >= _UNLIMITED or _narrowest(output, table) <= output.width


def _uncut(output: Console, part: RenderableType) -> None:
    """Where a table cannot fit the terminal even with its wrapping columns at their narrowest, it runs past the
    edge rather than have rich cut its values short."""
    if isinstance(part, Group):
        for inner in part.renderables:
            _uncut(output, inner)
    elif isinstance(part, Table) and part.box is not None and part.width is None and not _fits(output, part):
        part.width = _narrowest(output, part)


def _grid(pairs: Sequence[tuple[str, str]]) -> Table:
    """Names beside their values, the values wrapping under one another."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in pairs:
        grid.add_row(_text(name), _text(value))
    return grid


def _count(count: int) -> str:
    """A count in full, and short where that differs: ``34,944 (34.9 K)``, ``0``."""
    short = compact(count)
    return f"{count:,}" if short == str(count) else f"{count:,} ({short})"


def _note(text: str, style: str = "dim") -> Text:
    return _text(text, style)


# --- one layer ------------------------------------------------------------------------------------------------


def layer_report(output: Console, result: LayerResult, verification: Verification | None = None) -> Group:
    """The table of one layer, axis by axis, with its totals and torch's verdict below. The formula is a column
    where the table fits; on a narrower terminal the formulas follow the table, one line per axis."""
    transposed = result.family is Family.CONV_TRANSPOSE
    dilated = "dilation" in result.parameters  # AvgPool has none
    columns = ["axis", "input", "kernel_size", "stride", "padding"]
    columns += ["dilation"] if dilated else []
    columns += ["output_padding"] if transposed else []
    columns += ["output", "formula"]
    columns += [] if transposed else ["uncovered"]
    inside = not transposed and any(axis.unread != axis.uncovered for axis in result.axes)
    columns += ["unread"] if inside else []
    rows = []
    for axis in result.axes:
        before, after = axis.padding
        row = [axis.name, f"{axis.input:,}", str(axis.kernel_size), str(axis.stride)]
        row += [str(before) if before == after else f"{before}+{after}"]
        row += [str(axis.dilation)] if dilated else []
        row += [str(axis.output_padding)] if transposed else []
        row += [f"{axis.output:,}", axis.formula]
        row += [] if transposed else [_figure(axis.uncovered)]
        row += [_figure(axis.unread)] if inside else []
        rows.append(row)
    title = f"{result.layer}: {size_text(result.input)} -> {size_text(result.output)}"
    right = [column for column in columns if column not in ("axis", "formula")]
    table = _table(title, columns, rows, right)
    parts: list[RenderableType] = [table]
    if not _fits(output, table):  # the formula moves under the table
        keep = [i for i, column in enumerate(columns) if column != "formula"]
        table = _table(title, [columns[i] for i in keep], [[row[i] for i in keep] for row in rows], right)
        formulas = [axis.formula for axis in result.axes]
        if len(set(formulas)) == 1:
            below = [f"{', '.join(axis.name for axis in result.axes)}: {formulas[0]}"]
        else:
            below = [f"{axis.name}: {formula}" for axis, formula in zip(result.axes, formulas)]
        parts = [table, *(_text(line) for line in below)]
    if result.output_shape is not None:
        totals = [
            ("shape", f"{shape_text(result.input_shape or ())} -> {shape_text(result.output_shape)}"),
            ("params", _count(result.params or 0)),
        ]
        if not result.family.pool:  # a pool has no weights: no multiply-accumulates to count
            totals.append(("MACs", f"{_count(result.macs or 0)}, {MACS_UNIT}, bias not counted"))
        parts += [Text(""), _grid(totals)]
    if any(axis.uncovered for axis in result.axes):
        parts.append(_note(UNCOVERED_NOTE))
    if inside:
        parts.append(_note(UNREAD_NOTE))
    if not transposed and any(axis.unread is None for axis in result.axes):
        parts.append(_note(UNKNOWN_NOTE))
    if any(axis.dropped_window for axis in result.axes):
        parts.append(_note(DROPPED_NOTE))
    if verification is not None:
        parts.append(verdict(verification_text(verification), verification.agrees))
    return Group(*parts)


def _figure(count: int | None) -> str:
    return "?" if count is None else f"{count:,}"


def verdict(text: str, agrees: bool) -> Text:
    """torch's verdict, green where it agrees and red where not."""
    return _text(text, "green" if agrees else "bold red")


# --- a stack --------------------------------------------------------------------------------------------------


_GUIDES = {False: ("│ ", "├─", "└─"), True: ("| ", "|-", "`-")}
"""Tree guides, as torchinfo draws them, and their ASCII stand-ins for an output that cannot show box drawing."""


def _guides(line: Line, ascii_only: bool) -> str:
    """The tree guides before a row's name: ``│ ├─``."""
    if len(line.last) < 2:
        return ""
    through, branch, end = _GUIDES[ascii_only]
    return "".join("  " if last else through for last in line.last[1:-1]) + (end if line.last[-1] else branch)


def _layer_name(line: Line, ascii_only: bool) -> Text:
    if line.branch is not None:
        return Text(_guides(line, ascii_only)) + _text(line.branch, "italic")
    name = line.node.type + (f" ({line.hidden} inside)" if line.hidden else "")
    return Text(_guides(line, ascii_only) + name)


def stack_report(
    output: Console,
    result: StackResult,
    dtype: str = "float32",
    verification: StackVerification | None = None,
    depth: int | None = None,
) -> Group:
    """The stack's table, one row per node (to ``depth``), with the totals below and torch's verdict per node."""
    rows = lines(result, depth)
    checks = {} if verification is None else {id(check.node): check for check in verification.layers}
    columns = ["#", "layer", "arguments", "output", "params", "MACs", "RF", "jump", "!"]
    columns += ["torch"] if verification else []
    cells: list[list[str | Text]] = []
    for line in rows:
        node = line.node
        if line.branch is not None:
            cells.append([Text(""), _layer_name(line, output.options.ascii_only), *[Text("")] * (len(columns) - 2)])
            continue
        row = [
            str(node.id),
            _layer_name(line, output.options.ascii_only),
            printable(arguments_text(node.arguments, node.given, node.type)),
            shape_text(node.output),
            compact(line.params),
            compact(line.macs),
            field_text(node.receptive_field),
            field_text(node.jump),
            "!" if any(node.unread) else "",
        ]
        if verification is not None:
            check = checks.get(id(node))
            row.append("-" if check is None else check_text(check))
        cells.append(row)
    title = f"{shape_text(result.input)} -> {shape_text(result.output)}"
    layout = _Layout(shown=columns, hidden=(), empty=(), compact=None, wrap=False)
    if output.width < _UNLIMITED:  # a terminal: fit it; a pipe or a file takes every column, the arguments in full
        layout = _fit_stack(output.width, columns, cells, rows, output.options.ascii_only)
    if layout.compact is not None:
        place = columns.index("arguments")
        for row, text in zip(cells, layout.compact):
            row[place] = text
    keep = [columns.index(column) for column in layout.shown]
    wrap = ("arguments", "torch") if layout.wrap else ("torch",)
    whole = output.width >= _UNLIMITED or not (layout.wrap or verification)  # nothing wraps: cells padded here
    table = _table(title, layout.shown, [[row[i] for i in keep] for row in cells], ("params", "MACs"), wrap,
                   whole=whole)  # fmt: skip
    parts: list[RenderableType] = []
    if layout.hidden:
        named = ", ".join(f"{column} (empty)" if column in layout.empty else column for column in layout.hidden)
        parts.append(_note(f"hidden to fit {output.width} columns: {named} (a wider terminal, --markdown or --json "
                           "shows them)"))  # fmt: skip
    parts += [table, Text("")]
    totals = footer(result, dtype)
    params = f"{_count(totals.params)}: {totals.trainable:,} trainable, "
    params += f"{totals.non_trainable:,} non-trainable"
    if totals.saved_bytes is None:
        saved = f"- ({totals.saved_problem})"
        training = "-"
    else:
        saved = f"{megabytes(totals.saved_bytes)} MB (autograd keeps it for backward)"
        training = f"{megabytes(totals.total_bytes or 0)} MB (input, saved, params, buffers, gradients)"
    parts.append(
        _grid(
            [
                ("params", params),
                ("buffers", f"{totals.buffers:,} (non-trainable state, e.g. BatchNorm's running statistics)"),
                ("MACs", f"{_count(totals.macs)}, {MACS_UNIT}"),
                ("input size", f"{megabytes(totals.input_bytes)} MB ({dtype})"),
                ("forward pass", f"{megabytes(totals.forward_bytes)} MB (every tensor one pass makes)"),
                ("saved for backward", saved),
                ("params size", f"{megabytes(totals.parameter_bytes)} MB (params and buffers)"),
                ("gradients", f"{megabytes(totals.gradient_bytes)} MB (one per parameter)"),
                ("Adam state", f"{megabytes(totals.optimizer_bytes)} MB (two per parameter; SGD: none)"),
                ("training step", training),
            ]
        )
    )
    fields = "; ".join(STACK_COLUMN_NOTES[column] for column in ("RF", "jump") if column in layout.shown)
    macs = STACK_MACS_NOTE if "MACs" in layout.shown else ""
    parts.append(_note(" ".join(note for note in (fields and fields + ".", macs, STACK_NOTES) if note)))
    if "!" in layout.shown and any(any(line.node.unread) for line in rows):
        parts.append(_note(UNREAD_MARK_NOTE))
    if layout.compact is not None:
        shown_marks = {word for text in layout.compact for word in text.split(" ") if word in COMPACT_MARKS}
        if shown_marks:
            parts.append(_note("; ".join(note for mark, note in COMPACT_MARKS.items() if mark in shown_marks)))
    if verification is not None:
        parts.append(verdict(stack_verification_text(verification), verification.agrees))
    assert MB == 1_000_000  # the unit STACK_NOTES names
    return Group(*parts)


class _Layout(NamedTuple):
    """How a stack table fits a terminal."""

    shown: Sequence[str]
    hidden: Sequence[str]
    """In the order they were hidden."""
    empty: Sequence[str]
    """The hidden columns that no row has a value in."""
    compact: list[str] | None
    """The compact arguments per row, where the table shows those."""
    wrap: bool
    """Whether the arguments wrap: the table does not fit even with every optional column hidden."""


def _fit_stack(width: int, columns: list[str], cells: list[list[str | Text]], rows: list[Line], ascii_only: bool
               ) -> _Layout:  # fmt: skip
    """The first step of the module's fitting that makes the table ``width`` cells wide or less, all columns but
    ``torch`` on one line; the last one, with its arguments wrapping, where none does."""
    widths = _column_widths(columns, cells, narrowest="torch")
    empty = [column for column in STACK_EMPTY if all(_plain(row[columns.index(column)]) in ("", "-") for row in cells)]
    for hide in ([], empty):
        shown = [column for column in columns if column not in hide]
        if _table_width(shown, widths) <= width:
            return _Layout(shown=shown, hidden=hide, empty=hide, compact=None, wrap=False)
    compacted = ["" if line.branch is not None else
                 printable(compact_arguments_text(line.node.arguments, line.node.given, line.node.type,
                                                  ascii_only=ascii_only))
                 for line in rows]  # fmt: skip
    widths["arguments"] = max([cell_len("arguments"), *map(cell_len, compacted)])
    hide = list(empty)
    for column in (None, *STACK_OPTIONAL):
        if column is not None and column not in hide:
            hide.append(column)
        shown = [column for column in columns if column not in hide]
        if _table_width(shown, widths) <= width:
            return _Layout(shown=shown, hidden=hide, empty=empty, compact=compacted, wrap=False)
    return _Layout(shown=shown, hidden=hide, empty=empty, compact=compacted, wrap=True)


def _plain(cell: str | Text) -> str:
    return cell if isinstance(cell, str) else cell.plain


def _column_widths(columns: list[str], cells: list[list[str | Text]], narrowest: str = "") -> dict[str, int]:
    """Each column's width with every cell on one line (cells as they are drawn: control characters escaped); the
    ``narrowest`` column's, with its cells wrapped as narrow as :class:`_Unbroken` wraps them."""
    widths = {}
    for number, column in enumerate(columns):
        texts = [_plain(row[number]) for row in cells]
        if column == narrowest:
            widest = max((cell_len(unit.rstrip(" ")) for text in texts for unit in _units(text)), default=0)
        else:
            widest = max(map(cell_len, texts), default=0)
        widths[column] = max(cell_len(column), widest)
    return widths


def _table_width(shown: Sequence[str], widths: dict[str, int]) -> int:
    """The width of a table of ``shown`` columns: rich puts a space of padding on either side of each column
    border, and a space for the border itself (SIMPLE_HEAD)."""
    return sum(widths[column] for column in shown) + 3 * (len(shown) - 1)


# --- solve, fit, explain --------------------------------------------------------------------------------------


def solve_report(input_size: tuple[int, ...], output_size: tuple[int, ...], family: Family, answers: list[Answer],
                 limit: int) -> Group:  # fmt: skip
    """The answers of ``convcalc solve``, best first, with whether each covers every pixel and is 'same'."""
    columns = ["kernel_size", "stride", "padding", "dilation"]
    columns += ["output_padding"] if family is Family.CONV_TRANSPOSE else []
    columns += ["ceil_mode"] if family.pool else []
    columns += ["covers all", "same"] if family is Family.CONV else ["covers all"]
    rows = []
    for answer in answers[:limit]:
        row = [str(answer.kernel_size), str(answer.stride), str(answer.padding), str(answer.dilation)]
        row += [str(answer.output_padding)] if family is Family.CONV_TRANSPOSE else []
        row += ["yes" if answer.ceil_mode else "no"] if family.pool else []
        row += ["yes" if answer.covers_all else "no"]
        row += ["yes" if answer.same else "no"] if family is Family.CONV else []
        rows.append(row)
    title = f"{family.prefix}: {size_text(input_size)} -> {size_text(output_size)}"
    parts: list[RenderableType] = [_table(title, columns, rows, right=columns)]
    more = len(answers) - limit
    if more > 0:
        parts.append(_note(f"{more} more (--limit {len(answers)} shows them all)"))
    if family is Family.CONV_TRANSPOSE:
        note = "covers all: every output pixel receives some input (no holes between the kernel's copies)"
    else:
        note = "covers all: every input pixel is read by some window (no gaps, nothing lost to the floor)"
    if family is Family.CONV:
        note += "; same: the padding that torch's padding='same' works out to"
    parts.append(_note(note))
    return Group(*parts)


def fit_report(found: Fit, axes: int, compacted: tuple[str, str]) -> Group:
    """``convcalc fit``'s answer: the smallest input, and the sizes in the range that work and that read every
    pixel (``compacted``: both as runs, ``32:1024:16``)."""

    def square(n: int) -> str:
        return "x".join([str(n)] * axes)

    smallest = square(found.smallest) if found.smallest else f"none up to {found.high}"
    rows = [
        ["smallest input", smallest, ""],
        ["valid", compacted[0] or "none", str(len(found.valid))],
        ["no pixel left unread", compacted[1] or "none", str(len(found.lossless))],
    ]
    table = _table(f"input sizes from {found.low} to {found.high}", ["", "sizes", "count"], rows, ["count"], ["sizes"])
    note = "valid: every layer and join takes its input; no pixel left unread: no window leaves input pixels out"
    return Group(table, _note(note))


def explain_report(title: str, blocks: Sequence[tuple[str, Sequence[str]]]) -> Group:
    """``--explain``: a sentence, then for each group of axes that work out alike, the arithmetic, line by line."""
    rows = [[names, Text("\n").join(_text(step) for step in steps)] for names, steps in blocks]
    return Group(_text(title, "bold"), _table(None, ["axes", "arithmetic"], rows, wrap=["arithmetic"]))
