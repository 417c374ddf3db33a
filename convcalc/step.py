"""What one layer does to one tensor shape (:class:`Step`), and torch's rule for naming a dim.

The floor under the catalogue (:mod:`convcalc.catalog`) and the tensor methods
(:mod:`convcalc.tensor_ops`): both make Steps, and both wrap dims as torch does.
Nothing here imports any other module of convcalc but its errors.

>>> wrap_dim(-1, 4), wrap_dim(0, 0), wrap_dim(4, 4, extra=1)
(3, 0, 4)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from convcalc.errors import InvalidLayerError

if TYPE_CHECKING:
    from fractions import Fraction

__all__ = ["SAME", "Step", "Window", "wrap_dim"]

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Window:
    """What a layer does to the receptive field on one axis, as in Araujo et al. (Distill, 2019).

    ``rf_out = rf_in + (extent - 1) * jump_in`` and ``jump_out = jump_in * stride``.
    """

    extent: int = 1
    stride: Fraction | int = 1
    """An int where it is whole (int arithmetic is many times faster than Fraction's)."""


SAME = Window()


@dataclass(frozen=True, kw_only=True)
class Step:
    """One layer applied to one shape."""

    output: Shape
    params: int = 0
    buffers: int = 0
    macs: int = 0
    windows: tuple[Window, ...] | None = None
    """One Window per spatial axis, on the input's trailing axes; None for a layer that leaves the receptive field
    as it is."""
    whole: bool = False
    """True where every output depends on the whole input (Flatten, adaptive pooling)."""
    mixes: tuple[int, ...] = ()
    """Input dims whose elements the layer combines (Linear: the last): an axis there sees all of itself."""
    dims: tuple[int | None, ...] | None = None
    """Where each input dim goes in the output (permute, squeeze...); None: merged or removed. None for all of
    it: the dims stay where they are."""
    uncovered: tuple[int | None, ...] = ()
    """Input pixels per axis at the end that no window reads (conv and pooling; None: not worked out)."""
    unread: tuple[int | None, ...] = ()
    """Input pixels per axis that no window reads, at the ends and inside (conv and pooling; None: not worked
    out)."""
    restride: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None
    """A view's strides from its input's (tensor methods); it raises InvalidLayerError where no view is possible."""
    keeps_layout: bool = False
    """Whether the output has the input's memory layout (elementwise layers); otherwise it is contiguous."""


def wrap_dim(dim: int, rank: int, argument: str = "dim", extra: int = 0) -> int:
    """``dim`` wrapped into ``0..rank-1`` as torch wraps a negative dim; a 0-D tensor takes the dims of a 1-D one
    (-1 and 0). ``extra`` 1 allows one more place, ``0..rank``, where unsqueeze inserts a dim.

    Raises InvalidLayerError naming the ``argument`` and the range torch takes.
    """
    size = rank + extra if extra else max(rank, 1)
    if not -size <= dim < size:
        raise InvalidLayerError(f"{argument} {dim} is out of range for a {rank}-D input: use {-size}..{size - 1}")
    return dim % size
