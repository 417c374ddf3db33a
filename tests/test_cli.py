"""The convcalc command: exit codes and whole outputs, the notes' examples first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from convcalc import __version__
from convcalc.cli import main
from tests.golden_files import assert_matches_golden

GOLDEN = Path(__file__).parent / "golden"


def run(*args: str, width: int = 120) -> Result:
    return CliRunner(env={"COLUMNS": str(width)}).invoke(main, list(args))


def quiet(command: str) -> str:
    result = run(*command.split(), "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


# The five worked examples of ../shared/seed-notes.md, with the answers written there.
NOTES = [
    ("conv 227 --k 11 --s 4 --p 0", "55x55\n"),
    ("conv 64 --k 7 --s 2 --p 0", "29x29\n"),
    ("conv 32 --k 5 --s 1 --p 2", "32x32\n"),
    ("conv 32x64 --k 5 --s 1 --p 0", "28x60\n"),
    ("conv 64x32 --k 3 --s 1 --p 1", "64x32\n"),
]


@pytest.mark.parametrize(("command", "answer"), NOTES)
def test_notes_worked_examples(command: str, answer: str) -> None:
    assert quiet(command) == answer


def test_notes_cnn_snippet_28_conv5_pool2() -> None:
    """conv1 = nn.Conv2d(1, 5, 5); pool = nn.MaxPool2d(2) on a 1x1x28x28 input."""
    after_conv = quiet("conv 28 --k 5")
    assert after_conv == "24x24\n"
    assert quiet(f"pool {after_conv.strip()} --k 2") == "12x12\n"
    shapes = run("conv", "28", "--k", "5", "--in-channels", "1", "--out-channels", "5", "--json")
    assert json.loads(shapes.stdout)["output_shape"] == [1, 5, 24, 24]
    pooled = run("pool", "24", "--k", "2", "--in-channels", "5", "--json")
    assert json.loads(pooled.stdout)["output_shape"] == [1, 5, 12, 12]


@pytest.mark.parametrize(
    ("command", "answer"),
    [
        ("pool 55 --k 3 --s 2", "27x27\n"),
        ("pool 5 --k 2 --s 2 --p 1 --ceil-mode", "3x3\n"),  # not the naive 4
        ("pool 5 --k 2 --s 2 --p 1", "3x3\n"),
        ("pool 6 --k 2 --s 2 --p 1 --ceil-mode", "4x4\n"),
        ("pool 8x8x8 --type avg --k 2", "4x4x4\n"),
        ("pool 2 --type avg --k 3 --s 2 --ceil-mode", "1x1\n"),
        ("conv 7x9 --transposed --k 4 --s 2 --p 1", "14x18\n"),
        ("conv 5 --dims 1 --transposed --k 3 --s 2 --output-padding 1", "12\n"),
        ("conv 100 --dims 1 --k 4 --p same", "100\n"),
        ("conv 10 --k 3 --d 2 --p valid", "6x6\n"),
        ("conv 16x32x64 --k 3", "14x30x62\n"),
        ("conv 32 --k 3x5", "30x28\n"),
        ("conv 32 --k 3 --dims 3", "30x30x30\n"),
        ("conv 10 --k 3 --p -1 --padding-mode reflect", "6x6\n"),
        ("conv 32×64 --k 5", "28x60\n"),  # noqa: RUF001 (the multiplication sign is accepted on purpose)
    ],
)
def test_quiet_answers(command: str, answer: str) -> None:
    assert quiet(command) == answer


def test_quiet_output_chains_into_size() -> None:
    """$(convcalc conv 28 --k 5 -q) is a valid SIZE; a 1-D chain keeps saying --dims 1."""
    for first, dims in (("conv 28 --k 5", "2"), ("conv 9 --dims 1 --k 2", "1"), ("conv 9x10x11 --k 2", "3")):
        size = quiet(first).strip()
        assert run("pool", size, "--k", "1", "--dims", dims, "-q").stdout.strip() == size
    assert quiet("pool 8 --k 1") == "8x8\n"  # a lone number is an image, as in the notes


@pytest.mark.parametrize(
    ("name", "command", "width"),
    [
        ("conv_alexnet_first_layer", "conv 227 --k 11 --s 4", 120),
        ("conv_channels_uncovered", "conv 64 --k 7 --s 2 --in-channels 3 --out-channels 64", 120),
        ("conv_narrow_terminal", "conv 64 --k 7 --s 2 --in-channels 3 --out-channels 64", 80),
        ("conv_transposed", "conv 7x9 --transposed --k 4 --s 2 --p 1 --in-channels 8 --out-channels 4", 120),
        ("conv_same_even_kernel", "conv 10x10 --k 4 --p same --d 1", 120),
        ("pool_ceil_mode", "pool 5 --k 2 --s 2 --p 1 --ceil-mode", 120),
        ("pool_avg_3d", "pool 8x9x10 --type avg --k 2 --in-channels 16 --batch 4", 120),
    ],
)
def test_tables_match_golden_files(name: str, command: str, width: int) -> None:
    result = run(*command.split(), width=width)
    assert result.exit_code == 0, result.stderr
    assert_matches_golden(result.stdout, GOLDEN / f"{name}.txt")


def test_table_shows_the_formula_and_what_is_uncovered() -> None:
    out = run("conv", "64", "--k", "7", "--s", "2").stdout
    assert "floor((64 - 7 + 2*0) / 2) + 1 = 29" in out
    assert "uncovered: input pixels at the end of an axis" in out


def test_json_has_sizes_and_every_parameter_after_defaults() -> None:
    result = run("conv", "7x9", "--transposed", "--k", "4", "--s", "2", "--p", "1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "type": "ConvTranspose2d",
        "input_size": [7, 9],
        "output_size": [14, 18],
        "kernel_size": [4, 4],
        "stride": [2, 2],
        "padding": [1, 1],
        "output_padding": [0, 0],
        "groups": 1,
        "bias": True,
        "dilation": [1, 1],
        "padding_mode": "zeros",
        "padding_applied": [[1, 1], [1, 1]],
        "uncovered": [None, None],
        "unread": [None, None],
        "batch": None,
        "in_channels": None,
        "out_channels": None,
        "input_shape": None,
        "output_shape": None,
        "params": None,
        "macs": None,
    }


def test_json_for_a_pool_fills_in_the_stride_default() -> None:
    data = json.loads(run("pool", "55", "--k", "3", "--json").stdout)
    assert data["type"] == "MaxPool2d"
    assert data["stride"] == [3, 3]
    assert data["ceil_mode"] is False
    assert data["output_size"] == [18, 18]


def test_json_for_same_padding_keeps_the_word_and_shows_the_sides() -> None:
    data = json.loads(run("conv", "10", "--dims", "1", "--k", "4", "--p", "same", "--json").stdout)
    assert data["padding"] == "same"
    assert data["padding_applied"] == [[1, 2]]
    assert data["output_size"] == [10]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            "conv 10 --k 11",
            "Error: Conv2d: kernel_size 11 is larger than the padded input 10 on axis H (input 10, padding 0+0): "
            "use an input of at least 11, more padding, or a smaller kernel_size or dilation\n",
        ),
        (
            "pool 5 --k 3 --p 2",
            "Error: MaxPool2d: padding 2 is more than half of kernel_size 3 on axis H: "
            "pools allow padding at most kernel_size // 2 = 1\n",
        ),
        (
            "conv 10 --k 3 --s 2 --p same",
            "Error: Conv2d: padding='same' needs stride 1 on every axis, got stride 2 on axis H: "
            "use stride 1, or an explicit padding\n",
        ),
        (
            "conv 10 --transposed --k 3 --s 2 --output-padding 2",
            "Error: ConvTranspose2d: output_padding 2 must be smaller than stride 2 or dilation 1 on axis H: "
            "use output_padding at most 1\n",
        ),
        (
            "conv 3 --k 3 --p 3 --padding-mode reflect",
            "Error: Conv2d: padding 3 with padding_mode='reflect' must be smaller than the input 3 on axis H: "
            "use padding at most 2, or an input of at least 4\n",
        ),
        (
            "conv 10 --k 3 --in-channels 3 --out-channels 4 --groups 2",
            "Error: Conv2d: in_channels 3 is not divisible by groups 2: use in_channels 2 or 4, "
            "or groups that divide 3\n",
        ),
        (
            "pool 2x8x8 --type avg --k 3 --p 1",
            "Error: AvgPool3d: the input 2 is smaller than kernel_size 3 on axis D; AvgPool3d needs the unpadded "
            "input at least kernel_size: use an input of at least 3, or kernel_size at most 2\n",
        ),
        (
            "conv 1 --transposed --k 1 --p 1",
            "Error: ConvTranspose2d: the output would be -1 on axis H ((1 - 1)*1 - 2*1 + 1*(1-1) + 0 + 1 = -1): "
            "padding 1 crops more than the layer makes; use padding at most 0, or an input of at least 3\n",
        ),
        (
            "conv 10 --k 3 --p -1",
            "Error: Conv2d: padding must be at least 0 on axis H, got -1 "
            "(negative padding crops only with padding_mode reflect, replicate or circular)\n",
        ),
        (
            "conv 10 --k 3 --padding-mode mirror",
            "Error: Conv2d: padding_mode must be one of zeros, reflect, replicate, circular, got 'mirror'\n",
        ),
        ("conv 10 --k 0", "Error: Conv2d: kernel_size must be at least 1 on axis H, got 0\n"),
        ("pool 10 --k 2 --s 0", "Error: MaxPool2d: stride must be at least 1 on axis H, got 0\n"),
    ],
)
def test_invalid_layers_exit_1_with_one_line(command: str, message: str) -> None:
    result = run(*command.split())
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == message


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        ("conv abc --k 3", "'abc' is not a size"),
        ("conv 0x4 --k 3", "give 1 to 3 positive integers"),
        ("conv 1x2x3x4 --k 3", "is a full shape (N, C, H, W), but SIZE is the spatial size only: give 3x4 --in"),
        ("pool 2x2x3x4x5 --k 3", "give 3x4x5 --in-channels 2 --batch 2"),
        ("conv 1x2x3x4x5x6 --k 3", "give 1 to 3 positive integers"),
        ("conv 32", "Missing option '--kernel-size'"),
        ("conv 32 --k 3x3x3x3", "not one integer or up to 3"),
        ("conv 32x32 --k 3x3x3", "SIZE has 2 values but the layer has 3 spatial axes: give 1 or 3"),
        ("conv 32x32x32 --k 3x3", "--kernel-size has 2 values but the layer has 3 spatial axes: give 1 or 3"),
        ("conv 32x32 --k 3 --s 1x2x1 --dims 2", "--stride has 3 values but the layer has 2 spatial axes"),
        ("conv 32 --k 3 --dims 4", "--dims"),
        ("conv 32 --k 3 --in-channels 3", "give --in-channels and --out-channels together"),
        ("conv 32 --k 3 --output-padding 1", "add --transposed"),
        ("conv 32 --k 3 --batch 2", "--batch needs --in-channels"),
        ("conv 32 --k 3 --json -q", "--json and --quiet exclude each other"),
        ("pool 32 --k 3 --type avg --d 2", "AvgPool has no dilation"),
        ("pool 32 --k 3 --type min", "'min' is not one of"),
        ("conv 32 --k 3 --p full", "'full' is not one integer"),
        ("conv 32 --k 3 --bogus", "No such option '--bogus'"),
    ],
)
def test_usage_errors_exit_2(command: str, fragment: str) -> None:
    result = run(*command.split())
    assert result.exit_code == 2
    assert result.stdout == ""
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout == f"convcalc, version {__version__}\n"


@pytest.mark.parametrize("command", [[], ["conv"], ["pool"]])
def test_help_shows_examples_and_exit_codes(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.exit_code == 0
    assert "Exit codes:" in result.stdout
    assert "2    usage error" in result.stdout
    assert "convcalc " in result.stdout.split("Options:")[0]


def test_python_dash_m_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "convcalc", "conv", "227", "--k", "11", "--s", "4", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "55x55\n", "")


def _modules_loaded(*args: str) -> set[str]:
    """The modules a real convcalc process has imported by the time it exits."""
    code = (
        "import sys\n"
        "from convcalc.cli import main\n"
        f"try:\n    main({list(args)!r})\n"
        "except SystemExit:\n    pass\n"
        "print('MODULES', *sorted(sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(result.stdout.splitlines()[-1].split()[1:])


@pytest.mark.parametrize(
    "args",
    [
        ("conv", "227", "--k", "11", "--s", "4"),
        ("conv", "227", "--k", "11", "--s", "4", "-q"),
        ("pool", "55", "--k", "3", "--s", "2", "--json"),
        ("conv", "10", "--k", "11"),
        ("--help",),
    ],
)
def test_torch_is_never_imported_without_verify(args: tuple[str, ...]) -> None:
    loaded = _modules_loaded(*args)
    assert "click" in loaded  # the probe does see imports
    assert "torch" not in loaded


def test_only_tables_load_rich() -> None:
    for machine in ("-q", "--json"):
        loaded = _modules_loaded("conv", "227", "--k", "11", machine)
        assert "convcalc.render" not in loaded
        assert not any(name == "rich" or name.startswith("rich.") for name in loaded)
        assert "json" not in loaded if machine == "-q" else "json" in loaded
    loaded = _modules_loaded("conv", "227", "--k", "11")
    assert {"convcalc.render", "rich.table", "rich.console"} <= loaded


def test_the_top_level_help_shows_every_command_whole() -> None:
    text = CliRunner().invoke(main, ["--help"]).stdout
    for name, command in main.commands.items():
        line = next(line for line in text.splitlines() if line.strip().startswith(name + " "))
        assert line.split(None, 1)[1] == command.get_short_help_str(limit=1000), line
        assert "..." not in line


@pytest.mark.parametrize("name", ["conv", "pool", "stack", "solve", "fit", "draw"])
def test_each_help_lists_the_exit_codes_of_its_own_options(name: str) -> None:
    text = CliRunner().invoke(main, [name, "--help"], terminal_width=200).stdout
    codes = text[text.index("Exit codes:") :]
    options = {opt for param in main.commands[name].params for opt in param.opts}
    assert ("--verify" in codes) == ("--verify" in options), codes


@pytest.mark.parametrize("name", ["stack", "fit", "draw"])
def test_file_arguments_complete_with_paths(name: str) -> None:
    env = {"_CONVCALC_COMPLETE": "bash_complete", "COMP_WORDS": f"convcalc {name} exa", "COMP_CWORD": "2"}
    result = subprocess.run([sys.executable, "-m", "convcalc"], env={**os.environ, **env}, capture_output=True,
                            text=True)  # fmt: skip
    assert result.stdout.splitlines() == ["file,exa"], result
