"""Shared test fixtures: anyio runs every async test on asyncio (the daemon's backend, under uvloop).

Hypothesis: ``HYPOTHESIS_PROFILE=ci`` (set by ``make test``, which CI runs) derandomizes the
property tests, so the gate explores the same examples every time and never turns red by chance;
plain ``pytest`` (the default profile) explores new examples and keeps failures in ``.hypothesis/``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
