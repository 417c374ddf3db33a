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

import contextlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

from convcalc.errors import ConvcalcError
from convcalc.layers import LayerResult

__all__ = [
    "CPU_LIMIT",
    "TORCH_MISSING",
    "LayerCheck",
    "StackVerification",
    "Verification",
    "verify_layer",
    "verify_stack",
]

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
    batch_of_one: bool = False
    """True where the tensors would have 2**63 elements or more, which torch cannot hold: checked with batch 1."""


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
    # torch cannot hold a tensor of 2**63 elements or more, even on the meta device: check such a layer with a
    # batch of 1 (the batch changes no layer's validity or spatial output) and put the batch back
    too_many = batch * max(in_channels, out_channels) * math.prod(input_size) >= 2**63 or (
        result is not None and batch * out_channels * math.prod(result.output) >= 2**63
    )
    run_batch = 1 if too_many else batch
    try:
        shape = _run(torch, family, input_size, kwargs, in_channels, out_channels, run_batch, meta=True)
        shape = (batch, *shape[1:])
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
        batch_of_one=too_many,
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


@dataclass(frozen=True, kw_only=True)
class LayerCheck:
    """torch's answer for one layer of a stack."""

    index: int
    type: str
    torch_shape: tuple[int, ...] | None
    torch_params: int | None
    torch_error: str | None
    agrees: bool
    label: str = ""
    """Where the layer sits: ``3``, or ``3.body.2`` inside a block."""


@dataclass(frozen=True, kw_only=True)
class StackVerification:
    """torch's answer for every layer that convcalc ran, and for the layer where it stopped."""

    torch_version: str
    layers: tuple[LayerCheck, ...]

    @property
    def agrees(self) -> bool:
        return all(check.agrees for check in self.layers)


