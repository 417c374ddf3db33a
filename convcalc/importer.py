"""``convcalc import``: a stack file from a network written in PyTorch code.

:func:`import_module` traces a module with ``torch.fx`` and follows it on the
meta device at one input shape, then writes each step of its graph as a stack
file item: its layers with their ``module:`` names (so that ``--emit torch``
gives a module whose ``state_dict()`` is the original's), its tensor methods and
functions, and the sizes it takes from tensors (``x.shape[-2:]``, ``x.size(0)``)
as ``Dims`` and size expressions, so that the file follows any input as the
code does. What no stack file can say is refused with one error naming the op,
the module and the line of the model's code.

This is the one module besides :mod:`convcalc.verify` and :mod:`convcalc.emit`'s
output that imports torch, and only inside its functions.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import operator
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from convcalc.catalog import ELEMENTWISE, LAYERS
from convcalc.errors import ConvcalcError
from convcalc.fx_nodes import concrete, describe, guard, is_tensor, layer_kind, op_name
from convcalc.fx_updates import Updates, in_place, memory_root
from convcalc.schema import REQUIRED, Type
from convcalc.text import printable

if TYPE_CHECKING:
    from convcalc.network import StackResult

__all__ = ["ImportRefused", "Imported", "build_target", "import_module", "import_target", "module_key"]


class ImportRefused(ConvcalcError):
    """The model does something no stack file can say, or cannot be built or traced: the message names the op,
    the module and the source line, and what it would take."""


@dataclass(frozen=True, kw_only=True)
class Imported:
    """A module imported as a stack file: the file's text, the run it gives at the traced input, the modules its
    forward never calls, and notes for the user."""

    text: str
    result: StackResult
    unused: tuple[tuple[str, int, int], ...] = ()
    """(name, parameters, buffer elements) of each module forward never calls, which the file leaves out."""
    notes: tuple[str, ...] = ()
    aliases: tuple[tuple[str, str], ...] = ()
    """(key, name): keys of the original's state_dict() that name a tensor the file holds under another name."""

    def __repr__(self) -> str:
        return f"<Imported {len(self.text.splitlines())} lines, {self.result!r}>"


# ---------------------------------------------------------------------------------------------------------------
# Building the target


def build_target(target: str) -> Any:
    """The module ``package.module:callable`` or ``path/to/file.py:callable`` builds, called with no arguments,
    on the meta device where it can be built there (else on the CPU)."""
    import torch

    factory = _callable(target)
    try:
        with torch.device("meta"):
            module = factory()
    except Exception:  # some constructors read values (.item()): build them for real
        try:
            module = factory()
        except Exception as error:
            raise ImportRefused(f"{target}: calling it with no arguments failed: {type(error).__name__}: "
                                f"{error}") from None  # fmt: skip
    if not isinstance(module, torch.nn.Module):
        raise ImportRefused(f"{target} gives a {type(module).__name__}, not a torch.nn.Module: give a module class or "
                            "a function that returns a module")  # fmt: skip
    return module


def _callable(target: str) -> Callable[[], Any]:
    where, colon, name = target.rpartition(":")
    if not colon or not where or not name.isidentifier():
        raise ImportRefused(f"{target!r} is not TARGET: write package.module:callable (torchvision.models:resnet50) "
                            "or path/to/file.py:callable")  # fmt: skip
    if where.endswith(".py") or os.sep in where or "/" in where:
        if not os.path.isfile(where):
            raise ImportRefused(f"{where}: no such file")
        spec = importlib.util.spec_from_file_location(f"_convcalc_import_{abs(hash(where))}", where)
        if spec is None or spec.loader is None:
            raise ImportRefused(f"{where}: cannot be imported as a Python file")
        module = importlib.util.module_from_spec(spec)
        directory = os.path.dirname(os.path.abspath(where))
        sys.path.insert(0, directory)
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise ImportRefused(f"{where}: importing it failed: {type(error).__name__}: {error}") from None
        finally:
            sys.path.remove(directory)
    else:
        try:
            module = importlib.import_module(where)
        except Exception as error:
            raise ImportRefused(f"{where}: cannot import it: {type(error).__name__}: {error}") from None
    factory = getattr(module, name, None)
    if factory is None or not callable(factory):
        raise ImportRefused(f"{where} has no callable {name!r}")
    return factory


def import_target(target: str, input_shape: Sequence[int]) -> Imported:
    """Build ``target`` (see :func:`build_target`) and import it at ``input_shape``."""
    module = build_target(target)
    return import_module(module, input_shape, title=target)


# ---------------------------------------------------------------------------------------------------------------
# Tracing: torch.fx, with every value also computed on the meta device


@dataclass
class _Source:
    """Where in the model's code a node was made: the innermost frame outside torch and convcalc."""

    file: str
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.file}, line {self.line}: {self.code}" if self.code else f"{self.file}, line {self.line}"


def _user_frame() -> _Source | None:
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename.replace("\\", "/")
        if "/torch/" not in name and not name.endswith("convcalc/importer.py") and "<" not in name[:1]:
            import linecache

            return _Source(name, frame.f_lineno, linecache.getline(name, frame.f_lineno).strip())
        frame = frame.f_back
    return None


def _tracer_class() -> Any:
    import torch
    import torch.fx

    class Proxy(torch.fx.Proxy):
        """A proxy that knows its value at the traced shape: ``len()`` and ``int()`` read it (and freeze it)."""

        def __len__(self) -> int:
            value = self.node.meta["value"]
            if type(value) is list:  # len([0] * H): a number made from a size (a shape's length is its rank)
                return self._frozen(len)
            return len(value)

        def _frozen(self, kind: Callable[[Any], Any]) -> Any:
            value = self.node.meta["value"]
            if isinstance(value, torch.Tensor):
                self.tracer.refuse(self.node, f"{kind.__name__}() of a tensor's value (data-dependent)",
                                   "sizes that depend on the data, which no stack file follows")  # fmt: skip
            self.tracer.frozen.append((self.node, kind(value), _user_frame()))
            return kind(value)

        def __int__(self) -> int:
            return self._frozen(int)

        def __index__(self) -> int:
            return self._frozen(int)

        def __float__(self) -> float:
            return self._frozen(float)

        def __setitem__(self, key: Any, value: Any) -> None:  # attn_mask[h0:h1, w0:w1] = count: recorded
            self.tracer.create_proxy("call_function", operator.setitem, (self, key, value), {})

        # v += 1 is in place on a tensor: recorded as such, not as v = v + 1 (torch.fx's Proxy has no __iadd__),
        # so that another name for v's memory sees it
        def __iadd__(self, other: Any) -> Any:
            return self.tracer.create_proxy("call_function", operator.iadd, (self, other), {})

        def __isub__(self, other: Any) -> Any:
            return self.tracer.create_proxy("call_function", operator.isub, (self, other), {})

        def __imul__(self, other: Any) -> Any:
            return self.tracer.create_proxy("call_function", operator.imul, (self, other), {})

        def __itruediv__(self, other: Any) -> Any:
            return self.tracer.create_proxy("call_function", operator.itruediv, (self, other), {})

    class Tracer(torch.fx.Tracer):
        """torch.fx's tracer, which also runs each op on meta tensors, so that control flow on sizes takes the
        path the traced shape takes (and is recorded as a guard), and torch.nn layers convcalc knows are leaves."""

        def __init__(self, root: torch.nn.Module, example: Any) -> None:
            super().__init__(autowrap_functions=())
            self.proxy_buffer_attributes = True  # a buffer read in forward is a node of the graph, not a constant
            self.root_module = root
            self.example = example
            self.frozen: list[tuple[Any, Any, _Source | None]] = []
            self.meta_state: dict[str, Any] = {}
            for name, tensor in [*root.named_parameters(remove_duplicate=False),
                                 *root.named_buffers(remove_duplicate=False)]:  # fmt: skip
                self.meta_state[name] = tensor if tensor.is_meta else torch.empty_like(tensor, device="meta")

        def is_leaf_module(self, m: torch.nn.Module, qualified_name: str) -> bool:
            if layer_kind(m) is not None:
                return True
            if isinstance(m, (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)):
                return False
            return type(m).__module__.startswith("torch.nn") and type(m).__module__ != "torch.nn.modules.module"

        def proxy(self, node: Any) -> Any:
            return Proxy(node, self)

        def refuse(self, node: Any, what: str, needs: str) -> None:
            raise ImportRefused(_refusal(what, node, needs, _user_frame(), type(self.root_module).__name__))

        def create_proxy(self, kind: str, target: Any, args: Any, kwargs: Any, name: Any = None,
                         type_expr: Any = None, proxy_factory_fn: Any = None) -> Any:  # fmt: skip
            proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
            node = proxy.node
            source = _user_frame()
            node.meta["source"] = source
            node.meta["value"] = self.run(kind, target, args, kwargs, node)
            return proxy

        def run(self, kind: str, target: Any, args: Any, kwargs: Any, node: Any) -> Any:
            if kind == "placeholder":
                return self.example
            if kind == "get_attr":
                if target in self.meta_state:
                    return self.meta_state[target]
                value: Any = self.root_module
                for part in target.split("."):
                    value = getattr(value, part)
                return value
            if kind == "output":
                return None
            cargs, ckwargs = concrete(args), concrete(kwargs)
            try:
                with torch.fx._symbolic_trace._maybe_revert_all_patches():
                    return self.compute(kind, target, cargs, ckwargs)
            except ImportRefused:
                raise
            except Exception as error:
                raise _Refused(node, error) from None

        def compute(self, kind: str, target: Any, cargs: Any, ckwargs: Any) -> Any:
            if kind == "call_function":
                return target(*cargs, **ckwargs)
            if kind == "call_method":
                return getattr(cargs[0], target)(*cargs[1:], **ckwargs)
            leaf = self.root_module.get_submodule(target)  # call_module: a leaf, with meta stand-ins for its state
            if layer_kind(leaf) in _SHAPE_KEEPING and len(cargs) == 1 and not ckwargs:
                return torch.empty_like(cargs[0])  # its output is its input's shape: no need to run it on meta
            state = {name[len(target) + 1 :]: tensor for name, tensor in self.meta_state.items()
                     if name.startswith(target + ".")}  # fmt: skip
            return torch.func.functional_call(leaf, state, tuple(cargs), ckwargs)

        def to_bool(self, obj: Any) -> bool:
            value = obj.node.meta["value"]
            if isinstance(value, torch.Tensor):
                self.refuse(
                    obj.node,
                    "control flow on a tensor's values (data-dependent)",
                    "a branch per value, which no stack file has: the path depends on the data, not on sizes",
                )
            outcome = bool(value)
            self.create_proxy("call_function", guard, (obj, outcome), {})
            return outcome

        def iter(self, obj: Any) -> Iterator[Any]:
            value = obj.node.meta["value"]
            return iter([obj[index] for index in range(len(value))])

    return Tracer


_SHAPE_KEEPING = ELEMENTWISE | {f"{norm}{d}d" for norm in ("BatchNorm", "InstanceNorm") for d in (1, 2, 3)} | {
    "FrozenBatchNorm2d", "StochasticDepth", "LayerNorm", "GroupNorm"}  # fmt: skip
"""Layers whose output has their input's shape (the catalogue checks their arguments against it when the file runs):
traced without running them on the meta device, where BatchNorm alone cost ResNet-50's import a third."""


_VIEWS = frozenset({"getitem", "view", "reshape", "permute", "transpose", "unsqueeze", "squeeze", "flatten", "narrow",
                    "select", "expand", "contiguous", "clone", "detach", "t"})  # fmt: skip
"""Ops that make no MACs (views, or copies of one): left over unused by the update passes, they are let be."""


class _Refused(Exception):
    """An op failed on the meta device while tracing."""

    def __init__(self, node: Any, error: BaseException) -> None:
        self.node = node
        self.error = error


def _refusal(what: str, node: Any, needs: str, source: _Source | None = None, root: str = "") -> str:
    """One line: the op, the module (``root``, the model's class, at the top), the line of the model's code, and
    what it would take."""
    source = source or (node.meta.get("source") if node is not None else None)
    module = (_module_path(node) if node is not None else "") or (f"the model's own forward ({root})" if root else "")
    where = f" in {module}" if module else ""
    line = f" ({source})" if source else ""
    return f"{what}{where}{line}: no stack file can say this; it would take {needs}"


def _module_path(node: Any) -> str:
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path, kind = list(stack.values())[-1]
    name = getattr(kind, "__name__", str(kind).rsplit(".", 1)[-1].strip("'>"))
    return f"{path} ({name})" if path else name


# ---------------------------------------------------------------------------------------------------------------
# The stack file's items


@dataclass
class _Line:
    """One item of the file: its type, its arguments (as the file writes them), its module, a comment."""

    type: str
    arguments: Any = None
    module: str | None = None
    comment: str | None = None

    def text(self) -> str:
        if self.arguments is None and self.module is None:
            head = self.type
        else:
            arguments = self.arguments
            if isinstance(arguments, dict):
                mapping = dict(arguments)
                if self.module is not None:
                    mapping["module"] = self.module
                head = f"{self.type}: {_yaml(mapping)}"
            elif self.module is not None:
                raise AssertionError("a positional item has no module")
            else:
                head = f"{self.type}: {_yaml(arguments)}"
        return f"{head}  # {self.comment}" if self.comment else head


def _yaml(value: Any) -> str:
    """A YAML flow value, read back as written (floats with a point, strings quoted)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exponent = text.split("e")
            text = f"{mantissa}.0e{exponent}"
        return text
    if isinstance(value, str):
        return value if _plain_word(value) else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_yaml(item)}" for key, item in value.items()) + "}"
    raise ImportRefused(f"{value!r} ({type(value).__name__}) has no place in a stack file: no stack file can say "
                        "this; it would take that argument in the language")  # fmt: skip


_MODULE_NAME = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*")
"""What a ``module:`` key takes (convcalc.spec's rule): names or indices joined by dots."""


def module_key(name: str) -> str:
    """A module's qualified name (or a state_dict key) as a ``module:`` key takes it: each character other than a
    letter, digit, ``_`` or ``.`` replaced by ``_`` (RegNet's ``block1-0`` is ``block1_0``)."""
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)


_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "~"}


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*")


def _plain_word(text: str) -> bool:
    """Whether YAML reads ``text`` unquoted as that string: a name, or a module's dotted path."""
    return bool(_WORD.fullmatch(text)) and text.lower() not in _RESERVED


