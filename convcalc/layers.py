"""One layer on one input: torch's rules, checked, and the sizes that come out.

Each public function here takes the spatial input size (one int per axis: 1, 2
or 3 axes) and the layer's parameters under torch's own names, checks them the
way torch 2.x does, and returns a :class:`LayerResult`. Anything torch would
reject raises :class:`~convcalc.errors.InvalidLayerError` with a message that
says which parameter, on which axis, and what would work instead.

>>> conv((227, 227), kernel_size=11, stride=4).output
(55, 55)
>>> max_pool((24, 24), kernel_size=2).output
(12, 12)
>>> conv_transpose((7, 9), kernel_size=4, stride=2, padding=1).output
(14, 18)
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Union

from convcalc import formulas
from convcalc.display import Shown
from convcalc.errors import ConvcalcError, InvalidLayerError

__all__ = [
    "PADDING_MODES",
    "Axis",
    "Family",
    "LayerResult",
    "avg_pool",
    "axis_names",
    "conv",
    "conv_transpose",
    "max_pool",
]

PerAxis = Union[int, Sequence[int]]
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_AXIS_NAMES = {1: ("L",), 2: ("H", "W"), 3: ("D", "H", "W")}


class Family(enum.Enum):
    """The four layer families worked out axis by axis, each named as its function here is.

    >>> Family.of("ConvTranspose2d"), Family.MAX_POOL.torch_name(3)
    (<Family.CONV_TRANSPOSE: 'conv_transpose'>, 'MaxPool3d')
    >>> Family("avg_pool").calculate((5, 5), kernel_size=2).output
    (2, 2)
    """

    CONV = "conv"
    CONV_TRANSPOSE = "conv_transpose"
    MAX_POOL = "max_pool"
    AVG_POOL = "avg_pool"

    @property
    def prefix(self) -> str:
        """torch's class name without the ``1d``/``2d``/``3d``."""
        return _PREFIXES[self]

    @property
    def words(self) -> str:
        """The family in words: ``transposed conv``, ``max pool``."""
        return "transposed conv" if self is Family.CONV_TRANSPOSE else self.value.replace("_", " ")

    @property
    def pool(self) -> bool:
        return self in (Family.MAX_POOL, Family.AVG_POOL)

    def torch_name(self, dims: int) -> str:
        """torch's class for ``dims`` spatial axes: ``Conv2d``."""
        return f"{self.prefix}{dims}d"

    def calculate(self, input_size: Sequence[int], **kwargs: Any) -> LayerResult:
        """The layer on ``input_size``: :func:`conv`, :func:`conv_transpose`, :func:`max_pool` or :func:`avg_pool`."""
        return globals()[self.value](input_size, **kwargs)  # type: ignore[no-any-return]

    @classmethod
    def of(cls, layer: str) -> Family | None:
        """The family of a torch class name (``Conv2d``), or None for a class of no family here."""
        return _BY_PREFIX.get(layer[:-2]) if layer[-2:] in ("1d", "2d", "3d") else None


_PREFIXES = {
    Family.CONV: "Conv",
    Family.CONV_TRANSPOSE: "ConvTranspose",
    Family.MAX_POOL: "MaxPool",
    Family.AVG_POOL: "AvgPool",
}
_BY_PREFIX = {prefix: family for family, prefix in _PREFIXES.items()}


def axis_names(dims: int) -> tuple[str, ...]:
    """torch's names for the spatial axes: ``L``; ``H, W``; ``D, H, W``.

    >>> axis_names(3)
    ('D', 'H', 'W')
    """
    return _AXIS_NAMES[dims]


@dataclass(frozen=True, kw_only=True)
class Axis:
    """What one layer does along one spatial axis."""

    name: str
    input: int
    output: int
    kernel_size: int
    stride: int
    padding: tuple[int, int]
    """Padding as applied, ``(before, after)``; ``'same'`` is resolved here."""
    dilation: int
    output_padding: int = 0
    uncovered: int | None = None
    """Input pixels at the end of the axis that no window reads: those after the last pixel one reads (None for a
    transposed conv, and where it is not worked out: see :func:`convcalc.formulas.coverage`)."""
    unread: int | None = None
    """Input pixels that no window reads, at the ends of the axis and inside it (None as for ``uncovered``)."""
    dropped_window: bool = False
    """ceil_mode only: torch dropped a last window that would have started in the right padding."""
    formula: str = ""


