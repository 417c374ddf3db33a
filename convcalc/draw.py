"""``convcalc draw``: an architecture diagram of a stack, as plain SVG.

Each feature map is a box in the style of the LeNet and AlexNet drawings: its
height follows the height (or length) of the map, its thickness the channels,
its depth the width, all log-scaled so that 224 and 7 both stay readable. Flat
tensors (after Flatten or Linear) are bars. A map is made by a convolution,
pooling, linear or resizing layer, named on the arrow into it (with its kernel
and stride); activations, BatchNorm and dropout after it share its box.

Every other node that computes something is a small box with its name in it:
attention, LayerNorm, softmax, tensor methods, learned tensors (a class token,
a Parameter), with the shape it makes where it changes the shape. A transformer
block, where every tensor has the same shape, is seen through these boxes.

Blocks are frames: a Residual is its body and a circled + where the shortcut
(an arc from the tensor it takes, with the shortcut's layers on it) is added; a
Repeat is one frame marked ``\u00d7N`` around its first copy; a named block (from
``define``) a frame with its name. A Parallel's branches are columns side by
side, fed from the tensor before them by a bus above them and joined by a bus
below them into the box that joins them. Rows wrap; a frame is never split
between rows (one wider than a row wraps inside itself).

Arcs (a Residual's shortcut, a saved tensor that a join takes, a tensor taken
up again with From) run in lanes above the row that holds both their ends; one
into the next row from a box with nothing below it drops to that row's lanes,
and others run down a track at the right of the block (or of the picture). The
plan (boxes, frames, columns) is made from the node graph in one walk, then laid
out: widths and rows first, then the arcs' lanes, then heights. The SVG needs
nothing outside itself; every box's group carries the labels of the nodes it
shows (``data-nodes``, the first of them, which makes it, in ``data-node``) and
its bounding box (``data-bbox``); every frame the label of its block; every arc
the labels of the nodes it joins (``data-from``, ``data-to``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Union
from xml.sax.saxutils import escape

from convcalc.catalog import ELEMENTWISE
from convcalc.network import Node, StackResult
from convcalc.spec import BLOCKS, SPLITS, STARTS
from convcalc.text import printable, shape_text

__all__ = ["THEMES", "draw_svg"]

Shape = tuple[int, ...]

THEMES = {
    "light": {"background": "#ffffff", "text": "#1f2328", "muted": "#57606a", "edge": "#24292f",
              "frame": "#8c959f", "panel": "#f6f8fa"},
    "dark": {"background": "#0d1117", "text": "#e6edf3", "muted": "#8b949e", "edge": "#c9d1d9",
             "frame": "#6e7681", "panel": "#161b22"},
}  # fmt: skip
COLOURS = {
    "input": "#9aa5b1",
    "conv": "#4c8bf5",
    "transposed": "#7c5cff",
    "pool": "#f25c54",
    "dense": "#2eb67d",
    "resize": "#c678dd",
    "attention": "#e0457b",
    "norm": "#d4a72c",
    "learned": "#a47148",
    "join": "#f5a623",
    "other": "#56b6c2",
}
"""Box colours, in the order the legend lists them."""
BOX_NAMES = {
    "input": "input",
    "conv": "convolution",
    "transposed": "transposed conv",
    "pool": "pooling",
    "dense": "linear / flatten",
    "resize": "upsample / shuffle",
    "attention": "attention / matmul",
    "norm": "norm",
    "learned": "learned tensor",
    "join": "join",
    "other": "other layer / tensor method",
}
ARC_STYLES = {  # stroke width and dashes of each kind of arc; all are drawn in the join colour
    "shortcut": ("1.6", ""),
    "saved": ("1.6", ' stroke-dasharray="6 3"'),
    "from": ("1.2", ' stroke-dasharray="2 3"'),
    "branch": ("1.1", ""),
}
ARC_NAMES = {
    "shortcut": "Residual shortcut, added at (+), its layers on it",
    "saved": "saved tensor to the join that takes it",
    "from": "tensor taken up again (From)",
    "branch": "Parallel branches: from the tensor before them, into the join",
}
FRAME_NAMES = {
    "repeat": "\u00d7N: a Repeat, its first copy drawn",
    "residual": "Residual: its body, then (+)",
    "block": "a named block",
}
SHAPES = {
    0: "() a 0-D tensor",
    1: "size",
    2: "features",
    3: "channels x length",
    4: "channels x height x width",
    5: "channels x depth x height x width",
}
MAPS = frozenset({"conv", "transposed", "pool", "dense", "resize"})
"""Families whose output is drawn as a feature map (a box sized by its shape)."""
WITH = frozenset({"Add", "Mul", "Concat", "matmul", "index"})
"""Nodes that take saved tensors (``with:``) besides their input: an arc from each."""
UNSEEN = frozenset({"Save", "From", "Dims", "Check", "Output"})
"""Nodes that make no tensor: the box of the tensor they name or pass on shows them."""
_SOFTMAX = frozenset({"Softmax", "LogSoftmax", "Softmin", "Softmax2d"})
_QUIET_NORMS = ("BatchNorm", "InstanceNorm", "GroupNorm", "FrozenBatchNorm", "LocalResponseNorm")
_NORMS = (*_QUIET_NORMS, "LayerNorm", "RMSNorm", "normalize")
_FOLDED = (ELEMENTWISE - _SOFTMAX) | {"StochasticDepth"}
_LEARNED = frozenset({"ClassToken", "PositionEmbedding", "LayerScale", *STARTS})
_ATTENTION = frozenset({"MultiheadAttention", "TransformerEncoderLayer", "matmul"})

MARGIN = 44.0  # around the picture; cross-row arcs run down its right margin
GAP, MAP_GAP = 26.0, 44.0  # between two items of a row; before a map, whose layer is named in the gap
PAD, LABEL_BAND, TRACKS = 10.0, 18.0, 18.0  # inside a frame; room for its label; its track zone when it wraps
COLUMN_GAP, BUS, FORK_LEAD = 16.0, 16.0, 18.0  # between a Parallel's columns; room for a bus; before the columns
VGAP = 16.0  # between two items of a column (an arrow)
BAND = 16.0  # a map's label band, where its layer is named above it
LANE, LANE_PAD = 12.0, 10.0  # an arc's lane; room between the lowest lane and the boxes
ROW_GAP = 30.0  # between two rows of the picture with no lanes
CHAR = 6.3  # the widest a character of 11px Helvetica usually is, to size boxes and the backgrounds of labels


def _xml(text: str) -> str:
    """Text for an SVG element or a double-quoted attribute: markup escaped, and every character XML 1.0 forbids
    (control characters, lone surrogates, U+FFFE and U+FFFF) shown as a visible escape instead."""
    return escape(printable(text).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff"), {'"': "&quot;"})


def _width(text: str, size: float = 11) -> float:
    return CHAR * size / 11 * len(printable(text))


def _family(layer: str) -> str:
    if layer.startswith("ConvTranspose"):
        return "transposed"
    if layer.startswith("Conv"):
        return "conv"
    if "Pool" in layer:
        return "pool"
    if layer in ("Linear", "Flatten", "Unflatten"):
        return "dense"
    if layer.startswith(("Upsample", "Pixel")):
        return "resize"
    if layer in ("Add", "Mul", "Concat", *BLOCKS):
        return "join"
    if layer in _ATTENTION or "Attention" in layer:
        return "attention"
    if layer.startswith(_NORMS):
        return "norm"
    if layer in _LEARNED:
        return "learned"
    return "other"


def _folds(layer: str) -> bool:
    """Activations, dropout and BatchNorm: drawn in the box of the tensor they take, where that box is just before."""
    return layer in _FOLDED or layer.startswith(_QUIET_NORMS)


def _scale(n: int, unit: float, least: float) -> float:
    return least + unit * math.log2(max(n, 1) + 1)


def _size(shape: Shape) -> tuple[float, float, float]:
    """Face height, thickness and depth (the skew) of a map's box, in pixels."""
    if len(shape) <= 2:  # a flat vector: a bar
        return _scale(shape[-1] if shape else 1, 14, 10), 8.0, 0.0  # a 0-D tensor (after mean) as one unit
    channels, spatial = shape[1], shape[2:]
    height = _scale(spatial[-2] if len(spatial) >= 2 else spatial[-1], 14, 8)
    depth = _scale(spatial[-1], 6, 2) if len(spatial) >= 2 else 0.0
    return height, _scale(channels, 5, 3), depth


