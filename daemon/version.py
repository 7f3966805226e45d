"""The installed tradingd's version (``tradingd --version``, ``/admin/status``). No messages."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def tradingd_version() -> str:
    try:
        return version("tradingd")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"
