"""What an operator is told: daemon messages turned into short, human alerts (:class:`Alert`).

Takes (decoded from the Redis streams): PositionChanged (a fill: entry, exit with PnL, flip),
OrderRejected, OrderUnknown, an order message resolving an UNKNOWN, StopTriggered,
RiskDayChanged (breach = REDUCING, lifted), HaltChanged (halt/resume), ActorFailed,
LedgerAdjusted (a balance drift the balance check found: kind ``reconcile``),
ConfigReloaded (with the diff), ServiceChanged (Redis/PostgreSQL outage and recovery).
Emits :class:`Alert` records (kind, severity, title, text) for the outboxes.  Numbers are
rounded to 6 significant digits, times are ISO 8601 UTC to the second.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from actors.messages import (
    ActorFailed,
    ConfigReloaded,
    HaltChanged,
    LedgerAdjusted,
    Message,
    OrderRejected,
    OrderUnknown,
    PositionChanged,
    RiskDayChanged,
    ServiceChanged,
    StopTriggered,
)
from daemon.notify.config import SEVERITIES, EventKind, Severity


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One notification-worthy event, as filed in a target's outbox."""

    kind: EventKind
    severity: Severity
    title: str
    text: str
    ts_ms: int
    where: str = ""


# the alert kind (what a target subscribes to) of each ServiceChanged service
SERVICE_KINDS: dict[str, EventKind] = {
    "redis": "outage",
    "postgres": "outage",
    "feed": "feed",
    "balance": "reconcile",
    "daemon": "daemon",
}
ALERT_ENCODER = msgspec.msgpack.Encoder()
ALERT_DECODER = msgspec.msgpack.Decoder(Alert)


def severity_at_least(severity: Severity, minimum: Severity) -> bool:
    return SEVERITIES.index(severity) >= SEVERITIES.index(minimum)


def num(value: Decimal, digits: int = 6) -> str:
    """``value`` rounded to ``digits`` significant digits, plain notation, no trailing zeros."""
    if not value.is_finite():
        return str(value)
    if value == 0:
        return "0"
    exp = value.adjusted() - digits + 1
    q = value.quantize(Decimal(1).scaleb(exp)) if exp < 0 else round(value, 0)
    text = f"{q:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def signed(value: Decimal, digits: int = 6) -> str:
    text = num(value, digits)
    return text if text.startswith("-") or text == "0" else f"+{text}"


def iso_s(ms: int) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC to the second (``2025-01-06T09:14:03Z``)."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def quote_of(symbol: str) -> str:
    return symbol.rsplit("/", 1)[1] if "/" in symbol else ""


def _alert(kind: EventKind, sev: Severity, msg: Message, title: str, text: str) -> Alert:
    where = "" if msg.exchange == "*" else f"{msg.exchange}:{msg.symbol}"
    return Alert(
        kind=kind, severity=sev, title=title, text=text, ts_ms=msg.ts_event // 1_000_000, where=where
    )


def fill_alert(
    pos: PositionChanged, prev: PositionChanged | None, price: Decimal | None, fill_fee: Decimal | None
) -> Alert | None:
    """A fill seen as the position change it made: entry / add / exit (with PnL) / flip."""
    before = prev.quantity if prev is not None else Decimal(0)
    delta = pos.quantity - before
    if pos.recovered or delta == 0:
        return None
    quote = quote_of(pos.symbol)
    side = "bought" if delta > 0 else "sold"
    at = f" @ {num(price)}" if price is not None else ""
    if before == 0:
        what = "entry"
    elif pos.quantity == 0 or (before > 0) != (pos.quantity > 0):
        what = "exit" if pos.quantity == 0 else "flip"
    else:
        what = "add" if abs(pos.quantity) > abs(before) else "partial exit"
    text = f"{pos.symbol} {what}: {side} {num(abs(delta))}{at}"
    if what in ("exit", "partial exit", "flip"):
        pnl = pos.realized_pnl - (prev.realized_pnl if prev is not None else Decimal(0))
        text += f", PnL {signed(pnl)} {quote}".rstrip()
    text += ", flat" if pos.quantity == 0 else f", position {num(pos.quantity)}"
    if fill_fee:
        text += f", fee {num(fill_fee)}"
    return _alert("fill", "info", pos, f"{pos.symbol} {what}", f"{text} ({pos.account})")


