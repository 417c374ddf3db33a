"""A stack's result as machine-readable data: a JSON-ready dict, CSV and Markdown.

Plain text only (no table layout, no styles), so these outputs start fast and never carry styling.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

from convcalc.network import DTYPES, Row, StackResult
from convcalc.summary import footer, lines, megabytes
from convcalc.text import arguments_text, field_text, printable, shape_text

if TYPE_CHECKING:
    from fractions import Fraction

    from convcalc.saved import Saved

__all__ = ["CSV_COLUMNS", "markdown_text", "stack_csv", "stack_dict", "stack_markdown"]


def _jump(value: Fraction | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value.denominator == 1 else float(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def stack_dict(result: StackResult, dtype: str = "float32") -> dict[str, Any]:
    """The whole result as JSON data (docs/json.md describes every key).

    ``layers`` keeps the nesting of blocks: a Residual's or Repeat's layers are
    in its ``blocks``, each with a ``label`` such as ``3.body.2``, and its
    ``params``, ``buffers`` and ``macs`` are the subtotals of everything inside
    it, as in the table. Every node has an ``id`` and the ids of the nodes whose
    tensors it takes (``inputs``, 0 for the stack's input): the graph itself.
    """
    error = result.error
    saved = _saved(result, dtype)
    return {
        "input_shape": list(result.input),
        "output_shape": list(result.output),
        "total_params": result.total_params,
        "total_buffers": result.total_buffers,
        "total_macs": result.total_macs,
        "dtype": dtype,
        "parameter_bytes": result.parameter_bytes(dtype),
        "activation_bytes": result.activation_bytes(dtype),
        "saved_bytes": None if saved is None else saved.total,
        "gradient_bytes": result.total_params * DTYPES[dtype],
        "outputs": {key: list(node.output) for key, node in result.outputs.items()},
        "layers": _nest(result.roots, saved),
        "error": None
        if error is None
        else {"index": error.index, "type": error.layer, "input_shape": list(error.input_shape), "message": str(error)},
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
        "input_shape": list(row.input),
        "output_shape": list(row.output),
        "params": row.params,
        "buffers": row.buffers,
        "macs": row.macs,
        "receptive_field": list(row.receptive_field),
        "jump": [value if type(value) is int else _jump(value) for value in row.jump],
        "uncovered": list(row.uncovered),
        "unread": list(row.unread),
        "id": row.id,
        "inputs": [0 if source is None else source.id for source in row.inputs],
        "line": row.line,
        "module": row.module,
    }


def _saved(result: StackResult, dtype: str) -> Saved | None:
    """What autograd keeps for backward, or None where the dtype does not train or a layer refuses training mode."""
    from convcalc.saved import SavedBytesError, saved_bytes

    try:
        return saved_bytes(result, dtype)
    except SavedBytesError:
        return None


def _nest(roots: list[Row], saved: Saved | None) -> list[dict[str, Any]]:
    """The nodes under ``roots`` as a tree: a block's nodes go in its ``blocks``, by branch (``body``,
    ``shortcut``, ``branch2``, or a Repeat's copy number). The nodes of a block that failed, which is no node
    itself, are roots."""

    plain: dict[int, dict[str, Any]] = {}
    counts = ("params", "buffers", "macs") if saved is None else ("params", "buffers", "macs", "saved_bytes")

    def entry(node: Row) -> dict[str, Any]:
        data = _row_dict(node, plain)
        data["saved_bytes"] = None if saved is None else saved.own.get(node.id, 0)
        if node.children:
            branches: dict[str, list[dict[str, Any]]] = {}
            for child in node.children:
                inner = entry(child)
                for count in counts:
                    data[count] += inner[count]
                branches.setdefault(child.branch or "", []).append(inner)
            data["blocks"] = branches
        return data

    return [entry(node) for node in roots]


CSV_COLUMNS = ["id", "parent", "label", "depth", "type", "arguments", "input_shape", "output_shape", "params",
               "buffers", "macs", "receptive_field", "jump", "uncovered", "unread", "folded"]  # fmt: skip
"""``--csv``'s header. ``parent`` is the id of the block a node is in (0 for none); a block's params, buffers
and macs are the subtotals of everything inside it, so the rows of depth 0 add up to the stack's totals;
``folded`` counts the nodes a row stands for below ``--depth``."""


def _size(values: tuple[int | None, ...]) -> str:
    """Sizes or counts per axis, ``x``-joined; ``?`` for a count not worked out."""
    return "x".join("?" if value is None else str(value) for value in values)


def stack_csv(result: StackResult, depth: int | None = None) -> str:
    """One header line, then one line per node that ran (to ``depth``). Values are plain: no padding, no
    thousands separators; user text (a Save's name) has control characters escaped."""
    import csv  # only for --csv

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in lines(result, depth):
        if line.branch is not None:  # a heading, for people
            continue
        node = line.node
        writer.writerow([
            node.id, 0 if node.parent is None else node.parent.id, node.label or node.index, node.depth, node.type,
            printable(arguments_text(node.arguments, node.given, node.type)),
            _size(node.input), _size(node.output), line.params, line.buffers, line.macs,
            field_text(node.receptive_field), field_text(node.jump), _size(node.uncovered), _size(node.unread),
            line.hidden,
        ])  # fmt: skip
    return out.getvalue()


_MARKDOWN = re.compile(r"([\\`*_\[\]<&|~$])")
"""What Markdown could read as markup in a table cell: code, emphasis, links, HTML, entities, a cell's end, math."""


def markdown_text(text: str) -> str:
    """``text`` for a Markdown table cell: markup characters backslash-escaped, control characters shown escaped.

    >>> markdown_text("<b>|x_1|</b>")
    '\\\\<b>\\\\|x\\\\_1\\\\|\\\\</b>'
    """
    return _MARKDOWN.sub(r"\\\1", printable(text))


def stack_markdown(result: StackResult, dtype: str = "float32", depth: int | None = None) -> str:
    """A Markdown table to paste into a README or a paper (to ``depth``), with the totals below."""
    header = ["#", "layer", "arguments", "output", "params", "MACs", "RF", "jump"]
    out = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if c in ("params", "MACs") else "---" for c in header) + "|",
    ]
    for line in lines(result, depth):
        if line.branch is not None:  # a heading, for people
            continue
        node = line.node
        name = node.type + (" (!)" if any(node.unread) else "")
        name += f" ({line.hidden} inside)" if line.hidden else ""
        counts = (f"{line.params:,}", f"{line.macs:,}")
        cells = [str(node.id), "&nbsp;&nbsp;" * node.depth + markdown_text(name),
                 markdown_text(arguments_text(node.arguments, node.given, node.type)), shape_text(node.output), *counts,
                 field_text(node.receptive_field), field_text(node.jump)]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    totals = footer(result, dtype)
    out.append("")
    training = (f"; {megabytes(totals.total_bytes)} MB for one training step in {dtype} (saved for backward "
                f"{megabytes(totals.saved_bytes or 0)} MB)" if totals.total_bytes is not None else "")  # fmt: skip
    out.append(
        f"Total: {totals.params:,} params, {totals.buffers:,} buffers, {totals.macs:,} MACs; output "
        f"{shape_text(result.output)}; forward pass {megabytes(totals.forward_bytes)} MB in {dtype}{training}."
    )
    return "\n".join(out) + "\n"
