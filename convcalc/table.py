"""Lay out text for a terminal: tables, key-value grids and wrapped paragraphs.

convcalc draws its own tables rather than with rich: importing rich's console
and table machinery costs more than all of convcalc's own work on a VGG-16
(docs/benchmarks.md), and its layout cuts shapes short with an ellipsis when a
terminal is narrow. Here nothing is ever cut: a table that is too wide first
hides the columns its caller marks as optional, then wraps the columns that may
wrap (between words only), and past that runs wider than the terminal.

The look is rich's SIMPLE_HEAD box: a centred title, a rule under the header,
three spaces between columns, no outer border. Styles are ANSI codes; the CLI's
``click.echo`` strips them where the output is not a terminal. Widths count
characters, which is right for the ASCII text convcalc puts in tables.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["grid", "style", "table", "wrap"]

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32"}
_WORD = re.compile(r"\s*\S+\s*")
_GAP = "   "  # one space of padding either side of a one-space column separator, as rich draws SIMPLE_HEAD


def style(text: str, name: str | None) -> str:
    """``text`` in a style (``bold``, ``dim``, ``red``, ``green``) as ANSI codes; unchanged for None.

    >>> style("55", "bold")
    '\\x1b[1m55\\x1b[0m'
    """
    return f"\x1b[{_CODES[name]}m{text}\x1b[0m" if name and text else text


def wrap(text: str, width: int | None) -> list[str]:
    """``text`` broken into lines of at most ``width`` characters, between words.

    Line breaks in ``text`` are kept. A word is never cut: one longer than
    ``width`` has a line of its own, and runs past it. With ``width`` None, only
    the text's own line breaks count.

    >>> wrap("floor((64 - 7) / 2) + 1 = 29", 12)
    ['floor((64 -', '7) / 2) + 1', '= 29']
    """
    if width is None:
        return text.split("\n")
    lines = []
    for paragraph in text.split("\n"):
        line = ""
        for word in _WORD.findall(paragraph):
            length = len(word.rstrip())
            if len(line) + length <= width:
                line += word
                continue
            if line:
                lines.append(line.rstrip())
            line = word
        lines.append(line.rstrip())
    return lines


def _longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    right: Sequence[str] = (),
    bold: Sequence[str] = (),
    wrapping: Sequence[str] = (),
    optional: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """The lines of a table, and the headers of the columns hidden to fit ``width``.

    ``right``: columns justified right; ``bold``: columns drawn bold;
    ``wrapping``: columns whose cells may break between words to fit;
    ``optional``: columns hidden, in this order, while the table cannot fit
    ``width`` even with the wrapping columns at their narrowest. ``width`` None
    means no limit.
    """
    shown = list(range(len(headers)))
    columns = [[headers[i], *(row[i] for row in rows)] for i in shown]
    natural = [max(len(line) for cell in column for line in cell.split("\n")) for column in columns]
    narrowest = [
        max(_longest_word(cell) for cell in column) if name in wrapping else size
        for name, column, size in zip(headers, columns, natural)
    ]

    def span(widths: list[int]) -> int:
        return sum(widths[i] for i in shown) + len(_GAP) * (len(shown) - 1) + 2

    hidden = []
    if width is not None:
        for name in optional:
            if span(narrowest) <= width or len(shown) == 1:
                break
            shown.remove(headers.index(name))
            hidden.append(name)
    widths = list(natural)
    while width is not None and span(widths) > width:
        shrinkable = [i for i in shown if widths[i] > narrowest[i]]
        if not shrinkable:
            break  # the narrowest table still runs past the edge: wider lines, never a cut value
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1

    inner = span(widths) - 2
    lines = [" " * ((inner + 2 - len(line)) // 2) + style(line, "bold") for line in wrap(title, inner + 2)]
    lines.append("")
    lines += _row([headers[i] for i in shown], shown, widths, headers, right, headers)
    lines.append(" " + "\u2500" * inner)
    for row in rows:
        lines += _row([row[i] for i in shown], shown, widths, headers, right, bold)
    lines.append("")
    return [line.rstrip() for line in lines], hidden


def _row(
    cells: list[str],
    shown: list[int],
    widths: list[int],
    headers: Sequence[str],
    right: Sequence[str],
    bold: Sequence[str],
) -> list[str]:
    """One table row, as many lines as its tallest wrapped cell (styles around the text, not the padding)."""
    wrapped = [wrap(cell, widths[i]) for cell, i in zip(cells, shown)]
    height = max(len(lines) for lines in wrapped)
    out = []
    for n in range(height):
        parts = []
        for lines, i in zip(wrapped, shown):
            text = lines[n] if n < len(lines) else ""
            pad = " " * (widths[i] - len(text))
            text = style(text, "bold" if headers[i] in bold else None)
            parts.append(pad + text if headers[i] in right else text + pad)
        out.append(" " + _GAP.join(parts))
    return out


def grid(pairs: Sequence[tuple[str, str]], width: int | None = None) -> list[str]:
    """Bold names beside their values, the values wrapped to ``width`` under one another.

    >>> grid([("params", "9,472"), ("MACs", "7,912,128")])
    ['\\x1b[1mparams\\x1b[0m  9,472', '\\x1b[1mMACs\\x1b[0m    7,912,128']
    """
    indent = max(len(name) for name, _ in pairs) + 2
    lines = []
    for name, value in pairs:
        first, *rest = wrap(value, None if width is None else max(width - indent, 1))
        lines.append(style(name, "bold") + " " * (indent - len(name)) + first)
        lines += [" " * indent + line for line in rest]
    return lines
