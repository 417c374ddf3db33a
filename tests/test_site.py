"""The docs site builds with MkDocs in strict mode: a broken link, a missing page or a bad anchor fails."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_site_builds_strictly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    # the CLI reference is generated from the commands, so every command is in it
    reference = (tmp_path / "site" / "cli" / "index.html").read_text()
    for command in ("conv", "pool", "stack", "fit", "solve"):
        assert f"convcalc {command}" in reference
    assert (tmp_path / "site" / "tutorial.ko" / "index.html").exists()


def test_every_page_is_in_the_nav() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert f" {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"
