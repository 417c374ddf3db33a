"""Searching input sizes: ``convcalc fit``, and the nearest sizes a stack error suggests.

Square inputs are tried (every spatial axis the same size), from the file's
batch and channels, by running the stack's shape arithmetic: no torch, and
about a millisecond a size for VGG-16. Both searches are bounded by the work
they do (layers evaluated, times the rank), so no input makes them run long.

>>> from convcalc.spec import resolve
>>> specs = resolve([("Conv2d", {"out_channels": 4, "kernel_size": 3}, None), ("MaxPool2d", {"kernel_size": 2}, None)])
>>> fit((1, 3, 64, 64), specs, 1, 12).valid
(4, 5, 6, 7, 8, 9, 10, 11, 12)
>>> compact(fit((1, 3, 64, 64), specs, 1, 12).lossless)
'4:12:2'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from convcalc.display import Shown
from convcalc.errors import ConvcalcError, StackError
from convcalc.network import Inferred, OutOfBudget, StackResult, run_stack
from convcalc.spec import LayerSpec, layer_count

__all__ = ["FIT_BUDGET", "SUGGEST_BUDGET", "Fit", "FitTooLarge", "NoSpatialAxes", "compact", "fit", "nearest_inputs",
           "run_network", "with_suggestions"]  # fmt: skip

FIT_BUDGET = 2_000_000
"""Most work one ``fit`` may do: sizes tried x layers x dimensions of the input (a few seconds)."""
SUGGEST_BUDGET = 400_000
"""Most work the nearest-input search of one error may do, counted alike; past it, the error suggests nothing."""


class FitTooLarge(ConvcalcError):
    """The range asked for would take too long to search."""


class NoSpatialAxes(ConvcalcError):
    """The stack's input has no spatial axes (batch and channels only, or fewer): no square sizes to try."""


def _work(input_shape: Sequence[int], layers: int) -> int:
    """What one run of a stack costs: its layers times the dimensions every shape has."""
    return max(layers, 1) * len(input_shape)


def run_network(file_input: Sequence[int], specs: Sequence[LayerSpec], input_shape: Sequence[int] | None = None,
                suggest: bool = True) -> StackResult:  # fmt: skip
    """The network of a stack file, built on the file's own input, run on ``input_shape`` (the file's input where
    None): the arguments it infers are inferred once, from ``file_input``, as a Lazy module is built by its first
    call, so another input runs through the network the file describes (and that ``--emit torch`` writes). Where a
    layer fails, its error names the nearest input sizes that work (``suggest``)."""
    result = run_stack(file_input, specs)
    if input_shape is not None and tuple(input_shape) != tuple(file_input):
        result = run_stack(input_shape, specs, inferred=result.inferred)
    return with_suggestions(result, specs) if suggest else result


def with_suggestions(result: StackResult, specs: Sequence[LayerSpec]) -> StackResult:
    """``result`` with its error, where it has one, naming the nearest input sizes for which the whole stack
    works (every spatial axis moved alike; see :func:`nearest_inputs`)."""
    error = result.error
    if error is None or len(result.input) < 3:
        return result
    nearby = nearest_inputs(result.input, specs, inferred=result.inferred)
    if not nearby:
        return result
    sizes = " and ".join("x".join(map(str, size[2:])) for size in nearby)
    message = f"{error}; input sizes near {'x'.join(map(str, result.input[2:]))} that work: {sizes}"
    error = StackError(message, index=error.index, layer=error.layer, input_shape=error.input_shape,
                       label=error.label, line=error.line, node=error.node)  # fmt: skip
    return replace(result, error=error)


def nearest_inputs(input_shape: Sequence[int], specs: Sequence[LayerSpec], reach: int = 64,
                   cache: dict[Any, Any] | None = None, inferred: Inferred | None = None
                   ) -> list[tuple[int, ...]]:  # fmt: skip
    """The nearest smaller and larger input shapes (every spatial axis moved by the same step) that the stack takes,
    the network built as ``inferred`` says (see :func:`~convcalc.network.run_stack`).

    Up to ``reach`` steps each way, and at most :data:`SUGGEST_BUDGET` of work in all: a long stack gets fewer
    tries, and a stack too long for one try gets none.
    """
    layers = layer_count(specs)
    budget = SUGGEST_BUDGET // len(input_shape)
    cache = {} if cache is None else cache
    found = []
    for direction in (-1, 1):
        for step in range(1, reach + 1):
            spatial = tuple(n + direction * step for n in input_shape[2:])
            if min(spatial) < 1 or budget < layers:
                break
            candidate = (*input_shape[:2], *spatial)
            try:
                result = run_stack(candidate, specs, budget=budget, cache=cache, inferred=inferred)
            except OutOfBudget:
                return found
            budget -= len(result.rows) + 1
            if result.error is None:
                found.append(candidate)
                break
    return found


