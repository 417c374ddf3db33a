"""Shape rules of what a network does that is no ``torch.nn`` layer: tensor methods, learned tensors, attention.

- Tensor methods, under torch's names: ``permute``, ``transpose``, ``reshape``,
  ``view``, ``flatten``, ``squeeze``, ``unsqueeze``, ``select``, ``mean``, ``sum``.
  ``view`` fails where torch's does: convcalc follows the strides of a tensor
  through tensor methods and elementwise layers (see :func:`view_strides`).
- Learned tensors, with their parameters counted: ``ClassToken`` (ViT's class
  token, prepended along the sequence axis), ``PositionEmbedding`` (a learned
  additive embedding the input's shape), ``LayerScale`` (ConvNeXt's per-channel
  ``gamma * x``).
- Attention: ``nn.MultiheadAttention`` as self-attention and
  ``nn.TransformerEncoderLayer``, with MACs counted as torch's FlopCounterMode
  counts them (the projections, the attention scores and the weighted sum).

Each function takes the incoming shape and the resolved arguments and returns
a :class:`~convcalc.step.Step`, raising InvalidLayerError with torch's rule
in words where torch would refuse. The catalogue declares their arguments.

>>> from convcalc.catalog import LAYERS
>>> LAYERS["permute"].apply((1, 3, 8, 8), {"dims": (0, 2, 3, 1)}).output
(1, 8, 8, 3)
>>> step = LAYERS["MultiheadAttention"].apply((1, 197, 768), {**LAYERS["MultiheadAttention"].arguments,
...                                            "embed_dim": 768, "num_heads": 12, "batch_first": True})
>>> step.params, step.macs
(2362368, 524391936)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from convcalc.errors import InvalidLayerError
from convcalc.step import Step, wrap_dim

__all__ = ["contiguous", "elementwise_strides", "view_strides"]

Shape = tuple[int, ...]
Strides = tuple[int, ...]


def _step(**fields: Any) -> Step:
    return Step(**fields)


def _fail(message: str) -> InvalidLayerError:
    return InvalidLayerError(message)


def _text(shape: Shape) -> str:
    return "(" + ", ".join(str(n) for n in shape) + ")"


def contiguous(shape: Shape) -> Strides:
    """The strides of a contiguous tensor of ``shape``.

    >>> contiguous((2, 3, 4))
    (12, 4, 1)
    """
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _dense_in_order(shape: Shape, strides: Strides, order: Sequence[int]) -> bool:
    """Whether the dims, fastest first in ``order``, are packed with no gap (dims of size 1 take any stride)."""
    expected = 1
    for d in order:
        if shape[d] != 1:
            if strides[d] != expected:
                return False
            expected *= shape[d]
    return True


def _channels_last(shape: Shape) -> tuple[int, ...] | None:
    """The dims fastest first in torch's channels-last format (C, W, H, N; 3-D: C, W, H, D, N), for 4-D and 5-D."""
    return (1, 3, 2, 0) if len(shape) == 4 else (1, 4, 3, 2, 0) if len(shape) == 5 else None


