"""The Binance execution actor's orders, and the venue's word about them turned into our events once.

:class:`OrderTracker` keeps the orders one :class:`~adapters.binance.execution.BinanceExecution`
sent or adopted (:class:`TrackedOrder`, by client order id and by venue order id) and applies what
the venue says about them, an order reply (new, query, cancel) or a user data stream
executionReport: OrderAccepted and the end (OrderCanceled, OrderExpired, OrderRejected) once per
order, OrderFilled once per (symbol, trade id) however many paths report it.  A fill whose
quantity, price or fee is not finite and in range is refused, never published.  Events go to the
router, or into :attr:`OrderTracker.collect` while a restart reconciliation gathers them.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from actors.channels import Router
from actors.messages import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Side,
    Stamp,
    stamp,
)
from actors.runtime import now_ns
from adapters.binance.http import BinanceHttpClient
from adapters.binance.replies import BinanceAccountTrade, BinanceOrderReply
from adapters.binance.schemas import NS_PER_MS
from adapters.binance.userdata_schemas import BinanceExecutionReport

__all__ = ["OrderTracker", "TrackedOrder"]

ZERO = Decimal(0)
KEEP_TRADES = 100_000  # (symbol, trade id) pairs remembered for de-duplication
KEEP_ORDERS = 10_000  # finished orders remembered


def _positive(value: Decimal) -> bool:
    return value.is_finite() and value > 0


@dataclass(slots=True)
class TrackedOrder:
    """One of our orders at the venue, as far as the venue has told us about it."""

    cid: str
    side: Side
    quantity: Decimal
    cum: Decimal = ZERO
    venue_id: str = ""
    accepted: bool = False
    done: bool = False
    unknown: bool = False
    unknown_reason: str = ""
    deadline_ms: int = 0
    foreign: bool = False  # the venue's order with this id is another's: its events are not ours


class OrderTracker:
    """The tracked orders of one symbol (``venue_symbol`` at the venue) and their events.

    ``client`` gives the actor's REST client (a query reply's missing fills come from myTrades);
    ``counters`` are the actor's counters, shared: fills, duplicate and refused fills, foreign
    events and venue rejections are counted here.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        venue_symbol: str,
        router: Router,
        *,
        client: Callable[[], Awaitable[BinanceHttpClient]],
        counters: dict[str, int],
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.exchange, self.symbol, self.venue_symbol = exchange, symbol, venue_symbol
        self.router = router
        self.client = client
        self.counters = counters
        self.log = log
        self.orders: OrderedDict[str, TrackedOrder] = OrderedDict()
        self.by_venue_id: dict[str, str] = {}
        self.trades: OrderedDict[tuple[str, int], None] = OrderedDict()
        self.last_trade_id = -1
        self.collect: list[Message] | None = None  # reconcile(): events are returned, not published

    def track(self, order: TrackedOrder) -> TrackedOrder:
        """Track ``order`` (its events are ours); the oldest finished orders are forgotten."""
        self.orders[order.cid] = order
        if len(self.orders) > KEEP_ORDERS:
            for cid in list(self.orders)[: len(self.orders) - KEEP_ORDERS]:
                old = self.orders[cid]
                if old.done and not old.unknown:
                    del self.orders[cid]
                    self.by_venue_id.pop(old.venue_id, None)
        return order

    # --- what the venue says -----------------------------------------------------------------

    async def apply_reply(
        self, order: TrackedOrder, reply: BinanceOrderReply, *, query_trades: bool = False
    ) -> None:
        """An order reply (new, query, cancel): acceptance, fills, then its end, each published once."""
        status = reply.status
        if status == "REJECTED":
            if not order.accepted:
                await self.venue_rejected(order, "rejected by venue")
            return
        ts = (reply.transactTime or reply.updateTime) * NS_PER_MS or now_ns()
        await self.accept(order, str(reply.orderId), ts)
        if reply.fills:
            for f in reply.fills:  # FULL reply of a new order: these fills took liquidity
                await self._fill(order, f.tradeId, f.qty, f.price, f.commission, f.commissionAsset, False, ts)
        elif query_trades and reply.executedQty > order.cum:
            client = await self.client()
            trades = await client.my_trades(self.venue_symbol, order_id=reply.orderId)
            for t in sorted(trades, key=lambda t: t.id):
                await self.trade(order, t)
        if status == "CANCELED":
            await self._finish(
                order,
                OrderCanceled(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id),
            )
        elif status in ("EXPIRED", "EXPIRED_IN_MATCH"):
            await self._finish(
                order, OrderExpired(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )

    async def on_report(self, er: BinanceExecutionReport) -> None:
        """An executionReport of the user data stream; another symbol's or order's is only counted."""
        order = self.orders.get(er.client_order_id) if er.s == self.venue_symbol else None
        if order is None or order.foreign:
            self.counters["foreign_events"] += 1
            return
        ts = (er.T or er.E) * NS_PER_MS
        x = er.x
        if x == "REJECTED":
            if not order.accepted:
                await self.venue_rejected(order, f"rejected by venue: {er.r}")
            return
        await self.accept(order, str(er.i), ts)
        if x == "TRADE":
            fee = er.n if er.n is not None else ZERO
            await self._fill(order, er.t, er.l, er.L, fee, er.N or "", er.m, ts)
        elif x == "CANCELED":
            await self._finish(
                order,
                OrderCanceled(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id),
            )
        elif x in ("EXPIRED", "TRADE_PREVENTION") or er.X in ("EXPIRED", "EXPIRED_IN_MATCH"):
            await self._finish(
                order, OrderExpired(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )

    async def accept(self, order: TrackedOrder, venue_id: str, ts: int) -> None:
        if not order.venue_id:
            order.venue_id = venue_id
            self.by_venue_id[venue_id] = order.cid
        if order.accepted:
            return
        order.accepted = True
        await self.publish(
            OrderAccepted(**self.stamp(ts), client_order_id=order.cid, venue_order_id=venue_id)
        )

    async def trade(self, order: TrackedOrder, t: BinanceAccountTrade) -> None:
        ts = t.time * NS_PER_MS
        await self._fill(order, t.id, t.qty, t.price, t.commission, t.commissionAsset, t.isMaker, ts)

    async def _fill(
        self,
        order: TrackedOrder,
        trade_id: int,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        maker: bool,
        ts: int,
    ) -> None:
        key = (self.venue_symbol, trade_id)
        if key in self.trades:
            self.counters["duplicate_fills"] += 1
            return
        if not (_positive(qty) and _positive(price) and fee.is_finite() and fee >= 0):
            # A garbled reply: never publish it.  The trade id is not marked seen, so the user
            # stream or the next catch-up still delivers the real fill.
            self.counters["bad_fills"] = self.counters.get("bad_fills", 0) + 1
            self.log.error(
                "fill %s of %s refused: qty %s, price %s, fee %s (not finite or out of range)",
                trade_id,
                order.cid,
                qty,
                price,
                fee,
            )
            return
        self.trades[key] = None
        if len(self.trades) > KEEP_TRADES:
            self.trades.popitem(last=False)
        self.last_trade_id = max(self.last_trade_id, trade_id)
        order.cum += qty
        leaves = max(order.quantity - order.cum, ZERO)
        if leaves == 0:
            order.done = True
        self.counters["fills"] += 1
        await self.publish(
            OrderFilled(
                **self.stamp(ts),
                client_order_id=order.cid,
                venue_order_id=order.venue_id,
                trade_id=str(trade_id),
                side=order.side,
                last_qty=qty,
                last_price=price,
                cum_qty=order.cum,
                leaves_qty=leaves,
                fee=fee,
                fee_asset=fee_asset,
                liquidity="maker" if maker else "taker",
            )
        )

    async def _finish(self, order: TrackedOrder, msg: OrderCanceled | OrderExpired) -> None:
        if order.done:
            return
        order.done = True
        await self.publish(msg)

    async def venue_rejected(self, order: TrackedOrder, reason: str) -> None:
        self.counters["rejected_by_venue"] += 1
        order.done = True
        await self.publish(OrderRejected(**self.stamp(), client_order_id=order.cid, reason=reason))

    async def publish(self, msg: Message) -> None:
        """To the router, or into :attr:`collect` while a reconciliation gathers the events."""
        if self.collect is not None:
            self.collect.append(msg)
            return
        await self.router.publish(msg)

    def stamp(self, ts_event: int | None = None) -> Stamp:
        now = now_ns()
        return stamp(self.exchange, self.symbol, ts_event or now, now)
