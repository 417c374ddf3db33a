"""What a stack's nodes are in PyTorch code: one definition that ``--emit torch`` writes and ``--verify`` runs.

For each node, :func:`constructor` gives the module to build (``nn.Conv2d(...)``
or one of convcalc's small modules for learned tensors, :data:`HELPERS`) and
:func:`expression` the forward expression that uses it (``self.layer3(x)``,
``x.permute(0, 2, 3, 1)``, ``torch.cat([x, saved_1], dim=1)``). The emitted
module is these expressions written out; ``--verify`` evaluates the same
expressions on the meta device, so the two cannot drift apart.

No text of the user's reaches this code: argument values are checked numbers,
booleans and torch's own choices, written through ``ascii()``; names of saved
tensors never appear (variables are made by the caller).

>>> from convcalc.spec import resolve
>>> from convcalc.stack import run_stack
>>> nodes = run_stack((1, 3, 8, 8), resolve([("Conv2d", {"out_channels": 4, "kernel_size": 3}, None),
...                                          ("permute", {"dims": [0, 2, 3, 1]}, None)])).rows
>>> constructor(nodes[0])
('nn.Conv2d', ['in_channels=3', 'out_channels=4', 'kernel_size=3'])
>>> expression(nodes[1], ["x"], "")
'x.permute(0, 2, 3, 1)'
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from convcalc.catalog import LAYERS, Form

__all__ = ["HELPERS", "constructor", "expression", "helpers", "value"]

HELPERS = {
    "ClassToken": '''class ClassToken(nn.Module):
    """A learned token prepended along dim 1 of an (N, S, E) input: ViT's class token."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.token.expand(x.shape[0], -1, -1), x], dim=1)
''',
    "PositionEmbedding": '''class PositionEmbedding(nn.Module):
    """A learned tensor added to the input: ViT's position embedding."""

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, *shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding
''',
    "LayerScale": '''class LayerScale(nn.Module):
    """A learned scale per channel, gamma * x: ConvNeXt's layer scale."""

    def __init__(self, *shape: int, init: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full(shape, init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * x
''',
    "center_crop": '''def center_crop(saved: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The middle of ``saved``, as large as ``like`` along every spatial axis (none below 3-D)."""
    if any(s < n for s, n in zip(saved.shape[2:], like.shape[2:])):
        raise ValueError("the saved tensor is smaller: it cannot be cropped")
    starts = [(s - n) // 2 for s, n in zip(saved.shape[2:], like.shape[2:])]
    index = [slice(None)] * min(saved.dim(), 2)
    index += [slice(a, a + n) for a, n in zip(starts, like.shape[2:])]
    return saved[tuple(index)]
''',
}
"""The source of convcalc's small modules for learned tensors that are no torch.nn class, by name, and of the
function that centre-crops a saved tensor for a Concat."""


def helpers(nodes: Sequence[Any]) -> list[str]:
    """The names of the helpers (in :data:`HELPERS`) that code for these nodes needs."""
    needed = {node.type for node in nodes if node.type in HELPERS}
    if any(node.type == "Concat" and node.arguments.get("crop") for node in nodes):
        needed.add("center_crop")
    return sorted(needed)


def value(item: Any) -> str:
    """A Python literal for an argument's value (lists as tuples), ASCII only.

    >>> value([3, 3]), value("gelu"), value(1e-06), value(True)
    ('(3, 3)', '"gelu"', '1e-06', 'True')
    """
    if isinstance(item, (tuple, list)):
        inner = ", ".join(value(part) for part in item)
        return f"({inner},)" if len(item) == 1 else f"({inner})"
    if isinstance(item, float) and not math.isfinite(item):  # refused at load; never a bare name like inf
        return f'float("{item!r}")'
    if isinstance(item, str):  # double quotes, as ruff writes them; JSON's escapes are Python's too
        return json.dumps(item)
    return ascii(item)


def constructor(node: Any) -> tuple[str, list[str]]:
    """The module a layer node builds: the callable and its arguments as code (the given and inferred ones, in
    torch's order; for convcalc's own modules, what the input's shape says)."""
    kind = LAYERS[node.type]
    if kind.form is Form.PARAMETER:
        if node.type == "ClassToken":
            return node.type, [str(node.arguments["embed_dim"])]
        shape = [str(n) for n in node.arguments["shape"]]
        if node.type == "PositionEmbedding":
            return node.type, shape
        return node.type, [*shape, f"init={value(node.arguments['init'])}"]
    inferred = {arg.name for arg in kind.args if arg.infer is not None}
    shown = [name for name in node.arguments if name in node.given or name in inferred]
    return f"nn.{node.type}", [f"{name}={value(node.arguments[name])}" for name in shown]


def expression(node: Any, inputs: Sequence[str], attribute: str) -> str:
    """The forward expression of a node, given the code of its input tensors (in ``node.inputs`` order) and, for a
    layer, the code of its module (``self.layer3``)."""
    kind = LAYERS.get(node.type)
    first = inputs[0] if inputs else "x"
    if kind is not None:
        if kind.form is Form.METHOD:
            return f"{first}.{node.type}({_method_arguments(node, kind)})"
        if kind.form is Form.ATTENTION:
            return f"{attribute}({first}, {first}, {first}, need_weights=False)[0]"
        return f"{attribute}({first})"
    if node.type in ("Save", "Repeat", "From"):
        return first
    how = node.arguments.get("join", "Add") if node.type in ("Residual", "Parallel") else node.type
    if how == "Concat":
        parts = list(inputs)
        if node.arguments.get("crop"):
            parts = [parts[0], *(f"center_crop({part}, {parts[0]})" for part in parts[1:])]
        return f"torch.cat([{', '.join(parts)}], dim={node.arguments.get('dim', 1)})"
    return f" {'+' if how == 'Add' else '*'} ".join(inputs)


def _method_arguments(node: Any, kind: Any) -> str:
    if kind.varargs:
        return ", ".join(value(item) for item in node.arguments[kind.args[0].name])
    return ", ".join(f"{name}={value(node.arguments[name])}" for name in node.given)
