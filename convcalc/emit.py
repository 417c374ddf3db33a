"""``convcalc stack --emit torch``: the stack as a self-contained PyTorch module.

A straight stack of modules becomes an ``nn.Sequential``; anything else a small
``nn.Module`` class whose ``forward`` writes out the stack's graph, node by
node in the order torch computes them (:mod:`convcalc.torch_code` gives each
node's module and expression). Every inferred argument (``in_channels``,
``in_features``, ...) is written out, and each statement carries a comment with
its output shape. The code is laid out the way ruff or black would leave it.

No text from the stack file becomes code. Identifiers are made by convcalc
(``layer3_body_2`` from positions, ``saved_1`` for the first name a Save gives,
``out_3`` for a tensor needed later); the user's names and the file's name
appear only in comments, through ``ascii()``: ``repr()`` with every character
past ASCII escaped too, so that nothing can end the comment and the file is
ASCII, which Python reads whatever encoding wrote it. They are never on the
first two lines, where a comment could declare the file's encoding.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass

from convcalc.catalog import LAYERS, Form
from convcalc.expr import parse
from convcalc.network import Node, Order, StackResult
from convcalc.spec import SPLITS, LayerSpec
from convcalc.torch_code import HELPERS, constructor, expression, helpers, value

_FUNCTIONAL = (Form.METHOD, Form.FUNCTION)
"""Forms that build no module: the code calls a method or a function on the tensor."""

__all__ = ["emit_torch"]

LINE = 88
"""black's and ruff's default line length."""

_ALIASES = ("Save", "Repeat", "Sequential", "Output", "Dims", "Check", *SPLITS)
"""Nodes whose output is their input's tensor (a split's: its first part's): they compute nothing."""
_STATEMENTS = ("Dims", "Check")
"""Aliases that still write a line: the sizes they name, the check they make."""


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def _call(indent: str, head: str, callee: str, arguments: list[str], tail: str) -> list[str]:
    """``head + callee(arguments) + tail``, split the way ruff splits a line that is too long (:func:`_format`)."""
    return _format(indent, f"{head}{callee}({', '.join(arguments)}){tail}")


_PAIRS = {"(": ")", "[": "]", "{": "}"}