@dataclass(frozen=True, kw_only=True)
class Fit(Shown):
    """The sizes in a range that a stack takes."""

    low: int
    high: int
    valid: tuple[int, ...]
    """Sizes for which every layer and join is valid."""
    lossless: tuple[int, ...]
    """Valid sizes for which every window layer reads every input pixel (none left out at the ends or inside)."""
    smallest: int | None
    """The smallest size (from 1) the stack takes at all."""
    axes: int = 2
    """How many spatial axes each size is given to (a size of 32 on 2 axes is 32x32)."""

    def __repr__(self) -> str:
        """One line: the range and what it holds, as runs.

        >>> Fit(low=30, high=40, valid=(32, 33, 34, 35), lossless=(32,), smallest=29)
        <Fit 30:40: valid 32:35, lossless 32, smallest 29>
        """
        return (f"<Fit {self.low}:{self.high}: valid {compact(self.valid) or 'none'}, lossless "
                f"{compact(self.lossless) or 'none'}, smallest {self.smallest}>")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``fit --json``)."""
        return {"low": self.low, "high": self.high, "valid": list(self.valid), "lossless": list(self.lossless),
                "smallest": self.smallest}  # fmt: skip


def _shape(input_shape: Sequence[int], size: int) -> tuple[int, ...]:
    return (*input_shape[:2], *(size for _ in input_shape[2:]))


def fit(input_shape: Sequence[int], specs: Sequence[LayerSpec], low: int, high: int) -> Fit:
    """Try every square size from ``low`` to ``high`` (and below ``low`` for the smallest) through the network
    built on ``input_shape``, the file's own input: what it infers (a Linear's ``in_features``, a position
    embedding's length) is fixed there, as in the module ``--emit torch`` writes.

    Refuses (FitTooLarge) a range whose search would do more than :data:`FIT_BUDGET` of work.
    """
    if len(input_shape) < 3:
        raise NoSpatialAxes(f"the input {list(input_shape)} has no spatial axes to vary")
    work = high * _work(input_shape, layer_count(specs))
    if work > FIT_BUDGET:
        raise FitTooLarge(
            f"the search would run {high:,} sizes through {layer_count(specs):,} layers of {len(input_shape)}-D "
            f"tensors; keep sizes x layers x dimensions under {FIT_BUDGET:,} (a smaller HIGH)"
        )
    valid, lossless = [], []
    smallest = None
    cache: dict[Any, Any] = {}
    built = run_stack(input_shape, specs).inferred
    for size in range(1, high + 1):
        if size < low and smallest is not None:
            continue
        result = run_stack(_shape(input_shape, size), specs, cache=cache, inferred=built)
        if result.error is not None:
            continue
        if smallest is None:
            smallest = size
        if size >= low:
            valid.append(size)
            if all(unread == 0 for row in result.rows for unread in row.unread):
                lossless.append(size)
    return Fit(low=low, high=high, valid=tuple(valid), lossless=tuple(lossless), smallest=smallest,
               axes=len(input_shape) - 2)  # fmt: skip


def compact(sizes: Sequence[int]) -> str:
    """Sizes as runs: ``32:1024:16`` is 32, 48, ..., 1024; single sizes stand alone.

    >>> compact([32, 48, 64, 80, 100, 101, 102, 500])
    '32:80:16, 100:102, 500'
    """
    parts, i = [], 0
    while i < len(sizes):
        j = i
        if i + 1 < len(sizes):
            step = sizes[i + 1] - sizes[i]
            while j + 1 < len(sizes) and sizes[j + 1] - sizes[j] == step:
                j += 1
        if j - i >= 2:
            parts.append(f"{sizes[i]}:{sizes[j]}" + (f":{step}" if step != 1 else ""))
            i = j + 1
        else:
            parts.append(str(sizes[i]))
            i += 1
    return ", ".join(parts)
