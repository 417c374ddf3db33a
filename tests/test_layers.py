"""The core on its own: the errors it raises, and the numbers around the sizes."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convcalc
from convcalc import formulas
from convcalc.errors import ConvcalcError, InvalidLayerError
from tests.profiles import scaled


def test_every_deliberate_error_is_a_convcalc_error() -> None:
    assert issubclass(InvalidLayerError, ConvcalcError)
    assert issubclass(InvalidLayerError, ValueError)
    with pytest.raises(ConvcalcError):
        convcalc.conv((10, 10), kernel_size=11)


@pytest.mark.parametrize(
    ("call", "parameter", "axis"),
    [
        (lambda: convcalc.conv((10, 4), kernel_size=(3, 5)), "kernel_size", "W"),
        (lambda: convcalc.conv((10, 10), kernel_size=3, stride=(1, 0)), "stride", "W"),
        (lambda: convcalc.conv((10,), kernel_size=3, dilation=0), "dilation", "L"),
        (lambda: convcalc.conv((10,), kernel_size=3, padding=-1), "padding", "L"),
        (lambda: convcalc.conv((2, 9, 9), kernel_size=1, padding=3, padding_mode="circular"), "padding", "D"),
        (lambda: convcalc.conv((9,), kernel_size=3, padding="full"), "padding", None),
        (lambda: convcalc.conv((9,), kernel_size=3, groups=0), "groups", None),
        (lambda: convcalc.conv((9,), kernel_size=3, in_channels=4, out_channels=6, groups=4), "out_channels", None),
        (lambda: convcalc.conv((9, 9), kernel_size=(3, 3, 3)), "kernel_size", None),
        (lambda: convcalc.conv((0, 9), kernel_size=1), "input", "H"),
        (lambda: convcalc.conv_transpose((9,), kernel_size=3, padding="same"), "padding", None),
        (lambda: convcalc.conv_transpose((9,), kernel_size=3, padding_mode="reflect"), "padding_mode", None),
        (lambda: convcalc.conv_transpose((9,), kernel_size=3, output_padding=-1), "output_padding", "L"),
        (
            lambda: convcalc.conv_transpose((9, 9), kernel_size=3, stride=(2, 1), output_padding=1),
            "output_padding",
            "W",
        ),
        (lambda: convcalc.max_pool((9,), kernel_size=4, padding=3), "padding", "L"),
        (lambda: convcalc.max_pool((9,), kernel_size=3, padding="same"), "padding", None),
        (lambda: convcalc.avg_pool((4, 4, 2), kernel_size=3, padding=1), "kernel_size", "W"),
        (lambda: convcalc.avg_pool((1, 1), kernel_size=3), "kernel_size", "H"),
    ],
)
def test_errors_name_the_parameter_and_axis(call, parameter: str, axis: str | None) -> None:
    with pytest.raises(InvalidLayerError) as caught:
        call()
    assert (caught.value.parameter, caught.value.axis) == (parameter, axis)
    message = str(caught.value)
    assert "\n" not in message
    assert message.split(":")[0] in {
        f"{kind}{n}d" for kind in ("Conv", "ConvTranspose", "MaxPool", "AvgPool") for n in (1, 2, 3)
    }
    if axis:
        assert f"on axis {axis}" in message


def test_non_integer_values_are_refused() -> None:
    with pytest.raises(InvalidLayerError, match=r"kernel_size must be an int, got 2\.5"):
        convcalc.conv((9,), kernel_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidLayerError, match="stride must be an int, got True"):
        convcalc.max_pool((9,), kernel_size=2, stride=True)


def test_both_channels_or_neither() -> None:
    with pytest.raises(ConvcalcError, match="give both in_channels and out_channels"):
        convcalc.conv((9,), kernel_size=3, in_channels=3)


def test_sizes_are_exact_for_huge_inputs() -> None:
    result = convcalc.conv((10**12, 10**12), kernel_size=3, stride=2, in_channels=3, out_channels=8, batch=10**9)
    assert result.output == (499_999_999_999, 499_999_999_999)
    assert result.macs == 10**9 * 8 * 3 * 9 * 499_999_999_999**2


def test_params_and_macs_for_a_grouped_conv() -> None:
    result = convcalc.conv((56, 56), kernel_size=3, padding=1, groups=32, in_channels=128, out_channels=128)
    assert result.params == 128 * 4 * 9 + 128
    assert result.macs == 128 * 4 * 9 * 56 * 56
    assert convcalc.conv((56, 56), kernel_size=3, in_channels=4, out_channels=4, bias=False).params == 144


def test_pools_keep_channels_and_have_no_params() -> None:
    result = convcalc.max_pool((24, 24), kernel_size=2, in_channels=5, batch=3)
    assert (result.input_shape, result.output_shape, result.params, result.macs) == (
        (3, 5, 24, 24),
        (3, 5, 12, 12),
        0,
        0,
    )


def test_same_padding_puts_the_extra_pixel_after() -> None:
    result = convcalc.conv((10, 10), kernel_size=(4, 3), dilation=(1, 2), padding="same")
    assert [axis.padding for axis in result.axes] == [(1, 2), (2, 2)]
    assert result.output == (10, 10)


def test_ceil_mode_drops_a_window_that_would_start_in_the_padding() -> None:
    result = convcalc.max_pool((5,), kernel_size=2, stride=2, padding=1, ceil_mode=True)
    assert result.output == (3,)
    assert result.axes[0].dropped_window
    kept = convcalc.max_pool((6,), kernel_size=2, stride=2, padding=1, ceil_mode=True)
    assert kept.output == (4,) and not kept.axes[0].dropped_window


def test_pool_padding_limit_uses_the_undilated_kernel() -> None:
    convcalc.max_pool((20,), kernel_size=3, dilation=4, padding=1)
    with pytest.raises(InvalidLayerError, match="at most kernel_size // 2 = 1"):
        convcalc.max_pool((20,), kernel_size=3, dilation=4, padding=2)


def test_formula_text_follows_the_notes() -> None:
    (axis,) = convcalc.conv((227, 227), kernel_size=11, stride=4).axes[:1]
    assert axis.formula == "floor((227 - 11 + 2*0) / 4) + 1 = 55"
    dilated = convcalc.conv((20,), kernel_size=3, dilation=2).axes[0]
    assert dilated.formula == "floor((20 - (2*(3-1)+1) + 2*0) / 1) + 1 = 16"


sizes = st.integers(1, 60)
kernels = st.integers(1, 9)
strides = st.integers(1, 6)
dilations = st.integers(1, 3)


@settings(max_examples=scaled(1000))
@given(length=sizes, kernel=kernels, stride=strides, dilation=dilations, padding=st.integers(0, 4), ceil=st.booleans())
def test_pool_length_counts_the_windows_torch_keeps(length, kernel, stride, dilation, padding, ceil) -> None:
    """Window w starts at w*stride in padded coordinates. Floor mode keeps the windows that fit whole;
    ceil mode also a last partial one, but never one that starts past the input and left padding."""
    assume(padding <= kernel // 2)  # what torch allows a pool
    span = formulas.effective_kernel(kernel, dilation)
    padded = length + 2 * padding
    starts = range(padded + 1)
    if ceil:
        expected = sum(1 for w in starts if w * stride < padded - span + stride and w * stride < length + padding)
    else:
        expected = sum(1 for w in starts if w * stride + span <= padded)
    assume(expected >= 1)
    assert formulas.pool_length(length, kernel, stride, (padding, padding), dilation, ceil) == expected


@settings(max_examples=scaled(1000))
@given(kernel=kernels, stride=strides, dilation=dilations, padding=st.integers(0, 4), length=sizes)
def test_suggested_smallest_input_is_the_smallest(kernel, stride, dilation, padding, length) -> None:
    """An invalid conv's message names an input size that works, and one less does not."""
    try:
        convcalc.conv((length,), kernel_size=kernel, stride=stride, dilation=dilation, padding=padding)
        return
    except InvalidLayerError as error:
        smallest = int(str(error).split("use an input of at least ")[1].split(",")[0])
    assert (
        min(convcalc.conv((smallest,), kernel_size=kernel, stride=stride, dilation=dilation, padding=padding).output)
        >= 1
    )
    if smallest > 1:
        with pytest.raises(InvalidLayerError):
            convcalc.conv((smallest - 1,), kernel_size=kernel, stride=stride, dilation=dilation, padding=padding)


