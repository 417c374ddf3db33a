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

import functools
import math
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from convcalc import torch_code
from convcalc.catalog import LAYERS, Form
from convcalc.errors import ConvcalcError
from convcalc.layers import Family, LayerResult
from convcalc.schema import REQUIRED

__all__ = [
    "CPU_LIMIT",
    "TORCH_MISSING",
    "LayerCheck",
    "StackVerification",
    "Verification",
    "VerifyError",
    "verify_layer",
    "verify_stack",
]

CPU_LIMIT = 1 << 22
"""Most input or output elements a confirming CPU run may touch for a layer convcalc accepts."""

TORCH_MISSING = "--verify needs PyTorch, which is not installed: pip install torch (or pip install 'convcalc[torch]')"


_TORCH_REJECTS = (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError, ZeroDivisionError,
                  AssertionError, OverflowError, AttributeError)  # fmt: skip
"""What torch raises for a layer it refuses, across its Python and C++ checks (Hardtanh asserts)."""

_RESOURCE = ("can't allocate memory", "not enough memory", "out of memory", "Storage size calculation overflowed")
"""Words of torch's errors that say it ran out of room, not that it refuses the layer."""


class VerifyError(ConvcalcError):
    """--verify could not run torch (no torch, a broken install, too little memory): no verdict either way."""


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise VerifyError(TORCH_MISSING) from None
    except Exception as error:  # a broken install: a missing shared library is an OSError
        raise VerifyError(
            f"--verify needs PyTorch, which is installed but does not load ({type(error).__name__}: "
            f"{_first_line(error)}): reinstall it, e.g. pip install --force-reinstall torch"
        ) from None
    return torch


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


class _NoRoom(Exception):
    """torch ran out of memory, or met a size it cannot count: no verdict on the layer."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def report(self, node: Any = None) -> VerifyError:
        where = f" on layer {node.label} ({node.type})" if node is not None else ""
        return VerifyError(
            f"--verify could not run torch{where}: {type(self.error).__name__}: {_first_line(self.error)}; "
            "this is no verdict on the layer: try a smaller --input"
        )


def _raise_if_resource(error: BaseException) -> None:
    if isinstance(error, MemoryError) or any(words in str(error) for words in _RESOURCE):
        raise _NoRoom(error) from None


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
    """True where a tensor would have 2**63 bytes or more, which torch cannot hold: checked with batch 1."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``--json --verify`` puts it under ``verify``."""
        shape = None if self.torch_shape is None else list(self.torch_shape)
        return {"torch_version": self.torch_version, "agrees": self.agrees, "torch_shape": shape,
                "torch_error": self.torch_error, "devices": list(self.devices)}  # fmt: skip


class _Rejected(Exception):
    """torch refused the layer; carries its message."""


