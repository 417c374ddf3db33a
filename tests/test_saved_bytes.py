"""convcalc.saved against torch itself: the bytes of the tensors autograd saves in one training forward pass.

The oracle knows nothing of convcalc's rules. It builds the module ``--emit torch``
writes for the stack, puts it in ``train()`` mode in the dtype, runs one forward
pass on a random input (which does not require grad) under
``torch.autograd.graph.saved_tensors_hooks``, and adds up the storages of every
tensor autograd packs: each storage once, whole (a saved view counts its base),
parameters and buffers left out (the model holds them anyway), the input counted
where a layer saves it.

Every layer of the catalogue is drawn alone, after a layer that makes its input
require grad (a Linear), or after a transpose too (a strided input), and before
another layer that may save its output again; joins and blocks, and layers whose
input is a view or a copy, have draws of their own; every example network runs
at a smaller input in two dtypes. Besides the total, each node that is a module
of the emitted network must save first what torch saves first while that module
runs.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, assume, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from convcalc import tensor_ops
from convcalc.catalog import LAYERS, Form
from convcalc.emit import emit_torch
from convcalc.network import Node, Order, StackResult, StackSpecError, run_stack
from convcalc.saved import FLOATING, RULES, SavedBytesError, saved_bytes
from convcalc.spec import BLOCKS, JOINS, SPLITS, LayerSpec, resolve
from convcalc.stackfile import load_stack
from tests.profiles import scaled
from tests.test_catalog_torch import input_shapes, tame_value, torch_arguments

ROOT = Path(__file__).parent.parent
Shape = tuple[int, ...]
Items = list[tuple[str, dict[str, Any]]]


# --- the oracle: torch ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def one_thread() -> Any:
    """torch on one thread: on a shared, loaded machine two threads wait on each other (30 times slower here), and
    no saved tensor depends on the thread count (but for SHRINKING_TRANSPOSED_3D's storage, which is not compared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class KernelMissing(Exception):
    """torch has no CPU kernel for this layer in this dtype (AvgPool3d in bfloat16): no figure to compare."""


def build(specs: list[LayerSpec], result: StackResult, dtype: str, initialise: bool = True) -> torch.nn.Module:
    """The module ``--emit torch`` writes for the stack, in ``dtype``; without ``initialise``, its parameters and
    buffers are zeros (a large network builds at once, and no size depends on a value)."""
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(emit_torch(specs, result, "stack"), "emitted.py", "exec"), namespace)
    make = namespace["build"] if "build" in namespace else namespace["Network"]
    if initialise:
        return make().to(getattr(torch, dtype))
    with torch.device("meta"):
        model = make().to(getattr(torch, dtype))
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in chain(model.parameters(), model.buffers()):
            tensor.zero_()  # not garbage: denormal floats slow the CPU's arithmetic down a hundredfold
    return model


@dataclass(frozen=True)
class TorchSaved:
    """What torch's forward pass saved: the total, and the bytes first saved during each call of one of the model's
    modules (in the order of the calls), and outside them (a Mul, in the forward's own code)."""

    total: int
    by_call: list[int]
    outside: int