@settings(max_examples=scaled(1000))
@given(kernel=kernels, stride=strides, dilation=dilations, length=sizes, ceil=st.booleans(), data=st.data())
def test_suggested_smallest_pool_input_is_the_smallest(kernel, stride, dilation, length, ceil, data) -> None:
    padding = data.draw(st.integers(0, kernel // 2))
    kwargs = {"kernel_size": kernel, "stride": stride, "dilation": dilation, "padding": padding, "ceil_mode": ceil}
    try:
        convcalc.max_pool((length,), **kwargs)
        return
    except InvalidLayerError as error:
        smallest = int(str(error).split("use an input of at least ")[1].split(",")[0])
    convcalc.max_pool((smallest,), **kwargs)  # must not raise
    if smallest > 1:
        with pytest.raises(InvalidLayerError):
            convcalc.max_pool((smallest - 1,), **kwargs)


@settings(max_examples=scaled(1000))
@given(kernel=kernels, stride=strides, dilation=dilations, padding=st.integers(1, 9), length=st.integers(1, 5))
def test_transposed_fixes_in_the_message_work(kernel, stride, dilation, padding, length) -> None:
    try:
        convcalc.conv_transpose((length,), kernel_size=kernel, stride=stride, dilation=dilation, padding=padding)
        return
    except InvalidLayerError as error:
        text = str(error)
    most_padding = int(text.split("use padding at most ")[1].split(",")[0])
    smallest = int(text.split("an input of at least ")[1])
    call = convcalc.conv_transpose
    call((length,), kernel_size=kernel, stride=stride, dilation=dilation, padding=most_padding)  # must not raise
    with pytest.raises(InvalidLayerError):
        call((length,), kernel_size=kernel, stride=stride, dilation=dilation, padding=most_padding + 1)
    call((smallest,), kernel_size=kernel, stride=stride, dilation=dilation, padding=padding)  # must not raise
    with pytest.raises(InvalidLayerError):
        call((smallest - 1,), kernel_size=kernel, stride=stride, dilation=dilation, padding=padding)


def test_as_dict_is_plain_json_data() -> None:
    data = convcalc.conv((64, 64), kernel_size=7, stride=2, in_channels=3, out_channels=64).as_dict()
    assert data["output_shape"] == [1, 64, 29, 29]
    assert data["uncovered"] == [1, 1]
    assert data["macs"] == 64 * 3 * 49 * 29 * 29
    assert math.prod(data["output_size"]) == 29 * 29
