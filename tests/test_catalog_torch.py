"""Every catalogue layer alone against real torch: does convcalc accept exactly what torch accepts?

For each layer in ``LAYERS``, Hypothesis draws an input shape (rank 0 to 5, sizes
1 to 6) and values for torch's keyword arguments of that class, read from the
class's own signature: whole classes of values (any integer, any float with nan,
infinities and 1e308, any string), mixed with the small values that make a valid
layer likely. torch builds the module on the CPU, in eval mode, and runs it on
``torch.zeros(shape)``; convcalc runs the same layer as a one-layer stack. Both
must reject it, or both must accept it with the same output shape, parameters
and buffers.

The arguments convcalc infers from the shape (``in_channels``, ``num_features``,
``num_channels``, ``in_features``) are often left out; torch then gets its Lazy
module, or (GroupNorm) the value the test reads from the shape itself.

Every call into convcalc goes through :func:`convcalc_verdict`, the one place
to edit when the library's API changes. ``CONVCALC_CATALOG_EXAMPLES=N`` sets
the number of examples per layer (default 250).
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from convcalc.catalog import LAYERS, Form
from tests.profiles import scaled

Shape = tuple[int, ...]

# What torch raises for a layer it refuses, across its Python and C++ checks.
TORCH_REJECTS = (
    RuntimeError,
    ValueError,
    TypeError,
    IndexError,
    NotImplementedError,
    ZeroDivisionError,
    AssertionError,
    OverflowError,
)

EXAMPLES = int(os.environ.get("CONVCALC_CATALOG_EXAMPLES", "250"))
"""Examples per layer."""
LARGEST_TENSOR = 1 << 20
"""Elements: a case whose torch run would make a larger tensor is not run on the CPU (see _too_large)."""


@dataclass(frozen=True)
class Verdict:
    """What one side says about one layer on one input shape."""

    accepted: bool
    output: Shape | None = None
    params: int | None = None
    buffers: int | None = None
    reason: str = ""

    def key(self) -> tuple[Any, ...]:
        return (self.accepted, self.output, self.params, self.buffers) if self.accepted else (False,)


# --- convcalc: the only place that calls the library -------------------------------------------------------------


def convcalc_verdict(name: str, arguments: dict[str, Any], shape: Shape) -> Verdict:
    """convcalc's verdict on layer ``name`` with ``arguments`` (YAML-like values: lists, not tuples) on ``shape``."""
    from convcalc.network import StackSpecError, resolve, run_stack

    try:
        specs = resolve([(name, arguments, None)])
        result = run_stack(shape, specs)
    except StackSpecError as error:
        return Verdict(False, reason=f"StackSpecError: {error}")
    if result.error is not None:
        return Verdict(False, reason=f"StackError: {result.error}")
    row = result.rows[0]
    return Verdict(True, output=tuple(row.output), params=row.params, buffers=row.buffers)


# --- torch ---------------------------------------------------------------------------------------------------------

INFERRED = {"in_channels", "num_features", "num_channels", "in_features"}
LAZY = {
    "Conv": "LazyConv",
    "ConvTranspose": "LazyConvTranspose",
    "BatchNorm": "LazyBatchNorm",
    "InstanceNorm": "LazyInstanceNorm",
    "Linear": "LazyLinear",
}


def _family(name: str) -> str:
    return name[:-2] if name[-2:] in ("1d", "2d", "3d") else name


def _dims(name: str) -> int | None:
    """Spatial axes of an N-d class (Conv2d: 2); None for the others."""
    return int(name[-2]) if name[-2:] in ("1d", "2d", "3d") else None


def shape_channels(name: str, shape: Shape) -> int:
    """The channels of ``shape`` as the class itself reads them: the value that makes a given argument match.

    (Left out, the argument is torch's Lazy class's to infer, which may read it otherwise: LazyInstanceNorm
    reads dim 1 even of an unbatched input.)
    """
    family, dims = _family(name), _dims(name)
    if family in ("Conv", "ConvTranspose", "InstanceNorm"):
        assert dims is not None
        # dim 0 of an unbatched input, dim 1 of a batched one
        return shape[len(shape) - dims - 1] if len(shape) > dims else 1
    if family == "Linear":
        return shape[-1] if shape else 1
    return shape[1] if len(shape) > 1 else 1  # BatchNorm, GroupNorm: (N, C, *)


