"""The docs site builds with MkDocs in strict mode (a broken link, a missing page or a bad anchor fails), and its
generated pages say what the commands themselves say."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import click
import pytest

from convcalc.cli import main

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    return target


@dataclass
class Section:
    """What a page shows under one heading: its table rows (cell texts) and its code blocks."""

    rows: list[list[str]] = field(default_factory=list)
    code: list[str] = field(default_factory=list)


class Page(HTMLParser):
    """The ``lang`` of a built page's ``<html>``, and its article's sections by heading text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.sections: dict[str, Section] = {}
        self._section = Section()
        self._in_article = 0
        self._heading: list[str] | None = None
        self._cell: list[str] | None = None
        self._pre: list[str] | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "html":
            self.lang = dict(attrs).get("lang")
        elif tag == "article":
            self._in_article += 1
        elif not self._in_article:
            return
        elif tag in ("h1", "h2", "h3", "h4"):
            self._heading = []
        elif tag == "tr":
            self._section.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "pre":
            self._pre = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._in_article -= 1
        elif tag in ("h1", "h2", "h3", "h4") and self._heading is not None:
            title = "".join(self._heading).replace("¶", "").strip()
            self._section = self.sections.setdefault(title, Section())
            self._heading = None
        elif tag in ("td", "th") and self._cell is not None:
            self._section.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "pre" and self._pre is not None:
            self._section.code.append("".join(self._pre))
            self._pre = None

    def handle_data(self, data: str) -> None:
        for buffer in (self._heading, self._cell, self._pre):
            if buffer is not None:
                buffer.append(data)


def _commands() -> list[tuple[str, click.Command, click.Context]]:
    """Every command with its context, built as click builds them: ``convcalc`` first, then its subcommands."""
    root = click.Context(main, info_name="convcalc", **main.context_settings)
    found: list[tuple[str, click.Command, click.Context]] = [("convcalc", main, root)]
    for name, command in main.commands.items():
        found.append((f"convcalc {name}", command, click.Context(command, info_name=name, parent=root)))
    return found


def _unwrapped(text: str | None) -> list[str]:
    """The paragraphs that click prints as they are (``\\b`` on the line before them), as text blocks."""
    paragraphs = inspect.cleandoc(text or "").split("\f")[0].split("\n\n")
    return ["\n".join(p.splitlines()[1:]) for p in paragraphs if p.splitlines()[:1] == ["\b"]]


def _help_default(option: click.Option, context: click.Context) -> str:
    """The default that ``--help`` shows for an option ("" for none), from click's own help line."""
    record = option.get_help_record(context)
    match = re.search(r"\[default: (.*?)(?:;|\]$)", record[1] if record else "")
    return match[1] if match else ""


def test_site_builds_strictly(site: Path) -> None:
    reference = (site / "cli" / "index.html").read_text()
    for title, _, _ in _commands():
        assert title in Page(reference).sections, f"{title} has no section in the CLI reference"
    assert (site / "tutorial.ko" / "index.html").exists()


def test_cli_reference_has_every_option_with_its_help_and_default(site: Path) -> None:
    reference = (site / "cli" / "index.html").read_text()
    assert "Sentinel" not in reference
    page = Page(reference)
    for title, command, context in _commands():
        rows = page.sections[title].rows
        header = rows[0]
        assert [len(row) for row in rows] == [len(header)] * len(rows), f"{title}: a row has a cell too many"
        for option in command.params:
            if not isinstance(option, click.Option) or option.hidden:
                continue
            names = {*option.opts, *option.secondary_opts}
            matching = [row for row in rows[1:] if set(re.split(r"[\s,/]+", row[0])) - {""} == names]
            assert len(matching) == 1, f"{title}: no row for {sorted(names)} in {[row[0] for row in rows]}"
            row = dict(zip(header, matching[0]))
            assert row["Description"] == " ".join((option.help or "").split()), f"{title} {option.opts[0]}"
            shown = row["Default"].lstrip("-") if option.secondary_opts else row["Default"]
            expected = _help_default(option, context) or ("required" if option.required else "")
            assert shown == expected, f"{title} {option.opts[0]}: the default shown is {row['Default']!r}"


def test_padding_row_shows_the_whole_value_form(site: Path) -> None:
    page = Page((site / "cli" / "index.html").read_text())
    for name in ("conv", "pool"):
        header, *rows = page.sections[f"convcalc {name}"].rows
        (padding,) = [dict(zip(header, row)) for row in rows if row[0].startswith("--padding,")]
        assert padding["Value"] == "N[xN...]|same|valid"


def test_help_examples_are_code_blocks(site: Path) -> None:
    page = Page((site / "cli" / "index.html").read_text())
    every_block = [block for section in page.sections.values() for block in section.code]
    for title, command, _ in _commands():
        examples = _unwrapped(command.help)
        assert examples, f"{title}: its help has no \\b paragraph of examples"
        for example in examples:
            assert any(example in block for block in page.sections[title].code), f"{title}: {example!r} is no code"
        for block in _unwrapped(command.epilog):
            assert any(block in shown for shown in every_block), f"{title}'s epilog: {block!r} is no code block"


def test_korean_tutorial_declares_its_language(site: Path) -> None:
    assert Page((site / "tutorial.ko" / "index.html").read_text()).lang == "ko"
    assert Page((site / "tutorial" / "index.html").read_text()).lang == "en"


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f" {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"
