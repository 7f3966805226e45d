"""Flatten: cancel every open order of a scope, close each position, leave the scope HALTED.

Takes (on a temporary inbox subscribed to each group's router while it runs) RiskRejected,
OrderRejected and OrderFilled; reads the order actor's records and position.  Emits, through
the group's router: CancelOrder (to the venue, for every open order: entries, exits, native
stops) and one reduce-only market OrderIntent (``source="flatten"``) per close attempt, which
goes through risk like any exit; and, through the supervisor, a HaltChanged for the scope
(journaled: the halt outlives a restart until ``resume``).

Per group, until the deadline:

1. the scope is halted first, so that no new entry is approved while it flattens (a group that
   was not halted yet cancels its open entries there, ``risk.halt_cancels_orders``);
2. every open order is canceled (each once) and awaited until it has ended — an order that
   fills instead of canceling moves the position, which step 3 then sees; an order appearing
   meanwhile (an entry approved just before the halt, a stop-monitor exit) is canceled too;
3. the position is closed by a reduce-only market order for it rounded down to the step.  What
   the venue cannot take — less than one step, below the minimum quantity, or a notional below
   the minimum notional (the config's ``min_notional`` and the venue's rules) — is dust: it is
   reported and left, never retried.  A refusal by risk or the venue is reported, and not
   retried either (but for "another exit is working": that one is awaited, then looked at again).

The report lists what was done, order by order, with prices and quantities rounded to the
instrument, and says whether each group ended flat with no open orders.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Literal

import anyio
import msgspec

from actors.channels import Channel
from actors.messages import (
    CancelOrder,
    Message,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    RiskRejected,
    stamp,
)
from actors.order import TERMINAL
from actors.order_ids import client_order_id
from actors.strategies.base import floor_to_step
from daemon import display
from daemon.group import SymbolGroup
from daemon.halts import HaltScope, iso
from daemon.scopes import groups_in
from daemon.supervisor import Supervisor

__all__ = ["FlattenStep", "GroupFlatten", "flatten_group", "flatten_scope", "venue_minimums"]

log = logging.getLogger("tradingd.flatten")
POLL_S = 0.02
MAX_CLOSE_ATTEMPTS = 3
ZERO = Decimal(0)
Action = Literal["cancel", "close", "dust", "failed"]


class FlattenStep(msgspec.Struct, frozen=True, kw_only=True):
    """One thing flatten did (or could not do) in a group."""

    action: Action
    client_order_id: str = ""
    side: str = ""
    order_type: str = ""
    quantity: str = ""  # rounded to the step
    price: str | None = None  # limit/stop price, or the average fill price of a close
    source: str = ""  # who had placed a canceled order (strategy, stop-monitor, ...)
    result: str = ""  # canceled, filled, rejected, not confirmed, ...
    detail: str = ""


class GroupFlatten(msgspec.Struct, kw_only=True):
    group: str
    account: str
    position_before: str
    position_after: str = ""
    open_orders_after: int = 0
    flat: bool = False  # position 0 and no open order
    done: bool = False  # flat, or only unsellable dust left and no open order
    steps: list[FlattenStep] = []


def venue_minimums(group: SymbolGroup) -> tuple[Decimal, Decimal, Decimal]:
    """(step, minimum quantity, minimum notional) of a market order: the config's instrument and,
    when the venue has loaded its rules (Binance exchangeInfo), the stricter of both."""
    inst = group.cfg.instrument
    step, min_qty, min_notional = inst.step_size, ZERO, inst.min_notional
    rules = getattr(group.venue, "rules", None)
    if rules is not None:
        for lot in (rules.lot_size, rules.market_lot_size):
            if lot is not None:
                step = max(step, lot.stepSize)
                min_qty = max(min_qty, lot.minQty)
        mn = rules.min_notional
        if mn is not None and mn.applyToMarket:
            min_notional = max(min_notional, mn.minNotional)
        nf = rules.notional
        if nf is not None and nf.applyMinToMarket:
            min_notional = max(min_notional, nf.minNotional)
    return step, min_qty, min_notional


class _Flattening:
    """One group's flatten: its observer inbox, what was asked, the steps so far."""

    def __init__(self, group: SymbolGroup, already_canceled: set[str]) -> None:
        self.group = group
        inst = group.cfg.instrument
        self.tick, self.step = inst.tick_size, inst.step_size
        self.asked = set(already_canceled)  # CancelOrder sent (by the halt, or here)
        self.reported = set(already_canceled)  # each canceled order is one step of the report
        self.pending_report = sorted(already_canceled)
        self.steps: list[FlattenStep] = []
        self.rejected: dict[str, str] = {}  # client order id or intent id -> reason
        self.fills: dict[str, list[tuple[Decimal, Decimal]]] = {}  # cid -> (qty, price)
        self.inbox: Channel[Message] = Channel(f"flatten:{group.name}", 100_000)

    # --- observing -------------------------------------------------------------------------
    async def _drain(self) -> None:
        with anyio.move_on_after(POLL_S):
            for msg in await self.inbox.receive_batch():
                if isinstance(msg, RiskRejected):
                    self.rejected[msg.intent.intent_id] = f"refused by risk ({msg.rule}): {msg.reason}"
                elif isinstance(msg, OrderRejected):
                    self.rejected.setdefault(msg.client_order_id, msg.reason)
                elif isinstance(msg, OrderFilled):
                    self.fills.setdefault(msg.client_order_id, []).append((msg.last_qty, msg.last_price))

    def _ended(self, cid: str) -> bool:
        rec = self.group.order.orders.get(cid)
        return rec is None or rec.status in TERMINAL

    # --- cancels ---------------------------------------------------------------------------
    async def cancel_open(self) -> None:
        """Cancel each open order (once) and wait until every one has ended."""
        order = self.group.order
        while True:
            waiting = order.open_orders()
            for rec in waiting:
                if rec.cid not in self.reported:
                    self.reported.add(rec.cid)
                    self.pending_report.append(rec.cid)
                if rec.cid not in self.asked:
                    self.asked.add(rec.cid)
                    fields = order.system_fields()
                    cancel = CancelOrder(client_order_id=rec.cid, venue_order_id=rec.venue_order_id, **fields)
                    await self.group.router.publish(cancel)
            if not waiting:
                return
            await self._drain()

    def cancel_steps(self) -> None:
        """One step per canceled order, in the order they were asked, with how each ended."""
        for cid in self.pending_report:
            rec = self.group.order.orders.get(cid)
            if rec is None:
                continue
            intent = rec.intent
            result: str = rec.status if rec.status in TERMINAL else "not confirmed"
            if rec.status == "filled":
                result = "filled before the cancel"
            elif rec.status == "canceled" and rec.cum_qty:
                result = f"canceled after {display.quantity(rec.cum_qty, self.step)} filled"
            self.steps.append(
                FlattenStep(
                    action="cancel",
                    client_order_id=cid,
                    side=intent.side,
                    order_type=intent.order_type,
                    quantity=display.quantity(rec.quantity, self.step),
                    price=display.price(intent.price or intent.stop_price, self.tick),
                    source=intent.source,
                    result=result,
                    detail=self.rejected.get(cid, "") if rec.status == "rejected" else "",
                )
            )
        self.pending_report = []

    # --- closing ---------------------------------------------------------------------------
    async def close(self, attempt: int) -> bool:
        """Send one reduce-only market order for the position; True to look again afterwards."""
        group = self.group
        pos = group.order.position.quantity
        if pos == 0:
            return False
        side: Literal["buy", "sell"] = "sell" if pos > 0 else "buy"
        step, min_qty, min_notional = venue_minimums(group)
        qty = floor_to_step(abs(pos), step) if step > 0 else abs(pos)
        last = group.state.last_price
        dust = ""
        base = group.cfg.instrument.base
        if qty <= 0:
            dust = f"{abs(pos)} {base} is less than one step ({step})"
        elif qty < min_qty:
            dust = f"{qty} {base} is below the venue's minimum quantity {min_qty}"
        elif last is not None and min_notional > 0 and qty * last < min_notional:
            notional, at = display.money(qty * last, self.tick), display.price(last, self.tick)
            dust = f"notional {notional} at {at} is below min_notional {min_notional}"
        if dust:
            self.steps.append(
                FlattenStep(
                    action="dust",
                    side=side,
                    quantity=display.quantity(abs(pos), self.step),
                    result="left",
                    detail=f"cannot be sold: {dust}",
                )
            )
            return False
        ts = group.state.last_ts_event or time.time_ns()  # market time: the risk day is in event time
        intent_id = f"flatten:{group.name}:{time.time_ns()}:{attempt}"
        cid = client_order_id(intent_id)
        intent = OrderIntent(
            intent_id=intent_id,
            source="flatten",
            side=side,
            order_type="market",
            quantity=qty,
            reduce_only=True,
            reason="flatten by the operator",
            **stamp(group.cfg.exchange, group.cfg.symbol, ts),
        )
        log.warning(
            "flatten %s: %s %s market reduce-only (%s)",
            group.name,
            side,
            qty,
            cid,
            extra={"component": "admin", "exchange": group.cfg.exchange, "symbol": group.cfg.symbol},
        )
        await group.router.publish(intent)
        while intent_id not in self.rejected and (cid not in group.order.orders or not self._ended(cid)):
            await self._drain()
        return self._close_step(intent, cid)

    def _close_step(self, intent: OrderIntent, cid: str) -> bool:
        rec = self.group.order.orders.get(cid)
        qty = display.quantity(intent.quantity, self.step)
        if rec is None:  # refused by risk
            reason = self.rejected.get(intent.intent_id, "refused")
            self.steps.append(
                FlattenStep(
                    action="failed", side=intent.side, order_type="market", quantity=qty, detail=reason
                )
            )
            return "(reduce_only)" in reason  # another exit is working: await it, then look again
        fills = self.fills.get(cid, [])
        filled = sum((q for q, _ in fills), ZERO)
        avg = sum((q * p for q, p in fills), ZERO) / filled if filled else None
        result: str = rec.status
        if rec.status != "filled" and rec.cum_qty:
            result = f"{rec.status} after {display.quantity(rec.cum_qty, self.step)} filled"
        self.steps.append(
            FlattenStep(
                action="close" if rec.cum_qty else "failed",
                client_order_id=cid,
                side=intent.side,
                order_type="market",
                quantity=qty,
                price=display.price(avg, self.tick),
                source="flatten",
                result=result,
                detail=self.rejected.get(cid, "") if rec.status == "rejected" else "",
            )
        )
        return rec.status != "rejected"  # a venue refusal is reported, not retried

    def report(self, before: Decimal) -> GroupFlatten:
        group = self.group
        pos = group.order.position.quantity
        open_after = len(group.order.open_orders())
        only_dust = bool(self.steps) and self.steps[-1].action == "dust"
        return GroupFlatten(
            group=group.name,
            account=group.cfg.account,
            position_before=display.quantity(before, self.step),
            position_after=display.quantity(pos, self.step),
            open_orders_after=open_after,
            flat=pos == 0 and open_after == 0,
            done=open_after == 0 and (pos == 0 or only_dust),
            steps=self.steps,
        )


