"""In-place updates in a graph torch.fx traced, made into the values they make, or refused.

A stack file is steps, each making a new tensor; torch code may write into a tensor's memory, and every name of
that memory (a view, a split's part, a second Python name) then shows the change. Before the importer converts
a graph, :class:`Updates` rewrites each update that only names it rebinds would show (``y.add_(u)`` read later,
``attn[:, :, 1:, 1:] += rel_pos``) as its out-of-place op, or as the tensor put back together around a new slice;
after, it refuses what is left. Aliases are followed through every op that may return its input's memory: only
the ops of :data:`_NEW_MEMORY` are known to make new memory.
"""

from __future__ import annotations

import functools
import inspect
import operator
from collections.abc import Callable, Sequence
from typing import Any

from convcalc.fx_nodes import concrete, describe, guard, is_tensor, layer_kind, op_name

__all__ = ["Updates", "in_place", "memory_root", "new_memory", "slices"]


class Updates:
    """The update passes over one traced graph of ``root`` (the module), refusing through ``refuse(node, what,
    needs)``."""

    def __init__(self, graph: Any, root: Any, refuse: Callable[[Any, str, str], None]) -> None:
        self.graph = graph
        self.root = root
        self.refuse = refuse

    def functionalize(self) -> None:
        """In-place updates rewritten as the values they make, where no other name sees the tensor change: ``y =
        x.clone(); y[a:b].zero_()`` (Swin V2's qkv bias), ``attn[:, :, 1:, 1:] += rel_pos`` (MViT), ``t.add_(u)``
        with ``t`` read again later. The update becomes its out-of-place op; an assignment into a slice becomes the
        tensor put back together around the new slice (``torch.cat`` of the parts before it, the slice, the parts
        after it: the same values); and each later reader of the tensor reads the new one. An update that a view
        taken before it (or any other alias of the memory it writes) would show after it is left for
        :meth:`mutations` to refuse."""
        for node in list(self.graph.nodes):
            if node.op == "call_function" and node.target is operator.setitem:
                base, index, value = node.args
                if is_tensor(base) and is_tensor(value) and self.writable(node, base, index, value):
                    self.scatter(node, base, index, value)
                    self.graph.erase_node(node)
                continue
            if not in_place(node, self.root):
                continue
            target = node.args[0]
            root = memory_root(target, self.root)
            if root is None or root.op == "get_attr" or self.seen(node, root, target) or self.overlaps(node, root):
                continue
            rest = [user for item in (root, *(self.aliases(root) - {target, node} - self.aliases(node)))
                    for user in item.users if user > node]  # fmt: skip
            back = [user for user in node.users if user.target is operator.setitem and user.args[0] is root
                    and user.args[2] is node]  # fmt: skip
            scatter = target is not root and bool(set(rest) - set(back))
            if scatter and not (target.target is operator.getitem and target.args[0] is root and
                                self.writable(node, root, target.args[1], node, target)):  # fmt: skip
                continue  # the memory it writes is read after it, and the update cannot be put back there
            functional = _OUT_OF_PLACE.get(op_name(node))
            if functional == "zero":
                node.op, node.target, node.args, node.kwargs = "call_method", "mul", (target, 0), {}
            elif functional is not None:
                node.target = functional if node.op == "call_method" else getattr(operator, functional)
            if not scatter or back:
                self.reread(target, node, node)
                continue
            made = self.scatter(node, root, target.args[1], node)
            with self.graph.inserting_after(made):  # later readers of the view read the same view of the new one
                view = self.graph.call_function(operator.getitem, (made, target.args[1]))
            view.meta.update({key: item for key, item in target.meta.items() if key != "value"})
            view.meta["value"] = concrete(made)[concrete(target.args[1])]
            self.reread(target, view, view)
            self.reread(node, view, view)  # a1 = y[:, :2].mul_(3): a1 is that view of y, as y goes on changing

    def overlaps(self, node: Any, root: Any) -> bool:
        """Whether the in-place op ``node`` also reads its memory through another view (``y[..., 1:] +=
        y[..., :-1]``, ``y -= y[:, :1]``): torch then computes it element by element, each element reading the ones
        written before it (or refuses it), which no out-of-place op computes. Reading the very tensor it writes
        (``y.add_(y)``) is no overlap."""
        memory = {root, *self.aliases(root)} - {node.args[0]}
        return any(source in memory for source in node.all_input_nodes[1:] if source is not node.args[0])

    def aliases(self, root: Any) -> set[Any]:
        """The nodes whose tensors may share memory with ``root``'s: the views of it, the views of those, the parts
        of a split, what an in-place op on any of them returns."""
        import torch

        found, stack = set(), [root]
        while stack:
            for user in stack.pop().users:
                value = user.meta.get("value")
                parts = isinstance(value, (tuple, list)) and any(isinstance(part, torch.Tensor) for part in value)
                if user not in found and (is_tensor(user) or parts) and not new_memory(user, self.root):
                    found.add(user)
                    stack.append(user)
        return found

    def seen(self, at: Any, root: Any, target: Any) -> bool:
        """Whether a name the update at ``at`` does not rebind shows it: an alias of ``root``'s memory (a view, a
        split's part, a second name for it) made before ``at``, other than the one ``at`` writes, read after it."""
        return any(alias < at and any(reader > at for reader in alias.users)
                   for alias in self.aliases(root) - {target, at})  # fmt: skip

    def writable(self, at: Any, base: Any, index: Any, value: Any, view: Any = None) -> bool:
        """Whether ``base[index] = value`` at ``at`` can be written as ``base`` put back together around the new
        slice: ``base`` is fresh memory no alias made before shows, the index is slices of step 1 whose parts
        tile each sliced dim at the traced input (no empty slice but in its last sliced dim), and ``value`` has the
        slice's shape and is not a view of ``base`` itself (an overlapping copy)."""
        import torch

        if memory_root(base, self.root) is not base or base.op == "get_attr" or self.seen(at, base, view or value):
            return False
        if value is not at and value in self.aliases(base):
            return False
        shape = tuple(base.meta["value"].shape)
        items = slices(index, len(shape))
        if items is None:
            return False
        sliced = [dim for dim, item in enumerate(items) if not (item.start in (None, 0) and item.stop is None)]
        for position, dim in enumerate(sliced):
            size, item = shape[dim], concrete(items[dim])
            positions = range(size)
            head = len(positions[: item.start]) if item.start is not None else 0
            middle = len(positions[item.start : item.stop])
            tail = len(positions[item.stop :]) if item.stop is not None else 0
            if head + middle + tail != size or (not middle and position + 1 < len(sliced)):
                return False
        expected = torch.empty(shape, device="meta")[tuple(concrete(item) for item in items)].shape
        return tuple(value.meta["value"].shape) == tuple(expected)

    def reread(self, old: Any, new: Any, at: Any, made: Sequence[Any] = ()) -> None:
        """Each reader of ``old`` after ``at`` reads ``new`` instead (but ``new`` and the nodes ``made`` for it).
        (torch.fx's nodes compare by their place in the graph.)"""
        kept = {new, *made}
        old.replace_all_uses_with(new, delete_user_cb=lambda user: user not in kept and user > at)

    def scatter(self, at: Any, base: Any, index: Any, value: Any) -> Any:
        """``base`` with ``base[index]`` replaced by ``value`` (where :meth:`writable` says it can be), built after
        ``at`` as the parts of ``base`` around the slice and the slice, concatenated along each sliced dim; later
        readers of ``base`` read it."""
        import torch

        items = slices(index, base.meta["value"].dim())
        assert items is not None  # :meth:`writable` said so
        sliced = [dim for dim, item in enumerate(items) if not (item.start in (None, 0) and item.stop is None)]
        if not sliced:  # x[:] = y: the whole of it
            self.reread(base, value, at)
            return value
        cursor = [at]
        created: list[Any] = []

        def make(target: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None = None) -> Any:
            with self.graph.inserting_after(cursor[0]):
                made = self.graph.call_function(target, args, kwargs or {})
            made.meta.update({key: item for key, item in at.meta.items() if key != "value"})
            made.meta["value"] = target(*concrete(args), **concrete(kwargs or {}))
            cursor[0] = made
            created.append(made)
            return made

        def part(whole: Any, dim: int, item: slice) -> Any | None:
            """``whole[..., item]`` along ``dim``, or None where that is empty at the traced input (the file then
            checks that it stays empty: convcalc makes no empty tensor)."""
            if not concrete(whole).shape[dim] or not len(range(concrete(whole).shape[dim])[concrete(item)]):
                return None
            return make(operator.getitem, (whole, (*(slice(None),) * dim, item)))

        def empty(dim: int, bound: Any, at_start: bool) -> None:
            size = make(getattr, (base, "shape"))
            size = make(operator.getitem, (size, dim))
            negative = make(operator.lt, (bound, 0))
            if at_start:  # x[:start] stays empty: start == 0, or start < 0 and size + start <= 0
                counted = make(operator.le, (make(operator.add, (size, bound)), 0))
                condition = make(operator.add, (make(operator.eq, (bound, 0)),
                                                make(operator.mul, (negative, counted))))  # fmt: skip
            else:  # x[stop:] stays empty: stop >= 0 and size <= stop
                condition = make(operator.mul, (make(operator.eq, (negative, 0)), make(operator.le, (size, bound))))
            make(guard, (condition, True, "the update of a slice is written as the parts around it, and a part "
                                           "that is empty at the traced input is left out: this file takes sizes "
                                           "where it stays empty"))  # fmt: skip

        def build(whole: Any, position: int) -> Any:
            dim = sliced[position]
            item = items[dim]
            parts = []
            if item.start not in (None, 0):
                head = part(whole, dim, slice(None, item.start))
                parts += [head] if head is not None else []
                if head is None:
                    empty(dim, item.start, True)
            if position + 1 < len(sliced):
                middle = part(whole, dim, slice(item.start, item.stop))
                if middle is None:
                    return None
                parts.append(build(middle, position + 1))
            else:
                parts.append(value)
            if item.stop is not None:
                tail = part(whole, dim, slice(item.stop, None))
                parts += [tail] if tail is not None else []
                if tail is None:
                    empty(dim, item.stop, False)
            return make(torch.cat, (parts,), {"dim": dim}) if len(parts) > 1 else parts[0]

        made = build(base, 0)
        assert made is not None and tuple(made.meta["value"].shape) == tuple(base.meta["value"].shape)
        self.reread(base, made, at, created)
        return made

    def mutations(self, skip: set[Any]) -> None:
        """Refuse what :meth:`functionalize` left: an assignment into a tensor it could not write out of place, an
        in-place op whose memory is read after it under another name (a view, a split's part, the tensor itself),
        an update of a parameter or buffer, and an ``out=`` argument; but in the nodes of ``skip``, which another
        step stands for (the slice assignments of Swin's mask). (``out += identity`` rebinds ``out``, and nothing
        reads the old one: that is an Add.)"""
        for node in self.graph.nodes:
            if node in skip or node.op not in ("call_function", "call_method", "call_module"):
                continue
            if node.kwargs.get("out") is not None:
                self.refuse(node, f"{describe(node)} with out=", "the result as a new tensor (no out=)")
            if node.op == "call_function" and node.target is operator.setitem and is_tensor(node.args[0]):
                self.refuse(node, "an assignment into a tensor (x[...] = y) that is not written out of place",
                            "slices of step 1 of a tensor that no view taken before reads after, and a value of "
                            "the slice's shape (such an update is written as the parts around the slice)")  # fmt: skip
            if not in_place(node, self.root):
                continue
            target = node.args[0]
            root = memory_root(target, self.root)
            if root is None:
                self.refuse(node, f"the in-place op {op_name(node)} on a tensor whose memory is one of several",
                            "an update of a tensor made by one op (this one may be any of its inputs)")  # fmt: skip
            if self.overlaps(node, root):
                self.refuse(node, f"the in-place op {op_name(node)} reading the memory it writes (another view of it)",
                            "an update that reads no other view of its own memory: torch computes it element by "
                            "element, each seeing the ones written before, where it does not refuse it")  # fmt: skip
            others = self.aliases(root) - {node} - self.aliases(node)
            later = any(user > node for item in (root, *others) for user in item.users if user.target is not guard)
            if root.op == "get_attr" or later:
                self.refuse(
                    node,
                    f"the in-place op {op_name(node)} on a tensor read elsewhere too",
                    "an update that no view taken before it reads after it, of a tensor that is no parameter or "
                    "buffer (such an update is written out of place)",
                )


