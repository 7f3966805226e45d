"""OKX spot instrument rules from ``GET /api/v5/public/instruments?instType=SPOT``, and orders checked
against them before they leave.

Each instrument carries ``tickSz`` (price increment), ``lotSz`` (size increment), ``minSz``
(smallest order size), ``maxMktSz`` / ``maxLmtSz`` (largest market / limit order) and ``state``
(``live``; ``suspend``, ``preopen``, ``test``: no orders).  OKX documents that a spot market BUY's
``sz`` is in the quote currency by default (``tgtCcy`` ``quote_ccy``) and ``maxMktSz`` is then in
USDT: :meth:`OkxRules.prepare` compares a market buy's notional (size x the reference price) with
it when a reference price is given.

:meth:`OkxRules.prepare` rounds (the price to the tick: a buy down, a sell up, never to a worse
price than asked; the size down to the lot, never up) and returns an :class:`OkxOrderCheck`, or a
:class:`Refusal` naming the rule (``state``, ``tickSz``, ``lotSz``, ``minSz``, ``maxMktSz``,
``maxLmtSz``, ``price``) and why.  :meth:`OkxRules.check` refuses what is not already exact (what
OKX itself does: 51121 "order quantity must be a multiple of the lot size" and the like).
Numbers stay exact decimals throughout.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Literal

import msgspec

from adapters.okx.data import to_symbol
from adapters.okx.schemas import INSTRUMENTS_DECODER, OkxInstrument

__all__ = ["OkxOrderCheck", "OkxRestError", "OkxRules", "Refusal", "parse_instruments"]

OrderSide = Literal["buy", "sell"]
OrdType = Literal["market", "limit"]


class OkxRestError(Exception):
    """An OKX REST reply with a ``code`` other than ``"0"``, or one that does not decode."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"OKX {code}: {msg}")
        self.code, self.msg = code, msg


class Refusal(msgspec.Struct, frozen=True):
    rule: str  # the OKX field that refuses: tickSz, lotSz, minSz, maxMktSz, maxLmtSz, state, price
    reason: str


class OkxOrderCheck(msgspec.Struct, frozen=True):
    """An order rounded to the instrument and within its rules, ready for the wire."""

    inst_id: str
    side: OrderSide
    ord_type: OrdType
    size: Decimal
    price: Decimal | None = None


def _dec(text: str, name: str, inst: str, *, optional: bool = False) -> Decimal | None:
    if optional and text == "":
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise OkxRestError("bad_reply", f"{inst} {name} {text!r} is not a decimal") from None
    if not value.is_finite() or value <= 0:
        raise OkxRestError("bad_reply", f"{inst} {name} {text!r} must be > 0")
    return value


def _n(value: Decimal | None) -> str:
    """A number as a person reads it: plain digits, no exponent, no trailing zeros."""
    return "None" if value is None else format(value.normalize(), "f") if value.is_finite() else str(value)


def _steps(value: Decimal, step: Decimal, rounding: str) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=rounding) * step


