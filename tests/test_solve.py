"""convcalc solve: every setting torch accepts that gives the wanted size, and no other."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc.cli import main
from convcalc.solver import solve
from tests.profiles import scaled
from tests.torch_oracle import TORCH_REJECTS

BOUNDS = {"max_kernel": 4, "max_stride": 3, "max_dilation": 2}


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "100"}).invoke(main, list(args))


def torch_answers(family: str, length: int, out: int) -> set[tuple[object, ...]]:
    """Every setting within BOUNDS for which torch maps a 1-D input of ``length`` to ``out``."""
    found = set()
    for k in range(1, BOUNDS["max_kernel"] + 1):
        for s in range(1, BOUNDS["max_stride"] + 1):
            for d in range(1, (1 if family == "avg_pool" else BOUNDS["max_dilation"]) + 1):
                span = d * (k - 1) + 1
                for p in range(0, (k // 2 if family.endswith("pool") else span - 1) + 1):
                    extras = {"conv": [None], "conv_transpose": range(max(s, d)), "max_pool": [False, True],
                              "avg_pool": [False, True]}[family]  # fmt: skip
                    for extra in extras:
                        kwargs: dict[str, object] = {"kernel_size": k, "stride": s, "padding": p}
                        if family != "avg_pool":
                            kwargs["dilation"] = d
                        if family.startswith("conv"):
                            layer: nn.Module = getattr(nn, "Conv1d" if family == "conv" else "ConvTranspose1d")(
                                1, 1, **kwargs, **({"output_padding": extra} if family == "conv_transpose" else {})
                            )
                        else:
                            layer = getattr(nn, "MaxPool1d" if family == "max_pool" else "AvgPool1d")(
                                **kwargs, ceil_mode=extra
                            )
                        try:
                            with warnings.catch_warnings():
                                warnings.simplefilter("ignore")
                                size = layer(torch.zeros(1, 1, length)).shape[-1]
                        except TORCH_REJECTS:
                            continue
                        if size == out:
                            found.add((k, s, p, d, extra))
    if family.endswith("pool"):  # convcalc lists ceil_mode only where it changes the size
        found = {a for a in found if not (a[4] and (a[0], a[1], a[2], a[3], False) in found)}
    return found


@pytest.mark.parametrize("family", ["conv", "conv_transpose", "max_pool", "avg_pool"])
@settings(max_examples=scaled(25), deadline=None)
@given(length=st.integers(1, 16), out=st.integers(1, 24))
def test_answers_are_exactly_what_torch_gives(family: str, length: int, out: int) -> None:
    answers = solve((length,), (out,), family=family, **BOUNDS)
    extra = {"conv": lambda a: None, "conv_transpose": lambda a: a.output_padding, "max_pool": lambda a: a.ceil_mode,
             "avg_pool": lambda a: a.ceil_mode}[family]  # fmt: skip
    ours = {(a.kernel_size, a.stride, a.padding, a.dilation, extra(a)) for a in answers}
    assert len(ours) == len(answers)
    assert ours == torch_answers(family, length, out)


def test_the_issues_example_comes_first() -> None:
    assert [a.short() for a in solve((64,), (32,))[:3]] == ["k=2 s=2 p=0", "k=3 s=2 p=1", "k=4 s=2 p=1"]


def test_the_same_setting_must_work_on_every_axis() -> None:
    answers = solve((64, 48), (32, 24))
    assert answers and all(a.stride == 2 for a in answers)
    assert solve((64, 48), (32, 48)) == []


def test_covers_all_and_same() -> None:
    by_setting = {a.short(): a for a in solve((64,), (32,))}
    assert by_setting["k=3 s=2 p=1"].covers_all
    assert not by_setting["k=1 s=2 p=0"].covers_all  # every other pixel is skipped
    same = {a.short(): a.same for a in solve((32,), (32,))}
    assert same["k=3 s=1 p=1"] and same["k=5 s=1 p=2"]


def test_quiet_prints_the_best_answer_as_options() -> None:
    result = run("solve", "64", "32", "-q")
    assert (result.exit_code, result.stdout) == (0, "--kernel-size 2 --stride 2 --padding 0\n")
    # and those options give the size
    assert run("conv", "64", *result.stdout.split(), "-q").stdout == "32x32\n"


def test_fixed_parameters_narrow_the_search() -> None:
    data = json.loads(run("solve", "64x48", "32x24", "--k", "3", "--json").stdout)
    assert data["input_size"] == [64, 48] and data["output_size"] == [32, 24]
    assert {answer["kernel_size"] for answer in data["answers"]} == {3}
    assert data["answers"][0] == {
        "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1, "output_padding": None, "ceil_mode": None,
        "covers_all": True, "same": False,
    }  # fmt: skip


def test_the_notes_first_example_widens_the_default_search_and_says_so() -> None:
    """227 -> 55 needs kernel_size 11: past the default bound of 7, which widens, and a note on standard error names
    the bounds that found it."""
    result = run("solve", "227", "55", "-q")
    assert result.exit_code == 0
    assert result.stdout == "--kernel-size 11 --stride 4 --padding 0\n"
    assert result.stderr == (
        "Note: no setting within kernel_size <= 7 and stride <= 4 does it; these are within kernel_size <= 15 and "
        "stride <= 8 (--max-kernel, --max-stride)\n"
    )


def test_no_answer_names_the_nearest_outputs_that_have_one() -> None:
    result = run("solve", "64", "100", "--max-kernel", "7")  # bounds given: no widening
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no conv setting within kernel_size <= 7, stride <= 4 turns 64 into 100; "
        "nearest outputs with answers: 70\n"
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["solve", "64", "32", "--transposed", "--type", "max"], "exclude each other"),
        (["solve", "64", "32", "--output-padding", "1"], "add --transposed"),
        (["solve", "64", "32", "--ceil-mode"], "add --type max"),
        (["solve", "64x64", "32x32x32"], "IN has 2 axes but OUT has 3"),
        (["solve", "64"], "Missing argument 'OUT'"),
    ],
)
def test_usage_errors(args: list[str], fragment: str) -> None:
    result = run(*args)
    assert result.exit_code == 2
    assert fragment in result.stderr
