"""The ``convcalc`` command: parses arguments, calls the core, prints the answer.

Exit codes: 0 success, 1 an invalid layer for that input (or --verify found
torch disagreeing), 2 a usage error. The table layout is imported only to draw
tables, torch only for --verify, and json only for --json: every import here is
paid on every call, and a quiet command should cost little more than `import click`.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from convcalc import __version__, layers
from convcalc.errors import ConvcalcError
from convcalc.formulas import INT64
from convcalc.text import printable, size_text, verification_text

__all__ = ["main"]


def _exit_codes(*one: str) -> str:
    """The help's closing paragraph: what each exit code means for this command (``one``: the lines of what
    exits 1)."""
    first, *more = one
    return "\n".join(
        [
            "\b",
            "Exit codes:",
            "  0    success",
            f"  1    {first}",
            *(f"       {line}" for line in more),
            "  2    usage error: a malformed SIZE or option",
            "  130  interrupted (Ctrl-C); 143 terminated (SIGTERM)",
            "  141  the reader of standard output went away (a closed pipe)",
        ]
    )


_LAYER_EXIT = ("the layer is invalid for that input (torch would reject it),", "or --verify found that torch disagrees")
_STACK_EXIT = "the file cannot be read as a stack, a layer cannot take its input"

_SIZE = re.compile(r"[0-9]+(?:[xX×][0-9]+)*")
_PER_AXIS = re.compile(r"-?[0-9]+(?:[xX×]-?[0-9]+)*")


class SizeType(click.ParamType):
    """SIZE: ``227``, ``32x64`` or ``16x32x64``, positive integers (up to ``most`` of them)."""

    name = "SIZE"

    def __init__(self, most: int = 3) -> None:
        self.most = most

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        if not _SIZE.fullmatch(text):
            self.fail(f"{value!r} is not a size: use 227, 32x64 or 16x32x64 (positive integers)", param, ctx)
        try:
            sizes = _integers(text)
        except ValueError as error:
            self.fail(f"{_short(text)!r} is not a size: {error}", param, ctx)
        if self.most == 3 and len(sizes) in (4, 5) and 0 not in sizes:  # the notes' tensor, or `stack -q` output
            batch, channels, *spatial = sizes
            self.fail(
                f"{value!r} is a full shape (N, C, {'D, H, W' if len(spatial) == 3 else 'H, W'}), but SIZE is the "
                f"spatial size only: give {size_text(tuple(spatial))} --in-channels {channels}"
                + (" --out-channels N" if ctx is not None and ctx.command.name == "conv" else "")
                + (f" --batch {batch}" if batch != 1 else ""),
                param,
                ctx,
            )
        if len(sizes) > self.most or 0 in sizes:
            self.fail(f"{value!r} is not a size: give 1 to {self.most} positive integers, e.g. 32x64", param, ctx)
        return sizes


class PerAxisType(click.ParamType):
    """An option value: one integer for every axis (``3``) or one per axis (``3x5``)."""

    name = "N[xN...]"

    def __init__(self, words: tuple[str, ...] = ()) -> None:
        self.words = words
        if words:
            self.name = f"N[xN...]|{'|'.join(words)}"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return self.name  # as typed: click would upper-case it to N[XN...]|SAME|VALID

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        text = str(value).strip()
        if text in self.words:
            return text
        if not _PER_AXIS.fullmatch(text) or text.count("x") + text.count("X") + text.count("×") > 2:
            choices = "".join(f", {word!r}" for word in self.words)
            self.fail(f"{value!r} is not one integer or up to 3 joined by 'x' (e.g. 3 or 3x5){choices}", param, ctx)
        try:
            return _integers(text)
        except ValueError as error:
            self.fail(f"{_short(text)!r}: {error}", param, ctx)


_FILE = click.Path(allow_dash=True)
"""A stack file, - for standard input: a path, so that shell completion offers files (the command reads it)."""


class _Int64(click.IntRange):
    """An integer option within torch's 64-bit integers; its help shows ``N`` and the range short."""

    name = "integer"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "N"

    def _describe_range(self) -> str:  # click's help adds this to the option's line
        return "N >= 1" if self.min == 1 else "|N| < 2**63"


_INT = _Int64(-(INT64 - 1), INT64 - 1)
"""An integer option: torch's arguments are 64-bit."""
_POSITIVE = _Int64(1, INT64 - 1)


def _integers(text: str) -> tuple[int, ...]:
    """The integers of ``227`` or ``32x64`` (ASCII digits, already matched); ValueError for one beyond torch's
    64-bit integers, which is never converted (Python refuses to convert more than 4,300 digits)."""
    values = []
    for part in re.split("[xX×]", text):
        if len(part.lstrip("-")) > 19 or abs(int(part)) >= INT64:
            raise ValueError(f"{_short(part)} is beyond torch's 64-bit integers (at most {INT64 - 1})")
        values.append(int(part))
    return tuple(values)


