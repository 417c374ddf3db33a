"""Fuzzing the real CLI: generated argument lists and stack files, valid and broken.

The property, for every case: no traceback, no hang (Hypothesis' deadline),
exit code 0, 1 or 2, and on failure a single ``Error:`` line that says what is
wrong. The counts below add up to 10,000 cases a run; docs/benchmarks.md says
what earlier runs found.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convcalc.cli import main

CASES = {"arguments": 4000, "stack_files": 4000, "junk_files": 2000}

RUNNER = CliRunner(env={"COLUMNS": "100"})
ROOT = Path(__file__).parent.parent

numbers = st.one_of(
    st.integers(-3, 12),
    st.integers(-(10**13), 10**13),
    st.sampled_from([0, 1, 2, 10**12, -1, 2**63, 10**100]),
)
words = st.one_of(
    numbers.map(str),
    st.lists(st.integers(-2, 40), min_size=1, max_size=5).map(lambda xs: "x".join(map(str, xs))),
    st.sampled_from(["same", "valid", "max", "avg", "torch", "light", "dark", "", "x", "3x", "1e3", "٣", "2×3", "-"]),  # noqa: RUF001 (a real multiplication sign)
    st.text(max_size=8),
)
OPTIONS = [
    "--k", "-k", "--kernel-size", "--s", "--stride", "--p", "--padding", "--d", "--dilation", "--groups",
    "--in-channels", "--out-channels", "--padding-mode", "--output-padding", "--batch", "--dims", "--type",
    "--input", "--dtype", "--range", "--limit", "--max-kernel", "--max-stride", "--width", "--theme", "--title",
    "--emit", "--max-dilation",
]  # fmt: skip
FLAGS = [
    "--transposed", "--ceil-mode", "--no-bias", "--json", "-q", "--csv", "--markdown", "--explain", "--help",
    "--floor-mode", "--version",
]  # fmt: skip


FILES = ["examples/lenet5.yaml", "examples/resnet18.yaml", "examples/unet_padded.yaml", "missing.yaml"]


@st.composite
def argument_lists(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["conv", "pool", "solve", "conv", "pool", "stack", "fit", "draw", "bogus"]))
    args = [command]
    if command in ("stack", "fit", "draw"):
        args.append(draw(st.sampled_from(FILES)))
    for _ in range(draw(st.integers(0, 3))):
        args.append(draw(words))
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            args += [draw(st.sampled_from(OPTIONS)), draw(words)]
        else:
            args.append(draw(st.sampled_from(FLAGS)))
    return args


def check(result: Result, what: object) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{what}: {type(result.exception).__name__}: {result.exception}"
    )
    assert result.exit_code in (0, 1, 2), what
    if result.exit_code:
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, f"{what}: {result.stderr!r}"
        assert len(errors[0]) > len("Error: ") + 5, f"{what}: {result.stderr!r}"
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, what


@settings(max_examples=CASES["arguments"], deadline=10_000, suppress_health_check=[HealthCheck.too_slow])
@given(args=argument_lists())
def test_any_argument_list(args: list[str]) -> None:
    check(RUNNER.invoke(main, args), args)


layer_names = st.sampled_from(
    ["Conv2d", "Conv1d", "ConvTranspose2d", "MaxPool2d", "AvgPool3d", "Linear", "Flatten", "ReLU", "BatchNorm2d",
     "Upsample", "PixelShuffle", "ZeroPad2d", "Residual", "Repeat", "Save", "Add", "Concat", "conv2d", "Lineer", ""]
)  # fmt: skip
keys = st.sampled_from(
    ["out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "in_channels", "out_features",
     "scale_factor", "size", "mode", "body", "shortcut", "times", "layers", "with", "dim", "crop", "p", "name", "bogus"]
)  # fmt: skip
values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.floats(allow_nan=True), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=8,
)


@st.composite
def layer_items(draw: st.DrawFn, depth: int = 0) -> object:
    name = draw(layer_names)
    if draw(st.integers(0, 5)) == 0:
        return name
    if name in ("Residual", "Repeat") and depth < 3:
        args: dict[str, object] = {"times": draw(st.one_of(st.integers(-1, 4), values))} if name == "Repeat" else {}
        args["body" if name == "Residual" else "layers"] = draw(st.lists(layer_items(depth + 1), max_size=3))
        return {name: args}
    if name == "Save":
        return {name: draw(st.one_of(st.sampled_from(["a", "b"]), values))}
    return {name: draw(st.dictionaries(keys, st.one_of(numbers, values), max_size=4))}


@st.composite
def stack_files(draw: st.DrawFn) -> str:
    data: dict[str, object] = {}
    if draw(st.integers(0, 9)):
        rank = draw(st.integers(1, 5))
        data["input"] = draw(st.lists(st.one_of(st.integers(1, 40), numbers, values), min_size=rank, max_size=rank))
    if draw(st.integers(0, 9)):
        data["layers"] = draw(st.lists(layer_items(), max_size=6))
    if draw(st.integers(0, 9)) == 0:
        data[draw(st.text(max_size=5))] = draw(values)
    return yaml.safe_dump(data, allow_unicode=draw(st.booleans()))


@settings(max_examples=CASES["stack_files"], deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(text=stack_files(), command=st.sampled_from(["stack", "stack", "fit", "draw"]), extra=st.sampled_from(
    [[], ["--json"], ["-q"], ["--csv"], ["--markdown"], ["--explain"], ["--emit", "torch"], ["--range", "1:40"]]
))  # fmt: skip
def test_any_stack_file(text: str, command: str, extra: list[str]) -> None:
    args = [command, "-", *(extra if command != "fit" else [e for e in extra if e in ("--json", "--range", "1:40")])]
    check(RUNNER.invoke(main, args, input=text), (args, text))


junk = st.one_of(
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=200),
    st.sampled_from(["", "\x00", "---\n...\n", "input: [1, 3, 8, 8]\nlayers: &a [*a]\n", "!!python/object:os.system",
                     "[" * 200, "{a: !!binary ZZZ}", "input: !!set {1}\nlayers: []", "? [1, 2]\n: 3\n"]),
)  # fmt: skip


@settings(max_examples=CASES["junk_files"], deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(text=junk, command=st.sampled_from(["stack", "fit", "draw"]))
def test_any_junk(text: str, command: str) -> None:
    check(RUNNER.invoke(main, [command, "-"], input=text), (command, text))


# --- hostile inputs, each found while fuzzing or by hand; kept as regression tests ----------------------------


def test_numbers_with_more_digits_than_python_converts() -> None:
    huge = "1" * 5000
    for args in (["conv", huge, "--k", "3"], ["conv", "10", "--k", huge]):
        result = RUNNER.invoke(main, args)
        assert result.exit_code == 2 and "too long" in result.stderr
    text = f"input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {{out_channels: {huge}, kernel_size: 3}}\n"
    result = RUNNER.invoke(main, ["stack", "-"], input=text)
    assert result.exit_code == 1 and result.stderr.startswith("Error: <stdin>: refused: Exceeds the limit")


def test_deeply_nested_yaml_is_refused() -> None:
    result = RUNNER.invoke(main, ["stack", "-"], input="input: " + "[" * 5000 + "]" * 5000)
    check(result, "nesting")
    assert result.exit_code == 1


def test_searches_that_would_never_end_are_refused_at_once() -> None:
    solve = RUNNER.invoke(main, ["solve", "64", "32", "--max-kernel", "100000"])
    assert solve.exit_code == 2 and "the search would try about" in solve.stderr
    fit = RUNNER.invoke(main, ["fit", "examples/vgg16.yaml", "--range", "1:1000000"])
    assert fit.exit_code == 2 and "keep sizes x layers under 250,000" in fit.stderr


def test_huge_sizes_are_exact_and_verify_allocates_nothing() -> None:
    args = ["conv", "1000000x1000000", "--k", "3", "--in-channels", "3", "--out-channels", "8"]
    result = RUNNER.invoke(main, [*args, "--batch", "1000000000", "--verify", "--json"])
    assert result.exit_code == 0, result.stderr
    import json

    data = json.loads(result.stdout)
    assert data["output_shape"] == [10**9, 8, 999_998, 999_998]
    assert data["macs"] == 10**9 * 8 * 3 * 9 * 999_998**2
    assert data["verify"]["agrees"] is True
    assert data["verify"]["torch_shape"] == [10**9, 8, 999_998, 999_998]


def test_nothing_is_written_without_an_output_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for args in (["draw", str(ROOT / "examples" / "lenet5.yaml")], ["stack", str(ROOT / "examples" / "lenet5.yaml")]):
        assert RUNNER.invoke(main, args).exit_code == 0
    assert list(tmp_path.iterdir()) == []
