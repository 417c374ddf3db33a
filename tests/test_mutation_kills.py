"""Tests that kill the mutants of formulas.py, layers.py and catalog.py that the other fast tests let live.

Each test names the mutant it kills (file, line of the code as it was mutated, and the mutation). Every expected
value comes from real torch run on its own inputs, or from torch's documented formula worked out by hand in the
comment beside it: never from convcalc itself.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from convcalc import formulas

TORCH_REJECTS = (RuntimeError, ValueError)


def torch_length(module: nn.Module, length: int) -> int | None:
    """The output length torch gives for a 1-D input of ``length`` (one channel), or None where it refuses."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = module(torch.zeros(1, 1, length))
        except TORCH_REJECTS:
            return None
    return int(out.shape[-1]) if out.shape[-1] > 0 else None


# --- formulas.py: the public functions' torch defaults ------------------------------------------------------------


def test_effective_kernel_default_dilation_is_one() -> None:
    """Kills formulas.py:37 ``dilation: int = 1`` -> 2 and -> 0 (effective_kernel's default)."""
    # torch's default dilation is 1: a kernel of 3 spans 1*(3-1)+1 = 3 input positions
    assert nn.Conv1d(1, 1, 3).dilation == (1,)
    assert formulas.effective_kernel(3) == 3


def test_conv_transpose_length_defaults_are_torchs() -> None:
    """Kills formulas.py:79 ``stride: int = 1`` -> 2, -> 0 and formulas.py:80 ``padding: int = 0`` -> 1, -> -1."""
    expected = torch_length(nn.ConvTranspose1d(1, 1, kernel_size=3), 5)  # (5-1)*1 - 0 + (3-1) + 0 + 1 = 7
    assert expected == 7
    assert formulas.conv_transpose_length(5, kernel_size=3) == expected


def test_pool_length_defaults_are_torchs() -> None:
    """Kills formulas.py:98 ``padding = (0, 0)`` -> (1, 0), (-1, 0), (0, 1), (0, -1); formulas.py:99
    ``dilation: int = 1`` -> 2, -> 0; formulas.py:100 ``ceil_mode: bool = False`` -> True."""
    # MaxPool1d defaults: padding 0, dilation 1, ceil_mode False
    assert torch_length(nn.MaxPool1d(3, stride=1), 5) == 3  # (5-3)//1 + 1
    assert formulas.pool_length(5, kernel_size=3, stride=1) == 3
    assert torch_length(nn.MaxPool1d(3, stride=2), 6) == 2  # floor((6-3)/2) + 1; ceil mode would give 3
    assert formulas.pool_length(6, kernel_size=3, stride=2) == 2


def test_drops_last_window_default_dilation_is_one() -> None:
    """Kills formulas.py:205 ``dilation: int = 1`` -> 0 (drops_last_window's default)."""
    # MaxPool1d(3, 2, padding=1, ceil_mode=True) on 4: ceil((4+2-3)/2) + 1 = 3 windows by the formula; the last
    # starts at 2*2 = 4, inside the input (which ends at padded position 4), so torch keeps it and makes 3
    ceil_count = -(-(4 + 2 - 3) // 2) + 1
    out = torch_length(nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True), 4)
    assert (ceil_count, out) == (3, 3)
    assert formulas.drops_last_window(4, kernel_size=3, stride=2, padding=(1, 1)) is False


def test_smallest_length_is_none_when_upper_gives_zero() -> None:
    """Kills formulas.py:148 ``output_length(upper) < 1`` -> ``< 0`` (an output of exactly 0 means no input works)."""
    conv = nn.Conv1d(1, 1, kernel_size=11, stride=4)
    assert all(torch_length(conv, n) is None for n in range(1, 8))  # torch refuses every input up to 7
    assert formulas.conv_length(7, kernel_size=11, stride=4) == 0  # (7-11)//4 + 1: exactly 0, the boundary
    assert formulas.smallest_length(lambda n: formulas.conv_length(n, kernel_size=11, stride=4), upper=7) is None


def test_smallest_length_can_be_one() -> None:
    """Kills formulas.py:150 ``low, high = 1, upper`` -> ``2, upper`` and -> ``0, upper``."""
    # a 1x1 conv takes an input of 1, and with padding 1 an input of 1 is the smallest in 1..upper that works
    assert torch_length(nn.Conv1d(1, 1, kernel_size=1), 1) == 1
    assert torch_length(nn.Conv1d(1, 1, kernel_size=1, padding=1), 1) == 3
    assert formulas.smallest_length(lambda n: formulas.conv_length(n, kernel_size=1), upper=10) == 1
    padded = formulas.smallest_length(lambda n: formulas.conv_length(n, kernel_size=1, padding=(1, 1)), upper=10)
    assert padded == 1
