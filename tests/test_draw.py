"""convcalc draw: the SVG parses, every node of the graph is drawn once, no two boxes overlap, every Repeat is one
frame around its first copy, a Parallel's branches are side by side, every arc starts at the box of the tensor it
takes and ends at the box of the node that takes it, and the look is kept in golden files.

The expectations come from elsewhere than draw.py: the YAML of the examples, the stack's node graph, the geometry
the SVG itself draws (rectangles, polygons, circles, path points), and the items a Hypothesis test generates.
"""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcalc.cli import main
from convcalc.draw import draw_svg
from convcalc.network import Node, StackResult, run_stack
from convcalc.spec import resolve
from convcalc.stackfile import load_stack
from convcalc.text import printable
from tests.golden_files import assert_matches_golden
from tests.profiles import scaled

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "docs" / "images"  # the diagrams the docs show are the golden files
SVG = "{http://www.w3.org/2000/svg}"
NUMBER = r"-?\d+(?:\.\d+)?"
Box = tuple[float, float, float, float]  # left, top, right, bottom


def draw(*args: str) -> str:
    result = CliRunner().invoke(main, ["draw", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def graph(path: Path) -> StackResult:
    shape, specs = load_stack(path.read_text(), path.name)
    return run_stack(shape, specs)


def picture(path: Path, *args: str) -> tuple[ET.Element, StackResult]:
    return ET.fromstring(draw(str(path), *args)), graph(path)


def classes(element: ET.Element) -> list[str]:
    return element.get("class", "").split()


def boxes(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter(f"{SVG}g") if "box" in classes(element)]


def frames(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter(f"{SVG}g") if "frame" in classes(element)]


def arcs(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter() if "arc" in classes(element)]


def pairs(root: ET.Element, kind: str) -> list[tuple[str, str]]:
    """(from, data-to) of the arcs of a kind: from the node that made the tensor (data-copy, where a Repeat's
    first copy shows a tensor a later copy made), else data-from."""
    return sorted((a.get("data-copy") or a.get("data-from", ""), a.get("data-to", "")) for a in arcs(root)
                  if kind in classes(a))  # fmt: skip


def shown(box: ET.Element) -> list[str]:
    return box.get("data-nodes", "").split(",")


def drawn_labels(root: ET.Element) -> list[str]:
    return [label for box in boxes(root) for label in shown(box)]


def bbox(element: ET.Element) -> Box:
    left, top, width, height = map(float, element.get("data-bbox", "").split(","))
    return left, top, left + width, top + height


def drawn_extent(box: ET.Element) -> Box:
    """The extent of what a box's group draws (its rectangles, polygons and circles), read from the SVG."""
    xs: list[float] = []
    ys: list[float] = []
    for element in box.iter():
        tag = element.tag.removeprefix(SVG)
        if tag == "rect":
            x, y = float(element.get("x", "0")), float(element.get("y", "0"))
            xs += [x, x + float(element.get("width", "0"))]
            ys += [y, y + float(element.get("height", "0"))]
        elif tag == "polygon":
            for point in element.get("points", "").split():
                x, y = map(float, point.split(","))
                xs.append(x)
                ys.append(y)
        elif tag == "circle":
            x, y, r = (float(element.get(name, "0")) for name in ("cx", "cy", "r"))
            xs += [x - r, x + r]
            ys += [y - r, y + r]
    assert xs and ys, box.get("data-nodes")
    return min(xs), min(ys), max(xs), max(ys)


def inside(inner: Box, outer: Box, slack: float = 0.0) -> bool:
    return (outer[0] - slack <= inner[0] and inner[2] <= outer[2] + slack and outer[1] - slack <= inner[1]
            and inner[3] <= outer[3] + slack)  # fmt: skip


def overlap(one: Box, other: Box) -> bool:
    return one[0] < other[2] and other[0] < one[2] and one[1] < other[3] and other[1] < one[3]


def hidden(node: Node) -> bool:
    """Not drawn: the nodes of a Repeat's copies after the first (the frame marked xN stands for them)."""
    chain = node
    while chain.parent is not None:
        if chain.parent.type == "Repeat" and chain.branch != "1":
            return True
        chain = chain.parent
    return False


def below(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        yield from below(node.children)


def ends(arc: ET.Element) -> tuple[tuple[float, float], tuple[float, float]]:
    """The first and last point of an arc's path."""
    numbers = [float(n) for n in re.findall(NUMBER, arc.get("d", ""))]
    return (numbers[0], numbers[1]), (numbers[-2], numbers[-1])


def yaml_items(path: Path, key: str) -> list[Any]:
    """Every value of ``key`` in the stack file, at any depth: the examples' own word for what is in them."""
    found = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            for name, inner in value.items():
                if name == key:
                    found.append(inner)
                visit(inner)
        elif isinstance(value, list):
            for inner in value:
                visit(inner)

    visit(yaml.safe_load(path.read_text()))
    return found


# --- what every picture holds: the checks, for the examples and for generated stacks ------------------------------


def well_formed(root: ET.Element) -> None:
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}g[@class='legend']") is not None
    for box in boxes(root):  # a box's group says where it is, and draws nothing outside that
        assert inside(drawn_extent(box), bbox(box), slack=0.25), box.get("data-nodes")


def every_node_drawn_once(root: ET.Element, result: StackResult) -> None:
    """Each node's label is in the data-nodes of exactly one box (blocks in the box of their output, a Save in the
    box of the tensor it names), except the nodes of a Repeat's later copies, which no box shows."""
    labels = drawn_labels(root)
    expected = ["input"] + [node.label for node in result.walk() if not hidden(node)]
    assert sorted(labels) == sorted(expected)
    makers = [box.get("data-node") for box in boxes(root)]
    assert len(makers) == len(set(makers))


def no_boxes_overlap(root: ET.Element) -> None:
    extents = [(box.get("data-nodes"), bbox(box)) for box in boxes(root)]
    for index, (name, one) in enumerate(extents):
        for other_name, other in extents[index + 1 :]:
            assert not overlap(one, other), (name, other_name)


def arcs_start_and_end_at_their_boxes(root: ET.Element) -> None:
    """An arc leaves the box that shows the tensor it carries (data-from) and ends at the box of the node that takes
    it (data-to): within 4 pixels of those boxes."""
    where = {label: bbox(box) for box in boxes(root) for label in shown(box)}
    for arc in arcs(root):
        assert arc.tag == f"{SVG}path" and len(arc) == 0
        start, end = ends(arc)
        source, target = where[arc.get("data-from", "")], where[arc.get("data-to", "")]
        assert inside((*start, *start), source, slack=4), (arc.get("data-from"), start, source)
        assert inside((*end, *end), target, slack=4), (arc.get("data-to"), end, target)


def repeats_are_one_frame(root: ET.Element, result: StackResult) -> None:
    """A Repeat of more than one copy is one frame, marked with its count, around every box its first copy makes
    (a Residual's shortcut layers aside: they sit on its arc); a Residual is one frame around its body and its +."""
    by_node: dict[str, list[ET.Element]] = {}
    for frame in frames(root):
        by_node.setdefault(frame.get("data-node", ""), []).append(frame)
    makers = {box.get("data-node"): box for box in boxes(root) if "via" not in classes(box)}
    for node in result.walk():
        if hidden(node) or node.type not in ("Repeat", "Residual"):
            continue
        times = node.arguments.get("times", 1)
        inner = [child for child in below(node.children) if not hidden(child)]
        made = [makers[child.label] for child in inner if child.label in makers]
        if node.type == "Residual":
            made.append(makers[node.label])
        if node.type == "Repeat" and (times == 1 or not made):  # nothing to repeat in a frame
            assert node.label not in by_node
            continue
        (frame,) = by_node[node.label]
        if node.type == "Repeat":
            assert frame.get("data-times") == str(times)
            label = frame.find(f"{SVG}text")
            assert label is not None and label.text == f"\u00d7{times}"
        for box in made:
            assert inside(bbox(box), bbox(frame)), (node.label, box.get("data-nodes"))


def branches_side_by_side(root: ET.Element, result: StackResult) -> None:
    """Each branch of a Parallel is a column: its boxes' x ranges do not meet those of the other branches, and the
    branches run left to right in the order written."""
    makers = {box.get("data-node"): bbox(box) for box in boxes(root) if "via" not in classes(box)}
    for node in result.walk():
        if hidden(node) or node.type != "Parallel":
            continue
        spans = []
        for number in range(1, len(node.inputs) + 1):
            branch = [child for child in node.children if child.branch == f"branch{number}"]
            extents = [makers[child.label] for child in below(branch) if child.label in makers]
            if extents:
                spans.append((min(e[0] for e in extents), max(e[2] for e in extents)))
        for (_, right), (left, _) in itertools.pairwise(spans):
            assert right < left, (node.label, spans)
        join = makers[node.label]
        assert all(right < join[0] for _, right in spans)  # the join comes after the columns


def legend_lists_what_is_drawn(root: ET.Element) -> None:
    """Its boxes are the kinds of box drawn, its frames the kinds of frame, its lines the kinds of arc drawn and
    the arrow where there is one."""
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    items: dict[str, set[str]] = {"box": set(), "frame": set(), "line": set()}
    for item in legend.iter(f"{SVG}g"):
        if item.get("class") == "legend-item":
            items[item.get("data-swatch", "")].add(item.get("data-kind", ""))
    assert items["box"] == {box.get("data-kind", "") for box in boxes(root)}
    assert items["frame"] == {kind for frame in frames(root) for kind in classes(frame)} - {"frame"}
    drawn = {kind for arc in arcs(root) for kind in classes(arc)} - {"arc"}
    if root.find(f".//{SVG}line[@class='arrow']") is not None:
        drawn.add("arrow")
    assert items["line"] == drawn


def within_the_picture(root: ET.Element) -> None:
    """Every path (arcs and frames' lines) and every box stays inside the picture."""
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    for path in root.iter(f"{SVG}path"):
        if path.get("d", "").startswith("M0,0"):  # a marker's arrowhead, in its own coordinates
            continue
        xs, ys = [], []  # absolute commands only: M, L, Q and C take x,y pairs; H an x; V a y
        for command, numbers in re.findall(r"([MLQCHV])([^MLQCHV]*)", path.get("d", "")):
            values = [float(n) for n in re.findall(NUMBER, numbers)]
            if command == "H":
                xs += values
            elif command == "V":
                ys += values
            else:
                xs += values[::2]
                ys += values[1::2]
        assert xs and ys and all(0 <= x <= width for x in xs) and all(0 <= y <= height for y in ys), path.get("d")
    for box in boxes(root):
        assert inside(bbox(box), (0, 0, width, height)), box.get("data-nodes")


def all_checks(root: ET.Element, result: StackResult) -> None:
    well_formed(root)
    every_node_drawn_once(root, result)
    no_boxes_overlap(root)
    arcs_start_and_end_at_their_boxes(root)
    repeats_are_one_frame(root, result)
    branches_side_by_side(root, result)
    legend_lists_what_is_drawn(root)
    within_the_picture(root)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_diagrams_match_golden_files(example: Path) -> None:
    svg = draw(str(example), "--title", example.stem)
    assert_matches_golden(svg, GOLDEN / f"{example.stem}.svg")


@pytest.mark.parametrize("width", ["1200", "700"])
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_example_holds_every_check(example: Path, width: str) -> None:
    """Well-formed; every node drawn once; no two boxes overlap; every arc from its source's box to its target's;
    every Repeat one frame; every Parallel's branches side by side; the legend lists what is drawn."""
    all_checks(*picture(example, "--width", width))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_each_map_is_labelled_with_the_shape_of_the_layer_that_makes_it(example: Path) -> None:
    """Without the batch, every axis kept (a 3-D map's depth too); the whole shape, in parentheses, where the
    leading axis is not the batch."""
    root, result = picture(example)
    nodes = {node.label: node for node in result.walk()}
    outputs = {node.label: node.output for node in result.walk()} | {"input": result.input}
    for box in boxes(root):
        if "map" not in classes(box):
            continue
        shape = outputs[box.get("data-node", "")]
        text = box.find(f"{SVG}text[@class='shape']")
        assert text is not None and text.text == box.get("data-shape")
        node = nodes.get(box.get("data-node", ""))
        if shape[0] == result.input[0] and (node is None or from_the_input(node)):
            assert text.text == "x".join(map(str, shape[1:]))
        else:
            assert text.text == "(" + ", ".join(map(str, shape)) + ")"


def from_the_input(node: Node) -> bool:
    """Whether the stack's input reaches the node's tensor (a Parameter, Buffer or Constant alone has no batch)."""
    seen, todo = set(), [node]
    while todo:
        current = todo.pop()
        if current.id in seen or current.type in ("Parameter", "Buffer", "Constant"):
            continue
        seen.add(current.id)
        sources = current.inputs  # a split takes its first part, and each part the split's input
        if any(source is None for source in sources):
            return True
        todo += [source for source in sources if source is not None]
    return False


# --- real networks ---------------------------------------------------------------------------------------------


def test_vit_shows_attention_norms_and_the_mlp_inside_one_frame_of_twelve() -> None:
    example = ROOT / "examples" / "vit_b_16.yaml"
    root, result = picture(example)
    (times,) = yaml_items(example, "times")
    (repeat,) = [frame for frame in frames(root) if "repeat" in classes(frame)]
    assert repeat.get("data-times") == str(times) == "12"
    inside_repeat = [box for box in boxes(root) if inside(bbox(box), bbox(repeat))]
    kinds = [box.get("data-types", "").split()[0] for box in inside_repeat]
    assert kinds.count("LayerNorm") == 2 and kinds.count("MultiheadAttention") == 1 and kinds.count("Linear") == 2
    assert kinds.count("Residual") == 2  # the two + of the encoder block
    residuals = [frame for frame in frames(root) if "residual" in classes(frame)]
    assert len(residuals) == 2 and all(inside(bbox(frame), bbox(repeat)) for frame in residuals)
    # the attention residual runs from the tensor the block takes (after the position embedding and its dropout)
    first = next(node for node in result.walk() if node.type == "Residual")
    source = next(node for node in result.walk() if node.type == "Dropout" and node.parent is None)
    assert (source.label, first.label) in pairs(root, "shortcut")
    class_token = next(box for box in boxes(root) if box.get("data-types", "").startswith("ClassToken"))
    assert all(arc.get("data-from") not in shown(class_token) for arc in arcs(root))
    text = " ".join(element.text or "" for element in root.iter(f"{SVG}text"))
    assert "\u00d712" in text and "x6" not in text


def test_googlenet_draws_each_inception_as_four_columns_into_its_concat() -> None:
    example = ROOT / "examples" / "googlenet.yaml"
    root, result = picture(example)
    parallels = yaml_items(example, "Parallel")
    assert len(parallels) == 9 and all(len(parallel["branches"]) == 4 for parallel in parallels)
    joins = sorted(node.label for node in result.walk() if node.type == "Parallel")
    into = [(source, target) for source, target in pairs(root, "branch") if target in joins]
    assert sorted({target for _, target in into}) == joins and len(into) == 36  # one bus from each column's end
    columns = [box for box in boxes(root) if ".branch" in box.get("data-node", "")]
    assert len(columns) == 9 * (1 + 2 + 2 + 2)  # 1x1; 1x1, 3x3; 1x1, 3x3; pool, 1x1 (BatchNorm and ReLU inside)
    branches_side_by_side(root, result)


def test_resnet50_repeats_are_frames_each_on_one_row() -> None:
    example = ROOT / "examples" / "resnet50.yaml"
    root, result = picture(example)
    counts = [times for times in yaml_items(example, "times")]
    repeats = [frame for frame in frames(root) if "repeat" in classes(frame)]
    assert [frame.get("data-times") for frame in repeats] == [str(times) for times in counts] == ["2", "3", "5", "2"]
    labels = [text.text for frame in repeats for text in frame.iter(f"{SVG}text")]
    assert labels == ["\u00d72", "\u00d73", "\u00d75", "\u00d72"]
    for frame in repeats:  # one rectangle, and the first copy's boxes side by side in it, on one row
        assert len(frame.findall(f"{SVG}rect")) == 1
        node = next(node for node in result.walk() if node.label == frame.get("data-node"))
        made = [box for box in boxes(root) if box.get("data-node", "").startswith(f"{node.label}.1.")]
        middles = {round((bbox(box)[1] + bbox(box)[3]) / 2) for box in made if "map" in classes(box)}
        assert len(made) == 4 and max(middles) - min(middles) < 40
    assert len(pairs(root, "shortcut")) == 16 - sum(counts) + len(counts)  # one per Residual drawn
    vias = [box for box in boxes(root) if "via" in classes(box)]
    assert len(vias) == 4 and all(box.get("data-types") == "Conv2d BatchNorm2d" for box in vias)


def test_resnet18_has_one_shortcut_arc_per_residual_from_the_blocks_input() -> None:
    example = ROOT / "examples" / "resnet18.yaml"
    root, result = picture(example)
    assert len(yaml_items(example, "Residual")) == 8
    assert all(times == 1 for times in yaml_items(example, "times"))  # so every Residual is drawn, and no frame xN
    residuals = [node for node in result.walk() if node.type == "Residual"]
    expected = sorted((residual.children[0].inputs[0].label, residual.label) for residual in residuals)  # type: ignore[union-attr]
    assert len(expected) == 8
    assert pairs(root, "shortcut") == expected
    assert ("4", "5") in expected  # the first block takes the max pool's output
    assert len(arcs(root)) == 8
    assert not [frame for frame in frames(root) if "repeat" in classes(frame)]


def test_unet_has_one_arc_per_concat_from_the_save_it_names() -> None:
    example = ROOT / "examples" / "unet.yaml"
    root = ET.fromstring(draw(str(example)))
    layers = yaml.safe_load(example.read_text())["layers"]
    label = {layer["Save"]: str(position) for position, layer in enumerate(layers, 1) if "Save" in layer}
    expected = sorted(
        (label[layer["Concat"]["with"]], str(position)) for position, layer in enumerate(layers, 1) if "Concat" in layer
    )
    assert len(expected) == 4 and pairs(root, "saved") == expected == pairs(root, "arc")
    texts = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "arc-label"]
    assert {f"{name} (crop: center)" for name in label} == set(texts)  # the crop is said on the arc


def test_a_3d_map_shows_its_depth() -> None:
    example = ROOT / "examples" / "video3d.yaml"
    root = ET.fromstring(draw(str(example)))
    stack = yaml.safe_load(example.read_text())
    depth = stack["input"][2]
    first = boxes(root)[0].find(f"{SVG}text[@class='shape']")
    assert first is not None and first.text == f"3x{depth}x112x112"
    names = [next(iter(layer)) if isinstance(layer, dict) else layer for layer in stack["layers"]]
    boxes_3d = 1 + sum(name != "ReLU" for name in names[: names.index("Flatten")])  # the input, then each layer
    shapes = [box.get("data-shape", "") for box in boxes(root)]
    assert sum(shape.count("x") == 3 for shape in shapes) == boxes_3d == 11  # C x D x H x W
    notes = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "legend-note"]
    assert any("channels x depth x height x width" in (note or "") for note in notes)


