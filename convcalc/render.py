"""Human output: the tables for one layer, a stack and solve's answers, with the lines around them.

Everything here formats numbers the core already computed; nothing is worked
out anew. Machine output (``--json``, ``--quiet``) does not come through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convcalc.layers import Family
from convcalc.table import grid, style, table, wrap
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

if TYPE_CHECKING:
    from convcalc.layers import LayerResult
    from convcalc.solve import Answer
    from convcalc.stack import StackResult
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


def _paragraph(text: str, width: int | None, name: str | None = None) -> list[str]:
    return [style(line, name) for line in wrap(text, width)]


def layer_report(result: LayerResult, verification: Verification | None = None, width: int | None = None) -> str:
    """The table of one layer, axis by axis, with its totals and torch's verdict below.

    The formula is a column where the table fits in ``width``; on a narrower
    terminal the formulas follow the table, one line per axis.
    """
    transposed = result.family is Family.CONV_TRANSPOSE
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
    title = f"{result.layer}: {size_text(result.input)} -> {size_text(result.output)}"
    right = [column for column in columns if column not in ("axis", "formula")]
    lines, hidden = table(title, columns, rows, width=width, right=right, bold=["output"], optional=["formula"])
    if hidden:
        formulas = [axis.formula for axis in result.axes]
        if len(set(formulas)) == 1:
            lines += wrap(f"{', '.join(axis.name for axis in result.axes)}: {formulas[0]}", width)
        else:
            for axis, formula in zip(result.axes, formulas):
                lines += wrap(f"{axis.name}: {formula}", width)
    if result.output_shape is not None:
        lines += grid(
            [
                ("shape", f"{shape_text(result.input_shape or ())} -> {shape_text(result.output_shape)}"),
                ("params", f"{result.params:,}"),
                ("MACs", f"{result.macs:,}  ({MACS_UNIT})"),
            ],
            width,
        )
    if any(axis.uncovered for axis in result.axes):
        lines += _paragraph(UNCOVERED_NOTE, width, "dim")
    if any(axis.dropped_window for axis in result.axes):
        lines += _paragraph(DROPPED_NOTE, width, "dim")
    if verification is not None:
        lines += _paragraph(verification_text(verification), width, "green" if verification.agrees else "red")
    return "\n".join(lines)


STACK_NOTES = (
    "RF: receptive field, input pixels one output unit sees per spatial axis; jump: input pixels between "
    "neighbouring output units. MACs: multiply-accumulates, conv and linear layers only."
)
# hidden in this order while a stack table is wider than the terminal; the arguments wrap first
STACK_OPTIONAL = ["jump", "RF", "MACs"]


def stack_report(
    result: StackResult,
    dtype: str = "float32",
    verification: StackVerification | None = None,
    width: int | None = None,
) -> str:
    """The stack table, one row per layer that ran, with the totals below (and torch's verdict per layer).

    In a terminal narrower than the table, the jump, RF and MACs columns are
    hidden (in that order, only as many as needed) and a line says so.
    """
    checks = {} if verification is None else {id(check.node): check for check in verification.layers}
    columns = STACK_COLUMNS + (["torch"] if verification else [])
    rows = []
    for row in result.walk():
        verdict = [check_text(checks[id(row)]) if id(row) in checks else "-"] if verification else []
        rows.append([*stack_cells(row), *verdict])
    title = f"{shape_text(result.input)} -> {shape_text(result.output)}"
    lines, hidden = table(
        title,
        columns,
        rows,
        width=width,
        right=["params", "MACs"],
        bold=["output"],
        wrapping=["arguments", "torch"],  # a shape or a count never breaks
        optional=STACK_OPTIONAL,
    )
    lines += grid(
        [
            ("params", f"{result.total_params:,} trainable"),
            ("buffers", f"{result.total_buffers:,} non-trainable (e.g. BatchNorm running statistics)"),
            ("MACs", f"{result.total_macs:,}  ({MACS_UNIT})"),
            ("parameter memory", f"{bytes_text(result.parameter_bytes(dtype))} ({dtype}, params and buffers)"),
            (
                "activation memory",
                f"{bytes_text(result.activation_bytes(dtype))} ({dtype}, every layer's output, one pass)",
            ),
        ],
        width,
    )
    lines += _paragraph(STACK_NOTES, width, "dim")
    if any(any(row.uncovered) for row in result.rows):
        lines += _paragraph(
            "!: the layer leaves input pixels at the end of an axis that no window covers", width, "dim"
        )
    if hidden:
        note = f"hidden to fit {width} columns: {', '.join(hidden)} (a wider terminal, --markdown or --json shows them)"
        lines += _paragraph(note, width, "dim")
    if verification is not None:
        lines += _paragraph(stack_verification_text(verification), width, "green" if verification.agrees else "red")
    return "\n".join(lines)


def solve_report(
    input_size: tuple[int, ...],
    output_size: tuple[int, ...],
    family: Family,
    answers: list[Answer],
    limit: int,
    width: int | None = None,
) -> str:
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
    lines, _ = table(title, columns, rows, width=width, right=columns)
    more = len(answers) - limit
    if more > 0:
        lines += _paragraph(f"{more} more (--limit {len(answers)} shows them all)", width, "dim")
    if family is Family.CONV_TRANSPOSE:
        note = "covers all: every output pixel receives some input (no holes between the kernel's copies)"
    else:
        note = "covers all: every input pixel is read by some window (no gaps, nothing lost to the floor)"
    if family is Family.CONV:
        note += "; same: the padding that torch's padding='same' works out to"
    lines += _paragraph(note, width, "dim")
    return "\n".join(lines)
