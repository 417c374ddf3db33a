"""convcalc draw: the SVG parses, every drawn layer sits in exactly one group, every skip connection is one arc
between the right rows, and the look is kept in golden files.

The expectations come from elsewhere than draw.py: the YAML of the examples, the stack's node graph, and the
items a Hypothesis test generates.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcalc.cli import main
from convcalc.draw import draw_svg
from convcalc.spec import resolve
from convcalc.stack import Node, StackResult, run_stack
from convcalc.stackfile import load_stack
from convcalc.text import printable
from tests.golden_files import assert_matches_golden
from tests.profiles import scaled

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "docs" / "images"  # the diagrams the docs show are the golden files
SVG = "{http://www.w3.org/2000/svg}"


def draw(*args: str) -> str:
    result = CliRunner().invoke(main, ["draw", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def graph(path: Path) -> StackResult:
    shape, specs = load_stack(path.read_text(), path.name)
    return run_stack(shape, specs)


def maps(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{SVG}g[@class='map']")


def arcs(root: ET.Element) -> list[ET.Element]:
    return [element for element in root.iter() if "arc" in element.get("class", "").split()]


def pairs(root: ET.Element, kind: str) -> list[tuple[str, str]]:
    """(data-from, data-to) of the arcs of a kind."""
    return sorted((a.get("data-from", ""), a.get("data-to", "")) for a in arcs(root) if kind in a.get("class", ""))


def drawn_labels(root: ET.Element) -> list[str]:
    return [label for group in maps(root) for label in group.get("data-layers", "").split(",")]


def hidden(node: Node) -> bool:
    """Not drawn: a Residual's shortcut branch, a Repeat's copies after the first, and whatever is inside a Parallel
    (drawn as one box)."""
    chain = node
    while chain is not None:
        parent = chain.parent
        if chain.branch == "shortcut" or (parent is not None and parent.type == "Repeat" and chain.branch != "1"):
            return True
        if parent is not None and parent.type == "Parallel":
            return True
        chain = parent
    return False


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


# --- what every example's picture holds ------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_diagrams_match_golden_files(example: Path) -> None:
    svg = draw(str(example), "--title", example.stem)
    assert_matches_golden(svg, GOLDEN / f"{example.stem}.svg")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_svg_parses_with_one_group_per_drawn_map(example: Path) -> None:
    root = ET.fromstring(draw(str(example)))
    assert root.tag == f"{SVG}svg"
    labels = drawn_labels(root)
    assert labels[0] == "input"
    assert len(labels) == len(set(labels))  # no layer is drawn twice
    for group in maps(root):  # each box is labelled with its shape
        shape = group.find(f"{SVG}text[@class='shape']")
        assert shape is not None and shape.text == group.get("data-shape")
    assert root.find(f"{SVG}g[@class='legend']") is not None


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_the_drawn_nodes_are_those_outside_shortcuts_later_copies_and_parallels(example: Path) -> None:
    root = ET.fromstring(draw(str(example)))
    expected = {"input"} | {node.label for node in graph(example).walk() if not hidden(node)}
    assert sorted(drawn_labels(root)) == sorted(expected)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_each_box_is_labelled_with_the_shape_of_the_layer_that_makes_it(example: Path) -> None:
    """Without the batch, every axis kept: a 3-D map's depth too."""
    root = ET.fromstring(draw(str(example)))
    result = graph(example)
    outputs = {node.label: node.output for node in result.walk()} | {"input": result.input}
    for group in maps(root):
        first = group.get("data-layers", "").split(",")[0]
        assert group.get("data-shape") == "x".join(map(str, outputs[first][1:]))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_every_arc_is_one_element_between_two_drawn_rows(example: Path) -> None:
    root = ET.fromstring(draw(str(example)))
    order = {
        label: index for index, group in enumerate(maps(root)) for label in group.get("data-layers", "").split(",")
    }
    for arc in arcs(root):
        assert arc.tag == f"{SVG}path" and len(arc) == 0
        source, join = arc.get("data-from"), arc.get("data-to")
        assert source in order and join in order, (source, join)
        assert order[source] <= order[join]  # from the tensor taken to the join, never backwards


