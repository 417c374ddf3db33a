"""The stack language's newer constructs against torch: each on generated shapes and arguments, bad ones included.

Every test builds the step in torch from its own reading of the arguments (never from convcalc's output) and
compares: convcalc must give torch's shape (and count, and MACs as FlopCounterMode counts them), or refuse where
torch refuses. Size expressions are checked against Python's own arithmetic on the same sizes, and for what they
must never do: run code.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch.utils.flop_counter import FlopCounterMode

from convcalc.emit import emit_torch
from convcalc.errors import StackSpecError
from convcalc.expr import ExprError, parse
from convcalc.network import run_stack
from convcalc.spec import resolve
from convcalc.stackfile import StackFileError, load_stack
from tests.profiles import scaled
from tests.torch_oracle import TORCH_REJECTS
from tests.torchvision_models import torchvision  # noqa: F401 (torchvision without its compiled ops)

REJECTS = (*TORCH_REJECTS, AssertionError)
shapes = st.lists(st.integers(1, 5), min_size=0, max_size=4).map(tuple)


def ours(shape: tuple[int, ...], items: list[tuple[str, dict[str, Any]]]) -> tuple[int, ...] | None:
    """convcalc's output shape of the last step, or None where it refuses (at load or where the stack runs). A 0-D
    tensor (no stack's input) is made by a mean over every dim of a 1-D one."""
    if not shape:
        shape, items = (1,), [("mean", {}), *items]
    try:
        result = run_stack(shape, resolve((name, args, None) for name, args in items))
    except StackSpecError:
        return None
    return None if result.error is not None else result.output


def theirs(compute: Any) -> tuple[int, ...] | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tuple(compute().shape)
    except REJECTS:
        return None


# --- two tensors ----------------------------------------------------------------------------------------------


@settings(max_examples=scaled(600))
@given(left=shapes, right=shapes)
def test_matmul_is_torch_matmul_with_its_flop_count(left: tuple[int, ...], right: tuple[int, ...]) -> None:
    a, b = torch.zeros(left), torch.zeros(right)
    with FlopCounterMode(display=False) as counter:
        expected = theirs(lambda: torch.matmul(a, b))
    assume(expected is None or 0 not in expected)  # convcalc stops at an empty output
    items = [("Save", {"name": "x"}), ("Parameter", {"name": "b", "shape": list(right) or [1]}),
             ("From", {"name": "x"}), ("matmul", {"with": "b"})]  # fmt: skip
    if not right:  # a 0-D second operand: no Parameter has one; torch refuses it
        assert expected is None
        return
    result = run_stack(left, resolve((name, args, None) for name, args in items)) if left else None
    got = None if result is None or result.error else result.output
    assert got == expected, (left, right)
    if got is not None:
        assert result is not None and result.rows[-1].macs == counter.get_total_flops() // 2


@settings(max_examples=scaled(200))
@given(rows=st.integers(1, 40), width=st.integers(1, 3), window=st.tuples(st.integers(1, 4), st.integers(1, 4)))
def test_indexing_a_table_by_the_relative_position_index(rows: int, width: int, window: tuple[int, int]) -> None:
    """``table[index]``, refused where the index holds a row the table does not have (torch: index out of bounds)."""
    height, breadth = window
    tokens = height * breadth
    index = torch.arange(height).view(-1, 1, 1, 1) * 0  # the index's values, as torchvision computes them:
    grid = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(breadth), indexing="ij")).flatten(1)
    relative = (grid[:, :, None] - grid[:, None, :]).permute(1, 2, 0)
    index = ((relative[:, :, 0] + height - 1) * (2 * breadth - 1) + relative[:, :, 1] + breadth - 1).flatten()
    expected = theirs(lambda: torch.zeros(rows, width)[index])
    items = [("Buffer", {"name": "i", "kind": "relative_position_index", "window_size": [height, breadth]}),
             ("Parameter", {"name": "t", "shape": [rows, width]}), ("index", {"with": "i"})]  # fmt: skip
    assert ours((1,), items) == expected
    assert index.numel() == tokens * tokens


@settings(max_examples=scaled(150))
@given(window=st.lists(st.integers(1, 4), min_size=2, max_size=3), counts=st.lists(st.integers(1, 3), min_size=3,
       max_size=3), shifts=st.lists(st.integers(0, 4), min_size=3, max_size=3), extra=st.integers(0, 1))  # fmt: skip