def verify_layer(
    family: Family | str, input_size: tuple[int, ...], kwargs: dict[str, Any], result: LayerResult | None
) -> Verification:
    """Run the torch layer that ``family`` and ``kwargs`` describe, and compare.

    ``family`` is the name of the convcalc function (``conv``,
    ``conv_transpose``, ``max_pool``, ``avg_pool``), ``kwargs`` the arguments
    it was called with, ``result`` what it returned (None where it raised).
    """
    torch = _import_torch()
    family = Family(family)
    batch = kwargs.get("batch") or 1
    convolution = not family.pool
    groups = kwargs.get("groups", 1) if convolution else 1
    in_channels = kwargs.get("in_channels") or (groups if isinstance(groups, int) and groups > 0 else 1)
    out_channels = kwargs.get("out_channels") or in_channels
    devices = ["meta"]
    cpu_skipped = False
    # torch cannot hold a tensor of 2**63 bytes or more, even on the meta device: check such a layer with a
    # batch of 1 (the batch changes no layer's validity or spatial output) and put the batch back
    too_many = 4 * batch * max(in_channels, out_channels) * math.prod(input_size) >= 2**63 or (
        result is not None and 4 * batch * out_channels * math.prod(result.output) >= 2**63
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
    except _NoRoom as no_room:
        raise no_room.report() from None
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
    """What a CPU run costs at the fewest channels: the largest of the input elements, the padded input's (which a
    padding_mode other than zeros makes as a tensor) and the output elements times the taps of a window (torch's
    CPU kernels visit every tap, padding included: a MaxPool1d of kernel_size 10**12 on 10 pixels loops for hours,
    and one of 2**63 - 1 crashes the process)."""
    taps = math.prod(axis.kernel_size for axis in result.axes)
    padded = math.prod(axis.input + sum(axis.padding) for axis in result.axes)  # F.pad makes it, for other modes
    return max(groups, 1) * max(math.prod(result.input), padded, math.prod(result.output) * taps)


def _run(
    torch: Any,
    family: Family,
    input_size: tuple[int, ...],
    kwargs: dict[str, Any],
    in_channels: int,
    out_channels: int,
    batch: int,
    *,
    meta: bool,
) -> tuple[int, ...]:
    layer_kwargs = {name: value for name, value in kwargs.items() if name not in ("batch", "in_channels")}
    if not family.pool:
        layer_kwargs |= {"in_channels": in_channels, "out_channels": out_channels}
    device = "meta" if meta else "cpu"
    try:
        cls = getattr(torch.nn, family.torch_name(len(input_size)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Initializing zero-element tensors is a no-op"
            layer = cls(**layer_kwargs, **({"device": device} if not family.pool else {}))
            if meta:
                x = torch.empty(batch, in_channels, *input_size, device="meta")
            else:
                x = torch.zeros((), dtype=torch.float32).expand(batch, in_channels, *input_size)
            with torch.no_grad():
                return tuple(layer(x).shape)
    except _TORCH_REJECTS as exc:
        _raise_if_resource(exc)
        raise _Rejected(f"{type(exc).__name__}: {_first_line(exc)}") from None


@dataclass(frozen=True, kw_only=True)
class LayerCheck:
    """torch's answer for one node of a stack."""

    index: int
    type: str
    torch_shape: tuple[int, ...] | None
    torch_params: int | None
    torch_error: str | None
    agrees: bool
    label: str = ""
    """Where the node sits, for people: ``3``, or ``3.body.2`` inside a block."""
    node: Any = field(default=None, compare=False, repr=False)
    """The :class:`~convcalc.network.Node` it checks (None for the node where convcalc stopped)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        shape = None if self.torch_shape is None else list(self.torch_shape)
        return {"index": self.index, "label": self.label, "type": self.type, "torch_shape": shape,
                "torch_params": self.torch_params, "torch_error": self.torch_error, "agrees": self.agrees}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class StackVerification:
    """torch's answer for every node that convcalc ran, and for the layer where it stopped."""

    torch_version: str
    layers: tuple[LayerCheck, ...]
    batch_of_one: bool = False
    """True where the stack's tensors are too large for torch to hold: both sides ran a batch of 1."""

    @property
    def agrees(self) -> bool:
        return all(check.agrees for check in self.layers)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready data: ``stack --json --verify`` puts it under ``verify``."""
        return {"torch_version": self.torch_version, "agrees": self.agrees,
                "layers": [check.as_dict() for check in self.layers]}  # fmt: skip


class _Stopped(Exception):
    pass


def verify_stack(specs: Sequence[Any], result: Any) -> StackVerification:
    """Build the stack's graph in torch on the meta device, run it, and compare every node.

    ``specs`` are the :class:`~convcalc.spec.LayerSpec` list and ``result``
    the :class:`~convcalc.network.StackResult` convcalc computed. The nodes are
    walked in the order torch computes them (a block once its branches are
    done): layers run in eval mode, joins as torch code does (``body(x) +
    shortcut(x)``, ``torch.cat``, ``+``). Where convcalc stops, torch must
    refuse that step too; as the meta device accepts some layers real torch
    refuses, a layer it runs there is tried once more on the CPU, on an
    expanded zero tensor, when its weights are small enough.

    Where a tensor of the stack has 2**63 bytes or more, which torch cannot
    hold even on the meta device, both convcalc and torch run a batch of 1.
    """
    torch = _import_torch()
    from convcalc.network import Order, run_stack

    batch_of_one = _too_large(result)
    if batch_of_one:
        result = run_stack((1, *result.input[1:]), specs, inferred=result.inferred)
        if _too_large(result):
            raise VerifyError(
                "torch cannot hold a tensor of 2**63 bytes or more, even on the meta device, and this stack "
                "makes one even with a batch of 1: --verify cannot check it; use a smaller --input"
            )
    checks: list[LayerCheck] = []
    values: dict[Any, Any] = {None: torch.empty(result.input, device="meta")}

    def check(node: Any, shape: Any, params: int | None, error: str | None, ran: bool) -> None:
        # where convcalc stopped (not ran), torch must refuse too
        agrees = shape == node.output and (params is None or params == node.params) if ran else shape is None
        verdict = dict(torch_shape=shape, torch_params=params, torch_error=error, agrees=agrees, label=node.label)
        checks.append(LayerCheck(index=node.index, type=node.type, node=node if ran else None, **verdict))
        if shape is None or not ran:
            raise _Stopped

    namespace: dict[str, Any] = {"torch": torch, "nn": torch.nn, "F": torch.nn.functional, "x": values[None]}
    for helper in torch_code.helpers([*result.walk(), *([result.error.node] if result.error and result.error.node
                                                       else [])]):  # fmt: skip
        exec(torch_code.HELPERS[helper], namespace)  # convcalc's own code, the same that --emit torch writes

    def step(node: Any, ran: bool) -> None:
        inputs = [values[source] for source in node.inputs]
        params = None
        kind = LAYERS.get(node.type)
        try:
            if node.type in ("Add", "Mul", "Concat") and len(inputs) < 2:  # an unknown saved name: torch code fails
                raise NameError(f"no tensor was saved as {node.arguments.get('with')!r}")
            join = node.arguments.get("join", "Add") if node.type in ("Residual", "Parallel") else node.type
            if kind is None and join in ("Add", "Mul") and all(x.is_contiguous() for x in inputs):
                # torch's own broadcasting rule: on the meta device + and * go through torch's Python reference
                # kernels, whose first use imports torch._dynamo (about a second); contiguous inputs make a
                # contiguous result, so only a join of other layouts pays for them, to lay its result out as torch does
                out = torch.empty(torch.broadcast_shapes(*(x.shape for x in inputs)), device="meta")
            elif kind is None and join in ("Add", "Mul"):
                out = functools.reduce(operator.add if join == "Add" else operator.mul, inputs)
            elif kind is not None and kind.form is Form.PARAMETER and not ran:
                # a learned tensor is convcalc's own small module, not torch's: its checks are convcalc's, and there
                # is no torch class to ask whether the refusal is right
                raise ValueError("no torch class to ask: a learned tensor convcalc writes itself")
            elif not ran and any(arg.sized(node.arguments.get(arg.name)) for arg in (kind.args if kind else ())):
                # its sizes are expressions that could not be worked out: there is no value to give torch
                raise ValueError("its size expressions could not be worked out: no torch call to make")
            elif kind is None or kind.form is not Form.MODULE:
                out, params = _by_code(torch, namespace, node, inputs)
            else:
                module, shape, error, out = _layer(torch, node, inputs[0], confirm=not ran)
                if shape is None:
                    check(node, None, None, error, ran)
                params = sum(p.numel() for p in module.parameters())
                if out is None:
                    out = torch.empty(shape, device="meta")
        except (*_TORCH_REJECTS, NameError) as exc:
            _raise_if_resource(exc)
            check(node, None, None, f"{type(exc).__name__}: {_first_line(exc)}", ran)
        check(node, tuple(out.shape), params, None, ran)
        values[node] = out

    node = None
    try:
        for node in result.walk(Order.EVALUATION):
            step(node, ran=True)
        if result.error is not None and result.error.node is not None:
            node = result.error.node
            step(node, ran=False)
    except _Stopped:  # the first step torch refuses ends the run
        pass
    except _NoRoom as no_room:
        raise no_room.report(node) from None
    return StackVerification(torch_version=torch.__version__, layers=tuple(checks), batch_of_one=batch_of_one)


def _too_large(result: Any) -> bool:
    """Whether a tensor of the stack has 2**63 bytes or more, as float32: torch cannot count its storage, even on the
    meta device ("Storage size calculation overflowed")."""
    shapes = [result.input, *(node.output for node in result.walk())]
    return max(math.prod(shape) for shape in shapes) * 4 >= 2**63


def _by_code(torch: Any, namespace: dict[str, Any], node: Any, inputs: list[Any]) -> tuple[Any, int | None]:
    """Run a node as the code --emit torch writes for it (a tensor method, a join, attention, a learned tensor),
    on the meta device; its output (strides included) and its module's parameter count."""
    names = [f"t{position}" for position in range(len(inputs))]
    scope = {**namespace, **dict(zip(names, inputs))}
    params = None
    kind = LAYERS.get(node.type)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if node.type in ("Parameter", "Buffer"):  # a tensor from nothing, built as --emit torch builds it
            callee, arguments = torch_code.constructor(node)
            with torch.device("meta"):
                scope["module"] = eval(f"{callee}({', '.join(arguments)})", scope)  # convcalc's code, no user text
            params = scope["module"].numel() if node.type == "Parameter" else None
        elif kind is not None and kind.form not in (Form.METHOD, Form.FUNCTION) and not node.written:
            callee, arguments = torch_code.constructor(node)
            with torch.device("meta"):
                module = eval(f"{callee}({', '.join(arguments)})", scope)  # code convcalc made, no user text
            module.eval()
            scope["module"] = module
            params = sum(p.numel() for p in module.parameters())
        with torch.no_grad():
            out = eval(torch_code.expression(node, names, "module"), scope)
    return out, params


def _shape_keeping(name: str) -> bool:
    """Layers whose output has their input's shape and whose checks see only rank, channels and axes > 1."""
    from convcalc.catalog import ELEMENTWISE

    return name in ELEMENTWISE or name.startswith(("BatchNorm", "InstanceNorm")) or name == "GroupNorm"


def _layer(torch: Any, node: Any, x: Any, confirm: bool) -> tuple[Any, Any, str | None, Any]:
    """Run one torch.nn layer on the meta device; where it runs there but convcalc refused it (``confirm``), ask
    the CPU, on an expanded zero tensor, where the layer's weights are small enough to build there. Returns the
    module, the output shape, torch's error, and the meta output where there is one (with torch's strides)."""
    module, shape, error, out = _run_layer(torch, node.type, node.arguments, x, "meta")
    if shape is not None and confirm and _weights(module) <= CPU_LIMIT:  # the meta device is lax for some layers
        real = torch.zeros((), dtype=torch.float32).expand(*x.shape)
        module, shape, error, _ = _run_layer(torch, node.type, node.arguments, real, "cpu")
    return module, shape, error, out


def _weights(module: Any) -> int:
    return sum(t.numel() for t in (*module.parameters(), *module.buffers()))


def _small(x: Any, keep: tuple[int, ...]) -> tuple[int, ...]:
    """A small stand-in shape for ``x``: the axes in ``keep`` as they are, every other axis cut to at most 2."""
    return tuple(n if axis in keep else min(n, 2) for axis, n in enumerate(x.shape))


def _run_layer(
    torch: Any, name: str, arguments: dict[str, Any], x: Any, device: str
) -> tuple[Any, Any, str | None, Any]:
    """(module, output shape, None, meta output or None) where torch runs the layer; (None, None, its error, None)
    where it refuses. The shortcuts below stand in for the meta device on a contiguous input only: a permuted one
    keeps its strides through some layers, which only the meta device follows."""
    kwargs = {key: value for key, value in arguments.items() if value is not REQUIRED}
    contiguous = device != "meta" or x.is_contiguous()
    if device == "meta" and contiguous and _shape_keeping(name):
        # Norms, activations and dropout keep their input's shape, and torch checks them on the rank, the
        # channels and whether an axis is longer than 1. On the meta device their kernels go through torch's
        # Python references, whose first use imports torch._dynamo (about a second), so they run on the CPU
        # on a small input that keeps all of that: the channels, and every other axis cut to at most 2 ...
        small = _small(x, keep=(1,))
        if math.prod(small) + sum(_numbers(arguments)) <= CPU_LIMIT:  # ... where that is small: memory is bounded
            module, shape, error, _ = _run_layer(torch, name, arguments, torch.zeros(small), "cpu")
            return module, None if shape is None else tuple(x.shape) if shape == small else shape, error, None
    if device == "meta" and contiguous and name.startswith("AdaptiveAvgPool") and len(x.shape) >= int(name[-2]):
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
                module, shape, error, _ = _run_layer(torch, name, arguments, torch.zeros(small), "cpu")
                if shape is None:
                    return module, None, error, None
                return module, (*x.shape[:lead], *shape[lead:]), None, None
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
    except _TORCH_REJECTS as exc:
        _raise_if_resource(exc)
        return None, None, f"{type(exc).__name__}: {_first_line(exc)}", None
    if isinstance(out, tuple):  # return_indices=True: (output, indices), which no next layer takes
        message = "TypeError: the layer returns a tuple (output, indices), which the next layer cannot take"
        return None, None, message, None
    shape = tuple(out.shape)
    if 0 in shape:
        return None, None, f"torch made an empty output {list(shape)}", None
    if device == "meta" and name == "Linear":  # F.linear without its bias: the shape is right, the strides too
        return module, shape, None, out
    return module, shape, None, out if device == "meta" else None


def _numbers(arguments: dict[str, Any]) -> list[int]:
    """The integer arguments of a layer: a bound on the weights it allocates (num_features, num_channels...)."""
    return [value for value in arguments.values() if type(value) is int and value > 0]
