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
from fractions import Fraction
from typing import Any

from convcalc.catalog import LAYERS, Step
from convcalc.errors import InvalidLayerError, StackError, StackSpecError
from convcalc.schema import INT64, REQUIRED
from convcalc.spec import BLOCKS, JOINS, LayerSpec, resolve

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
    uncovered: tuple[int, ...] = ()
    """Per spatial axis of this layer: input pixels at the end that no window reaches."""
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
    """The nodes whose outputs it takes (None: the stack's input)."""


Row = Node
"""The name earlier versions gave a node."""


@dataclass(frozen=True, kw_only=True)
class StackResult:
    """Every node that ran, in the order a table lists them (a block before its nodes), and the first error."""

    input: Shape
    output: Shape
    """The stack's output shape; where a layer fails, the shape that reached it."""
    rows: tuple[Node, ...]
    error: StackError | None = None

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

        # a block whose join failed is no node, but the nodes in it that ran are: they start walks of their own
        present = {id(node) for node in self.rows}
        for node in self.rows:
            if node.parent is None or id(node.parent) not in present:
                yield from after(node)

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
        """Memory of every layer's output in one forward pass, the input not included.

        A Save (which names a tensor) and a Repeat (whose output is its last
        layer's) make no new tensor.
        """
        made = (node for node in self.rows if node.type not in ("Save", "Repeat"))
        return sum(math.prod(node.output) for node in made) * DTYPES[dtype]


class OutOfBudget(Exception):
    """A run was given at most so many layer evaluations, and needed more."""


@dataclass(frozen=True, slots=True)
class _Field:
    """The receptive field and jump along every spatial axis, and the strides that led there (immutable: a layer
    that leaves them as they are passes the same object on)."""

    field: tuple[int | None, ...]
    jump: tuple[Fraction | int | None, ...]
    chains: tuple[tuple[Fraction | int, ...], ...]

    def whole(self) -> _Field:
        count = len(self.field)
        return _Field((None,) * count, (None,) * count, self.chains)

    def widest(self, other: _Field) -> _Field:
        """Join two tensors: each axis sees the larger field of the two."""
        fields = tuple(None if a is None or b is None else max(a, b) for a, b in zip(self.field, other.field))
        jumps = tuple(None if b is None else a for a, b in zip(self.jump, other.jump))
        return _Field(fields, jumps, self.chains)

    def through(self, step: Step) -> _Field:
        """The field after a layer with these windows (one per spatial axis)."""
        assert step.windows is not None
        fields, jumps, chains = list(self.field), list(self.jump), list(self.chains)
        for axis, window in enumerate(step.windows):
            current, distance = fields[axis], jumps[axis]
            if current is None or distance is None:
                continue
            fields[axis] = current + _widest(chains[axis], window.extent - 1)
            jump = distance * window.stride
            jumps[axis] = int(jump) if type(jump) is Fraction and jump.denominator == 1 else jump
            chains[axis] = _chain(chains[axis], window.stride)
        return _Field(tuple(fields), tuple(jumps), tuple(chains))


class _Stop(Exception):
    def __init__(self, error: StackError) -> None:
        self.error = error