def _short(text: str) -> str:
    """A value as an error quotes it: at most 40 characters."""
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _geometry_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every layer command shares, in torch's argument order."""
    for decorator in reversed(
        [
            click.option(
                "--kernel-size",
                "--k",
                "-k",
                "kernel_size",
                type=PerAxisType(),
                required=True,
                help="kernel_size: one value for every axis, or one per axis (3x5).",
            ),
            click.option(
                "--stride", "--s", "-s", "stride", type=PerAxisType(), help="stride [conv: 1, pool: kernel_size]."
            ),
            click.option("--padding", "--p", "-p", "padding", type=PerAxisType(("same", "valid")), help="padding [0]."),
            click.option("--dilation", "--d", "-d", "dilation", type=PerAxisType(), help="dilation [1]."),
        ]
    ):
        command = decorator(command)
    return command


def _output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Options every layer command shares after its own: shape, output form, verification."""
    for decorator in reversed(
        [
            click.option("--batch", type=_POSITIVE, help="Batch size N for full shapes [1]."),
            click.option(
                "--dims",
                type=click.IntRange(1, 3),
                help="Number of spatial axes [the longest of SIZE and the option values, else 2].",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table."),
            click.option("--quiet", "-q", is_flag=True, help="Print only the output size, e.g. 28x60."),
            click.option("--verify", is_flag=True, help="Run the real torch layer and check that it agrees."),
            click.option("--explain", is_flag=True, help="Work the formula out step by step after the table."),
        ]
    ):
        command = decorator(command)
    return command


class _Command(click.Command):
    """A command whose usage errors name every stray value: ``conv 28 5`` says that ``5`` is unexpected (an
    option value without its option) as well as that ``--kernel-size`` is missing, where click names one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            given, values, _ = self.make_parser(ctx).parse_args(args=list(args))
        except click.UsageError:  # click's own message says what is wrong
            return super().parse_args(ctx, args)
        stray = values  # what the parser's arguments did not take
        if stray and not ctx.resilient_parsing:
            missing = [param.opts[0] for param in self.params if isinstance(param, click.Option) and param.required
                       and param.name not in given]  # fmt: skip
            shown = " ".join(repr(value) for value in stray)
            plural = "s" if len(stray) > 1 else ""
            message = f"unexpected extra argument{plural} {shown} (an option's value goes right after its option)"
            if missing:
                message += f" ({missing[0]} {stray[0]}?); missing {', '.join(missing)}"
            raise click.UsageError(message, ctx)
        return super().parse_args(ctx, args)


class _Main(click.Group):
    """The command group, with convcalc's policy for what ends a run outside a command's control.

    Ctrl-C exits 130 and SIGTERM 143, quietly (a temporary output file is removed
    on the way out); a closed pipe ends quietly with 141, as a program that
    SIGPIPE killed; standard output that is closed or full is one ``Error:``
    line and exit 1; text that the output's encoding cannot hold is escaped
    rather than crashing the run.
    """

    command_class = _Command

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        _prepare_streams()
        previous = _on_sigterm()
        collecting = gc.isenabled()
        gc.disable()  # one short run makes little cyclic garbage; collecting it cost a 100,000-layer file half its time
        try:
            try:
                code = super().main(*args, standalone_mode=False, **kwargs)
            except SystemExit as stop:  # a command's own exit code, or SIGTERM's
                code = stop.code
            _flush()
        except click.ClickException as error:
            _show_escaped(error)
            code = error.exit_code
        except (click.Abort, KeyboardInterrupt, EOFError):
            code = 130
        except (KeyError, ValueError) as error:  # click's completion reads its variables unchecked
            if not os.environ.get("_CONVCALC_COMPLETE"):
                raise
            click.echo(f"Error: shell completion found its variables missing or unreadable ({printable(str(error))}): "
                       "it runs from the script that _CONVCALC_COMPLETE=bash_source convcalc prints "
                       "(docs/completion.md)", err=True)  # fmt: skip
            code = 1
        except (BrokenPipeError, _PipeClosed):
            _silence_stdout()
            code = 141
        except OSError as error:  # writing to standard output failed: commands turn file errors into Error lines
            _silence_stdout()
            click.echo(f"Error: cannot write to standard output: {error.strerror or error}", err=True)
            code = 1
        finally:
            _restore_sigterm(previous)
            if collecting:
                gc.enable()
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError as error:  # click would exit 1 on it, the code of an invalid layer
            raise _PipeClosed from error


class _PipeClosed(Exception):
    """The reader of standard output went away."""