def torch_arguments(name: str) -> dict[str, inspect.Parameter]:
    """torch's keyword arguments of class ``name``, from its signature (device and dtype left out)."""
    parameters = inspect.signature(getattr(nn, name).__init__).parameters
    left_out = {"self", "device", "dtype", "args", "kwargs"}
    if name == "Hardtanh":
        left_out |= {"min_value", "max_value"}  # deprecated aliases of min_val and max_val
    return {key: p for key, p in parameters.items() if key not in left_out}


def _as_torch(value: Any) -> Any:
    """A YAML list stands for torch's tuple."""
    return tuple(value) if isinstance(value, list) else value


def _build(name: str, arguments: dict[str, Any], shape: Shape) -> nn.Module:
    """torch's module for ``arguments``; where an inferred argument is left out, torch's Lazy class infers it."""
    kwargs = {key: _as_torch(value) for key, value in arguments.items()}
    family = _family(name)
    missing = [key for key in torch_arguments(name) if key in INFERRED and key not in kwargs]
    if missing and family in LAZY:
        eager = {**kwargs, **{key: shape_channels(name, shape) for key in missing}}
        # The Lazy classes skip checks of the class's own constructor (LazyConvTranspose: out_channels divisible
        # by groups, which then makes the wrong number of channels): the class must take the values too.
        with torch.device("meta"):
            getattr(nn, name)(**eager)
        if family == "InstanceNorm":  # the Lazy class's defaults differ from InstanceNormNd's
            kwargs.setdefault("affine", False)
            kwargs.setdefault("track_running_stats", False)
        return getattr(nn, LAZY[family] + name[len(family) :])(**kwargs)
    for key in missing:  # GroupNorm's num_channels: no Lazy class
        kwargs[key] = shape_channels(name, shape)
    return getattr(nn, name)(**kwargs)


