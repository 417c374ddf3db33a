"""convcalc draw: the SVG parses, every drawn layer sits in exactly one group, and the look is kept in golden files."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcalc.cli import main
from tests.golden_files import assert_matches_golden

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = ROOT / "docs" / "images"  # the diagrams the docs show are the golden files
SVG = "{http://www.w3.org/2000/svg}"


def draw(*args: str) -> str:
    result = CliRunner().invoke(main, ["draw", *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_diagrams_match_golden_files(example: Path) -> None:
    svg = draw(str(example), "--title", example.stem)
    assert_matches_golden(svg, GOLDEN / f"{example.stem}.svg")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_svg_parses_with_one_group_per_drawn_map(example: Path) -> None:
    root = ET.fromstring(draw(str(example)))
    assert root.tag == f"{SVG}svg"
    groups = root.findall(f"{SVG}g[@class='map']")
    labels = [label for group in groups for label in group.get("data-layers", "").split(",")]
    assert labels[0] == "input"
    assert len(labels) == len(set(labels))  # no layer is drawn twice
    for group in groups:  # each box is labelled with its shape
        shape = group.find(f"{SVG}text[@class='shape']")
        assert shape is not None and shape.text == group.get("data-shape")
    assert root.find(f"{SVG}g[@class='legend']") is not None


def test_every_layer_of_a_straight_stack_is_drawn_with_its_shape() -> None:
    root = ET.fromstring(draw(str(ROOT / "examples" / "lenet5.yaml")))
    groups = root.findall(f"{SVG}g[@class='map']")
    assert [group.get("data-layers") for group in groups] == [
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
    assert [group.get("data-shape") for group in groups] == [
        "1x32x32", "6x28x28", "6x14x14", "16x10x10", "16x5x5", "400", "120", "84", "10",
    ]  # fmt: skip


def test_repeat_is_drawn_once_and_marked() -> None:
    svg = draw(str(ROOT / "examples" / "resnet50.yaml"))
    root = ET.fromstring(svg)
    labels = [g.get("data-layers") for g in root.findall(f"{SVG}g[@class='map']")]
    assert not any(label.startswith(("6.2.", "6.3.")) for label in labels)  # later copies of layer 6's Repeat
    assert ">x2<" in svg and ">+ shortcut<" in svg


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
