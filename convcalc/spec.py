"""Checking a stack's layer specs before anything runs: known names, known arguments, values of the right kind.

:func:`resolve` turns the items of a stack file (a name, keywords or
positional arguments, a line) into :class:`LayerSpec` objects, each argument
checked against its one declaration in the catalogue (:mod:`convcalc.schema`).
Nothing here knows shapes: :mod:`convcalc.network` runs the specs.

>>> [spec.type for spec in resolve([("Conv2d", {"out_channels": 8, "kernel_size": 3}, None), ("ReLU", {}, None)])]
['Conv2d', 'ReLU']
>>> resolve([Item("Conv2d", {}, (1, 5, 5))])[0].arguments
{'in_channels': 1, 'out_channels': 5, 'kernel_size': 5}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from convcalc.catalog import LAYERS
from convcalc.errors import StackSpecError
from convcalc.expr import ExprError, is_expression, substitute
from convcalc.schema import REQUIRED, Arg, Type, check_arguments
from convcalc.tensors import BUFFERS, CONSTANTS

__all__ = ["BLOCKS", "JOINS", "JOIN_TYPES", "MAX_LAYERS", "SPLITS", "STARTS", "Block", "Defined", "Item",
           "LayerSpec", "layer_count", "resolve"]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class LayerSpec:
    """One layer as the stack file names it, its arguments checked."""

    type: str
    arguments: dict[str, Any]
    """Only what the file gives; defaults and inferred values are added when the stack runs."""
    line: int | None = None
    blocks: dict[str, tuple[LayerSpec, ...]] = field(default_factory=dict)
    """The branches of a block: ``body`` and ``shortcut`` of a Residual, ``layers`` of a Repeat."""
    key: Any = None
    """The type and arguments as one hashable value: equal keys run alike on equal shapes."""
    expressions: tuple[str, ...] = ()
    """The arguments written as size expressions, worked out where the stack runs."""
    module: str | None = None
    """Where the layer sits in a model it came from (``layer1.0.conv1``, written ``module:``): the name its weights
    have in that model's state_dict, and in the module ``--emit torch`` writes."""


_MODULE = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
"""A module's qualified name: names (or indices) joined by dots."""


def _module(item: Item, label: str) -> tuple[Item, str | None]:
    """The item without its ``module:`` key, and that key's qualified name (checked)."""
    if "module" not in item.keywords:
        return item, None
    name = item.keywords["module"]
    if type(name) is not str or not _MODULE.fullmatch(name) or len(name) > 1000:
        raise StackSpecError(f"{label}: module must be a qualified name such as layer1.0.conv1 (names or indices "
                             f"joined by dots), got {name!r}", line=item.line)  # fmt: skip
    keywords = {key: value for key, value in item.keywords.items() if key != "module"}
    return Item(item.type, keywords, item.positional, item.line), name


def _frozen(value: Any) -> Any:
    return tuple(_frozen(item) for item in value) if isinstance(value, (list, tuple)) else value


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


JOIN_TYPES = ("Concat", "Add", "Mul")
"""How tensors are joined: ``torch.cat`` (in the order written), ``+`` and ``*`` (both broadcast as torch does)."""

