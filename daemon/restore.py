"""Restart recovery of one symbol group: journal state in, venue reconciliation, then trading.

:meth:`daemon.persistence.Persistence.recover` folds the journal into one
:class:`~actors.order_fold.OrderFold` per group; before the group's actors start,
:func:`restore_group` puts it back:

1. the order actor carries on with the open orders and the position (risk sees them as
   open orders, reserved exposure and position at once);
2. the strategy continues from its snapshot state when the strategy (name) is unchanged,
   reconciled on its first market event with the position and its open orders as the
   reconciliation below leaves them (``reconcile``: the state may be older than both);
3. the venue is asked what became of every order the journal left open
   (:class:`VenueReconciler`); its answers (fills, cancels, acceptances) are published
   on the group's bus ahead of any market data, so the order actor applies them first.
   If the venue cannot be reached (5 attempts, about 15 s), the group starts halted (no new
   entries; exits and stops still go out) with the reason on /status and /readyz, until
   ``POST /admin/resume``; the execution adapter's own catch-up on connect resolves the orders.
   Open orders at the venue that the journal does not know (placed by hand or another
   tool) are handled by the account's ``foreign_orders`` policy: ``flag`` (log, /status),
   ``cancel``, or ``adopt`` (tracked like ours: their fills move the position).
   A paper venue does not survive a restart: its orders are canceled ("paper venue
   restarted") and the paper account takes the restored position into its balances;
4. the stop-monitor gets the approval of the entry that opened the position (its exit
   plan: stop-loss, take-profit, trailing, time exit) and re-arms it at the levels the
   journal's newest ``StopArmed`` gives (a trailed stop keeps its trailed level; the trail
   goes on from the next price, never loosening it).  Its native stop order still open at
   the venue (not ended by the reconciliation) is taken back as the stop's own, so no
   second stop order goes out beside it -- an OCO list too: the venue is asked about each of
   its legs (:func:`venue_orders`), a list is open while one leg is, its legs found open at the
   venue are ours (never foreign), and it is never re-sent;
5. a ``PositionChanged`` tells strategy, stop-monitor and portfolio the position.

Only then does the supervisor start the group's actors; the daemon says READY=1 after
every group was restored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

import anyio
import msgspec

from actors.messages import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    RiskApproved,
    stamp,
)
from actors.oco import list_of_leg
from actors.order import OrderRecord
from actors.order_fold import FoldedOrder, OrderFold
from actors.order_ids import client_order_id
from actors.stop_monitor import NativeState
from actors.strategies.base import OpenOrder
from actors.timefmt import iso_utc
from adapters.binance.execution import BinanceExecution
from adapters.paper.account import PaperAccountState
from adapters.paper.actor import PaperExchange

if TYPE_CHECKING:
    from daemon.group import SymbolGroup

log = logging.getLogger("tradingd.recovery")


class VenueReconciler(Protocol):
    """An execution adapter that can say what became of orders from before a restart."""

    async def reconcile(self, orders: list[OrderRecord]) -> list[Message]:
        """Order events that bring ``orders`` up to the venue's truth (fills not yet seen, ends)."""
        ...


def _paper_events(group: SymbolGroup, orders: list[OrderRecord]) -> list[Message]:
    now = time.time_ns()
    st = stamp(group.cfg.exchange, group.cfg.symbol, now)
    return [
        OrderCanceled(
            client_order_id=o.cid,
            venue_order_id=o.venue_order_id,
            reason="paper venue restarted: its orders do not survive a restart",
            **st,
        )
        for o in orders
    ]


def adopt_paper_position(account: PaperAccountState, base: str, quote: str, fold: OrderFold) -> None:
    """Give a fresh paper account the recovered position: base units in, their cost and PnL out of quote."""
    pos = fold.position
    if pos.quantity == 0 and pos.realized_pnl == 0:
        return
    account.balances[base] = account.total(base) + pos.quantity
    quote_delta = pos.realized_pnl - pos.quantity * pos.avg_price
    account.balances[quote] = max(Decimal(0), account.total(quote) + quote_delta)


