"""Reading a stack file: the one module that touches YAML.

The file is YAML (so JSON works too), read with PyYAML's safe loader only: a
tag that would build a Python object is refused. Every problem is reported
with the file's name and, where YAML knows it, the line.

    input: [1, 3, 227, 227]
    layers:
      - Conv2d: {out_channels: 96, kernel_size: 11, stride: 4}
      - ReLU
"""

from __future__ import annotations

from typing import Any

import yaml

from convcalc.errors import ConvcalcError
from convcalc.stack import BLOCKS, Item, LayerSpec, StackSpecError, resolve

__all__ = ["MAX_NODES", "StackFileError", "load_stack"]

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader, where PyYAML has it, is ~10x faster


MAX_NODES = 1_000_000
"""Most YAML values a stack file may expand to, aliases counted each time they are used."""


class StackFileError(ConvcalcError):
    """The stack file cannot be read as a stack: its name and line say where."""


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


def load_stack(text: str, name: str = "<stack>") -> tuple[tuple[int, ...], list[LayerSpec]]:
    """The input shape and the checked layer specs of a stack file's text."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node, {}) > MAX_NODES:
            raise StackFileError(
                f"{name}: refused: the file expands to more than {MAX_NODES:,} YAML values "
                "(aliases that repeat aliases, as in a 'billion laughs' file)"
            )
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = f", line {mark.line + 1}" if mark else ""
        problem = error.problem or "not valid YAML"
        if isinstance(error, yaml.constructor.ConstructorError):
            problem = f"refused: {problem} (only plain YAML data is read, no tags that build objects)"
        raise StackFileError(f"{name}{line}: {problem}") from None
    except yaml.YAMLError as error:
        raise StackFileError(f"{name}: not valid YAML ({error})") from None
    except RecursionError:
        raise StackFileError(f"{name}: refused: the YAML is nested too deeply") from None
    except ValueError as error:  # e.g. an integer with more digits than Python converts
        raise StackFileError(f"{name}: refused: {str(error).splitlines()[0]}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or node is None:
        raise StackFileError(f"{name}: expected a mapping with 'input' and 'layers', e.g. input: [1, 3, 224, 224]")
    unknown = sorted(set(map(str, data)) - {"input", "layers"})
    if unknown:
        raise StackFileError(
            f"{name}, line {_line(node, unknown[0])}: unknown key {unknown[0]!r}: use input and layers"
        )
    if "layers" not in data or not isinstance(data["layers"], list):
        raise StackFileError(f"{name}: 'layers' must be a list of layers")
    if "input" not in data:
        raise StackFileError(f"{name}: 'input' is missing: give the input shape, batch first, e.g. [1, 3, 224, 224]")
    shape = data["input"]
    if not isinstance(shape, list) or not shape or not all(_positive(n) for n in shape):
        raise StackFileError(
            f"{name}, line {_line(node, 'input')}: input must be a list of positive integers, batch first, "
            f"e.g. [1, 3, 224, 224]; got {shape!r}"
        )
    items = _items(data["layers"], _value_node(node, "layers"), name)
    try:
        specs = resolve(items)
    except StackSpecError as error:
        where = f", line {error.line}" if error.line else ""
        raise StackFileError(f"{name}{where}: {error}") from None
    return tuple(shape), specs


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _items(data: list[Any], node: yaml.Node | None, name: str) -> list[Item]:
    """(type, keywords, line) for each item of a layer list; a block's branches become item lists too."""
    nodes = node.value if isinstance(node, yaml.SequenceNode) else []
    items: list[Item] = []
    for position, item in enumerate(data, start=1):
        item_node = nodes[position - 1] if position <= len(nodes) else None
        line = item_node.start_mark.line + 1 if item_node is not None else None
        layer, arguments = _item(item, position, f"{name}, line {line}")
        if layer in BLOCKS:
            inner = _only_value_node(item_node)
            for branch in BLOCKS[layer]:
                if isinstance(arguments.get(branch), list):
                    arguments[branch] = _items(arguments[branch], _value_node(inner, branch), name)
        items.append((layer, arguments, line))
    return items


def _item(item: Any, position: int, where: str) -> tuple[str, dict[str, Any]]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, dict) and len(item) == 1:
        ((layer, arguments),) = item.items()
        if arguments is None:
            arguments = {}
        if layer == "Save" and isinstance(arguments, str):
            return layer, {"name": arguments}
        if isinstance(layer, str) and isinstance(arguments, dict) and all(isinstance(k, str) for k in arguments):
            return layer, dict(arguments)
    raise StackFileError(
        f"{where}: layer {position} must be a layer name (ReLU) or a one-key mapping to its keywords "
        f"(Conv2d: {{out_channels: 64, kernel_size: 3}}), got {item!r}"
    )


def _only_value_node(node: yaml.Node | None) -> yaml.Node | None:
    """The value of a one-key mapping node."""
    if isinstance(node, yaml.MappingNode) and len(node.value) == 1:
        return node.value[0][1]
    return None


def _value_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == key:
                return value_node
    return None


def _line(node: yaml.Node, key: str) -> int:
    value = _value_node(node, key)
    return (value or node).start_mark.line + 1
