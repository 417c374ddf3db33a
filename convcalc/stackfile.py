"""Reading a stack file: the one module that touches YAML.

The file is YAML (so JSON works too). PyYAML's C parser builds the node graph;
this module turns the nodes into plain data itself, in one walk, so that every
layer keeps its line and nothing YAML 1.1 does by surprise slips through:

- a tag that would build a Python object (or any tag but YAML's plain ones) is refused;
- a key given twice in one mapping is refused, naming both lines;
- ``010`` (octal 8 in YAML 1.1), ``1:00`` (base-60: 60), dates and ``yes``/``no``/``on``/``off``
  as true/false are refused with what to write instead;
- keys are the text written (``on:`` is the key ``'on'``, not true), on their own line;
- aliases are allowed, but a file that expands to more than :data:`MAX_NODES` values is refused
  before anything is built ("billion laughs").

    input: [1, 3, 227, 227]
    layers:
      - Conv2d: {out_channels: 96, kernel_size: 11, stride: 4}
      - ReLU
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from convcalc.catalog import LAYERS
from convcalc.errors import ConvcalcError, StackSpecError
from convcalc.network import MAX_RANK
from convcalc.schema import INT64, REQUIRED
from convcalc.spec import BLOCKS, JOINS, Defined, Item, LayerSpec, resolve

__all__ = ["MAX_NODES", "StackFileError", "load_stack"]


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (with the C parser where PyYAML has it, ~10x faster), whose resolver remembers the
    tag of each plain scalar it has seen: a stack file repeats the same few words thousands of times."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._tags: dict[tuple[Any, Any], str] = {}

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is not yaml.ScalarNode:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag


MAX_NODES = 1_000_000
"""Most YAML values a stack file may expand to, aliases counted each time they are used."""

_TAG = "tag:yaml.org,2002:"
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")
_OTHER_BASE = re.compile(r"[-+]?0(?:x_*[0-9a-fA-F][0-9a-fA-F_]*|b_*[01][01_]*)")
_OCTAL = re.compile(r"[-+]?0_*[0-7][0-7_]*")
_FLOAT = re.compile(r"[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+")
_BOOLEANS = {"yes": True, "on": True, "no": False, "off": False}
_DIGITS = 40
"""Longest integer literal read: torch's sizes are 64-bit (19 digits), so anything longer is refused anyway."""


class StackFileError(ConvcalcError):
    """The stack file cannot be read as a stack: its name and line say where."""


class _Refused(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        self.line = node.start_mark.line + 1
        self.message = message


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is copied out (each shared node counted once per use)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    sizes[id(node)] = MAX_NODES + 1  # a node that contains itself expands without end
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, sizes) for item in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    else:
        size = 1
    sizes[id(node)] = min(size, MAX_NODES + 1)
    return sizes[id(node)]


def _scalar(node: yaml.ScalarNode) -> Any:
    """A plain scalar as YAML 1.2 reads it, or _Refused where YAML 1.1 would read it otherwise."""
    tag, text = node.tag, node.value
    if tag == _TAG + "str":
        return text
    if tag == _TAG + "int":
        if _DECIMAL.fullmatch(text) or _OTHER_BASE.fullmatch(text):
            digits = text.replace("_", "")
            if len(digits) > _DIGITS:
                raise _Refused(node, f"the integer {text[:12]}... has {len(digits)} digits: torch's sizes are "
                                     "64-bit integers, at most 9223372036854775807")  # fmt: skip
            return int(digits, 0) if not _DECIMAL.fullmatch(text) else int(digits)
        if _OCTAL.fullmatch(text):
            raise _Refused(node, f"{text} reads as an octal number in YAML 1.1 ({int(text.replace('_', ''), 8)}): "
                                 f"write it without the leading zeros")  # fmt: skip
        if ":" in text:
            raise _Refused(node, f"{text} reads as a base-60 number in YAML 1.1: write the number itself, "
                                 f"or quote it ('{text}') for text")  # fmt: skip
        raise _Refused(node, f"{text!r} is not an integer")
    if tag == _TAG + "float":
        lowered = text.lower().lstrip("+-")
        if lowered in (".inf", ".nan"):
            return float(text.lower().replace(".", ""))
        if ":" in text:
            raise _Refused(node, f"{text} reads as a base-60 number in YAML 1.1: write the number itself")
        if not _FLOAT.fullmatch(text):
            raise _Refused(node, f"{text!r} is not a number")
        return float(text.replace("_", ""))
    if tag == _TAG + "bool":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text.lower() in _BOOLEANS:
            raise _Refused(node, f"{text} reads as {_BOOLEANS[text.lower()]} in YAML 1.1: write true or false, "
                                 f"or quote it ('{text}') for text")  # fmt: skip
        raise _Refused(node, f"{text!r} is not true or false")
    if tag == _TAG + "null":
        return None
    if tag == _TAG + "timestamp":
        raise _Refused(node, f"{text} reads as a date: quote it ('{text}') for text")
    raise _Refused(node, f"refused: the tag {tag!r} (only plain YAML data is read, no tags that build objects)")