# ---------------------------------------------------------------------------------------------------------------
# Sizes: what the code takes from tensors, as expressions over Dims names


@dataclass(frozen=True)
class _Expr:
    """A size the code computed: its text in the expression language and its binding strength."""

    text: str
    strength: int

    def __str__(self) -> str:
        return self.text


_ATOM, _POWER, _UNARY, _PRODUCT, _SUM, _COMPARE, _CONDITION = 100, 90, 80, 70, 60, 50, 10
_OPERATORS: dict[Any, tuple[str, int]] = {
    operator.add: ("+", _SUM),
    operator.sub: ("-", _SUM),
    operator.mul: ("*", _PRODUCT),
    operator.floordiv: ("//", _PRODUCT),
    operator.truediv: ("/", _PRODUCT),
    operator.mod: ("%", _PRODUCT),
    operator.pow: ("**", _POWER),
    operator.eq: ("==", _COMPARE),
    operator.ne: ("!=", _COMPARE),
    operator.lt: ("<", _COMPARE),
    operator.le: ("<=", _COMPARE),
    operator.gt: (">", _COMPARE),
    operator.ge: (">=", _COMPARE),
}
_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def _wrap(value: Any, strength: int, right: bool = False) -> str:
    if isinstance(value, _Expr):
        weaker = value.strength < strength or (right and value.strength == strength)
        return f"({value.text})" if weaker else value.text
    text = _number(value)
    return f"({text})" if (isinstance(value, (int, float)) and value < 0 and strength >= _UNARY) else text


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _binary(symbol: str, strength: int, left: Any, right: Any) -> _Expr:
    if symbol == "**":  # right-associative
        return _Expr(f"{_wrap(left, strength + 1)} ** {_wrap(right, strength)}", strength)
    if strength == _COMPARE:  # (a < 0) == 0, not the chain a < 0 == 0
        return _Expr(f"{_wrap(left, strength + 1)} {symbol} {_wrap(right, strength + 1)}", strength)
    return _Expr(f"{_wrap(left, strength)} {symbol} {_wrap(right, strength, right=True)}", strength)


# ---------------------------------------------------------------------------------------------------------------
# Converting the traced graph


_F_ACTIVATIONS = {
    "relu": ("ReLU", ("input", "inplace"), {"inplace": False}),
    "relu_": ("ReLU", ("input",), {}),
    "relu6": ("ReLU6", ("input", "inplace"), {"inplace": False}),
    "hardswish": ("Hardswish", ("input", "inplace"), {"inplace": False}),
    "hardsigmoid": ("Hardsigmoid", ("input", "inplace"), {"inplace": False}),
    "silu": ("SiLU", ("input", "inplace"), {"inplace": False}),
    "mish": ("Mish", ("input", "inplace"), {"inplace": False}),
    "gelu": ("GELU", ("input", "approximate"), {"approximate": "none"}),
    "sigmoid": ("Sigmoid", ("input",), {}),
    "tanh": ("Tanh", ("input",), {}),
    "elu": ("ELU", ("input", "alpha", "inplace"), {"alpha": 1.0, "inplace": False}),
    "leaky_relu": ("LeakyReLU", ("input", "negative_slope", "inplace"), {"negative_slope": 0.01, "inplace": False}),
    "hardtanh": ("Hardtanh", ("input", "min_val", "max_val", "inplace"), {"min_val": -1.0, "max_val": 1.0}),
    "softmax": ("Softmax", ("input", "dim", "_stacklevel", "dtype"), {"dim": None, "_stacklevel": 3, "dtype": None}),
    "log_softmax": ("LogSoftmax", ("input", "dim", "_stacklevel", "dtype"), {"dim": None, "_stacklevel": 3}),
    "dropout": ("Dropout", ("input", "p", "training", "inplace"), {"p": 0.5, "training": True, "inplace": False}),
    "dropout1d": ("Dropout1d", ("input", "p", "training", "inplace"), {"p": 0.5, "training": True, "inplace": False}),
    "dropout2d": ("Dropout2d", ("input", "p", "training", "inplace"), {"p": 0.5, "training": True, "inplace": False}),
    "dropout3d": ("Dropout3d", ("input", "p", "training", "inplace"), {"p": 0.5, "training": True, "inplace": False}),
}
"""Functions (torch.nn.functional's, torch's, a tensor's methods) that are a parameter-free torch.nn layer: the layer,
the function's parameters in order, and their defaults."""

_POOLS = {
    "max_pool1d": "MaxPool1d", "max_pool2d": "MaxPool2d", "max_pool3d": "MaxPool3d",
    "avg_pool1d": "AvgPool1d", "avg_pool2d": "AvgPool2d", "avg_pool3d": "AvgPool3d",
    "adaptive_avg_pool1d": "AdaptiveAvgPool1d", "adaptive_avg_pool2d": "AdaptiveAvgPool2d",
    "adaptive_avg_pool3d": "AdaptiveAvgPool3d", "adaptive_max_pool1d": "AdaptiveMaxPool1d",
    "adaptive_max_pool2d": "AdaptiveMaxPool2d", "adaptive_max_pool3d": "AdaptiveMaxPool3d",
}  # fmt: skip
_POOL_PARAMETERS = {
    "Max": ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices"),
    "Avg": ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "Adaptive": ("input", "output_size", "return_indices"),
}

_METHODS = {
    "permute": ("input", "*dims"),
    "transpose": ("input", "dim0", "dim1"),
    "swapaxes": ("input", "axis0", "axis1"),
    "swapdims": ("input", "dim0", "dim1"),
    "reshape": ("input", "*shape"),
    "view": ("input", "*shape"),
    "flatten": ("input", "start_dim", "end_dim"),
    "squeeze": ("input", "dim"),
    "unsqueeze": ("input", "dim"),
    "select": ("input", "dim", "index"),
    "mean": ("input", "dim", "keepdim", "dtype"),
    "sum": ("input", "dim", "keepdim", "dtype"),
    "amax": ("input", "dim", "keepdim"),
    "contiguous": ("input", "memory_format"),
    "exp": ("input",),
    "clamp": ("input", "min", "max"),
    "roll": ("input", "shifts", "dims"),
    "narrow": ("input", "dim", "start", "length"),
    "normalize": ("input", "p", "dim", "eps", "out"),
    "pad": ("input", "pad", "mode", "value"),
    "interpolate": ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias"),
    "cat": ("tensors", "dim"),
    "concat": ("tensors", "dim"),
    "chunk": ("input", "chunks", "dim"),
    "split": ("input", "split_size_or_sections", "dim"),
    "tensor_split": ("input", "sections", "dim"),
    "unbind": ("input", "dim"),
    "matmul": ("input", "other"),
    "add": ("input", "other", "alpha"),
    "mul": ("input", "other"),
    "sub": ("input", "other", "alpha"),
    "div": ("input", "other", "rounding_mode"),
    "expand": ("input", "*size"),
    "repeat": ("input", "*repeats"),
    "repeat_interleave": ("input", "repeats", "dim", "output_size"),
    "size": ("input", "dim"),
    "dim": ("input",),
    "stochastic_depth": ("input", "p", "mode", "training"),
    "_assert": ("condition", "message"),
    "linear": ("input", "weight", "bias"),
    "layer_norm": ("input", "normalized_shape", "weight", "bias", "eps"),
    "group_norm": ("input", "num_groups", "weight", "bias", "eps"),
    "batch_norm": ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
    "conv1d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv2d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
    "conv3d": ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
}
"""The parameters of the methods and functions convcalc maps, in order (``*name``: the rest, as one list)."""