@dataclass(frozen=True, kw_only=True, repr=False)
class LayerResult(Shown):
    """The outcome of one valid layer: sizes per axis, and totals where channels are known.

    Its ``repr`` is one line; ``table()``, rich and Jupyter show the table ``convcalc conv`` prints.
    """

    layer: str
    """torch's class name, e.g. ``Conv2d``."""
    input: tuple[int, ...]
    output: tuple[int, ...]
    axes: tuple[Axis, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    """The layer's keyword arguments after torch's defaults are applied."""
    batch: int | None = None
    in_channels: int | None = None
    out_channels: int | None = None
    params: int | None = None
    """Learnable parameters, ``sum(p.numel() for p in layer.parameters())``."""
    macs: int | None = None
    """Multiply-accumulate operations for one forward pass of the whole batch."""
    stride_from_kernel: bool = False
    """A pool given no stride: torch's default, the kernel size, was taken."""

    def __repr__(self) -> str:
        """One line: the layer, the sizes, the totals where known.

        >>> conv((227, 227), kernel_size=11, stride=4, in_channels=3, out_channels=96)
        <LayerResult Conv2d 1x3x227x227 -> 1x96x55x55, 34,944 params, 105,415,200 MACs>
        """
        sizes = [self.input_shape or self.input, self.output_shape or self.output]
        shapes = " -> ".join("x".join(map(str, size)) for size in sizes)
        counts = "" if self.params is None else f", {self.params:,} params, {self.macs:,} MACs"
        return f"<LayerResult {self.layer} {shapes}{counts}>"

    def explain(self) -> str:
        """The arithmetic, step by step, axis by axis, as ``--explain`` prints it (plain text)."""
        from convcalc.explain import explain

        return explain(self)

    @property
    def family(self) -> Family:
        family = Family.of(self.layer)
        assert family is not None
        return family

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """``(N, C, *input)`` when the channels are known."""
        if self.in_channels is None or self.batch is None:
            return None
        return (self.batch, self.in_channels, *self.input)

    @property
    def output_shape(self) -> tuple[int, ...] | None:
        """``(N, C, *output)`` when the channels are known."""
        if self.out_channels is None or self.batch is None:
            return None
        return (self.batch, self.out_channels, *self.output)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: sizes, every parameter, and the totals."""

        def plain(value: Any) -> Any:
            return list(value) if isinstance(value, tuple) else value

        return {
            "type": self.layer,
            "input_size": list(self.input),
            "output_size": list(self.output),
            **{name: plain(value) for name, value in self.parameters.items()},
            "padding_applied": [list(axis.padding) for axis in self.axes],
            "uncovered": [axis.uncovered for axis in self.axes],
            "unread": [axis.unread for axis in self.axes],
            "batch": self.batch,
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "input_shape": plain(self.input_shape),
            "output_shape": plain(self.output_shape),
            "params": self.params,
            "macs": self.macs,
        }


class _Checker:
    """Per-axis checks for one layer, raising errors that name the layer and axis."""

    def __init__(self, layer: str, input_size: Sequence[int]) -> None:
        self.layer = layer
        size = tuple(input_size)
        if not 1 <= len(size) <= 3:
            raise InvalidLayerError(f"{layer}: the input needs 1, 2 or 3 spatial axes, got {len(size)}")
        self.size = size
        self.names = axis_names(len(size))
        for name, length in zip(self.names, size):
            _require_int("input size", length, layer)
            if length < 1:
                raise InvalidLayerError(
                    f"{layer}: the input size must be at least 1 on axis {name}, got {length}",
                    parameter="input",
                    axis=name,
                )

    def fail(self, message: str, *, parameter: str, axis: str | None = None) -> InvalidLayerError:
        where = f" on axis {axis}" if axis else ""
        return InvalidLayerError(f"{self.layer}: {message.format(where=where)}", parameter=parameter, axis=axis)

    def per_axis(self, parameter: str, value: PerAxis, *, one_for_all: bool = True) -> tuple[int, ...]:
        """One int per axis, from an int (every axis) or a sequence (one per axis).

        A one-item sequence counts for every axis where torch's C++ expands
        it (``one_for_all``); a kernel_size, which sets a conv weight's shape,
        needs one per axis.
        """
        dims = len(self.size)
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        for item in values:
            _require_int(parameter, item, self.layer)
        if not isinstance(value, (tuple, list)) or (one_for_all and len(values) == 1):
            return values * dims
        if len(values) != dims:
            raise self.fail(
                f"{parameter} has {len(values)} values but the layer has {dims} spatial "
                f"axes ({'x'.join(self.names)}): give one int, or one per axis",
                parameter=parameter,
            )
        return values

    def at_least(self, parameter: str, values: tuple[int, ...], minimum: int, why: str = "") -> None:
        for name, value in zip(self.names, values):
            if value < minimum:
                raise self.fail(
                    f"{parameter} must be at least {minimum}{{where}}, got {value}{why}",
                    parameter=parameter,
                    axis=name,
                )

    def window_too_large(
        self,
        axis: str,
        length: int,
        kernel_size: int,
        dilation: int,
        padding: tuple[int, int],
        smallest: int | None,
        fixes: str,
    ) -> InvalidLayerError:
        """The error for a window that does not fit the padded input, naming the smallest input that works."""
        before, after = padding
        span = formulas.effective_kernel(kernel_size, dilation)
        dilated = f" (dilation {dilation}: it spans {span})" if dilation != 1 else ""
        return self.fail(
            f"kernel_size {kernel_size}{dilated} is larger than the padded input {length + before + after}{{where}} "
            f"(input {length}, padding {before}+{after}): use an input of at least {smallest}, {fixes}",
            parameter="kernel_size",
            axis=axis,
        )

    def channels(self, groups: int, in_channels: int | None, out_channels: int | None, batch: int | None) -> int | None:
        """Checks groups against the channels; returns the batch size to use."""
        _require_int("groups", groups, self.layer)
        if groups < 1:
            raise self.fail(f"groups must be at least 1, got {groups}", parameter="groups")
        if (in_channels is None) != (out_channels is None):
            raise ConvcalcError(f"{self.layer}: give both in_channels and out_channels, or neither")
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("batch", batch)):
            if value is not None:
                _require_int(name, value, self.layer)
                if value < 1:
                    raise self.fail(f"{name} must be at least 1, got {value}", parameter=name)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if value is not None and value % groups:
                below, above = value - value % groups, value - value % groups + groups
                fixes = f"{above}" if below == 0 else f"{below} or {above}"
                raise self.fail(
                    f"{name} {value} is not divisible by groups {groups}: use {name} {fixes}, "
                    f"or groups that divide {value}",
                    parameter=name,
                )
        if in_channels is None:
            return None
        return 1 if batch is None else batch


def _pads_channels_by_zero(padding: Sequence[int], dims: int) -> bool:
    """Whether a padding sequence has one extra leading 0 that torch's F.pad spends on the channels.

    F.pad takes pads for up to 3 trailing axes of a non-constant pad, so a
    Conv1d or Conv2d given ``(0, p...)`` pads the channel axis by 0 and works.
    """
    values = tuple(padding)
    return len(values) == dims + 1 <= 3 and values[0] == 0


def _within_int64(check: _Checker, axis: str, **values: int) -> None:
    """torch works sizes out in 64-bit integers: each named intermediate (a padded input, a window's span, an
    output) must be one, or torch's arithmetic overflows where convcalc's would not."""
    for what, value in values.items():
        if not -formulas.INT64 <= value < formulas.INT64:
            words = what.replace("_", " ")
            raise check.fail(
                f"the {words} {value}{{where}} is beyond torch's 64-bit integers (at most {formulas.INT64 - 1}), "
                "which it works sizes out in",
                parameter="input",
                axis=axis,
            )


def _coverage(length: int, out: int, kernel_size: int, stride: int, before: int, dilation: int, after: int = 0,
              padding_mode: str = "zeros") -> dict[str, Any]:  # fmt: skip
    found = formulas.coverage(length, out, kernel_size, stride, before, dilation, after, padding_mode)
    unread, uncovered = (None, None) if found is None else found
    return {"unread": unread, "uncovered": uncovered}


def _require_int(parameter: str, value: object, layer: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidLayerError(f"{layer}: {parameter} must be an int, got {value!r}", parameter=parameter)


def conv(
    input_size: Sequence[int],
    *,
    in_channels: int | None = None,
    out_channels: int | None = None,
    kernel_size: PerAxis,
    stride: PerAxis = 1,
    padding: PerAxis | Literal["same", "valid"] = 0,
    dilation: PerAxis = 1,
    groups: int = 1,
    bias: bool = True,
    padding_mode: str = "zeros",
    batch: int | None = None,
) -> LayerResult:
    """``torch.nn.Conv1d/2d/3d`` on an input of ``input_size`` (spatial axes only).

    The number of axes picks the class: ``(64,)`` is Conv1d, ``(64, 64)`` Conv2d.
    Give ``in_channels`` and ``out_channels`` (and optionally ``batch``, default
    1) to get the full shapes, the parameter count and the MACs.

    >>> result = conv((64, 64), kernel_size=7, stride=2, in_channels=3, out_channels=64)
    >>> result.output, result.output_shape, result.params
    ((29, 29), (1, 64, 29, 29), 9472)
    >>> [axis.uncovered for axis in result.axes]
    [1, 1]
    >>> conv((10,), kernel_size=4, padding="same").axes[0].padding
    (1, 2)
    """
    check = _Checker(f"Conv{len(tuple(input_size))}d", input_size)
    kernel = check.per_axis("kernel_size", kernel_size, one_for_all=False)
    strides = check.per_axis("stride", stride)
    dilations = check.per_axis("dilation", dilation)
    run_batch = check.channels(groups, in_channels, out_channels, batch)
    if padding_mode not in PADDING_MODES:
        raise check.fail(
            f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}",
            parameter="padding_mode",
        )
    check.at_least("kernel_size", kernel, 1)
    check.at_least("stride", strides, 1)
    check.at_least("dilation", dilations, 1)

    if isinstance(padding, str):
        if padding == "valid":
            pads = [(0, 0)] * len(kernel)
        elif padding == "same":
            for name, value in zip(check.names, strides):
                if value != 1:
                    raise check.fail(
                        f"padding='same' needs stride 1 on every axis, got stride {value}{{where}}: "
                        "use stride 1, or an explicit padding",
                        parameter="stride",
                        axis=name,
                    )
            pads = [formulas.same_padding(k, d) for k, d in zip(kernel, dilations)]
            if padding_mode != "zeros" and not isinstance(dilation, int) and len(tuple(dilation)) < len(kernel):
                # torch's module zips a one-item dilation with kernel_size, so F.pad pads the first axis only
                pads = pads[:1] + [(0, 0)] * (len(kernel) - 1)
        else:
            raise check.fail(
                f"padding must be an int, one int per axis, 'same' or 'valid', got {padding!r}",
                parameter="padding",
            )
    else:
        if (
            padding_mode != "zeros"
            and isinstance(padding, (tuple, list))
            and _pads_channels_by_zero(padding, len(kernel))
        ):
            # F.pad reads one more pair as the channel axis; a zero there changes nothing
            padding = tuple(padding)[1:]
        # F.pad, which applies the other padding modes, needs one padding per axis
        values = check.per_axis("padding", padding, one_for_all=padding_mode == "zeros")
        if padding_mode == "zeros":
            check.at_least(
                "padding", values, 0, " (negative padding crops only with padding_mode reflect, replicate or circular)"
            )
        pads = [(p, p) for p in values]

    for name, length, (before, after) in zip(check.names, check.size, pads):
        largest = max(before, after)
        if padding_mode == "reflect" and largest >= length:
            raise check.fail(
                f"padding {largest} with padding_mode='reflect' must be smaller than the input {length}{{where}}: "
                f"use padding at most {length - 1}, or an input of at least {largest + 1}",
                parameter="padding",
                axis=name,
            )
        if padding_mode == "circular" and largest > length:
            raise check.fail(
                f"padding {largest} with padding_mode='circular' wraps around more than once on an input of "
                f"{length}{{where}}: use padding at most {length}, or an input of at least {largest}",
                parameter="padding",
                axis=name,
            )

    axes = []
    for name, length, k, s, (before, after), d in zip(check.names, check.size, kernel, strides, pads, dilations):
        out = formulas.conv_length(length, k, s, (before, after), d)
        _within_int64(check, name, padded_input=length + before + after, window=formulas.effective_kernel(k, d),
                      output=out)  # fmt: skip
        if out < 1:
            smallest = formulas.effective_kernel(k, d) - before - after
            raise check.window_too_large(
                name, length, k, d, (before, after), smallest, "more padding, or a smaller kernel_size or dilation"
            )
        axes.append(
            Axis(
                name=name,
                input=length,
                output=out,
                kernel_size=k,
                stride=s,
                padding=(before, after),
                dilation=d,
                **_coverage(length, out, k, s, before, d, after, padding_mode),
                formula=formulas.conv_formula(length, out, k, s, (before, after), d),
            )
        )

    output = tuple(axis.output for axis in axes)
    params = macs = None
    if in_channels is not None and out_channels is not None and run_batch is not None:
        weights = out_channels * (in_channels // groups) * math.prod(kernel)
        params = weights + (out_channels if bias else 0)
        macs = run_batch * weights * math.prod(output)
    return LayerResult(
        layer=check.layer,
        input=check.size,
        output=output,
        axes=tuple(axes),
        parameters={
            "kernel_size": kernel,
            "stride": strides,
            "padding": padding if isinstance(padding, str) else tuple(p for p, _ in pads),
            "dilation": dilations,
            "groups": groups,
            "bias": bias,
            "padding_mode": padding_mode,
        },
        batch=run_batch,
        in_channels=in_channels,
        out_channels=out_channels,
        params=params,
        macs=macs,
    )


def conv_transpose(
    input_size: Sequence[int],
    *,
    in_channels: int | None = None,
    out_channels: int | None = None,
    kernel_size: PerAxis,
    stride: PerAxis = 1,
    padding: PerAxis = 0,
    output_padding: PerAxis = 0,
    groups: int = 1,
    bias: bool = True,
    dilation: PerAxis = 1,
    padding_mode: str = "zeros",
    batch: int | None = None,
) -> LayerResult:
    """``torch.nn.ConvTranspose1d/2d/3d`` on an input of ``input_size``.

    An output size of 0 is rejected, even though one CPU backend of torch
    returns an empty tensor for it.

    >>> conv_transpose((7, 9), kernel_size=4, stride=2, padding=1).output
    (14, 18)
    >>> conv_transpose((5,), kernel_size=3, stride=2, output_padding=1).output
    (12,)
    """
    check = _Checker(f"ConvTranspose{len(tuple(input_size))}d", input_size)
    if padding_mode != "zeros":
        raise check.fail(
            f"only padding_mode='zeros' exists for transposed convolutions, got {padding_mode!r}",
            parameter="padding_mode",
        )
    if isinstance(padding, str):
        raise check.fail(
            f"padding must be an int or one int per axis, got {padding!r} "
            "('same' and 'valid' exist only for Conv layers)",
            parameter="padding",
        )
    kernel = check.per_axis("kernel_size", kernel_size, one_for_all=False)
    strides = check.per_axis("stride", stride)
    pads = check.per_axis("padding", padding)
    out_pads = check.per_axis("output_padding", output_padding)
    dilations = check.per_axis("dilation", dilation)
    run_batch = check.channels(groups, in_channels, out_channels, batch)
    check.at_least("kernel_size", kernel, 1)
    check.at_least("stride", strides, 1)
    check.at_least("dilation", dilations, 1)
    check.at_least("padding", pads, 0)
    check.at_least("output_padding", out_pads, 0)

    axes = []
    for name, length, k, s, p, op, d in zip(check.names, check.size, kernel, strides, pads, out_pads, dilations):
        if op >= s and op >= d:
            raise check.fail(
                f"output_padding {op} must be smaller than stride {s} or dilation {d}{{where}}: "
                f"use output_padding at most {max(s, d) - 1}",
                parameter="output_padding",
                axis=name,
            )
        out = formulas.conv_transpose_length(length, k, s, p, d, op)
        _within_int64(check, name, strided_input=(length - 1) * s, padding_twice=2 * p, window=d * (k - 1),
                      cropped=(length - 1) * s - 2 * p, uncropped=(length - 1) * s - 2 * p + d * (k - 1),
                      output=out)  # fmt: skip
        formula = formulas.conv_transpose_formula(length, out, k, s, p, d, op)
        if out < 1:
            uncropped = formulas.conv_transpose_length(length, k, s, 0, d, op)
            smallest = formulas.smallest_length(
                lambda n: formulas.conv_transpose_length(n, k, s, p, d, op), upper=2 * p + 2
            )
            raise check.fail(
                f"the output would be {out}{{where}} ({formula}): padding {p} crops more than the layer makes; "
                f"use padding at most {(uncropped - 1) // 2}, or an input of at least {smallest}",
                parameter="padding",
                axis=name,
            )
        axes.append(
            Axis(
                name=name,
                input=length,
                output=out,
                kernel_size=k,
                stride=s,
                padding=(p, p),
                dilation=d,
                output_padding=op,
                formula=formula,
            )
        )

    output = tuple(axis.output for axis in axes)
    params = macs = None
    if in_channels is not None and out_channels is not None and run_batch is not None:
        weights = in_channels * (out_channels // groups) * math.prod(kernel)
        params = weights + (out_channels if bias else 0)
        macs = run_batch * weights * math.prod(check.size)
    return LayerResult(
        layer=check.layer,
        input=check.size,
        output=output,
        axes=tuple(axes),
        parameters={
            "kernel_size": kernel,
            "stride": strides,
            "padding": pads,
            "output_padding": out_pads,
            "groups": groups,
            "bias": bias,
            "dilation": dilations,
            "padding_mode": padding_mode,
        },
        batch=run_batch,
        in_channels=in_channels,
        out_channels=out_channels,
        params=params,
        macs=macs,
    )


def max_pool(
    input_size: Sequence[int],
    *,
    kernel_size: PerAxis,
    stride: PerAxis | None = None,
    padding: PerAxis = 0,
    dilation: PerAxis = 1,
    ceil_mode: bool = False,
    in_channels: int | None = None,
    batch: int | None = None,
) -> LayerResult:
    """``torch.nn.MaxPool1d/2d/3d`` on an input of ``input_size``.

    ``stride`` defaults to ``kernel_size``, as in torch. ``in_channels`` only
    serves to report full shapes; a pool keeps the channel count.

    >>> max_pool((55, 55), kernel_size=3, stride=2).output
    (27, 27)
    >>> max_pool((5,), kernel_size=2, stride=2, padding=1, ceil_mode=True).output
    (3,)
    """
    return _pool("Max", input_size, kernel_size, stride, padding, dilation, ceil_mode, in_channels, batch)


def avg_pool(
    input_size: Sequence[int],
    *,
    kernel_size: PerAxis,
    stride: PerAxis | None = None,
    padding: PerAxis = 0,
    ceil_mode: bool = False,
    in_channels: int | None = None,
    batch: int | None = None,
) -> LayerResult:
    """``torch.nn.AvgPool1d/2d/3d`` on an input of ``input_size``.

    AvgPool has no dilation. AvgPool3d also needs the unpadded input to be at
    least ``kernel_size`` on every axis; 1-D and 2-D do not.

    >>> avg_pool((2, 2), kernel_size=3, stride=2, ceil_mode=True).output
    (1, 1)
    """
    return _pool("Avg", input_size, kernel_size, stride, padding, 1, ceil_mode, in_channels, batch)


def _pool(
    kind: Literal["Max", "Avg"],
    input_size: Sequence[int],
    kernel_size: PerAxis,
    stride: PerAxis | None,
    padding: PerAxis,
    dilation: PerAxis,
    ceil_mode: bool,
    in_channels: int | None,
    batch: int | None,
) -> LayerResult:
    check = _Checker(f"{kind}Pool{len(tuple(input_size))}d", input_size)
    if isinstance(padding, str):
        raise check.fail(
            f"padding must be an int or one int per axis, got {padding!r} "
            "('same' and 'valid' exist only for Conv layers)",
            parameter="padding",
        )
    kernel = check.per_axis("kernel_size", kernel_size)
    strides = kernel if stride is None else check.per_axis("stride", stride)
    pads = check.per_axis("padding", padding)
    dilations = check.per_axis("dilation", dilation)
    run_batch = check.channels(1, in_channels, in_channels, batch)
    check.at_least("kernel_size", kernel, 1)
    check.at_least("stride", strides, 1)
    check.at_least("padding", pads, 0)
    check.at_least("dilation", dilations, 1)
    # torch's pools take these as 32-bit integers, but for MaxPool1d, which takes 64-bit ones (and checks its output
    # size as a 32-bit one, below)
    limited = {} if check.layer == "MaxPool1d" else {"kernel_size": kernel, "stride": strides, "padding": pads,
                                                     "dilation": dilations}  # fmt: skip
    for parameter, values in limited.items():
        for name, value in zip(check.names, values):
            if value >= 2**31:
                raise check.fail(
                    f"{parameter} {value}{{where}} is beyond the 32-bit integers torch's {check.layer} takes "
                    f"(at most {2**31 - 1})",
                    parameter=parameter,
                    axis=name,
                )
    for name, k, p in zip(check.names, kernel, pads):
        if p > k // 2:
            raise check.fail(
                f"padding {p} is more than half of kernel_size {k}{{where}}: pools allow padding at most "
                f"kernel_size // 2 = {k // 2}",
                parameter="padding",
                axis=name,
            )
    if check.layer == "AvgPool3d":
        for name, length, k in zip(check.names, check.size, kernel):
            if length < k:
                raise check.fail(
                    f"the input {length} is smaller than kernel_size {k}{{where}}; AvgPool3d needs the "
                    f"unpadded input at least kernel_size: use an input of at least {k}, or kernel_size at most "
                    f"{length}",
                    parameter="kernel_size",
                    axis=name,
                )

    axes = []
    for name, length, k, s, p, d in zip(check.names, check.size, kernel, strides, pads, dilations):
        out = formulas.pool_length(length, k, s, (p, p), d, ceil_mode)
        _within_int64(check, name, padded_input=length + 2 * p, output=out)
        if out < 1:
            smallest = formulas.smallest_length(
                lambda n: formulas.pool_length(n, k, s, (p, p), d, ceil_mode),
                upper=formulas.effective_kernel(k, d),
            )
            raise check.window_too_large(name, length, k, d, (p, p), smallest, "or a smaller kernel_size")
        if check.layer == "MaxPool1d" and (out % 2**32 == 0 or out % 2**32 >= 2**31):
            wrapped = out % 2**32 - (2**32 if out % 2**32 >= 2**31 else 0)
            raise check.fail(
                f"the output size {out}{{where}} reads as {wrapped} in the 32-bit integer torch's max_pool1d checks "
                "it as, which it refuses: use a smaller input",
                parameter="input",
                axis=name,
            )
        axes.append(
            Axis(
                name=name,
                input=length,
                output=out,
                kernel_size=k,
                stride=s,
                padding=(p, p),
                dilation=d,
                **_coverage(length, out, k, s, p, d),
                dropped_window=ceil_mode and formulas.drops_last_window(length, k, s, (p, p), d),
                formula=formulas.pool_formula(length, out, k, s, (p, p), d, ceil_mode),
            )
        )

    parameters: dict[str, Any] = {"kernel_size": kernel, "stride": strides, "padding": pads}
    if kind == "Max":
        parameters["dilation"] = dilations
    parameters["ceil_mode"] = ceil_mode
    known = in_channels is not None
    return LayerResult(
        layer=check.layer,
        input=check.size,
        output=tuple(axis.output for axis in axes),
        axes=tuple(axes),
        parameters=parameters,
        batch=run_batch,
        in_channels=in_channels,
        out_channels=in_channels,
        params=0 if known else None,
        macs=0 if known else None,
        stride_from_kernel=stride is None,
    )
