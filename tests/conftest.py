"""Shared test fixtures: anyio runs every async test on asyncio (the daemon's backend, under uvloop)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