BLOCKS = {
    "Residual": Block(branches=("body", "shortcut"), required=("body",)),
    "Repeat": Block(branches=("layers",), required=("layers",), args=(Arg("times", Type.INT, check=_positive),)),
    "Sequential": Block(branches=("layers",), required=("layers",), args=(Arg("name", Type.TEXT, ""),)),
    "Parallel": Block(
        branches=("branches",),
        required=("branches",),
        args=(Arg("join", Type.TEXT, choices=JOIN_TYPES), Arg("dim", Type.INT, 1, sizes=False)),
    ),
}
"""Blocks and what they hold. A Parallel's ``branches`` is a list of branches, each a list of layers (``[]``: the
block's input itself), all starting from the block's input and joined in the order written."""
_NAMES = Arg("names", Type.NAMES)
JOINS: dict[str, tuple[Arg, ...]] = {
    "Save": (Arg("name", Type.NAME),),
    "From": (Arg("name", Type.NAME),),
    "Add": (Arg("with", Type.NAMES),),
    "Mul": (Arg("with", Type.NAMES),),
    "Concat": (Arg("with", Type.NAMES), Arg("dim", Type.INT, 1, sizes=False), Arg("crop", Type.CROP, False)),
    "matmul": (Arg("with", Type.NAME),),
    "index": (Arg("with", Type.NAME),),
    "chunk": (Arg("chunks", Type.INT), Arg("dim", Type.INT, 0, sizes=False), _NAMES),
    "split": (Arg("split_size_or_sections", Type.PER_AXIS), Arg("dim", Type.INT, 0, sizes=False), _NAMES),
    "tensor_split": (Arg("sections", Type.PER_AXIS, empty=True), Arg("dim", Type.INT, 0, sizes=False), _NAMES),
    "unbind": (Arg("dim", Type.INT, 0, sizes=False), _NAMES),
    "Dims": (Arg("names", Type.NAMES),),
    "Check": (Arg("condition", Type.TEXT), Arg("message", Type.TEXT, "")),
    "Output": (Arg("name", Type.NAME),),
    "Parameter": (Arg("name", Type.NAME), Arg("shape", Type.SIZES), Arg("init", Type.NUMBER, 0.0)),
    "Buffer": (
        Arg("name", Type.NAME),
        Arg("kind", Type.TEXT, choices=tuple(BUFFERS)),
        Arg("window_size", Type.PER_AXIS),
        Arg("flat", Type.BOOL, True),
    ),
    "Constant": (
        Arg("name", Type.NAME),
        Arg("kind", Type.TEXT, choices=tuple(CONSTANTS)),
        Arg("size", Type.SIZES),
        Arg("window_size", Type.PER_AXIS, None),
        Arg("shift_size", Type.PER_AXIS, 0),
    ),
}
"""Steps that name tensors, go back to one, join them, split them and make them, with the arguments they take:

- ``Save: NAME`` names the current tensor; ``From: NAME`` goes on from a named one;
- ``Add``, ``Mul`` and ``Concat`` join the current tensor with named ones, in that order; ``matmul: {with: k}`` is
  ``torch.matmul(x, k)``, ``index: {with: i}`` is ``x[i]``;
- ``chunk``, ``split``, ``tensor_split`` and ``unbind`` name their parts (``names``) and go on from the first;
- ``Dims: [B, H, W, C]`` names the current tensor's sizes, for size expressions after it (``_`` skips a dim);
  ``Check: "H % 7 == 0"`` refuses an input for which the condition is false, as a ``torch._assert`` in a model's
  ``forward`` does;
- ``Output: NAME`` makes the current tensor one of the stack's outputs, under that name;
- ``Parameter``, ``Buffer`` and ``Constant`` make a tensor (learned, registered, or computed on each pass), name it
  and go on from it."""
STARTS = frozenset({"Parameter", "Buffer", "Constant"})
"""Steps whose tensor takes no input: the stack goes on from a new tensor."""
SPLITS = frozenset({"chunk", "split", "tensor_split", "unbind"})
"""Steps that make several tensors, each named."""
MAX_LAYERS = 100_000
"""Most layers a stack may hold once every Repeat is written out."""


@dataclass(frozen=True)
class Item:
    """One entry of a layer list as a stack file writes it: a name, keywords and/or positional arguments, a line."""

    type: str
    keywords: dict[str, Any]
    positional: tuple[Any, ...] = ()
    line: int | None = None


@dataclass(frozen=True)
class Defined:
    """A block a stack file defines once (under ``define:``) and uses many times: its arguments with their
    defaults, and its layers, whose size expressions may read the arguments."""

    name: str
    arguments: dict[str, Any]
    items: tuple[Item, ...]
    line: int | None = None


@dataclass(frozen=True)
class _Scope:
    """What resolving an item needs besides the item: the blocks the file defines, the arguments of the defined
    block being resolved (its constants), and the defined blocks open around it (a block may not use itself)."""

    defined: dict[str, Defined] = field(default_factory=dict)
    constants: dict[str, Any] = field(default_factory=dict)
    open: tuple[str, ...] = ()


