"""`convcalc import` on torchvision's model zoo: each model imported, and checked against torch.

    python benchmarks/zoo.py [--only resnet18,vit_b_16] [--family classification] [--markdown]

Every classification builder (``torchvision.models.list_models(module=torchvision.models)``), the six
segmentation models, the nine video models and the detection backbones, each built on the meta device and
imported at its usual input. For each:

- **counts**: the stack file's output shape, parameters, buffers and MACs equal torch's at that input
  (MACs: FlopCounterMode FLOPs / 2, on the meta device), and at a second input the file gives torch's output
  shape, or refuses where torch refuses;
- **emitted**: the module ``--emit torch`` writes for the file loads the original's ``state_dict()`` with
  ``strict=True`` (less the modules forward never calls, which the file reports), and computes the original's
  outputs on a random input (CPU, float64, the smallest input the model takes among a few; skipped, and said so,
  for models over :data:`LARGE` parameters).

Verdicts: ``faithful`` (both), ``exact`` (counts only: the output check skipped), ``refused`` (convcalc import
says why, in one line), and ``MISMATCH`` (a bug: the line says what differs). The table goes to
docs/import.md.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT))

LARGE = 150_000_000
"""Models with more parameters than this skip the output check: a float64 forward of them on a loaded CPU takes
minutes and gigabytes."""

SMALL_SIZES = (64, 96, 112, 128, 160, 224)
"""Input sizes tried, smallest first, for the output check: the first the model takes is used."""


def torchvision() -> Any:
    """torchvision, imported as the tests import it where its compiled ops do not load beside this torch."""
    try:
        from tests.torchvision_models import torchvision as package

        return package()
    except ImportError:  # pragma: no cover (outside a checkout)
        import torchvision as package

        return package


@dataclass
class Model:
    """One model of the zoo: its name, family, how to build it, its usual input and a second one."""

    name: str
    family: str
    build: Callable[[], Any]
    shape: tuple[int, ...]
    second: tuple[int, ...]
    small: Sequence[tuple[int, ...]] = ()


def _usual_size(name: str, models: Any) -> int:
    try:
        weights = models.get_model_weights(name).DEFAULT
        crop = weights.transforms.keywords.get("crop_size")
        return int(crop[0] if isinstance(crop, (list, tuple)) else crop) if crop else 224
    except Exception:
        return 224


def zoo() -> list[Model]:
    """Every model of the zoo, in families."""
    tv = torchvision()
    models = tv.models
    out = []
    for name in models.list_models(module=models):
        size = _usual_size(name, models)
        out.append(Model(name, "classification", _builder(models, name), (1, 3, size, size),
                         (1, 3, size + 32, size + 32),
                         [(1, 3, small, small) for small in (*SMALL_SIZES, size) if small <= size]))  # fmt: skip
    for name in models.list_models(module=models.segmentation):
        out.append(Model(name, "segmentation", _builder(models, name, weights_backbone=None), (1, 3, 520, 520),
                         (1, 3, 480, 640), [(1, 3, 64, 64), (1, 3, 96, 96)]))  # fmt: skip
    for name in models.list_models(module=models.video):
        large = name.startswith(("s3d", "mvit", "swin3d"))
        shape = (1, 3, 16, 224, 224) if large else (1, 3, 16, 112, 112)
        second = (1, 3, 8, 256, 256) if large else (1, 3, 8, 128, 128)
        small = [(1, 3, 8, 64, 64), (1, 3, 16, 64, 64), (1, 3, 16, 112, 112)]
        if name.startswith(("mvit", "s3d", "swin3d")):
            small = [(1, 3, 16, 224, 224)]
        out.append(Model(name, "video", _builder(models, name), shape, second, small))
    backbones = tv.models.detection.backbone_utils
    for name in ("resnet18", "resnet50", "resnext50_32x4d"):
        out.append(Model(f"resnet_fpn_backbone({name})", "detection", _fpn(backbones, name), (1, 3, 800, 800),
                         (1, 3, 800, 1216), [(1, 3, 64, 64)]))  # fmt: skip
    for name in ("mobilenet_v3_large", "mobilenet_v2"):
        out.append(Model(f"mobilenet_backbone({name})", "detection", _mobile(backbones, name), (1, 3, 800, 800),
                         (1, 3, 800, 1216), [(1, 3, 64, 64)]))  # fmt: skip
    return out


def _builder(models: Any, name: str, **extra: Any) -> Callable[[], Any]:
    return lambda: models.get_model(name, weights=None, **extra)


def _fpn(backbones: Any, name: str) -> Callable[[], Any]:
    return lambda: backbones.resnet_fpn_backbone(backbone_name=name, weights=None)


def _mobile(backbones: Any, name: str) -> Callable[[], Any]:
    return lambda: backbones.mobilenet_backbone(backbone_name=name, weights=None, fpn=True)


# ---------------------------------------------------------------------------------------------------------------
# The checks


@dataclass
class Verdict:
    name: str
    family: str
    verdict: str
    detail: str
    seconds: float
    imported: Any = None


def meta_run(model: Any, shape: Sequence[int]) -> tuple[Any, int] | None:
    """torch's output (shapes) and MACs of an eval-mode forward on the meta device, or None where torch refuses."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    state = {name: torch.empty_like(t, device="meta")
             for name, t in [*model.named_parameters(), *model.named_buffers()]}  # fmt: skip
    # functional_call leaves a module known by two names (self.c = self.a) holding the meta copies: put them back
    held = [
        (store, key, t) for m in model.modules() for store in (m._parameters, m._buffers) for key, t in store.items()
    ]
    floating = [t for t in state.values() if t.is_floating_point()]
    x = torch.empty(tuple(shape), device="meta", dtype=floating[0].dtype if floating else torch.float32)
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = torch.func.functional_call(model, state, (x,))
    except Exception:
        return None
    finally:
        for store, key, t in held:
            store[key] = t
    return out, counter.get_total_flops() // 2


