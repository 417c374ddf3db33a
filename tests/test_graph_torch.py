"""Tensor methods, learned tensors and attention against real torch, given its own inputs.

Hypothesis draws chains of tensor methods (valid and invalid: dims out of
range, permutations that repeat a dim, sizes that do not multiply up, a view of
a permuted tensor) with elementwise layers and Linear in between, runs them as
plain torch code on a real CPU tensor, whose strides are torch's own, and
requires convcalc to agree on every step's shape and on the first step torch
refuses. MultiheadAttention and TransformerEncoderLayer are compared with
torch's modules (validity, shape, params, and MACs as FlopCounterMode counts
them on the meta device); the learned tensors with the torch code ViT and
ConvNeXt write for them.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch
from hypothesis import event, example, given, settings
from hypothesis import strategies as st
from torch import nn
from torch._prims_common import suggest_memory_format
from torch.utils.flop_counter import FlopCounterMode

from convcalc.errors import StackSpecError
from convcalc.network import run_stack
from convcalc.spec import resolve
from tests.profiles import scaled
from tests.torch_oracle import TORCH_REJECTS

REJECTS = (*TORCH_REJECTS, AssertionError)


def ours(shape: tuple[int, ...], items: list[tuple[str, dict[str, Any]]]) -> tuple[list[tuple[int, ...]], int | None]:
    """convcalc's output shape of each step that runs, and the 1-based step that fails (None: all run). A step
    refused at load (an argument torch refuses whatever the input) counts as failing where it stands; the steps
    before it are then taken to run as torch ran them, as convcalc says nothing of them."""
    try:
        result = run_stack(shape, resolve((name, args, None) for name, args in items))
    except StackSpecError as error:
        return ["at load"], error.position or 1  # type: ignore[list-item]
    return [row.output for row in result.rows], None if result.error is None else result.error.index


def same(mine: tuple[list[Any], int | None], theirs: tuple[list[Any], int | None]) -> bool:
    outputs, failing = mine
    if failing is not None and outputs[:1] == ["at load"]:
        # convcalc refuses the file at that step, before running anything: torch must refuse that step or an earlier
        return theirs[1] is not None and theirs[1] <= failing
    return mine == theirs


# --- tensor methods -------------------------------------------------------------------------------------------


def torch_method(x: torch.Tensor, name: str, args: dict[str, Any], saved: dict[str, Any] | None = None) -> torch.Tensor:
    """The step as torch code writes it (the test's own reading of torch's methods, not convcalc's); ``saved``
    holds the tensors Save names, for Add and Mul."""
    if name == "permute":
        return x.permute(*args["dims"])
    if name == "transpose":
        return x.transpose(args["dim0"], args["dim1"])
    if name in ("reshape", "view"):
        return getattr(x, name)(*args["shape"])
    if name == "flatten":
        return x.flatten(args.get("start_dim", 0), args.get("end_dim", -1))
    if name == "squeeze":
        return x.squeeze(tuple(args["dim"]) if isinstance(args.get("dim"), list) else args["dim"]) if "dim" in args \
            else x.squeeze()  # fmt: skip
    if name == "unsqueeze":
        return x.unsqueeze(args["dim"])
    if name == "repeat":
        return x.repeat(*args["repeats"])
    if name == "select":
        return x.select(args["dim"], args["index"])
    if name in (
        "mean",
        "sum",
        "amax",
    ):  # only the keywords given, as --emit writes them: x.mean(keepdim=True) is a TypeError
        given = {key: tuple(value) if isinstance(value, list) else value for key, value in args.items()}
        return getattr(x, name)(**given)
    if name == "ReLU":
        return torch.relu(x)  # elementwise: keeps the input's strides
    if name == "Linear":
        return nn.LazyLinear(args["out_features"])(x)
    if name == "Flatten":
        return nn.Flatten(args["start_dim"], args["end_dim"])(x)
    if name == "MaxPool1d":
        return nn.MaxPool1d(args["kernel_size"])(x)
    if name == "GLU":
        return nn.GLU(args["dim"])(x)
    if name in ("Softmax", "LogSigmoid", "PReLU", "ZeroPad1d", "RReLU", "Identity"):
        return getattr(nn, name)(**args)(x)
    if name == "MultiheadAttention":  # self-attention, as convcalc reads it
        attention = nn.MultiheadAttention(x.shape[-1] if x.dim() else 1, args["num_heads"],
                                          batch_first=args["batch_first"])  # fmt: skip
        return attention(x, x, x, need_weights=False)[0]
    if name == "Save":
        assert saved is not None
        saved[args["name"]] = x
        return x
    if name in ("Add", "Mul"):
        assert saved is not None
        return x + saved[args["with"]] if name == "Add" else x * saved[args["with"]]
    if name == "Unflatten":
        return nn.Unflatten(args["dim"], args["unflattened_size"])(x)
    raise AssertionError(name)


METHODS = ("permute", "permute", "transpose", "reshape", "view", "view", "flatten", "squeeze", "unsqueeze", "select",
           "mean", "sum", "amax", "repeat", "ReLU", "Linear", "Flatten", "MaxPool1d", "GLU", "Unflatten", "Softmax",
           "LogSigmoid", "PReLU", "ZeroPad1d", "RReLU", "Save", "Add", "Mul", "MultiheadAttention")  # fmt: skip


@st.composite
def method(draw: st.DrawFn, rank: int, names: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
    dim = st.integers(-rank - 2, rank + 1)
    name = draw(st.sampled_from(names or METHODS))
    if name == "permute":
        order = draw(st.permutations(list(range(rank))))
        if draw(st.integers(0, 5)) == 0:  # a wrong one: too short, a dim twice, out of range
            order = draw(st.lists(dim, max_size=rank + 1))
        return name, {"dims": [d - rank if draw(st.booleans()) else d for d in order]}
    if name == "transpose":
        return name, {"dim0": draw(dim), "dim1": draw(dim)}
    if name in ("reshape", "view"):
        sizes = draw(st.lists(st.sampled_from([1, 2, 3, 4, 6, -1]), min_size=1, max_size=4))
        return name, {"shape": sizes}
    if name == "flatten":
        return name, {"start_dim": draw(dim), "end_dim": draw(dim)}
    if name == "squeeze":
        return name, draw(st.sampled_from([{}, {"dim": draw(dim)}, {"dim": [draw(dim), draw(dim)]}]))
    if name == "unsqueeze":
        return name, {"dim": draw(dim)}
    if name == "select":
        return name, {"dim": draw(dim), "index": draw(st.integers(-3, 3))}
    if name == "repeat":  # too few counts now and then; a count of 0 is left out (convcalc stops at empty tensors)
        return name, {"repeats": draw(st.lists(st.integers(-1, 3).filter(bool), min_size=max(rank - 1, 1),
                                               max_size=rank + 1))}  # fmt: skip
    if name in (
        "mean",
        "sum",
        "amax",
    ):  # keepdim alone is a TypeError (but amax's) in torch; an empty list of dims reduces every dim
        args: dict[str, Any] = {"keepdim": draw(st.booleans())} if draw(st.integers(0, 2)) else {}
        if draw(st.integers(0, 3)):
            args["dim"] = draw(st.one_of(dim, st.lists(dim, max_size=3), st.none()))
        return name, args
    if name == "Linear":
        return name, {"out_features": draw(st.integers(1, 4))}
    if name == "Flatten":  # the layer, which merges axes as the method does; the receptive fields must follow
        return name, {"start_dim": draw(dim), "end_dim": draw(dim)}
    if name == "MaxPool1d":  # a window on the last axis, after the axes have moved
        return name, {"kernel_size": draw(st.integers(1, 2))}
    if name == "GLU":  # halves a dim; a 0-D tensor (after mean) has none
        return name, {"dim": draw(dim)}
    if name == "Unflatten":
        return name, {"dim": draw(dim), "unflattened_size": draw(st.lists(st.sampled_from([1, 2, -1]), max_size=3))}
    if name == "Softmax":  # writes a contiguous tensor whatever its input's layout
        return name, {"dim": draw(dim)}
    if name == "ZeroPad1d":  # a pad that adds nothing keeps the layout; one that adds writes a contiguous tensor
        return name, {"padding": draw(st.lists(st.integers(-1, 1), min_size=2, max_size=2))}
    if name in ("Save", "Add", "Mul"):  # an Add or Mul with the tensor saved last (or a refusal, if none was)
        return name, {"name" if name == "Save" else "with": "s"}
    if name == "MultiheadAttention":  # batch_first hands back a transposed view
        return name, {"num_heads": 1, "batch_first": draw(st.booleans())}
    return name, {}


@st.composite
def method_chains(draw: st.DrawFn) -> tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]:
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    items = []
    rank = len(shape)
    for _ in range(draw(st.integers(1, 6))):
        item = draw(method(rank))
        items.append(item)
        rank = max(
            1, rank + draw(st.integers(-1, 1))
        )  # the rank drifts as methods change it; wrong ranks are cases too
    return shape, items


@settings(max_examples=scaled(1500), deadline=None)
@given(case=method_chains())
@example(case=((1, 2), [("mean", {"keepdim": False}), ("GLU", {"dim": 0})]))  # 0-D tensors: torch refuses
@example(case=((1, 2), [("mean", {"keepdim": False}), ("Unflatten", {"dim": 0, "unflattened_size": [1]})]))
def test_tensor_methods_match_torch_step_by_step(
    case: tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]],
) -> None:
    check_chain(*case)


LAYOUT = ("permute", "transpose", "select", "MultiheadAttention")
KEEPS_OR_NOT = ("Identity", "ReLU", "Softmax", "LogSigmoid", "PReLU", "ZeroPad1d", "RReLU", "GLU", "Flatten",
                "Unflatten", "Linear", "flatten", "reshape", "Save", "Add", "Mul")  # fmt: skip


@st.composite
def layout_chains(draw: st.DrawFn) -> tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]]:
    """A tensor laid out otherwise than contiguous (permute, transpose, select, attention with batch_first), a
    Save of it, one to three layers that keep a layout or write a contiguous tensor, and a view that needs one."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    items = [draw(method(len(shape), LAYOUT)), ("Save", {"name": "s"})]
    rank = len(shape)
    for _ in range(draw(st.integers(1, 3))):
        items.append(draw(method(rank, KEEPS_OR_NOT)))
    items.append(("view", {"shape": draw(st.sampled_from([[-1], [-1, 1], [1, -1], [2, -1]]))}))
    return shape, items


@settings(max_examples=scaled(800), deadline=None)
@given(case=layout_chains())
def test_views_after_layers_fail_where_torch_fails(
    case: tuple[tuple[int, ...], list[tuple[str, dict[str, Any]]]],
) -> None:
    """Whether a view can merge dims depends on how each layer before it lays its result out (TensorIterator's
    rule for elementwise layers and joins, a new contiguous tensor for softmax, a view for flatten)."""
    check_chain(*case)


KEEP_CHANNELS_LAST = ("ZeroPad1d", "MaxPool1d")
"""Layers here that keep a channels-last input channels-last: convcalc takes their result as contiguous, a
deviation docs/stack.md states (torch picks the layout with ``suggest_memory_format``, which calls a (1, 2, 1, 1)
tensor of strides (2, 1, 2, 2) channels-last although it is contiguous too)."""


def check_chain(shape: tuple[int, ...], items: list[tuple[str, dict[str, Any]]]) -> None:
    """convcalc agrees with torch, run on a real CPU tensor, on every step's shape and on the first step torch
    refuses."""
    theirs: list[tuple[int, ...]] = []
    failing = None
    x = torch.zeros(shape)
    saved: dict[str, Any] = {}
    for index, (name, args) in enumerate(items, start=1):
        if name in KEEP_CHANNELS_LAST and x.dim() in (4, 5) and suggest_memory_format(x) != torch.contiguous_format:
            event("a channels-last input to a layer that keeps it: not followed, as docs/stack.md says")
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                x = torch_method(x, name, args, saved)
        except (*REJECTS, KeyError):  # KeyError: an Add of a name not saved, which convcalc refuses too
            failing = index
            break
        if 0 in x.shape or x.dim() > 64:
            failing = index
            break
        theirs.append(tuple(x.shape))
    event("torch runs them all" if failing is None else "torch refuses a step")
    if any(name == "view" for name, _ in items[: failing or len(items)]):
        event("a view ran or was refused")
    assert same(ours(shape, items), (theirs, failing)), (ours(shape, items), theirs, failing, shape, items)


def test_view_of_a_permuted_tensor_is_refused_as_torch_refuses_it() -> None:
    items = [("permute", {"dims": [0, 2, 3, 1]}), ("ReLU", {}), ("view", {"shape": [1, -1]})]
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        torch_method(torch_method(torch_method(torch.zeros(1, 3, 4, 4), *items[0]), *items[1]), *items[2])
    assert ours((1, 3, 4, 4), items) == ([(1, 4, 4, 3), (1, 4, 4, 3)], 3)
    assert ours((1, 3, 4, 4), [*items[:2], ("reshape", {"shape": [1, -1]})]) == (
        [(1, 4, 4, 3), (1, 4, 4, 3), (1, 48)],
        None,
    )


# --- attention ------------------------------------------------------------------------------------------------


DROPOUT = st.one_of(st.just(0.0), st.floats(0, 1), st.floats(), st.sampled_from([-1e-45, 5e-324, 1.0, 2.0, -0.0]))
"""Any float: eval mode never drops, so MultiheadAttention takes any; TransformerEncoderLayer's nn.Dropout checks."""


@st.composite
def attention(draw: st.DrawFn) -> tuple[str, dict[str, Any], tuple[int, ...]]:
    embed = draw(st.integers(1, 8))
    batch_first = draw(st.booleans())
    rank = draw(st.sampled_from([2, 3, 3, 3, 1, 4]))
    last = embed if draw(st.integers(0, 6)) else draw(st.integers(1, 9))
    shape = (*draw(st.lists(st.integers(1, 4), min_size=rank - 1, max_size=rank - 1)), last)
    if draw(st.booleans()):
        args: dict[str, Any] = {"num_heads": draw(st.sampled_from([1, 2, 3, 4, 0])), "batch_first": batch_first,
                                "bias": draw(st.booleans()), "add_bias_kv": draw(st.booleans()),
                                "add_zero_attn": draw(st.booleans()), "dropout": draw(DROPOUT)}  # fmt: skip
        for name in ("kdim", "vdim"):
            if draw(st.integers(0, 4)) == 0:
                args[name] = draw(st.sampled_from([embed, embed + 1]))
        return "MultiheadAttention", args, shape
    args = {"nhead": draw(st.sampled_from([1, 2, 3, 4])), "dim_feedforward": draw(st.integers(1, 16)),
            "dropout": draw(DROPOUT), "activation": draw(st.sampled_from(["relu", "gelu"])), "batch_first": batch_first,
            "norm_first": draw(st.booleans()), "bias": draw(st.booleans())}  # fmt: skip
    return "TransformerEncoderLayer", args, shape


def run_attention(name: str, args: dict[str, Any], x: torch.Tensor) -> torch.Tensor:
    embed = x.shape[-1]
    if name == "MultiheadAttention":
        module = nn.MultiheadAttention(embed, **args)
        module.eval()
        return module(x, x, x, need_weights=False)[0]
    module = nn.TransformerEncoderLayer(embed, **args)
    module.eval()
    return module(x)


@settings(max_examples=scaled(400), deadline=None)
@given(case=attention())
@example(case=("MultiheadAttention", {"num_heads": 1, "dropout": 2.0}, (3, 4)))  # found by exploration: eval mode
@example(case=("TransformerEncoderLayer", {"nhead": 1, "dim_feedforward": 4, "dropout": 2.0}, (3, 4)))
def test_attention_matches_torch(case: tuple[str, dict[str, Any], tuple[int, ...]]) -> None:
    """Validity, shape and params against the module on the CPU; MACs against FlopCounterMode on the meta device
    (on the CPU in eval mode, torch's fused path hides the projections from the counter)."""
    name, args, shape = case
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            out = run_attention(name, args, torch.zeros(shape))
    except REJECTS:
        event("torch refuses")
        assert ours(shape, [(name, args)])[1] == 1, (name, args, shape)
        return
    event("torch runs it")
    outputs, failing = ours(shape, [(name, args)])
    assert (outputs, failing) == ([tuple(out.shape)], None), (name, args, shape)
    result = run_stack(shape, resolve([(name, args, None)]))
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counter = FlopCounterMode(display=False)
        module_args = dict(args)
        x = torch.empty(shape)
        if name == "MultiheadAttention":
            module = nn.MultiheadAttention(shape[-1], **module_args).eval()  # meta tensors take no fused path
            with counter:
                module(x, x, x, need_weights=False)
        else:
            module = nn.TransformerEncoderLayer(shape[-1], **module_args).eval()
            with counter:
                module(x)
    assert result.rows[0].params == sum(p.numel() for p in module.parameters())
    assert result.rows[0].macs == counter.get_total_flops() // 2


# --- learned tensors, against the torch code ViT and ConvNeXt write -------------------------------------------


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=5).map(tuple))
@settings(max_examples=scaled(200), deadline=None)
def test_class_token_and_position_embedding_as_vit_writes_them(shape: tuple[int, ...]) -> None:
    x = torch.zeros(shape)
    try:  # torchvision's VisionTransformer.forward: class_token (1, 1, E), expanded, concatenated on dim 1
        token = nn.Parameter(torch.zeros(1, 1, shape[-1]))
        with_token = torch.cat([token.expand(shape[0], -1, -1), x], dim=1)
        expected: tuple[list[tuple[int, ...]], int | None] = ([tuple(with_token.shape)], None)
    except REJECTS:
        expected = ([], 1)
    assert ours(shape, [("ClassToken", {})]) == expected
    if expected[1] is None:
        assert run_stack(shape, resolve([("ClassToken", {}, None)])).total_params == token.numel()
    position = nn.Parameter(torch.zeros(1, *shape[1:]))  # Encoder.pos_embedding (1, seq_length, hidden_dim)
    added = x + position
    assert ours(shape, [("PositionEmbedding", {})]) == ([tuple(added.shape)], None)
    assert run_stack(shape, resolve([("PositionEmbedding", {}, None)])).total_params == position.numel()


