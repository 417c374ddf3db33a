"""What each supported ``torch.nn`` layer does to a full tensor shape.

Every entry knows the layer's keyword arguments (torch's names and defaults),
which of them follow from the incoming shape (``in_channels``, ``num_features``,
...), and a function from the incoming shape to a :class:`Step`: the output
shape, parameter and buffer counts, MACs, and what the layer does to the
receptive field along each spatial axis. Errors are raised without the layer's
position: :mod:`convcalc.network` adds that once, at its boundary.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from convcalc import layers, tensor_ops
from convcalc.errors import InvalidLayerError
from convcalc.schema import FLOAT32_MAX, INT64, REQUIRED, Arg, Type, float32
from convcalc.step import SAME, Step, Window, wrap_dim

if TYPE_CHECKING:
    from fractions import Fraction

__all__ = ["ELEMENTWISE", "IN_PLACE_NO_OVERLAP", "LAYERS", "REQUIRED", "Form", "Kind", "Step", "Window", "overlaps"]

Shape = tuple[int, ...]


class Form(enum.Enum):
    """How torch code runs an entry of the catalogue."""

    MODULE = "module"
    """``nn.X(**arguments)``, called on the tensor."""
    ATTENTION = "attention"
    """``nn.MultiheadAttention``, called as self-attention: ``(x, x, x, need_weights=False)[0]``."""
    METHOD = "method"
    """A method of the tensor: ``x.permute(0, 2, 3, 1)``."""
    PARAMETER = "parameter"
    """A learned tensor that is no torch.nn class: a small module convcalc writes (ClassToken...)."""
    FUNCTION = "function"
    """A function of ``torch.nn.functional``: ``F.pad(x, (0, 0, 0, 1))``."""
    TORCHVISION = "torchvision"
    """A class of torchvision's (``torchvision.ops``): written as a small module of its own (the same computation),
    so that the code needs no torchvision."""


@dataclass(frozen=True, kw_only=True)
class Kind:
    """One torch.nn class: its arguments (the one declaration of each), the checks torch makes, and its shape rule."""

    name: str
    args: tuple[Arg, ...]
    """torch's arguments in torch's order."""
    apply: Callable[[Shape, dict[str, Any]], Step]
    """The forward pass: torch's checks against the input, and the output shape and counts."""
    check: Callable[[dict[str, Any]], str | None] | None = None
    """The constructor's checks across arguments (the given ones and the defaults): the problem, or None."""
    form: Form = Form.MODULE
    varargs: bool = False
    """Whether torch's method takes its one list argument as separate positional values (``x.permute(0, 2, 1)``)."""
    follows: bool = False
    """Whether a size it takes as an expression follows each input (a method or function, worked out on every
    call), rather than being fixed when the network is built (a module's constructor arguments)."""
    needs: tuple[tuple[str, str], ...] = ()
    """(argument, other): torch takes the argument only where the other is given too (``x.mean(keepdim=True)`` is a
    TypeError: ``keepdim`` needs ``dim``)."""

    @property
    def arguments(self) -> dict[str, Any]:
        """Argument names and defaults (REQUIRED where none), in torch's order."""
        return {arg.name: arg.default for arg in self.args}

    @property
    def inferred(self) -> dict[str, Callable[[Shape], int]]:
        """Arguments that follow from the incoming shape, as torch's Lazy modules infer them."""
        return {arg.name: arg.infer for arg in self.args if arg.infer is not None}


def _fail(message: str) -> InvalidLayerError:
    return InvalidLayerError(message)


def _rank(shape: Shape, allowed: tuple[int, ...], what: str) -> None:
    if len(shape) not in allowed:
        ranks = " or ".join(f"{n}-D" for n in allowed)
        raise _fail(f"needs a {ranks} input ({what}), got {len(shape)}-D {_text(shape)}")


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _channel_axis(shape: Shape, dims: int) -> int:
    """Index of the channel axis of a (N, C, *spatial) or unbatched (C, *spatial) input."""
    return len(shape) - dims - 1


def _check_match(argument: str, given: int, actual: int, what: str) -> None:
    if given != actual:
        raise InvalidLayerError(
            f"{argument} is {given} but the input has {actual} {what}: use {argument}: {actual}, or leave it out",
            parameter=argument,
        )


def _windows(result: layers.LayerResult) -> tuple[Window, ...]:
    return tuple(Window(axis.dilation * (axis.kernel_size - 1) + 1, axis.stride) for axis in result.axes)


def _strip(error: InvalidLayerError, layer: str) -> InvalidLayerError:
    """The core's message without its leading class name, which the stack names anyway."""
    text = str(error)
    prefix = f"{layer}: "
    return InvalidLayerError(
        text[len(prefix) :] if text.startswith(prefix) else text, parameter=error.parameter, axis=error.axis
    )


