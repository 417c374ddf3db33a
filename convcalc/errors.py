"""The errors convcalc raises on purpose.

Every one of them derives from :class:`ConvcalcError`, so catching that one
class covers everything the library rejects deliberately.
"""

from __future__ import annotations

__all__ = ["ConvcalcError", "InvalidLayerError", "SourceError", "StackError", "StackSpecError"]


class ConvcalcError(Exception):
    """Root of every error that convcalc raises on purpose."""


class InvalidLayerError(ConvcalcError, ValueError):
    """The layer cannot run on this input: torch would reject it too.

    ``parameter`` and ``axis`` name what is wrong where they apply, so that a
    caller can point at it without parsing the message.
    """

    def __init__(self, message: str, *, parameter: str | None = None, axis: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.axis = axis


class StackSpecError(ConvcalcError):
    """A stack's layer spec is wrong before anything runs: unknown layer or argument, a value of the wrong kind."""

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.position: int | None = None
        """The 1-based position, in its list, of the item that is wrong."""


class StackError(ConvcalcError):
    """A layer of a stack cannot take the shape that reaches it; the message names the layer and the shape."""

    def __init__(self, message: str, *, index: int, layer: str, input_shape: tuple[int, ...], label: str = "",
                 line: int | None = None, node: object = None) -> None:  # fmt: skip
        super().__init__(message)
        self.node = node
        """The :class:`~convcalc.network.Node` that failed (in no result's rows): its type, arguments and inputs."""
        self.index = index
        self.layer = layer
        self.input_shape = input_shape
        self.label = label or str(index)
        self.line = line


class SourceError(ConvcalcError):
    """What :func:`convcalc.stack` was given cannot be a stack: neither a path, nor YAML text, nor a dict of plain
    data; or a ``dtype`` it does not know."""