def _data(node: yaml.Node) -> Any:
    """Plain data (dicts, lists, str, int, float, bool, None) from a node."""
    if isinstance(node, yaml.ScalarNode):
        return _scalar(node)
    if isinstance(node, yaml.SequenceNode):
        if node.tag != _TAG + "seq":
            raise _Refused(node, f"refused: the tag {node.tag!r} (only plain YAML data is read)")
        return [_data(item) for item in node.value]
    if isinstance(node, yaml.MappingNode):
        return {key: _data(value) for key, (_, value) in _pairs(node).items()}
    raise _Refused(node, "not plain YAML data")  # pragma: no cover (the composer makes no other nodes)


def _pairs(node: yaml.MappingNode) -> dict[str, tuple[yaml.Node, yaml.Node]]:
    """A mapping's keys, as written, with their key and value nodes; merge keys (``<<: *base``) applied."""
    if node.tag != _TAG + "map":
        raise _Refused(node, f"refused: the tag {node.tag!r} (only plain YAML data is read)")
    pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag == _TAG + "merge":
            sources = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise _Refused(source, "a merge key (<<) takes a mapping or a list of mappings")
                for name, pair in _pairs(source).items():
                    merged.setdefault(name, pair)
            continue
        if not isinstance(key, yaml.ScalarNode):
            kind = "list" if isinstance(key, yaml.SequenceNode) else "mapping"
            raise _Refused(key, f"a key must be a name, got a {kind}")
        if key.value in pairs:
            first = pairs[key.value][0].start_mark.line + 1
            raise _Refused(key, f"the key {key.value!r} is given twice, on line {first} and on line "
                                f"{key.start_mark.line + 1}: keep one")  # fmt: skip
        pairs[key.value] = (key, value)
    return {**merged, **pairs}


