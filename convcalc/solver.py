"""The layer settings that turn one size into another: ``convcalc solve``.

:func:`solve` searches kernel_size, stride, padding and dilation (and
output_padding for transposed convs, ceil_mode for pools) within bounds, keeps
what torch accepts and what gives the wanted size on every axis, and sorts the
answers the way a designer would pick them.

>>> [answer.short() for answer in solve((64,), (32,))[:3]]
['k=2 s=2 p=0', 'k=3 s=2 p=1', 'k=4 s=2 p=1']
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from convcalc import formulas, layers
from convcalc.display import Shown
from convcalc.errors import ConvcalcError, InvalidLayerError
from convcalc.layers import Family

__all__ = ["FAMILIES", "MAX_KERNEL", "MAX_SETTINGS", "MAX_STRIDE", "Answer", "Solutions", "nearest_outputs",
           "solutions", "solve", "widened"]  # fmt: skip

FAMILIES = tuple(family.value for family in Family)
MAX_KERNEL, MAX_STRIDE = 7, 4
"""The bounds a search starts from where none is given."""
MAX_SETTINGS = 200_000
"""Most settings one search may try: a bound that keeps every search under a few seconds."""


@dataclass(frozen=True, kw_only=True)
class Answer:
    """One setting that gives the wanted size on every axis."""

    kernel_size: int
    stride: int
    padding: int
    dilation: int = 1
    output_padding: int | None = None
    """Transposed convs only."""
    ceil_mode: bool | None = None
    """Pools only."""
    covers_all: bool
    """Every input pixel is read by some window: no gaps between windows, nothing lost to the floor.
    For a transposed conv: every output pixel receives some input (no holes)."""
    same: bool
    """The padding is what torch's ``padding='same'`` works out to (stride 1, symmetric)."""

    def _settings(self) -> list[tuple[str, str, int | bool]]:
        """(short name, option, value) of each setting worth naming: dilation and the rest only where they matter."""
        named: list[tuple[str, str, int | bool]] = [
            ("k", "--kernel-size", self.kernel_size),
            ("s", "--stride", self.stride),
            ("p", "--padding", self.padding),
        ]
        if self.dilation != 1:
            named.append(("d", "--dilation", self.dilation))
        if self.output_padding:
            named.append(("op", "--output-padding", self.output_padding))
        if self.ceil_mode:
            named.append(("ceil", "--ceil-mode", True))
        return named

    def short(self) -> str:
        """``k=3 s=2 p=1`` (and ``d``, ``op``, ``ceil`` where they matter)."""
        return " ".join(name if value is True else f"{name}={value}" for name, _, value in self._settings())

    def options(self) -> str:
        """The same as convcalc options: ``--kernel-size 3 --stride 2 --padding 1``."""
        return " ".join(option if value is True else f"{option} {value}" for _, option, value in self._settings())

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, every field (``solve --json``)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass(frozen=True, kw_only=True, repr=False)
class Solutions(Shown, Sequence[Answer]):
    """The answers of one search, best first, with what was searched: a sequence of :class:`Answer`."""

    input_size: tuple[int, ...]
    output_size: tuple[int, ...]
    family: Family
    answers: tuple[Answer, ...]
    max_kernel: int
    """The bounds searched within."""
    max_stride: int
    widened: bool = False
    """No setting within the default bounds does it: these are within the wider bounds above."""
    limit: int = 10
    """How many answers the table shows."""

    def __len__(self) -> int:
        return len(self.answers)

    def __getitem__(self, index: Any) -> Any:
        return self.answers[index]

    def __repr__(self) -> str:
        """One line: what was searched, how many answers, the best.

        >>> solutions((64,), (32,))
        <Solutions Conv1d 64 -> 32: 7 answers, best k=2 s=2 p=0>
        """
        best = f", best {self.answers[0].short()}" if self.answers else ""
        return (f"<Solutions {self.family.torch_name(len(self.input_size))} {_size(self.input_size)} -> "
                f"{_size(self.output_size)}: {len(self.answers)} answers{best}>")  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``solve --json``): what was searched, how many answers, the first ``limit``."""
        shown = [answer.as_dict() for answer in self.answers[: self.limit]]
        return {"input_size": list(self.input_size), "output_size": list(self.output_size),
                "family": self.family.value, "max_kernel": self.max_kernel, "max_stride": self.max_stride,
                "count": len(self.answers), "answers": shown}  # fmt: skip


def _size(size: Sequence[int]) -> str:
    return "x".join(map(str, size))


def solutions(input_size: Sequence[int], output_size: Sequence[int], *, family: Family | str = Family.CONV,
              max_kernel: int | None = None, max_stride: int | None = None, limit: int = 10, **fixed: Any
              ) -> Solutions:  # fmt: skip
    """:func:`solve`, as ``convcalc solve`` runs it: within ``max_kernel`` and ``max_stride`` where given, and where
    neither is, within the defaults, widened (:func:`widened`) until something is found.

    >>> found = solutions((227, 227), (55, 55))  # the notes' AlexNet layer
    >>> found[0].short(), found.max_kernel, found.widened
    ('k=11 s=4 p=0', 15, True)
    """
    family = _family(family)
    if max_kernel is None and max_stride is None:
        answers, kernel, stride = widened(input_size, output_size, family=family, **fixed)
    else:
        kernel, stride = max_kernel or MAX_KERNEL, max_stride or MAX_STRIDE
        answers = solve(input_size, output_size, family=family, max_kernel=kernel, max_stride=stride, **fixed)
    return Solutions(input_size=tuple(input_size), output_size=tuple(output_size), family=family,
                     answers=tuple(answers), max_kernel=kernel, max_stride=stride,
                     widened=bool(answers) and (kernel, stride) != (MAX_KERNEL, MAX_STRIDE) and max_kernel is None
                     and max_stride is None, limit=limit)  # fmt: skip


def widened(input_size: Sequence[int], output_size: Sequence[int], *, family: Family | str = Family.CONV,
            max_kernel: int = MAX_KERNEL, max_stride: int = MAX_STRIDE, **bounds: Any
            ) -> tuple[list[Answer], int, int]:  # fmt: skip
    """:func:`solve` within ``max_kernel`` and ``max_stride``, and where that finds nothing, within twice as much
    (and twice again...) while the search stays within :data:`MAX_SETTINGS`: the answers and the bounds that found
    them (no answers, and the widest bounds searched, where none finds any).

    >>> answers, kernel, stride = widened((227,), (55,))  # the notes' AlexNet layer: kernel_size 11
    >>> answers[0].short(), kernel, stride
    ('k=11 s=4 p=0', 15, 8)
    """
    kernel, stride = max_kernel, max_stride
    while True:
        try:
            answers = solve(input_size, output_size, family=family, max_kernel=kernel, max_stride=stride, **bounds)
        except ConvcalcError:
            if (kernel, stride) == (max_kernel, max_stride):
                raise
            return [], (kernel - 1) // 2, stride // 2  # wider would search too long: the widest searched
        if answers or (bounds.get("kernel_size") is not None and bounds.get("stride") is not None):
            return answers, kernel, stride  # found, or nothing left to widen
        kernel, stride = 2 * kernel + 1, 2 * stride


def _values(fixed: int | None, low: int, high: int) -> range:
    return range(fixed, fixed + 1) if fixed is not None else range(low, high + 1)


def solve(
    input_size: Sequence[int],
    output_size: Sequence[int],
    *,
    family: Family | str = Family.CONV,
    kernel_size: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
    dilation: int | None = None,
    output_padding: int | None = None,
    ceil_mode: bool | None = None,
    max_kernel: int = MAX_KERNEL,
    max_stride: int = MAX_STRIDE,
    max_dilation: int = 1,
) -> list[Answer]:
    """Every setting within the bounds that torch accepts and that maps ``input_size`` to ``output_size``.

    The same setting must work on every axis. Fixed parameters (``kernel_size=3``)
    narrow the search; the ``max_*`` bounds keep it finite. Sorted best first:
    settings that cover every input pixel, then the stride closest to the size
    ratio, then no dilation, the smaller kernel and the smaller padding.
    """
    if len(input_size) != len(output_size):
        raise ConvcalcError(f"the input has {len(input_size)} axes but the output {len(output_size)}: give both alike")
    bounds = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
                  output_padding=output_padding, ceil_mode=ceil_mode, max_kernel=max_kernel, max_stride=max_stride,
                  max_dilation=max_dilation)  # fmt: skip
    family = _family(family)
    wanted = tuple(output_size)
    answers = [_answer(family, result, extra) for result, extra in _results(input_size, family, **bounds)
               if result.output == wanted]  # fmt: skip
    answers = [answer for answer in answers if answer is not None]
    ratio = Fraction(max(output_size), max(input_size))
    if family is not Family.CONV_TRANSPOSE:
        ratio = 1 / ratio
    answers.sort(
        key=lambda a: (not a.covers_all, abs(a.stride - ratio), a.dilation, a.kernel_size, a.padding, a.short())
    )
    return answers


def _family(family: Family | str) -> Family:
    try:
        return Family(family)
    except ValueError:
        raise ConvcalcError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}") from None


def _results(
    input_size: Sequence[int],
    family: Family,
    *,
    kernel_size: int | None,
    stride: int | None,
    padding: int | None,
    dilation: int | None,
    output_padding: int | None,
    ceil_mode: bool | None,
    max_kernel: int,
    max_stride: int,
    max_dilation: int,
) -> Iterator[tuple[layers.LayerResult, int | bool]]:
    """Every setting within the bounds that torch accepts on ``input_size``: its result and its extra setting
    (output_padding or ceil_mode). Refuses at once a search of more than MAX_SETTINGS settings."""
    pool = family.pool
    transposed = family is Family.CONV_TRANSPOSE
    kernels, strides = _values(kernel_size, 1, max_kernel), _values(stride, 1, max_stride)
    dilations = _values(dilation, 1, 1 if family is Family.AVG_POOL else max_dilation)
    if not (kernels and strides and dilations):
        return
    # ranges hold their last value at [-1]: max() would walk them, for hours at --max-kernel 10**12; a fixed value
    # below 1 (an invalid layer, every time) counts as 1, so that the bound still holds
    widest = max(kernels[-1], 1)
    paddings = 1 if padding is not None else (widest // 2 + 1 if pool else max(dilations[-1], 1) * (widest - 1) + 1)
    extras = 1 if not (pool or transposed) else (2 if pool else max(strides[-1], dilations[-1], 1))
    settings = len(kernels) * len(strides) * len(dilations) * paddings * extras
    if settings > MAX_SETTINGS:
        raise ConvcalcError(
            f"the search would try about {settings:,} settings (at most {MAX_SETTINGS:,}): "
            "lower --max-kernel, --max-stride or --max-dilation, or fix a parameter"
        )
    for k, s, d in itertools.product(kernels, strides, dilations):
        most_padding = k // 2 if pool else formulas.effective_kernel(k, d) - 1
        for p in _values(padding, 0, most_padding):
            for extra in _extras(family, s, d, output_padding, ceil_mode):
                result = _run(family, input_size, k, s, p, d, extra)
                if result is not None:
                    yield result, extra


def _extras(family: Family, s: int, d: int, output_padding: int | None, ceil_mode: bool | None) -> list[int | bool]:
    if family is Family.CONV_TRANSPOSE:
        return list(_values(output_padding, 0, max(s, d) - 1))
    if family.pool:
        return [ceil_mode] if ceil_mode is not None else [False, True]
    return [0]


def _run(family: Family, input_size: Sequence[int], k: int, s: int, p: int, d: int, extra: int | bool
         ) -> layers.LayerResult | None:  # fmt: skip
    settings: dict[str, Any] = {"kernel_size": k, "stride": s, "padding": p}
    if family is not Family.AVG_POOL:
        settings["dilation"] = d
    if family is Family.CONV_TRANSPOSE:
        settings["output_padding"] = int(extra)
    elif family.pool:
        settings["ceil_mode"] = bool(extra)
    try:
        return family.calculate(input_size, **settings)
    except InvalidLayerError:
        return None


def _answer(family: Family, result: layers.LayerResult, extra: int | bool) -> Answer | None:
    if family.pool and extra and all(_floor_gives(axis) for axis in result.axes):
        return None  # ceil_mode changes nothing here: list the plain setting only
    k, s, d = result.axes[0].kernel_size, result.axes[0].stride, result.axes[0].dilation
    p = result.axes[0].padding[0]
    span = formulas.effective_kernel(k, d)
    transposed = family is Family.CONV_TRANSPOSE
    # transposed: every output pixel receives some input (no holes between the kernel's copies); else every input
    # pixel is read by some window (formulas.coverage)
    covers = span >= s and d == 1 if transposed else all(axis.unread == 0 for axis in result.axes)
    return Answer(
        kernel_size=k,
        stride=s,
        padding=p,
        dilation=d,
        output_padding=int(extra) if transposed else None,
        ceil_mode=bool(extra) if family.pool else None,
        covers_all=covers,
        same=family is Family.CONV and s == 1 and formulas.same_padding(k, d) == (p, p),
    )


def _floor_gives(axis: layers.Axis) -> bool:
    """Whether floor mode gives this axis the same size as ceil mode did."""
    floor = formulas.pool_length(axis.input, axis.kernel_size, axis.stride, axis.padding, axis.dilation, False)
    return floor == axis.output


def nearest_outputs(
    input_size: Sequence[int],
    output_size: Sequence[int],
    reach: int = 64,
    *,
    family: Family | str = Family.CONV,
    **bounds: Any,
) -> list[tuple[int, ...]]:
    """The nearest output sizes below and above the wanted one (every axis moved alike) that have answers.

    One pass over the settings, whatever the reach: each setting's output is worked out once.
    """
    full = dict(kernel_size=None, stride=None, padding=None, dilation=None, output_padding=None, ceil_mode=None,
                max_kernel=MAX_KERNEL, max_stride=MAX_STRIDE, max_dilation=1) | bounds  # fmt: skip
    reached = {result.output for result, _ in _results(input_size, _family(family), **full)}
    found = []
    for direction in (-1, 1):
        for step in range(1, reach + 1):
            candidate = tuple(n + direction * step for n in output_size)
            if min(candidate) < 1:
                break
            if candidate in reached:
                found.append(candidate)
                break
    return found
