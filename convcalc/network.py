"""A whole network, layer by layer: shapes, parameters, MACs and receptive fields.

:func:`run_stack` pushes an input shape through checked layer specs
(:func:`convcalc.spec.resolve`) and returns one :class:`Node` per layer, block
and join: the tree every output walks. It does not raise for a layer that
cannot take its input: the result keeps every node up to that layer and the
error, which names the layer by position, type and input shape.

>>> from convcalc.spec import resolve
>>> specs = resolve([("Conv2d", {"out_channels": 96, "kernel_size": 11, "stride": 4}, None),
...                  ("MaxPool2d", {"kernel_size": 3, "stride": 2}, None)])
>>> result = run_stack((1, 3, 227, 227), specs)
>>> [node.output for node in result.rows]
[(1, 96, 55, 55), (1, 96, 27, 27)]
>>> result.rows[-1].receptive_field, [str(jump) for jump in result.rows[-1].jump]
((19, 19), ['8', '8'])
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convcalc import tensor_ops
from convcalc.catalog import IN_PLACE_NO_OVERLAP, LAYERS, Window, overlaps
from convcalc.display import Shown
from convcalc.errors import InvalidLayerError, StackError, StackSpecError
from convcalc.expr import ExprError, is_expression, parse
from convcalc.schema import INT64, REQUIRED, check_arguments
from convcalc.spec import BLOCKS, JOINS, SPLITS, STARTS, LayerSpec, resolve
from convcalc.step import Step
from convcalc.tensors import BUFFERS, CONSTANTS

if TYPE_CHECKING:
    from fractions import Fraction

__all__ = [
    "DTYPES",
    "MAX_RANK",
    "Node",
    "Order",
    "OutOfBudget",
    "Row",
    "StackError",
    "StackResult",
    "StackSpecError",
    "full_arguments",
    "resolve",
    "run_stack",
]

Shape = tuple[int, ...]
Path = tuple[int | str, ...]
"""Where a node sits: its position, and inside a block the branch (or copy) and position there: ``(3, "body", 2)``
is labelled ``3.body.2``."""
Inferred = dict[Path, dict[str, Any]]
"""Arguments inferred from the incoming shape, by the place of their layer."""

DTYPES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
"""Bytes per element of the dtypes ``--dtype`` takes."""

MAX_RANK = 64
"""Most dimensions a tensor may have here (torch has no limit of its own; every layer's work grows with it)."""

_ONE = 1


class Order(enum.Enum):
    """The two orders a stack's nodes are walked in."""

    TABLE = "table"
    """A block before the nodes in it, as tables and JSON list them."""
    EVALUATION = "evaluation"
    """A block after the nodes in it: the order in which torch computes them."""


@dataclass(slots=True, eq=False, kw_only=True)
class Node:
    """One layer, block or join of a stack that ran: what it is, where it sits, what it reads and what it makes."""

    id: int
    """1-based, in the order a table lists the nodes (a block before its nodes)."""
    index: int
    """1-based position in the stack (of the top-level block, for a node inside one)."""
    type: str
    arguments: dict[str, Any]
    """A layer's arguments: given, inferred and defaulted, in torch's order (a block's or join's: as given)."""
    given: tuple[str, ...]
    """Which arguments the file gave."""
    input: Shape
    """The shape of the tensor it takes (the first, for a join)."""
    output: Shape
    params: int = 0
    buffers: int = 0
    """Non-trainable state (e.g. BatchNorm's running statistics), not counted in params."""
    macs: int = 0
    receptive_field: tuple[int | None, ...] = ()
    """Per spatial axis of the stack's input: input pixels one output unit sees; None for the whole input.

    Exact (Araujo et al., Distill 2019) while every stride is whole; after a
    transposed conv or an upsampling, the widest field any unit can have (an
    upper bound: units of different phases see less)."""
    jump: tuple[Fraction | int | None, ...] = ()
    """Per spatial axis: input pixels between neighbouring output units (the effective stride; an int where whole)."""
    uncovered: tuple[int | None, ...] = ()
    """Per spatial axis of a conv or pool: input pixels at the end that no window reads (None: not worked out)."""
    unread: tuple[int | None, ...] = ()
    """Per spatial axis of a conv or pool: input pixels that no window reads, at the ends and inside."""
    label: str = ""
    """For people only: ``3``, ``3.body.2`` inside a block, ``4.2.1`` in a Repeat's second copy."""
    depth: int = 0
    """How deep inside blocks the node sits (0 at the top level)."""
    branch: str | None = None
    """The branch of the enclosing block (``body``, ``shortcut``, or the copy number of a Repeat)."""
    line: int | None = None
    """The line of the stack file that wrote it."""
    parent: Node | None = None
    """The block it sits in."""
    children: list[Node] = field(default_factory=list)
    """A block's nodes, in order."""
    inputs: tuple[Node | None, ...] = ()
    """The nodes whose outputs it takes (None: the stack's input; none at all for a tensor made from nothing)."""
    module: str | None = None
    """Where the layer sits in the model it came from (``layer1.0.conv1``), where the file says so."""
    written: dict[str, Any] | None = None
    """The arguments the file wrote as size expressions, as written (``arguments`` holds what they worked out to
    here): ``--emit torch`` writes them as code that follows each input."""

    def __repr__(self) -> str:
        """Short, and never recursive: the node's place, type and shapes; its parent, children and inputs by id only.

        >>> Node(id=3, index=2, type="Conv2d", arguments={}, given=(), input=(1, 3, 8, 8), output=(1, 4, 6, 6),
        ...      params=112, label="2")
        <Node #3 Conv2d (1, 3, 8, 8) -> (1, 4, 6, 6), 112 params, label '2'>
        """
        counts = f", {self.params:,} params" if self.params else ""
        inside = f", {len(self.children)} inside" if self.children else ""
        return (f"<Node #{self.id} {self.type} {_text(self.input)} -> {_text(self.output)}{counts}{inside}, "
                f"label {self.label!r}>")  # fmt: skip


Row = Node
"""The name earlier versions gave a node."""


@dataclass(frozen=True, kw_only=True)
class StackResult(Shown):
    """Every node that ran, in the order a table lists them (a block before its nodes), and the first error."""

    input: Shape
    output: Shape
    """The stack's output shape; where a layer fails, the shape that reached it."""
    rows: tuple[Node, ...]
    error: StackError | None = None
    outputs: dict[str, Node] = field(default_factory=dict, repr=False)
    """The tensors ``Output`` steps named, in order (none: the stack's one output is its last tensor)."""
    inferred: Inferred = field(default_factory=dict, repr=False)
    """The arguments each layer inferred from the shape that reached it, by its place in the stack: the network as
    its first run built it. ``run_stack(other, specs, inferred=result.inferred)`` runs another input through it."""

    def __repr__(self) -> str:
        """One line: the shapes, how many nodes, the totals, and the error where there is one."""
        error = "" if self.error is None else f", error at layer {self.error.label}"
        return (f"<StackResult {_text(self.input)} -> {_text(self.output)}, {len(self.rows):,} nodes, "
                f"{self.total_params:,} params, {self.total_macs:,} MACs{error}>")  # fmt: skip

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.rows

    def walk(self, order: Order = Order.TABLE) -> Iterator[Node]:
        """Every node once: as a table lists them (a block before its nodes), or in the order torch computes them
        (a block after its nodes, once its branches are done)."""
        if order is Order.TABLE:
            yield from self.rows
            return

        def after(node: Node) -> Iterator[Node]:
            for child in node.children:
                yield from after(child)
            yield node

        for node in self.roots:
            yield from after(node)

    @property
    def roots(self) -> list[Node]:
        """The nodes in no block, in order. A block whose join failed is no node, but the nodes in it that ran
        are: they are roots too."""
        present = {id(node) for node in self.rows}
        return [node for node in self.rows if node.parent is None or id(node.parent) not in present]

    @property
    def total_params(self) -> int:
        return sum(node.params for node in self.rows)

    @property
    def total_buffers(self) -> int:
        return sum(node.buffers for node in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(node.macs for node in self.rows)

    def parameter_bytes(self, dtype: str = "float32") -> int:
        """Memory of the parameters and buffers, every element in ``dtype``."""
        return (self.total_params + self.total_buffers) * DTYPES[dtype]

    def activation_bytes(self, dtype: str = "float32") -> int:
        """Memory of every tensor one forward pass makes, the input not included, in ``dtype``."""
        return self.activation_bytes_of(DTYPES[dtype])

    def activation_bytes_of(self, element_bytes: int) -> int:
        """Memory of every tensor one forward pass makes, the input not included, ``element_bytes`` an element.

        A Save (which names a tensor), a From, a Repeat (whose output is its last
        layer's) and a tensor method that makes a view make no new tensor.
        """
        return sum(math.prod(node.output) for node in self.rows if _makes_tensor(node)) * element_bytes


_VIEWS = frozenset({"permute", "transpose", "view", "squeeze", "unsqueeze", "select", "narrow", "Part"})
"""Tensor methods whose output is always a view of their input: no new memory."""
_SAME_VALUES = frozenset({"Save", "From", "view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze",
                          "unsqueeze", "narrow", "select"})  # fmt: skip
"""Steps that keep a tensor's values, or some of them (only their places change): an index tensor stays one through
them, its largest value still a bound (Swin3D indexes with ``index[:volume, :volume].flatten()``)."""
_PASSES = frozenset({"Save", "Repeat", "Sequential", "From", "Output", "Dims", "Check", "chunk", "split",
                     "tensor_split", "unbind"})  # fmt: skip
"""Steps whose output is a tensor another node made: no new memory."""


def _makes_tensor(node: Node) -> bool:
    return node.type not in _PASSES and node.type not in _VIEWS


class OutOfBudget(Exception):
    """A run was given at most so many layer evaluations, and needed more."""


@dataclass(frozen=True, slots=True)
class _State:
    """What convcalc follows of a tensor besides its shape (immutable: a layer that changes none of it passes the
    same object on): the receptive field and jump of each spatial axis of the stack's input, the strides that led
    there, the dim that carries each of those axes now, and the tensor's strides (None: contiguous)."""

    field: tuple[int | None, ...]
    jump: tuple[Fraction | int | None, ...]
    chains: tuple[tuple[Fraction | int, ...], ...]
    dims: tuple[int | None, ...]
    strides: tuple[int, ...] | None = None
    blank: bool = False
    """A tensor made from nothing (a Parameter, Buffer or Constant, and what is computed from them alone): it sees
    no input pixel, so joining it leaves the other side's field as it is."""

    def whole(self, axes: Sequence[int] | None = None) -> _State:
        """Each axis (or the ``axes`` given) now sees the whole input."""
        lost = range(len(self.field)) if axes is None else axes
        fields, jumps = list(self.field), list(self.jump)
        for axis in lost:
            fields[axis] = jumps[axis] = None
        return _State(tuple(fields), tuple(jumps), self.chains, self.dims, self.strides, self.blank)

    def lost(self) -> _State:
        """The tensor's axes were merged, split or broadcast to a new rank: no input axis is followed any more."""
        return _State(self.field, self.jump, self.chains, (None,) * len(self.dims), None, self.blank).whole()

    def laid_out(self, strides: tuple[int, ...] | None) -> _State:
        """The same tensor with these strides (None: contiguous)."""
        if strides == self.strides:
            return self
        return _State(self.field, self.jump, self.chains, self.dims, strides, self.blank)

    def widest(self, other: _State) -> _State:
        """Join two tensors: each axis sees the larger field of the two (a blank tensor's none)."""
        if other.blank or self.blank:
            kept = self if other.blank else other
            return _State(kept.field, kept.jump, kept.chains, kept.dims, None, self.blank and other.blank)
        fields = tuple(None if a is None or b is None else max(a, b) for a, b in zip(self.field, other.field))
        jumps = tuple(None if b is None else a for a, b in zip(self.jump, other.jump))
        joined = _State(fields, jumps, self.chains, self.dims)
        return joined if self.dims == other.dims else joined.whole()

    @classmethod
    def made(cls, rank: int) -> _State:
        """The state of a tensor made from nothing, for a stack whose input has ``rank`` dims."""
        return cls((1,) * rank, (_ONE,) * rank, ((),) * rank, (None,) * rank, None, True)

    def through(self, windows: Sequence[tuple[int, Window]]) -> _State:
        """The field after a layer with these windows, each on an axis."""
        fields, jumps, chains = list(self.field), list(self.jump), list(self.chains)
        for axis, window in windows:
            current, distance = fields[axis], jumps[axis]
            if current is None or distance is None:
                continue
            fields[axis] = current + _widest(chains[axis], window.extent - 1)
            jump = distance * window.stride
            jumps[axis] = int(jump) if type(jump) is not int and jump.denominator == 1 else jump  # a Fraction
            chains[axis] = _chain(chains[axis], window.stride)
        return _State(tuple(fields), tuple(jumps), tuple(chains), self.dims, None, self.blank)

    def after(self, step: Step, shape: Shape) -> _State:
        """The state after a layer's step on a tensor of ``shape``: receptive fields, where the axes went, strides."""
        state = self
        if step.whole:
            state = state.whole()
        elif step.windows is not None:  # windows act on the trailing dims; an input axis elsewhere keeps its field
            windows, merged = [], []
            for window, dim in zip(step.windows, range(len(shape) - len(step.windows), len(shape))):
                axes = [axis for axis, where in enumerate(state.dims) if where == dim]
                if len(axes) == 1:
                    windows.append((axes[0], window))
                else:  # a window over a dim that carries several axes merged: no field per axis any more
                    merged += axes
            state = state.through(windows).whole(merged)
        if step.mixes:
            state = state.whole([axis for axis, dim in enumerate(state.dims) if dim in step.mixes])
        if step.dims is not None:
            moved = tuple(None if dim is None else step.dims[dim] for dim in state.dims)
            state = _State(state.field, state.jump, state.chains, moved, None, state.blank).whole(
                [axis for axis, dim in enumerate(moved) if dim is None]
            )
        elif len(step.output) != len(shape):
            state = state.lost()
        strides: tuple[int, ...] | None = None
        if step.restride is not None:
            strides = step.restride(self.strides or tensor_ops.contiguous(shape))
        elif step.keeps_layout and (self.strides is not None or step.output != shape):
            broadcast = len(shape) <= len(step.output) and all(
                size in (1, out) for size, out in zip(reversed(shape), reversed(step.output)))  # fmt: skip
            operand = shape if broadcast else step.output  # a learned tensor can broadcast the input up (x + pos)
            strides = tensor_ops.elementwise_strides(step.output, [(operand, self.strides or
                                                                    tensor_ops.contiguous(shape))])  # fmt: skip
        if strides is not None and strides == tensor_ops.contiguous(step.output):
            strides = None
        if state is self and strides is self.strides:
            return self
        return _State(state.field, state.jump, state.chains, state.dims, strides, state.blank)


class _Stop(Exception):
    def __init__(self, error: StackError) -> None:
        self.error = error


class _Run:
    """One run of specs, block by block: appends nodes; raises _Stop at the first layer that fails."""

    def __init__(self, input_shape: Shape, budget: int | None, cache: dict[Any, Any], fixed: Inferred | None) -> None:
        self.spatial: int | None = None
        """How many spatial axes the first layer with windows (a conv, pool or upsampling) has."""
        self.rank = len(input_shape)
        self.bound: dict[str, int] = {}
        """The sizes ``Dims`` steps have named, for the size expressions after them."""
        self.outputs: dict[str, Node] = {}
        """The tensors ``Output`` steps have named, in order."""
        self.largest: dict[int, int] = {}
        """The largest value of each integer tensor, by its node's id: a Buffer of an index kind, and what
        reshapes it (view, permute...) without changing its values. What indexing with it reads."""
        self.nodes: list[Node] = []
        self.saved: dict[str, tuple[Node | None, Shape, _State]] = {}
        self.budget = budget
        self.cache = cache
        self.fixed = fixed
        """The arguments a first run inferred, by place: where given, no argument is inferred from this run's shapes."""
        self.inferred: Inferred = {}

    def run(self, specs: Sequence[LayerSpec], source: Node | None, shape: Shape, state: _State, path: Path,
            parent: Node | None, top: int | None, branch: str | None) -> tuple[Node | None, Shape, _State]:  # fmt: skip
        """Run ``specs`` on the tensor ``source`` makes (of ``shape``); the last node, its shape and state. ``path``
        is where the specs sit: ``(3, "body")`` for the body of the stack's third item."""
        depth = 0 if parent is None else parent.depth + 1
        for position, spec in enumerate(specs, start=1):
            place = (*path, position)
            label = ".".join(map(str, place))
            index = top if top is not None else position
            if self.budget is not None:
                self.budget -= 1
                if self.budget < 0:
                    raise OutOfBudget
            node = Node(id=len(self.nodes) + 1, index=index, type=spec.type, arguments=spec.arguments,
                        given=tuple(spec.arguments),
                        input=shape, output=shape, label=label, depth=depth, branch=branch, line=spec.line,
                        parent=parent, inputs=(source,), module=spec.module)  # fmt: skip
            if parent is not None:
                parent.children.append(node)
            self.nodes.append(node)
            try:
                if spec.type in BLOCKS:
                    shape, state = self.block(spec, node, place, shape, state)
                elif spec.type in JOINS:
                    shape, state = self.join(spec, node, place, shape, state)
                else:
                    shape, state = self.layer(spec, node, place, shape, state)
                if len(shape) > MAX_RANK:
                    raise InvalidLayerError(f"the output has {len(shape)} dimensions; convcalc follows at most "
                                            f"{MAX_RANK}")  # fmt: skip
                for size in shape:
                    if size >= INT64:
                        raise InvalidLayerError(f"the output {_text(shape)} has a size beyond torch's 64-bit "
                                                f"integers (at most {INT64 - 1})")  # fmt: skip
            except _Stop:  # a block that did not finish is no node; the nodes in it that ran stay
                self._drop(node)
                raise
            except InvalidLayerError as error:
                self._drop(node)
                message = f"layer {label} ({spec.type}) on input {_text(node.input)}: {error}"
                stop = StackError(message, index=index, layer=spec.type, input_shape=node.input, label=label,
                                  line=spec.line, node=node)  # fmt: skip
                raise _Stop(stop) from None
            node.output = shape
            node.receptive_field, node.jump = state.field, state.jump
            if spec.type in _SAME_VALUES and node.inputs and id(node.inputs[0]) in self.largest:
                self.largest[id(node)] = self.largest[id(node.inputs[0])]
            source = node
        return source, shape, state

    def _drop(self, node: Node) -> None:
        self.nodes.remove(node)
        if node.parent is not None:
            node.parent.children.remove(node)

    def block(self, spec: LayerSpec, node: Node, place: Path, shape: Shape, state: _State) -> tuple[Shape, _State]:
        source = node.inputs[0]
        if spec.type == "Repeat":
            out, result = shape, state
            for copy in range(1, spec.arguments["times"] + 1):
                source, out, result = self.run(spec.blocks["layers"], source, out, result, (*place, copy), node,
                                               node.index, str(copy))  # fmt: skip
            node.inputs = (source,)
            return out, result
        if spec.type == "Sequential":
            source, out, result = self.run(spec.blocks["layers"], source, shape, state, place, node, node.index, None)
            node.inputs = (source,)
            return out, result
        ends = [
            self.run(branch, source, shape, state, (*place, name), node, node.index, name)
            for name, branch in spec.blocks.items()
        ]
        if spec.type == "Residual":
            if "shortcut" not in spec.blocks:
                ends.append((source, shape, state))
            names = ["the body", "the shortcut"]
            how = "Add"
        else:
            names = [f"branch {position}" for position in range(1, len(ends) + 1)]
            how = spec.arguments["join"]
        node.inputs = tuple(end for end, _, _ in ends)
        shapes = [(name, end_shape, "") for name, (_, end_shape, _) in zip(names, ends)]
        out = _joined(how, shapes, spec.arguments.get("dim", 1), crop=False)
        joined = ends[0][2]
        for _, _, other in ends[1:]:
            joined = joined.widest(other)
        if not all(len(end) == len(out) for _, end, _ in ends):
            joined = joined.lost()
        return out, joined.laid_out(_join_strides(how, [(end_shape, end_state) for _, end_shape, end_state in ends]))

    def sizes(self, spec: LayerSpec, node: Node, place: Path, follows: bool) -> dict[str, Any]:
        """A step's arguments with its size expressions worked out: from the sizes named so far where they
        ``follow`` each input, else once, when the network is built (a module's constructor arguments, a learned
        tensor's shape), and from there on as built."""
        if not spec.expressions:
            return spec.arguments
        if not follows and self.fixed is not None:
            known = self.fixed.get(place)
            if known is None or not all(name in known for name in spec.expressions):
                raise InvalidLayerError("its sizes were worked out from the stack's own input, which does not reach "
                                        "this layer (it fails earlier): give an input that runs")  # fmt: skip
            worked = {name: known[name] for name in spec.expressions}
        else:
            worked = {}
            for name in spec.expressions:
                try:
                    worked[name] = _worked(spec.arguments[name], self.bound)
                except InvalidLayerError as error:  # name the argument: `out_channels: four` is a typo, or a size
                    raise InvalidLayerError(f"{name} {error}") from None
            if not follows:
                self.inferred.setdefault(place, {}).update(worked)
        node.written = {name: spec.arguments[name] for name in spec.expressions}
        arguments = {**spec.arguments, **worked}
        declared = {arg.name: arg for arg in LAYERS[spec.type].args} if spec.type in LAYERS else {
            arg.name: arg for arg in JOINS[spec.type]}  # fmt: skip
        wrong = check_arguments([declared[name] for name in spec.expressions], arguments)
        if wrong:
            raise InvalidLayerError(f"{wrong[0]} {wrong[1]} (worked out from {spec.arguments[wrong[0]]!r})")
        kind = LAYERS.get(spec.type)
        if kind is not None and kind.check is not None:
            problem = kind.check({**kind.arguments, **arguments})
            if problem:
                raise InvalidLayerError(problem)
        return arguments

    def join(self, spec: LayerSpec, node: Node, place: Path, shape: Shape, state: _State) -> tuple[Shape, _State]:
        if spec.type in STARTS:
            return self.make(spec, node, place)
        if spec.type in SPLITS:
            return self.split(spec, node, place, shape, state)
        if spec.type == "Save":
            self.saved[spec.arguments["name"]] = (node, shape, state)
            return shape, state
        if spec.type == "Dims":
            names = spec.arguments["names"]
            names = [names] if isinstance(names, str) else names
            if len(names) != len(shape):
                raise InvalidLayerError(f"Dims names {len(names)} sizes, but the tensor {_text(shape)} has "
                                        f"{len(shape)}: name each dim (_ skips one)")  # fmt: skip
            for name, size in zip(names, shape):
                if name != "_":
                    self.bound[name] = size
            return shape, state
        if spec.type == "Check":
            condition = spec.arguments["condition"]
            if not _worked(condition, self.bound):
                message = spec.arguments["message"]
                raise InvalidLayerError(f"the check {condition!r} fails here{': ' if message else ''}{message}")
            return shape, state
        if spec.type == "Output":
            name = spec.arguments["name"]
            if name in self.outputs:
                raise InvalidLayerError(f"the output {name!r} is named twice: give each output a name of its own")
            self.outputs[name] = node
            self.saved.setdefault(name, (node, shape, state))
            return shape, state
        given = spec.arguments["name" if spec.type == "From" else "with"]
        names = given if isinstance(given, list) else [given]
        others = []
        for name in names:
            if name not in self.saved:
                known = ", ".join(map(repr, self.saved)) or "none yet"
                raise InvalidLayerError(
                    f"no tensor was saved as {name!r} before this layer{_closest_name(name, self.saved)} "
                    f"(saved: {known})"
                )
            others.append(self.saved[name])
        if spec.type == "From":
            other_node, other, other_state = others[0]
            node.inputs = (other_node,)
            node.input = other
            return other, other_state
        node.inputs = (*node.inputs, *(other_node for other_node, _, _ in others))
        if spec.type in ("matmul", "index"):
            (other_node, other, other_state), name = others[0], names[0]
            if spec.type == "matmul":
                out, node.macs = tensor_ops.matmul(shape, other)
                joined = state.widest(other_state).lost()  # every output unit reads a row and a column whole
            else:
                largest = self.largest.get(id(other_node))
                if largest is None:
                    raise InvalidLayerError(f"index needs an integer tensor, and {name!r} is none: index with a "
                                            "Buffer of an index kind (relative_position_index), or a view of "
                                            "one")  # fmt: skip
                out = tensor_ops.index(shape, other, largest)
                joined = state.lost()
            return out, joined.laid_out(None)
        shapes = [("the input", shape, "")]
        shapes += [(repr(name), other, f" (saved at layer {o.label if o is not None else 'input'})")
                   for name, (o, other, _) in zip(names, others)]  # fmt: skip
        arguments = self.sizes(spec, node, place, follows=True)  # a dim may be an expression too
        out = _joined(spec.type, shapes, arguments.get("dim", 1), arguments.get("crop", False))
        joined = state
        for _, _, other_state in others:
            joined = joined.widest(other_state)
        if any(len(other) != len(out) for _, other, _ in others) or len(shape) != len(out):
            joined = joined.lost()
        tensors = [(shape, state), *((other, other_state) for _, other, other_state in others)]
        return out, joined.laid_out(_join_strides(spec.type, tensors))

    def make(self, spec: LayerSpec, node: Node, place: Path) -> tuple[Shape, _State]:
        """A Parameter, Buffer or Constant: a tensor from nothing, named; the stack goes on from it."""
        arguments = {arg.name: arg.default for arg in JOINS[spec.type] if arg.default is not REQUIRED}
        arguments.update(self.sizes(spec, node, place, follows=spec.type == "Constant"))
        node.arguments = arguments
        node.inputs = ()
        node.input = ()
        name = arguments["name"]
        if spec.type == "Parameter":
            shape = tuple(arguments["shape"])
            if any(n < 1 for n in shape):
                raise InvalidLayerError(f"shape {list(shape)} must have sizes of at least 1")
            node.params = math.prod(shape)
        else:
            kinds = BUFFERS if spec.type == "Buffer" else CONSTANTS
            made = kinds[arguments["kind"]](arguments)
            shape = made.shape
            if spec.type == "Buffer":
                node.buffers = math.prod(shape)
            if made.largest is not None:
                self.largest[id(node)] = made.largest
        state = _State.made(self.rank)
        self.saved[name] = (node, shape, state)
        return shape, state

    def split(self, spec: LayerSpec, node: Node, place: Path, shape: Shape, state: _State) -> tuple[Shape, _State]:
        """chunk, split, tensor_split or unbind: a block of one part per named piece, each a view of the input;
        the stack goes on from the first."""
        arguments = {arg.name: arg.default for arg in JOINS[spec.type] if arg.default is not REQUIRED}
        arguments.update(self.sizes(spec, node, place, follows=True))
        node.arguments = arguments
        names = arguments["names"]
        names = [names] if isinstance(names, str) else names
        pieces = tensor_ops.parts(shape, spec.type, arguments)
        if len(pieces) != len(names):
            raise InvalidLayerError(f"{spec.type} makes {len(pieces)} parts here, and names gives {len(names)}: "
                                    "name each part")  # fmt: skip
        source = node.inputs[0]
        dim = arguments["dim"]
        start = 0
        for number, (name, piece) in enumerate(zip(names, pieces)):
            part = Node(id=len(self.nodes) + 1, index=node.index, type="Part",
                        arguments={"of": spec.type, "index": number, "name": name, "dim": dim, "start": start},
                        given=("name",), input=shape, output=piece, label=f"{node.label}.{number + 1}",
                        depth=node.depth + 1, branch=None, line=spec.line, parent=node, inputs=(source,))  # fmt: skip
            if spec.type != "unbind":
                start += piece[dim % len(shape)]
            node.children.append(part)
            self.nodes.append(part)
            moved = Step(output=piece, dims=None if spec.type != "unbind" else tuple(
                None if i == dim % len(shape) else i - (i > dim % len(shape)) for i in range(len(shape))))  # fmt: skip
            part_state = state.after(moved, shape)
            part.receptive_field, part.jump = part_state.field, part_state.jump
            self.saved[name] = (part, piece, part_state)
        first = node.children[0]
        node.inputs = (first,)
        return first.output, self.saved[names[0]][2]

    def layer(self, spec: LayerSpec, node: Node, place: Path, shape: Shape, state: _State) -> tuple[Shape, _State]:
        inferring = LAYERS[spec.type].inferred
        fixed: tuple[tuple[str, Any], ...] = ()
        if inferring and self.fixed is not None:  # the network was built: its inferred arguments are what they were
            names = [name for name in inferring if name not in spec.arguments]
            if names:
                known = self.fixed.get(place)
                if known is None:
                    raise InvalidLayerError(f"{names[0]} is inferred from the stack's own input, which does not reach "
                                            f"this layer (it fails earlier): give {names[0]} in the file, or an "
                                            "input that runs")  # fmt: skip
                fixed = tuple(known.items())
        given = spec.arguments
        if spec.expressions:
            kind = LAYERS[spec.type]
            given = self.sizes(spec, node, place, follows=kind.follows)
            fixed = (*fixed, *((name, tuple(given[name]) if isinstance(given[name], list) else given[name])
                               for name in spec.expressions))  # fmt: skip
        key = (spec.key, shape, fixed)
        cached = self.cache.get(key)
        if cached is None:
            cached = self.cache[key] = _apply(spec, shape, dict(fixed), given)
        arguments, step = cached
        node.arguments = arguments
        if inferring and self.fixed is None:
            self.inferred[place] = {name: arguments[name] for name in inferring if name not in spec.arguments}
        if isinstance(step, InvalidLayerError):
            for name, value in fixed:  # the layer was built on another input: say so, where that is why it fails
                if name not in inferring:
                    continue
                now = inferring[name](shape, arguments)
                if now != value:
                    detail = "" if step.parameter == name else f" ({step})"
                    raise InvalidLayerError(
                        f"{name} is {_value(value)}, inferred when the network was built on the stack's own input, "
                        f"and this input gives {_value(now)}: the layer built there cannot take it{detail}"
                    )
            raise step
        if spec.type in IN_PLACE_NO_OVERLAP and arguments.get("inplace") is True:
            _refuse_overlap(spec.type, shape, state.strides)
        node.params, node.buffers, node.macs = step.params, step.buffers, step.macs
        node.uncovered, node.unread = step.uncovered, step.unread
        if self.spatial is None and step.windows:
            self.spatial = len(step.windows)
        return step.output, state.after(step, shape)


def _refuse_overlap(name: str, shape: Shape, strides: tuple[int, ...] | None) -> None:
    """Refuse to write in place into a tensor whose elements share memory, as torch does."""
    problem = overlaps(shape, strides)
    if problem is not None:
        raise InvalidLayerError(f"{name} with inplace: true cannot write into its input {_text(shape)}: {problem}; "
                                "drop inplace, or add a contiguous step first")  # fmt: skip


def _worked(value: Any, bound: dict[str, int]) -> Any:
    """A value with its size expressions worked out from the sizes ``bound`` (an InvalidLayerError for an unbound
    name, a division by zero, or a value that is no integer where a size is asked)."""
    if isinstance(value, list):
        return [_worked(item, bound) for item in value]
    if not is_expression(value):
        return value
    try:
        result = parse(value).evaluate(bound)
    except ExprError as error:
        raise InvalidLayerError(str(error)) from None
    if isinstance(result, float) and result.is_integer():
        return int(result)
    return result


def _closest_name(name: str, saved: dict[str, Any]) -> str:
    import difflib

    match = next(iter(difflib.get_close_matches(name, list(saved), n=1, cutoff=0.6)), None)
    return f" (did you mean {match!r}?)" if match else ""


def _joined(how: str, shapes: list[tuple[str, Shape, str]], dim: int, crop: Any) -> Shape:
    """The shape of joining tensors with Concat, Add or Mul, as torch does; each tensor comes with its name and
    what follows its shape in a message (where it was saved)."""
    (first, out, first_where), rest = shapes[0], shapes[1:]
    if how == "Concat":  # torch.cat checks these of a single tensor too (a Parallel of one branch)
        for name, shape, where in shapes:
            if not shape:
                raise InvalidLayerError(f"cannot concatenate {name}{where}: it is a 0-D tensor, and torch.cat "
                                        "takes tensors of at least one dim")  # fmt: skip
        if not -len(out) <= dim < len(out):
            raise InvalidLayerError(f"dim {dim} is out of range for a {len(out)}-D input")
    for name, shape, where in rest:
        if how == "Concat":
            if crop:  # each saved tensor is cropped to the first (the input), as torch_code's center_crop does
                shape = _cropped(shapes[0][1], shape, (first, first_where), (name, where))
            out = _concat(out, shape, dim, crop, (first, first_where), (name, where))
        else:
            out = _broadcast(out, shape, (first, first_where), (name, where))
    return out


def _join_strides(how: str, tensors: list[tuple[Shape, _State]]) -> tuple[int, ...] | None:
    """The strides of a join's result (None: contiguous): torch.cat writes a contiguous tensor (channels-last
    inputs aside, which convcalc does not follow); ``a + b + c`` lays each sum out as TensorIterator does."""
    if how == "Concat" or all(state.strides is None for _, state in tensors):
        return None
    shape, state = tensors[0]
    strides = state.strides or tensor_ops.contiguous(shape)
    for other, other_state in tensors[1:]:
        out = _broadcast(shape, other, ("", ""), ("", ""))
        strides = tensor_ops.elementwise_strides(
            out, [(shape, strides), (other, other_state.strides or tensor_ops.contiguous(other))]
        )
        shape = out
    return None if strides == tensor_ops.contiguous(shape) else strides


def full_arguments(spec: LayerSpec, shape: Shape, inferred: dict[str, Any] | None = None,
                   given: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A layer's arguments as torch's constructor gets them: the given ones (``given``: with their size expressions
    worked out), the inferred ones (``inferred``, where the network was built on another input, else from
    ``shape``), the defaults."""
    given = spec.arguments if given is None else given
    arguments = {}
    for arg in LAYERS[spec.type].args:
        if arg.name in given:
            value = given[arg.name]
            arguments[arg.name] = tuple(value) if isinstance(value, list) else value
        elif arg.infer is not None:
            arguments[arg.name] = inferred[arg.name] if inferred else arg.infer(shape, arguments)
        else:
            arguments[arg.name] = arg.default
    assert REQUIRED not in arguments.values()
    return arguments


def _apply(spec: LayerSpec, shape: Shape, inferred: dict[str, Any], given: dict[str, Any]
           ) -> tuple[dict[str, Any], Step | InvalidLayerError]:  # fmt: skip
    """A layer's full arguments and its step on ``shape``, or the error it raises."""
    arguments = full_arguments(spec, shape, {name: inferred[name] for name in inferred if name not in given}, given)
    try:
        step = LAYERS[spec.type].apply(shape, arguments)
        if 0 in step.output:
            raise InvalidLayerError(
                f"the output {_text(step.output)} is empty along a dimension; torch makes such a tensor, "
                "but convcalc stops at it, as most layers after it reject it"
            )
    except InvalidLayerError as error:
        return arguments, error
    return arguments, step


def _broadcast(left: Shape, right: Shape, left_name: tuple[str, str], right_name: tuple[str, str]) -> Shape:
    """torch's broadcasting of ``left + right``, or an error naming both sides: (name, where it was saved)."""
    out = tensor_ops.broadcast_shapes(left, right)
    if out is None:
        raise InvalidLayerError(
            f"{left_name[0]} {_text(left)}{left_name[1]} and {right_name[0]} {_text(right)}{right_name[1]} do not "
            f"match: {_mismatch(left, right)}"
        )
    return out


def _mismatch(left: Shape, right: Shape) -> str:
    if len(left) == len(right) and len(left) > 1 and left[1] != right[1] and left[2:] == right[2:]:
        return f"the channels differ ({left[1]} and {right[1]}): make both {left[1]}, or both {right[1]}"
    if len(left) == len(right) and left[2:] != right[2:]:
        return "the sizes differ: change the strides or padding of one side, or the input size"
    return "shapes must be equal, or 1 where they differ"


def _cropped(base: Shape, other: Shape, first: tuple[str, str], named: tuple[str, str]) -> Shape:
    """``other`` centre-cropped to ``base`` along every spatial axis (dims 2 on), or an error where it is smaller."""
    if len(base) != len(other):
        return other  # torch.cat's rank check says so
    if any(o < b for o, b in zip(other[2:], base[2:])):
        raise InvalidLayerError(f"{named[0]} {_text(other)}{named[1]} is smaller than {first[0]} {_text(base)}"
                                f"{first[1]}, so it cannot be cropped to it")  # fmt: skip
    return (*other[:2], *base[2:])


def _concat(shape: Shape, other: Shape, dim: int, crop: Any, first: tuple[str, str], named: tuple[str, str]) -> Shape:
    """torch.cat([x, other], dim) of the first tensor (``shape``) and another (``other``), each named with where it
    was saved."""
    name = named[0]
    mine, theirs = f"{first[0]} {_text(shape)}{first[1]}", f"{name} {_text(other)}{named[1]}"
    if len(shape) != len(other):
        raise InvalidLayerError(f"cannot concatenate {mine} with {theirs}: the ranks differ")
    if not -len(shape) <= dim < len(shape):
        raise InvalidLayerError(f"dim {dim} is out of range for a {len(shape)}-D input")
    axis = dim % len(shape)
    for i, (a, b) in enumerate(zip(shape, other)):
        if i != axis and a != b:
            theirs = f"{name} {_text(other)}{named[1]}"
            raise InvalidLayerError(
                f"cannot concatenate {mine} with {theirs} along dim {dim}: dim {i} differs ({a} and {b}); "
                + ("crop the saved tensor (crop: center), or " if i >= 2 and not crop and b > a else "")
                + (f"{name} is the smaller, so no crop can help: change the padding, or " if i >= 2 and b < a else "")
                + "change the input size"
            )
    return tuple(a + b if i == axis else a for i, (a, b) in enumerate(zip(shape, other)))


def run_stack(input_shape: Sequence[int], specs: Sequence[LayerSpec], *, budget: int | None = None,
              cache: dict[Any, Any] | None = None, inferred: Inferred | None = None) -> StackResult:  # fmt: skip
    """Push ``input_shape`` (batch first: (N, C, *spatial)) through the layers.

    Arguments that follow from the incoming shape (``in_channels``, ``in_features``, a learned tensor's shape) are
    inferred from it, as a Lazy module is built by its first call; the result keeps them (``inferred``). Given
    ``inferred`` (a first run's), they are taken from there instead: the same network, built once on its own
    input, run on another, so that a layer refuses a shape its built module would refuse.
    ``budget``: the most layers, blocks and joins to evaluate (OutOfBudget past it).
    ``cache``: steps already worked out, shared between runs (a layer with the same
    arguments on the same shape takes the same step).
    """
    shape = tuple(input_shape)
    if not shape or any(type(n) is not int or not 1 <= n < INT64 for n in shape) or len(shape) > MAX_RANK:
        raise StackSpecError(
            f"input must be a list of 1 to {MAX_RANK} positive integers below 2**63, e.g. [1, 3, 224, 224], "
            f"got {list(shape)[: MAX_RANK + 1]}"
        )
    rank = len(shape)
    run = _Run(shape, budget, {} if cache is None else cache, inferred)
    state = _State((1,) * rank, (_ONE,) * rank, ((),) * rank, tuple(range(rank)))  # every dim of the input followed
    built = run.inferred if inferred is None else inferred
    error = None
    try:
        out = run.run(specs, None, shape, state, (), None, None, None)[1]
    except RecursionError:
        raise StackSpecError("the blocks are nested too deeply") from None
    except _Stop as stop:
        error = stop.error
        out = error.input_shape
    else:
        if run.outputs:  # the first named output is the stack's output_shape
            out = next(iter(run.outputs.values())).output
    # the receptive field is shown for the input's spatial axes: its last as many dims as the first conv, pool or
    # upsampling has spatial axes (an unbatched (C, H, W) input's last two), else every dim after (N, C)
    spatial = range(2, rank) if run.spatial is None else range(max(rank - run.spatial, 0), rank)
    for node in run.nodes:
        node.receptive_field = tuple(node.receptive_field[axis] for axis in spatial)
        node.jump = tuple(node.jump[axis] for axis in spatial)
    return StackResult(input=shape, output=out, rows=tuple(run.nodes), error=error, outputs=dict(run.outputs),
                       inferred=built)  # fmt: skip


def _widest(chain: tuple[Fraction | int, ...], units: int) -> int:
    """The most input pixels between two units ``units`` apart, through the layers' strides so far.

    Each stride ``q`` maps a distance of ``m`` units to at most ``ceil(m*q)``
    units of the layer before; with whole strides this is exact (``m*q``).
    """
    for stride in reversed(chain):
        units = math.ceil(units * stride)
    return units


def _chain(chain: tuple[Fraction | int, ...], stride: Fraction | int) -> tuple[Fraction | int, ...]:
    """The chain with a stride added, whole strides merged, as they compose exactly."""
    if stride == 1:
        return chain
    if chain and stride.denominator == 1 and chain[-1].denominator == 1:
        return (*chain[:-1], chain[-1] * stride)
    return (*chain, stride)


def _value(value: Any) -> str:
    return _text(value) if isinstance(value, tuple) else str(value)


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"
