"""Checks of tests/reference_nets.py: the plain-torch copies of seven torchvision models and their tools."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from tests.reference_nets import (
    PARAMS,
    REFERENCES,
    EncoderBlock,
    copy_state,
    macs,
    randomize,
    state_in_use_order,
)

NAMES = sorted(REFERENCES)

# FlopCounterMode FLOPs // 2 on the meta device at 1x3x224x224. These equal the counts of torchvision 0.29.1's own
# models (built from its Python sources, its C extension left out) measured the same way.
MACS: dict[str, int] = {
    "efficientnet_b0": 385_814_752,
    "mobilenet_v3_large": 216_589_760,
    "googlenet": 1_498_376_192,
    "squeezenet1_1": 349_151_936,
    "convnext_tiny": 4_455_531_264,
    "densenet121": 2_834_161_664,
    "vit_b_16": 17_563_828_224,
}

# (sum, sum of squares) of the eval-mode logits of model.double() after randomize(model, 1), for
# x = torch.randn(1, 3, 224, 224, dtype=float64, generator seeded 0). Computed with torchvision 0.29.1's own
# models (float64) loaded with the references' randomized state_dicts (strict=True); the references gave
# bit-identical logits.
GOLDEN: dict[str, tuple[float, float]] = {
    "efficientnet_b0": (-13.874282967125122, 23.878649364921774),
    "mobilenet_v3_large": (0.943699467253464, 18.290891957088196),
    "googlenet": (0.557402985174086, 33.39598420369424),
    "squeezenet1_1": (52.56709720705034, 8.96708853275682),
    "convnext_tiny": (39.121225909723684, 949.2885039644119),
    "densenet121": (6.41691967285508, 40.912042264365525),
    "vit_b_16": (-1.5583555182551603, 1103.9946811301897),
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Runs this file's small (batch 1) CPU forwards on one thread, restoring the thread count afterwards.

    On a shared two-core machine, two OpenMP threads competing with other processes made a float64 MobileNetV3
    forward take seconds to tens of seconds instead of 0.06 s.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return REFERENCES[name]().eval()


def test_the_seven_references() -> None:
    assert (
        set(REFERENCES)
        == set(PARAMS)
        == {
            "efficientnet_b0",
            "mobilenet_v3_large",
            "googlenet",
            "squeezenet1_1",
            "convnext_tiny",
            "densenet121",
            "vit_b_16",
        }
    )


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_parameter_count(name: str) -> None:
    model = _meta_model(name)
    with torch.no_grad():
        y = model(torch.empty(1, 3, 224, 224, device="meta"))
    assert y.shape == (1, 1000)
    assert sum(p.numel() for p in model.parameters()) == PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_state_in_use_order_lists_every_state_tensor_once(name: str) -> None:
    model = _meta_model(name)
    order = state_in_use_order(model, torch.empty(1, 3, 224, 224, device="meta"))
    state = model.state_dict(keep_vars=True)
    assert len(order) == len(state)
    assert {id(t) for t in order} == {id(t) for t in state.values()}
    assert not model.training  # still in eval mode


def test_state_in_use_order_follows_the_computation() -> None:
    # ConvNeXt's block scales its output by layer_scale after the convolution, norm and linears that precede it
    # in the forward pass, although layer_scale comes first in the state_dict.
    model = _meta_model("convnext_tiny")
    order = state_in_use_order(model, torch.empty(1, 3, 224, 224, device="meta"))
    block = model.features[1][0]
    used = [id(t) for t in order]
    assert used.index(id(block.block[0].weight)) < used.index(id(block.layer_scale))
    assert used.index(id(block.block[5].bias)) < used.index(id(block.layer_scale))
    # BatchNorm uses its running statistics before its affine parameters; num_batches_tracked, never used in
    # eval mode, comes last.
    model = _meta_model("squeezenet1_1")  # no norms: state_dict order is the order of use
    order = state_in_use_order(model, torch.empty(1, 3, 224, 224, device="meta"))
    assert [id(t) for t in order] == [id(t) for t in model.state_dict(keep_vars=True).values()]
    model = _meta_model("densenet121")
    order = state_in_use_order(model, torch.empty(1, 3, 224, 224, device="meta"))
    norm0 = model.features.norm0
    assert [id(t) for t in order[1:5]] == [
        id(norm0.running_mean),
        id(norm0.running_var),
        id(norm0.weight),
        id(norm0.bias),
    ]
    tracked = [m.num_batches_tracked for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(tracked) == 121
    assert [id(t) for t in order[-len(tracked) :]] == [id(t) for t in tracked]


@pytest.mark.parametrize("name", NAMES)
def test_macs(name: str) -> None:
    assert macs(_meta_model(name)) == MACS[name]


def test_vit_b_16_macs_count_the_attention() -> None:
    # On the CPU under no_grad in eval mode, the fused attention fast path would hide the QKV projections and the
    # attention products from FlopCounterMode; on the meta device they are counted.
    assert MACS["vit_b_16"] == 17_563_828_224


@pytest.mark.parametrize("name", NAMES)
def test_golden_logits(name: str) -> None:
    model = REFERENCES[name]().double().eval()
    randomize(model, 1)
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 1000)
    total, squares = GOLDEN[name]
    assert y.sum().item() == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert y.square().sum().item() == pytest.approx(squares, rel=1e-9)


def test_macs_leaves_a_cpu_model_alone() -> None:
    model = REFERENCES["squeezenet1_1"]().train()
    assert macs(model) == macs(_meta_model("squeezenet1_1")) > 0
    assert model.training
    assert all(p.device.type == "cpu" for p in model.parameters())


def test_randomize_is_deterministic() -> None:
    a, b, c = (REFERENCES["mobilenet_v3_large"]() for _ in range(3))
    randomize(a, 1)
    randomize(b, 1)
    randomize(c, 2)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not any(torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert all((t > 0).all() for k, t in sa.items() if k.endswith("running_var"))


def test_state_in_use_order_of_a_vit_block() -> None:
    # nn.MultiheadAttention reads in_proj_bias.dtype before in_proj_weight.dtype in its fast-path checks; such
    # metadata reads are not uses: the weights come in the order of F.multi_head_attention_forward's computation.
    block = EncoderBlock(4, 64, 128)
    order = state_in_use_order(block, torch.randn(2, 10, 64))
    names = {id(t): k for k, t in block.state_dict(keep_vars=True).items()}
    assert [names[id(t)] for t in order] == [
        "ln_1.weight",
        "ln_1.bias",
        "self_attention.in_proj_weight",
        "self_attention.in_proj_bias",
        "self_attention.out_proj.weight",
        "self_attention.out_proj.bias",
        "ln_2.weight",
        "ln_2.bias",
        "mlp.0.weight",
        "mlp.0.bias",
        "mlp.3.weight",
        "mlp.3.bias",
    ]


def _output(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_large"])
def test_copy_state_transfers_the_weights(name: str) -> None:
    source = REFERENCES[name]().double()
    target = REFERENCES[name]().double()
    randomize(source, 1)
    randomize(target, 2)
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    before = _output(target, x)
    expected = _output(source, x)
    assert torch.isfinite(expected).all()
    assert not torch.allclose(before, expected)
    copy_state(source, target, x)
    torch.testing.assert_close(_output(target, x), expected, rtol=1e-12, atol=1e-12)


D_MODEL, NHEAD, DIM_FF = 64, 4, 128


def _torch_encoder_layer(dim_feedforward: int = DIM_FF) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(
        D_MODEL,
        NHEAD,
        dim_feedforward,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=1e-6,
        batch_first=True,
        norm_first=True,
    )


def test_copy_state_between_vit_block_and_transformer_encoder_layer() -> None:
    block = EncoderBlock(NHEAD, D_MODEL, DIM_FF).double()
    layer = _torch_encoder_layer().double()
    # The two state_dicts list their tensors in different orders (the attention first in the torch layer):
    # pairing them by state_dict order would fail.
    shapes_block = [t.shape for t in block.state_dict().values()]
    shapes_layer = [t.shape for t in layer.state_dict().values()]
    assert shapes_block != shapes_layer
    randomize(block, 1)
    randomize(layer, 2)
    x = torch.randn(2, 10, D_MODEL, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = _output(block, x)
    assert not torch.allclose(_output(layer, x), expected)
    copy_state(block, layer, x)
    torch.testing.assert_close(_output(layer, x), expected, rtol=1e-10, atol=1e-10)
    with torch.enable_grad():  # and on the ordinary (non-fused) path
        torch.testing.assert_close(layer(x), block(x), rtol=1e-10, atol=1e-10)


def test_copy_state_refuses_mismatched_models() -> None:
    block = EncoderBlock(NHEAD, D_MODEL, DIM_FF)
    x = torch.randn(2, 10, D_MODEL)
    with pytest.raises(AssertionError, match=r"#8 .*\(128, 64\).*\(256, 64\)"):
        copy_state(block, _torch_encoder_layer(dim_feedforward=256), x)
    mlp_only = nn.Sequential(nn.LayerNorm(D_MODEL), nn.Linear(D_MODEL, DIM_FF), nn.GELU(), nn.Linear(DIM_FF, D_MODEL))
    with pytest.raises(AssertionError, match="source has 12 state tensors, target has 6"):
        copy_state(block, mlp_only, x)