def elementwise_strides(shape: Shape, operands: Sequence[tuple[Shape, Strides]]) -> Strides:
    """The strides of an elementwise result of ``shape`` (an activation, ``a + b``, ``a * b``) from its inputs', as
    torch's TensorIterator lays it out (ATen/TensorIterator.cpp): contiguous where every input is, channels-last
    where every input is, an input's own strides where all are dense alike, else dense with the dims ordered as
    the inputs' strides order them (the first input deciding), broadcast dims not counting.

    >>> elementwise_strides((2, 4), [((2, 4), (12, 1))])  # x[:, 0] of a (2, 3, 4) tensor, then ReLU: a new tensor
    (4, 1)
    >>> elementwise_strides((2, 4, 3), [((2, 4, 3), (12, 1, 4)), ((2, 4, 3), (12, 3, 1))])  # transposed + not
    (12, 1, 4)
    """
    rank = len(shape)
    if all(size == shape for size, _ in operands):
        order = _channels_last(shape)
        if all(_dense_in_order(shape, strides, range(rank - 1, -1, -1)) for _, strides in operands):
            return contiguous(shape)
        if order is not None and all(_dense_in_order(shape, strides, order) for _, strides in operands):
            out, step = [0] * rank, 1
            for d in order:
                out[d], step = step, step * max(shape[d], 1)
            return tuple(out)
        last = operands[-1][1]
        if all(strides == last for _, strides in operands) and _dense_in_order(
            shape, last, sorted(range(rank), key=lambda d: last[d])
        ):
            return last
    expanded = [
        tuple(0 if i < rank - len(size) or size[i - rank + len(size)] != shape[i] else strides[i - rank + len(size)]
              for i in range(rank))
        for size, strides in operands
    ]  # fmt: skip

    def should_swap(d0: int, d1: int) -> int:
        for strides in expanded:
            s0, s1 = strides[d0], strides[d1]
            if s0 == 0 or s1 == 0:
                continue
            if s0 != s1:
                return -1 if s0 < s1 else 1
            if shape[d0] > shape[d1]:
                return 1
        return 0

    perm = list(range(rank - 1, -1, -1))  # fastest first; an insertion sort that leaves ambiguous pairs alone
    for i in range(1, rank):
        moving = i
        for before in range(i - 1, -1, -1):
            comparison = should_swap(perm[before], perm[moving])
            if comparison > 0:
                perm[before], perm[moving] = perm[moving], perm[before]
                moving = before
            elif comparison < 0:
                break
    out, step = [0] * rank, 1
    for d in perm:
        out[d], step = step, step * shape[d]
    return tuple(out)


def view_strides(old: Shape, strides: Strides, new: Shape) -> Strides | None:
    """The strides of ``view(new)`` of a tensor (``old``, ``strides``), or None where torch cannot make the view.

    torch's ``computeStride`` (ATen/TensorUtils.cpp): the new shape must split
    and merge only runs of dimensions that are contiguous among themselves.

    >>> view_strides((2, 3, 4), (12, 4, 1), (6, 4))
    (4, 1)
    >>> view_strides((2, 4, 3), (12, 1, 4), (8, 3)) is None  # a transposed tensor: merging 2 and 4 needs a copy
    True
    """
    if not old:
        return contiguous(new)
    if math.prod(old) == 0:
        return contiguous(new)
    result = [0] * len(new)
    view_d = len(new) - 1
    chunk_base = strides[-1]
    tensor_numel, view_numel = 1, 1
    for tensor_d in range(len(old) - 1, -1, -1):
        tensor_numel *= old[tensor_d]
        if tensor_d == 0 or (old[tensor_d - 1] != 1 and strides[tensor_d - 1] != tensor_numel * chunk_base):
            while view_d >= 0 and (view_numel < tensor_numel or new[view_d] == 1):
                result[view_d] = view_numel * chunk_base
                view_numel *= new[view_d]
                view_d -= 1
            if view_numel != tensor_numel:
                return None
            if tensor_d > 0:
                chunk_base = strides[tensor_d - 1]
                tensor_numel, view_numel = 1, 1
    if view_d != -1:
        return None
    return tuple(result)


def _new_shape(shape: Shape, sizes: Sequence[int], name: str) -> Shape:
    """The shape ``reshape``/``view`` make: one -1 at most, inferred; the rest sizes of the same element count."""
    sizes = list(sizes)
    if sizes.count(-1) > 1:
        raise _fail(f"{name} takes one -1 at most, got {sizes}")
    if any(n < -1 for n in sizes):
        raise _fail(f"{name} sizes must be at least 0 (or one -1), got {sizes}")
    total = math.prod(shape)
    known = math.prod(n for n in sizes if n != -1)
    if -1 in sizes:
        if known == 0 or total % known:
            raise _fail(f"{name} {sizes} does not fit the {total} elements of {_text(shape)}")
        sizes[sizes.index(-1)] = total // known
    elif known != total:
        raise _fail(f"{name} {sizes} has {known} elements, but the input {_text(shape)} has {total}")
    return tuple(sizes)


