"""Reads the daemon's Redis streams with a consumer group and files alerts, exactly once.

Takes every stream ``{prefix}:{exchange}:{symbol}:{kind}`` of the kinds ``position``, ``order``,
``fill``, ``risk``, ``system`` and ``event`` (found with SCAN, again every ``scan_interval_s``), read with
XREADGROUP as consumer ``notify.consumer`` of group ``notify.group``.  For each batch the alerts
(:mod:`daemon.notify.events`) are filed into the targets' outboxes and the entries XACKed in one
MULTI/EXEC: a crash before EXEC leaves them pending (read again on restart: this consumer's own
pending entries first, others' reclaimed with XAUTOCLAIM once idle ``claim_idle_s``); after EXEC
they are filed and acknowledged together.  So no alert is lost or filed twice.

The group starts at the notifier's first start (``start = "now"``, the time kept in Redis) or at
the beginning of every stream (``start = "all"``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import anyio
import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from actors.messages import (
    ANY_DECODER_JSON,
    ANY_DECODER_MSGPACK,
    Message,
    OrderFilled,
    OrderUnknown,
    PositionChanged,
)
from daemon.notify.config import NotifyConfig
from daemon.notify.events import Alert, fill_alert, message_alert
from daemon.notify.outbox import Outbox

log = logging.getLogger("tradingd.notify.consumer")
_X = {"component": "notify"}

STREAM_KINDS = ("position", "order", "fill", "risk", "system", "event")
ALERT_TYPES = frozenset(
    {
        b"PositionChanged",
        b"OrderRejected",
        b"OrderUnknown",
        b"StopTriggered",
        b"RiskDayChanged",
        b"HaltChanged",
        b"LedgerAdjusted",
        b"ActorFailed",
        b"ConfigReloaded",
        b"ServiceChanged",
    }
)
RESOLVING_TYPES = frozenset(
    {b"OrderAccepted", b"OrderRejected", b"OrderCanceled", b"OrderExpired", b"OrderFilled"}
)
Entry = tuple[bytes, dict[bytes, bytes] | None]


def decode(data: bytes) -> Message:
    return ANY_DECODER_JSON.decode(data) if data[:1] == b"{" else ANY_DECODER_MSGPACK.decode(data)


class Consumer:
    """One consumer of the group; :meth:`run` until cancelled."""

    def __init__(self, cfg: NotifyConfig, redis: Redis, consumer: str) -> None:
        self.cfg, self.r, self.name = cfg, redis, consumer
        self.group = cfg.notify.group
        self.outbox = Outbox(cfg)
        self.keys = self.outbox.keys
        self.streams: dict[str, str] = {}
        self.filed = self.acked = self.poisoned = 0
        self._since = "0-0"

    async def setup(self) -> None:
        """The group's start id (kept in Redis from the first start) and the streams found now."""
        if self.cfg.notify.start == "now":
            await self.r.set(self.keys.since, f"{int(time.time() * 1000)}-0", nx=True)
            raw = await self.r.get(self.keys.since)
            self._since = raw.decode() if isinstance(raw, bytes) else "0-0"
        await self.discover()

    async def discover(self) -> list[str]:
        """Add streams that appeared since the last scan; their group is created at the start id."""
        found: list[str] = []
        for kind in STREAM_KINDS:
            async for raw in self.r.scan_iter(
                match=f"{self.cfg.redis.prefix}:*:*:{kind}", count=1000, _type="stream"
            ):
                key = raw.decode() if isinstance(raw, bytes) else str(raw)
                if key in self.streams or self.keys.is_ours(key):
                    continue
                try:
                    await self.r.xgroup_create(key, self.group, id=self._since)
                except ResponseError as exc:
                    if "BUSYGROUP" not in str(exc):
                        raise
                self.streams[key] = "0"  # this consumer's own pending entries first
                found.append(key)
        if found:
            log.info("reading %d new streams: %s", len(found), ", ".join(sorted(found)[:10]), extra=_X)
        return found

    async def read_once(self) -> int:
        """One XREADGROUP round (own pending entries of new streams, then new ones); entries handled."""
        pending = {k: v for k, v in self.streams.items() if v == "0"}
        if pending:
            reply: Any = await self.r.xreadgroup(self.group, self.name, pending, count=200)  # type: ignore[arg-type]
            n = 0
            for key, entries in reply or []:
                k = key.decode()
                if not entries:
                    self.streams[k] = ">"
                n += await self.handle(k, entries)
            if n:
                return n
        if not self.streams:
            await anyio.sleep(min(1.0, self.cfg.notify.scan_interval_s))
            return 0
        reply = await self.r.xreadgroup(
            self.group,
            self.name,
            dict.fromkeys(self.streams, ">"),
            count=200,
            block=self.cfg.notify.block_ms,
        )
        n = 0
        for key, entries in reply or []:
            n += await self.handle(key.decode(), entries)
        return n

    async def claim_idle(self) -> int:
        """XAUTOCLAIM entries another (dead) consumer left pending for ``claim_idle_s``; handle them."""
        idle_ms = int(self.cfg.notify.claim_idle_s * 1000)
        n = 0
        for key in list(self.streams):
            start = "0-0"
            for _ in range(100):
                claimed: Any = await self.r.xautoclaim(key, self.group, self.name, idle_ms, start, count=200)
                start = claimed[0].decode() if isinstance(claimed[0], bytes) else str(claimed[0])
                if claimed[1]:
                    log.info("reclaimed %d pending entries of %s", len(claimed[1]), key, extra=_X)
                    n += await self.handle(key, claimed[1])
                if start == "0-0":
                    break
        return n

    async def handle(self, key: str, entries: Sequence[Entry]) -> int:
        """File the alerts of ``entries`` and XACK them all, in one transaction."""
        if not entries:
            return 0
        alerts: list[Alert] = []
        unknown_add: list[str] = []
        resolving: list[tuple[Message, str]] = []
        for entry_id, fields in entries:
            if not fields:
                continue  # trimmed away (MAXLEN) while pending: nothing to tell
            tag = fields.get(b"type", b"")
            if tag not in ALERT_TYPES and tag not in RESOLVING_TYPES:
                continue
            try:
                msg = decode(fields[b"data"])
            except (msgspec.DecodeError, KeyError) as exc:
                self.poisoned += 1
                log.warning("undecodable entry %s %s: %s", key, entry_id.decode(), exc, extra=_X)
                continue
            if tag in RESOLVING_TYPES:
                resolving.append((msg, getattr(msg, "client_order_id", "")))
            if isinstance(msg, PositionChanged):
                alert = await self._fill(key, entry_id.decode(), msg)
            else:
                alert = message_alert(msg)
                if isinstance(msg, OrderUnknown):
                    unknown_add.append(msg.client_order_id)
            if alert is not None:
                alerts.append(alert)
        resolved: list[str] = []
        if resolving:
            member = await self.r.smismember(self.keys.unknown_orders, [c for _, c in resolving])
            for (msg, coid), known in zip(resolving, member, strict=True):
                if known and coid not in unknown_add:
                    resolved.append(coid)
                    done = message_alert(msg, resolved_unknown=True)
                    if done is not None:
                        alerts.append(done)
        async with self.r.pipeline(transaction=True) as pipe:
            for alert in alerts:
                self.filed += self.outbox.file(pipe, alert)
            if unknown_add:
                pipe.sadd(self.keys.unknown_orders, *unknown_add)
            if resolved:
                pipe.srem(self.keys.unknown_orders, *resolved)
            pipe.xack(key, self.group, *[e[0] for e in entries])
            await pipe.execute()
        self.acked += len(entries)
        return len(entries)

    async def _fill(self, key: str, entry_id: str, pos: PositionChanged) -> Alert | None:
        """The fill alert of a position change: the previous position and the fill's price."""
        if pos.recovered:
            return None
        prev: PositionChanged | None = None
        older: Any = await self.r.xrevrange(key, max=f"({entry_id}", min="-", count=100)
        for _id, fields in older:
            if fields.get(b"type") == b"PositionChanged":
                found = decode(fields[b"data"])
                if isinstance(found, PositionChanged) and found.account == pos.account:
                    prev = found
                    break
        price: Decimal | None = None
        fee: Decimal | None = None
        if pos.last_client_order_id and key.endswith(":position"):
            ms = entry_id.split("-", 1)[0]
            fills: Any = await self.r.xrevrange(
                key.removesuffix(":position") + ":fill", max=f"{ms}-18446744073709551615", min="-", count=50
            )
            for _id, fields in fills:
                fill = decode(fields[b"data"]) if fields.get(b"type") == b"OrderFilled" else None
                if isinstance(fill, OrderFilled) and fill.client_order_id == pos.last_client_order_id:
                    price, fee = fill.last_price, fill.fee
                    break
        return fill_alert(pos, prev, price, fee)