def test_window_tables_of_two_and_three_axes_are_torchvisions(window: list[int], counts: list[int],
                                                               shifts: list[int], extra: int) -> None:  # fmt: skip
    """The relative position index torchvision's Swin (2 axes) and Swin3D (3) register, and the mask Swin3D
    computes in forward: convcalc's shapes and largest index, and the values of the code ``--emit torch`` writes,
    against torchvision's own modules and function. A size that is no multiple of the window is refused (torch's
    view refuses it), and so is a shift outside the window (torchvision never makes one)."""
    from convcalc.torch_code import HELPERS
    from tests.torchvision_models import models

    swin = models().swin_transformer
    swin3d = models().video.swin_transformer
    helpers: dict[str, Any] = {"torch": torch}
    exec(HELPERS["relative_position_index"], helpers)
    exec(HELPERS["shifted_window_mask"], helpers)
    axes = len(window)
    if axes == 2:
        registered = swin.ShiftedWindowAttention(4, window, [0, 0], 1).relative_position_index
    else:
        registered = swin3d.ShiftedWindowAttention3d(4, window, [0, 0, 0], 1).relative_position_index
    flat = axes == 2
    items = [("Buffer", {"name": "i", "kind": "relative_position_index", "window_size": window, "flat": flat})]
    assert ours((1,), items) == tuple(registered.shape)
    assert torch.equal(helpers["relative_position_index"](tuple(window), flat), registered)
    table = int(registered.max()) + 1  # a table one row short of the largest index is refused, as torch refuses it
    for rows, ok in ((table, True), (table - 1, False)):
        if rows:
            indexed = [*items, ("Parameter", {"name": "t", "shape": [rows, 2]}), ("index", {"with": "i"})]
            assert (ours((1,), indexed) is not None) == ok, (window, rows)
    if axes == 2:
        return
    size = [side * count + extra for side, count in zip(window, counts)]
    constant = [("Constant", {"name": "m", "kind": "shifted_window_mask", "size": size, "window_size": window,
                              "shift_size": shifts})]  # fmt: skip
    got = ours((1,), constant)
    if any(shift >= side for shift, side in zip(shifts, window)):
        assert got is None
        return
    expected = theirs(lambda: swin3d._compute_attention_mask_3d(torch.zeros(1), size, window, shifts))
    assert got == expected, (size, window, shifts)
    if expected is not None:
        made = helpers["shifted_window_mask"](tuple(size), tuple(window), tuple(shifts), torch.zeros(1))
        assert torch.equal(made, swin3d._compute_attention_mask_3d(torch.zeros(1), size, window, shifts))


@settings(max_examples=scaled(400))
@given(shape=shapes.filter(bool), how=st.sampled_from(["chunk", "split", "tensor_split", "unbind"]),
       dim=st.integers(-5, 4), count=st.integers(-1, 7), sections=st.lists(st.integers(-2, 6), max_size=3),
       listed=st.booleans())  # fmt: skip
def test_split_parts_are_torchs(shape: tuple[int, ...], how: str, dim: int, count: int, sections: list[int],
                               listed: bool) -> None:  # fmt: skip
    x = torch.zeros(shape)
    argument: Any = sections if listed and how != "chunk" else count
    try:
        if how == "unbind":
            expected: list[tuple[int, ...]] | None = [tuple(p.shape) for p in x.unbind(dim)]
        else:
            expected = [tuple(p.shape) for p in getattr(x, how)(argument, dim)]
    except REJECTS:
        expected = None
    assume(expected is None or (expected and all(0 not in part for part in expected) and len(expected) <= 20))
    names = [f"p{i}" for i in range(len(expected or [0]))]
    key = {"chunk": "chunks", "split": "split_size_or_sections", "tensor_split": "sections", "unbind": None}[how]
    arguments: dict[str, Any] = {"dim": dim, "names": names, **({key: argument} if key else {})}
    try:
        result = run_stack(shape, resolve([(how, arguments, None)]))
        got = None if result.error else [node.output for node in result.rows if node.type == "Part"]
    except StackSpecError:
        got = None
    assert got == expected, (shape, how, dim, argument)