def extent(group: ET.Element) -> tuple[float, float]:
    """The leftmost and rightmost x of a map's box: its front face, and the far edge of its side."""
    front = group.find(f"{SVG}rect")
    assert front is not None
    sides = [
        point.split(",")[0] for polygon in group.iter(f"{SVG}polygon") for point in polygon.get("points", "").split()
    ]
    return float(front.get("x", "0")), max(map(float, sides))


@pytest.mark.parametrize("example", ["resnet18", "unet", "googlenet", "efficientnet_b0", "vit_b_16"])
def test_each_arc_leaves_its_sources_box_and_ends_at_its_joins_box(example: str) -> None:
    root = ET.fromstring(draw(str(ROOT / "examples" / f"{example}.yaml")))
    box = {label: extent(group) for group in maps(root) for label in group.get("data-layers", "").split(",")}
    for arc in arcs(root):
        numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", arc.get("d", ""))]
        (start, _), (end, _) = numbers[:2], numbers[-2:]
        left, right = box[arc.get("data-to", "")]
        if "branch" in arc.get("class", ""):  # a fan: from the gap after the source's box into the join's box
            assert end == pytest.approx(left - 4, abs=0.1)
            low, high = box[arc.get("data-from", "")]
            assert start == pytest.approx(high + 4, abs=0.1) or start == pytest.approx(left - 36, abs=0.1)
        else:  # a lane: up from the top of the source's box, down onto the top of the join's
            assert left <= end <= right
            low, high = box[arc.get("data-from", "")]
            assert low <= start <= high


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_the_legend_lists_only_what_is_drawn(example: Path) -> None:
    legend_lists_what_is_drawn(ET.fromstring(draw(str(example))))


def legend_lists_what_is_drawn(root: ET.Element) -> None:
    """Its boxes have the colours of the boxes drawn, its lines the kinds of arc (and the arrow) drawn."""
    legend = root.find(f"{SVG}g[@class='legend']")
    assert legend is not None
    swatches = {rect.get("fill") for rect in legend.iter(f"{SVG}rect")}
    boxes = {group.find(f"{SVG}rect").get("fill") for group in maps(root)}  # type: ignore[union-attr]
    assert swatches == boxes
    items = {item.get("data-kind") for item in legend.iter(f"{SVG}g") if item.get("class") == "legend-item"}
    lines = items - {group.get("data-kind") for group in maps(root)}
    drawn = {kind for arc in arcs(root) for kind in arc.get("class", "").split()} - {"arc"}
    if any(group.find(f"{SVG}line") is not None for group in maps(root)):
        drawn.add("arrow")
    assert lines == drawn
    notes = " ".join(text.text or "" for text in legend.iter(f"{SVG}text") if text.get("class") == "legend-note")
    assert ("bracket" in notes) == (root.find(f"{SVG}path[@class='repeat']") is not None)


# --- the skip connections of real networks -------------------------------------------------------------------


def test_resnet18_has_one_shortcut_arc_per_residual_from_the_blocks_input() -> None:
    example = ROOT / "examples" / "resnet18.yaml"
    root = ET.fromstring(draw(str(example)))
    assert len(yaml_items(example, "Residual")) == 8
    assert all(times == 1 for times in yaml_items(example, "times"))  # so every Residual is drawn
    residuals = [node for node in graph(example).walk() if node.type == "Residual"]
    expected = sorted((residual.children[0].inputs[0].label, residual.label) for residual in residuals)  # type: ignore[union-attr]
    assert len(expected) == 8
    assert pairs(root, "shortcut") == expected
    assert ("4", "5") in expected  # the first block takes the max pool's output
    assert len(arcs(root)) == 8


