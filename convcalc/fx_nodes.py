"""What convcalc import reads from a node of a graph torch.fx traced: its op's name, its value at the traced
input, whether it is a tensor, and how to name it to a user. The importer's passes share these (one rule, one
place); nothing here imports torch at import time."""

from __future__ import annotations

from typing import Any

from convcalc.catalog import LAYERS, Form

__all__ = ["concrete", "describe", "guard", "is_tensor", "layer_kind", "op_name"]


def guard(condition: Any, outcome: bool, why: str = "") -> None:
    """A marker in the traced graph: the code branched on ``condition``, which was ``outcome`` at the traced shape
    (or the file needs it to stay so, ``why``)."""


def concrete(value: Any) -> Any:
    """``value`` with each proxy replaced by its value on the meta device (lists kept as plain lists)."""
    import torch.fx

    if isinstance(value, torch.fx.Proxy):
        return value.node.meta["value"]
    if isinstance(value, torch.fx.Node):
        return value.meta.get("value")
    if type(value) in (list, tuple) or isinstance(value, list):
        items = [concrete(item) for item in value]
        return tuple(items) if isinstance(value, tuple) and type(value) is tuple else items
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(concrete(item) for item in value))
    if isinstance(value, tuple):
        return tuple(concrete(item) for item in value)
    if isinstance(value, dict):
        return {key: concrete(item) for key, item in value.items()}
    if isinstance(value, slice):
        return slice(concrete(value.start), concrete(value.stop), concrete(value.step))
    return value


def layer_kind(module: Any) -> str | None:
    """The catalogue's name for a module that is a torch.nn layer (or one of torchvision's the catalogue has), or
    a subclass of one whose forward is the layer's own (torchvision's Conv3DSimple): traced as one step."""
    for cls in type(module).__mro__:
        name = cls.__name__
        if name not in LAYERS or not _torch_class(cls, LAYERS[name].form):
            continue
        if type(module).forward is cls.forward:
            return name
        return None
    return None


def _torch_class(cls: type, form: Form) -> bool:
    where = cls.__module__
    if form is Form.TORCHVISION:
        return where.startswith("torchvision.")
    return where.startswith("torch.nn.")


def is_tensor(value: Any) -> bool:
    import torch

    return hasattr(value, "meta") and isinstance(value.meta.get("value"), torch.Tensor)


def op_name(node: Any) -> str:
    """The op's name: a method's, or a function's (``torch.flatten``, ``F.relu``, ``operator.add``)."""
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", str(node.target))


_PUBLIC = {
    "torch._C._fft": ("torch.fft", "fft_"),
    "torch._C._linalg": ("torch.linalg", "linalg_"),
    "torch._C._special": ("torch.special", "special_"),
    "torch._C._nn": ("torch.nn.functional", ""),
    "torch._C._VariableFunctions": ("torch", ""),
}
"""Where torch's compiled functions are, and the names users call them by."""


def describe(node: Any) -> str:
    if node.op == "call_method":
        return f"the tensor method .{node.target}()"
    if node.op == "call_function":
        module = getattr(node.target, "__module__", None) or ""
        name = getattr(node.target, "__name__", str(node.target))
        for inner, public in _PUBLIC.items():  # torch._C._fft.fft_rfft2 is torch.fft.rfft2 to its user
            if module.startswith(inner):
                module, name = public[0], name.removeprefix(public[1])
        if module in ("_operator", "operator"):
            return f"the operator {name}"
        return f"the function {module + '.' if module else ''}{name}"
    if node.op == "call_module":
        return f"the module {node.target}"
    return f"{node.op} {node.target}"