def resolve(items: Iterable[Item | tuple[str, dict[str, Any], int | None]], where: str = "layer",
            seen: dict[Any, tuple[dict[str, Any], Any]] | None = None, dims: int | None = None,
            defined: dict[str, Defined] | None = None, scope: _Scope | None = None) -> list[LayerSpec]:  # fmt: skip
    """Check items against the catalogue; raise StackSpecError at the first problem.

    An item is an :class:`Item` or a ``(type, keywords, line)`` tuple. A block's
    keywords hold its branches as lists of items, checked the same way.
    ``seen`` holds the layers already checked, by what they say: a stack file
    repeats the same few layers many times, and each is checked once. ``dims``,
    the spatial axes of the stack's input where known, picks the suggestion for
    a name such as ``MaxPool``: ``MaxPool2d`` for images.
    """
    seen = {} if seen is None else seen
    scope = scope if scope is not None else _Scope(defined or {})
    specs = []
    for position, entry in enumerate(items, start=1):
        try:
            specs.append(_spec(entry, position, where, seen, dims, scope))
        except StackSpecError as error:
            if error.position is None:
                error.position = position
            raise
    if where == "layer" and _count(specs) > MAX_LAYERS:
        raise StackSpecError(f"the stack expands to {_count(specs):,} layers; convcalc takes at most {MAX_LAYERS:,}")
    return specs


def _spec(entry: Item | tuple[str, dict[str, Any], int | None], position: int, where: str,
          seen: dict[Any, tuple[dict[str, Any], Any]], dims: int | None, scope: _Scope) -> LayerSpec:  # fmt: skip
    item = entry if isinstance(entry, Item) else Item(entry[0], entry[1], (), entry[2])
    label = f"{where} {position} ({item.type})"
    if item.type in scope.defined:
        return _instance(item, label, f"{where} {position}.", seen, dims, scope)
    item, module = _module(item, label)
    spec = _step_or_layer(item, label, where, position, seen, dims, scope)
    return replace(spec, module=module) if module else spec


def _step_or_layer(item: Item, label: str, where: str, position: int, seen: dict[Any, tuple[dict[str, Any], Any]],
                   dims: int | None, scope: _Scope) -> LayerSpec:  # fmt: skip
    if item.type in BLOCKS:
        return _block(item, label, f"{where} {position}.", seen, dims, scope)
    if item.type in JOINS:
        if item.type == "Dims" and len(item.positional) > 1:  # Dims: [B, H, W, C], one list of names
            item = Item(item.type, item.keywords, (list(item.positional),), item.line)
        arguments = _keywords(item, JOINS[item.type], label, scope.constants)
        if item.type == "Check":
            arguments["condition"] = substitute(arguments["condition"], scope.constants)
            arguments.setdefault("message", "")  # the failure names the condition when no message is given
            _condition(arguments["condition"], label, item.line)
        declared = {arg.name: arg for arg in JOINS[item.type]}
        sized = tuple(name for name, value in arguments.items() if declared[name].sized(value))
        return LayerSpec(type=item.type, arguments=arguments, line=item.line, key=item.type, expressions=sized)
    if item.type in LAYERS:
        return _layer(item, label, seen, scope.constants)
    choices = [*LAYERS, *BLOCKS, *JOINS]
    called = re.fullmatch(r"\s*(?:(?:torch\.)?nn\.)?([A-Za-z_][A-Za-z0-9_]*)\s*(?:\((.*)\))?\s*", item.type, re.DOTALL)
    if called and called[1] in choices and called[1] != item.type:  # Python's spelling: nn.Conv2d, Conv2d(1, 5, 5)
        written = f"{called[1]}: [{called[2].strip()}]" if called[2] and called[2].strip() else called[1]
        raise StackSpecError(f"{where} {position}: unknown layer {item.type!r}: a stack file writes the call as "
                             f"{written!r} (the name, then its arguments in a list or a mapping)",
                             line=item.line)  # fmt: skip
    for suffix in [f"{dims}d"] if dims in (1, 2, 3) else []:  # MaxPool: the one for the input's spatial axes
        exact = {choice.lower(): choice for choice in choices}.get(f"{item.type}{suffix}".lower())
        if exact:
            axes = "axis" if dims == 1 else "axes"
            raise StackSpecError(f"{where} {position}: unknown layer {item.type!r} (did you mean {exact}, for the "
                                 f"input's {dims} spatial {axes}?)", line=item.line)  # fmt: skip
    raise StackSpecError(f"{where} {position}: unknown layer {item.type!r}{_closest(item.type, choices)}",
                         line=item.line)  # fmt: skip


