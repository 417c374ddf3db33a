"""``--explain``: the arithmetic of one layer, step by step, as the notes work it out.

Plain text for a student to follow: the formula, the numbers put in, the
division, the rounding, and what the rounding costs (pixels no window reads,
a ceil-mode window that torch drops, the padding 'same' works out to).

>>> from convcalc.layers import conv
>>> print(explain(conv((64, 64), kernel_size=7, stride=2)))  # doctest: +NORMALIZE_WHITESPACE
Conv2d on 64x64 gives 29x29.
H, W: output = (input - kernel_size + 2*padding) / stride + 1
      = (64 - 7 + 2*0) / 2 + 1
      = 57 / 2 + 1 = 29.5, rounded down to 29
      The 29 windows start at 0, 2, ..., 56; the last one ends at 62, so input pixel 63 is never read (1 pixel).
"""

from __future__ import annotations

from fractions import Fraction

from convcalc import formulas, layers
from convcalc.layers import Axis, Family, LayerResult
from convcalc.text import size_text

__all__ = ["explain", "explain_row", "explanation", "row_result"]


def _number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{float(value):.4g}"


def _padding(axis: Axis) -> tuple[str, str]:
    """The padding term of the formula, in words and in numbers."""
    before, after = axis.padding
    if before == after:
        return "2*padding", f"2*{before}"
    return "padding_before + padding_after", f"{before} + {after}"


def _kernel(axis: Axis) -> tuple[str, str, list[str]]:
    if axis.dilation == 1:
        return "kernel_size", str(axis.kernel_size), []
    span = formulas.effective_kernel(axis.kernel_size, axis.dilation)
    note = (
        f"With dilation {axis.dilation} the kernel spans dilation*(kernel_size-1)+1 = "
        f"{axis.dilation}*({axis.kernel_size}-1)+1 = {span} pixels."
    )
    return "span", str(span), [note]