def test_unet_has_one_arc_per_concat_from_the_save_it_names() -> None:
    example = ROOT / "examples" / "unet.yaml"
    svg = draw(str(example))
    root = ET.fromstring(svg)
    layers = yaml.safe_load(example.read_text())["layers"]
    label = {layer["Save"]: str(position) for position, layer in enumerate(layers, 1) if "Save" in layer}
    expected = sorted(
        (label[layer["Concat"]["with"]], str(position)) for position, layer in enumerate(layers, 1) if "Concat" in layer
    )
    assert len(expected) == 4 and pairs(root, "saved") == expected == pairs(root, "arc")
    texts = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "arc-label"]
    assert {f"{name} (crop: center)" for name in label} == set(texts)  # the crop is said on the arc


def test_googlenet_fans_each_parallel_into_its_box() -> None:
    example = ROOT / "examples" / "googlenet.yaml"
    root = ET.fromstring(draw(str(example)))
    parallels = yaml_items(example, "Parallel")
    branches = sum(len(parallel["branches"]) for parallel in parallels)
    assert len(parallels) == 9 and len(pairs(root, "branch")) == branches == 36
    joins = {node.label for node in graph(example).walk() if node.type == "Parallel"}
    assert {join for _, join in pairs(root, "branch")} == joins


def test_a_3d_map_shows_its_depth() -> None:
    example = ROOT / "examples" / "video3d.yaml"
    root = ET.fromstring(draw(str(example)))
    stack = yaml.safe_load(example.read_text())
    depth = stack["input"][2]
    first = maps(root)[0].find(f"{SVG}text[@class='shape']")
    assert first is not None and first.text == f"3x{depth}x112x112"
    names = [next(iter(layer)) if isinstance(layer, dict) else layer for layer in stack["layers"]]
    boxes_3d = 1 + sum(name != "ReLU" for name in names[: names.index("Flatten")])  # the input, then each layer
    shapes = [group.get("data-shape", "") for group in maps(root)]
    assert sum(shape.count("x") == 3 for shape in shapes) == boxes_3d == 11  # C x D x H x W
    notes = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "legend-note"]
    assert any("channels x depth x height x width" in (note or "") for note in notes)


def test_every_layer_of_a_straight_stack_is_drawn_with_its_shape() -> None:
    root = ET.fromstring(draw(str(ROOT / "examples" / "lenet5.yaml")))
    assert [group.get("data-layers") for group in maps(root)] == [
        "input",
        "1,2",
        "3",
        "4,5",
        "6",
        "7",
        "8,9",
        "10,11",
        "12",
    ]
    assert [group.get("data-shape") for group in maps(root)] == [
        "1x32x32", "6x28x28", "6x14x14", "16x10x10", "16x5x5", "400", "120", "84", "10",
    ]  # fmt: skip
    assert arcs(root) == []


def test_a_repeat_is_drawn_once_under_a_bracket_with_its_count() -> None:
    example = ROOT / "examples" / "resnet50.yaml"
    svg = draw(str(example))
    root = ET.fromstring(svg)
    brackets = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "repeat"]
    assert {f"\u00d7{times}" for times in yaml_items(example, "times") if times > 1} == set(brackets) == {
        "\u00d72", "\u00d73", "\u00d75",
    }  # fmt: skip
    ops = [text.text or "" for text in root.iter(f"{SVG}text") if text.get("class") == "op"]
    assert not any(re.search(r"\+\d", op) for op in ops)  # no "+2": folded layers are named in the legend
    assert ">x1<" not in svg and "shortcut<" not in svg


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
    inside(root)