class _Run:
    """One run of specs, block by block: appends nodes; raises _Stop at the first layer that fails."""

    def __init__(self, input_shape: Shape, budget: int | None, cache: dict[Any, Any]) -> None:
        self.axes = max(len(input_shape) - 2, 0)
        self.nodes: list[Node] = []
        self.saved: dict[str, tuple[Node | None, Shape, _Field]] = {}
        self.budget = budget
        self.cache = cache

    def run(self, specs: Sequence[LayerSpec], source: Node | None, shape: Shape, state: _Field, prefix: str,
            parent: Node | None, top: int | None, branch: str | None) -> tuple[Node | None, Shape, _Field]:  # fmt: skip
        """Run ``specs`` on the tensor ``source`` makes (of ``shape``); the last node, its shape and field."""
        depth = 0 if parent is None else parent.depth + 1
        for position, spec in enumerate(specs, start=1):
            label = f"{prefix}{position}"
            index = top if top is not None else position
            if self.budget is not None:
                self.budget -= 1
                if self.budget < 0:
                    raise OutOfBudget
            node = Node(index=index, type=spec.type, arguments=spec.arguments, given=tuple(spec.arguments),
                        input=shape, output=shape, label=label, depth=depth, branch=branch, line=spec.line,
                        parent=parent, inputs=(source,))  # fmt: skip
            if parent is not None:
                parent.children.append(node)
            self.nodes.append(node)
            try:
                if spec.type in BLOCKS:
                    shape, state = self.block(spec, node, shape, state)
                elif spec.type in JOINS:
                    shape, state = self.join(spec, node, shape, state)
                else:
                    shape, state = self.layer(spec, node, shape, state)
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
            source = node
        return source, shape, state

    def _drop(self, node: Node) -> None:
        self.nodes.remove(node)
        if node.parent is not None:
            node.parent.children.remove(node)

    def block(self, spec: LayerSpec, node: Node, shape: Shape, state: _Field) -> tuple[Shape, _Field]:
        label = node.label
        if spec.type == "Repeat":
            source: Node | None = node.inputs[0]
            out, result = shape, state
            for copy in range(1, spec.arguments["times"] + 1):
                source, out, result = self.run(spec.blocks["layers"], source, out, result, f"{label}.{copy}.", node,
                                               node.index, str(copy))  # fmt: skip
            node.inputs = (source,)
            return out, result
        body_last, body, body_state = self.run(spec.blocks["body"], node.inputs[0], shape, state, f"{label}.body.",
                                               node, node.index, "body")  # fmt: skip
        side_last, side, side_state = node.inputs[0], shape, state
        if "shortcut" in spec.blocks:
            side_last, side, side_state = self.run(spec.blocks["shortcut"], node.inputs[0], shape, state,
                                                   f"{label}.shortcut.", node, node.index, "shortcut")  # fmt: skip
        node.inputs = (body_last, side_last)
        return _broadcast(body, side, "the body", "the shortcut"), body_state.widest(side_state)

    def join(self, spec: LayerSpec, node: Node, shape: Shape, state: _Field) -> tuple[Shape, _Field]:
        if spec.type == "Save":
            self.saved[spec.arguments["name"]] = (node, shape, state)
            return shape, state
        name = spec.arguments["with"]
        if name not in self.saved:
            known = ", ".join(map(repr, self.saved)) or "none yet"
            raise InvalidLayerError(f"no tensor was saved as {name!r} before this layer (saved: {known})")
        other_node, other, other_state = self.saved[name]
        node.inputs = (*node.inputs, other_node)
        where = other_node.label if other_node is not None else "input"
        if spec.type == "Add":
            out = _broadcast(shape, other, "the input", f"{name!r} (saved at layer {where})")
        else:
            out = _concat(shape, other, spec.arguments.get("dim", 1), spec.arguments.get("crop", False), name, where)
        return out, state.widest(other_state)

    def layer(self, spec: LayerSpec, node: Node, shape: Shape, state: _Field) -> tuple[Shape, _Field]:
        key = (spec.key, shape)
        cached = self.cache.get(key)
        if cached is None:
            cached = self.cache[key] = _apply(spec, shape)
        arguments, step = cached
        node.arguments = arguments
        if isinstance(step, InvalidLayerError):
            raise step
        node.params, node.buffers, node.macs, node.uncovered = step.params, step.buffers, step.macs, step.uncovered
        if step.whole or (step.windows is not None and len(step.windows) != self.axes):
            state = state.whole()
        elif step.windows is not None:
            state = state.through(step)
        return step.output, state


def full_arguments(spec: LayerSpec, shape: Shape) -> dict[str, Any]:
    """A layer's arguments as torch's constructor gets them: the given ones, the inferred ones, the defaults."""
    arguments = {}
    for arg in LAYERS[spec.type].args:
        if arg.name in spec.arguments:
            value = spec.arguments[arg.name]
            arguments[arg.name] = tuple(value) if isinstance(value, list) else value
        elif arg.infer is not None:
            arguments[arg.name] = arg.infer(shape)
        else:
            arguments[arg.name] = arg.default
    assert REQUIRED not in arguments.values()
    return arguments


