"""The errors convcalc raises on purpose.

Every one of them derives from :class:`ConvcalcError`, so catching that one
class covers everything the library rejects deliberately.
"""

from __future__ import annotations

__all__ = ["ConvcalcError", "InvalidLayerError"]


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