@settings(max_examples=scaled(600))
@given(shape=shapes, sizes=st.lists(st.integers(-3, 4), min_size=0, max_size=6),
       after=st.sampled_from([None, "ReLU", "Threshold", "contiguous", "view"]))  # fmt: skip
def test_expand_is_torchs_and_so_is_writing_into_it(shape: tuple[int, ...], sizes: list[int],
                                                     after: str | None) -> None:  # fmt: skip
    """``x.expand(*sizes)``, then (sometimes) a layer that writes into it in place: torch refuses ReLU's write into
    elements that share memory, and Threshold's it lets through; a view of an expanded tensor follows its strides."""

    def compute() -> torch.Tensor:
        out = torch.zeros(shape).expand(*sizes)
        if after == "ReLU":
            return torch.nn.ReLU(inplace=True)(out)
        if after == "Threshold":
            return torch.nn.Threshold(0.5, 0.0, inplace=True)(out)
        return out.contiguous() if after == "contiguous" else out.view(-1) if after == "view" else out

    expected = theirs(compute)
    assume(expected is None or 0 not in expected)
    steps = {"ReLU": [("ReLU", {"inplace": True})], "Threshold": [("Threshold", {"threshold": 0.5, "value": 0.0,
             "inplace": True})], "contiguous": [("contiguous", {})], "view": [("view", {"shape": [-1]})]}  # fmt: skip
    items = [("expand", {"shape": sizes}), *steps.get(after or "", [])]
    assert ours(shape, items) == expected, (shape, sizes, after)


