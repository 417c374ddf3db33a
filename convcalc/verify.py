"""``--verify``: run the real torch layer and compare its answer with convcalc's.

This is the only module that imports torch, and only inside :func:`verify_layer`.

The layer first runs on the meta device, where tensors have shapes but no
data, so any input size costs nothing. The meta device is a faithful shape
oracle for layers torch accepts, but it accepts some layers that real torch
rejects (transposed convs above all). So whenever the meta device runs a
layer, the verdict is confirmed on the CPU with real torch: with the fewest
channels the layer allows, a batch of 1 and an expanded zero tensor as input,
so the input allocates nothing. Where even that would be large (over
:data:`CPU_LIMIT` elements) and convcalc accepts the layer, the CPU run is
skipped and the verification says so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

from convcalc.errors import ConvcalcError
from convcalc.layers import LayerResult

__all__ = ["CPU_LIMIT", "TORCH_MISSING", "Verification", "verify_layer"]

CPU_LIMIT = 1 << 22
"""Most input or output elements a confirming CPU run may touch for a layer convcalc accepts."""

TORCH_MISSING = "--verify needs PyTorch, which is not installed: pip install torch (or pip install 'convcalc[torch]')"

_CLASSES = {"conv": "Conv", "conv_transpose": "ConvTranspose", "max_pool": "MaxPool", "avg_pool": "AvgPool"}


@dataclass(frozen=True, kw_only=True)
class Verification:
    """What real torch said about one layer, and whether convcalc agrees."""

    torch_version: str
    agrees: bool
    torch_shape: tuple[int, ...] | None
    """The full output shape torch gave, or None where torch rejected the layer."""
    torch_error: str | None
    """The first line of torch's error, where it rejected the layer."""
    devices: tuple[str, ...]
    """Where torch ran: ``("meta",)`` or ``("meta", "cpu")``."""
    cpu_skipped: bool = False
    """True where convcalc accepts the layer but a confirming CPU run would have been too large."""


class _Rejected(Exception):
    """torch refused the layer; carries its message."""


def verify_layer(
    family: str, input_size: tuple[int, ...], kwargs: dict[str, Any], result: LayerResult | None
) -> Verification:
    """Run the torch layer that ``family`` and ``kwargs`` describe, and compare.

    ``family`` is the name of the convcalc function (``conv``,
    ``conv_transpose``, ``max_pool``, ``avg_pool``), ``kwargs`` the arguments
    it was called with, ``result`` what it returned (None where it raised).
    """
    try:
        import torch
    except ImportError:
        raise ConvcalcError(TORCH_MISSING) from None

    batch = kwargs.get("batch") or 1
    convolution = family.startswith("conv")
    groups = kwargs.get("groups", 1) if convolution else 1
    in_channels = kwargs.get("in_channels") or (groups if isinstance(groups, int) and groups > 0 else 1)
    out_channels = kwargs.get("out_channels") or in_channels
    devices = ["meta"]
    cpu_skipped = False
    try:
        shape = _run(torch, family, input_size, kwargs, in_channels, out_channels, batch, meta=True)
        cpu_skipped = result is not None and _cpu_elements(result, groups) > CPU_LIMIT
        if not cpu_skipped:
            devices.append("cpu")
            small = max(groups, 1) if convolution else 1
            spatial = _run(torch, family, input_size, kwargs, small, small, 1, meta=False)[2:]
            shape = (*shape[:2], *spatial)
        error = None
    except _Rejected as rejected:
        shape, error = None, str(rejected)
    if shape is not None and 0 in shape[2:]:
        # CPU torch's oneDNN path returns an empty tensor for a transposed conv whose output size is 0;
        # convcalc, like torch's other backends, counts that as invalid
        error = f"torch returned an empty output {list(shape)}"
        shape = None
    expected = None if result is None else (batch, out_channels, *result.output)
    return Verification(
        torch_version=torch.__version__,
        agrees=shape == expected,
        torch_shape=shape,
        torch_error=error,
        devices=tuple(devices),
        cpu_skipped=cpu_skipped,
    )


def _cpu_elements(result: LayerResult, groups: int) -> int:
    """The larger of input and output elements at the fewest channels: what a CPU run costs."""
    return max(groups, 1) * max(math.prod(result.input), math.prod(result.output))


def _run(
    torch: Any,
    family: str,
    input_size: tuple[int, ...],
    kwargs: dict[str, Any],
    in_channels: int,
    out_channels: int,
    batch: int,
    *,
    meta: bool,
) -> tuple[int, ...]:
    layer_kwargs = {name: value for name, value in kwargs.items() if name not in ("batch", "in_channels")}
    if family.startswith("conv"):
        layer_kwargs |= {"in_channels": in_channels, "out_channels": out_channels}
    device = "meta" if meta else "cpu"
    try:
        cls = getattr(torch.nn, f"{_CLASSES[family]}{len(input_size)}d")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors is a no-op"
            layer = cls(**layer_kwargs, **({"device": device} if family.startswith("conv") else {}))
            if meta:
                x = torch.empty(batch, in_channels, *input_size, device="meta")
            else:
                x = torch.zeros((), dtype=torch.float32).expand(batch, in_channels, *input_size)
            with torch.no_grad():
                return tuple(layer(x).shape)
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError, ZeroDivisionError) as exc:
        message = str(exc).strip().splitlines()
        raise _Rejected(f"{type(exc).__name__}: {message[0] if message else ''}") from None
