"""Is the venue usable for new entries? The per-group view risk asks before it approves one.

A group that trades on Binance must not open positions it could not follow: while the account's
user data stream is not subscribed and caught up the daemon does not hear of fills; while REST is
unreachable, banned or its key refused, orders and cancels do not get through; without exchange
rules no order leaves; and on a stale book prices are not known.  :func:`venue_gate` builds, for
one group, the callable :class:`~actors.risk.RiskActor` keeps as ``venue_check``; it returns
``None`` (usable) or ``(rule, reason)``:

- ``venue_blind``: a readiness problem of the group's execution actor
  (:meth:`~adapters.binance.execution.BinanceExecution.problems`) or of its account
  (:meth:`~adapters.binance.account_stream.AccountUserStream.problems`), with the same reasons
  and the same grace (:data:`daemon.venue_health.VENUE_GRACE_S`) as ``/readyz``;
- ``book_stale``: a live feed that has not been current (:meth:`daemon.group.SymbolGroup.feed_age_s`)
  for longer than its ``silence_timeout_s`` plus that grace (the feed's own reconnect did not
  repair it in time).

Risk refuses entries only; exits (reduce-only) still go out whenever the venue takes them.  The
group is not halted for this (a halt cancels the open entry orders); the gate opens again as soon
as the venue is usable.  Paper groups and replay feeds have no gate.  It takes no messages and
emits none: a pure read of the group's state at the moment risk decides.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from actors.timefmt import iso_utc
from adapters.binance.execution import BinanceExecution
from adapters.okx.config import OkxFeed
from daemon import venue_health
from daemon.config_schema import BinanceFeed

if TYPE_CHECKING:
    from daemon.group import SymbolGroup

__all__ = ["Gate", "venue_gate"]

Gate = Callable[[], tuple[str, str] | None]


def venue_gate(group: SymbolGroup) -> Gate | None:
    """The entry gate of ``group``, or ``None`` when it has no venue health to go by (paper)."""
    venue = group.venue
    feed = group.cfg.feed
    silence_s = feed.silence_timeout_s if isinstance(feed, BinanceFeed | OkxFeed) else None
    if not isinstance(venue, BinanceExecution) and silence_s is None:
        return None

    def gate() -> tuple[str, str] | None:
        now = time.time_ns()
        grace = venue_health.VENUE_GRACE_S
        if isinstance(venue, BinanceExecution):
            problems = venue.problems(now, grace)
            stream = venue.account_stream
            if stream is not None:
                problems += [f"account {venue.account}: {p}" for p in stream.problems(now, grace)]
            if problems:
                return "venue_blind", f"no new entries while the venue is unusable: {'; '.join(problems)}"
        age = group.feed_age_s(now) if silence_s is not None else None
        if silence_s is not None and age is not None and age > silence_s + grace:
            since = iso_utc(now - int(age * 1e9))
            return (
                "book_stale",
                f"no new entries on a stale book: the feed not current since {since} ({age:.0f}s; "
                f"silence_timeout_s {silence_s:g} + {grace:g}s grace)",
            )
        return None

    return gate
