"""Tests that kill the mutants of formulas.py, layers.py and catalog.py that the other fast tests let live.

Each test names the mutant it kills (file, line of the code as it was mutated, and the mutation). Every expected
value comes from real torch run on its own inputs, or from torch's documented formula worked out by hand in the
comment beside it: never from convcalc itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convcalc import formulas
from convcalc.catalog import ELEMENTWISE
from convcalc.errors import InvalidLayerError
from convcalc.layers import Family, LayerResult, avg_pool, conv, conv_transpose, max_pool
from convcalc.network import StackSpecError, resolve, run_stack

TORCH_REJECTS = (RuntimeError, ValueError)


def torch_length(module: nn.Module, length: int) -> int | None:
    """The output length torch gives for a 1-D input of ``length`` (one channel), or None where it refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = module(torch.zeros(1, 1, length))
        except TORCH_REJECTS:
            return None
    return int(out.shape[-1]) if out.shape[-1] > 0 else None


# --- formulas.py: the public functions' torch defaults ------------------------------------------------------------


def test_effective_kernel_default_dilation_is_one() -> None:
    """Kills formulas.py:37 ``dilation: int = 1`` -> 2 and -> 0 (effective_kernel's default)."""
    # torch's default dilation is 1: a kernel of 3 spans 1*(3-1)+1 = 3 input positions
    assert nn.Conv1d(1, 1, 3).dilation == (1,)
    assert formulas.effective_kernel(3) == 3


def test_conv_transpose_length_defaults_are_torchs() -> None:
    """Kills formulas.py:79 ``stride: int = 1`` -> 2, -> 0 and formulas.py:80 ``padding: int = 0`` -> 1, -> -1."""
    expected = torch_length(nn.ConvTranspose1d(1, 1, kernel_size=3), 5)  # (5-1)*1 - 0 + (3-1) + 0 + 1 = 7
    assert expected == 7
    assert formulas.conv_transpose_length(5, kernel_size=3) == expected


def test_pool_length_defaults_are_torchs() -> None:
    """Kills formulas.py:98 ``padding = (0, 0)`` -> (1, 0), (-1, 0), (0, 1), (0, -1); formulas.py:99
    ``dilation: int = 1`` -> 2, -> 0; formulas.py:100 ``ceil_mode: bool = False`` -> True."""
    # MaxPool1d defaults: padding 0, dilation 1, ceil_mode False
    assert torch_length(nn.MaxPool1d(3, stride=1), 5) == 3  # (5-3)//1 + 1
    assert formulas.pool_length(5, kernel_size=3, stride=1) == 3
    assert torch_length(nn.MaxPool1d(3, stride=2), 6) == 2  # floor((6-3)/2) + 1; ceil mode would give 3
    assert formulas.pool_length(6, kernel_size=3, stride=2) == 2


def test_drops_last_window_default_dilation_is_one() -> None:
    """Kills formulas.py:205 ``dilation: int = 1`` -> 0 (drops_last_window's default)."""
    # MaxPool1d(3, 2, padding=1, ceil_mode=True) on 4: ceil((4+2-3)/2) + 1 = 3 windows by the formula; the last
    # starts at 2*2 = 4, inside the input (which ends at padded position 4), so torch keeps it and makes 3
    ceil_count = -(-(4 + 2 - 3) // 2) + 1
    out = torch_length(nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), 4)
    assert (ceil_count, out) == (3, 3)
    assert formulas.drops_last_window(4, kernel_size=3, stride=2, padding=(1, 1)) is False


def test_smallest_length_is_none_when_upper_gives_zero() -> None:
    """Kills formulas.py:148 ``output_length(upper) < 1`` -> ``< 0`` (an output of exactly 0 means no input works)."""
    conv = nn.Conv1d(1, 1, kernel_size=11, stride=4)
    assert all(torch_length(conv, n) is None for n in range(1, 8))  # torch refuses every input up to 7
    assert formulas.conv_length(7, kernel_size=11, stride=4) == 0  # (7-11)//4 + 1: exactly 0, the boundary
    assert formulas.smallest_length(lambda n: formulas.conv_length(n, kernel_size=11, stride=4), upper=7) is None