def _shape_text(shape: Shape) -> str:
    """A map's label: its shape without the batch, every axis kept (a 3-D map's depth too)."""
    if len(shape) <= 1:
        return str(shape[0]) if shape else "()"  # a 0-D tensor: no axis to show
    return "x".join(str(n) for n in shape[1:])


def _axes(value: object, rank: int) -> tuple[int, ...] | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * max(rank, 1)
    if isinstance(value, (list, tuple)) and value and all(isinstance(n, int) for n in value):
        return tuple(value)
    return None


def _layer_title(node: Node) -> str:
    """A layer's name with its kernel and stride (``Conv2d 3x3/2``), its dilation (``d12``), and ``dw`` for a
    depthwise convolution (``g4`` for 4 groups)."""
    arguments, rank = node.arguments, max(len(node.input) - 2, 1)
    kernel = _axes(arguments.get("kernel_size"), rank)
    if kernel is None:
        return node.type
    stride = _axes(arguments.get("stride") or kernel, rank) or (1,)
    text = f"{node.type} {'x'.join(map(str, kernel))}"
    if any(n != 1 for n in stride):
        text += "/" + (str(stride[0]) if len(set(stride)) == 1 else "x".join(map(str, stride)))
    dilation = _axes(arguments.get("dilation", 1), rank) or (1,)
    if any(n != 1 for n in dilation):
        text += " d" + (str(dilation[0]) if len(set(dilation)) == 1 else "x".join(map(str, dilation)))
    groups = arguments.get("groups", 1)
    if isinstance(groups, int) and groups > 1:
        text += " dw" if groups == arguments.get("in_channels") else f" g{groups}"
    return text


# --- the plan: boxes, frames and columns, from one walk of the graph ------------------------------------------


@dataclass(eq=False)
class _Box:
    """One tensor drawn: a feature map (``map``), a small box (``op``), a circled + or x (``sum``), or a
    transformer layer with its parts (``layer``). The first of its nodes makes it; the others keep it or name it."""

    style: str
    kind: str
    shape: Shape
    nodes: list[Node]
    title: str = ""
    detail: str = ""
    glyph: str = ""
    label: str = ""
    """A map's shape, as its label shows it."""
    feed: Node | None = None
    """The node whose tensor the first node takes (None: the stack's input)."""
    fed: bool = True
    """Whether the first node takes a tensor at all (the input, a Parameter and a Parallel's join do not)."""
    banded: bool = False
    """A map whose layer is named above it (first in its row or column) rather than in the gap before it."""
    feeders: list[_Box] = field(default_factory=list)
    """Boxes whose output runs straight into this one: an arrow, a column's bus, or the row before (wrapped)."""
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    chain: list[tuple[_Flow, int]] = field(default_factory=list)
    """The flows it sits in, outermost first, with the row it sits in in each."""
    open_below: bool = True
    """Whether nothing is drawn below it in its row (it is in no Parallel's column)."""
    via: bool = False
    """A Residual's shortcut layer, drawn on its arc."""

    def fit(self, banded: bool) -> float:
        """Its size, with its label above it or not; returns its width."""
        self.banded = banded and self.style == "map"
        self.w, self.h = self.size(self.banded)
        return self.w

    def size(self, banded: bool) -> tuple[float, float]:
        if self.style == "map":
            height, thickness, depth = _size(self.shape)
            labels = [self.label, self.detail] + ([self.title] if banded else [])
            width = max(thickness + depth * 0.6, *(_width(text) + 4 for text in labels))
            return width, (BAND if banded else 0) + depth * 0.4 + height + 18 + (14 if self.detail else 0)
        if self.style == "sum":
            return 18.0, 18.0
        if self.style == "layer":
            return max(sum(_width(part, 8) + 10 for part in self.parts()) + 10, _width(self.title, 10) + 16), 44.0
        return max(_width(self.title), _width(self.detail, 10)) + 14, 33.0 if self.detail else 20.0

    def parts(self) -> list[str]:
        """The parts of a TransformerEncoderLayer, in the order it runs them."""
        arguments = self.nodes[0].arguments if self.nodes else {}
        activation = {"relu": "ReLU", "gelu": "GELU"}.get(str(arguments.get("activation")), "ReLU")
        attention, mlp = ["attention", "+"], ["Linear", activation, "Linear", "+"]
        if arguments.get("norm_first"):
            return ["LayerNorm", *attention, "LayerNorm", *mlp]
        return [*attention, "LayerNorm", *mlp, "LayerNorm"]

    @property
    def geometry(self) -> tuple[float, float, float, float, float]:
        """A map's front face (left x, top y), height, thickness and depth."""
        height, thickness, depth = _size(self.shape)
        left = self.x + (self.w - thickness - depth * 0.6) / 2
        return left, self.y + (BAND if self.banded else 0) + depth * 0.4, height, thickness, depth

    @property
    def above(self) -> float:
        """From its top to the line arrows run along (the middle of a map's front face)."""
        if self.style == "map":
            _, base, height, _, _ = self.geometry
            return base - self.y + height / 2
        return self.h / 2

    @property
    def axis(self) -> float:
        return self.y + self.above

    def side(self, right: bool) -> float:
        """Where an arrow leaves it (right) or comes in (left)."""
        if self.style == "map":
            left, _, _, thickness, depth = self.geometry
            return left + thickness + depth * 0.6 + 3 if right else left - 3
        return self.x + self.w + 2 if right else self.x - 2

    def top_x(self, leaving: bool) -> float:
        """Where an arc leaves its top (right of the middle) or comes down onto it (left of the middle)."""
        if self.style == "point":
            return self.x
        if self.style == "map" and not self.banded:
            left, _, _, thickness, depth = self.geometry
            return left + depth * 0.6 + thickness * (0.7 if leaving else 0.3)
        if self.style == "sum":
            return self.x + self.w / 2 + (5 if leaving else -5)
        return self.x + self.w * (0.7 if leaving else 0.3)

    @property
    def centre(self) -> float:
        return self.x + self.w / 2


@dataclass(eq=False)
class _Row:
    items: list[_Item]
    index: int
    spans: list[_Span] = field(default_factory=list)
    lanes: list[float] = field(default_factory=list)
    """The height of each lane, from the boxes up."""
    band: float = 0.0
    above: float = 0.0
    below: float = 0.0
    items_top: float = 0.0
    panel: bool = False
    """Whether it lies on a Repeat's panel (its labels' backgrounds take the panel's colour)."""

    def lane_y(self, lane: int) -> float:
        return self.items_top - LANE_PAD - sum(self.lanes[: lane - 1]) - self.lanes[lane - 1] / 2


@dataclass(eq=False)
class _Flow:
    """Items in a row, left to right, wrapped into rows: the picture's own, or a frame's inside."""

    items: list[_Item]
    rows: list[_Row] = field(default_factory=list)
    width: float = 0.0
    wrapped: bool = False
    """A frame's, laid out in more than one row (its arcs between rows run down a track at its right)."""
    zone: tuple[float, float] = (0.0, 0.0)
    """Where the tracks of arcs between its rows run."""
    tracks: int = 0
    first: float = ROW_GAP
    """The room above its first row when no arc runs there."""
    between: float = ROW_GAP
    h: float = 0.0

    def track_x(self, index: int) -> float:
        low, high = self.zone
        step = min(6.0, (high - low) / max(1, self.tracks))
        return low + step * (index + 0.5)


