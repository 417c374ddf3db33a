"""PyTorch's output-size formulas for one spatial axis, as plain integer math.

These functions compute; they do not validate. :mod:`convcalc.layers` checks
the parameters against torch's rules and calls them. All arithmetic is on
Python ints, so sizes of any magnitude come out exact.

Names follow torch: ``length`` is the input size along the axis, ``padding``
is a ``(before, after)`` pair, ``dilation`` spreads the kernel taps apart.

>>> conv_length(227, kernel_size=11, stride=4)
55
>>> pool_length(5, kernel_size=2, stride=2, padding=(1, 1), ceil_mode=True)
3
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "COVERAGE_LIMIT",
    "INT64",
    "conv_formula",
    "conv_length",
    "conv_transpose_formula",
    "conv_transpose_length",
    "coverage",
    "drops_last_window",
    "effective_kernel",
    "pool_formula",
    "pool_length",
    "same_padding",
    "smallest_length",
    "uncovered_length",
]

INT64 = 2**63
"""torch's sizes and integer arguments are 64-bit: every integer must lie in -2**63 < n < 2**63."""

Padding = tuple[int, int]


def effective_kernel(kernel_size: int, dilation: int = 1) -> int:
    """How many input positions one window spans: ``dilation*(kernel_size-1) + 1``.

    >>> effective_kernel(3, dilation=2)
    5
    """
    return dilation * (kernel_size - 1) + 1


def same_padding(kernel_size: int, dilation: int = 1) -> Padding:
    """The ``(before, after)`` padding torch uses for ``padding='same'``.

    The total is ``dilation*(kernel_size-1)``; when it is odd the extra pixel
    goes after (right, bottom, back), as torch does.

    >>> same_padding(3)
    (1, 1)
    >>> same_padding(4)
    (1, 2)
    """
    total = dilation * (kernel_size - 1)
    return total // 2, total - total // 2


def conv_length(length: int, kernel_size: int, stride: int = 1, padding: Padding = (0, 0), dilation: int = 1) -> int:
    """Output size of a convolution along one axis.

    ``(length + before + after - dilation*(kernel_size-1) - 1) // stride + 1``.
    A result below 1 means the layer is invalid for this input.

    >>> conv_length(64, kernel_size=7, stride=2)
    29
    >>> conv_length(32, kernel_size=5, padding=(2, 2))
    32
    """
    before, after = padding
    return (length + before + after - effective_kernel(kernel_size, dilation)) // stride + 1


