"""Test settings shared by every file: Hypothesis' profiles (tests/profiles.py).

``pytest`` runs the derandomized ``default`` profile: the same cases on every
run and every machine, CI or not, and no wall-clock deadline.
``pytest --hypothesis-profile=explore`` draws new cases, ten times as many.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests.profiles import register

register()


def pytest_configure(config: pytest.Config) -> None:
    if not config.getoption("hypothesis_profile", None):  # Hypothesis' plugin loads a profile named on the line
        settings.load_profile("default")
