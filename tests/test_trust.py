"""What the trust issue found, each kept as a test that failed before its fix: bounded reprs, messages students
meet, searches that keep their budgets, and output that stays whole or says why not."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcalc.cli import main
from convcalc.network import run_stack
from convcalc.stackfile import load_stack

ROOT = Path(__file__).parent.parent


@contextlib.contextmanager
def hang_catcher(seconds: int) -> Iterator[None]:
    """Fail, rather than wait for ever, where something runs past ``seconds``: a generous bound that only a hang
    reaches (speed is measured in benchmarks/, never here)."""

    def expire(signum: int, frame: object) -> None:
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run(*args: str, stdin: str | None = None) -> object:
    return CliRunner(env={"COLUMNS": "100"}).invoke(main, list(args), input=stdin)


# --- reprs are for people ---------------------------------------------------------------------------------------


def test_a_stack_results_repr_is_short_and_never_recursive() -> None:
    """ResNet-50's repr reached 12.8 GB in 11 minutes: each node printed its parent, children and inputs."""
    shape, specs = load_stack((ROOT / "examples" / "resnet50.yaml").read_text(), "resnet50.yaml")
    result = run_stack(shape, specs)
    with hang_catcher(60):
        whole = repr(result)
        rows = [repr(node) for node in result.rows]
        listed = repr(list(result.rows))
    assert len(whole) < 20_000 and "StackResult" in whole and "25,557,032 params" in whole
    assert max(len(row) for row in rows) < 2_000
    assert len(listed) < 200 * len(result.rows)
    block = next(node for node in result.rows if node.children)
    assert repr(block.children[0]) not in repr(block)  # a block names how many it holds, not what


# --- messages a student meets -----------------------------------------------------------------------------------


def test_a_channel_first_size_is_read_as_3d_and_says_how_to_give_an_image() -> None:
    result = run("conv", "3x224x224", "--k", "3", "-q")
    assert result.exit_code == 0 and result.stdout == "1x222x222\n"
    assert (
        result.stderr == "Note: 3x224x224 is read as a 3-D size; for a 3-channel image give 224x224 --in-channels 3\n"
    )
    assert run("conv", "16x112x112", "--k", "3", "-q").stderr == ""  # a video clip is a 3-D size
    assert run("conv", "3x224x224", "--k", "3", "--dims", "3", "-q").stderr == ""  # said so


def test_pythons_call_syntax_in_a_stack_file_points_to_the_stack_files() -> None:
    result = run("stack", "-", "-q", stdin="input: [1, 1, 28, 28]\nlayers:\n  - Conv2d(1, 5, 5)\n")
    assert result.exit_code == 1
    assert "writes the call as 'Conv2d: [1, 5, 5]'" in result.stderr


def test_a_channels_last_input_is_recognised() -> None:
    result = run("stack", "-", "-q", stdin="input: [1, 28, 28, 1]\nlayers:\n  - Conv2d: [1, 5, 5]\n")
    assert result.exit_code == 1
    assert "looks channels-last (N, H, W, C)" in result.stderr and "permute: [0, 3, 1, 2]" in result.stderr
    assert "use in_channels: 28" not in result.stderr


def test_a_stray_value_is_named_with_the_missing_option() -> None:
    result = run("conv", "28", "5")
    assert result.exit_code == 2
    assert "unexpected extra argument '5'" in result.stderr and "missing --kernel-size" in result.stderr


def test_groups_is_a_positive_integer_in_its_help_and_its_check() -> None:
    assert "[default: 1; N >= 1]" in run("conv", "--help").stdout.replace("\n", " ").replace("  ", " ")
    assert run("conv", "8", "--k", "3", "--groups", "-1").exit_code == 2


# --- searches keep their budgets --------------------------------------------------------------------------------


@pytest.mark.parametrize("extra", [[], ["--transposed"]])
def test_a_negative_fixed_value_keeps_the_search_within_its_budget(extra: list[str]) -> None:
    """--d -1 made the estimate negative, so 10**6 strides ran (19.7 s; transposed, past 120 s)."""
    with hang_catcher(60):
        result = run("solve", "100", "1", "--d", "-1", "--max-stride", "1000000", *extra)
    assert result.exit_code == 2 and "the search would try about" in result.stderr


# --- output that stays whole ------------------------------------------------------------------------------------


def test_a_closed_pipe_after_part_of_the_output_exits_141_unbuffered_too() -> None:
    """With PYTHONUNBUFFERED=1 the text layer wrote part of the JSON to the pipe and exited 0."""
    command = f"{sys.executable} -m convcalc stack {ROOT / 'examples' / 'resnet50.yaml'} --json | head -c 10"
    for unbuffered in ("", "1"):
        environment = {**os.environ, "PYTHONUNBUFFERED": unbuffered}
        if not unbuffered:
            environment.pop("PYTHONUNBUFFERED")
        child = subprocess.run(["bash", "-c", f"{command}; echo \" ${{PIPESTATUS[0]}}\""], capture_output=True,
                               text=True, timeout=120, env=environment, check=False)  # fmt: skip
        assert child.stdout.endswith(" 141\n"), (unbuffered, child.stdout, child.stderr)
        assert child.stderr == ""


def test_verify_counts_the_padded_input_a_padding_mode_makes() -> None:
    """A replicate pad of 15,000 on each side of 100x100 is a tensor of 30,100 x 30,100 floats (3.6 GB): the CPU
    run is skipped, and the verdict says so."""
    with hang_catcher(120):
        result = run("conv", "100x100", "--k", "3", "--d", "15000", "--p", "same", "--padding-mode", "replicate",
                     "--verify", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert '"devices": ["meta"]' in result.stdout