def test_every_layer_of_a_straight_stack_is_drawn_with_its_shape() -> None:
    root = ET.fromstring(draw(str(ROOT / "examples" / "lenet5.yaml")))
    assert [box.get("data-nodes") for box in boxes(root)] == [
        "input", "1,2", "3", "4,5", "6", "7", "8,9", "10,11", "12",
    ]  # fmt: skip
    assert [box.get("data-shape") for box in boxes(root)] == [
        "1x32x32", "6x28x28", "6x14x14", "16x10x10", "16x5x5", "400", "120", "84", "10",
    ]  # fmt: skip
    ops = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "op"]
    assert ops == ["Conv2d 5x5", "AvgPool2d 2x2/2", "Conv2d 5x5", "AvgPool2d 2x2/2", "Flatten", "Linear", "Linear",
                   "Linear"]  # fmt: skip
    assert arcs(root) == [] and frames(root) == []


# --- small boxes: what a transformer is made of, and what comes next ------------------------------------------------

SWIN_LIKE = """
input: [1, 16, 8]
define:
  Attention:
    arguments: {dim: 8}
    layers:
      - Save: x
      - Parameter: {name: bias, shape: [1, 16, 16]}
      - From: x
      - Linear: {out_features: "3 * dim"}
      - chunk: {chunks: 3, dim: -1, names: [q, k, v]}
      - From: k
      - transpose: [-2, -1]
      - Save: k_t
      - From: q
      - matmul: {with: k_t}
      - Add: {with: bias}
      - Softmax: {dim: -1}
      - matmul: {with: v}
layers:
  - Repeat:
      times: 3
      layers:
        - Residual:
            body:
              - LayerNorm: {normalized_shape: 8}
              - Attention: {dim: 8}
        - Residual:
            body: [LayerNorm: {normalized_shape: 8}, Linear: {out_features: 32}, GELU, Linear: {out_features: 8}]
  - TransformerEncoderLayer: {nhead: 2, dim_feedforward: 32, batch_first: true, norm_first: true}
"""


