"""Times for people: nanoseconds since the epoch as ISO 8601 UTC, a risk day as its date.

Takes and emits no messages.  The one place that formats a time for a log line, ``/status``, a
reason or a report, so that none of them shows ``event time 1509902640000000000`` or
``risk day 17475``.  Integer arithmetic (no float seconds): a time in nanoseconds is shown
exactly to the chosen precision, truncated, never rounded into the next second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

__all__ = ["iso_utc", "utc_date"]

NS = 1_000_000_000


def iso_utc(ns: int, timespec: Literal["seconds", "milliseconds"] = "seconds") -> str:
    """``2017-11-05T12:30:00Z`` (or ``...:00.123Z`` with milliseconds) for ``ns`` since the epoch."""
    seconds, rest = divmod(ns, NS)
    dt = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rest // 1000)
    return dt.isoformat(timespec=timespec).replace("+00:00", "Z")


def utc_date(day: int) -> str:
    """The date of a UTC day counted from the epoch (risk days): 17475 -> ``2017-11-05``."""
    return datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat()
