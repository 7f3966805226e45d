"""The order book of one group as a pure fold over its order-path messages, in journal order.

Restart recovery needs the orders that were open and the position, exactly as the journal
says.  :class:`OrderFold` applies the same rules as the order actor
(:mod:`actors.order`) to the journaled messages, with no side effects:

- ``RiskApproved`` remembers the intent (its ``reduce_only``, stop-loss, take-profit);
- ``OrderSubmitted`` opens an order (its intent from the approval, or rebuilt from the
  submission if the approval is older than the journal);
- ``OrderUnknown`` / ``OrderAccepted`` / ``OrderFilled`` / ``OrderCanceled`` /
  ``OrderRejected`` (not a refused request, see ``REQUEST_REJECTS``) / ``OrderExpired``
  move it; a fill for an order that ended still moves the position, a fill seen twice
  (same client id and trade id) counts once, an overfill or a non-positive quantity is
  ignored; an OCO list (``oco_take_profit``) is one order, its legs' events move it and it ends
  as :func:`actors.oco.list_end` says, as in the order actor;
- the position is the fold of the fills (average cost, realized PnL, fees), so a crash
  between a fill and its ``PositionChanged`` loses nothing;
- ``StopArmed`` is the position's stop as the stop-monitor last published it (a trailed
  level, a new plan's levels); ``StopCanceled`` or a flat position forgets it;
- ``Signal`` / ``OrderIntent`` move ``decision_ns`` (the newest decision's event time: a
  strategy that replays events up to it after a restart decides nothing again);
- ``StrategyCheckpoint`` is the strategy's state at its last decision (and the market time
  a replay resumes after), ``RiskDayChanged`` risk's day counters, and every approved entry
  after it counts one, as risk counts it; so neither needs a snapshot to survive a crash;
- ``GroupSnapshot`` replaces everything: the fold continues from it.

:meth:`OrderFold.snapshot` produces the :class:`GroupSnapshot` the daemon journals
periodically; recovery reads the journal from its oldest retained record and ends with
the same state the running daemon had when it stopped (or was killed).
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

import msgspec

from actors.messages import (
    GroupSnapshot,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSnapshot,
    OrderSubmitted,
    OrderUnknown,
    RiskApproved,
    RiskDay,
    RiskDayChanged,
    Signal,
    Stamp,
    StopArmed,
    StopCanceled,
    StrategyCheckpoint,
)
from actors.oco import leg_ids, leg_of, list_end
from actors.position import Position

TERMINAL = frozenset({"filled", "canceled", "rejected", "expired"})
OPEN = frozenset({"submitted", "unknown", "accepted", "partially_filled"})
REQUEST_REJECTS = ("cancel rejected:",)
KEEP_INTENTS = 10_000
KEEP_FINISHED = 10_000
SNAPSHOT_RECENT = 200


class FoldedOrder:
    """One order as the journal describes it (mutable; the fold owns it)."""

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
        self.status = "submitted"
        self.venue_order_id = ""
        self.trade_ids: set[str] = set()
        self.legs_ended: set[str] = set()  # an OCO list's legs that have ended

    @property
    def legs(self) -> tuple[str, ...]:
        """The client ids of an OCO list's legs (stop-loss, take-profit); () for a plain order."""
        return leg_ids(self.cid) if self.intent.oco_take_profit is not None else ()

    @property
    def signed_leaves(self) -> Decimal:
        leaves = self.quantity - self.cum_qty
        return leaves if self.intent.side == "buy" else -leaves

    def to_snapshot(self) -> OrderSnapshot:
        return OrderSnapshot(
            client_order_id=self.cid,
            intent=self.intent,
            quantity=self.quantity,
            cum_qty=self.cum_qty,
            status=self.status,
            venue_order_id=self.venue_order_id,
            trade_ids=sorted(self.trade_ids),
            legs_ended=sorted(self.legs_ended),
        )

    @classmethod
    def from_snapshot(cls, snap: OrderSnapshot) -> FoldedOrder:
        order = cls(snap.client_order_id, snap.intent, snap.quantity)
        order.cum_qty = snap.cum_qty
        order.status = snap.status
        order.venue_order_id = snap.venue_order_id
        order.trade_ids = set(snap.trade_ids)
        order.legs_ended = set(snap.legs_ended)
        return order