@dataclass(eq=False)
class _Frame:
    """A Residual, a Repeat (drawn once, ``\u00d7N``) or a named block: a frame around the items inside it."""

    node: Node
    kind: str
    flow: _Flow
    label: str = ""
    source: Node | None = None
    """A Residual's: the node whose tensor it takes (its shortcut's start)."""
    join: _Box | None = None
    via: list[_Box] = field(default_factory=list)
    """A Residual's shortcut layers, drawn on its arc."""
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    above: float = 0.0

    @property
    def top_pad(self) -> float:
        return LABEL_BAND if self.label else 6.0


@dataclass(eq=False)
class _Fork:
    """A Parallel: its branches as columns side by side, and the box that joins them."""

    node: Node
    source: Node | None
    columns: list[list[_Item]]
    ends: list[Node | None]
    join: _Box
    widths: list[float] = field(default_factory=list)
    lead: _Box = field(default_factory=lambda: _Box("point", "join", (), []))
    """Where its top bus starts: the end of its trunk, where the tensor before it is not just before it."""
    trunk: _Arc | None = None
    x: float = 0.0
    y: float = 0.0
    w: float = 0.0
    h: float = 0.0
    above: float = 0.0
    lower: float = 0.0
    """The height of its tallest column."""

    def column_x(self, index: int) -> float:
        return self.x + FORK_LEAD + sum(self.widths[:index]) + COLUMN_GAP * index


_Item = Union[_Box, _Frame, _Fork]


@dataclass(eq=False)
class _Span:
    """A piece of an arc that runs along a lane of a row."""

    row: _Row
    low: float
    high: float
    height: float = LANE
    lane: int = 0

    @property
    def y(self) -> float:
        return self.row.lane_y(self.lane)


@dataclass(eq=False)
class _Arc:
    """A tensor taken somewhere other than straight from the box before: routed in lanes and tracks."""

    kind: str
    source: Node | None
    target: Node
    start: _Box
    end: _Box
    text: str = ""
    branch: int = 0
    via: list[_Box] = field(default_factory=list)
    points: list[tuple[object, object]] = field(default_factory=list)
    """Where it turns: x a number or (flow, track); y a span (its lane), a box (its top) or a box's bottom."""
    labels: list[tuple[float, _Span]] = field(default_factory=list)
    carrier: _Span | None = None
    """The span its shortcut layers sit on."""


def _entry(item: _Item) -> _Box | None:
    """The box whose node takes an item's input: itself, or the first box inside (none for a Parallel)."""
    if isinstance(item, _Box):
        return item
    if isinstance(item, _Frame):
        return _entry(item.flow.items[0]) if item.flow.items else None
    return None


def _exit(item: _Item) -> _Box | None:
    """The box that shows an item's output."""
    if isinstance(item, _Box):
        return item
    if isinstance(item, _Fork):
        return item.join
    return _exit(item.flow.items[-1]) if item.flow.items else None


