"""Whole stacks against real torch: every layer's shape, parameters, buffers and MACs, and where it fails.

Hypothesis draws an input shape and a short random sequence of layers (valid
and invalid: wrong ranks, mismatched channels, sizes that shrink to nothing),
builds the same sequence in torch layer by layer on the CPU in eval mode, and
requires convcalc to agree on every layer that runs and on the first one that
does not.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from convcalc.network import run_stack
from convcalc.spec import resolve
from tests.profiles import scaled
from tests.torch_oracle import TORCH_REJECTS, inferring_module

EXAMPLES = 1200


def per_axis(draw: st.DrawFn, d: int, low: int, high: int) -> Any:
    if draw(st.booleans()):
        return draw(st.integers(low, high))
    return draw(st.lists(st.integers(low, high), min_size=d, max_size=d))


@st.composite
def layer(draw: st.DrawFn, dims: int) -> tuple[str, dict[str, Any]]:
    d = draw(st.sampled_from([dims, dims, dims, dims, max(1, dims - 1), min(3, dims + 1)]))
    family = draw(
        st.sampled_from(
            [
                "Conv",
                "Conv",
                "ConvTranspose",
                "MaxPool",
                "AvgPool",
                "LPPool",
                "AdaptiveAvgPool",
                "AdaptiveMaxPool",
                "BatchNorm",
                "InstanceNorm",
                "GroupNorm",
                "LayerNorm",
                "ReLU",
                "Softmax",
                "GLU",
                "Upsample",
                "PixelShuffle",
                "PixelUnshuffle",
                "ZeroPad",
                "ReflectionPad",
                "ReplicationPad",
                "CircularPad",
                "ConstantPad",
                "Flatten",
                "Unflatten",
                "Linear",
                "Dropout",
                "PReLU",
                "Identity",
            ]
        )
    )
    if family in ("Conv", "ConvTranspose"):
        args: dict[str, Any] = {
            "out_channels": draw(st.integers(1, 4)),
            "kernel_size": per_axis(draw, d, 1, 4),
            "stride": per_axis(draw, d, 1, 3),
            "padding": per_axis(draw, d, 0, 2),
        }
        if draw(st.integers(0, 3)) == 0:
            args["groups"] = 2
        if family == "ConvTranspose" and draw(st.booleans()):
            args["output_padding"] = draw(st.integers(0, 1))
        if family == "Conv" and draw(st.integers(0, 4)) == 0:
            args["padding"] = "same"
        if draw(st.integers(0, 4)) == 0:
            args["dilation"] = per_axis(draw, d, 1, 2)
        return f"{family}{d}d", args
    if family in ("MaxPool", "AvgPool"):
        args = {"kernel_size": per_axis(draw, d, 1, 3), "ceil_mode": draw(st.booleans())}
        if draw(st.booleans()):
            args["stride"] = per_axis(draw, d, 1, 3)
        if draw(st.booleans()):
            args["padding"] = draw(st.integers(0, 1))
        return f"{family}{d}d", args
    if family == "LPPool":
        return f"LPPool{d}d", {"norm_type": 2, "kernel_size": draw(st.integers(1, 3))}
    if family.startswith("Adaptive"):
        size = draw(
            st.one_of(st.integers(1, 4), st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=d, max_size=d))
        )
        return f"{family}{d}d", {"output_size": size}
    if family == "BatchNorm":
        return f"BatchNorm{d}d", {}
    if family == "InstanceNorm":
        return f"InstanceNorm{d}d", {"affine": draw(st.booleans())}
    if family == "GroupNorm":
        return "GroupNorm", {"num_groups": draw(st.integers(1, 2))}
    if family == "LayerNorm":
        return "LayerNorm", {"normalized_shape": draw(st.integers(1, 6))}
    if family in ("Softmax", "GLU"):
        return family, {"dim": draw(st.integers(-3, 3))}
    if family == "Upsample":
        mode = draw(st.sampled_from(["nearest", "nearest", "linear", "bilinear", "trilinear", "area"]))
        if draw(st.booleans()):
            return "Upsample", {"scale_factor": draw(st.sampled_from([0.5, 1.5, 2, 2.7, 0.3])), "mode": mode}
        return "Upsample", {"size": draw(st.integers(1, 8)), "mode": mode}
    if family == "PixelShuffle":
        return family, {"upscale_factor": draw(st.integers(1, 2))}
    if family == "PixelUnshuffle":
        return family, {"downscale_factor": draw(st.integers(1, 2))}
    if family.endswith("Pad"):
        low = -1 if family in ("ZeroPad", "ConstantPad", "ReplicationPad") else 0
        padding = draw(st.one_of(st.integers(low, 2), st.lists(st.integers(low, 2), min_size=2 * d, max_size=2 * d)))
        args = {"padding": padding} | ({"value": 0.0} if family == "ConstantPad" else {})
        return f"{family}{d}d", args
    if family == "Flatten":
        return "Flatten", {"start_dim": draw(st.integers(0, 2))}
    if family == "Unflatten":
        return "Unflatten", {"dim": 1, "unflattened_size": draw(st.sampled_from([[-1], [1, -1], [2, -1], [-1, 2]]))}
    if family == "Linear":
        return "Linear", {"out_features": draw(st.integers(1, 5))}
    if family == "Dropout":
        return draw(st.sampled_from(["Dropout", f"Dropout{d}d"])), {"p": 0.5}
    if family == "PReLU":
        return "PReLU", {"num_parameters": draw(st.sampled_from([1, 1, 2, 3]))}
    return family, {}


@st.composite
def stacks(draw: st.DrawFn) -> tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]:
    dims = draw(st.integers(1, 3))
    shape = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 4)),
        *draw(st.lists(st.integers(1, 9), min_size=dims, max_size=dims)),
    )
    return shape, draw(st.lists(layer(dims), min_size=1, max_size=5))


def torch_layers(
    shape: tuple[int, ...], items: list[tuple[str, dict[str, Any]]]
) -> tuple[list[dict[str, Any]], int | None]:
    """What torch does with each layer: output shape, params, buffers, MACs; and the 1-based index that fails."""
    x = torch.zeros(shape)
    seen = []
    for index, (name, args) in enumerate(items, start=1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = inferring_module(name, args, x).eval()  # torch infers what the file leaves out
                counter = FlopCounterMode(display=False)
                with torch.no_grad(), counter:
                    y = module(x)
        except TORCH_REJECTS:
            return seen, index
        if not isinstance(y, torch.Tensor) or 0 in y.shape:  # convcalc stops at an empty tensor, on purpose
            return seen, index
        seen.append(
            {
                "output": tuple(y.shape),
                "params": sum(p.numel() for p in module.parameters()),
                "buffers": sum(b.numel() for b in module.buffers()),
                "macs": counter.get_total_flops() // 2,
            }
        )
        x = y
    return seen, None


@settings(max_examples=scaled(EXAMPLES), deadline=None)
@given(case=stacks())
def test_stack_matches_torch_layer_by_layer(case: tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]) -> None:
    shape, items = case
    theirs, failing = torch_layers(shape, items)
    result = run_stack(shape, resolve((name, args, None) for name, args in items))
    ours = [{"output": r.output, "params": r.params, "buffers": r.buffers, "macs": r.macs} for r in result.rows]
    event("torch runs it all" if failing is None else f"fails at layer {failing}")
    assert ours == theirs, f"{shape} {items}: error {result.error}"
    assert (result.error.index if result.error else None) == failing, f"{shape} {items}: {result.error}"
