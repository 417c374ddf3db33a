"""Training memory: the bytes of the tensors autograd saves for backward in one forward pass.

``saved_bytes(result, dtype)`` is the memory that a forward pass of the network
in training mode (``model.train()``, gradients on) leaves behind for the
backward pass: every tensor autograd keeps to compute the gradients, as
PyTorch 2 computes it on the CPU, every element in ``dtype`` (float64,
float32, float16 or bfloat16) except where torch saves another dtype.

- **Each storage counts once, whole.** A tensor that several layers save (a
  ReLU's output, which the next Conv saves too) is counted once, by the first
  layer that saves it. A view (``permute``, ``view``, ``select``, ``squeeze``,
  ``transpose``, ``Flatten`` where no copy is needed) shares its base's
  storage, and a layer with ``inplace: true`` writes into its input's; where
  a layer saves a view, its whole storage counts.
- **Parameters and buffers are left out.** A Conv keeps its weight and a
  BatchNorm its running statistics, but the model holds them anyway.
- **The network's input does not require grad.** A layer records nothing
  when neither its input requires grad nor it has parameters: a ReLU or a
  MaxPool straight on the input saves nothing, while a Conv on the input keeps
  the input (to compute its weight's gradient), and that counts.
- **Training mode.** BatchNorm normalises with the batch's statistics and
  keeps its input and a mean and an inverse standard deviation per channel;
  Dropout keeps its random mask, which on the CPU is a tensor of the input's
  size and dtype (not bool); MaxPool keeps its input and its int64 indices;
  ReLU, Sigmoid, Tanh and Softmax keep their output, most other activations
  their input; attention keeps its query, key and value projections and its
  output (with dropout: its weights, their mask and the dropped weights).
  torchvision's StochasticDepth multiplies by a random noise of one value per
  row (mode ``row``; one in all for ``batch``) and keeps it, whatever values
  it drew (with p 0 it returns its input and keeps nothing); FrozenBatchNorm2d,
  ``x * scale + shift`` of buffers, keeps its (1, C, 1, 1) scale.
- **Tensors the network makes.** A ``Parameter`` is a parameter and a
  ``Buffer`` a buffer (left out as above; the first requires grad, the second
  does not); a ``Constant`` (Swin's shifted window mask) is computed in the
  forward pass in the network's dtype, requires no grad, and counts where a
  layer saves it.
- **Joins and splits.** ``matmul`` keeps what the ``dot``, ``mv``, ``mm`` or
  ``bmm`` torch runs it as keeps: each operand where the other requires grad,
  as torch's matmul folds or broadcasts it first, so the operand itself, a
  view of it (whose whole storage counts: in Swin, a view of ``k`` keeps the
  whole qkv projection) or a copy where no view can fold it (``q`` and ``k^T``
  cut from a permuted projection, batched per window and head). ``x[index]``
  keeps its indices (an index buffer: nothing). The parts of ``chunk``,
  ``split``, ``tensor_split`` and ``unbind`` are views; ``Dims``, ``Check``
  and ``Output`` pass their tensor on.
- **Methods and functions.** ``exp`` and ``sigmoid`` keep their output,
  ``clamp`` its input; ``mul``, ``add``, ``sub`` and ``div`` by a number,
  ``roll`` and ``contiguous`` (a copy where the input is not contiguous) keep
  nothing; ``F.pad`` keeps what the padding layer of its mode keeps;
  ``F.normalize`` keeps its input, the norms and the norms clamped to eps
  (new tensors of the input's shape with the normalised dim 1), for any p.
- **Not included:** gradients, optimizer state, the temporaries of the
  backward pass, and the tensors the forward pass makes and frees again.
  This is the part of training memory that grows with the batch.
- **Where it can differ from torch.** The rules are torch 2.13's on the CPU;
  other devices run other kernels. Layouts are followed as ``convcalc stack``
  follows them, through views and elementwise layers: where a ``permute``
  makes a channels-last (N, C, H, W) view and a Conv, BatchNorm or pooling
  keeps that layout, a later Flatten, reshape or Linear copies in torch and
  is counted as a view here. A ConvTranspose3d output smaller than its input
  is counted at its own size, where torch's CPU fallback may keep it in a
  storage the size of the input. A ``Constant`` is counted in the network's
  dtype; the emitted code makes it like the tensor computed just before it,
  which differs only after an integer buffer.

Each layer type has a :class:`Rule` in :data:`RULES`: which tensors it saves
(its input, its output, or tensors it makes, with a shape and dtype), whether
its output is a new tensor, a view or its input itself, and whether it has
parameters. Each rule was read off torch, by recording what
``torch.autograd.graph.saved_tensors_hooks`` receives; ``tests/test_saved_bytes.py``
checks every layer and every example network against torch that way.

>>> from convcalc.spec import resolve
>>> from convcalc.network import run_stack
>>> result = run_stack((1, 3, 8, 8), resolve([("ReLU", {}, None),
...                                           ("Conv2d", {"out_channels": 4, "kernel_size": 3}, None),
...                                           ("ReLU", {}, None), ("MaxPool2d", {"kernel_size": 2}, None)]))
>>> saved = saved_bytes(result)
>>> [saved.bytes_of(node) for node in result.rows]  # the ReLU on the input saves nothing
[0, 768, 576, 288]
>>> saved.total  # the first ReLU's output, 3x8x8; the second's, 4x6x6 (the MaxPool's input too); 4x3x3 int64
1632
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, Union

from convcalc.catalog import LAYERS, overlaps
from convcalc.errors import ConvcalcError
from convcalc.network import DTYPES, Node, Order, StackResult
from convcalc.spec import SPLITS
from convcalc.step import wrap_dim
from convcalc.tensor_ops import broadcast_shapes, contiguous, elementwise_strides, view_strides
from convcalc.tensors import BUFFERS, CONSTANTS

__all__ = [
    "FLOATING",
    "RULES",
    "Copy",
    "Out",
    "Rule",
    "Saved",
    "SavedBytesError",
    "SavedTensor",
    "Saves",
    "saved_bytes",
]

Shape = tuple[int, ...]
Strides = tuple[int, ...]

FLOATING = ("float64", "float32", "float16", "bfloat16")
"""The dtypes a network trains in: autograd needs floating point."""

_ELEMENT = {**DTYPES, "int64": 8, "bool": 1}
_HALF = ("float16", "bfloat16")


class SavedBytesError(ConvcalcError, ValueError):
    """No training figure: a dtype that does not train, a layer type without a rule, or a layer that torch's
    training-mode forward pass refuses."""


class _Layer(Protocol):
    """What a rule reads of a layer: a stack's node, or a part of a composite layer (attention's projections)."""

    type: str
    arguments: dict[str, Any]
    input: Shape
    output: Shape


@dataclass(frozen=True)
class _Part:
    """A layer inside a composite one (TransformerEncoderLayer's LayerNorm): the fields of a node that rules read."""

    type: str
    arguments: dict[str, Any]
    input: Shape
    output: Shape


class Copy(enum.Enum):
    """Whether a layer saves its input as it is, or a copy torch makes of it first."""

    NONE = "none"
    """The input as it is (a view of another tensor stays one)."""
    ROWS = "rows"
    """Linear: the input folded to a matrix of rows, ``x.reshape(-1, in_features)``: a copy where no view can fold
    it (after a permute)."""
    CONTIGUOUS = "contiguous"
    """``x.contiguous()`` (InstanceNorm): a copy unless the input is contiguous."""
    DENSE = "dense"
    """``x.contiguous(x.suggest_memory_format())`` (GroupNorm): a copy unless contiguous or channels-last."""


@dataclass(frozen=True)
class Saves:
    """One tensor a layer saves for backward."""

    what: str
    """``input``, ``output``, or the name of a tensor the layer makes (``indices``, ``mask``, ``mean``...)."""
    shape: Callable[[_Layer], Shape] | None = None
    """The shape of a tensor the layer makes (none for its input or output)."""
    dtype: str | None = None
    """A dtype of its own (``int64`` indices); None: the stack's dtype."""
    with_grad: bool = False
    """Saved only where the input requires grad (a pad's input; not for a parameter's gradient alone)."""
    copy: Copy = Copy.NONE
    """For the input: as it is, or a copy torch makes first."""


INPUT = Saves("input")
OUTPUT = Saves("output")


def _made(what: str, shape: Callable[[_Layer], Shape], dtype: str | None = None, with_grad: bool = False) -> Saves:
    return Saves(what, shape, dtype, with_grad)


def _input_shape(layer: _Layer) -> Shape:
    return layer.input


def _output_shape(layer: _Layer) -> Shape:
    return layer.output


CLONE = _made("input before the in-place op", _input_shape)
"""What an in-place activation whose gradient needs its input (hardtanh_, silu_...) saves: a copy taken first."""
INDICES = _made("indices", _output_shape, "int64")


class Out(enum.Enum):
    """What a layer's output is, as storage."""

    NEW = "new"
    """A new tensor: contiguous, or laid out as the input for an elementwise layer."""
    VIEW = "view"
    """A view of the input: its storage, with the strides the catalogue's step gives."""
    RESHAPE = "reshape"
    """``x.reshape(...)``: a view where torch can make one, else a new contiguous copy."""
    SAME = "same"
    """The input tensor itself (Identity, Dropout with p 0, Save, Dims, a split's first part)."""
    CONTIGUOUS = "contiguous"
    """``x.contiguous()``: the input tensor itself where it is contiguous, else a new contiguous copy."""


Items = Union[tuple[Saves, ...], Callable[[_Layer], tuple[Saves, ...]]]


@dataclass(frozen=True)
class Rule:
    """What one layer type saves for backward, and what its output is."""

    saves: Items = ()
    """The tensors it saves when it records (its input requires grad, or it has parameters), or a function of the
    layer that gives them."""
    in_place: Items | None = None
    """For a layer that takes ``inplace``: what it saves with ``inplace: true``, when it writes its output into
    its input's storage."""
    output: Out | Callable[[_Layer], Out] = Out.NEW
    learned: bool | str = False
    """Whether it has parameters (which require grad): True, or the argument that says so (``affine``)."""
    composite: Callable[[_Pass, Node, _Layer, _Tensor], _Tensor] | None = None
    """For a layer made of others (attention): runs its parts, saving for the node."""
    join: Callable[[Node], str | None] | None = None
    """For a join or block: how it joins its inputs (``Add``, ``Mul``, ``Concat``, ``matmul``, ``index``); None: it
    passes its input on."""
    refuses: Callable[[_Layer], str | None] | None = None
    """A check torch makes in training mode only (eval mode runs the layer): the problem in words, or None."""
    restride: Callable[[_Layer, Strides], Strides] | None = None
    """The strides of its output from its input's (never None), where the catalogue's step does not give them as
    the training pass lays them out: a Part of a split; StochasticDepth's ``x * noise``, FrozenBatchNorm2d's
    ``x * scale + shift`` and F.normalize's ``x / norm``, each laid out by TensorIterator from both operands."""
    start: Callable[[_Pass, Node], _Tensor] | None = None
    """For a step that takes no input (Parameter, Buffer, Constant): the tensor it makes."""


@dataclass(frozen=True)
class SavedTensor:
    """One storage a forward pass keeps for backward, and the first node that saves it."""

    node: Node
    what: str
    """What the node saves: ``input``, ``output``, ``indices``, ``mask``, ``mean``..."""
    shape: Shape
    """The shape of the saved tensor (a view's; its storage may be larger)."""
    dtype: str
    bytes: int
    """The whole storage's."""


@dataclass(frozen=True, kw_only=True)
class Saved:
    """The tensors a training forward pass keeps for backward: the total, and the bytes each node is the first to
    save."""

    dtype: str
    total: int
    own: dict[int, int] = field(repr=False)
    """Bytes by node id: the storages the node is the first to save (a block's: its join's own)."""
    subtotals: dict[int, int] = field(repr=False)
    """Bytes by node id, a block's nodes included."""
    tensors: tuple[SavedTensor, ...] = field(repr=False)
    """Every storage counted, in the order torch saves them."""

    def bytes_of(self, node: Node) -> int:
        """The bytes a node saves first; for a block, with everything inside it."""
        return self.subtotals.get(node.id, 0)


@dataclass(slots=True)
class _Tensor:
    """A tensor of the forward pass: its storage (an id and the storage's bytes), shape, strides (None: contiguous),
    whether it requires grad, and its dtype (None: the pass's; ``int64`` for an index buffer)."""

    storage: int
    nbytes: int
    shape: Shape
    grad: bool
    strides: Strides | None = None
    dtype: str | None = None

    def laid_out(self, shape: Shape, strides: Strides | None, grad: bool | None = None) -> _Tensor:
        """A view of this tensor's storage with this shape and strides (None: contiguous, as ``_laid_out`` gives
        them)."""
        return _Tensor(self.storage, self.nbytes, shape, self.grad if grad is None else grad, strides, self.dtype)


class _Pass:
    """One forward pass: makes storages, and counts each saved storage once, for the first node that saves it."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.element = DTYPES[dtype]
        self.storages = 0
        self.counted: set[int] = set()
        self.own: dict[int, int] = {}
        self.tensors: list[SavedTensor] = []

    def new(self, shape: Shape, grad: bool, dtype: str | None = None, strides: Strides | None = None) -> _Tensor:
        self.storages += 1
        element = self.element if dtype is None else _ELEMENT[dtype]
        return _Tensor(self.storages, math.prod(shape) * element, shape, grad, strides, dtype)

    def held(self, tensor: _Tensor) -> _Tensor:
        """A parameter's or buffer's tensor: the model holds its storage anyway, so no saving of it counts."""
        self.counted.add(tensor.storage)
        return tensor

    def save(self, node: Node, tensor: _Tensor, what: str) -> None:
        if tensor.storage in self.counted:
            return
        self.counted.add(tensor.storage)
        self.own[node.id] = self.own.get(node.id, 0) + tensor.nbytes
        self.tensors.append(SavedTensor(node, what, tensor.shape, tensor.dtype or self.dtype, tensor.nbytes))

    def layer(self, node: Node, layer: _Layer, x: _Tensor) -> _Tensor:
        """Run one layer (``node`` itself, or a part of it) on ``x``; what it saves counts for ``node``."""
        rule = _rule(layer.type)
        problem = rule.refuses(layer) if rule.refuses is not None else None
        if problem is not None:
            raise SavedBytesError(f"{layer.type} on input {_text(layer.input)} cannot train: {problem}")
        if rule.composite is not None:
            return rule.composite(self, node, layer, x)
        learned = rule.learned if isinstance(rule.learned, bool) else bool(layer.arguments[rule.learned])
        records = x.grad or learned
        in_place = rule.in_place is not None and layer.arguments.get("inplace") is True
        how = rule.output(layer) if callable(rule.output) else rule.output
        if in_place and how is not Out.SAME and layer.type.startswith("Dropout"):
            problem = overlaps(x.shape, x.strides)  # eval writes nothing; training does (the rest refuse in eval)
            if problem is not None:
                raise SavedBytesError(f"{layer.type} with inplace: true cannot train on input {_text(layer.input)}: "
                                      f"{problem}")  # fmt: skip
        if how is Out.SAME:
            out = x
        elif in_place:
            out = x.laid_out(layer.output, x.strides, records)
        elif how is Out.VIEW:
            out = x.laid_out(layer.output, _output_strides(rule, layer, x, view=True))
        elif how is Out.RESHAPE:
            out = _reshaped(self, x, layer.output)
        elif how is Out.CONTIGUOUS:
            out = x if _is_contiguous(x) else self.new(layer.output, x.grad, x.dtype)
        else:
            out = self.new(layer.output, records, strides=_output_strides(rule, layer, x, view=False))
        if not records:
            return out
        items = rule.in_place if in_place else rule.saves
        assert items is not None
        for item in items(layer) if callable(items) else items:
            if item.with_grad and not x.grad:
                continue
            if item.what == "input":
                self.save(node, _copied(self, x, item.copy), "input")
            elif item.what == "output":
                self.save(node, out, "output")
            else:
                assert item.shape is not None
                self.save(node, self.new(item.shape(layer), False, item.dtype), item.what)
        return out

    def join(self, node: Node, how: str, tensors: list[_Tensor]) -> _Tensor:
        """``a + b + ...``, ``a * b * ...`` (each product saves the factor the other's gradient needs), torch.cat,
        ``torch.matmul(a, b)`` or ``a[b]``."""
        grad = any(tensor.grad for tensor in tensors)
        if how == "Concat":  # torch.cat saves only sizes, and makes a new tensor even of one
            return self.new(node.output, grad)
        if how == "matmul":
            return _matmul(self, node, tensors[0], tensors[1])
        if how == "index":  # the gradient scatters into the table's rows: it keeps the indices
            if tensors[0].grad:
                self.save(node, tensors[1], "indices")
            return self.new(node.output, tensors[0].grad, tensors[0].dtype)
        if len(tensors) == 1:  # the expression is the tensor itself
            return tensors[0]
        result = tensors[0]
        for other in tensors[1:]:
            shape, strides = _elementwise(result, other)
            if how == "Mul":
                if result.grad:
                    self.save(node, other, "input")
                if other.grad:
                    self.save(node, result, "input")
            result = self.new(shape, result.grad or other.grad, strides=strides)
        return result


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _rule(name: str) -> Rule:
    rule = RULES.get(name)
    if rule is None:
        raise SavedBytesError(f"no rule for the tensors {name!r} saves for backward: add one to convcalc.saved.RULES")
    return rule


def _laid_out(shape: Shape, strides: Strides) -> Strides | None:
    return None if strides == contiguous(shape) else strides


def _is_dense(shape: Shape, strides: Strides | None, order: tuple[int, ...]) -> bool:
    """Whether the dims, fastest first in ``order``, are packed with no gap (dims of size 1 take any stride)."""
    if strides is None:
        return True
    expected = 1
    for d in order:
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def _is_contiguous(x: _Tensor) -> bool:
    """torch's ``is_contiguous()``: the dims packed in order, the last fastest (dims of size 1 take any stride)."""
    return _is_dense(x.shape, x.strides, tuple(range(len(x.shape) - 1, -1, -1)))


def _strides(x: _Tensor) -> Strides:
    return x.strides or contiguous(x.shape)


def _reshaped(run: _Pass, x: _Tensor, shape: Shape) -> _Tensor:
    """``x.reshape(shape)``: a view where torch can make one, else a new contiguous copy."""
    strides = view_strides(x.shape, _strides(x), shape)
    return run.new(shape, x.grad, x.dtype) if strides is None else x.laid_out(shape, _laid_out(shape, strides))


def _output_strides(rule: Rule, layer: _Layer, x: _Tensor, view: bool) -> Strides | None:
    """The strides of a layer's output (None: contiguous): the rule's own, or the catalogue's step's (a new tensor
    of a contiguous input is contiguous)."""
    if rule.restride is not None:
        return _laid_out(layer.output, rule.restride(layer, _strides(x)))
    if x.strides is None and not view:
        return None
    return _step_strides(layer, x)


def _copied(run: _Pass, x: _Tensor, copy: Copy) -> _Tensor:
    """The tensor a layer saves of its input ``x``: ``x`` itself, or the copy torch makes first."""
    if copy is Copy.NONE or x.strides is None:
        return x
    rank = len(x.shape)
    if copy is Copy.ROWS:
        if rank <= 2 or view_strides(x.shape, x.strides, (math.prod(x.shape[:-1]), x.shape[-1])) is not None:
            return x
    elif _is_dense(x.shape, x.strides, tuple(range(rank - 1, -1, -1))):
        return x
    elif copy is Copy.DENSE and rank in (4, 5):
        channels_last = (1, 3, 2, 0) if rank == 4 else (1, 4, 3, 2, 0)
        if _is_dense(x.shape, x.strides, channels_last):
            return x
    return run.new(x.shape, x.grad, x.dtype)


def _step_strides(layer: _Layer, x: _Tensor) -> Strides | None:
    """The strides of a layer's output from its input's, as the catalogue's step gives them (None: contiguous)."""
    step = LAYERS[layer.type].apply(x.shape, layer.arguments)
    strides = x.strides or contiguous(x.shape)
    if step.restride is not None:
        return _laid_out(step.output, step.restride(strides))
    if step.keeps_layout:
        return _laid_out(step.output, elementwise_strides(step.output, [(step.output, strides)]))
    return None


def _elementwise(a: _Tensor, b: _Tensor) -> tuple[Shape, Strides | None]:
    """The shape and strides of ``a + b`` or ``a * b``, broadcast and laid out as torch's TensorIterator does."""
    rank = max(len(a.shape), len(b.shape))
    left, right = (1,) * (rank - len(a.shape)) + a.shape, (1,) * (rank - len(b.shape)) + b.shape
    shape = tuple(max(m, n) for m, n in zip(left, right))
    if a.strides is None and b.strides is None and a.shape == b.shape:
        return shape, None
    operands = [(a.shape, a.strides or contiguous(a.shape)), (b.shape, b.strides or contiguous(b.shape))]
    return shape, _laid_out(shape, elementwise_strides(shape, operands))


def _expanded(x: _Tensor, shape: Shape) -> _Tensor:
    """``x.expand(shape)``: a view, stride 0 along every dim it broadcasts (torch's ``inferExpandGeometry``)."""
    if shape == x.shape:
        return x
    lead, old = len(shape) - len(x.shape), _strides(x)
    strides = [0] * len(shape)
    for i in range(len(shape) - 1, -1, -1):
        if i >= lead:
            size, stride = x.shape[i - lead], old[i - lead]
        else:  # a new dim: of size 1, strided as if it were there
            size, stride = 1, shape[i + 1] * strides[i + 1] if i + 1 < len(shape) else 1
        strides[i] = stride if size == shape[i] else 0
    return x.laid_out(shape, _laid_out(shape, tuple(strides)))


def _transposed(x: _Tensor) -> _Tensor:
    """``x.mT``: the last two dims swapped, a view."""
    strides, shape = _strides(x), x.shape
    swapped = (*shape[:-2], shape[-1], shape[-2])
    return x.laid_out(swapped, _laid_out(swapped, (*strides[:-2], strides[-1], strides[-2])))


def _unsqueezed(x: _Tensor, dim: int) -> _Tensor:
    """``x.unsqueeze(dim)``: a view, as torch strides it."""
    strides, shape = _strides(x), x.shape
    step = strides[dim] * shape[dim] if dim < len(shape) else 1
    new = (*shape[:dim], 1, *shape[dim:])
    return x.laid_out(new, _laid_out(new, (*strides[:dim], step, *strides[dim:])))


def _product(run: _Pass, node: Node, kind: str, left: _Tensor, right: _Tensor) -> None:
    """``mm``, ``bmm``, ``mv`` or ``dot`` of two operands: each keeps the operand that the other's gradient needs,
    where the other requires grad (mm and bmm save their second operand first; mv and dot their first)."""
    pairs = [(left, right.grad, "left operand"), (right, left.grad, "right operand")]
    for tensor, needed, what in reversed(pairs) if kind in ("mm", "bmm") else pairs:
        if needed:
            run.save(node, tensor, what)


def _folds(a: _Tensor, b: _Tensor) -> bool:
    """torch's ``should_fold`` (ATen/native/LinearAlgebra.cpp): whether matmul folds the batch dims of the larger
    operand (3-D or more) into the rows of one matrix for ``mm``, the other being 1-D or 2-D. Always where the smaller
    operand requires grad (even at the price of a copy), else where the fold is a view (and the first operand is not
    the 2-D one)."""
    first_larger = len(a.shape) >= len(b.shape)
    larger = a if first_larger else _transposed(b)
    if not (len(larger.shape) >= 3 and len(b.shape if first_larger else a.shape) <= 2):
        return False
    if (b if first_larger else a).grad:
        return True
    if len(a.shape) == 2:
        return False
    shape, strides = larger.shape, _strides(larger)
    return all(strides[i] == strides[i + 1] * shape[i + 1] for i in range(len(shape) - 2))


def _matmul(run: _Pass, node: Node, a: _Tensor, b: _Tensor) -> _Tensor:
    """``torch.matmul(a, b)``: a new contiguous tensor; it saves what the ``mm``, ``bmm``, ``mv`` or ``dot`` it runs
    as saves (see :func:`_products`)."""
    grad = a.grad or b.grad
    if grad:
        _products(run, node, a, b)
    return run.new(node.output, grad, a.dtype)


def _products(run: _Pass, node: Node, a: _Tensor, b: _Tensor) -> None:
    """What ``torch.matmul(a, b)`` saves, as torch's ``_matmul_impl`` computes it: 1-D and 2-D operands go to
    ``dot``, ``mv`` or ``mm`` as they are; a 3-D or larger one with a 1-D or 2-D one is folded into a matrix where
    :func:`_folds` says so (``reshape``: a copy where no view can fold it); otherwise both are broadcast to the
    batch dims they share and folded to 3-D for ``bmm`` (each a view where torch can make one, else a copy)."""
    rank_a, rank_b = len(a.shape), len(b.shape)
    if rank_a <= 2 and rank_b <= 2:
        if rank_a == 1 and rank_b == 1:
            _product(run, node, "dot", a, b)
        elif rank_b == 1:
            _product(run, node, "mv", a, b)
        else:
            _product(run, node, "mm", _unsqueezed(a, 0) if rank_a == 1 else a, b)
        return
    if _folds(a, b):
        flipped = rank_b > rank_a  # (a @ b) = (b^T @ a^T)^T
        larger = _transposed(b) if flipped else a
        smaller = (_transposed(a) if rank_a == 2 else a) if flipped else b
        rows = _reshaped(run, larger, (math.prod(larger.shape[:-1]), larger.shape[-1]))
        _product(run, node, "mm" if len(smaller.shape) == 2 else "mv", rows, smaller)
        return
    if rank_a == 3 and rank_b == 3 and a.shape[0] != b.shape[0]:  # a batch of 1 that requires grad is folded
        if a.shape[0] == 1 and a.grad:
            return _products(run, node, a.laid_out(a.shape[1:], _laid_out(a.shape[1:], _strides(a)[1:])), b)
        if b.shape[0] == 1 and b.grad:
            return _products(run, node, a, b.laid_out(b.shape[1:], _laid_out(b.shape[1:], _strides(b)[1:])))
    n, m = (a.shape[-2] if rank_a > 1 else 1), a.shape[-1]
    k, p = (b.shape[-2], b.shape[-1]) if rank_b > 1 else (b.shape[0], 1)
    batch = broadcast_shapes(a.shape[: max(rank_a - 2, 0)], b.shape[: max(rank_b - 2, 0)])
    assert batch is not None
    count = math.prod(batch)
    left = _reshaped(run, _expanded(a, (*batch, n, m)), (count, n, m))
    if rank_b == 1:
        right = _unsqueezed(_reshaped(run, _expanded(b, (*batch, k)), (count, k)), 2)
    else:
        right = _reshaped(run, _expanded(b, (*batch, k, p)), (count, k, p))
    _product(run, node, "bmm", left, right)
    return None


# --- the rules -----------------------------------------------------------------------------------------------------


def _dims(layer: _Layer) -> int:
    """The spatial axes of an N-d layer type (Conv2d: 2)."""
    return int(layer.type[-2])


def _conv(layer: _Layer) -> tuple[Saves, ...]:
    """A convolution saves the input it convolves (for its weight's gradient): the input itself, or the padded copy
    that ``padding_mode`` other than zeros (F.pad, even by 0) or ``padding: same`` with an odd total padding makes."""
    args = layer.arguments
    dims = _dims(layer)
    if layer.type.startswith("ConvTranspose"):
        return (INPUT,)
    kernel = _per_axis(args["kernel_size"], dims)
    dilation = _per_axis(args["dilation"], dims)
    padding = args["padding"]
    if args["padding_mode"] != "zeros":  # the module pads with F.pad, then convolves with padding 0
        if padding == "same":
            extra = [d * (k - 1) for k, d in zip(kernel, dilation)]
        else:
            extra = [0] * dims if padding == "valid" else [2 * p for p in _per_axis(padding, dims)]
        padded = _made("padded input", lambda layer: _grown(layer.input, extra))
        pad_saves = (Saves("input", with_grad=True),) if args["padding_mode"] in ("reflect", "replicate") else ()
        return (*pad_saves, padded)
    if padding == "same":  # torch pads one more pixel at the end of an axis whose total padding is odd, as a copy
        extra = [d * (k - 1) % 2 for k, d in zip(kernel, dilation)]
        if any(extra):
            return (_made("padded input", lambda layer: _grown(layer.input, extra)),)
    return (INPUT,)


def _per_axis(value: Any, dims: int) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value] * dims


def _grown(shape: Shape, extra: list[int]) -> Shape:
    """``shape`` with its trailing axes larger by ``extra``."""
    lead = len(shape) - len(extra)
    return (*shape[:lead], *(n + e for n, e in zip(shape[lead:], extra)))


def _adaptive_avg(layer: _Layer) -> tuple[Saves, ...]:
    """Adaptive average pooling (and Upsample's area mode) saves its input, except to a size of all ones, which
    torch computes as a mean over the spatial axes: a mean saves nothing."""
    dims = len(layer.input) - 2 if layer.type == "Upsample" else _dims(layer)
    return () if all(n == 1 for n in layer.output[len(layer.output) - dims :]) else (INPUT,)


def _upsample(layer: _Layer) -> tuple[Saves, ...]:
    """Interpolation saves nothing (its backward needs only the sizes), but for ``area``: adaptive average pooling."""
    return _adaptive_avg(layer) if layer.arguments["mode"] == "area" else ()


LP_POOL = (
    INPUT,  # x.pow(p)
    _made("input ** norm_type", _input_shape),  # avg_pool's input
    _made("pooled", _output_shape),  # abs(out)
    _made("sign", _output_shape),  # sign(out) * relu(abs(out))
    _made("relu", _output_shape),
    _made("scaled", _output_shape),  # (...).mul(kernel size).pow(1 / p)
)
"""LPPool, as torch.nn.functional writes it: ``(sign(out) * relu(abs(out))).mul(kw * kh).pow(1 / p)`` of
``out = avg_pool(x.pow(p))``."""


def _batch_norm(layer: _Layer) -> tuple[Saves, ...]:
    """BatchNorm in training: the input, and the batch's mean and inverse std per channel."""
    channels = layer.input[1]
    return (INPUT, _made("mean", lambda _: (channels,)), _made("invstd", lambda _: (channels,)))


def _batch_statistics(layer: _Layer) -> str | None:
    """BatchNorm in training normalises by the batch's statistics: more than one value per channel, and eps > 0."""
    if math.prod(layer.input) // layer.input[1] == 1:
        return "BatchNorm in training mode needs more than 1 value per channel: use a larger batch or input"
    if layer.arguments["eps"] <= 0:
        return f"BatchNorm in training mode needs a positive eps, got {layer.arguments['eps']}"
    return None


def _one_value_per_instance(layer: _Layer) -> str | None:
    """InstanceNorm in training needs each map's statistics: more than one spatial element."""
    if math.prod(layer.input[len(layer.input) - _dims(layer) :]) == 1:
        return "InstanceNorm in training mode needs more than 1 spatial element: use a larger input"
    return None


def _instance_norm(layer: _Layer) -> tuple[Saves, ...]:
    """InstanceNorm is BatchNorm on the input viewed as (1, N*C, ...) (a contiguous copy first, where it is not);
    it repeats the weight and the running statistics N times, new tensors that BatchNorm saves."""
    args, dims = layer.arguments, _dims(layer)
    instances = math.prod(layer.input[: len(layer.input) - dims])  # N*C, or C of an unbatched input

    def per_instance(what: str) -> Saves:
        return _made(what, lambda _: (instances,))

    repeated = (per_instance("weight, repeated"),) if args["affine"] else ()
    if args["track_running_stats"]:
        repeated += (per_instance("running_mean, repeated"), per_instance("running_var, repeated"))
    return (Saves("input", copy=Copy.CONTIGUOUS), *repeated, per_instance("mean"), per_instance("invstd"))


def _group_norm(layer: _Layer) -> tuple[Saves, ...]:
    groups = (layer.input[0], layer.arguments["num_groups"])
    return (Saves("input", copy=Copy.DENSE), _made("mean", lambda _: groups), _made("rstd", lambda _: groups))


def _layer_norm(layer: _Layer) -> tuple[Saves, ...]:
    """LayerNorm: the input, and a mean and reciprocal std per row (every dim before the normalised ones)."""
    normalized = layer.arguments["normalized_shape"]
    count = 1 if isinstance(normalized, int) else len(normalized)
    rows = (*layer.input[: len(layer.input) - count], *(1,) * count)
    return (INPUT, _made("mean", lambda _: rows), _made("rstd", lambda _: rows))


def _mask(noise: Callable[[Shape], Shape]) -> Callable[[_Layer], tuple[Saves, ...]]:
    """Dropout on the CPU multiplies by a noise tensor of the input's dtype (``noise`` gives its shape from the
    input's), and saves it; with p 1, by a zero of 0 dims; with p 0 it returns its input and saves nothing."""

    def saves(layer: _Layer) -> tuple[Saves, ...]:
        p = layer.arguments["p"]
        if p == 0:
            return ()
        return (_made("mask", lambda layer: () if p == 1 else noise(layer.input)),)

    return saves


def _unless_p_zero(layer: _Layer) -> Out:
    return Out.SAME if layer.arguments["p"] == 0 else Out.NEW


def _features(batched_rank: int | None) -> Callable[[Shape], Shape]:
    """The noise of channel-wise dropout: one value per (sample, channel). A ``batched_rank`` input is (N, C, ...);
    any other rank is unbatched, (C, ...), and torch adds the batch dim; None: always (N, C, ...)."""

    def noise(shape: Shape) -> Shape:
        if batched_rank is not None and len(shape) != batched_rank:
            return (1, shape[0], *(1,) * (len(shape) - 1))
        return (shape[0], shape[1], *(1,) * (len(shape) - 2))

    return noise


def _two_dims(layer: _Layer) -> str | None:
    """Channel-wise dropout of (N, C, ...) in training: torch's feature dropout needs those two dims."""
    if len(layer.input) < 2 and 0 < layer.arguments["p"] < 1:
        return "channel-wise dropout in training mode needs an input of at least 2 dims, (N, C, ...)"
    return None


def _dropout_rule(noise: Callable[[Shape], Shape], refuses: Callable[[_Layer], str | None] | None = None) -> Rule:
    return Rule(saves=_mask(noise), in_place=_mask(noise), output=_unless_p_zero, refuses=refuses)


def _attention(run: _Pass, node: Node, layer: _Layer, x: _Tensor) -> _Tensor:
    """``nn.MultiheadAttention`` as self-attention, ``m(x, x, x, need_weights=False)[0]``, in training.

    A batched input is query, key and value at once: one projection saves it (a copy where batch_first makes it
    a transposed view that cannot be folded), and q, k and v are slices of one new tensor. An unbatched input is
    unsqueezed three times, which torch no longer sees as one tensor: three projections, three tensors. k and v
    are new tensors where add_bias_kv or add_zero_attn lengthen them. Without dropout, scaled_dot_product_attention
    runs the CPU flash kernel, which saves q, k, v, its output (which the output projection saves again) and its
    logsumexp (float32 for a half dtype); with dropout, the math kernel, which saves the scaled q and k, the
    softmax, its dropout mask, the dropped weights and v (all float32 for a half dtype, v as a float32 copy), and
    the output projection a new tensor.
    """
    args = layer.arguments
    embed, heads = args["embed_dim"], args["num_heads"]
    batched = len(layer.input) == 3
    first = args["batch_first"] and batched
    length, batch = (layer.input[1], layer.input[0]) if first else (layer.input[0], layer.input[1] if batched else 1)
    strides = x.strides or contiguous(x.shape)
    if first:  # query.transpose(1, 0): a view (S, N, E)
        query = _Tensor(x.storage, x.nbytes, (length, batch, embed), x.grad, (strides[1], strides[0], strides[2]))
    elif not batched:  # query.unsqueeze(1)
        query = _Tensor(x.storage, x.nbytes, (length, 1, embed), x.grad, (strides[0], strides[1] * embed, strides[1]))
    else:
        query = x
    keys = length + args["add_bias_kv"] + args["add_zero_attn"]
    if batched:  # one projection, then .unflatten(-1, (3, E))...contiguous(): q, k and v are its slices
        packed = {"in_features": embed, "out_features": 3 * embed, "bias": args["bias"]}
        run.layer(node, _Part("Linear", packed, query.shape, (length, batch, 3 * embed)), query)
        q = k = v = run.new((3, length, batch, embed), True)
    else:  # three projections of three views of x
        single = {"in_features": embed, "out_features": embed, "bias": args["bias"]}
        q, k, v = [run.layer(node, _Part("Linear", single, query.shape, query.shape), query) for _ in range(3)]
    if keys != length:  # torch.cat with bias_k and bias_v, then with zeros: new tensors
        k, v = run.new((keys, batch, embed), True), run.new((keys, batch, embed), True)
    half = run.dtype in _HALF
    if args["dropout"] == 0:  # the flash kernel
        for tensor, what in ((q, "q"), (k, "k"), (v, "v")):
            run.save(node, tensor, what)
        out = run.new((batch, heads, length, embed // heads), True)
        run.save(node, out, "attention output")
        lse = "float32" if half else None
        run.save(node, run.new((batch, heads, length), False, lse), "logsumexp")
        attended = out  # laid out as q, (S, N, H, hd): .permute(2, 0, 1, 3).contiguous() is no copy
    else:  # the math kernel: softmax(q k^T) with dropout, in float32 for a half dtype
        acc = "float32" if half else None
        weights = (batch, heads, length, keys)
        for shape, what in (((batch, heads, length, embed // heads), "q, scaled"),
                            ((batch, heads, embed // heads, keys), "k, transposed and scaled"),
                            (weights, "attention weights"),
                            (() if args["dropout"] == 1 else weights, "dropout mask"),
                            (weights, "attention weights, dropped")):  # fmt: skip
            run.save(node, run.new(shape, True, acc), what)
        run.save(node, run.new((keys, batch, embed), True, acc) if half else v, "v")
        attended = run.new((length * batch, embed), True)
    projection = {"in_features": embed, "out_features": embed, "bias": args["bias"]}
    out = run.layer(node, _Part("Linear", projection, attended.shape, attended.shape), attended)
    strides = _laid_out(layer.output, (embed, batch * embed, 1)) if first else None  # .transpose(1, 0) of (S, N, E)
    return _Tensor(out.storage, out.nbytes, layer.output, True, strides)


def _encoder_layer(run: _Pass, node: Node, layer: _Layer, x: _Tensor) -> _Tensor:
    """``nn.TransformerEncoderLayer`` in training: attention, dropout, LayerNorm, Linear, activation, Linear, with
    a residual around each half, as torch writes it (the norms first or after, by norm_first)."""
    args = layer.arguments
    embed, shape = args["d_model"], layer.input
    hidden = (*shape[:-1], args["dim_feedforward"])
    drop = {"p": args["dropout"], "inplace": False}
    norm = {"normalized_shape": embed, "eps": args["layer_norm_eps"], "elementwise_affine": True, "bias": args["bias"]}
    attention = {**LAYERS["MultiheadAttention"].arguments, "embed_dim": embed, "num_heads": args["nhead"],
                 "dropout": args["dropout"], "bias": args["bias"], "batch_first": args["batch_first"]}  # fmt: skip
    activation = {"relu": ("ReLU", {"inplace": False}), "gelu": ("GELU", {"approximate": "none"})}[args["activation"]]

    def part(name: str, arguments: dict[str, Any], tensor: _Tensor, out: Shape | None = None) -> _Tensor:
        return run.layer(node, _Part(name, arguments, tensor.shape, tensor.shape if out is None else out), tensor)

    def add(a: _Tensor, b: _Tensor) -> _Tensor:
        return run.join(node, "Add", [a, b])

    def self_attention(tensor: _Tensor) -> _Tensor:
        return part("Dropout", drop, part("MultiheadAttention", attention, tensor))

    def feed_forward(tensor: _Tensor) -> _Tensor:
        wide = part("Linear", {"in_features": embed, "out_features": hidden[-1], "bias": args["bias"]}, tensor, hidden)
        wide = part("Dropout", drop, part(*activation, wide))
        narrow = part("Linear", {"in_features": hidden[-1], "out_features": embed, "bias": args["bias"]}, wide, shape)
        return part("Dropout", drop, narrow)

    if args["norm_first"]:
        x = add(x, self_attention(part("LayerNorm", norm, x)))
        return add(x, feed_forward(part("LayerNorm", norm, x)))
    x = part("LayerNorm", norm, add(x, self_attention(x)))
    return part("LayerNorm", norm, add(x, feed_forward(x)))


def _joined_by(how: str) -> Callable[[Node], str | None]:
    return lambda node: how


def _part_strides(layer: _Layer, strides: Strides) -> Strides:
    """A part of ``x.chunk``, ``x.split`` or ``x.tensor_split`` is a slice (the input's strides); of ``x.unbind``,
    a select (the dim dropped)."""
    if layer.arguments["of"] != "unbind":
        return strides
    dim = wrap_dim(layer.arguments["dim"], len(layer.input))
    return (*strides[:dim], *strides[dim + 1 :])


def _pad(layer: _Layer) -> tuple[Saves, ...]:
    """``F.pad``: as the padding layers of its mode, reflection and replication keep their input."""
    return (INPUT,) if layer.arguments["mode"] in ("reflect", "replicate") else ()


def _keepdim(layer: _Layer) -> Shape:
    """The input's shape with the normalised dim kept as 1: one norm per vector."""
    dim = wrap_dim(layer.arguments["dim"], len(layer.input))
    return (*layer.input[:dim], 1, *layer.input[dim + 1 :])


NORMALIZE = (INPUT, _made("norm", _keepdim), _made("norm, clamped", _keepdim))
"""``F.normalize``: ``x / x.norm(p, dim, keepdim=True).clamp_min(eps).expand_as(x)``. The norm keeps its input and
its result, clamp_min its input (that result again) and the division both sides: x, the norm and the clamped norm
(whose expanded view the division keeps), for every p."""


def _divided(layer: _Layer, strides: Strides) -> Strides:
    """``x / norm`` is laid out as TensorIterator lays out x and the expanded norm out."""
    norm = _keepdim(layer)
    return elementwise_strides(layer.output, [(layer.input, strides), (norm, contiguous(norm))])


def _frozen_scale(layer: _Layer) -> Shape:
    return (1, layer.arguments["num_features"], 1, 1)


def _frozen_strides(layer: _Layer, strides: Strides) -> Strides:
    """``x * scale + shift``: two elementwise results, each laid out by TensorIterator."""
    scale = _frozen_scale(layer)
    product = elementwise_strides(layer.output, [(layer.input, strides), (scale, contiguous(scale))])
    return elementwise_strides(layer.output, [(layer.output, product), (scale, contiguous(scale))])


def _noise(layer: _Layer) -> Shape:
    """StochasticDepth's noise: one value per row (mode row: the first dim), or one for the whole batch."""
    rank = len(layer.input)
    return (layer.input[0], *(1,) * (rank - 1)) if layer.arguments["mode"] == "row" else (1,) * rank


def _stochastic_depth(layer: _Layer) -> tuple[Saves, ...]:
    """In training, with p above 0, ``x * noise`` (its Bernoulli noise divided by 1 - p): the product keeps the noise
    for x's gradient, a tensor of the input's dtype, whatever values it drew. With p 0 it returns x itself."""
    return () if layer.arguments["p"] == 0 else (_made("noise", _noise),)


def _noise_strides(layer: _Layer, strides: Strides) -> Strides:
    if layer.arguments["p"] == 0:  # x itself
        return strides
    noise = _noise(layer)
    return elementwise_strides(layer.output, [(layer.input, strides), (noise, contiguous(noise))])


def _rows(layer: _Layer) -> str | None:
    """StochasticDepth by rows reads the batch size, ``x.shape[0]``, in training only."""
    if layer.arguments["mode"] == "row" and layer.arguments["p"] != 0 and not layer.input:
        return "StochasticDepth by rows in training mode needs an input of at least 1 dim, the rows"
    return None


def _parameter(run: _Pass, node: Node) -> _Tensor:
    """A learned tensor: it requires grad, and the model holds it."""
    return run.held(run.new(node.output, True))


def _buffer(run: _Pass, node: Node) -> _Tensor:
    """A registered tensor: no grad, and the model holds it (an index kind as int64; a float one in the model's
    dtype, to which ``.to(dtype)`` converts it)."""
    dtype = BUFFERS[node.arguments["kind"]](node.arguments).dtype
    return run.held(run.new(node.output, False, None if dtype.startswith("float") else dtype))


def _constant(run: _Pass, node: Node) -> _Tensor:
    """A tensor computed in forward from sizes alone (Swin's shifted window mask, in the model's dtype; MViT's
    relative distances, int64): no grad, and the model does not hold it, so it counts where something saves it."""
    dtype = CONSTANTS[node.arguments["kind"]](node.arguments).dtype
    return run.new(node.output, False, None if dtype.startswith("float") else dtype)


def _rules() -> dict[str, Rule]:
    """The rule of every layer type, block and join, read off torch 2 on the CPU (see the module's docstring)."""
    rules: dict[str, Rule] = {}
    keeps_input = Rule(saves=(INPUT,))
    for d in (1, 2, 3):
        rules[f"Conv{d}d"] = rules[f"ConvTranspose{d}d"] = Rule(saves=_conv, learned=True)
        rules[f"MaxPool{d}d"] = rules[f"AdaptiveMaxPool{d}d"] = Rule(saves=(INPUT, INDICES))
        rules[f"AvgPool{d}d"] = keeps_input
        rules[f"LPPool{d}d"] = Rule(saves=LP_POOL)
        rules[f"AdaptiveAvgPool{d}d"] = Rule(saves=_adaptive_avg)
        rules[f"BatchNorm{d}d"] = Rule(saves=_batch_norm, learned="affine", refuses=_batch_statistics)
        rules[f"InstanceNorm{d}d"] = Rule(saves=_instance_norm, learned="affine", refuses=_one_value_per_instance)
        for pad in ("Zero", "Constant", "Circular"):  # constant_pad_nd and circular padding save only sizes
            rules[f"{pad}Pad{d}d"] = Rule()
        rules[f"ReflectionPad{d}d"] = rules[f"ReplicationPad{d}d"] = keeps_input
    rules["Dropout1d"] = _dropout_rule(_features(3))
    rules["Dropout2d"] = rules["FeatureAlphaDropout"] = _dropout_rule(_features(None), _two_dims)
    rules["Dropout3d"] = _dropout_rule(_features(5))
    rules["Dropout"] = rules["AlphaDropout"] = _dropout_rule(lambda shape: shape)
    rules["Linear"] = Rule(saves=(Saves("input", copy=Copy.ROWS),), learned=True)
    rules["Flatten"] = Rule(output=Out.RESHAPE)
    rules["Unflatten"] = Rule(output=Out.VIEW)
    rules["Identity"] = Rule(output=Out.SAME)
    rules["GroupNorm"] = Rule(saves=_group_norm, learned="affine")
    rules["LayerNorm"] = Rule(saves=_layer_norm, learned="elementwise_affine")
    rules["Upsample"] = Rule(saves=_upsample)
    rules["PixelShuffle"] = rules["PixelUnshuffle"] = Rule()
    rules["PReLU"] = Rule(saves=(INPUT,), learned=True)
    # activations: the output (their gradient is a function of it), or the input; in place, the output (now in
    # the input's storage), or a copy of the input taken before it is overwritten
    for name in ("Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Softmin", "Softmax2d"):
        rules[name] = Rule(saves=(OUTPUT,))
    rules["ReLU"] = Rule(saves=(OUTPUT,), in_place=(OUTPUT,))
    for name in ("LeakyReLU", "ELU", "CELU", "SELU"):
        rules[name] = Rule(saves=(INPUT,), in_place=(OUTPUT,))
    for name in ("ReLU6", "Hardtanh", "Threshold", "SiLU", "Mish", "Hardswish", "Hardsigmoid"):
        rules[name] = Rule(saves=(INPUT,), in_place=(CLONE,))
    for name in ("GELU", "Softplus", "Softshrink", "Hardshrink", "GLU"):
        rules[name] = keeps_input
    noise = _made("noise", _input_shape)  # training draws a slope per element
    rules["RReLU"] = Rule(saves=(INPUT, noise), in_place=(OUTPUT, noise))
    rules["Softsign"] = Rule(saves=(INPUT, _made("1 + |x|", _input_shape)))  # x / (1 + |x|)
    rules["Tanhshrink"] = Rule(saves=(_made("tanh", _input_shape),))  # x - tanh(x)
    rules["LogSigmoid"] = Rule(saves=(INPUT, _made("buffer", _input_shape)))
    # tensor methods: views (expand too: its backward sums to a size), reshapes (a copy where no view can be made)
    # and a mean or sum (which save only sizes)
    for name in ("permute", "transpose", "view", "squeeze", "unsqueeze", "select", "expand"):
        rules[name] = Rule(output=Out.VIEW)
    rules["reshape"] = rules["flatten"] = Rule(output=Out.RESHAPE)
    rules["mean"] = rules["sum"] = rules["repeat"] = Rule()  # repeat's backward sums the tiles: it needs sizes only
    rules["amax"] = Rule(saves=(INPUT, OUTPUT))  # the gradient goes to the elements equal to the largest
    rules["narrow"] = rules["Permute"] = Rule(output=Out.VIEW)
    rules["contiguous"] = Rule(output=Out.CONTIGUOUS)  # a copy saves nothing
    # elementwise methods: exp and sigmoid keep their output, clamp its input; by a number, mul, add, sub and div
    # keep nothing (the number is no tensor); roll writes a new contiguous tensor and keeps nothing
    rules["exp"] = rules["sigmoid"] = Rule(saves=(OUTPUT,))
    rules["clamp"] = keeps_input
    for name in ("mul", "add", "sub", "div", "roll"):
        rules[name] = Rule()
    rules["pad"] = Rule(saves=_pad)
    rules["normalize"] = Rule(saves=NORMALIZE, restride=_divided)
    # torchvision's modules (torch_code.HELPERS): x * scale + shift of buffers keeps the scale, a new (1, C, 1, 1)
    # tensor; StochasticDepth's x * noise keeps the noise
    rules["FrozenBatchNorm2d"] = Rule(saves=(_made("scale", _frozen_scale),), restride=_frozen_strides)
    rules["StochasticDepth"] = Rule(saves=_stochastic_depth, output=_unless_p_zero, restride=_noise_strides,
                                    refuses=_rows)  # fmt: skip
    # convcalc's modules (torch_code.HELPERS): torch.cat with a token, x + embedding, gamma * x
    rules["ClassToken"] = rules["PositionEmbedding"] = Rule(learned=True)
    rules["LayerScale"] = Rule(saves=(INPUT,), learned=True)
    rules["MultiheadAttention"] = Rule(composite=_attention, learned=True)
    rules["TransformerEncoderLayer"] = Rule(composite=_encoder_layer, learned=True)
    # blocks and joins: + and torch.cat save nothing; * saves its factors; matmul what its mm or bmm saves; x[i]
    # its indices; the steps that name, check or pass a tensor on, and a split (which goes on from its first
    # part), nothing
    for name in ("Save", "From", "Repeat", "Sequential", "Dims", "Check", "Output", *SPLITS):
        rules[name] = Rule(output=Out.SAME)
    for name in ("Add", "Mul", "Concat", "matmul", "index"):
        rules[name] = Rule(join=_joined_by(name))
    rules["Part"] = Rule(output=Out.VIEW, restride=_part_strides)
    rules["Parameter"] = Rule(start=_parameter)
    rules["Buffer"] = Rule(start=_buffer)
    rules["Constant"] = Rule(start=_constant)
    rules["Residual"] = Rule(join=_joined_by("Add"))
    rules["Parallel"] = Rule(join=lambda node: node.arguments["join"])
    return rules


RULES: dict[str, Rule] = _rules()
"""Every layer type's, block's and join's rule, by name."""


def saved_bytes(result: StackResult, dtype: str = "float32") -> Saved:
    """The tensors one forward pass in training mode keeps for backward (see the module's docstring): the total and
    each node's bytes, for the nodes that ran.

    Raises SavedBytesError for a dtype that does not train, a layer type without a rule, or a layer that torch's
    training-mode forward refuses (channel-wise dropout on a 1-D input).
    """
    if dtype not in FLOATING:
        raise SavedBytesError(f"training needs a floating-point dtype: {', '.join(FLOATING)}; got {dtype!r}")
    run = _Pass(dtype)
    network_input = run.new(result.input, False)
    outputs: dict[int, _Tensor] = {}
    subtotals: dict[int, int] = {}
    for node in result.walk(Order.EVALUATION):
        inputs = [network_input if source is None else outputs[id(source)] for source in node.inputs]
        rule = _rule(node.type)
        if rule.start is not None:
            outputs[id(node)] = rule.start(run, node)
        elif rule.join is not None:
            how = rule.join(node)
            outputs[id(node)] = inputs[0] if how is None else run.join(node, how, inputs)
        else:
            outputs[id(node)] = run.layer(node, node, inputs[0])
        subtotals[node.id] = run.own.get(node.id, 0) + sum(subtotals[child.id] for child in node.children)
    return Saved(dtype=dtype, total=sum(run.own.values()), own=run.own, subtotals=subtotals,
                 tensors=tuple(run.tensors))  # fmt: skip