class _Largest(TorchDispatchMode):
    """Records the most elements of any tensor an operation makes."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self.largest = max(self.largest, leaf.numel())
        return out


def _too_large(name: str, arguments: dict[str, Any], shape: Shape) -> bool:
    """Whether the layer is too large to run here, by a dry run on the meta device.

    Meta tensors have shapes and no data. meta is no judge of validity, so only its sizes count:
    where it raises, the sizes made up to there (a Lazy module's weights included) decide. CPU pooling also
    takes time in proportion to the kernel (its loops step through the padding), whatever the output:
    MaxPool3d with a kernel_size of 10**9 takes a second per output element.
    """
    try:
        with torch.device("meta"):
            module = _build(name, arguments, shape)
    except Exception:  # the CPU constructor raises too, before it allocates
        return False
    module.eval()
    mode = _Largest()
    work = 0
    try:
        with mode, torch.no_grad():
            out = module(torch.zeros(shape, device="meta"))
        kernel = arguments.get("kernel_size")
        sizes = [abs(k) for k in (kernel if isinstance(kernel, list) else [kernel]) if isinstance(k, int)]
        # (from 2**31 on, torch refuses the int at once)
        if _family(name) in ("MaxPool", "AvgPool", "LPPool") and max(sizes, default=0) < 2**31:
            work = (out[0] if isinstance(out, tuple) else out).numel() * sum(sizes)
    except Exception:  # meta rejects what CPU torch rejects, and more
        pass
    state = [t for t in (*module.parameters(), *module.buffers()) if not isinstance(t, UninitializedTensorMixin)]
    return max(mode.largest, sum(t.numel() for t in state), work) > LARGEST_TENSOR


def _beyond_int32(arguments: dict[str, Any]) -> bool:
    """Whether a kernel_size, padding or dilation reaches 2**31, where CPU torch's max_pool1d gives no verdict.

    Its int arithmetic overflows there: a kernel_size of 2**33 loops for ever, a dilation of 2**40 runs and
    returns a shape (the meta device and MaxPool2d reject both); convcalc refuses them. A stride of any size it
    takes, rightly.
    """
    values = [arguments.get(key) for key in ("kernel_size", "padding", "dilation")]
    items = [v for value in values for v in (value if isinstance(value, list) else [value])]
    return any(isinstance(v, int) and abs(v) >= 2**31 for v in items)


def torch_verdict(name: str, arguments: dict[str, Any], shape: Shape) -> Verdict | None:
    """torch's verdict, from the module built on the CPU and run in eval mode; None where it gives none here."""
    if name == "MaxPool1d" and _beyond_int32(arguments):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if _too_large(name, arguments, shape):
            return None
        try:
            module = _build(name, arguments, shape)
            module.eval()
            with torch.no_grad():
                out = module(torch.zeros(shape))
        except TORCH_REJECTS as error:
            return Verdict(False, reason=f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    if isinstance(out, tuple):  # return_indices=True: (values, indices)
        out = out[0]
    return Verdict(
        True,
        output=tuple(out.shape),
        params=sum(p.numel() for p in module.parameters()),
        buffers=sum(b.numel() for b in module.buffers()),
    )


# --- what to generate ----------------------------------------------------------------------------------------------

PER_AXIS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size", "size"}
SIZES = {"normalized_shape", "unflattened_size"}
BOOLEANS = {
    "bias", "ceil_mode", "return_indices", "count_include_pad", "affine", "track_running_stats",
    "elementwise_affine", "inplace", "align_corners", "recompute_scale_factor",
}  # fmt: skip
INTEGERS = {
    "out_channels", "groups", "num_groups", "out_features", "start_dim", "end_dim", "dim", "upscale_factor",
    "downscale_factor", "num_parameters", "divisor_override",
} | INFERRED  # fmt: skip
CHOICES = {
    "padding_mode": ["zeros", "reflect", "replicate", "circular"],
    "mode": ["nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact"],
    "approximate": ["none", "tanh"],
}
# Everything else (eps, momentum, p, alpha, lower, value, norm_type, scale_factor, ...) is a float.

NATURAL_RANKS: dict[str, tuple[int, ...]] = {
    "BatchNorm1d": (2, 3),
    "Upsample": (3, 4, 5),
    "PixelShuffle": (3, 4, 5),
    "PixelUnshuffle": (3, 4, 5),
    "Softmax2d": (3, 4),
    "GroupNorm": (2, 3, 4),
}

# Wild values: whole classes, from the whole range of the type (huge integers, nan, infinities, 1e308, any text),
# mixed with small values so that some are valid.
small_ints = st.integers(-3, 8)
# the edges of the integer types torch converts to: 32-bit (pooling), 64-bit (sizes), and just past them
boundaries = st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**32 + 1, 2**62, 2**63 - 1, -(2**31), -(2**31) - 1,
                              -(2**63) + 1]).map(int)  # fmt: skip
ints = st.one_of(small_ints, small_ints, small_ints, st.integers(), boundaries)
FLOAT32_MAX = 3.4028234663852886e38
# every edge of float32 and float64: subnormals of both, the largest float32 and the next float64 past it, the
# smallest normal float32, signed zeros, values whose reciprocal overflows float32 (or float64, to infinity)
special_floats = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        -0.0,
        0.0,
        1e308,
        -1e308,
        3.5e38,
        5e-324,
        float(2**63),
        1e-45,
        -1e-45,
        1.401298464324817e-45,
        1e-39,
        1.1754943508222875e-38,
        1e-308,
        2.2250738585072014e-308,
        FLOAT32_MAX,
        -FLOAT32_MAX,
        math.nextafter(FLOAT32_MAX, math.inf),
        3.4e38,
        -3.4e38,
        2.9e-39,
    ]
)
floats = st.one_of(
    st.floats(-3, 3),
    st.sampled_from([0.0, 0.125, 1 / 3, 0.5, 1.0, 2.0, -1.0, 1e-5, 20.0]),
    special_floats,
    st.floats(),
    small_ints,
)
# Values of a type convcalc does not document for the argument, which torch may coerce.
wrong_for_int = st.one_of(st.booleans(), st.sampled_from([2.0, 1.5, math.nan]))
wrong_for_bool = st.sampled_from([0, 1, 2, 0.0, 1.0, "yes", ""])
wrong_for_float = st.booleans()

