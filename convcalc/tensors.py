"""Tensors made from nothing: constant tables that convcalc computes from a step's arguments, as torchvision does.

A stack file's ``Buffer`` step registers one as a buffer of the network (counted
in its buffers, as torchvision's ``register_buffer`` counts it); its
``Constant`` step computes one on each forward pass from sizes that may follow
the input (counted nowhere, as torchvision makes it inside ``forward``). Each
kind has one rule here: its shape and dtype, and the largest value it holds
where it is used as an index. The code that computes its values is
:data:`convcalc.torch_code.HELPERS`' function of the same name, which
``--emit torch`` writes and ``--verify`` runs.

>>> relative_position_index({"window_size": [7, 7]})
Made(shape=(2401,), dtype='int64', largest=168)
>>> shifted_window_mask({"size": [56, 56], "window_size": [7, 7], "shift_size": [3, 3]})
Made(shape=(64, 49, 49), dtype='float32', largest=None)
>>> relative_distance({"size": [56, 7]})
Made(shape=(56, 7), dtype='int64', largest=103)
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple

from convcalc.errors import InvalidLayerError

__all__ = ["BUFFERS", "CONSTANTS", "Made"]

Shape = tuple[int, ...]


class Made(NamedTuple):
    """A tensor a kind makes: its shape, its dtype, and its largest value where it serves as an index."""

    shape: Shape
    dtype: str
    largest: int | None = None


def _window(args: dict[str, Any], axes: tuple[int, ...] = (2, 3)) -> tuple[int, ...]:
    """The window's size along each axis: one int for a square window, or 2 sizes (Swin, MaxViT) or 3 (Swin3D's
    frames, height and width)."""
    window = args.get("window_size")
    if window is None:
        raise InvalidLayerError(f"{args.get('kind', 'this kind')} needs window_size")
    sizes = (window, window) if isinstance(window, int) else tuple(window)
    if len(sizes) not in axes:
        raise InvalidLayerError(f"window_size has {' or '.join(map(str, axes))} sizes, one per axis of the window, "
                                f"got {list(sizes)}")  # fmt: skip
    if min(sizes) < 1:
        raise InvalidLayerError(f"window_size must be at least 1 on every axis, got {list(sizes)}")
    return sizes


def relative_position_index(args: dict[str, Any]) -> Made:
    """Swin's (and MaxViT's, and Swin3D's) index of each pair of positions in a window into the relative position
    bias table: ``(Wh*Ww)**2`` integers, up to ``(2*Wh - 1)*(2*Ww - 1) - 1`` (with a third axis, ``2*Wd - 1``
    times as many); flat as Swin registers it, or ``(Wh*Ww, Wh*Ww)`` as MaxViT and Swin3D do (``flat: false``)."""
    window = _window(args)
    tokens = math.prod(window)
    shape = (tokens * tokens,) if args.get("flat", True) else (tokens, tokens)
    return Made(shape, "int64", math.prod(2 * size - 1 for size in window) - 1)


def relative_coords_table(args: dict[str, Any]) -> Made:
    """Swin V2's table of log-spaced relative coordinates, ``(1, 2*Wh - 1, 2*Ww - 1, 2)``, the input of its
    continuous position bias MLP."""
    height, width = _window(args, axes=(2,))
    if not args.get("flat", True):
        raise InvalidLayerError("relative_coords_table has one shape, (1, 2*Wh - 1, 2*Ww - 1, 2): drop flat")
    if height < 2 or width < 2:
        raise InvalidLayerError("relative_coords_table divides by window_size - 1: use a window of at least 2")
    return Made((1, 2 * height - 1, 2 * width - 1, 2), "float32")


def shifted_window_mask(args: dict[str, Any]) -> Made:
    """The mask torchvision's shifted window attention adds to its scores: ``(windows, Wh*Ww, Wh*Ww)`` of 0 and
    -100, from the padded map's ``size`` (a multiple of the window), the window and the shift; with a third axis
    (Swin3D), ``size``, ``window_size`` and ``shift_size`` each have 3."""
    window = _window(args)
    size = args["size"]
    padded = (size,) * len(window) if isinstance(size, int) else tuple(size)
    shift = args["shift_size"]
    shifts = (shift,) * len(window) if isinstance(shift, int) else tuple(shift)
    if len(padded) != len(window) or len(shifts) != len(window):
        raise InvalidLayerError(f"the mask's size {list(padded)} and shift_size {list(shifts)} need one value per "
                                f"axis of the window {list(window)}")  # fmt: skip
    if any(length % side for length, side in zip(padded, window)) or min(padded) < 1:
        raise InvalidLayerError(f"the mask's size {list(padded)} must be a multiple of the window "
                                f"{list(window)} (pad the map first)")  # fmt: skip
    for value, side in zip(shifts, window):
        if not 0 <= value < side:
            raise InvalidLayerError(f"shift_size {value} must lie in 0..{side - 1}, within the window")
    windows = math.prod(length // side for length, side in zip(padded, window))
    tokens = math.prod(window)
    return Made((windows, tokens, tokens), "float32")


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def relative_distance(args: dict[str, Any]) -> Made:
    """For each query position and each key position along one axis, the row of MViT's relative position table
    that their distance reads (torchvision's ``_add_rel_pos``: ``dist_h``), ``(q, k)`` integers from ``size: [q,
    k]``. Where q and k differ, the shorter axis's steps are scaled up to the longer's. The largest, at the last
    query and the first key, is worked out in float32 and truncated, as torch works it out."""
    size = args["size"]
    if len(size) != 2 or min(size) < 1:
        raise InvalidLayerError(f"relative_distance's size is [query positions, key positions], each at least 1, "
                                f"got {list(size)}")  # fmt: skip
    if args.get("window_size") is not None or args.get("shift_size"):
        raise InvalidLayerError("relative_distance takes size alone: drop window_size and shift_size")
    queries, keys = size
    # float32(i) * float32(ratio), each step rounded to float32 as torch's float32 tensors round it
    q_ratio, k_ratio = _float32(max(keys / queries, 1.0)), _float32(max(queries / keys, 1.0))
    last = _float32(_float32(queries - 1) * q_ratio)
    first = _float32(_float32(1.0 - keys) * k_ratio)  # (arange(k)[0] + (1 - k)) * k_ratio
    return Made((queries, keys), "int64", int(_float32(last - first)))


BUFFERS: dict[str, Callable[[dict[str, Any]], Made]] = {
    "relative_position_index": relative_position_index,
    "relative_coords_table": relative_coords_table,
}
"""What a ``Buffer`` step can register, by kind."""

CONSTANTS: dict[str, Callable[[dict[str, Any]], Made]] = {
    "shifted_window_mask": shifted_window_mask,
    "relative_distance": relative_distance,
}
"""What a ``Constant`` step can compute on each forward pass, by kind."""