def shapes(out: Any) -> dict[str | None, tuple[int, ...]]:
    """A model's output as shapes by name (None: a single tensor)."""
    import torch

    if isinstance(out, torch.Tensor):
        return {None: tuple(out.shape)}
    if isinstance(out, dict):
        return {str(key): tuple(value.shape) for key, value in out.items() if value is not None}
    if isinstance(out, tuple) and hasattr(out, "_fields"):
        return {key: tuple(value.shape) for key, value in zip(out._fields, out) if value is not None}
    return {str(index): tuple(value.shape) for index, value in enumerate(out) if value is not None}


def file_shapes(result: Any) -> dict[str | None, tuple[int, ...]]:
    if result.outputs:
        return {key: node.output for key, node in result.outputs.items()}
    return {None: result.output}


PATH = "path fixed: "
"""Marks what check_counts found that is no error but a limit the file states: a Check on a branch the model's
Python took at the traced input."""


def check_counts(model: Any, imported: Any, shape: tuple[int, ...], second: tuple[int, ...]) -> list[str]:
    """What differs between the stack file and torch at the usual input and at a second one (empty: nothing)."""
    from convcalc.fitting import run_network
    from convcalc.stackfile import load_stack

    problems = []
    result = imported.result
    reached = meta_run(model, shape)
    if reached is None:
        return [f"torch refuses {shape} itself"]
    out, macs = reached
    unused = sum(count for _, count, _ in imported.unused)
    params = sum(p.numel() for p in model.parameters()) - unused
    buffers = sum(b.numel() for b in model.buffers()) - sum(count for _, _, count in imported.unused)
    if file_shapes(result) != shapes(out):
        problems.append(f"output {file_shapes(result)} vs torch {shapes(out)}")
    if result.total_params != params:
        problems.append(f"params {result.total_params:,} vs torch {params:,}")
    if result.total_buffers != buffers:
        problems.append(f"buffers {result.total_buffers:,} vs torch {buffers:,}")
    if result.total_macs != macs:
        problems.append(f"MACs {result.total_macs:,} vs torch {macs:,}")
    file_input, specs = load_stack(imported.text, "imported")
    other = run_network(file_input, specs, second, suggest=False)
    theirs = meta_run(model, second)
    if theirs is None:
        if other.error is None:
            problems.append(f"at {second} torch refuses and the file gives {file_shapes(other)}")
    elif other.error is not None and "the model's code takes another path" in str(other.error):
        problems.append(
            f"{PATH}refuses {'x'.join(map(str, second))} (torch takes it): the model's Python branches on "
            "a size there, and the file follows the branch taken at the traced input"
        )
    elif other.error is not None:
        problems.append(f"at {second} torch gives {shapes(theirs[0])} and the file refuses: {other.error}")
    elif file_shapes(other) != shapes(theirs[0]):
        problems.append(f"at {second} the file gives {file_shapes(other)} and torch {shapes(theirs[0])}")
    elif other.total_macs != theirs[1]:
        problems.append(f"at {second} MACs {other.total_macs:,} vs torch {theirs[1]:,}")
    return problems


