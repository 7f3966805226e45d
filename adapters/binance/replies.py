"""Wire replies of the Binance spot REST endpoints used by :mod:`adapters.binance.http`.

msgspec Structs with the venue's field names verbatim; unknown fields are ignored and optional
ones default, so ACK-style and fuller replies decode into the same Struct.  The depth snapshot and
exchangeInfo replies are shared with market data and live in :mod:`adapters.binance.schemas`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

ZERO = Decimal(0)


class BinanceFill(msgspec.Struct, frozen=True):
    price: Decimal
    qty: Decimal
    commission: Decimal = ZERO
    commissionAsset: str = ""
    tradeId: int = 0


class BinanceOrderReply(msgspec.Struct, frozen=True):
    """New order (FULL), query, cancel and open-order replies; ACK replies leave the rest default."""

    symbol: str
    orderId: int
    clientOrderId: str
    origClientOrderId: str = ""
    status: str = ""
    side: str = ""
    type: str = ""
    timeInForce: str = ""
    price: Decimal = ZERO
    stopPrice: Decimal = ZERO
    origQty: Decimal = ZERO
    executedQty: Decimal = ZERO
    cummulativeQuoteQty: Decimal = ZERO
    transactTime: int = 0
    updateTime: int = 0
    fills: list[BinanceFill] = []


class BinanceCancelReplaceReply(msgspec.Struct, frozen=True):
    cancelResult: str
    newOrderResult: str
    cancelResponse: BinanceOrderReply | None = None
    newOrderResponse: BinanceOrderReply | None = None


class BinanceOrderListOrder(msgspec.Struct, frozen=True):
    symbol: str
    orderId: int
    clientOrderId: str


class BinanceOrderListReply(msgspec.Struct, frozen=True):
    """``POST /api/v3/orderList/oco`` and ``DELETE /api/v3/orderList``: the list and one report per leg."""

    orderListId: int
    contingencyType: str
    listStatusType: str
    listOrderStatus: str
    listClientOrderId: str
    symbol: str
    transactionTime: int = 0
    orders: list[BinanceOrderListOrder] = []
    orderReports: list[BinanceOrderReply] = []


class BinanceBalance(msgspec.Struct, frozen=True):
    asset: str
    free: Decimal
    locked: Decimal


class BinanceAccount(msgspec.Struct, frozen=True):
    balances: list[BinanceBalance]
    canTrade: bool = True
    updateTime: int = 0


class BinanceAccountTrade(msgspec.Struct, frozen=True):
    """One of our own executions (``GET /api/v3/myTrades``)."""

    symbol: str
    id: int
    orderId: int
    price: Decimal
    qty: Decimal
    commission: Decimal = ZERO
    commissionAsset: str = ""
    time: int = 0
    isBuyer: bool = False
    isMaker: bool = False


class BinanceServerTime(msgspec.Struct, frozen=True):
    """``GET /api/v3/time``."""

    serverTime: int


class BinanceErrorBody(msgspec.Struct, frozen=True):
    """The body of a non-2xx reply: Binance's error code and message."""

    code: int
    msg: str = ""
    data: dict[str, Any] | None = None