@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=5).map(tuple), dim=st.integers(-6, 5))
@settings(max_examples=scaled(200), deadline=None)
def test_layer_scale_as_convnext_writes_it(shape: tuple[int, ...], dim: int) -> None:
    """ConvNeXt: layer_scale = Parameter(ones(dim, 1, 1) * 1e-6), times the block's output."""
    x = torch.zeros(shape)
    try:
        channels = shape[dim]
        gamma = nn.Parameter(torch.ones(channels, *([1] * (len(shape) - dim % len(shape) - 1))) * 1e-6)
        out = gamma * x
    except REJECTS:
        assert ours(shape, [("LayerScale", {"dim": dim})])[1] == 1
        return
    assert ours(shape, [("LayerScale", {"dim": dim})]) == ([tuple(out.shape)], None)
    assert run_stack(shape, resolve([("LayerScale", {"dim": dim}, None)])).total_params == gamma.numel()


@pytest.mark.parametrize("rank", [1, 2, 4])
@pytest.mark.parametrize("dim", range(-6, 6))
@pytest.mark.parametrize("reduce", [False, True])
def test_a_parallel_of_one_branch_is_checked_as_torch_cat_checks_it(rank: int, dim: int, reduce: bool) -> None:
    """torch.cat checks its dim and refuses 0-D tensors even when given one tensor (found by a hostile test)."""
    shape = (1, 2, 3, 4)[:rank]
    branch = [("mean", {}, None)] if reduce else []
    x = torch.zeros(shape).mean() if reduce else torch.zeros(shape)
    try:
        theirs: tuple[int, ...] | None = tuple(torch.cat([x], dim=dim).shape)
    except (IndexError, RuntimeError):
        theirs = None
    items = [("Parallel", {"join": "Concat", "dim": dim, "branches": [branch]})]
    result = run_stack(shape, resolve((name, args, None) for name, args in items))
    assert (result.output if result.error is None else None) == theirs