# Tame values: the usual range of each argument, so that most layers are valid. They only make valid cases common:
# wild values cover the same arguments, so tame ranges decide nothing about what is tested.
TAME: dict[str, st.SearchStrategy[Any]] = {
    "out_channels": st.integers(1, 4),
    "out_features": st.integers(1, 4),
    "groups": st.sampled_from([1, 1, 2]),
    "num_groups": st.sampled_from([1, 1, 2]),
    "upscale_factor": st.integers(1, 2),
    "downscale_factor": st.integers(1, 2),
    "divisor_override": st.integers(1, 4),
    "kernel_size": st.integers(1, 3),
    "stride": st.integers(1, 2),
    "padding": st.integers(0, 1),
    "dilation": st.integers(1, 2),
    "output_padding": st.integers(0, 1),
    "output_size": st.one_of(st.integers(1, 4), st.none()),
    "size": st.integers(1, 8),
    "eps": st.sampled_from([1e-5, 1e-3, 0.0, 0.1]),
    "momentum": st.sampled_from([0.1, 0.0, 0.5, 1.0]),
    "p": st.sampled_from([0.0, 0.2, 0.5, 1.0]),
    "norm_type": st.sampled_from([1, 2, 3, 1.5, 2.0]),
    "scale_factor": st.sampled_from([0.5, 1, 1.5, 2, 3, 2.0]),
    "lower": st.floats(0, 0.3),
    "upper": st.floats(0.3, 1),
    "min_val": st.floats(-2, -0.5),
    "max_val": st.floats(0.5, 2),
    "lambd": st.floats(0, 2),
    "beta": st.floats(0.5, 3),
    "threshold": st.floats(-3, 30),
}
tame_floats = st.floats(-3, 3)


def documented_type(argument: str, value: Any, none_allowed: bool) -> bool:
    """Whether ``value`` has the type convcalc's docs give ``argument``: the YAML types torch's own annotations name.

    Lists stand for tuples; None only where torch's signature allows it.
    """

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if value is None:
        return none_allowed
    if argument in BOOLEANS:
        return isinstance(value, bool)
    if argument in CHOICES:
        return isinstance(value, str)
    if argument in INTEGERS:
        return is_int(value)
    if argument in PER_AXIS or argument in SIZES:
        if argument == "padding" and isinstance(value, str):
            return True
        items = value if isinstance(value, list) else [value]
        return all(is_int(v) or (v is None and argument == "output_size") for v in items)
    items = value if isinstance(value, list) and argument == "scale_factor" else [value]
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


@st.composite
def per_axis(draw: st.DrawFn, axes: int, values: st.SearchStrategy[Any], wild: bool) -> Any:
    """One value for every axis, or a list: of the right length, or (wild) sometimes of another."""
    if draw(st.booleans()):
        return draw(values)
    length = draw(st.one_of(st.just(axes), st.integers(0, 7))) if wild else axes
    return draw(st.lists(values, min_size=length, max_size=length))


def axes_of(name: str, shape: Shape) -> int:
    dims = _dims(name)
    if dims is None:  # Upsample: the input's spatial axes
        return max(len(shape) - 2, 1)
    return 2 * dims if name[:-2].endswith("Pad") else dims


@st.composite
def tame_value(draw: st.DrawFn, name: str, argument: str, shape: Shape) -> Any:
    """A value from the usual range of one keyword argument."""
    if argument in INFERRED:
        return shape_channels(name, shape)
    if argument in BOOLEANS:
        return draw(st.booleans())
    if argument == "mode":  # Upsample: a mode for the input's rank
        modes = ["nearest", "area", "nearest-exact", *{3: ["linear"], 4: ["bilinear", "bicubic"]}.get(len(shape), [])]
        return draw(st.sampled_from([*modes, "trilinear"] if len(shape) == 5 else modes))
    if argument in CHOICES:
        return draw(st.sampled_from(CHOICES[argument]))
    if argument in ("start_dim", "end_dim", "dim"):
        rank = max(len(shape), 1)
        return draw(st.integers(-rank, rank - 1))
    if argument == "num_parameters":
        return draw(st.sampled_from([1, shape[1] if len(shape) > 1 else 1]))
    if argument == "padding" and name[:-2].endswith("Pad"):
        return draw(per_axis(axes_of(name, shape), st.integers(-1, 2), wild=False))
    if argument == "padding" and name.startswith("Conv") and draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(["same", "valid"]))
    if argument in PER_AXIS:
        return draw(per_axis(axes_of(name, shape), TAME[argument], wild=False))
    if argument == "scale_factor":
        return draw(per_axis(axes_of(name, shape), TAME[argument], wild=False))
    if argument == "normalized_shape":
        start = draw(st.integers(0, max(len(shape) - 1, 0)))
        trailing = list(shape[start:])
        return trailing[0] if len(trailing) == 1 and draw(st.booleans()) else trailing
    if argument == "unflattened_size":
        size = shape[0] if shape else 1
        return draw(st.sampled_from([[-1], [1, -1], [-1, 1], [size], [size, 1], [1, size]]))
    return draw(TAME.get(argument, tame_floats))


