"""Order actor: turns approved intents into venue orders and tracks them to the end.

Takes: RiskApproved (from risk); CancelIntent (from the strategy: the order an intent
became is canceled with CancelOrder, or never sent if not approved yet); OrderAccepted,
OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUnknown (from the adapter).

States: submitted -> accepted -> partially_filled -> filled | canceled | rejected | expired,
and unknown: a submission whose outcome the adapter could not learn (timeout, 5xx,
disconnect).  An unknown order keeps its reservation and counts as open; the adapter
resolves it by querying the venue by client order id and publishes what the venue says.
Emits: OrderSubmitted (the order left), SubmitOrder (command to the adapter),
PositionChanged (after every fill).

An intent with ``replaces`` (a client order id) becomes a SubmitOrder with ``replaces``: the
venue cancels that order and places this one in one request (the adapter publishes the old
order's OrderCanceled and the new one's events); journaled like any order, so a restart resolves
both at the venue.  If the order it replaces has ended meanwhile, it is rejected here, unsent.

An intent with ``oco_take_profit`` (the stop-monitor's stop-loss and take-profit resting together)
is one order here: an OCO list under the intent's client order id, journaled (OrderSubmitted with
both leg ids) before its SubmitOrder leaves, reserved once.  The adapter publishes its legs' events
under the legs' ids (:func:`actors.oco.leg_ids`); each moves the list (an acceptance, the fills of
the leg that works), and the list ends as :func:`actors.oco.list_end` says: the other leg's
OrderExpired after a fill or trigger ends nothing, the list is done when its fills are, or when
both legs have ended.  A leg id counts as used like the list's (never sent again).

Client order ids are derived from intent ids (:mod:`actors.order_ids`): an intent seen
twice is refused here, and a re-sent order is refused by the venue as a duplicate.
Quantities are rounded down to the step size and prices to the tick before they leave.
With a journal, OrderSubmitted is made durable (``durable``) before SubmitOrder is published.
Events may arrive out of order (a fill before its ack): a fill implies acceptance,
and anything for an unknown client order id is counted and logged, never guessed at.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Literal, cast

import anyio

from actors.channels import Channel, Router
from actors.messages import (
    CancelIntent,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    PositionChanged,
    RiskApproved,
    Side,
    SubmitOrder,
)
from actors.oco import leg_ids, leg_of, list_end
from actors.order_fold import OrderFold
from actors.order_ids import client_order_id
from actors.position import Position
from actors.runtime import Actor
from actors.state import SymbolState
from actors.strategies.base import floor_to_step, round_to_tick

OrderStatus = Literal[
    "submitted", "unknown", "accepted", "partially_filled", "filled", "canceled", "rejected", "expired"
]
TERMINAL: frozenset[str] = frozenset({"filled", "canceled", "rejected", "expired"})
# Rejections of a request about an order (a cancel), not of the order itself: its state stands.
# A "duplicate client_order_id" reject of a submit ends our order: the venue already has that id
# from an earlier life of this intent (re-sent after a restart), and this submission did nothing.
REQUEST_REJECTS = ("cancel rejected:",)
KEEP_FINISHED = 10_000


class OrderRecord:
    __slots__ = (
        "cid",
        "cum_qty",
        "intent",
        "legs_ended",
        "quantity",
        "status",
        "trade_ids",
        "venue_order_id",
    )

    def __init__(self, cid: str, intent: OrderIntent, quantity: Decimal) -> None:
        self.cid = cid
        self.intent = intent
        self.quantity = quantity
        self.cum_qty = Decimal(0)
        self.status: OrderStatus = "submitted"
        self.venue_order_id = ""
        self.trade_ids: set[str] = set()
        self.legs_ended: set[str] = set()  # an OCO list's legs that have ended

    @property
    def signed_leaves(self) -> Decimal:
        leaves = self.quantity - self.cum_qty
        return leaves if self.intent.side == "buy" else -leaves

    @property
    def legs(self) -> tuple[str, ...]:
        """The client ids of an OCO list's legs (stop-loss, take-profit); () for a plain order."""
        return leg_ids(self.cid) if self.intent.oco_take_profit is not None else ()


