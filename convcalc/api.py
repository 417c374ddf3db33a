"""Whole networks from Python, as the CLI runs them: :func:`stack`, :func:`fit` and :func:`solve`.

``import convcalc`` gives these three without loading them (or YAML, or rich) until one is called.

>>> import convcalc
>>> net = convcalc.stack("examples/lenet5.yaml")
>>> net
<Network 'lenet5.yaml' 1x1x32x32 -> 1x10: 61,706 params, 416,520 MACs>
>>> net.output, net.params
((1, 10), 61706)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Union

from convcalc.display import Shown, text
from convcalc.errors import SourceError
from convcalc.layers import Family

if TYPE_CHECKING:
    from convcalc.fitting import Fit
    from convcalc.network import Node, StackResult
    from convcalc.solver import Solutions
    from convcalc.spec import LayerSpec
    from convcalc.verify import StackVerification

__all__ = ["Diagram", "Network", "Source", "fit", "solve", "stack"]

Source = Union[str, "os.PathLike[str]", Mapping[str, Any]]
"""A stack file: its path, its YAML (or JSON) text, or the same as a dict."""


def _read(source: Source) -> tuple[str, tuple[int, ...], list[LayerSpec]]:
    """The name to report, the file's input shape and its checked specs."""
    from convcalc.files import read_text
    from convcalc.stackfile import load_stack

    if isinstance(source, Mapping):
        try:  # JSON is YAML: one loader, one set of checks, for files and dicts alike
            content, name = json.dumps(source, allow_nan=False), "<dict>"
        except (TypeError, ValueError) as error:
            raise SourceError(f"the stack dict holds something that is not plain data: {error}") from None
    elif isinstance(source, str) and ("\n" in source or source.lstrip().startswith("{")):
        content, name = source, "<text>"
    elif isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        content, name = read_text(path), os.path.basename(path)
    else:
        raise SourceError(f"a stack is a file name, YAML text or a dict, not {type(source).__name__}")
    shape, specs = load_stack(content, name)
    return name, shape, specs


