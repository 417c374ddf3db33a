"""A whole network, layer by layer: shapes, parameters, MACs and receptive fields.

:func:`resolve` checks a list of layer specs against the catalogue (known
names, known keywords, value types) before anything runs. :func:`run_stack`
then pushes the input shape through them. It does not raise for a layer that
cannot take its input: the result keeps every row up to that layer and the
error, which names the layer by position, type and input shape.

>>> specs = resolve([("Conv2d", {"out_channels": 96, "kernel_size": 11, "stride": 4}, None),
...                  ("MaxPool2d", {"kernel_size": 3, "stride": 2}, None)])
>>> result = run_stack((1, 3, 227, 227), specs)
>>> [row.output for row in result.rows]
[(1, 96, 55, 55), (1, 96, 27, 27)]
>>> result.rows[-1].receptive_field, [str(jump) for jump in result.rows[-1].jump]
((19, 19), ['8', '8'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from convcalc.catalog import LAYERS
from convcalc.errors import ConvcalcError, InvalidLayerError
from convcalc.schema import REQUIRED, Arg, Type, check_arguments

__all__ = [
    "BLOCKS",
    "DTYPES",
    "JOINS",
    "Item",
    "LayerSpec",
    "Row",
    "StackError",
    "StackResult",
    "StackSpecError",
    "layer_count",
    "nearest_inputs",
    "resolve",
    "run_stack",
]

Shape = tuple[int, ...]

DTYPES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1, "uint8": 1}
"""Bytes per element of the dtypes ``--dtype`` takes."""


class StackSpecError(ConvcalcError):
    """A layer spec is wrong before anything runs: unknown layer or keyword, wrong value type."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class StackError(ConvcalcError):
    """A layer cannot take the shape that reaches it."""

    def __init__(self, message: str, *, index: int, layer: str, input_shape: Shape, label: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.layer = layer
        self.input_shape = input_shape
        self.label = label or str(index)


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One layer as the stack file names it, its keywords checked."""

    type: str
    arguments: dict[str, Any]
    """Only what the file gives; defaults and inferred values are added when the stack runs."""
    line: int | None = None
    blocks: dict[str, tuple[LayerSpec, ...]] = field(default_factory=dict)
    """The branches of a block: ``body`` and ``shortcut`` of a Residual, ``layers`` of a Repeat."""


@dataclass(frozen=True, kw_only=True)
class Row:
    """One layer of a stack that ran."""

    index: int
    """1-based position in the stack (of the top-level block, for a layer inside one)."""
    type: str
    arguments: dict[str, Any]
    """The layer's keyword arguments: given, inferred and defaulted, in torch's order."""
    given: tuple[str, ...]
    """Which arguments the file gave."""
    input: Shape
    output: Shape
    params: int
    buffers: int
    """Non-trainable state (e.g. BatchNorm's running statistics), not counted in params."""
    macs: int
    receptive_field: tuple[int | None, ...]
    """Per spatial axis of the stack's input: input pixels one output unit sees; None for the whole input.

    Exact (Araujo et al., Distill 2019) while every stride is whole; after a
    transposed conv or an upsampling, the widest field any unit can have (an
    upper bound: units of different phases see less)."""
    jump: tuple[Fraction | None, ...]
    """Per spatial axis: input pixels between neighbouring output units (the effective stride)."""
    uncovered: tuple[int, ...]
    """Per spatial axis of this layer: input pixels at the end that no window reaches."""
    label: str = ""
    """Where the row sits: ``3``, or ``3.body.2`` inside a block, ``4.2.1`` in a Repeat's second copy."""
    depth: int = 0
    """How deep inside blocks the row sits (0 at the top level)."""
    branch: str | None = None
    """The branch of the enclosing block (``body``, ``shortcut``, or the copy number of a Repeat)."""


@dataclass(frozen=True, kw_only=True)
class StackResult:
    """Every layer that ran, and the error of the first that could not."""

    input: Shape
    output: Shape
    """The stack's output shape; where a layer fails, the shape that reached it."""
    rows: tuple[Row, ...]
    error: StackError | None = None

    @property
    def total_params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def total_buffers(self) -> int:
        return sum(row.buffers for row in self.rows)

    @property
    def total_macs(self) -> int:
        return sum(row.macs for row in self.rows)

    def parameter_bytes(self, dtype: str = "float32") -> int:
        """Memory of the parameters and buffers, every element in ``dtype``."""
        return (self.total_params + self.total_buffers) * DTYPES[dtype]

    def activation_bytes(self, dtype: str = "float32") -> int:
        """Memory of every layer's output in one forward pass, the input not included.

        A Save (which names a tensor) and a Repeat (whose output is its last
        layer's) make no new tensor.
        """
        made = (row for row in self.rows if row.type not in ("Save", "Repeat"))
        return sum(math.prod(row.output) for row in made) * DTYPES[dtype]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _closest(word: str, choices: Iterable[str]) -> str:
    import difflib  # only when a name is wrong: it costs every run several milliseconds

    options = list(choices)
    lowered = {choice.lower(): choice for choice in options}
    match = lowered.get(word.lower()) or next(iter(difflib.get_close_matches(word, options, n=1, cutoff=0.6)), None)
    return f" (did you mean {match}?)" if match else ""


def _positive(value: int) -> str | None:
    return None if value >= 1 else "must be a positive integer"


@dataclass(frozen=True)
class Block:
    """A block of a stack file: keywords that hold lists of layers (its branches), and its other arguments."""

    branches: tuple[str, ...]
    required: tuple[str, ...]
    args: tuple[Arg, ...] = ()


BLOCKS = {
    "Residual": Block(branches=("body", "shortcut"), required=("body",)),
    "Repeat": Block(branches=("layers",), required=("layers",), args=(Arg("times", Type.INT, check=_positive),)),
}
"""Blocks and what they hold."""
JOINS: dict[str, tuple[Arg, ...]] = {
    "Save": (Arg("name", Type.NAME),),
    "Add": (Arg("with", Type.NAME),),
    "Concat": (Arg("with", Type.NAME), Arg("dim", Type.INT, 1), Arg("crop", Type.CROP, False)),
}
"""Steps that name tensors and join them, with the arguments they take."""
MAX_LAYERS = 100_000
"""Most layers a stack may hold once every Repeat is written out."""
SUGGEST_ROWS = 2_000
"""Up to this many layers before the failing one, an error searches for the nearest input sizes that work."""


@dataclass(frozen=True)
class Item:
    """One entry of a layer list as a stack file writes it: a name, keywords and/or positional arguments, a line."""

    type: str
    keywords: dict[str, Any]
    positional: tuple[Any, ...] = ()
    line: int | None = None


def resolve(items: Iterable[Item | tuple[str, dict[str, Any], int | None]], where: str = "layer") -> list[LayerSpec]:
    """Check items against the catalogue; raise StackSpecError at the first problem.

    An item is an :class:`Item` or a ``(type, keywords, line)`` tuple. A block's
    keywords hold its branches as lists of items, checked the same way.
    """
    specs = []
    for position, entry in enumerate(items, start=1):
        item = entry if isinstance(entry, Item) else Item(entry[0], entry[1], (), entry[2])
        label = f"{where} {position} ({item.type})"
        if item.type in BLOCKS:
            specs.append(_block(item, label, f"{where} {position}."))
        elif item.type in JOINS:
            arguments = _keywords(item, JOINS[item.type], label)
            specs.append(LayerSpec(type=item.type, arguments=arguments, line=item.line))
        elif item.type in LAYERS:
            specs.append(_layer(item, label))
        else:
            choices = [*LAYERS, *BLOCKS, *JOINS]
            raise StackSpecError(
                f"{where} {position}: unknown layer {item.type!r}{_closest(item.type, choices)}", line=item.line
            )
    if where == "layer" and _count(specs) > MAX_LAYERS:
        raise StackSpecError(f"the stack expands to {_count(specs):,} layers; convcalc takes at most {MAX_LAYERS:,}")
    return specs


def _keywords(item: Item, args: Sequence[Arg], label: str) -> dict[str, Any]:
    """The item's arguments by name (positional ones in torch's order), each checked against its declaration."""
    names = [arg.name for arg in args]
    if len(item.positional) > len(names):
        takes = f"{len(names)} ({', '.join(names)})" if names else "none"
        raise StackSpecError(
            f"{label}: {len(item.positional)} positional arguments, but {item.type} takes at most {takes}",
            line=item.line,
        )
    arguments = dict(zip(names, item.positional))
    for key, value in item.keywords.items():
        if key not in names:
            known = ", ".join(names) or "none"
            raise StackSpecError(
                f"{label}: unknown keyword {key!r}{_closest(key, names)}; {item.type} takes: {known}", line=item.line
            )
        if key in arguments:
            raise StackSpecError(f"{label}: {key} is given twice, by position and by name", line=item.line)
        arguments[key] = value
    wrong = check_arguments(args, arguments)
    if wrong:
        raise StackSpecError(f"{label}: {wrong[0]} {wrong[1]}", line=item.line)
    missing = [arg.name for arg in args if arg.default is REQUIRED and arg.infer is None and arg.name not in arguments]
    if missing:
        raise StackSpecError(f"{label}: missing {', '.join(missing)}", line=item.line)
    return arguments


def layer_count(specs: Sequence[LayerSpec]) -> int:
    """How many layers the specs hold once every Repeat is written out."""
    return _count(specs)


def _count(specs: Sequence[LayerSpec]) -> int:
    total = 0
    for spec in specs:
        inner = sum(_count(branch) for branch in spec.blocks.values())
        times = spec.arguments.get("times", 1) if spec.type == "Repeat" else 1
        total += 1 + times * inner
        if total > MAX_LAYERS:
            return total
    return total


def _layer(item: Item, label: str) -> LayerSpec:
    kind = LAYERS[item.type]
    arguments = _keywords(item, kind.args, label)
    if kind.check is not None:
        problem = kind.check({**{arg.name: arg.default for arg in kind.args}, **arguments})
        if problem:
            raise StackSpecError(f"{label}: {problem}", line=item.line)
    return LayerSpec(type=item.type, arguments=arguments, line=item.line)


def _block(item: Item, label: str, where: str) -> LayerSpec:
    block = BLOCKS[item.type]
    branch_args = tuple(Arg(name, Type.BRANCH, REQUIRED if name in block.required else None)
                        for name in block.branches)  # fmt: skip
    arguments = _keywords(item, (*branch_args, *block.args), label)
    for key in block.required:
        if not arguments.get(key):
            raise StackSpecError(f"{label}: {key} must be a list of layers", line=item.line)
    blocks = {
        key: tuple(resolve(arguments.pop(key), where=f"{where}{key} layer"))
        for key in block.branches
        if key in arguments
    }
    return LayerSpec(type=item.type, arguments=arguments, line=item.line, blocks=blocks)


def _tuples(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@dataclass
class _Field:
    """The receptive field and jump along every spatial axis, and the strides that led there."""

    field: list[int | None]
    jump: list[Fraction | None]
    chains: list[list[Fraction]]

    def copy(self) -> _Field:
        return _Field(list(self.field), list(self.jump), [list(chain) for chain in self.chains])

    def whole(self) -> None:
        self.field = [None] * len(self.field)
        self.jump = [None] * len(self.jump)

    def widest(self, other: _Field) -> None:
        """Join two branches: each axis sees the larger field of the two."""
        for axis, (mine, theirs) in enumerate(zip(self.field, other.field)):
            self.field[axis] = None if mine is None or theirs is None else max(mine, theirs)
            if self.jump[axis] is None or other.jump[axis] is None:
                self.jump[axis] = None


class _Stop(Exception):
    def __init__(self, error: StackError) -> None:
        self.error = error


class _Runner:
    """Runs specs, block by block, collecting rows; raises _Stop at the first layer that fails."""

    def __init__(self, input_shape: Shape) -> None:
        self.axes = max(len(input_shape) - 2, 0)
        self.rows: list[Row] = []
        self.saved: dict[str, tuple[Shape, _Field, str]] = {}

    def run(self, specs: Sequence[LayerSpec], shape: Shape, state: _Field, prefix: str, depth: int,
            top: int | None, branch: str | None) -> Shape:  # fmt: skip
        for position, spec in enumerate(specs, start=1):
            label = f"{prefix}{position}"
            index = top if top is not None else position
            if spec.type in BLOCKS:
                shape = self.block(spec, shape, state, label, depth, index, branch)
            else:
                shape = self.layer(spec, shape, state, label, depth, index, branch)
        return shape

    def fail(self, spec: LayerSpec, shape: Shape, label: str, index: int, error: Exception) -> _Stop:
        message = f"layer {label} ({spec.type}) on input {_text(shape)}: {error}"
        return _Stop(StackError(message, index=index, layer=spec.type, input_shape=shape, label=label))

    def block(self, spec: LayerSpec, shape: Shape, state: _Field, label: str, depth: int, index: int,
              branch: str | None) -> Shape:  # fmt: skip
        at = len(self.rows)
        if spec.type == "Repeat":
            out = shape
            for copy in range(1, spec.arguments["times"] + 1):
                out = self.run(spec.blocks["layers"], out, state, f"{label}.{copy}.", depth + 1, index, str(copy))
        else:
            body_state = state.copy()
            out = self.run(spec.blocks["body"], shape, body_state, f"{label}.body.", depth + 1, index, "body")
            side_state = state.copy()
            side = shape
            if "shortcut" in spec.blocks:
                side = self.run(spec.blocks["shortcut"], shape, side_state, f"{label}.shortcut.", depth + 1, index,
                                "shortcut")  # fmt: skip
            try:
                out = _broadcast(out, side, "the body", "the shortcut")
            except InvalidLayerError as error:
                raise self.fail(spec, shape, label, index, error) from None
            body_state.widest(side_state)
            state.field, state.jump, state.chains = body_state.field, body_state.jump, body_state.chains
        self.rows.insert(at, self.row(spec, dict(spec.arguments), shape, out, state, label, depth, index, branch))
        return out

    def layer(self, spec: LayerSpec, shape: Shape, state: _Field, label: str, depth: int, index: int,
              branch: str | None) -> Shape:  # fmt: skip
        if spec.type in JOINS:
            try:
                out = self.join(spec, shape, state, label)
            except InvalidLayerError as error:
                raise self.fail(spec, shape, label, index, error) from None
            self.rows.append(self.row(spec, dict(spec.arguments), shape, out, state, label, depth, index, branch))
            return out
        kind = LAYERS[spec.type]
        arguments = {key: default for key, default in kind.arguments.items()}
        arguments.update({key: infer(shape) for key, infer in kind.inferred.items()})
        arguments.update({key: _tuples(value) for key, value in spec.arguments.items()})
        try:
            step = kind.apply(shape, arguments)
            if 0 in step.output:
                raise InvalidLayerError(
                    f"the output {_text(step.output)} is empty along a dimension; torch makes such a tensor, "
                    "but convcalc stops at it, as most layers after it reject it"
                )
        except InvalidLayerError as error:
            raise self.fail(spec, shape, label, index, error) from None
        if step.whole or (step.windows is not None and len(step.windows) != self.axes):
            state.whole()
        elif step.windows is not None:
            for axis, window in enumerate(step.windows):
                current, distance = state.field[axis], state.jump[axis]
                if current is None or distance is None:
                    continue
                state.field[axis] = current + _widest(state.chains[axis], window.extent - 1)
                state.jump[axis] = distance * window.stride
                _chain(state.chains[axis], window.stride)
        row = self.row(spec, arguments, shape, step.output, state, label, depth, index, branch)
        counts = {"params": step.params, "buffers": step.buffers, "macs": step.macs, "uncovered": step.uncovered}
        self.rows.append(Row(**{**row.__dict__, **counts}))
        return step.output

    def join(self, spec: LayerSpec, shape: Shape, state: _Field, label: str) -> Shape:
        if spec.type == "Save":
            self.saved[spec.arguments["name"]] = (shape, state.copy(), label)
            return shape
        name = spec.arguments["with"]
        if name not in self.saved:
            known = ", ".join(self.saved) or "none yet"
            raise InvalidLayerError(f"no tensor was saved as {name!r} before this layer (saved: {known})")
        other, other_state, where = self.saved[name]
        state.widest(other_state)
        if spec.type == "Add":
            return _broadcast(shape, other, "the input", f"{name!r} (saved at layer {where})")
        return _concat(shape, other, spec.arguments.get("dim", 1), spec.arguments.get("crop", False), name, where)

    def row(self, spec: LayerSpec, arguments: dict[str, Any], shape: Shape, out: Shape, state: _Field, label: str,
            depth: int, index: int, branch: str | None) -> Row:  # fmt: skip
        return Row(
            index=index,
            type=spec.type,
            arguments=arguments,
            given=tuple(spec.arguments),
            input=shape,
            output=out,
            params=0,
            buffers=0,
            macs=0,
            receptive_field=tuple(state.field),
            jump=tuple(state.jump),
            uncovered=(),
            label=label,
            depth=depth,
            branch=branch,
        )


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
                + ("crop the saved tensor (crop: center), or " if i >= 2 and not crop else "")
                + "change the input size"
            )
    return tuple(a + b if i == axis else a for i, (a, b) in enumerate(zip(shape, other)))


def run_stack(input_shape: Sequence[int], specs: Sequence[LayerSpec], suggest: bool = True) -> StackResult:
    """Push ``input_shape`` (batch first: (N, C, *spatial)) through the layers.

    Where a layer or join fails, the error names the nearest input sizes (every
    spatial axis moved alike, at most 64 each way) for which the whole stack works
    (``suggest``): for an input that is too small, the smallest that is not.
    """
    shape = tuple(input_shape)
    if not shape or any(not _is_int(n) or n < 1 for n in shape):
        raise StackSpecError(f"input must be a list of positive integers, e.g. [1, 3, 224, 224], got {list(shape)}")
    axes = max(len(shape) - 2, 0)
    runner = _Runner(shape)
    state = _Field([1] * axes, [Fraction(1)] * axes, [[] for _ in range(axes)])
    try:
        out = runner.run(specs, shape, state, "", 0, None, None)
    except _Stop as stop:
        error = stop.error
        if suggest and len(shape) > 2 and len(runner.rows) <= SUGGEST_ROWS:
            nearby = nearest_inputs(shape, specs)
            if nearby:
                sizes = " and ".join("x".join(map(str, size[2:])) for size in nearby)
                error = StackError(
                    f"{error}; input sizes near {'x'.join(map(str, shape[2:]))} that work: {sizes}",
                    index=error.index, layer=error.layer, input_shape=error.input_shape, label=error.label,
                )  # fmt: skip
        return StackResult(input=shape, output=error.input_shape, rows=tuple(runner.rows), error=error)
    return StackResult(input=shape, output=out, rows=tuple(runner.rows))


def nearest_inputs(input_shape: Shape, specs: Sequence[LayerSpec], reach: int = 64) -> list[Shape]:
    """The nearest smaller and larger input shapes (every spatial axis moved by the same step) that the stack takes."""
    found = []
    for direction in (-1, 1):
        for step in range(1, reach + 1):
            spatial = tuple(n + direction * step for n in input_shape[2:])
            if min(spatial) < 1:
                break
            candidate = (*input_shape[:2], *spatial)
            if run_stack(candidate, specs, suggest=False).error is None:
                found.append(candidate)
                break
    return found


def _widest(chain: list[Fraction], units: int) -> int:
    """The most input pixels between two units ``units`` apart, through the layers' strides so far.

    Each stride ``q`` maps a distance of ``m`` units to at most ``ceil(m*q)``
    units of the layer before; with whole strides this is exact (``m*q``).
    """
    for stride in reversed(chain):
        units = math.ceil(units * stride)
    return units


def _chain(chain: list[Fraction], stride: Fraction) -> None:
    """Add a stride to the chain, merging whole strides, which compose exactly."""
    if stride == 1:
        return
    if chain and stride.denominator == 1 and chain[-1].denominator == 1:
        chain[-1] *= stride
    else:
        chain.append(stride)


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"
