"""OKX v5 trading wire Structs (REST replies and private WebSocket pushes), field names verbatim.

Tolerant like the public schemas (OKX adds fields: unknown ones are ignored).  Numbers stay the
strings OKX sends, many of them ``""`` when not applicable (``px`` of a market order, ``fillPx``
of a push that is not a fill); :func:`dec` turns one into an exact ``Decimal`` or refuses it.

- Every REST reply: ``{"code": "0", "msg": "", "data": [...]}`` (:class:`OkxEnvelope`).
- ``POST /api/v5/trade/order``, ``cancel-order``, ``amend-order``: :class:`OkxOrderAck` per order,
  ``sCode`` / ``sMsg`` its own verdict; the private WebSocket's ``order`` / ``cancel-order`` /
  ``amend-order`` ops answer the same items.
- ``GET /api/v5/trade/order``, ``orders-pending`` and the ``orders`` channel: :class:`OkxOrder`
  (a push that is a fill carries ``tradeId``, ``fillPx``, ``fillSz``, ``fillFee`` -- negative when
  charged -- ``fillFeeCcy`` and ``execType`` ``T`` taker / ``M`` maker).
- ``GET /api/v5/trade/fills`` / ``fills-history``: :class:`OkxFill`.
- ``GET /api/v5/account/balance`` and the ``account`` channel: :class:`OkxBalance`.
- ``POST /api/v5/trade/order-algo``, ``cancel-algos``: :class:`OkxAlgoAck`; ``GET
  /api/v5/trade/order-algo``, ``orders-algo-pending``: :class:`OkxAlgoOrder`.
- ``GET /api/v5/public/time``: :class:`OkxServerTime`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import msgspec

from adapters.okx.errors import OkxBadReply

__all__ = [
    "OkxAlgoAck",
    "OkxAlgoOrder",
    "OkxBalance",
    "OkxBalanceDetail",
    "OkxEnvelope",
    "OkxFill",
    "OkxOrder",
    "OkxOrderAck",
    "OkxServerTime",
    "dec",
    "ms",
]

ZERO = Decimal(0)


class OkxEnvelope(msgspec.Struct, frozen=True):
    code: str
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"[]")


class OkxOrderAck(msgspec.Struct, frozen=True):
    clOrdId: str = ""
    ordId: str = ""
    sCode: str = "0"
    sMsg: str = ""
    ts: str = ""
    tag: str = ""
    reqId: str = ""


class OkxOrder(msgspec.Struct, frozen=True):
    instId: str
    ordId: str
    side: str
    ordType: str
    state: str  # live, partially_filled, filled, canceled, mmp_canceled
    sz: str
    clOrdId: str = ""
    px: str = ""
    accFillSz: str = "0"
    avgPx: str = ""
    tgtCcy: str = ""
    tradeId: str = ""
    fillPx: str = ""
    fillSz: str = ""
    fillFee: str = ""
    fillFeeCcy: str = ""
    fillTime: str = ""
    execType: str = ""
    fee: str = ""
    feeCcy: str = ""
    cTime: str = ""
    uTime: str = ""
    algoId: str = ""
    algoClOrdId: str = ""
    cancelSource: str = ""
    amendResult: str = ""
    reqId: str = ""
    code: str = ""
    msg: str = ""


class OkxFill(msgspec.Struct, frozen=True):
    instId: str
    tradeId: str
    ordId: str
    fillPx: str
    fillSz: str
    side: str
    clOrdId: str = ""
    billId: str = ""
    execType: str = ""
    fee: str = "0"
    feeCcy: str = ""
    ts: str = ""
    fillTime: str = ""


class OkxBalanceDetail(msgspec.Struct, frozen=True):
    ccy: str
    cashBal: str = ""
    availBal: str = ""
    frozenBal: str = ""
    eq: str = ""
    uTime: str = ""


class OkxBalance(msgspec.Struct, frozen=True):
    details: list[OkxBalanceDetail] = []
    uTime: str = ""
    totalEq: str = ""


class OkxAlgoAck(msgspec.Struct, frozen=True):
    algoId: str = ""
    algoClOrdId: str = ""
    clOrdId: str = ""
    sCode: str = "0"
    sMsg: str = ""


class OkxAlgoOrder(msgspec.Struct, frozen=True):
    algoId: str
    instId: str
    side: str
    ordType: str  # conditional, oco, trigger, move_order_stop ...
    state: str  # live, pause, partially_effective, effective, canceled, order_failed
    sz: str
    algoClOrdId: str = ""
    slTriggerPx: str = ""
    slOrdPx: str = ""
    tpTriggerPx: str = ""
    tpOrdPx: str = ""
    ordId: str = ""  # the order it placed when it triggered
    ordIdList: list[str] = []
    actualSz: str = ""
    actualPx: str = ""
    cTime: str = ""
    uTime: str = ""
    triggerTime: str = ""


class OkxServerTime(msgspec.Struct, frozen=True):
    ts: str


def dec(text: str, name: str, *, empty: Decimal | None = ZERO, allow_negative: bool = False) -> Decimal:
    """``text`` as an exact decimal; ``""`` is ``empty`` (refused when ``None``); NaN, infinities,
    garbage and (unless ``allow_negative``) negative numbers raise :class:`OkxBadReply`."""
    if text == "":
        if empty is None:
            raise OkxBadReply(f"{name} is empty")
        return empty
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise OkxBadReply(f"{name} {text!r} is not a decimal") from None
    if not value.is_finite() or (value < 0 and not allow_negative):
        raise OkxBadReply(
            f"{name} {text!r} is not a finite{'' if allow_negative else ' non-negative'} number"
        )
    return value


def ms(text: str) -> int:
    """A millisecond timestamp string (``"1597026383085"``); ``""`` or garbage: 0."""
    return int(text) if text.isdigit() else 0
