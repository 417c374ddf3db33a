"""``convcalc import``: models from PyTorch code as stack files, checked against torch itself.

One model of each family torchvision has (the whole zoo is benchmarks/zoo.py's): the file's output shape,
parameters, buffers and MACs equal torch's at the traced input (MACs: FlopCounterMode FLOPs / 2 on the meta
device), and at a second input the file gives torch's answer or refuses where torch does; the module
``--emit torch`` writes for it loads the original's ``state_dict()`` with ``strict=True`` and computes the
original's outputs. The oracle is torch running the original model: nothing of convcalc's goes into it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from convcalc.cli import main
from convcalc.errors import ConvcalcError
from convcalc.importer import ImportRefused, import_module
from tests.profiles import scaled
from tests.torchvision_models import models, torchvision

ROOT = Path(__file__).parent.parent
_spec = importlib.util.spec_from_file_location("zoo", ROOT / "benchmarks" / "zoo.py")
assert _spec is not None and _spec.loader is not None
zoo = importlib.util.module_from_spec(_spec)
sys.modules["zoo"] = zoo  # dataclasses look their module up there
_spec.loader.exec_module(zoo)


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One thread: on a loaded 2-core machine, two threads made small float64 forwards several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def imported(build: Any, shape: tuple[int, ...]) -> tuple[Any, Any]:
    """The model built on the meta device, and its import at ``shape``."""
    with torch.device("meta"):
        model = build()
    return model, import_module(model, shape, title="test")


def assert_faithful(build: Any, shape: tuple[int, ...], second: tuple[int, ...], small: list[tuple[int, ...]],
                    outputs: bool = True) -> Any:  # fmt: skip
    """Counts equal torch's at ``shape`` and ``second``; the emitted module takes the state_dict and computes the
    original's outputs at the first of ``small`` the model takes."""
    model, result = imported(build, shape)
    assert zoo.check_counts(model, result, shape, second) == []
    problems, checked = zoo.check_outputs(build, result, small, run=outputs)
    assert problems == [], problems
    assert "state_dict loads (strict)" in checked
    if outputs:
        assert "outputs equal" in checked, checked
    return result


def test_resnet18_exact_named_and_faithful() -> None:
    result = assert_faithful(lambda: models().resnet18(), (1, 3, 224, 224), (2, 3, 160, 192), [(1, 3, 64, 64)])
    text = result.text
    assert "module: conv1}" in text and "module: layer1.0.conv1}" in text and "module: fc}" in text
    assert result.result.total_params == 11_689_512
    assert result.unused == ()


def test_resnet50_through_the_cli(tmp_path: Path) -> None:
    torchvision()  # imported through the tests' helper first; the command imports torchvision.models itself
    out = tmp_path / "resnet50.yaml"
    run = CliRunner().invoke(main, ["import", "torchvision.models:resnet50", "--input", "1x3x224x224", "-o",
                                    str(out), "--table"])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "25,557,032" in run.stdout and "4,089,184,256" in run.stdout  # torchvision's params and MACs
    listed = CliRunner().invoke(main, ["stack", str(out), "-q"])
    assert (listed.exit_code, listed.stdout) == (0, "1x1000\n")
    emitted = CliRunner().invoke(main, ["stack", str(out), "--emit", "torch"])
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(emitted.stdout, "emitted.py", "exec"), namespace)
    original = models().resnet50()
    copy = namespace["Network"]()
    copy.load_state_dict(original.state_dict(), strict=True)
    assert [(k, v.shape) for k, v in copy.state_dict().items()] == [
        (k, v.shape) for k, v in original.state_dict().items()
    ]


def test_mobilenet_v3_small() -> None:
    assert_faithful(lambda: models().mobilenet_v3_small(), (1, 3, 224, 224), (1, 3, 256, 256), [(1, 3, 64, 64)])


def test_vit_b_16_at_224_refuses_256_as_torch_does() -> None:
    model, result = imported(lambda: models().vit_b_16(), (1, 3, 224, 224))
    assert zoo.check_counts(model, result, (1, 3, 224, 224), (1, 3, 256, 256)) == []
    assert 'Check: {condition: "H == 224"' in result.text
    from convcalc.fitting import run_network
    from convcalc.stackfile import load_stack

    shape, specs = load_stack(result.text, "vit")
    other = run_network(shape, specs, (1, 3, 256, 256), suggest=False)
    assert other.error is not None and "Wrong image height! Expected 224" in str(other.error)
    assert zoo.meta_run(model, (1, 3, 256, 256)) is None  # torch refuses it too
    assert result.result.total_macs == 17_563_828_224


def test_efficientnet_b0() -> None:
    result = assert_faithful(lambda: models().efficientnet_b0(), (1, 3, 224, 224), (1, 3, 240, 240),
                             [(1, 3, 64, 64)])  # fmt: skip
    assert "StochasticDepth" in result.text


def test_densenet121() -> None:
    assert_faithful(lambda: models().densenet121(), (1, 3, 224, 224), (1, 3, 256, 256), [(1, 3, 64, 64)])


def test_segmentation_resizes_to_the_input_at_any_size() -> None:
    build = lambda: models().segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None)  # noqa: E731
    result = assert_faithful(build, (1, 3, 520, 520), (1, 3, 480, 640), [(1, 3, 64, 96)])
    assert "Output: out" in result.text
    assert "size: [H, W]" in result.text  # F.interpolate(size=x.shape[-2:]): the input's own size, not 520


def test_video_r3d_18() -> None:
    result = assert_faithful(lambda: models().video.r3d_18(), (1, 3, 16, 112, 112), (1, 3, 8, 128, 128),
                             [(1, 3, 4, 32, 32)])  # fmt: skip
    assert (
        "Conv3d: {out_channels: 64, kernel_size: [3, 7, 7], stride: [1, 2, 2], padding: [1, 3, 3], bias: false, "
        "module: stem.0}" in result.text
    )  # torchvision's Conv3DSimple: a Conv3d subclass, one layer


def test_fpn_backbone_names_its_outputs() -> None:
    backbones = models().detection.backbone_utils
    result = assert_faithful(lambda: backbones.resnet_fpn_backbone(backbone_name="resnet18", weights=None),
                             (1, 3, 800, 800), (1, 3, 800, 1216), [(1, 3, 64, 96)])  # fmt: skip
    assert list(result.result.outputs) == ["0", "1", "2", "3", "pool"]
    assert "FrozenBatchNorm2d" in result.text


