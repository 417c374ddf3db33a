"""The example networks written from torchvision's code, against torchvision itself (tests/torchvision_models.py).

For each: convcalc's output shapes (every named output), parameters, buffers and
MACs equal torchvision's model's (MACs: FlopCounterMode FLOPs / 2 on the meta
device) at the file's own input and at another size torch takes, where every
size in the file follows the input; and the module ``--emit torch`` writes,
given torchvision's weights (paired by first use), computes torchvision's
outputs, at a small input (the weights do not depend on the size).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from convcalc.emit import emit_torch
from convcalc.network import StackResult, run_stack
from convcalc.stackfile import load_stack
from tests.reference_nets import copy_state, randomize
from tests.torchvision_models import models

ROOT = Path(__file__).parent.parent


def _fpn_backbone() -> nn.Module:
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    return resnet_fpn_backbone(backbone_name="resnet50", weights=None, norm_layer=nn.BatchNorm2d)


EXAMPLES: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], tuple[int, ...]]] = {
    # name: (torchvision's builder, another input size torch takes, a small input for the outputs)
    "swin_t": (lambda: models().swin_t(), (2, 3, 160, 192), (1, 3, 96, 112)),
    "swin_v2_t": (lambda: models().swin_v2_t(), (2, 3, 160, 192), (1, 3, 96, 112)),
    "deeplabv3_mobilenet_v3_large": (
        lambda: models().segmentation.deeplabv3_mobilenet_v3_large(weights=None, weights_backbone=None),
        (1, 3, 480, 640),
        (1, 3, 96, 128),
    ),
    "fasterrcnn_resnet50_fpn_backbone": (_fpn_backbone, (1, 3, 800, 1216), (1, 3, 96, 160)),
    # MaxViT's partitions take 221 to 224 only (torch and the file refuse the rest alike)
    "maxvit_t": (lambda: models().maxvit_t(), (2, 3, 221, 221), (1, 3, 224, 224)),
    # MViT's grid is the one it was built for (8x56x56 tokens): 15 or 16 frames of 221 to 224 pixels a side
    "mvit_v2_s": (lambda: models().video.mvit_v2_s(), (2, 3, 15, 221, 223), (1, 3, 15, 221, 221)),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """One thread: on this 2-core machine, shared with other work, two threads made these forwards many times
    slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _load(name: str) -> tuple[tuple[int, ...], Any, StackResult]:
    path = ROOT / "examples" / f"{name}.yaml"
    shape, specs = load_stack(path.read_text(), path.name)
    built = run_stack(shape, specs)
    assert built.error is None, built.error
    return shape, specs, built


def _outputs(out: Any) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in out.items()} if isinstance(out, dict) else {"": tuple(out.shape)}


def _ours(result: StackResult) -> dict[str, tuple[int, ...]]:
    return {key: node.output for key, node in result.outputs.items()} if result.outputs else {"": result.output}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_counts_and_shapes_are_torchvisions_at_two_sizes(name: str) -> None:
    build, other, _ = EXAMPLES[name]
    shape, specs, built = _load(name)
    with torch.device("meta"):
        reference = build().eval()
    assert built.total_params == sum(p.numel() for p in reference.parameters())
    assert built.total_buffers == sum(b.numel() for b in reference.buffers())
    for size in (shape, other):
        result = run_stack(size, specs, inferred=built.inferred)
        assert result.error is None, result.error
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = reference(torch.empty(size, device="meta"))
        assert _ours(result) == _outputs(out), size
        assert result.total_macs == counter.get_total_flops() // 2, size


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_emitted_module_computes_what_torchvision_computes(name: str) -> None:
    build, _, small = EXAMPLES[name]
    _, specs, built = _load(name)
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(emit_torch(specs, built, name), f"{name}.py", "exec"), namespace)
    emitted = namespace["Network"]().double().eval()
    reference = build().double().eval()
    randomize(reference, seed=7)
    x = torch.randn(small, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    copy_state(reference, emitted, x)  # pairs the tensors in the order a forward pass first uses them
    with torch.no_grad():
        expected, got = reference(x), emitted(x)
    assert _outputs(got) == _outputs(expected)
    pairs = expected.items() if isinstance(expected, dict) else [("", expected)]
    for key, value in pairs:
        other = got[key] if isinstance(got, dict) else got
        assert torch.allclose(other, value, rtol=1e-9, atol=1e-9), (key, (other - value).abs().max())