async def _foreign_orders(group: SymbolGroup, venue: BinanceExecution, policy: str) -> list[str]:
    """Open orders at the venue that the journal does not know: flag, cancel or adopt them.

    A leg of one of our OCO lists (its id the list's plus ``-sl`` / ``-tp``) is known."""
    known = set(group.order.orders)

    def ours(cid: str) -> bool:
        leg = list_of_leg(cid)
        return cid in known or (leg is not None and leg[0] in known)

    try:
        foreign = [o for o in await venue.open_orders() if not ours(o.client_order_id)]
    except Exception as exc:  # noqa: BLE001 - a failed listing must not keep the group from trading
        log.error("%s: could not list the venue's open orders: %r", group.name, exc)
        return [f"venue open orders not checked: {exc!r}"]
    if not foreign:
        return []
    names = ", ".join(
        f"{o.client_order_id} ({o.side} {o.quantity - o.filled} {o.venue_type})" for o in foreign
    )
    if policy == "cancel":
        for o in foreign:
            try:
                await venue.cancel_foreign(o.client_order_id)
            except Exception as exc:  # noqa: BLE001 - reported; the operator decides
                log.error("%s: cancel of foreign order %s failed: %r", group.name, o.client_order_id, exc)
        log.warning(
            "%s: canceled %d open orders the journal does not know: %s", group.name, len(foreign), names
        )
        return [f"canceled {len(foreign)} foreign open orders: {names}"]
    if policy == "adopt":
        for o in foreign:
            venue.adopt(o.client_order_id, o.side, o.quantity, o.filled)
            group.order.adopt(o.client_order_id, o.side, o.quantity, o.filled, o.price, o.venue_order_id)
        log.warning(
            "%s: adopted %d open orders the journal does not know: %s", group.name, len(foreign), names
        )
        return [f"adopted {len(foreign)} foreign open orders: {names}"]
    log.warning(
        "%s: %d open orders at the venue that the journal does not know (foreign_orders = flag): %s",
        group.name,
        len(foreign),
        names,
    )
    return [f"FLAGGED {len(foreign)} foreign open orders (not ours, left alone): {names}"]


def venue_orders(orders: list[OrderRecord]) -> list[OrderRecord]:
    """What to ask the venue about ``orders``: each order, and for an OCO list each leg not ended
    yet (the venue knows legs, not lists), with the list's fills so far (one leg fills)."""
    out: list[OrderRecord] = []
    for rec in orders:
        if not rec.legs:
            out.append(rec)
            continue
        for leg in rec.legs:
            if leg in rec.legs_ended:
                continue
            one = OrderRecord(leg, rec.intent, rec.quantity)
            one.cum_qty, one.status, one.trade_ids = rec.cum_qty, rec.status, set(rec.trade_ids)
            out.append(one)
    return out


RECONCILE_ATTEMPTS = 5
RECONCILE_FIRST_DELAY_S = 0.5


async def reconcile_with_retry(
    reconcile: Callable[[list[OrderRecord]], Awaitable[list[Message]]],
    orders: list[OrderRecord],
    attempts: int = RECONCILE_ATTEMPTS,
    first_delay_s: float = RECONCILE_FIRST_DELAY_S,
) -> list[Message]:
    """Ask the venue, retrying with doubling delays (about 15 s in all); the last failure is raised."""
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            return await reconcile(orders)
        except Exception as exc:
            if attempt == attempts:
                raise
            log.warning(
                "restart reconciliation failed (%r): attempt %d of %d, retrying", exc, attempt, attempts
            )
            await anyio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