@st.composite
def wild_value(draw: st.DrawFn, name: str, argument: str, shape: Shape) -> Any:
    """A value from the whole class of the argument's type (and, rarely, of another type)."""
    if argument in BOOLEANS:
        return draw(st.booleans() if draw(st.integers(0, 4)) else wrong_for_bool)
    if argument in CHOICES:
        return draw(st.one_of(st.sampled_from(CHOICES[argument]), st.text()))
    if argument in INTEGERS:
        return draw(ints if draw(st.integers(0, 9)) else wrong_for_int)
    if argument in PER_AXIS:
        items = st.one_of(ints, st.none()) if argument == "output_size" else ints
        if draw(st.integers(0, 9)) == 0:
            items = st.one_of(items, wrong_for_int)
        if argument == "padding" and name.startswith("Conv") and draw(st.integers(0, 3)) == 0:
            return draw(st.one_of(st.sampled_from(["same", "valid"]), st.text(max_size=6)))
        return draw(per_axis(axes_of(name, shape), items, wild=True))
    if argument in SIZES:
        return draw(st.one_of(ints, st.lists(ints, max_size=4)))
    if draw(st.integers(0, 9)) == 0:  # a float argument
        return draw(wrong_for_float)
    if argument == "scale_factor" and draw(st.booleans()):
        return draw(per_axis(axes_of(name, shape), floats, wild=True))
    return draw(floats)


@st.composite
def input_shapes(draw: st.DrawFn, name: str) -> Shape:
    """Mostly a rank the layer takes, sometimes any rank from 0 to 5; sizes 1 to 6."""
    dims = _dims(name)
    natural = NATURAL_RANKS.get(name, (dims + 1, dims + 2) if dims is not None else (1, 2, 3, 4))
    if _family(name) == "BatchNorm" and dims != 1:
        natural = (dims + 2,) if dims is not None else natural
    rank = draw(st.one_of(st.sampled_from(natural), st.sampled_from(natural), st.integers(0, 5)))
    return tuple(draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank)))


@st.composite
def cases(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], Shape]:
    """An input shape and keyword arguments: in a third of the cases, half the arguments are wild."""
    shape = draw(input_shapes(name))
    wild = draw(st.integers(0, 2)) == 0
    arguments: dict[str, Any] = {}
    parameters = torch_arguments(name)
    for argument, parameter in parameters.items():
        required = parameter.default is inspect.Parameter.empty
        none_allowed = parameter.default is None or "None" in str(parameter.annotation)
        # An inferred argument is mostly left out, as a stack file would: torch's Lazy module infers it.
        if not ((required and argument not in INFERRED) or draw(st.integers(0, 2)) == 0):
            continue
        if none_allowed and draw(st.integers(0, 5)) == 0:
            arguments[argument] = None
        elif wild and draw(st.booleans()):
            arguments[argument] = draw(wild_value(name, argument, shape))
        else:
            arguments[argument] = draw(tame_value(name, argument, shape))
    if name == "Upsample" and not wild:  # one of size and scale_factor, as torch needs
        arguments.pop("size", None)
        arguments.pop("scale_factor", None)
        key = draw(st.sampled_from(["size", "scale_factor"]))
        arguments[key] = draw(tame_value(name, key, shape))
    return arguments, shape


# --- the property --------------------------------------------------------------------------------------------------


