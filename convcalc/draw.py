"""``convcalc draw``: an architecture diagram of a stack, as plain SVG.

Each feature map is a box in the style of the LeNet and AlexNet drawings: its
height follows the height (or length) of the map, its thickness the channels,
its depth the width, all log-scaled so that 224 and 7 both stay readable. Flat
tensors (after Flatten or Linear) are bars. The layer that makes a map is named
on the arrow into it; layers that keep the shape (activations, norms, dropout)
share the box before them. Long stacks wrap onto further rows. A Repeat's first
copy is drawn, with a bracket under it that says how many copies run.

Every skip connection is one arc, from the map of the tensor it takes to the map
of its join: a Residual's shortcut, a saved tensor that an Add, Mul or Concat
takes, and the branches of a Parallel (a fan into the box that joins them). An
arc runs in a lane above its row; one that joins a later row runs down the
right margin. The plan (which maps, which arcs) is worked out from the node
graph in one walk, then laid out; the SVG needs nothing outside itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from convcalc.spec import BLOCKS
from convcalc.stack import Node, StackResult
from convcalc.text import printable

__all__ = ["THEMES", "draw_svg"]

THEMES = {
    "light": {"background": "#ffffff", "text": "#1f2328", "muted": "#57606a", "edge": "#24292f"},
    "dark": {"background": "#0d1117", "text": "#e6edf3", "muted": "#8b949e", "edge": "#c9d1d9"},
}
COLOURS = {
    "input": "#9aa5b1",
    "conv": "#4c8bf5",
    "transposed": "#7c5cff",
    "pool": "#f25c54",
    "dense": "#2eb67d",
    "resize": "#c678dd",
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
    "join": "join",
    "other": "other layer",
}
ARC_STYLES = {  # stroke width and dashes of each kind of arc; all are drawn in the join colour
    "shortcut": ("1.6", ""),
    "saved": ("1.6", ' stroke-dasharray="6 3"'),
    "branch": ("1.1", ""),
}
JOINED = ("Add", "Mul", "Concat")
"""Joins that take saved tensors (``with:``)."""
SHAPES = {
    0: "() a 0-D tensor",
    1: "size",
    2: "features",
    3: "channels x length",
    4: "channels x height x width",
    5: "channels x depth x height x width",
}

GAP, MARGIN = 70.0, 44.0  # between two boxes of a row; around the picture
LANE, LANE_STEP = 40.0, 12.0  # the lowest arc lane above a row's boxes, and the distance between lanes
ABOVE, BELOW = 56.0, 34.0  # room for the labels above a row's boxes and below them
CHAR = 6.3  # the widest a character of 11px Helvetica usually is, to size the background behind a label


def _xml(text: str) -> str:
    """Text for an SVG element or a double-quoted attribute: markup escaped, and every character XML 1.0 forbids
    (control characters, lone surrogates, U+FFFE and U+FFFF) shown as a visible escape instead."""
    return escape(printable(text).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff"), {'"': "&quot;"})


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
    if layer in (*JOINED, *BLOCKS):
        return "join"
    return "other"


def _scale(n: int, unit: float, least: float) -> float:
    return least + unit * math.log2(max(n, 1) + 1)


# --- the plan: which maps, arcs and brackets, from one walk of the graph --------------------------------------


@dataclass
class _Map:
    """One feature map to draw: the tensor after a run of layers."""

    shape: tuple[int, ...]
    layers: list[Node] = field(default_factory=list)
    """The layers drawn in it: the first makes it and is named on its arrow; the others keep its shape."""
    shows: list[Node] = field(default_factory=list)
    """Every node whose output this box is: its layers, a Save of it, a block that ends with it."""
    note: str = ""


@dataclass(frozen=True)
class _Arc:
    """A tensor that goes around the row of maps to a join."""

    kind: str
    """``shortcut`` (a Residual's), ``saved`` (a Save that an Add, Mul or Concat takes) or ``branch`` (a Parallel's)."""
    source: Node | None
    """The node whose tensor it carries (None: the stack's input)."""
    join: Node
    start: int
    """The index of the map that shows the source's tensor."""
    end: int
    """The index of the map that shows the join's output."""
    text: str = ""
    branch: int = 0


@dataclass(frozen=True)
class _Bracket:
    """The maps of a Repeat's first copy, which stand for ``times`` copies."""

    first: int
    last: int
    times: int
    level: int
    """1 for a bracket with none inside it; one more than the deepest bracket inside it otherwise."""


@dataclass
class _Plan:
    maps: list[_Map]
    arcs: list[_Arc]
    brackets: list[_Bracket]


def _entry(block: Node) -> Node | None:
    """The node whose tensor a block takes: the first layer of each branch takes it, and an empty branch (or a
    Residual's missing shortcut) hands it to the join unchanged."""
    seen: set[str | None] = set()
    for child in block.children:
        if child.branch in seen:
            continue
        seen.add(child.branch)
        if child.type in BLOCKS:
            return _entry(child)
        if child.type != "From":
            return child.inputs[0]
    return block.inputs[-1] if block.inputs else None


def _names(nodes: list[Node]) -> str:
    """The layers of a branch worth naming: those that are drawn as boxes of their own elsewhere."""
    named = [node.type for node in nodes if _family(node.type) != "other"] or [node.type for node in nodes]
    return " + ".join(named)


def _plan(result: StackResult) -> _Plan:
    """The maps worth a box, and the arcs and brackets between them, from one walk of the nodes.

    The input is the first map; then each layer that has weights or changes the
    shape. A Residual's shortcut branch, the branches inside a Parallel and the
    copies of a Repeat after the first are not drawn; a Residual and a Repeat end
    on the last map drawn inside them.
    """
    maps = [_Map(result.input)]
    where: dict[int, int] = {}  # node.id -> the index of the map that shows its output
    arcs: list[_Arc] = []
    brackets: list[_Bracket] = []
    open_blocks: list[tuple[Node, int, list[int]]] = []  # a block, how many maps came before it, brackets inside
    hidden: int | None = None  # nodes deeper than this are not drawn

    def at(node: Node | None) -> int:
        return 0 if node is None else where.get(node.id, len(maps) - 1)

    def close(block: Node, before: int, inner: list[int]) -> None:
        end = where[block.id] = len(maps) - 1
        maps[end].shows.append(block)
        if block.type == "Residual":
            source = _entry(block)
            shortcut = [node for node in block.children if node.branch == "shortcut"]
            arcs.append(_Arc(kind="shortcut", source=source, join=block, start=at(source), end=end,
                             text=_names(shortcut)))  # fmt: skip
        level = max(inner, default=0)
        times = block.arguments.get("times", 1) if block.type == "Repeat" else 1
        if times > 1 and end >= before:
            level += 1
            brackets.append(_Bracket(first=before, last=end, times=times, level=level))
        elif times > 1:  # the copy keeps the shape: nothing of it has a box
            maps[end].note = ", ".join(filter(None, [maps[end].note, f"\u00d7{times}"]))
        if open_blocks:
            open_blocks[-1][2].append(level)

    for node in result.walk():
        if hidden is not None and node.depth > hidden:
            where[node.id] = at(node.inputs[0] if node.inputs else None)
            continue
        hidden = None
        while open_blocks and node.depth <= open_blocks[-1][0].depth:
            close(*open_blocks.pop())
        parent = node.parent
        if node.branch == "shortcut" or (parent is not None and parent.type == "Repeat" and node.branch != "1"):
            where[node.id] = at(node.inputs[0] if node.inputs else None)
            hidden = node.depth
            continue
        if node.type in ("Save", "From"):  # no new tensor: the box of the one it names or passes on shows it
            where[node.id] = at(node.inputs[0] if node.inputs else None)
            maps[where[node.id]].shows.append(node)
            continue
        if node.type in ("Residual", "Repeat"):
            open_blocks.append((node, len(maps), []))
            continue
        if node.type == "Parallel":  # drawn as one box, its branches as a fan into it
            note = f"{len(node.inputs)} branches, {node.arguments['join']}"
            maps.append(_Map(node.output, [node], [node], note=note))
            end = where[node.id] = len(maps) - 1
            source = _entry(node)
            arcs += [_Arc(kind="branch", source=source, join=node, start=at(source), end=end, branch=branch)
                     for branch in range(1, len(node.inputs) + 1)]  # fmt: skip
            hidden = node.depth
            continue
        current = maps[-1]
        if node.output == current.shape and _family(node.type) == "other":  # activations, norms, dropout: folded
            current.layers.append(node)
            current.shows.append(node)
        else:
            maps.append(_Map(node.output, [node], [node]))
        end = where[node.id] = len(maps) - 1
        if node.type in JOINED:
            given = node.arguments["with"]
            names = [given] if isinstance(given, str) else list(given)
            crop = node.arguments.get("crop")
            for name, saved in zip(names, node.inputs[1:]):
                text = f"{name} (crop: {crop})" if crop else str(name)
                arcs.append(_Arc(kind="saved", source=saved, join=node, start=at(saved), end=end, text=text))
    while open_blocks:
        close(*open_blocks.pop())
    return _Plan(maps, arcs, brackets)


# --- the layout: where each box, lane and bracket goes -------------------------------------------------------


@dataclass
class _Box:
    """Where a map's box is drawn: its front face from (x, base), and the top of its row (y)."""

    x: float
    row: int
    height: float
    thickness: float
    depth: float
    y: float = 0.0

    @property
    def dx(self) -> float:
        return self.depth * 0.6

    @property
    def span(self) -> float:
        return self.thickness + self.dx

    @property
    def base(self) -> float:
        return self.y + self.depth * 0.4

    @property
    def middle(self) -> float:
        return self.base + self.height / 2

    @property
    def arrive(self) -> float:
        """Where an arc lands on the top of the box (left of where one leaves it)."""
        return self.x + self.dx + self.thickness * 0.3

    @property
    def leave(self) -> float:
        return self.x + self.dx + self.thickness * 0.7


def _size(shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Face height, thickness and depth (the skew) of a map's box, in pixels."""
    if len(shape) <= 2:  # a flat vector: a bar
        return _scale(shape[-1] if shape else 1, 14, 10), 8.0, 0.0  # a 0-D tensor (after mean) as one unit
    channels, spatial = shape[1], shape[2:]
    height = _scale(spatial[-2] if len(spatial) >= 2 else spatial[-1], 14, 8)
    depth = _scale(spatial[-1], 6, 2) if len(spatial) >= 2 else 0.0
    return height, _scale(channels, 5, 3), depth


def _fan(arc: _Arc) -> bool:
    """A Parallel's branches fan out from the map just before it: drawn in the gap, not in a lane."""
    return arc.kind == "branch" and arc.start == arc.end - 1


@dataclass
class _Route:
    """An arc in lanes: its lane above the source's row, and above the join's row (the same one when they share a
    row); the right-margin track it takes between rows."""

    arc: _Arc
    start: float
    end: float
    source_lane: int = 0
    join_lane: int = 0
    track: float = 0.0


def _lanes(boxes: list[_Box], arcs: list[_Arc], width: float) -> tuple[list[_Route], dict[int, int]]:
    """Give each arc that is not a fan its lanes: in each row, an arc sits above every arc that runs within its
    span, so nested arcs never cross. Returns the routes and the number of lanes each row uses."""
    routes, spans = [], {}  # spans: row -> (from x, to x, route, which end)
    for arc in arcs:
        if _fan(arc):
            continue
        first, last = boxes[arc.start], boxes[arc.end]
        start, end = (first.leave, last.arrive) if arc.start != arc.end else (first.arrive, first.leave)
        route = _Route(arc, start, end)
        routes.append(route)
        if first.row == last.row:
            spans.setdefault(first.row, []).append((start, end, route, "both"))
        else:
            spans.setdefault(first.row, []).append((start, width, route, "source"))
            spans.setdefault(last.row, []).append((end, width, route, "join"))
    used = {}
    for row, row_spans in spans.items():
        placed: list[tuple[float, float, int]] = []
        for low, high, route, which in sorted(row_spans, key=lambda span: span[1] - span[0]):
            lane = 1 + max((level for a, b, level in placed if low < b and a < high), default=0)
            placed.append((low, high, lane))
            if which in ("both", "source"):
                route.source_lane = lane
            if which in ("both", "join"):
                route.join_lane = lane
        used[row] = max(level for _, _, level in placed)
    crossing = sorted((route for route in routes if boxes[route.arc.start].row != boxes[route.arc.end].row),
                      key=lambda route: route.arc.end - route.arc.start)  # fmt: skip
    step = min(6.0, (MARGIN - 14) / max(1, len(crossing) - 1))
    for k, route in enumerate(crossing):
        route.track = width - MARGIN + 8 + k * step
    return routes, used


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
    width = CHAR * size / 11 * len(printable(text)) + 4
    left = {"start": x - 2, "middle": x - width / 2, "end": x - width + 2}[anchor]
    return (
        f'<rect x="{left:.1f}" y="{y - size * 0.85:.1f}" width="{width:.1f}" height="{size * 1.15:.1f}" '
        f'fill="{background}"/>'
        f'<text class="{css}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{colour}">'
        f"{_xml(text)}</text>"
    )


def _shape_text(shape: tuple[int, ...]) -> str:
    """A map's label: its shape without the batch, every axis kept (a 3-D map's depth too)."""
    if len(shape) <= 1:
        return str(shape[0]) if shape else "()"  # a 0-D tensor: no axis to show
    return "x".join(str(n) for n in shape[1:])


def draw_svg(result: StackResult, *, width: int = 1200, theme: str = "light", title: str | None = None) -> str:
    """The diagram of a stack that ran, as an SVG document."""
    colours = THEMES[theme]
    plan = _plan(result)
    maps = plan.maps

    boxes: list[_Box] = []
    x, row = MARGIN, 0
    for index, item in enumerate(maps):
        height, thickness, depth = _size(item.shape)
        box = _Box(x=x, row=row, height=height, thickness=thickness, depth=depth)
        if x + box.span > width - MARGIN and index:
            row += 1
            box.x, box.row = MARGIN, row
        boxes.append(box)
        x = box.x + box.span + GAP
    rows = row + 1
    routes, lanes = _lanes(boxes, plan.arcs, width)

    bracket_levels = [0] * rows
    for bracket in plan.brackets:
        for box in boxes[bracket.first : bracket.last + 1]:
            bracket_levels[box.row] = max(bracket_levels[box.row], bracket.level)
    tops = [0.0] * rows
    heights = [0.0] * rows
    noted = [False] * rows
    for box, item in zip(boxes, maps):
        heights[box.row] = max(heights[box.row], box.height + box.depth * 0.4)
        noted[box.row] = noted[box.row] or bool(item.note)
    below = [
        heights[r] + (BELOW if not bracket_levels[r] else (38 if noted[r] else 26) + 16 * bracket_levels[r] + 4)
        for r in range(rows)
    ]
    above = [max(ABOVE, LANE + LANE_STEP * (lanes.get(r, 0) - 1) + 14) for r in range(rows)]
    first_lanes = lanes.get(0, 0)  # the first row's lanes stay below the title
    lane_room = (40.0 if title else 4.0) + LANE + LANE_STEP * (first_lanes - 1) + 6 if first_lanes else 0.0
    y = max((30.0 if title else 0.0) + ABOVE - 16, lane_room)
    for r in range(rows):
        tops[r] = y
        y += below[r] + (above[r + 1] if r + 1 < rows else 0)
    for box in boxes:
        box.y = tops[box.row]
    fanned = {arc.end for arc in plan.arcs if _fan(arc)}  # a Parallel's fan stands for its arrow
    arrows = any(index not in fanned and maps[index].layers and boxes[index - 1].row == boxes[index].row
                 for index in range(1, len(maps)))  # fmt: skip
    legend, legend_height = _legend(plan, arrows, colours, width, y + 20)
    total_height = y + 20 + legend_height + 16

    def lane_y(r: int, lane: int) -> float:
        return tops[r] - LANE - LANE_STEP * (lane - 1)

    join_colour = COLOURS["join"]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_height:.0f}" '
        f'viewBox="0 0 {width} {total_height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
        f'<path d="M0,0 L8,4 L0,8 z" fill="{colours["muted"]}"/></marker>'
        '<marker id="arc-arrow" markerWidth="6" markerHeight="6" refX="5" refY="3" orient="auto">'
        f'<path d="M0,0 L6,3 L0,6 z" fill="{join_colour}"/></marker></defs>',
        f'<rect width="100%" height="100%" fill="{colours["background"]}"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2}" y="32" text-anchor="middle" font-size="18" fill="{colours["text"]}">'
            f"{_xml(title)}</text>"
        )

    def arc_path(arc: _Arc, path: str) -> str:
        stroke, dashes = ARC_STYLES[arc.kind]
        source = "input" if arc.source is None else arc.source.label
        branch = f' data-branch="{arc.branch}"' if arc.kind == "branch" else ""
        return (
            f'<path class="arc {arc.kind}" data-from="{_xml(source)}" data-to="{_xml(arc.join.label)}"{branch} '
            f'd="{path}" fill="none" stroke="{join_colour}" stroke-width="{stroke}"{dashes} '
            'marker-end="url(#arc-arrow)"/>'
        )

    arc_labels = []
    for route in routes:  # behind the boxes and labels
        arc, first, last = route.arc, boxes[route.arc.start], boxes[route.arc.end]
        top, bottom = lane_y(first.row, route.source_lane), lane_y(last.row, route.join_lane)
        if route.track:
            points = [(route.start, first.y - 1), (route.start, top), (route.track, top), (route.track, bottom),
                      (route.end, bottom), (route.end, last.y - 1)]  # fmt: skip
        else:
            points = [(route.start, first.y - 1), (route.start, top), (route.end, top), (route.end, last.y - 1)]
        parts.append(arc_path(arc, _rounded(points)))
        if arc.text:
            background, muted = colours["background"], colours["muted"]
            if route.track:  # name it where it leaves its row and where it comes in
                where = [(route.start + 8, top), (route.end + 8, bottom)]
                arc_labels += [_label(arc.text, lx, ly + 3.5, "start", muted, background, "arc-label", 10)
                               for lx, ly in where]  # fmt: skip
            else:
                middle = (route.start + route.end) / 2
                arc_labels.append(_label(arc.text, middle, top + 3.5, "middle", muted, background, "arc-label", 10))
    for arc in plan.arcs:
        if not _fan(arc):
            continue
        before, box = boxes[arc.start], boxes[arc.end]
        count = len(arc.join.inputs)
        if before.row == box.row:
            px, py = before.x + before.span + 4, before.base + before.height / 2
        else:  # the Parallel starts a row: its fan starts in the margin
            px, py = box.x - 36, box.middle
        spread = min(8.0, box.height * 0.7 / max(1, count - 1))
        ty = box.middle + (arc.branch - (count + 1) / 2) * spread
        bend = (px + box.x - 4) / 2
        curve = f"M{px:.1f},{py:.1f} C{bend:.1f},{py:.1f} {bend:.1f},{ty:.1f} {box.x - 4:.1f},{ty:.1f}"
        parts.append(arc_path(arc, curve))

    for bracket in plan.brackets:
        for r in range(boxes[bracket.first].row, boxes[bracket.last].row + 1):
            inside = [box for box in boxes[bracket.first : bracket.last + 1] if box.row == r]
            left, right = inside[0].x - 4, inside[-1].x + inside[-1].span + 4
            notes = any(maps[index].note for index in range(bracket.first, bracket.last + 1) if boxes[index].row == r)
            lowest = max(box.base + box.height for box in inside)
            by = lowest + (38 if notes else 26) + 16 * (bracket.level - 1)
            parts.append(
                f'<path class="repeat" d="M{left:.1f},{by - 5:.1f} V{by:.1f} H{right:.1f} V{by - 5:.1f}" fill="none" '
                f'stroke="{colours["muted"]}" stroke-width="1"/>'
            )
            parts.append(
                f'<text class="repeat" x="{(left + right) / 2:.1f}" y="{by + 12:.1f}" text-anchor="middle" '
                f'fill="{colours["muted"]}">\u00d7{bracket.times}</text>'
            )

    for index, (item, box) in enumerate(zip(maps, boxes)):
        kind = _family(item.layers[0].type) if item.layers else "input"
        fill = COLOURS[kind]
        label = _shape_text(item.shape)
        names = [node.type for node in item.layers]
        x, base, height, thickness = box.x, box.base, box.height, box.thickness
        dx, dy = box.dx, -box.depth * 0.4
        shown = ",".join(["input"] * (index == 0) + [node.label for node in item.shows])
        types = " ".join(["input"] * (index == 0) + [node.type for node in item.shows])
        parts.append(
            f'<g class="map" data-kind="{kind}" data-layers="{_xml(shown)}" data-types="{_xml(types)}" '
            f'data-shape="{_xml(label)}">'
        )
        parts.append(f"<title>{_xml(' + '.join(names) or 'input')}: {_xml(str(item.shape))}</title>")
        edge = colours["edge"]
        top_face = f"{x},{base} {x + dx},{base + dy} {x + dx + thickness},{base + dy} {x + thickness},{base}"
        parts.append(
            f'<polygon points="{top_face}" fill="{fill}" fill-opacity="0.55" stroke="{edge}" stroke-width="0.6"/>'
        )
        parts.append(
            f'<polygon points="{x + thickness},{base} {x + thickness + dx},{base + dy} '
            f'{x + thickness + dx},{base + dy + height} {x + thickness},{base + height}" '
            f'fill="{fill}" fill-opacity="0.75" stroke="{edge}" stroke-width="0.6"/>'
        )
        parts.append(
            f'<rect x="{x}" y="{base}" width="{thickness}" height="{height}" fill="{fill}" stroke="{edge}" '
            f'stroke-width="0.6"/>'
        )
        parts.append(
            f'<text class="shape" x="{x + thickness / 2}" y="{base + height + 16}" text-anchor="middle" '
            f'fill="{colours["text"]}">{_xml(label)}</text>'
        )
        if item.note:
            parts.append(
                f'<text class="note" x="{x + thickness / 2}" y="{base + height + 30}" text-anchor="middle" '
                f'fill="{colours["muted"]}">{_xml(item.note)}</text>'
            )
        if index and names:
            before = boxes[index - 1]
            starts_row = before.row != box.row  # the first map of a wrapped row: its label goes above it
            if not starts_row and index not in fanned:
                parts.append(
                    f'<line x1="{before.x + before.span + 4}" y1="{before.middle}" x2="{x - 4}" y2="{box.middle}" '
                    f'stroke="{colours["muted"]}" stroke-width="1" marker-end="url(#arrow)"/>'
                )
            anchor, tx, ty = ("start", x, base + dy - 24) if starts_row else ("end", x - 6, base + dy - 10)
            parts.append(_label(names[0], tx, ty, anchor, colours["text"], colours["background"], "op"))
        parts.append("</g>")
    parts += arc_labels
    parts += legend
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _legend(plan: _Plan, arrows: bool, colours: dict[str, str], width: int, top: float) -> tuple[list[str], float]:
    """The legend of what the picture uses, and its height: the kinds of box, arrow and arc drawn, then a line on
    what the labels say."""
    kinds = {_family(item.layers[0].type) if item.layers else "input" for item in plan.maps}
    joins = sorted(
        {item.layers[0].type for item in plan.maps if item.layers and _family(item.layers[0].type) == "join"}
    )
    entries: list[tuple[str, str, str]] = []  # (swatch: box or line, kind, text)
    for kind in COLOURS:
        if kind in kinds:
            name = f"join ({', '.join(joins)})" if kind == "join" else BOX_NAMES[kind]
            entries.append(("box", kind, name))
    if arrows:
        entries.append(("line", "arrow", "layer (named above the box it makes)"))
    arc_kinds = {arc.kind for arc in plan.arcs}
    saved_joins = sorted({arc.join.type for arc in plan.arcs if arc.kind == "saved"})
    arc_names = {
        "shortcut": "Residual shortcut (added)",
        "saved": f"saved tensor to its {' / '.join(saved_joins)}",
        "branch": "Parallel branches (joined in the box)",
    }
    entries += [("line", kind, arc_names[kind]) for kind in ARC_STYLES if kind in arc_kinds]

    parts = ['<g class="legend">']
    x, y = MARGIN, top
    for swatch, kind, name in entries:
        size = 24 + CHAR * len(name) + 24
        if x + size > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + 22
        parts.append(f'<g class="legend-item" data-kind="{kind}">')
        if swatch == "box":
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="12" height="12" fill="{COLOURS[kind]}"/>')
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
    if any(len(item.layers) > 1 for item in plan.maps):
        notes.append("layers that keep the shape (activations, norms, dropout) share the box before them")
    if plan.brackets:
        notes.append("\u00d7N under a bracket: a Repeat; its first copy is drawn, and N copies run")
    ranks = sorted({len(item.shape) for item in plan.maps}, reverse=True)
    notes.append(
        "shapes without the batch: " + "; ".join(SHAPES.get(rank, f"channels x {rank - 2} sizes") for rank in ranks)
    )
    for note in notes:
        y += 22
        parts.append(f'<text class="legend-note" x="{MARGIN}" y="{y + 10:.1f}" fill="{colours["muted"]}">{note}</text>')
    parts.append("</g>")
    return parts, y - top + 22