def _keywords(item: Item, args: Sequence[Arg], label: str, constants: dict[str, Any] | None = None
              ) -> dict[str, Any]:  # fmt: skip
    """The item's arguments by name (positional ones in torch's order), each checked against its declaration; the
    ``constants`` of a defined block put into the size expressions that read them."""
    names = [arg.name for arg in args]
    positional = [arg.name for arg in args if not arg.keyword_only]
    if len(item.positional) > len(positional):
        takes = f"{len(positional)} ({', '.join(positional)})" if positional else "none"
        raise StackSpecError(
            f"{label}: {len(item.positional)} positional arguments, but {item.type} takes at most {takes} "
            "(a list that is one argument goes in a list of its own: [[1, 1]], or give it by name)",
            line=item.line,
        )
    arguments = dict(zip(positional, item.positional))
    for key, value in item.keywords.items():
        if key not in names:
            known = ", ".join(names) or "none"
            raise StackSpecError(
                f"{label}: unknown keyword {key!r}{_closest(key, names)}; {item.type} takes: {known}", line=item.line
            )
        if key in arguments:
            raise StackSpecError(f"{label}: {key} is given twice, by position and by name", line=item.line)
        arguments[key] = value
    if constants:
        for arg in args:
            if arg.name in arguments and arg.sized(arguments[arg.name]):
                try:
                    arguments[arg.name] = substitute(arguments[arg.name], constants)
                except ExprError as error:
                    raise StackSpecError(f"{label}: {arg.name} {error}", line=item.line) from None
    wrong = check_arguments(args, arguments)
    if wrong:
        raise StackSpecError(f"{label}: {wrong[0]} {wrong[1]}", line=item.line)
    missing = [arg.name for arg in args if arg.default is REQUIRED and arg.infer is None and arg.name not in arguments]
    if missing:
        raise StackSpecError(f"{label}: missing {', '.join(missing)}", line=item.line)
    return arguments


def _condition(text: str, label: str, line: int | None) -> None:
    from convcalc.expr import ExprError, parse

    try:
        parse(text)
    except ExprError as error:
        raise StackSpecError(f"{label}: {error}", line=line) from None


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


def _layer(item: Item, label: str, seen: dict[Any, tuple[dict[str, Any], Any]], constants: dict[str, Any]
           ) -> LayerSpec:  # fmt: skip
    try:
        written = tuple((name, _frozen(value)) for name, value in item.keywords.items())
        said = (item.type, written, _frozen(item.positional), tuple((k, _frozen(v)) for k, v in constants.items()))
        known = seen.get(said)
    except TypeError:  # a mapping among the values: unhashable, and about to be refused anyway
        said, known = None, None
    if known is None:
        kind = LAYERS[item.type]
        if kind.varargs and item.positional:  # x.permute(0, 2, 1), or x.permute([0, 2, 1]): one list either way
            values = item.positional
            single = len(values) == 1 and isinstance(values[0], list)
            item = Item(item.type, item.keywords, (values[0] if single else list(values),), item.line)
        arguments = _keywords(item, kind.args, label, constants)
        for name, other in kind.needs:
            if name in arguments and other not in arguments:
                raise StackSpecError(f"{label}: {name} needs {other} too (torch's {item.type}() takes {name} only "
                                     f"with {other}; {other}: null means every one)", line=item.line)  # fmt: skip
        if kind.check is not None and not any(arg.sized(arguments.get(arg.name)) for arg in kind.args):
            problem = kind.check({**{arg.name: arg.default for arg in kind.args}, **arguments})
            if problem:
                raise StackSpecError(f"{label}: {problem}", line=item.line)
        known = arguments, (item.type, tuple((name, _frozen(value)) for name, value in arguments.items()))
        if said is not None:
            seen[said] = known
    arguments, key = known
    declared = {arg.name: arg for arg in LAYERS[item.type].args}
    sized = tuple(name for name, value in arguments.items() if declared[name].sized(value))
    return LayerSpec(type=item.type, arguments=arguments, line=item.line, key=key, expressions=sized)


