"""Real torch, run on the CPU, as the judge the calculator is compared with.

Kept apart from ``convcalc.verify`` on purpose: the tests must not check the
calculator with the code that checks it for users.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import torch
from torch import nn

# What torch raises for a layer it refuses, across its Python and C++ checks.
TORCH_REJECTS = (RuntimeError, ValueError, TypeError, IndexError, NotImplementedError, ZeroDivisionError)

CLASSES = {
    "conv": (nn.Conv1d, nn.Conv2d, nn.Conv3d),
    "conv_transpose": (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d),
    "max_pool": (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d),
    "avg_pool": (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d),
}


def build(family: str, dims: int, kwargs: dict[str, Any]) -> nn.Module:
    """The torch module for a calculator call's keyword arguments."""
    ours_only = ("batch",) if family.startswith("conv") else ("batch", "in_channels")
    torch_kwargs = {name: value for name, value in kwargs.items() if name not in ours_only}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return CLASSES[family][dims - 1](**torch_kwargs)


def torch_output(family: str, size: tuple[int, ...], kwargs: dict[str, Any]) -> tuple[int, ...] | None:
    """The spatial output size torch gives, or None where torch rejects the layer."""
    return run(family, size, kwargs)[0]


def run(family: str, size: tuple[int, ...], kwargs: dict[str, Any]) -> tuple[tuple[int, ...] | None, nn.Module | None]:
    """Torch's spatial output size and the module it ran, or (None, None) where torch rejects the layer.

    An output with a zero-length axis counts as a rejection: CPU torch's
    oneDNN path returns one for a transposed conv whose output size is 0,
    which convcalc rejects on purpose.
    """
    batch = kwargs.get("batch") or 1
    channels = kwargs.get("in_channels") or 1
    try:
        module = build(family, len(size), kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = module(torch.zeros(batch, channels, *size))
    except TORCH_REJECTS:
        return None, None
    spatial = tuple(out.shape[2:])
    return (None, None) if 0 in spatial else (spatial, module)


_LAZY = {
    "Conv": ("in_channels", "LazyConv"),
    "ConvTranspose": ("in_channels", "LazyConvTranspose"),
    "BatchNorm": ("num_features", "LazyBatchNorm"),
    "InstanceNorm": ("num_features", "LazyInstanceNorm"),
    "Linear": ("in_features", "LazyLinear"),
}


def inferring_module(name: str, args: dict[str, Any], x: torch.Tensor) -> nn.Module:
    """The torch module for a stack file's layer, built from the file's own arguments.

    What the file leaves out is inferred by torch, never by convcalc: torch's
    Lazy module infers ``in_channels``, ``num_features`` or ``in_features`` on
    its first call; GroupNorm, which has no Lazy form, gets ``num_channels =
    input.size(1)``, as its documentation defines it.
    """
    kwargs = {key: tuple(v) if isinstance(v, list) and key != "unflattened_size" else v for key, v in args.items()}
    family = name[:-2] if name[-2:] in ("1d", "2d", "3d") else name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if family in _LAZY and _LAZY[family][0] not in kwargs:
            lazy = _LAZY[family][1]
            # a Lazy class has defaults of its own (LazyInstanceNorm: affine and track_running_stats true), so
            # the plain class's defaults, read from torch's signature, come first
            plain = inspect.signature(getattr(nn, name)).parameters.values()
            defaults = {
                p.name: p.default for p in plain if p.default is not p.empty and p.name not in ("device", "dtype")
            }
            return getattr(nn, lazy + name[len(family) :])(**(defaults | kwargs))
        if name == "GroupNorm" and "num_channels" not in kwargs:
            kwargs["num_channels"] = x.shape[1] if x.dim() > 1 else 0
        return getattr(nn, name)(**kwargs)