def _apply(spec: LayerSpec, shape: Shape) -> tuple[dict[str, Any], Step | InvalidLayerError]:
    """A layer's full arguments and its step on ``shape``, or the error it raises."""
    arguments = full_arguments(spec, shape)
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


def _broadcast(left: Shape, right: Shape, left_name: str, right_name: str) -> Shape:
    """torch's broadcasting of ``left + right``, or an error naming both sides."""
    out = []
    for a, b in zip(
        reversed((1,) * (len(right) - len(left)) + left), reversed((1,) * (len(left) - len(right)) + right)
    ):
        if a != b and 1 not in (a, b):
            raise InvalidLayerError(
                f"{left_name} {_text(left)} and {right_name} {_text(right)} do not match: {_mismatch(left, right)}"
            )
        out.append(max(a, b))
    return tuple(reversed(out))


def _mismatch(left: Shape, right: Shape) -> str:
    if len(left) == len(right) and len(left) > 1 and left[1] != right[1] and left[2:] == right[2:]:
        return f"the channels differ ({left[1]} and {right[1]}): make both {left[1]}, or both {right[1]}"
    if len(left) == len(right) and left[2:] != right[2:]:
        return "the sizes differ: change the strides or padding of one side, or the input size"
    return "shapes must be equal, or 1 where they differ"


def _concat(shape: Shape, other: Shape, dim: int, crop: Any, name: str, where: str) -> Shape:
    if len(shape) != len(other):
        raise InvalidLayerError(f"cannot concatenate {_text(shape)} with {name!r} {_text(other)}: the ranks differ")
    if not -len(shape) <= dim < len(shape):
        raise InvalidLayerError(f"dim {dim} is out of range for a {len(shape)}-D input")
    axis = dim % len(shape)
    if crop:
        if any(o < s for o, s in zip(other[2:], shape[2:])):
            raise InvalidLayerError(
                f"{name!r} {_text(other)} (saved at layer {where}) is smaller than the input {_text(shape)}, "
                "so it cannot be cropped to it"
            )
        other = (*other[:2], *shape[2:])
    for i, (a, b) in enumerate(zip(shape, other)):
        if i != axis and a != b:
            raise InvalidLayerError(
                f"cannot concatenate {_text(shape)} with {name!r} {_text(other)} (saved at layer {where}) "
                f"along dim {dim}: dim {i} differs ({a} and {b}); "
                + ("crop the saved tensor (crop: center), or " if i >= 2 and not crop and b > a else "")
                + (f"{name!r} is the smaller, so no crop can help: change the padding, or " if i >= 2 and b < a else "")
                + "change the input size"
            )
    return tuple(a + b if i == axis else a for i, (a, b) in enumerate(zip(shape, other)))


def run_stack(input_shape: Sequence[int], specs: Sequence[LayerSpec], suggest: bool = True, *,
              budget: int | None = None, cache: dict[Any, Any] | None = None) -> StackResult:  # fmt: skip
    """Push ``input_shape`` (batch first: (N, C, *spatial)) through the layers.

    Where a layer or join fails, the error names the nearest input sizes for
    which the whole stack works (``suggest``; see :func:`convcalc.fit.nearest_inputs`).
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
    axes = max(len(shape) - 2, 0)
    run = _Run(shape, budget, {} if cache is None else cache)
    state = _Field((1,) * axes, (_ONE,) * axes, ((),) * axes)
    try:
        out = run.run(specs, None, shape, state, "", None, None, None)[1]
    except RecursionError:
        raise StackSpecError("the blocks are nested too deeply") from None
    except _Stop as stop:
        error = stop.error
        if suggest and len(shape) > 2:
            from convcalc.fit import nearest_inputs

            nearby = nearest_inputs(shape, specs, cache=run.cache)
            if nearby:
                sizes = " and ".join("x".join(map(str, size[2:])) for size in nearby)
                error = StackError(
                    f"{error}; input sizes near {'x'.join(map(str, shape[2:]))} that work: {sizes}",
                    index=error.index, layer=error.layer, input_shape=error.input_shape, label=error.label,
                    line=error.line, node=error.node,
                )  # fmt: skip
        return StackResult(input=shape, output=error.input_shape, rows=tuple(run.nodes), error=error)
    return StackResult(input=shape, output=out, rows=tuple(run.nodes))


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


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"