MODEL_FILE = """
import torch
from torch import nn


class Spectral(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        x = self.conv(x)
        return torch.fft.rfft2(x).abs()


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = self.body(x)
        x = x.mean(dim=(2, 3))
        return self.head(x.view(x.size(0), -1))


class Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def build():
    return nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
"""


def line_of(code: str) -> int:
    """The line of MODEL_FILE that holds ``code``."""
    return next(number for number, line in enumerate(MODEL_FILE.splitlines(), 1) if code in line)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "nets.py"
    path.write_text(MODEL_FILE)
    return path


def test_an_op_no_stack_file_can_say_is_one_error_line(model_file: Path) -> None:
    run = CliRunner().invoke(main, ["import", f"{model_file}:Spectral", "--input", "1x3x16x16"])
    assert run.exit_code == 1
    assert run.stdout == ""
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "torch.fft.rfft2" in lines[0] or "fft_rfft2" in lines[0]
    assert f"nets.py, line {line_of('torch.fft.rfft2')}: return torch.fft.rfft2(x).abs()" in lines[0]
    assert "it would take" in lines[0]
    assert "Traceback" not in run.output


def test_data_dependent_control_flow_is_refused(model_file: Path) -> None:
    run = CliRunner().invoke(main, ["import", f"{model_file}:Branchy", "--input", "1x1x8x8"])
    assert run.exit_code == 1
    assert run.stderr.startswith("Error: control flow on a tensor's values (data-dependent)")
    assert f"nets.py, line {line_of('x.sum()')}: if x.sum() > 0:" in run.stderr
    assert len(run.stderr.splitlines()) == 1


def test_a_file_target_writes_a_stack_file(model_file: Path, tmp_path: Path) -> None:
    run = CliRunner().invoke(main, ["import", f"{model_file}:Net", "--input", "2x1x8x8"])
    assert run.exit_code == 0, run.output
    assert re.search(r"Dims: \[(\w+), _\]\n  - view: \[\1, -1\]", run.stdout)  # x.view(x.size(0), -1): the batch
    path = tmp_path / "net.yaml"
    path.write_text(run.stdout)
    for shape, expected in (("2x1x8x8", "2x10"), ("5x1x13x9", "5x10")):
        listed = CliRunner().invoke(main, ["stack", str(path), "--input", shape, "-q"])
        assert (listed.exit_code, listed.stdout) == (0, f"{expected}\n")
    function = CliRunner().invoke(main, ["import", f"{model_file}:build", "--input", "1x1x5x5", "-o",
                                         str(tmp_path / "b.yaml")])  # fmt: skip
    assert function.exit_code == 0 and function.stdout == ""
    assert "Flatten" in (tmp_path / "b.yaml").read_text()


def test_bad_targets_are_one_line() -> None:
    for target, words in (
        ("nowhere", "is not TARGET"),
        ("no_such_package_x:net", "cannot import it"),
        ("missing.py:Net", "no such file"),
        ("convcalc.errors:ConvcalcError", "not a torch.nn"),
    ):
        run = CliRunner().invoke(main, ["import", target, "--input", "1x3x8x8"])
        assert run.exit_code == 1, target
        assert run.stderr.startswith("Error: ") and words in run.stderr, run.stderr
        assert len(run.stderr.splitlines()) == 1


def test_the_module_is_not_changed_and_a_cpu_module_is_traced_on_meta() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    result = import_module(model, (1, 3, 9, 9))
    assert model.training
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(not value.is_meta for value in model.state_dict().values())
    assert result.result.output == (1, 4, 7, 7)


def test_importing_convcalc_and_the_help_never_load_torch() -> None:
    code = ("import sys\nfrom convcalc.cli import main\ntry:\n    main(['import', '--help'])\nexcept SystemExit:\n"
            "    pass\nimport convcalc\nprint('torch' in sys.modules)\n")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "False"
    assert "TARGET" in out.stdout