def open_native_stop(fold: OrderFold, events: list[Message]) -> tuple[FoldedOrder | None, NativeState]:
    """The stop-monitor's stop order (stop_market; stop_limit: a take-profit) the journal left open
    and the venue did not end meanwhile (the newest, if several), and whether the venue has
    acknowledged it.  An OCO list (its legs' events) ends when a leg filled completely or both
    legs ended, and is acknowledged when a leg was."""
    ended, acked = set(), set()
    legs_ended: dict[str, set[str]] = {}
    for e in events:
        if not isinstance(e, OrderCanceled | OrderExpired | OrderRejected | OrderFilled | OrderAccepted):
            continue
        leg = list_of_leg(e.client_order_id)
        cid = e.client_order_id if leg is None else leg[0]
        if isinstance(e, OrderCanceled | OrderExpired | OrderRejected):
            if leg is None:
                ended.add(cid)
            else:
                legs_ended.setdefault(cid, set()).add(e.client_order_id)
        elif isinstance(e, OrderFilled) and e.leaves_qty == 0:
            ended.add(cid)
        elif isinstance(e, OrderAccepted | OrderFilled):
            acked.add(cid)
    found = None
    for order in fold.open.values():
        it = order.intent
        kinds = ("stop_market", "stop_limit")  # a native stop, a native take-profit, an OCO list
        stop_order = it.source == "stop-monitor" and it.order_type in kinds and it.reduce_only
        gone = order.cid in ended or len(order.legs_ended | legs_ended.get(order.cid, set())) >= 2
        if stop_order and not gone:
            found = order
    if found is None:
        return None, "working"
    pending = found.status in ("submitted", "unknown") and found.cid not in acked
    return found, "pending" if pending else "working"


VENUE_FILLS_LOOKBACK_MS = 7 * 86_400_000


async def _venue_used_ids(group: SymbolGroup, venue: BinanceExecution) -> tuple[set[str], list[str]]:
    """Client ids the venue knows this symbol used (open orders, fills of the last week)."""
    ids: set[str] = set()
    try:
        ids |= {o.client_order_id for o in await venue.open_orders()}
        since = time.time_ns() // 1_000_000 - VENUE_FILLS_LOOKBACK_MS
        ids |= {f.client_order_id for f in await venue.recent_fills(since)}
    except Exception as exc:  # noqa: BLE001 - reported; the group is halted anyway
        log.error("%s: could not ask the venue which client ids were used: %r", group.name, exc)
        return ids, [f"venue not asked for used client ids: {exc!r}"]
    return ids, [f"venue knows {len(ids)} client ids of this symbol: never sent again"]


def strategy_orders(open_orders: Callable[[], list[OrderRecord]]) -> Callable[[], list[OpenOrder]]:
    """The strategy's own open orders (source ``strategy:...``), as the strategy sees them."""

    def view() -> list[OpenOrder]:
        return [
            OpenOrder(
                intent_id=r.intent.intent_id,
                side=r.intent.side,
                price=r.intent.price,
                leaves=r.quantity - r.cum_qty,
            )
            for r in open_orders()
            if r.intent.source.startswith("strategy:")
        ]

    return view


def _iso(ns: int) -> str:
    return iso_utc(ns, "milliseconds")