@st.composite
def strided_tensors(draw: st.DrawFn, rank: int | None = None) -> torch.Tensor:
    """A tensor with torch's own strides after a permute, a select, a step slice or none: dense or not."""
    rank = draw(st.integers(1, 5)) if rank is None else rank
    x = torch.zeros(draw(st.lists(st.integers(1, 4), min_size=rank + 1, max_size=rank + 1)))
    how = draw(st.sampled_from(["select", "slice", "none"]))
    if how == "select":
        x = x.select(draw(st.integers(0, rank)), 0)
    elif how == "slice":
        x = x.narrow(rank, 0, 1).squeeze(rank) if draw(st.booleans()) else x[..., ::2].flatten(-2) if rank else x
        x = x.reshape(x.shape[:rank]) if x.dim() > rank else x
    else:
        x = x.select(rank, 0)
    return x.permute(draw(st.permutations(range(x.dim()))))


@settings(max_examples=scaled(600), deadline=None)
@given(data=st.data())
def test_elementwise_results_are_laid_out_as_torch_lays_them_out(data: st.DataObject) -> None:
    """convcalc's TensorIterator rule against torch's: the strides of relu(a) and of a + b, broadcasting included,
    for tensors with the strides torch gives them (dims of size 1, whose stride means nothing, left out)."""
    from convcalc.tensor_ops import elementwise_strides

    a = data.draw(strided_tensors())
    b = data.draw(st.one_of(st.none(), strided_tensors(a.dim()), strided_tensors()))
    if b is None:
        out = torch.relu(a)
        ours = elementwise_strides(tuple(a.shape), [(tuple(a.shape), a.stride())])
    else:
        try:
            out = a + b
        except RuntimeError:
            return  # shapes that do not broadcast: the join's own test covers them
        ours = elementwise_strides(tuple(out.shape), [(tuple(a.shape), a.stride()), (tuple(b.shape), b.stride())])
    keep = [d for d in range(out.dim()) if out.shape[d] != 1]
    assert [ours[d] for d in keep] == [out.stride()[d] for d in keep], (a.shape, a.stride(), b is None or b.stride())
