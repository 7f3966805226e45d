"""Our orders in OKX's terms, and OKX's orders in ours.

- Client ids: ours are ``td-`` + 29 base32 characters (:mod:`actors.order_ids`); OKX's ``clOrdId``
  and ``algoClOrdId`` are at most 32 letters and digits, so the dash is dropped
  (:func:`okx_client_id`) and put back (:func:`our_client_id`).  Deterministic both ways: a
  re-sent intent carries the same ``clOrdId`` and OKX refuses it (51016 duplicated clOrdId).
- :func:`map_order`: market -> ``market`` (``tgtCcy`` ``base_ccy``: the size is in the base
  currency, not OKX's default quote currency for a spot market buy); limit -> ``limit``
  (``post_only`` when post-only, ``ioc`` / ``fok`` by time in force); stop_market / stop_limit ->
  an algo order ``conditional`` (POST /api/v5/trade/order-algo) whose stop-loss side
  (``slTriggerPx``) or take-profit side (``tpTriggerPx``) is chosen as Binance's STOP_LOSS /
  TAKE_PROFIT are: a sell stop at or below the last price loses, one above takes profit (a buy
  mirrored); the order price is ``-1`` (market) or the stop-limit's price; ``tdMode`` ``cash``.
- :class:`OkxVenueOrder`: one order (or algo order) as OKX reports it, for reconciliation.
"""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec

from actors.messages import Side, SubmitOrder
from adapters.okx.replies import OkxAlgoOrder, OkxOrder, dec, ms

__all__ = [
    "OkxNewAlgo",
    "OkxNewOrder",
    "OkxVenueOrder",
    "is_stop_loss",
    "map_order",
    "okx_client_id",
    "our_client_id",
    "wire",
]

_OKX_ID = re.compile(r"[A-Za-z0-9]{1,32}").fullmatch
_OURS = re.compile(r"td[a-z2-7]{29}").fullmatch
ZERO = Decimal(0)


def okx_client_id(cid: str) -> str:
    """Our client order id as OKX's ``clOrdId`` (ValueError when it cannot be one)."""
    okx = cid.replace("-", "") if cid.startswith("td-") else cid
    if not _OKX_ID(okx):
        raise ValueError(f"client order id {cid!r} cannot be an OKX clOrdId (1..32 letters and digits)")
    return okx


def our_client_id(cl_ord_id: str) -> str:
    """OKX's ``clOrdId`` as our client order id (another tool's id stays as it is)."""
    return f"td-{cl_ord_id[2:]}" if _OURS(cl_ord_id) else cl_ord_id


def wire(value: Decimal) -> str:
    """A decimal as OKX takes it: plain digits, never an exponent."""
    return format(value, "f")


class OkxNewOrder(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``POST /api/v5/trade/order`` (and of the WebSocket ``order`` op's arg)."""

    instId: str
    tdMode: str = "cash"
    side: str
    ordType: str
    sz: str
    clOrdId: str
    px: str = ""
    tgtCcy: str = ""

    def body(self) -> dict[str, str]:
        """The JSON body: the fields that are set (OKX takes an absent field, not an empty one)."""
        return _set_fields(self)


class OkxNewAlgo(msgspec.Struct, frozen=True, kw_only=True):
    """The body of ``POST /api/v5/trade/order-algo`` for a ``conditional`` (TP or SL) order."""

    instId: str
    tdMode: str = "cash"
    side: str
    ordType: str = "conditional"
    sz: str
    algoClOrdId: str
    slTriggerPx: str = ""
    slOrdPx: str = ""
    slTriggerPxType: str = ""
    tpTriggerPx: str = ""
    tpOrdPx: str = ""
    tpTriggerPxType: str = ""
    tgtCcy: str = ""

    def body(self) -> dict[str, str]:
        return _set_fields(self)


def _set_fields(order: msgspec.Struct) -> dict[str, str]:
    return {k: v for k, v in msgspec.structs.asdict(order).items() if v != ""}


def is_stop_loss(side: Side, stop: Decimal | None, last: Decimal | None) -> bool:
    """A sell stop below the market (a buy stop above it) is a stop-loss; the other side takes profit."""
    if stop is None or last is None:
        return True
    return stop <= last if side == "sell" else stop >= last


def map_order(msg: SubmitOrder, inst_id: str, last_price: Decimal | None) -> OkxNewOrder | OkxNewAlgo:
    """Our order as OKX's request body (see the module docstring); ValueError for a bad id."""
    cid = okx_client_id(msg.client_order_id)
    sz = wire(msg.quantity)
    if msg.order_type in ("stop_market", "stop_limit"):
        assert msg.stop_price is not None
        trigger = wire(msg.stop_price)
        px = "-1" if msg.order_type == "stop_market" or msg.price is None else wire(msg.price)
        if is_stop_loss(msg.side, msg.stop_price, last_price):
            return OkxNewAlgo(
                instId=inst_id,
                side=msg.side,
                sz=sz,
                algoClOrdId=cid,
                slTriggerPx=trigger,
                slOrdPx=px,
                slTriggerPxType="last",
                tgtCcy="base_ccy",
            )
        return OkxNewAlgo(
            instId=inst_id,
            side=msg.side,
            sz=sz,
            algoClOrdId=cid,
            tpTriggerPx=trigger,
            tpOrdPx=px,
            tpTriggerPxType="last",
            tgtCcy="base_ccy",
        )
    if msg.order_type == "market":
        return OkxNewOrder(
            instId=inst_id, side=msg.side, ordType="market", sz=sz, clOrdId=cid, tgtCcy="base_ccy"
        )
    assert msg.price is not None
    kind = "post_only" if msg.post_only else {"gtc": "limit", "ioc": "ioc", "fok": "fok"}[msg.time_in_force]
    return OkxNewOrder(instId=inst_id, side=msg.side, ordType=kind, sz=sz, clOrdId=cid, px=wire(msg.price))


class OkxVenueOrder(msgspec.Struct, frozen=True):
    """One order as OKX reports it (reconciliation); an algo order's venue id is its ``algoId``."""

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
    def from_order(cls, o: OkxOrder, symbol: str) -> OkxVenueOrder:
        tif = {"ioc": "IOC", "fok": "FOK"}.get(o.ordType, "GTC")
        return cls(
            client_order_id=our_client_id(o.clOrdId or o.algoClOrdId) or o.ordId,
            venue_order_id=o.ordId,
            symbol=symbol,
            side="buy" if o.side == "buy" else "sell",
            venue_type=o.ordType,
            status=o.state,
            quantity=dec(o.sz, "sz"),
            filled=dec(o.accFillSz, "accFillSz"),
            price=dec(o.px, "px"),
            stop_price=ZERO,
            time_in_force=tif,
            update_ms=ms(o.uTime) or ms(o.cTime),
        )

    @classmethod
    def from_algo(cls, a: OkxAlgoOrder, symbol: str) -> OkxVenueOrder:
        trigger = a.slTriggerPx or a.tpTriggerPx
        px = a.slOrdPx or a.tpOrdPx
        return cls(
            client_order_id=our_client_id(a.algoClOrdId) or a.algoId,
            venue_order_id=a.algoId,
            symbol=symbol,
            side="buy" if a.side == "buy" else "sell",
            venue_type=a.ordType,
            status=a.state,
            quantity=dec(a.sz, "sz"),
            filled=ZERO,
            price=ZERO if px in ("", "-1") else dec(px, "ordPx"),
            stop_price=dec(trigger, "triggerPx"),
            time_in_force="GTC",
            update_ms=ms(a.uTime) or ms(a.cTime),
        )
