"""Sizes that follow a tensor: small arithmetic over named sizes, read from a stack file, never run as code.

A stack file may write a size as an expression over names that a ``Dims`` step
binds to the dims of a tensor (``Dims: [B, H, W, C]``) or that a defined
block's arguments give: ``"(7 - W % 7) % 7"``, ``"Hp // 7"``, ``"B * nW"``. The
text is parsed with Python's own parser and only these forms are taken:
integers and numbers, names, ``+ - * / // % **``, unary ``-``, comparisons
(``Hp > 7`` is 1 or 0), ``a if c else b``, ``min(a, b)`` and ``max(a, b)``.
Anything else (a call, an attribute, a subscript, a string) is refused, and an
expression is evaluated by walking its tree: no text of the file ever runs.

Code that ``--emit torch`` writes for an expression is rebuilt from the tree
with the names replaced by identifiers convcalc makes (``dims_3[1]``), so the
file's names never reach the code either.

>>> size = parse("(7 - W % 7) % 7")
>>> sorted(size.names), size.evaluate({"W": 30})
(['W'], 5)
>>> size.code(lambda name: "x.shape[2]")
'(7 - x.shape[2] % 7) % 7'
>>> parse("3 if Hp > 7 else 0").evaluate({"Hp": 56})
3
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from convcalc.errors import ConvcalcError

__all__ = ["Expr", "ExprError", "is_expression", "parse", "substitute"]

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_CALLS = {"min": min, "max": max}
_LONGEST = 1000
"""Most characters an expression may have: a size is a short formula."""
_LARGEST = 2**64
"""Beyond this, an intermediate can no longer be a size torch could use: refused before it grows further."""


class ExprError(ConvcalcError):
    """An expression that cannot be read, or cannot be evaluated (an unbound name, a division by zero)."""


@dataclass(frozen=True, eq=False)
class Expr:
    """A parsed size expression: its text, its tree and the names it reads."""

    text: str
    tree: ast.expr
    names: frozenset[str]

    def evaluate(self, bound: Mapping[str, int | float]) -> int | float:
        """The value with ``bound``'s values for the names; ExprError for a name not bound, a division by zero or
        a value too large to be any size."""
        return _evaluate(self.tree, bound, self.text)

    def code(self, name_code: Callable[[str], str], python: bool = True) -> str:
        """Source for the expression, each name replaced by ``name_code(name)`` (convcalc's own identifiers):
        rebuilt from the tree, never the text as written. ``python``: as Python code (a comparison is an int, as
        the expression reads it: ``int(a > b)``); else as an expression again."""
        return _code(self.tree, name_code, 0, python)

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"


def is_expression(value: Any) -> bool:
    """Whether ``value`` is written as an expression (a string) rather than a number."""
    return type(value) is str


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """Parse a size expression, or raise ExprError saying what is not allowed."""
    if len(text) > _LONGEST:
        raise ExprError(f"an expression of {len(text):,} characters: a size is a short formula (at most {_LONGEST})")
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise ExprError(f"{text!r} is not an expression: write a size such as 'H // 7' or '(7 - W % 7) % 7'") from None
    names: set[str] = set()
    _check(tree, names, text)
    return Expr(text=text, tree=tree, names=frozenset(names))


def _check(node: ast.expr, names: set[str], text: str) -> None:
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float) or (type(node.value) is float and not math.isfinite(node.value)):
            raise ExprError(f"{text!r}: only integers and finite numbers may appear, not {node.value!r}")
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left, names, text)
        _check(node.right, names, text)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        _check(node.operand, names, text)
    elif isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        _check(node.left, names, text)
        _check(node.comparators[0], names, text)
    elif isinstance(node, ast.IfExp):
        for part in (node.test, node.body, node.orelse):
            _check(part, names, text)
    elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS
          and len(node.args) == 2 and not node.keywords):  # fmt: skip
        for argument in node.args:
            _check(argument, names, text)
    else:
        raise ExprError(f"{text!r}: only numbers, names, + - * / // % **, comparisons, 'a if c else b', min() "
                        "and max() may appear in a size expression")  # fmt: skip


def _evaluate(node: ast.expr, bound: Mapping[str, int | float], text: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in bound:
            known = ", ".join(sorted(bound)) or "none yet"
            raise ExprError(f"{text!r}: the name {node.id!r} is not bound (bind it with Dims, or as a defined "
                            f"block's argument; bound: {known})")  # fmt: skip
        return bound[node.id]
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, bound, text), _evaluate(node.right, bound, text)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or (isinstance(right, int) and right < 0 and left == 0)):
            raise ExprError(f"{text!r}: a power of {right} is beyond any size")
        try:
            value = _BINARY[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ExprError(f"{text!r} divides by zero") from None
        except OverflowError:
            raise ExprError(f"{text!r} overflows") from None
        return _bounded(value, text)
    if isinstance(node, ast.UnaryOp):
        value = _evaluate(node.operand, bound, text)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Compare):
        return int(_COMPARE[type(node.ops[0])](_evaluate(node.left, bound, text),
                                                 _evaluate(node.comparators[0], bound, text)))  # fmt: skip
    if isinstance(node, ast.IfExp):
        chosen = node.body if _evaluate(node.test, bound, text) else node.orelse
        return _evaluate(chosen, bound, text)
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    return _CALLS[node.func.id](*(_evaluate(argument, bound, text) for argument in node.args))


def _bounded(value: Any, text: str) -> Any:
    if isinstance(value, complex) or (isinstance(value, float) and not math.isfinite(value)):
        raise ExprError(f"{text!r} is not a finite number")
    if abs(value) >= _LARGEST:
        raise ExprError(f"{text!r} is beyond any size torch can use")
    return value


_PRECEDENCE = {ast.IfExp: 1, ast.Compare: 2, ast.Add: 3, ast.Sub: 3, ast.Mult: 4, ast.Div: 4, ast.FloorDiv: 4,
               ast.Mod: 4, ast.USub: 5, ast.UAdd: 5, ast.Pow: 6}  # fmt: skip


def _code(node: ast.expr, name_code: Callable[[str], str], outer: int, python: bool = True) -> str:
    """Source for ``node`` inside an operator of precedence ``outer`` (parenthesised where it binds looser)."""

    def inner(part: ast.expr, level: int) -> str:
        return _code(part, name_code, level, python)

    if isinstance(node, ast.Constant):
        return repr(node.value)
    if isinstance(node, ast.Name):
        return name_code(node.id)
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return f"{node.func.id}({', '.join(inner(argument, 0) for argument in node.args)})"
    if isinstance(node, ast.BinOp):
        level = _PRECEDENCE[type(node.op)]
        symbol = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%",
                  ast.Pow: "**"}[type(node.op)]  # fmt: skip
        if isinstance(node.op, ast.Pow):  # right-associative
            text = f"{inner(node.left, level + 1)} ** {inner(node.right, level)}"
        else:
            text = f"{inner(node.left, level)} {symbol} {inner(node.right, level + 1)}"
    elif isinstance(node, ast.UnaryOp):
        level = _PRECEDENCE[type(node.op)]
        text = f"{'-' if isinstance(node.op, ast.USub) else '+'}{inner(node.operand, level)}"
    elif isinstance(node, ast.Compare):
        level = _PRECEDENCE[ast.Compare]
        symbol = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==",
                  ast.NotEq: "!="}[type(node.ops[0])]  # fmt: skip
        text = f"{inner(node.left, level + 1)} {symbol} {inner(node.comparators[0], level + 1)}"
        if python:  # an int, as the expression reads a comparison; int(...) binds tightest
            text, level = f"int({text})", 7
    else:
        assert isinstance(node, ast.IfExp)
        level = _PRECEDENCE[ast.IfExp]
        text = f"{inner(node.body, level + 1)} if {inner(node.test, level + 1)} else {inner(node.orelse, level)}"
    return f"({text})" if level < outer else text


def substitute(value: Any, constants: Mapping[str, int | float]) -> Any:
    """``value`` with the ``constants`` put in: an expression that reads only constants becomes its number, one
    that reads other names too keeps them (rewritten as text), and anything else is returned as it is; lists are
    substituted item by item. A defined block's arguments are put in this way where the block is used.

    >>> substitute(["B", "3 * dim", "heads"], {"dim": 96, "heads": 3})
    ['B', 288, 3]
    >>> substitute("Hp // ws", {"ws": 7})
    'Hp // 7'
    """
    if isinstance(value, list):
        return [substitute(item, constants) for item in value]
    if not is_expression(value):
        return value
    expression = parse(value)
    if not expression.names & set(constants):
        return value
    if expression.names <= set(constants):
        return expression.evaluate(constants)
    return expression.code(lambda name: repr(constants[name]) if name in constants else name, python=False)