def verify_stack(specs: list[Any], result: Any) -> StackVerification:
    """Build the stack in torch on the meta device, run it, and compare every layer and join.

    ``specs`` are the :class:`~convcalc.stack.LayerSpec` list and ``result``
    the :class:`~convcalc.stack.StackResult` that convcalc computed. Layers run
    in eval mode; blocks and joins run as torch code would (``body(x) +
    shortcut(x)``, ``torch.cat``, ``+``). Where convcalc stops, torch must
    refuse that step too; as the meta device accepts some layers real torch
    refuses, a layer the meta device runs there is tried once more on the CPU,
    on an expanded zero tensor.
    """
    try:
        import torch
    except ImportError:
        raise ConvcalcError(TORCH_MISSING) from None

    rows = {row.label: row for row in result.rows}
    failing = result.error.label if result.error is not None else None
    checks: list[LayerCheck] = []
    saved: dict[str, Any] = {}

    class Stopped(Exception):
        pass

    def check(label: str, name: str, shape: Any, params: int | None, error: str | None) -> None:
        row = rows.get(label)
        if row is None:  # where convcalc stopped: torch must refuse too
            agrees = label == failing and shape is None
            index = result.error.index if result.error is not None else 0
        else:
            agrees = shape == row.output and (params is None or params == row.params)
            index = row.index
        verdict = dict(torch_shape=shape, torch_params=params, torch_error=error, agrees=agrees, label=label)
        checks.append(LayerCheck(index=index, type=name, **verdict))
        if shape is None or row is None:
            raise Stopped

    def added(a: Any, b: Any) -> Any:
        """What ``a + b`` gives, by torch's own broadcasting rule: on the meta device ``+`` itself goes through
        torch's Python reference kernels, whose first use imports torch._dynamo (about a second)."""
        return torch.empty(torch.broadcast_shapes(a.shape, b.shape), device="meta")

    def join(spec: Any, x: Any, label: str) -> Any:
        if spec.type == "Save":
            saved[spec.arguments["name"]] = x
            return x
        other = saved.get(spec.arguments["with"])
        if other is None:
            raise RuntimeError(f"nothing saved as {spec.arguments['with']!r}")
        if spec.type == "Add":
            return added(x, other)
        if spec.arguments.get("crop"):
            starts = [(o - n) // 2 for o, n in zip(other.shape[2:], x.shape[2:])]
            other = other[(slice(None), slice(None), *(slice(a, a + n) for a, n in zip(starts, x.shape[2:])))]
        return torch.cat([x, other], dim=spec.arguments.get("dim", 1))

    def run(block: Any, x: Any, prefix: str) -> Any:
        for position, spec in enumerate(block, start=1):
            label = f"{prefix}{position}"
            params: int | None = None
            try:
                if spec.type == "Repeat":
                    for copy in range(1, spec.arguments["times"] + 1):
                        x = run(spec.blocks["layers"], x, f"{label}.{copy}.")
                    out = x
                elif spec.type == "Residual":
                    body = run(spec.blocks["body"], x, f"{label}.body.")
                    side = run(spec.blocks["shortcut"], x, f"{label}.shortcut.") if "shortcut" in spec.blocks else x
                    out = added(body, side)
                elif spec.type in ("Save", "Add", "Concat"):
                    out = join(spec, x, label)
                else:
                    module, shape, error = _layer(torch, spec, rows.get(label), x)
                    if shape is None:
                        check(label, spec.type, None, None, error)
                    params = sum(p.numel() for p in module.parameters())
                    out = torch.empty(shape, device="meta")
            except (RuntimeError, ValueError, TypeError, IndexError) as exc:
                check(label, spec.type, None, None, f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}")
            check(label, spec.type, tuple(out.shape), params, None)
            x = out
        return x

    with contextlib.suppress(Stopped):  # the first step torch refuses ends the run
        run(specs, torch.empty(result.input, device="meta"), "")
    return StackVerification(torch_version=torch.__version__, layers=tuple(checks))


def _shape_keeping(name: str) -> bool:
    """Layers whose output has their input's shape and whose checks see only rank, channels and axes > 1."""
    from convcalc.catalog import ELEMENTWISE

    return name in ELEMENTWISE or name.startswith(("BatchNorm", "InstanceNorm")) or name == "GroupNorm"


def _layer(torch: Any, spec: Any, row: Any, x: Any) -> tuple[Any, Any, str | None]:
    """Run one torch.nn layer on the meta device; where it runs there but convcalc refused it, ask the CPU."""
    from convcalc.catalog import LAYERS

    if row is not None:
        arguments = row.arguments
    else:
        kind = LAYERS[spec.type]
        arguments = dict(kind.arguments) | {key: infer(tuple(x.shape)) for key, infer in kind.inferred.items()}
        arguments |= {key: tuple(v) if isinstance(v, list) else v for key, v in spec.arguments.items()}
    module, shape, error = _run_layer(torch, spec.type, arguments, x, "meta")
    if shape is not None and row is None:  # the meta device is lax for some layers: ask real torch
        real = torch.zeros((), dtype=torch.float32).expand(*x.shape)
        module, shape, error = _run_layer(torch, spec.type, arguments, real, "cpu")
    return module, shape, error


def _run_layer(torch: Any, name: str, arguments: dict[str, Any], x: Any, device: str) -> tuple[Any, Any, str | None]:
    """(module, output shape, None) where torch runs the layer; (None, None, its error) where it refuses."""
    from convcalc.catalog import REQUIRED

    kwargs = {key: value for key, value in arguments.items() if value is not REQUIRED}
    if device == "meta" and _shape_keeping(name):
        # Norms, activations and dropout keep their input's shape, and torch checks them on the rank, the
        # channels and whether an axis is longer than 1. On the meta device their kernels go through torch's
        # Python references, whose first use imports torch._dynamo (about a second), so they run on the CPU
        # on a small input that keeps all of that: the channels, and every other axis cut to at most 2.
        small = tuple(n if axis == 1 else min(n, 2) for axis, n in enumerate(x.shape))
        module, shape, error = _run_layer(torch, name, arguments, torch.zeros(small), "cpu")
        return module, None if shape is None else tuple(x.shape) if shape == small else shape, error
    if device == "meta" and name.startswith("AdaptiveAvgPool") and len(x.shape) >= int(name[-2]):
        # Its output is output_size, whatever the input's size; for an output of 1 torch takes a mean, which on
        # the meta device imports torch._dynamo. So it runs on the CPU, every axis it resizes cut to 1.
        dims = int(name[-2])
        size = arguments["output_size"]
        sizes = [size] * dims if size is None or isinstance(size, int) else list(size)
        if len(sizes) == dims:
            lead = len(x.shape) - dims
            small = tuple(
                n if axis == 1 and lead > 1 else min(n, 2) if axis < lead else n if sizes[axis - lead] is None else 1
                for axis, n in enumerate(x.shape)
            )
            if math.prod(small) <= CPU_LIMIT:
                module, shape, error = _run_layer(torch, name, arguments, torch.zeros(small), "cpu")
                if shape is None:
                    return module, None, error
                return module, (*x.shape[:lead], *shape[lead:]), None
    try:
        cls = getattr(torch.nn, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                module = cls(**kwargs, device=device)
            except TypeError:  # layers without parameters take no device
                module = cls(**kwargs)
            module.eval()
            with torch.no_grad():
                if name == "Linear" and device == "meta":
                    # Linear.forward without its bias, which has shape (out_features,) and so changes no shape:
                    # on the meta device the biased path (addmm, or an add) goes through torch's Python
                    # reference kernels, whose first use imports torch._dynamo (about a second)
                    out = torch.nn.functional.linear(x, module.weight)
                else:
                    out = module(x)
    except (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError, ZeroDivisionError) as exc:
        message = str(exc).strip().splitlines()
        return None, None, f"{type(exc).__name__}: {message[0] if message else ''}"
    shape = tuple(out.shape)
    if 0 in shape:
        return None, None, f"torch made an empty output {list(shape)}"
    return module, shape, None
