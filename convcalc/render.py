"""Human output, drawn by rich: the tables of one layer, a stack, solve's answers, fit's sizes and --explain.

Everything here formats what the core worked out (:mod:`convcalc.summary` for
a stack's rows and totals); nothing is computed anew. Cells are rich ``Text``
objects, never markup, and user text in them is shown with control characters
escaped, so no name can style or steer the terminal. Machine output
(``--json``, ``--csv``, ``--markdown``, ``-q``, ``--emit``) never comes here,
and this module is imported only to draw a table: rich costs a few tens of
milliseconds to import.

Where a stack's table is wider than the terminal, the columns jump, RF, ``!``,
``#`` and MACs are hidden, in that order and only as many as needed, and a line
above the table says so; the arguments wrap between words. Written to a pipe or
a file, with no width set, a table takes the width it needs: nothing is cut.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from convcalc.layers import Family
from convcalc.summary import MB, compact, footer, lines, megabytes
from convcalc.text import (
    arguments_text,
    check_text,
    field_text,
    printable,
    shape_text,
    size_text,
    stack_verification_text,
    verification_text,
)

if TYPE_CHECKING:
    from convcalc.fit import Fit
    from convcalc.layers import LayerResult
    from convcalc.solve import Answer
    from convcalc.stack import StackResult
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
STACK_NOTES = (
    "RF: receptive field, input pixels one output unit sees per spatial axis; jump: input pixels between "
    "neighbouring output units. MACs: multiply-accumulates of conv, linear and attention layers. A block's row "
    "counts everything inside it. K = 10**3, "
    "M = 10**6, G = 10**9; MB = 1,000,000 bytes."
)
STACK_OPTIONAL = ["jump", "RF", "!", "#", "MACs"]
"""The columns a stack table hides, in this order and only as many as needed, to fit the terminal."""

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


_CLOSING = re.compile(r"(?:\x1b\[[0-9;]*m)*$")
"""The style codes that close a line."""


def _trimmed(line: str) -> str:
    """A line without the spaces at its end, also those before the style codes that close it: in time linear in
    the line (a pattern that looks ahead of every run of spaces took quadratic time on a name of thousands of
    characters, folded into lines of padding)."""
    closing = _CLOSING.search(line)
    start = closing.start() if closing else len(line)
    return line[:start].rstrip(" ") + line[start:]


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
           wrap: Sequence[str] = (), *, unlimited: bool = False) -> Table:  # fmt: skip
    """A table in rich's SIMPLE_HEAD look. Only the ``wrap`` columns may break their cells (between words); the
    others are exactly as wide as their widest cell, so that rich never cuts a value short (and never measures
    their cells again, which is most of what drawing a table costs).

    ``unlimited``: for an output of any width, where nothing wraps. The cells then come padded and justified
    here, and rich draws them with no padding of its own: the same table, drawn in two thirds of the time."""
    heading = None if title is None else _text(title, "bold")
    table = Table(title=heading, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="center",
                  padding=0 if unlimited else (0, 1))  # fmt: skip
    cells: list[list[str | Text]] = [[cell if isinstance(cell, Text) else printable(cell) for cell in row]
                                     for row in rows]  # fmt: skip
    for number, column in enumerate(columns):
        widths = [max(map(cell_len, (row[number] if isinstance(row[number], str) else row[number].plain).split("\n")))
                  for row in cells]  # fmt: skip
        widest = max([cell_len(column), *widths])
        justify: Literal["left", "right"] = "right" if column in right else "left"
        header: str | Text = column
        if unlimited:  # rich's padding, one space inside each column edge but the table's own, done here
            before, after = " " * (number > 0), " " * (number < len(columns) - 1)
            for row, width in zip(cells, widths):
                row[number] = _padded(row[number], widest - width, justify, before, after)
            header = Text(_padded(column, widest - cell_len(column), justify, before, after))
            widest += len(before) + len(after)
        table.add_column(
            header,
            justify="left" if unlimited else justify,
            overflow="fold",
            no_wrap=unlimited or column not in wrap,
            width=widest if unlimited or column not in wrap else None,  # fixed: rich measures no cell of it again
            header_style="bold",
            style="bold" if column == "output" else "",
        )
    for row in cells:
        table.add_row(*(Text(cell) if isinstance(cell, str) else cell for cell in row))
    return table


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
            arguments_text(node.arguments, node.given, node.type),
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
    shown = list(columns)
    hidden: list[str] = []
    while True:
        table = _stack_table(output, title, columns, shown, cells)
        if _fits(output, table) or not any(column in shown for column in STACK_OPTIONAL):
            break
        column = next(column for column in STACK_OPTIONAL if column in shown)
        shown.remove(column)
        hidden.append(column)
    parts: list[RenderableType] = []
    if hidden:
        parts.append(_note(f"hidden to fit {output.width} columns: {', '.join(hidden)} (a wider terminal, "
                           "--markdown or --json shows them)"))  # fmt: skip
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
    parts.append(_note(STACK_NOTES))
    if any(any(line.node.unread) for line in rows):
        parts.append(_note("!: the layer leaves input pixels that no window reads (at the end of an axis, or between "
                           "the taps)"))  # fmt: skip
    if verification is not None:
        parts.append(verdict(stack_verification_text(verification), verification.agrees))
    assert MB == 1_000_000  # the unit STACK_NOTES names
    return Group(*parts)


def _stack_table(output: Console, title: str, columns: list[str], shown: list[str], cells: list[list[str | Text]]
                 ) -> Table:  # fmt: skip
    keep = [columns.index(column) for column in shown]
    return _table(title, shown, [[row[i] for i in keep] for row in cells], ("params", "MACs"), ("arguments", "torch"),
                  unlimited=output.width >= _UNLIMITED)  # fmt: skip


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