def _show_escaped(error: click.ClickException) -> None:
    """click's usage error, with the user's text in it (an unexpected argument) shown escaped, line by line."""
    text = io.StringIO()
    error.show(file=text)
    for line in text.getvalue().splitlines():
        click.echo(printable(line), err=True)


class _ClosedStream:
    """Standard output when the shell closed it (``>&-``): writing fails as a write to a closed descriptor does."""

    encoding = "utf-8"

    @property
    def buffer(self) -> _ClosedStream:
        return self

    def write(self, text: str | bytes) -> int:
        raise OSError(9, "standard output is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(9, "standard output is closed")


def _prepare_streams() -> None:
    if sys.stdout is None:
        sys.stdout = _ClosedStream()  # type: ignore[assignment]
    elif isinstance(getattr(sys.stdout, "buffer", None), io.FileIO):
        # PYTHONUNBUFFERED: the text layer writes straight to the file, whose write() may write only part of what
        # it is given to a pipe and say nothing; a buffered layer writes all of it, or raises (BrokenPipeError)
        stdout = sys.stdout
        sys.stdout = io.TextIOWrapper(io.BufferedWriter(stdout.buffer), encoding=stdout.encoding,  # type: ignore[arg-type]
                                      errors=stdout.errors, line_buffering=True, write_through=True)  # fmt: skip
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")  # an encoding such as cp1252 gets \u2500, never a crash


def _flush() -> None:
    if sys.stdout is not None:
        sys.stdout.flush()


def _silence_stdout() -> None:
    """Send what is left of standard output nowhere, so that the interpreter's last flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (lives until exit)


def _on_sigterm() -> Any:
    # _signal, the C module under signal: signal.py builds three enums on import, a noticeable part of what a
    # quiet command costs (docs/benchmarks.md), and only its signal() is needed here
    import _signal

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds, so that a temporary output file is removed

    try:
        return _signal.signal(_signal.SIGTERM, stop)
    except (ValueError, OSError):  # not the main thread
        return None


def _restore_sigterm(previous: Any) -> None:
    import _signal

    if previous is not None:
        with contextlib.suppress(ValueError, OSError, TypeError):
            _signal.signal(_signal.SIGTERM, previous)


@click.group(
    cls=_Main,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=_exit_codes("a layer or stack is invalid, a search finds nothing, or torch", "disagrees (see each command)"),
)
@click.version_option(__version__, "--version", "-V", prog_name="convcalc")
def main() -> None:
    """Exact PyTorch output sizes for CNN layers.

    \b
    convcalc conv 227 --k 11 --s 4        # 55x55, as a table
    convcalc conv 32x64 --k 5 -q          # 28x60
    convcalc pool $(convcalc conv 28 --k 5 -q) --k 2 -q   # 12x12

    Sizes are spatial only; a lone 227 means 227x227.
    """


@main.command(epilog=_exit_codes(*_LAYER_EXIT), short_help="Output size of a Conv or ConvTranspose layer.")
@click.argument("size", type=SizeType())
@_geometry_options
@click.option("--groups", type=_POSITIVE, default=1, show_default=True, help="groups.")
@click.option("--in-channels", type=_POSITIVE, help="in_channels (needs --out-channels).")
@click.option("--out-channels", type=_POSITIVE, help="out_channels (needs --in-channels).")
@click.option("--bias/--no-bias", default=True, show_default=True, help="bias (counts in params).")
@click.option("--padding-mode", default="zeros", show_default=True, help="zeros, reflect, replicate or circular.")
@click.option("--transposed", is_flag=True, help="ConvTranspose instead of Conv.")
@click.option("--output-padding", type=PerAxisType(), help="output_padding, with --transposed [0].")
@_output_options
def conv(size: tuple[int, ...], **options: Any) -> None:
    """Output size of Conv1d/2d/3d or ConvTranspose1d/2d/3d on SIZE.

    \b
    convcalc conv 227 --k 11 --s 4
    convcalc conv 64 --k 7 --s 2 --in-channels 3 --out-channels 64
    convcalc conv 32x64 --k 5 -q
    convcalc conv 7x9 --transposed --k 4 --s 2 --p 1 --json
    convcalc conv 100 --dims 1 --k 3 --p same
    """
    transposed = options.pop("transposed")
    if options["output_padding"] is not None and not transposed:
        _usage("--output-padding applies to transposed convolutions: add --transposed")
    if (options["in_channels"] is None) != (options["out_channels"] is None):
        _usage("give --in-channels and --out-channels together (or neither)")
    if options["output_padding"] is None:
        del options["output_padding"]
    _run(layers.Family.CONV_TRANSPOSE if transposed else layers.Family.CONV, size, options)


@main.command(epilog=_exit_codes(*_LAYER_EXIT), short_help="Output size of a MaxPool or AvgPool layer.")
@click.argument("size", type=SizeType())
@_geometry_options
@click.option(
    "--type",
    "kind",
    type=click.Choice(["max", "avg"]),
    default="max",
    show_default=True,
    help="MaxPool or AvgPool.",
)
@click.option(
    "--ceil-mode",
    is_flag=True,
    help="ceil_mode: round the output up (torch drops a last window that would start in the padding).",
)
@click.option("--in-channels", type=_POSITIVE, help="Channels C, for full shapes (a pool keeps them).")
@_output_options
def pool(size: tuple[int, ...], **options: Any) -> None:
    """Output size of MaxPool1d/2d/3d or AvgPool1d/2d/3d on SIZE.

    \b
    convcalc pool 55 --k 3 --s 2
    convcalc pool 5 --k 2 --s 2 --p 1 --ceil-mode
    convcalc pool 24 --k 2 -q
    convcalc pool 8x8x8 --type avg --k 2
    """
    kind = options.pop("kind")
    if kind == "avg":
        if options["dilation"] not in (None, (1,)):
            _usage("AvgPool has no dilation: drop --dilation, or use --type max")
        del options["dilation"]
    _run(layers.Family(f"{kind}_pool"), size, options)


@main.command(
    epilog=_exit_codes(f"{_STACK_EXIT},", "or --verify found that torch disagrees"),
    short_help="A whole network, layer by layer: shapes, params, MACs, RF.",
)
@click.argument("file", metavar="FILE|-", type=_FILE)
@click.option(
    "--input", "input_shape", type=SizeType(most=8), help="Input shape, batch first, e.g. 8x3x224x224 [the file's]."
)
@click.option("--dtype", default="float32", show_default=True, help="Element type for the memory figures.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--csv", "as_csv", is_flag=True, help="Print one CSV line per layer.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table.")
@click.option(
    "--depth",
    type=click.IntRange(1, None),
    help="Show blocks only to this depth, each with the totals of what it holds (table, --markdown, --csv) [all].",
)
@click.option("--quiet", "-q", is_flag=True, help="Print only the output shape, e.g. 1x1000.")
@click.option("--verify", is_flag=True, help="Build the layers in torch on the meta device and check every one.")
@click.option("--explain", is_flag=True, help="Work out each conv and pool layer step by step after the table.")
@click.option(
    "--emit", type=click.Choice(["torch"]), help="Print the network as a self-contained PyTorch module instead."
)
def stack(
    file: str,
    input_shape: tuple[int, ...] | None,
    dtype: str,
    as_json: bool,
    as_csv: bool,
    markdown: bool,
    depth: int | None,
    quiet: bool,
    verify: bool,
    explain: bool,
    emit: str | None,
) -> None:
    """Shapes, parameters, MACs and receptive fields of a whole network, layer by layer.

    FILE is a stack file (YAML or JSON), - for standard input:

    \b
    input: [1, 3, 227, 227]
    layers:
      - Conv2d: {out_channels: 96, kernel_size: 11, stride: 4}
      - ReLU
      - MaxPool2d: {kernel_size: 3, stride: 2}

    \b
    convcalc stack examples/vgg16.yaml
    convcalc stack examples/alexnet.yaml --input 8x3x224x224 --json
    cat net.yaml | convcalc stack - -q
    """
    from convcalc.network import DTYPES

    if sum((as_json, as_csv, markdown, quiet)) > 1:
        _usage("--json, --csv, --markdown and --quiet exclude each other")
    if explain and (as_json or as_csv or markdown or quiet):
        _usage("--explain goes with the table: drop --json, --csv, --markdown or --quiet")
    if emit and (as_json or as_csv or markdown or quiet or explain or verify):
        _usage("--emit prints code only: drop the other output options")
    if dtype not in DTYPES:
        _usage(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if depth is not None and (as_json or quiet or emit):
        _usage("--depth goes with the table, --markdown or --csv: drop --json, --quiet or --emit")
    name, specs, result = _run_stack_file(file, input_shape)
    verification = None
    if verify:
        from convcalc.verify import verify_stack

        try:
            with _working("torch is running the stack on the meta device"):
                verification = verify_stack(specs, result)
        except ConvcalcError as error:
            _fail(str(error), None)

    if emit:  # code only for a stack that runs; the error below says why not
        from convcalc.emit import emit_torch

        title = "network" if file == "-" else os.path.splitext(os.path.basename(file))[0]
        if result.error is None:
            click.echo(emit_torch(specs, result, title), nl=False)
    elif as_json:
        import json

        from convcalc.export import stack_dict

        data = stack_dict(result, dtype)
        if verification is not None:
            data["verify"] = verification.as_dict()
        click.echo(json.dumps(data, check_circular=False))  # a tree of plain data: no cycle to look for
    elif as_csv or markdown:
        from convcalc.export import stack_csv, stack_markdown

        click.echo(stack_csv(result, depth) if as_csv else stack_markdown(result, dtype, depth), nl=False)
    elif quiet:
        if result.error is None and result.outputs:  # several outputs: one line each, its name, a tab, its shape
            for key, node in result.outputs.items():
                click.echo(f"{printable(key)}\t{size_text(node.output) or '()'}")
        elif result.error is None:
            click.echo(size_text(result.output) or "()")  # a 0-D tensor, after mean() over every dim
    elif result.rows:  # with no layer run, the error below says it all
        from convcalc.render import console, explain_report, show, stack_report

        output = console()
        parts = [stack_report(output, result, dtype, verification, depth)]
        if explain:
            from convcalc.explain import explanation, row_result

            for node in result.walk():
                layer = row_result(node.type, node.input, node.arguments)
                if layer is not None:
                    title, blocks = explanation(layer)
                    parts.append(explain_report(f"#{node.id} {title}", blocks))
        show(output, *parts)
    if result.error is not None:
        click.echo(printable(f"Error: {_where(name, result.error.line)}: {result.error}"), err=True)
    if verification is not None and (result.error is not None or not verification.agrees):
        from convcalc.text import stack_verification_text

        first = not verification.agrees and result.error is None  # one Error line: the stack's own comes first
        verdict = f"{'Error: ' if first else ''}{stack_verification_text(verification)}"
        click.echo(printable(verdict), err=True)
    if result.error is not None or (verification is not None and not verification.agrees):
        sys.exit(1)


@main.command(
    epilog=_exit_codes("no setting within the bounds turns IN into OUT"),
    short_help="Layer settings that turn size IN into size OUT.",
)
@click.argument("input_size", metavar="IN", type=SizeType())
@click.argument("output_size", metavar="OUT", type=SizeType())
@click.option("--transposed", is_flag=True, help="Solve for ConvTranspose instead of Conv.")
@click.option("--type", "kind", type=click.Choice(["max", "avg"]), help="Solve for MaxPool or AvgPool instead.")
@click.option("--kernel-size", "--k", "-k", "kernel_size", type=_INT, help="Fix kernel_size.")
@click.option("--stride", "--s", "-s", "stride", type=_INT, help="Fix stride.")
@click.option("--padding", "--p", "-p", "padding", type=_INT, help="Fix padding.")
@click.option("--dilation", "--d", "-d", "dilation", type=_INT, help="Fix dilation.")
@click.option("--output-padding", type=_INT, help="Fix output_padding (with --transposed).")
@click.option("--ceil-mode/--floor-mode", "ceil_mode", default=None, help="Fix ceil_mode (pools) [both].")
@click.option("--max-kernel", type=_POSITIVE, default=7, show_default=True, help="Largest kernel_size.")
@click.option("--max-stride", type=_POSITIVE, default=4, show_default=True, help="Largest stride.")
@click.option("--max-dilation", type=_POSITIVE, default=1, show_default=True, help="Largest dilation.")
@click.option("--limit", type=_POSITIVE, default=10, show_default=True, help="Show at most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="Print only the best answer, as convcalc options.")
def solve(
    input_size: tuple[int, ...],
    output_size: tuple[int, ...],
    transposed: bool,
    kind: str | None,
    limit: int,
    as_json: bool,
    quiet: bool,
    **fixed: Any,
) -> None:
    """Layer settings that turn size IN into size OUT.

    \b
    convcalc solve 64 32                      # k=2 s=2 p=0; k=3 s=2 p=1; ...
    convcalc solve 64x48 32x24 --k 3
    convcalc solve 7 14 --transposed
    convcalc solve 55 27 --type max -q        # --kernel-size 3 --stride 2 --padding 0

    Only settings torch accepts are listed, best first: those that read every
    input pixel, then the stride closest to the size ratio, then the smaller
    kernel and padding.
    """
    from convcalc.solver import MAX_KERNEL, MAX_STRIDE, nearest_outputs, solutions

    if transposed and kind:
        _usage("--transposed and --type exclude each other")
    if as_json and quiet:
        _usage("--json and --quiet exclude each other")
    if fixed["output_padding"] is not None and not transposed:
        _usage("--output-padding applies to transposed convolutions: add --transposed")
    if fixed["ceil_mode"] is not None and not kind:
        _usage("--ceil-mode applies to pools: add --type max or --type avg")
    if len(input_size) != len(output_size):
        if 1 not in (len(input_size), len(output_size)):
            _usage(f"IN has {len(input_size)} axes but OUT has {len(output_size)}: give both alike")
        dims = max(len(input_size), len(output_size))
        input_size, output_size = _broadcast("size", input_size, dims), _broadcast("size", output_size, dims)
    family = (
        layers.Family.CONV_TRANSPOSE if transposed else layers.Family(f"{kind}_pool") if kind else layers.Family.CONV
    )
    source = click.get_current_context().get_parameter_source
    if all(source(name) is click.core.ParameterSource.DEFAULT for name in ("max_kernel", "max_stride")):
        fixed["max_kernel"] = fixed["max_stride"] = None  # the default bounds widen until they find something
    try:
        found = solutions(input_size, output_size, family=family, limit=limit, **fixed)
    except ConvcalcError as error:
        _usage(str(error))
    if found.widened:
        click.echo(f"Note: no setting within kernel_size <= {MAX_KERNEL} and stride <= {MAX_STRIDE} does it; these "
                   f"are within kernel_size <= {found.max_kernel} and stride <= {found.max_stride} (--max-kernel, "
                   "--max-stride)", err=True)  # fmt: skip
    if not found:
        fixed.update(max_kernel=found.max_kernel, max_stride=found.max_stride)
        nearby = nearest_outputs(input_size, output_size, family=family, **fixed)
        near = " and ".join(size_text(size) for size in nearby)
        hint = f"; nearest outputs with answers: {near}" if near else ""
        _fail(
            f"no {family.words} setting within kernel_size <= {found.max_kernel}, stride <= "
            f"{found.max_stride} turns {size_text(input_size)} into {size_text(output_size)}{hint}",
            None,
        )
    if quiet:
        click.echo(found[0].options())
    elif as_json:
        import json

        click.echo(json.dumps(found.as_dict()))
    else:
        from convcalc.display import parts
        from convcalc.render import console, show

        output = console()
        show(output, *parts(found, output))


@main.command(
    epilog=_exit_codes(f"{_STACK_EXIT},", "or it has no spatial axes"), short_help="The input sizes a stack takes."
)
@click.argument("file", metavar="FILE|-", type=_FILE)
@click.option("--range", "size_range", default="32:1024", show_default=True, help="Sizes to try, LOW:HIGH.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def fit(file: str, size_range: str, as_json: bool) -> None:
    """Which input sizes a stack takes: the smallest, and those in a range.

    Square inputs are tried (every spatial axis the same size) with the file's
    batch and channels. Listed: the sizes for which every layer and join is
    valid, and those for which no layer leaves pixels unread.

    \b
    convcalc fit examples/unet_padded.yaml              # 32:1024:16, U-Net's multiples of 16
    convcalc fit examples/vgg16.yaml --range 16:64
    """
    from convcalc.fitting import FitTooLarge, compact
    from convcalc.fitting import fit as search

    match = re.fullmatch(r"([0-9]{1,19}):([0-9]{1,19})", size_range.strip())  # never thousands of digits
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        _usage(f"--range {_short(size_range)!r} is not LOW:HIGH with 1 <= LOW <= HIGH < 2**63, e.g. 32:1024")
    low, high = int(match[1]), int(match[2])
    name, shape, specs = _read_stack(file)
    if len(shape) < 3:
        _fail(f"{name}: the input {list(shape)} has no spatial axes to vary", None)
    try:
        found = search(shape, specs, low, high)
    except FitTooLarge as error:
        _usage(f"--range {size_range}: {error}")
    if as_json:
        import json

        click.echo(json.dumps(found.as_dict()))
        return
    from convcalc.render import console, fit_report, show

    show(console(), fit_report(found, len(shape) - 2, (compact(found.valid), compact(found.lossless))))


@main.command(
    epilog=_exit_codes(f"{_STACK_EXIT},", "or the output file cannot be written"),
    short_help="An architecture diagram of a stack file (SVG or PNG).",
)
@click.argument("file", metavar="FILE|-", type=_FILE)
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write to this file, replaced whole (- for standard output) [standard output].",
)
@click.option("--png", is_flag=True, help="Write a PNG instead of SVG (needs cairosvg: pip install cairosvg).")
@click.option("--width", type=click.IntRange(300, 100_000), default=1200, show_default=True, help="Width in pixels.")
@click.option("--theme", type=click.Choice(["light", "dark"]), default="light", show_default=True, help="Colours.")
@click.option("--title", help="A title above the diagram [none].")
@click.option("--input", "input_shape", type=SizeType(most=8), help="Input shape, batch first [the file's].")
def draw(
    file: str,
    output: str | None,
    png: bool,
    width: int,
    theme: str,
    title: str | None,
    input_shape: tuple[int, ...] | None,
) -> None:
    """An architecture diagram of a stack file, as SVG (or PNG).

    Each feature map is a box sized by its height, width and channels
    (log-scaled), labelled with its shape; the layers between maps are named on
    the arrows; attention, norms and tensor methods are small named boxes; flat
    tensors are bars. Blocks are frames (a Repeat marked x12), a Parallel's
    branches stand side by side, skips are arcs; rows wrap, never inside a frame.

    \b
    convcalc draw examples/alexnet.yaml -o alexnet.svg
    convcalc draw examples/resnet18.yaml -o resnet18.png --png --theme dark
    """
    from convcalc.draw import draw_svg

    if output == "":
        _usage("--output '' is not a file name: give a file name, or - for standard output")
    if png and output is None:
        _usage("--png needs --output FILE (or --output - for standard output)")
    name, _, result = _run_stack_file(file, input_shape)
    if result.error is not None:
        _fail(f"{_where(name, result.error.line)}: {result.error}", None)
    svg = draw_svg(result, width=width, theme=theme, title=title)
    data = svg.encode()
    if png:
        try:
            import cairosvg
        except ImportError:
            _fail("--png needs cairosvg, which is not installed: pip install cairosvg", None)
        data = cairosvg.svg2png(bytestring=data)
    from convcalc.files import FileProblem, write_file

    if output is None or output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        write_file(output, data)
    except FileProblem as error:
        _fail(f"{output}: {error}", None)


@main.command(
    "import",
    epilog=_exit_codes("the model does something no stack file can say (the line names the op, the module and", "the "
                       "source line), it cannot be built or traced, or the output file cannot be written"),
    short_help="A stack file from a PyTorch model, traced with torch.fx.",
)  # fmt: skip
@click.argument("target")
@click.option("--input", "input_shape", type=SizeType(most=8), required=True,
              help="Input shape to trace at, batch first, e.g. 1x3x224x224.")  # fmt: skip
@click.option(
    "--output",
    "-o",
    "output",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the stack file to this file, replaced whole (- for standard output) [standard output].",
)
@click.option("--table", is_flag=True, help="With -o FILE: print the stack's table too, as convcalc stack does.")
def import_(target: str, input_shape: tuple[int, ...], output: str | None, table: bool) -> None:
    """A stack file from a network written in PyTorch code.

    TARGET is package.module:callable or path/to/file.py:callable: an nn.Module
    class or a function that returns a module, called with no arguments (on
    the meta device where it can be built there). Its forward is traced with
    torch.fx at --input; the file gives torch's output shape, parameters,
    buffers and MACs there, follows the sizes the code takes from tensors, and
    names each layer's module (module: layer1.0.conv1), so that --emit torch
    loads the model's state_dict. Needs torch.

    \b
    convcalc import torchvision.models:resnet50 --input 1x3x224x224 -o resnet50.yaml
    convcalc import my_net.py:Net --input 8x1x28x28 > net.yaml
    """
    if output == "":
        _usage("--output '' is not a file name: give a file name, or - for standard output")
    if table and output in (None, "-"):
        _usage("--table needs --output FILE: standard output holds the table then")
    from convcalc.importer import held, import_target

    try:
        with _working("torch is tracing the model"):
            imported = import_target(target, input_shape)
    except ConvcalcError as error:
        _fail(str(error), None)
    for name, count, buffers in imported.unused:
        click.echo(printable(f"Note: {name} ({held(count, buffers)}) is never called by forward in eval mode: it is "
                             "not in the file"), err=True)  # fmt: skip
    for note in imported.notes:
        click.echo(printable(f"Note: {note}"), err=True)
    if output is None or output == "-":
        click.echo(imported.text, nl=False)
        return
    from convcalc.files import FileProblem, write_file

    try:
        write_file(output, imported.text.encode())
    except FileProblem as error:
        _fail(f"{output}: {error}", None)
    if table:
        from convcalc.render import console, show, stack_report

        output_console = console()
        show(output_console, stack_report(output_console, imported.result, "float32", None, None))


def _where(name: str, line: int | None) -> str:
    """Where in a stack file something is: ``net.yaml, line 4`` (the file alone where no line is known)."""
    return f"{name}, line {line}" if line else name


def _run_stack_file(file: str, input_shape: tuple[int, ...] | None) -> tuple[str, Any, Any]:
    """The name to report, the checked specs and the run of a stack file (on ``input_shape`` where given), or exit
    1 saying why the file cannot be run. A layer that fails is in the run's ``error``."""
    from convcalc.errors import StackSpecError
    from convcalc.fitting import run_network

    name, shape, specs = _read_stack(file)
    try:
        return name, specs, run_network(shape, specs, input_shape)
    except StackSpecError as error:
        _fail(f"{name}: {error}", None)


def _read_stack(file: str) -> tuple[str, tuple[int, ...], Any]:
    """The name to report, the input shape and the checked specs of a stack file, or exit 1 saying why."""
    from convcalc.files import FileProblem, read_text
    from convcalc.stackfile import StackFileError, load_stack

    name = "<stdin>" if file == "-" else file
    try:
        text = read_text(file, getattr(sys.stdin, "buffer", None))
        shape, specs = load_stack(text, name)
    except FileProblem as error:
        _fail(f"{_where(name, error.line)}: {error}", None)
    except StackFileError as error:
        _fail(str(error), None)
    return name, shape, specs


def _usage(message: str) -> NoReturn:
    raise click.UsageError(message, click.get_current_context())


def _spatial_axes(size: tuple[int, ...], values: dict[str, tuple[int, ...]], dims: int | None) -> int:
    """--dims, else the longest of SIZE and the per-axis values, else 2."""
    if dims is not None:
        return dims
    longest = max([len(size)] + [len(value) for value in values.values()])
    return longest if longest > 1 else 2


def _broadcast(name: str, value: tuple[int, ...], dims: int) -> tuple[int, ...]:
    if len(value) == 1:
        return value * dims
    if len(value) != dims:
        option = "SIZE" if name == "size" else "--" + name.replace("_", "-")
        axes = "1 spatial axis" if dims == 1 else f"{dims} spatial axes"
        give = "give 1 value" if dims == 1 else f"give 1 or {dims}"
        _usage(f"{option} has {len(value)} values but the layer has {axes}: {give}")
    return value


def _run(family: layers.Family, size: tuple[int, ...], options: dict[str, Any]) -> None:
    as_json, quiet, verify, dims, explain = (
        options.pop(name) for name in ("as_json", "quiet", "verify", "dims", "explain")
    )
    if as_json and quiet:
        _usage("--json and --quiet exclude each other")
    if explain and (as_json or quiet):
        _usage("--explain goes with the table: drop --json or --quiet")
    kwargs = {name: value for name, value in options.items() if value is not None}
    per_axis = {name: value for name, value in kwargs.items() if isinstance(value, tuple)}
    if (
        dims is None
        and len(size) == 3
        and size[0] in (1, 3, 4)
        and min(size[1:]) >= 16
        and not options.get("in_channels")
    ):  # the notes' (C, H, W), taken for a volume: say so once, and answer what was asked
        click.echo(f"Note: {size_text(size)} is read as a 3-D size; for a {size[0]}-channel image give "
                   f"{size_text(size[1:])} --in-channels {size[0]}", err=True)  # fmt: skip
    dims = _spatial_axes(size, per_axis, dims)
    size = _broadcast("size", size, dims)
    kwargs |= {name: _broadcast(name, value, dims) for name, value in per_axis.items()}
    if kwargs.get("batch") is not None and kwargs.get("in_channels") is None:
        _usage("--batch needs --in-channels: the full shape needs the channels")

    try:
        result: layers.LayerResult | None = family.calculate(size, **kwargs)
        error = None
    except ConvcalcError as exc:
        result, error = None, exc
    verification = _verify(family, size, kwargs, result) if verify else None

    if error is not None:
        _fail(str(error), verification)
    assert result is not None
    if as_json:
        import json

        data = result.as_dict()
        if verification is not None:
            data["verify"] = verification.as_dict()
        click.echo(json.dumps(data))
    elif quiet:
        click.echo(size_text(result.output))
    else:
        from convcalc.render import console, explain_report, layer_report, show

        output = console()
        parts = [layer_report(output, result, verification)]
        if explain:
            from convcalc.explain import explanation

            parts.append(explain_report(*explanation(result)))
        show(output, *parts)
    if verification is not None and not verification.agrees:
        shown = not (as_json or quiet)  # the table already ends with torch's verdict
        _fail("torch disagrees with convcalc on this layer", None if shown else verification)


def _verify(family: layers.Family, size: tuple[int, ...], kwargs: dict[str, Any], result: layers.LayerResult | None
            ) -> Any:  # fmt: skip
    from convcalc.verify import verify_layer

    try:
        with _working("torch is running the layer"):
            return verify_layer(family, size, kwargs, result)
    except ConvcalcError as exc:
        _fail(str(exc), None)


def _working(message: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner on standard error while torch works, where standard error is a terminal; nothing elsewhere, so
    that logs and pipes get no animation."""
    from rich.text import Text  # not markup: a message never styles itself

    from convcalc.render import console, isatty

    if not isatty(sys.stderr) or os.environ.get("TERM") == "dumb":
        return contextlib.nullcontext()
    return console(sys.stderr).status(Text(printable(message)), spinner="line")


def _fail(message: str, verification: Any) -> NoReturn:
    """Print the error (and torch's verdict) on stderr and exit 1; control characters in it are shown escaped."""
    click.echo(f"Error: {printable(message)}", err=True)
    if verification is not None:
        click.echo(verification_text(verification), err=True)
    sys.exit(1)
