"""The docs cannot drift: every console example in them runs, and shows what convcalc prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcalc.cli import main
from tests.golden_files import REGENERATE

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?:<!-- columns: (\d+) -->\n)?```console\n(.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str, str, str]]:
    """(page, terminal width, command, expected output) for every `$ convcalc ...` line of a console block.

    A block is run at 100 columns, or at the width an HTML comment before it
    names: ``<!-- columns: 120 -->``.
    """
    found = []
    for page in PAGES:
        for width, block in BLOCK.findall(page.read_text()):
            for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
                command, _, output = chunk.partition("\n")
                found.append((page.name, width or "100", command, output))
    return found


def shown(command: str, width: str) -> str:
    """What a terminal ``width`` columns wide shows for ``command``: standard output, then standard error."""
    args = shlex.split(command)
    assert args[0] == "convcalc", f"only convcalc commands belong in console blocks: {command}"
    result = CliRunner(env={"COLUMNS": width}).invoke(main, args[1:], prog_name="convcalc")
    return "\n".join(line.rstrip() for line in (result.stdout + result.stderr).splitlines())


@pytest.mark.parametrize(("page", "width", "command", "expected"), examples())
def test_console_examples_print_what_the_docs_show(page: str, width: str, command: str, expected: str) -> None:
    assert shown(command, width) == expected.rstrip("\n"), f"{page}: {command}"


@pytest.mark.skipif(not REGENERATE, reason="only with CONVCALC_REGENERATE_GOLDEN=1: rewrites the docs' examples")
def test_regenerate_console_examples() -> None:
    """Write what convcalc prints now into every console block (then read the diff before committing it)."""

    def block(match: re.Match[str]) -> str:
        width = match[1] or "100"
        chunks = re.split(r"^\$ ", match[2], flags=re.MULTILINE)[1:]
        body = ""
        for command in (chunk.partition("\n")[0] for chunk in chunks):
            output = shown(command, width)
            body += f"$ {command}\n" + (f"{output}\n" if output else "")
        return match[0][: match.start(2) - match.start(0)] + body + "```"

    for page in PAGES:
        text = page.read_text()
        page.write_text(BLOCK.sub(block, text))


def test_there_are_examples_on_every_page() -> None:
    pages = {page for page, _, _, _ in examples()}
    assert {"README.md", "usage.md", "formulas.md"} <= pages


def test_ci_runs_the_test_command_the_readme_shows() -> None:
    readme = (ROOT / "README.md").read_text()
    test_command = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_every_command_and_option_is_documented() -> None:
    usage = (ROOT / "docs" / "usage.md").read_text()
    for command in main.commands.values():
        assert f"convcalc {command.name}" in usage
        for param in command.params:
            for name in param.opts:
                if name.startswith("--"):
                    assert f"`{name}" in usage, f"{name} of convcalc {command.name} is not in docs/usage.md"


def test_every_supported_layer_is_in_the_stack_reference() -> None:
    from convcalc.catalog import LAYERS, Form

    reference = (ROOT / "docs" / "stack.md").read_text()
    missing = [name for name in LAYERS if f"| `{name}` |" not in reference]
    assert not missing, f"docs/stack.md lacks {missing}"
    modules = sum(kind.form in (Form.MODULE, Form.ATTENTION) for kind in LAYERS.values())
    assert f"{modules} torch.nn classes" in (ROOT / "CHANGELOG.md").read_text()