async def restore_group(
    group: SymbolGroup,
    fold: OrderFold,
    paper: PaperAccountState | None,
    *,
    foreign_orders: str = "flag",
    journal_damaged: bool = False,
) -> list[str]:
    """Put ``fold`` back into ``group`` (not running yet); returns what was done, for the log.

    ``journal_damaged``: the journal lost records, so the venue is also asked which client ids
    this symbol used (they are refused like the journal's own)."""
    done: list[str] = []
    order = group.order
    venue = group.venue
    if journal_damaged and isinstance(venue, BinanceExecution):
        ids, said = await _venue_used_ids(group, venue)
        fold.known_ids |= ids
        done += said
    order.restore(fold)
    if fold.decision_ns:
        group.strategy.decision_floor_ns = fold.decision_ns
        done.append(f"decisions up to {_iso(fold.decision_ns)} were made before: not made again")
    opened = order.open_orders()
    pos = order.position
    done.append(f"position {pos.quantity} @ {pos.avg_price} (realized {pos.realized_pnl})")
    if opened:
        done.append(f"{len(opened)} open orders: {', '.join(o.cid for o in opened)}")

    strat = group.strategy
    if fold.strategy_state and fold.strategy == getattr(strat.strategy, "name", None):
        state_type = type(strat.strategy_state)
        try:
            strat.strategy_state = msgspec.msgpack.decode(fold.strategy_state, type=state_type)
            strat.open_orders_view = strategy_orders(order.open_orders)
            strat.reconcile_due = True
            done.append(f"strategy {fold.strategy} state restored (reconciled on its first event)")
        except (msgspec.DecodeError, msgspec.ValidationError, TypeError) as exc:
            log.warning("strategy state of %s not restored (starts fresh): %s", group.name, exc)
            done.append("strategy state unreadable: fresh start")
    elif fold.strategy_state:
        done.append(
            f"strategy changed ({fold.strategy} -> {getattr(strat.strategy, 'name', '?')}): fresh state"
        )

    if fold.risk_day is not None and fold.risk_day.day >= 0:
        group.risk.restore_day(fold.risk_day)  # the same UTC day goes on: entries, loss baseline, latch
        day = _iso(fold.risk_day.day * 86_400 * 1_000_000_000)[:10]
        reducing = " (REDUCING: daily loss limit)" if fold.risk_day.breach else ""
        done.append(f"risk day {day}: {fold.risk_day.entries} entries{reducing}")
    resume = getattr(group.feed.feed, "resume_after", None)
    if resume is not None and fold.last_event_ns:
        resume(fold.last_event_ns)  # a replay carries on after the market time already traded
        done.append(f"replay resumes after {_iso(fold.last_event_ns)}")

    events: list[Message] = []
    if isinstance(venue, PaperExchange):
        events = _paper_events(group, opened)
        if paper is not None:
            adopt_paper_position(paper, group.cfg.instrument.base, group.cfg.instrument.quote, fold)
    elif opened:
        reconcile = getattr(venue, "reconcile", None)
        if reconcile is not None:
            try:
                events = await reconcile_with_retry(reconcile, venue_orders(opened))
            except Exception as exc:  # noqa: BLE001 - the venue is unreachable: trade nothing new, keep going
                reason = f"restart reconciliation failed ({exc!r}): open orders unconfirmed"
                log.error("%s: %s; group halted until POST /admin/resume", group.name, reason)
                group.health.admin_halt(reason)
                done.append(f"HALTED: {reason}")
        else:
            done.append("venue cannot reconcile: open orders kept as the journal says")
    if events:
        done.append(f"venue reconciliation: {len(events)} events")
    if isinstance(venue, BinanceExecution):
        done += await _foreign_orders(group, venue, foreign_orders)
    router = group.router
    for event in events:
        for ch in router.publish_nowait(event):
            await ch.send(event)
    entry_cid = ""
    if fold.entry_intent is not None and pos.quantity != 0:
        entry_cid = client_order_id(fold.entry_intent.intent_id)
        # The stop-monitor re-arms the position's exit plan (stop-loss, take-profit, trailing,
        # time exit) from the entry that opened it: its approval, then the position.
        approved = RiskApproved(
            intent=fold.entry_intent, **stamp(group.cfg.exchange, group.cfg.symbol, time.time_ns())
        )
        await group.stop_monitor.inbox.send(approved)
        done.append(f"exit plan of {fold.entry_intent.intent_id} re-armed")
        native, state = (
            (None, "working") if isinstance(venue, PaperExchange) else open_native_stop(fold, events)
        )
        if fold.stop is not None or native is not None:
            group.stop_monitor.resume(fold.stop, None if native is None else native.intent, state)
        if fold.stop is not None:
            done.append(
                f"stop levels as last published: sl {fold.stop.stop_price} tp {fold.stop.take_profit}"
            )
        if native is not None:
            done.append(f"native stop {native.cid} at the venue taken back by the stop-monitor")
    position = order.position_message(entry_cid, recovered=True)
    for ch in router.publish_nowait(position):
        await ch.send(position)
    return done
