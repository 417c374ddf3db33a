"""Human output: the rich table for one layer, and the plain lines around it.

Everything here formats numbers the core already computed; nothing is worked
out anew. Machine output (``--json``, ``--quiet``) does not come through here.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from convcalc.layers import LayerResult
from convcalc.solve import Answer
from convcalc.stack import StackResult
from convcalc.text import (
    STACK_COLUMNS,
    bytes_text,
    check_text,
    shape_text,
    size_text,
    stack_cells,
    stack_verification_text,
    verification_text,
)
from convcalc.verify import StackVerification, Verification

__all__ = [
    "DROPPED_NOTE",
    "MACS_UNIT",
    "STACK_NOTES",
    "UNCOVERED_NOTE",
    "layer_report",
    "solve_report",
    "stack_report",
]

MACS_UNIT = "multiply-accumulates for the whole batch, bias not counted; FLOPs = 2 x MACs"
UNCOVERED_NOTE = "uncovered: input pixels at the end of an axis that no window reaches (the floor drops them)"
DROPPED_NOTE = "- 1: with ceil_mode, torch drops a last window that would start in the right padding"


def _table(title: str) -> Table:
    """The one table style convcalc draws: a bold title, a rule under the header, no outer border."""
    return Table(title=title, box=box.SIMPLE_HEAD, title_style="bold", pad_edge=False)


def layer_report(result: LayerResult, verification: Verification | None = None, width: int = 80) -> RenderableType:
    """The table of one layer, axis by axis, with its totals and torch's verdict below.

    The formula is a column where the table fits in ``width``; on a narrower
    terminal the formulas follow the table, one line per axis.
    """
    transposed = result.layer.startswith("ConvTranspose")
    dilated = "dilation" in result.parameters  # AvgPool has none
    columns = ["axis", "input", "kernel_size", "stride", "padding"]
    columns += ["dilation"] if dilated else []
    columns += ["output_padding"] if transposed else []
    columns += ["output", "formula"]
    columns += [] if transposed else ["uncovered"]
    rows = []
    for axis in result.axes:
        before, after = axis.padding
        row = [axis.name, f"{axis.input:,}", str(axis.kernel_size), str(axis.stride)]
        row += [str(before) if before == after else f"{before}+{after}"]
        row += [str(axis.dilation)] if dilated else []
        row += [str(axis.output_padding)] if transposed else []
        row += [f"{axis.output:,}", axis.formula]
        row += [] if transposed else [str(axis.uncovered)]
        rows.append(row)
    needed = sum(max(len(cell) for cell in column) + 3 for column in zip(columns, *rows)) - 1
    formula_lines = needed > width
    if formula_lines:
        at = columns.index("formula")
        columns.pop(at)
        formulas = [row.pop(at) for row in rows]

    table = _table(f"{result.layer}: {size_text(result.input)} -> {size_text(result.output)}")
    for column in columns:
        table.add_column(
            column,
            justify="left" if column in ("axis", "formula") else "right",
            style="bold" if column == "output" else None,
            no_wrap=True,
        )
    for row in rows:
        table.add_row(*row)

    parts: list[RenderableType] = [table]
    if formula_lines:
        if len(set(formulas)) == 1:
            lines = [f"{', '.join(axis.name for axis in result.axes)}: {formulas[0]}"]
        else:
            lines = [f"{axis.name}: {text}" for axis, text in zip(result.axes, formulas)]
        parts.append(Text("\n".join(lines)))
    if result.output_shape is not None:
        totals = Table.grid(padding=(0, 2))
        totals.add_column(style="bold")
        totals.add_column()
        totals.add_row("shape", f"{shape_text(result.input_shape or ())} -> {shape_text(result.output_shape)}")
        totals.add_row("params", f"{result.params:,}")
        totals.add_row("MACs", f"{result.macs:,}  ({MACS_UNIT})")
        parts.append(totals)
    if any(axis.uncovered for axis in result.axes):
        parts.append(Text(UNCOVERED_NOTE, style="dim"))
    if any(axis.dropped_window for axis in result.axes):
        parts.append(Text(DROPPED_NOTE, style="dim"))
    if verification is not None:
        parts.append(Text(verification_text(verification), style="green" if verification.agrees else "red"))
    return Group(*parts)


STACK_NOTES = (
    "RF: receptive field, input pixels one output unit sees per spatial axis; jump: input pixels between "
    "neighbouring output units. MACs: multiply-accumulates, conv and linear layers only."
)


def stack_report(
    result: StackResult, dtype: str = "float32", verification: StackVerification | None = None
) -> RenderableType:
    """The stack table, one row per layer that ran, with the totals below (and torch's verdict per layer)."""
    checks = {} if verification is None else {check.index: check for check in verification.layers}
    table = _table(f"{shape_text(result.input)} -> {shape_text(result.output)}")
    for column in STACK_COLUMNS + (["torch"] if verification else []):
        numeric = column in ("params", "MACs")
        table.add_column(
            column,
            justify="right" if numeric else "left",
            style="bold" if column == "output" else None,
            no_wrap=column not in ("arguments", "torch"),  # a shape or a count must never break
        )
    for row in result.rows:
        verdict = [check_text(checks[row.index]) if row.index in checks else "-"] if verification else []
        table.add_row(*stack_cells(row), *verdict)
    totals = Table.grid(padding=(0, 2))
    totals.add_column(style="bold")
    totals.add_column()
    totals.add_row("params", f"{result.total_params:,} trainable")
    totals.add_row("buffers", f"{result.total_buffers:,} non-trainable (e.g. BatchNorm running statistics)")
    totals.add_row("MACs", f"{result.total_macs:,}  ({MACS_UNIT})")
    totals.add_row("parameter memory", f"{bytes_text(result.parameter_bytes(dtype))} ({dtype}, params and buffers)")
    totals.add_row(
        "activation memory", f"{bytes_text(result.activation_bytes(dtype))} ({dtype}, every layer's output, one pass)"
    )
    parts: list[RenderableType] = [table, totals, Text(STACK_NOTES, style="dim")]
    if any(any(row.uncovered) for row in result.rows):
        parts.append(Text("!: the layer leaves input pixels at the end of an axis that no window covers", style="dim"))
    if verification is not None:
        parts.append(Text(stack_verification_text(verification), style="green" if verification.agrees else "red"))
    return Group(*parts)


def solve_report(
    input_size: tuple[int, ...], output_size: tuple[int, ...], family: str, answers: list[Answer], limit: int
) -> RenderableType:
    """The answers of ``convcalc solve``, best first, with whether each covers every pixel and is 'same'."""
    names = {"conv": "Conv", "conv_transpose": "ConvTranspose", "max_pool": "MaxPool", "avg_pool": "AvgPool"}
    table = _table(f"{names[family]}: {size_text(input_size)} -> {size_text(output_size)}")
    columns = ["kernel_size", "stride", "padding", "dilation"]
    columns += ["output_padding"] if family == "conv_transpose" else []
    columns += ["ceil_mode"] if family.endswith("pool") else []
    columns += ["covers all", "same"] if family == "conv" else ["covers all"]
    for column in columns:
        table.add_column(column, justify="right")
    for answer in answers[:limit]:
        row = [str(answer.kernel_size), str(answer.stride), str(answer.padding), str(answer.dilation)]
        row += [str(answer.output_padding)] if family == "conv_transpose" else []
        row += ["yes" if answer.ceil_mode else "no"] if family.endswith("pool") else []
        row += ["yes" if answer.covers_all else "no"]
        row += ["yes" if answer.same else "no"] if family == "conv" else []
        table.add_row(*row)
    more = len(answers) - limit
    parts: list[RenderableType] = [table]
    if more > 0:
        parts.append(Text(f"{more} more (--limit {len(answers)} shows them all)", style="dim"))
    if family == "conv_transpose":
        note = "covers all: every output pixel receives some input (no holes between the kernel's copies)"
    else:
        note = "covers all: every input pixel is read by some window (no gaps, nothing lost to the floor)"
    if family == "conv":
        note += "; same: the padding that torch's padding='same' works out to"
    parts.append(Text(note, style="dim"))
    return Group(*parts)
