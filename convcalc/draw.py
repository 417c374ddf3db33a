"""``convcalc draw``: an architecture diagram of a stack, as plain SVG.

Each feature map is a box in the style of the LeNet and AlexNet drawings: its
height follows the height (or length) of the map, its thickness the channels,
its depth the width, all log-scaled so that 224 and 7 both stay readable. Flat
tensors (after Flatten or Linear) are bars. The layers between two maps are
named on the arrow. Long stacks wrap onto further rows; the copies of a Repeat
after the first are drawn once, marked with the number of copies; a residual
block's shortcut is noted on its join. The SVG needs nothing outside itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from xml.sax.saxutils import escape

from convcalc.stack import Row, StackResult
from convcalc.text import printable

__all__ = ["THEMES", "draw_svg"]

THEMES = {
    "light": {"background": "#ffffff", "text": "#1f2328", "muted": "#57606a", "edge": "#24292f"},
    "dark": {"background": "#0d1117", "text": "#e6edf3", "muted": "#8b949e", "edge": "#c9d1d9"},
}
COLOURS = {
    "conv": "#4c8bf5",
    "transposed": "#7c5cff",
    "pool": "#f25c54",
    "dense": "#2eb67d",
    "resize": "#c678dd",
    "join": "#f5a623",
    "input": "#9aa5b1",
    "other": "#9aa5b1",
}
LEGEND = [
    ("conv", "convolution"),
    ("transposed", "transposed conv"),
    ("pool", "pooling"),
    ("dense", "linear / flatten"),
    ("resize", "upsample / shuffle"),
    ("join", "residual / join"),
]


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
    if layer in ("Residual", "Add", "Mul", "Concat", "Repeat", "Parallel"):
        return "join"
    return "other"


def _scale(n: int, unit: float, least: float) -> float:
    return least + unit * math.log2(max(n, 1) + 1)


@dataclass
class _Map:
    """One feature map to draw: the tensor after a run of layers."""

    shape: tuple[int, ...]
    layers: list[Row]
    note: str = ""


def _maps(result: StackResult) -> list[_Map]:
    """The tensors worth a box: the input, then each layer that has weights or changes the shape.

    Activations, norms and dropout fold into the map before them. A block's note
    (``+ shortcut``, ``x3`` for a Repeat) goes on the last map drawn inside it.
    """
    maps = [_Map(result.input, [])]
    open_blocks: list[tuple[int, str]] = []
    inside: int | None = None  # the depth of a Parallel whose branches are drawn as one map
    for row in result.walk():
        if inside is not None and row.depth > inside:
            continue
        inside = None
        while open_blocks and row.depth <= open_blocks[-1][0]:
            maps[-1].note = open_blocks.pop()[1]
        if row.branch == "shortcut" or (row.branch not in (None, "body", "1") and row.depth > 0):
            continue  # a shortcut is noted on its join; later copies of a Repeat are drawn once
        if row.type in ("Save", "From"):
            continue
        if row.type == "Parallel":
            branches = len(row.inputs)  # one input per branch, an empty one (the input itself) included
            maps.append(_Map(row.output, [row], note=f"{branches} branches, {row.arguments['join']}"))
            inside = row.depth
            continue
        if row.type in ("Residual", "Repeat"):
            note = f"x{row.arguments['times']}" if row.type == "Repeat" else "+ shortcut"
            open_blocks.append((row.depth, note))
            continue
        current = maps[-1]
        if row.output == current.shape and _family(row.type) == "other":  # activations, norms, dropout: folded
            current.layers.append(row)
        else:
            maps.append(_Map(row.output, [row]))
    while open_blocks:
        maps[-1].note = open_blocks.pop()[1]
    return maps


def _box(shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Face height, thickness and depth (the skew) of a map's box, in pixels."""
    if len(shape) <= 2:  # a flat vector: a bar
        return _scale(shape[-1], 14, 10), 8.0, 0.0
    channels, spatial = shape[1], shape[2:]
    height = _scale(spatial[-2] if len(spatial) >= 2 else spatial[-1], 14, 8)
    depth = _scale(spatial[-1], 6, 2) if len(spatial) >= 2 else 0.0
    return height, _scale(channels, 5, 3), depth


