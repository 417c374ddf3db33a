"""--verify: real torch runs the layer; convcalc says whether it agrees."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import convcalc
from convcalc import layers, verify
from convcalc.cli import main
from convcalc.network import run_stack
from convcalc.spec import resolve
from tests import test_stack_torch, test_torch_agreement
from tests.profiles import scaled


def run(*args: str) -> Result:
    return CliRunner(env={"COLUMNS": "120"}).invoke(main, list(args))


def test_agreeing_layer_exits_0_and_says_so() -> None:
    result = run("conv", "64", "--k", "7", "--s", "2", "--in-channels", "3", "--out-channels", "64", "--verify")
    assert result.exit_code == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("verify: torch 2.")
    assert last.endswith("agrees: it gives (1, 64, 29, 29) (ran on meta and cpu)")


def test_agreeing_json_carries_torchs_verdict() -> None:
    result = run("pool", "5", "--k", "2", "--s", "2", "--p", "1", "--ceil-mode", "--verify", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["verify"]["agrees"] is True
    assert data["verify"]["torch_shape"] == [1, 1, 3, 3]
    assert data["verify"]["devices"] == ["meta", "cpu"]


def test_quiet_verify_prints_only_the_size_when_torch_agrees() -> None:
    result = run("conv", "7x9", "--transposed", "--k", "4", "--s", "2", "--p", "1", "--verify", "-q")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "14x18\n", "")


def test_invalid_layer_that_torch_rejects_too_exits_1_with_both_verdicts() -> None:
    result = run("conv", "10", "--k", "11", "--verify")
    assert result.exit_code == 1
    first, second = result.stderr.splitlines()
    assert first.startswith("Error: Conv2d: kernel_size 11 is larger than the padded input 10")
    assert second.startswith("verify: torch 2.")
    assert "agrees: it rejects the layer (RuntimeError: Calculated padded input size" in second


def test_lax_meta_device_is_confirmed_on_the_cpu() -> None:
    """On meta a transposed conv accepts output_padding >= stride and dilation; real torch does not."""
    result = run("conv", "5", "--dims", "1", "--transposed", "--k", "3", "--output-padding", "2", "--verify")
    assert result.exit_code == 1
    assert "agrees: it rejects the layer (RuntimeError: output padding must be smaller" in result.stderr
    assert "(ran on meta and cpu)" in result.stderr


def test_transposed_output_of_zero_counts_as_rejected() -> None:
    """CPU torch's oneDNN path returns an empty tensor here; convcalc and verify call it invalid."""
    result = run("conv", "1", "--dims", "1", "--transposed", "--k", "2", "--p", "1", "--verify")
    assert result.exit_code == 1
    assert "ConvTranspose1d: the output would be 0 on axis L" in result.stderr
    assert "agrees: it rejects the layer" in result.stderr


def test_huge_input_costs_nothing_and_skips_the_cpu_run() -> None:
    result = run("conv", "1000000x1000000", "--k", "3", "--in-channels", "3", "--out-channels", "8", "--verify")
    assert result.exit_code == 0, result.stderr
    assert "gives (1, 8, 999998, 999998) (ran on meta; a CPU run would be too large)" in result.stdout


