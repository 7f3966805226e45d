"""OKX's view of one instrument, asked by REST, for the daemon's restart and its balance checks.

:class:`OkxVenueQueries` serves restart reconciliation (:mod:`daemon.restore`), the foreign-orders
policy and the balance check through :class:`~adapters.okx.execution.OkxExecution`, whose
``open_orders``, ``cancel_foreign``, ``order_status``, ``recent_fills`` and ``balances`` ask it: the
instrument's open orders and open algo orders, one order's state, our recent fills with cum/leaves
per order, the account's balances (``availBal`` free, ``frozenBal`` locked), and the cancel of an
open order the daemon did not send.  None of them touches the orders the execution actor tracks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal

from actors.messages import BalancesChanged, OrderFilled
from actors.runtime import now_ns
from adapters.okx.errors import OkxUnknownOrder
from adapters.okx.http import OkxHttpClient
from adapters.okx.orders import OkxVenueOrder, okx_client_id, our_client_id
from adapters.okx.replies import OkxBalance, OkxFill, OkxOrder, dec, ms

__all__ = ["OkxVenueQueries", "balances_changed"]

ZERO = Decimal(0)
NS_PER_MS = 1_000_000
FILLS_DAYS_MS = 3 * 86_400_000


def balances_changed(exchange: str, account: str, balance: OkxBalance) -> BalancesChanged:
    """An ``account`` push or ``GET /api/v5/account/balance`` as our BalancesChanged (symbol ``*``)."""
    now = now_ns()
    free = {d.ccy: dec(d.availBal or d.cashBal, "availBal") for d in balance.details}
    locked = {d.ccy: dec(d.frozenBal, "frozenBal") for d in balance.details}
    return BalancesChanged(
        exchange=exchange, symbol="*", ts_event=ms(balance.uTime) * NS_PER_MS or now, ts_recv=now,
        account=account, free=free, locked=locked,
    )  # fmt: skip


class OkxVenueQueries:
    """REST queries about ``inst_id`` (ours: ``symbol``) of ``account``, through ``client``."""

    def __init__(
        self,
        client: Callable[[], Awaitable[OkxHttpClient]],
        *,
        exchange: str,
        symbol: str,
        inst_id: str,
        account: str,
    ) -> None:
        self.client = client
        self.exchange, self.symbol, self.inst_id, self.account = exchange, symbol, inst_id, account

    async def open_orders(self) -> list[OkxVenueOrder]:
        """Every open order and open algo (stop) order of this instrument at OKX."""
        client = await self.client()
        orders = [OkxVenueOrder.from_order(o, self.symbol) for o in await client.pending_orders(self.inst_id)]
        # A triggered stop's order carries its algo's id: the algo is the order the daemon knows.
        algos = [OkxVenueOrder.from_algo(a, self.symbol) for a in await client.algos_pending(self.inst_id)]
        return orders + algos

    async def cancel_foreign(self, client_order_id: str) -> None:
        """Cancel an open order (or algo order) of this instrument that the daemon did not send."""
        client = await self.client()
        for order in await self.open_orders():
            if order.client_order_id != client_order_id:
                continue
            if order.venue_type == "conditional":
                await client.cancel_algos([(self.inst_id, order.venue_order_id)])
            else:
                await client.cancel_order(self.inst_id, ord_id=order.venue_order_id)
            return

    async def order_status(self, client_order_id: str) -> OkxVenueOrder | None:
        """OKX's view of one order, ``None`` if it knows no order (nor algo order) by that id."""
        client = await self.client()
        okx = okx_client_id(client_order_id)
        try:
            return OkxVenueOrder.from_order(
                await client.order_details(self.inst_id, cl_ord_id=okx), self.symbol
            )
        except OkxUnknownOrder:
            pass
        try:
            return OkxVenueOrder.from_algo(await client.algo_details(algo_cl_ord_id=okx), self.symbol)
        except OkxUnknownOrder:
            return None

    async def recent_fills(self, since_ms: int) -> list[OrderFilled]:
        """Our fills of this instrument since ``since_ms`` (OKX's clock), oldest first, with cum/leaves
        per order (fills-history beyond the last 3 days)."""
        client = await self.client()
        history = client.now_ms() - since_ms > FILLS_DAYS_MS - 3_600_000
        fills = sorted(
            await client.fills(self.inst_id, begin_ms=since_ms, history=history),
            key=lambda f: (ms(f.fillTime) or ms(f.ts), f.tradeId),
        )
        orders: dict[str, tuple[OkxOrder, list[OkxFill]]] = {}
        out: list[OrderFilled] = []
        for f in fills:
            if f.ordId not in orders:
                order = await client.order_details(self.inst_id, ord_id=f.ordId)
                every = await client.fills(self.inst_id, ord_id=f.ordId, history=history)
                orders[f.ordId] = (
                    order,
                    sorted(every, key=lambda h: (ms(h.fillTime) or ms(h.ts), h.tradeId)),
                )
            order, every = orders[f.ordId]
            done = every[: next((i + 1 for i, h in enumerate(every) if h.tradeId == f.tradeId), len(every))]
            cum = sum((dec(h.fillSz, "fillSz") for h in done), ZERO)
            out.append(self._filled(f, order, cum))
        return out

    def _filled(self, f: OkxFill, order: OkxOrder, cum: Decimal) -> OrderFilled:
        return OrderFilled(
            exchange=self.exchange,
            symbol=self.symbol,
            ts_event=(ms(f.fillTime) or ms(f.ts)) * NS_PER_MS,
            ts_recv=now_ns(),
            client_order_id=our_client_id(order.clOrdId or order.algoClOrdId) or order.ordId,
            venue_order_id=order.algoId or f.ordId,
            trade_id=f.tradeId,
            side="buy" if f.side == "buy" else "sell",
            last_qty=dec(f.fillSz, "fillSz"),
            last_price=dec(f.fillPx, "fillPx"),
            cum_qty=cum,
            leaves_qty=max(dec(order.sz, "sz") - cum, ZERO),
            fee=-dec(f.fee, "fee", allow_negative=True),
            fee_asset=f.feeCcy,
            liquidity="maker" if f.execType == "M" else "taker",
        )

    async def balances(self) -> BalancesChanged:
        """The account's balances (``GET /api/v5/account/balance``)."""
        client = await self.client()
        return balances_changed(self.exchange, self.account, await client.balance())
