"""The OKX execution actor's orders, and OKX's word about them turned into our events once.

:class:`OkxOrderTracker` keeps the orders one :class:`~adapters.okx.execution.OkxExecution` sent
or adopted (:class:`TrackedOrder`, by our client order id, by OKX's ``clOrdId`` / ``algoClOrdId``
and by ``ordId`` / ``algoId``) and applies what OKX says about them: an ``orders`` channel push,
an order or algo order queried by REST, a REST fill.  OrderAccepted and the end (OrderCanceled,
OrderExpired, OrderRejected) once per order; OrderFilled once per (instId, tradeId) however many
paths report it (push, catch-up, query).  A fill whose size, price or fee is not a finite number
in range is refused and counted, never published (the trade id is not marked seen, so the real
fill still arrives).

Fees: OKX reports them negative when charged (``fillFee`` ``"-0.0001"``) and positive for a
rebate; an OrderFilled's ``fee`` is what was paid (``-fillFee``: a rebate is a negative fee), in
``fillFeeCcy`` (a spot buy pays in the base currency, a sell in the quote).  ``execType`` ``M`` is
maker liquidity, ``T`` taker.

A stop rests at OKX as an algo order (``algoClOrdId`` = our id): when it triggers, OKX places an
order whose pushes carry that ``algoClOrdId`` (and no ``clOrdId``); its fills are the stop's.

Events go to the router, or into :attr:`OkxOrderTracker.collect` while a restart reconciliation
gathers them.
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
from adapters.okx.errors import OkxBadReply
from adapters.okx.http import OkxHttpClient
from adapters.okx.replies import OkxAlgoOrder, OkxFill, OkxOrder, dec, ms

__all__ = ["OkxOrderTracker", "TrackedOrder"]

ZERO = Decimal(0)
NS_PER_MS = 1_000_000
KEEP_TRADES = 100_000  # (instId, tradeId) pairs remembered for de-duplication
KEEP_ORDERS = 10_000  # finished orders remembered
FILLS_DAYS_MS = 3 * 86_400_000  # GET /api/v5/trade/fills covers 3 days; older: fills-history
LIVE_ALGO = frozenset({"live", "pause", "partially_effective"})


@dataclass(slots=True)
class TrackedOrder:
    """One of our orders at OKX, as far as OKX has told us about it."""

    cid: str  # ours (td-...)
    okx_cid: str  # its clOrdId, or algoClOrdId for an algo order
    side: Side
    quantity: Decimal
    algo: bool = False  # a conditional (stop) algo order
    cum: Decimal = ZERO
    venue_id: str = ""  # ordId, or algoId
    fired_id: str = ""  # algo: the ordId of the order it placed when it triggered
    created_ms: int = 0
    accepted: bool = False
    done: bool = False
    unknown: bool = False
    unknown_reason: str = ""
    deadline_ms: int = 0
    foreign: bool = False  # OKX's order with this id is another's: its events are not ours


class OkxOrderTracker:
    """The tracked orders of one symbol (``inst_id`` at OKX) and their events.

    ``client`` gives the actor's REST client (fills a query reports but no push delivered are
    read from ``/api/v5/trade/fills``); ``counters`` are the actor's, shared.
    """

    def __init__(
        self,
        exchange: str,
        symbol: str,
        inst_id: str,
        router: Router,
        *,
        client: Callable[[], Awaitable[OkxHttpClient]],
        counters: dict[str, int],
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.exchange, self.symbol, self.inst_id = exchange, symbol, inst_id
        self.router, self.client, self.counters, self.log = router, client, counters, log
        self.orders: OrderedDict[str, TrackedOrder] = OrderedDict()
        self.by_okx: dict[str, str] = {}  # clOrdId / algoClOrdId -> cid
        self.by_venue_id: dict[str, str] = {}  # ordId / algoId / fired ordId -> cid
        self.trades: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.last_fill_ms = 0
        self.collect: list[Message] | None = None

    def track(self, order: TrackedOrder) -> TrackedOrder:
        """Track ``order`` (its events are ours); the oldest finished orders are forgotten."""
        self.orders[order.cid] = order
        if order.okx_cid:
            self.by_okx[order.okx_cid] = order.cid
        for vid in (order.venue_id, order.fired_id):
            if vid:
                self.by_venue_id[vid] = order.cid
        if len(self.orders) > KEEP_ORDERS:
            for cid in list(self.orders)[: len(self.orders) - KEEP_ORDERS]:
                old = self.orders[cid]
                if old.done and not old.unknown:
                    del self.orders[cid]
                    self.by_okx.pop(old.okx_cid, None)
                    self.by_venue_id.pop(old.venue_id, None)
                    self.by_venue_id.pop(old.fired_id, None)
        return order

    def find(self, cl_ord_id: str, ord_id: str, algo_cl_ord_id: str = "") -> TrackedOrder | None:
        """The tracked order a push or fill is about (a triggered stop's order: its algo order)."""
        cid = self.by_okx.get(cl_ord_id) if cl_ord_id else None
        if cid is None and algo_cl_ord_id:
            cid = self.by_okx.get(algo_cl_ord_id)
            if cid is not None and ord_id:
                self.orders[cid].fired_id = ord_id
                self.by_venue_id[ord_id] = cid
        if cid is None and ord_id:
            cid = self.by_venue_id.get(ord_id)
        return self.orders.get(cid) if cid else None

    # --- what OKX says -------------------------------------------------------------------------

    async def on_push(self, o: OkxOrder) -> None:
        """One ``orders`` channel item: acceptance, its fill (if it is one), its end."""
        order = self.find(o.clOrdId, o.ordId, o.algoClOrdId) if o.instId == self.inst_id else None
        if order is None or order.foreign:
            self.counters["foreign_events"] += 1
            return
        ts = (ms(o.uTime) or ms(o.cTime)) * NS_PER_MS
        await self.accept(order, o.algoId if order.algo else o.ordId, ts)
        if o.tradeId and o.fillSz not in ("", "0"):
            fill_ts = (ms(o.fillTime) or ms(o.uTime)) * NS_PER_MS
            await self.fill(
                order, o.tradeId, o.fillSz, o.fillPx, o.fillFee, o.fillFeeCcy, o.execType == "M", fill_ts
            )
        await self._state(order, o)

    async def apply_query(self, order: TrackedOrder, o: OkxOrder) -> None:
        """``GET /api/v5/trade/order`` of ``order`` (or of the order its stop placed): acceptance, the
        fills it reports that we have not seen (read from REST fills), its end."""
        if not order.algo:
            await self.accept(order, o.ordId, (ms(o.uTime) or ms(o.cTime)) * NS_PER_MS)
        if dec(o.accFillSz, "accFillSz") > order.cum:
            await self.fills_of(order, o.ordId, ms(o.cTime))
        await self._state(order, o)

    async def apply_algo(self, order: TrackedOrder, a: OkxAlgoOrder) -> None:
        """An algo order as REST reports it: accepted, triggered (its order's fills), canceled, failed."""
        await self.accept(order, a.algoId, (ms(a.uTime) or ms(a.cTime)) * NS_PER_MS)
        if a.state in LIVE_ALGO:
            return
        fired = a.ordId or next(iter(a.ordIdList), "")
        if a.state == "effective" and fired:
            order.fired_id = fired
            self.by_venue_id[fired] = order.cid
            client = await self.client()
            await self.apply_query(order, await client.order_details(self.inst_id, ord_id=fired))
        elif a.state == "canceled":
            await self._finish(
                order, OrderCanceled(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )
        elif a.state == "order_failed":  # it triggered, OKX could not place its order
            await self._finish(
                order, OrderExpired(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )

    async def apply_fill(self, f: OkxFill) -> bool:
        """One REST fill (catch-up); False when it is not one of our tracked orders'."""
        order = self.find(f.clOrdId, f.ordId) if f.instId == self.inst_id else None
        if order is None or order.foreign:
            return False
        ts = (ms(f.fillTime) or ms(f.ts)) * NS_PER_MS
        await self.fill(order, f.tradeId, f.fillSz, f.fillPx, f.fee, f.feeCcy, f.execType == "M", ts)
        return True

    async def fills_of(self, order: TrackedOrder, ord_id: str, created_ms: int = 0) -> None:
        """Every fill of OKX order ``ord_id`` (ours: ``order``), oldest first; seen ones are skipped."""
        client = await self.client()
        history = bool(created_ms) and client.now_ms() - created_ms > FILLS_DAYS_MS - 3_600_000
        fills = await client.fills(self.inst_id, ord_id=ord_id, history=history)
        for f in sorted(fills, key=lambda f: (ms(f.fillTime) or ms(f.ts), f.tradeId)):
            ts = (ms(f.fillTime) or ms(f.ts)) * NS_PER_MS
            await self.fill(order, f.tradeId, f.fillSz, f.fillPx, f.fee, f.feeCcy, f.execType == "M", ts)

    async def _state(self, order: TrackedOrder, o: OkxOrder) -> None:
        if o.state in ("canceled", "mmp_canceled"):
            await self._finish(
                order, OrderCanceled(**self.stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )
        elif o.state == "filled" and dec(o.accFillSz, "accFillSz") > order.cum:
            await self.fills_of(order, o.ordId, ms(o.cTime))  # a push was lost: REST has every fill

    async def accept(self, order: TrackedOrder, venue_id: str, ts: int) -> None:
        if not order.venue_id and venue_id:
            order.venue_id = venue_id
            self.by_venue_id[venue_id] = order.cid
        if order.accepted:
            return
        order.accepted = True
        await self.publish(
            OrderAccepted(**self.stamp(ts), client_order_id=order.cid, venue_order_id=order.venue_id)
        )

    async def fill(
        self,
        order: TrackedOrder,
        trade_id: str,
        qty_text: str,
        price_text: str,
        fee_text: str,
        fee_ccy: str,
        maker: bool,
        ts: int,
    ) -> None:
        """One fill of ``order`` as OKX wrote it (``fee_text`` negative when charged)."""
        key = (self.inst_id, trade_id)
        if key in self.trades:
            self.counters["duplicate_fills"] += 1
            return
        try:
            qty, price = dec(qty_text, "fillSz", empty=None), dec(price_text, "fillPx", empty=None)
            fee = -dec(fee_text, "fee", allow_negative=True)
            if not trade_id or qty <= 0 or price <= 0:
                raise OkxBadReply(f"tradeId {trade_id!r}, size {qty}, price {price}")
        except OkxBadReply as exc:
            # Never published; the trade id is not marked seen, so the real fill still arrives.
            self.counters["bad_fills"] = self.counters.get("bad_fills", 0) + 1
            self.log.error("fill %r of %s refused: %s", trade_id, order.cid, exc)
            return
        self.trades[key] = None
        if len(self.trades) > KEEP_TRADES:
            self.trades.popitem(last=False)
        self.last_fill_ms = max(self.last_fill_ms, ts // NS_PER_MS)
        order.cum += qty
        leaves = max(order.quantity - order.cum, ZERO)
        order.done = order.done or leaves == 0
        self.counters["fills"] += 1
        await self.publish(
            OrderFilled(
                **self.stamp(ts),
                client_order_id=order.cid,
                venue_order_id=order.venue_id,
                trade_id=trade_id,
                side=order.side,
                last_qty=qty,
                last_price=price,
                cum_qty=order.cum,
                leaves_qty=leaves,
                fee=fee,
                fee_asset=fee_ccy,
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
        if self.collect is not None:
            self.collect.append(msg)
            return
        await self.router.publish(msg)

    def stamp(self, ts_event: int | None = None) -> Stamp:
        now = now_ns()
        return stamp(self.exchange, self.symbol, ts_event or now, now)