def _conv(dims: int, transposed: bool) -> Callable[[Shape, dict[str, Any]], Step]:
    name = f"{'ConvTranspose' if transposed else 'Conv'}{dims}d"

    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        _rank(shape, (dims + 1, dims + 2), f"(N, C, {_spatial_names(dims)}) or unbatched")
        c = _channel_axis(shape, dims)
        if args["in_channels"] != shape[c] and len(shape) == dims + 2 and args["in_channels"] == shape[-1] != shape[c]:
            raise InvalidLayerError(
                f"in_channels is {args['in_channels']} but the input has {shape[c]} channels in dim {c}; the input "
                f"looks channels-last (N, {_spatial_names(dims)}, C), and torch's {name} reads dim 1 as the channels: "
                f"write it channels first, (N, C, {_spatial_names(dims)}), or permute it first: "
                f"permute: {[0, len(shape) - 1, *range(1, len(shape) - 1)]}",
                parameter="in_channels",
            )
        _check_match("in_channels", args["in_channels"], shape[c], "channels")
        batch = shape[0] if c == 1 else 1
        call = layers.conv_transpose if transposed else layers.conv
        try:
            result = call(shape[c + 1 :], batch=batch, **args)
        except InvalidLayerError as error:
            raise _strip(error, name) from None
        assert result.params is not None and result.macs is not None
        if transposed:
            from fractions import Fraction  # strides below one pixel; a stack without them never imports it

            windows = tuple(
                Window((axis.dilation * (axis.kernel_size - 1)) // axis.stride + 1, Fraction(1, axis.stride))
                for axis in result.axes
            )
        else:
            windows = _windows(result)
        return Step(
            output=(*shape[:c], args["out_channels"], *result.output),
            params=result.params,
            macs=result.macs,
            windows=windows,
            mixes=(c,),  # every output channel reads every input channel of its group
            uncovered=() if transposed else tuple(axis.uncovered for axis in result.axes),  # no windows read it
            unread=() if transposed else tuple(axis.unread for axis in result.axes),
        )

    return apply


def _spatial_names(dims: int) -> str:
    return ", ".join(layers.axis_names(dims))


def _pool(dims: int, kind: str) -> Callable[[Shape, dict[str, Any]], Step]:
    name = f"{kind}Pool{dims}d"

    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        _rank(shape, (dims + 1, dims + 2), f"(N, C, {_spatial_names(dims)}) or unbatched")
        if args.get("return_indices"):
            raise _fail("return_indices: true makes the layer return a pair, which the next layer cannot take")
        if args.get("divisor_override") == 0:
            raise _fail("divisor_override must not be 0")
        pool_args = {
            key: args[key] for key in ("kernel_size", "stride", "padding", "dilation", "ceil_mode") if key in args
        }
        if pool_args.get("stride") in ((), []):  # torch reads an empty stride as none given: the kernel size
            pool_args["stride"] = None
        kernel = pool_args["kernel_size"]
        if kind == "LP" and isinstance(kernel, (tuple, list)) and (dims == 1 or len(kernel) != dims):
            raise _fail(
                f"kernel_size {list(kernel)}: LPPool1d takes one integer (torch fails on a list there)"
                if dims == 1
                else f"kernel_size {list(kernel)} needs one value per axis, {dims}, for LPPool{dims}d"
            )
        try:
            if kind == "Max":
                result = layers.max_pool(shape[-dims:], **pool_args)
            elif kind == "Avg":
                result = layers.avg_pool(shape[-dims:], **pool_args)
            else:  # LPPool: AvgPool without padding; AvgPool3d's input rule applies to LPPool3d
                result = layers.avg_pool(shape[-dims:], **pool_args)
        except InvalidLayerError as error:
            raise _strip(error, name.replace("LP", "Avg") if kind == "LP" else name) from None
        return Step(
            output=(*shape[:-dims], *result.output),
            windows=_windows(result),
            uncovered=tuple(axis.uncovered for axis in result.axes),
            unread=tuple(axis.unread for axis in result.axes),
        )

    return apply


def _adaptive(dims: int, kind: str) -> Callable[[Shape, dict[str, Any]], Step]:
    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        if args.get("return_indices"):
            raise _fail("return_indices: true makes the layer return a pair, which the next layer cannot take")
        size = args["output_size"]
        if size is None:
            raise _fail(f"output_size must be a size or a list of {dims} sizes (null for the input's), not null "
                        "itself")  # fmt: skip
        sizes = [size] * dims if isinstance(size, int) else list(size)
        if len(sizes) != dims:
            raise _fail(f"output_size has {len(sizes)} values but the layer has {dims} spatial axes")
        if dims == 1 and None in sizes:
            raise _fail("output_size must be an integer for a 1-D adaptive pool, got None")
        if not isinstance(size, int) and len(shape) <= dims:
            raise _fail(f"needs an input with at least {dims + 1} dimensions, got {len(shape)}-D")
        if kind == "Avg" and dims > 1 and len(shape) >= dims:
            resolved = [shape[len(shape) - dims + i] if value is None else value for i, value in enumerate(sizes)]
            if all(value == 1 for value in resolved):
                # torch takes a mean over the last axes here (None counting as the input's size), whatever the rank
                return _adaptive_step(shape, tuple(resolved))
        _rank(shape, (dims + 1, dims + 2), f"(N, C, {_spatial_names(dims)}) or unbatched")
        out = tuple(shape[-dims + i] if value is None else value for i, value in enumerate(sizes))
        for value in out:
            if value < 0:
                raise _fail(f"output_size must be at least 0, got {value}")
        return _adaptive_step(shape, out)

    return apply


def _adaptive_step(shape: Shape, out: Shape) -> Step:
    """An adaptive pool to ``out`` on the last axes: output i reads the input's ``[floor(i*L/n), ceil((i+1)*L/n))``,
    the windows area upsampling reads too (an identity where ``out`` is the input's size)."""
    lengths = shape[len(shape) - len(out) :]
    windows = tuple(Window(_area_window(length, n), _ratio(length, n) if n else 1) for length, n in zip(lengths, out))
    return Step(output=(*shape[: len(shape) - len(out)], *out), windows=windows)


def _linear(shape: Shape, args: dict[str, Any]) -> Step:
    if not shape:
        raise _fail("needs an input with at least 1 dimension")
    flat = math.prod(shape[1:])
    if args["in_features"] != shape[-1] and len(shape) > 2 and args["in_features"] == flat:
        raise _fail(
            f"in_features is {args['in_features']}, the input flattened from dim 1 ({' x '.join(map(str, shape[1:]))}"
            f"), but a Linear works on the last dimension only ({shape[-1]}): add a Flatten layer just before this "
            "Linear"
        )
    _check_match("in_features", args["in_features"], shape[-1], "features in its last dimension")
    weights = args["in_features"] * args["out_features"]
    params = weights + (args["out_features"] if args["bias"] else 0)
    return Step(
        output=(*shape[:-1], args["out_features"]), params=params, macs=math.prod(shape[:-1]) * weights,
        mixes=(len(shape) - 1,),
    )  # fmt: skip


def _unflatten(shape: Shape, args: dict[str, Any]) -> Step:
    if not shape:
        raise _fail("takes a tensor with at least one dim to split, got a 0-D one")
    dim = wrap_dim(args["dim"], len(shape), "dim")
    sizes = list(args["unflattened_size"])
    if not sizes:
        raise _fail("unflattened_size must not be empty: give the sizes dim splits into, e.g. [16, 7, 7]")
    if sum(1 for n in sizes if n == -1) > 1:
        raise _fail("unflattened_size may have only one -1")
    if any(n < -1 for n in sizes):
        raise _fail(f"unflattened_size must be sizes or a single -1, got {sizes}")
    known = math.prod(n for n in sizes if n != -1)
    if -1 in sizes:
        if known == 0 or shape[dim] % known:
            raise _fail(f"unflattened_size {sizes} does not divide the size {shape[dim]} of dim {args['dim']}")
        sizes[sizes.index(-1)] = shape[dim] // known
    elif known != shape[dim]:
        raise _fail(
            f"unflattened_size {sizes} multiplies to {known}, not to the size {shape[dim]} of dim {args['dim']}"
        )
    return tensor_ops.view(shape, {"shape": (*shape[:dim], *sizes, *shape[dim + 1 :])})  # x.unflatten(): a view


def _same(shape: Shape, args: dict[str, Any]) -> Step:
    return Step(output=shape, keeps_layout=True)


def _itself(shape: Shape, args: dict[str, Any]) -> Step:
    """Identity: the input tensor itself, strides and all (not a new tensor laid out as it)."""
    return Step(output=shape, restride=lambda strides: strides)


def _same_shape(shape: Shape, args: dict[str, Any]) -> Step:
    """An activation whose kernel writes a new contiguous tensor (RReLU, LogSigmoid), not laid out as its input."""
    return Step(output=shape)


def _dropout(ranks: tuple[int, ...] | None) -> Callable[[Shape, dict[str, Any]], Step]:
    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        if not 0 <= args["p"] <= 1:
            raise _fail(f"p must be between 0 and 1, got {args['p']}")
        if ranks is not None:
            _rank(shape, ranks, "(N, C, L) or unbatched")
        return Step(output=shape, keeps_layout=True)

    return apply


def _softmax(shape: Shape, args: dict[str, Any]) -> Step:
    # no dim: torch's legacy choice, dim 0 for a 0-D, 1-D or 3-D input, else dim 1
    dim = args["dim"] if args["dim"] is not None else 0 if len(shape) in (0, 1, 3) else 1
    mixes = (wrap_dim(dim, len(shape), "dim"),)
    return Step(output=shape, mixes=mixes)  # softmax writes a contiguous tensor, whatever its input's layout


def _softmax2d(shape: Shape, args: dict[str, Any]) -> Step:
    _rank(shape, (3, 4), "(N, C, H, W) or unbatched")
    return Step(output=shape, mixes=(len(shape) - 3,))  # softmax over the channels, dim -3


def _glu(shape: Shape, args: dict[str, Any]) -> Step:
    if not shape:
        raise _fail("takes a tensor with at least one dim, got a 0-D one (torch: glu does not support scalars)")
    dim = wrap_dim(args["dim"], len(shape), "dim")
    if shape[dim] % 2:
        raise _fail(f"halves dim {args['dim']}, whose size {shape[dim]} is odd")
    # each output unit multiplies two inputs half the dim apart; the halves keep the input's layout
    return Step(output=(*shape[:dim], shape[dim] // 2, *shape[dim + 1 :]), mixes=(dim,), keeps_layout=True)


def _prelu(shape: Shape, args: dict[str, Any]) -> Step:
    count = args["num_parameters"]
    if count != 1:
        channels = shape[1] if len(shape) >= 2 else 1
        _check_match("num_parameters", count, channels, "channels")
    return Step(output=shape, params=count, keeps_layout=True)


def _batch_norm(dims: int) -> Callable[[Shape, dict[str, Any]], Step]:
    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        ranks = (2, 3) if dims == 1 else (dims + 2,)
        _rank(shape, ranks, "(N, C) or (N, C, L)" if dims == 1 else f"(N, C, {_spatial_names(dims)})")
        if args["affine"] or args["track_running_stats"]:  # otherwise there is nothing of that size to match
            _check_match("num_features", args["num_features"], shape[1], "channels")
        if not args["track_running_stats"]:  # without running statistics, eval mode normalises by the batch's own
            if args["eps"] <= 0:
                raise _fail(f"eps must be positive without running statistics (track_running_stats: false), got "
                            f"{args['eps']}")  # fmt: skip
            if math.prod(shape) // shape[1] == 1:
                raise _fail("needs more than 1 value per channel without running statistics "
                            "(track_running_stats: false): use a larger batch or input")  # fmt: skip
        c = args["num_features"]
        return Step(
            output=shape,
            params=(2 if args["bias"] else 1) * c if args["affine"] else 0,
            buffers=2 * c + 1 if args["track_running_stats"] else 0,
        )

    return apply


def _instance_norm(dims: int) -> Callable[[Shape, dict[str, Any]], Step]:
    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        _rank(shape, (dims + 1, dims + 2), f"(N, C, {_spatial_names(dims)}) or unbatched")
        channels = shape[_channel_axis(shape, dims)]
        matters = args["affine"] or args["track_running_stats"]  # otherwise torch only warns about a mismatch
        if matters and args["num_features"] != channels:
            unbatched = (
                " (torch's LazyInstanceNorm, whose inference convcalc follows, reads it from dim 1, which is no "
                "channel axis in an unbatched input)"
                if len(shape) == dims + 1
                else ""
            )
            raise _fail(f"num_features is {args['num_features']} but the input has {channels} channels{unbatched}: "
                        f"give num_features: {channels}")  # fmt: skip
        if math.prod(shape[-dims:]) == 1 and not args["track_running_stats"]:  # eval mode uses the input's statistics
            raise _fail("needs more than 1 spatial element per channel: use a larger input")
        c = args["num_features"]
        spatial = () if args["track_running_stats"] else tuple(range(len(shape) - dims, len(shape)))
        return Step(
            output=shape,
            params=(2 if args["bias"] else 1) * c if args["affine"] else 0,
            buffers=2 * c + 1 if args["track_running_stats"] else 0,
            mixes=spatial,  # the statistics of each channel are taken over its whole map
        )

    return apply


def _group_norm(shape: Shape, args: dict[str, Any]) -> Step:
    groups, channels = args["num_groups"], args["num_channels"]
    if groups == 0 or channels % groups:  # the constructor's check: Python's modulo, so a negative count passes
        raise _fail(f"num_channels {channels} is not divisible by num_groups {groups}")
    if groups < 0:
        raise _fail(f"num_groups must be at least 1, got {groups}")
    if len(shape) < 2:
        raise _fail(f"needs an input with at least 2 dimensions (N, C, *), got {len(shape)}-D")
    if args["affine"]:  # without affine, torch never compares num_channels with the input
        _check_match("num_channels", channels, shape[1], "channels")
    if shape[1] % groups:
        raise _fail(f"the input's {shape[1]} channels are not divisible by num_groups {groups}")
    if math.prod(shape) // groups == 1:
        raise _fail("needs more than 1 value per group: use a larger input or batch")
    return Step(
        output=shape,
        params=((2 if args["bias"] else 1) * channels) if args["affine"] else 0,
        mixes=tuple(range(1, len(shape))),  # the statistics of each group are taken over its channels' whole maps
    )


def _layer_norm(shape: Shape, args: dict[str, Any]) -> Step:
    normalized = args["normalized_shape"]
    normalized = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    if tuple(shape[len(shape) - len(normalized) :]) != normalized or len(normalized) > len(shape):
        raise _fail(
            f"normalized_shape {list(normalized)} is not the trailing shape of the input: "
            f"use normalized_shape: {list(shape[-len(normalized) :]) if normalized else []}"
        )
    count = math.prod(normalized)
    params = ((2 if args["bias"] else 1) * count) if args["elementwise_affine"] else 0
    return Step(output=shape, params=params, mixes=tuple(range(len(shape) - len(normalized), len(shape))))


_UPSAMPLE_RANKS = {"linear": 3, "bilinear": 4, "bicubic": 4, "trilinear": 5}
_UPSAMPLE_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")


def _upsample(shape: Shape, args: dict[str, Any]) -> Step:
    mode = args["mode"]
    if mode not in _UPSAMPLE_MODES:
        raise _fail(f"mode must be one of {', '.join(_UPSAMPLE_MODES)}, got {mode!r}")
    if args["align_corners"] is not None and mode in ("nearest", "area", "nearest-exact"):
        raise _fail(f"align_corners applies only to the interpolating modes, not to {mode!r}")
    _rank(shape, (3, 4, 5), "(N, C, *spatial) with 1 to 3 spatial axes")
    if mode in _UPSAMPLE_RANKS and len(shape) != _UPSAMPLE_RANKS[mode]:
        raise _fail(f"mode {mode!r} needs a {_UPSAMPLE_RANKS[mode]}-D input, got {len(shape)}-D")
    dims = len(shape) - 2
    size, scale = args["size"], args["scale_factor"]
    if size is not None and scale:
        raise _fail("give size or scale_factor, not both")
    if size is not None and args["recompute_scale_factor"]:
        raise _fail("recompute_scale_factor applies to a scale_factor, not to an explicit size: leave it out")
    if size is None and not scale:
        raise _fail("give size or scale_factor")
    if size is not None:
        sizes = [size] * dims if isinstance(size, int) else list(size)
        if len(sizes) != dims:
            raise _fail(f"size has {len(sizes)} values but the input has {dims} spatial axes")
        out = tuple(sizes)
    else:
        scales = [scale] * dims if isinstance(scale, (int, float)) else list(scale)
        if len(scales) != dims:
            raise _fail(f"scale_factor has {len(scales)} values but the input has {dims} spatial axes")
        products = [float(length) * float(factor) for length, factor in zip(shape[2:], scales)]  # float64, as torch
        if any(not -INT64 < product < INT64 for product in products):
            raise _fail(f"scale_factor {scale} makes an output size beyond torch's 64-bit integers (at most "
                        f"{INT64 - 1})")  # fmt: skip
        out = tuple(math.floor(product) for product in products)
    if mode != "area" and any(n <= 0 for n in out):
        raise _fail(f"the output size {_text(out)} must be at least 1 on every axis: use a larger size or scale_factor")
    if any(n < 0 for n in out):
        raise _fail(f"the output size {_text(out)} must not be negative")
    extent = 1 if mode.startswith("nearest") else 2
    windows = tuple(
        Window(extent if mode != "area" else _area_window(length, n), _ratio(length, n) if n else 1)
        for length, n in zip(shape[2:], out)
    )
    return Step(output=(*shape[:2], *out), windows=windows)


def _area_window(length: int, n: int) -> int:
    """The widest of the windows that area mode (adaptive average pooling) reads to make ``n`` outputs from
    ``length`` inputs: window i spans ``[floor(i*length/n), ceil((i+1)*length/n))``.

    With ``length = q*n + r``, a window is q wide and 1 or 2 more where r > 0:
    2 more for some window exactly when r exceeds gcd(r, n).

    >>> _area_window(4, 2), _area_window(5, 2), _area_window(5, 3), _area_window(5, 1)
    (2, 3, 3, 5)
    """
    if n == 0:
        return 1
    q, r = divmod(length, n)
    return q if r == 0 else q + 1 + (r > math.gcd(r, n))


def _ratio(a: int, b: int) -> Fraction | int:
    from fractions import Fraction

    return a // b if a % b == 0 else Fraction(a, b)


def _factor(shape: Shape, args: dict[str, Any], name: str) -> int:
    """The checks PixelShuffle and PixelUnshuffle share: rank at least 3, a factor of at least 1."""
    if len(shape) < 3:
        raise _fail(f"needs an input with at least 3 dimensions (*, C, H, W), got {len(shape)}-D")
    factor: int = args[name]
    if factor < 1:
        raise _fail(f"{name} must be at least 1, got {factor}")
    return factor


def _pixel_shuffle(shape: Shape, args: dict[str, Any]) -> Step:
    r = _factor(shape, args, "upscale_factor")
    c = shape[-3]
    if c % (r * r):
        raise _fail(f"the channels {c} are not divisible by upscale_factor squared, {r * r}")
    from fractions import Fraction

    windows = (SAME,) * (len(shape) - 4) + (Window(1, Fraction(1, r)),) * 2 if len(shape) >= 4 else None
    mixes = (len(shape) - 3,)  # the channels: a 5-D input's third dim is one, not a spatial axis
    return Step(output=(*shape[:-3], c // (r * r), shape[-2] * r, shape[-1] * r), windows=windows, mixes=mixes)


def _pixel_unshuffle(shape: Shape, args: dict[str, Any]) -> Step:
    r = _factor(shape, args, "downscale_factor")
    for axis, size in (("height", shape[-2]), ("width", shape[-1])):
        if size % r:
            raise _fail(f"the {axis} {size} is not divisible by downscale_factor {r}")
    windows = (SAME,) * (len(shape) - 4) + (Window(r, r),) * 2 if len(shape) >= 4 else None
    mixes = (len(shape) - 3,)
    return Step(output=(*shape[:-3], shape[-3] * r * r, shape[-2] // r, shape[-1] // r), windows=windows, mixes=mixes)


def _padding_layer(dims: int, mode: str) -> Callable[[Shape, dict[str, Any]], Step]:
    """A padding layer, as F.pad applies it: one int pads the class's ``dims`` last axes; a list of 2k values pads
    the last k axes, whatever the class (``ZeroPad1d: [1, 1, 1, 1]`` pads two)."""

    def apply(shape: Shape, args: dict[str, Any]) -> Step:
        padding = args["padding"]
        pads = [padding] * (2 * dims) if isinstance(padding, int) else list(padding)
        if len(pads) % 2:
            raise _fail(f"padding needs an even number of values (left, right, top, bottom, front, back), got "
                        f"{len(pads)}")  # fmt: skip
        count = len(pads) // 2
        if mode == "circular":  # the module checks the rank for its own dims before F.pad does
            _rank(shape, (dims + 1, dims + 2), f"(N, C, {_spatial_names(dims)}) or unbatched")
        if mode == "constant":
            if any(pad > 0 for pad in pads) and float32(args.get("value", 0)):  # converted only to fill some padding
                raise _fail(f"value {args['value']!r} must lie within float32's range (at most {FLOAT32_MAX!r}): "
                            "torch fills the padding with it as a float32")  # fmt: skip
            if len(shape) < count:
                raise _fail(f"{len(pads)} pad values need an input of at least {count} dimensions, got "
                            f"{len(shape)}-D")  # fmt: skip
        elif len(shape) not in (count + 1, count + 2):
            raise _fail(f"{len(pads)} pad values in mode {mode!r} need a {count + 1}-D or {count + 2}-D input, "
                        f"got {len(shape)}-D")  # fmt: skip
        out = list(shape)
        for i in range(count):
            axis = len(shape) - 1 - i  # pads run from the last axis backwards
            before, after = pads[2 * i], pads[2 * i + 1]
            length = shape[axis]
            if mode == "constant" and length + min(before, 0) + min(after, 0) < 0:
                raise _fail(f"padding ({before}, {after}) crops more than the input {length} of dim {axis} has "
                            "(torch crops by each negative pad first)")  # fmt: skip
            if mode == "reflect" and (before >= length or after >= length):
                raise _fail(
                    f"padding ({before}, {after}) must be smaller than the input {length} on dim {axis} for reflection"
                )
            if mode == "circular" and (before > length or after > length):
                raise _fail(
                    f"padding ({before}, {after}) wraps around more than once on the input {length} of dim {axis}"
                )
            if mode == "circular" and min(before, after) < 0 < max(before, after):
                raise _fail(f"padding ({before}, {after}) mixes signs on dim {axis}, which torch's circular "
                            "padding does not handle: crop and pad in two layers")  # fmt: skip
            out[axis] = length + before + after
        sizes = [out[len(shape) - 1 - i] for i in range(count)]
        if mode in ("constant", "circular"):
            if any(n < 0 for n in sizes):
                raise _fail(f"negative padding leaves a negative size: {_text(tuple(out))}")
        elif mode in ("reflect", "replicate") and count > 1:
            # torch's 2-D and 3-D reflection and replication pads check only that some axis is at least 1
            if all(n < 1 for n in sizes) or any(n < 0 for n in sizes):
                raise _fail(f"negative padding leaves no input: {_text(tuple(out))}")
        elif any(n < 1 for n in sizes):
            raise _fail(f"negative padding leaves no input: {_text(tuple(out))}")
        # the receptive field keeps its size (padding only shifts it); a constant pad that adds nothing is a clone
        # of the cropped input, which keeps its layout, and any other pad writes a new contiguous tensor
        return Step(output=tuple(out), keeps_layout=mode == "constant" and all(pad <= 0 for pad in pads))

    return apply


_PAD_MODES = ("constant", "reflect", "replicate", "circular")


def _pad(shape: Shape, args: dict[str, Any]) -> Step:
    """``F.pad(x, pad, mode, value)``: a padding layer's rule, for as many trailing axes as ``pad`` has pairs."""
    pad = list(args["pad"])
    if not pad:
        raise _fail("pad needs at least one pair of values (left, right of the last dim)")
    layer = _padding_layer(max(len(pad) // 2, 1), "constant" if args["mode"] == "constant" else args["mode"])
    return layer(shape, {"padding": pad, "value": 0 if args["value"] is None else args["value"]})


def _itself_copied(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.contiguous()``: the same tensor where it is contiguous, else a contiguous copy."""
    return Step(output=shape)


def _frozen_batch_norm(shape: Shape, args: dict[str, Any]) -> Step:
    """torchvision's FrozenBatchNorm2d: ``x * scale + bias``, its four statistics (C) as buffers, reshaped to
    (1, C, 1, 1) and broadcast against the input."""
    channels = args["num_features"]
    if channels < 0:
        raise _fail(f"num_features must be at least 0, got {channels}")
    out = tensor_ops.broadcast_shapes(shape, (1, channels, 1, 1))
    if out is None:
        raise _fail(f"the input {_text(shape)} does not broadcast with its statistics (1, {channels}, 1, 1): an "
                    f"(N, {channels}, H, W) input does")  # fmt: skip
    return Step(output=out, buffers=4 * channels, keeps_layout=out == shape)


def _stochastic_depth(shape: Shape, args: dict[str, Any]) -> Step:
    """torchvision's StochasticDepth: drops rows while training, the identity in eval mode; checks p and mode."""
    if not 0 <= args["p"] <= 1:
        raise _fail(f"p (the drop probability) must be between 0 and 1, got {args['p']}")
    if args["mode"] not in ("batch", "row"):
        raise _fail(f"mode must be 'batch' or 'row', got {args['mode']!r}")
    return Step(output=shape, restride=lambda strides: strides)  # eval mode hands the input itself back


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda value: None if low <= value <= high else f"must be between {low} and {high}"


def _at_least(low: int) -> Callable[[Any], str | None]:
    return lambda value: None if value >= low else f"must be at least {low}"


def _not_zero(value: Any) -> str | None:
    return "must not be 0" if value == 0 else None


def _celu_alpha(value: Any) -> str | None:
    """CELU divides by alpha: alpha and 1/alpha (worked out in float64) must both convert to float32, which torch
    refuses only for a finite number beyond float32's range; a 1/alpha that is infinite already converts."""
    if value == 0:
        return "must not be 0"
    inverse = 1 / value  # infinite, not an error, for a subnormal float64 such as 5e-324
    return float32(value) or (None if math.isinf(inverse) or abs(inverse) <= FLOAT32_MAX
                              else "is too small: 1/alpha is beyond float32's range")  # fmt: skip


def _ordered(low: str, high: str, strict: bool) -> Callable[[dict[str, Any]], str | None]:
    """The constructor's check that ``args[low]`` is below ``args[high]`` (or at most, where not ``strict``)."""

    def check(args: dict[str, Any]) -> str | None:
        if args[low] < args[high] or (not strict and args[low] == args[high]):
            return None
        relation = "smaller than" if strict else "at most"
        return f"{low} {args[low]!r} must be {relation} {high} {args[high]!r}"

    return check


def _rrelu_bounds(args: dict[str, Any]) -> str | None:
    """RReLU's checks in eval mode: ``lower`` at most ``upper``, and the slope it then uses, their mean, within
    float32's range (torch runs ``leaky_relu`` with ``(lower + upper) / 2``; each bound alone may lie beyond)."""
    wrong = _ordered("lower", "upper", strict=False)(args)
    slope = (args["lower"] + args["upper"]) / 2
    if wrong is None and float32(slope) is not None:
        return f"the slope eval mode uses, (lower + upper) / 2 = {slope!r}, {float32(slope)}"
    return wrong


def _kinds() -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}

    def add(name: str, apply: Callable[[Shape, dict[str, Any]], Step], *args: Arg,
            check: Callable[[dict[str, Any]], str | None] | None = None) -> None:  # fmt: skip
        kinds[name] = Kind(name=name, args=args, apply=apply, check=check)

    def channels(dims: int) -> Callable[[Shape, dict[str, Any]], int]:
        return lambda shape, args: shape[len(shape) - dims - 1] if len(shape) > dims else 0

    def features(shape: Shape, args: dict[str, Any]) -> int:
        return shape[1] if len(shape) > 1 else 0

    def last(shape: Shape, args: dict[str, Any]) -> int:
        return shape[-1] if shape else 0

    eps = Arg("eps", Type.NUMBER, 1e-5)  # no check: InstanceNorm, GroupNorm and LayerNorm take any eps
    batch_eps = Arg("eps", Type.NUMBER, 1e-5, check=lambda value: None if value >= 0 else "must not be negative")
    momentum = Arg("momentum", Type.NUMBER, 0.1, nullable=True)
    inplace = Arg("inplace", Type.BOOL, False)
    bias = Arg("bias", Type.BOOL, True)
    padding_mode = Arg("padding_mode", Type.TEXT, "zeros", choices=layers.PADDING_MODES)
    stride_none = Arg("stride", Type.PER_AXIS, None, nullable=True, empty=True)  # []: the kernel size, as None
    ceil_mode = Arg("ceil_mode", Type.BOOL, False)
    return_indices = Arg("return_indices", Type.BOOL, False)
    dropout = (Arg("p", Type.NUMBER, 0.5, check=_between(0, 1)), inplace)
    for d in (1, 2, 3):
        convolution = (
            Arg("in_channels", Type.INT, infer=channels(d)),
            Arg("out_channels", Type.INT),
            Arg("kernel_size", Type.PER_AXIS),
            Arg("stride", Type.PER_AXIS, 1),
        )
        add(f"Conv{d}d", _conv(d, transposed=False), *convolution, Arg("padding", Type.PADDING, 0),
            Arg("dilation", Type.PER_AXIS, 1), Arg("groups", Type.INT, 1), bias, padding_mode)  # fmt: skip
        add(f"ConvTranspose{d}d", _conv(d, transposed=True), *convolution, Arg("padding", Type.PER_AXIS, 0),
            Arg("output_padding", Type.PER_AXIS, 0), Arg("groups", Type.INT, 1), bias,
            Arg("dilation", Type.PER_AXIS, 1), padding_mode)  # fmt: skip
        kernel = Arg("kernel_size", Type.PER_AXIS)
        add(f"MaxPool{d}d", _pool(d, "Max"), kernel, stride_none, Arg("padding", Type.PER_AXIS, 0),
            Arg("dilation", Type.PER_AXIS, 1), return_indices, ceil_mode)  # fmt: skip
        average = (kernel, stride_none, Arg("padding", Type.PER_AXIS, 0), ceil_mode,
                   Arg("count_include_pad", Type.BOOL, True))  # fmt: skip
        override = (Arg("divisor_override", Type.INT, None, nullable=True, check=_not_zero),) if d > 1 else ()
        add(f"AvgPool{d}d", _pool(d, "Avg"), *average, *override)
        add(f"LPPool{d}d", _pool(d, "LP"), Arg("norm_type", Type.NUMBER, check=_not_zero), kernel, stride_none,
            ceil_mode)  # fmt: skip
        output_size = Arg("output_size", Type.OPTIONAL_SIZES)
        add(f"AdaptiveAvgPool{d}d", _adaptive(d, "Avg"), output_size)
        add(f"AdaptiveMaxPool{d}d", _adaptive(d, "Max"), output_size, return_indices)
        add(f"BatchNorm{d}d", _batch_norm(d), Arg("num_features", Type.INT, infer=features), batch_eps, momentum,
            Arg("affine", Type.BOOL, True), Arg("track_running_stats", Type.BOOL, True),
            Arg("bias", Type.BOOL, True, keyword_only=True))  # fmt: skip
        add(f"InstanceNorm{d}d", _instance_norm(d), Arg("num_features", Type.INT, infer=features), eps, momentum,
            Arg("affine", Type.BOOL, False), Arg("track_running_stats", Type.BOOL, False), bias)  # fmt: skip
        for prefix, mode in (("Zero", "constant"), ("Reflection", "reflect"), ("Replication", "replicate"),
                             ("Circular", "circular")):  # fmt: skip
            add(f"{prefix}Pad{d}d", _padding_layer(d, mode), Arg("padding", Type.PER_AXIS, empty=mode == "constant"))
        add(f"ConstantPad{d}d", _padding_layer(d, "constant"), Arg("padding", Type.PER_AXIS, empty=True),
            Arg("value", Type.NUMBER))  # fmt: skip
        add(f"Dropout{d}d", _dropout((2, 3) if d == 1 else None), *dropout)

    add("Linear", _linear, Arg("in_features", Type.INT, infer=last),
        Arg("out_features", Type.INT, check=_at_least(0)), bias)  # fmt: skip
    add("Flatten", tensor_ops.flatten, Arg("start_dim", Type.INT, 1), Arg("end_dim", Type.INT, -1))  # x.flatten()
    add("Unflatten", _unflatten, Arg("dim", Type.INT), Arg("unflattened_size", Type.SIZES))
    add("Identity", _itself)
    for name in ("Dropout", "AlphaDropout", "FeatureAlphaDropout"):
        add(name, _dropout(None), *dropout)
    add("GroupNorm", _group_norm, Arg("num_groups", Type.INT), Arg("num_channels", Type.INT, infer=features), eps,
        Arg("affine", Type.BOOL, True), bias)  # fmt: skip
    add("LayerNorm", _layer_norm, Arg("normalized_shape", Type.PER_AXIS), eps,
        Arg("elementwise_affine", Type.BOOL, True), bias)  # fmt: skip
    add("Upsample", _upsample, Arg("size", Type.PER_AXIS, None), Arg("scale_factor", Type.NUMBERS, None),
        Arg("mode", Type.TEXT, "nearest", choices=_UPSAMPLE_MODES), Arg("align_corners", Type.BOOL, None),
        Arg("recompute_scale_factor", Type.BOOL, None))  # fmt: skip
    # a size that follows another tensor (size: [H, W] after Dims) is worked out on every call: F.interpolate
    kinds["Upsample"] = dataclasses.replace(kinds["Upsample"], follows=True)
    # so are a pool's (no weights: F.avg_pool2d(x, x.shape[2:]), F.adaptive_avg_pool2d(x, (h // 2, w // 2)))
    for d in (1, 2, 3):
        for pool in (f"MaxPool{d}d", f"AvgPool{d}d", f"LPPool{d}d", f"AdaptiveAvgPool{d}d", f"AdaptiveMaxPool{d}d"):
            kinds[pool] = dataclasses.replace(kinds[pool], follows=True)
    add("PixelShuffle", _pixel_shuffle, Arg("upscale_factor", Type.INT))
    add("PixelUnshuffle", _pixel_unshuffle, Arg("downscale_factor", Type.INT))
    add("PReLU", _prelu, Arg("num_parameters", Type.INT, 1, check=_at_least(0)),
        Arg("init", Type.NUMBER, 0.25, check=float32))  # fmt: skip
    for name in ("Softmax", "LogSoftmax", "Softmin"):
        add(name, _softmax, Arg("dim", Type.INT, None))
    add("Softmax2d", _softmax2d)
    add("GLU", _glu, Arg("dim", Type.INT, -1))
    number = Type.NUMBER

    def scalar(name: str, default: Any = REQUIRED, check: Callable[[Any], str | None] = float32) -> Arg:
        """A float argument that torch converts to the input's float32."""
        return Arg(name, number, default, check=check)

    add("ReLU", _same, inplace)
    add("ReLU6", _same, inplace)
    add("LeakyReLU", _same, scalar("negative_slope", 0.01), inplace)
    add("RReLU", _same_shape, Arg("lower", number, 0.125), Arg("upper", number, 1 / 3), inplace,
        check=_rrelu_bounds)  # fmt: skip
    add("ELU", _same, scalar("alpha", 1.0), inplace)
    add("CELU", _same, scalar("alpha", 1.0, check=_celu_alpha), inplace)
    add("SELU", _same, inplace)
    add("GELU", _same, Arg("approximate", Type.TEXT, "none", choices=("none", "tanh")))
    add("SiLU", _same, inplace)
    add("Mish", _same, inplace)
    add("Sigmoid", _same)
    add("Tanh", _same)
    add("Hardtanh", _same, scalar("min_val", -1.0), scalar("max_val", 1.0), inplace,
        check=_ordered("min_val", "max_val", strict=True))  # fmt: skip
    add("Hardswish", _same, inplace)
    add("Hardsigmoid", _same, inplace)
    add("Softplus", _same, scalar("beta", 1.0), scalar("threshold", 20.0))
    add("Softsign", _same)
    add("Softshrink", _same, scalar("lambd", 0.5, check=lambda value: float32(value) or (
        None if value >= 0 else "must not be negative")))  # fmt: skip
    add("Hardshrink", _same, scalar("lambd", 0.5))
    add("Tanhshrink", _same)
    add("LogSigmoid", _same_shape)
    add("Threshold", _same, scalar("threshold"), scalar("value"), inplace)

    # what a network does that is no torch.nn class: tensor methods, under torch's names
    def method(name: str, apply: Callable[[Shape, dict[str, Any]], Step], *args: Arg, varargs: bool = False,
               needs: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        kinds[name] = Kind(name=name, args=args, apply=apply, form=Form.METHOD, varargs=varargs, needs=needs,
                           follows=True)  # fmt: skip

    def some(value: list[int]) -> str | None:  # x.permute() and x.reshape() with no values are errors in torch
        return None if value else "needs at least one value"

    sizes = Arg("shape", Type.SIZES, check=some)
    method("permute", tensor_ops.permute, Arg("dims", Type.SIZES, check=some), varargs=True)
    method("transpose", tensor_ops.transpose, Arg("dim0", Type.INT), Arg("dim1", Type.INT))
    method("reshape", tensor_ops.reshape, sizes, varargs=True)
    method("view", tensor_ops.view, sizes, varargs=True)
    method("flatten", tensor_ops.flatten, Arg("start_dim", Type.INT, 0), Arg("end_dim", Type.INT, -1))
    method("squeeze", tensor_ops.squeeze, Arg("dim", Type.PER_AXIS, None))
    method("unsqueeze", tensor_ops.unsqueeze, Arg("dim", Type.INT))
    method("select", tensor_ops.select, Arg("dim", Type.INT), Arg("index", Type.INT))
    method("expand", tensor_ops.expand, Arg("shape", Type.SIZES, check=some), varargs=True)
    method("repeat", tensor_ops.repeat, Arg("repeats", Type.SIZES, check=some), varargs=True)
    for name, reduce in (("mean", tensor_ops.mean), ("sum", tensor_ops.sum_)):
        method(name, reduce, Arg("dim", Type.PER_AXIS, None, empty=True), Arg("keepdim", Type.BOOL, False),
               needs=(("keepdim", "dim"),))  # fmt: skip
    method("amax", tensor_ops.amax, Arg("dim", Type.PER_AXIS, None, empty=True), Arg("keepdim", Type.BOOL, False))
    # functions of each element, and the ones attention needs along the way
    method("contiguous", _itself_copied)
    method("exp", tensor_ops.elementwise)
    method("sigmoid", tensor_ops.elementwise)
    for name in ("mul", "add", "sub", "div"):  # by a number (a tensor goes through Mul and Add, which broadcast)
        method(name, tensor_ops.elementwise, Arg("other", Type.NUMBER, check=float32))
    method("clamp", tensor_ops.clamp, Arg("min", Type.NUMBER, None, check=float32),
           Arg("max", Type.NUMBER, None, check=float32))  # fmt: skip
    method("roll", tensor_ops.roll, Arg("shifts", Type.PER_AXIS), Arg("dims", Type.PER_AXIS, None))
    method("narrow", tensor_ops.narrow, Arg("dim", Type.INT), Arg("start", Type.INT), Arg("length", Type.INT))

    def function(name: str, apply: Callable[[Shape, dict[str, Any]], Step], *args: Arg, varargs: bool = False
                 ) -> None:  # fmt: skip
        kinds[name] = Kind(name=name, args=args, apply=apply, form=Form.FUNCTION, follows=True, varargs=varargs)

    function("pad", _pad, Arg("pad", Type.SIZES), Arg("mode", Type.TEXT, "constant", choices=_PAD_MODES),
             Arg("value", Type.NUMBER, None, check=float32), varargs=True)  # fmt: skip
    function("normalize", tensor_ops.normalize, Arg("p", Type.NUMBER, 2.0), Arg("dim", Type.INT, 1),
             Arg("eps", Type.NUMBER, 1e-12))  # fmt: skip

    # learned tensors that are no layer of torch's
    def learned(name: str, apply: Callable[[Shape, dict[str, Any]], Step], *args: Arg) -> None:
        kinds[name] = Kind(name=name, args=args, apply=apply, form=Form.PARAMETER)

    learned("ClassToken", tensor_ops.class_token, Arg("embed_dim", Type.INT, infer=last))
    learned("PositionEmbedding", tensor_ops.position_embedding,
            Arg("shape", Type.SIZES, infer=lambda shape, args: shape[1:]))  # fmt: skip
    learned("LayerScale", tensor_ops.layer_scale, Arg("dim", Type.INT, 1), scalar("init", 1e-6),
            Arg("shape", Type.SIZES, infer=tensor_ops.layer_scale_shape))  # fmt: skip

    # torchvision's own layers
    def torchvision(name: str, apply: Callable[[Shape, dict[str, Any]], Step], *args: Arg, varargs: bool = False
                    ) -> None:  # fmt: skip
        kinds[name] = Kind(name=name, args=args, apply=apply, form=Form.TORCHVISION, varargs=varargs)

    torchvision("FrozenBatchNorm2d", _frozen_batch_norm, Arg("num_features", Type.INT, infer=features),
                Arg("eps", Type.NUMBER, 1e-5))  # fmt: skip
    torchvision("StochasticDepth", _stochastic_depth, Arg("p", Type.NUMBER), Arg("mode", Type.TEXT))
    torchvision("Permute", tensor_ops.permute, Arg("dims", Type.SIZES), varargs=True)

    # attention
    dropout_p = Arg("dropout", Type.NUMBER, 0.0)  # unchecked, as torch's constructor; eval mode never drops
    kinds["MultiheadAttention"] = Kind(
        name="MultiheadAttention",
        apply=tensor_ops.multihead_attention,
        form=Form.ATTENTION,
        args=(
            Arg("embed_dim", Type.INT, infer=last, check=_at_least(1)),
            Arg("num_heads", Type.INT, check=_at_least(1)),
            dropout_p,
            bias,
            Arg("add_bias_kv", Type.BOOL, False),
            Arg("add_zero_attn", Type.BOOL, False),
            Arg("kdim", Type.INT, None),
            Arg("vdim", Type.INT, None),
            Arg("batch_first", Type.BOOL, False),
        ),
    )
    add("TransformerEncoderLayer", tensor_ops.transformer_encoder_layer,
        Arg("d_model", Type.INT, infer=last), Arg("nhead", Type.INT),
        Arg("dim_feedforward", Type.INT, 2048), Arg("dropout", Type.NUMBER, 0.1, check=_between(0, 1)),
        Arg("activation", Type.TEXT, "relu", choices=("relu", "gelu")), Arg("layer_norm_eps", Type.NUMBER, 1e-5),
        Arg("batch_first", Type.BOOL, False), Arg("norm_first", Type.BOOL, False), bias)  # fmt: skip
    return kinds


LAYERS: dict[str, Kind] = _kinds()
"""Every supported torch.nn class by name."""

_ELEMENTWISE_RULES = (_same, _itself, _same_shape, _softmax, _softmax2d, _prelu)
ELEMENTWISE = frozenset(
    name
    for name, kind in LAYERS.items()
    if kind.apply in _ELEMENTWISE_RULES or name.startswith(("Dropout", "AlphaDropout", "Feature"))
)
"""Layers that work element by element and keep their input's shape: activations, dropout, softmax, PReLU."""


IN_PLACE_NO_OVERLAP = frozenset(
    name
    for name, kind in LAYERS.items()
    if any(arg.name == "inplace" for arg in kind.args)
    and not name.startswith(("Dropout", "AlphaDropout", "Feature"))
    and name != "Threshold"
)
"""Layers that, with ``inplace: true``, refuse in eval mode to write into a tensor whose elements share memory
(after ``expand``), as torch 2.13 does ("more than one element of the written-to tensor refers to a single memory
location"). Threshold writes anyway; the dropouts write only in training (:mod:`convcalc.saved`)."""


def overlaps(shape: Shape, strides: tuple[int, ...] | None) -> str | None:
    """Why torch refuses to write in place into a tensor of these strides, where elements share memory (stride 0
    along a dim of size above 1, after ``expand``), or None."""
    if strides is None:
        return None
    dim = next((dim for dim, (size, stride) in enumerate(zip(shape, strides)) if stride == 0 and size > 1), None)
    if dim is None:
        return None
    return f"an expand made its elements share memory along dim {dim}, and torch refuses to write there"