def test_smallest_length_can_be_one() -> None:
    """Kills formulas.py:150 ``low, high = 1, upper`` -> ``2, upper`` and -> ``0, upper``."""
    # a 1x1 conv takes an input of 1, and with padding 1 an input of 1 is the smallest in 1..upper that works
    assert torch_length(nn.Conv1d(1, 1, kernel_size=1), 1) == 1
    assert torch_length(nn.Conv1d(1, 1, kernel_size=1, padding=1), 1) == 3
    assert formulas.smallest_length(lambda n: formulas.conv_length(n, kernel_size=1), upper=10) == 1
    padded = formulas.smallest_length(lambda n: formulas.conv_length(n, kernel_size=1, padding=(1, 1)), upper=10)
    assert padded == 1


# --- layers.py ----------------------------------------------------------------------------------------------------


def torch_shape(module: nn.Module, spatial: tuple[int, ...], channels: int = 1) -> tuple[int, ...] | None:
    """The spatial output shape torch gives for a one-sample input, or None where it refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = module(torch.zeros(1, channels, *spatial))
        except (*TORCH_REJECTS, NotImplementedError):
            return None
    return tuple(out.shape[2:])


def convcalc_shape(call: Callable[..., LayerResult], spatial: tuple[int, ...], **kwargs: Any) -> tuple[int, ...] | None:
    """convcalc's output for the same layer, or None where it refuses."""
    try:
        return call(spatial, **kwargs).output
    except InvalidLayerError:
        return None


CONV_CLASSES = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


@pytest.mark.parametrize(
    ("dims", "padding", "padding_mode"),
    [
        (1, (0, 2), "reflect"),  # F.pad spends the leading 0 on the channel axis: torch runs it
        (2, (0, 1, 1), "replicate"),
        (1, (0, 2), "circular"),
        (1, (1, 2), "reflect"),  # a leading value that is not 0: torch refuses
        (3, (0, 1, 1, 1), "reflect"),  # F.pad pads at most 3 axes: torch refuses
        (1, (0, 2), "zeros"),  # zeros padding never goes through F.pad: torch refuses
        (2, (2,), "zeros"),  # a one-item padding counts for every axis with zeros
        (2, (2,), "reflect"),  # ... but not through F.pad
    ],
)
def test_conv_padding_sequences_as_torch_reads_them(dims: int, padding: tuple[int, ...], padding_mode: str) -> None:
    """Kills layers.py:294 (``_pads_channels_by_zero``) return -> None, ``and`` -> ``or``, ``==`` -> ``!=`` (both),
    ``<=`` -> ``<``, ``dims + 1`` -> ``dims - 1``, ``+ 1`` -> ``+ 2``/``+ 0``, ``3`` -> 4/2, ``values[0]`` ->
    ``values[1]``/``values[-1]``, ``== 0`` -> ``== 1``/``== -1``; layers.py:367 ``padding_mode != "zeros"`` -> ``==``;
    layers.py:372 ``tuple(padding)[1:]`` -> ``[2:]``/``[0:]``; layers.py:374 ``padding_mode == "zeros"`` -> ``!=``."""
    spatial = (6,) * dims
    expected = torch_shape(CONV_CLASSES[dims](1, 1, 3, padding=padding, padding_mode=padding_mode), spatial)
    assert convcalc_shape(conv, spatial, kernel_size=3, padding=padding, padding_mode=padding_mode) == expected


