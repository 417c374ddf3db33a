"""A stack's result as machine-readable data: a JSON-ready dict, CSV and Markdown.

Plain text only (no rich), so these outputs start fast and never carry styling.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

from convcalc.stack import StackResult
from convcalc.text import STACK_COLUMNS, stack_cells

__all__ = ["stack_csv", "stack_dict", "stack_markdown"]


def _jump(value: Fraction | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value.denominator == 1 else float(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def stack_dict(result: StackResult, dtype: str = "float32") -> dict[str, Any]:
    """The whole result as JSON data. Keys are a stable interface: add, never rename."""
    error = result.error
    return {
        "input": list(result.input),
        "output": list(result.output),
        "total_params": result.total_params,
        "total_buffers": result.total_buffers,
        "total_macs": result.total_macs,
        "dtype": dtype,
        "parameter_bytes": result.parameter_bytes(dtype),
        "activation_bytes": result.activation_bytes(dtype),
        "layers": [
            {
                "index": row.index,
                "type": row.type,
                "arguments": {name: _plain(value) for name, value in row.arguments.items()},
                "input": list(row.input),
                "output": list(row.output),
                "params": row.params,
                "buffers": row.buffers,
                "macs": row.macs,
                "receptive_field": list(row.receptive_field),
                "jump": [_jump(value) for value in row.jump],
                "uncovered": list(row.uncovered),
            }
            for row in result.rows
        ],
        "error": None
        if error is None
        else {"index": error.index, "type": error.layer, "input": list(error.input_shape), "message": str(error)},
    }


def stack_csv(result: StackResult) -> str:
    """One header line, then one line per layer that ran."""
    import csv  # only for --csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "type", "arguments", "output", "params", "macs", "receptive_field", "jump", "uncovered"])
    for row in result.rows:
        cells = stack_cells(row)
        output = "x".join(str(n) for n in row.output)
        writer.writerow(
            [*cells[:3], output, row.params, row.macs, cells[6], cells[7], "x".join(map(str, row.uncovered))]
        )
    return out.getvalue()


def stack_markdown(result: StackResult) -> str:
    """A Markdown table to paste into a README or a paper, with a totals line."""
    header = STACK_COLUMNS[:-1]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if c in ("params", "MACs") else "---" for c in header) + "|",
    ]
    for row in result.rows:
        cells = stack_cells(row)
        cells[1] += " (!)" if cells[-1] else ""
        lines.append("| " + " | ".join(cells[:-1]) + " |")
    lines.append("")
    lines.append(f"Total: {result.total_params:,} params, {result.total_macs:,} MACs; output {result.output}.")
    return "\n".join(lines) + "\n"