def test_disagreement_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calculator that is off by one must be caught."""
    real = layers.conv

    def off_by_one(*args: object, **kwargs: object) -> layers.LayerResult:
        result = real(*args, **kwargs)  # type: ignore[arg-type]
        return dataclasses.replace(result, output=tuple(n + 1 for n in result.output))

    monkeypatch.setattr(layers, "conv", off_by_one)
    result = run("conv", "227", "--k", "11", "--s", "4", "--verify", "-q")
    assert result.exit_code == 1
    assert result.stdout == "56x56\n"
    first, second = result.stderr.splitlines()
    assert first == "Error: torch disagrees with convcalc on this layer"
    assert second.startswith("verify: torch 2.") and second.endswith(
        "DISAGREES: it gives (1, 1, 55, 55) (ran on meta and cpu)"
    )


def test_disagreement_on_validity_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """A calculator that rejects a layer torch runs must be caught too."""

    def rejects(*args: object, **kwargs: object) -> layers.LayerResult:
        raise convcalc.InvalidLayerError("Conv2d: rejected by a broken calculator")

    monkeypatch.setattr(layers, "conv", rejects)
    result = run("conv", "32", "--k", "3", "--verify")
    assert result.exit_code == 1
    assert "DISAGREES: it gives (1, 1, 30, 30)" in result.stderr


def test_verify_without_torch_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    result = run("conv", "227", "--k", "11", "--s", "4", "--verify")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: {verify.TORCH_MISSING}\n"
    assert "pip install 'convcalc[torch]'" in result.stderr


@pytest.mark.parametrize("family", ["conv", "conv_transpose", "max_pool", "avg_pool"])
@settings(max_examples=scaled(150), deadline=None)
@given(data=st.data())
def test_verify_agrees_with_the_calculator_on_generated_layers(family: str, data: st.DataObject) -> None:
    """Valid or not, --verify must find torch agreeing with the (torch-checked) calculator."""
    size, kwargs = data.draw(test_torch_agreement.layers(family))
    assume(not test_torch_agreement.backend_quirk(family, kwargs))
    result = test_torch_agreement.calculator(family, size, kwargs)
    verification = verify.verify_layer(family, size, kwargs, result)
    assert verification.agrees, verification
    assert (verification.torch_shape is None) == (result is None)
    if result is not None:  # small layers: the meta device's answer is always confirmed on the CPU
        assert verification.devices == ("meta", "cpu")


EXAMPLES = sorted(Path(__file__).parent.parent.joinpath("examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.stem)
def test_stack_verify_agrees_on_every_example(example: Path) -> None:
    result = run("stack", str(example), "--verify", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["verify"]["agrees"] is True

    def labels(layers: list[dict[str, object]]) -> set[str]:
        found = set()
        for layer in layers:
            found.add(layer["label"])
            for inner in layer.get("blocks", {}).values():  # type: ignore[attr-defined]
                found |= labels(inner)
        return found

    assert {check["label"] for check in data["verify"]["layers"]} == labels(data["layers"])


def test_stack_verify_confirms_the_failing_layer() -> None:
    text = (
        "input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 3}\n  - MaxPool2d: {kernel_size: 7}\n"
    )
    result = CliRunner(env={"COLUMNS": "160"}).invoke(main, ["stack", "-", "--verify"], input=text)
    assert result.exit_code == 1
    assert "ok, rejects" not in result.stdout  # the failing layer has no row
    lines = result.stderr.splitlines()
    assert lines[0].startswith("Error: <stdin>, line 4: layer 2 (MaxPool2d)")
    assert lines[1].startswith("verify: torch 2.") and lines[1].endswith(
        "agrees on all 2 layers (meta device, eval mode)"
    )


def test_stack_verify_huge_input_allocates_nothing() -> None:
    vgg = str(Path(__file__).parent.parent / "examples" / "vgg16.yaml")
    result = run("stack", vgg, "--verify", "--input", "256x3x1024x1024", "-q")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "256x1000\n", "")


def test_stack_verify_catches_a_wrong_calculator(monkeypatch: pytest.MonkeyPatch) -> None:
    from convcalc import catalog

    relu = catalog.LAYERS["ReLU"]
    broken = dataclasses.replace(relu, apply=lambda shape, args: catalog.Step(output=(*shape[:-1], shape[-1] + 1)))
    monkeypatch.setitem(catalog.LAYERS, "ReLU", broken)
    text = "input: [1, 3, 8, 8]\nlayers:\n  - Conv2d: {out_channels: 4, kernel_size: 3}\n  - ReLU\n"
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["stack", "-", "--verify"], input=text)
    assert result.exit_code == 1
    assert "DIFFERS: torch gives (1, 4, 6, 6), 0 params" in result.stdout
    assert result.stderr.splitlines()[-1].endswith("DISAGREES on layer 2 (ReLU) (meta device, eval mode)")


def test_stack_verify_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    result = run("stack", str(EXAMPLES[0]), "--verify")
    assert (result.exit_code, result.stderr) == (1, f"Error: {verify.TORCH_MISSING}\n")


@settings(max_examples=scaled(300), deadline=None)
@given(case=test_stack_torch.stacks())
def test_stack_verify_agrees_on_generated_stacks(case: tuple[tuple[int, ...], list[Any]]) -> None:
    """Its shortcuts around torch's slow meta kernels must never make torch and convcalc disagree."""
    shape, items = case
    specs = resolve((name, args, None) for name, args in items)
    result = run_stack(shape, specs)
    verification = verify.verify_stack(specs, result)
    assert verification.agrees, (items, [check for check in verification.layers if not check.agrees])


# --- --verify under hostile input: no traceback, bounded memory, no false verdict ----------------------------


def stack(text: str, *args: str) -> Result:
    return CliRunner(env={"COLUMNS": "160"}).invoke(main, ["stack", "-", "--verify", *args], input=text)


def test_stack_verify_of_a_tensor_torch_cannot_hold_runs_a_batch_of_one() -> None:
    text = "input: [1000000000, 3, 1000000, 1000000]\nlayers:\n  - Conv2d: {out_channels: 8, kernel_size: 3}\n"
    result = stack(text, "-q")
    assert (result.exit_code, result.stdout) == (0, "1000000000x8x999998x999998\n"), result.stderr
    checked = stack(text, "--json")
    assert json.loads(checked.stdout)["verify"]["agrees"] is True
    table = stack(text)
    assert "both ran a batch of 1" in table.stdout


def test_stack_verify_refuses_when_even_a_batch_of_one_is_too_large() -> None:
    text = "input: [1, 3, 4000000000, 4000000000]\nlayers:\n  - ReLU\n"
    result = stack(text)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: torch cannot hold a tensor of 2**63 bytes or more")
    assert "Traceback" not in result.stderr and "DISAGREES" not in result.stderr + result.stdout


