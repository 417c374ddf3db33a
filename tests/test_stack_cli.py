"""convcalc stack: whole outputs, every output form, and every file error."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from convcalc.cli import main
from tests.golden_files import assert_matches_golden

ROOT = Path(__file__).parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
GOLDEN = Path(__file__).parent / "golden"


def run(*args: str, stdin: str | None = None) -> Result:
    return CliRunner(env={"COLUMNS": "120"}).invoke(main, list(args), input=stdin)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_example_tables_match_golden_files(example: Path) -> None:
    result = run("stack", str(example))
    assert result.exit_code == 0, result.stderr
    assert_matches_golden(result.stdout, GOLDEN / f"stack_{example.stem}.txt")


@pytest.mark.parametrize(
    ("example", "params", "output"),
    [
        ("alexnet", 61_100_840, [1, 1000]),  # torchvision.models.alexnet
        ("vgg16", 138_357_544, [1, 1000]),  # torchvision.models.vgg16
        ("lenet5", 61_706, [1, 10]),
    ],
)
def test_examples_have_the_published_parameter_counts(example: str, params: int, output: list[int]) -> None:
    data = json.loads(run("stack", str(ROOT / "examples" / f"{example}.yaml"), "--json").stdout)
    assert (data["total_params"], data["output_shape"]) == (params, output)


def test_json_schema_is_stable() -> None:
    data = json.loads(run("stack", str(ROOT / "examples" / "lenet5.yaml"), "--json").stdout)
    assert list(data) == [
        "input_shape", "output_shape", "total_params", "total_buffers", "total_macs", "dtype", "parameter_bytes",
        "activation_bytes", "saved_bytes", "gradient_bytes", "outputs", "layers", "error",
    ]  # fmt: skip
    assert list(data["layers"][0]) == [
        "index", "label", "type", "arguments", "input_shape", "output_shape", "params", "buffers", "macs",
        "receptive_field", "jump", "uncovered", "unread", "id", "inputs", "line", "module", "saved_bytes",
    ]  # fmt: skip
    assert [(layer["id"], layer["inputs"]) for layer in data["layers"][:3]] == [(1, [0]), (2, [1]), (3, [2])]
    first = data["layers"][0]
    assert first["index"] == 1 and first["type"] == "Conv2d"
    assert first["arguments"]["in_channels"] == 1  # inferred, and written out
    assert first["output_shape"] == [1, 6, 28, 28]
    assert first["receptive_field"] == [5, 5] and first["jump"] == [1, 1]
    assert data["layers"][6]["receptive_field"] == [16, 16]  # Flatten keeps each axis's field
    assert data["layers"][7]["receptive_field"] == [None, None]  # Linear: the whole input
    assert data["parameter_bytes"] == 4 * 61_706
    assert data["error"] is None


def test_linear_after_flatten_shows_where_its_in_features_come_from() -> None:
    out = run("stack", str(ROOT / "examples" / "vgg16.yaml")).stdout
    assert "25088 -> 4096" in out  # 512 * 7 * 7


def test_quiet_prints_the_output_shape() -> None:
    result = run("stack", str(ROOT / "examples" / "vgg16.yaml"), "-q")
    assert (result.exit_code, result.stdout) == (0, "1x1000\n")


def test_input_override_and_stdin() -> None:
    text = (ROOT / "examples" / "alexnet.yaml").read_text()
    result = run("stack", "-", "--input", "8x3x224x224", "-q", stdin=text)
    assert (result.exit_code, result.stdout) == (0, "8x1000\n")


def test_json_file_works_too() -> None:
    text = json.dumps({"input": [2, 3, 10], "layers": [{"Conv1d": {"out_channels": 4, "kernel_size": 3}}, "ReLU"]})
    assert run("stack", "-", "-q", stdin=text).stdout == "2x4x8\n"


def test_csv_and_markdown() -> None:
    path = str(ROOT / "examples" / "lenet5.yaml")
    csv_lines = run("stack", path, "--csv").stdout.splitlines()
    header = "id,parent,label,depth,type,arguments,input_shape,output_shape,params,buffers,macs,receptive_field,jump"
    assert csv_lines[0] == header + ",uncovered,unread,folded"
    assert csv_lines[1] == '1,0,1,0,Conv2d,"1 -> 6, k=5",1x1x32x32,1x6x28x28,156,0,117600,5x5,1x1,0x0,0x0,0'
    assert len(csv_lines) == 13
    markdown = run("stack", path, "--markdown").stdout.splitlines()
    assert markdown[0] == "| # | layer | arguments | output | params | MACs | RF | jump |"
    assert markdown[2] == "| 1 | Conv2d | 1 -> 6, k=5 | (1, 6, 28, 28) | 156 | 117,600 | 5x5 | 1x1 |"
    assert markdown[-1] == (
        "Total: 61,706 params, 0 buffers, 416,520 MACs; output (1, 10); forward pass 0.06 MB in float32; 0.53 MB "
        "for one training step in float32 (saved for backward 0.04 MB)."
    )


def test_dtype_changes_the_memory_figures() -> None:
    data = json.loads(run("stack", str(ROOT / "examples" / "lenet5.yaml"), "--json", "--dtype", "float16").stdout)
    assert data["parameter_bytes"] == 2 * 61_706
    assert run("stack", str(ROOT / "examples" / "lenet5.yaml"), "--dtype", "float13").exit_code == 2


def test_invalid_stack_prints_the_rows_before_the_failing_layer() -> None:
    text = (
        "input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 3}\n  - MaxPool2d: {kernel_size: 7}\n"
    )
    result = run("stack", "-", stdin=text)
    assert result.exit_code == 1
    assert "3 -> 4, k=3" in result.stdout
    assert result.stderr == (
        "Error: <stdin>, line 4: layer 2 (MaxPool2d) on input (1, 4, 6, 6): kernel_size 7 is larger than the padded "
        "input 6 on axis H (input 6, padding 0+0): use an input of at least 7, or a smaller kernel_size; input sizes "
        "near 8x8 that work: 9x9\n"
    )
    data = json.loads(run("stack", "-", "--json", stdin=text).stdout)
    assert data["error"]["index"] == 2 and data["error"]["input_shape"] == [1, 4, 6, 6]
    assert len(data["layers"]) == 1


FAILING_BLOCKS = [  # each ends where its one layer, a Conv2d to 16 channels that the join cannot take, is written
    "Residual:\n      body:\n        - ",
    "Parallel:\n      join: Add\n      branches:\n        - []\n        - - ",
]


@pytest.mark.parametrize("depth", [[], ["--depth", "1"], ["--depth", "2"]])
@pytest.mark.parametrize("block", FAILING_BLOCKS)
def test_layers_that_ran_inside_a_failing_block_show_at_any_depth(depth: list[str], block: str) -> None:
    """The block has no row (its join failed), so the layers that ran inside it stand at the top: --depth 1 must
    not fold them away, or the rows would not add up to the footer's params."""
    text = ("input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 8, kernel_size: 3}\n"
            f"  - {block}Conv2d: {{out_channels: 16, kernel_size: 3, padding: 1}}\n")  # fmt: skip
    result = run("stack", "-", "--csv", *depth, stdin=text)
    assert result.exit_code == 1 and result.stderr.startswith("Error: <stdin>, line 4:"), result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    params = (3 * 3 * 3 + 1) * 8 + (8 * 3 * 3 + 1) * 16  # nn.Conv2d's weight and bias, both layers
    assert [row["type"] for row in rows] == ["Conv2d", "Conv2d"]
    assert sum(int(row["params"]) for row in rows) == params
    table = run("stack", "-", *depth, stdin=text).stdout
    assert f"params              {params:,}" in table and "8 -> 16, k=3 p=1" in table