class _Small(nn.Module):
    """A random stack of layers and functional steps, to compare with torch at two sizes."""

    def __init__(self, plan: list[tuple[str, int]]) -> None:
        super().__init__()
        self.plan = plan
        self.layers = nn.ModuleList()
        channels = 3
        for kind, value in plan:
            if kind == "conv":
                self.layers.append(nn.Conv2d(channels, value, 3, padding=value % 2, stride=1 + value % 2))
                channels = value
            elif kind == "pool":
                self.layers.append(nn.MaxPool2d(2, ceil_mode=bool(value % 2)))
            else:
                self.layers.append(nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for (kind, value), layer in zip(self.plan, self.layers):
            if kind == "skip":
                x = torch.cat([x, torch.relu(x)], dim=1)
            elif kind == "resize":
                x = nn.functional.interpolate(x, size=(x.shape[-2] + value, x.shape[-1]), mode="nearest")
            else:
                x = layer(x)
        return x.flatten(1)


@settings(max_examples=scaled(15))
@given(st.lists(st.tuples(st.sampled_from(["conv", "pool", "skip", "resize"]), st.integers(1, 6)), max_size=5),
       st.integers(24, 40))  # fmt: skip
def test_small_models_follow_torch_at_other_sizes(plan: list[tuple[str, int]], size: int) -> None:
    model = _Small(plan)
    try:
        result = import_module(model, (1, 3, 32, 32))
    except ConvcalcError:
        assert zoo.meta_run(model, (1, 3, 32, 32)) is None  # refused only where torch refuses
        return
    assert zoo.check_counts(model, result, (1, 3, 32, 32), (2, 3, size, size + 3)) == []


def test_unused_modules_are_reported_not_counted() -> None:
    class WithAux(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.aux = nn.Linear(10, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    result = import_module(WithAux(), (1, 3, 8, 8))
    assert result.unused == (("aux", 110, 0),)
    assert "# aux: 110 parameters that forward never calls" in result.text
    assert result.result.total_params == 112


_BREAKERS = "\x1b\n\r\x07\x85\u2028\u202e\ufffe\uffff\ud800#:'\""
_NAMES = st.lists(st.one_of(st.characters(exclude_categories=()), st.sampled_from(_BREAKERS)), min_size=1).map("".join)
"""All of Unicode, lone surrogates included, with the characters that can break a line, a terminal or YAML drawn
often (a list joined: ``st.text`` folds such an alphabet into one that never draws U+FFFE or a surrogate)."""


@settings(max_examples=scaled(200))
@given(
    _NAMES.filter(lambda name: not re.search("[\x00\ud800-\udfff]", name)),  # type() refuses these: Python's rule
    st.one_of(st.none(), _NAMES),
    _NAMES.filter(lambda name: "." not in name and name != "conv" and not hasattr(nn.Module(), name)),
)
def test_any_class_name_title_or_module_name_stays_in_its_comment(
    class_name: str, title: str | None, unused_name: str
) -> None:
    """Names from anywhere in Unicode (newlines, ESC, U+FFFE, lone surrogates) are escaped in the header: the file
    still reads back (import_module runs it), and torch's own count of what forward calls is the file's.
    (Found by a hostile check: a class name holding ESC and a newline broke out of its comment.)"""

    def init(self: nn.Module) -> None:
        nn.Module.__init__(self)
        self.conv = nn.Conv2d(1, 2, 3)
        self.add_module(unused_name, nn.Linear(3, 4))

    cls = type(class_name, (nn.Module,), {"__init__": init, "forward": lambda self, x: self.conv(x)})
    model = cls()
    result = import_module(model, (1, 1, 8, 8), title=title)
    header = result.text.split("\ninput:")[0].splitlines()
    assert all(line.startswith("# ") for line in header)
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]",
                         result.text)  # fmt: skip
    assert result.result.total_params == sum(p.numel() for p in model.conv.parameters())
    unused = model.get_submodule(unused_name)
    assert len(result.unused) == 1 and result.unused[0][1] == sum(p.numel() for p in unused.parameters())


def test_refusal_is_a_convcalc_error() -> None:
    class Fourier(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.fft.rfft2(x).real

    with pytest.raises(ImportRefused, match=r"rfft2.*test_import\.py, line \d+: return torch\.fft\.rfft2"):
        import_module(Fourier(), (1, 3, 8, 8))
    assert issubclass(ImportRefused, ConvcalcError)


class _Shared(nn.Module):
    """A module's tensors used by two calls, in each way a model can: one module called twice, two modules tied to
    one weight, a module of buffers alone called twice; and a weightless ReLU called twice, which maps."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form
        self.a = nn.Conv2d(3, 3, 3, padding=1)
        self.b = nn.Conv2d(3, 3, 3, padding=1)
        if form in ("tied", "tied, one called"):
            self.b.weight = self.a.weight
        if form == "another name":
            self.c = self.a
        self.norm = nn.BatchNorm2d(3, affine=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.form == "twice":
            return self.a(self.a(x))
        if self.form == "tied":
            return self.b(self.a(x))
        if self.form == "buffers":
            return self.norm(self.norm(x))
        if self.form == "called and read":
            return self.a(x) + self.a.bias.view(1, 3, 1, 1)
        if self.form == "another name":
            return self.c(x)
        if self.form == "sizes read":  # a TF-same padding helper reads the kernel's size off the weight
            pad = self.a.weight.size(-1) // 2
            return self.a(nn.functional.pad(x, (pad - 1, pad - 1, pad - 1, pad - 1)))
        return self.act(self.a(self.act(x)))


@pytest.mark.parametrize("form, names", [
    ("twice", "the module a (Conv2d, 84 parameters) is called twice"),
    ("tied", "the modules a and b share weights"),
    ("buffers", "the module norm (BatchNorm2d, 7 buffer elements) is called twice"),
    ("called and read", "the module a and the tensor a.bias read in forward use the same tensor"),
])  # fmt: skip
def test_weights_used_by_two_calls_are_refused_by_name(form: str, names: str) -> None:
    """torch counts a shared tensor once; a stack file's layers each hold their own, so the import refuses, naming
    the module and both lines, rather than the count it used to give (the file's parameters against the module's)."""
    with pytest.raises(ImportRefused, match=re.escape(names) + r".*test_import\.py, line \d+: .*; then .*test_import"):
        import_module(_Shared(form), (1, 3, 8, 8))
    result = import_module(_Shared("relu"), (1, 3, 8, 8))  # a ReLU holds nothing: called twice, it maps
    assert result.result.total_params == sum(p.numel() for p in _Shared("relu").a.parameters())


@pytest.mark.parametrize("form", ["tied, one called", "another name", "sizes read"])
def test_a_tensor_under_two_names_but_used_once_maps(form: str) -> None:
    """``b.weight = a.weight`` with only ``a`` called: ``b``'s own bias is unused (its weight is ``a``'s, which the
    file holds); ``self.c = self.a``: ``c.*`` are other names of ``a.*``, left out of the state_dict to load; a
    weight whose sizes alone are read besides its module's call is held once (it was refused as shared)."""
    build = lambda: _Shared(form)  # noqa: E731
    result = import_module(build(), (1, 3, 8, 8))
    assert zoo.check_counts(build(), result, (1, 3, 8, 8), (2, 3, 5, 7)) == []
    if form == "another name":
        assert result.aliases == (("c.weight", "a.weight"), ("c.bias", "a.bias")) and result.unused == (
            ("b", 84, 0),
            ("norm", 0, 7),
        )
        assert "other names of tensors" in result.text
    elif form == "sizes read":
        assert result.unused == (("b", 84, 0), ("norm", 0, 7)) and result.aliases == ()
    else:
        assert result.unused == (("b", 3, 0), ("norm", 0, 7)) and result.aliases == ()
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 8, 8)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