@settings(max_examples=scaled(600))
@given(shape=shapes,
       repeats=st.lists(st.one_of(st.integers(-3, 4), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=6),
       after=st.sampled_from([None, "view", "transpose"]))  # fmt: skip
def test_repeat_is_torchs(shape: tuple[int, ...], repeats: list[int], after: str | None) -> None:
    """``x.repeat(*repeats)`` on the meta device: too few counts, a negative count and sizes past int64 refused
    where torch refuses; the result a new contiguous tensor, so that a view after it works where torch's does."""

    def compute() -> torch.Tensor:
        base = torch.zeros(shape, device="meta") if shape else torch.zeros((1,), device="meta").mean()
        out = base.repeat(*repeats)
        return out.view(-1) if after == "view" else out.transpose(0, -1) if after == "transpose" else out

    padded = (1,) * (len(repeats) - len(shape)) + shape
    elements = math.prod(n * r for n, r in zip(padded, repeats)) if len(repeats) >= len(shape) else 0
    assume(not 2**61 <= elements < 2**63)  # torch: no room for the float32 storage (no verdict on the layer itself)
    expected = theirs(compute)
    assume(expected is None or 0 not in expected)  # convcalc stops at an empty tensor, on purpose (docs/stack.md)
    steps = {"view": [("view", {"shape": [-1]})], "transpose": [("transpose", {"dim0": 0, "dim1": -1})]}
    items = [("repeat", {"repeats": repeats}), *steps.get(after or "", [])]
    assert ours(shape, items) == expected, (shape, repeats, after)


@settings(max_examples=scaled(300))
@given(queries=st.integers(1, 70), keys=st.integers(1, 70), width=st.integers(1, 3), spare=st.integers(-2, 2))
def test_mvit_relative_distances_index_the_table_as_torchvision_does(queries: int, keys: int, width: int,
                                                                     spare: int) -> None:  # fmt: skip
    """MViT's ``rel_pos_h[dist_h.long()]``: the distances torchvision's ``_add_rel_pos`` computes (written here
    from its code), indexing a table of ``2 * max(q, k) - 1`` rows, give or take a few (refused where one is
    missing, as torch refuses an index out of bounds). The emitted helper computes the same values."""
    q_ratio, k_ratio = max(keys / queries, 1.0), max(queries / keys, 1.0)
    dist = (torch.arange(queries)[:, None] * q_ratio - (torch.arange(keys)[None, :] + (1.0 - keys)) * k_ratio).long()
    rows = max(2 * max(queries, keys) - 1 + spare, 1)
    expected = theirs(lambda: torch.zeros(rows, width)[dist])
    items = [("Parameter", {"name": "t", "shape": [rows, width]}),
             ("Constant", {"name": "d", "kind": "relative_distance", "size": [queries, keys]}),
             ("From", {"name": "t"}), ("index", {"with": "d"})]  # fmt: skip
    assert ours((1,), items) == expected, (queries, keys, rows)
    from convcalc.torch_code import HELPERS

    namespace: dict[str, Any] = {"torch": torch}
    exec(HELPERS["relative_distance"], namespace)
    assert torch.equal(namespace["relative_distance"]((queries, keys), torch.zeros(1)), dist)


# --- functions along the way --------------------------------------------------------------------------------------


@settings(max_examples=scaled(400))
@given(shape=shapes, shifts=st.lists(st.integers(-9, 9), min_size=1, max_size=3),
       dims=st.one_of(st.none(), st.lists(st.integers(-5, 4), min_size=1, max_size=3)))  # fmt: skip
def test_roll_is_torchs(shape: tuple[int, ...], shifts: list[int], dims: list[int] | None) -> None:
    assume(shape)
    expected = theirs(lambda: torch.zeros(shape).roll(shifts, dims) if dims is not None else
                      torch.zeros(shape).roll(shifts))  # fmt: skip
    assert ours(shape, [("roll", {"shifts": shifts, "dims": dims})]) == expected


@settings(max_examples=scaled(400))
@given(shape=shapes, dim=st.integers(-5, 4), start=st.integers(-7, 7), length=st.integers(-1, 7))
def test_narrow_is_torchs(shape: tuple[int, ...], dim: int, start: int, length: int) -> None:
    expected = theirs(lambda: torch.zeros(shape).narrow(dim, start, length))
    assume(expected is None or 0 not in expected)
    assert ours(shape, [("narrow", {"dim": dim, "start": start, "length": length})]) == expected


@settings(max_examples=scaled(400))
@given(shape=shapes, pad=st.lists(st.integers(-3, 3), min_size=1, max_size=6),
       mode=st.sampled_from(["constant", "reflect", "replicate", "circular"]))  # fmt: skip
def test_pad_is_torchs(shape: tuple[int, ...], pad: list[int], mode: str) -> None:
    expected = theirs(lambda: F.pad(torch.zeros(shape), pad, mode=mode))
    assume(expected is None or 0 not in expected)
    if mode == "circular" and any(min(pad[i : i + 2]) < 0 < max(pad[i : i + 2]) for i in range(0, len(pad) - 1, 2)):
        return  # mixed-sign circular padding: erratic in torch, refused by convcalc (docs/stack.md)
    assert ours(shape, [("pad", {"pad": pad, "mode": mode})]) == expected, (shape, pad, mode)


@settings(max_examples=scaled(300))
@given(shape=shapes, dim=st.integers(-5, 4), low=st.one_of(st.none(), st.floats(-2, 2)),
       high=st.one_of(st.none(), st.floats(-2, 2)), other=st.floats(-3, 3))  # fmt: skip
def test_elementwise_functions_are_torchs(shape: tuple[int, ...], dim: int, low: float | None, high: float | None,
                                          other: float) -> None:  # fmt: skip
    x = torch.zeros(shape)
    assert ours(shape, [("normalize", {"dim": dim})]) == theirs(lambda: F.normalize(x, dim=dim))
    assert ours(shape, [("clamp", {"min": low, "max": high})]) == theirs(lambda: x.clamp(min=low, max=high))
    for name in ("exp", "sigmoid", "contiguous"):
        assert ours(shape, [(name, {})]) == theirs(lambda: getattr(x, name)())
    for name in ("mul", "add", "sub", "div"):
        assert ours(shape, [(name, {"other": other})]) == theirs(lambda: getattr(x, name)(other))


# --- sizes that follow the input ----------------------------------------------------------------------------------


@settings(max_examples=scaled(300))
@given(shape=st.lists(st.integers(1, 30), min_size=4, max_size=4).map(tuple), window=st.integers(1, 8))
def test_a_window_partition_follows_any_input(shape: tuple[int, ...], window: int) -> None:
    """Swin's pad to a multiple of the window, then the windows, written with Dims and expressions: torch's own
    shapes at every size, and the emitted code runs there too."""
    b, h, w, c = shape
    x = F.pad(torch.zeros(shape), (0, 0, 0, (window - w % window) % window, 0, (window - h % window) % window))
    hp, wp = x.shape[1], x.shape[2]
    windows = x.view(b, hp // window, window, wp // window, window, c).permute(0, 1, 3, 2, 4, 5)
    expected = tuple(windows.reshape(b * (hp // window) * (wp // window), window * window, c).shape)
    items = [("Dims", {"names": ["B", "H", "W", "C"]}),
             ("pad", {"pad": [0, 0, 0, f"({window} - W % {window}) % {window}", 0,
                              f"({window} - H % {window}) % {window}"]}),
             ("Dims", {"names": ["B", "Hp", "Wp", "C"]}),
             ("view", {"shape": ["B", f"Hp // {window}", window, f"Wp // {window}", window, "C"]}),
             ("permute", {"dims": [0, 1, 3, 2, 4, 5]}),
             ("reshape", {"shape": [f"B * (Hp // {window}) * (Wp // {window})", window * window, "C"]})]  # fmt: skip
    specs = resolve((name, args, None) for name, args in items)
    built = run_stack((1, 7, 7, 2), specs)  # built once, on another input
    assert run_stack(shape, specs, inferred=built.inferred).output == expected
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(emit_torch(specs, built, "windows"), namespace)
    assert tuple(namespace["Network"]()(torch.zeros(shape)).shape) == expected


@settings(max_examples=scaled(300))
@given(built_on=st.lists(st.integers(2, 12), min_size=2, max_size=2), shape=st.lists(st.integers(1, 12), min_size=2,
       max_size=2), how=st.sampled_from(["AvgPool2d", "MaxPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "split",
                                         "tensor_split"]), divisor=st.integers(1, 3))  # fmt: skip
def test_a_pool_and_a_split_whose_sizes_follow_the_input(built_on: list[int], shape: list[int], how: str,
                                                         divisor: int) -> None:  # fmt: skip
    """``F.avg_pool2d(x, (h // d, w // d))``, ``F.adaptive_avg_pool2d(x, ...)``, ``x.split(w // d, -1)``: sizes
    worked out on every input, by the file and by the emitted code, whatever input the network was built on; torch
    computes them itself, from the same expressions in Python."""
    h, w = shape
    x = torch.randn(1, 2, h, w, generator=torch.Generator().manual_seed(h * 13 + w))
    sizes = [f"H // {divisor}", f"W // {divisor}"]
    if how in ("split", "tensor_split"):
        count = len(torch.zeros(1, 2, *built_on).split(max(built_on[1] // divisor, 1), -1))
        key = "split_size_or_sections" if how == "split" else "sections"
        argument: Any = "max(W // " + str(divisor) + ", 1)" if how == "split" else [sizes[1]]
        step = (how, {key: argument, "dim": -1, "names": [f"p{i}" for i in range(count if how == "split" else 2)]})
        compute = (lambda: x.split(max(w // divisor, 1), -1)[0]) if how == "split" else \
            (lambda: x.tensor_split([w // divisor], -1)[0])  # fmt: skip
        if how == "split" and len(x.split(max(w // divisor, 1), -1)) != count:
            compute = None  # another number of parts than the file names: convcalc refuses
    else:
        key = "output_size" if how.startswith("Adaptive") else "kernel_size"
        step = (how, {key: sizes})
        function = {"AvgPool2d": F.avg_pool2d, "MaxPool2d": F.max_pool2d, "AdaptiveAvgPool2d": F.adaptive_avg_pool2d,
                    "AdaptiveMaxPool2d": F.adaptive_max_pool2d}[how]  # fmt: skip
        compute = lambda: function(x, (h // divisor, w // divisor))  # noqa: E731
    specs = resolve((name, args, None) for name, args in [("Dims", {"names": ["B", "C", "H", "W"]}), step])
    built = run_stack((1, 2, *built_on), specs)
    assume(built.error is None)
    expected = theirs(compute) if compute is not None else None
    assume(expected is None or 0 not in expected)
    result = run_stack((1, 2, h, w), specs, inferred=built.inferred)
    assert (None if result.error else result.output) == expected, (built_on, shape, how, divisor)
    if expected is not None:
        namespace: dict[str, Any] = {"__name__": "emitted"}
        exec(emit_torch(specs, built, "follows"), namespace)
        assert torch.equal(namespace["Network"]()(x), compute())


@settings(max_examples=scaled(500))
@given(a=st.integers(-50, 50), b=st.integers(-50, 50), c=st.integers(1, 9),
       form=st.sampled_from(["a // c", "(a - b) % c", "a * b + c", "-a", "a if a > b else b", "min(a, b) - max(b, c)",
                             "(a >= b) * c", "c ** 2 // (c + 1)"]))  # fmt: skip
def test_expressions_are_pythons_arithmetic(a: int, b: int, c: int, form: str) -> None:
    bound = {"a": a, "b": b, "c": c}
    assert parse(form).evaluate(bound) == eval(form, {"min": min, "max": max}, dict(bound))
    rebuilt = parse(form).code(lambda name: str(bound[name]))  # the code convcalc writes for it, in Python
    assert eval(rebuilt) == eval(form, {"min": min, "max": max}, dict(bound))


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('true')",
        "x.shape",
        "H[0]",
        "'a'",
        "lambda: 1",
        "(lambda: 1)()",
        "H; 1",
        "open('f')",
        "H and W",
        "[H]",
        "1e999",
        "f'{H}'",
    ],
)
def test_an_expression_never_runs_code(text: str) -> None:
    with pytest.raises(ExprError):
        parse(text)
    with pytest.raises(StackFileError):
        load_stack(f"input: [1, 4]\nlayers:\n  - view: [{text!r}, -1]\n")


def test_a_name_not_bound_and_a_division_by_zero_are_refused_where_they_run() -> None:
    result = run_stack((2, 6), resolve([("view", {"shape": ["N", -1]}, None)]))
    assert result.error is not None and "'N' is not bound" in str(result.error)
    result = run_stack((2, 6), resolve([("Dims", {"names": ["N", "C"]}, None), ("view", {"shape": ["C // (N - 2)"]},
                                        None)]))  # fmt: skip
    assert result.error is not None and "divides by zero" in str(result.error)


def test_a_check_refuses_the_input_torch_assert_refuses() -> None:
    text = ("input: [1, 3, 224, 224]\nlayers:\n  - Dims: [N, C, H, W]\n  - Check: {condition: H == 224, message: "
            "Wrong image height!}\n")  # fmt: skip
    shape, specs = load_stack(text)
    assert run_stack(shape, specs).error is None
    refused = run_stack((1, 3, 256, 224), specs).error
    assert refused is not None and "Wrong image height!" in str(refused)


@pytest.mark.parametrize("message", ["", ", message: too tall"])
def test_a_check_without_a_message_refuses_too_and_its_module_asserts_it(message: str) -> None:
    shape, specs = load_stack(f"input: [1, 3, 8, 8]\nlayers:\n  - Dims: [N, C, H, W]\n  - Check: {{condition: H == 8"
                              f"{message}}}\n  - Conv2d: {{out_channels: 2, kernel_size: 3}}\n")  # fmt: skip
    refused = run_stack((1, 3, 9, 8), specs).error
    assert refused is not None and "'H == 8' fails" in str(refused)
    namespace: dict[str, Any] = {}
    exec(emit_torch(specs, run_stack(shape, specs), "checked"), namespace)
    module = namespace["Network"]()
    assert tuple(module(torch.zeros(shape)).shape) == (1, 2, 6, 6)
    with pytest.raises(AssertionError):
        module(torch.zeros(1, 3, 9, 8))


# --- learned tensors, buffers, torchvision's layers -----------------------------------------------------------------


@settings(max_examples=scaled(100))
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_a_parameter_counts_its_elements(shape: list[int]) -> None:
    result = run_stack((1,), resolve([("Parameter", {"name": "p", "shape": shape}, None)]))
    assert (result.output, result.total_params) == (tuple(shape), math.prod(shape))


@settings(max_examples=scaled(400))
@given(shape=shapes, weight=st.lists(st.integers(1, 4), min_size=1, max_size=5), transposed=st.booleans())
def test_a_learned_tensor_broadcasts_with_the_input_as_torch_does(shape: tuple[int, ...], weight: list[int],
                                                                   transposed: bool) -> None:  # fmt: skip
    x = torch.zeros(shape)
    before = [("transpose", {"dim0": 0, "dim1": -1})] if transposed and len(shape) > 1 else []
    moved = x.transpose(0, -1) if before else x  # a layout other than contiguous, as a permuted tensor has
    assume(0 not in shape)
    for kind, compute in (("PositionEmbedding", lambda: moved + torch.zeros(1, *weight)),
                          ("LayerScale", lambda: moved * torch.zeros(weight))):  # fmt: skip
        expected = theirs(compute)
        assert ours(shape, [*before, (kind, {"shape": weight})]) == expected, kind


@settings(max_examples=scaled(300))
@given(shape=shapes, channels=st.integers(0, 5), p=st.floats(-0.5, 1.5), mode=st.sampled_from(["row", "batch", "x"]),
       dims=st.lists(st.integers(-4, 4), max_size=4))  # fmt: skip
def test_torchvisions_layers_are_torchvisions(shape: tuple[int, ...], channels: int, p: float, mode: str,
                                              dims: list[int]) -> None:  # fmt: skip
    from torchvision.ops.misc import FrozenBatchNorm2d, Permute
    from torchvision.ops.stochastic_depth import StochasticDepth

    x = torch.zeros(shape)
    expected = theirs(lambda: FrozenBatchNorm2d(channels)(x))
    assume(expected is None or 0 not in expected)
    assert ours(shape, [("FrozenBatchNorm2d", {"num_features": channels})]) == expected
    if expected is not None and shape:
        buffers = sum(b.numel() for b in FrozenBatchNorm2d(channels).buffers())
        assert run_stack(shape, resolve([("FrozenBatchNorm2d", {"num_features": channels}, None)])).total_buffers \
            == buffers  # fmt: skip
    assert ours(shape, [("StochasticDepth", {"p": p, "mode": mode})]) == theirs(lambda: StochasticDepth(p, mode)
                                                                                 .eval()(x))  # fmt: skip
    assert ours(shape, [("Permute", {"dims": dims})]) == theirs(lambda: Permute(dims)(x))


@pytest.mark.parametrize("times", ["B", "n + B", "1 + 1"])
def test_a_repeat_count_that_is_no_integer_is_refused_at_load(times: str) -> None:
    """A Repeat's ``times`` is the graph's shape: a name no defined block binds is refused in one error, not a
    TypeError while the layers are counted (found by test_fuzz's numbers of every size)."""
    text = f"input: [1, 1, 4]\nlayers:\n- Repeat:\n    times: {times}\n    layers: [ReLU]\n"
    with pytest.raises(StackFileError, match="times must be an integer"):
        load_stack(text, "net")


def test_a_repeat_count_from_a_defined_blocks_argument_is_that_number() -> None:
    text = ("input: [1, 1, 4]\ndefine:\n  R:\n    arguments: {n: 2}\n    layers:\n"
            "      - Repeat: {times: \"2 * n\", layers: [ReLU]}\nlayers:\n- R: {n: 3}\n")  # fmt: skip
    shape, specs = load_stack(text, "net")
    assert sum(node.type == "ReLU" for node in run_stack(shape, specs).walk()) == 6


def test_a_defined_block_is_its_layers_with_its_arguments_put_in() -> None:
    text = """
input: [1, 8, 16, 16]
define:
  Block:
    arguments: {width: 4, stride: 1}
    layers:
      - Conv2d: {out_channels: "2 * width", kernel_size: 3, stride: stride, padding: 1}
      - ReLU
layers:
  - Block: {width: 8, stride: 2}
  - Block: {}
"""
    shape, specs = load_stack(text)
    result = run_stack(shape, specs)
    assert result.output == (1, 8, 8, 8)
    convs = [node for node in result.rows if node.type == "Conv2d"]
    assert [(node.arguments["out_channels"], node.arguments["stride"]) for node in convs] == [(16, 2), (8, 1)]
    with pytest.raises(StackFileError, match="uses itself"):
        load_stack("input: [1, 2]\ndefine:\n  A:\n    layers: [A: {}]\nlayers: [A: {}]\n")
    with pytest.raises(StackFileError, match="missing width"):
        load_stack("input: [1, 2]\ndefine:\n  A:\n    arguments: {width: null}\n    layers: [ReLU]\nlayers: [A: {}]\n")