FILE_ERRORS = [
    ("input: [1, 3, 8, 8]\nlayers:\n  - Conv2D: {out_channels: 4, kernel_size: 3}\n",
     "line 3: layer 1: unknown layer 'Conv2D' (did you mean Conv2d?)"),
    ("input: [1, 3, 8, 8]\nlayers:\n  - ReLU\n  - Conv2d: {out_chanels: 4, kernel_size: 3}\n",
     "line 4: layer 2 (Conv2d): unknown keyword 'out_chanels' (did you mean out_channels?); Conv2d takes: "
     "in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode"),
    ("input: [1, 1, 4]\nlayers:\n- Save: a\n- Concat: {with: a, dim: nan, crop: true}\n",  # found by test_fuzz
     "line 4: layer 2 (Concat): dim must be an integer, got 'nan'"),
    ("input: [1, 1, 4]\nlayers:\n- Parallel: {branches: [[], []], join: Concat, dim: C}\n",
     "line 3: layer 1 (Parallel): dim must be an integer, got 'C'"),
    ("input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: four, kernel_size: 3}\n",
     "line 3: layer 1 (Conv2d) on input (1, 3, 8, 8): out_channels 'four': the name 'four' is not bound"),
    ("input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {kernel_size: 3}\n", "line 3: layer 1 (Conv2d): missing out_channels"),
    ("input: [1, 3, 8, 8]\nlayers:\n  - [Conv2d]\n", "line 3: layer 1 must be a layer name (ReLU) or a one-key"),
    ("input: [1, 3, 8, 8]\nlayers:\n  - !!python/object/apply:os.system [echo hi]\n",
     "line 3: refused: the tag 'tag:yaml.org,2002:python/object/apply:os.system' (only plain YAML data is read"),
    ("input: [1, 3, 8\nlayers: [", "line 2: while parsing a flow sequence (line 1), did not find expected ',' or ']'"),
    ("input: [1, 0, 8]\nlayers: []\n", "line 1: input must be a list of 1 to 64 positive integers, batch first"),
    ("layers: []\n", "'input' is missing: give the input shape, batch first"),
    ("input: [1, 3]\n", "'layers' must be a list of layers"),
    ("input: [1, 3]\nlayers: []\nouput: 3\n", "line 3: unknown key 'ouput': use input, layers and define"),
    ("- ReLU\n", "expected a mapping with 'input' and 'layers'"),
    ("", "expected a mapping with 'input' and 'layers'"),
    ("input: [3, 8, 8]\nlayers:\n  - Linear: {in_features: 7, out_features: 3}\n",
     "line 3: layer 1 (Linear) on input (3, 8, 8): in_features is 7 but the input has 8 features in its last "
     "dimension: use in_features: 8, or leave it out"),
    ("input: [1, 3, 8, 8]\nlayers:\n  - Conv1d: {out_channels: 4, kernel_size: 3}\n",
     "line 3: layer 1 (Conv1d) on input (1, 3, 8, 8): needs a 2-D or 3-D input ((N, C, L) or unbatched), got 4-D"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), FILE_ERRORS)
