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
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from convcalc.catalog import LAYERS, REQUIRED
from convcalc.errors import ConvcalcError, InvalidLayerError

__all__ = ["DTYPES", "LayerSpec", "Row", "StackError", "StackResult", "StackSpecError", "resolve", "run_stack"]

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

    def __init__(self, message: str, *, index: int, layer: str, input_shape: Shape) -> None:
        super().__init__(message)
        self.index = index
        self.layer = layer
        self.input_shape = input_shape


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One layer as the stack file names it, its keywords checked."""

    type: str
    arguments: dict[str, Any]
    """Only what the file gives; defaults and inferred values are added when the stack runs."""
    line: int | None = None


@dataclass(frozen=True, kw_only=True)
class Row:
    """One layer of a stack that ran."""

    index: int
    """1-based position in the stack."""
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


@dataclass(frozen=True, kw_only=True)
class StackResult:
    """Every layer that ran, and the error of the first that could not."""

    input: Shape
    rows: tuple[Row, ...]
    error: StackError | None = None

    @property
    def output(self) -> Shape:
        return self.rows[-1].output if self.rows else self.input

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
        """Memory of every layer's output in one forward pass, the input not included."""
        return sum(math.prod(row.output) for row in self.rows) * DTYPES[dtype]


_INTEGERS = {
    "in_channels", "out_channels", "groups", "num_features", "num_groups", "num_channels", "in_features",
    "out_features", "start_dim", "end_dim", "dim", "upscale_factor", "downscale_factor", "num_parameters",
}  # fmt: skip
_PER_AXIS = {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size", "size"}
_SHAPES = {"unflattened_size", "normalized_shape"}
_BOOLEANS = {
    "bias", "ceil_mode", "return_indices", "count_include_pad", "affine", "track_running_stats",
    "elementwise_affine", "inplace", "align_corners", "recompute_scale_factor",
}  # fmt: skip
_STRINGS = {"padding_mode", "mode", "approximate"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(name: str, value: Any) -> str | None:
    """What is wrong with the type of ``value`` for keyword ``name``, or None."""
    if value is None and name in {"stride", "output_size", "size", "scale_factor", "dim", "align_corners",
                                  "recompute_scale_factor", "divisor_override"}:  # fmt: skip
        return None
    if name in _INTEGERS or name == "divisor_override":
        return None if _is_int(value) else "an integer"
    if name in _PER_AXIS:
        if name == "padding" and value in ("same", "valid"):
            return None
        items = value if isinstance(value, list) else [value]
        allowed = (lambda v: _is_int(v) or v is None) if name == "output_size" else _is_int
        return None if items and all(allowed(v) for v in items) else "an integer or a list of integers"
    if name in _SHAPES:
        items = value if isinstance(value, list) else [value]
        return None if all(_is_int(v) for v in items) else "an integer or a list of integers"
    if name in _BOOLEANS:
        return None if isinstance(value, bool) else "true or false"
    if name in _STRINGS:
        return None if isinstance(value, str) else "a string"
    if name == "scale_factor":
        items = value if isinstance(value, list) else [value]
        return None if all(_is_number(v) for v in items) else "a number or a list of numbers"
    return None if _is_number(value) else "a number"


def _closest(word: str, choices: Iterable[str]) -> str:
    import difflib  # only when a name is wrong: it costs every run several milliseconds

    options = list(choices)
    lowered = {choice.lower(): choice for choice in options}
    match = lowered.get(word.lower()) or next(iter(difflib.get_close_matches(word, options, n=1, cutoff=0.6)), None)
    return f" (did you mean {match}?)" if match else ""


def resolve(items: Iterable[tuple[str, dict[str, Any], int | None]]) -> list[LayerSpec]:
    """Check (type, keywords, line) items against the catalogue; raise StackSpecError at the first problem."""
    specs = []
    for position, (name, arguments, line) in enumerate(items, start=1):
        where = f"layer {position} ({name})"
        kind = LAYERS.get(name)
        if kind is None:
            raise StackSpecError(f"layer {position}: unknown layer {name!r}{_closest(name, LAYERS)}", line=line)
        for key, value in arguments.items():
            if key not in kind.arguments:
                known = ", ".join(kind.arguments) or "none"
                raise StackSpecError(
                    f"{where}: unknown keyword {key!r}{_closest(key, kind.arguments)}; {name} takes: {known}", line=line
                )
            problem = _type_problem(key, value)
            if problem:
                raise StackSpecError(f"{where}: {key} must be {problem}, got {value!r}", line=line)
        missing = [key for key, default in kind.arguments.items() if default is REQUIRED and key not in arguments
                   and key not in kind.inferred]  # fmt: skip
        if missing:
            raise StackSpecError(f"{where}: missing {', '.join(missing)}", line=line)
        specs.append(LayerSpec(type=name, arguments=dict(arguments), line=line))
    return specs


def _tuples(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def run_stack(input_shape: Sequence[int], specs: Sequence[LayerSpec]) -> StackResult:
    """Push ``input_shape`` (batch first: (N, C, *spatial)) through the layers."""
    shape = tuple(input_shape)
    if not shape or any(not _is_int(n) or n < 1 for n in shape):
        raise StackSpecError(f"input must be a list of positive integers, e.g. [1, 3, 224, 224], got {list(shape)}")
    axes = max(len(shape) - 2, 0)
    field: list[int | None] = [1] * axes
    jump: list[Fraction | None] = [Fraction(1)] * axes
    chains: list[list[Fraction]] = [[] for _ in range(axes)]
    rows: list[Row] = []
    for index, spec in enumerate(specs, start=1):
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
            message = f"layer {index} ({spec.type}) on input {_text(shape)}: {error}"
            failure = StackError(message, index=index, layer=spec.type, input_shape=shape)
            return StackResult(input=tuple(input_shape), rows=tuple(rows), error=failure)
        if step.whole or (step.windows is not None and len(step.windows) != axes):
            field, jump = [None] * axes, [None] * axes
        elif step.windows is not None:
            for axis, window in enumerate(step.windows):
                current, distance = field[axis], jump[axis]
                if current is None or distance is None:
                    continue
                field[axis] = current + _widest(chains[axis], window.extent - 1)
                jump[axis] = distance * window.stride
                _chain(chains[axis], window.stride)
        rows.append(
            Row(
                index=index,
                type=spec.type,
                arguments=arguments,
                given=tuple(spec.arguments),
                input=shape,
                output=step.output,
                params=step.params,
                buffers=step.buffers,
                macs=step.macs,
                receptive_field=tuple(field),
                jump=tuple(jump),
                uncovered=step.uncovered,
            )
        )
        shape = step.output
    return StackResult(input=tuple(input_shape), rows=tuple(rows))


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