def excluded(name: str, arguments: dict[str, Any], shape: Shape, ours: Verdict, theirs: Verdict) -> str | None:
    """Why a disagreement is one of convcalc's documented, deliberate differences from torch; None if it is not."""
    if ours.accepted and not theirs.accepted:
        # convcalc works out shapes of any size torch's integers hold; torch cannot allocate a tensor of 2**63 bytes
        # or more, even for its weights (docs/stack.md): a limit of storage, not a rule of shapes.
        if "Storage size calculation overflowed" in (theirs.reason or ""):
            return "storage torch cannot count"
        # the same limit one step earlier: 2**63 elements or more, whose count itself overflows (2**21 cubed)
        # (or, where the element count of a 3-D output wraps to a negative number, not representable as a SymInt)
        # (or where the count wraps silently and CPU torch asks its allocator for the wrapped number of bytes)
        counting = ("numel: integer multiplication overflow", "cannot be represented as a SymInt",
                    "DefaultCPUAllocator: can't allocate memory")  # fmt: skip
        if any(words in (theirs.reason or "") for words in counting) and math.prod(ours.output or ()) >= 2**63:
            return "elements torch cannot count"
        # CPU torch's oneDNN transposed convolution truncates a stride or dilation of 2**31 or more to 32 bits
        # (docs/usage.md, with its other oneDNN quirk); torch's other backends take them.
        if name.startswith("ConvTranspose") and any(
            abs(v) >= 2**31 for key in ("stride", "dilation", "kernel_size", "padding", "output_padding")
            for v in (arguments.get(key, 1) if isinstance(arguments.get(key, 1), list) else [arguments.get(key, 1)])
            if isinstance(v, int)
        ):  # fmt: skip
            return "oneDNN's 32-bit transposed convolution"
        return None
    if ours.accepted or not theirs.accepted:
        return None
    # torch's 64-bit arithmetic overflows and answers a wrong size (ReplicationPad1d padding 2**63 - 1 on a width of
    # 3 gives 1, for 2**64 + 1); convcalc refuses a size or intermediate of 2**63 or more (docs/stack.md)
    if "beyond torch's 64-bit integers" in ours.reason and any(
        isinstance(v, int) and abs(v) >= 2**62 for value in arguments.values()
        for v in (value if isinstance(value, list) else [value])
    ):  # fmt: skip
        return "torch's 64-bit arithmetic overflows"
    # Circular padding with a negative and a positive pad on one axis: torch runs it or fails on an aliasing check,
    # erratically; convcalc refuses it (docs/stack.md, "differs on purpose").
    if name.startswith("CircularPad") and isinstance(arguments.get("padding"), list):
        pads = arguments["padding"]
        if any(min(pads[i : i + 2]) < 0 < max(pads[i : i + 2]) for i in range(0, len(pads) - 1, 2)):
            return "mixed-sign circular padding"
    # convcalc stops at an output that is empty along a dimension (docs/stack.md); torch makes the tensor.
    # This also covers CPU torch's oneDNN transposed convolutions whose output size is 0 (docs/usage.md).
    if theirs.output is not None and 0 in theirs.output:
        return "empty output"
    # convcalc requires the documented YAML type (true/false, integers, numbers) where torch coerces another.
    parameters = torch_arguments(name)
    for argument, value in arguments.items():
        parameter = parameters[argument]
        none_allowed = parameter.default is None or "None" in str(parameter.annotation)
        if not documented_type(argument, value, none_allowed):
            return "an undocumented type"
    # convcalc refuses nan and infinities in every number (docs/stack.md, "What YAML reads otherwise"); torch takes
    # them for many float arguments (Softplus threshold, Threshold value, ...).
    for value in arguments.values():
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in items):
            return "a non-finite number"
    # A stack's input is batch first, a list of positive integers (docs/stack.md): no 0-d input.
    if not shape:
        return "0-d input"
    # return_indices: true makes torch's layer return a pair, which convcalc refuses on purpose in a stack.
    if arguments.get("return_indices") is True:
        return "return_indices"
    # A transposed conv with dilation 0 is invalid, though oneDNN runs a few (docs/usage.md).
    if name.startswith("ConvTranspose"):
        dilation = arguments.get("dilation", 1)
        if 0 in (dilation if isinstance(dilation, list) else [dilation]):
            return "transposed conv with dilation 0"
    return None