def test_file_errors_exit_1_with_one_line_naming_file_and_line(text: str, message: str) -> None:
    result = run("stack", "-", stdin=text)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: <stdin>{', ' if message.startswith('line') else ': '}{message}")
    assert result.stderr.count("\n") == 1


def test_unreadable_and_binary_files(tmp_path: Path) -> None:
    missing = run("stack", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1
    assert missing.stderr == f"Error: {tmp_path / 'nope.yaml'}: cannot read the file: No such file or directory\n"
    binary = tmp_path / "junk.yaml"
    binary.write_bytes(b"\xff\xfe\x00junk")
    result = run("stack", str(binary))
    expected = f"Error: {binary}, line 1: not UTF-8 text (byte 0xff at offset 0): save it as UTF-8\n"
    assert (result.exit_code, result.stderr) == (1, expected)


def test_output_forms_exclude_each_other() -> None:
    result = run("stack", str(ROOT / "examples" / "lenet5.yaml"), "--json", "--csv")
    assert result.exit_code == 2
    assert "exclude each other" in result.stderr


def test_stack_never_imports_torch() -> None:
    from tests.test_cli import _modules_loaded

    loaded = _modules_loaded("stack", str(ROOT / "examples" / "vgg16.yaml"))
    assert "yaml" in loaded and "torch" not in loaded


def test_alias_bombs_are_refused_quickly() -> None:
    """A 'billion laughs' file: nine levels of ten aliases each would build 10**9 values."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    text = "\n".join(lines) + "\ninput: [1, 3, 8, 8]\nlayers: [ReLU]\n"
    result = run("stack", "-", stdin=text)
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: <stdin>: refused: the file expands to more than 1,000,000 YAML values "
        "(aliases that repeat aliases, as in a 'billion laughs' file)\n"
    )


def test_a_few_aliases_are_fine() -> None:
    conv = "&conv {Conv2d: {out_channels: 3, kernel_size: 3, padding: 1}}"
    text = f"input: [1, 3, 8, 8]\nlayers:\n  - {conv}\n  - ReLU\n  - *conv\n"
    result = run("stack", "-", "-q", stdin=text)
    assert (result.exit_code, result.stdout) == (0, "1x3x8x8\n")