def emitted_module(imported: Any) -> Any:
    """The module ``--emit torch`` writes for the imported file, built on the CPU."""
    from convcalc.emit import emit_torch
    from convcalc.network import run_stack
    from convcalc.stackfile import load_stack

    shape, specs = load_stack(imported.text, "imported")
    code = emit_torch(specs, run_stack(shape, specs), "imported")
    namespace: dict[str, Any] = {"__name__": "emitted"}
    exec(compile(code, "emitted.py", "exec"), namespace)
    return namespace["Network"]() if "Network" in namespace else namespace["build"]()


def check_outputs(build: Callable[[], Any], imported: Any, smalls: Sequence[tuple[int, ...]], run: bool
                  ) -> tuple[list[str], str]:  # fmt: skip
    """Whether the emitted module takes the original's state_dict (strict) and computes its outputs: the problems,
    and what was checked."""
    import torch

    from tests.reference_nets import randomize

    original = build()
    randomize(original, seed=7)
    emitted = emitted_module(imported)
    state = original.state_dict()
    unused = [name for name, _, _ in imported.unused]
    aliases = {alias for alias, _ in imported.aliases}
    state = {key: value for key, value in state.items()
             if key not in aliases and not any(key.startswith(name + ".") for name in unused)}  # fmt: skip
    renamed = [note for note in imported.notes if "module_key" in note]
    try:
        if renamed:
            from convcalc.importer import module_key

            emitted.load_state_dict({module_key(key): value for key, value in state.items()}, strict=True)
        else:
            emitted.load_state_dict(state, strict=True)
    except RuntimeError as error:
        lines = str(error).splitlines()
        return [f"load_state_dict: {(lines[1] if len(lines) > 1 else lines[0]).strip()}"], ""
    loads = "state_dict loads (strict), keys renamed by module_key" if renamed else \
        "state_dict loads (strict)"  # fmt: skip
    if not run:
        return [], f"{loads}; outputs not compared: too large to run quickly"
    original, emitted = original.double().eval(), emitted.double().eval()
    from convcalc.fitting import run_network
    from convcalc.stackfile import load_stack

    file_input, specs = load_stack(imported.text, "imported")
    for shape in smalls:
        if meta_run(original, shape) is None or run_network(file_input, specs, shape, suggest=False).error:
            continue
        x = torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            expected, got = original(x), emitted(x)
        expected = _tensors(expected)
        got = _tensors(got)
        if list(expected) != list(got):
            return [f"outputs {list(got)} vs {list(expected)}"], ""
        for key in expected:
            if expected[key].shape != got[key].shape:
                return [f"output {key} shape {tuple(got[key].shape)} vs {tuple(expected[key].shape)}"], ""
            error = (expected[key] - got[key]).abs().max().item()
            scale = max(expected[key].abs().max().item(), 1.0)
            if not error <= 1e-9 * scale:
                return [f"output {key} differs by {error:.3g} at {shape}"], ""
        return [], f"{loads}; outputs equal at {'x'.join(map(str, shape))}"
    return [], f"{loads}; no small input the model takes"


def _tensors(out: Any) -> dict[str | None, Any]:
    import torch

    if isinstance(out, torch.Tensor):
        return {None: out}
    if isinstance(out, dict):
        return {str(key): value for key, value in out.items() if value is not None}
    return {str(index): value for index, value in enumerate(out) if value is not None}


