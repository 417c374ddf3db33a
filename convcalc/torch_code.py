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
>>> from convcalc.network import run_stack
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
from collections.abc import Callable, Sequence
from typing import Any

from convcalc.catalog import LAYERS, Form
from convcalc.spec import SPLITS

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
    "FrozenBatchNorm2d": '''class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with its statistics and affine parameters fixed, as buffers (torchvision's)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = (
            self.weight.reshape(1, -1, 1, 1)
            * (self.running_var.reshape(1, -1, 1, 1) + self.eps).rsqrt()
        )
        shift = (
            self.bias.reshape(1, -1, 1, 1)
            - self.running_mean.reshape(1, -1, 1, 1) * scale
        )
        return x * scale + shift
''',
    "StochasticDepth": '''class StochasticDepth(nn.Module):
    """Drops whole rows (mode "row") or the whole batch while training, the rest scaled up; the identity in eval
    mode (torchvision's)."""

    def __init__(self, p: float, mode: str) -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(
            1.0 - self.p
        )
        if self.p < 1.0:
            noise.div_(1.0 - self.p)
        return x * noise
''',
    "Permute": '''class Permute(nn.Module):
    """torch.permute as a module (torchvision's)."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.permute(x, self.dims)
''',
    "place": '''def place(
    root: nn.Module, path: str, item: nn.Module | torch.Tensor, buffer: bool = False
) -> None:
    """Put a module, parameter or buffer at a dotted path under root, making the modules between as needed: the
    names the model it came from gives its state. A module placed where its children already are (a layer whose
    child came first) takes them over."""
    *parents, leaf = path.split(".")
    for name in parents:
        if name not in root._modules:
            root.add_module(name, nn.Module())
        root = root._modules[name]
    if isinstance(item, nn.Module):
        held = root._modules.get(leaf)
        if held is not None:
            for name, child in held.named_children():
                item.add_module(name, child)
            for name, tensor in held.named_parameters(recurse=False):
                item.register_parameter(name, tensor)
            for name, tensor in held.named_buffers(recurse=False):
                item.register_buffer(name, tensor)
        root.add_module(leaf, item)
    elif buffer:
        root.register_buffer(leaf, item)
    else:
        root.register_parameter(leaf, item)
''',
    "relative_position_index": '''def relative_position_index(
    window_size: tuple[int, ...], flat: bool = True
) -> torch.Tensor:
    """For each pair of positions in a window, its row of the relative position bias table: flat (Swin), or one
    row per position (MaxViT, Swin3D). A window of 2 axes (height, width) or 3 (frames first)."""
    grid = torch.meshgrid(*(torch.arange(size) for size in window_size), indexing="ij")
    coords = torch.stack(grid).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    index = torch.zeros_like(relative[:, :, 0])
    for axis, size in enumerate(window_size):
        index = index * (2 * size - 1) + relative[:, :, axis] + size - 1
    return index.flatten() if flat else index
''',
    "relative_coords_table": '''def relative_coords_table(window_size: tuple[int, int]) -> torch.Tensor:
    """Log-spaced relative coordinates in a window, (1, 2*Wh - 1, 2*Ww - 1, 2): Swin V2's."""
    height, width = window_size
    rows = torch.arange(-(height - 1), height, dtype=torch.float32) / (height - 1)
    columns = torch.arange(-(width - 1), width, dtype=torch.float32) / (width - 1)
    table = (
        torch.stack(torch.meshgrid([rows, columns], indexing="ij"))
        .permute(1, 2, 0)
        .unsqueeze(0)
        * 8
    )
    return torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0
''',
    "shifted_window_mask": '''def shifted_window_mask(
    size: tuple[int, ...],
    window_size: tuple[int, ...],
    shift_size: tuple[int, ...],
    like: torch.Tensor,
) -> torch.Tensor:
    """-100 where two positions of a shifted window come from different regions, 0 elsewhere (Swin; with a third
    axis, frames first, Swin3D)."""
    regions = like.new_zeros(tuple(size))
    indexes: list[tuple[slice, ...]] = [()]
    for window, shift in zip(window_size, shift_size):
        bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        indexes = [index + (band,) for index in indexes for band in bands]
    for count, index in enumerate(indexes):
        regions[index] = count
    split, tokens = [], 1
    for length, window in zip(size, window_size):
        split += [length // window, window]
        tokens *= window
    order = [*range(0, 2 * len(size), 2), *range(1, 2 * len(size), 2)]
    regions = regions.view(*split).permute(*order).reshape(-1, tokens)
    differ = regions.unsqueeze(1) - regions.unsqueeze(2)
    return differ.masked_fill(differ != 0, -100.0).masked_fill(differ == 0, 0.0)
''',
    "relative_distance": '''def relative_distance(size: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
    """For each query and key position along one axis, the row of MViT's relative position table that their
    distance reads (torchvision's _add_rel_pos), the shorter axis's steps scaled up to the longer's."""
    queries, keys = size
    q_ratio = max(keys / queries, 1.0)
    k_ratio = max(queries / keys, 1.0)
    rows = torch.arange(queries, device=like.device)[:, None] * q_ratio
    columns = (torch.arange(keys, device=like.device)[None, :] + (1.0 - keys)) * k_ratio
    return (rows - columns).long()
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


_CONSTANT_ARGUMENTS = {
    "shifted_window_mask": ("size", "window_size", "shift_size"),
    "relative_distance": ("size",),
}
"""The arguments each Constant kind's helper takes, in order, before the tensor whose device (and dtype) it
follows."""


_FOLLOWING = {
    "Upsample": "interpolate",
    **{f"Adaptive{how}Pool{d}d": f"adaptive_{how.lower()}_pool{d}d" for how in ("Avg", "Max") for d in (1, 2, 3)},
    **{f"{how}Pool{d}d": f"{how.lower()}_pool{d}d" for how in ("Max", "Avg", "LP") for d in (1, 2, 3)},
}
"""The function each layer whose size can follow the input is, with the same arguments: ``Upsample: {size: [H,
W]}`` after ``Dims`` is ``F.interpolate(x, size=(H, W))``, worked out on each call."""


def helpers(nodes: Sequence[Any]) -> list[str]:
    """The names of the helpers (in :data:`HELPERS`) that code for these nodes needs."""
    needed = {node.type for node in nodes if node.type in HELPERS}
    if any(node.module for node in nodes):
        needed.add("place")
    needed |= {node.arguments["kind"] for node in nodes if node.type in ("Buffer", "Constant")}
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


Sizes = Callable[[Any], str]
"""Turns one value as the file wrote it (a number, or a size expression) into code that follows the input."""


def _argument(node: Any, name: str, sizes: Sizes | None) -> str:
    """An argument's code: as written (its size expressions as code, through ``sizes``) where the file wrote it so
    and ``sizes`` is given, else the value it worked out to here."""
    written = node.written or {}
    if sizes is None or name not in written:
        if name not in node.arguments:  # a node that failed before its defaults were filled in: torch's default
            return value(next(arg.default for arg in LAYERS[node.type].args if arg.name == name))
        return value(node.arguments[name])
    item = written[name]
    if isinstance(item, list):
        inner = ", ".join(sizes(part) for part in item)
        return f"({inner},)" if len(item) == 1 else f"({inner})"
    return sizes(item)


def _items(node: Any, name: str, sizes: Sizes | None) -> list[str]:
    """A list argument's items as code, for a method that takes them one by one (``x.view(b, -1)``)."""
    written = node.written or {}
    if sizes is not None and name in written:
        return [sizes(item) for item in written[name]]
    return [value(item) for item in node.arguments[name]]


def constructor(node: Any) -> tuple[str, list[str]]:
    """The module a layer node builds: the callable and its arguments as code (the given and inferred ones, in
    torch's order; for convcalc's own modules, what the input's shape says)."""
    if node.type == "Parameter":
        return "nn.Parameter", [f"torch.full({value(node.arguments['shape'])}, {value(float(node.arguments['init']))})"]
    if node.type == "Buffer":
        flat = [] if node.arguments.get("flat", True) else ["flat=False"]
        return node.arguments["kind"], [value(node.arguments["window_size"]), *flat]
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
    if kind.form is Form.TORCHVISION and kind.varargs:
        return node.type, [value(list(node.arguments[kind.args[0].name]))]
    callee = node.type if kind.form is Form.TORCHVISION else f"nn.{node.type}"
    return callee, [f"{name}={value(node.arguments[name])}" for name in shown]


def expression(node: Any, inputs: Sequence[str], attribute: str, sizes: Sizes | None = None) -> str:
    """The forward expression of a node, given the code of its input tensors (in ``node.inputs`` order) and, for a
    layer, the code of its module (``self.layer3``). ``sizes`` writes the size expressions the file gave as code
    that follows the input; without it, the sizes they worked out to here are written."""
    kind = LAYERS.get(node.type)
    first = inputs[0] if inputs else "x"
    if kind is not None:
        if kind.form is Form.METHOD:
            return f"{first}.{node.type}({_method_arguments(node, kind, sizes)})"
        if kind.form is Form.FUNCTION:
            named = [f"{name}={_argument(node, name, sizes)}" for name in node.given if name != kind.args[0].name]
            return f"F.{node.type}({', '.join([first, _argument(node, kind.args[0].name, sizes), *named])})"
        if kind.form is Form.ATTENTION:
            return f"{attribute}({first}, {first}, {first}, need_weights=False)[0]"
        if node.written and node.type in _FOLLOWING:  # a size that follows the input: the function, on each call
            named = [f"{name}={_argument(node, name, sizes)}" for name in node.given]
            return f"F.{_FOLLOWING[node.type]}({', '.join([first, *named])})"
        return f"{attribute}({first})"
    if node.type in ("Save", "Repeat", "Sequential", "From", "Output", "Dims", "Check", *SPLITS):
        return first
    if node.type in ("Parameter", "Buffer"):
        return attribute
    if node.type == "Constant":
        shown = [_argument(node, name, sizes) for name in _CONSTANT_ARGUMENTS[node.arguments["kind"]]]
        return f"{node.arguments['kind']}({', '.join(shown)}, {first})"
    if node.type == "Part":
        parent = node.parent.arguments
        if node.arguments["of"] == "unbind":
            return f"{first}.unbind({value(parent['dim'])})[{node.arguments['index']}]"
        sections = {"chunk": "chunks", "split": "split_size_or_sections", "tensor_split": "sections"}
        how = node.arguments["of"]
        cut = _argument(node.parent, sections[how], sizes)  # sections may follow the input (split: "W // 2")
        return f"{first}.{how}({cut}, dim={value(parent['dim'])})[{node.arguments['index']}]"
    if node.type == "matmul":
        return f"torch.matmul({first}, {inputs[1]})"
    if node.type == "index":
        return f"{first}[{inputs[1]}]"
    how = node.arguments.get("join", "Add") if node.type in ("Residual", "Parallel") else node.type
    if how == "Concat":
        parts = list(inputs)
        if node.arguments.get("crop"):
            parts = [parts[0], *(f"center_crop({part}, {parts[0]})" for part in parts[1:])]
        return f"torch.cat([{', '.join(parts)}], dim={node.arguments.get('dim', 1)})"
    return f" {'+' if how == 'Add' else '*'} ".join(inputs)


def _method_arguments(node: Any, kind: Any, sizes: Sizes | None) -> str:
    if kind.varargs:
        return ", ".join(_items(node, kind.args[0].name, sizes))
    return ", ".join(f"{name}={_argument(node, name, sizes)}" for name in node.given)