def test_tensor_methods_and_learned_tensors_are_small_boxes_inside_their_block() -> None:
    shape, specs = load_stack(SWIN_LIKE, "swin-like")
    result = run_stack(shape, specs)
    assert result.error is None
    root = ET.fromstring(draw_svg(result))
    all_checks(root, result)
    (block,) = [frame for frame in frames(root) if "block" in classes(frame)]
    label = block.find(f"{SVG}text")
    assert label is not None and label.text == "Attention"
    small = {box.get("data-types", "").split()[0]: box for box in boxes(root) if "op" in classes(box)}
    for kind in ("Parameter", "chunk", "transpose", "matmul", "Softmax", "LayerNorm"):
        assert kind in small and inside(bbox(small[kind]), bbox(block)) != (kind == "LayerNorm"), kind
    texts = {text.text for text in root.iter(f"{SVG}text")}
    assert {"Parameter bias", "\u2192 q, k, v", "(1, 16, 16)", "16x24"} <= texts  # names and the shapes they make
    saved = pairs(root, "saved")  # k_t into the first matmul, bias into the Add, v into the second matmul
    assert len(saved) == 3 and len(pairs(root, "from")) == 2  # x into the Linear, q into the first matmul
    layer = next(box for box in boxes(root) if "layer" in classes(box))
    parts = [text.text for text in layer.iter(f"{SVG}text") if text.get("class") == "part"]
    assert parts == ["LayerNorm", "attention", "LayerNorm", "Linear", "ReLU", "Linear"]


