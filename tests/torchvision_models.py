"""torchvision's model code, the reference for whole networks, loaded without torchvision's compiled ops.

PyPI's torchvision 0.28 wheel, beside the CPU build of torch 2.13 that the tests
install (constraints.txt), fails to import: its C++ extension registers
operators (``torchvision::nms``) that this torch cannot load. The models need
none of them: they are plain ``torch.nn`` code. So before torchvision is
imported, its ``extension`` module (which loads the library) and the two
modules that register meta and autograd kernels for those operators are
replaced by stand-ins that load nothing. Detection ops that need the compiled
kernels (``nms``, ``roi_align``) then refuse to run; no test calls them.

>>> models().swin_t().num_classes if False else "ok"
'ok'
"""

from __future__ import annotations

import functools
import sys
import types
from typing import Any

__all__ = ["models", "torchvision"]


def _stand_ins() -> None:
    if "torchvision" in sys.modules:
        return
    extension = types.ModuleType("torchvision.extension")
    extension._has_ops = lambda: False  # type: ignore[attr-defined]

    def _assert_has_ops() -> None:
        raise RuntimeError("torchvision's compiled ops are not loaded in the tests (tests/torchvision_models.py)")

    extension._assert_has_ops = _assert_has_ops  # type: ignore[attr-defined]
    extension._load_library = lambda name: None  # type: ignore[attr-defined]
    sys.modules["torchvision.extension"] = extension
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules[name] = types.ModuleType(name)


_stand_ins()  # on import: whatever imports torchvision next (torchvision.ops, a test) gets the stand-ins


@functools.cache
def torchvision() -> Any:
    """The torchvision package, its compiled ops left out."""
    _stand_ins()
    import torchvision as package

    return package


def models() -> Any:
    """``torchvision.models``."""
    return torchvision().models