def event(text: str) -> None:
    """Hypothesis' event, where a Hypothesis test runs (the cases exploration found run as plain tests)."""
    if currently_in_test_context():
        hypothesis_event(text)


def _check(name: str, arguments: dict[str, Any], shape: Shape) -> None:
    theirs = torch_verdict(name, arguments, shape)
    if theirs is None:
        event("not run: no CPU torch verdict (too large, or max_pool1d overflow)")
        return
    ours = convcalc_verdict(name, arguments, shape)
    event(f"torch {'accepts' if theirs.accepted else 'rejects'}")
    why = excluded(name, arguments, shape, ours, theirs)
    if why is not None:
        event(f"excluded: {why}")
        return
    assert ours.key() == theirs.key(), (
        f"{name}({arguments}) on {shape}:\n"
        f"  torch:    {theirs.key() if theirs.accepted else theirs.reason}\n"
        f"  convcalc: {ours.key() if ours.accepted else ours.reason}"
    )


# the torch.nn layers a module of one input runs; tensor methods, learned tensors and attention, which torch runs
# otherwise, are compared in tests/test_graph_torch.py
NN_LAYERS = [name for name, kind in LAYERS.items() if kind.form is Form.MODULE and name != "TransformerEncoderLayer"]


@pytest.mark.parametrize("name", NN_LAYERS)
@settings(max_examples=scaled(EXAMPLES), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_layer_agrees_with_torch(name: str, data: st.DataObject) -> None:
    arguments, shape = data.draw(cases(name), label="arguments, shape")
    _check(name, arguments, shape)


# Cases exploration found (pytest --hypothesis-profile=explore, docs/fuzzing.md), replayed on every run: each was a
# disagreement with torch until fixed.
FOUND = [
    ("CELU", {"alpha": 5e-324}, (1,)),  # 1/alpha is infinite in float64, which converts to float32: torch takes it
    ("CELU", {"alpha": 1e-45}, (1,)),  # 1/alpha is a finite float64 beyond float32: torch refuses it
    ("CELU", {"alpha": 1e-39}, (2, 3)),
    ("CELU", {"alpha": -0.0}, (1,)),
    ("MaxPool2d", {"kernel_size": 3, "stride": 2**31}, (1, 1, 10, 10)),  # pools take 32-bit integers
    ("MaxPool1d", {"kernel_size": 3, "stride": 2**31}, (1, 1, 10)),  # ... but MaxPool1d a stride of any size
    ("AvgPool1d", {"kernel_size": 2, "stride": 2**31}, (1, 1, 10)),
    ("LeakyReLU", {"negative_slope": 3.4028234663852886e38}, (2,)),  # the largest float32 converts
    ("LeakyReLU", {"negative_slope": 3.402823466385289e38}, (2,)),  # the next float64 does not
    ("Hardtanh", {"min_val": -1e-45, "max_val": 1e-45}, (2,)),
    ("RReLU", {"upper": 3.41e38}, (1, 2, 4)),  # eval mode's slope is the mean, 1.7e38: within float32
    ("RReLU", {"lower": -3.41e38}, (1, 2, 4)),
    ("RReLU", {"lower": 3.4e38, "upper": 1e300}, (1, 2, 4)),  # a mean beyond float32: refused
    ("ReplicationPad1d", {"padding": 2**63 - 1}, (1, 3)),  # torch overflows to a width of 1; convcalc refuses
    ("Conv3d", {"out_channels": 1, "kernel_size": 1, "padding": 1512308, "bias": False}, (1, 1, 1, 1)),  # 2**64.6
    # 2140089635 cubed elements (2**92.9): torch's count wraps and it asks for 8,247,850,154,971,011,564 bytes
    ("Conv3d", {"out_channels": 1, "kernel_size": 1, "padding": 1070044817, "bias": False}, (1, 1, 1, 1)),
]


@pytest.mark.parametrize(("name", "arguments", "shape"), FOUND, ids=lambda value: str(value)[:40])
def test_cases_exploration_found(name: str, arguments: dict[str, Any], shape: Shape) -> None:
    _check(name, arguments, shape)
