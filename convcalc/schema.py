"""How a layer's arguments are declared: each one once, with its type, default, choices, checks and inference.

A layer's :class:`Arg` list is the one place that says what the layer takes.
Validation (:func:`check_arguments`), defaults, inference from the incoming
shape, ``--verify`` and ``--emit`` all read it.

>>> arg = Arg("p", Type.NUMBER, 0.5, check=lambda p: None if 0 <= p <= 1 else "must be between 0 and 1")
>>> arg.problem(float("nan"))
'must be a finite number, got nan'
>>> arg.problem(1.5)
'must be between 0 and 1, got 1.5'
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from convcalc.expr import ExprError, parse
from convcalc.formulas import INT64  # the catalogue's checks use it from here too

__all__ = ["FLOAT32_MAX", "INT64", "NUMERIC", "REQUIRED", "Arg", "Type", "check_arguments", "float32",
           "holds_expression", "is_int"]  # fmt: skip

REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "REQUIRED"})()
"""Marks an argument that has no default."""

FLOAT32_MAX = 3.4028234663852886e38
"""The largest float32: a layer's float arguments reach a float32 input's kernel as float32."""


def float32(value: Any) -> str | None:
    """The check of a float argument that torch converts to the input's dtype (float32 here)."""
    return None if abs(value) <= FLOAT32_MAX else f"must lie within float32's range (at most {FLOAT32_MAX!r})"


def is_int(value: Any) -> bool:
    """An integer that torch can hold (bools are not integers here)."""
    return type(value) is int and -INT64 < value < INT64


def _is_number(value: Any) -> bool:
    return (type(value) is float and math.isfinite(value)) or is_int(value)


def _items(value: Any, allowed: Callable[[Any], bool]) -> bool:
    if type(value) is not list:
        return allowed(value)
    if not value:
        return False
    return all(allowed(item) for item in value)


class Type(enum.Enum):
    """The kinds of value an argument takes, each with the words an error uses for it."""

    INT = "an integer"
    NUMBER = "a finite number"
    BOOL = "true or false"
    TEXT = "a string"
    PER_AXIS = "an integer or a list of integers"
    SIZES = "a list of integers"
    PADDING = "an integer, a list of integers, 'same' or 'valid'"
    OPTIONAL_SIZES = "an integer or a list of integers and nulls"
    NUMBERS = "a finite number or a list of finite numbers"
    NAME = "a name (text)"
    NAMES = "a name or a list of names"
    CROP = "true, false or 'center'"
    BRANCH = "a list of layers"

    @property
    def plural(self) -> bool:
        """Whether a list is a value of this type."""
        return self in (Type.PER_AXIS, Type.SIZES, Type.PADDING, Type.OPTIONAL_SIZES, Type.NUMBERS)

    def accepts(self, value: Any) -> bool:
        if self is Type.INT:
            return is_int(value)
        if self is Type.NUMBER:
            return _is_number(value)
        if self is Type.BOOL:
            return type(value) is bool
        if self is Type.TEXT:
            return type(value) is str
        if self is Type.PER_AXIS:
            return _items(value, is_int)
        if self is Type.SIZES:  # an empty list too: permute() of a 0-d tensor, reshape() to one
            return type(value) is list and all(is_int(item) for item in value)
        if self is Type.PADDING:
            return value in ("same", "valid") or _items(value, is_int)
        if self is Type.OPTIONAL_SIZES:
            return _items(value, lambda item: item is None or is_int(item))
        if self is Type.NUMBERS:
            return _items(value, _is_number)
        if self is Type.NAME:
            return type(value) is str and value != ""
        if self is Type.NAMES:
            return _items(value, lambda item: type(item) is str and item != "")
        if self is Type.CROP:
            return value is True or value is False or value == "center"
        return type(value) is list


@dataclass(frozen=True)
class Arg:
    """One argument of a layer, under torch's name."""

    name: str
    type: Type
    default: Any = REQUIRED
    choices: tuple[str, ...] = ()
    """For TEXT: the values torch takes."""
    nullable: bool = False
    """Whether null (None) is a value of its own (``stride=None``: the kernel size)."""
    check: Callable[[Any], str | None] | None = None
    """The range check torch's constructor makes on the value alone: the problem in words, or None."""
    infer: Callable[[tuple[int, ...], dict[str, Any]], Any] | None = None
    """How the value follows from the incoming shape (and the arguments declared before it), where torch's Lazy
    module infers it: once, on the network's first input (see :func:`convcalc.network.run_stack`)."""
    empty: bool = False
    """Whether an empty list is a value (a pool's ``stride: []`` is its kernel size; a pad's ``padding: []`` none)."""
    keyword_only: bool = False
    """Whether torch takes it by name only (BatchNorm's ``bias``): no positional argument reaches it."""
    sizes: bool = True
    """Whether a size expression may stand for it (not for a join's ``dim``, which the graph's shape rests on)."""

    def sized(self, value: Any) -> bool:
        """Whether ``value`` is (or holds) a size expression for this argument: a string where a number goes."""
        return self.sizes and self.type in NUMERIC and holds_expression(value) and not self.type.accepts(value)

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this argument (type, choices, range), or None. A size written as an
        expression (``"H // 7"``) is checked for its form only: its value, once the names are bound, is checked
        where the stack runs."""
        if value is None and (self.nullable or self.default is None):
            return None
        if self.sized(value):
            if isinstance(value, list) and not (self.type.plural or self.empty):
                return f"must be {self.type.value}, got {value!r}"
            for item in value if isinstance(value, list) else [value]:
                if type(item) is str:
                    try:
                        parse(item)
                    except ExprError as error:
                        return str(error)
                elif not Type.NUMBER.accepts(item) and not (item is None and self.type is Type.OPTIONAL_SIZES):
                    return f"must be {self.type.value}, got {value!r}"
            return None
        if self.empty and value == []:
            return None
        if not self.type.accepts(value):
            items = value if isinstance(value, list) else [value]
            if any(type(item) is int and not -INT64 < item < INT64 for item in items):
                return f"must lie within torch's 64-bit integers (at most {INT64 - 1}), got {value!r}"
            shown = "nan" if isinstance(value, float) and math.isnan(value) else repr(value)
            if isinstance(value, list) and any(isinstance(v, float) and not math.isfinite(v) for v in value):
                shown = "[" + ", ".join("nan" if v != v else repr(v) for v in value) + "]"
            return f"must be {self.type.value}, got {shown}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(repr, self.choices))}, got {value!r}"
        if self.check is not None:
            problem = self.check(value)
            if problem:
                return f"{problem}, got {value!r}"
        return None


NUMERIC = frozenset({Type.INT, Type.NUMBER, Type.PER_AXIS, Type.SIZES, Type.PADDING, Type.OPTIONAL_SIZES,
                     Type.NUMBERS})  # fmt: skip
"""The types whose values may be written as size expressions."""


def holds_expression(value: Any) -> bool:
    """Whether a value is, or holds, a size expression (a string where a number goes)."""
    return type(value) is str or (type(value) is list and any(type(item) is str for item in value))


def check_arguments(args: Sequence[Arg], given: dict[str, Any]) -> tuple[str, str] | None:
    """The first given argument that is wrong, as (name, problem), or None."""
    for arg in args:
        if arg.name in given:
            problem = arg.problem(given[arg.name])
            if problem:
                return arg.name, problem
    return None
