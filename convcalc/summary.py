"""What the human and tabular forms of a stack show, worked out once: rows to a depth, subtotals, memory.

The table, ``--markdown`` and ``--csv`` show the same rows: every node, or with
``depth`` only the nodes above it. A block's row carries the subtotals of
everything inside it, so the rows at the top level (all of them with
``depth=1``) add up to the stack's totals.
:func:`footer` gives the totals people know from torchinfo and Keras: params
(trainable and not), buffers, MACs, and the memory of the input, one forward
pass, what a training pass keeps for backward, the parameters, their gradients
and an optimizer's state, in MB.

Formatting happens elsewhere (:mod:`convcalc.render`, :mod:`convcalc.export`):
nothing here builds text but the unit suffixes.

>>> compact(25_557_032), compact(4_089_184_256), compact(999), compact(0)
('25.6 M', '4.09 G', '999', '0')
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

from convcalc.network import DTYPES, Order

if TYPE_CHECKING:
    from convcalc.network import Node, StackResult

__all__ = ["MB", "Footer", "Line", "compact", "footer", "lines", "megabytes", "subtotals"]

MB = 1_000_000
"""Bytes in a megabyte, as torchinfo counts them (a MiB is 1,048,576)."""

_UNITS = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))


def compact(count: int) -> str:
    """A count in K (10**3), M (10**6), G (10**9) or T (10**12), to three significant figures, as integer arithmetic
    (any count prints)."""
    for scale, unit in _UNITS:
        if count >= scale:
            digits = len(str(count // scale))
            decimals = max(0, 3 - digits)
            step = scale // 10**decimals
            rounded = (count + step // 2) // step
            whole, fraction = divmod(rounded, 10**decimals)
            return f"{whole:,}.{fraction:0{decimals}d} {unit}" if decimals else f"{whole:,} {unit}"
    return str(count)


def megabytes(count: int) -> str:
    """Bytes as MB (10**6 bytes) to two decimals, by integer arithmetic.

    >>> megabytes(553_430_176), megabytes(0)
    ('553.43', '0.00')
    """
    hundredths = (count * 100 + MB // 2) // MB
    return f"{hundredths // 100:,}.{hundredths % 100:02d}"


class Line(NamedTuple):  # a NamedTuple: a dataclass costs every table a few tenths of a millisecond to create
    """One row of a table: a node, and its counts (a block's: the subtotals of everything inside it)."""

    node: Node
    params: int
    buffers: int
    macs: int
    hidden: int
    """How many nodes inside it the row folds away (below the depth asked for)."""
    last: tuple[bool, ...]
    """For the row and each level of the tree above it, outermost first: whether it is the last at its level. A
    tree's guides follow from it."""
    branch: str | None = None
    """Where the row heads a branch of a block with several (a Residual's ``body`` and ``shortcut``, a Parallel's
    ``branch1``...): the branch's name, ``node`` being the block. Such a row stands for no node and counts nothing;
    the branch's nodes follow one level deeper. Machine output leaves these rows out."""


def subtotals(result: StackResult) -> dict[int, tuple[int, int, int, int]]:
    """For every node (by ``id(node)``): params, buffers and MACs of it and everything inside it, and how many
    nodes are inside it. A layer's are its own."""
    totals: dict[int, tuple[int, int, int, int]] = {}
    for node in result.walk(Order.EVALUATION):  # children before their block
        params, buffers, macs, inside = node.params, node.buffers, node.macs, 0
        for child in node.children:
            p, b, m, n = totals[id(child)]
            params, buffers, macs, inside = params + p, buffers + b, macs + m, inside + n + 1
        totals[id(node)] = (params, buffers, macs, inside)
    return totals


def lines(result: StackResult, depth: int | None = None) -> list[Line]:
    """The rows of a stack's tables: every node (to ``depth`` levels of blocks, where given), in table order."""
    totals = subtotals(result)
    rows = []
    for node, last, branch, level in _tree(result):
        if depth is not None and level + (branch is not None) >= depth:
            continue
        if branch is not None:
            rows.append(Line(node=node, params=0, buffers=0, macs=0, hidden=0, last=last, branch=branch))
            continue
        params, buffers, macs, inside = totals[id(node)]
        hidden = inside if depth is not None and level == depth - 1 else 0  # the last level shown folds
        rows.append(Line(node=node, params=params, buffers=buffers, macs=macs, hidden=hidden, last=last))
    return rows


_Place = tuple["Node", tuple[bool, ...], "str | None", int]


def _tree(result: StackResult) -> Iterator[_Place]:
    """Every node with its tree position and its level of blocks in the tree (0: a root), in table order; a
    branch's heading before its nodes where a block has branches side by side (a Repeat's copies follow one
    another: no headings). Where a block failed, the nodes that ran inside it are roots: the block has no row."""

    def walk(nodes: list[Node], above: tuple[bool, ...], level: int) -> Iterator[_Place]:
        for position, node in enumerate(nodes):
            last = (*above, position == len(nodes) - 1)
            yield node, last, None, level
            branches: dict[str, list[Node]] = {}
            for child in node.children:
                branches.setdefault(child.branch or "", []).append(child)
            if len(branches) < 2 or node.type == "Repeat":
                yield from walk(node.children, last, level + 1)
                continue
            for number, (name, members) in enumerate(branches.items()):
                heading = (*last, number == len(branches) - 1)
                yield node, heading, name, level
                yield from walk(members, heading, level + 1)

    yield from walk(result.roots, (), 0)


class Footer(NamedTuple):
    """The totals under a stack's table."""

    params: int
    trainable: int
    non_trainable: int
    buffers: int
    macs: int
    input_bytes: int
    forward_bytes: int
    """Every tensor one forward pass makes, the input not included."""
    saved_bytes: int | None
    """What autograd keeps for backward in one training-mode forward pass (:mod:`convcalc.saved`); None where the
    dtype does not train, or a layer refuses training mode (``saved_problem`` says why)."""
    saved_problem: str
    parameter_bytes: int
    """Parameters and buffers."""
    gradient_bytes: int
    """One gradient per trainable parameter."""
    optimizer_bytes: int
    """Adam's state: two tensors per trainable parameter (SGD with momentum keeps one, plain SGD none)."""
    total_bytes: int | None
    """Input, saved tensors, parameters, buffers and gradients: what one training step holds at least, before the
    optimizer's state (None with no training figure)."""


def footer(result: StackResult, dtype: str = "float32") -> Footer:
    """The totals of a stack, memory for elements of ``dtype``."""
    from convcalc.saved import SavedBytesError, saved_bytes

    element_bytes = DTYPES[dtype]
    forward = result.activation_bytes_of(element_bytes)
    inputs = math.prod(result.input) * element_bytes
    parameters = (result.total_params + result.total_buffers) * element_bytes
    gradients = result.total_params * element_bytes  # a module fresh from its constructor trains every parameter
    saved: int | None
    try:
        saved, problem = saved_bytes(result, dtype).total, ""
    except SavedBytesError as error:
        saved, problem = None, str(error)
    return Footer(
        params=result.total_params,
        trainable=result.total_params,
        non_trainable=0,
        buffers=result.total_buffers,
        macs=result.total_macs,
        input_bytes=inputs,
        forward_bytes=forward,
        saved_bytes=saved,
        saved_problem=problem,
        parameter_bytes=parameters,
        gradient_bytes=gradients,
        optimizer_bytes=2 * gradients,
        total_bytes=None if saved is None else inputs + saved + parameters + gradients,
    )