async def flatten_group(group: SymbolGroup, already_canceled: set[str], timeout_s: float) -> GroupFlatten:
    """Flatten one group that is already halted (see the module docstring); at most ``timeout_s``."""
    work = _Flattening(group, already_canceled)
    before = group.order.position.quantity
    group.router.subscribe(work.inbox, (RiskRejected, OrderRejected, OrderFilled))
    try:
        with anyio.move_on_after(timeout_s) as scope:
            for attempt in range(MAX_CLOSE_ATTEMPTS):
                await work.cancel_open()
                work.cancel_steps()
                if not await work.close(attempt):
                    break
            await work.cancel_open()  # what appeared while closing (none, normally)
            work.cancel_steps()
        if scope.cancelled_caught:
            work.cancel_steps()
            work.steps.append(
                FlattenStep(
                    action="failed",
                    result="timed out",
                    detail=f"not finished within {timeout_s:g}s: see the open orders and the position",
                )
            )
    finally:
        group.router.unsubscribe(work.inbox)
    return work.report(before)


class FlattenReport(msgspec.Struct, kw_only=True):
    scope: str
    target: str
    started: str  # ISO 8601 UTC
    finished: str
    halted: str  # the halt now in force over the scope
    ok: bool  # every group done: flat (or dust only) and no open order
    groups: list[GroupFlatten]


