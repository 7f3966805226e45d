"""The systemd notify protocol (sd_notify(3)) without libsystemd: readiness, reload, stop, watchdog.

systemd passes ``NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for the abstract
namespace), and with ``WatchdogSec=`` also ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``).
Each notification is one ``AF_UNIX``/``SOCK_DGRAM`` datagram of newline-separated
``KEY=value`` assignments, sent without blocking.  Outside systemd (no
``NOTIFY_SOCKET``) every method is a cheap no-op returning ``False``; a socket that
has gone away is logged once and never raises.

Reload sequence (``systemctl reload`` -> SIGHUP): call :meth:`SystemdNotifier.reloading`,
apply the new config, then :meth:`SystemdNotifier.ready` again.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

import anyio

__all__ = ["SystemdNotifier"]

log = logging.getLogger("tradingd.sdnotify")


def _socket_address(value: str) -> str | None:
    """``NOTIFY_SOCKET`` as an ``AF_UNIX`` address; None for unsupported kinds (e.g. ``vsock:``)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def _watchdog_usec(environ: Mapping[str, str]) -> int | None:
    """``WATCHDOG_USEC`` if it is meant for this process (``WATCHDOG_PID`` unset or ours)."""
    raw_usec = environ.get("WATCHDOG_USEC", "")
    raw_pid = environ.get("WATCHDOG_PID", "")
    if not raw_usec:
        return None
    try:
        usec = int(raw_usec)
        pid = int(raw_pid) if raw_pid else None
    except ValueError:
        log.warning("ignoring malformed WATCHDOG_USEC=%r / WATCHDOG_PID=%r", raw_usec, raw_pid)
        return None
    if usec <= 0 or (pid is not None and pid != os.getpid()):
        return None
    return usec


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class SystemdNotifier:
    """Sends sd_notify datagrams to ``address``; pings the watchdog every ``watchdog_usec / 2``."""

    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self._address = address
        self._watchdog_usec = watchdog_usec if address else None
        self._warned = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (default: ``os.environ``)."""
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        address = _socket_address(raw) if raw else None
        if raw and address is None:
            log.warning("unsupported NOTIFY_SOCKET %r: systemd notifications disabled", raw)
        return cls(address, _watchdog_usec(env))

    @property
    def enabled(self) -> bool:
        """True when running under a systemd unit that listens for notifications."""
        return self._address is not None

    @property
    def watchdog_usec(self) -> int | None:
        """The watchdog timeout in microseconds, or None when no watchdog applies to this process."""
        return self._watchdog_usec

    @property
    def watchdog_enabled(self) -> bool:
        return self._watchdog_usec is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` assignments as one datagram; True if it was delivered to the socket."""
        for item in assignments:
            if "=" not in item or "\n" in item:
                raise ValueError(f"sd_notify assignment must be KEY=value on one line, got {item!r}")
        if self._address is None or not assignments:
            return False
        payload = "\n".join(assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except OSError as exc:
            self._warn_once(exc)
            return False
        return True

    def _warn_once(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("cannot notify systemd at %r: %s (further failures not logged)", self._address, exc)

    # --- helpers ----------------------------------------------------------------------------

    def ready(self, status: str | None = None) -> bool:
        """Startup or reload finished."""
        return self.notify("READY=1", *self._status(status))

    def reloading(self, status: str | None = None) -> bool:
        """A reload started; systemd >= 253 (Type=notify-reload) requires MONOTONIC_USEC with it."""
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={_monotonic_usec()}", *self._status(status))

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown started."""
        return self.notify("STOPPING=1", *self._status(status))

    def watchdog(self) -> bool:
        """Tell the watchdog the process (and its event loop) is alive."""
        return self.notify("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """Free-form status shown by ``systemctl status``."""
        return self.notify(*self._status(text))

    @staticmethod
    def _status(text: str | None) -> tuple[str, ...]:
        if text is None:
            return ()
        return ("STATUS=" + " ".join(text.splitlines()),)

    async def watchdog_loop(self) -> None:
        """Send ``WATCHDOG=1`` now and then every ``watchdog_usec / 2``; returns at once without a watchdog.

        It runs on the event loop, so a stalled loop stops the pings and systemd restarts
        the service.  Run it in the daemon's task group; it ends only by cancellation.
        """
        if self._watchdog_usec is None:
            return
        interval = self._watchdog_usec / 2 / 1_000_000
        next_at = time.monotonic()
        while True:
            self.watchdog()
            # Schedule from the previous deadline so pings do not drift late; after a stall,
            # ping at once instead of bursting to catch up.
            now = time.monotonic()
            next_at = max(next_at + interval, now)
            await anyio.sleep(next_at - now)