def _below(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from _below(node.children)


class _Plan:
    """What to draw, from one walk of the node tree: boxes in flows, frames, columns, and the saved tensors that
    joins take."""

    def __init__(self, result: StackResult) -> None:
        self.result = result
        self.where: dict[int, _Box] = {}
        self.boxes: list[_Box] = []
        self.frames: list[_Frame] = []
        self.forks: list[_Fork] = []
        self.links: list[_Arc] = []
        self.known: dict[int, bool] = {}
        self.alias: dict[int, Node] = {}
        """A node no box shows (in a Repeat's later copy): the node whose box shows its tensor."""
        self.first = self.box("map", "input", result.input, None, fed=False, label=_shape_text(result.input))
        items, _ = self.flow(result.roots, None, column=False)
        self.top = _Flow([self.first, *items])

    def box(self, style: str, kind: str, shape: Shape, node: Node | None, **given: object) -> _Box:
        box = _Box(style, kind, shape, [] if node is None else [node], **given)  # type: ignore[arg-type]
        self.boxes.append(box)
        if node is not None:
            self.where[node.id] = box
        return box

    def stand_in(self, node: Node | None) -> Node | None:
        """The node an arc names for the tensor it carries: itself, or the one whose box shows it."""
        while node is not None and node.id in self.alias:
            node = self.alias[node.id]
        return node

    def box_of(self, node: Node | None) -> _Box:
        return self.first if node is None else self.where.get(node.id, self.first)

    def show(self, node: Node, box: _Box) -> None:
        box.nodes.append(node)
        self.where[node.id] = box

    def flow(self, nodes: list[Node], prev: Node | None, column: bool) -> tuple[list[_Item], Node | None]:
        """The items of a run of nodes that take ``prev``'s tensor first; the items and the last node."""
        items: list[_Item] = []
        for node in nodes:
            kind = node.type
            if kind in UNSEEN:
                named = node.inputs[0] if kind == "From" and node.inputs else prev
                self.show(node, self.box_of(named))
            elif kind in ("Repeat", "Sequential"):
                items += self.group(node, prev)
            elif kind == "Residual":
                items.append(self.residual(node, prev))
            elif kind == "Parallel":
                items.append(self.fork(node, prev))
            elif kind in STARTS:
                detail = shape_text(node.output)
                title = f"{kind} {node.arguments.get('name', '')}"
                items.append(self.box("op", "learned", node.output, node, title=title, detail=detail, fed=False))
            elif kind in SPLITS:
                names = ", ".join(str(part.arguments.get("name", "")) for part in node.children)
                box = self.box("op", "other", node.output, node, title=kind, detail=f"\u2192 {names}", feed=prev)
                for part in node.children:
                    self.show(part, box)
                items.append(box)
            else:
                before = self.box_of(prev)
                last = items[-1] if items else None
                if (_folds(kind) and last is not None and _exit(last) is before and node.output == before.shape
                        and not (isinstance(last, _Frame) and last.kind != "residual")):  # fmt: skip
                    self.show(node, before)
                else:
                    items.append(self.layer(node, prev, before))
            prev = node
        return items, prev

    def layer(self, node: Node, prev: Node | None, before: _Box) -> _Box:
        kind, family = node.type, _family(node.type)
        if family in MAPS or kind == "Concat":
            label = self.shape(node)
            box = self.box("map", family, node.output, node, title=_layer_title(node), feed=prev, label=label)
        elif kind in ("Add", "Mul"):
            box = self.box("sum", "join", node.output, node, glyph="+" if kind == "Add" else "\u00d7", feed=prev)
        elif kind == "TransformerEncoderLayer":
            arguments = node.arguments
            title = f"{kind}: {arguments.get('nhead')} heads, feed-forward {arguments.get('dim_feedforward')}"
            box = self.box("layer", "attention", node.output, node, title=title, feed=prev)
        else:
            detail = ""
            if kind == "MultiheadAttention":
                detail = f"{node.arguments.get('num_heads')} heads"
            elif node.output != before.shape:
                detail = self.shape(node)
            box = self.box("op", family, node.output, node, title=kind, detail=detail, feed=prev)
        if kind in WITH:
            given = node.arguments.get("with", "")
            names = [given] if isinstance(given, str) else list(given)
            crop = node.arguments.get("crop")
            for name, saved in zip(names, node.inputs[1:]):
                text = f"{name} (crop: {crop})" if crop else str(name)
                self.links.append(_Arc("saved", saved, node, self.box_of(saved), box, text))
        return box

    def shape(self, node: Node) -> str:
        """The shape a small box makes: without the batch where the batch leads, else all of it."""
        batch = self.result.input[0]
        if len(node.output) >= 2 and node.output[0] == batch and self.batched(node):
            return _shape_text(node.output)
        return shape_text(node.output)

    def batched(self, node: Node) -> bool:
        """Whether the tensor comes from the stack's input (and not from learned tensors alone)."""
        known, todo, opened = self.known, [node], set()
        while todo:
            current = todo[-1]
            if current.id in known:
                todo.pop()
                continue
            sources = current.children[:1] if current.type in SPLITS else list(current.inputs)
            waiting = [source for source in sources if source is not None and source.id not in known]
            if current.type not in STARTS and waiting and current.id not in opened:
                opened.add(current.id)
                todo += waiting
                continue
            todo.pop()
            known[current.id] = current.type not in STARTS and (
                not sources or any(source is None or known.get(source.id, False) for source in sources)
            )
        return known[node.id]

    def group(self, node: Node, prev: Node | None) -> list[_Item]:
        """A Repeat (its first copy, in a frame marked ``\u00d7N`` where N > 1) or a named block (in a frame)."""
        copies: dict[str | None, list[Node]] = {}
        for child in node.children:
            copies.setdefault(child.branch, []).append(child)
        first = copies.pop("1", []) if node.type == "Repeat" else copies.pop(None, [])
        items, last = self.flow(first, prev, column=False)
        end = self.box_of(last)
        drawn = list(_below(first))
        for copy in copies.values():  # the copies after the first: their tensors are shown by the first copy's boxes
            later = list(_below(copy))
            for other, same in zip(later, drawn if len(later) == len(drawn) else []):
                self.where[other.id] = self.where.get(same.id, end)
                self.alias[other.id] = same
            for other in later:
                self.where.setdefault(other.id, end)
                self.alias.setdefault(other.id, node)
        self.show(node, end)
        times = node.arguments.get("times", 1)
        if not items or (node.type == "Repeat" and times == 1):
            return items
        if node.type == "Repeat":
            frame = _Frame(node, "repeat", _Flow(items), f"\u00d7{times}")
        else:
            frame = _Frame(node, "block", _Flow(items), str(node.arguments.get("name") or node.type))
        self.frames.append(frame)
        return [frame]

    def residual(self, node: Node, prev: Node | None) -> _Frame:
        body = [child for child in node.children if child.branch == "body"]
        items, last = self.flow(body, prev, column=False)
        join = self.box("sum", "join", node.output, node, glyph="+", feed=last)
        via = self.collapsed([child for child in node.children if child.branch == "shortcut"], prev)
        frame = _Frame(node, "residual", _Flow([*items, join]), source=prev, join=join, via=via)
        self.frames.append(frame)
        return frame

    def collapsed(self, nodes: list[Node], prev: Node | None) -> list[_Box]:
        """A shortcut's layers as small boxes on its arc (a block in it as one box)."""
        boxes: list[_Box] = []
        for node in nodes:
            if node.type in UNSEEN:
                named = node.inputs[0] if node.type == "From" and node.inputs else prev
                self.show(node, self.box_of(named))
            elif boxes and _folds(node.type) and self.box_of(prev) is boxes[-1]:
                self.show(node, boxes[-1])
            else:
                detail = self.shape(node) if node.output != node.input else ""
                box = self.box("op", _family(node.type), node.output, node, title=_layer_title(node), detail=detail,
                               feed=prev)  # fmt: skip
                box.fit(False)
                box.via = True
                inside = list(_below(node.children))
                shown = {id(child) for child in self.drawn(node.children)}
                for child in inside:
                    if id(child) in shown:
                        self.show(child, box)
                    else:
                        self.where[child.id], self.alias[child.id] = box, node
                boxes.append(box)
            prev = node
        return boxes

    def drawn(self, nodes: list[Node]) -> Iterator[Node]:
        """The nodes under these that a drawing shows: not those of a Repeat's copies after the first."""
        for node in nodes:
            yield node
            children = node.children
            if node.type == "Repeat":
                children = [child for child in children if child.branch == "1"]
            yield from self.drawn(children)

    def fork(self, node: Node, prev: Node | None) -> _Fork:
        columns, ends = [], []
        for number in range(1, len(node.inputs) + 1):
            branch = [child for child in node.children if child.branch == f"branch{number}"]
            items, last = self.flow(branch, prev, column=True)
            columns.append(items)
            ends.append(last)
        how = str(node.arguments.get("join", "Concat"))
        if how == "Concat":
            join = self.box("map", "join", node.output, node, title="Concat", fed=False, label=self.shape(node))
        else:
            join = self.box("sum", "join", node.output, node, glyph="+" if how == "Add" else "\u00d7", fed=False)
        fork = _Fork(node, prev, columns, ends, join)
        self.forks.append(fork)
        return fork


# --- widths and rows --------------------------------------------------------------------------------------------


def _gap(item: _Item) -> float:
    """The room before an item in a row: a map's layer is named there."""
    if isinstance(item, _Box) and item.style == "map":
        return max(MAP_GAP, _width(item.title) + 14)
    return GAP


def _natural(item: _Item, banded: bool, memo: dict[int, float]) -> float:
    """An item's width with every frame in it on one row."""
    if isinstance(item, _Box):
        return item.size(banded)[0]
    known = memo.get(id(item))
    if known is None:
        if isinstance(item, _Fork):
            widths = [max((_natural(inner, True, memo) for inner in column), default=0.0) or 14.0
                      for column in item.columns]  # fmt: skip
            known = _fork_width(widths, item.join.size(True)[0])
        else:
            items = item.flow.items
            known = 2 * PAD + sum(_natural(inner, not index, memo) + (_gap(inner) if index else 0.0)
                                  for index, inner in enumerate(items))  # fmt: skip
        memo[id(item)] = known
    return known


def _fork_width(widths: list[float], join: float) -> float:
    return FORK_LEAD + sum(widths) + COLUMN_GAP * (len(widths) - 1) + 30 + join + 6


def _fit(item: _Item, avail: float, banded: bool, memo: dict[int, float]) -> float:
    """Lays an item out for rows ``avail`` wide (a frame wider than that wraps inside); returns its width."""
    if isinstance(item, _Box):
        return item.fit(banded)
    if isinstance(item, _Fork):
        item.widths = [max((_fit(inner, avail, True, memo) for inner in column), default=0.0) or 14.0
                       for column in item.columns]  # fmt: skip
        item.w = _fork_width(item.widths, item.join.fit(True))
        return item.w
    if _natural(item, banded, memo) <= avail:
        _rows(item.flow, math.inf, memo)
        item.flow.wrapped = False
        item.w = item.flow.width + 2 * PAD
    else:
        _rows(item.flow, max(avail - 2 * PAD - TRACKS, 1.0), memo)
        item.flow.wrapped = True
        item.w = item.flow.width + 2 * PAD + TRACKS
    return item.w


def _rows(flow: _Flow, avail: float, memo: dict[int, float]) -> float:
    """Breaks a flow into rows no wider than ``avail`` where it can; returns the widest row's width.

    A frame or Parallel that starts a row takes the box before it along, where that fits: its arcs start there.
    """
    rows: list[list[_Item]] = []
    for item in flow.items:
        row = rows[-1] if rows else None
        if row is None:
            _fit(item, avail, True, memo)
            rows.append([item])
            continue
        width = _fit(item, avail, False, memo)
        if _row_width(row) + _gap(item) + width <= avail:
            row.append(item)
            continue
        carry: list[_Item] = []
        last = row[-1]
        if isinstance(item, (_Frame, _Fork)) and len(row) > 1 and isinstance(last, _Box):
            if last.fit(True) + _gap(item) + width <= avail:
                carry = [row.pop()]
            else:
                last.fit(False)
        if isinstance(item, _Box):
            item.fit(not carry)
        rows.append([*carry, item])
    flow.rows = [_Row(items, index) for index, items in enumerate(rows)]
    flow.width = max((_row_width(row.items) for row in flow.rows), default=0.0)
    return flow.width


def _row_width(items: list[_Item]) -> float:
    return sum(item.w for item in items) + sum(_gap(item) for item in items[1:])


def _place_x(flow: _Flow, left: float, chain: list[tuple[_Flow, int]], open_below: bool = True,
             panel: bool = False) -> None:  # fmt: skip
    """Gives every item of a flow its x, and every box the flows it sits in."""
    for row in flow.rows:
        row.panel = panel
        x = left
        for position, item in enumerate(row.items):
            if position:
                x += _gap(item)
            _place_item(item, x, [*chain, (flow, row.index)], open_below, panel)
            x += item.w


def _place_item(item: _Item, x: float, chain: list[tuple[_Flow, int]], open_below: bool, panel: bool) -> None:
    item.x = x
    if isinstance(item, _Box):
        item.chain, item.open_below = chain, open_below
    elif isinstance(item, _Frame):
        if item.flow.wrapped:
            right = x + item.w - PAD
            item.flow.zone = (right - TRACKS + 2, right + PAD / 2)
        _place_x(item.flow, x + PAD, chain, open_below, panel or item.kind == "repeat")
        for box in item.via:
            box.chain, box.open_below = chain, False
    else:
        for index, column in enumerate(item.columns):
            left = item.column_x(index)
            for inner in column:
                _place_item(inner, left + (item.widths[index] - inner.w) / 2, chain, False, panel)
        _place_item(item.join, x + item.w - 6 - item.join.w, chain, open_below, panel)
        _place_item(item.lead, x + 8, chain, False, panel)


# --- arrows, buses and arcs ---------------------------------------------------------------------------------------


@dataclass
class _Links:
    """Everything drawn between boxes: arrows (straight on, in a row or down a column), the buses of Parallels, and
    the arcs routed in lanes."""

    arrows: list[tuple[_Box, _Box, bool]] = field(default_factory=list)
    buses: list[tuple[str, Node | None, Node, _Fork, int, _Box | None]] = field(default_factory=list)
    """(in or out or through, from, to, the fork, its branch, the box at the column's end)."""
    arcs: list[_Arc] = field(default_factory=list)


class _Router:
    """Finds what runs straight on, and routes every other tensor a node takes as an arc."""

    def __init__(self, plan: _Plan, top: _Flow) -> None:
        self.plan = plan
        self.links = _Links()
        self.feed(top, None)
        for frame in plan.frames:
            if frame.kind == "residual" and frame.join is not None:
                source = plan.box_of(frame.source)
                for box in frame.via:
                    box.feeders.append(source)
                    source = box
                self.add(_Arc("shortcut", frame.source, frame.node, plan.box_of(frame.source), frame.join,
                              via=frame.via))  # fmt: skip
        for arc in plan.links:
            self.add(arc)
        for box in plan.boxes:  # a tensor taken from elsewhere than the box just before (after From, or wrapped)
            if box.fed and box.nodes:
                source = plan.box_of(box.feed)
                if source is not box and source not in box.feeders:
                    name = box.feed.arguments.get("name", "") if box.feed and box.feed.type == "From" else ""
                    self.add(_Arc("from", box.feed, box.nodes[0], source, box, str(name)))

    def feed(self, flow: _Flow, outer: _Box | None, vertical: bool = False) -> None:
        for row in flow.rows:
            for position, item in enumerate(row.items):
                if position:
                    self.item(item, _exit(row.items[position - 1]), vertical=False)
                elif row.index == 0:
                    self.item(item, outer, vertical)
                else:  # the row before ends where this one starts: no arrow, but no arc either
                    before, entry = _exit(flow.rows[row.index - 1].items[-1]), _entry(item)
                    if entry is not None and before is not None:
                        entry.feeders.append(before)
                    self.item(item, None, vertical=False)

    def item(self, item: _Item, before: _Box | None, vertical: bool) -> None:
        if isinstance(item, _Box):
            if before is not None:
                item.feeders.append(before)
                if item.fed and self.plan.box_of(item.feed) is before:
                    self.links.arrows.append((before, item, vertical))
        elif isinstance(item, _Frame):
            self.feed(item.flow, before, vertical)
        else:
            self.fork(item, before)

    def fork(self, fork: _Fork, before: _Box | None) -> None:
        source = self.plan.box_of(fork.source)
        if before is not source:  # one trunk from the tensor before, wherever it is, to the start of the top bus
            fork.trunk = self.route(_Arc("branch", fork.source, fork.node, source, fork.lead))
        for number, (column, end) in enumerate(zip(fork.columns, fork.ends), start=1):
            if not column:
                self.links.buses.append(("through", fork.source, fork.node, fork, number, None))
                continue
            entry = _entry(column[0])
            if entry is not None and entry.fed and self.plan.box_of(entry.feed) is source:
                entry.feeders.append(source)
                self.links.buses.append(("in", fork.source, entry.nodes[0], fork, number, entry))
            self.item(column[0], None, vertical=True)
            for index in range(1, len(column)):
                self.item(column[index], _exit(column[index - 1]), vertical=True)
            last, result = _exit(column[-1]), self.plan.box_of(end)
            if last is result:
                self.links.buses.append(("out", end, fork.node, fork, number, last))
            else:  # the branch ends on a tensor from elsewhere (From): an arc from it into the join
                self.add(_Arc("branch", end, fork.node, result, fork.join, branch=number))

    def add(self, arc: _Arc) -> None:
        self.links.arcs.append(self.route(arc))

    def route(self, arc: _Arc) -> _Arc:
        """The arc's turning points: up from its start to the lane of the row that holds both ends (by a block's
        track where it starts in a later row of the block), along it, and down to its end the same way. An arc
        into the next row from a box with nothing below it goes down to that row's lane instead."""
        start, end = arc.start, arc.end
        up, down = start.chain, end.chain
        level = 0
        while level + 1 < min(len(up), len(down)) and up[level + 1][0] is down[level + 1][0]:
            level += 1
        flow, first, last = up[level][0], up[level][1], down[level][1]
        x: object = start.top_x(True)
        down_first = (
            last == first + 1 and start.open_below and all(row == len(inner.rows) - 1 for inner, row in up[level + 1 :])
        )
        points: list[tuple[object, object]] = [(x, _Bottom(start) if down_first else start)]
        for inner, row in reversed(up[level + 1 :]):
            if row and not down_first:
                track = (inner, self.track(inner))
                span = self.span(inner.rows[row], x, inner.zone[1])
                points += [(x, span), (track, span)]
                x = track
        descent: list[tuple[object, object]] = []
        target: object = end.top_x(False)
        for inner, row in reversed(down[level + 1 :]):
            if row:
                track = (inner, self.track(inner))
                span = self.span(inner.rows[row], target, inner.zone[1])
                descent = [(track, span), (target, span), *descent]
                target = track
        if first == last or down_first:
            span = self.span(flow.rows[last], x, target, arc, carries=True)
            points += [(x, span), (target, span)]
        else:
            track = (flow, self.track(flow))
            leaving = self.span(flow.rows[first], x, flow.zone[1], arc)
            coming = self.span(flow.rows[last], target, flow.zone[1], arc, carries=True)
            points += [(x, leaving), (track, leaving), (track, coming), (target, coming)]
        arc.points = [*points, *descent, (end.top_x(False), end)]
        return arc

    def track(self, flow: _Flow) -> int:
        flow.tracks += 1
        return flow.tracks - 1

    def span(self, row: _Row, one: object, other: object, arc: _Arc | None = None, carries: bool = False) -> _Span:
        """A lane's piece of an arc in a row, from x ``one`` to ``other`` (a track counts as its zone's right
        end); the arc's name sits on it where ``arc`` is given, and its shortcut layers where it ``carries`` them."""
        low, high = sorted(_x(value) for value in (one, other))
        span = _Span(row, low, high)
        if arc is not None and carries and arc.via:
            arc.carrier = span
            total = sum(box.w for box in arc.via) + 10 * (len(arc.via) - 1)
            middle = (low + high) / 2
            x = middle - total / 2
            for box in arc.via:
                box.x, x = x, x + box.w + 10
            span.low, span.high = min(low, middle - total / 2 - 4), max(high, middle + total / 2 + 4)
            span.height = max(box.h for box in arc.via) + 10
        if arc is not None and arc.text:
            arc.labels.append(((low + high) / 2, span))
        row.spans.append(span)
        return span


@dataclass(frozen=True)
class _Bottom:
    """The bottom of a box, where an arc leaves it downwards."""

    box: _Box

    @property
    def y(self) -> float:
        return self.box.y + self.box.h


def _x(value: object) -> float:
    if isinstance(value, tuple):
        flow, index = value
        return flow.track_x(index)  # type: ignore[no-any-return]
    return float(value)  # type: ignore[arg-type]


def _lanes(flow: _Flow) -> None:
    """Gives every span of every row its lane: short ones nearest the boxes, so that nested arcs never cross."""
    for row in flow.rows:
        placed: list[_Span] = []
        for span in sorted(row.spans, key=lambda span: span.high - span.low):
            span.lane = 1 + max((other.lane for other in placed if span.low < other.high and other.low < span.high),
                                default=0)  # fmt: skip
            placed.append(span)
        row.lanes = [LANE] * max((span.lane for span in placed), default=0)
        for span in placed:
            row.lanes[span.lane - 1] = max(row.lanes[span.lane - 1], span.height)
        for item in row.items:
            _lanes_in(item)


def _lanes_in(item: _Item) -> None:
    if isinstance(item, _Frame):
        _lanes(item.flow)
    elif isinstance(item, _Fork):
        for column in item.columns:
            for inner in column:
                _lanes_in(inner)


# --- heights ------------------------------------------------------------------------------------------------------


def _height(item: _Item) -> tuple[float, float]:
    """An item's height above and below the line its arrows run along."""
    if isinstance(item, _Box):
        return item.above, item.h - item.above
    if isinstance(item, _Frame):
        _heights(item.flow)
        first = item.flow.rows[0]
        item.h = item.top_pad + item.flow.h + PAD
        item.above = item.top_pad + first.band + first.above
        return item.above, item.h - item.above
    tallest = 0.0
    for column in item.columns:
        total = 0.0
        for inner in column:
            above, below = _height(inner)
            total += above + below + VGAP
        tallest = max(tallest, total - VGAP)
    item.lower = max(tallest, 14.0)
    join_above, join_below = _height(item.join)
    item.above = BUS + max(item.lower / 2, join_above)
    item.h = max(BUS + item.lower, item.above + join_below) + BUS
    return item.above, item.h - item.above


def _heights(flow: _Flow) -> None:
    flow.h = 0.0
    for row in flow.rows:
        sizes = [_height(item) for item in row.items]
        row.above = max(above for above, _ in sizes)
        row.below = max(below for _, below in sizes)
        room = flow.first if row.index == 0 else flow.between
        row.band = max(room, LANE_PAD + sum(row.lanes) + 6) if row.lanes else room
        flow.h += row.band + row.above + row.below


def _place_y(flow: _Flow, top: float) -> None:
    y = top
    for row in flow.rows:
        row.items_top = y + row.band
        axis = row.items_top + row.above
        for item in row.items:
            _place_item_y(item, axis - item.above)
        y = axis + row.below


def _place_item_y(item: _Item, y: float) -> None:
    item.y = y
    if isinstance(item, _Frame):
        _place_y(item.flow, y + item.top_pad)
    elif isinstance(item, _Fork):
        for column in item.columns:
            top = y + BUS
            for inner in column:
                _place_item_y(inner, top)
                top += inner.h + VGAP
        _place_item_y(item.join, y + item.above - item.join.above)
        item.lead.y = y + BUS / 2


# --- drawing ------------------------------------------------------------------------------------------------------


def _rounded(points: list[tuple[float, float]], radius: float = 6.0) -> str:
    """A path through the points, with rounded corners."""
    path = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (ax, ay), (bx, by), (cx, cy) in zip(points, points[1:], points[2:]):
        before, after = math.hypot(bx - ax, by - ay), math.hypot(cx - bx, cy - by)
        r = min(radius, before / 2, after / 2)
        if r <= 0:
            continue
        start = (bx - (bx - ax) * r / before, by - (by - ay) * r / before)
        end = (bx + (cx - bx) * r / after, by + (cy - by) * r / after)
        path += f" L{start[0]:.1f},{start[1]:.1f} Q{bx:.1f},{by:.1f} {end[0]:.1f},{end[1]:.1f}"
    return path + f" L{points[-1][0]:.1f},{points[-1][1]:.1f}"


def _label(text: str, x: float, y: float, anchor: str, colour: str, background: str, css: str, size: int = 11) -> str:
    """A text with a background box behind it, so that an arc passing behind it leaves it readable."""
    width = _width(text, size) + 4
    left = {"start": x - 2, "middle": x - width / 2, "end": x - width + 2}[anchor]
    return (
        f'<rect x="{left:.1f}" y="{y - size * 0.85:.1f}" width="{width:.1f}" height="{size * 1.15:.1f}" '
        f'fill="{background}"/>'
        f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}">'
        f"{_xml(text)}</text>"
    )


