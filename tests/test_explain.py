"""--explain: the arithmetic a student can follow, checked line by line on the notes' cases."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from convcalc.cli import main

ROOT = Path(__file__).parent.parent


def explained(*args: str) -> str:
    """The arithmetic of the explanation table, as ``H, W: first line`` and its continuation lines indented."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, [*args, "--explain"])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(number for number, line in enumerate(lines) if line.startswith("axes   arithmetic"))
    assert " gives " in lines[header - 1]  # the title
    column = lines[header].index("arithmetic")
    out, indent = [], 0
    for line in lines[header + 2 :]:
        names, text = line[:column].strip(), line[column:]
        if names:
            indent = len(names) + 2
            out.append(f"{names}: {text}")
        else:
            out.append(" " * indent + text)
    return "\n".join(out) + "\n"


def test_notes_example_2_shows_29_5_the_floor_and_the_lost_column() -> None:
    assert explained("conv", "64", "--k", "7", "--s", "2") == (
        "H, W: output = (input - kernel_size + 2*padding) / stride + 1\n"
        "      = (64 - 7 + 2*0) / 2 + 1\n"
        "      = 57 / 2 + 1 = 29.5, rounded down to 29\n"
        "      The 29 windows start at 0, 2, ..., 56; the last one ends at 62, so input pixel 63 is never read "
        "(1 pixel).\n"
    )


def test_notes_example_1_divides_exactly() -> None:
    assert "= 216 / 4 + 1 = 55\n" in explained("conv", "227", "--k", "11", "--s", "4")


def test_ceil_mode_names_the_window_torch_drops() -> None:
    text = explained("pool", "5", "--k", "2", "--s", "2", "--p", "1", "--ceil-mode", "--dims", "1")
    assert "= 5 / 2 + 1 = 3.5, rounded up (ceil_mode) to 4\n" in text
    assert "Window 4 would start at 6, which is in the right padding" in text
    assert text.endswith("so torch drops it: 3.\n")


def test_same_padding_shows_the_extra_pixel_after() -> None:
    text = explained("conv", "10", "--dims", "1", "--k", "4", "--p", "same")
    assert "padding='same' pads dilation*(kernel_size-1) = 3 in all: 1 before and 2 after" in text


def test_dilation_and_transposed() -> None:
    assert "the kernel spans dilation*(kernel_size-1)+1 = 2*(3-1)+1 = 5 pixels" in explained(
        "conv", "20", "--dims", "1", "--k", "3", "--d", "2"
    )
    text = explained("conv", "7x9", "--transposed", "--k", "4", "--s", "2", "--p", "1")
    assert "H: output = (input - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1\n" in text
    assert "   = 16 - 2 + 3 + 0 + 1 = 18\n" in text


def test_stack_explains_each_conv_and_pool() -> None:
    result = CliRunner(env={"COLUMNS": "120"}).invoke(
        main, ["stack", str(ROOT / "examples" / "lenet5.yaml"), "--explain"]
    )
    explanations = [line.strip() for line in result.stdout.splitlines() if " gives " in line]
    assert explanations == [
        "#1 Conv2d on 32x32 gives 28x28.",
        "#3 AvgPool2d on 28x28 gives 14x14. Its stride is kernel_size, 2x2: a pool's stride, not given.",
        "#4 Conv2d on 14x14 gives 10x10.",
        "#6 AvgPool2d on 10x10 gives 5x5. Its stride is kernel_size, 2x2: a pool's stride, not given.",
    ]


def test_a_pool_given_its_stride_says_nothing_of_the_default() -> None:
    given = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["pool", "28", "--k", "2", "--s", "2", "--explain"])
    defaulted = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["pool", "28", "--k", "2", "--explain"])
    assert "not given" not in given.stdout
    assert "Its stride is kernel_size, 2x2: a pool's stride, not given." in defaulted.stdout


@pytest.mark.parametrize("args", [["conv", "64", "--k", "7", "-q"], ["stack", "examples/lenet5.yaml", "--json"]])
def test_explain_goes_with_the_table_only(args: list[str]) -> None:
    result: Result = CliRunner().invoke(main, [*args, "--explain"])
    assert result.exit_code == 2
    assert "--explain goes with the table" in result.stderr