def message_alert(msg: Message, resolved_unknown: bool = False) -> Alert | None:
    """The alert for a message other than a fill, or None when it is not one an operator wants."""
    if resolved_unknown:
        outcome = type(msg).__name__.removeprefix("Order").lower()
        coid = getattr(msg, "client_order_id", "?")
        return _alert(
            "order",
            "info",
            msg,
            f"{msg.symbol} order resolved",
            f"{msg.symbol} order {coid}: resolved: {outcome}",
        )
    if isinstance(msg, OrderRejected):
        return _alert(
            "order",
            "warning",
            msg,
            f"{msg.symbol} order rejected",
            f"{msg.symbol} order {msg.client_order_id} rejected: {msg.reason}",
        )
    if isinstance(msg, OrderUnknown):
        return _alert(
            "order",
            "warning",
            msg,
            f"{msg.symbol} order UNKNOWN",
            f"{msg.symbol} order {msg.client_order_id} UNKNOWN ({msg.reason}); asking the venue",
        )
    if isinstance(msg, StopTriggered):
        trigger = msg.trigger.replace("_", "-")
        return _alert(
            "stop",
            "warning",
            msg,
            f"{msg.symbol} {trigger}",
            f"{msg.symbol} {trigger} triggered at {num(msg.price)}",
        )
    if isinstance(msg, RiskDayChanged):
        if msg.why == "breach":
            why = msg.day.breach or "daily loss limit"
            text = f"{msg.symbol} REDUCING: {why}; exits only until the next UTC day"
            return _alert("risk", "critical", msg, f"{msg.symbol} REDUCING", text)
        if msg.why == "lifted":
            return _alert(
                "risk", "info", msg, f"{msg.symbol} ACTIVE", f"{msg.symbol} ACTIVE again: loss latch lifted"
            )
        return None
    if isinstance(msg, HaltChanged):
        scope = "daemon" if msg.scope == "daemon" else f"{msg.scope} {msg.target}"
        by = f" by {msg.by}" if msg.by else ""
        if msg.halted:
            return _alert("halt", "critical", msg, f"HALTED ({scope})", f"HALTED ({scope}){by}: {msg.reason}")
        return _alert("halt", "warning", msg, f"resumed ({scope})", f"trading resumed ({scope}){by}")
    if isinstance(msg, LedgerAdjusted):
        if msg.reason != "drift":
            return None
        moved = ", ".join(f"{asset} {signed(amount)}" for asset, amount in sorted(msg.adjust.items()))
        text = f"balance drift on account {msg.account}: venue minus ledger {moved}; the ledger re-based"
        return _alert("reconcile", "warning", msg, f"balance drift ({msg.account})", text)
    if isinstance(msg, ActorFailed):
        if msg.halted:
            text = f"{msg.symbol} HALTED: {msg.actor} failed {msg.restarts} times: {msg.error[:200]}"
            return _alert("risk", "critical", msg, f"{msg.symbol} HALTED", text)
        return None
    if isinstance(msg, ServiceChanged):
        kind = SERVICE_KINDS[msg.service]
        title = f"{msg.symbol if msg.service == 'feed' else msg.service} {msg.state}"
        return _alert(kind, msg.severity, msg, title, msg.detail or title)
    if isinstance(msg, ConfigReloaded):
        if not msg.ok:
            return _alert(
                "daemon", "warning", msg, "reload refused", f"config reload refused: {msg.error[:300]}"
            )
        changes = "; ".join(msg.changes[:10]) or "no changes"
        more = f" (+{len(msg.changes) - 10} more)" if len(msg.changes) > 10 else ""
        return _alert("daemon", "info", msg, "config reloaded", f"config reloaded: {changes}{more}")
    return None
