"""A stack's result as machine-readable data: a JSON-ready dict, CSV and Markdown.

Plain text only (no table layout, no styles), so these outputs start fast and never carry styling.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

from convcalc.stack import Row, StackResult
from convcalc.text import STACK_COLUMNS, stack_cells

__all__ = ["stack_csv", "stack_dict", "stack_markdown"]


def _jump(value: Fraction | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value.denominator == 1 else float(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def stack_dict(result: StackResult, dtype: str = "float32") -> dict[str, Any]:
    """The whole result as JSON data. Keys are a stable interface: add, never rename.

    ``layers`` keeps the nesting of blocks: a Residual's or Repeat's layers are
    in its ``blocks``, each with a ``label`` such as ``3.body.2``. Every node has
    an ``id`` and the ids of the nodes whose tensors it takes (``inputs``, 0 for
    the stack's input): the graph itself.
    """
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
        "layers": _nest(list(result.walk())),
        "error": None
        if error is None
        else {"index": error.index, "type": error.layer, "input": list(error.input_shape), "message": str(error)},
    }


def _row_dict(row: Row, plain: dict[int, dict[str, Any]]) -> dict[str, Any]:
    arguments = plain.get(id(row.arguments))  # nodes of the same layer on the same shape share one dict
    if arguments is None:
        arguments = plain[id(row.arguments)] = {name: _plain(value) for name, value in row.arguments.items()}
    return {
        "index": row.index,
        "label": row.label,
        "type": row.type,
        "arguments": arguments,
        "input": list(row.input),
        "output": list(row.output),
        "params": row.params,
        "buffers": row.buffers,
        "macs": row.macs,
        "receptive_field": list(row.receptive_field),
        "jump": [value if type(value) is int else _jump(value) for value in row.jump],
        "uncovered": list(row.uncovered),
        "id": row.id,
        "inputs": [0 if source is None else source.id for source in row.inputs],
        "line": row.line,
    }


def _nest(rows: list[Row]) -> list[dict[str, Any]]:
    """The nodes as a tree: a block's nodes go in its ``blocks``, by branch (``body``, ``shortcut``, ``branch2``,
    or a Repeat's copy number). The nodes of a block that failed, which is no node itself, stand at the top."""

    plain: dict[int, dict[str, Any]] = {}

    def entry(node: Row) -> dict[str, Any]:
        data = _row_dict(node, plain)
        if node.children:
            branches: dict[str, list[dict[str, Any]]] = {}
            for child in node.children:
                branches.setdefault(child.branch or "", []).append(entry(child))
            data["blocks"] = branches
        return data

    present = {id(node) for node in rows}
    return [entry(node) for node in rows if node.parent is None or id(node.parent) not in present]


def stack_csv(result: StackResult) -> str:
    """One header line, then one line per layer that ran."""
    import csv  # only for --csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "type", "arguments", "output", "params", "macs", "receptive_field", "jump", "uncovered"])
    for row in result.walk():
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
    for row in result.walk():
        cells = [cell.replace("|", "\\|") for cell in stack_cells(row)]  # a pipe in a name would end the cell
        cells[1] += " (!)" if cells[-1] else ""
        lines.append("| " + " | ".join(cells[:-1]) + " |")
    lines.append("")
    lines.append(f"Total: {result.total_params:,} params, {result.total_macs:,} MACs; output {result.output}.")
    return "\n".join(lines) + "\n"