def on_meta(build: Callable[[], Any]) -> Any:
    """The model built on the meta device, or on the CPU where its constructor reads values (RegNet's)."""
    import torch

    try:
        with torch.device("meta"):
            return build()
    except Exception:
        return build()


def check(model: Model, outputs: bool = True) -> Verdict:
    """Import one model and check it; the verdict, never an exception."""
    from convcalc.errors import ConvcalcError
    from convcalc.importer import import_module

    start = time.perf_counter()
    try:
        built = on_meta(model.build)
        size = getattr(built, "image_size", None)  # a ViT built without weights takes its own image size only
        if isinstance(size, int) and model.shape[2:] != (size, size):
            model.shape, model.second = (1, 3, size, size), (1, 3, size + 32, size + 32)
            model.small = [model.shape]
        imported = import_module(built, model.shape, title=model.name)
    except ConvcalcError as error:
        return Verdict(model.name, model.family, "refused", str(error), time.perf_counter() - start)
    except Exception as error:  # a bug: say so, with where
        where = traceback.extract_tb(error.__traceback__)[-1]
        return Verdict(model.name, model.family, "MISMATCH", f"{type(error).__name__}: {error} "
                       f"({Path(where.filename).name}:{where.lineno})", time.perf_counter() - start)  # fmt: skip
    seconds = time.perf_counter() - start
    try:
        problems = check_counts(built, imported, model.shape, model.second)
    except Exception as error:
        problems = [f"{type(error).__name__}: {error}"]
    limits = [problem[len(PATH) :] for problem in problems if problem.startswith(PATH)]
    problems = [problem for problem in problems if not problem.startswith(PATH)]
    if problems:
        return Verdict(model.name, model.family, "MISMATCH", "; ".join(problems), seconds, imported)
    if not outputs:
        return Verdict(model.name, model.family, "exact", "counts equal; emitted module not checked", seconds,
                       imported)  # fmt: skip
    params = sum(p.numel() for p in built.parameters())
    run = params <= LARGE
    try:
        problems, checked = check_outputs(model.build, imported, model.small or [model.shape], run)
    except Exception as error:
        where = traceback.extract_tb(error.__traceback__)[-1]
        problems, checked = [f"{type(error).__name__}: {error} ({Path(where.filename).name}:{where.lineno})"], ""
    gc.collect()
    if problems:
        return Verdict(model.name, model.family, "MISMATCH", "emitted module: " + "; ".join(problems), seconds,
                       imported)  # fmt: skip
    verdict = "faithful" if run else "exact"
    if limits:
        verdict += ", path fixed"
    if "renamed by module_key" in checked:
        verdict += ", renamed"
    from convcalc.importer import held

    notes = [f"{name} ({held(count, buffers)}) never called" for name, count, buffers in imported.unused] + limits
    return Verdict(model.name, model.family, verdict, "; ".join([checked, *notes]), seconds, imported)


def table(verdicts: Sequence[Verdict]) -> str:
    """The verdicts as a Markdown table."""
    lines = ["| model | family | verdict | import (s) | detail |", "|---|---|---|---:|---|"]
    for verdict in verdicts:
        detail = verdict.detail.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {verdict.name} | {verdict.family} | {verdict.verdict} | {verdict.seconds:.2f} | {detail} |")
    counts: dict[str, int] = {}
    for verdict in verdicts:
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    return "\n".join(lines) + f"\n\n{len(verdicts)} models: {summary}.\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated model names")
    parser.add_argument("--family", help="classification, segmentation, video or detection")
    parser.add_argument("--no-outputs", action="store_true", help="check counts only, not the emitted module")
    parser.add_argument("--markdown", help="write the table to this file too")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    chosen = zoo()
    if args.only:
        wanted = set(args.only.split(","))
        chosen = [model for model in chosen if model.name in wanted]
    if args.family:
        chosen = [model for model in chosen if model.family == args.family]
    verdicts = []
    for model in chosen:
        verdict = check(model, outputs=not args.no_outputs)
        verdict.imported = None
        verdicts.append(verdict)
        print(f"{model.name:40} {verdict.verdict:9} {verdict.seconds:6.2f}s  {verdict.detail[:300]}", flush=True)
        gc.collect()
    text = table(verdicts)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)


if __name__ == "__main__":
    main()