class OrderActor(Actor):
    kind = "order"

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        state: SymbolState,
        tick_size: Decimal,
        step_size: Decimal,
        durable: Callable[[], Awaitable[object]] | None = None,
        base_asset: str = "",
        quote_asset: str = "",
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.durable = durable  # journal-before-send: resolves once OrderSubmitted is on disk
        self.state = state
        self.tick_size = tick_size
        self.step_size = step_size
        self.position = Position(base_asset, quote_asset)  # fees by asset: see actors.position
        self.orders: OrderedDict[str, OrderRecord] = OrderedDict()
        self.counts: dict[str, int] = {
            k: 0
            for k in (
                "submitted",
                "accepted",
                "filled",
                "partially_filled",
                "rejected",
                "canceled",
                "expired",
                "unknown",
            )
        }
        self.anomalies: dict[str, int] = {}
        self.recovered_ids: set[str] = set()  # client ids used before a restart: never sent again
        self.withdrawn: set[str] = set()  # intents canceled (CancelIntent) before risk approved them

    async def handle(self, msg: Message) -> None:
        match msg:
            case RiskApproved():
                await self._handle_approved(msg.intent)
            case OrderAccepted():
                self._handle_accepted(msg)
            case OrderFilled():
                await self._handle_filled(msg)
            case OrderRejected() | OrderCanceled() | OrderExpired():
                self._handle_finished(msg)
            case OrderUnknown():
                self._handle_unknown(msg)
            case CancelIntent():
                await self._handle_cancel_intent(msg)
            case _:
                self._anomaly("unexpected_kind", f"ignored unexpected message kind {type(msg).__name__}")

    def restore(self, fold: OrderFold) -> None:
        """Restart recovery: carry on with the orders and position the journal recorded.

        Open orders are tracked again (and count as open and reserved for risk); the
        position, average price, realized PnL and fees continue; every client id the journal
        knows is refused if an intent produces it again.  Call before the actor runs.
        """
        self.recovered_ids = fold.client_order_ids()
        for o in fold.open.values():
            rec = OrderRecord(o.cid, o.intent, o.quantity)
            rec.cum_qty = o.cum_qty
            rec.status = o.status  # type: ignore[assignment]
            rec.venue_order_id = o.venue_order_id
            rec.trade_ids = set(o.trade_ids)
            rec.legs_ended = set(o.legs_ended)
            self.orders[rec.cid] = rec
        src = fold.position
        pos = self.position
        pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees = (
            src.quantity,
            src.avg_price,
            src.realized_pnl,
            src.fees,
        )
        pos.other_fees = dict(src.other_fees)
        st = self.state
        st.position, st.avg_price, st.realized_pnl = pos.quantity, pos.avg_price, pos.realized_pnl
        opened = self.open_orders()
        st.open_orders = len(opened)
        st.pending_exposure = sum((r.signed_leaves for r in opened), Decimal(0))

    def adopt(
        self, cid: str, side: Side, quantity: Decimal, cum_qty: Decimal, price: Decimal, venue_order_id: str
    ) -> None:
        """Restart recovery: track a venue order this daemon did not send (``foreign_orders = "adopt"``)."""
        if cid in self.orders:
            return
        intent = OrderIntent(
            intent_id=f"adopted:{cid}",
            source="adopted",
            side=side,
            order_type="limit",
            quantity=quantity,
            price=price or None,
            reason="open at the venue at start, unknown to the journal",
            **self.system_fields(),
        )
        rec = OrderRecord(cid, intent, quantity)
        rec.cum_qty, rec.venue_order_id = cum_qty, venue_order_id
        rec.status = "partially_filled" if cum_qty else "accepted"
        self.orders[cid] = rec
        self.state.open_orders += 1
        self.state.pending_exposure += rec.signed_leaves

    def position_message(self, cid: str = "", recovered: bool = False) -> PositionChanged:
        pos = self.position
        now = self.clock.time_ns()
        return PositionChanged(
            recovered=recovered,
            account=self.state.account,
            quantity=pos.quantity,
            avg_price=pos.avg_price,
            realized_pnl=pos.realized_pnl,
            fees=pos.fees,
            other_fees=dict(pos.other_fees),
            last_client_order_id=cid,
            exchange=self.exchange,  # self.system_fields(), spelt out: no dict to unpack per fill
            symbol=self.symbol,
            ts_event=self.event_ns(),
            ts_recv=now,
        )

    def open_orders(self) -> list[OrderRecord]:
        return [r for r in self.orders.values() if r.status not in TERMINAL]

    async def _handle_cancel_intent(self, msg: CancelIntent) -> None:
        """Cancel the order the intent became; an intent not approved yet is never sent."""
        cid = client_order_id(msg.intent_id)
        rec = self.orders.get(cid)
        if rec is None:
            self.withdrawn.add(msg.intent_id)  # risk may still approve it: drop it then
            self.log.info("intent %s withdrawn before it became an order (%s)", msg.intent_id, msg.reason)
            return
        if rec.status in TERMINAL:
            self.log.info("cancel of %s not needed: already %s", cid, rec.status)
            return
        self.counts["cancel_requested"] = self.counts.get("cancel_requested", 0) + 1
        self.log.info("cancel %s (intent %s): %s", cid, msg.intent_id, msg.reason)
        await self.router.publish(
            CancelOrder(client_order_id=cid, venue_order_id=rec.venue_order_id, **self.system_fields())
        )

    async def _handle_approved(self, intent: OrderIntent) -> None:
        cid = client_order_id(intent.intent_id)
        if intent.intent_id in self.withdrawn:
            self.withdrawn.discard(intent.intent_id)
            self._release(intent.quantity if intent.side == "buy" else -intent.quantity)
            self.state.open_orders -= 1
            self.log.info("intent %s approved after it was withdrawn: not sent", intent.intent_id)
            return
        legs = leg_ids(cid) if intent.oco_take_profit is not None else ()
        if cid in self.orders or cid in self.recovered_ids or any(leg in self.recovered_ids for leg in legs):
            self._release(intent.quantity if intent.side == "buy" else -intent.quantity)
            self.state.open_orders -= 1
            self._anomaly(
                "duplicate_intent", f"intent {intent.intent_id} already became order {cid}: not sent again"
            )
            return
        qty = floor_to_step(intent.quantity, self.step_size)
        if qty <= 0:
            self._release(intent.quantity if intent.side == "buy" else -intent.quantity)
            self.state.open_orders -= 1
            self._anomaly(
                "zero_quantity",
                f"intent {intent.intent_id}: {intent.quantity} rounds to 0 at step {self.step_size}",
            )
            return
        price = round_to_tick(intent.price, self.tick_size) if intent.price is not None else None
        stop = round_to_tick(intent.stop_price, self.tick_size) if intent.stop_price is not None else None
        tp = intent.oco_take_profit
        tp = round_to_tick(tp, self.tick_size) if tp is not None else None
        record = OrderRecord(cid, intent, qty)
        self.orders[cid] = record
        self._prune()
        if qty != intent.quantity:
            # The rounded-off part was reserved by risk; give it back.
            diff = intent.quantity - qty
            self.state.pending_exposure -= diff if intent.side == "buy" else -diff
        now = self.clock.time_ns()  # self.system_fields(), spelt out below: no dict to unpack
        at = self.event_ns()
        ex, sym = self.exchange, self.symbol
        submitted = OrderSubmitted(
            intent_id=intent.intent_id,
            client_order_id=cid,
            side=intent.side,
            order_type=intent.order_type,
            quantity=qty,
            price=price,
            stop_price=stop,
            replaces=intent.replaces,
            oco_take_profit=tp,
            oco_legs=legs,
            exchange=ex,
            symbol=sym,
            ts_event=at,
            ts_recv=now,
        )
        command = SubmitOrder(
            intent_id=intent.intent_id,
            client_order_id=cid,
            side=intent.side,
            order_type=intent.order_type,
            quantity=qty,
            price=price,
            stop_price=stop,
            time_in_force=intent.time_in_force,
            reduce_only=intent.reduce_only,
            post_only=intent.post_only,
            replaces=intent.replaces,
            oco_take_profit=tp,
            exchange=ex,
            symbol=sym,
            ts_event=at,
            ts_recv=now,
        )
        self.counts["submitted"] += 1
        self.log.info(
            "submit %s %s %s %s @ %s%s (intent %s)",
            cid,
            intent.side,
            qty,
            intent.order_type,
            price or stop or "market",
            f" + take-profit {tp} as one OCO list (legs {', '.join(legs)})" if legs else "",
            intent.intent_id,
        )
        await self.router.publish(submitted)  # the journal tap appends it
        if self.durable is not None:
            await self._make_durable(cid)  # fsynced before the order may leave the process
        old = self.orders.get(intent.replaces) if intent.replaces else None
        if intent.replaces and (old is None or old.status in TERMINAL):
            # Nothing to replace any more (it filled or ended meanwhile): not sent, as a venue
            # refuses a cancel-replace whose cancel fails (STOP_ON_FAILURE).
            state = "unknown here" if old is None else old.status
            reason = f"replace refused: {intent.replaces} is {state}: not sent"
            self.log.warning("order %s %s", cid, reason)
            await self.router.publish(
                OrderRejected(client_order_id=cid, reason=reason, **self.system_fields())
            )
            return
        await self.router.publish(command)

    def signed_leaves(self, cid: str) -> Decimal:
        """What the open order ``cid`` still reserves (buy +, sell -); 0 when it is not open."""
        rec = self.orders.get(cid)
        return rec.signed_leaves if rec is not None and rec.status not in TERMINAL else Decimal(0)

    async def _make_durable(self, cid: str) -> None:
        """Await the journal; if it fails or we are cancelled, the order ends here, unsent.

        The order is rejected locally (its reservation freed) and the OrderRejected goes to
        the tap (journal and mirror), so no record says 'submitted' for an order never sent.
        """
        assert self.durable is not None
        try:
            await self.durable()
        except BaseException as exc:
            reason = (
                "not sent: cancelled"
                if isinstance(exc, anyio.get_cancelled_exc_class())
                else (f"not sent: journal write failed: {exc!r}")
            )
            self.log.error("order %s %s", cid, reason)
            rejected = OrderRejected(client_order_id=cid, reason=reason, **self.system_fields())
            self._handle_finished(rejected)  # here and now: no await is possible while cancelled
            if self.router.tap is not None:
                self.router.tap(rejected)  # journal (closes the record) and mirror
            raise

    def _handle_accepted(self, msg: OrderAccepted) -> None:
        rec = self._record(msg.client_order_id, "accepted")
        if rec is None:
            return
        rec.venue_order_id = msg.venue_order_id
        if rec.status in ("submitted", "unknown"):
            rec.status = "accepted"
            self.counts["accepted"] += 1

    async def _handle_filled(self, msg: OrderFilled) -> None:
        rec = self._record(msg.client_order_id, "filled")
        if rec is None:
            return
        if msg.trade_id and msg.trade_id in rec.trade_ids:
            # the same execution twice (user stream and REST catch-up): counted once
            self._anomaly("duplicate_fill", f"fill {msg.trade_id} for {rec.cid} seen again: ignored")
            return
        if not (
            msg.last_qty.is_finite()
            and msg.last_qty > 0
            and msg.last_price.is_finite()
            and msg.last_price > 0
        ):
            self._anomaly(
                "bad_fill",
                f"fill {msg.trade_id} for {rec.cid} has quantity {msg.last_qty} at {msg.last_price}",
            )
            return
        if rec.cum_qty + msg.last_qty > rec.quantity:
            self._anomaly(
                "overfill", f"fill {msg.trade_id} would take {rec.cid} over its quantity {rec.quantity}"
            )
            return
        if msg.trade_id:
            rec.trade_ids.add(msg.trade_id)
        rec.venue_order_id = rec.venue_order_id or msg.venue_order_id
        rec.cum_qty += msg.last_qty
        if rec.status in TERMINAL:
            # e.g. a fill racing a cancel: the position moves, but the reservation was released
            # when the order ended and the order stays ended.
            self._anomaly(
                "fill_after_terminal", f"fill {msg.trade_id} for {rec.cid} after it was {rec.status}"
            )
        else:
            done = rec.cum_qty >= rec.quantity
            rec.status = "filled" if done else "partially_filled"
            self.counts["filled" if done else "partially_filled"] += 1
            self.state.pending_exposure -= msg.last_qty if msg.side == "buy" else -msg.last_qty
            if done:
                self.state.open_orders -= 1
        self._apply_fill(msg)
        self.log.info(
            "fill %s %s %s @ %s (cum %s/%s, fee %s %s) position %s",
            rec.cid,
            msg.side,
            msg.last_qty,
            msg.last_price,
            rec.cum_qty,
            rec.quantity,
            msg.fee,
            msg.fee_asset,
            self.position.quantity,
        )
        await self.router.publish(self.position_message(rec.cid))

    def _apply_fill(self, msg: OrderFilled) -> None:
        pos = self.position
        pos.apply_fill(msg.side, msg.last_qty, msg.last_price, msg.fee, msg.fee_asset)
        st = self.state
        st.position = pos.quantity
        st.avg_price = pos.avg_price
        st.realized_pnl = pos.realized_pnl

    def _handle_unknown(self, msg: OrderUnknown) -> None:
        """The adapter lost track of a submission: the order stays open (and reserved) until resolved."""
        rec = self._record(msg.client_order_id, "unknown")
        if rec is None:
            return
        if rec.status == "unknown" and msg.client_order_id != rec.cid:
            return  # the other leg of the same list: one submission, one unknown outcome
        if rec.status != "submitted":
            # Already acknowledged or finished: the venue's word stands over a lost reply.
            self._anomaly("late_unknown", f"outcome unknown for {rec.cid} after it was {rec.status}")
            return
        rec.status = "unknown"
        self.counts["unknown"] += 1
        self.log.warning(
            "order %s outcome UNKNOWN (%s): resolving by query, never by resending", rec.cid, msg.reason
        )

    def _handle_finished(self, msg: OrderRejected | OrderCanceled | OrderExpired) -> None:
        if isinstance(msg, OrderRejected) and msg.reason.startswith(REQUEST_REJECTS):
            self._anomaly(
                "request_rejected", f"venue refused a request for {msg.client_order_id}: {msg.reason}"
            )
            return
        status: OrderStatus = {OrderRejected: "rejected", OrderCanceled: "canceled", OrderExpired: "expired"}[
            type(msg)
        ]  # type: ignore[assignment]
        rec = self._record(msg.client_order_id, status)
        if rec is None:
            return
        if msg.client_order_id != rec.cid:  # a leg of the OCO list rec
            ended = list_end(rec.status, rec.legs_ended, msg.client_order_id, status)
            if rec.status in TERMINAL:
                return  # e.g. the other leg expiring after this list filled
            if ended is None:
                self.log.info(
                    "OCO list %s: leg %s %s, the other leg works", rec.cid, msg.client_order_id, status
                )
                return
            status = cast(OrderStatus, ended)
        if rec.status in TERMINAL:
            self._anomaly("late_terminal", f"{status} for {rec.cid} after it was {rec.status}")
            return
        self._release(rec.signed_leaves)
        self.state.open_orders -= 1
        rec.status = status
        self.counts[status] += 1
        reason = getattr(msg, "reason", "")
        self.log.info("order %s %s%s", rec.cid, status, f": {reason}" if reason else "")

    def _release(self, signed_qty: Decimal) -> None:
        self.state.pending_exposure -= signed_qty

    def _record(self, cid: str, what: str) -> OrderRecord | None:
        """The order ``cid`` (a leg's id: its OCO list's record)."""
        rec = self.orders.get(cid)
        if rec is None:
            list_cid = leg_of(cid, self.orders)
            if list_cid is not None and self.orders[list_cid].legs:
                return self.orders[list_cid]
            self._anomaly("unknown_order", f"{what} for unknown client order id {cid!r}")
        return rec

    def _anomaly(self, key: str, text: str) -> None:
        n = self.anomalies.get(key, 0) + 1
        self.anomalies[key] = n
        if n <= 20 or n % 1000 == 0:
            self.log.warning("%s (#%d)", text, n)

    def _prune(self) -> None:
        # Prune in bulk once KEEP_FINISHED / 10 records over: amortised O(1) per order, not a
        # copy of all 10k ids for every new order (that made long backtests quadratic).
        if len(self.orders) <= KEEP_FINISHED + KEEP_FINISHED // 10:
            return
        for cid in list(self.orders)[: len(self.orders) - KEEP_FINISHED]:
            if self.orders[cid].status in TERMINAL:
                del self.orders[cid]