class _Unused(nn.Module):
    """An op whose result forward drops: torch runs it all the same."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(4, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if self.form == "matmul":
            _ = y @ y.transpose(-2, -1)
        elif self.form == "module":
            self.head(y)
        elif self.form == "stack":
            torch.stack([y, y.transpose(2, 3)])
        elif self.form == "view":
            _ = y.view(-1)
        elif self.form == "written":  # an update of memory nothing reads is as unused
            z = y @ y.transpose(-2, -1)
            z.relu_()
        return y


@pytest.mark.parametrize("form, op", [("matmul", "the operator matmul"), ("module", "the module head"),
                                      ("stack", "torch.cat"), ("written", "the operator matmul")])  # fmt: skip
def test_an_op_whose_result_is_never_used_is_refused(form: str, op: str) -> None:
    """torch counts the MACs of an op whose result forward drops, and refuses an input it cannot take (a stack of a
    non-square map and its transpose): a file without the op counted fewer MACs than torch and took inputs torch
    refuses. A view left unused makes nothing and maps."""
    model = _Unused(form)
    assert zoo.meta_run(model, (1, 3, 8, 9)) is None or form != "stack"  # torch refuses the stack at 8x9
    with pytest.raises(ImportRefused, match=re.escape(op) + r".*never uses.*test_import\.py, line \d+"):
        import_module(model, (1, 3, 8, 8))
    result = import_module(_Unused("view"), (1, 3, 8, 8))
    assert zoo.check_counts(_Unused("view"), result, (1, 3, 8, 8), (2, 3, 9, 7)) == []


def test_swin_t_through_its_wrapped_attention() -> None:
    """torch.fx.wrap'ed shifted_window_attention traced through: F.linear on the module's weights, the relative
    position index as a Buffer, the mask torchvision builds with slice assignments as one Constant, the patch
    merging's x[..., 0::2, 0::2, :] as a reshape and a select. Its Python branches on the padded size; the file
    follows the branch taken at 224 and says so, so it refuses 256 (where torch takes the other branch)."""
    build = lambda: models().swin_t()  # noqa: E731
    model, result = imported(build, (1, 3, 224, 224))
    problems = zoo.check_counts(model, result, (1, 3, 224, 224), (1, 3, 256, 256))
    assert len(problems) == 1 and problems[0].startswith(zoo.PATH), problems
    assert "kind: shifted_window_mask" in result.text and "kind: relative_position_index" in result.text
    assert "Check: {condition:" in result.text and "line 160: if window_size[0] >= pad_H:" in result.text
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 128, 128)], run=True)
    assert problems == [] and "outputs equal at 1x3x128x128" in checked, (problems, checked)


def test_maxvit_t_reads_its_index_buffer_through_a_view() -> None:
    """MaxViT's (49, 49) relative position index, a buffer of its attention module (whose square partition is
    ``size``, not ``window_size``), read as ``index.view(-1)``; its grid swap is torch.swapaxes."""
    result = assert_faithful(lambda: models().maxvit_t(), (1, 3, 224, 224), (1, 3, 256, 256), [(1, 3, 224, 224)])
    assert "kind: relative_position_index, window_size: [7, 7], flat: false" in result.text
    assert "transpose: {dim0: -2, dim1: -3}" in result.text
    assert result.result.total_params == 30_919_624


def test_swin_v2_t_zeroes_its_key_bias_out_of_place() -> None:
    """Swin V2's ``qkv_bias.clone()`` with its key part zeroed in place, then ``F.linear`` with that bias: the
    bias put back together around the zeroed part, and ``x @ weight.T + bias``."""
    build = lambda: models().swin_v2_t()  # noqa: E731
    model, result = imported(build, (1, 3, 256, 256))
    assert zoo.check_counts(model, result, (1, 3, 256, 256), (2, 3, 224, 192)) == []
    assert "kind: relative_coords_table" in result.text and "mul: 0.0" in result.text
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 256, 256)], run=True)
    assert problems == [] and "outputs equal at 1x3x256x256" in checked, (problems, checked)


def test_mvit_v2_s_adds_its_relative_positions_into_a_slice() -> None:
    """MViT V2: ``attn[:, :, 1:, 1:] += rel_pos`` and ``x[:, :, 1:, :] += shortcut[:, :, 1:, :]`` in
    fx-wrapped helpers, the distances ``_add_rel_pos`` computes from ``torch.arange`` (one Constant each), and
    its einsums that keep an index in both operands."""
    build = lambda: models().video.mvit_v2_s()  # noqa: E731
    result = assert_faithful(build, (1, 3, 16, 224, 224), (1, 3, 8, 256, 256), [(1, 3, 16, 224, 224)])
    assert "kind: relative_distance" in result.text and "Concat" in result.text
    assert result.result.total_params == 34_537_744


def test_swin3d_t_with_its_window_tables_of_three_axes() -> None:
    """Swin3D: the (392, 392) relative position index of an 8x7x7 window, read as ``index[:n, :n].flatten()``, and
    the mask its forward builds from ``new_zeros`` and 27 slice assignments, one Constant that follows the padded
    map. Its window shrinks to the frames where there are no more than 8: the file follows the path taken."""
    build = lambda: models().video.swin3d_t()  # noqa: E731
    model, result = imported(build, (1, 3, 16, 224, 224))
    assert zoo.check_counts(model, result, (1, 3, 16, 224, 224), (2, 3, 16, 192, 160)) == []
    assert "window_size: [8, 7, 7], flat: false" in result.text and "size: [s7_1, s7_2, s7_3]" in result.text
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 16, 224, 224)], run=True)
    assert problems == [] and "outputs equal at 1x3x16x224x224" in checked, (problems, checked)


def test_a_size_turned_into_a_number_is_checked_at_other_sizes() -> None:
    """``int(x.shape[-1] * 1.5)`` is a Python number once traced: the file keeps it, and refuses a size where the
    model's code would compute another (torch gives 48 wide at 32; a file that kept 46 would be wrong). At 31 it
    is int(46.5): the check is on the truncated number."""

    class Scaled(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(x, size=(int(x.shape[-1] * 1.5), 8))

    result = import_module(Scaled(), (1, 2, 8, 31))
    assert result.result.output == (1, 2, 46, 8)
    assert 'Check: {condition: "(W * 1.5 >= 46) * (W * 1.5 < 47)"' in result.text
    from convcalc.fitting import run_network
    from convcalc.stackfile import load_stack

    shape, specs = load_stack(result.text, "scaled")
    assert run_network(shape, specs, (3, 2, 5, 31), suggest=False).output == (3, 2, 46, 8)  # the same number
    other = run_network(shape, specs, (1, 2, 8, 32), suggest=False)
    assert zoo.meta_run(Scaled(), (1, 2, 8, 32))[0].shape == (1, 2, 48, 8)
    assert other.error is not None and "turns this size into a Python number" in str(other.error)
    assert "keeps its value at 1x2x8x31, 46" in str(other.error)


class _PooledBySize(nn.Module):
    """A pool whose window is the map's own size, as CIFAR ResNets (``F.avg_pool2d(out, out.size()[3])``) and CBAM
    (``F.avg_pool2d(x, (x.size(2), x.size(3)), stride=...)``) write it; ``frozen``: the same through ``int()``,
    which does make a Python number."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        if self.form == "cifar":
            return nn.functional.avg_pool2d(out, out.size()[3]).view(out.size(0), -1)
        if self.form == "cbam":
            size = (out.size(2), out.size(3))
            return nn.functional.avg_pool2d(out, size, stride=size) + nn.functional.max_pool2d(out, size)
        return nn.functional.avg_pool2d(out, int(out.size(3)))