# --- generated stacks ------------------------------------------------------------------------------------------

CONV = ("Conv2d", {"out_channels": 4, "kernel_size": 3, "padding": 1}, None)


@st.composite
def flat_stacks(draw: st.DrawFn) -> tuple[list[Any], list[tuple[str, str]]]:
    """Top-level layers, Saves and joins on a (1, 4, 8, 8) tensor, and the arcs they should draw: (the Save's
    position, the join's position) for every name a join takes."""
    items: list[Any] = []
    saved: dict[str, int] = {}
    expected: list[tuple[str, str]] = []
    for _ in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(["conv", "relu", "save", "save", "join", "join"]))
        if kind == "save":
            saved[name := f"s{len(saved)}"] = len(items) + 1
            items.append(("Save", {"name": name}, None))
        elif kind == "join" and saved:
            names = draw(st.lists(st.sampled_from(sorted(saved)), min_size=1, max_size=3))
            join = draw(st.sampled_from(["Add", "Mul", "Concat"]))
            items.append((join, {"with": names if len(names) > 1 or draw(st.booleans()) else names[0]}, None))
            expected += [(str(saved[name]), str(len(items))) for name in names]
            if join == "Concat":
                items.append(CONV)  # back to 4 channels, so that every saved tensor still fits every join
        else:
            items.append(CONV if kind == "conv" else ("ReLU", {}, None))
    return items, sorted(expected)