def _walk(flow: _Flow) -> Iterator[_Item]:
    """Every item, outer ones before the ones inside them."""
    for row in flow.rows:
        for item in row.items:
            yield from _walk_item(item)


def _walk_item(item: _Item) -> Iterator[_Item]:
    yield item
    if isinstance(item, _Frame):
        yield from _walk(item.flow)
    elif isinstance(item, _Fork):
        for column in item.columns:
            for inner in column:
                yield from _walk_item(inner)
        yield item.join


class _Painter:
    def __init__(self, colours: dict[str, str], stand_in: Callable[[Node | None], Node | None]) -> None:
        self.colours = colours
        self.stand_in = stand_in
        self.parts: list[str] = []
        self.labels: list[str] = []

    def frame(self, frame: _Frame) -> None:
        colours = self.colours
        dashes = ' stroke-dasharray="4 3"' if frame.kind == "residual" else ""
        fill = colours["panel"] if frame.kind == "repeat" else "none"
        times = f' data-times="{frame.node.arguments.get("times", 1)}"' if frame.kind == "repeat" else ""
        self.parts.append(
            f'<g class="frame {frame.kind}" data-node="{_xml(frame.node.label)}"{times} '
            f'data-bbox="{frame.x:.1f},{frame.y:.1f},{frame.w:.1f},{frame.h:.1f}">'
            f'<rect x="{frame.x:.1f}" y="{frame.y:.1f}" width="{frame.w:.1f}" height="{frame.h:.1f}" rx="6" '
            f'fill="{fill}" stroke="{colours["frame"]}" stroke-width="1"{dashes}/>'
        )
        if frame.label:
            weight = ' font-weight="bold" font-size="12"' if frame.kind == "repeat" else ""
            colour = colours["text"] if frame.kind == "repeat" else colours["muted"]
            self.parts.append(
                f'<text class="frame-label" x="{frame.x + 8:.1f}" y="{frame.y + 13:.1f}"{weight} fill="{colour}">'
                f"{_xml(frame.label)}</text>"
            )
        self.parts.append("</g>")

    def fork(self, fork: _Fork) -> None:
        self.parts.append(
            f'<rect class="fork" data-node="{_xml(fork.node.label)}" x="{fork.x:.1f}" y="{fork.y:.1f}" '
            f'width="{fork.w:.1f}" height="{fork.h:.1f}" rx="6" fill="{self.colours["panel"]}" '
            f'fill-opacity="0.6"/>'
        )

    def arc(self, kind: str, source: Node | None, target: Node, path: str, branch: int = 0) -> None:
        """An arc: ``data-from`` names the node whose box shows the tensor it carries (``data-copy`` the node in a
        Repeat's later copy that made it, where the first copy's box stands for it), ``data-to`` the node that takes
        it."""
        stroke, dashes = ARC_STYLES[kind]
        shown = self.stand_in(source)
        name = "input" if shown is None else shown.label
        number = f' data-branch="{branch}"' if branch else ""
        if shown is not source and source is not None:
            number += f' data-copy="{_xml(source.label)}"'
        self.parts.append(
            f'<path class="arc {kind}" data-from="{_xml(name)}" data-to="{_xml(target.label)}"{number} '
            f'd="{path}" fill="none" stroke="{COLOURS["join"]}" stroke-width="{stroke}"{dashes} '
            'marker-end="url(#arc-arrow)"/>'
        )

    def arrow(self, start: tuple[float, float], end: tuple[float, float]) -> None:
        self.parts.append(
            f'<line class="arrow" x1="{start[0]:.1f}" y1="{start[1]:.1f}" x2="{end[0]:.1f}" y2="{end[1]:.1f}" '
            f'stroke="{self.colours["muted"]}" stroke-width="1" marker-end="url(#arrow)"/>'
        )

    def box(self, box: _Box) -> None:
        """A box's group: its shapes and labels, the labels of the nodes it shows and its bounding box."""
        colours = self.colours
        fill = COLOURS[box.kind]
        shown = ",".join(["input"] * (box.kind == "input") + [node.label for node in box.nodes])
        types = " ".join(["input"] * (box.kind == "input") + [node.type for node in box.nodes])
        maker = box.nodes[0].label if box.nodes and box.kind != "input" else "input"
        via = " via" if box.via else ""
        self.parts.append(
            f'<g class="box {box.style}{via}" data-kind="{box.kind}" data-node="{_xml(maker)}" '
            f'data-nodes="{_xml(shown)}" '
            f'data-types="{_xml(types)}" data-shape="{_xml(box.label or shape_text(box.shape))}" '
            f'data-bbox="{box.x:.1f},{box.y:.1f},{box.w:.1f},{box.h:.1f}">'
        )
        names = " + ".join(node.type for node in box.nodes if node.type not in UNSEEN) or "input"
        self.parts.append(f"<title>{_xml(names)}: {_xml(shape_text(box.shape))}</title>")
        edge, text = colours["edge"], colours["text"]
        if box.style == "map":
            left, base, height, thickness, depth = box.geometry
            dx, dy = depth * 0.6, -depth * 0.4
            self.parts.append(
                f'<polygon points="{left:.1f},{base:.1f} {left + dx:.1f},{base + dy:.1f} '
                f'{left + dx + thickness:.1f},{base + dy:.1f} {left + thickness:.1f},{base:.1f}" fill="{fill}" '
                f'fill-opacity="0.55" stroke="{edge}" stroke-width="0.6"/>'
                f'<polygon points="{left + thickness:.1f},{base:.1f} {left + thickness + dx:.1f},{base + dy:.1f} '
                f'{left + thickness + dx:.1f},{base + dy + height:.1f} {left + thickness:.1f},{base + height:.1f}" '
                f'fill="{fill}" fill-opacity="0.75" stroke="{edge}" stroke-width="0.6"/>'
                f'<rect x="{left:.1f}" y="{base:.1f}" width="{thickness:.1f}" height="{height:.1f}" fill="{fill}" '
                f'stroke="{edge}" stroke-width="0.6"/>'
            )
            middle = left + thickness / 2
            self.parts.append(
                f'<text class="shape" x="{middle:.1f}" y="{base + height + 14:.1f}" text-anchor="middle" '
                f'fill="{text}">{_xml(box.label)}</text>'
            )
            if box.detail:
                self.parts.append(
                    f'<text class="note" x="{middle:.1f}" y="{base + height + 28:.1f}" text-anchor="middle" '
                    f'fill="{colours["muted"]}">{_xml(box.detail)}</text>'
                )
            if box.title and box.banded:
                self.parts.append(
                    f'<text class="op" x="{box.centre:.1f}" y="{box.y + 11:.1f}" text-anchor="middle" '
                    f'fill="{text}">{_xml(box.title)}</text>'
                )
            elif box.title:
                self.labels.append(
                    f'<text class="op" x="{left - 6:.1f}" y="{box.axis - 6:.1f}" text-anchor="end" fill="{text}">'
                    f"{_xml(box.title)}</text>"
                )
        elif box.style == "sum":
            centre, middle = box.centre, box.y + box.h / 2
            self.parts.append(
                f'<circle cx="{centre:.1f}" cy="{middle:.1f}" r="{box.w / 2:.1f}" fill="{colours["background"]}" '
                f'stroke="{fill}" stroke-width="1.6"/>'
                f'<text class="glyph" x="{centre:.1f}" y="{middle + 4.5:.1f}" text-anchor="middle" font-size="14" '
                f'font-weight="bold" fill="{fill}">{_xml(box.glyph)}</text>'
            )
        else:
            self.parts.append(
                f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{box.h:.1f}" rx="4" '
                f'fill="{fill}" fill-opacity="0.2" stroke="{fill}" stroke-width="1.2"/>'
            )
            if box.style == "layer":
                self.layer(box)
            else:
                self.parts.append(
                    f'<text class="name" x="{box.centre:.1f}" y="{box.y + 14:.1f}" text-anchor="middle" '
                    f'fill="{text}">{_xml(box.title)}</text>'
                )
                if box.detail:
                    self.parts.append(
                        f'<text class="detail" x="{box.centre:.1f}" y="{box.y + 27:.1f}" text-anchor="middle" '
                        f'font-size="10" fill="{colours["muted"]}">{_xml(box.detail)}</text>'
                    )
        self.parts.append("</g>")

    def layer(self, box: _Box) -> None:
        """A TransformerEncoderLayer: its name, then its parts in a row, the two residual adds joined back."""
        self.parts.append(
            f'<text class="name" x="{box.centre:.1f}" y="{box.y + 13:.1f}" text-anchor="middle" font-size="10" '
            f'fill="{self.colours["text"]}">{_xml(box.title)}</text>'
        )
        x, y = box.x + 8, box.y + 24
        starts, adds = [], []
        for index, part in enumerate(box.parts()):
            if index in (0, 3):  # where each half (attention, then feed-forward) takes its input
                starts.append(x - 3)
            if part == "+":
                adds.append(x + 5)
                self.parts.append(
                    f'<circle cx="{x + 5:.1f}" cy="{y + 7:.1f}" r="5" fill="none" stroke="{COLOURS["join"]}"/>'
                    f'<text x="{x + 5:.1f}" y="{y + 10:.1f}" text-anchor="middle" font-size="9" '
                    f'fill="{COLOURS["join"]}">+</text>'
                )
                x += 14
                continue
            width = _width(part, 8) + 6
            kind = {"attention": "attention", "LayerNorm": "norm", "Linear": "dense"}.get(part, "other")
            self.parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="14" rx="2" fill="{COLOURS[kind]}" '
                f'fill-opacity="0.35" stroke="{COLOURS[kind]}" stroke-width="0.8"/>'
                f'<text class="part" x="{x + width / 2:.1f}" y="{y + 10:.1f}" text-anchor="middle" font-size="8" '
                f'fill="{self.colours["text"]}">{_xml(part)}</text>'
            )
            x += width + 4
        for start, add in zip(starts, adds):  # each residual: from before its half, over it, into its +
            self.parts.append(
                f'<path d="M{start:.1f},{y + 4:.1f} V{y - 3:.1f} H{add:.1f} V{y + 2:.1f}" fill="none" '
                f'stroke="{COLOURS["join"]}" stroke-width="1"/>'
            )


