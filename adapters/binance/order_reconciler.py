"""Bringing the Binance execution actor's tracked orders up to the venue's truth by REST.

:class:`OrderReconciler` fills two gaps the user data stream leaves: the catch-up after every
stream (re)connect (:meth:`~OrderReconciler.catch_up`: open orders, our trades since the last one
seen, and a query of every order still open here but not at the venue) and, at a restart, the
reconciliation of the journal's open orders (:meth:`~OrderReconciler.reconcile`).  What the venue
answers goes through the :class:`~adapters.binance.order_tracker.OrderTracker`, so an acceptance,
fill or end already published is not published again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING

import anyio

from actors.messages import Message
from adapters.binance.errors import BinanceUnknownOrder
from adapters.binance.http import BinanceHttpClient
from adapters.binance.order_tracker import OrderTracker, TrackedOrder
from adapters.binance.replies import BinanceAccountTrade
from adapters.binance.schemas import NS_PER_MS

if TYPE_CHECKING:
    from actors.order import OrderRecord

__all__ = ["OrderReconciler"]


class OrderReconciler:
    """Catch-up and restart reconciliation of ``tracker``'s orders (of its ``venue_symbol``).

    ``recv_window_ms`` is how long an order request may still reach the venue after it was sent;
    ``counters`` are the actor's, shared (``catchups`` is counted here).
    """

    def __init__(
        self,
        tracker: OrderTracker,
        client: Callable[[], Awaitable[BinanceHttpClient]],
        *,
        recv_window_ms: int,
        counters: dict[str, int],
    ) -> None:
        self.tracker = tracker
        self.client = client
        self.venue_symbol = tracker.venue_symbol
        self.recv_window_ms = recv_window_ms
        self.counters = counters
        self.started_ms = int(time.time() * 1000)  # the first catch-up's trades start a minute before

    # --- catch-up after every (re)connect ---------------------------------------------------------

    async def catch_up(self, resolving: Container[str]) -> None:
        """Open orders, trades since the last one seen, and every order open here but not at the venue.

        Orders in ``resolving`` (an UNKNOWN outcome being asked about) are left to that resolution.
        """
        tracker = self.tracker
        client = await self.client()
        opens = await client.open_orders(self.venue_symbol)
        open_ids = {o.clientOrderId for o in opens}
        for o in opens:
            order = tracker.orders.get(o.clientOrderId)
            if order is not None and not order.unknown:
                await tracker.accept(order, str(o.orderId), (o.updateTime or o.transactTime) * NS_PER_MS)
        for t in await self._trades_since():
            cid = tracker.by_venue_id.get(str(t.orderId))
            order = tracker.orders.get(cid) if cid else None
            if order is not None:
                await tracker.trade(order, t)
        for order in list(tracker.orders.values()):
            if order.done or order.unknown or order.cid in open_ids or order.cid in resolving:
                continue
            try:
                reply = await client.query_order(self.venue_symbol, order.cid)
            except BinanceUnknownOrder:
                continue  # its request is still in flight; its reply (or the UNKNOWN path) decides
            await tracker.apply_reply(order, reply, query_trades=True)
        self.counters["catchups"] += 1

    async def _trades_since(self) -> list[BinanceAccountTrade]:
        client = await self.client()
        out: list[BinanceAccountTrade] = []
        last_trade_id = self.tracker.last_trade_id
        from_id = last_trade_id + 1 if last_trade_id >= 0 else None
        start = None if from_id is not None else self.started_ms - 60_000
        while True:
            page = await client.my_trades(self.venue_symbol, from_id=from_id, start_time_ms=start, limit=1000)
            out.extend(page)
            if len(page) < 1000:
                return sorted(out, key=lambda t: t.id)
            from_id, start = max(t.id for t in page) + 1, None

    # --- restart -----------------------------------------------------------------------------

    async def reconcile(self, orders: list[OrderRecord]) -> list[Message]:
        """Restart: the events that bring the journal's open ``orders`` up to the venue's truth.

        Each order is tracked again (fills the journal has are not repeated), queried by client
        order id, and its acceptance, missing fills (myTrades) and end are returned, not published.
        An order the venue does not know is asked about once more after a recvWindow (it may have
        been in flight at the crash), then rejected "not found at venue".
        """
        tracker = self.tracker
        out: list[Message] = []
        tracker.collect = out
        try:
            missing: list[TrackedOrder] = []
            for rec in orders:
                order = tracker.track(
                    TrackedOrder(
                        rec.cid, rec.intent.side, rec.quantity, rec.cum_qty, venue_id=rec.venue_order_id
                    )
                )
                order.accepted = bool(rec.venue_order_id)
                if rec.venue_order_id:
                    tracker.by_venue_id[rec.venue_order_id] = rec.cid
                for tid in rec.trade_ids:
                    if tid.isdigit():
                        tracker.trades[(self.venue_symbol, int(tid))] = None
                if not await self._reconcile_one(order):
                    missing.append(order)
            if missing:
                await anyio.sleep(self.recv_window_ms / 1000 + 1)
                for order in missing:
                    if not await self._reconcile_one(order) and not order.done:
                        await tracker.venue_rejected(order, "not found at venue: unknown after a restart")
        finally:
            tracker.collect = None
        return out

    async def _reconcile_one(self, order: TrackedOrder) -> bool:
        client = await self.client()
        try:
            reply = await client.query_order(self.venue_symbol, order.cid)
        except BinanceUnknownOrder:
            return False
        await self.tracker.apply_reply(order, reply, query_trades=True)
        return True
