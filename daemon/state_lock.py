"""One daemon per state directory: an exclusive ``flock`` on ``<state_dir>/tradingd.lock``.

The mirror's spill and the (future) journal live in the state directory; two processes
writing them would corrupt each other's ids and frames.  The lock is released by the
kernel when the process exits, however it exits, so a crash never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StateDirLocked(Exception):
    """Another process holds the state directory."""


class StateLock:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "tradingd.lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StateDirLocked(
                f"state_dir {self.path.parent} is in use by another tradingd (pid {holder}); "
                "give each instance its own daemon.state_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
