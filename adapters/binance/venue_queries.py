"""The venue's view of one Binance symbol, asked by REST, for the daemon's restart.

:class:`BinanceVenueQueries` serves restart reconciliation (:mod:`daemon.restore`) and the
foreign-orders policy through :class:`~adapters.binance.execution.BinanceExecution`, whose
``open_orders``, ``cancel_foreign``, ``order_status``, ``recent_fills`` and ``balances`` ask it:
the symbol's open orders at the venue, one order's state, our recent fills with cum/leaves, the
account's balances, and the cancel of an open order the daemon did not send.  None of them
touches the orders the execution actor tracks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from actors.messages import BalancesChanged, OrderFilled
from actors.runtime import now_ns
from adapters.binance.errors import BinanceUnknownOrder
from adapters.binance.http import BinanceHttpClient
from adapters.binance.orders import VenueOrder
from adapters.binance.replies import BinanceAccountTrade, BinanceOrderReply
from adapters.binance.schemas import NS_PER_MS

__all__ = ["BinanceVenueQueries"]

ZERO = Decimal(0)


class BinanceVenueQueries:
    """REST queries about ``venue_symbol`` (ours: ``symbol``) of ``account``, through ``client``."""

    def __init__(
        self,
        client: Callable[[], Awaitable[BinanceHttpClient]],
        *,
        exchange: str,
        symbol: str,
        venue_symbol: str,
        account: str,
    ) -> None:
        self.client = client
        self.exchange, self.symbol, self.venue_symbol, self.account = exchange, symbol, venue_symbol, account

    async def open_orders(self) -> list[VenueOrder]:
        """Every open order of this symbol at the venue."""
        client = await self.client()
        return [VenueOrder.from_reply(o, self.symbol) for o in await client.open_orders(self.venue_symbol)]

    async def cancel_foreign(self, client_order_id: str) -> None:
        """Cancel an open order of this symbol that the daemon did not send (restart policy)."""
        client = await self.client()
        await client.cancel_order(self.venue_symbol, client_order_id)

    async def order_status(self, client_order_id: str) -> VenueOrder | None:
        """The venue's view of one order, ``None`` if it does not know it."""
        client = await self.client()
        try:
            reply = await client.query_order(self.venue_symbol, client_order_id)
        except BinanceUnknownOrder:
            return None
        return VenueOrder.from_reply(reply, self.symbol)

    async def recent_fills(self, since_ms: int) -> list[OrderFilled]:
        """Our fills of this symbol since ``since_ms`` (venue time), with cum/leaves per order."""
        client = await self.client()
        trades = await client.my_trades(self.venue_symbol, start_time_ms=since_ms, limit=1000)
        out: list[OrderFilled] = []
        orders: dict[int, tuple[BinanceOrderReply, list[BinanceAccountTrade]]] = {}
        for t in sorted(trades, key=lambda t: t.id):
            if t.orderId not in orders:
                reply = await client.query_order(self.venue_symbol, order_id=t.orderId)
                history = await client.my_trades(self.venue_symbol, order_id=t.orderId, limit=1000)
                orders[t.orderId] = (reply, sorted(history, key=lambda h: h.id))
            reply, history = orders[t.orderId]
            cum = sum((h.qty for h in history if h.id <= t.id), ZERO)
            ts = t.time * NS_PER_MS
            out.append(
                OrderFilled(
                    exchange=self.exchange,
                    symbol=self.symbol,
                    ts_event=ts,
                    ts_recv=now_ns(),
                    client_order_id=reply.clientOrderId,
                    venue_order_id=str(t.orderId),
                    trade_id=str(t.id),
                    side="buy" if t.isBuyer else "sell",
                    last_qty=t.qty,
                    last_price=t.price,
                    cum_qty=cum,
                    leaves_qty=max(reply.origQty - cum, ZERO),
                    fee=t.commission,
                    fee_asset=t.commissionAsset,
                    liquidity="maker" if t.isMaker else "taker",
                )
            )
        return out

    async def balances(self) -> BalancesChanged:
        """The account's balances (``GET /api/v3/account``)."""
        client = await self.client()
        acct = await client.account()
        now = now_ns()
        return BalancesChanged(
            exchange=self.exchange, symbol="*", ts_event=(acct.updateTime * NS_PER_MS) or now, ts_recv=now,
            account=self.account, free={b.asset: b.free for b in acct.balances},
            locked={b.asset: b.locked for b in acct.balances},
        )  # fmt: skip
