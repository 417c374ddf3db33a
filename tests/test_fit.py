"""convcalc fit: the input sizes a stack takes, checked size by size against run_stack and torch."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import torch
from click.testing import CliRunner
from torch import nn

from convcalc.cli import main
from convcalc.fit import compact, fit
from convcalc.spec import resolve

ROOT = Path(__file__).parent.parent


def test_padded_unet_takes_multiples_of_16() -> None:
    data = json.loads(CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "unet_padded.yaml"), "--json"]).stdout)
    assert data["valid"] == list(range(32, 1025, 16))
    assert data["smallest"] == 16


def test_original_unet_sizes_are_the_papers() -> None:
    """572 is one of the sizes that leave no pixel unread: 188 + 16k."""
    data = json.loads(
        CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "unet.yaml"), "--range", "100:700", "--json"]).stdout
    )
    assert data["smallest"] == 188
    assert 572 in data["lossless"] and data["lossless"] == list(range(188, 701, 16))


def test_fit_agrees_with_torch_size_by_size() -> None:
    """A small net, every size from 1 to 40 run through torch: valid exactly where torch runs it."""
    items = [
        ("Conv2d", {"out_channels": 2, "kernel_size": 5, "stride": 2}, None),
        ("MaxPool2d", {"kernel_size": 3, "stride": 2, "ceil_mode": True}, None),
        ("Conv2d", {"out_channels": 2, "kernel_size": 3}, None),
    ]
    net = nn.Sequential(nn.Conv2d(1, 2, 5, stride=2), nn.MaxPool2d(3, stride=2, ceil_mode=True), nn.Conv2d(2, 2, 3))
    runs = []
    for size in range(1, 41):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net(torch.zeros(1, 1, size, size))
            runs.append(size)
        except RuntimeError:
            pass
    found = fit((1, 1, 8, 8), resolve(items), 1, 40)
    assert list(found.valid) == runs
    assert found.smallest == runs[0]


def test_text_output_and_bad_range() -> None:
    result = CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "vgg16.yaml"), "--range", "16:64"])
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0].strip() == "input sizes from 16 to 64"
    rows = [re.split(r"\s{3,}", line) for line in lines[3:6]]
    assert rows == [["smallest input", "32x32"], ["valid", "32:64", "33"], ["no pixel left unread", "32, 64", "2"]]
    bad = CliRunner().invoke(main, ["fit", str(ROOT / "examples" / "vgg16.yaml"), "--range", "64:16"])
    assert bad.exit_code == 2
    assert "--range '64:16' is not LOW:HIGH" in bad.stderr


def test_compact_runs() -> None:
    assert compact([]) == ""
    assert compact([5]) == "5"
    assert compact([1, 2]) == "1, 2"
    assert compact([2, 4, 6, 7]) == "2:6:2, 7"
