"""convcalc: exact PyTorch output sizes for CNN layers, without torch.

>>> from convcalc import conv, max_pool
>>> conv((227, 227), kernel_size=11, stride=4).output
(55, 55)
>>> max_pool((55, 55), kernel_size=3, stride=2).output
(27, 27)

Whole networks: :func:`stack`, :func:`fit` and :func:`solve` (see :mod:`convcalc.api`), loaded on first use so
that ``import convcalc`` stays light.
"""

from typing import TYPE_CHECKING, Any

from convcalc.errors import ConvcalcError, InvalidLayerError, SourceError
from convcalc.layers import Axis, LayerResult, avg_pool, conv, conv_transpose, max_pool

if TYPE_CHECKING:
    from convcalc.api import Diagram, Network, fit, solve, stack

__version__ = "0.1.0"

_API = frozenset({"Diagram", "Network", "fit", "solve", "stack"})


def __getattr__(name: str) -> Any:
    """The whole-network API, imported when first asked for (it needs YAML and more of convcalc)."""
    if name in _API:
        from convcalc import api

        return getattr(api, name)
    raise AttributeError(f"module 'convcalc' has no attribute {name!r}")


__all__ = [
    "Axis",
    "ConvcalcError",
    "Diagram",
    "InvalidLayerError",
    "LayerResult",
    "Network",
    "SourceError",
    "__version__",
    "avg_pool",
    "conv",
    "conv_transpose",
    "fit",
    "max_pool",
    "solve",
    "stack",
]
