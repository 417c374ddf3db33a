"""Receptive fields against torch itself: which input pixels reach one output unit.

With every weight positive and an all-ones input, an input pixel is in an
output unit's receptive field exactly when its gradient for that unit is not
zero. The receptive field convcalc reports is the widest such span over all
output units (units at the borders see less, through padding), and the jump is
the distance between neighbouring units' fields.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc.network import run_stack
from convcalc.spec import resolve
from tests.profiles import scaled

LENGTH = 64


@st.composite
def windowed_layers(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    family = draw(st.sampled_from(["Conv1d", "Conv1d", "AvgPool1d", "ConvTranspose1d", "Upsample", "ReLU", "permute",
                                   "Linear"]))  # fmt: skip
    if family == "permute":  # channels last and back, as ConvNeXt does: a field kept through what mixes channels
        return family, {"dims": [0, 2, 1]}
    if family == "Linear":
        return family, {"out_features": 1}
    if family == "Conv1d":
        return family, {
            "out_channels": 1,
            "kernel_size": draw(st.integers(1, 5)),
            "stride": draw(st.integers(1, 3)),
            "dilation": draw(st.integers(1, 2)),
            "padding": draw(st.integers(0, 2)),
        }
    if family == "ConvTranspose1d":
        return family, {"out_channels": 1, "kernel_size": draw(st.integers(1, 4)), "stride": draw(st.integers(1, 3))}
    if family == "AvgPool1d":
        return family, {"kernel_size": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 3))}
    if family == "Upsample":
        return family, {"scale_factor": draw(st.integers(2, 3)), "mode": "nearest"}
    return family, {}


class Permute(nn.Module):
    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


def build(items: list[tuple[str, dict[str, Any]]]) -> nn.Module:
    """The stack in torch, every weight and bias 1, in float64."""
    layers: list[nn.Module] = []
    probe = torch.ones(1, 1, LENGTH, dtype=torch.float64)  # torch's own shapes, for the Linear's in_features
    for name, args in items:
        if name == "permute":
            layers.append(Permute(args["dims"]))
            probe = layers[-1](probe)
            continue
        full = dict(args) | ({"in_channels": probe.shape[1]} if name.startswith("Conv") else {})
        full |= {"in_features": probe.shape[-1]} if name == "Linear" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layer = getattr(nn, name)(**full)
        for parameter in layer.parameters():
            nn.init.constant_(parameter, 1.0)
        layers.append(layer.double())
        probe = layers[-1](probe)
    return nn.Sequential(*layers).double()


def torch_reach(items: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, int] | None]:
    """For every output unit, the first and last input pixel whose gradient is not zero (None: only padding)."""
    network = build(items)
    x = torch.ones(1, 1, LENGTH, dtype=torch.float64, requires_grad=True)
    out = network(x)
    reach: list[tuple[int, int] | None] = []
    for unit in range(out.shape[-1]):
        (grad,) = torch.autograd.grad(out[0, 0, unit], x, retain_graph=True)
        seen = torch.nonzero(grad[0, 0]).flatten()
        reach.append((int(seen.min()), int(seen.max())) if len(seen) else None)
    return reach


def torch_fields(items: list[tuple[str, dict[str, Any]]]) -> list[int]:
    """For every output unit, the span of input pixels whose gradient is not zero."""
    return [0 if span is None else span[1] - span[0] + 1 for span in torch_reach(items)]


@settings(max_examples=scaled(300), deadline=None)
@given(items=st.lists(windowed_layers(), min_size=1, max_size=4))
def test_receptive_field_is_the_widest_span_torch_shows(items: list[tuple[str, dict[str, Any]]]) -> None:
    result = run_stack((1, 1, LENGTH), resolve((name, args, None) for name, args in items))
    assume(result.error is None and sum(name == "permute" for name, _ in items) % 2 == 0)  # (N, C, L) at the end
    (field,) = result.rows[-1].receptive_field
    (jump,) = result.rows[-1].jump
    if field is None:  # "whole": a unit sees across the input, far wider than any window here (or only padding)
        assert jump is None and all(span == 0 or span > LENGTH // 2 for span in torch_fields(items)), items
        return
    assert jump is not None
    assume(field + 4 * jump < LENGTH / 2)  # room for units whose field no border cuts
    spans = torch_fields(items)
    if all(name not in ("ConvTranspose1d", "Upsample") for name, _ in items):  # whole strides: exact
        assert max(spans) == field, f"{items}: torch spans {spans}"
    else:  # fractional strides: an upper bound, reached where the phases line up
        assert max(spans) <= field, f"{items}: torch spans {spans}"


@settings(max_examples=scaled(100), deadline=None)
@given(items=st.lists(windowed_layers(), min_size=1, max_size=3))
def test_jump_is_the_step_between_neighbouring_fields(items: list[tuple[str, dict[str, Any]]]) -> None:
    assume(all(name in ("Conv1d", "AvgPool1d", "ReLU") for name, _ in items))  # whole strides
    result = run_stack((1, 1, LENGTH), resolve((name, args, None) for name, args in items))
    assume(result.error is None and result.output[-1] >= 4)
    (jump,) = result.rows[-1].jump
    # the left border cuts the first units' fields short, so take the last two units that see any input
    starts = [span[0] for span in torch_reach(items) if span is not None]
    assume(len(starts) >= 2)
    assert starts[-1] - starts[-2] == jump, f"{items}: torch starts {starts}"


@settings(max_examples=scaled(300), deadline=None)
@given(length=st.integers(1, 40), size=st.integers(1, 40))
def test_area_upsampling_field_is_its_widest_window(length: int, size: int) -> None:
    """Upsample(mode='area') averages adaptive windows; the field is the widest, read from torch's gradients."""
    x = torch.ones(1, 1, length, dtype=torch.float64, requires_grad=True)
    out = nn.Upsample(size=size, mode="area")(x)
    widest = 0
    for unit in range(size):
        (grad,) = torch.autograd.grad(out[0, 0, unit], x, retain_graph=True)
        seen = torch.nonzero(grad[0, 0]).flatten()
        widest = max(widest, int(seen.max() - seen.min()) + 1)
    (row,) = run_stack((1, 1, length), resolve([("Upsample", {"size": size, "mode": "area"}, None)])).rows
    assert row.receptive_field == (widest,)