def _merged(shape: Shape, out: Shape) -> tuple[int | None, ...]:
    """Where each dim of ``shape`` goes in ``out`` after a reshape. The dims are matched in runs whose sizes
    multiply alike: a dim kept as it is goes to its place, dims merged into one go to that one (each keeps what it
    followed: a flattened patch grid still has its receptive field per axis), and a dim split into several goes
    nowhere (None: what it followed is lost).

    >>> _merged((1, 768, 14, 14), (1, 768, 196)), _merged((1, 196, 768), (1, 14, 14, 768))
    ((0, 1, 2, 2), (0, None, 3))
    """
    dims: list[int | None] = [None] * len(shape)
    i = j = 0
    while i < len(shape) and j < len(out):
        first_in, first_out = i, j
        left, right = shape[i], out[j]
        i, j = i + 1, j + 1
        while left != right and (i < len(shape) or j < len(out)):
            if (left < right and i < len(shape)) or j == len(out):
                left, i = left * shape[i], i + 1
            else:
                right, j = right * out[j], j + 1
        real = [d for d in range(first_out, j) if out[d] != 1] or [first_out]
        if len(real) == 1:  # kept, or merged into one
            for d in range(first_in, i):
                dims[d] = real[0]
    for d in range(i, len(shape)):  # dims of size 1 left over merge into the last
        dims[d] = len(out) - 1 if out else None
    return tuple(dims)


def reshape(shape: Shape, args: dict[str, Any]) -> Step:
    out = _new_shape(shape, args["shape"], "reshape")

    def restride(strides: Strides) -> Strides:
        return view_strides(shape, strides, out) or contiguous(out)  # a copy where no view is possible

    return _step(output=out, dims=_merged(shape, out), restride=restride)


def view(shape: Shape, args: dict[str, Any]) -> Step:
    out = _new_shape(shape, args["shape"], "view")

    def restride(strides: Strides) -> Strides:
        result = view_strides(shape, strides, out)
        if result is None:
            raise _fail(
                f"view {list(out)} needs the input {_text(shape)} to be contiguous where it merges or splits dims, "
                f"and it is not (strides {list(strides)}, after a permute or transpose): use reshape, which copies"
            )
        return result

    return _step(output=out, dims=_merged(shape, out), restride=restride)


