"""The docs cannot drift: every console example in them runs, and shows what convcalc prints."""

from __future__ import annotations

import json
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


def _keys(data: object, found: set[str]) -> set[str]:
    """Every key of a JSON value, but not the names inside ``arguments`` (torch's) or ``blocks`` (branch names)."""
    if isinstance(data, dict):
        for key, value in data.items():
            found.add(key)
            if key == "arguments":
                continue
            for inner in value.values() if key == "blocks" else [value]:
                _keys(inner, found)
    elif isinstance(data, list):
        for item in data:
            _keys(item, found)
    return found


JSON_COMMANDS = [
    ["conv", "7x9", "--transposed", "--k", "4", "--s", "2", "--in-channels", "8", "--out-channels", "4", "--verify"],
    ["conv", "28", "--k", "5", "--p", "same", "--padding-mode", "reflect"],
    ["pool", "5", "--k", "2", "--ceil-mode", "--type", "avg"],
    ["pool", "5", "--k", "2", "--d", "2"],
    ["stack", "examples/googlenet.yaml", "--verify"],
    ["stack", "examples/resnet18.yaml"],
    ["stack", "examples/unet.yaml"],
    ["stack", "examples/lenet5.yaml", "--input", "1x1x8x8"],
    ["solve", "64", "32", "--type", "max"],
    ["solve", "7", "14", "--transposed"],
    ["fit", "examples/vgg16.yaml", "--range", "16:64"],
]


def test_every_json_key_is_in_the_json_page() -> None:
    page = (ROOT / "docs" / "json.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", page))
    for args in JSON_COMMANDS:
        result = CliRunner().invoke(main, [*args, "--json"])
        keys = _keys(json.loads(result.stdout), set())
        assert keys - documented == set(), f"{' '.join(args)}: {sorted(keys - documented)} not in docs/json.md"
    header = CliRunner().invoke(main, ["stack", "examples/resnet18.yaml", "--csv"]).stdout.splitlines()[0]
    assert set(header.split(",")) - documented == set()