@dataclass(frozen=True)
class Diagram:
    """An architecture diagram as SVG text: a notebook shows it inline; ``str()`` is the SVG."""

    svg: str

    def __str__(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return f"<Diagram: {len(self.svg):,} characters of SVG>"

    def _repr_svg_(self) -> str:
        return self.svg

    def png(self) -> bytes:
        """The diagram as PNG (needs cairosvg: ``pip install cairosvg``)."""
        import cairosvg

        data: bytes = cairosvg.svg2png(bytestring=self.svg.encode())
        return data

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the diagram to ``path``, as ``convcalc draw -o`` does: PNG where the name ends in ``.png``."""
        from convcalc.files import write_file

        name = os.fspath(path)
        write_file(name, self.png() if name.lower().endswith(".png") else self.svg.encode())


@dataclass(frozen=True, kw_only=True, repr=False)
class Network(Shown):
    """A stack file run on an input: its table, diagram, JSON, module and arithmetic.

    ``result`` holds the graph (:class:`~convcalc.network.StackResult`); the properties below are its totals.
    """

    name: str
    """The file's name, or ``<text>``/``<dict>``."""
    specs: tuple[LayerSpec, ...]
    file_input: tuple[int, ...]
    """The file's own input shape, on which inferred arguments were fixed."""
    result: StackResult
    dtype: str = "float32"
    """The element type of the memory figures."""
    depth: int | None = None
    """Show blocks only to this depth, each with the totals of what it holds (None: every node)."""

    def __repr__(self) -> str:
        return (f"<Network {self.name!r} {_size(self.input_shape)} -> {_size(self.output)}: {self.params:,} params, "
                f"{self.macs:,} MACs>")  # fmt: skip

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.result.input

    @property
    def output(self) -> tuple[int, ...]:
        """The output shape (the first output's, where there are several)."""
        return self.result.output

    @property
    def outputs(self) -> dict[str, tuple[int, ...]]:
        """Each named output's shape, where the file names several (``Output`` steps); else empty."""
        return {key: node.output for key, node in self.result.outputs.items()}

    @property
    def params(self) -> int:
        return self.result.total_params

    @property
    def buffers(self) -> int:
        return self.result.total_buffers

    @property
    def macs(self) -> int:
        return self.result.total_macs

    @property
    def nodes(self) -> tuple[Node, ...]:
        """Every node, as the table lists them."""
        return tuple(self.result.walk())

    def at(self, input: Sequence[int]) -> Network:
        """The same network, built on the file's input, run on ``input`` (as ``--input``)."""
        return _network(self.name, self.file_input, list(self.specs), input, self.dtype, self.depth)

    def table(self, width: int | None = None, depth: int | None = None) -> str:
        """The table ``convcalc stack`` prints, as plain text ``width`` characters wide at most (None: as wide as
        it needs), to ``depth`` where given."""
        return text(self if depth is None else replace(self, depth=depth), width)

    def as_dict(self) -> dict[str, Any]:
        """What ``convcalc stack --json`` prints, as plain data."""
        from convcalc.export import stack_dict

        return stack_dict(self.result, self.dtype)

    def to_json(self) -> str:
        """``convcalc stack --json``."""
        return json.dumps(self.as_dict(), check_circular=False)

    def csv(self) -> str:
        """``convcalc stack --csv``: one line per node (to ``depth``)."""
        from convcalc.export import stack_csv

        return stack_csv(self.result, self.depth)

    def markdown(self) -> str:
        """``convcalc stack --markdown``: the table and its totals (to ``depth``)."""
        from convcalc.export import stack_markdown

        return stack_markdown(self.result, self.dtype, self.depth)

    def emit_torch(self, name: str | None = None) -> str:
        """``convcalc stack --emit torch``: the network as a self-contained PyTorch module's source."""
        from convcalc.emit import emit_torch

        return emit_torch(list(self.specs), self.result, name or os.path.splitext(self.name.strip("<>"))[0])

    def explain(self) -> str:
        """``--explain``: each conv and pool layer's arithmetic, step by step, as plain text."""
        from convcalc.explain import explain, row_result

        parts = []
        for node in self.result.walk():
            layer = row_result(node.type, node.input, node.arguments)
            if layer is not None:
                parts.append(f"#{node.id} {explain(layer)}")
        return "\n\n".join(parts)

    def draw(self, *, width: int = 1200, theme: str = "light", title: str | None = None) -> Diagram:
        """``convcalc draw``: the architecture diagram, shown inline in a notebook."""
        from convcalc.draw import draw_svg

        return Diagram(draw_svg(self.result, width=width, theme=theme, title=title))

    def verify(self) -> StackVerification:
        """``--verify``: torch builds the network on the meta device and runs it; the verdict per node (needs
        torch)."""
        from convcalc.verify import verify_stack

        return verify_stack(list(self.specs), self.result)

    def fit(self, low: int = 32, high: int = 1024) -> Fit:
        """``convcalc fit``: the square sizes from ``low`` to ``high`` this network takes."""
        from convcalc.fitting import fit

        return fit(self.file_input, list(self.specs), low, high)


def _size(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) or "()"


def _network(name: str, file_input: tuple[int, ...], specs: list[LayerSpec], input: Sequence[int] | None,
             dtype: str, depth: int | None) -> Network:  # fmt: skip
    from convcalc.fitting import run_network
    from convcalc.network import DTYPES

    if dtype not in DTYPES:
        raise SourceError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    result = run_network(file_input, specs, None if input is None else tuple(input))
    if result.error is not None:
        raise result.error
    return Network(name=name, specs=tuple(specs), file_input=file_input, result=result, dtype=dtype, depth=depth)


def stack(source: Source, *, input: Sequence[int] | None = None, dtype: str = "float32",
          depth: int | None = None) -> Network:  # fmt: skip
    """A stack file run as ``convcalc stack`` runs it: on its own input, or on ``input`` through the network built
    on its own.

    ``source`` is the file's path, its YAML (or JSON) text (any string with a line break or starting with ``{``),
    or the same as a dict. Raises :class:`~convcalc.errors.ConvcalcError`: a file that cannot be read or loaded,
    or a layer that cannot take its input (:class:`~convcalc.errors.StackError`, which names it).

    >>> stack({"input": [1, 3, 32, 32], "layers": [{"Conv2d": {"out_channels": 8, "kernel_size": 3}}]}).output
    (1, 8, 30, 30)
    """
    name, shape, specs = _read(source)
    return _network(name, shape, specs, input, dtype, depth)


def fit(source: Source, low: int = 32, high: int = 1024) -> Fit:
    """``convcalc fit``: which square input sizes from ``low`` to ``high`` the stack takes, built on its own input.

    >>> fit("examples/lenet5.yaml", 24, 40).valid  # its first Linear was built for 32x32
    (32, 33, 34, 35)
    """
    from convcalc.fitting import fit as search

    _, shape, specs = _read(source)
    return search(shape, specs, low, high)


def solve(input_size: int | Sequence[int], output_size: int | Sequence[int], *, family: Family | str = Family.CONV,
          kernel_size: int | None = None, stride: int | None = None, padding: int | None = None,
          dilation: int | None = None, output_padding: int | None = None, ceil_mode: bool | None = None,
          max_kernel: int | None = None, max_stride: int | None = None, max_dilation: int = 1, limit: int = 10
          ) -> Solutions:  # fmt: skip
    """``convcalc solve``: the settings that turn ``input_size`` into ``output_size``, best first. An int is a size
    on one axis; a one-axis size beside a longer one is given to every axis. Without ``max_kernel`` and
    ``max_stride``, the default bounds widen until something is found.

    >>> found = solve(227, 55)
    >>> found[0].short(), len(found) > 1
    ('k=11 s=4 p=0', True)
    """
    from convcalc.solver import solutions

    sizes = [(value,) if isinstance(value, int) else tuple(value) for value in (input_size, output_size)]
    if len(sizes[0]) != len(sizes[1]) and 1 in (len(sizes[0]), len(sizes[1])):
        axes = max(map(len, sizes))
        sizes = [size * axes if len(size) == 1 else size for size in sizes]
    return solutions(sizes[0], sizes[1], family=family, kernel_size=kernel_size, stride=stride, padding=padding,
                     dilation=dilation, output_padding=output_padding, ceil_mode=ceil_mode, max_kernel=max_kernel,
                     max_stride=max_stride, max_dilation=max_dilation, limit=limit)  # fmt: skip