def _windowed(result: LayerResult, axis: Axis) -> list[str]:
    """Conv and pooling: the notes' formula, the division, the rounding."""
    word, number = _padding(axis)
    kernel_word, kernel_number, lines = _kernel(axis)
    before, after = axis.padding
    numerator = axis.input - formulas.effective_kernel(axis.kernel_size, axis.dilation) + before + after
    ceil = result.parameters.get("ceil_mode", False)
    exact = Fraction(numerator, axis.stride) + 1
    lines += [
        f"output = (input - {kernel_word} + {word}) / stride + 1",
        f"= ({axis.input} - {kernel_number} + {number}) / {axis.stride} + 1",
    ]
    if exact.denominator == 1:
        lines.append(f"= {numerator} / {axis.stride} + 1 = {_number(exact)}")
    elif ceil:
        rounded = -(-numerator // axis.stride) + 1
        lines.append(f"= {numerator} / {axis.stride} + 1 = {_number(exact)}, rounded up (ceil_mode) to {rounded}")
        if axis.dropped_window:
            start = (rounded - 1) * axis.stride
            lines.append(
                f"Window {rounded} would start at {start}, which is in the right padding (the input and the "
                f"left padding end at {axis.input + before - 1}), so torch drops it: {axis.output}."
            )
    else:
        lines.append(f"= {numerator} / {axis.stride} + 1 = {_number(exact)}, rounded down to {axis.output}")
    if result.parameters.get("padding") == "same":
        total = before + after
        where = " (the extra pixel goes after, as in torch)" if before != after else ""
        lines.append(
            f"padding='same' pads dilation*(kernel_size-1) = {total} in all: {before} before and {after} after{where}."
        )
    if axis.uncovered:
        last_start = (axis.output - 1) * axis.stride
        first_lost = axis.input - axis.uncovered
        pixels = "pixel" if axis.uncovered == 1 else "pixels"
        lost = f"{first_lost}" if axis.uncovered == 1 else f"{first_lost}..{axis.input - 1}"
        starts = f"0, {axis.stride}, ..., {last_start}" if axis.output > 2 else f"0 and {last_start}"
        counted = " (counted on the padded input)" if before else ""
        last_end = last_start + formulas.effective_kernel(axis.kernel_size, axis.dilation) - 1
        if not first_lost:
            reads = "no window reads any input pixel"
        elif last_end - before == first_lost - 1:
            reads = f"the last one ends at {last_end}"
        else:
            reads = f"the last input pixel a window reads is {first_lost - 1}"
        lines.append(
            f"The {axis.output} windows start at {starts}{counted}; {reads}, so input {pixels} {lost} "
            f"{'is' if axis.uncovered == 1 else 'are'} never read ({axis.uncovered} {pixels})."
        )
    inside = (axis.unread or 0) - (axis.uncovered or 0)
    if inside > 0:
        pixels = "pixel falls" if inside == 1 else "pixels fall"
        lines.append(
            f"{inside} {'more ' if axis.uncovered else ''}input {pixels} between the taps of the windows (the stride "
            "is longer than a window, or the dilation leaves gaps) and "
            f"{'is' if inside == 1 else 'are'} never read either."
        )
    return lines


def _transposed(axis: Axis) -> list[str]:
    p, op = axis.padding[0], axis.output_padding
    return [
        "output = (input - 1)*stride - 2*padding + dilation*(kernel_size - 1) + output_padding + 1",
        f"= ({axis.input} - 1)*{axis.stride} - 2*{p} + {axis.dilation}*({axis.kernel_size} - 1) + {op} + 1",
        f"= {(axis.input - 1) * axis.stride} - {2 * p} + {axis.dilation * (axis.kernel_size - 1)} + {op} + 1"
        f" = {axis.output}",
    ]


def explanation(result: LayerResult) -> tuple[str, list[tuple[str, list[str]]]]:
    """The layer's arithmetic: a title, then for each group of axes that work out alike, their lines."""
    transposed = result.family is Family.CONV_TRANSPOSE
    blocks: dict[tuple[str, ...], list[str]] = {}
    for axis in result.axes:
        lines = tuple(_transposed(axis) if transposed else _windowed(result, axis))
        blocks.setdefault(lines, []).append(axis.name)
    sizes = "x".join(str(n) for n in result.input), "x".join(str(n) for n in result.output)
    title = f"{result.layer} on {sizes[0]} gives {sizes[1]}."
    if result.stride_from_kernel:
        title += f" Its stride is kernel_size, {size_text(result.parameters['stride'])}: a pool's stride, not given."
    return title, [(", ".join(names), list(lines)) for lines, names in blocks.items()]


def explain(result: LayerResult) -> str:
    """The layer's arithmetic as plain text, axis by axis (axes that work out alike share one explanation)."""
    title, blocks = explanation(result)
    out = [title]
    for names, lines in blocks:
        label = names + ": "
        indent = " " * len(label)
        out.append(label + lines[0])
        out += [indent + line for line in lines[1:]]
    return "\n".join(out)


def row_result(layer: str, input_shape: tuple[int, ...], arguments: dict[str, object]) -> LayerResult | None:
    """The one-layer result behind a row of a stack, where the layer is a conv or a pool (None otherwise)."""
    import inspect

    family = Family.of(layer)
    if family is None:
        return None
    dims = int(layer[-2])
    accepted = inspect.signature(getattr(layers, family.value)).parameters
    kwargs = {key: value for key, value in arguments.items() if key in accepted and key != "in_channels"}
    kwargs.pop("out_channels", None)
    return family.calculate(input_shape[-dims:], **kwargs)


def explain_row(layer: str, input_shape: tuple[int, ...], arguments: dict[str, object]) -> str | None:
    """The explanation of one row of a stack, as plain text, where the layer is a conv or a pool."""
    result = row_result(layer, input_shape, arguments)
    return None if result is None else explain(result)
