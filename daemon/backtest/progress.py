"""A progress bar on stderr, drawn only when stderr is a terminal (never in pipes or logs)."""

from __future__ import annotations

import sys
from typing import TextIO

from daemon.backtest.runner import Progress

WIDTH = 40


def progress_bar(stream: TextIO | None = None, label: str = "backtest") -> Progress | None:
    """A callback ``(done, total)`` drawing a bar, or None when ``stream`` is not a TTY."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        return None
    last = [-1]

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct == last[0]:
            return
        last[0] = pct
        filled = WIDTH * pct // 100
        out.write(f"\r{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {pct:3d}% {done:,}/{total:,}")
        if done >= total:
            out.write("\n")
        out.flush()

    return show
