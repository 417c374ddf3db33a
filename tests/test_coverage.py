"""Which input pixels the windows read: one definition (convcalc.formulas.coverage), checked against a walk over
every tap of every window, and the three figures built on it: a layer's ``uncovered`` and ``unread``, ``fit``'s
"no pixel left unread" and ``solve``'s "covers all"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import convcalc
from convcalc import formulas
from convcalc.cli import main
from convcalc.fitting import fit
from convcalc.network import run_stack
from convcalc.solver import solve
from convcalc.spec import resolve
from tests.profiles import scaled

ROOT = Path(__file__).parent.parent


def walk(length: int, out: int, kernel: int, stride: int, before: int, dilation: int) -> tuple[int, int]:
    """(unread, uncovered) by brute force: every tap of every window, kept where it lands on an input pixel."""
    read = {w * stride + j * dilation - before for w in range(out) for j in range(kernel)}
    read = {x for x in read if 0 <= x < length}
    return length - len(read), length if not read else length - 1 - max(read)


@settings(max_examples=scaled(3000))
@given(length=st.integers(1, 80), kernel=st.integers(1, 12), stride=st.integers(1, 12), dilation=st.integers(1, 8),
       before=st.integers(0, 12), after=st.integers(0, 12), extra=st.integers(0, 2))  # fmt: skip
@example(length=1, kernel=2, stride=1, dilation=2, before=1, after=1, extra=0)  # the issue's pool: reads no pixel
def test_coverage_is_a_walk_over_every_tap(length, kernel, stride, dilation, before, after, extra) -> None:
    """Any padding, and ``extra`` windows past the floor's count (ceil mode's last window, partly in padding)."""
    out = formulas.conv_length(length, kernel, stride, (before, after), dilation) + extra
    assume(out >= 1)
    assert formulas.coverage(length, out, kernel, stride, before, dilation) == walk(
        length, out, kernel, stride, before, dilation
    )


@settings(max_examples=scaled(300))
@given(length=st.integers(1, 2**62), kernel=st.integers(1, 2**40), stride=st.integers(1, 2**40),
       dilation=st.integers(1, 2**20), before=st.integers(0, 2**40),
       mode=st.sampled_from(["zeros", "replicate", "reflect", "circular"]))  # fmt: skip
def test_coverage_at_any_size_is_bounded_and_quick(length, kernel, stride, dilation, before, mode) -> None:
    """Sizes no walk can cover: the figure is worked out (or refused as unknown, never guessed) and in range."""
    out = formulas.conv_length(length, kernel, stride, (before, before), dilation)
    assume(out >= 1 and (before < length or mode != "reflect") and (before <= length or mode != "circular"))
    found = formulas.coverage(length, out, kernel, stride, before, dilation, before, mode)
    if found is None:
        assert (dilation > 1 and min(kernel, stride) > formulas.COVERAGE_LIMIT) or (
            mode in ("reflect", "circular") and 2 * before * min(kernel, stride) > formulas.COVERAGE_LIMIT)  # fmt: skip
        return
    unread, uncovered = found
    assert 0 <= uncovered <= unread <= length


@settings(max_examples=scaled(2000))
@given(size=st.lists(st.integers(1, 40), min_size=1, max_size=3), kernel=st.integers(1, 7), stride=st.integers(1, 7),
       dilation=st.integers(1, 4), padding=st.integers(0, 6), family=st.sampled_from(["conv", "max_pool", "avg_pool"]),
       ceil_mode=st.booleans())  # fmt: skip
@example(size=[17, 13], kernel=1, stride=4, dilation=3, padding=2, family="conv", ceil_mode=False)
@example(size=[1, 1], kernel=2, stride=1, dilation=2, padding=1, family="max_pool", ceil_mode=False)
def test_every_layer_reports_the_pixels_its_windows_leave(size, kernel, stride, dilation, padding, family, ceil_mode
                                                          ) -> None:  # fmt: skip
    arguments = {"kernel_size": kernel, "stride": stride, "padding": padding}
    if family != "avg_pool":
        arguments["dilation"] = dilation
    if family != "conv":
        arguments["ceil_mode"] = ceil_mode
    try:
        result = getattr(convcalc, family)(tuple(size), **arguments)
    except convcalc.InvalidLayerError:
        return
    for axis in result.axes:
        expected = walk(axis.input, axis.output, axis.kernel_size, axis.stride, axis.padding[0], axis.dilation)
        assert (axis.unread, axis.uncovered) == expected, (size, arguments)


@settings(max_examples=scaled(1500))
@given(length=st.integers(1, 14), kernel=st.integers(1, 5), stride=st.integers(1, 5), dilation=st.integers(1, 3),
       padding=st.integers(-3, 5), mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))  # fmt: skip
@example(length=5, kernel=1, stride=2, dilation=1, padding=2, mode="reflect")  # pads mirror pixels 2 and 1
def test_a_padding_mode_that_copies_pixels_reads_them_as_torchs_gradient_says(length, kernel, stride, dilation,
                                                                              padding, mode) -> None:  # fmt: skip
    """The oracle is torch's own: an input pixel is read where the gradient of the summed output reaches it."""
    import torch

    try:
        result = convcalc.conv((length,), kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                               padding_mode=mode)  # fmt: skip
    except convcalc.InvalidLayerError:
        return
    layer = torch.nn.Conv1d(1, 1, kernel, stride=stride, padding=padding, dilation=dilation, padding_mode=mode,
                            bias=False)  # fmt: skip
    torch.nn.init.ones_(layer.weight)
    x = torch.ones(1, 1, length, requires_grad=True)
    layer(x).sum().backward()
    read = [index for index, grad in enumerate(x.grad[0, 0].tolist()) if grad]
    (axis,) = result.axes
    assert (axis.unread, axis.uncovered) == (length - len(read), length - 1 - max(read) if read else length)