def test_conv_padding_valid_pads_nothing() -> None:
    """Kills layers.py:346 ``[(0, 0)] * len(kernel)`` -> ``(1, 0)``, ``(-1, 0)``, ``(0, 1)``, ``(0, -1)``."""
    expected = torch_shape(nn.Conv2d(1, 1, 3, padding="valid"), (9, 9))
    assert expected == (7, 7)
    assert conv((9, 9), kernel_size=3, padding="valid").output == expected


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
@pytest.mark.parametrize(
    ("call", "torch_class", "kwargs"),
    [
        (conv, nn.Conv2d, {"kernel_size": (3,)}),  # kills layers.py:331 one_for_all=False -> True
        (conv_transpose, nn.ConvTranspose2d, {"kernel_size": (3,)}),  # kills layers.py:485 one_for_all=False -> True
        (conv, nn.Conv2d, {"kernel_size": 0}),  # kills layers.py:340 at_least("kernel_size", kernel, 1) -> 0
        (conv_transpose, nn.ConvTranspose2d, {"kernel_size": 0}),  # kills layers.py:491 ... 1 -> 0
        (conv_transpose, nn.ConvTranspose2d, {"kernel_size": 3, "stride": 0}),  # kills layers.py:492 ... 1 -> 0
        (max_pool, nn.MaxPool2d, {"kernel_size": 0, "stride": 1}),  # kills layers.py:630 ... 1 -> 0
        (max_pool, nn.MaxPool2d, {"kernel_size": 2, "stride": 0}),  # kills layers.py:631 ... 1 -> 0
        (max_pool, nn.MaxPool2d, {"kernel_size": 2, "dilation": 0}),  # kills layers.py:633 ... 1 -> 0
    ],
)
def test_kernel_stride_and_dilation_that_torch_refuses(
    call: Callable[..., LayerResult], torch_class: type[nn.Module], kwargs: dict[str, Any]
) -> None:
    """Kills the ``one_for_all`` and ``at_least(..., 1)`` mutants named beside each case: torch refuses them all."""
    try:
        module = torch_class(1, 1, **kwargs) if torch_class.__name__.startswith("Conv") else torch_class(**kwargs)
        expected = torch_shape(module, (8, 8))
    except TORCH_REJECTS:
        expected = None
    assert expected is None
    assert convcalc_shape(call, (8, 8), **kwargs) is None


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_zero_out_channels_are_refused() -> None:
    """Kills layers.py:271 ``if value < 1`` -> ``< 0`` (in_channels, out_channels and batch must be at least 1)."""
    assert torch_shape(nn.Conv1d(4, 0, 3), (9,), channels=4) is None
    assert convcalc_shape(conv, (9,), kernel_size=3, in_channels=4, out_channels=0) is None


def test_only_one_to_three_spatial_axes() -> None:
    """Kills layers.py:193 ``not 1 <= len(size) <= 3`` -> ``0 <=`` and -> ``<= 4``: a clean InvalidLayerError."""
    assert not hasattr(nn, "Conv4d") and not hasattr(nn, "Conv0d")  # torch's convs have 1, 2 or 3 spatial axes
    with pytest.raises(InvalidLayerError):
        conv((), kernel_size=1)
    with pytest.raises(InvalidLayerError):
        conv((4, 4, 4, 4), kernel_size=1)


@pytest.mark.parametrize(("padding_mode", "padding"), [("reflect", 3), ("circular", 3)])
def test_padding_as_large_as_the_input(padding_mode: str, padding: int) -> None:
    """Kills layers.py:383 ``largest >= length`` -> ``>`` (reflect) and layers.py:390 ``largest > length`` -> ``>=``
    (circular): padding equal to the input is refused by reflection, taken by circular padding."""
    expected = torch_shape(nn.Conv1d(1, 1, 3, padding=padding, padding_mode=padding_mode), (3,))
    assert convcalc_shape(conv, (3,), kernel_size=3, padding=padding, padding_mode=padding_mode) == expected


def test_conv_transpose_defaults_are_torchs() -> None:
    """Kills layers.py:454 ``stride: PerAxis = 1`` -> 2, layers.py:457 ``groups: int = 1`` -> 2 and layers.py:458
    ``bias: bool = True`` -> False (conv_transpose's defaults)."""
    module = nn.ConvTranspose1d(2, 2, 3)
    result = conv_transpose((5,), kernel_size=3, in_channels=2, out_channels=2)
    assert result.output == torch_shape(module, (5,), channels=2) == (7,)
    assert result.params == sum(p.numel() for p in module.parameters()) == 14


def test_max_pool_default_is_floor_mode() -> None:
    """Kills layers.py:569 ``ceil_mode: bool = False`` -> True (max_pool's default)."""
    expected = torch_shape(nn.MaxPool1d(3, stride=2), (6,))
    assert expected == (2,)  # floor((6-3)/2) + 1; ceil mode would make 3
    assert max_pool((6,), kernel_size=3, stride=2).output == expected