def conv_transpose_length(
    length: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    output_padding: int = 0,
) -> int:
    """Output size of a transposed convolution along one axis.

    ``(length-1)*stride - 2*padding + dilation*(kernel_size-1) + output_padding + 1``.

    >>> conv_transpose_length(7, kernel_size=4, stride=2, padding=1)
    14
    """
    return (length - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1


def pool_length(
    length: int,
    kernel_size: int,
    stride: int,
    padding: Padding = (0, 0),
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output size of a max or average pool along one axis.

    In floor mode this is the convolution formula. In ceil mode the division
    rounds up, and then torch drops a last window that would start in the
    right padding (at or past ``length + before``).

    >>> pool_length(5, kernel_size=2, stride=2, padding=(1, 1))
    3
    >>> pool_length(6, kernel_size=2, stride=2, padding=(1, 1), ceil_mode=True)
    4
    """
    before, after = padding
    span = length + before + after - effective_kernel(kernel_size, dilation)
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    return out - 1 if drops_last_window(length, kernel_size, stride, padding, dilation) else out


COVERAGE_LIMIT = 1 << 16
"""Most residue classes :func:`coverage` follows one by one; beyond, it does not work the figure out (None)."""


def coverage(length: int, out: int, kernel_size: int, stride: int, before: int = 0, dilation: int = 1,
             after: int = 0, padding_mode: str = "zeros") -> tuple[int, int] | None:  # fmt: skip
    """Which input pixels the windows read, as ``(unread, uncovered)``: how many input pixels no window reads at all
    (at the ends of the axis and inside it), and how many of them lie after the last pixel some window reads
    (``length`` where none is read).

    Window ``i`` (of ``out``) reads padded positions ``i*stride + j*dilation`` for ``j`` in ``0..kernel_size-1``;
    the input occupies padded positions ``before .. before+length-1``. A brute force would walk every tap; this
    counts them by arithmetic, exactly at any size: taps ``j`` and ``j + stride/g`` (``g = gcd(stride,
    dilation)``) read the same positions ``dilation/g`` windows apart, so the taps fall into ``min(kernel_size,
    stride/g)`` classes that read disjoint progressions of step ``stride``. None where there are more classes than
    :data:`COVERAGE_LIMIT` (a kernel and a stride both beyond 65,536): the figure is then not worked out.

    With a ``padding_mode`` other than ``"zeros"`` the ``before`` and ``after`` padded positions hold copies of input
    pixels (``"reflect"``: mirrored without the edge, ``"replicate"``: the edge, ``"circular"``: the other end), so
    a tap on them reads that pixel. Each padded position some tap reads is mapped back to its pixel (None where a
    reflect or circular padding times the classes exceeds :data:`COVERAGE_LIMIT`).

    >>> coverage(64, out=29, kernel_size=7, stride=2)  # the floor drops the last pixel
    (1, 1)
    >>> coverage(9, out=5, kernel_size=1, stride=2)  # every other pixel is skipped, none at the end
    (4, 0)
    >>> coverage(1, out=1, kernel_size=2, stride=1, before=1, dilation=2)  # the taps fall on both pads
    (1, 1)
    """
    low, high = before, before + length - 1
    if kernel_size == 1:
        dilation = 1
    # each class: positions start + q*step for q in 0..last with (q mod period) < width
    if dilation == 1:  # windows are blocks of kernel_size pixels, stride apart: one class
        classes = [(0, 1, stride, kernel_size, (out - 1) * stride + kernel_size - 1)]
    else:
        g = math.gcd(stride, dilation)
        period, shift = stride // g, dilation // g
        if min(kernel_size, period) > COVERAGE_LIMIT:
            return None
        # taps r, r + period, r + 2*period...: positions r*dilation + (m*shift + i)*stride, window i < out
        classes = [(r * dilation, stride, shift, out, ((kernel_size - 1 - r) // period) * shift + out - 1)
                   for r in range(min(kernel_size, period))]  # fmt: skip

    def taps(low: int, high: int) -> tuple[int, int]:
        """How many of the padded positions ``low..high`` some tap reads, and the last of them (-1: none)."""
        read, last = 0, -1
        for start, step, period, width, final in classes:
            first = max(0, -(-(low - start) // step))
            final = min(final, (high - start) // step)
            count = _runs(final, period, width) - _runs(first - 1, period, width)
            if count > 0:
                read += count
                q = final - max(0, final % period - (width - 1))  # the last q of the run that holds final
                last = max(last, start + q * step)
        return read, last

    read, last = taps(low, high)
    copies = set()  # input pixels (padded positions) read only through a copy in the padding
    if padding_mode == "replicate":  # every pad copies the edge: one count per side, however wide the pad
        copies.update([low] * (before > 0 and taps(0, before - 1)[0] > 0) + [high] * (
            after > 0 and taps(high + 1, high + after)[0] > 0))  # fmt: skip
    elif padding_mode != "zeros" and before + after > 0:
        if (max(before, 0) + max(after, 0)) * len(classes) > COVERAGE_LIMIT:  # a tap test per pad, per class
            return None
        for position in (*range(before), *range(high + 1, high + 1 + after)):
            if taps(position, position)[0]:
                offset = position - before  # where the pad sits, in input pixels (-1 is just before the input)
                copies.add(low + _copied(offset, length, padding_mode))
    copies = {position for position in copies if not taps(position, position)[0]}
    read, last = read + len(copies), max([last, *copies])
    return length - read, length if last < low else high - last


def _copied(offset: int, length: int, padding_mode: str) -> int:
    """The input pixel a padded position ``offset`` pixels from the input's start copies (``-1``: just before it).

    >>> [_copied(offset, 5, "reflect") for offset in (-2, -1, 5, 6)], _copied(-1, 5, "circular")
    ([2, 1, 3, 2], 4)
    """
    if padding_mode == "circular":
        return offset % length
    if padding_mode == "replicate":
        return min(max(offset, 0), length - 1)
    return -offset if offset < 0 else 2 * (length - 1) - offset  # reflect: mirrored without the edge


def _runs(x: int, period: int, width: int) -> int:
    """How many of ``0..x`` have a remainder below ``width`` modulo ``period`` (0 for ``x`` below 0)."""
    if x < 0:
        return 0
    whole, rest = divmod(x + 1, period)
    return whole * min(width, period) + min(rest, width)


def uncovered_length(length: int, out: int, kernel_size: int, stride: int, before: int = 0, dilation: int = 1
                     ) -> int | None:  # fmt: skip
    """How many input pixels at the end of the axis no window reads: those after the last pixel a window reads
    (see :func:`coverage`; None where that is not worked out).

    >>> uncovered_length(64, out=29, kernel_size=7, stride=2)
    1
    >>> uncovered_length(1, out=1, kernel_size=1, stride=5, before=2)
    1
    """
    found = coverage(length, out, kernel_size, stride, before, dilation)
    return None if found is None else found[1]


def smallest_length(output_length: Callable[[int], int], upper: int) -> int | None:
    """The smallest input length in ``1..upper`` whose output length is at least 1.

    ``output_length`` must be non-decreasing in the input length, as every
    formula here is. Returns ``None`` when even ``upper`` gives no output.

    >>> smallest_length(lambda n: conv_length(n, kernel_size=11, stride=4), upper=100)
    11
    """
    if output_length(upper) < 1:
        return None
    low, high = 1, upper
    while low < high:
        middle = (low + high) // 2
        if output_length(middle) >= 1:
            high = middle
        else:
            low = middle + 1
    return low


def _padding_text(padding: Padding) -> str:
    before, after = padding
    return f"2*{before}" if before == after else f"{before}+{after}"


def _kernel_text(kernel_size: int, dilation: int) -> str:
    return str(kernel_size) if dilation == 1 else f"({dilation}*({kernel_size}-1)+1)"


def conv_formula(length: int, out: int, kernel_size: int, stride: int, padding: Padding, dilation: int) -> str:
    """The convolution formula with the numbers put in, as the notes write it.

    >>> conv_formula(227, 55, kernel_size=11, stride=4, padding=(0, 0), dilation=1)
    'floor((227 - 11 + 2*0) / 4) + 1 = 55'
    """
    return (
        f"floor(({length} - {_kernel_text(kernel_size, dilation)} + {_padding_text(padding)}) / {stride}) + 1 = {out}"
    )


def pool_formula(
    length: int,
    out: int,
    kernel_size: int,
    stride: int,
    padding: Padding,
    dilation: int,
    ceil_mode: bool,
) -> str:
    """The pooling formula with the numbers put in.

    In ceil mode, a last window that torch drops (it would start in the right
    padding) shows as ``- 1``; :func:`drops_last_window` says when.

    >>> pool_formula(5, 3, kernel_size=2, stride=2, padding=(1, 1), dilation=1, ceil_mode=True)
    'ceil((5 - 2 + 2*1) / 2) + 1 - 1 = 3'
    """
    if not ceil_mode:
        return conv_formula(length, out, kernel_size, stride, padding, dilation)
    text = f"ceil(({length} - {_kernel_text(kernel_size, dilation)} + {_padding_text(padding)}) / {stride}) + 1"
    if drops_last_window(length, kernel_size, stride, padding, dilation):
        text += " - 1"
    return f"{text} = {out}"


def drops_last_window(length: int, kernel_size: int, stride: int, padding: Padding, dilation: int = 1) -> bool:
    """Whether ceil_mode's extra window would start in the right padding, so torch drops it.

    >>> drops_last_window(5, kernel_size=2, stride=2, padding=(1, 1))
    True
    """
    before, after = padding
    rounded_up = -(-(length + before + after - effective_kernel(kernel_size, dilation)) // stride) + 1
    return (rounded_up - 1) * stride >= length + before


def conv_transpose_formula(
    length: int, out: int, kernel_size: int, stride: int, padding: int, dilation: int, output_padding: int
) -> str:
    """The transposed-convolution formula with the numbers put in.

    >>> conv_transpose_formula(7, 14, kernel_size=4, stride=2, padding=1, dilation=1, output_padding=0)
    '(7 - 1)*2 - 2*1 + 1*(4-1) + 0 + 1 = 14'
    """
    return f"({length} - 1)*{stride} - 2*{padding} + {dilation}*({kernel_size}-1) + {output_padding} + 1 = {out}"