class OrderFold:
    """Open orders and position of one (exchange, symbol) group, folded from its messages."""

    def __init__(
        self, exchange: str, symbol: str, account: str = "", base: str = "", quote: str = ""
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.account = account
        self.open: dict[str, FoldedOrder] = {}
        self.finished: OrderedDict[str, FoldedOrder] = OrderedDict()
        self.position = Position(base, quote)  # the same fee rules as the order actor's
        self.intents: OrderedDict[str, OrderIntent] = OrderedDict()
        self.entry_intent: OrderIntent | None = None
        self.strategy = ""
        self.strategy_state = b""
        self.last_event_ns = 0  # market time the strategy state is at (a replay resumes after it)
        self.decision_ns = 0  # event time of the newest decision (Signal, OrderIntent) journaled
        self.risk_day: RiskDay | None = None
        self.stop: StopArmed | None = None  # the position's stop as last published (levels, trail)
        self.recent: list[str] = []  # ended before the snapshot we continue from
        self.known_ids: set[str] = set()  # used, as the store or the venue says (journal damaged)
        self.applied = 0

    # -- folding ---------------------------------------------------------------------------
    def apply(self, msg: Message) -> None:
        """Fold one message of this group (others of the order path are ignored)."""
        t = type(msg)
        if t is RiskApproved:
            assert isinstance(msg, RiskApproved)
            self.intents[msg.intent.intent_id] = msg.intent
            if len(self.intents) > KEEP_INTENTS:
                self.intents.popitem(last=False)
            day = self.risk_day
            if day is not None and not msg.intent.reduce_only:  # risk counts every approved entry
                self.risk_day = msgspec.structs.replace(day, entries=day.entries + 1)
        elif t is OrderIntent or t is Signal:
            assert isinstance(msg, OrderIntent | Signal)
            # the strategy's decisions only: the stop-monitor's exits follow positions, not replays
            ours = t is Signal or msg.source.startswith("strategy")  # type: ignore[union-attr]
            if ours and msg.ts_event > self.decision_ns:
                self.decision_ns = msg.ts_event
        elif t is RiskDayChanged:
            assert isinstance(msg, RiskDayChanged)
            self.risk_day = msg.day
        elif t is StrategyCheckpoint:
            assert isinstance(msg, StrategyCheckpoint)
            self.strategy, self.strategy_state = msg.strategy, msg.state
            self.last_event_ns = max(self.last_event_ns, msg.reached_ns)
        elif t is OrderSubmitted:
            assert isinstance(msg, OrderSubmitted)
            self._submitted(msg)
        elif t is OrderFilled:
            assert isinstance(msg, OrderFilled)
            self._filled(msg)
        elif t is OrderAccepted:
            assert isinstance(msg, OrderAccepted)
            order = self.open.get(self._list_or(msg.client_order_id))
            if order is not None:
                order.venue_order_id = msg.venue_order_id or order.venue_order_id
                if order.status in ("submitted", "unknown"):
                    order.status = "accepted"
        elif t is OrderUnknown:
            assert isinstance(msg, OrderUnknown)
            order = self.open.get(self._list_or(msg.client_order_id))
            if order is not None and order.status == "submitted":
                order.status = "unknown"
        elif t is OrderRejected or t is OrderCanceled or t is OrderExpired:
            assert isinstance(msg, OrderRejected | OrderCanceled | OrderExpired)
            if isinstance(msg, OrderRejected) and msg.reason.startswith(REQUEST_REJECTS):
                return
            status = {OrderRejected: "rejected", OrderCanceled: "canceled", OrderExpired: "expired"}[t]
            cid = self._list_or(msg.client_order_id)
            order = self.open.get(cid)
            if cid != msg.client_order_id and order is not None:  # a leg of the OCO list ``order``
                ended = list_end(order.status, order.legs_ended, msg.client_order_id, status)
                if ended is None:
                    return
                status = ended
            self._finish(cid, status)
        elif t is StopArmed:
            assert isinstance(msg, StopArmed)
            self.stop = msg
        elif t is StopCanceled:
            assert isinstance(msg, StopCanceled)
            if self.stop is not None and self.stop.stop_id == msg.stop_id:
                self.stop = None
        elif t is GroupSnapshot:
            assert isinstance(msg, GroupSnapshot)
            self.restore(msg)
            return
        else:
            return
        self.applied += 1

    def _list_or(self, cid: str) -> str:
        """The id of the OCO list whose leg ``cid`` is (open or ended), else ``cid`` itself."""
        if cid in self.open or cid in self.finished:
            return cid
        found = leg_of(cid, self.open) or leg_of(cid, self.finished)
        order = None if found is None else self.open.get(found) or self.finished.get(found)
        return found if found is not None and order is not None and order.legs else cid

    def _submitted(self, msg: OrderSubmitted) -> None:
        cid = msg.client_order_id
        if cid in self.open or cid in self.finished:
            return
        intent = self.intents.pop(msg.intent_id, None)
        if intent is None:  # the approval was released with an older segment: rebuild what we can
            intent = OrderIntent(
                intent_id=msg.intent_id,
                source="stop-monitor" if msg.oco_take_profit is not None else "recovered",  # lists are its
                side=msg.side,
                order_type=msg.order_type,
                quantity=msg.quantity,
                price=msg.price,
                stop_price=msg.stop_price,
                oco_take_profit=msg.oco_take_profit,
                reduce_only=msg.oco_take_profit is not None,  # a list is only ever an exit
                exchange=msg.exchange,
                symbol=msg.symbol,
                ts_event=msg.ts_event,
                ts_recv=msg.ts_recv,
            )
        self.open[cid] = FoldedOrder(cid, intent, msg.quantity)

    def _filled(self, msg: OrderFilled) -> None:
        cid = self._list_or(msg.client_order_id)
        order = self.open.get(cid) or self.finished.get(cid)
        if order is None:
            return  # the order actor ignores fills of orders it never sent
        if msg.trade_id and msg.trade_id in order.trade_ids:
            return
        qty, price = msg.last_qty, msg.last_price
        if not (qty.is_finite() and qty > 0 and price.is_finite() and price > 0):
            return  # the order actor refuses it too ("bad_fill")
        if order.cum_qty + qty > order.quantity:
            return
        if msg.trade_id:
            order.trade_ids.add(msg.trade_id)
        order.venue_order_id = order.venue_order_id or msg.venue_order_id
        order.cum_qty += msg.last_qty
        if order.status in OPEN:
            if order.cum_qty >= order.quantity:
                self._finish(cid, "filled")
            else:
                order.status = "partially_filled"
        self.position.apply_fill(msg.side, msg.last_qty, msg.last_price, msg.fee, msg.fee_asset)
        if not order.intent.reduce_only:
            self.entry_intent = order.intent
        if self.position.quantity == 0:
            self.stop = None

    def _finish(self, cid: str, status: str) -> None:
        order = self.open.pop(cid, None)
        if order is None:
            return
        order.status = status
        self.finished[cid] = order
        if len(self.finished) > KEEP_FINISHED:
            self.finished.popitem(last=False)

    # -- snapshots -------------------------------------------------------------------------
    def client_order_ids(self) -> set[str]:
        """Every client order id the journal knows this group used (open, ended, recently ended)."""
        legs = [leg for o in (*self.open.values(), *self.finished.values()) for leg in o.legs]
        return {*self.recent, *self.finished, *self.open, *self.known_ids, *legs}

    def snapshot(
        self, stamp: Stamp, strategy: str = "", strategy_state: bytes = b"", last_event_ns: int = 0
    ) -> GroupSnapshot:
        pos = self.position
        recent = [*self.recent, *self.finished][-SNAPSHOT_RECENT:]
        return GroupSnapshot(
            account=self.account,
            orders=[o.to_snapshot() for o in self.open.values()],
            quantity=pos.quantity,
            avg_price=pos.avg_price,
            realized_pnl=pos.realized_pnl,
            fees=pos.fees,
            other_fees=dict(pos.other_fees),
            entry_intent=self.entry_intent if pos.quantity != 0 else None,
            strategy=strategy,
            strategy_state=strategy_state,
            last_event_ns=max(last_event_ns, self.last_event_ns),
            recent_client_order_ids=recent,
            risk_day=self.risk_day,
            stop=self.stop if pos.quantity != 0 else None,
            **stamp,
        )

    def restore(self, snap: GroupSnapshot) -> None:
        """Continue from ``snap`` (what was folded before it is replaced)."""
        self.account = snap.account or self.account
        self.open = {o.client_order_id: FoldedOrder.from_snapshot(o) for o in snap.orders}
        self.finished.clear()
        pos = Position(self.position.base, self.position.quote)
        pos.quantity, pos.avg_price = snap.quantity, snap.avg_price
        pos.realized_pnl, pos.fees = snap.realized_pnl, snap.fees
        pos.other_fees = dict(snap.other_fees)
        self.position = pos
        self.entry_intent = snap.entry_intent
        self.strategy = snap.strategy
        self.strategy_state = snap.strategy_state
        self.last_event_ns = snap.last_event_ns
        self.risk_day = snap.risk_day
        self.stop = snap.stop
        self.recent = list(snap.recent_client_order_ids)
        self.decision_ns = max(self.decision_ns, snap.last_event_ns)

    @property
    def is_empty(self) -> bool:
        """Nothing to recover: no open order, flat, no realized history, no strategy state."""
        p = self.position
        flat = p.quantity == 0 and p.realized_pnl == 0 and p.fees == 0 and not p.other_fees
        return (
            flat and not self.open and not self.strategy_state and not self.decision_ns and not self.known_ids
        )