def test_only_max_pool_has_a_dilation() -> None:
    """Kills layers.py:678 ``kind == "Max"`` -> ``!=`` (which pool reports a dilation among its arguments)."""
    assert hasattr(nn.MaxPool1d(2), "dilation") and not hasattr(nn.AvgPool1d(2), "dilation")
    assert "dilation" in max_pool((6,), kernel_size=2).parameters
    assert "dilation" not in avg_pool((6,), kernel_size=2).parameters


def test_conv_axes_have_no_output_padding_and_drop_no_window() -> None:
    """Kills layers.py:117 ``output_padding: int = 0`` -> 1, -> -1 and layers.py:120 ``dropped_window: bool = False``
    -> True (the Axis defaults a conv's axes take)."""
    module = nn.Conv1d(1, 1, 3, stride=2)
    assert module.output_padding == (0,)  # torch's Conv keeps an output_padding of 0
    # Conv has no ceil_mode: torch gives floor((8-3)/2) + 1 = 3, every window the formula counts
    assert torch_shape(module, (8,)) == (3,)
    (axis,) = conv((8,), kernel_size=3, stride=2).axes
    assert axis.output_padding == module.output_padding[0]
    assert axis.dropped_window is False


def test_family_pool_and_layer_result_family() -> None:
    """Kills layers.py:71 (``Family.pool``) return -> None and ``in`` -> ``not in``, and layers.py:148
    (``LayerResult.family``) return -> None."""
    assert issubclass(nn.MaxPool2d, nn.modules.pooling._MaxPoolNd)  # torch's own grouping of its classes
    assert not issubclass(nn.Conv2d, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd))
    assert Family.MAX_POOL.pool is True and Family.AVG_POOL.pool is True
    assert Family.CONV.pool is False and Family.CONV_TRANSPOSE.pool is False
    assert conv_transpose((5,), kernel_size=3).family is Family.CONV_TRANSPOSE
    assert max_pool((6,), kernel_size=2).family is Family.MAX_POOL


# --- catalog.py: one-layer stacks against torch -------------------------------------------------------------------


def stack_verdict(name: str, args: dict[str, Any], shape: tuple[int, ...]) -> tuple[Any, ...] | None:
    """convcalc's (output, params, buffers) for one layer as a stack, or None where it refuses the layer."""
    try:
        result = run_stack(shape, resolve([(name, args, None)]))
    except StackSpecError:
        return None
    if result.error is not None:
        return None
    row = result.rows[0]
    return tuple(row.output), row.params, row.buffers


