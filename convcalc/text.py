"""Plain-text forms of sizes, shapes and torch's verdict, shared by every output.

No layout or styles here: quiet output, errors and JSON use these without paying for them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from convcalc.verify import LayerCheck, StackVerification, Verification

__all__ = [
    "arguments_text",
    "check_text",
    "compact_arguments_text",
    "field_text",
    "printable",
    "shape_text",
    "size_text",
    "stack_verification_text",
    "verification_text",
]


_UNPRINTABLE = "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
"""Compiled by ``re`` on first use and kept in its cache (compiling it costs 0.4 ms, a twentieth of ``-q``'s time)."""


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """``text`` with every control character shown as an escape: nothing in it can steer a terminal.

    Control characters (C0, DEL, C1: ESC sequences, BEL, newlines), line and
    paragraph separators, bidirectional overrides, lone surrogates (bytes
    that were not UTF-8) and the noncharacters U+FFFE and U+FFFF (YAML refuses
    them even in a comment) become ``\\x1b``, ``\\u202e`` and the like.

    >>> printable("a\\x1b]0;owned\\x07b")
    'a\\\\x1b]0;owned\\\\x07b'
    >>> printable("Save: 인코더")
    'Save: 인코더'
    """
    return re.sub(_UNPRINTABLE, _escape, text)


def size_text(sizes: tuple[int, ...]) -> str:
    """``(28, 60)`` as ``28x60``, the form SIZE takes on the command line.

    >>> size_text((28, 60))
    '28x60'
    """
    return "x".join(str(size) for size in sizes)


def shape_text(shape: tuple[int, ...]) -> str:
    """A full shape as torch prints one (no thousands separators: their commas would read as axes).

    >>> shape_text((1, 64, 1024, 1024))
    '(1, 64, 1024, 1024)'
    """
    return "(" + ", ".join(str(n) for n in shape) + ")"


def verification_text(verification: Verification) -> str:
    """One line saying what torch did and whether convcalc agrees."""
    where = " and ".join(verification.devices)
    torch = f"torch {verification.torch_version}"
    if verification.torch_shape is None:
        outcome = f"rejects the layer ({printable(verification.torch_error)})"  # torch repeats what it was given
    else:
        outcome = f"gives {shape_text(verification.torch_shape)}"
    skipped = "; a CPU run would be too large" if verification.cpu_skipped else ""
    if verification.batch_of_one:
        skipped += "; torch holds no tensor of 2**63 bytes, so it ran a batch of 1"
    verdict = "agrees" if verification.agrees else "DISAGREES"
    return f"verify: {torch} {verdict}: it {outcome} (ran on {where}{skipped})"


_SHORT = {
    "kernel_size": "k",
    "stride": "s",
    "padding": "p",
    "dilation": "d",
    "groups": "g",
    "output_padding": "op",
    "output_size": "out",
    "scale_factor": "scale",
    "upscale_factor": "r",
    "downscale_factor": "r",
}
_CHANNELS = {"in_channels": "out_channels", "in_features": "out_features"}
_FEATURES = ("num_features", "num_channels", "normalized_shape")


def _value_text(value: Any, per_axis: bool = True) -> str:
    """A value short: per-axis values as a size (``3x5``), other lists as lists (``[0, 2, 3, 1]``)."""
    if isinstance(value, (tuple, list)):
        if not per_axis:
            return "[" + ", ".join(_value_text(v) for v in value) + "]"
        return "x".join("None" if v is None else str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def arguments_text(arguments: dict[str, Any], given: tuple[str, ...], layer: str = "") -> str:
    """The arguments that matter, short: ``3 -> 64, k=11 s=4 p=2``.

    Channels and features show as ``in -> out`` (the inferred ``in`` too: it
    answers where a Linear's 25088 comes from), a norm's channels or
    normalized shape as one size; other keywords only where the file gave them.
    Per-axis values show as a size; a padding layer's ``padding`` is not per
    axis (left, right, top, bottom...) and shows as the list it is.

    >>> arguments = {"in_channels": 3, "out_channels": 64, "kernel_size": (11, 11), "stride": 4}
    >>> arguments_text(arguments, given=("out_channels", "kernel_size", "stride"))
    '3 -> 64, k=11x11 s=4'
    >>> arguments_text({"padding": (1, 2, 3, 4)}, given=("padding",), layer="ZeroPad2d")
    'p=[1, 2, 3, 4]'
    """
    sides = layer.endswith(("Pad1d", "Pad2d", "Pad3d"))
    parts = []
    for source, target in _CHANNELS.items():
        if source in arguments:
            parts.append(f"{arguments[source]} -> {arguments[target]}")
    parts += [_value_text(arguments[name]) for name in _FEATURES if name in arguments]
    shown = [
        f"{_SHORT.get(name, name)}={_value_text(arguments[name], name in _SHORT and not (sides and name == 'padding'))}"
        for name in given
        if name not in _CHANNELS and name not in _CHANNELS.values() and name not in _FEATURES and name != "inplace"
    ]
    if shown:
        parts.append(" ".join(shown))
    return ", ".join(parts)


_COMPACT_NAMES = {"bias": "b", "momentum": "mom", "num_heads": "heads"}
"""Names the compact form shortens beyond :data:`_SHORT`: long keywords common enough to fill a narrow column."""


def _number(value: float) -> str:
    """A float in its shortest form that reads back the same: ``1e-3`` for 0.001, ``0.01`` stays."""
    text = repr(value)
    if value and "inf" not in text and "nan" not in text:
        mantissa, exponent = f"{value:e}".split("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
        scientific = f"{mantissa}e{int(exponent)}"
        if len(scientific) < len(text) and float(scientific) == value:
            return scientific
    return text


def _compact_value(value: Any, per_axis: bool) -> str:
    """A value in the fewest characters: a per-axis value that is the same on every axis once (``7`` for ``7x7``),
    lists with no spaces (``[0,2,1]``), floats short (``1e-6``)."""
    if isinstance(value, (tuple, list)):
        if per_axis and value and all(v == value[0] for v in value):
            return _compact_value(value[0], per_axis)
        if per_axis:
            return "x".join("None" if v is None else _compact_value(v, per_axis) for v in value)
        return "[" + ",".join(_compact_value(v, per_axis=False) for v in value) + "]"
    if isinstance(value, float):
        return _number(value)
    return _value_text(value)


def compact_arguments_text(arguments: dict[str, Any], given: tuple[str, ...], layer: str = "", *,
                           ascii_only: bool = False) -> str:  # fmt: skip
    """The arguments of :func:`arguments_text` in the fewest characters, for a table on a narrow terminal:
    ``3→64 k7 s2 p3 -b``.

    The same arguments, written closer. Channels or features ``in→out``
    (``in->out`` where the output cannot show the arrow: ``ascii_only``), once
    where the two are equal (``64 k1`` for ``64 -> 64, k=1``), as a per-axis
    value that is the same on every axis is written once (``k7`` for ``7x7``).
    A one-letter name of :data:`_SHORT` joins a number directly (``k7``, ``g32``,
    but ``p=same``, ``out=7``); ``momentum`` and ``num_heads`` shorten to
    ``mom`` and ``heads``. A flag given true is its name alone (``ceil_mode``),
    given false its short name after a minus: ``bias=False`` is ``-b``. Groups
    equal to the input channels (a depthwise convolution) are ``dw``. Lists have
    no spaces (``dims=[0,2,1]``), floats their shortest form (``eps=1e-3``).

    >>> arguments = {"in_channels": 3, "out_channels": 64, "kernel_size": (7, 7), "stride": 2, "padding": 3,
    ...              "groups": 1, "bias": False}
    >>> compact_arguments_text(arguments, ("out_channels", "kernel_size", "stride", "padding", "bias"))
    '3→64 k7 s2 p3 -b'
    >>> depthwise = {"in_channels": 96, "out_channels": 96, "kernel_size": 3, "padding": 1, "groups": 96}
    >>> compact_arguments_text(depthwise, ("out_channels", "kernel_size", "padding", "groups"))
    '96 k3 p1 dw'
    >>> compact_arguments_text({"num_features": 16, "eps": 0.001, "momentum": 0.01}, ("eps", "momentum"))
    '16 eps=1e-3 mom=0.01'
    >>> compact_arguments_text({"kernel_size": (1, 2, 2), "ceil_mode": True}, ("kernel_size", "ceil_mode"))
    'k1x2x2 ceil_mode'
    >>> compact_arguments_text({"p": 0.5, "inplace": False}, ("p",), layer="Dropout")
    'p=0.5'
    >>> compact_arguments_text({"in_features": 512, "out_features": 10}, ("out_features",), ascii_only=True)
    '512->10'
    """
    sides = layer.endswith(("Pad1d", "Pad2d", "Pad3d"))
    arrow = "->" if ascii_only else "\u2192"
    parts = []
    for source, target in _CHANNELS.items():
        if source in arguments:
            into, out = arguments[source], arguments[target]
            parts.append(str(into) if into == out else f"{into}{arrow}{out}")
    parts += [_compact_value(arguments[name], per_axis=True) for name in _FEATURES if name in arguments]
    for name in given:
        if name in _CHANNELS or name in _CHANNELS.values() or name in _FEATURES or name == "inplace":
            continue
        value = arguments[name]
        short = _SHORT.get(name) or _COMPACT_NAMES.get(name) or name
        if value is True:
            parts.append(name)
        elif value is False:
            parts.append(f"-{short}")
        elif name == "groups" and value != 1 and value == arguments.get("in_channels"):
            parts.append("dw")
        else:
            text = _compact_value(value, per_axis=name in _SHORT and not (sides and name == "padding"))
            joined = name in _SHORT and len(short) == 1 and text[:1].isdigit()  # not Dropout's own p
            parts.append(f"{short}{text}" if joined else f"{short}={text}")
    return " ".join(parts)


def field_text(values: tuple[Any, ...]) -> str:
    """A receptive field or jump per axis: ``11x11``, ``1/2x1/2``, or ``whole``.

    >>> field_text((11, 11)), field_text((None,)), field_text(())
    ('11x11', 'whole', '-')
    """
    if not values:
        return "-"
    if any(value is None for value in values):
        return "whole"
    return "x".join(str(value) for value in values)


def check_text(check: LayerCheck) -> str:
    """torch's verdict on one layer of a stack, short: ``ok`` or what torch did instead."""
    if check.agrees:
        return "ok" if check.torch_shape is not None else "ok, rejects"
    if check.torch_shape is None:
        return printable(f"DIFFERS: torch rejects ({check.torch_error})")
    params = "" if check.torch_params is None else f", {check.torch_params:,} params"  # a join or method has none
    return f"DIFFERS: torch gives {shape_text(check.torch_shape)}{params}"


def stack_verification_text(verification: StackVerification) -> str:
    """One line for a whole stack: torch agrees on every layer, or on how many not."""
    wrong = [check for check in verification.layers if not check.agrees]
    torch = f"torch {verification.torch_version}"
    how = "meta device, eval mode"
    if verification.batch_of_one:
        how += "; torch holds no tensor of 2**63 bytes, so both ran a batch of 1"
    if not wrong:
        return f"verify: {torch} agrees on all {len(verification.layers)} layers ({how})"
    where = ", ".join(f"layer {check.label or check.index} ({check.type})" for check in wrong)
    return f"verify: {torch} DISAGREES on {where} ({how})"
