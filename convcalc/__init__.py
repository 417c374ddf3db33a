"""convcalc: exact PyTorch output sizes for CNN layers, without torch.

>>> from convcalc import conv, max_pool
>>> conv((227, 227), kernel_size=11, stride=4).output
(55, 55)
>>> max_pool((55, 55), kernel_size=3, stride=2).output
(27, 27)
"""

from convcalc.errors import ConvcalcError, InvalidLayerError
from convcalc.layers import Axis, LayerResult, avg_pool, conv, conv_transpose, max_pool

__version__ = "0.1.0"

__all__ = [
    "Axis",
    "ConvcalcError",
    "InvalidLayerError",
    "LayerResult",
    "__version__",
    "avg_pool",
    "conv",
    "conv_transpose",
    "max_pool",
]