_DEFAULTS: dict[str, dict[str, Any]] = {
    "flatten": {"start_dim": 0, "end_dim": -1},
    "squeeze": {"dim": None},
    "mean": {"dim": None, "keepdim": False, "dtype": None},
    "sum": {"dim": None, "keepdim": False, "dtype": None},
    "amax": {"dim": (), "keepdim": False},
    "clamp": {"min": None, "max": None},
    "roll": {"dims": None},
    "normalize": {"p": 2.0, "dim": 1, "eps": 1e-12},
    "pad": {"mode": "constant", "value": None},
    "interpolate": dict(
        size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None, antialias=False
    ),
    "cat": {"dim": 0},
    "concat": {"dim": 0},
    "chunk": {"dim": 0},
    "split": {"dim": 0},
    "tensor_split": {"dim": 0},
    "unbind": {"dim": 0},
    "add": {"alpha": 1},
    "sub": {"alpha": 1},
    "div": {"rounding_mode": None},
    "size": {"dim": None},
    "stochastic_depth": {"training": True},
    "repeat_interleave": {"dim": None, "output_size": None},
    "_assert": {"message": ""},
    "linear": {"bias": None},
    "layer_norm": {"weight": None, "bias": None, "eps": 1e-5},
    "group_norm": {"weight": None, "bias": None, "eps": 1e-5},
    "batch_norm": {"weight": None, "bias": None, "training": False, "momentum": 0.1, "eps": 1e-5},
    "conv1d": {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    "conv2d": {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    "conv3d": {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1},
    "contiguous": {"memory_format": None},
    "select": {},
}


def _bind(name: str, parameters: Sequence[str], defaults: dict[str, Any], args: Sequence[Any],
          kwargs: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The call's arguments by parameter name, defaults filled in."""
    bound: dict[str, Any] = {}
    for index, parameter in enumerate(parameters):
        if parameter.startswith("*"):
            rest = list(args[index:])
            bound[parameter[1:]] = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else rest
            break
        if index < len(args):
            bound[parameter] = args[index]
    for key, item in kwargs.items():
        bound[key.lstrip("*")] = item
    for key, item in defaults.items():
        bound.setdefault(key, item)
    return bound


@dataclass
class _Step:
    """What one node of the graph becomes: the items, the tensor they start from, the other tensors they read."""

    node: Any
    lines: list[_Line]
    primary: Any | None
    """The node whose tensor the first item takes (None: the step makes its tensor from nothing)."""
    others: list[Any] = field(default_factory=list)
    """Nodes whose tensors the items read by name (``with``)."""
    names: dict[Any, str] = field(default_factory=dict)
    """Nodes the step itself names (a Parameter, a split's parts): no Save needed."""
    last: Any = None
    """The node whose tensor is current after the items (the node itself unless a split goes on from a part)."""
    commutes: bool = False
    """An Add or Mul of two tensors: the one that is current goes on, the other is read by name."""
    branches: list[list[_Step]] | None = None
    """A block's branches (a Residual's body and shortcut, a Parallel's branches), each a chain of steps."""


class _Convert:
    """The traced graph, its updates made out of place first (:class:`convcalc.fx_updates.Updates`), then walked
    once, as a flat list of steps; then written with Save and From where a step reads a
    tensor other than the one just made."""

    def __init__(self, graph: Any, root: Any, shape: tuple[int, ...]) -> None:
        self.graph = graph
        self.root = root
        self.shape = shape
        self.steps: list[_Step] = []
        self.alias: dict[Any, Any] = {}
        """Nodes that are another node's tensor (an Identity, a stochastic depth in eval mode, a contiguous())."""
        self.after: dict[Any, list[_Line]] = {}
        """Items written right after the step that makes a node's tensor: its Save and its Dims."""
        self.saved: dict[Any, str] = {}
        self.dims: dict[Any, dict[int, str]] = {}
        self.used_names: set[str] = set()
        self.parts: dict[Any, dict[int, Any]] = {}
        self.notes: list[str] = []
        self.input = next(node for node in graph.nodes if node.op == "placeholder")
        self.dims_count = 0
        self.parameters: set[str] | None = None
        self.skip: set[Any] = set()
        """Nodes another step stands for (the ops that build Swin's shifted window mask: one Constant step)."""
        self.constants: set[Any] = set()
        """Nodes a Constant step of an index kind makes (MViT's relative distances)."""
        self.first_part: dict[Any, Any] = {}
        """A split's parts but its first, each with the first: the part the file goes on from after the split."""
        self.following: dict[Any, bool] = {}
        """Whether each node's value depends on the input's sizes (see :meth:`follows_input`)."""

    # -- naming -----------------------------------------------------------------------------------------------

    def fresh(self, base: str) -> str:
        name = base
        count = 1
        while name in self.used_names:
            count += 1
            name = f"{base}_{count}"
        self.used_names.add(name)
        return name

    def name(self, node: Any) -> str:
        """The name the file saves a node's tensor under (a Save after the step that makes it, once)."""
        node = self.real(node)
        if node in self.saved:
            return self.saved[node]
        name = self.fresh("x" if node is self.input else node.name)
        self.saved[node] = name
        self.after.setdefault(node, []).append(_Line("Save", name))
        return name

    def real(self, node: Any) -> Any:
        while node in self.alias and self.alias[node] is not node:
            node = self.alias[node]
        return node

    def size_name(self, node: Any, dim: int) -> str:
        """The name a Dims step gives a dim of a node's tensor (written right after the step that makes it)."""
        node = self.real(node)
        value = node.meta["value"]
        rank = value.dim()
        dim = dim % rank if rank else dim
        named = self.dims.get(node)
        if named is None:
            named = self.dims[node] = {}
            self.dims_count += 1
            first = self.first_part.get(node)
            if first is None:
                self.after.setdefault(node, []).append(_Line("Dims", None))  # filled in at the end
            else:  # a split goes on from its first part: name another's sizes from it, then go back
                self.after.setdefault(node, []).extend([_Line("From", self.name(node)), _Line("Dims", None),
                                                        _Line("From", self.name(first))])  # fmt: skip
        if dim not in named:
            if node is self.input:
                letters = {2: "NC", 3: "NCL", 4: "NCHW", 5: "NCTHW"}.get(rank, "")
                base = letters[dim] if dim < len(letters) else f"D{dim}"
            else:
                base = f"s{self.dims_count}_{dim}"
            named[dim] = self.fresh(base)
        return named[dim]

    def finish_dims(self) -> None:
        for node, named in self.dims.items():
            rank = node.meta["value"].dim()
            names = [named.get(dim, "_") for dim in range(rank)]
            for line in self.after[node]:
                if line.type == "Dims" and line.arguments is None:
                    line.arguments = names

    # -- sizes ------------------------------------------------------------------------------------------------

    def size(self, value: Any) -> Any:
        """A size argument as the file writes it: an int, or an expression over Dims names where the code took it
        from a tensor; a list for a tuple of sizes."""
        import torch.fx

        if isinstance(value, torch.fx.Node):
            found = self.size_of(value)
            return found
        if isinstance(value, (list, tuple)):
            out: list[Any] = []
            for item in value:
                sized = self.size(item)
                if isinstance(item, torch.fx.Node) and isinstance(sized, list):
                    out += sized  # a torch.Size inside a tuple of sizes: x.shape[:-1] + (a,) is spread
                else:
                    out.append(sized)
            return out
        return value

    def size_of(self, node: Any) -> Any:
        import torch

        node = self.real(node)
        value = node.meta.get("value")
        if isinstance(value, torch.Tensor):
            self.refuse(node, "a tensor used as a size", "sizes read from a tensor's values, which depend on the data")
        target = node.target
        read = node.args[0] if node.args and is_tensor(node.args[0]) else None
        if read is not None and self.real(read).op == "get_attr" and (
                (node.op == "call_function" and target is getattr and node.args[1] == "shape")
                or (node.op == "call_method" and target in ("size", "numel"))):  # fmt: skip
            return list(value) if isinstance(value, tuple) else value  # a parameter's sizes: the same at every input
        if node.op == "call_method" and target == "numel":
            sizes = [_Expr(self.size_name(read, dim), _ATOM) for dim in range(self.real(read).meta["value"].dim())]
            product: Any = 1
            for size in sizes:
                product = size if product == 1 else _binary("*", _PRODUCT, product, size)
            return product
        if node.op == "call_function" and target is getattr and node.args[1] == "shape":
            return [_Expr(self.size_name(node.args[0], dim), _ATOM) for dim in range(len(value))]
        if node.op == "call_method" and target == "size":
            tensor = node.args[0]
            dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
            if dim is None:
                return [_Expr(self.size_name(tensor, d), _ATOM) for d in range(len(value))]
            return _Expr(self.size_name(tensor, dim), _ATOM)
        if (node.op == "call_method" and target in ("dim", "ndimension")) or (
            node.op == "call_function" and target is getattr and node.args[1] == "ndim"
        ):
            return value  # the rank: fixed for the file's input
        if node.op == "call_function" and target is operator.getitem:
            base = self.size_of(node.args[0])
            if isinstance(base, list):
                return base[node.args[1]]
        if node.op == "call_function" and target in _OPERATORS:
            symbol, strength = _OPERATORS[target]
            left, right = (self.size(argument) for argument in node.args)
            if isinstance(left, list) or isinstance(right, list):
                if symbol == "+":  # torch.Size + tuple: the sizes one after the other
                    return [*left, *right]
                if symbol == "*" and isinstance(right, int):
                    return list(left) * right
                self.refuse(node, f"{symbol} on a tuple of sizes", "that tuple arithmetic in the language")
            if not isinstance(left, _Expr) and not isinstance(right, _Expr):
                return value
            return _binary(symbol, strength, left, right)
        if node.op == "call_function" and target in (operator.neg,):
            inner = self.size(node.args[0])
            return _Expr(f"-{_wrap(inner, _UNARY)}", _UNARY) if isinstance(inner, _Expr) else value
        if node.op == "call_function" and getattr(target, "__module__", None) == "math":
            return self.math(node, value)
        if node.op == "call_function" and target in (min, max):
            parts = [self.size(argument) for argument in node.args]
            if all(not isinstance(part, _Expr) for part in parts):
                return value
            return _Expr(f"{target.__name__}({', '.join(_wrap(part, 0) for part in parts)})", _ATOM)
        plain = isinstance(value, (int, float, bool)) or (
            isinstance(value, (tuple, list)) and all(isinstance(item, int) for item in value))  # fmt: skip
        if plain and self.follows_input(node):
            self.refuse(node, f"{describe(node)} of a size", "that size computation in the expression language "
                        "(+ - * / // % **, comparisons, min, max, math.ceil and math.floor of a division)")  # fmt: skip
        if plain:  # from the sizes of parameters alone: the same at every input
            return list(value) if isinstance(value, (tuple, list)) else value
        self.refuse(node, f"{describe(node)} used as a size", "that size computation in the expression language")
        raise AssertionError

    def math(self, node: Any, value: Any) -> Any:
        name = node.target.__name__
        inner = [self.size(argument) for argument in node.args]
        if not any(isinstance(part, _Expr) for part in inner):
            return value
        if name == "ceil" and len(inner) == 1:  # ceil(a / b) for sizes: -(-a // b)
            part = inner[0]
            if isinstance(part, _Expr) and " / " in part.text and part.strength == _PRODUCT:
                left, right = part.text.rsplit(" / ", 1)
                return _Expr(f"-(-({left}) // ({right}))", _UNARY)
        if name == "floor" and len(inner) == 1:  # floor(a / b) for sizes: a // b, an int where a and b are
            part = inner[0]
            if isinstance(part, _Expr) and " / " in part.text and part.strength == _PRODUCT:
                left, right = part.text.rsplit(" / ", 1)
                return _Expr(f"({left}) // ({right})", _PRODUCT)
            return _Expr(f"{_wrap(part, _PRODUCT)} // 1", _PRODUCT)
        if name == "sqrt" and len(inner) == 1:
            return _Expr(f"{_wrap(inner[0], _POWER + 1)} ** 0.5", _POWER)
        self.refuse(node, f"math.{name} of a size", f"math.{name} in the expression language")
        raise AssertionError

    def frozen(self, node: Any, value: Any) -> None:
        source = node.meta.get("source")
        self.notes.append(f"a size computed from {describe(node)} is fixed at {value}, its value at the traced "
                          f"input{f' ({source})' if source else ''}")  # fmt: skip

    def expression(self, value: Any) -> Any:
        """A size value for the file: an int or list as is, an expression as its text."""
        if isinstance(value, _Expr):
            return value.text
        if isinstance(value, list):
            return [self.expression(item) for item in value]
        return value

    # -- refusing ---------------------------------------------------------------------------------------------

    def refuse(self, node: Any, what: str, needs: str) -> None:
        raise ImportRefused(_refusal(what, node, needs, root=type(self.root).__name__))

    # -- the walk ---------------------------------------------------------------------------------------------

    def convert(self) -> None:
        import torch

        self.unstack()
        self.unshape_as()
        updates = Updates(self.graph, self.root, self.refuse)
        updates.functionalize()
        self.unfuse_linear()
        live = self.live()
        self.refuse_dead(live)
        self.refuse_shared_weights(live)
        for node in self.graph.nodes:
            if "frozen" in node.meta and node not in self.skip:
                self.check_frozen(node)
            if node not in live or node.op in ("placeholder", "output"):
                continue
            value = node.meta.get("value")
            if node in self.skip:
                continue
            if node.op == "get_attr":
                if not self.tensor_users(node):
                    continue  # self.conv.weight.size(-1): its sizes are constants, its tensor no step of the file
                if isinstance(value, torch.nn.Parameter) or (isinstance(value, torch.Tensor) and self.is_param(node)):
                    self.parameter(node)
                elif isinstance(value, torch.Tensor):
                    self.buffer(node)
                continue
            if node.op == "call_method" and node.target == "new_zeros" and self.mask(node):
                continue
            if node.op == "call_function" and op_name(node) == "arange" and self.distance(node):
                continue
            if node.op == "call_function" and node.target is guard:
                self.guard(node)
                continue
            if node.op == "call_function" and node.target is torch._assert:
                self.check(node)
                continue
            if isinstance(value, torch.Tensor):
                self.tensor(node)
            # else: a size, a rank, a tuple of them (written where a step uses them), or a tuple of tensors (its
            # parts are converted where they are taken)
        updates.mutations(self.skip)

    def unstack(self) -> None:
        """``torch.stack(tensors, dim)``: ``torch.cat([t.unsqueeze(dim) for t in tensors], dim)``, the same values
        and the same refusals (unequal shapes, a dim out of range), new memory as stack's; no step of its own."""
        import torch

        for node in list(self.graph.nodes):
            if node.op != "call_function" or node.target is not torch.stack or set(node.kwargs) - {"tensors", "dim"}:
                continue
            bound = _bind("stack", ("tensors", "dim"), {"dim": 0}, node.args, node.kwargs)
            tensors, dim = bound["tensors"], bound["dim"]
            if not isinstance(tensors, (list, tuple)) or not all(map(is_tensor, tensors)) or not isinstance(dim, int):
                continue  # a sequence made in forward (torch.stack(x.unbind(1))): refused as an op not mapped
            parts = []
            for tensor in tensors:
                with self.graph.inserting_before(node):
                    parts.append(self.graph.call_method("unsqueeze", (tensor, dim)))
                parts[-1].meta.update({key: item for key, item in node.meta.items() if key != "value"})
                parts[-1].meta["value"] = tensor.meta["value"].unsqueeze(dim)
            with self.graph.inserting_before(node):
                joined = self.graph.call_function(torch.cat, (parts, dim))
            joined.meta.update(node.meta)
            node.replace_all_uses_with(joined)
            self.graph.erase_node(node)

    def unshape_as(self) -> None:
        """``y.expand_as(x)``, ``y.view_as(x)``, ``y.reshape_as(x)`` (the original SE block's gate): the method with
        ``x.size()``, so the sizes follow ``x`` as the file's expressions follow it."""
        for node in list(self.graph.nodes):
            if node.op != "call_method" or node.target not in ("expand_as", "view_as", "reshape_as") or node.kwargs:
                continue
            if len(node.args) != 2 or not all(map(is_tensor, node.args)):
                continue
            tensor, other = node.args
            with self.graph.inserting_before(node):
                size = self.graph.call_method("size", (other,))
                made = self.graph.call_method(str(node.target).removesuffix("_as"), (tensor, size))
            size.meta.update({key: item for key, item in node.meta.items() if key != "value"})
            size.meta["value"] = other.meta["value"].size()
            made.meta.update(node.meta)
            node.replace_all_uses_with(made)
            self.graph.erase_node(node)

    def unfuse_linear(self) -> None:
        """``F.linear(x, self.weight, bias)`` with a bias computed in forward (Swin V2's qkv bias, its key part
        zeroed): ``x @ weight.T + bias``, the weight a Parameter under its own name (a Linear step would hold a bias
        of its own under the same key)."""
        import torch

        for node in list(self.graph.nodes):
            if node.op != "call_function" or op_name(node) != "linear":
                continue
            bound = _bind("linear", _METHODS["linear"], _DEFAULTS["linear"], node.args, node.kwargs)
            bias, weight = bound["bias"], bound["weight"]
            if not is_tensor(bias) or bias.op == "get_attr" or not is_tensor(weight) or weight.op != "get_attr":
                continue
            made = []
            for target, args in ((torch.t, (weight,)), (torch.matmul, (bound["input"], None)),
                                 (operator.add, (None, bias))):  # fmt: skip
                args = tuple(made[-1] if item is None else item for item in args)
                with self.graph.inserting_before(node):
                    made.append(self.graph.call_function(target, args, {}))
                made[-1].meta.update({key: item for key, item in node.meta.items() if key != "value"})
                made[-1].meta["value"] = target(*concrete(args))
            node.replace_all_uses_with(made[-1])
            self.graph.erase_node(node)

    def is_param(self, node: Any) -> bool:
        if self.parameters is None:
            self.parameters = {name for name, _ in self.root.named_parameters(remove_duplicate=False)}
        return node.target in self.parameters

    def live(self) -> set[Any]:
        import torch

        keep: set[Any] = set()
        stack = [node for node in self.graph.nodes if node.op == "output"
                 or (node.op == "call_function" and node.target in (torch._assert, guard))]  # fmt: skip
        while stack:
            node = stack.pop()
            if node in keep:
                continue
            keep.add(node)
            stack.extend(node.all_input_nodes)
        return keep

    def refuse_dead(self, live: set[Any]) -> None:
        """An op whose result forward never uses (``_ = y @ y.T``, ``self.head(x)`` left over): torch runs it all the
        same, so its MACs count and an input it refuses is refused; a file without it would count fewer and take
        more. What an update reads (``y[i] = z * 3``, ``y.add_(u)``) is left to the update passes, which write it
        out of place or refuse it; views they leave behind make nothing and are let be."""
        import torch

        writes = [
            node
            for node in self.graph.nodes
            if in_place(node, self.root)
            or (node.op == "call_function" and node.target is operator.setitem and is_tensor(node.args[0]))
        ]
        # a write into memory that nothing live reads (z = y @ y.T; z.relu_()) is as dead as z
        roots = [memory_root(node.args[0], self.root) for node in writes]
        used, stack = set(live), [node for node, root in zip(writes, roots) if root is None or root in live]
        while stack:
            node = stack.pop()
            if node not in used:
                used.add(node)
                stack.extend(node.all_input_nodes)
        for node in self.graph.nodes:
            if node in used or node in self.skip or node.op not in ("call_function", "call_method", "call_module"):
                continue
            if not isinstance(node.meta.get("value"), torch.Tensor) or op_name(node) in _VIEWS:
                continue
            self.refuse(node, f"{describe(node)}, whose result forward never uses (torch runs it all the same: its "
                        "MACs count, and an input it refuses is refused)", "the op taken out of forward, or its "
                        "result used")  # fmt: skip

    def refuse_shared_weights(self, live: set[Any]) -> None:
        """A tensor an earlier call or read holds too: a module called twice, modules tied to one weight, a module's
        weight read in forward besides the module's call (a Siamese network, tied weights). Each step of a stack file
        holds its own, so the file would count it twice. A module without any tensor (ReLU) may be called again."""
        holder: dict[int, Any] = {}
        for node in self.graph.nodes:
            if node not in live or node.op not in ("call_module", "get_attr"):
                continue
            if node.op == "get_attr" and not self.tensor_users(node):
                continue  # self.conv.weight.size(): its sizes read, the tensor held by no step
            tensors = self.tensors_of(node)
            earlier = next((holder[id(t)] for t in tensors if id(t) in holder), None)
            if earlier is None:
                holder.update((id(t), node) for t in tensors)
                continue
            if earlier.op == node.op == "call_module" and earlier.target == node.target:
                module = self.root.get_submodule(str(node.target))
                params = sum(t.numel() for t in module.parameters())
                buffers = sum(t.numel() for t in module.buffers())
                what = f"the module {node.target} ({type(module).__name__}, {held(params, buffers)}) is called twice"
            elif earlier.op == node.op == "call_module":
                what = f"the modules {earlier.target} and {node.target} share weights"
            else:
                what = f"{self.holds(earlier)} and {self.holds(node)} use the same tensor"
            where = "; then ".join(str(n.meta["source"]) for n in (earlier, node) if n.meta.get("source"))
            raise ImportRefused(f"{what}{f' ({where})' if where else ''}: no stack file can say this, as each of its "
                                "steps holds its own weights and the file would count them twice; it would take "
                                "weights shared between layers in the language")  # fmt: skip

    def tensors_of(self, node: Any) -> list[Any]:
        """The parameters and buffers a module call or an attribute read holds (the module's own objects)."""
        if node.op == "call_module":
            module = self.root.get_submodule(str(node.target))
            return [*module.parameters(), *module.buffers()]
        for get in (self.root.get_parameter, self.root.get_buffer):
            try:
                return [get(str(node.target))]
            except AttributeError:
                continue
        return []

    @staticmethod
    def holds(node: Any) -> str:
        return f"the module {node.target}" if node.op == "call_module" else f"the tensor {node.target} read in forward"

    def add(self, node: Any, lines: list[_Line], primary: Any | None, others: Sequence[Any] = (),
            names: dict[Any, str] | None = None, last: Any = None) -> None:  # fmt: skip
        self.steps.append(_Step(node, lines, None if primary is None else self.real(primary),
                                [self.real(other) for other in others], names or {}, last or node))  # fmt: skip

    def parameter(self, node: Any) -> None:
        value = node.meta["value"]
        target = str(node.target)
        name = self.fresh(target.replace(".", "_"))
        self.saved[node] = name
        line = _Line("Parameter", {"name": name, "shape": list(value.shape)}, module=target)
        self.add(node, [line], None, names={node: name})

    def buffer(self, node: Any) -> None:
        """A registered tensor read in forward: a Buffer step where it is one of the kinds convcalc computes
        (Swin's relative position index, Swin V2's coordinates table) and holds its values (where the module holds
        values: a model built on the meta device holds none), else refused."""
        import torch

        value = node.meta["value"]
        target = str(node.target)
        owner_path, _, leaf = target.rpartition(".")
        owner = self.root.get_submodule(owner_path) if owner_path else self.root
        window = getattr(owner, "window_size", None)
        if window is None and isinstance(getattr(owner, "size", None), int):  # MaxViT's square partition
            window = [owner.size, owner.size]
        if (
            leaf in ("relative_position_index", "relative_coords_table")
            and window is not None
            and len(window) in (2, 3)
        ):
            window = [int(size) for size in window]
            from convcalc.tensors import BUFFERS

            for flat in (True, False):
                arguments = {"window_size": window} if flat else {"window_size": window, "flat": False}
                try:
                    made = BUFFERS[leaf](arguments)
                except ConvcalcError:
                    continue
                real = self.root.get_buffer(target)
                if made.shape == tuple(value.shape) and (real.is_meta or torch.equal(
                        _helper(leaf)(tuple(window), *([] if flat else [False])), real.cpu())):  # fmt: skip
                    name = self.fresh(target.replace(".", "_"))
                    self.saved[node] = name
                    line = _Line("Buffer", {"name": name, "kind": leaf, **arguments}, module=target)
                    self.add(node, [line], None, names={node: name})
                    return
        self.refuse(
            node,
            f"the buffer {target} {list(value.shape)} read in forward",
            "a Buffer step for any registered tensor (the language computes two kinds: "
            "relative_position_index and relative_coords_table)",
        )

    def mask(self, node: Any) -> bool:
        """torchvision's shifted window mask, built in forward from ``x.new_zeros((pad_H, pad_W))``, nine slice
        assignments, a view, permute, reshape, a difference and two masked_fills: one Constant step
        (``shifted_window_mask``), whose sizes follow the padded map. False where the ops are not that."""
        import torch

        closure = {node}
        order = [item for item in self.graph.nodes]
        position = {item: index for index, item in enumerate(order)}
        for item in order[position[node] + 1 :]:
            if any(source in closure for source in item.all_input_nodes) and all(
                    source in closure or not isinstance(source.meta.get("value"), torch.Tensor)
                    for source in item.all_input_nodes):  # fmt: skip
                closure.add(item)
        fills = [item for item in closure if item.op == "call_method" and item.target == "masked_fill"]
        assignments = [item for item in closure if item.op == "call_function" and item.target is operator.setitem]
        if not fills or len(assignments) not in (9, 27):
            return False
        end = max(fills, key=position.__getitem__)
        closure = {item for item in closure if position[item] <= position[end]}
        if any(user not in closure for item in closure - {end} for user in item.users):
            return False
        rank = node.meta["value"].dim()
        if rank not in (2, 3) or len(assignments) != 3**rank:
            return False
        bands: list[dict[tuple[Any, Any], slice]] = [{} for _ in range(rank)]
        for item in assignments:
            index = item.args[1]
            if not (isinstance(index, tuple) and len(index) == rank and all(isinstance(i, slice) for i in index)):
                return False
            for axis, part in enumerate(index):
                bands[axis][(concrete(part.start), concrete(part.stop))] = part
        window, shift, traced = [], [], [[], []]
        for axis in bands:  # (0, -window), (-window, -shift), (-shift, None), as torchvision slices each axis
            first = [(stop, part) for (start, stop), part in axis.items() if start == 0 and stop is not None]
            last = [(start, part) for (start, stop), part in axis.items() if stop is None]
            if len(axis) != 3 or len(first) != 1 or len(last) != 1:
                return False
            window.append(self.size(first[0][1].stop))
            shift.append(self.size(last[0][1].start))
            traced[0].append(-int(first[0][0]))
            traced[1].append(-int(last[0][0]))
        window, shift = [[_minus(item) for item in axis] for axis in (window, shift)]
        sizes = node.args[1] if len(node.args) == 2 and isinstance(node.args[1], (tuple, list)) else node.args[1:]
        size = self.size(list(sizes) if sizes else node.kwargs.get("size"))
        if not isinstance(size, list) or len(size) != rank:
            return False
        from convcalc.tensors import shifted_window_mask

        traced_size = [int(item) for item in node.meta["value"].shape]
        try:
            made = shifted_window_mask({"size": traced_size, "window_size": traced[0], "shift_size": traced[1]})
        except ConvcalcError:
            return False
        if made.shape != tuple(end.meta["value"].shape):
            return False
        expected = _helper("shifted_window_mask")(traced_size, *traced, torch.zeros(1))
        if not torch.equal(self.on_cpu(closure, end), expected):
            return False
        arguments = {"size": self.expression(size), "window_size": self.expression(window),
                     "shift_size": self.expression(shift)}  # fmt: skip
        self.constant(end, closure, "shifted_window_mask", arguments, "torchvision's attention mask, built in forward")
        return True

    def on_cpu(self, closure: set[Any], end: Any) -> Any:
        """The value ``end`` has, computed by the ops of ``closure`` (tensors made from nothing: ``arange``,
        ``new_zeros``, and what is done with them) on the CPU at the traced sizes."""
        import torch

        computed: dict[Any, Any] = {}
        for item in sorted(closure):  # torch.fx's nodes compare by their place in the graph
            args = torch.fx.node.map_arg(item.args, lambda source: computed.get(source, concrete(source)))
            kwargs = torch.fx.node.map_arg(item.kwargs, lambda source: computed.get(source, concrete(source)))
            if item.op == "call_method" and item.target == "new_zeros":
                computed[item] = torch.zeros(*args[1:], **{**kwargs, "device": "cpu"})
            elif item.op == "call_method":
                computed[item] = getattr(args[0], item.target)(*args[1:], **kwargs)
            elif op_name(item) == "arange":
                computed[item] = item.target(*args, **{**kwargs, "device": "cpu"})
            else:
                computed[item] = item.target(*args, **kwargs)
        return computed[end]

    def distance(self, node: Any) -> bool:
        """MViT's ``dist_h`` (``_add_rel_pos``): ``(arange(q)[:, None] * q_ratio - (arange(k)[None, :] + (1.0 -
        k)) * k_ratio).long()``, the row of the relative position table each query and key position reads: one
        Constant step (``relative_distance``) whose size follows q and k. The ops are recognized by what they
        compute: run on the CPU at the traced sizes, they must give the kind's values. False where they do not."""
        import torch

        ends, frontier, seen = set(), [(node, 0)], {node}
        while frontier:  # the .long() this arange leads to, a few ops on, not going past it
            item, depth = frontier.pop()
            for user in item.users:
                if user in seen or not is_tensor(user) or depth > 6:
                    continue
                seen.add(user)
                if user.op == "call_method" and user.target == "long":
                    ends.add(user)
                else:
                    frontier.append((user, depth + 1))
        if len(ends) != 1:
            return False
        end = ends.pop()
        closure, stack = set(), [end]
        while stack:  # what the .long() is computed from: tensors made from aranges alone
            item = stack.pop()
            if item in closure:
                continue
            closure.add(item)
            stack += [source for source in item.all_input_nodes if is_tensor(source)]
        aranges = sorted(item for item in closure if op_name(item) == "arange")
        read_elsewhere = any(user not in closure for item in closure - {end} for user in item.users
                             if is_tensor(user))  # fmt: skip
        if len(aranges) != 2 or read_elsewhere or any(item.op not in ("call_function", "call_method")
                                                      for item in closure):  # fmt: skip
            return False
        rows = [item for item in closure if item.op == "call_function" and item.target is operator.getitem
                and item.args[0] in aranges and tuple(item.meta["value"].shape)[1:] == (1,)]  # fmt: skip
        if len(rows) != 1:
            return False
        query = rows[0].args[0]
        key = aranges[1] if query is aranges[0] else aranges[0]
        if any(len(arange.args) != 1 or arange.kwargs.get("dtype") is not None for arange in (query, key)):
            return False
        q, k = query.args[0], key.args[0]
        if not (self.ratio(closure, query, k, q) and self.ratio(closure, key, q, k)):
            return False
        traced = [int(concrete(q)), int(concrete(k))]
        if not torch.equal(self.on_cpu(closure, end), _helper("relative_distance")(traced, torch.empty(0))):
            return False
        self.constant(end, closure, "relative_distance", {"size": self.expression([self.size(q), self.size(k)])},
                      "the relative distances torchvision computes in forward")  # fmt: skip
        return True

    def ratio(self, closure: set[Any], arange: Any, numerator: Any, denominator: Any) -> bool:
        """Whether the steps of ``arange`` are scaled by ``max(numerator / denominator, 1.0)``, as MViT scales
        them (so that the Constant, which works the ratio out at each size, computes what the code would): the
        factor is that division, or 1.0 where the division was compared with 1.0 (``max`` took the 1.0)."""
        factors = [argument for item in closure if op_name(item) == "mul" and any(
                       source in closure and arange in _ancestors(source, closure) for source in item.all_input_nodes)
                   for argument in item.args if not is_tensor(argument)]  # fmt: skip
        if len(factors) != 1:
            return False
        divisions = [user for user in numerator.users if user.target is operator.truediv and
                     tuple(user.args) == (numerator, denominator)]  # fmt: skip
        if hasattr(factors[0], "op"):
            return factors[0] in divisions
        return factors[0] == 1.0 and any(
            user.target is operator.lt and any(marker.target is guard for marker in user.users)
            for division in divisions for user in division.users)  # fmt: skip

    def constant(self, end: Any, closure: set[Any], kind: str, arguments: dict[str, Any], comment: str) -> None:
        """One Constant step of ``kind`` for the tensor ``end``, standing for the ops of ``closure``."""
        self.skip |= closure
        name = self.fresh(end.name)
        self.saved[end] = name
        if kind == "relative_distance":  # an index kind: the table it indexes checks its largest value
            self.constants.add(end)
        line = _Line("Constant", {"name": name, "kind": kind, **arguments}, comment=comment)
        self.add(end, [line], None, names={end: name})

    def follows_input(self, node: Any) -> bool:
        """Whether a value the code computed depends on the input's sizes (not only on parameters' shapes)."""
        if node not in self.following:  # one pass over the graph as it stands, in its order
            for item in self.graph.nodes:
                self.following[item] = item is self.input or any(
                    self.following.get(source, False) for source in item.all_input_nodes)  # fmt: skip
        return self.following.get(node, False)

    def check_frozen(self, node: Any) -> None:
        """A size the model's code turned into a Python number (``int(2 * max(q_h, k_h) - 1)``): fixed at its traced
        value; where it is an expression over the input's sizes, a Check that it keeps that value, so that at a size
        where it would not the file says so rather than compute something else. Refused where it follows the input
        and has no expression."""
        value, source = node.meta["frozen"]
        named = {item: set(names) for item, names in self.dims.items()}
        try:
            expression = self.size_of(node)
        except ImportRefused:
            if self.follows_input(node):
                raise
            return
        hidden = any(item in self.skip and set(names) != named.get(item, set()) for item, names in self.dims.items())
        if not isinstance(expression, _Expr) or isinstance(value, bool) or hidden:
            return  # a constant, or sizes of tensors that one step stands for (no Dims names them)
        message = (f"the model's code turns this size into a Python number{f' ({source})' if source else ''}; this "
                   f"file keeps its value at {'x'.join(map(str, self.shape))}, {value}")  # fmt: skip
        text = _wrap(expression, _COMPARE + 1)
        condition = f"{text} == {_number(value)}"
        if isinstance(value, int) and isinstance(node.meta.get("value"), float):  # int() truncated it
            low, high = (value, value + 1) if value > 0 else (value - 1, value) if value < 0 else (-1, 1)
            condition = f"({text} {'>=' if value > 0 else '>'} {low}) * ({text} {'<' if value >= 0 else '<='} {high})"
        self.add(node, [_Line("Check", {"condition": condition, "message": message})], None)
        self.steps[-1].primary = "keep"

    def guard(self, node: Any) -> None:
        condition, outcome, *why = node.args
        expression = self.size(condition)
        if not isinstance(expression, _Expr):
            return  # a rank or a constant: the same for every input the file takes
        text = expression.text
        if not outcome:
            text = _negate(expression)
        source = node.meta.get("source")
        message = (f"the model's code takes another path at sizes where this is false"
                   f"{f' ({source})' if source else ''}; this file follows the path taken at "
                   f"{'x'.join(map(str, self.shape))}")  # fmt: skip
        if why:
            message = f"{why[0]}{f' ({source})' if source else ''}"
        self.add(node, [_Line("Check", {"condition": text, "message": message})], None)
        self.steps[-1].primary = "keep"

    def check(self, node: Any) -> None:
        bound = _bind("_assert", _METHODS["_assert"], _DEFAULTS["_assert"], node.args, node.kwargs)
        expression = self.size(bound["condition"])
        if not isinstance(expression, _Expr):
            return
        message = bound["message"] if isinstance(bound["message"], str) else ""
        message = re.sub(r"Proxy\((\w+)\)", lambda match: self.proxy_text(match[1]), message)
        self.add(node, [_Line("Check", {"condition": expression.text, "message": message})], None)
        self.steps[-1].primary = "keep"

    def proxy_text(self, name: str) -> str:
        """A value the model's message shows (a size, traced as a proxy): its expression, or its traced value."""
        node = next((node for node in self.graph.nodes if node.name == name), None)
        if node is None:
            return "?"
        try:
            size = self.size(node)
        except ImportRefused:
            return str(node.meta.get("value"))
        return size.text if isinstance(size, _Expr) else str(size)

    def tensor(self, node: Any) -> None:
        if node.op == "call_module":
            self.module(node)
        elif node.op == "call_function" and node.target is operator.getitem:
            self.getitem(node)
        else:
            self.function(node)

    def module(self, node: Any) -> None:
        module = self.root.get_submodule(node.target)
        kind = layer_kind(module)
        if kind is None:
            self.refuse(node, f"the module {type(module).__module__}.{type(module).__name__}",
                        f"{type(module).__name__} in convcalc's catalogue of layers")  # fmt: skip
        tensors = [argument for argument in node.args if is_tensor(argument)]
        if kind == "MultiheadAttention":
            self.refuse(node, "MultiheadAttention's pair (output, weights) used whole", "a step that returns a pair")
        if len(tensors) != 1 or node.kwargs:
            self.refuse(node, f"{kind} called with {len(tensors)} tensors", f"a {kind} step that takes them")
        if kind == "Identity":
            self.alias[node] = tensors[0]
            return
        arguments = _module_arguments(kind, module)
        if arguments.get("inplace") and self.read_after(node, tensors[0]):
            arguments.pop("inplace")  # the same values; its input's other readers keep theirs (a clone's source)
        self.add(node, [_Line(kind, arguments, module=str(node.target))], tensors[0])

    def getitem(self, node: Any) -> None:
        import torch

        source, index = node.args
        value = source.meta.get("value")
        if isinstance(value, torch.Tensor):
            self.index(node, source, index)
            return
        if source.op == "call_module" and layer_kind(self.root.get_submodule(source.target)) == "MultiheadAttention":
            if index != 0:
                self.refuse(node, "MultiheadAttention's attention weights", "a step that returns them")
            self.attention(node, source)
            return
        if isinstance(value, (tuple, list)) and source in self.parts:
            part = self.parts[source][index % len(value)]
            if part is not node:
                self.alias[node] = part
            return
        if isinstance(value, (tuple, list)) and source.op in ("call_function", "call_method"):
            method = op_name(source)
            if method in ("chunk", "split", "tensor_split", "unbind"):
                self.split(source, method)
                part = self.parts[source][index % len(value)]
                if part is not node:
                    self.alias[node] = part
                return
            if source.op == "call_function" and source.target in (tuple, list):
                self.alias[node] = source.args[0][index]
                return
        self.refuse(node, f"item {index!r} of {describe(source)}", "that op in convcalc's catalogue")

    def attention(self, node: Any, source: Any) -> None:
        module = self.root.get_submodule(source.target)
        bound = _bind("mha", ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask",
                              "average_attn_weights", "is_causal"), {}, source.args, source.kwargs)  # fmt: skip
        query, key, value = (self.real(bound.get(name)) for name in ("query", "key", "value"))
        if not (query is key is value):
            self.refuse(
                source,
                "MultiheadAttention with different query, key and value",
                "cross-attention in the language (its MultiheadAttention step is self-attention)",
            )
        for extra in ("key_padding_mask", "attn_mask"):
            if bound.get(extra) is not None:
                self.refuse(source, f"MultiheadAttention with {extra}", f"{extra} in the MultiheadAttention step")
        if bound.get("is_causal"):
            self.refuse(source, "MultiheadAttention with is_causal", "is_causal in the MultiheadAttention step")
        arguments = _module_arguments("MultiheadAttention", module)
        self.add(node, [_Line("MultiheadAttention", arguments, module=str(source.target))], query)

    def split(self, source: Any, method: str) -> None:
        if source in self.parts:
            return
        parameters = _METHODS[method]
        bound = _bind(method, parameters, _DEFAULTS[method], source.args, source.kwargs)
        for other in ("indices", "indices_or_sections", "tensor_indices_or_sections", "split_size"):
            if other in bound:  # torch.tensor_split(x, indices=(1,)): the language's sections take both forms
                bound["sections" if method == "tensor_split" else "split_size_or_sections"] = bound.pop(other)
        value = source.meta["value"]
        names = []
        parts: dict[int, Any] = {}
        users = {user.args[1]: user for user in source.users if user.target is operator.getitem}
        for index in range(len(value)):
            user = users.get(index)
            key = user if user is not None else (source, index)
            names.append(self.fresh(user.name if user is not None else f"{source.name}_{index}"))
            parts[index] = key
            self.saved[key] = names[-1]
        self.parts[source] = parts
        self.first_part.update({part: parts[0] for index, part in parts.items() if index})
        arguments: dict[str, Any] = {}
        sections = {"chunk": "chunks", "split": "split_size_or_sections", "tensor_split": "sections"}.get(method)
        if sections:
            arguments[sections] = self.expression(self.size(bound[sections]))
        arguments["dim"] = bound["dim"]
        arguments["names"] = names
        self.add(source, [_Line(method, arguments)], bound["input"], names={parts[i]: n for i, n in enumerate(names)},
                 last=parts[0])  # fmt: skip

    def index(self, node: Any, source: Any, index: Any) -> None:
        """``x[...]``: integers select, slices narrow, None unsqueezes, one after the other."""
        import torch

        items = list(index) if isinstance(index, tuple) else [index]
        rank = source.meta["value"].dim()
        if (
            len(items) == 1
            and isinstance(items[0], torch.fx.Node)
            and (_index_table(items[0]) or self.real(items[0]) in self.constants)
        ):
            self.add(node, [_Line("index", {"with": self.name(items[0])})], source, [items[0]])
            return
        if any(isinstance(item, torch.fx.Node) and isinstance(item.meta.get("value"), torch.Tensor)
               for item in items):  # fmt: skip
            self.refuse(node, "indexing with a tensor", "an index step for any tensor (it takes Buffers of an index "
                        "kind only)")  # fmt: skip
        if items.count(...) > 1:
            self.refuse(node, "an index with two ellipses", "nothing: torch refuses it too")
        if ... in items:
            at = items.index(...)
            fill = rank - (len(items) - 1 - sum(1 for item in items if item is None))
            items = items[:at] + [slice(None)] * fill + items[at + 1 :]
        lines: list[_Line] = []
        sizes = _LazySizes(lambda axis: _Expr(self.size_name(source, axis), _ATOM), rank)
        if self.real(source).op == "get_attr":  # a parameter's sizes: the same at every input
            sizes = _LazySizes(lambda axis: int(source.meta["value"].shape[axis]), rank)
        """The sizes of the tensor as the index goes along: each as an expression over the source's Dims (named
        only where one is needed)."""
        traced = list(source.meta["value"].shape)
        dim = 0
        for item in items:
            if item is None:
                lines.append(_Line("unsqueeze", {"dim": dim}))
                sizes.insert(dim, 1)
                traced.insert(dim, 1)
                dim += 1
            elif isinstance(item, slice):
                step = self.size(item.step) if item.step is not None else 1
                if item.start in (None, 0) and item.stop is None and step == 1:
                    dim += 1
                    continue
                if step != 1:
                    lines += self.strided(node, item, step, dim, sizes, traced)
                    dim += 1
                    continue
                start = self.size(item.start) if item.start is not None else 0
                stop = self.size(item.stop) if item.stop is not None else None
                counted = []
                for bound, traced_bound in ((start, item.start), (stop, item.stop)):
                    value = concrete(traced_bound)
                    if bound is None or value is None or value >= 0:
                        counted.append(bound)
                        continue
                    if isinstance(bound, _Expr):  # x[..., -n:], n from a size
                        message = (f"x[a:b] with a bound that is negative at {'x'.join(map(str, self.shape))} "
                                   "counts it from the end; this file takes sizes where it stays negative")  # fmt: skip
                        lines.append(_Line("Check", {"condition": f"{_wrap(bound, _COMPARE + 1)} < 0",
                                                     "message": message}))  # fmt: skip
                    from_end = _plus(sizes[dim], bound)
                    if traced[dim] + value < 0:  # further back than the start: torch starts at the start
                        from_end = _Expr(f"max({_wrap(from_end, 0)}, 0)", _ATOM) if isinstance(from_end, _Expr) \
                            else max(from_end, 0)  # fmt: skip
                    counted.append(from_end)
                start, stop = counted
                if isinstance(stop, _Expr) and concrete(item.stop) > traced[dim]:  # x[..., :h] past the end
                    stop = _Expr(f"min({_wrap(stop, 0)}, {_wrap(sizes[dim], 0)})", _ATOM)
                length = _slice_length(sizes[dim], traced[dim], start, stop)
                lines.append(_Line("narrow", {"dim": dim, "start": self.expression(start),
                                              "length": self.expression(length)}))  # fmt: skip
                sizes[dim] = length
                traced[dim] = len(range(traced[dim])[concrete(item.start) : concrete(item.stop)])
                dim += 1
            else:
                lines.append(_Line("select", {"dim": dim, "index": self.expression(self.size(item))}))
                sizes.pop(dim)
                traced.pop(dim)
        if not lines:
            self.alias[node] = source
            return
        self.add(node, lines, source)

    def strided(self, node: Any, item: slice, step: Any, dim: int, sizes: list[Any], traced: list[int]
                ) -> list[_Line]:  # fmt: skip
        """``x[..., s::k, ...]`` (Swin's patch merging): the dim reshaped to (n // k, k) and index s selected, the
        same values where k divides the dim; the file checks that it does."""
        start = item.start if item.start is not None else 0
        if not isinstance(step, int) or step < 1 or not isinstance(start, int) or not 0 <= start < step or \
                item.stop is not None:  # fmt: skip
            self.refuse(node, "a slice with a step", "strided slicing in the language (x[a:b:k])")
        if traced[dim] % step:
            self.refuse(node, f"a slice with step {step} of a dim of {traced[dim]}", "strided slicing in the language")
        size = sizes[dim]
        condition = _binary("==", _COMPARE, _binary("%", _PRODUCT, size, step), 0)
        message = (f"x[{start}::{step}] is written as a reshape and a select, which needs a multiple of {step} here "
                   "(the language has no strided slice)")  # fmt: skip
        whole = [self.expression(part) for part in sizes]
        split = [*whole[:dim], self.expression(_binary("//", _PRODUCT, size, step)), step, *whole[dim + 1 :]]
        sizes[dim] = _binary("//", _PRODUCT, size, step)
        traced[dim] //= step
        return [
            _Line("Check", {"condition": self.expression(condition), "message": message}),
            _Line("reshape", split),
            _Line("select", {"dim": dim + 1, "index": start}),
        ]

    def function(self, node: Any) -> None:
        name = op_name(node)
        args, kwargs = node.args, node.kwargs
        if name in _F_ACTIVATIONS:
            self.activation(node, name)
        elif name in _POOLS:
            self.pool(node, name)
        elif name in ("add", "iadd", "mul", "imul", "sub", "isub", "truediv", "div", "radd", "rmul"):
            self.arithmetic(node, name)
        elif name in ("matmul",):
            first, second = args[0], args[1]
            self.add(node, [_Line("matmul", {"with": self.name(second)})], first, [second])
        elif name in ("cat", "concat"):
            bound = _bind(name, _METHODS[name], _DEFAULTS[name], args, kwargs)
            if not isinstance(bound["tensors"], (list, tuple)):  # torch.cat(parts[::-1]), torch.cat(x.chunk(2))
                self.refuse(node, f"torch.{name} of a sequence made in forward (a split's parts, or a slice of "
                            "them)", "the tensors listed one by one: torch.cat([p[1], p[0]])")  # fmt: skip
            tensors = list(bound["tensors"])
            first, rest = tensors[0], tensors[1:]
            arguments: dict[str, Any] = {"with": [self.name(other) for other in rest]}
            if len(rest) == 1:
                arguments["with"] = arguments["with"][0]
            arguments["dim"] = bound["dim"]
            if not rest:
                arguments = {"with": [], "dim": bound["dim"]}
                self.alias[node] = first  # torch.cat of one tensor: a copy of it
                return
            self.add(node, [_Line("Concat", arguments)], first, rest)
        elif name == "clone" and node.op == "call_method" and not node.kwargs:
            self.alias[node] = args[0]  # a copy, the same values: its updates are rewritten out of place
        elif name in ("contiguous",):
            self.add(node, [_Line("contiguous")], args[0])
        elif name == "stochastic_depth":
            bound = _bind(name, _METHODS[name], _DEFAULTS[name], args, kwargs)
            if bound["training"]:
                self.refuse(node, "stochastic_depth in training mode", "random row drops in the language")
            self.add(node, [_Line("StochasticDepth", {"p": bound["p"], "mode": bound["mode"]})], args[0])
        elif name in ("permute", "reshape", "view", "expand", "repeat"):
            bound = _bind(name, _METHODS[name], {}, args, kwargs)
            key = {"permute": "dims", "expand": "size", "repeat": "repeats"}.get(name, "shape")
            sizes = self.expression(self.size(bound[key]))
            self.add(node, [_Line(name, sizes if name != "permute" else list(sizes))], bound["input"])
        elif name in ("transpose", "flatten", "squeeze", "unsqueeze", "select", "mean", "sum", "amax", "exp", "clamp",
                      "roll", "narrow", "normalize", "pad"):  # fmt: skip
            self.method(node, name)
        elif name == "repeat_interleave":
            self.repeat_interleave(node)
        elif name == "t" and node.args[0].meta["value"].dim() == 2:
            self.add(node, [_Line("transpose", {"dim0": 0, "dim1": 1})], args[0])
        elif name in ("swapaxes", "swapdims"):  # torch's other names of transpose (MaxViT's SwapAxes)
            bound = _bind(name, _METHODS[name], {}, args, kwargs)
            dims = [self.expression(self.size(bound[key])) for key in _METHODS[name][1:]]
            self.add(node, [_Line("transpose", {"dim0": dims[0], "dim1": dims[1]})], bound["input"])
        elif name == "interpolate":
            self.interpolate(node)
        elif name in ("linear", "layer_norm", "group_norm", "batch_norm", "conv1d", "conv2d", "conv3d"):
            self.functional_layer(node, name)
        elif name == "einsum":
            self.einsum(node)
        elif name in ("chunk", "split", "tensor_split", "unbind"):
            self.refuse(node, f"{name} used whole", f"{name}'s parts taken one by one")
        else:
            self.refuse(node, describe(node), "that op in convcalc's catalogue (tensor methods, torch.nn layers "
                        "and the functions docs/stack.md lists)")  # fmt: skip

    def activation(self, node: Any, name: str) -> None:
        kind, parameters, defaults = _F_ACTIVATIONS[name]
        bound = _bind(name, parameters, defaults, node.args, node.kwargs)
        if name.startswith("dropout"):
            bound.pop("training")
        if name in ("softmax", "log_softmax"):
            if bound.pop("dtype", None) is not None:
                self.refuse(node, f"{name} with a dtype", "dtypes in the language")
            bound.pop("_stacklevel", None)
        tensor = bound.pop("input")
        arguments = {key: item for key, item in bound.items() if item != defaults.get(key, REQUIRED)}
        if node.op == "call_method" and name.endswith("_"):
            arguments["inplace"] = True
        if arguments.get("inplace") and self.read_after(node, tensor):
            arguments.pop("inplace")  # the same values; its input's other readers keep theirs (a clone's source)
        self.add(node, [_Line(kind, arguments or None)], tensor)

    def read_after(self, node: Any, tensor: Any) -> bool:
        """Whether the tensor ``node`` reads, under any name the file gives it (a clone is its source's), is read
        after ``node`` by another node: an in-place step there would change what that one reads."""
        real = self.real(tensor)
        names = {real, *(item for item in self.alias if self.real(item) is real)}
        return any(user > node and user is not node for item in names for user in item.users
                   if user.target is not guard)  # fmt: skip

    def pool(self, node: Any, name: str) -> None:
        kind = _POOLS[name]
        family = "Adaptive" if kind.startswith("Adaptive") else kind[:3]
        parameters = _POOL_PARAMETERS[family]
        bound = _bind(name, parameters, {}, node.args, node.kwargs)
        tensor = bound.pop("input")
        if bound.get("return_indices"):
            self.refuse(node, f"{name} with return_indices", "a pool step that returns a pair")
        arguments = _drop_defaults(kind, {key: self.expression(self.size(item)) if _has_node(item) else _plain(item)
                                          for key, item in bound.items()})  # fmt: skip
        if "stride" in arguments and arguments["stride"] in ([], None):
            arguments.pop("stride")
        self.add(node, [_Line(kind, arguments)], tensor)

    def arithmetic(self, node: Any, name: str) -> None:
        import torch

        name = {"iadd": "add", "radd": "add", "imul": "mul", "rmul": "mul", "isub": "sub", "truediv": "div"}.get(
            name, name)  # fmt: skip
        parameters = _METHODS.get(name, ("input", "other"))
        bound = _bind(name, parameters, {}, node.args, node.kwargs)
        left, right = bound["input"], bound["other"]
        if bound.get("alpha", 1) != 1:
            self.refuse(node, f"{name} with alpha", "alpha in the language")
        if bound.get("rounding_mode") is not None:
            self.refuse(node, "div with a rounding mode", "rounding division in the language")
        left_tensor, right_tensor = is_tensor(left), is_tensor(right)
        if op_name(node).startswith("r"):
            left, right = right, left
            left_tensor, right_tensor = right_tensor, left_tensor
        if left_tensor and right_tensor:
            if name in ("add", "mul"):  # either way round: + and * of two tensors give the same bits
                self.add(node, [_Line(name.capitalize(), {"with": None})], left, [right])
                self.steps[-1].commutes = True
            elif name == "sub":  # a - b = -b + a, exactly
                self.add(node, [_Line("mul", -1.0), _Line("Add", {"with": self.name(left)})], right, [left])
            else:
                self.refuse(node, "a tensor divided by a tensor", "a Div join in the language")
            return
        if not left_tensor and not right_tensor:
            self.refuse(node, f"{name} of sizes used as a tensor", "that op")
        tensor, number = (left, right) if left_tensor else (right, left)
        number = self.size(number)
        if isinstance(number, torch.Tensor):
            self.refuse(node, f"{name} by a tensor's value", "that op")
        if isinstance(number, _Expr):  # q * (C // heads) ** -0.5: worked out for each input
            if name == "sub" and not left_tensor:
                self.add(node, [_Line("mul", -1.0), _Line("add", number.text)], tensor)
            elif name == "div" and not left_tensor:
                self.refuse(node, "a number divided by a tensor", "a reciprocal in the language")
            else:
                self.add(node, [_Line(name, number.text)], tensor)
            return
        if not isinstance(number, (int, float)):
            self.refuse(node, f"{name} by {number!r}", "that op")
        if name == "div":
            if left_tensor:
                self.add(node, [_Line("div", float(number))], tensor)
            else:
                self.refuse(node, "a number divided by a tensor", "a reciprocal in the language")
            return
        if name == "sub" and not left_tensor:  # n - x = -x + n
            self.add(node, [_Line("mul", -1.0), _Line("add", float(number))], tensor)
            return
        self.add(node, [_Line(name, float(number))], tensor)

    def method(self, node: Any, name: str) -> None:
        parameters = _METHODS[name]
        bound = _bind(name, parameters, _DEFAULTS.get(name, {}), node.args, node.kwargs)
        tensor = bound.pop("input")
        if name in ("mean", "sum") and bound.pop("dtype", None) is not None:
            self.refuse(node, f"{name} with a dtype", "dtypes in the language")
        if name == "normalize":
            bound.pop("out", None)
        if name == "contiguous":
            bound.pop("memory_format", None)
        if name == "flatten" and node.op == "call_module":
            raise AssertionError
        arguments = {key: self.expression(self.size(item)) for key, item in bound.items()
                     if not (key in _DEFAULTS.get(name, {}) and item == _DEFAULTS[name][key])}  # fmt: skip
        if name == "squeeze" and "dim" not in arguments:
            arguments = {}
        if name in ("mean", "sum") and "keepdim" in arguments and "dim" not in arguments:
            arguments = {"dim": None, **arguments}  # x.sum(keepdim=True) alone is a TypeError; with dim=None, every dim
        if name == "pad" and "value" in arguments and arguments["value"] == 0:
            arguments.pop("value")
        self.add(node, [_Line(name, arguments or None)], tensor)

    def repeat_interleave(self, node: Any) -> None:
        """``x.repeat_interleave(r, dim)`` with one count for every row (MViT V1's temporal position embedding): a
        new dim after ``dim`` expanded to ``r`` and flattened into it, the same values in the same order."""
        bound = _bind("repeat_interleave", _METHODS["repeat_interleave"], _DEFAULTS["repeat_interleave"], node.args,
                      node.kwargs)  # fmt: skip
        repeats, dim = self.size(bound["repeats"]), bound["dim"]
        if dim is None or is_tensor(bound["repeats"]) or bound.get("output_size") is not None:
            self.refuse(node, "repeat_interleave with a tensor of counts or no dim",
                        "repeat_interleave in the language (it is written with one count along one dim)")  # fmt: skip
        rank = node.meta["value"].dim()
        dim %= rank
        sizes = [-1] * (rank + 1)
        sizes[dim + 1] = self.expression(repeats)
        lines = [_Line("unsqueeze", {"dim": dim + 1}), _Line("expand", sizes),
                 _Line("flatten", {"start_dim": dim, "end_dim": dim + 1})]  # fmt: skip
        self.add(node, lines, bound["input"])

    def interpolate(self, node: Any) -> None:
        bound = _bind("interpolate", _METHODS["interpolate"], _DEFAULTS["interpolate"], node.args, node.kwargs)
        tensor = bound.pop("input")
        if bound.pop("antialias"):
            self.refuse(node, "interpolate with antialias", "antialias in the Upsample step")
        arguments: dict[str, Any] = {}
        if bound["size"] is not None:
            arguments["size"] = self.expression(self.size(bound["size"]))
        if bound["scale_factor"] is not None:
            factor = bound["scale_factor"]
            arguments["scale_factor"] = [float(item) for item in factor] if isinstance(factor, (list, tuple)) \
                else float(factor)  # fmt: skip
        for key in ("mode", "align_corners", "recompute_scale_factor"):
            if bound[key] != _DEFAULTS["interpolate"][key]:
                arguments[key] = bound[key]
        self.add(node, [_Line("Upsample", arguments)], tensor)

    def functional_layer(self, node: Any, name: str) -> None:
        """``F.linear(x, self.weight, self.bias)`` and its kin, whose tensors are one module's parameters: that
        module's layer, placed where the module is (ConvNeXt's LayerNorm2d: F.layer_norm in its forward)."""
        bound = _bind(name, _METHODS[name], _DEFAULTS[name], node.args, node.kwargs)
        tensor = bound.pop("input")
        owners = set()
        tensors = {}
        for key in ("weight", "bias", "running_mean", "running_var"):
            item = bound.get(key)
            if item is None:
                continue
            if not hasattr(item, "op") or item.op != "get_attr":
                self.refuse(node, f"{name} with a {key} computed in forward", f"{name}'s {key} as a module's tensor")
            owner, _, leaf = str(item.target).rpartition(".")
            if leaf != key and not (key in ("weight", "bias") and leaf in ("weight", "bias")):
                self.refuse(node, f"{name} with a {key} named {item.target}", f"the {key} named {key}")
            owners.add(owner)
            tensors[key] = item
        if len(owners) != 1:
            self.refuse(node, f"{name} with tensors of several modules", "one module holding them")
        owner = owners.pop()
        value = node.meta["value"]
        kind, arguments = _functional_arguments(name, bound, tensors, node.args[0].meta["value"], value)
        if kind is None:
            self.refuse(node, f"{name} with these arguments", f"{name} in the catalogue")
        for item in tensors.values():
            self.alias_param(item)
        if not owner:  # the model's own tensors: a step's module: names a module, and the top has no name
            held = ", ".join(str(item.target) for item in tensors.values())
            self.notes.append(f"{describe(node)} reads the model's own top-level tensors ({held}), which the {kind} "
                              "step holds: the module --emit torch writes keeps them under that step's name, not the "
                              "original's keys")  # fmt: skip
        self.add(node, [_Line(kind, arguments, module=owner or None)], tensor)

    def alias_param(self, node: Any) -> None:
        """A module's parameter that a functional layer reads: carried by that layer's step, made by none."""
        self.steps = [step for step in self.steps if step.node is not node]

    def einsum(self, node: Any) -> None:
        """``torch.einsum`` of two tensors that contracts one index: a matmul, each operand permuted (and given
        dims of 1 where it lacks an index the other keeps) so that the kept indices lead and the contracted one
        meets; the product permuted to the equation's order. MaxViT's attention (``bhid,bhjd->bhij``) and MViT's
        relative position terms (``bythwc,hkc->bythwk``, with ``h`` kept in both) are of this form."""
        equation, *operands = node.args
        if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
            operands = list(operands[0])
        text = str(equation).replace(" ", "")
        match = re.fullmatch(r"([a-zA-Z]*),([a-zA-Z]*)->([a-zA-Z]*)", text)
        refusal = (f"torch.einsum({equation!r})", "an einsum step (only products that contract one index map)")
        if not match or len(operands) != 2 or not all(map(is_tensor, operands)):
            self.refuse(node, *refusal)
            raise AssertionError
        left, right, out = match.groups()
        contracted = [label for label in left if label in right and label not in out]
        if (any(len(set(labels)) != len(labels) for labels in (left, right, out)) or len(contracted) != 1
                or any(label not in out and label not in contracted for label in left + right)
                or any(label not in left + right for label in out)):  # fmt: skip
            self.refuse(node, *refusal)
        first, second = operands
        sized = [dict(zip(labels, operand.meta["value"].shape)) for labels, operand in ((left, first), (right, second))]
        if any(sized[0][label] != sized[1][label] for label in sized[0] if label in sized[1]):
            self.refuse(node, f"torch.einsum({equation!r}) broadcasting an index of size 1",
                        "an index of one size in both operands")  # fmt: skip
        index = contracted[0]
        rows = [label for label in out if label in left and label not in right]
        columns = [label for label in out if label in right and label not in left]
        row, column = (rows[-1] if rows else None), (columns[-1] if columns else None)
        leading: list[str | None] = [label for label in out if label not in (row, column)]
        matrix = self.fresh(f"{node.name}_b")
        second_lines = _arranged(right, [*leading, index, column])
        first_lines = _arranged(left, [*leading, row, index])
        product: list[str | None] = [*leading, row, column]
        after = [_Line("squeeze", {"dim": at}) for at in reversed(range(len(product))) if product[at] is None]
        kept = [label for label in product if label is not None]
        if kept != list(out):
            after.append(_Line("permute", [kept.index(label) for label in out]))
        if second_lines:
            lines = [*second_lines, _Line("Save", matrix), _Line("From", self.name(first)), *first_lines,
                     _Line("matmul", {"with": matrix}), *after]  # fmt: skip
            self.add(node, lines, second, [first])
        else:
            self.add(node, [*first_lines, _Line("matmul", {"with": self.name(second)}), *after], first, [second])

    # -- writing ----------------------------------------------------------------------------------------------

    def outputs(self) -> list[tuple[str | None, Any]]:
        """The graph's outputs: one tensor (name None), or named ones (a dict's keys, a tuple's positions)."""
        import torch

        output = next(node for node in self.graph.nodes if node.op == "output")
        value = output.args[0]
        if isinstance(value, torch.fx.Node) and not is_tensor(value) and isinstance(value.meta.get("value"), tuple):
            value = tuple(self.part(value, index) for index in range(len(value.meta["value"])))  # return x.chunk(2)
        if isinstance(value, torch.fx.Node):
            return [(None, value)]
        if isinstance(value, dict):
            named = [(str(key), item) for key, item in value.items() if item is not None]
        elif isinstance(value, tuple) and hasattr(value, "_fields"):
            named = [(str(key), item) for key, item in zip(value._fields, value) if item is not None]
        elif isinstance(value, (tuple, list)):
            named = [(str(index), item) for index, item in enumerate(value) if item is not None]
        else:
            named = []
        if not named or not all(is_tensor(item) for _, item in named):
            raise ImportRefused(f"the module returns {_shown(value)}: a stack file's outputs are tensors, one each "
                                "(a tuple or dict of them, not nested)")  # fmt: skip
        return named

    def part(self, source: Any, index: int) -> Any:
        """Part ``index`` of a split returned whole: the node that takes it, made where the graph has none."""
        for user in source.users:
            if user.target is operator.getitem and user.args[1] == index:
                return user
        with self.graph.inserting_after(source):
            made = self.graph.call_function(operator.getitem, (source, index))
        made.meta.update({key: item for key, item in source.meta.items() if key != "value"})
        made.meta["value"] = source.meta["value"][index]
        self.getitem(made)
        return made

    def lines(self) -> list[Any]:
        """The whole stack: each step's items, a From before a step that reads another tensor than the current
        one, the Saves and Dims each tensor needs right after the step that makes it; where branches leave one
        tensor and meet again with nothing else reading them, a Residual or Parallel block."""
        outputs = self.outputs()
        named = [(key, self.real(item)) for key, item in outputs]
        steps = self.blocks(self.steps)
        entries, current = self.render(steps, self.input)
        ending: list[Any] = []
        if len(named) == 1 and named[0][0] is None:
            if named[0][1] is not current:
                ending.append(_Line("From", self.name(named[0][1])))
        else:
            for key, item in named:
                if item is not current:
                    ending.append(_Line("From", self.name(item)))
                ending.append(_Line("Output", str(key)))
                current = item
        self.finish_dims()
        out = self.resolve([_After(self.input), *entries, *ending])
        referenced = set()
        for line in _walk(out):
            if line.type == "From":
                referenced.add(line.arguments)
            elif isinstance(line.arguments, dict) and "with" in line.arguments:
                names = line.arguments["with"]
                referenced.update(names if isinstance(names, list) else [names])
        return _prune(out, referenced)

    def render(self, steps: list[_Step], current: Any) -> tuple[list[Any], Any]:
        """Steps as entries (items, blocks, and markers for the items written after a node), from ``current``."""
        entries: list[Any] = []
        for step in steps:
            if step.primary == "keep":
                entries += step.lines
                continue
            if step.commutes:
                if step.primary is not current and step.others[0] is current:
                    step.primary, step.others = step.others[0], [step.primary]
                step.lines[0].arguments["with"] = self.name(step.others[0])
            if step.primary is not None and step.primary is not current:
                entries.append(_Line("From", self.name(step.primary)))
            if step.branches is not None:
                rendered = [self.render(branch, step.primary)[0] for branch in step.branches]
                entries.append(_Block(step.lines[0].type, step.lines[0].arguments, rendered, step.lines[0].comment))
            else:
                entries += step.lines
            entries.append(_After(step.node))
            for part in self.parts.get(step.node, {}).values():
                entries.append(_After(part))
            current = step.last
        return entries, current

    def resolve(self, entries: list[Any]) -> list[Any]:
        """The entries with each marker replaced by the items written after its node (Saves, Dims)."""
        out: list[Any] = []
        for entry in entries:
            if isinstance(entry, _After):
                out += self.after.get(entry.node, [])
            elif isinstance(entry, _Block):
                entry.branches = [self.resolve(branch) for branch in entry.branches]
                out.append(entry)
            else:
                out.append(entry)
        return out

    # -- blocks -----------------------------------------------------------------------------------------------

    def tensor_users(self, node: Any) -> list[Any]:
        """The nodes that read a node's tensor (not its sizes, not a branch marker)."""
        users = []
        for user in node.users:
            if user.target in (guard,) or (user.op == "call_function" and user.target is getattr) or (
                    user.op == "call_method" and user.target in ("size", "dim")):  # fmt: skip
                continue
            if user in self.alias:
                users += self.tensor_users(user)
                continue
            users.append(user)
        return users

    def blocks(self, steps: list[_Step]) -> list[_Step]:
        """Joins whose inputs are chains of steps from one fork, with nothing else reading them, as blocks: a
        Residual for an Add (body and shortcut), a Parallel for a Mul or a Concat (one branch per input)."""
        out: list[_Step] = []
        for step in steps:
            block = self.block(out, step)
            if block is None:
                out.append(step)
            else:
                out = block
        return out

    def block(self, out: list[_Step], join: _Step) -> list[_Step] | None:
        kind = join.lines[0].type if len(join.lines) == 1 else None
        if kind not in ("Add", "Mul", "Concat") or join.primary in (None, "keep") or join.branches is not None:
            return None
        inputs = [join.primary, *join.others]
        producer = {self.real(step.node): index for index, step in enumerate(out) if step.primary != "keep"}
        owner: dict[Any, int] = {}
        for index, step in enumerate(out):
            for inner in _inner(step):
                owner[self.real(inner)] = index
        owner[self.real(join.node)] = len(out)

        def readers(node: Any) -> set[Any]:
            """The top-level steps that read a node's tensor (a block counts once, whatever reads it inside)."""
            return {owner.get(self.real(user), user) for user in self.tensor_users(node)}

        chains: list[list[int]] = []
        forks = set()
        for item in inputs:
            chain: list[int] = []
            node = self.real(item)
            while True:
                index = producer.get(node)
                if index is None or len(readers(node)) != 1:
                    break
                step = out[index]
                if step.others or step.primary is None or step.last is not step.node:
                    break
                chain.insert(0, index)
                node = step.primary
            forks.add(node)
            chains.append(chain)
        if len(forks) != 1 or not any(chains):
            return None
        fork = forks.pop()
        taken = sorted(index for chain in chains for index in chain)
        if len(set(taken)) != len(taken):
            return None
        start = producer.get(fork, -1) + 1
        if taken != list(range(start, len(out))) or (fork is not self.input and fork not in producer):
            return None
        if not readers(fork) <= {chain[0] for chain in chains if chain} | {len(out)}:
            return None
        branches = [[out[index] for index in chain] for chain in chains]
        if self.reads_sizes_across(branches):
            return None  # a[:, :, :u.shape[2]] + u: one branch needs the other's sizes first; written flat instead
        if kind == "Add" and len(branches) == 2:
            body, shortcut = sorted(branches, key=len, reverse=True)
            line = _Line("Residual", None)
            parts = [body, shortcut] if shortcut else [body]
        else:
            arguments: dict[str, Any] = {"join": kind}
            if kind == "Concat":
                arguments["dim"] = join.lines[0].arguments.get("dim", 1)
            line = _Line("Parallel", arguments)
            parts = branches
        compound = _Step(join.node, [line], fork, [], {}, join.last)
        compound.branches = parts
        return [*out[:start], compound]

    def reads_sizes_across(self, branches: list[list[_Step]]) -> bool:
        """Whether a branch reads a size of a tensor that another branch makes (a crop to the other's size): a
        block runs its branches one after the other, each from the fork, so the size would not be known yet."""
        members = [{self.real(node) for step in branch for node in _inner(step)} for branch in branches]
        for index, branch in enumerate(branches):
            others = set().union(*(nodes for other, nodes in enumerate(members) if other != index))
            for step in branch:
                for node in _inner(step):
                    if _size_sources(node, self.real) & others:
                        return True
        return False


def _size_sources(node: Any, real: Callable[[Any], Any]) -> set[Any]:
    """The tensors whose sizes ``node`` reads through the non-tensor values it takes (``u.shape[2]``, ``h - 1``)."""
    found: set[Any] = set()
    stack = [item for item in node.all_input_nodes if not is_tensor(item)]
    seen: set[Any] = set()
    while stack:
        item = stack.pop()
        if item in seen:
            continue
        seen.add(item)
        for source in item.all_input_nodes:
            if is_tensor(source):
                found.add(real(source))
            else:
                stack.append(source)
    return found


@dataclass
class _After:
    """Where the items written after a node's step go (its Save, its Dims), filled in once all are known."""

    node: Any


@dataclass
class _Block:
    """A Residual or Parallel block of the file: its arguments and its branches, each a list of entries."""

    type: str
    arguments: dict[str, Any] | None
    branches: list[list[Any]]
    comment: str | None = None


def _inner(step: _Step) -> Iterator[Any]:
    """The nodes a step stands for: its own, and those of the steps in its branches."""
    yield step.node
    for branch in step.branches or ():
        for inner in branch:
            yield from _inner(inner)


def _walk(entries: list[Any]) -> Iterator[_Line]:
    for entry in entries:
        if isinstance(entry, _Block):
            for branch in entry.branches:
                yield from _walk(branch)
        else:
            yield entry


def _prune(entries: list[Any], referenced: set[str]) -> list[Any]:
    """The entries without the Saves nothing reads (a join a block now makes read them by name), and without a
    From that another From follows at once."""
    out: list[Any] = []
    for entry in entries:
        if isinstance(entry, _Line) and entry.type == "Save" and entry.arguments not in referenced:
            continue
        if isinstance(entry, _Block):
            entry.branches = [_prune(branch, referenced) for branch in entry.branches]
        if isinstance(entry, _Line) and entry.type == "From" and out and isinstance(out[-1], _Line) and \
                out[-1].type == "From":  # fmt: skip
            out.pop()
        out.append(entry)
    return out


def _render(entries: list[Any], indent: str) -> list[str]:
    """The entries as the lines of a YAML block list."""
    lines = []
    for entry in entries:
        if isinstance(entry, _Line):
            lines.append(f"{indent}- {entry.text()}")
            continue
        comment = f"  # {entry.comment}" if entry.comment else ""
        lines.append(f"{indent}- {entry.type}:{comment}")
        inner = indent + "    "
        for key, item in (entry.arguments or {}).items():
            lines.append(f"{inner}{key}: {_yaml(item)}")
        if entry.type == "Residual":
            for key, branch in zip(("body", "shortcut"), entry.branches):
                lines.append(f"{inner}{key}:")
                lines += _render(branch, inner + "  ")
        else:
            lines.append(f"{inner}branches:")
            for branch in entry.branches:
                if not branch:
                    lines.append(f"{inner}  - []")
                    continue
                body = _render(branch, inner + "    ")
                lines.append(f"{inner}  - {body[0].lstrip()}")
                lines += body[1:]
        del comment
    return lines


class _LazySizes(list):  # type: ignore[type-arg]
    """A list of sizes whose items start as a tensor's dims, each named (by ``make``) only when it is read."""

    def __init__(self, make: Callable[[int], Any], rank: int) -> None:
        super().__init__(_Unnamed(axis) for axis in range(rank))
        self.make = make

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        item = super().__getitem__(index)
        if isinstance(item, _Unnamed):
            item = self.make(item.axis)
            super().__setitem__(index, item)
        return item

    def __iter__(self) -> Iterator[Any]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True)
class _Unnamed:
    axis: int


_KEEPS_VALUES = {"view", "reshape", "flatten", "permute", "transpose", "contiguous", "squeeze", "unsqueeze",
                 "getitem"}  # fmt: skip
"""Ops that move an index tensor's values, or keep some of them, without changing them (the language's ``index``
follows an index kind's largest value through them: Swin3D's ``index[:volume, :volume].flatten()``)."""


def _index_table(node: Any) -> bool:
    """Whether ``node`` is a registered tensor, or one reshaped from it (MaxViT's ``relative_position_index.view(-1)``):
    what the language's ``index`` step takes (a Buffer of an index kind; other buffers are refused where read)."""
    import torch

    while node.op in ("call_method", "call_function") and op_name(node) in _KEEPS_VALUES and node.args and \
            isinstance(node.args[0], torch.fx.Node):  # fmt: skip
        node = node.args[0]
    return node.op == "get_attr" and isinstance(node.meta.get("value"), torch.Tensor)


def _minus(value: Any) -> Any:
    """``-value`` for a size: an int, or an expression (``-(-a)`` written ``a``)."""
    if not isinstance(value, _Expr):
        return -value
    if value.strength == _UNARY and value.text.startswith("-"):
        return _Expr(value.text[1:], _UNARY)
    return _Expr(f"-{_wrap(value, _UNARY)}", _UNARY)


@functools.cache
def _helper(kind: str) -> Callable[..., Any]:
    """The function :data:`convcalc.torch_code.HELPERS` writes for ``kind`` (convcalc's own code, the code
    ``--emit torch`` writes), to compare what a model's ops compute with it."""
    import torch

    from convcalc.torch_code import HELPERS

    namespace: dict[str, Any] = {"torch": torch}
    exec(HELPERS[kind], namespace)
    return namespace[kind]


def _ancestors(node: Any, within: set[Any]) -> set[Any]:
    """``node`` and the nodes of ``within`` it is computed from."""
    found, stack = set(), [node]
    while stack:
        item = stack.pop()
        if item not in found:
            found.add(item)
            stack += [source for source in item.all_input_nodes if source in within]
    return found


def _arranged(labels: str, layout: list[str | None]) -> list[_Line]:
    """The steps that lay a tensor with these einsum ``labels`` out as ``layout``: its dims in that order, a new
    dim of 1 where the layout has a label it lacks (or None), which matmul broadcasts."""
    present = [label for label in layout if label is not None and label in labels]
    lines = []
    if present != list(labels):
        lines.append(_Line("permute", [labels.index(label) for label in present]))
    missing = [at for at, label in enumerate(layout) if label is None or label not in labels]
    if missing != list(range(len(missing))) or len(layout) - 2 in missing or len(layout) - 1 in missing:
        lines += [_Line("unsqueeze", {"dim": at}) for at in missing]  # (leading dims it lacks broadcast as they are)
    return lines


def _plus(left: Any, right: Any) -> Any:
    """``left + right`` for sizes: an int where both are, else an expression."""
    if isinstance(left, int) and isinstance(right, int):
        return left + right
    return _binary("+", _SUM, left, right)


def _has_node(value: Any) -> bool:
    """Whether a call's argument holds a traced value (a size read from a tensor)."""
    if isinstance(value, (list, tuple)):
        return any(_has_node(item) for item in value)
    return hasattr(value, "op") and hasattr(value, "meta")


def _shown(value: Any) -> str:
    """What a module returned, for a message: its structure, tensors as such."""
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {', '.join(_shown(item) for item in value)}"
    if isinstance(value, dict):
        return f"a dict of {', '.join(f'{key!r}: {_shown(item)}' for key, item in value.items())}"
    if is_tensor(value):
        return "a tensor"
    if hasattr(value, "meta") and isinstance(value.meta.get("value"), (tuple, list)):
        return f"a tuple of {len(value.meta['value'])} tensors"
    return f"a {type(value.meta.get('value') if hasattr(value, 'meta') else value).__name__}"


def _slice_length(size: Any, traced: int, start: Any, stop: Any) -> Any:
    """The length of ``x[start:stop]`` along a dim of ``size`` (``traced`` at the traced input)."""
    if all(isinstance(item, int) or item is None for item in (size, start, stop)):
        return len(range(size)[start:stop])
    if stop is None:
        stop = size
    elif isinstance(stop, int) and stop < 0:
        stop = _binary("+", _SUM, size, stop)
    elif isinstance(stop, int) and stop > traced:
        stop = _Expr(f"min({stop}, {_wrap(size, 0)})", _ATOM)
    if isinstance(start, int) and start < 0:
        start = _binary("+", _SUM, size, start)
    if isinstance(stop, int) and isinstance(start, int):
        return stop - start
    return _binary("-", _SUM, stop, start) if start != 0 else stop


def _negate(expression: _Expr) -> str:
    for symbol, opposite in _NEGATED.items():
        marker = f" {symbol} "
        if expression.strength == _COMPARE and marker in expression.text:
            left, right = expression.text.split(marker, 1)
            return f"{left} {opposite} {right}"
    return f"{_wrap(expression, _COMPARE + 1)} == 0"


def _plain(value: Any) -> Any:
    """A module's argument as a stack file writes it: tuples as lists."""
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


def _drop_defaults(kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments that differ from torch's defaults; a per-axis list of one value written as that value."""
    declared = {arg.name: arg for arg in LAYERS[kind].args}
    out = {}
    for key, item in arguments.items():
        arg = declared.get(key)
        if arg is None:
            continue
        if arg.type in (Type.PER_AXIS, Type.PADDING) and isinstance(item, list) and item and len(set(item)) == 1 \
                and not (kind.startswith(("ZeroPad", "ReflectionPad", "ReplicationPad", "CircularPad",
                                          "ConstantPad"))):  # fmt: skip
            item = item[0]
        if arg.default is not REQUIRED and _same(item, arg.default):
            continue
        out[key] = item
    return out


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, (list, tuple)) or isinstance(value, list):
        return _plain(value) == _plain(default)
    return (type(value) is type(default) and value == default) or value is default


def _module_arguments(kind: str, module: Any) -> dict[str, Any]:
    """A module's constructor arguments as the catalogue names them, read from its attributes; inferred ones and
    defaults left out."""
    arguments: dict[str, Any] = {}
    for arg in LAYERS[kind].args:
        if arg.infer is not None:
            continue
        value = _attribute(module, kind, arg.name)
        if value is _MISSING:
            continue
        arguments[arg.name] = _plain(value)
    if kind == "PReLU":
        arguments.pop("init", None)
    return _drop_defaults(kind, arguments)


_MISSING = object()


def _attribute(module: Any, kind: str, name: str) -> Any:
    if kind == "MultiheadAttention":
        if name == "bias":
            return module.in_proj_bias is not None
        if name == "add_bias_kv":
            return module.bias_k is not None
        if name in ("kdim", "vdim"):
            return None
    if name == "bias" and kind.startswith(("BatchNorm", "InstanceNorm")):
        return _MISSING if not getattr(module, "affine", True) else getattr(module, "bias", None) is not None
    if name == "bias" and LAYERS[kind].args and any(arg.name == "bias" and arg.type is Type.BOOL
                                                    for arg in LAYERS[kind].args):  # fmt: skip
        return getattr(module, "bias", None) is not None
    if kind == "Upsample" and name == "scale_factor":
        value = getattr(module, name, None)
        return float(value) if isinstance(value, int) else value
    return getattr(module, name, _MISSING)


def _functional_arguments(name: str, bound: dict[str, Any], tensors: dict[str, Any], input_value: Any,
                          value: Any) -> tuple[str | None, dict[str, Any]]:  # fmt: skip
    """The layer a functional call with a module's tensors is, and its arguments."""
    if name == "linear":
        weight = tensors["weight"].meta["value"]
        return "Linear", _drop_defaults("Linear", {"out_features": weight.shape[0], "bias": "bias" in tensors})
    if name == "layer_norm":
        shape = [int(size) for size in bound["normalized_shape"]]
        arguments = {"normalized_shape": shape, "eps": bound["eps"], "elementwise_affine": "weight" in tensors,
                     "bias": "bias" in tensors or "weight" not in tensors}  # fmt: skip
        return "LayerNorm", _drop_defaults("LayerNorm", arguments)
    if name == "group_norm":
        arguments = {"num_groups": bound["num_groups"], "eps": bound["eps"], "affine": "weight" in tensors}
        return "GroupNorm", _drop_defaults("GroupNorm", arguments)
    if name.startswith("conv"):
        weight = tensors["weight"].meta["value"]
        dims = int(name[-2])
        padding = bound["padding"]
        arguments = {
            "out_channels": weight.shape[0],
            "kernel_size": list(weight.shape[2:]),
            "stride": _plain(bound["stride"]),
            "padding": _plain(padding),
            "dilation": _plain(bound["dilation"]),
            "groups": bound["groups"],
            "bias": "bias" in tensors,
        }
        return f"Conv{dims}d", _drop_defaults(f"Conv{dims}d", arguments)
    return None, {}


# ---------------------------------------------------------------------------------------------------------------
# The whole import


def import_module(module: Any, input_shape: Sequence[int], *, title: str | None = None) -> Imported:
    """Trace ``module`` at ``input_shape`` (batch first) and write it as a stack file.

    The module is not changed: it is traced with meta copies of its tensors. The
    text is the stack file; ``result`` its run at ``input_shape`` (the same
    shape, parameters, buffers and MACs torch gives there).
    """
    shape = tuple(int(size) for size in input_shape)
    was_training = module.training
    module.eval()
    try:
        graph = _trace(module, shape)
        convert = _Convert(graph, module, shape)
        try:
            convert.convert()
            lines = convert.lines()
        except ConvcalcError:
            raise
        except Exception as error:  # one line, never a traceback: torch refused an op convcalc ran to follow one
            raise ImportRefused(f"convcalc import cannot follow this model ({type(error).__name__}: "
                                f"{_first_line(error)}): no stack file was written; it is a bug in convcalc import or "
                                "an op it does not follow") from None  # fmt: skip
    finally:
        module.train(was_training)
    unused = _unused(module, graph)
    renamed = sorted({line.module for line in _walk(lines) if line.module and not _MODULE_NAME.fullmatch(line.module)})
    for line in _walk(lines):
        if line.module in renamed:
            line.module = module_key(line.module)
    if renamed:
        convert.notes.append(f"{len(renamed)} module names have characters a module: key does not take, such as "
                             f"{renamed[0]!r}: each is written with _ in their place ({module_key(renamed[0])!r}), so "
                             "the module --emit torch writes takes the original's state_dict with its keys renamed "
                             "the same way (convcalc.importer.module_key)")  # fmt: skip
    aliases = _aliases(module, unused)
    if aliases:
        shown = ", ".join(f"{alias} is {name}" for alias, name in aliases[:2]) + (", ..." if len(aliases) > 2 else "")
        convert.notes.append(f"{len(aliases)} keys of the original's state_dict() are other names of tensors it "
                             f"holds ({shown}); the file and the module --emit torch writes hold each tensor once, "
                             "under the first name, so load the original's state_dict() without those keys "
                             "(convcalc.importer.Imported.aliases)")  # fmt: skip
    notes = list(dict.fromkeys(convert.notes))
    header = _header(module, shape, title, unused, notes)
    text = "\n".join([*header, f"input: {_yaml(list(shape))}", "layers:", *_render(lines, "  ")])
    text += "\n"
    result = _run(text, title or type(module).__name__)
    expected = sum(p.numel() for p in module.parameters()) - sum(count for _, count, _ in unused)
    if result.total_params != expected:
        notes.append(f"the file holds {result.total_params:,} parameters and the module {expected:,} (those its "
                     "forward calls): some were not mapped")  # fmt: skip
    for note in notes:
        if note.startswith("the file holds"):
            raise ImportRefused(note)
    return Imported(text=text, result=result, unused=tuple(unused), notes=tuple(notes), aliases=tuple(aliases))


def _trace(module: Any, shape: tuple[int, ...]) -> Any:
    import torch

    tracer_class = _tracer_class()
    example = torch.empty(shape, device="meta")
    tracer = tracer_class(module, example)
    try:
        with torch.device("meta"), torch.no_grad(), _unwrapped():
            graph = tracer.trace(module)
    except ImportRefused:
        raise
    except _Refused as refused:
        error = refused.error
        if isinstance(error, AssertionError):
            raise ImportRefused(f"the model refuses the input {'x'.join(map(str, shape))}: {error}"
                                f"{_at(refused.node)}") from None  # fmt: skip
        raise ImportRefused(_refusal(f"{describe(refused.node)} failed on the meta device ({type(error).__name__}: "
                                     f"{_first_line(error)})", refused.node,
                                     "an op that runs on the meta device")) from None  # fmt: skip
    except Exception as error:  # torch.fx's own refusals (TraceError, len() and the like)
        source = _innermost(error)
        raise ImportRefused(f"torch.fx cannot trace the model ({type(error).__name__}: {_first_line(error)})"
                            f"{f' ({source})' if source else ''}: no stack file was written; it would take code "
                            "torch.fx can trace") from None  # fmt: skip
    for node in graph.nodes:  # tensors torch.fx lifted from arguments (a buffer passed to a function) got no value
        if node.op == "get_attr" and "value" not in node.meta:
            node.meta["value"] = tracer.run("get_attr", node.target, (), {}, node)
    for frozen_node, value, source in tracer.frozen:
        frozen_node.meta.setdefault("frozen", (value, source))
    graph.owning_module = None
    return graph


@contextlib.contextmanager
def _unwrapped() -> Iterator[None]:
    """Functions that models mark ``torch.fx.wrap`` (torchvision's ``shifted_window_attention``, MViT's
    ``_unsqueeze``) traced through rather than kept whole: their insides are ops a stack file can say, and the
    sizes they compute from tensors become expressions."""
    from torch.fx import _symbolic_trace

    table = _symbolic_trace._wrapped_fns_to_patch
    kept = dict(table)
    table.clear()
    try:
        yield
    finally:
        table.update(kept)


def _at(node: Any) -> str:
    source = node.meta.get("source") if node is not None else None
    module = _module_path(node) if node is not None else ""
    return (f" (in {module})" if module else "") + (f" ({source})" if source else "")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _innermost(error: BaseException) -> _Source | None:
    import linecache
    import traceback

    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        name = frame.filename.replace("\\", "/")
        if "/torch/" not in name and not name.endswith("convcalc/importer.py"):
            found = _Source(name, frame.lineno or 0, linecache.getline(name, frame.lineno or 0).strip())
    return found


def _unused(module: Any, graph: Any) -> list[tuple[str, int]]:
    """The modules with parameters that forward never reaches, outermost first, with their parameter counts."""
    reached: set[str] = set()
    leaves = {str(node.target) for node in graph.nodes if node.op == "call_module"}
    for node in graph.nodes:
        if node.op in ("call_module", "get_attr"):
            path = str(node.target)
            reached.add(path)
            while "." in path:
                path = path.rsplit(".", 1)[0]
                reached.add(path)
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    read = {id(tensor) for name, tensor in tensors
            if name in reached or any(name.startswith(leaf + ".") for leaf in leaves)}  # fmt: skip
    unused = []
    for name, child in module.named_modules():
        if not name or name in reached or any(name.startswith(leaf + ".") for leaf in leaves):
            continue
        if any(name.startswith(other + ".") for other, _, _ in unused):
            continue
        count = sum(p.numel() for p in child.parameters() if id(p) not in read)  # a weight tied to a called one is in
        buffers = sum(b.numel() for b in child.buffers() if id(b) not in read)
        if count or buffers:
            unused.append((name, count, buffers))
    return unused


def held(params: int, buffers: int) -> str:
    """``3 parameters``, ``7 buffer elements``, or both: what a module holds, in words."""
    return " and ".join(f"{count:,} {what}" for count, what in ((params, "parameters"), (buffers, "buffer elements"))
                        if count) or "nothing"  # fmt: skip


def _aliases(module: Any, unused: Sequence[tuple[str, int, int]]) -> list[tuple[str, str]]:
    """(alias, name) for each key of the module's state_dict that names a tensor an earlier key names too (``self.b
    = self.a``): the file holds it once, under the name torch.fx calls it by. Keys in unused modules are left out:
    they are not loaded anyway."""
    first: dict[int, str] = {}
    aliases = []
    for name, tensor in [
        *module.named_parameters(remove_duplicate=False),
        *module.named_buffers(remove_duplicate=False),
    ]:
        if any(name.startswith(other + ".") for other, _, _ in unused):
            continue
        if id(tensor) in first:
            aliases.append((name, first[id(tensor)]))
        else:
            first[id(tensor)] = name
    return aliases


def _header(module: Any, shape: tuple[int, ...], title: str | None, unused: list[tuple[str, int, int]],
            notes: list[str]) -> list[str]:  # fmt: skip
    size = "x".join(map(str, shape))
    params = sum(p.numel() for p in module.parameters())
    lines = [f"# {title or type(module).__name__} ({type(module).__name__}), imported by convcalc at {size}: "
             f"{params:,} parameters."]  # fmt: skip
    for name, count, buffers in unused:
        lines.append(f"# {name}: {held(count, buffers)} that forward never calls (in eval mode), not in this file.")
    for note in notes:
        lines.append(f"# Note: {note}.")
    return [printable(line) for line in lines]  # a class name or title may hold a newline or ESC


def _run(text: str, name: str) -> StackResult:
    from convcalc.network import run_stack
    from convcalc.stackfile import load_stack

    try:
        shape, specs = load_stack(text, name)
    except ConvcalcError as error:
        raise ImportRefused(f"the imported file does not read back (a bug in convcalc import): {error}") from None
    result = run_stack(shape, specs)
    if result.error is not None:
        raise ImportRefused(f"convcalc cannot run the imported file at its own input: {result.error}")
    return result