@pytest.mark.parametrize("form", ["cifar", "cbam", "frozen"])
def test_a_pool_over_the_maps_own_size_is_checked_never_wrong(form: str) -> None:
    """torch's argument parser reads a size's ``__index__`` before torch.fx records the call (and reads it
    differently by argument form), so a read of the size there cannot be told from ``int()`` or ``range(s)`` on the
    same line: the file keeps the traced value with a Check, which refuses other sizes by name. (A rule that took
    such reads for no freeze let ``range(s)`` on the same line through, and gave wrong shapes: a hostile round.)"""
    build = lambda: _PooledBySize(form)  # noqa: E731
    result = import_module(build(), (1, 3, 8, 8))
    assert "Check" in result.text
    problems = zoo.check_counts(build(), result, (1, 3, 8, 8), (2, 3, 12, 12))
    assert len(problems) == 1 and "turns this size into a Python number" in problems[0], problems
    checked = zoo.check_outputs(build, result, [(1, 3, 8, 8)], run=True)
    assert checked[0] == [] and "outputs equal" in checked[1], checked


class _SameLine(nn.Module):
    """A size frozen by ``range()`` or ``len([0] * s)`` beside a pool that takes it whole: a hostile round's cases."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.size(3)
        if self.form == "range":
            return nn.functional.avg_pool2d(x, (s, 1), stride=(1, len(range(s)) // 4))
        n = len([0] * s)
        return nn.functional.avg_pool2d(x, s).expand(1, 3, 1, n)


@pytest.mark.parametrize("form", ["range", "len"])
def test_a_size_frozen_beside_a_pool_never_gives_a_wrong_shape(form: str) -> None:
    build = lambda: _SameLine(form)  # noqa: E731
    try:
        result = import_module(build(), (1, 3, 8, 8))
    except ImportRefused:
        return  # refused by name: never wrong
    for second in ((1, 3, 16, 16), (1, 3, 8, 12)):
        problems = zoo.check_counts(build(), result, (1, 3, 8, 8), second)
        assert all("turns this size into a Python number" in problem for problem in problems), problems


def test_a_size_computed_with_an_op_the_expressions_lack_is_refused() -> None:
    """``abs(W - 7)`` and ``W >> 1`` have no expression: refused where they follow the input, never fixed silently
    (found by a hostile round: the file kept the traced number and was wrong at other widths)."""

    class Shifted(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * (x.shape[-1] >> 1)

    with pytest.raises(ImportRefused, match=r"rshift.* of a size"):
        import_module(Shifted(), (1, 2, 8, 32))


def test_a_bound_computed_negative_counts_from_the_end() -> None:
    """``x[..., -n:]`` with ``n = W // 4``: the start is W - n, and the file checks that it stays negative."""

    class Tail(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            n = x.shape[-1] // 4
            return x[..., -n:] * 2

    build = lambda: Tail()  # noqa: E731
    result = import_module(build(), (1, 2, 8, 12))
    assert zoo.check_counts(build(), result, (1, 2, 8, 12), (2, 2, 5, 20)) == []
    problems, checked = zoo.check_outputs(build, result, [(1, 2, 8, 12)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


def test_an_in_place_update_is_refused_not_lost() -> None:
    class Bias(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = x.view(x.size(0), -1)
            x[:, :, 1:] += 1.0  # changes y too: a file of steps would lose it
            return y * 2

    with pytest.raises(ImportRefused, match=r"the in-place op iadd .*line \d+: x\[:, :, 1:\] \+= 1\.0"):
        import_module(Bias(), (1, 3, 4, 4))


# ---------------------------------------------------------------------------------------------------------------
# In-place updates, einsum and repeat_interleave, against torch running the module itself


_INDEX_ITEMS = st.one_of(
    st.just(slice(None)),
    st.builds(slice, st.integers(0, 3), st.none()),
    st.builds(slice, st.integers(-3, -1), st.none()),
    st.builds(slice, st.none(), st.integers(-3, -1)),
    st.builds(lambda start, extra: slice(start, start + extra), st.integers(0, 2), st.integers(1, 3)),
)
"""Slices of a dim of 6 or more that are not empty at any larger size (the parts around them follow the size)."""


class _Update(nn.Module):
    """An in-place update of a tensor that is read again after it: as torch computes it, the file must too."""

    def __init__(self, form: str, index: tuple[Any, ...], viewed: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.form, self.index, self.viewed = form, index, viewed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        z = torch.tanh(y)
        seen = y.view(y.size(0), -1) if self.viewed else None  # a view taken before the update sees it
        if self.form == "iadd":
            y[self.index] += z[self.index]
        elif self.form == "assign":
            y[self.index] = z[self.index] * 3
        elif self.form == "zero":
            y[self.index].zero_()
        elif self.form == "mul_":
            y[self.index].mul_(-2.0)
        elif self.form == "clone":
            y = z.clone()
            y[self.index].sub_(1.0)
        else:  # a whole tensor, read again after its update
            y.add_(z)
        out = y * 2 + z
        return out + seen.view(out.shape) if seen is not None else out


@settings(max_examples=scaled(60))
@given(st.sampled_from(["iadd", "assign", "zero", "mul_", "clone", "add_"]),
       st.lists(_INDEX_ITEMS, min_size=1, max_size=3), st.booleans(), st.booleans())  # fmt: skip
def test_in_place_updates_compute_what_torch_computes(form: str, items: list[Any], ellipsis: bool,
                                                       viewed: bool) -> None:  # fmt: skip
    index = (..., *items) if ellipsis else (slice(None), *items)  # the batch of 1 is left whole
    build = lambda: _Update(form, index, viewed)  # noqa: E731
    model = build()
    seen = viewed and form != "clone"  # the view is of the tensor updated (not of the one a clone leaves behind)
    try:
        result = import_module(model, (1, 3, 6, 7))
    except ImportRefused as refused:
        assert seen, refused  # the one refusal: a view taken before the update, read after it, would see it
        assert "in-place op" in str(refused) or "assignment into a tensor" in str(refused), refused
        return
    assert not seen, "an update a view would see was written as steps"
    assert zoo.check_counts(model, result, (1, 3, 6, 7), (2, 3, 9, 11)) == []
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 6, 7), (2, 3, 9, 11)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


@settings(max_examples=scaled(80))
@given(st.sampled_from(["iadd", "assign", "zero", "mul_"]),
       st.lists(st.builds(slice, st.integers(-8, 8) | st.none(), st.integers(-8, 8) | st.none()), min_size=1,
                max_size=3))  # fmt: skip
def test_updates_of_any_slices_are_torchs_or_refused(form: str, items: list[slice]) -> None:
    """Any slices, empty and reversed ones included: the file computes what torch computes at the traced input, or
    the import is refused in one line; never a traceback, never another result."""
    build = lambda: _Update(form, (slice(None), *items), False)  # noqa: E731
    try:
        result = import_module(build(), (1, 3, 6, 7))
    except ImportRefused:
        return
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 6, 7)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


class _Aliased(nn.Module):
    """An update seen, in torch, through another name for the same memory."""

    def __init__(self, case: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 1)
        self.relu = nn.ReLU(inplace=True)
        self.case = case

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        case = self.case
        if case == "select":
            y[:, 0].mul_(3.0)
        elif case == "strided":
            y[:, ::2].mul_(3.0)
        elif case == "view of a view":
            w = y.view(-1)[:5]
            y.add_(1.0)
            return w * 1
        elif case == "chunk":
            p, q = y.chunk(2, 1)
            y.mul_(2.0)
            return p + q
        elif case == "type_as":
            y.type_as(x).mul_(2.0)
        elif case == "dropout":
            nn.functional.dropout(y, training=False).mul_(2.0)
        elif case == "relu inplace":
            nn.functional.relu(y, inplace=True)
        elif case == "relu module":
            self.relu(y)
        elif case == "out=":
            z = y * 1
            torch.add(y, 1.0, out=z)
            return z * 2
        elif case == "parameter":
            self.conv.bias.data.add_(1.0)
            return self.conv(x)
        elif case == "overlap":
            y[:, 1:] = y[:, :-1]
        elif case == "reversed":
            y[:, 1:3, 3:1] += 1.0
        elif case == "twice through one view":
            part = y[:, :, 1:]
            part.add_(1.0)
            part.mul_(2.0)
        elif case == "from the end":
            width = y.shape[-1]
            y[:, :, -width:] = torch.tanh(y[:, :, -width:])
        elif case == "*= on a view":
            v = y[:, 2:]
            v *= 2.0
        elif case == "+= on a second name":
            z = y
            z += 1.0
        elif case == "+= after a list holds it":
            held = [y]
            y += 1.0
            return held[0] * 1
        elif case == "+= after a flatten":
            flat = y.flatten(1)
            y += 1.0
            return flat * 1
        elif case == "+= on a chunk":
            a, b = y.chunk(2, 1)
            a += b
        elif case == "in place on a clone":
            a = y.clone()
            nn.functional.relu(a, inplace=True)
            return a * 2 + y
        elif case == "the result of an update of a view":
            part = y[:, :2].mul_(3.0)
            y.mul_(2.0)
            return part * 1
        elif case == "celu in place":
            nn.functional.celu(y, inplace=True)
        elif case == "aten add_":
            torch.ops.aten.add_.Tensor(y, y)
        elif case == "einsum view":
            torch.einsum("bchw->bhwc", y).mul_(2.0)
        elif case == "broadcast_tensors":
            _, b = torch.broadcast_tensors(y[:, :1], y)
            b.mul_(2.0)
        elif case == "view as a dtype":
            return y.view(torch.int32) * 1
        elif case == "stop from a size":
            y[:, :, 1 : y.shape[-2]] *= 2.0
        elif case == "stop past the end":
            return y[..., : y.shape[-2] + 3] * 1
        elif case == "pool to a size":
            return nn.functional.adaptive_avg_pool2d(y, y.shape[-2:]) * 1
        elif case == "pool to half the size":
            return nn.functional.adaptive_avg_pool2d(y, (y.shape[2] // 2, y.shape[3] // 2))
        elif case == "pool the whole map":
            return nn.functional.avg_pool2d(y, y.shape[2:])
        elif case == "a running sum":
            y[..., 1:] += y[..., :-1]
        elif case == "minus its own column":
            y -= y[:, :, :, :1]
        elif case == "the first chunk":
            return y.chunk(2, 1)[0]
        elif case == "split at a size":
            return y.split(y.shape[-1] // 2, -1)[0]
        elif case == "sizes of the second part":
            _, second = y.tensor_split(2, 3)
            return second * second.shape[3]
        elif case == "a split returned whole":
            return y.chunk(2, 1)
        elif case == "nested outputs":
            return y, (y + 1, y)
        elif case == "a slice of the parts":
            return torch.cat(y.chunk(2, 1)[::-1], 1)
        elif case == "requires_grad_":
            y[..., :2] *= 2.0
            y.requires_grad_()
        return y * 2


@pytest.mark.parametrize("case, outcome", [("select", "refused"), ("strided", "refused"),
                                           ("view of a view", "refused"), ("chunk", "refused"),
                                           ("type_as", "refused"), ("dropout", "refused"),
                                           ("relu inplace", "equal"), ("relu module", "equal"), ("out=", "refused"),
                                           ("parameter", "refused"), ("overlap", "refused"),
                                           ("reversed", "refused"), ("twice through one view", "equal"),
                                           ("from the end", "equal"), ("*= on a view", "equal"),
                                           ("+= on a second name", "equal"), ("+= after a list holds it", "equal"),
                                           ("+= after a flatten", "refused"), ("+= on a chunk", "refused"),
                                           ("in place on a clone", "equal"),
                                           ("the result of an update of a view", "refused"),
                                           ("celu in place", "refused"), ("aten add_", "refused"),
                                           ("einsum view", "refused"), ("broadcast_tensors", "refused"),
                                           ("view as a dtype", "refused"), ("stop from a size", "equal"),
                                           ("stop past the end", "equal"), ("pool to a size", "equal"),
                                           ("pool to half the size", "equal"), ("pool the whole map", "equal"),
                                           ("a running sum", "refused"), ("minus its own column", "refused"),
                                           ("the first chunk", "equal"), ("split at a size", "equal"),
                                           ("requires_grad_", "refused"), ("sizes of the second part", "equal"),
                                           ("a split returned whole", "equal"), ("nested outputs", "refused"),
                                           ("a slice of the parts", "refused")])  # fmt: skip
def test_an_update_seen_through_another_name_is_torchs_or_refused(case: str, outcome: str) -> None:
    """Found by a hostile round: each of these was written as steps that lost the update (or crashed)."""
    build = lambda: _Aliased(case)  # noqa: E731
    try:
        result = import_module(build(), (1, 3, 6, 7))
    except ImportRefused as refused:
        assert outcome == "refused", refused
        assert "\n" not in str(refused)
        return
    assert outcome == "equal", result.text
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 6, 7)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)
    if case in (
        "pool to a size",
        "stop past the end",
        "pool to half the size",
        "pool the whole map",
        "split at a size",
        "sizes of the second part",
    ):  # sizes that follow the input, in the file and in the emitted code
        assert zoo.check_counts(build(), result, (1, 3, 6, 7), (2, 3, 8, 13)) == []
        problems, checked = zoo.check_outputs(build, result, [(2, 3, 5, 9)], run=True)
        assert problems == [] and "outputs equal at 2x3x5x9" in checked, (problems, checked)
    if case == "from the end":  # traced where nothing is before the slice: at 8 rows there are 2, and it says so
        from convcalc.fitting import run_network
        from convcalc.stackfile import load_stack

        shape, specs = load_stack(result.text, "aliased")
        taller = run_network(shape, specs, (1, 3, 9, 7), suggest=False)
        assert taller.error is not None and "stays empty" in str(taller.error), taller.output
        assert zoo.meta_run(build(), (1, 3, 9, 7)) is not None


_EINSUM_SIZES = {"a": 2, "b": 3, "c": 4, "d": 5, "e": 2, "f": 3}


@st.composite
def _equations(draw: st.DrawFn) -> str:
    """Two-operand einsum equations, with any number of contracted, kept and shared indices (and so some that
    contract none or several, which convcalc refuses)."""
    labels = draw(st.permutations("abcdef"))
    count = draw(st.integers(2, 6))
    left, right, out = [], [], []
    for label in labels[:count]:
        where = draw(st.sampled_from(["both-kept", "both-contracted", "left", "right"]))
        if where != "right":
            left.append(label)
        if where != "left":
            right.append(label)
        if where != "both-contracted":
            out.append(label)
    if not left or not right:
        left.append("z"), right.append("z")
    left, right = draw(st.permutations(left)), draw(st.permutations(right))
    out = draw(st.permutations(out))
    return f"{''.join(left)},{''.join(right)}->{''.join(out)}"


class _Einsum(nn.Module):
    def __init__(self, equation: str) -> None:
        super().__init__()
        self.equation = equation
        right = equation.split(",")[1].split("->")[0]
        self.weight = nn.Parameter(torch.randn([_EINSUM_SIZES.get(label, 2) for label in right]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum(self.equation, x, self.weight)


@settings(max_examples=scaled(80))
@given(_equations())
def test_einsum_of_two_tensors_is_torchs(equation: str) -> None:
    left, rest = equation.split(",")
    right, out = rest.split("->")
    shape = tuple(_EINSUM_SIZES.get(label, 2) for label in left)
    build = lambda: _Einsum(equation)  # noqa: E731
    contracted = [label for label in left if label in right and label not in out]
    try:
        result = import_module(build(), shape)
    except ImportRefused as refused:
        assert len(contracted) != 1, (equation, refused)  # refused exactly where no matmul says it
        assert "torch.einsum" in str(refused) and "contract one index" in str(refused)
        return
    assert len(contracted) == 1, equation
    problems, checked = zoo.check_outputs(build, result, [shape], run=True)
    assert problems == [] and "outputs equal" in checked, (equation, problems, checked)
    assert result.result.total_macs == zoo.meta_run(build(), shape)[1]


class _Repeated(nn.Module):
    def __init__(self, repeats: int, dim: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(3, 4, 2))
        self.repeats, self.dim = repeats, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.repeat_interleave(self.table, self.repeats, dim=self.dim)


@settings(max_examples=scaled(15))
@given(st.integers(1, 4), st.integers(-3, 2))
def test_repeat_interleave_with_one_count_is_torchs(repeats: int, dim: int) -> None:
    build = lambda: _Repeated(repeats, dim)  # noqa: E731
    shape = [3, 4, 2]
    shape[dim] *= repeats
    result = import_module(build(), tuple(shape))
    problems, checked = zoo.check_outputs(build, result, [tuple(shape)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


class _Stacked(nn.Module):
    """``torch.stack`` of the input and convolutions of it along ``dim``, then a sum (or a mean) over ``over``."""

    def __init__(self, parts: list[str], dim: int, reduce: str, over: Any, keepdim: bool) -> None:
        super().__init__()
        self.parts, self.dim, self.reduce, self.over, self.keepdim = parts, dim, reduce, over, keepdim
        self.convs = nn.ModuleList(nn.Conv2d(2, 2, 3, padding=p) for p in range(len(parts)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tensors = [x if part == "x" else conv(x) for part, conv in zip(self.parts, self.convs)]
        stacked = torch.stack(tensors, self.dim) if self.dim is not None else torch.stack(tensors)
        if self.over is None:  # dim=None with keepdim: every dim, kept as dims of size 1
            return getattr(stacked, self.reduce)(dim=None, keepdim=True) if self.keepdim else \
                getattr(stacked, self.reduce)()  # fmt: skip
        return getattr(stacked, self.reduce)(self.over, keepdim=self.keepdim)


@settings(max_examples=scaled(60))
@given(st.lists(st.sampled_from(["x", "conv"]), min_size=1, max_size=3), st.one_of(st.none(), st.integers(-6, 5)),
       st.sampled_from(["sum", "mean", "amax"]), st.one_of(st.none(), st.integers(-6, 5), st.lists(st.integers(-6, 5),
       max_size=3)), st.booleans(), st.integers(5, 9))  # fmt: skip
def test_stack_and_sum_are_torchs_at_any_size(parts: list[str], dim: int | None, reduce: str, over: Any,
                                              keepdim: bool, size: int) -> None:  # fmt: skip
    """torch.stack is written as the parts unsqueezed and concatenated; x.sum and x.amax as the language's. Where a
    dim is out of range or names an axis twice, the import refuses where torch refuses, and the file follows torch
    at another size; the emitted module takes the state_dict and computes the same values."""
    build = lambda: _Stacked(parts, dim, reduce, over, keepdim)  # noqa: E731
    shape = (1, 2, 6, 7)
    if zoo.meta_run(build(), shape) is None:
        with pytest.raises(ImportRefused):
            import_module(build(), shape)
        return
    result = import_module(build(), shape)
    assert zoo.check_counts(build(), result, shape, (2, 2, size, size + 2)) == []
    problems, checked = zoo.check_outputs(build, result, [(2, 2, size, size - 1)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


class _Tiled(nn.Module):
    """``x.repeat(...)`` (or a learned token's) with counts that are numbers or sizes read from the input."""

    def __init__(self, counts: list[Any], token: bool, as_list: bool) -> None:
        super().__init__()
        self.counts, self.as_list = counts, as_list
        self.token = nn.Parameter(torch.randn(1, 2, 1)) if token else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        counts = [x.shape[int(count[1])] if isinstance(count, str) else count for count in self.counts]
        tensor = self.token if self.token is not None else x
        return tensor.repeat(counts) if self.as_list else tensor.repeat(*counts)


@settings(max_examples=scaled(60))
@given(st.lists(st.one_of(st.integers(1, 3), st.sampled_from([-1, 0, "s0", "s1", "s2"])), min_size=1, max_size=5),
       st.booleans(), st.booleans(), st.integers(1, 4))  # fmt: skip
def test_repeat_follows_the_sizes_it_reads(counts: list[Any], token: bool, as_list: bool, size: int) -> None:
    """Counts read from the input stay expressions: the file tiles as torch does at another size too, and refuses
    where torch refuses (too few counts, a negative one)."""
    build = lambda: _Tiled(counts, token, as_list)  # noqa: E731
    shape = (2, 3, 4)
    reached = zoo.meta_run(build(), shape)
    if reached is None or 0 in reached[0].shape:
        with pytest.raises(ConvcalcError):  # refused, or stopped at an empty tensor as convcalc does
            import_module(build(), shape)
        return
    result = import_module(build(), shape)
    second = (size, 3, size + 1)
    theirs = zoo.meta_run(build(), second)
    if theirs is None or 0 not in theirs[0].shape:
        assert zoo.check_counts(build(), result, shape, second) == []
    problems, checked = zoo.check_outputs(build, result, [shape], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


class _CropTo(nn.Module):
    """A skip cropped to the size of the tensor it joins (the original U-Net's crop), at the corner or the centre."""

    def __init__(self, centre: bool, join: str) -> None:
        super().__init__()
        self.centre, self.join = centre, join
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        u = self.b(a)
        h, w = u.shape[2], u.shape[3]
        top, left = ((a.shape[2] - h) // 2, (a.shape[3] - w) // 2) if self.centre else (0, 0)
        cropped = a[:, :, top : top + h, left : left + w]
        return torch.cat([cropped, u], 1) if self.join == "cat" else cropped + u


@pytest.mark.parametrize("centre", [False, True])
@pytest.mark.parametrize("join", ["add", "cat"])
def test_a_crop_to_another_branchs_size_is_written_flat(centre: bool, join: str) -> None:
    """One branch reads the other's sizes: as a block the file read a size not yet bound (it could not run at its
    own input); written flat, with Save and From, it follows torch at another size and computes its outputs."""
    build = lambda: _CropTo(centre, join)  # noqa: E731
    result = import_module(build(), (1, 3, 16, 16))
    assert zoo.check_counts(build(), result, (1, 3, 16, 16), (2, 3, 11, 14)) == []
    problems, checked = zoo.check_outputs(build, result, [(1, 3, 13, 10)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


class _StaticSame(nn.Conv2d):
    """efficientnet-pytorch's Conv2dStaticSamePadding: a Conv2d that owns its padding module and convolves with its
    own weight functionally."""

    def __init__(self) -> None:
        super().__init__(3, 4, 3, stride=2, bias=False)
        self.static_padding = nn.ZeroPad2d((0, 1, 0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.conv2d(self.static_padding(x), self.weight, self.bias, self.stride, self.padding,
                                          self.dilation, self.groups)  # fmt: skip


class _NormedLinear(nn.Linear):
    """A Linear that owns a LayerNorm with weights, applied before its own weight."""

    def __init__(self) -> None:
        super().__init__(4, 2)
        self.norm = nn.LayerNorm(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(self.norm(x), self.weight, self.bias)


class _OwnChildren(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = _StaticSame()
        self.head = _NormedLinear()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(x).mean((2, 3)))


def test_a_layer_whose_child_comes_first_keeps_it_in_the_emitted_module() -> None:
    """The child's step (stem.static_padding, head.norm) comes before its parent's layer (stem, head): the emitted
    module placed the child, then replaced the placeholder holding it with the layer, so its forward failed
    (no static_padding) or the state_dict did not load (head.norm.* unexpected)."""
    result = import_module(_OwnChildren(), (1, 3, 9, 9))
    assert zoo.check_counts(_OwnChildren(), result, (1, 3, 9, 9), (2, 3, 12, 7)) == []
    problems, checked = zoo.check_outputs(_OwnChildren, result, [(1, 3, 9, 9)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)


def test_a_functional_layer_on_the_models_own_tensors_says_its_keys_differ() -> None:
    class Top(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(4, 3, 3, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.conv2d(x, self.weight, padding=1)

    result = import_module(Top(), (1, 3, 8, 8))
    assert zoo.check_counts(Top(), result, (1, 3, 8, 8), (2, 3, 5, 9)) == []
    assert any("top-level tensors (weight)" in note and "not the original's keys" in note for note in result.notes)


class _ShapedAs(nn.Module):
    """The original SE block's ``y.expand_as(x)``, and ``view_as``/``reshape_as``."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.how == "expand_as":
            return x * torch.sigmoid(self.fc(x.mean((2, 3)))).view(x.size(0), -1, 1, 1).expand_as(x)
        flat = x.flatten(1)
        return x + (flat.view_as(x) if self.how == "view_as" else flat.reshape_as(x.transpose(2, 3)))


@pytest.mark.parametrize("how", ["expand_as", "view_as", "reshape_as"])
def test_a_shape_taken_from_another_tensor_follows_it(how: str) -> None:
    """``y.expand_as(x)`` is ``y.expand(x.size())``: the sizes stay expressions over x's, so the file follows torch
    at another size (and refuses where it does: reshape_as a transposed non-square map cannot be added)."""
    build = lambda: _ShapedAs(how)  # noqa: E731
    result = import_module(build(), (1, 3, 8, 8))
    for second in ((2, 3, 5, 5), (2, 3, 5, 7)):
        assert zoo.check_counts(build(), result, (1, 3, 8, 8), second) == [], second
    problems, checked = zoo.check_outputs(build, result, [(2, 3, 6, 6)], run=True)
    assert problems == [] and "outputs equal" in checked, (problems, checked)