def test_return_indices_is_refused_by_both() -> None:
    text = "input: [1, 3, 8, 8]\nlayers:\n  - MaxPool2d: {kernel_size: 2, return_indices: true}\n"
    result = stack(text)
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].endswith("agrees on all 1 layers (meta device, eval mode)")


def test_a_torch_that_does_not_load_gets_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        def find_spec(self, name: str, *args: object) -> None:
            if name == "torch":
                raise OSError("libtorch_cpu.so: cannot open shared object file")

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    for args in (["conv", "227", "--k", "11", "--verify"], ["stack", str(EXAMPLES[0]), "--verify"]):
        result = run(*args)
        assert result.exit_code == 1
        assert result.stderr == (
            "Error: --verify needs PyTorch, which is installed but does not load (OSError: libtorch_cpu.so: cannot "
            "open shared object file): reinstall it, e.g. pip install --force-reinstall torch\n"
        )


def test_running_out_of_memory_is_no_disagreement(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    def no_memory(self: object, x: object) -> object:
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you "
                           "tried to allocate 8000000000 bytes")  # fmt: skip

    monkeypatch.setattr(torch.nn.ReLU, "forward", no_memory)
    result = stack("input: [1, 3, 8, 8]\nlayers:\n  - ReLU\n")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: --verify could not run torch on layer 1 (ReLU): RuntimeError: ")
    assert "no verdict on the layer" in result.stderr
    assert "DISAGREES" not in result.stdout + result.stderr


MEASURE = """
import resource, subprocess, sys
child = subprocess.run(sys.argv[1:], input=sys.stdin.read(), capture_output=True, text=True)
sys.stderr.write(child.stderr)
sys.stdout.write(child.stdout)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
"""Runs a command and prints its peak memory. A process forked from this test's large process counts that
process's memory as its own until it execs, so the command is started from this small one instead."""


def test_stack_verify_memory_is_bounded_whatever_the_channels() -> None:
    """100,000,000 channels: every tensor expanded or on the meta device, never allocated (3.3 GB before)."""
    import subprocess

    text = "input: [1, 100000000, 8, 8]\nlayers:\n  - BatchNorm2d\n  - ReLU\n  - GroupNorm: {num_groups: 4}\n"
    command = [sys.executable, "-c", MEASURE, sys.executable, "-m", "convcalc", "stack", "-", "--verify", "-q"]
    child = subprocess.run(command, input=text, capture_output=True, text=True, timeout=300, check=False)
    *output, peak = child.stdout.splitlines()
    assert output == ["1x100000000x8x8"], child.stderr
    assert int(peak) / 1024 < 1024, int(peak) / 1024


def test_a_differing_join_without_params_prints_its_verdict() -> None:
    """A join or tensor method has no parameter count: the table's verdict line must not need one."""
    from convcalc.text import check_text

    check = verify.LayerCheck(index=2, type="Concat", torch_shape=(1, 1, 6), torch_params=None, torch_error=None,
                              agrees=False)  # fmt: skip
    assert check_text(check) == "DIFFERS: torch gives (1, 1, 6)"


@pytest.mark.parametrize("layers_text", ["[LayerScale: {dim: 2}]", "[mean, PositionEmbedding]"])
def test_a_learned_tensor_convcalc_refuses_is_no_disagreement(layers_text: str) -> None:
    """ClassToken, PositionEmbedding and LayerScale are convcalc's own modules: torch has no class to ask, so a
    refusal of one is not reported as torch disagreeing (found by a hostile test)."""
    result = CliRunner().invoke(main, ["stack", "-", "--verify"], input=f"input: [4, 7]\nlayers: {layers_text}\n")
    assert result.exit_code == 1
    assert "DISAGREES" not in result.stderr and "agrees" in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("kernel", ["9223372036854775807", "1000000000000"])
def test_a_window_of_many_taps_is_not_run_on_the_cpu(kernel: str) -> None:
    """torch's CPU MaxPool1d visits every tap of its window: 10**12 taps ran for hours and 2**63 - 1 crashed the
    process (found by a hostile test); --verify answers from the meta device there."""
    import subprocess

    command = [sys.executable, "-m", "convcalc", "pool", "10", "--dims", "1", "--k", kernel, "--ceil-mode", "--verify",
               "--json"]  # fmt: skip
    child = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert child.returncode == 0, child.stderr
    verdict = json.loads(child.stdout)["verify"]
    assert verdict["agrees"] and verdict["devices"] == ["meta"]


@pytest.mark.parametrize("layer", ["normalize: {dim: nan}", "normalize: {p: 1, dim: W}", "pad: [0, X]"])
def test_verify_of_a_size_that_cannot_be_worked_out_is_one_error_line(layer: str) -> None:
    """Found by test_fuzz: a failing function whose arguments were never filled in crashed --verify (KeyError)."""
    result = CliRunner().invoke(main, ["stack", "-", "--verify"], input=f"input: [1, 1, 4, 4]\nlayers:\n- {layer}\n")
    assert result.exit_code == 1, result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.stderr.startswith("Error: <stdin>, line 3") and "is not bound" in result.stderr
    assert "Traceback" not in result.output + result.stderr
