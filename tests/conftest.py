"""Test settings shared by every file.

In CI (CI=true) Hypothesis runs derandomized: the same cases on every run, so
that a submission's result does not depend on the seed it drew. Locally each
run explores new cases; a failure found there is kept in .hypothesis/ and
replayed until fixed.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")
