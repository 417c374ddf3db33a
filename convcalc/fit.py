"""``convcalc fit``: which input sizes a stack takes.

Square inputs are tried (every spatial axis the same size), from the file's
batch and channels, by running the stack's shape arithmetic: no torch, and
about a millisecond a size for VGG-16.

>>> from convcalc.stack import resolve
>>> specs = resolve([("Conv2d", {"out_channels": 4, "kernel_size": 3}, None), ("MaxPool2d", {"kernel_size": 2}, None)])
>>> fit((1, 3, 64, 64), specs, 1, 12).valid
(4, 5, 6, 7, 8, 9, 10, 11, 12)
>>> compact(fit((1, 3, 64, 64), specs, 1, 12).lossless)
'4:12:2'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from convcalc.stack import LayerSpec, run_stack

__all__ = ["Fit", "compact", "fit"]


@dataclass(frozen=True, kw_only=True)
class Fit:
    """The sizes in a range that a stack takes."""

    low: int
    high: int
    valid: tuple[int, ...]
    """Sizes for which every layer and join is valid."""
    lossless: tuple[int, ...]
    """Valid sizes for which no layer leaves input pixels that no window reads."""
    smallest: int | None
    """The smallest size (from 1) the stack takes at all."""


def _shape(input_shape: Sequence[int], size: int) -> tuple[int, ...]:
    return (*input_shape[:2], *(size for _ in input_shape[2:]))


def fit(input_shape: Sequence[int], specs: Sequence[LayerSpec], low: int, high: int) -> Fit:
    """Try every square size from ``low`` to ``high`` (and below ``low`` for the smallest)."""
    valid, lossless = [], []
    smallest = None
    for size in range(1, high + 1):
        if size < low and smallest is not None:
            continue
        result = run_stack(_shape(input_shape, size), specs, suggest=False)
        if result.error is not None:
            continue
        if smallest is None:
            smallest = size
        if size >= low:
            valid.append(size)
            if not any(any(row.uncovered) for row in result.rows):
                lossless.append(size)
    return Fit(low=low, high=high, valid=tuple(valid), lossless=tuple(lossless), smallest=smallest)


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
