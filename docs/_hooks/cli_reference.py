"""MkDocs hook: the CLI reference, generated from convcalc's click commands.

A page's line ``::: cli-reference`` becomes, for ``convcalc`` and each of its commands, what ``--help`` shows: the
usage line, the help text, a table of options and the epilog. Paragraphs that click prints unwrapped (``\\b`` on the
line before them: examples, a stack file) become code blocks. mkdocs-click 0.9 did this before, but ran those
paragraphs together into one, printed click 8.3's ``Sentinel.UNSET`` as the default of every option without one, and
split a table row at the ``|`` of a value form such as ``N[xN...]|same|valid``.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Iterable, Iterator
from typing import Any

import click

MARKER = "::: cli-reference"
_ESCAPED = re.compile(r"([\\`*_{}\[\]()#+\-.!|])")  # what Python-Markdown reads as markup in text and table cells
_NO_BOUND = 2**63 - 1  # torch's 64-bit limit: an integer option's range states it, a reader does not need it


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from convcalc.cli import main

    lines = markdown.splitlines()
    return "\n".join("\n".join(reference(main, "convcalc")) if line.strip() == MARKER else line for line in lines)


def reference(group: click.Group, name: str) -> Iterator[str]:
    """Markdown for a command group and its commands, in the order they were declared."""
    root = click.Context(group, info_name=name, **group.context_settings)
    yield from _command(root, level=2)
    for command_name, command in group.commands.items():
        yield from _command(click.Context(command, info_name=command_name, parent=root), level=3)


def _command(context: click.Context, level: int) -> Iterator[str]:
    command = context.command
    anchor = context.command_path.replace(" ", "-")
    yield f"{'#' * level} {context.command_path} {{ #{anchor} data-toc-label='{context.info_name}' }}"
    yield ""
    yield from _code_block([context.get_usage()])
    yield from _paragraphs(command.help)
    options = [p for p in command.get_params(context) if isinstance(p, click.Option) and not p.hidden]
    if options:
        yield "| Option | Value | Description | Default |"
        yield "| --- | --- | --- | --- |"
        yield from (_row(option) for option in options)
        yield ""
    if isinstance(command, click.Group):
        for name, subcommand in command.commands.items():
            link = f"[{_escape(name)}](#{anchor}-{name})"
            yield f"- {link}: {_escape(subcommand.get_short_help_str(limit=200))}"
        yield ""
    parent = context.parent.command if context.parent else None
    if parent is None or command.epilog != parent.epilog:  # an epilog shared by every command is shown once
        yield from _paragraphs(command.epilog)


def _paragraphs(text: str | None) -> Iterator[str]:
    """Help text as click prints it: paragraphs rewrapped, those after a ``\\b`` line as they are (code blocks)."""
    for paragraph in re.split(r"\n{2,}", inspect.cleandoc(text or "").split("\f")[0]):
        lines = paragraph.splitlines()
        if lines[:1] == ["\b"]:
            yield from _code_block(lines[1:])
        elif paragraph.strip():
            yield _escape(" ".join(paragraph.split()))
            yield ""


def _code_block(lines: list[str]) -> Iterator[str]:
    fence = "`" * max([3, *(len(run) + 1 for line in lines for run in re.findall("`+", line))])
    yield f"{fence}text"
    yield from lines
    yield fence
    yield ""


def _row(option: click.Option) -> str:
    names = ", ".join(_code(name) for name in option.opts)
    if option.secondary_opts:
        names += " / " + ", ".join(_code(name) for name in option.secondary_opts)
    return f"| {names} | {_value(option)} | {_escape(option.help or '')} | {_default(option)} |"


def _value(option: click.Option) -> str:
    """What the option takes, in words; nothing for a flag."""
    kind = option.type
    if option.is_flag:
        return ""
    if isinstance(kind, click.Choice):
        return _either(_code(str(choice)) for choice in kind.choices)
    if isinstance(kind, click.IntRange):
        low = None if kind.min is None or abs(kind.min) >= _NO_BOUND else kind.min
        high = None if kind.max is None or abs(kind.max) >= _NO_BOUND else kind.max
        if low is not None and high is not None:
            return f"integer, {low} to {high}"
        if low is not None:
            return f"integer {'>' if kind.min_open else '≥'} {low}"
        if high is not None:
            return f"integer {'<' if kind.max_open else '≤'} {high}"
        return "integer"
    if isinstance(kind, click.Path):
        what = "directory" if not kind.file_okay else "file" if not kind.dir_okay else "path"
        return f"{what}, or {_code('-')}" if kind.allow_dash else what
    if type(kind).__module__.startswith("click."):
        return _escape(kind.name)  # text, integer, float...
    return _code(kind.name)  # one of convcalc's forms, written as the user writes it: SIZE, N[xN...]


def _default(option: click.Option) -> str:
    """The default, as the user would type it; "required", or nothing when there is none (a flag is off)."""
    if option.required:
        return "required"
    default = option.to_info_dict()["default"]  # None where click 8.3+ holds its UNSET sentinel
    if option.is_flag:
        if option.secondary_opts and default is not None:  # --bias/--no-bias: the switch that is on
            return _code((option.opts if default else option.secondary_opts)[0])
        return ""
    if default is None:
        return ""
    values = default if isinstance(default, (list, tuple)) else [default]
    return ", ".join(_code(str(value)) for value in values)


def _either(words: Iterable[str]) -> str:
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _code(text: str) -> str:
    """A code span (Markdown shows its text as it is; a table keeps a ``|`` inside one in its cell)."""
    ticks = "`" * (1 + max((len(run) for run in re.findall("`+", text)), default=0))
    return f"{ticks} {text} {ticks}" if "`" in text else f"{ticks}{text}{ticks}"


def _escape(text: str) -> str:
    """Plain text, shown as it is: no character of it read as Markdown or HTML."""
    return html.escape(_ESCAPED.sub(r"\\\1", text), quote=False)