_OUT_OF_PLACE = {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "truediv", "add_": "add", "sub_": "sub",
                 "mul_": "mul", "div_": "div", "zero_": "zero"}  # fmt: skip
"""In-place ops (Python's augmented assignments, tensor methods) and the ops they do out of place."""

_NEW_MEMORY = {"add", "sub", "mul", "truediv", "floordiv", "div", "neg", "pow", "matmul", "radd", "rsub", "rmul",
               "cat", "concat", "stack", "einsum", "conv1d", "conv2d", "conv3d", "linear", "layer_norm", "group_norm",
               "batch_norm", "softmax", "log_softmax", "sigmoid", "tanh", "exp", "normalize", "interpolate", "pad",
               "roll", "repeat", "repeat_interleave", "clone", "mean", "sum", "masked_fill", "new_zeros", "arange",
               "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "avg_pool1d", "avg_pool2d",
               "avg_pool3d", "max_pool1d", "max_pool2d", "max_pool3d", "gelu", "silu", "mish", "hardswish",
               "hardsigmoid", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "softplus", "clamp", "long",
               "t_matmul", "gt", "lt", "ge", "le", "eq", "ne", "logical_not", "logical_and", "logical_or", "flip",
               "abs", "sqrt", "rsqrt", "log", "log2", "sin", "cos", "erf", "where", "mm", "bmm", "square", "reciprocal",
               "floor", "ceil", "round", "sign", "maximum", "minimum", "amax", "amin", "std", "var", "norm", "cumsum",
               "new_ones", "new_full", "zeros_like", "ones_like", "full_like", "randn_like", "rand_like"}  # fmt: skip