def _brackets(code: str) -> dict[int, int]:
    """Where each bracket of ``code`` opens, by where it closes (strings skipped)."""
    opened, pairs, quote, index = [], {}, None, 0
    while index < len(code):
        char = code[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _PAIRS:
            opened.append(index)
        elif char in _PAIRS.values() and opened:
            pairs[index] = opened.pop()
        elif char == "#" and not opened:
            break
        index += 1
    return pairs


def _elements(body: str) -> list[str]:
    """The comma-separated items of a bracket's body, at its own depth (none inside brackets or strings)."""
    items, depth, quote, start, index = [], 0, None, 0, 0
    while index < len(body):
        char = body[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _PAIRS:
            depth += 1
        elif char in _PAIRS.values():
            depth -= 1
        elif char == "," and depth == 0:
            items.append(body[start:index].strip())
            start = index + 1
        index += 1
    last = body[start:].strip()
    return [*items, last] if last else items


_PRIORITIES = {" if ": 16, " else ": 16, " or ": 14, " and ": 14, " == ": 10, " != ": 10, " < ": 10, " <= ": 10,
               " > ": 10, " >= ": 10, " + ": 5, " - ": 5, " * ": 4, " / ": 4, " // ": 4, " % ": 4}  # fmt: skip
"""Black's delimiter priorities of the operators convcalc writes (binary ones, with a space either side)."""


def _delimiters(code: str) -> list[tuple[int, str]]:
    """The binary operators of the highest priority at the top depth of ``code``: where each starts, and itself."""
    found, depth, quote, index = [], 0, None, 0
    while index < len(code):
        char = code[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in _PAIRS:
            depth += 1
        elif char in _PAIRS.values():
            depth -= 1
        elif char == " " and depth == 0:
            for operator in sorted(_PRIORITIES, key=len, reverse=True):
                if code.startswith(operator, index):
                    found.append((index, operator))
                    break
        index += 1
    top = max((_PRIORITIES[operator] for _, operator in found), default=None)
    return [(at, operator) for at, operator in found if _PRIORITIES[operator] == top]


def _format(indent: str, code: str, inside: bool = False) -> list[str]:
    """One statement as ruff formats it (black's style, 88 columns), for the code convcalc writes: on one line where
    it fits. Else, inside brackets, split before each operator of the highest priority (``a * b`` as ``a`` and
    ``* b``). Else split at the last bracket: its body on one line of its own where that fits (a call's, not a
    tuple's or list's with commas, which black always explodes), else one item a line with a trailing comma, each
    split the same way where still too long. A trailing comment stays on the closing line."""
    if len(indent) + len(code) <= LINE:
        return [indent + code]
    operators = _delimiters(code) if inside else []
    if operators:
        cuts = [0, *(at + 1 for at, _ in operators), len(code)]
        pieces = [code[start:end].strip() for start, end in itertools.pairwise(cuts)]
        return [line for piece in pieces for line in _format(indent, piece, inside=True)]
    pairs = _brackets(code)
    comment = code.find("  # ", max(pairs, default=0))
    statement, remark = (code[:comment], code[comment:]) if comment >= 0 else (code, "")
    close = max((at for at in pairs if at < len(statement)), default=None)
    if close is not None and statement[close] == "]" and statement[pairs[close] - 1 : pairs[close]] == ")":
        close = pairs[close] - 1  # a call, then a subscript (attention's (...)[0]): ruff splits the call
    after = "" if close is None else statement[close + 1 :]
    if close is None or (after.strip(",)") and not re.fullmatch(r"\[[^\[\]]*\][,)]*", after)) or (
            pairs[close] == close - 1):  # fmt: skip
        return [indent + code]
    opening = pairs[close]
    head, body, rest = statement[: opening + 1], statement[opening + 1 : close], statement[close:] + remark
    items = _elements(body)
    commas = len(items) > 1 or body.rstrip().endswith(",")
    literal = not head[:-1].rstrip() or head[:-1].rstrip()[-1] in "=(,[{:"  # a tuple or list, not a call
    hugged = f"{indent}    {body.strip()}"
    if not (literal and commas) and not body.rstrip().endswith(",") and len(hugged) <= LINE:
        return [indent + head, hugged, indent + rest]
    if not commas:  # one item: split as a line inside brackets, with no comma added
        return [indent + head, *_format(indent + "    ", body.strip(), inside=True), indent + rest]
    lines = [indent + head]
    for item in items:
        lines += _format(indent + "    ", f"{item},", inside=True)
    return [*lines, indent + rest]


def _header(name: str, result: StackResult, needed: list[str]) -> list[str]:
    lines = [
        '"""A network generated by convcalc from its stack file.',
        "",
        f"Input {_shape(result.input)}, output {_shape(result.output)}, {result.total_params:,} parameters.",
        '"""',
        "",
        f"# stack file: {name!a}",
        "",
        "import torch",
        *(["import torch.nn.functional as F"] if _functional(result) else []),
        "from torch import nn",
        "",
    ]
    for helper in needed:
        lines += ["", *HELPERS[helper].rstrip("\n").split("\n"), ""]
    return lines


def _functional(result: StackResult) -> bool:
    """Whether the code calls torch.nn.functional: a function (F.pad), or a layer whose size follows the input."""
    return any(node.type in LAYERS and (LAYERS[node.type].form is Form.FUNCTION or (node.written and LAYERS[
        node.type].form is Form.MODULE)) for node in result.rows)  # fmt: skip


def _main(result: StackResult, make: str) -> list[str]:
    return [
        "",
        'if __name__ == "__main__":',
        f"    model = {make}",
        f"    print(model(torch.zeros{_shape(result.input)}).shape)  # {_shape(result.output)}",
    ]


def _attribute(node: Node, within: str = "") -> str:
    """``layer`` and the node's label (``layer7_1_body_2``); inside a repeated block's class, the label within the
    block's first copy (``within``: ``7.1.``)."""
    return "layer" + node.label.removeprefix(within).replace(".", "_")


def _reference(node: Node, within: str = "") -> str:
    """How ``forward`` reaches a node's module, parameter or buffer: by the name the model it came from gives it
    (``module:``, a string in the code, through repr), else by an attribute convcalc names."""
    if node.module is None:
        return f"self.{_attribute(node, within)}"
    getter = {"Parameter": "get_parameter", "Buffer": "get_buffer"}.get(node.type, "get_submodule")
    return f"self.{getter}({value(node.module)})"


def emit_torch(specs: list[LayerSpec], result: StackResult, name: str = "network") -> str:
    """Python source for the stack; ``result`` must be the stack's successful run."""
    if result.error is not None:
        raise ValueError("only a stack that runs can be emitted")
    nodes = list(result.walk(Order.EVALUATION))
    needed = helpers(nodes)
    if all(node.type in LAYERS and LAYERS[node.type].form in (Form.MODULE, Form.PARAMETER) and node.module is None
           for node in nodes):  # fmt: skip
        lines = [*_header(name, result, needed), "", "def build() -> nn.Sequential:"]
        if not nodes:
            lines.append("    return nn.Sequential()  # no layers: the input itself")
        else:
            lines.append("    return nn.Sequential(")
            for node in nodes:
                callee, arguments = constructor(node)
                lines += _call("        ", "", callee, arguments, f",  # {_shape(node.output)}")
            lines.append("    )")
        lines += ["", *_main(result, "build()")]
        return "\n".join(lines) + "\n"

    blocks = [block for block in map(_Repeated.of, result.roots) if block is not None]
    inside = {id(node) for block in blocks for node in block.nodes}
    classes: list[str] = []
    for block in blocks:
        forward, ((_, returned),) = _forward(block.body, {"": block.body[-1]}, block.entry, block.within)
        classes += [
            "",
            "",
            f"class {block.name}(nn.Module):",
            f'    """One copy of layer {block.node.label}, a Repeat of {block.node.arguments["times"]}."""',
            "",
            "    def __init__(self) -> None:",
            "        super().__init__()",
            *(_modules(block.body, block.within) or ["        pass"]),
            "",
            "    def forward(self, x: torch.Tensor) -> torch.Tensor:",
            *forward,
            f"        return {returned}",
        ]
    top = [node for node in nodes if id(node) not in inside]
    modules = _modules(top, calls={id(block.node): block for block in blocks})
    last = next((node for node in reversed(top) if node.parent is None), None)  # the stack goes on from it (from
    # a split, its first part): not always the last node computed
    named = result.outputs or ({"": last} if last is not None else {})
    body, outputs = _forward(top, named, calls={id(block.node): block for block in blocks})
    final = "x"
    if not result.outputs and outputs:
        ((_, final),) = outputs
        outputs = []
    returned = "dict[str, torch.Tensor]" if outputs else "torch.Tensor"
    ending = ["        return {", *(f"            {value(key)}: {variable}," for key, variable in outputs), "        }"]
    lines = [
        *"\n".join(_header(name, result, needed)).rstrip("\n").split("\n"),
        *classes,
        "",
        "",
        "class Network(nn.Module):",
        "    def __init__(self) -> None:",
        "        super().__init__()",
        *modules,
        "",
        f"    def forward(self, x: torch.Tensor) -> {returned}:",
        *body,
        *(ending if outputs else [f"        return {final}"]),
        "",
        *_main(result, "Network()"),
    ]
    return "\n".join(lines) + "\n"


def _modules(nodes: list[Node], within: str = "", calls: dict[int, _Repeated] | None = None) -> list[str]:
    """The ``__init__`` statements that build the modules, parameters and buffers of ``nodes`` (and the Repeats
    ``calls`` holds, as ``nn.Sequential`` of their block class)."""
    modules: list[str] = []
    placed: set[str] = set()
    for node in nodes:
        if calls and id(node) in calls:
            block = calls[id(node)]
            modules += _format("        ", f"self.{_attribute(node)} = nn.Sequential(*({block.name}() for _ in "
                                           f"range({node.arguments['times']})))")  # fmt: skip
            continue
        builds = node.type in ("Parameter", "Buffer") or (
            node.type in LAYERS and LAYERS[node.type].form not in _FUNCTIONAL and not node.written
        )
        if not builds or node.module in placed:  # a module the model calls twice is one module
            continue
        callee, arguments = constructor(node)
        attribute = _attribute(node, within)
        if node.module is not None:
            placed.add(node.module)
            modules += _call("        ", "made = ", callee, arguments, "")
            tail = ", buffer=True)" if node.type == "Buffer" else ")"
            modules.append(f"        place(self, {value(node.module)}, made{tail}")
        elif node.type == "Buffer":
            modules += _call("        ", f"self.register_buffer({value(attribute)}, ", callee, arguments, ")")
        else:
            modules += _call("        ", f"self.{attribute} = ", callee, arguments, "")
    return modules


@dataclass(frozen=True)
class _Repeated:
    """A top-level Repeat written as ``nn.Sequential`` of copies of one block class, not copy after copy: its
    first copy must be a graph of its own (every tensor it reads made inside it, or the Repeat's input), keep no
    module names (an imported file's state_dict keys follow the original's), and end where it is read from."""

    node: Node
    nodes: list[Node]
    """Every node inside the Repeat, each copy's."""
    body: list[Node]
    """The first copy's nodes, in evaluation order."""
    entry: Node | None
    """The node whose output the Repeat takes (None: the stack's input)."""

    @property
    def within(self) -> str:
        return f"{self.node.label}.1."

    @property
    def name(self) -> str:
        return f"Block{self.node.label.replace('.', '_')}"

    @classmethod
    def of(cls, node: Node) -> _Repeated | None:
        if node.type != "Repeat" or node.arguments.get("times", 1) < 2:
            return None
        nodes = list(_evaluated(node.children))
        body = [child for child in nodes if child.label.startswith(f"{node.label}.1.")]
        if not body or any(child.module is not None or child.type in ("Output", "Dims", "Check") or child.written
                           for child in nodes):  # fmt: skip
            return None
        copies = [[child for child in nodes if child.label.startswith(f"{node.label}.{number}.")]
                  for number in range(1, node.arguments["times"] + 1)]  # fmt: skip
        if any(list(map(_same, copy)) != list(map(_same, body)) for copy in copies):
            return None  # copies that differ (DenseNet's grow their channels): each is written out
        entry = _source(body[0].inputs[0]) if body[0].inputs else None
        made = {id(child) for child in body}
        for child in body:
            if any(_source(source) is not entry and id(_source(source)) not in made for source in child.inputs):
                return None
        return cls(node, nodes, body, entry)


def _same(node: Node) -> tuple[object, ...]:
    """What one copy's node must share with the first copy's for one class to build both, its shape comment
    included."""
    return node.type, repr(sorted(node.arguments.items(), key=str)), node.output, len(node.inputs)


def _evaluated(nodes: list[Node]) -> Iterator[Node]:
    """``nodes`` and everything inside them, children before their block, as the evaluation order walks them."""
    for node in nodes:
        yield from _evaluated(node.children)
        yield node


def _source(node: Node | None) -> Node | None:
    """The node whose computation a node's output is (a Save or a Repeat passes its input's on)."""
    while node is not None and node.type in _ALIASES:
        node = node.inputs[0]
    return node


def _forward(nodes: list[Node], named: dict[str, Node], entry: Node | None = None, within: str = "",
             calls: dict[int, _Repeated] | None = None) -> tuple[list[str], list[tuple[str, str]]]:  # fmt: skip
    """The statements of ``forward``, and the ``named`` outputs with the variables that hold them.

    Each computing node assigns ``x``; a tensor read again after ``x`` holds another is kept in a variable first:
    ``saved_1`` after the Save that names it, else ``out_`` and its label. ``Dims`` keeps a tensor's sizes in
    ``dims_`` and its label; size expressions read them there. ``entry`` is the node whose output comes in as
    ``x`` (None: the stack's input); ``calls`` are the Repeats called as one module, ``self.layer7(x)``."""
    calls = calls or {}

    def _source(node: Node | None) -> Node | None:  # a Repeat called as one module is a computation of its own
        while node is not None and node.type in _ALIASES and id(node) not in calls:
            node = node.inputs[0]
        return None if node is entry else node

    computing = [node for node in nodes if node.type not in _ALIASES or id(node) in calls]
    position = {id(node): index for index, node in enumerate(computing)}
    at = {}  # where a statement stands: the number of computing nodes before it
    done = 0
    for node in nodes:
        if node.type in _ALIASES and id(node) not in calls:
            at[id(node)] = done
        else:
            done += 1

    def made(source: Node | None) -> int:
        return -1 if source is None else position[id(source)]

    def inputs(node: Node) -> tuple[Node | None, ...]:  # a called Repeat takes its first copy's input
        return (calls[id(node)].body[0].inputs[0],) if id(node) in calls else node.inputs

    readers = [(position[id(node)], source) for node in computing for source in map(_source, inputs(node))]
    readers += [(at[id(node)], _source(node)) for node in nodes if node.type in _STATEMENTS]
    ends = [_source(node) for node in named.values()]
    later = {id(source) if source else 0 for place, source in readers if place > made(source) + 1}
    later |= {id(source) if source else 0 for source in ends if made(source) != len(computing) - 1}
    kept: dict[int, str] = {}
    said: dict[int, list[str]] = {}
    for node in nodes:  # a kept tensor that a Save names is a saved_N, one variable per tensor (a name saved twice
        if node.type == "Save":  # names two tensors, and a Residual may still need the first)
            source = _source(node)
            key = id(source) if source else 0
            if key in later:
                kept.setdefault(key, f"saved_{len(kept) + 1}")
                said.setdefault(key, []).append(ascii(node.arguments["name"]))
    for node in computing:
        if id(node) in later:
            kept.setdefault(id(node), f"out_{node.label.removeprefix(within).replace('.', '_')}")
    if 0 in later:
        kept.setdefault(0, "x_in")

    def variable(source: Node | None, place: int) -> str:
        return "x" if place == made(source) + 1 else kept[id(source) if source else 0]

    bound: dict[str, str] = {}

    def sizes(item: object) -> str:
        return parse(item).code(bound.__getitem__) if isinstance(item, str) else value(item)

    indent = "        "
    lines = [f"{indent}{kept[0]} = x" + (f"  # Save: {', '.join(said[0])}" if 0 in said else "")] if 0 in kept else []
    for node in nodes:
        if node.type == "Dims":
            name = f"dims_{node.label.replace('.', '_')}"
            lines.append(f"{indent}{name} = {variable(_source(node), at[id(node)])}.shape")
            names = node.arguments["names"]
            for index, dim in enumerate([names] if isinstance(names, str) else names):
                if dim != "_":
                    bound[dim] = f"{name}[{index}]"
            continue
        if node.type == "Check":
            condition = parse(node.arguments["condition"]).code(bound.__getitem__)
            message = node.arguments["message"] or f"the check {node.arguments['condition']} fails"
            lines += _call(indent, "", "torch._assert", [f"bool({condition})", ascii(message)], "")
            continue
        if node.type in _ALIASES and id(node) not in calls:
            continue
        if id(node) in calls:
            code = f"self.{_attribute(node)}({variable(_source(inputs(node)[0]), position[id(node)])})"
        else:
            values = [variable(source, position[id(node)]) for source in map(_source, node.inputs)]
            code = expression(node, values, _reference(node, within), sizes)
        lines += _statement(indent, code, _shape(node.output))
        if id(node) in kept:
            names = said.get(id(node))
            lines.append(f"{indent}{kept[id(node)]} = x" + (f"  # Save: {', '.join(names)}" if names else ""))
    outputs = [(key, variable(_source(node), len(computing))) for key, node in named.items()]
    return lines, outputs


def _statement(indent: str, code: str, shape: str) -> list[str]:
    """``x = code  # shape`` as ruff formats it: the shape comment on a line of its own where the line would be too
    long (a formatter never moves such a comment), the statement split as :func:`_format` splits it."""
    line = f"{indent}x = {code}"
    if len(f"{line}  # {shape}") <= LINE:
        return [f"{line}  # {shape}"]
    return [f"{indent}# {shape}", *_format(indent, f"x = {code}")]