@settings(max_examples=scaled(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stack=flat_stacks(), width=st.integers(300, 1600))
def test_one_arc_per_saved_tensor_a_join_takes(stack: tuple[list[Any], list[tuple[str, str]]], width: int) -> None:
    items, expected = stack
    result = run_stack((1, 4, 8, 8), resolve(items))
    assert result.error is None
    root = ET.fromstring(draw_svg(result, width=width))
    assert pairs(root, "saved") == expected == pairs(root, "arc")
    all_checks(root, result)


@st.composite
def nested(draw: st.DrawFn, names: list[str], depth: int = 0) -> list[Any]:
    """Shape-keeping stacks with Residuals, Repeats, Parallels and named blocks, Saves, Froms, Parameters and joins
    anywhere."""
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "relu", "norm", "save", "from", "join", "residual", "repeat", "parallel",
                                     "block", "parameter"]))  # fmt: skip
        if kind == "residual" and depth < 2:
            block: dict[str, Any] = {"body": draw(nested(names, depth + 1))}
            if draw(st.booleans()):
                block["shortcut"] = [("Conv2d", {"out_channels": 4, "kernel_size": 1}, None), ("BatchNorm2d", {}, None)]
            items.append(("Residual", block, None))
        elif kind == "repeat" and depth < 2:
            items.append(("Repeat", {"times": draw(st.integers(1, 3)), "layers": draw(nested(names, depth + 1))}, None))
        elif kind == "parallel" and depth < 2:
            count = draw(st.integers(1, 4))
            branches = [draw(st.just([]) | nested(names, depth + 1)) for _ in range(count)]
            items.append(("Parallel", {"join": draw(st.sampled_from(["Add", "Mul"])), "branches": branches}, None))
        elif kind == "block" and depth < 2:
            items.append(("Sequential", {"name": draw(st.sampled_from(["Block", "<b>"])),
                                         "layers": draw(nested(names, depth + 1))}, None))  # fmt: skip
        elif kind == "parameter":  # a learned tensor of the same shape: the stack goes on from it
            names.append(name := f"p{len(names)}")
            items.append(("Parameter", {"name": name, "shape": [1, 4, 8, 8]}, None))
        elif kind == "save":
            names.append(name := f"s{len(names)}")
            items.append(("Save", {"name": name}, None))
        elif kind == "from" and names:
            items.append(("From", {"name": draw(st.sampled_from(names))}, None))
        elif kind == "join" and names:
            items.append((draw(st.sampled_from(["Add", "Mul"])), {"with": draw(st.sampled_from(names))}, None))
        elif kind == "norm":
            items.append(("GroupNorm", {"num_groups": 2}, None))
        else:
            items.append(CONV if kind == "conv" else ("ReLU", {}, None))
    return items