def test_the_issues_examples() -> None:
    assert [axis.uncovered for axis in convcalc.conv((17, 13), kernel_size=(1, 2), stride=4, padding=2,
                                                     dilation=3).axes] == [2, 2]  # fmt: skip
    pool = convcalc.max_pool((1, 1), kernel_size=2, stride=1, padding=1, dilation=2)
    assert [(axis.unread, axis.uncovered) for axis in pool.axes] == [(1, 1), (1, 1)]  # no pixel is read
    shown = CliRunner().invoke(main, ["conv", "17x13", "--k", "1x2", "--s", "4", "--p", "2", "--d", "3", "--json"])
    data = json.loads(shown.stdout)
    assert data["uncovered"] == [2, 2] and data["unread"] == [13, 7]


LAYER = st.fixed_dictionaries({"kernel_size": st.integers(1, 4), "stride": st.integers(1, 3),
                               "dilation": st.integers(1, 2), "padding": st.integers(0, 1)})  # fmt: skip


@settings(max_examples=scaled(300))
@given(chain=st.lists(st.tuples(st.sampled_from(["Conv2d", "MaxPool2d"]), LAYER), min_size=1, max_size=3))
@example(chain=[("Conv2d", {"kernel_size": 1, "stride": 2, "dilation": 1, "padding": 0})])
def test_fit_lists_as_lossless_exactly_the_sizes_every_layer_reads_whole(chain) -> None:
    """A size is lossless where every window layer reads every pixel of its input, at the ends and inside: the
    walk, layer by layer, on the shapes the stack gives. ``Conv2d(k=1, s=2)`` on 9 and 11 skips every other pixel."""
    items = []
    for name, arguments in chain:
        arguments = dict(arguments)
        if name == "Conv2d":
            arguments["out_channels"] = 1
        elif arguments["padding"] > arguments["kernel_size"] // 2:
            arguments["padding"] = 0
        items.append((name, arguments, None))
    specs = resolve(items)
    found = fit((1, 1, 16, 16), specs, 1, 24)
    expected = []
    for size in found.valid:
        result = run_stack((1, 1, size, size), specs)
        if all(_walked(node.input[-1], node.output[-1], node.arguments) == 0 for node in result.rows):
            expected.append(size)
    assert list(found.lossless) == expected


def _walked(length: int, out: int, arguments: dict) -> int:
    """The pixels of the last axis that no window of a layer reads, by the walk."""

    def first(value: int | tuple[int, ...] | None) -> int | None:
        return value[0] if isinstance(value, tuple) else value

    kernel = first(arguments["kernel_size"])
    stride = first(arguments["stride"]) or kernel
    return walk(length, out, kernel, stride, first(arguments["padding"]), first(arguments.get("dilation", 1)))[0]


@settings(max_examples=scaled(100))
@given(
    sizes=st.tuples(st.integers(2, 60), st.integers(1, 60)), family=st.sampled_from(["conv", "max_pool", "avg_pool"])
)
@example(sizes=(47, 45), family="conv")
def test_solve_says_covers_all_exactly_where_every_pixel_is_read(sizes, family) -> None:
    size_in, size_out = sizes
    answers = solve((size_in,), (size_out,), family=family, max_dilation=2)
    for answer in answers:
        out = size_out
        assert answer.covers_all == (walk(size_in, out, answer.kernel_size, answer.stride, answer.padding,
                                          answer.dilation)[0] == 0), answer  # fmt: skip
    # the ranking puts every answer that covers all first
    flags = [answer.covers_all for answer in answers]
    assert flags == sorted(flags, reverse=True)


@pytest.mark.parametrize(("stride", "sizes"), [(2, range(8, 14)), (3, range(9, 16))])
def test_a_strided_one_by_one_conv_is_lossless_nowhere_it_skips(stride: int, sizes: range) -> None:
    specs = resolve([("Conv2d", {"out_channels": 1, "kernel_size": 1, "stride": stride}, None)])
    found = fit((1, 1, 9, 9), specs, sizes.start, sizes.stop - 1)
    assert found.lossless == ()  # every size skips a pixel between two windows
    assert list(found.valid) == list(sizes)