@st.composite
def nested(draw: st.DrawFn, names: list[str], depth: int = 0) -> list[Any]:
    """Shape-keeping stacks with Residuals, Repeats and Parallels, Saves and joins anywhere."""
    items: list[Any] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["conv", "relu", "save", "join", "residual", "repeat", "parallel"]))
        if kind == "residual" and depth < 2:
            block: dict[str, Any] = {"body": draw(nested(names, depth + 1))}
            if draw(st.booleans()):
                block["shortcut"] = [("Conv2d", {"out_channels": 4, "kernel_size": 1}, None)]
            items.append(("Residual", block, None))
        elif kind == "repeat" and depth < 2:
            items.append(("Repeat", {"times": draw(st.integers(1, 3)), "layers": draw(nested(names, depth + 1))}, None))
        elif kind == "parallel" and depth < 2:
            count = draw(st.integers(1, 4))
            branches = [draw(st.just([]) | nested(names, depth + 1)) for _ in range(count)]
            items.append(("Parallel", {"join": draw(st.sampled_from(["Add", "Mul"])), "branches": branches}, None))
        elif kind == "save":
            names.append(name := f"s{len(names)}")
            items.append(("Save", {"name": name}, None))
        elif kind == "join" and names:
            items.append((draw(st.sampled_from(["Add", "Mul"])), {"with": draw(st.sampled_from(names))}, None))
        else:
            items.append(CONV if kind == "conv" else ("ReLU", {}, None))
    return items


def inside(root: ET.Element) -> None:
    """Every arc and bracket stays inside the picture."""
    width, height = float(root.get("width", "0")), float(root.get("height", "0"))
    for path in root.iter(f"{SVG}path"):
        if path.get("d", "").startswith("M0,0"):  # a marker's arrowhead, in its own coordinates
            continue
        xs, ys = [], []  # absolute commands only: M, L, Q and C take x,y pairs; H an x; V a y
        for command, numbers in re.findall(r"([MLQCHV])([^MLQCHV]*)", path.get("d", "")):
            values = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", numbers)]
            if command == "H":
                xs += values
            elif command == "V":
                ys += values
            else:
                xs += values[::2]
                ys += values[1::2]
        assert xs and ys and all(0 <= x <= width for x in xs) and all(0 <= y <= height for y in ys), path.get("d")


@settings(max_examples=scaled(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.builds(list).flatmap(lambda names: nested(names)), width=st.integers(300, 1400))
def test_blocks_and_joins_each_draw_their_arcs(items: list[Any], width: int) -> None:
    result = run_stack((1, 4, 8, 8), resolve(items))
    assert result.error is None
    root = ET.fromstring(draw_svg(result, width=width))
    drawn = [node for node in result.walk() if not hidden(node)]
    assert len(pairs(root, "shortcut")) == sum(node.type == "Residual" for node in drawn)
    assert len(pairs(root, "branch")) == sum(len(node.inputs) for node in drawn if node.type == "Parallel")
    expected = sorted(
        (saved.label, node.label)  # type: ignore[union-attr]
        for node in drawn
        if node.type in ("Add", "Mul")
        for saved in node.inputs[1:]
    )
    assert pairs(root, "saved") == expected
    layers = set(drawn_labels(root))
    assert all(join in layers for _, join in pairs(root, "arc"))
    inside(root)
    legend_lists_what_is_drawn(root)


@settings(max_examples=scaled(100), deadline=None)
@given(
    name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=20)
    | st.sampled_from(["<script>", "a&b", '"q"', "\x1b[2J", "\ufffe\uffff"])
)
def test_a_saved_name_on_an_arc_stays_text(name: str) -> None:
    items = [("Save", {"name": name}, None), CONV, ("Add", {"with": name}, None)]
    svg = draw_svg(run_stack((1, 4, 8, 8), resolve(items)))
    root = ET.fromstring(svg.encode("utf-8"))  # strict UTF-8, well-formed XML
    texts = [text.text for text in root.iter(f"{SVG}text") if text.get("class") == "arc-label"]
    assert texts == [printable(name).replace("\ufffe", "\\ufffe").replace("\uffff", "\\uffff")]
    assert pairs(root, "saved") == [("1", "3")]


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
    result = CliRunner().invoke(main, ["draw", str(ROOT / "examples" / "lenet5.yaml"), "-o", str(target), "--png"])
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
