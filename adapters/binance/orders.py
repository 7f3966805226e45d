"""Our orders in Binance's terms, and Binance's orders in ours.

:func:`map_order` turns a ``SubmitOrder`` into ``POST /api/v3/order`` parameters: market ->
MARKET, limit -> LIMIT (GTC/IOC/FOK; a post-only GTC limit, or every GTC limit with the account's
``limit_maker``, as LIMIT_MAKER), stop_market ->
STOP_LOSS or TAKE_PROFIT, stop_limit -> STOP_LOSS_LIMIT or TAKE_PROFIT_LIMIT (a stop that
triggers when price moves against the side, compared with the last price, is a stop-loss;
otherwise a take-profit).  :func:`stop_loss_as_limit` rests a STOP_LOSS as STOP_LOSS_LIMIT where the
symbol allows only that (its limit a protection band beyond the trigger).  :class:`VenueOrder`
is one order as the venue reports it (reconciliation).
"""

from __future__ import annotations

from collections.abc import Set
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from actors.messages import Side, SubmitOrder
from adapters.binance.filters import BinanceNewOrder, BinanceOrderType, BinanceSide, BinanceTimeInForce
from adapters.binance.replies import BinanceOrderReply

_TIF: dict[str, BinanceTimeInForce] = {"gtc": "GTC", "ioc": "IOC", "fok": "FOK"}


def map_order(
    msg: SubmitOrder, venue_symbol: str, last_price: Decimal | None, *, limit_maker: bool = False
) -> BinanceNewOrder:
    """Our order as Binance's ``POST /api/v3/order`` parameters (see the module docstring)."""
    side: BinanceSide = "BUY" if msg.side == "buy" else "SELL"
    kind: BinanceOrderType
    price = stop = None
    tif: BinanceTimeInForce | None = None
    if msg.order_type == "market":
        kind = "MARKET"
    elif msg.order_type == "limit":
        price = msg.price
        if (limit_maker or msg.post_only) and msg.time_in_force == "gtc":
            kind = "LIMIT_MAKER"
        else:
            kind, tif = "LIMIT", _TIF[msg.time_in_force]
    else:
        stop = msg.stop_price
        loss = _is_stop_loss(msg.side, stop, last_price)
        if msg.order_type == "stop_market":
            kind = "STOP_LOSS" if loss else "TAKE_PROFIT"
        else:
            kind = "STOP_LOSS_LIMIT" if loss else "TAKE_PROFIT_LIMIT"
            price, tif = msg.price, _TIF[msg.time_in_force]
    return BinanceNewOrder(
        symbol=venue_symbol,
        side=side,
        type=kind,
        quantity=msg.quantity,
        newClientOrderId=msg.client_order_id,
        price=price,
        stopPrice=stop,
        timeInForce=tif,
    )


def stop_loss_as_limit(
    order: BinanceNewOrder, order_types: Set[str], tick: Decimal, offset_pct: Decimal
) -> BinanceNewOrder:
    """``order`` unchanged unless it is a STOP_LOSS on a symbol whose ``order_types`` lack STOP_LOSS
    but have STOP_LOSS_LIMIT: then a GTC STOP_LOSS_LIMIT with the same trigger and its limit
    ``offset_pct`` percent beyond it on the losing side (a sell below, a buy above), rounded to
    ``tick`` away from the trigger, so it still fills when price moves fast through the trigger."""
    if order.type != "STOP_LOSS" or order.stopPrice is None:
        return order
    if "STOP_LOSS" in order_types or "STOP_LOSS_LIMIT" not in order_types:
        return order
    band = order.stopPrice * offset_pct / Decimal(100)
    sell = order.side == "SELL"
    limit = order.stopPrice - band if sell else order.stopPrice + band
    if tick > 0:
        rounding = ROUND_FLOOR if sell else ROUND_CEILING
        limit = (limit / tick).quantize(Decimal(1), rounding=rounding) * tick
        if sell and limit <= 0:
            limit = tick
    return msgspec.structs.replace(order, type="STOP_LOSS_LIMIT", price=limit, timeInForce="GTC")


def _is_stop_loss(side: Side, stop: Decimal | None, last: Decimal | None) -> bool:
    """A sell stop below the market (a buy stop above it) is a stop-loss; the other side takes profit."""
    if stop is None or last is None:
        return True
    return stop <= last if side == "sell" else stop >= last


class BinanceNewOco(msgspec.Struct, frozen=True, kw_only=True):
    """A one-cancels-the-other pair for ``POST /api/v3/orderList/oco``: the leg above the market and
    the leg below it (a sell: take-profit above -- LIMIT_MAKER, TAKE_PROFIT(_LIMIT) --, stop-loss
    below -- STOP_LOSS(_LIMIT); a buy the other way round), the same quantity each."""

    symbol: str
    side: BinanceSide
    quantity: Decimal
    listClientOrderId: str
    aboveType: str
    belowType: str
    aboveClientOrderId: str | None = None
    abovePrice: Decimal | None = None
    aboveStopPrice: Decimal | None = None
    aboveTimeInForce: BinanceTimeInForce | None = None
    belowClientOrderId: str | None = None
    belowPrice: Decimal | None = None
    belowStopPrice: Decimal | None = None
    belowTimeInForce: BinanceTimeInForce | None = None


class VenueOrder(msgspec.Struct, frozen=True):
    """One order as the venue reports it (reconciliation)."""

    client_order_id: str
    venue_order_id: str
    symbol: str
    side: Side
    venue_type: str
    status: str
    quantity: Decimal
    filled: Decimal
    price: Decimal
    stop_price: Decimal
    time_in_force: str
    update_ms: int

    @classmethod
    def from_reply(cls, reply: BinanceOrderReply, symbol: str) -> VenueOrder:
        return cls(
            client_order_id=reply.clientOrderId,
            venue_order_id=str(reply.orderId),
            symbol=symbol,
            side="buy" if reply.side == "BUY" else "sell",
            venue_type=reply.type,
            status=reply.status,
            quantity=reply.origQty,
            filled=reply.executedQty,
            price=reply.price,
            stop_price=reply.stopPrice,
            time_in_force=reply.timeInForce,
            update_ms=reply.updateTime or reply.transactTime,
        )