def spans_per_axis(shape: tuple[int, ...], layers: list[nn.Module]) -> list[int]:
    """For each spatial axis of the input (dims 2 on), the widest span of input positions whose gradient for one
    output element is not zero, over every output element (weights all 1, so no term cancels)."""
    network = nn.Sequential(*layers).double()
    for parameter in network.parameters():
        nn.init.constant_(parameter, 1.0)
    x = torch.ones(shape, dtype=torch.float64, requires_grad=True)
    out = network(x)
    out = out[0] if isinstance(out, tuple) else out
    widest = [0] * (len(shape) - 2)
    for index in range(out.numel()):
        (grad,) = torch.autograd.grad(out.flatten()[index], x, retain_graph=True)
        seen = torch.nonzero(grad)
        for axis in range(len(widest)):
            positions = seen[:, axis + 2]
            widest[axis] = max(widest[axis], int(positions.max() - positions.min()) + 1)
    return widest


class SelfAttention(nn.Module):
    def __init__(self, embed: int, batch_first: bool) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(embed, 1, batch_first=batch_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


FIELD_CASES = [  # found by a hostile test: each field was narrower than what the output depends on
    ((1, 4, 8), [("MultiheadAttention", {"num_heads": 1, "batch_first": True})], [SelfAttention(8, True)]),
    ((1, 4, 8), [("MultiheadAttention", {"num_heads": 1, "batch_first": False})], [SelfAttention(8, False)]),
    ((1, 1, 4), [("GLU", {"dim": -1})], [nn.GLU(-1)]),
    ((1, 1, 6), [("permute", {"dims": [2, 0, 1]}), ("Softmax", {})], [Permute([2, 0, 1]), nn.Softmax()]),
    ((1, 1, 4), [("permute", {"dims": [2, 1, 0]}), ("Softmax2d", {})], [Permute([2, 1, 0]), nn.Softmax2d()]),
    ((1, 1, 6, 2), [("GLU", {"dim": 2})], [nn.GLU(2)]),
    ((1, 1, 4, 1, 1), [("PixelShuffle", {"upscale_factor": 2}), ("Linear", {"out_features": 1})],
     [nn.PixelShuffle(2), nn.Linear(2, 1)]),
    ((1, 1, 1, 4, 2, 2), [("PixelUnshuffle", {"downscale_factor": 2}), ("Linear", {"out_features": 1})],
     [nn.PixelUnshuffle(2), nn.Linear(1, 1)]),
]  # fmt: skip


@pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax")  # the case is softmax with no dim
@pytest.mark.parametrize(("shape", "items", "layers"), FIELD_CASES)
def test_a_field_is_never_narrower_than_what_torch_reads(shape: tuple[int, ...], items: list[Any],
                                                        layers: list[nn.Module]) -> None:  # fmt: skip
    result = run_stack(shape, resolve((name, args, None) for name, args in items))
    assert result.error is None, result.error
    fields = result.rows[-1].receptive_field
    for field, span in zip(fields, spans_per_axis(shape, layers)):
        assert field is None or field >= span, (fields, span)


@st.composite
def image_layers(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """2-D layers that keep each spatial axis, or pool it adaptively (an identity where the size stays)."""
    # average pools: a max pool's gradient reaches one pixel of its window, which hides the field
    family = draw(st.sampled_from(["Conv2d", "AvgPool2d", "AdaptiveAvgPool2d", "ReLU"]))
    if family == "Conv2d":
        # no padding: a field counts the padding it spans, which torch's gradients cannot show
        return family, {"out_channels": 1, "kernel_size": draw(st.integers(1, 3)), "stride": draw(st.integers(1, 2))}
    if family == "AvgPool2d":
        return family, {"kernel_size": 2, "stride": draw(st.integers(1, 2))}
    if family.startswith("Adaptive"):
        return family, {"output_size": draw(st.sampled_from([None, 1, 2, 3, 4, 6]))}
    return family, {}


@settings(max_examples=scaled(150))
@given(items=st.lists(image_layers(), min_size=1, max_size=4), batched=st.booleans(),
       flatten=st.booleans())  # fmt: skip
def test_fields_of_images_batched_or_not_and_flattened(items: list[tuple[str, dict[str, Any]]], batched: bool,
                                                       flatten: bool) -> None:  # fmt: skip
    """An unbatched (C, H, W) input has the fields of a batched one; an adaptive pool reads windows (an identity
    keeps the field); a flatten of the grid (ViT's patches) keeps each axis's field."""
    items = [(name, {**args, "output_size": [args["output_size"]] * 2}) if name.startswith("Adaptive") else (name, args)
             for name, args in items]  # fmt: skip
    shape = (1, 1, 12, 12) if batched else (1, 12, 12)
    assume(batched or any(name != "ReLU" for name, _ in items))  # else no layer says which dims are spatial
    result = run_stack(shape, resolve((name, args, None) for name, args in items))
    assume(result.error is None)
    fields = result.rows[-1].receptive_field
    layers: list[nn.Module] = []
    for name, args in items:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            layers.append(getattr(nn, name)(**({"in_channels": 1} if name == "Conv2d" else {}), **args))
    spatial = (len(shape) - 2, len(shape) - 1)
    x = torch.ones(shape, dtype=torch.float64, requires_grad=True)
    network = nn.Sequential(*layers).double()
    for parameter in network.parameters():
        nn.init.constant_(parameter, 1.0)
    out = network(x)
    if flatten:  # the last two dims into one, then convcalc's field must be the one before
        result_flat = run_stack(shape, resolve([*((name, args, None) for name, args in items),
                                                ("flatten", {"start_dim": -2}, None)]))  # fmt: skip
        assert result_flat.rows[-1].receptive_field == fields
    widest = [0, 0]
    for index in range(out.numel()):
        (grad,) = torch.autograd.grad(out.flatten()[index], x, retain_graph=True)
        seen = torch.nonzero(grad)
        if len(seen):
            for axis, dim in enumerate(spatial):
                widest[axis] = max(widest[axis], int(seen[:, dim].max() - seen[:, dim].min()) + 1)
    exact = all(not name.startswith("Adaptive") or (args["output_size"][0] or 1) in (1, 2, 3, 4, 6)
                for name, args in items)  # fmt: skip
    assert all(field is not None for field in fields), (items, fields)
    seen_within = [min(field, 12) for field in fields]  # a field counts padding too; torch's gradients reach pixels
    if exact and all(length % out_size == 0 for length, out_size in _adaptive_pairs(shape, result)):
        assert seen_within == widest, (items, fields, widest)
    else:
        assert all(field >= span for field, span in zip(seen_within, widest)), (items, fields, widest)


def _adaptive_pairs(shape: tuple[int, ...], result: Any) -> list[tuple[int, int]]:
    """(input length, output length) of every adaptive pool's spatial axes: whole strides where each divides."""
    return [(length, out) for node in result.rows if node.type.startswith("Adaptive")
            for length, out in zip(node.input[-2:], node.output[-2:])]  # fmt: skip


def test_an_unbatched_image_has_the_fields_of_a_batched_one() -> None:
    items = [("Conv2d", {"out_channels": 8, "kernel_size": 3}, None)] * 2
    unbatched = run_stack((3, 32, 32), resolve(items))
    batched = run_stack((1, 3, 32, 32), resolve(items))
    assert [row.receptive_field for row in unbatched.rows] == [(3, 3), (5, 5)]
    assert [row.receptive_field for row in batched.rows] == [(3, 3), (5, 5)]