def load_stack(text: str, name: str = "<stack>") -> tuple[tuple[int, ...], list[LayerSpec]]:
    """The input shape and the checked layer specs of a stack file's text."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        problem = error.problem or "not valid YAML"
        if error.context and error.context_mark and error.problem_mark:  # e.g. a duplicate anchor: both places
            problem = f"{error.context} (line {error.context_mark.line + 1}), {problem}"
        raise StackFileError(f"{name}{line}: {problem}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{name}: not valid YAML ({error})") from None
    except RecursionError:
        raise StackFileError(f"{name}: refused: the YAML is nested too deeply") from None
    finally:
        loader.dispose()
    try:
        return _stack(node, name, text)
    except _Refused as refused:
        raise StackFileError(f"{name}, line {refused.line}: {refused.message}") from None
    except RecursionError:
        raise StackFileError(f"{name}: refused: the YAML is nested too deeply") from None


def _stack(node: yaml.Node | None, name: str, text: str) -> tuple[tuple[int, ...], list[LayerSpec]]:
    if node is not None and "*" in text and _expanded_size(node, {}) > MAX_NODES:  # without an alias, nothing is shared
        raise StackFileError(
            f"{name}: refused: the file expands to more than {MAX_NODES:,} YAML values "
            "(aliases that repeat aliases, as in a 'billion laughs' file)"
        )
    if not isinstance(node, yaml.MappingNode):
        raise StackFileError(f"{name}: expected a mapping with 'input' and 'layers', e.g. input: [1, 3, 224, 224]")
    pairs = _pairs(node)
    for key, (key_node, _) in pairs.items():
        if key not in ("input", "layers", "define"):
            raise _Refused(key_node, f"unknown key {key!r}: use input, layers and define")
    if "input" not in pairs:
        raise StackFileError(f"{name}: 'input' is missing: give the input shape, batch first, e.g. [1, 3, 224, 224]")
    if "layers" not in pairs:
        raise StackFileError(f"{name}: 'layers' must be a list of layers")
    if not isinstance(pairs["layers"][1], yaml.SequenceNode):
        raise _Refused(pairs["layers"][1], "'layers' must be a list of layers")
    shape_node = pairs["input"][1]
    shape = _data(shape_node)
    if not isinstance(shape, list) or not 1 <= len(shape) <= MAX_RANK or not all(_positive(n) for n in shape):
        shown = repr(shape) if not isinstance(shape, list) or len(shape) <= 8 else f"a list of {len(shape)}"
        raise _Refused(
            shape_node,
            f"input must be a list of 1 to {MAX_RANK} positive integers, batch first, e.g. [1, 3, 224, 224]; "
            f"got {shown}",
        )
    reader = _Layers(text)
    defined = _defined(reader, pairs["define"][1]) if "define" in pairs else {}
    items = reader.items(pairs["layers"][1])
    try:
        specs = resolve(items, dims=len(shape) - 2, defined=defined)
    except StackSpecError as error:
        where = f", line {error.line}" if error.line else ""
        raise StackFileError(f"{name}{where}: {error}") from None
    return tuple(shape), specs


def _defined(reader: _Layers, node: yaml.Node) -> dict[str, Defined]:
    """The blocks under ``define:``: each a name mapping to its ``arguments`` (names and defaults; null: none) and
    its ``layers``."""
    if not isinstance(node, yaml.MappingNode):
        raise _Refused(node, "define must be a mapping of block names to their arguments and layers")
    defined = {}
    for name, (key, value) in _pairs(node).items():
        taken = name in LAYERS or name in BLOCKS or name in JOINS
        if taken or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            why = "a layer or step of its own" if taken else "no name (letters, digits and _)"
            raise _Refused(key, f"the defined block {name!r} is {why}: give it another name")
        if not isinstance(value, yaml.MappingNode):
            raise _Refused(value, f"{name} must be a mapping with arguments and layers")
        parts = _pairs(value)
        for part, (part_key, _) in parts.items():
            if part not in ("arguments", "layers"):
                raise _Refused(part_key, f"unknown key {part!r} in {name}: use arguments and layers")
        if "layers" not in parts or not isinstance(parts["layers"][1], yaml.SequenceNode):
            raise _Refused(value, f"{name} needs layers: a list of layers")
        arguments = _data(parts["arguments"][1]) if "arguments" in parts else {}
        if not isinstance(arguments, dict):
            raise _Refused(parts["arguments"][1], f"{name}'s arguments must be a mapping of names to defaults")
        for argument in arguments:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", argument):
                raise _Refused(parts["arguments"][1], f"{name}'s argument {argument!r} is no name")
        defaults = {argument: REQUIRED if default is None else default for argument, default in arguments.items()}
        defined[name] = Defined(name, defaults, tuple(reader.items(parts["layers"][1])), key.start_mark.line + 1)
    return defined


def _positive(value: Any) -> bool:
    return type(value) is int and 1 <= value < INT64


class _Layers:
    """Items from layer-list nodes. A layer written the same way as one before it (the same characters: a stack
    file repeats a few layers many times) is read once."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.seen: dict[str, tuple[str, dict[str, Any], tuple[Any, ...]]] = {}

    def items(self, node: yaml.SequenceNode) -> list[Item]:
        """One Item per entry of a layer list; a block's branches become item lists too."""
        if node.tag != _TAG + "seq":
            raise _Refused(node, f"refused: the tag {node.tag!r} (only plain YAML data is read)")
        return [self.item(entry, position) for position, entry in enumerate(node.value, start=1)]

    def item(self, node: yaml.Node, position: int) -> Item:
        line = node.start_mark.line + 1
        written = self.text[node.start_mark.index : node.end_mark.index]
        if "*" in written:  # an alias means what its anchor meant last, which the same characters may not
            written = ""
        known = self.seen.get(written) if written else None
        if known is not None:
            return Item(*known, line)
        layer = _data(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(layer, str) and layer:
            if written:
                self.seen[written] = (layer, {}, ())
            return Item(layer, {}, (), line)
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            raise _Refused(
                node,
                f"layer {position} must be a layer name (ReLU) or a one-key mapping to its arguments "
                f"(Conv2d: {{out_channels: 64, kernel_size: 3}}), got {_data(node)!r}",
            )
        ((layer, (_, value)),) = _pairs(node).items()
        if isinstance(value, yaml.MappingNode):
            arguments: dict[str, Any] = {}
            for key, (_, argument) in _pairs(value).items():
                if layer in BLOCKS and key in BLOCKS[layer].branches:
                    arguments[key] = self.branch(argument, key)
                else:
                    arguments[key] = _data(argument)
            if written and layer not in BLOCKS:  # a block's items carry lines of their own
                self.seen[written] = (layer, arguments, ())
            return Item(layer, arguments, (), line)
        data = _data(value)
        positional = () if data is None else tuple(data) if isinstance(data, list) else (data,)
        if written and layer not in BLOCKS:
            self.seen[written] = (layer, {}, positional)
        return Item(layer, {}, positional, line)

    def branch(self, node: yaml.Node, key: str) -> Any:
        """A block's branch: a list of layers, or (``branches`` of a Parallel) a list of such lists."""
        if not isinstance(node, yaml.SequenceNode):
            return _data(node)  # resolve() says what is wrong with it
        if key == "branches":
            return [self.items(branch) if isinstance(branch, yaml.SequenceNode) else _data(branch)
                    for branch in node.value]  # fmt: skip
        return self.items(node)
