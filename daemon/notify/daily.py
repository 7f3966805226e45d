"""The daily summary per account: PnL, fills, round trips, fees and drawdown of the last 24 hours.

Takes PositionChanged records from the ``{prefix}:*:*:position`` streams (read with XRANGE over
the day: entry ids are milliseconds) and emits one ``daily`` :class:`Alert` per account at
``notify.daily_time`` in ``notify.timezone``.  A marker key set in the same MULTI/EXEC as the
filing makes each day's summary go out once, also across restarts; one missed while the
notifier was down goes out late at the next start (within 6 hours).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import anyio
from redis.asyncio import Redis
from redis.exceptions import WatchError

from actors.messages import PositionChanged
from daemon.notify.config import NotifyConfig, parse_hhmm
from daemon.notify.consumer import decode
from daemon.notify.events import Alert, iso_s, num, quote_of, signed
from daemon.notify.outbox import Outbox

log = logging.getLogger("tradingd.notify.daily")
_X = {"component": "notify"}
LATE_LIMIT_S = 6 * 3600


class DayStats:
    """One account's day in one quote asset."""

    def __init__(self) -> None:
        self.pnl = self.fees = self.peak = self.drawdown = Decimal(0)
        self.fills = self.round_trips = 0

    def add(self, pnl: Decimal, fees: Decimal, flat: bool) -> None:
        self.pnl += pnl
        self.fees += fees
        self.fills += 1
        self.round_trips += flat
        self.peak = max(self.peak, self.pnl)
        self.drawdown = max(self.drawdown, self.peak - self.pnl)


def last_run(now: float, at: str, tz: ZoneInfo) -> float:
    """The latest scheduled time at or before ``now`` (epoch seconds)."""
    local = datetime.fromtimestamp(now, tz)
    hhmm = parse_hhmm(at)
    run = local.replace(hour=hhmm.hour, minute=hhmm.minute, second=0, microsecond=0)
    if run > local:
        run = (run - timedelta(days=1)).replace(hour=hhmm.hour, minute=hhmm.minute)
    return run.timestamp()


class DailySummary:
    def __init__(self, cfg: NotifyConfig, redis: Redis, clock: Any = time.time) -> None:
        self.cfg, self.r, self.clock = cfg, redis, clock
        self.outbox = Outbox(cfg)
        self.tz = ZoneInfo(cfg.notify.timezone)

    async def run(self) -> None:
        """Send each day's summary at its time; cancelled with the notifier."""
        while True:
            due = last_run(self.clock(), self.cfg.notify.daily_time, self.tz)
            if self.clock() - due <= LATE_LIMIT_S:
                await self.send(due)
            nxt = last_run(self.clock() + 86400 + 60, self.cfg.notify.daily_time, self.tz)
            while nxt - 86400 > self.clock() + 1:  # DST: the next run is within 25 h
                nxt -= 86400
            await anyio.sleep(max(1.0, min(nxt - self.clock(), 3600.0)))

    async def collect(self, start_ms: int, end_ms: int) -> dict[tuple[str, str], DayStats]:
        stats: dict[tuple[str, str], DayStats] = {}
        async for raw in self.r.scan_iter(match=f"{self.cfg.redis.prefix}:*:*:position", _type="stream"):
            key = raw.decode()
            if self.outbox.keys.is_ours(key):
                continue
            prev: dict[str, PositionChanged] = {}
            before: Any = await self.r.xrevrange(key, max=f"({start_ms}-0", min="-", count=200)
            for _id, fields in reversed(before):
                if fields.get(b"type") == b"PositionChanged":
                    p = decode(fields[b"data"])
                    if isinstance(p, PositionChanged):
                        prev[p.account] = p
            day: Any = await self.r.xrange(key, min=f"{start_ms}-0", max=f"({end_ms}-0")
            for _id, fields in day:
                if fields.get(b"type") != b"PositionChanged":
                    continue
                p = decode(fields[b"data"])
                if not isinstance(p, PositionChanged):
                    continue
                if p.recovered:
                    prev[p.account] = p
                    continue
                old = prev.get(p.account)
                pnl = p.realized_pnl - (old.realized_pnl if old else Decimal(0))
                fees = p.fees - (old.fees if old else Decimal(0))
                if old is None or old.quantity != p.quantity:
                    stats.setdefault((p.account, quote_of(p.symbol)), DayStats()).add(
                        pnl, fees, p.quantity == 0
                    )
                prev[p.account] = p
        return stats

    async def send(self, due: float) -> int:
        """File the summaries of the 24 h before ``due`` unless that day's are already filed."""
        end_ms = int(due * 1000)
        day = datetime.fromtimestamp(due, self.tz).date().isoformat()
        stats = await self.collect(end_ms - 86_400_000, end_ms)
        accounts = sorted({a for a, _ in stats}) or ["all"]
        filed = 0
        for account in accounts:
            marker = self.outbox.keys.daily(account, day)
            async with self.r.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(marker)
                    if await pipe.exists(marker):
                        continue
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(marker, "1", ex=8 * 86400)
                    filed += self.outbox.file(pipe, self._alert(account, stats, end_ms))
                    await pipe.execute()
                except WatchError:
                    continue
        if filed:
            log.info("daily summary for %s filed for %d target(s)", day, filed, extra=_X)
        return filed

    def _alert(self, account: str, stats: dict[tuple[str, str], DayStats], end_ms: int) -> Alert:
        parts = []
        for (acct, quote), s in sorted(stats.items()):
            if acct == account:
                parts.append(
                    f"PnL {signed(s.pnl)} {quote}, {s.fills} fills ({s.round_trips} round trips), "
                    f"fees {num(s.fees)} {quote}, max drawdown {num(s.drawdown)} {quote}"
                )
        text = "; ".join(parts) or "no fills"
        return Alert(
            kind="daily",
            severity="info",
            title=f"daily summary {account}",
            text=f"daily summary {account}, 24 h to {iso_s(end_ms)}: {text}",
            ts_ms=end_ms,
        )
