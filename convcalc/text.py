"""Plain-text forms of sizes, shapes and torch's verdict, shared by every output.

No rich here: quiet output, errors and JSON use these without paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convcalc.verify import Verification

__all__ = ["shape_text", "size_text", "verification_text"]


def size_text(sizes: tuple[int, ...]) -> str:
    """``(28, 60)`` as ``28x60``, the form SIZE takes on the command line.

    >>> size_text((28, 60))
    '28x60'
    """
    return "x".join(str(size) for size in sizes)


def shape_text(shape: tuple[int, ...]) -> str:
    """A full shape with thousands separators.

    >>> shape_text((1, 64, 1024, 1024))
    '(1, 64, 1,024, 1,024)'
    """
    return "(" + ", ".join(f"{n:,}" for n in shape) + ")"


def verification_text(verification: Verification) -> str:
    """One line saying what torch did and whether convcalc agrees."""
    where = " and ".join(verification.devices)
    torch = f"torch {verification.torch_version}"
    if verification.torch_shape is None:
        outcome = f"rejects the layer ({verification.torch_error})"
    else:
        outcome = f"gives {shape_text(verification.torch_shape)}"
    skipped = "; a CPU run would be too large" if verification.cpu_skipped else ""
    verdict = "agrees" if verification.agrees else "DISAGREES"
    return f"verify: {torch} {verdict}: it {outcome} (ran on {where}{skipped})"