def flatten(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.flatten(start_dim, end_dim)``, whose start_dim defaults to 0 (nn.Flatten's to 1)."""
    start = wrap_dim(args["start_dim"], len(shape), "start_dim")
    end = wrap_dim(args["end_dim"], len(shape), "end_dim")
    if start > end:
        raise _fail(f"start_dim {args['start_dim']} comes after end_dim {args['end_dim']}")
    out = (1,) if not shape else (*shape[:start], math.prod(shape[start : end + 1]), *shape[end + 1 :])
    return reshape(shape, {"shape": out})


def permute(shape: Shape, args: dict[str, Any]) -> Step:
    given = list(args["dims"])
    if len(given) != len(shape):
        raise _fail(f"permute needs one dim per dimension of the input, {len(shape)}, got {len(given)}: {given}")
    dims = [wrap_dim(d, len(shape), "permute's dim") for d in given]
    if len(set(dims)) != len(dims):
        raise _fail(f"permute names a dim twice: {given}")
    where = tuple(dims.index(d) for d in range(len(shape)))
    return _step(
        output=tuple(shape[d] for d in dims),
        dims=where,
        restride=lambda strides: tuple(strides[d] for d in dims),
    )


def transpose(shape: Shape, args: dict[str, Any]) -> Step:
    a, b = wrap_dim(args["dim0"], len(shape), "dim0"), wrap_dim(args["dim1"], len(shape), "dim1")
    if not shape:
        return _step(output=shape, dims=())
    order = list(range(len(shape)))
    order[a], order[b] = order[b], order[a]
    return permute(shape, {"dims": order})


def squeeze(shape: Shape, args: dict[str, Any]) -> Step:
    dim = args["dim"]
    if dim is None:
        drop = {d for d, n in enumerate(shape) if n == 1}
    else:
        given = dim if isinstance(dim, (tuple, list)) else (dim,)
        wrapped = [wrap_dim(d, len(shape)) for d in given]
        if len(set(wrapped)) != len(wrapped):
            raise _fail(f"squeeze names a dim twice: {list(given)}")
        drop = {d for d in wrapped if shape and shape[d] == 1}
    kept = [d for d in range(len(shape)) if d not in drop]
    where = tuple(kept.index(d) if d in kept else None for d in range(len(shape)))
    return _step(
        output=tuple(shape[d] for d in kept),
        dims=where,
        restride=lambda strides: tuple(strides[d] for d in kept),
    )


def unsqueeze(shape: Shape, args: dict[str, Any]) -> Step:
    d = wrap_dim(args["dim"], len(shape), extra=1)
    out = (*shape[:d], 1, *shape[d:])

    def restride(strides: Strides) -> Strides:
        inserted = strides[d] * shape[d] if d < len(shape) else 1
        return (*strides[:d], inserted, *strides[d:])

    return _step(output=out, dims=tuple(i if i < d else i + 1 for i in range(len(shape))), restride=restride)


def expand(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.expand(*sizes)``: a view with dims of size 1 repeated (stride 0), and new dims in front; -1 keeps a
    dim's size. MViT's ``class_token.expand(x.size(0), -1)``."""
    sizes = list(args["shape"])
    extra = len(sizes) - len(shape)
    if extra < 0:
        raise _fail(f"expand {sizes} gives {len(sizes)} sizes for the {len(shape)} dims of {_text(shape)}: give at "
                    "least one per dim")  # fmt: skip
    out = []
    for i, size in enumerate(sizes):
        if i < extra:
            if size < 0:
                raise _fail(f"expand {sizes}: a new leading dim ({i}) needs a size of at least 0, got {size}")
            out.append(size)
            continue
        old = shape[i - extra]
        if size == -1:
            out.append(old)
        elif size != old and (old != 1 or size < 0):
            raise _fail(f"expand {sizes}: dim {i} of size {old} can only stay {old} (or be -1); only a dim of "
                        "size 1 expands")  # fmt: skip
        else:
            out.append(size)

    def restride(strides: Strides) -> Strides:
        kept = (0 if old == 1 and new != 1 else stride
                for old, new, stride in zip(shape, out[extra:], strides))  # fmt: skip
        return (*(0,) * extra, *kept)

    return _step(output=tuple(out), dims=tuple(i + extra for i in range(len(shape))), restride=restride)


def repeat(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.repeat(*repeats)``: a new tensor, the input tiled ``repeats[i]`` times along each dim, with new dims in
    front where more repeats than dims are given (a user ViT's ``cls_token.repeat(B, 1, 1)``). Each output unit
    reads one input unit, so the receptive fields are the input's, as after ``roll``."""
    repeats = list(args["repeats"])
    extra = len(repeats) - len(shape)
    if extra < 0:
        raise _fail(f"repeat {repeats} gives {len(repeats)} counts for the {len(shape)} dims of {_text(shape)}: "
                    "give at least one per dim")  # fmt: skip
    out = tuple(size * count for size, count in zip((1,) * extra + tuple(shape), repeats))
    if any(size < 0 for size in out):
        raise _fail(f"repeat {repeats} of {_text(shape)} gives a negative size: {list(out)}")
    if math.prod(out) >= 2**63:
        raise _fail(f"repeat {repeats} of {_text(shape)} gives {math.prod(out):,} elements, more than torch counts "
                    "(2**63 - 1)")  # fmt: skip
    return _step(output=out, dims=tuple(i + extra for i in range(len(shape))))


def select(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.select(dim, index)``: ``x[:, 0]`` is ``select: [1, 0]``."""
    if not shape:
        raise _fail("select() cannot be applied to a 0-dim tensor")
    d = wrap_dim(args["dim"], len(shape))
    index = args["index"]
    if not -shape[d] <= index < shape[d]:
        raise _fail(f"index {index} is out of range for dim {args['dim']} of size {shape[d]}: use "
                    f"{-shape[d]}..{shape[d] - 1}")  # fmt: skip
    where = tuple(None if i == d else i if i < d else i - 1 for i in range(len(shape)))
    return _step(
        output=(*shape[:d], *shape[d + 1 :]),
        dims=where,
        restride=lambda strides: (*strides[:d], *strides[d + 1 :]),
    )


def mean(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.mean(dim, keepdim)``: over the dims given (every dim for null)."""
    return _reduce("mean", shape, args)


def sum_(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.sum(dim, keepdim)``: the same shapes as a mean (``sum_``: Python's ``sum`` keeps its name)."""
    return _reduce("sum", shape, args)


def amax(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.amax(dim, keepdim)``: the largest value over the dims given (every dim for none), the shapes of a mean's;
    ``keepdim`` needs no ``dim`` here (CBAM's channel pooling, a max over dim 1)."""
    return _reduce("amax", shape, args)


def _reduce(name: str, shape: Shape, args: dict[str, Any]) -> Step:
    dim, keep = args["dim"], args["keepdim"]
    if dim is None or dim in ([], ()):  # torch reduces over every dim for an empty list too
        reduced = set(range(len(shape)))
    else:
        given = dim if isinstance(dim, (tuple, list)) else (dim,)
        wrapped = [wrap_dim(d, len(shape)) for d in given]
        if len(set(wrapped)) != len(wrapped):
            raise _fail(f"{name} names a dim twice: {list(given)}")
        reduced = set(wrapped)
    if keep:
        out = tuple(1 if d in reduced else n for d, n in enumerate(shape))
        where: tuple[int | None, ...] = tuple(None if d in reduced else d for d in range(len(shape)))
    else:
        kept = [d for d in range(len(shape)) if d not in reduced]
        out = tuple(shape[d] for d in kept)
        where = tuple(kept.index(d) if d in kept else None for d in range(len(shape)))
    return _step(output=out, dims=where)


# --- learned tensors ------------------------------------------------------------------------------------------


def broadcast_shapes(left: Shape, right: Shape) -> Shape | None:
    """The shape of ``left + right`` as torch broadcasts them, or None where it cannot.

    >>> broadcast_shapes((8, 1, 5), (3, 1)), broadcast_shapes((2, 3), (4,))
    ((8, 3, 5), None)
    """
    rank = max(len(left), len(right))
    out = []
    for a, b in zip((1,) * (rank - len(left)) + left, (1,) * (rank - len(right)) + right):
        if a != b and 1 not in (a, b):
            return None
        out.append(b if a == 1 else a)
    return tuple(out)


def _learned(shape: Shape, weight: Shape, how: str) -> Shape:
    """The shape of ``x + weight`` or ``weight * x`` for a learned tensor built on the network's first input."""
    out = broadcast_shapes(shape, weight)
    if out is None:
        raise _fail(f"the input {_text(shape)} does not broadcast with the learned {_text(weight)} it is {how}")
    return out


def class_token(shape: Shape, args: dict[str, Any]) -> Step:
    """A learned (1, 1, E) token, expanded over the batch and prepended along dim 1 of an (N, S, E) input."""
    if len(shape) != 3:
        raise _fail(f"needs an (N, S, E) input (batch first), got {len(shape)}-D {_text(shape)}")
    n, s, e = shape
    embed = args["embed_dim"]
    if e != embed:
        raise _fail(f"the input's last dim is {e}, but the token's is {embed} (embed_dim): torch.cat needs them equal")
    return _step(output=(n, s + 1, e), params=embed)  # the token sees no input: the sequence keeps its field


def position_embedding(shape: Shape, args: dict[str, Any]) -> Step:
    """A learned (1, *shape) tensor added to the input (ViT's pos_embedding); ``shape`` is the input's without its
    batch axis, inferred once."""
    if not shape and not args["shape"]:  # a given embedding broadcasts with a 0-D input, as torch's x + pos does
        raise _fail("needs an input with a batch axis, got a 0-D tensor")
    weight = (1, *args["shape"])
    return _step(output=_learned(shape, weight, "added to"), params=math.prod(weight), keeps_layout=True)


def layer_scale(shape: Shape, args: dict[str, Any]) -> Step:
    """A learned per-channel scale ``gamma * x`` (ConvNeXt), gamma of shape (C, 1, ..., 1) along ``dim``."""
    weight = tuple(args["shape"])
    if not shape and not weight:
        raise _fail("needs an input with at least 1 dimension, got a 0-D tensor")
    if not weight:  # dim only places gamma when it is inferred (on the file's input): then it must name an axis
        wrap_dim(args["dim"], len(shape))
        raise _fail("shape must not be empty: gamma has the channels, then a 1 per later axis")
    return _step(output=_learned(shape, weight, "multiplied by"), params=math.prod(weight), keeps_layout=True)


def layer_scale_shape(shape: Shape, args: dict[str, Any]) -> Shape:
    """The shape of LayerScale's gamma on an input of ``shape``: the channels along ``dim``, then a 1 per later
    axis; ``()`` where ``dim`` names no axis (the layer then says why)."""
    rank, dim = len(shape), args["dim"]
    if not -rank <= dim < rank:
        return ()
    d = dim % rank
    return (shape[d], *([1] * (rank - d - 1)))


# --- attention ------------------------------------------------------------------------------------------------


def _sequence(shape: Shape, embed: int, batch_first: bool, what: str) -> tuple[int, int]:
    """(batch, sequence length) of an attention input, after torch's rank and embedding checks."""
    if len(shape) not in (2, 3):
        raise _fail(f"needs a 2-D (S, E) or 3-D input ({what}), got {len(shape)}-D {_text(shape)}")
    if shape[-1] != embed:
        raise _fail(f"the input's last dim is {shape[-1]}, but the embedding is {embed}: they must be equal")
    if len(shape) == 2:
        return 1, shape[0]
    return (shape[0], shape[1]) if batch_first else (shape[1], shape[0])


def _attention_counts(embed: int, heads: int, bias: bool, bias_kv: bool) -> int:
    if heads < 1:
        raise _fail(f"num_heads must be at least 1, got {heads}")
    if embed % heads:
        raise _fail(f"embed_dim {embed} must be divisible by num_heads {heads}: use num_heads that divide it")
    return 4 * embed * embed + (4 * embed if bias else 0) + (2 * embed if bias_kv else 0)


def multihead_attention(shape: Shape, args: dict[str, Any]) -> Step:
    """Self-attention: ``module(x, x, x, need_weights=False)[0]``, of the input's shape."""
    embed = args["embed_dim"]
    for name in ("kdim", "vdim"):
        if args[name] is not None and args[name] != embed:
            raise _fail(
                f"{name} {args[name]} differs from embed_dim {embed}: in self-attention the keys and values are "
                f"the input itself, of {embed} features; leave {name} out"
            )
    params = _attention_counts(embed, args["num_heads"], args["bias"], args["add_bias_kv"])
    batch, length = _sequence(shape, embed, args["batch_first"], "(N, S, E) with batch_first, else (S, N, E)")
    keys = length + args["add_bias_kv"] + args["add_zero_attn"]
    macs = batch * length * 4 * embed * embed + 2 * batch * length * keys * embed
    sequence = len(shape) - 2 if len(shape) == 3 and args["batch_first"] else 0
    restride = None
    if len(shape) == 3 and args["batch_first"]:  # torch works in (S, N, E) and hands back a transposed view
        restride = lambda strides: (embed, batch * embed, 1)  # noqa: E731
    return _step(output=shape, params=params, macs=macs, mixes=(sequence, len(shape) - 1), restride=restride)


def transformer_encoder_layer(shape: Shape, args: dict[str, Any]) -> Step:
    """``nn.TransformerEncoderLayer``: self-attention and a feed-forward block, each with a LayerNorm and a residual."""
    embed, hidden, bias = args["d_model"], args["dim_feedforward"], args["bias"]
    if hidden < 0:
        raise _fail(f"dim_feedforward must be at least 0, got {hidden}")
    params = _attention_counts(embed, args["nhead"], bias, False)
    params += 2 * embed * hidden + (hidden + embed if bias else 0)  # linear1, linear2
    params += 2 * (2 if bias else 1) * embed  # norm1, norm2
    batch, length = _sequence(shape, embed, args["batch_first"], "(N, S, E) with batch_first, else (S, N, E)")
    macs = (
        batch * length * 4 * embed * embed + 2 * batch * length * length * embed + 2 * batch * length * embed * hidden
    )
    sequence = len(shape) - 2 if len(shape) == 3 and args["batch_first"] else 0
    # norm_first ends in x + ff(...): laid out as its input, as an Add is; else a LayerNorm's new tensor ends it
    return _step(
        output=shape, params=params, macs=macs, mixes=(sequence, len(shape) - 1), keeps_layout=args["norm_first"]
    )


# --- tensors joined and split, and functions along the way -----------------------------------------------------


def matmul(left: Shape, right: Shape) -> tuple[Shape, int]:
    """``torch.matmul(a, b)`` of contiguous tensors of these shapes: its shape and its multiply-accumulates as
    torch's FlopCounterMode counts them (``mm``, ``bmm``; what torch folds into ``mv`` or ``dot`` it does not count).

    >>> matmul((2, 3, 49, 32), (2, 3, 32, 49))
    ((2, 3, 49, 49), 460992)
    >>> matmul((5, 2, 3), (3,))
    ((5, 2), 0)
    """
    if not left or not right:
        raise _fail(f"matmul needs tensors of at least 1 dimension, got {_text(left)} and {_text(right)}")
    a = (1, *left) if len(left) == 1 else left
    b = (*right, 1) if len(right) == 1 else right
    if a[-1] != b[-2]:
        raise _fail(f"matmul of {_text(left)} and {_text(right)}: the first's last dim ({a[-1]}) must equal the "
                    f"second's {'only' if len(right) == 1 else 'next-to-last'} dim ({b[-2]})")  # fmt: skip
    batch = broadcast_shapes(a[:-2], b[:-2])
    if batch is None:
        raise _fail(f"matmul of {_text(left)} and {_text(right)}: the batch dims {_text(a[:-2])} and "
                    f"{_text(b[:-2])} do not broadcast")  # fmt: skip
    out = (*batch, *((a[-2],) if len(left) > 1 else ()), *((b[-1],) if len(right) > 1 else ()))
    # torch folds a batched operand into a matrix where it can without a copy, and then runs mv (a 1-D right
    # operand; a 1-D left one with a batched right one whose inner dim is 1), which FlopCounterMode does not count
    folded = len(right) == 1 or (len(left) == 1 and len(right) >= 3 and right[-2] == 1)
    macs = 0 if folded else math.prod(batch) * a[-2] * a[-1] * b[-1]
    return out, macs


def index(table: Shape, positions: Shape, largest: int | None) -> Shape:
    """``table[positions]``: the rows of ``table`` that an integer tensor of shape ``positions`` names, its values
    at most ``largest`` (None where convcalc does not know them). Swin's ``relative_position_bias_table[index]``.

    >>> index((169, 3), (2401,), 168)
    (2401, 3)
    """
    if not table:
        raise _fail("cannot index a 0-D tensor by a tensor")
    if largest is not None and largest >= table[0]:
        raise _fail(f"the index holds values up to {largest}, but the tensor {_text(table)} has {table[0]} rows: "
                    f"index {largest} is out of bounds for its dim 0")  # fmt: skip
    return (*positions, *table[1:])


def roll(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.roll(shifts, dims)``: the same shape; without dims, the flattened tensor is rolled."""
    shifts, dims = _ints(args["shifts"]), args["dims"]
    if dims is None:
        if len(shifts) != 1:
            raise _fail(f"roll without dims takes one shift (it rolls the flattened tensor), got {len(shifts)}")
    else:
        dims = _ints(dims)
        if len(shifts) != len(dims):
            raise _fail(f"roll: shifts and dims must align, got {len(shifts)} shifts and {len(dims)} dims")
        for dim in dims:
            wrap_dim(dim, len(shape), "dims")
    return _step(output=shape)


def narrow(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.narrow(dim, start, length)``: ``length`` elements of ``dim`` from ``start`` (a view)."""
    if not shape:
        raise _fail("narrow() cannot be applied to a 0-dim tensor")
    d = wrap_dim(args["dim"], len(shape))
    size, start, length = shape[d], args["start"], args["length"]
    if not -size <= start <= size:
        raise _fail(f"start {start} is out of range for dim {args['dim']} of size {size}: use {-size}..{size}")
    start += size if start < 0 else 0
    if length < 0:
        raise _fail(f"length must be at least 0, got {length}")
    if start + length > size:
        raise _fail(f"start ({start}) + length ({length}) exceeds the size {size} of dim {args['dim']}")
    out = (*shape[:d], length, *shape[d + 1 :])
    return _step(output=out, dims=tuple(None if i == d else i for i in range(len(shape))),
                 restride=lambda strides: strides)  # fmt: skip


def elementwise(shape: Shape, args: dict[str, Any]) -> Step:
    """A function of each element on its own (``x.exp()``, ``x.mul(0.125)``): the shape, laid out as its input."""
    return _step(output=shape, keeps_layout=True)


def clamp(shape: Shape, args: dict[str, Any]) -> Step:
    """``x.clamp(min, max)``: one of them at least."""
    if args["min"] is None and args["max"] is None:
        raise _fail("clamp needs min or max (or both)")
    return _step(output=shape, keeps_layout=True)


def normalize(shape: Shape, args: dict[str, Any]) -> Step:
    """``F.normalize(x, p, dim)``: each vector along ``dim`` divided by its norm; it mixes that dim."""
    d = wrap_dim(args["dim"], len(shape))
    return _step(output=shape, mixes=(d,) if shape else ())


def _ints(value: Any) -> list[int]:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def parts(shape: Shape, how: str, args: dict[str, Any]) -> list[Shape]:
    """The shapes of ``x.chunk``, ``x.split``, ``x.tensor_split`` and ``x.unbind``, as torch gives them.

    >>> parts((2, 6, 4), "chunk", {"chunks": 4, "dim": 1})
    [(2, 2, 4), (2, 2, 4), (2, 2, 4)]
    >>> parts((2, 6, 4), "tensor_split", {"sections": [1, 5], "dim": 1})
    [(2, 1, 4), (2, 4, 4), (2, 1, 4)]
    """
    if how == "unbind":
        if not shape:
            raise _fail("unbind needs a tensor of at least 1 dimension, got a 0-D one")
        d = wrap_dim(args["dim"], len(shape))
        return [(*shape[:d], *shape[d + 1 :])] * shape[d]
    d = wrap_dim(args["dim"], len(shape))
    size = shape[d] if shape else 1
    if how == "chunk":
        chunks = args["chunks"]
        if chunks < 1:
            raise _fail(f"chunks must be at least 1, got {chunks}")
        step = -(-size // chunks)
        lengths = [min(step, size - start) for start in range(0, size, step)] if size else [0] * chunks
    elif how == "split":
        sections = args["split_size_or_sections"]
        if isinstance(sections, (list, tuple)):
            if any(n < 0 for n in sections) or sum(sections) != size:
                raise _fail(f"split sizes {list(sections)} must be at least 0 and add up to {size}, the size of "
                            f"dim {args['dim']}")  # fmt: skip
            lengths = list(sections)
        else:
            if sections < 0 or (sections == 0 and size):
                raise _fail(f"split_size must be at least 1 (0 only for an empty dim), got {sections}")
            lengths = [min(sections, size - start) for start in range(0, size, sections)] if size else [0]
    else:  # tensor_split
        sections = args["sections"]
        if isinstance(sections, (list, tuple)):
            bounds = [0, *(min(max(index if index >= 0 else size + index, 0), size) for index in sections), size]
            lengths = [max(end - start, 0) for start, end in itertools.pairwise(bounds)]
        else:
            if sections < 1:
                raise _fail(f"the number of sections must be at least 1, got {sections}")
            whole, extra = divmod(size, sections)
            lengths = [whole + (i < extra) for i in range(sections)]
    if len(lengths) > MAX_PARTS:
        raise _fail(f"{how} makes {len(lengths):,} parts; convcalc names at most {MAX_PARTS:,}")
    return [(*shape[:d], n, *shape[d + 1 :]) for n in lengths]


MAX_PARTS = 10_000
"""Most parts a chunk, split or unbind may make (each becomes a node's named tensor)."""
