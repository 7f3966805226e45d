"""Bringing the OKX execution actor's tracked orders up to OKX's truth by REST.

:class:`OkxOrderReconciler` fills the gaps the private WebSocket leaves: the catch-up after every
(re)connect (:meth:`~OkxOrderReconciler.catch_up`: open orders, open algo orders, our fills since
the last one seen, and a query of every order still open here but not at OKX) and, at a restart,
the reconciliation of the journal's open orders (:meth:`~OkxOrderReconciler.reconcile`).  What
OKX answers goes through the :class:`~adapters.okx.order_tracker.OkxOrderTracker`, so an
acceptance, fill or end already published is not published again.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Container
from typing import TYPE_CHECKING

import anyio

from actors.messages import Message
from adapters.okx.errors import OkxUnknownOrder
from adapters.okx.http import OkxHttpClient
from adapters.okx.order_tracker import OkxOrderTracker, TrackedOrder
from adapters.okx.orders import okx_client_id
from adapters.okx.replies import ms

if TYPE_CHECKING:
    from actors.order import OrderRecord

__all__ = ["STOP_TYPES", "OkxOrderReconciler"]

STOP_TYPES = ("stop_market", "stop_limit")  # rest at OKX as conditional algo orders


class OkxOrderReconciler:
    """Catch-up and restart reconciliation of ``tracker``'s orders (of its ``inst_id``).

    ``expiry_ms`` is how long an order request may still reach OKX after it was sent (its
    ``expTime``); ``counters`` are the actor's, shared (``catchups`` is counted here).
    """

    def __init__(
        self,
        tracker: OkxOrderTracker,
        client: Callable[[], Awaitable[OkxHttpClient]],
        *,
        expiry_ms: int,
        counters: dict[str, int],
    ) -> None:
        self.tracker, self.client = tracker, client
        self.inst_id = tracker.inst_id
        self.expiry_ms, self.counters = expiry_ms, counters
        self.started_ms = int(time.time() * 1000)  # the first catch-up's fills start a minute before

    # --- catch-up after every (re)connect ------------------------------------------------------

    async def catch_up(self, resolving: Container[str]) -> None:
        """Open orders and algo orders, fills since the last seen, and every order open here but
        not at OKX queried.  Orders in ``resolving`` (an UNKNOWN outcome being asked about) are
        left to that resolution."""
        tracker, client = self.tracker, await self.client()
        open_ids: set[str] = set()
        for o in await client.pending_orders(self.inst_id):
            order = tracker.find(o.clOrdId, o.ordId, o.algoClOrdId)
            open_ids.add(o.clOrdId or o.algoClOrdId)
            if order is not None and not order.unknown and not order.algo:
                await tracker.accept(order, o.ordId, (ms(o.uTime) or ms(o.cTime)) * 1_000_000)
        for a in await client.algos_pending(self.inst_id):
            order = tracker.find(a.algoClOrdId, a.algoId)
            open_ids.add(a.algoClOrdId)
            if order is not None and not order.unknown:
                await tracker.accept(order, a.algoId, (ms(a.uTime) or ms(a.cTime)) * 1_000_000)
        begin = tracker.last_fill_ms - 1_000 if tracker.last_fill_ms else self.started_ms - 60_000
        for f in sorted(
            await client.fills(self.inst_id, begin_ms=begin), key=lambda f: (ms(f.ts), f.tradeId)
        ):
            await tracker.apply_fill(f)
        for order in list(tracker.orders.values()):
            if order.done or order.unknown or order.cid in resolving or order.okx_cid in open_ids:
                continue
            await self._query(order)
        self.counters["catchups"] += 1

    async def _query(self, order: TrackedOrder) -> bool:
        """Ask OKX about ``order`` and apply the answer; False when OKX does not know it (yet)."""
        client = await self.client()
        try:
            if order.algo:
                await self.tracker.apply_algo(order, await client.algo_details(algo_cl_ord_id=order.okx_cid))
            else:
                await self.tracker.apply_query(
                    order, await client.order_details(self.inst_id, cl_ord_id=order.okx_cid)
                )
        except OkxUnknownOrder:
            return False  # its request is still in flight; its reply (or the UNKNOWN path) decides
        return True

    # --- restart -------------------------------------------------------------------------------

    async def reconcile(self, orders: list[OrderRecord]) -> list[Message]:
        """Restart: the events that bring the journal's open ``orders`` up to OKX's truth.

        Each order is tracked again (fills the journal has are not repeated), queried by its
        ``clOrdId`` / ``algoClOrdId``, and its acceptance, missing fills and end are returned, not
        published.  An order OKX does not know is asked about once more after its request's
        ``expTime`` has surely passed (it may have been in flight at the crash), then rejected
        "not found at venue".
        """
        tracker = self.tracker
        out: list[Message] = []
        tracker.collect = out
        try:
            missing: list[TrackedOrder] = []
            for rec in orders:
                algo = rec.intent.order_type in STOP_TYPES
                order = TrackedOrder(
                    rec.cid, okx_client_id(rec.cid), rec.intent.side, rec.quantity, algo=algo
                )
                order.cum, order.venue_id, order.accepted = (
                    rec.cum_qty,
                    rec.venue_order_id,
                    bool(rec.venue_order_id),
                )
                tracker.track(order)
                for tid in rec.trade_ids:
                    tracker.trades[(self.inst_id, tid)] = None
                if not await self._query(order):
                    missing.append(order)
            if missing:
                await anyio.sleep(self.expiry_ms / 1000 + 1)
                for order in missing:
                    if not await self._query(order) and not order.done:
                        await tracker.venue_rejected(order, "not found at venue: unknown after a restart")
        finally:
            tracker.collect = None
        return out