def draw_svg(result: StackResult, *, width: int = 1200, theme: str = "light", title: str | None = None) -> str:
    """The diagram of a stack that ran, as an SVG document."""
    colours = THEMES[theme]
    maps = _maps(result)
    gap, margin, top = 70.0, 44.0, 70.0 if title else 40.0
    placed = []
    x, y, row_height = margin, top, 0.0
    for index, item in enumerate(maps):
        height, thickness, depth = _box(item.shape)
        span = thickness + depth * 0.6
        if x + span > width - margin and index:
            x, y = margin, y + row_height + 90
            row_height = 0.0
        placed.append((item, x, y, height, thickness, depth))
        row_height = max(row_height, height + depth * 0.4)
        x += span + gap
    total_height = y + row_height + 130 + 22 * ((len(LEGEND) - 1) // max(1, int((width - 2 * margin) // 165)))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_height:.0f}" '
        f'viewBox="0 0 {width} {total_height:.0f}" font-family="Helvetica, Arial, sans-serif" font-size="11">',
        f'<rect width="100%" height="100%" fill="{colours["background"]}"/>',
    ]
    if title:
        parts.append(
            f'<text x="{width / 2}" y="32" text-anchor="middle" font-size="18" fill="{colours["text"]}">'
            f"{_xml(title)}</text>"
        )
    previous = None
    for item, x, y, height, thickness, depth in placed:
        kind = _family(item.layers[0].type) if item.layers else "input"
        fill = COLOURS[kind]
        label = "x".join(str(n) for n in item.shape[1:]) if len(item.shape) > 1 else str(item.shape[0])
        names = [row.type for row in item.layers]
        rows = ",".join(row.label for row in item.layers) or "input"
        base = y + depth * 0.4
        dx, dy = depth * 0.6, -depth * 0.4
        parts.append(
            f'<g class="map" data-layers="{_xml(rows)}" data-types="{_xml(" ".join(names) or "input")}" '
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
                f'<text x="{x + thickness / 2}" y="{base + height + 30}" text-anchor="middle" '
                f'fill="{colours["muted"]}">{_xml(item.note)}</text>'
            )
        if previous is not None and names:
            px, py = previous
            middle = base + height / 2
            starts_row = px >= x  # the first map of a wrapped row: its label goes above it
            if not starts_row:
                parts.append(
                    f'<line x1="{px + 4}" y1="{py}" x2="{x - 4}" y2="{middle}" stroke="{colours["muted"]}" '
                    'stroke-width="1" marker-end="url(#arrow)"/>'
                )
            text = names[0] if len(names) == 1 else f"{names[0]} +{len(names) - 1}"
            anchor, tx, ty = ("start", x, base + dy - 24) if starts_row else ("end", x - 6, base + dy - 10)
            parts.append(
                f'<text class="op" x="{tx}" y="{ty}" text-anchor="{anchor}" fill="{colours["text"]}">'
                f"{_xml(text)}</text>"
            )
        parts.append("</g>")
        previous = (x + thickness + dx, base + height / 2)
    per_row = max(1, int((width - 2 * margin) // 165))  # legend entries that fit side by side
    legend_y = total_height - 40 - 22 * ((len(LEGEND) - 1) // per_row)
    parts.append('<g class="legend">')
    for i, (kind, name) in enumerate(LEGEND):
        lx, ly = margin + (i % per_row) * 165, legend_y + 22 * (i // per_row)
        parts.append(f'<rect x="{lx}" y="{ly}" width="12" height="12" fill="{COLOURS[kind]}"/>')
        parts.append(f'<text x="{lx + 18}" y="{ly + 10}" fill="{colours["muted"]}">{_xml(name)}</text>')
    parts.append("</g>")
    parts.insert(
        2,
        '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" orient="auto">'
        f'<path d="M0,0 L8,4 L0,8 z" fill="{colours["muted"]}"/></marker></defs>',
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
