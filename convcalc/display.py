"""Results shown where people look: as text, in rich, and in notebooks.

Every result (one layer, a stack, solve's answers, fit's sizes) shows itself as the table the CLI prints:

- ``print(result.table())`` or :func:`text`: the table as plain text, as wide as asked (as wide as it needs by
  default, as the CLI writes into a pipe);
- in Jupyter, through ``_repr_mimebundle_``: the table as HTML (rich's styles, escaped) beside the same table as
  text (what IPython's terminal shows);
- in rich (``rich.print(result)``), through ``__rich_console__``: the table fitted to that console.

The results' ``repr`` stays one short line, for a plain REPL. The classes call this module only when asked to show
themselves, so that ``import convcalc`` never loads rich.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

__all__ = ["NOTEBOOK_WIDTH", "Shown", "bundle", "parts", "text"]

NOTEBOOK_WIDTH = 120
"""The width, in characters, of a table shown in a notebook (a cell shows about that many before it scrolls)."""

_PRE = (
    '<pre style="white-space:pre;overflow-x:auto;line-height:normal;'
    "font-family:Menlo,'DejaVu Sans Mono',consolas,'Courier New',monospace\">{code}</pre>"
)
"""How rich itself shows a renderable in Jupyter: preformatted, scrolling sideways, in the notebook's own colours."""


class Shown:
    """What every result has, to show itself: :meth:`table` as text, and the hooks of Jupyter and rich."""

    def table(self, width: int | None = None) -> str:
        """The table the CLI prints, as plain text ``width`` characters wide at most (None: as wide as it needs)."""
        return text(self, width)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return bundle(self)

    def __rich_console__(self, console: Console, options: Any) -> Any:
        yield from parts(self, console)


def parts(result: Any, output: Console) -> list[RenderableType]:
    """What ``result`` shows, drawn for ``output``: its table, and the notes under it."""
    from convcalc import render
    from convcalc.api import Network
    from convcalc.fitting import Fit, compact
    from convcalc.layers import LayerResult
    from convcalc.network import StackResult
    from convcalc.solver import Solutions

    if isinstance(result, Network):
        return [render.stack_report(output, result.result, result.dtype, depth=result.depth)]
    if isinstance(result, StackResult):
        return [render.stack_report(output, result)]
    if isinstance(result, LayerResult):
        return [render.layer_report(output, result)]
    if isinstance(result, Solutions):
        return [render.solve_report(result.input_size, result.output_size, result.family, list(result), result.limit)]
    if isinstance(result, Fit):
        return [render.fit_report(result, result.axes, (compact(result.valid), compact(result.lossless)))]
    raise TypeError(f"convcalc draws no table for {type(result).__name__}")


def _console(width: int | None, record: bool = False) -> Console:
    from rich.console import Console

    return Console(file=io.StringIO(), width=width or 10_000, record=record, highlight=False, emoji=False,
                   soft_wrap=False, color_system="truecolor" if record else None, force_terminal=record,
                   force_jupyter=False, _environ={})  # fmt: skip


def text(result: Any, width: int | None = None) -> str:
    """``result``'s table as plain text, ``width`` characters wide at most (None: as wide as it needs)."""
    from convcalc.render import show

    output = _console(width)
    show(output, *parts(result, output))
    written = output.file.getvalue()  # type: ignore[attr-defined]
    return str(written).rstrip("\n")


def bundle(result: Any, include: Any = None, exclude: Any = None) -> dict[str, str]:
    """IPython's display data for ``result``: the table as HTML, :data:`NOTEBOOK_WIDTH` wide, and as text as wide
    as the terminal IPython runs in."""
    output = _console(NOTEBOOK_WIDTH, record=True)
    for number, part in enumerate(parts(result, output)):
        if number:
            output.print()
        output.print(part, crop=False)
    html = output.export_html(inline_styles=True, code_format=_PRE)
    import shutil  # here, not at the top: it imports the compression modules, which import convcalc need not pay

    return {"text/plain": text(result, shutil.get_terminal_size((NOTEBOOK_WIDTH, 24)).columns), "text/html": html}