"""Ops whose result is new memory (an activation only when not in place): an update of it changes nothing else."""

_ALIASING_LAYERS = {"Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                    "FeatureAlphaDropout", "Flatten", "Unflatten"}  # fmt: skip
"""Layers whose output may be their input (in eval mode) or a view of it."""


def in_place(node: Any, root: Any) -> bool:
    """Whether ``node`` writes into its first tensor argument: a method ending in ``_``, ``+=`` and its kin,
    ``torch.relu_``, an activation with ``inplace=True``, or a layer module built with ``inplace=True``."""
    if node.op == "call_module":
        module = root.get_submodule(node.target)
        return bool(getattr(module, "inplace", False)) and bool(node.args) and is_tensor(node.args[0])
    if node.op not in ("call_function", "call_method") or not node.args or not is_tensor(node.args[0]):
        return False
    name = op_name(node).split(".")[0]  # torch.ops.aten.add_.Tensor: add_
    if (name.endswith("_") and not name.startswith("_")) or name in ("iadd", "isub", "imul", "itruediv"):
        return True
    if node.kwargs.get("inplace") is True:
        return True
    signature = _with_inplace(node.target) if node.op == "call_function" else None
    if signature is not None:  # F.threshold(x, 0.1, -1.0, True)
        try:
            return signature.bind(*node.args, **node.kwargs).arguments.get("inplace") is True
        except TypeError:
            return False
    return False


@functools.cache
def _with_inplace(target: Any) -> inspect.Signature | None:
    """The signature of a function that takes ``inplace`` (torch.nn.functional's activations), else None."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    return signature if "inplace" in signature.parameters else None


def new_memory(node: Any, root: Any) -> bool:
    """Whether ``node``'s tensor is new memory, never its input's (see :data:`_NEW_MEMORY`); everything else may
    be a view or the input itself, and is followed as an alias of it."""
    if node.op == "call_module":
        module = root.get_submodule(node.target)
        kind = layer_kind(module)
        return kind is not None and kind not in _ALIASING_LAYERS and not getattr(module, "inplace", False)
    if node.op not in ("call_function", "call_method"):
        return node.op != "output"
    if op_name(node) == "einsum" and len(node.args) == 2 and not isinstance(node.args[1], (list, tuple)):
        return False  # torch.einsum("bchw->bhwc", x): a view of x
    return op_name(node) in _NEW_MEMORY and not in_place(node, root)


def memory_root(node: Any, root: Any) -> Any:
    """The node that made the memory ``node``'s tensor lives in: up through views and other aliases (the tensor
    argument of each) to new memory, a parameter, a buffer or the input. None where an alias has several tensor
    arguments (``torch.broadcast_tensors``): its memory could be any of theirs."""
    while node.op in ("call_function", "call_method", "call_module") and not new_memory(node, root):
        tensors = [item for item in node.all_input_nodes if is_tensor(item) or
                   (node.target is operator.getitem and item is node.args[0])]  # fmt: skip
        if len(tensors) > 1 and not (in_place(node, root) or node.target is operator.getitem):
            return None
        if not tensors:
            break
        node = tensors[0]
    return node


def slices(index: Any, rank: int) -> list[slice] | None:
    """An index as one slice per leading dim (``...`` spread), or None where it is not slices of step 1."""
    items = list(index) if isinstance(index, tuple) else [index]
    if items.count(...) == 1:
        at = items.index(...)
        items[at : at + 1] = [slice(None)] * (rank - len(items) + 1)
    if len(items) > rank or not all(isinstance(item, slice) and concrete(item.step) in (None, 1) for item in items):
        return None
    return items