def torch_verdict(name: str, args: dict[str, Any], shape: tuple[int, ...]) -> tuple[Any, ...] | None:
    """torch's (output, params, buffers) for the module built from the same arguments, in eval mode, or None."""
    kwargs = {key: tuple(v) if isinstance(v, list) and key != "unflattened_size" else v for key, v in args.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module = getattr(nn, name)(**kwargs).eval()
            with torch.no_grad():
                out = module(torch.zeros(shape))
        except (*TORCH_REJECTS, NotImplementedError, IndexError, TypeError, AssertionError, ZeroDivisionError):
            return None
    if 0 in out.shape:  # convcalc stops at an empty output, on purpose
        return None
    params = sum(p.numel() for p in module.parameters())
    return tuple(out.shape), params, sum(b.numel() for b in module.buffers())


@pytest.mark.parametrize(
    ("name", "args", "shape"),
    [
        # catalog.py:174 ``-(2**31) <= value < 2**31``: 31 -> 30 (both), ``**`` -> ``*``
        ("MaxPool2d", {"kernel_size": 2, "stride": 2**30}, (1, 1, 4, 4)),
        # ... and ``value < 2**31`` -> ``<=``, 31 -> 32, 2 -> 3 (torch refuses 2**31)
        ("MaxPool2d", {"kernel_size": 2, "stride": 2**31}, (1, 1, 4, 4)),
        # catalog.py:215 ``not isinstance(size, int) and ...``: drop ``not``
        ("AdaptiveAvgPool2d", {"output_size": 1}, (5, 5)),
        ("AdaptiveAvgPool2d", {"output_size": [1, 1]}, (5, 5)),
        # catalog.py:245 ``-size <= dim < size``: ``<`` -> ``<=``
        ("Softmax", {"dim": 2}, (2, 3)),
        # catalog.py:263 ``sum(1 for n in sizes if n == -1) > 1``: 1 -> 0, 1 -> 2; catalog.py:265 ``n < -1``: 1 -> 2
        ("Unflatten", {"dim": 1, "unflattened_size": [-1, -1]}, (2, 6)),
        ("Unflatten", {"dim": 1, "unflattened_size": [2, -1]}, (2, 6)),
        ("Unflatten", {"dim": 1, "unflattened_size": [-2, -3]}, (2, 6)),
        ("Unflatten", {"dim": 1, "unflattened_size": [-2, -1]}, (2, 6)),
        ("Unflatten", {"dim": 0, "unflattened_size": []}, (1,)),  # found by the catalog test: torch wants sizes
        # catalog.py:315 ``len(shape) >= 2``: ``>=`` -> ``>``
        ("PReLU", {"num_parameters": 3}, (2, 3)),
        # catalog.py:330 ``math.prod(shape) // shape[1] == 1``: ``//`` -> ``*``
        ("BatchNorm1d", {"num_features": 3, "track_running_stats": False}, (1, 3)),
        # catalog.py:347 ``args["affine"] or args["track_running_stats"]``: ``or`` -> ``and``
        ("InstanceNorm1d", {"num_features": 4, "affine": True}, (2, 3, 5)),
        ("InstanceNorm1d", {"num_features": 4, "track_running_stats": True}, (2, 3, 5)),
        # catalog.py:383 ``(2 if args["bias"] else 1)``: 1 -> 0
        ("GroupNorm", {"num_groups": 2, "num_channels": 4, "bias": False}, (2, 4, 3)),
        # catalog.py:399 ``_UPSAMPLE_RANKS``: each rank +1 / -1
        ("Upsample", {"scale_factor": 2, "mode": "linear"}, (1, 1, 3)),
        ("Upsample", {"scale_factor": 2, "mode": "bilinear"}, (1, 1, 3, 3)),
        ("Upsample", {"scale_factor": 2, "mode": "bicubic"}, (1, 1, 3, 3)),
        ("Upsample", {"scale_factor": 2, "mode": "trilinear"}, (1, 1, 2, 2, 2)),
        # catalog.py:475 ``shape[-3] * r * r``: ``*`` -> ``//``
        ("PixelUnshuffle", {"downscale_factor": 2}, (1, 1, 4, 4)),
        # catalog.py:556 ``not strict and args[low] == args[high]``: ``and`` -> ``or``; catalog.py:665 strict=True ->
        # False (Hardtanh needs min_val < max_val); ``==`` -> ``!=`` (RReLU takes lower == upper)
        ("Hardtanh", {"min_val": 1.0, "max_val": 1.0}, (2, 3)),
        ("RReLU", {"lower": 0.25, "upper": 0.25}, (2, 3)),
        # catalog.py:583 ``stride_none``: nullable=True -> False, empty=True -> False
        ("MaxPool2d", {"kernel_size": 2, "stride": None}, (1, 1, 4, 4)),
        ("MaxPool2d", {"kernel_size": 2, "stride": []}, (1, 1, 4, 4)),
        # catalog.py:217 ``dims > 1`` -> ``>=`` (AdaptiveAvgPool1d takes no 1-D input, even for size 1)
        ("AdaptiveAvgPool1d", {"output_size": 1}, (5,)),
        # catalog.py:269 ``known == 0`` -> ``== -1`` (a 0 beside -1: a clean refusal, not ZeroDivisionError)
        ("Unflatten", {"dim": 1, "unflattened_size": [0, -1]}, (2, 6)),
        # catalog.py:327 ``args["eps"] <= 0`` -> ``<= -1``
        ("BatchNorm1d", {"num_features": 3, "eps": 0.0, "track_running_stats": False}, (2, 3)),
        # catalog.py:337 (BatchNorm), catalog.py:362 (InstanceNorm) ``(2 if args["bias"] else 1) * c``: 1 -> 2, 0
        ("BatchNorm1d", {"num_features": 3, "bias": False}, (2, 3)),
        ("InstanceNorm1d", {"num_features": 3, "affine": True, "bias": False}, (2, 3, 5)),
        # catalog.py:371 ``groups == 0 or channels % groups``: ``or`` -> ``and``
        ("GroupNorm", {"num_groups": 2, "num_channels": 3, "affine": False}, (2, 4, 3)),
        ("GroupNorm", {"num_groups": 0, "num_channels": 4}, (2, 4, 3)),
        # catalog.py:381 ``math.prod(shape) // groups == 1``: ``//`` -> ``*``
        ("GroupNorm", {"num_groups": 2, "num_channels": 2}, (1, 2)),
        # catalog.py:395 ``(2 if args["bias"] else 1) * count``: 1 -> 2
        ("LayerNorm", {"normalized_shape": 3, "bias": False}, (2, 3)),
        # catalog.py:466 ``shape[-2] * r``: ``*`` -> ``//``
        ("PixelShuffle", {"upscale_factor": 2}, (1, 4, 3, 3)),
        # catalog.py:503 ``mode == "constant" and length + min(before, 0) + min(after, 0) < 0``: ``==`` -> ``!=``,
        # 0 -> 1, ``+`` -> ``-`` (torch crops by each negative pad before it pads)
        ("ZeroPad1d", {"padding": [-4, 2]}, (1, 1, 3)),
        ("ZeroPad1d", {"padding": [2, -4]}, (1, 1, 3)),
        # catalog.py:604 ``divisor_override``: nullable=True -> False, ``d > 1`` -> ``>=``
        ("AvgPool2d", {"kernel_size": 2, "divisor_override": None}, (1, 1, 4, 4)),
        ("AvgPool1d", {"kernel_size": 2, "divisor_override": 2}, (1, 1, 4)),
        # catalog.py:618 ``empty=mode == "constant"`` -> ``!=``
        ("ZeroPad2d", {"padding": []}, (1, 1, 3, 3)),
        ("ReflectionPad2d", {"padding": []}, (1, 1, 3, 3)),
        # catalog.py:671 Softshrink ``value >= 0``: 0 -> -1
        ("Softshrink", {"lambd": -0.5}, (2, 3)),
        # catalog.py:520 ``any(n < 0 for n in sizes)``: 0 -> -1 (circular cropping to a negative size)
        ("CircularPad1d", {"padding": [-2, -2]}, (1, 1, 3)),
        # catalog.py:225 ``if value < 0`` (adaptive output_size): 0 -> -1
        ("AdaptiveAvgPool2d", {"output_size": [-1, 2]}, (1, 1, 4, 4)),
        # catalog.py:430 ``-INT64 < product < INT64``: the second ``<`` -> ``<=`` (an output of 2**63 overflows)
        ("Upsample", {"scale_factor": 2.0**62, "mode": "nearest"}, (1, 1, 2)),
    ],
)
def test_catalog_layer_agrees_with_torch(name: str, args: dict[str, Any], shape: tuple[int, ...]) -> None:
    """Kills the catalog.py mutants named above each case: a changed accept/reject verdict, size or count."""
    assert stack_verdict(name, args, shape) == torch_verdict(name, args, shape)


def last_row(items: list[tuple[str, dict[str, Any]]], shape: tuple[int, ...]) -> Any:
    result = run_stack(shape, resolve([(name, args, None) for name, args in items]))
    assert result.error is None
    return result.rows[-1]


def test_pixel_shuffle_receptive_field_and_jump() -> None:
    """Kills catalog.py:465 (PixelShuffle's windows) ``Window(1, Fraction(1, r))`` 1 -> 0 / 1 -> 2, ``* 2`` -> ``* 3``
    and ``len(shape) >= 4`` -> ``>= 5``."""
    x = torch.zeros(1, 4, 4, 4, requires_grad=True)
    out = nn.PixelShuffle(2)(x)
    # every output pixel reads exactly one input pixel: a receptive field of 1, whichever unit
    (grad,) = torch.autograd.grad(out[0, 0, 5, 3], x)
    assert int((grad != 0).sum()) == 1
    jump = Fraction(x.shape[-1], out.shape[-1])  # 2 output pixels per input pixel: a step of 1/2
    row = last_row([("PixelShuffle", {"upscale_factor": 2})], (1, 4, 4, 4))
    assert tuple(row.receptive_field) == (1, 1)
    assert tuple(row.jump) == (jump, jump)


def test_pixel_unshuffle_receptive_field_and_jump() -> None:
    """Kills catalog.py:474 (PixelUnshuffle's windows) ``len(shape) - 4`` -> ``- 3`` and ``-`` -> ``+``."""
    x = torch.ones(1, 1, 8, 8, requires_grad=True)
    out = nn.PixelUnshuffle(2)(x)
    # one output position, over all its channels, gathers a 2x2 block; the next position starts 2 pixels on
    (grad,) = torch.autograd.grad(out[0, :, 1, 2].sum(), x)
    rows, cols = torch.nonzero(grad[0, 0], as_tuple=True)
    assert (int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1) == (2, 2)
    assert (int(rows.min()), int(cols.min())) == (2, 4)
    row = last_row([("PixelUnshuffle", {"downscale_factor": 2})], (1, 1, 8, 8))
    assert tuple(row.receptive_field) == (2, 2)
    assert tuple(row.jump) == (2, 2)


def test_area_upsample_receptive_field_and_jump() -> None:
    """Kills catalog.py:440 (area mode's window) drop the outer unary ``-``, ``+ 1`` -> ``+ 0`` and ``max(n, 1)`` ->
    ``max(n, 2)``, and catalog.py:447 (``_ratio``) ``a % b == 0`` -> ``== 1``."""
    x = torch.ones(1, 1, 5, dtype=torch.float64, requires_grad=True)
    out = nn.Upsample(size=3, mode="area")(x)
    spans = []
    for unit in range(out.shape[-1]):
        (grad,) = torch.autograd.grad(out[0, 0, unit], x, retain_graph=True)
        seen = torch.nonzero(grad[0, 0]).flatten()
        spans.append(int(seen.max() - seen.min()) + 1)
    assert spans == [2, 3, 2]  # torch's adaptive windows of 5 into 3: [0, 2), [1, 4), [3, 5)
    assert tuple(last_row([("Upsample", {"size": 3, "mode": "area"})], (1, 1, 5)).receptive_field) == (max(spans),)
    # size 1 averages the whole input: torch's span is 5, and the field is the whole input
    (whole,) = torch.autograd.grad(nn.Upsample(size=1, mode="area")(x)[0, 0, 0], x)
    assert int((whole != 0).sum()) == 5
    (field,) = last_row([("Upsample", {"size": 1, "mode": "area"})], (1, 1, 5)).receptive_field
    assert field == 5
    # the average step between units is the input length over the output length: 4 into 3 steps 4/3
    out = nn.Upsample(size=3, mode="area")(torch.zeros(1, 1, 4))
    jump = Fraction(4, out.shape[-1])
    assert tuple(last_row([("Upsample", {"size": 3, "mode": "area"})], (1, 1, 4)).jump) == (jump,)


def test_elementwise_layers_keep_their_shape() -> None:
    """Kills catalog.py:685 ``kind.apply in (_same, ...)`` -> ``not in`` (which layers ELEMENTWISE names)."""
    x = torch.zeros(2, 3, 5, 5)
    assert nn.ReLU()(x).shape == x.shape and nn.Softmax(dim=1)(x).shape == x.shape
    assert nn.Conv2d(3, 3, 3)(x).shape != x.shape
    assert {"ReLU", "Softmax"} <= ELEMENTWISE
    assert "Conv2d" not in ELEMENTWISE


def test_conv_macs_count_the_batch() -> None:
    """Kills catalog.py:128 ``batch = shape[0] if c == 1 else 1`` -> ``c == 2`` and ``else 1`` -> ``else 2`` (the
    batch the MACs count, batched and unbatched)."""
    module = nn.Conv1d(2, 3, 3)
    for shape in ((4, 2, 9), (2, 9)):
        counter = FlopCounterMode(display=False)
        with counter:
            module(torch.zeros(shape))
        row = last_row([("Conv1d", {"out_channels": 3, "kernel_size": 3})], shape)
        batch = shape[0] if len(shape) == 3 else 1
        assert 2 * row.macs == counter.get_total_flops() == 2 * batch * 3 * 2 * 3 * 7