def draw_svg(result: StackResult, *, width: int = 1200, theme: str = "light", title: str | None = None) -> str:
    """The diagram of a stack that ran, as an SVG document."""
    colours = THEMES[theme]
    plan = _Plan(result)
    top = plan.top
    _rows(top, max(width - 2 * MARGIN, 1.0), {})
    _place_x(top, MARGIN, [])
    picture = max(float(width), top.width + 2 * MARGIN)
    top.zone = (picture - MARGIN + 4, picture - 8)
    top.first = 16.0
    for frame in plan.frames:
        frame.flow.first, frame.flow.between = 4.0, 14.0
    links = _Router(plan, top).links
    _lanes(top)
    _heights(top)
    heading = 44.0 if title else 0.0
    _place_y(top, heading)
    for arc in links.arcs:
        if arc.carrier is not None:
            for box in arc.via:
                box.y = arc.carrier.y - box.h / 2
    bottom = heading + top.h

    painter = _Painter(colours, plan.stand_in)
    items = list(_walk(top))
    for item in items:
        if isinstance(item, _Frame):
            painter.frame(item)
        elif isinstance(item, _Fork):
            painter.fork(item)
    for kind, source, target, fork, number, box in links.buses:
        painter.arc("branch", source, target, _rounded(_bus(kind, plan.box_of(source), fork, number, box)), number)
    for arc in links.arcs:
        points = [(_x(x), y.y) for x, y in arc.points]  # type: ignore[attr-defined]
        painter.arc(arc.kind, arc.source, arc.target, _rounded(points), arc.branch)
        for x, span in arc.labels:
            background = colours["panel" if span.row.panel else "background"]
            painter.labels.append(_label(arc.text, x, span.y + 3.5, "middle", colours["muted"], background,
                                         "arc-label", 10))  # fmt: skip
    for before, after, vertical in links.arrows:
        if vertical:
            painter.arrow((before.centre, before.y + before.h + 2), (after.centre, after.y - 2))
        else:
            painter.arrow((before.side(True), before.axis), (after.side(False), after.axis))
    boxes = [item for item in items if isinstance(item, _Box)]
    boxes += [box for frame in plan.frames for box in frame.via]
    for box in boxes:
        painter.box(box)
    legend, legend_height = _legend(plan, boxes, links, colours, picture, bottom + 24)
    height = bottom + 24 + legend_height + 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{picture:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {picture:.0f} {height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
        f'<path d="M0,0 L8,4 L0,8 z" fill="{colours["muted"]}"/></marker>'
        '<marker id="arc-arrow" markerWidth="6" markerHeight="6" refX="5" refY="3" orient="auto">'
        f'<path d="M0,0 L6,3 L0,6 z" fill="{COLOURS["join"]}"/></marker></defs>',
        f'<rect width="100%" height="100%" fill="{colours["background"]}"/>',
    ]
    if title:
        parts.append(
            f'<text x="{picture / 2:.1f}" y="32" text-anchor="middle" font-size="18" fill="{colours["text"]}">'
            f"{_xml(title)}</text>"
        )
    parts += painter.parts + painter.labels + legend
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _bus(kind: str, source: _Box, fork: _Fork, number: int, box: _Box | None) -> list[tuple[float, float]]:
    """The path of a Parallel's branch: in, from the tensor before it, along the top and down into the column's
    first box; out, from the column's last box down, along the bottom and into the join; or through an empty
    branch."""
    column = fork.column_x(number - 1) + fork.widths[number - 1] / 2
    lead, top = fork.x + 8, fork.y + BUS / 2
    bottom = fork.y + BUS + fork.lower + BUS / 2
    join = fork.join
    gather = join.x - 14
    into = [(gather, bottom), (gather, join.axis), (join.side(False), join.axis)]
    if fork.trunk is not None:
        start = [(_x(x), y.y) for x, y in fork.trunk.points]  # type: ignore[attr-defined]
    else:
        start = [(source.side(True), source.axis), (lead, source.axis), (lead, top)]
    if kind == "through":
        return [*start, (column, top), (column, bottom), *into]
    assert box is not None
    if kind == "in":
        return [*start, (box.centre, top), (box.centre, box.y)]
    return [(box.centre, box.y + box.h), (box.centre, bottom), *into]


def _join_name(node: Node) -> str:
    if node.type == "Residual":
        return "Add"
    return str(node.arguments.get("join", "Concat")) if node.type == "Parallel" else node.type


def _legend(plan: _Plan, boxes: list[_Box], links: _Links, colours: dict[str, str], width: float, top: float
            ) -> tuple[list[str], float]:  # fmt: skip
    """The legend of what the picture uses, and its height: the kinds of box, frame, arrow and arc drawn, then a
    line on what the labels say."""
    kinds = {box.kind for box in boxes}
    joins = sorted({_join_name(node) for box in boxes if box.kind == "join" for node in box.nodes[:1]})
    entries: list[tuple[str, str, str]] = []  # (swatch: box, frame or line, kind, text)
    for kind in COLOURS:
        if kind in kinds:
            name = f"join ({', '.join(joins)})" if kind == "join" else BOX_NAMES[kind]
            entries.append(("box", kind, name))
    frame_kinds = {frame.kind for frame in plan.frames}
    entries += [("frame", kind, FRAME_NAMES[kind]) for kind in FRAME_NAMES if kind in frame_kinds]
    if links.arrows:
        entries.append(("line", "arrow", "tensor on to the next layer (a map's layer named on it)"))
    arc_kinds = {arc.kind for arc in links.arcs} | ({"branch"} if links.buses else set())
    entries += [("line", kind, ARC_NAMES[kind]) for kind in ARC_STYLES if kind in arc_kinds]

    parts = ['<g class="legend">']
    x, y = MARGIN, top
    for swatch, kind, name in entries:
        size = 24 + _width(name) + 24
        if x + size > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + 22
        parts.append(f'<g class="legend-item" data-swatch="{swatch}" data-kind="{kind}">')
        if swatch == "box":
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" fill="{COLOURS[kind]}"/>')
        elif swatch == "frame":
            dashes = ' stroke-dasharray="4 3"' if kind == "residual" else ""
            fill = colours["panel"] if kind == "repeat" else "none"
            parts.append(
                f'<rect x="{x - 2:.1f}" y="{y - 1:.1f}" width="18" height="14" rx="3" fill="{fill}" '
                f'stroke="{colours["frame"]}"{dashes}/>'
            )
        elif kind == "arrow":
            parts.append(
                f'<line x1="{x:.1f}" y1="{y + 6:.1f}" x2="{x + 16:.1f}" y2="{y + 6:.1f}" stroke="{colours["muted"]}" '
                'stroke-width="1" marker-end="url(#arrow)"/>'
            )
        else:
            stroke, dashes = ARC_STYLES[kind]
            parts.append(
                f'<path d="M{x:.1f},{y + 6:.1f} H{x + 18:.1f}" stroke="{COLOURS["join"]}" stroke-width="{stroke}"'
                f'{dashes} marker-end="url(#arc-arrow)"/>'
            )
        parts.append(f'<text x="{x + 24:.1f}" y="{y + 10:.1f}" fill="{colours["muted"]}">{_xml(name)}</text></g>')
        x += size
    notes = []
    if any(len([node for node in box.nodes if node.type not in UNSEEN]) > 1 and box.style == "map" for box in boxes):
        notes.append("activations, BatchNorm and dropout after a layer share its box")
    ranks = sorted({len(box.shape) for box in boxes if box.style == "map" and "(" not in box.label}, reverse=True)
    text = "shapes without the batch: " + "; ".join(SHAPES.get(rank, f"channels x {rank - 2} sizes") for rank in ranks)
    if any(box.detail.startswith("(") or box.label.startswith("(") for box in boxes):
        text += "; (a, b, c): a whole shape"
    notes.append(text)
    for note in notes:
        y += 22
        parts.append(
            f'<text class="legend-note" x="{MARGIN}" y="{y + 10:.1f}" fill="{colours["muted"]}">{_xml(note)}</text>'
        )
    parts.append("</g>")
    return parts, y - top + 22
