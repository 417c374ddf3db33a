"""Hypothesis' two profiles for this suite, and the case counts that follow the one loaded.

``default`` (what ``pytest`` runs, in CI and anywhere else): derandomized, so
every run on every machine draws the same cases, and with no wall-clock
deadline, since a shared, loaded machine must never turn a slow case into a
failure. The README's test command is green on every run or on none.

``explore`` (``pytest --hypothesis-profile=explore``): new random cases on
every run, :data:`EXPLORE_FACTOR` times as many, and the failures it finds
kept in ``.hypothesis/`` and replayed first on the next explore run.
docs/fuzzing.md says how to use it: a case it finds is fixed and kept as an
``@example``, so that the default profile replays it from then on.
"""

from __future__ import annotations

from hypothesis import settings

__all__ = ["EXPLORE_FACTOR", "register", "scaled"]

EXPLORE_FACTOR = 10
"""How many times more cases the explore profile draws than the default one."""

_DEFAULT_EXAMPLES = 100  # Hypothesis' own default max_examples


def register() -> None:
    """Register both profiles (``ci`` is the name earlier versions gave the default one)."""
    settings.register_profile("default", derandomize=True, deadline=None, print_blob=True)
    settings.register_profile("ci", parent=settings.get_profile("default"))
    settings.register_profile(
        "explore", max_examples=_DEFAULT_EXAMPLES * EXPLORE_FACTOR, deadline=None, print_blob=True
    )


def scaled(count: int) -> int:
    """A test's case count under the profile loaded: ``count`` by default, EXPLORE_FACTOR times it when exploring.

    Read when a test module is imported, after pytest has loaded the profile its command line names.
    """
    return count * settings.default.max_examples // _DEFAULT_EXAMPLES