async def flatten_scope(
    sup: Supervisor, scope: HaltScope, target: str, by: str, timeout_s: float
) -> FlattenReport:
    """Halt the scope (journaled), then flatten each of its running groups concurrently."""
    started = time.time_ns()
    groups = groups_in(sup, scope, target)
    entries = {
        g.key: (g.health.halted, {r.cid for r in g.order.open_orders() if not r.intent.reduce_only})
        for g in groups
    }
    where = "all groups" if scope == "daemon" else f"{scope} {target}"
    sup.halt(f"flattened by the operator ({where})", scope=scope, target=target, by=by)
    # A group that was not halted yet has just sent a CancelOrder for each open entry (halt_cancels_orders).
    already = {
        g.key: (set() if was_halted or not g.cfg.risk.halt_cancels_orders else cids)
        for g in groups
        for was_halted, cids in (entries[g.key],)
    }
    results: dict[tuple[str, str], GroupFlatten] = {}

    async def one(group: SymbolGroup) -> None:
        results[group.key] = await flatten_group(group, already[group.key], timeout_s)

    async with anyio.create_task_group() as tg:
        for g in groups:
            tg.start_soon(one, g, name=f"flatten:{g.name}")
    done = [results[g.key] for g in groups]
    halt = sup.halts.active.get((scope, target))
    return FlattenReport(
        scope=scope,
        target=target,
        started=iso(started),
        finished=iso(time.time_ns()),
        halted=halt.reason if halt is not None else "",
        ok=all(r.done for r in done),
        groups=done,
    )