def layer_modules(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The modules that stand for the stack's layers: a torch.nn layer (an attention layer with the modules it
    holds) or a leaf, in the network and in the blocks it builds (a repeated block's class, a defined block)."""
    for module in model.children():
        if type(module).__name__ in LAYERS or not list(module.children()):
            yield module
        else:
            yield from layer_modules(module)


def torch_saved(model: torch.nn.Module, shape: Shape, dtype: str, seed: int = 0) -> TorchSaved:
    """The storages autograd saves in one forward pass of ``model`` in training mode, on a random input (``seed``
    seeds it, and the noise of dropout and stochastic depth)."""
    packed: list[tuple[torch.Tensor, int | None]] = []
    calls: list[int] = []
    current: list[int | None] = [None]

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        packed.append((tensor, current[0]))  # held, so that no saved storage is freed and its address reused
        return tensor

    def enter(module: torch.nn.Module, args: Any) -> None:
        current[0] = len(calls)
        calls.append(0)

    def leave(module: torch.nn.Module, args: Any, out: Any) -> None:
        current[0] = None

    for module in layer_modules(model):
        module.register_forward_pre_hook(enter)
        module.register_forward_hook(leave)
    torch.manual_seed(seed)
    x = torch.randn(shape, dtype=getattr(torch, dtype))
    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model(x)
        except (NotImplementedError, RuntimeError) as error:
            if "not implemented for" in str(error):
                raise KernelMissing(str(error)) from None
            raise
    counted = {tensor.untyped_storage().data_ptr() for tensor in chain(model.parameters(), model.buffers())}
    outside = 0
    for tensor, call in packed:
        storage = tensor.untyped_storage()
        if storage.nbytes() and storage.data_ptr() not in counted:
            counted.add(storage.data_ptr())
            if call is None:
                outside += storage.nbytes()
            else:
                calls[call] += storage.nbytes()
    return TorchSaved(sum(calls) + outside, calls, outside)


def is_module(node: Node) -> bool:
    """Whether ``--emit torch`` builds the node as a module of the network (as emit.py decides): a layer, but no
    tensor method or function, nor a layer whose sizes follow the input (written as a call of a function)."""
    return node.type in LAYERS and LAYERS[node.type].form not in (Form.METHOD, Form.FUNCTION) and not node.written


def assert_agrees(result: StackResult, theirs: TorchSaved, dtype: str, what: str) -> None:
    """The total, and what each node that is a module saves first, against torch's calls of those modules."""
    ours = saved_bytes(result, dtype)
    assert ours.total == theirs.total, f"{what} in {dtype}: convcalc {ours.total}, torch {theirs.total}"
    modules = [node for node in result.walk(Order.EVALUATION) if is_module(node)]
    by_node = [ours.own.get(node.id, 0) for node in modules]
    assert by_node == theirs.by_call, f"{what} in {dtype}: node by node"


def _event(text: str) -> None:
    """Hypothesis' event, in a Hypothesis test (compare also runs in plain ones)."""
    if currently_in_test_context():
        event(text)


def _assume(condition: bool) -> None:
    """Hypothesis' assume, in a Hypothesis test; in a plain one, a case that must hold."""
    if currently_in_test_context():
        assume(condition)
    else:
        assert condition, "a case written out is one that convcalc and torch both run"


def compare(shape: Shape, items: Items, dtype: str) -> None:
    """convcalc's figure for a stack against torch's, where convcalc runs the stack; a stack torch's training pass
    refuses must be one that saved_bytes refuses too."""
    try:
        specs = resolve((name, args, None) for name, args in items)
    except StackSpecError:  # an argument value the tame ranges make, which convcalc refuses
        _assume(False)
    result = run_stack(shape, specs)
    _assume(result.error is None)
    _assume(math.prod(shape) <= 4096 and all(math.prod(node.output) <= 65536 for node in result.rows))
    if any(node.type == "ConvTranspose3d" and math.prod(node.output) < math.prod(node.input) for node in result.rows):
        _event("not compared: a ConvTranspose3d output smaller than its input (see SHRINKING_TRANSPOSED_3D)")
        _assume(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = build(specs, result, dtype)
    try:
        theirs = torch_saved(model, shape, dtype)
    except KernelMissing:
        _event("torch has no CPU kernel in this dtype")
        _assume(False)
    except (RuntimeError, ValueError, IndexError):  # IndexError: StochasticDepth's x.shape[0] of a 0-D tensor
        _event("torch refuses it in training mode")
        with pytest.raises(SavedBytesError):
            saved_bytes(result, dtype)
        return
    _event("saves something" if theirs.total else "saves nothing")
    assert_agrees(result, theirs, dtype, f"{shape} {items}")


SHRINKING_TRANSPOSED_3D = """torch's CPU fallback for ConvTranspose3d (slow_conv_transpose3d: float64 always;
float32 and the half dtypes where oneDNN is not chosen, which depends on the batch, the kernel, the CPU's features
and the number of threads) writes its output into a tensor first allocated like its input, so an output smaller
than the input keeps a storage of the input's size. convcalc counts the output's own size: the two differ only where
such an output is saved afterwards."""


# --- drawing one layer ---------------------------------------------------------------------------------------------

BEFORE: list[Items] = [[], [("Linear", {"out_features": 0})], [("Linear", {"out_features": 0})],
                       [("Linear", {"out_features": 0}), ("transpose", {"dim0": -1, "dim1": -2})]]  # fmt: skip
"""What comes before the layer: nothing (its input does not require grad), a Linear (it does: out_features 0 is
replaced by the last dim's size), or a Linear and a transpose (a strided input)."""
AFTER: list[Items] = [[], [], [("ReLU", {"inplace": True})], [("Linear", {"out_features": 2})], [("Sigmoid", {})]]
"""What comes after it: nothing, or a layer that writes into its output or saves it again."""


@st.composite
def method_arguments(draw: st.DrawFn, name: str, shape: Shape) -> dict[str, Any]:
    """Arguments of a tensor method or function (F.pad, F.normalize), or of one of torchvision's modules, for an
    input of ``shape``: mostly ones torch takes."""
    rank = len(shape)
    dim = st.integers(-rank, rank - 1)
    if name in ("contiguous", "exp", "sigmoid"):
        return {}
    if name in ("mul", "add", "sub", "div"):
        return {"other": draw(st.sampled_from([0.5, 2.0, -3.0]))}
    if name == "clamp":
        bounds = draw(st.sampled_from([{"min": -0.5}, {"max": 0.5}, {"min": -0.5, "max": 0.5}]))
        return dict(bounds)
    if name == "roll":
        if draw(st.booleans()):  # the flattened tensor
            return {"shifts": draw(st.integers(-3, 3))}
        dims = draw(st.lists(dim, min_size=1, max_size=min(rank, 2)))
        return {"shifts": draw(st.lists(st.integers(-3, 3), min_size=len(dims), max_size=len(dims))), "dims": dims}
    if name == "narrow":
        d = draw(dim)
        start = draw(st.integers(0, shape[d] - 1))
        return {"dim": d, "start": start, "length": draw(st.integers(1, shape[d] - start))}
    if name == "pad":
        pairs = draw(st.integers(1, min(rank, 3)))
        mode = draw(st.sampled_from(["constant", "constant", "reflect", "replicate", "circular"]))
        arguments = {"pad": draw(st.lists(st.integers(-1, 2), min_size=2 * pairs, max_size=2 * pairs)), "mode": mode}
        if mode == "constant" and draw(st.booleans()):
            arguments["value"] = 1.5
        return arguments
    if name == "normalize":
        return {"p": draw(st.sampled_from([2.0, 1.0, 3.0, 0.5])), "dim": draw(dim), "eps": 1e-12}
    if name == "FrozenBatchNorm2d":
        return draw(st.sampled_from([{}, {"eps": 1e-3}]))
    if name == "StochasticDepth":
        return {"p": draw(st.sampled_from([0.0, 0.2, 0.5, 1.0])), "mode": draw(st.sampled_from(["row", "batch"]))}
    if name == "Permute":
        return {"dims": draw(st.permutations(list(range(rank))))}
    if name == "permute":
        return {"dims": draw(st.permutations(list(range(rank))))}
    if name == "transpose":
        return {"dim0": draw(dim), "dim1": draw(dim)}
    if name in ("reshape", "view"):
        size = math.prod(shape)
        factor = draw(st.sampled_from([d for d in range(1, size + 1) if size % d == 0]))
        return {"shape": draw(st.sampled_from([[-1], [factor, -1], [-1, factor], [1, size], [size // factor, factor]]))}
    if name == "flatten":
        start = draw(dim)
        return {"start_dim": start, "end_dim": draw(st.integers(start % rank, rank - 1))}
    if name == "squeeze":
        return draw(st.sampled_from([{}, {"dim": draw(dim)}]))
    if name == "unsqueeze":
        return {"dim": draw(st.integers(-rank - 1, rank))}
    if name == "select":
        d = draw(dim)
        return {"dim": d, "index": draw(st.integers(-shape[d], shape[d] - 1))}
    if name == "expand":  # new leading dims, and -1, the same size or (for a dim of size 1) a new one
        lead = draw(st.lists(st.integers(1, 3), max_size=2))
        kept = [draw(st.sampled_from([-1, n] + ([1, 2, 3] if n == 1 else []))) for n in shape]
        return {"shape": lead + kept}
    if name == "repeat":  # new leading dims too
        return {"repeats": draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank + 2))}
    assert name in ("mean", "sum", "amax")
    return {"dim": draw(st.sampled_from([None, draw(dim)])), "keepdim": draw(st.booleans())}


@st.composite
def attention_arguments(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], Shape]:
    heads = draw(st.sampled_from([1, 2]))
    embed = heads * draw(st.integers(1, 3))
    shape = (*draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)), embed)
    dropout = draw(st.sampled_from([0.0, 0.0, 0.5, 1.0]))
    if name == "MultiheadAttention":
        return {"num_heads": heads, "dropout": dropout, "bias": draw(st.booleans()),
                "add_bias_kv": draw(st.booleans()), "add_zero_attn": draw(st.booleans()),
                "batch_first": draw(st.booleans())}, shape  # fmt: skip
    return {"nhead": heads, "dim_feedforward": draw(st.integers(1, 8)), "dropout": dropout,
            "activation": draw(st.sampled_from(["relu", "gelu"])), "batch_first": draw(st.booleans()),
            "norm_first": draw(st.booleans()), "bias": draw(st.booleans())}, shape  # fmt: skip


@st.composite
def module_arguments(draw: st.DrawFn, name: str, shape: Shape) -> dict[str, Any]:
    """Usual values of torch's keyword arguments (tests/test_catalog_torch.py's), the inferred ones left out."""
    arguments: dict[str, Any] = {}
    for argument, parameter in torch_arguments(name).items():
        required = parameter.default is parameter.empty
        if argument in ("num_features", "in_channels", "in_features") or not (required or draw(st.booleans())):
            continue
        arguments[argument] = draw(tame_value(name, argument, shape))
    if name == "Upsample":  # one of size and scale_factor
        arguments.pop("size", None)
        arguments.pop("scale_factor", None)
        key = draw(st.sampled_from(["size", "scale_factor"]))
        arguments[key] = draw(tame_value(name, key, shape))
    return arguments


OWN_ARGUMENTS = (Form.METHOD, Form.FUNCTION, Form.TORCHVISION)
"""Forms whose arguments method_arguments draws (torch.nn has no class to read them from)."""


@st.composite
def layer_cases(draw: st.DrawFn, name: str) -> tuple[Shape, Items, str]:
    """A stack of the layer alone, or between the layers of BEFORE and AFTER, and a dtype."""
    kind = LAYERS[name]
    before = draw(st.sampled_from(BEFORE))
    if kind.form is Form.ATTENTION or name == "TransformerEncoderLayer":
        arguments, shape = draw(attention_arguments(name))
    else:
        if kind.form is Form.MODULE:
            shape = draw(input_shapes(name))
        elif name == "FrozenBatchNorm2d":  # (N, C, H, W), and now and then another rank that broadcasts or fails
            shape = tuple(draw(st.lists(st.integers(1, 4), min_size=draw(st.sampled_from([4, 4, 4, 2, 3, 5])),
                                        max_size=5)))  # fmt: skip
        else:
            shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
        assume(len(shape) >= 1 and (len(shape) >= 2 or len(before) < 2))
        if kind.form in OWN_ARGUMENTS:
            arguments = draw(method_arguments(name, shape))
        elif name == "LayerScale":
            arguments = {"dim": draw(st.integers(-len(shape), len(shape) - 1))}
        elif kind.form is Form.PARAMETER:
            arguments = {}
        else:
            arguments = draw(module_arguments(name, shape))
    if len(before) == 2:  # the layer sees the transposed shape
        shape = (*shape[:-2], shape[-1], shape[-2])
    prefix = [(layer, {"out_features": shape[-1]} if layer == "Linear" else args) for layer, args in before]
    return shape, [*prefix, (name, arguments), *draw(st.sampled_from(AFTER))], draw(st.sampled_from(FLOATING))


@pytest.mark.parametrize("name", sorted(LAYERS))
@settings(max_examples=scaled(25), suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_every_layer_saves_what_torch_saves(name: str, data: st.DataObject) -> None:
    shape, items, dtype = data.draw(layer_cases(name), label="shape, layers, dtype")
    compare(shape, items, dtype)


# --- joins and blocks ------------------------------------------------------------------------------------------


@st.composite
def joins(draw: st.DrawFn) -> tuple[Shape, Items, str]:
    """Save, From, Add, Mul, Concat, Residual, Parallel and Repeat around layers that save their input or output."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(2, 4)))
    width = shape[-1]
    layers = st.sampled_from([("ReLU", {}), ("ReLU", {"inplace": True}), ("Linear", {"out_features": width}),
                              ("Sigmoid", {}), ("GELU", {}), ("Identity", {}), ("Dropout", {"p": 0.0})])  # fmt: skip
    body = st.lists(layers, max_size=3)
    how = st.sampled_from(["Add", "Mul", "Concat"])
    items: Items = []
    for position in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["layer", "layer", "Save", "From", "join", "Residual", "Parallel", "Repeat"]))
        if kind == "layer":
            items.append(draw(layers))
        elif kind == "Save":
            items.append(("Save", {"name": f"s{position}"}))
        elif kind in ("From", "join"):
            names = [args["name"] for name, args in items if name == "Save"]
            if names and kind == "From":
                items.append(("From", {"name": draw(st.sampled_from(names))}))
            elif names:
                items.append((draw(how), {"with": draw(st.lists(st.sampled_from(names), min_size=1, max_size=2))}))
        elif kind == "Residual":
            items.append(("Residual", {"body": draw(body.filter(bool))}))
        elif kind == "Parallel":
            branches = draw(st.lists(body, min_size=1, max_size=3))
            items.append(("Parallel", {"join": draw(how), "branches": [list(branch) for branch in branches]}))
        else:
            items.append(("Repeat", {"times": draw(st.integers(1, 2)), "layers": draw(body.filter(bool))}))
    before = [("Linear", {"out_features": width})] if draw(st.booleans()) else []
    return shape, [*before, *items], draw(st.sampled_from(FLOATING))


def _wrapped(items: Items) -> Items:
    """The items with the blocks' branches as (type, arguments, line) items, as resolve() takes them."""

    def branch(layers: Items) -> list[tuple[str, dict[str, Any], None]]:
        return [(layer, arguments, None) for layer, arguments in layers]

    out: Items = []
    for name, args in items:
        if name == "Residual":
            args = {"body": branch(args["body"])}
        elif name == "Repeat":
            args = {"times": args["times"], "layers": branch(args["layers"])}
        elif name == "Parallel":
            args = {"join": args["join"], "branches": [branch(layers) for layers in args["branches"]]}
        out.append((name, args))
    return out


@settings(max_examples=scaled(150), suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(case=joins())
def test_joins_and_blocks_save_what_torch_saves(case: tuple[Shape, Items, str]) -> None:
    shape, items, dtype = case
    compare(shape, _wrapped(items), dtype)


# --- strided inputs ----------------------------------------------------------------------------------------------

VIEWS = ("permute", "transpose", "select", "unsqueeze", "squeeze", "flatten", "reshape", "expand")
LAYOUT = ("Linear", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "LayerNorm", "BatchNorm1d", "BatchNorm2d",
          "Flatten", "Unflatten", "reshape", "flatten", "view", "Conv1d", "Conv2d", "MaxPool1d", "AvgPool2d",
          "Softmax", "GELU", "Hardswish", "Dropout", "Dropout1d", "mean", "sum", "amax", "select", "LayerScale",
          "PReLU", "MultiheadAttention", "Identity", "contiguous", "exp", "clamp", "mul", "roll", "narrow", "pad",
          "normalize", "StochasticDepth", "FrozenBatchNorm2d", "Permute")  # fmt: skip
"""Layers whose saved tensors or output storage depend on how their input is laid out."""


@st.composite
def strided_cases(draw: st.DrawFn) -> tuple[Shape, Items, str]:
    """A Linear, up to three views or reshapes (permuted, sliced, channels-last inputs), then a layer of LAYOUT."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=3, max_size=4)))
    items: Items = [("Linear", {"out_features": shape[-1]})]
    current = shape
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(VIEWS))
        if len(current) < 2:
            break
        step = [*items, (name, draw(method_arguments(name, current)))]
        result = run_stack(shape, resolve((layer, args, None) for layer, args in step))
        if result.error is None:
            items, current = step, result.output
    assume(len(current) >= 1)  # not a 0-D tensor, after selects
    name = draw(st.sampled_from(LAYOUT))
    if LAYERS[name].form in OWN_ARGUMENTS:
        arguments = draw(method_arguments(name, current))
    elif name == "MultiheadAttention":
        arguments = {"num_heads": 1, "batch_first": draw(st.booleans()), "dropout": draw(st.sampled_from([0, 0.5]))}
    elif name == "LayerScale":
        arguments = {"dim": draw(st.integers(-len(current), len(current) - 1))}
    else:
        arguments = draw(module_arguments(name, current))
    return shape, [*items, (name, arguments), *draw(st.sampled_from(AFTER))], draw(st.sampled_from(FLOATING))


@settings(max_examples=scaled(400), suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(case=strided_cases())
def test_layers_on_strided_inputs_save_what_torch_saves(case: tuple[Shape, Items, str]) -> None:
    """A view that no copy made, a reshape that copies, a Linear that cannot fold its input without a copy..."""
    compare(*case)


# --- tensors made from nothing, split, multiplied and indexed ------------------------------------------------------

STEPS = ("matmul", "matmul", "matmul", "split", "attention", "index", "mask", "coords", "parameter", "dims",
         "sequential", "view")  # fmt: skip
"""The kinds of step tensor_graphs draws (matmul three times as often: it has the most ways to go)."""


@st.composite
def partner(draw: st.DrawFn, shape: Shape, names: list[str], name: str, right: bool) -> Items:
    """Items that make a tensor to multiply a tensor of ``shape`` by, on the ``right`` (``x @ p``) or the left, and
    Save it as ``name``: mostly a Parameter that fits (it requires grad; made transposed now and then, so that it
    is a strided view), else the stack's input or a tensor saved before (which may not fit: then the step is
    dropped), transposed now and then."""
    rank = len(shape)
    width = draw(st.integers(1, 3))
    inner = shape[-1] if right else shape[-2] if rank > 1 else shape[0]
    batches = [(), (), tuple(shape[:-2]), (1,) * max(rank - 2, 0), (2, *shape[:-2]), (1, *shape[:-2])]
    matrix = (*draw(st.sampled_from(batches)), *((inner, width) if right else (width, inner)))
    made = draw(st.sampled_from([(inner,), matrix, matrix]))
    source = draw(st.sampled_from(["Parameter", "Parameter", "Parameter", "input", *names]))
    if source != "Parameter":
        flipped = [("transpose", {"dim0": -1, "dim1": -2})] if draw(st.booleans()) else []
        return [("From", {"name": source}), *flipped, ("Save", {"name": name})]
    if len(made) > 1 and draw(st.booleans()):
        swapped = [*made[:-2], made[-1], made[-2]]
        return [("Parameter", {"name": f"{name}_w", "shape": swapped}), ("transpose", {"dim0": -1, "dim1": -2}),
                ("Save", {"name": name})]  # fmt: skip
    return [("Parameter", {"name": f"{name}_w", "shape": list(made)}), ("Save", {"name": name})]


@st.composite
def graph_step(draw: st.DrawFn, kind: str, shape: Shape, names: list[str], position: int) -> Items:
    """One step of the kind, for a current tensor of ``shape``, its names made unique by ``position``."""
    rank = len(shape)
    at = f"s{position}"
    if kind == "matmul":
        right = draw(st.booleans())
        made = draw(partner(shape, names, f"{at}_p", right))
        if right:  # x @ p
            return [("Save", {"name": at}), *made, ("From", {"name": at}), ("matmul", {"with": f"{at}_p"})]
        return [("Save", {"name": at}), *made, ("matmul", {"with": at})]  # p @ x
    if kind == "split":
        how = draw(st.sampled_from(sorted(SPLITS)))
        dim = draw(st.integers(-rank, rank - 1))
        arguments: dict[str, Any] = {"dim": dim}
        if how == "chunk":
            arguments["chunks"] = draw(st.integers(1, 3))
        elif how == "split":
            arguments["split_size_or_sections"] = draw(st.integers(1, 3))
        elif how == "tensor_split":
            arguments["sections"] = draw(st.sampled_from([1, 2, 3, [1], [1, 2], [0, -1]]))
        count = len(tensor_ops.parts(shape, how, arguments))
        parts = [f"{at}_{index}" for index in range(count)]
        then = [("From", {"name": draw(st.sampled_from(parts))})] if draw(st.booleans()) else []
        return [(how, {**arguments, "names": parts}), *then]
    if kind == "attention":  # Swin's: one projection, cut into q, k and v; softmax(q k^T) v
        heads, width = draw(st.integers(1, 2)), draw(st.integers(1, 3))
        batch, length = f"B{position}", f"L{position}"
        return [("Dims", {"names": [batch, length, "_"]}),
                ("Linear", {"out_features": 3 * heads * width}),
                ("reshape", {"shape": [batch, length, 3, heads, width]}),
                ("permute", {"dims": [2, 0, 3, 1, 4]}),
                ("unbind", {"dim": 0, "names": [f"{at}_q", f"{at}_k", f"{at}_v"]}),
                ("mul", {"other": width**-0.5}),
                ("Save", {"name": f"{at}_qs"}),
                ("From", {"name": f"{at}_k"}),
                ("transpose", {"dim0": -2, "dim1": -1}),
                ("Save", {"name": f"{at}_kt"}),
                ("From", {"name": f"{at}_qs"}),
                ("matmul", {"with": f"{at}_kt"}),
                ("Softmax", {"dim": -1}),
                ("matmul", {"with": f"{at}_v"}),
                ("transpose", {"dim0": 1, "dim1": 2}),
                ("reshape", {"shape": [batch, length, heads * width]})]  # fmt: skip
    if kind == "index":  # a table's rows picked by a registered index (relative position bias)
        window = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        rows = (2 * window[0] - 1) * (2 * window[1] - 1)
        if draw(st.booleans()):  # a table that may not require grad (the input), or too few rows: refused
            made: Items = [("From", {"name": draw(st.sampled_from(["input", *names]))})]
        else:
            made = [("Parameter", {"name": f"{at}_t", "shape": [rows + draw(st.integers(0, 1)), *shape[1:]]})]
        return [*made, ("Save", {"name": f"{at}_t"}),
                ("Buffer", {"name": f"{at}_i", "kind": "relative_position_index", "window_size": window}),
                ("From", {"name": f"{at}_t"}), ("index", {"with": f"{at}_i"})]  # fmt: skip
    if kind == "mask":  # a Constant (no grad, no state): a product with a tensor that requires grad keeps it
        window = [draw(st.integers(1, 2)), draw(st.integers(1, 2))]
        size = [window[0] * draw(st.integers(1, 2)), window[1] * draw(st.integers(1, 2))]
        shift = [draw(st.integers(0, window[0] - 1)), draw(st.integers(0, window[1] - 1))]
        windows, tokens = size[0] * size[1] // (window[0] * window[1]), window[0] * window[1]
        join = draw(st.sampled_from(["Mul", "Add", "matmul"]))
        return [("Constant", {"name": f"{at}_m", "kind": "shifted_window_mask", "size": size, "window_size": window,
                              "shift_size": shift}),
                ("Parameter", {"name": f"{at}_w", "shape": [windows, tokens, tokens]}),
                (join, {"with": f"{at}_m"})]  # fmt: skip
    if kind == "coords":  # a float buffer: a Linear on it keeps it, which the model holds anyway
        window = [draw(st.integers(2, 3)), draw(st.integers(2, 3))]
        return [("Buffer", {"name": f"{at}_c", "kind": "relative_coords_table", "window_size": window}),
                ("Linear", {"out_features": draw(st.integers(1, 3))})]  # fmt: skip
    if kind == "parameter":
        return [("Parameter", {"name": f"{at}_w", "shape": draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))})]
    if kind == "dims":
        dims = [f"D{position}_{index}" for index in range(rank)]
        output = [("Output", {"name": f"out{position}"})] if draw(st.booleans()) else []
        check = {"condition": f"{dims[0]} >= 1", "message": "never"}  # (emit.py reads a message even if none given)
        return [("Dims", {"names": dims}), ("Check", check), *output]
    if kind == "sequential":
        layers = st.sampled_from([("ReLU", {}), ("exp", {}), ("sigmoid", {}), ("mul", {"other": 2.0}),
                                  ("Linear", {"out_features": shape[-1]}), ("contiguous", {}),
                                  ("clamp", {"min": 0.0}), ("Dropout", {"p": 0.0})])  # fmt: skip
        inside = draw(st.lists(layers, min_size=1, max_size=3))
        return [("Sequential", {"layers": [(name, arguments, None) for name, arguments in inside]})]
    dim = st.integers(-rank, rank - 1)  # a view or a copy that lays the tensor out otherwise
    return [draw(st.sampled_from([("transpose", {"dim0": draw(dim), "dim1": draw(dim)}), ("contiguous", {}),
                                  ("narrow", {"dim": -1, "start": 0, "length": 1}), ("unsqueeze", {"dim": 0}),
                                  ("roll", {"shifts": 1}), ("exp", {})]))]  # fmt: skip


def _float_names(items: Items) -> list[str]:
    """The names of the floating-point tensors the items make (not an index Buffer's), in order."""
    names: list[str] = []
    for name, arguments in items:
        if name in ("Save", "Parameter", "Constant"):
            names.append(arguments["name"])
        elif name in SPLITS:
            names += arguments["names"]
    return names


@st.composite
def tensor_graphs(draw: st.DrawFn) -> tuple[Shape, Items, str]:
    """Stacks written the way Swin's is: learned, registered and computed tensors, splits into named parts, matmul
    and index joins, Dims, Check, Output and Sequential, each step kept where the stack still runs."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    items: Items = [("Save", {"name": "input"})]
    if draw(st.booleans()):
        items.append(("Linear", {"out_features": shape[-1]}))
    current = shape
    for position in range(draw(st.integers(1, 5))):
        if not current:  # a 0-D tensor (a dot product) takes no step here
            break
        step = draw(graph_step(draw(st.sampled_from(STEPS)), current, _float_names(items), position))
        candidate = [*items, *step]
        try:
            result = run_stack(shape, resolve((name, args, None) for name, args in candidate))
        except StackSpecError:
            continue
        if result.error is None and all(math.prod(node.output) <= 4096 for node in result.rows):
            items, current = candidate, result.output
    assume(len(items) > 2)
    return shape, items, draw(st.sampled_from(FLOATING))


@settings(max_examples=scaled(120), suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(case=tensor_graphs())
def test_made_split_multiplied_and_indexed_tensors_save_what_torch_saves(case: tuple[Shape, Items, str]) -> None:
    """Parameter, Buffer and Constant steps, the parts of a split, matmul (dot, mv, mm, a folded mm or bmm, with
    views or copies of both sides) and index joins, and the steps that pass a tensor on."""
    for name, _ in case[1]:
        event(name)
    compare(*case)


MATMULS: list[tuple[Shape, Shape]] = [
    ((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((3, 4), (4, 5)),  # dot, mv, mm of an unsqueezed vector, mm
    ((2, 3, 4), (4, 5)), ((2, 3, 4), (4,)), ((2, 2, 3, 4), (4, 5)),  # folded into one mm or mv, or bmm
    ((3, 4), (2, 4, 5)), ((4,), (2, 4, 5)),  # the larger on the right: folded transposed (a copy), or bmm
    ((2, 3, 4), (2, 4, 5)), ((2, 2, 3, 4), (2, 4, 5)), ((1, 3, 4), (2, 2, 4, 5)),  # bmm, broadcast batches
    ((1, 3, 4), (2, 4, 5)), ((2, 3, 4), (1, 4, 5)),  # a batch of 1 that requires grad is squeezed and folded
    ((2, 1, 3, 4), (3, 4, 5)), ((2, 3, 4), (4, 1)), ((1, 4), (2, 4, 1)),
]  # fmt: skip
"""Operand shapes that take each way torch.matmul has (dot, mv, mm, a folded mm or mv, bmm after broadcasting)."""


def matmul_items(left: Shape, right: Shape, grads: str, flip: str) -> tuple[Shape, Items]:
    """The stack's input shape and items that multiply a tensor of shape ``left`` by one of shape ``right``:
    ``grads`` says which require grad (a Parameter, and a Linear's output, do; the network's input does not),
    ``flip`` which one is a transposed view (made transposed, then transposed back)."""

    def operand(shape: Shape, source: str, flipped: bool, name: str) -> tuple[Items, Shape | None]:
        """The items that make the operand, and the input shape they start from (None: a Parameter, from none)."""
        flipped = flipped and len(shape) > 1
        stored = (*shape[:-2], shape[-1], shape[-2]) if flipped else shape
        back = [("transpose", {"dim0": -1, "dim1": -2})] if flipped else []
        if source == "Parameter":
            return [("Parameter", {"name": name, "shape": list(stored)}), *back], None
        linear = [("Linear", {"out_features": stored[-1]})] if source == "Linear" else []
        return [*linear, *back], stored

    sources = {"right": ("input", "Parameter"), "left": ("Parameter", "input"), "both": ("Linear", "Parameter")}
    first, first_input = operand(left, sources[grads][0], flip == "left", "a_w")
    second, second_input = operand(right, sources[grads][1], flip == "right", "b_w")
    if first_input is not None:  # x @ the Parameter
        return first_input, [*first, ("Save", {"name": "a"}), *second, ("Save", {"name": "b"}),
                             ("From", {"name": "a"}), ("matmul", {"with": "b"})]  # fmt: skip
    assert second_input is not None  # the Parameter @ x
    return second_input, [*second, ("Save", {"name": "b"}), *first, ("matmul", {"with": "b"})]


@pytest.mark.parametrize("flip", ["", "left", "right"])
@pytest.mark.parametrize("grads", ["left", "right", "both"])
@pytest.mark.parametrize(("left", "right"), MATMULS, ids=lambda shape: "x".join(map(str, shape)))
def test_every_way_matmul_runs_saves_what_torch_saves(left: Shape, right: Shape, grads: str, flip: str) -> None:
    """Each operand is saved where the other requires grad: itself, its view, or the copy that a fold or a batch
    reshape makes of it."""
    shape, items = matmul_items(left, right, grads, flip)
    compare(shape, items, "float16" if flip == "right" else "float32")


CHANNELS_LAST = """A permute that makes an (N, C, H, W) view of an (N, H, W, C) tensor makes it channels-last in
memory, and torch's CPU kernels for Conv, ConvTranspose, BatchNorm, max and average pooling, GroupNorm, padding
(but circular), Upsample and PixelShuffle keep that layout (measured in torch 2.13: the 3-D Conv in float64 does
not, nor do AvgPool3d and the adaptive 3-D pools). A later Flatten, reshape or Linear must then copy. convcalc
follows layouts as its stack does, through views and elementwise layers only: it counts a view there, which differs
from torch where another layer saves that tensor too."""


@pytest.mark.xfail(reason=CHANNELS_LAST, strict=True)
def test_a_channels_last_layout_kept_by_a_conv_is_followed() -> None:
    shape, items = (2, 4, 4, 3), [("Linear", {"out_features": 3}), ("permute", {"dims": [0, 3, 1, 2]}),
                                  ("Conv2d", {"out_channels": 2, "kernel_size": 1}), ("ReLU", {}), ("Flatten", {}),
                                  ("Linear", {"out_features": 2})]  # fmt: skip
    specs = resolve((name, args, None) for name, args in items)
    result = run_stack(shape, specs)
    assert_agrees(result, torch_saved(build(specs, result, "float32"), shape, "float32"), "float32", "channels-last")


# --- whole networks ------------------------------------------------------------------------------------------

SMALLER: dict[str, Shape] = {
    "alexnet": (2, 3, 63, 63),
    "audio1d": (2, 1, 8000),
    "convnext_tiny": (2, 3, 32, 32),
    "deeplabv3_mobilenet_v3_large": (2, 3, 64, 64),  # batch 2: the image pooling branch's BatchNorm sees 1x1 maps
    "densenet121": (2, 3, 32, 32),
    "efficientnet_b0": (2, 3, 32, 32),
    "fasterrcnn_resnet50_fpn_backbone": (1, 3, 64, 64),
    "googlenet": (2, 3, 32, 32),
    "lenet5": (2, 1, 32, 32),
    "maxvit_t": (1, 3, 224, 224),  # its own: the grid sizes it puts windows back together with are fixed when built
    "mobilenet_v3_large": (2, 3, 32, 32),
    "mvit_v2_s": (1, 3, 15, 221, 221),  # its own: its token grid is fixed when built (8x56x56)
    "notes_cnn": (2, 1, 28, 28),
    "resnet18": (2, 3, 32, 32),
    "resnet50": (2, 3, 32, 32),
    "squeezenet1_1": (2, 3, 33, 33),
    "swin_t": (1, 3, 64, 64),  # 16x16 patches: windows padded and rolled in stages 1 and 2, one window after
    "swin_v2_t": (1, 3, 64, 64),
    "unet": (1, 1, 188, 188),
    "unet_padded": (1, 1, 32, 32),
    "vgg16": (2, 3, 32, 32),
    "video3d": (1, 3, 8, 16, 16),
    "vit_b_16": (2, 3, 32, 32),
}
"""A smaller input for every example, so that torch's forward pass takes little time on a CPU (its weights are the
same, but for the inferred in_features of a Linear after a Flatten)."""
EXAMPLES = sorted(ROOT.glob("examples/*.yaml"))


def test_every_example_has_a_smaller_input() -> None:
    assert sorted(SMALLER) == [path.stem for path in EXAMPLES]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_saves_what_torch_saves(example: Path, dtype: str) -> None:
    _, specs = load_stack(example.read_text(), example.name)
    shape = SMALLER[example.stem]
    result = run_stack(shape, specs)
    assert result.error is None
    try:
        theirs = torch_saved(build(specs, result, dtype, initialise=False), shape, dtype)
    except KernelMissing:  # bfloat16 3-D pooling: compare in float64 instead
        dtype = "float64"
        theirs = torch_saved(build(specs, result, dtype, initialise=False), shape, dtype)
    assert_agrees(result, theirs, dtype, example.stem)


@pytest.mark.parametrize("name", ["lenet5", "resnet50", "vit_b_16"])
def test_the_examples_the_issue_quotes_at_their_own_input(name: str) -> None:
    """At the file's own input (224x224 for ResNet-50 and ViT-B/16), in float32: well under the old footer's
    "forward + backward", twice the forward's outputs."""
    shape, specs = load_stack((ROOT / f"examples/{name}.yaml").read_text(), name)
    result = run_stack(shape, specs)
    assert_agrees(result, torch_saved(build(specs, result, "float32", initialise=False), shape, "float32"), "float32",
                  name)  # fmt: skip
    assert saved_bytes(result).total < 2 * result.activation_bytes("float32")


def test_swin_t_keeps_the_noise_of_its_stochastic_depth_whatever_it_draws() -> None:
    """Swin-T in training: each StochasticDepth with p above 0 multiplies by a Bernoulli noise of one value per row
    and keeps it (22 of them: two per block but the first, whose p is 0 and which returns its input); the figure
    does not depend on what the noise drew, nor on the input."""
    _, specs = load_stack((ROOT / "examples/swin_t.yaml").read_text(), "swin_t")
    shape = (2, 3, 32, 32)
    result = run_stack(shape, specs)
    saved = saved_bytes(result)
    noise = [tensor for tensor in saved.tensors if tensor.node.type == "StochasticDepth"]
    assert [(tensor.what, tensor.shape, tensor.bytes) for tensor in noise] == [("noise", (2, 1, 1, 1), 8)] * 22
    model = build(specs, result, "float32", initialise=False)
    for seed in (0, 1):
        assert_agrees(result, torch_saved(model, shape, "float32", seed), "float32", f"swin_t, seed {seed}")


def test_a_stack_that_fails_counts_the_nodes_that_ran() -> None:
    layers = [("Conv2d", {"out_channels": 4, "kernel_size": 3}, None), ("ReLU", {}, None),
              ("Conv2d", {"out_channels": 4, "kernel_size": 9}, None)]  # fmt: skip
    failed = run_stack((1, 3, 8, 8), resolve(layers))
    assert failed.error is not None
    assert saved_bytes(failed).total == saved_bytes(run_stack((1, 3, 8, 8), resolve(layers[:2]))).total == 768 + 576


# --- the figures the issue quotes --------------------------------------------------------------------------------

TINY_VIT = """
input: [2, 3, 32, 32]
layers:
  - Conv2d: {out_channels: 32, kernel_size: 8, stride: 8}
  - flatten: {start_dim: 2}
  - permute: [0, 2, 1]
  - ClassToken
  - PositionEmbedding
  - Repeat:
      times: 2
      layers:
        - TransformerEncoderLayer: {nhead: 4, dim_feedforward: 64, activation: gelu, batch_first: true,
                                    norm_first: true}
  - LayerNorm: {normalized_shape: 32}
  - select: [1, 0]
  - Linear: {out_features: 10}
"""
CIFAR_CNN = """
input: [8, 3, 32, 32]
layers:
  - Conv2d: {out_channels: 32, kernel_size: 3, padding: 1}
  - BatchNorm2d
  - ReLU: {inplace: true}
  - MaxPool2d: {kernel_size: 2}
  - Conv2d: {out_channels: 64, kernel_size: 3, padding: 1}
  - BatchNorm2d
  - ReLU: {inplace: true}
  - MaxPool2d: {kernel_size: 2}
  - Flatten
  - Dropout: {p: 0.5}
  - Linear: {out_features: 10}
"""


@pytest.mark.parametrize("text", [TINY_VIT, CIFAR_CNN], ids=["tiny_vit", "cifar_cnn"])
@pytest.mark.parametrize("dtype", FLOATING)
def test_the_figures_of_a_tiny_vit_and_a_cifar_cnn(text: str, dtype: str) -> None:
    shape, specs = load_stack(text)
    result = run_stack(shape, specs)
    try:
        theirs = torch_saved(build(specs, result, dtype), shape, dtype)
    except KernelMissing:
        pytest.skip(f"torch has no CPU kernel for a layer in {dtype}")
    assert_agrees(result, theirs, dtype, "the stack")
    saved = saved_bytes(result, dtype)
    assert saved.total == sum(saved.bytes_of(node) for node in result.roots)
    assert saved.total == sum(tensor.bytes for tensor in saved.tensors)


def test_the_cifar_cnn_figure_in_words() -> None:
    """The CIFAR CNN in float32, storage by storage: what each layer keeps, and what it does not."""
    shape, specs = load_stack(CIFAR_CNN)
    result = run_stack(shape, specs)
    saved = saved_bytes(result)
    kept = [(tensor.node.type, tensor.what, tensor.dtype) for tensor in saved.tensors]
    assert kept == [
        ("Conv2d", "input", "float32"),  # the network's input: the conv needs it for its weight's gradient
        ("BatchNorm2d", "input", "float32"), ("BatchNorm2d", "mean", "float32"), ("BatchNorm2d", "invstd", "float32"),
        ("ReLU", "output", "float32"),  # in place: the BatchNorm's output storage, which MaxPool saves too
        ("MaxPool2d", "indices", "int64"),
        ("Conv2d", "input", "float32"),
        ("BatchNorm2d", "input", "float32"), ("BatchNorm2d", "mean", "float32"), ("BatchNorm2d", "invstd", "float32"),
        ("ReLU", "output", "float32"),
        ("MaxPool2d", "indices", "int64"),
        ("Dropout", "mask", "float32"),  # a float mask of the input's size, not bool, on the CPU
        ("Linear", "input", "float32"),
    ]  # fmt: skip
    assert saved.total == torch_saved(build(specs, result, "float32"), shape, "float32").total


# --- the rules themselves ------------------------------------------------------------------------------------------


def test_every_layer_block_and_join_has_a_rule() -> None:
    """And a rule for the parts of a split (chunk, split, tensor_split, unbind), which the stack makes as nodes."""
    assert sorted(set(LAYERS) | set(BLOCKS) | set(JOINS) | {"Part"}) == sorted(RULES)


def test_the_module_imports_neither_torch_nor_the_command_line_tools() -> None:
    code = "import sys, convcalc.saved; print(*sorted(sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert not {"torch", "click", "rich", "yaml"} & set(loaded)


def test_an_unknown_layer_type_is_a_clear_error() -> None:
    result = run_stack((1, 4), resolve([("ReLU", {}, None)]))
    result.rows[0].type = "Cube"
    with pytest.raises(SavedBytesError, match="no rule for the tensors 'Cube' saves"):
        saved_bytes(result)


def test_a_dtype_that_does_not_train_is_refused() -> None:
    result = run_stack((1, 4), resolve([("ReLU", {}, None)]))
    with pytest.raises(SavedBytesError, match="floating-point dtype"):
        saved_bytes(result, "int8")


def test_resnet50_takes_a_few_milliseconds_and_a_long_stack_linear_time() -> None:
    shape, specs = load_stack((ROOT / "examples/resnet50.yaml").read_text())
    result = run_stack(shape, specs)

    def seconds(result: StackResult) -> float:  # the best of five: a loaded machine only ever slows a run down
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            saved_bytes(result)
            best = min(best, time.perf_counter() - start)
        return best

    assert seconds(result) < 0.010

    def long(count: int) -> StackResult:
        return run_stack((2, 8), resolve([("Linear", {"out_features": 8}, None), ("ReLU", {}, None)] * (count // 2)))

    assert seconds(long(10_000)) < 20 * seconds(long(1_000))