class OkxRules(msgspec.Struct, frozen=True, kw_only=True):
    inst_id: str
    symbol: str
    base: str
    quote: str
    tick_sz: Decimal
    lot_sz: Decimal
    min_sz: Decimal
    max_mkt_sz: Decimal | None = None
    max_lmt_sz: Decimal | None = None
    state: str = "live"

    @classmethod
    def from_instrument(cls, inst: OkxInstrument) -> OkxRules:
        i = inst.instId
        tick, lot, min_sz = (
            _dec(v, n, i) for n, v in (("tickSz", inst.tickSz), ("lotSz", inst.lotSz), ("minSz", inst.minSz))
        )
        assert tick is not None and lot is not None and min_sz is not None
        return cls(
            inst_id=i,
            symbol=to_symbol(i),
            base=inst.baseCcy,
            quote=inst.quoteCcy,
            tick_sz=tick,
            lot_sz=lot,
            min_sz=min_sz,
            max_mkt_sz=_dec(inst.maxMktSz, "maxMktSz", i, optional=True),
            max_lmt_sz=_dec(inst.maxLmtSz, "maxLmtSz", i, optional=True),
            state=inst.state,
        )

    def prepare(
        self,
        side: OrderSide,
        ord_type: OrdType,
        size: Decimal,
        price: Decimal | None = None,
        ref_price: Decimal | None = None,
    ) -> OkxOrderCheck | Refusal:
        """Round ``price`` to the tick (a buy down, a sell up) and ``size`` down to the lot, then check."""
        if not size.is_finite() or size <= 0:
            return Refusal("lotSz", f"size {_n(size)} must be a positive number")
        rounded = _steps(size, self.lot_sz, ROUND_DOWN)
        if price is not None and price.is_finite() and price > 0:
            price = _steps(price, self.tick_sz, ROUND_FLOOR if side == "buy" else ROUND_CEILING)
        return self.check(side, ord_type, rounded, price, ref_price)

    def check(
        self,
        side: OrderSide,
        ord_type: OrdType,
        size: Decimal,
        price: Decimal | None = None,
        ref_price: Decimal | None = None,
    ) -> OkxOrderCheck | Refusal:
        """The order as it is, or the first rule it breaks (nothing is rounded)."""
        if self.state != "live":
            return Refusal("state", f"{self.inst_id} is {self.state}: OKX takes no orders for it")
        if not size.is_finite() or size <= 0:
            return Refusal("lotSz", f"size {_n(size)} must be a positive number")
        if size % self.lot_sz:
            return Refusal("lotSz", f"size {_n(size)} is not a multiple of lotSz {_n(self.lot_sz)}")
        if size < self.min_sz:
            return Refusal("minSz", f"size {_n(size)} is below minSz {_n(self.min_sz)}")
        if ord_type == "limit":
            return self._check_limit(side, size, price)
        return self._check_market(side, size, ref_price)

    def _check_limit(self, side: OrderSide, size: Decimal, price: Decimal | None) -> OkxOrderCheck | Refusal:
        if price is None or not price.is_finite() or price <= 0:
            return Refusal("price", f"a limit order needs a positive price, got {_n(price)}")
        if price % self.tick_sz:
            return Refusal("tickSz", f"price {_n(price)} is not a multiple of tickSz {_n(self.tick_sz)}")
        if self.max_lmt_sz is not None and size > self.max_lmt_sz:
            return Refusal("maxLmtSz", f"size {_n(size)} is above maxLmtSz {_n(self.max_lmt_sz)}")
        return OkxOrderCheck(inst_id=self.inst_id, side=side, ord_type="limit", size=size, price=price)

    def _check_market(self, side: OrderSide, size: Decimal, ref: Decimal | None) -> OkxOrderCheck | Refusal:
        cap = self.max_mkt_sz
        if cap is not None and side == "sell" and size > cap:
            return Refusal("maxMktSz", f"size {_n(size)} is above maxMktSz {_n(cap)}")
        if cap is not None and side == "buy" and ref is not None and size * ref > cap:
            notional = size * ref
            return Refusal(
                "maxMktSz", f"notional {_n(notional)} {self.quote} is above maxMktSz {_n(cap)} {self.quote}"
            )
        return OkxOrderCheck(inst_id=self.inst_id, side=side, ord_type="market", size=size)


def parse_instruments(raw: bytes | str) -> dict[str, OkxRules]:
    """instId -> rules of a ``/api/v5/public/instruments`` reply; a reply with ``code`` != 0 raises."""
    try:
        reply = INSTRUMENTS_DECODER.decode(raw)
    except msgspec.DecodeError as exc:
        raise OkxRestError("bad_reply", f"instruments reply does not decode: {exc}") from None
    if reply.code != "0":
        raise OkxRestError(reply.code, reply.msg)
    return {i.instId: OkxRules.from_instrument(i) for i in reply.data}
