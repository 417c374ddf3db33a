"""Golden files: outputs kept in the repository that a test's output must equal.

Run the tests with CONVCALC_REGENERATE_GOLDEN=1 to write the current outputs
over them (then read the diff before committing it).
"""

from __future__ import annotations

import os
from pathlib import Path

REGENERATE = os.environ.get("CONVCALC_REGENERATE_GOLDEN") == "1"


def assert_matches_golden(text: str, path: Path) -> None:
    """``text`` equals the golden file at ``path`` (which it replaces when regenerating)."""
    if REGENERATE:
        path.write_text(text)
    assert text == path.read_text()
