"""Account-wide risk limits: one object per ``[accounts.X]`` shared by the risk actors of its groups.

Per-symbol limits live in each group's risk actor (:mod:`actors.risk`); these add up what
all the account's groups do, so ten symbols cannot together take ten times the risk one
was given.  Every rule applies to entries only (non-reduce-only intents): exits always pass.

- ``max_open_orders`` (0 = off): orders open across the account's groups (approved and not
  yet ended, as each group's risk counts them);
- ``max_orders_per_minute`` (0 = off): entries approved in the last 60 s of event time;
- ``max_trades_per_day`` (0 = off): entries approved per UTC day (event time);
- ``daily_loss_limit`` (per quote asset, e.g. ``{ USDT = "100" }``): the sum of the day's
  PnL (as each group's risk computes it: realized - fees + unrealized since the start of the
  UTC day) of the groups quoted in that asset; at or below ``-limit`` every group of the
  account quoted in it is REDUCING for the rest of the day (latched).

Rules are checked after the group's own, with rule names prefixed ``account_``.  The object
is plain shared state on the one event loop: no locks, no messages.  ``update`` replaces the
limits on a config reload (a changed loss limit clears the latch).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Protocol

import msgspec

from actors.messages import OrderIntent

NS = 1_000_000_000
DAY_NS = 86_400 * NS
ZERO = Decimal(0)
Verdict = tuple[str, str] | None


class AccountRiskLimits(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """``[accounts.X.risk]``: limits over all of the account's groups (0 / empty = off)."""

    max_open_orders: int = 0
    max_orders_per_minute: int = 0
    max_trades_per_day: int = 0
    daily_loss_limit: dict[str, Decimal] = {}


class GroupRiskView(Protocol):
    """What the account needs from each group's risk actor."""

    def open_order_count(self) -> int: ...

    def daily_pnl(self) -> Decimal: ...


class AccountRisk:
    """Shared by the risk actors of one account's groups."""

    def __init__(self, name: str, limits: AccountRiskLimits) -> None:
        self.name = name
        self.limits = limits
        self.groups: dict[tuple[str, str], tuple[str, GroupRiskView]] = {}  # key -> (quote, view)
        self.recent: deque[int] = deque()  # event times of recent entries
        self.day = -1
        self.day_entries = 0
        self.breached: dict[str, str] = {}  # quote asset -> reason, for the rest of the day
        self.rejections: dict[str, int] = {}

    def update(self, limits: AccountRiskLimits) -> None:
        if limits.daily_loss_limit != self.limits.daily_loss_limit:
            self.breached.clear()
        self.limits = limits

    def register(self, key: tuple[str, str], quote: str, view: GroupRiskView) -> Callable[[], None]:
        """A group joins the account; returns the function that removes it (group stopped)."""
        self.groups[key] = (quote, view)
        return lambda: self.groups.pop(key, None) and None

    # --- decisions --------------------------------------------------------------------------
    def check(self, intent: OrderIntent, quote: str) -> Verdict:
        """The first account rule ``intent`` breaks, or None (exits always pass)."""
        if intent.reduce_only:
            return None
        self._roll(intent.ts_event)
        lim = self.limits
        verdict = self._check_loss(quote)
        if verdict is None and lim.max_open_orders > 0:
            n = sum(view.open_order_count() for _, view in self.groups.values())
            if n >= lim.max_open_orders:
                verdict = (
                    "account_max_open_orders",
                    (f"{n} orders open on account {self.name}, max_open_orders is {lim.max_open_orders}"),
                )
        if verdict is None and lim.max_orders_per_minute > 0:
            while self.recent and intent.ts_event - self.recent[0] > 60 * NS:
                self.recent.popleft()
            if len(self.recent) >= lim.max_orders_per_minute:
                verdict = (
                    "account_order_rate",
                    (
                        f"{len(self.recent)} entries in the last minute on account {self.name}, "
                        f"max_orders_per_minute is {lim.max_orders_per_minute}"
                    ),
                )
        if verdict is None and 0 < lim.max_trades_per_day <= self.day_entries:
            verdict = (
                "account_max_trades_per_day",
                (
                    f"{self.day_entries} entries today on account {self.name}, "
                    f"max_trades_per_day is {lim.max_trades_per_day}"
                ),
            )
        if verdict is not None:
            self.rejections[verdict[0]] = self.rejections.get(verdict[0], 0) + 1
        return verdict

    def approved(self, intent: OrderIntent) -> None:
        """Count an approved entry."""
        if not intent.reduce_only:
            self.recent.append(intent.ts_event)
            self.day_entries += 1

    def _roll(self, ts_event: int) -> None:
        day = ts_event // DAY_NS
        if day > self.day:
            self.day, self.day_entries = day, 0
            self.breached.clear()

    def _check_loss(self, quote: str) -> Verdict:
        limit = self.limits.daily_loss_limit.get(quote, ZERO)
        if limit <= 0:
            return None
        if quote not in self.breached:
            pnl = self.daily_pnl(quote)
            if pnl <= -limit:
                self.breached[quote] = (
                    f"account {self.name} day PnL {pnl} {quote} breached daily_loss_limit {limit} {quote}: "
                    "REDUCING (exits only) until the next UTC day"
                )
        reason = self.breached.get(quote)
        return None if reason is None else ("account_daily_loss_limit", reason)

    def daily_pnl(self, quote: str) -> Decimal:
        return sum((view.daily_pnl() for q, view in self.groups.values() if q == quote), ZERO)

    def status(self) -> dict[str, object]:
        quotes = sorted({q for q, _ in self.groups.values()})
        return {
            "limits": msgspec.to_builtins(self.limits),
            "open_orders": sum(view.open_order_count() for _, view in self.groups.values()),
            "entries_today": self.day_entries,
            "daily_pnl": {q: str(self.daily_pnl(q)) for q in quotes},
            "reducing": dict(self.breached),
            "rejections": dict(self.rejections),
        }