def _instance(item: Item, label: str, where: str, seen: dict[Any, tuple[dict[str, Any], Any]], dims: int | None,
              scope: _Scope) -> LayerSpec:  # fmt: skip
    """A use of a block the file defines: its layers, with the arguments given here (or their defaults) put in."""
    block = scope.defined[item.type]
    if item.type in scope.open:
        raise StackSpecError(f"{label}: the block {item.type} uses itself (through {' > '.join(scope.open)})",
                             line=item.line)  # fmt: skip
    if item.positional:
        raise StackSpecError(f"{label}: give a defined block's arguments by name: {', '.join(block.arguments)}",
                             line=item.line)  # fmt: skip
    values = dict(block.arguments)
    for key, value in item.keywords.items():
        if key not in values:
            known = ", ".join(values) or "none"
            raise StackSpecError(f"{label}: unknown argument {key!r}{_closest(key, values)}; {item.type} takes: "
                                 f"{known}", line=item.line)  # fmt: skip
        try:
            values[key] = substitute(value, scope.constants)
        except ExprError as error:
            raise StackSpecError(f"{label}: {key} {error}", line=item.line) from None
    for key, value in values.items():
        if value is REQUIRED:
            raise StackSpecError(f"{label}: missing {key} (the block {item.type} has no default for it)",
                                 line=item.line)  # fmt: skip
        if isinstance(value, str) and is_expression(value):
            raise StackSpecError(f"{label}: {key} {value!r} must be a number here: a defined block's arguments "
                                 "are fixed where it is used", line=item.line)  # fmt: skip
    inner = _Scope(scope.defined, values, (*scope.open, item.type))
    layers = resolve(block.items, f"{where}layers layer", seen, dims, scope=inner)
    return LayerSpec(type="Sequential", arguments={"name": item.type, **values}, line=item.line,
                     blocks={"layers": tuple(layers)})  # fmt: skip


def _block(item: Item, label: str, where: str, seen: dict[Any, tuple[dict[str, Any], Any]], dims: int | None,
           scope: _Scope) -> LayerSpec:  # fmt: skip
    block = BLOCKS[item.type]
    branch_args = tuple(Arg(name, Type.BRANCH, REQUIRED if name in block.required else None)
                        for name in block.branches)  # fmt: skip
    arguments = _keywords(item, (*branch_args, *block.args), label, scope.constants)
    if isinstance(arguments.get("times"), str):  # a name no defined block's argument binds: the graph rests on it
        raise StackSpecError(f"{label}: times must be an integer (or a defined block's argument), got "
                             f"{arguments['times']!r}: a Repeat's copies cannot follow the input",
                             line=item.line)  # fmt: skip
    for key in block.required:
        if not arguments.get(key):
            what = "a list of branches, each a list of layers" if key == "branches" else "a list of layers"
            raise StackSpecError(f"{label}: {key} must be {what}", line=item.line)
    if item.type == "Parallel":
        branches = arguments.pop("branches")
        for position, branch in enumerate(branches, start=1):
            if not isinstance(branch, list):
                raise StackSpecError(f"{label}: branch {position} must be a list of layers ([] for the block's "
                                     f"input itself), got {branch!r}", line=item.line)  # fmt: skip
        blocks = {
            f"branch{position}": tuple(resolve(branch, f"{where}branch{position} layer", seen, dims, scope=scope))
            for position, branch in enumerate(branches, start=1)
        }
        return LayerSpec(type=item.type, arguments=arguments, line=item.line, blocks=blocks)
    blocks = {
        key: tuple(resolve(arguments.pop(key), f"{where}{key} layer", seen, dims, scope=scope))
        for key in block.branches
        if key in arguments
    }
    return LayerSpec(type=item.type, arguments=arguments, line=item.line, blocks=blocks)
