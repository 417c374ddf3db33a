"""The calculator against real torch: same size, or both reject.

Thousands of generated layers in 1-D, 2-D and 3-D for every layer family,
with invalid parameters mixed in on purpose. Where torch runs the layer, the
parameter count must match too.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

import convcalc
from tests import torch_oracle
from tests.profiles import scaled

EXAMPLES = 1500


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` nine times in ten, ``rare`` otherwise: most layers valid, enough of them not."""
    return st.integers(0, 99).flatmap(lambda roll: rare if roll >= 90 else usual)


def ints(low: int, high: int, bad_low: int) -> st.SearchStrategy[int]:
    """Mostly ``low..high``, now and then ``bad_low..low-1`` (values torch must reject)."""
    return mostly(st.integers(low, high), st.integers(bad_low, low - 1))


def per_axis(dims: int, values: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """A single int for every axis, or one per axis (now and then the wrong number of them)."""
    return mostly(
        st.one_of(values, st.lists(values, min_size=dims, max_size=dims).map(tuple)),
        st.lists(values, min_size=1, max_size=4).map(tuple),
    )


@st.composite
def channels(draw: st.DrawFn) -> dict[str, int]:
    groups = draw(ints(1, 3, bad_low=0))
    if draw(mostly(st.just(True), st.just(False))):
        multiple = max(groups, 1)
        in_channels = multiple * draw(st.integers(1, 2))
        out_channels = multiple * draw(st.integers(1, 2))
    else:
        in_channels, out_channels = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    return {"in_channels": in_channels, "out_channels": out_channels, "groups": groups}


@st.composite
def layers(draw: st.DrawFn, family: str) -> tuple[tuple[int, ...], dict[str, Any]]:
    dims = draw(st.integers(1, 3))
    size = tuple(draw(st.lists(st.integers(1, 9), min_size=dims, max_size=dims)))
    kwargs: dict[str, Any] = {"kernel_size": draw(per_axis(dims, ints(1, 6, bad_low=-1)))}
    if family.startswith("conv"):
        kwargs |= draw(channels())
        kwargs["stride"] = draw(per_axis(dims, ints(1, 4, bad_low=-1)))
        kwargs["dilation"] = draw(per_axis(dims, ints(1, 3, bad_low=-1)))
        kwargs["bias"] = draw(st.booleans())
        kwargs["padding_mode"] = draw(
            mostly(st.sampled_from(["zeros", "zeros", "reflect", "replicate", "circular"]), st.just("mirror"))
        )
        kwargs["padding"] = draw(
            mostly(per_axis(dims, ints(0, 3, bad_low=-2)), st.sampled_from(["same", "valid", "full"]))
        )
        if family == "conv_transpose":
            kwargs["output_padding"] = draw(per_axis(dims, ints(0, 2, bad_low=-1)))
    else:
        kwargs["stride"] = draw(st.one_of(st.none(), per_axis(dims, ints(1, 4, bad_low=-1))))
        kwargs["padding"] = draw(per_axis(dims, ints(0, 3, bad_low=-1)))
        kwargs["ceil_mode"] = draw(st.booleans())
        kwargs["in_channels"] = draw(st.integers(1, 3))
        if family == "max_pool":
            kwargs["dilation"] = draw(per_axis(dims, ints(1, 3, bad_low=-1)))
    kwargs["batch"] = draw(st.integers(1, 2))
    return size, kwargs


def calculator(family: str, size: tuple[int, ...], kwargs: dict[str, Any]) -> convcalc.LayerResult | None:
    try:
        return getattr(convcalc, family)(size, **kwargs)
    except convcalc.InvalidLayerError:
        return None


def backend_quirk(family: str, kwargs: dict[str, Any]) -> bool:
    """Layers whose fate in CPU torch depends on the kernel backend it picks.

    A transposed conv with dilation 0 is refused by torch's own checks, yet
    its oneDNN path runs some of them (grouped, kernel_size 1). convcalc
    rejects them all, as torch's checks intend; the docs say so.
    """
    dilation = kwargs.get("dilation", 1)
    return family == "conv_transpose" and 0 in ((dilation,) if isinstance(dilation, int) else dilation)


def check_agreement(family: str, size: tuple[int, ...], kwargs: dict[str, Any]) -> None:
    ours = calculator(family, size, kwargs)
    if backend_quirk(family, kwargs):
        event("backend quirk: convcalc rejects")
        assert ours is None
        return
    theirs, module = torch_oracle.run(family, size, kwargs)
    event("valid" if theirs is not None else "torch rejects")
    assert (ours.output if ours else None) == theirs, f"{family}{size} {kwargs}: convcalc {ours}, torch {theirs}"
    if ours is not None and module is not None:
        assert ours.params == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("family", ["conv", "conv_transpose", "max_pool", "avg_pool"])
@settings(max_examples=scaled(EXAMPLES), deadline=None)
@given(data=st.data())
def test_same_size_as_torch_or_both_reject(family: str, data: st.DataObject) -> None:
    size, kwargs = data.draw(layers(family))
    check_agreement(family, size, kwargs)


@pytest.mark.parametrize("family", ["conv", "conv_transpose"])
@settings(max_examples=scaled(200), deadline=None)
@given(data=st.data())
def test_macs_are_half_of_torch_flop_counter(family: str, data: st.DataObject) -> None:
    size, kwargs = data.draw(layers(family))
    ours = calculator(family, size, kwargs)
    _, module = torch_oracle.run(family, size, kwargs)
    if ours is None or module is None:
        event("invalid, nothing to count")
        return
    counter = FlopCounterMode(display=False)
    with counter:
        module(torch.zeros(kwargs["batch"], kwargs["in_channels"], *size))
    assert 2 * ours.macs == counter.get_total_flops()