@settings(max_examples=scaled(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.builds(list).flatmap(lambda names: nested(names)), width=st.integers(300, 1400))
def test_blocks_and_joins_each_draw_their_arcs(items: list[Any], width: int) -> None:
    result = run_stack((1, 4, 8, 8), resolve(items))
    assert result.error is None
    root = ET.fromstring(draw_svg(result, width=width))
    drawn = [node for node in result.walk() if not hidden(node)]
    assert pairs(root, "shortcut") == sorted(
        (taken(node, result.roots), node.label) for node in drawn if node.type == "Residual"
    )
    expected = sorted(
        (saved.label, node.label)  # type: ignore[union-attr]
        for node in drawn
        if node.type in ("Add", "Mul")
        for saved in node.inputs[1:]
    )
    assert pairs(root, "saved") == expected
    all_checks(root, result)


def taken(node: Node, roots: list[Node]) -> str:
    """The label of the node whose tensor ``node`` takes: the one before it in its run, or what its block takes."""
    parent = node.parent
    run = roots if parent is None else [child for child in parent.children if child.branch == node.branch]
    index = next(index for index, other in enumerate(run) if other is node)
    if index:
        return run[index - 1].label
    return "input" if parent is None else taken(parent, roots)


@settings(max_examples=scaled(100), deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
    | st.sampled_from(["<script>", "a&b", '"q"', "\x1b[2J", "\ufffe\uffff"])
)
def test_user_text_stays_text(name: str) -> None:
    """A saved name on its arc, a Parameter's and a named block's name in their boxes: escaped, never markup."""
    items = [("Save", {"name": name}, None), CONV, ("Add", {"with": name}, None)]
    svg = draw_svg(run_stack((1, 4, 8, 8), resolve(items)), title=name)
    root = ET.fromstring(svg.encode("utf-8"))  # strict UTF-8, well-formed XML
    texts = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "arc-label"]
    assert texts == [printable(name).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")]
    assert pairs(root, "saved") == [("1", "3")]
    parameter = [("Parameter", {"name": name, "shape": [4, 8, 8]}, None), ("Add", {"with": name}, None)]
    root = ET.fromstring(draw_svg(run_stack((1, 4, 8, 8), resolve(parameter))).encode("utf-8"))
    assert any((text.text or "").startswith("Parameter ") for text in root.iter(f"{SVG}text"))


# --- the command -----------------------------------------------------------------------------------------------


def test_options_title_theme_width() -> None:
    svg = draw(str(ROOT / "examples" / "lenet5.yaml"), "--title", "LeNet-5", "--theme", "dark", "--width", "800")
    root = ET.fromstring(svg)
    assert root.get("width") == "800"
    assert ">LeNet-5</text>" in svg
    assert 'fill="#0d1117"' in svg  # the dark background


def test_png_and_files_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "net.png"
    target.write_text("old contents")
    example = str(ROOT / "examples" / "googlenet.yaml")
    result = CliRunner().invoke(main, ["draw", example, "-o", str(target), "--png", "--theme", "dark"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert [p.name for p in tmp_path.iterdir()] == ["net.png"]  # no temporary file left behind
    svg = tmp_path / "net.svg"
    CliRunner().invoke(main, ["draw", str(ROOT / "examples" / "lenet5.yaml"), "-o", str(svg)])
    ET.parse(svg)


def test_errors() -> None:
    no_output = CliRunner().invoke(main, ["draw", str(ROOT / "examples" / "lenet5.yaml"), "--png"])
    assert no_output.exit_code == 2 and "--png needs --output FILE" in no_output.stderr
    text = "input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 9}\n"
    invalid = CliRunner().invoke(main, ["draw", "-"], input=text)
    assert invalid.exit_code == 1 and invalid.stdout == ""
    assert invalid.stderr.startswith("Error: <stdin>, line 3: layer 1 (Conv2d)")
