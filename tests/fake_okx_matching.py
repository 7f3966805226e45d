"""The fake OKX's account: orders, algo orders, fills and balances, matched as OKX spot does.

Pure state, no networking: :class:`tests.fake_okx_venue.FakeOkxVenue` calls it and pushes the
``orders`` / ``account`` events it queues (:attr:`OkxBook.events`) on the private WebSocket.

- Instruments and their rules (``tickSz``, ``lotSz``, ``minSz``, ``state``) come from the captured
  ``/api/v5/public/instruments`` reply (tests/data/okx/OKX.0.spot).
- Orders (``tdMode`` ``cash``): ``market`` fills at once at the instrument's last price (a buy's
  ``sz`` in the base currency with ``tgtCcy`` ``base_ccy``, else in the quote currency, OKX's
  default); ``limit`` rests unless it crosses the last price (then it takes liquidity at that
  price); ``post_only`` that would cross is canceled; ``ioc`` / ``fok`` take what crosses (``fok``
  all or nothing) and the rest is canceled.  A resting order freezes its funds; an order the
  balance does not cover is refused (51008), as is a ``clOrdId`` already used (51016), a size
  that is not a multiple of ``lotSz`` (51121) or below ``minSz`` (51020), a price off the tick.
- :meth:`OkxBook.trade` is a market trade: resting limits it reaches fill as maker at their price
  (up to its size), ``conditional`` algo orders whose trigger it reaches place their order
  (``algoId`` / ``algoClOrdId`` set, ``clOrdId`` empty) and that order executes.
- Fees: ``maker_fee`` / ``taker_fee`` of what is received (a buy pays in the base currency, a sell
  in the quote), reported negative (charged) as OKX does.  Every fill gets a ``tradeId`` (per
  instrument) and a ``billId``.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from tests.okx_capture import instruments_reply

ZERO = Decimal(0)
OPEN = ("live", "partially_filled")


class OkxReject(Exception):
    """An order refused with this ``sCode`` / ``sMsg``."""

    def __init__(self, code: str, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg = code, msg


def _d(value: Decimal) -> str:
    return format(value.normalize(), "f") if value else "0"


def _now() -> int:
    return int(time.time() * 1000)


@dataclass
class FakeOrder:
    ord_id: str
    cl_ord_id: str
    inst: str
    side: str
    ord_type: str
    sz: Decimal  # in the base currency
    px: Decimal | None
    tgt_ccy: str = ""
    state: str = "live"
    filled: Decimal = ZERO
    notional: Decimal = ZERO  # quote spent/received
    fee: Decimal = ZERO  # accumulated, negative = charged
    fee_ccy: str = ""
    frozen: Decimal = ZERO  # what it still holds frozen (quote for a buy, base for a sell)
    algo_id: str = ""
    algo_cl_ord_id: str = ""
    c_time: int = field(default_factory=_now)
    u_time: int = field(default_factory=_now)
    cancel_source: str = ""

    def okx(self, fill: dict[str, str] | None = None) -> dict[str, Any]:
        """The order as OKX shows it (``GET /api/v5/trade/order``, the ``orders`` channel)."""
        avg = self.notional / self.filled if self.filled else ZERO
        fill = fill or {}
        return {
            "instType": "SPOT",
            "instId": self.inst,
            "ordId": self.ord_id,
            "clOrdId": self.cl_ord_id,
            "tag": "",
            "px": _d(self.px) if self.px is not None else "",
            "sz": _d(self.sz),
            "ordType": self.ord_type,
            "side": self.side,
            "posSide": "net",
            "tdMode": "cash",
            "tgtCcy": self.tgt_ccy,
            "accFillSz": _d(self.filled),
            "avgPx": _d(avg) if self.filled else "",
            "state": self.state,
            "fee": _d(self.fee),
            "feeCcy": self.fee_ccy,
            "tradeId": fill.get("tradeId", ""),
            "fillPx": fill.get("fillPx", ""),
            "fillSz": fill.get("fillSz", "0"),
            "fillTime": fill.get("fillTime", ""),
            "fillFee": fill.get("fee", "0"),
            "fillFeeCcy": fill.get("feeCcy", ""),
            "execType": fill.get("execType", ""),
            "algoId": self.algo_id,
            "algoClOrdId": self.algo_cl_ord_id,
            "cancelSource": self.cancel_source,
            "reduceOnly": "false",
            "lever": "",
            "category": "normal",
            "cTime": str(self.c_time),
            "uTime": str(self.u_time),
            "amendResult": "",
            "code": "0",
            "msg": "",
            "someFieldOkxAddsLater": {"nested": [1, 2]},
        }


@dataclass
class FakeAlgo:
    algo_id: str
    algo_cl_ord_id: str
    inst: str
    side: str
    sz: Decimal
    sl_trigger: Decimal | None
    sl_px: str
    tp_trigger: Decimal | None
    tp_px: str
    state: str = "live"
    ord_id: str = ""
    c_time: int = field(default_factory=_now)
    u_time: int = field(default_factory=_now)

    def okx(self) -> dict[str, Any]:
        return {
            "instType": "SPOT",
            "instId": self.inst,
            "algoId": self.algo_id,
            "algoClOrdId": self.algo_cl_ord_id,
            "ordType": "conditional",
            "side": self.side,
            "tdMode": "cash",
            "sz": _d(self.sz),
            "state": self.state,
            "slTriggerPx": _d(self.sl_trigger) if self.sl_trigger is not None else "",
            "slOrdPx": self.sl_px,
            "tpTriggerPx": _d(self.tp_trigger) if self.tp_trigger is not None else "",
            "tpOrdPx": self.tp_px,
            "slTriggerPxType": "last" if self.sl_trigger is not None else "",
            "tpTriggerPxType": "last" if self.tp_trigger is not None else "",
            "ordId": self.ord_id,
            "ordIdList": [self.ord_id] if self.ord_id else [],
            "actualSz": "",
            "actualPx": "",
            "cTime": str(self.c_time),
            "uTime": str(self.u_time),
            "triggerTime": "",
        }

    def triggered(self, price: Decimal) -> bool:
        sell = self.side == "sell"
        if self.sl_trigger is not None and (price <= self.sl_trigger if sell else price >= self.sl_trigger):
            return True
        return self.tp_trigger is not None and (
            price >= self.tp_trigger if sell else price <= self.tp_trigger
        )


class OkxBook:
    """One account at the fake OKX (every instrument of the capture can be traded)."""

    def __init__(
        self,
        balances: dict[str, Decimal] | None = None,
        *,
        prices: dict[str, Decimal] | None = None,
        maker_fee: Decimal = ZERO,
        taker_fee: Decimal = ZERO,
    ) -> None:
        self.instruments = {i["instId"]: i for i in json.loads(instruments_reply())["data"]}
        self.avail: dict[str, Decimal] = dict(balances or {"USDT": Decimal(10000), "BTC": Decimal(1)})
        self.frozen: dict[str, Decimal] = {}
        self.last: dict[str, Decimal] = dict(prices or {})
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.orders: dict[str, FakeOrder] = {}
        self.by_cl: dict[str, str] = {}
        self.algos: dict[str, FakeAlgo] = {}
        self.by_algo_cl: dict[str, str] = {}
        self.fills: list[dict[str, str]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []  # (channel, data item) to push
        self._ids = itertools.count(600_000_000_000_000_001)
        self._bills = itertools.count(900_000_000_000_000_001)
        self._trade_ids: dict[str, itertools.count[int]] = {}

    # --- queries --------------------------------------------------------------------------------

    def find(self, inst: str, ord_id: str = "", cl_ord_id: str = "") -> FakeOrder:
        oid = ord_id or self.by_cl.get(cl_ord_id, "")
        order = self.orders.get(oid)
        if order is None or order.inst != inst:
            raise OkxReject("51603", "Order does not exist")
        return order

    def find_algo(self, algo_id: str = "", algo_cl_ord_id: str = "") -> FakeAlgo:
        algo = self.algos.get(algo_id or self.by_algo_cl.get(algo_cl_ord_id, ""))
        if algo is None:
            raise OkxReject("51603", "Order does not exist")
        return algo

    def balance(self) -> dict[str, Any]:
        now = str(_now())
        details = [
            {
                "ccy": ccy,
                "cashBal": _d(self.avail.get(ccy, ZERO) + self.frozen.get(ccy, ZERO)),
                "availBal": _d(self.avail.get(ccy, ZERO)),
                "frozenBal": _d(self.frozen.get(ccy, ZERO)),
                "eq": _d(self.avail.get(ccy, ZERO) + self.frozen.get(ccy, ZERO)),
                "uTime": now,
                "disEq": "0",
            }
            for ccy in sorted(self.avail.keys() | self.frozen.keys())
        ]
        return {"uTime": now, "totalEq": "0", "adjEq": "", "details": details}

    # --- orders ---------------------------------------------------------------------------------

    def place(self, body: dict[str, Any], *, algo: FakeAlgo | None = None) -> FakeOrder:
        inst = self._instrument(body)
        side, kind, cl = body.get("side"), body.get("ordType"), str(body.get("clOrdId", ""))
        if side not in ("buy", "sell") or kind not in ("market", "limit", "post_only", "ioc", "fok"):
            raise OkxReject("51000", "Parameter side or ordType error")
        if body.get("tdMode") != "cash":
            raise OkxReject("51000", "Parameter tdMode error")
        if cl and cl in self.by_cl:
            raise OkxReject("51016", "Duplicated clOrdId")
        last = self.last.get(inst["instId"])
        px = None if kind == "market" else self._price(inst, body.get("px"))
        sz = self._size(inst, body.get("sz"), kind, side, str(body.get("tgtCcy", "")), last)
        order = FakeOrder(
            f"{next(self._ids)}",
            cl,
            inst["instId"],
            side,
            kind,
            sz,
            px,
            str(body.get("tgtCcy", "")),
            fee_ccy=inst["baseCcy"] if side == "buy" else inst["quoteCcy"],
        )
        if algo is not None:
            order.algo_id, order.algo_cl_ord_id = algo.algo_id, algo.algo_cl_ord_id
        self._reserve(order, inst, last)
        self.orders[order.ord_id] = order
        if cl:
            self.by_cl[cl] = order.ord_id
        self._push(order)
        self._match_new(order, last)
        return order

    def cancel(self, inst: str, ord_id: str = "", cl_ord_id: str = "") -> FakeOrder:
        try:
            order = self.find(inst, ord_id, cl_ord_id)
        except OkxReject:
            raise OkxReject("51400", "Order cancellation failed as the order does not exist") from None
        if order.state == "canceled":
            raise OkxReject("51401", "Order cancellation failed as the order is already canceled")
        if order.state == "filled":
            raise OkxReject("51402", "Order cancellation failed as the order is already completed")
        self._end(order, "canceled", "user_canceled")
        return order

    def amend(self, inst: str, cl_ord_id: str, new_sz: str, new_px: str) -> FakeOrder:
        try:
            order = self.find(inst, cl_ord_id=cl_ord_id)
        except OkxReject:
            raise OkxReject("51503", "Order modification failed as the order does not exist") from None
        if order.state not in OPEN:
            raise OkxReject("51510", "Modification failed as the order has been completed")
        rules = self.instruments[inst]
        if new_px:
            order.px = self._price(rules, new_px)
        if new_sz:
            size = self._size(rules, new_sz, "limit", order.side, "", None)
            if size <= order.filled:
                raise OkxReject("51000", "Parameter newSz error")
            order.sz = size
        self._release(order)
        self._reserve(order, rules, self.last.get(inst))
        order.u_time = _now()
        self._push(order)
        self._match_new(order, self.last.get(inst))
        return order

    # --- algo orders ----------------------------------------------------------------------------

    def place_algo(self, body: dict[str, Any]) -> FakeAlgo:
        inst = self._instrument(body)
        if body.get("ordType") != "conditional" or body.get("side") not in ("buy", "sell"):
            raise OkxReject("51000", "Parameter ordType error")
        cl = str(body.get("algoClOrdId", ""))
        if cl and cl in self.by_algo_cl:
            raise OkxReject("51016", "Duplicated clOrdId")
        sl, tp = body.get("slTriggerPx"), body.get("tpTriggerPx")
        if not sl and not tp:
            raise OkxReject("51000", "Parameter slTriggerPx error")
        sz = self._size(inst, body.get("sz"), "limit", str(body["side"]), "", None)
        algo = FakeAlgo(
            f"{next(self._ids)}",
            cl,
            inst["instId"],
            str(body["side"]),
            sz,
            self._price(inst, sl) if sl else None,
            str(body.get("slOrdPx", "")),
            self._price(inst, tp) if tp else None,
            str(body.get("tpOrdPx", "")),
        )
        self.algos[algo.algo_id] = algo
        if cl:
            self.by_algo_cl[cl] = algo.algo_id
        return algo

    def cancel_algo(self, inst: str, algo_id: str) -> FakeAlgo:
        algo = self.algos.get(algo_id)
        if algo is None or algo.inst != inst:
            raise OkxReject("51603", "Order does not exist")
        if algo.state != "live":
            raise OkxReject("51410", f"Cancellation failed as the order is {algo.state}")
        algo.state, algo.u_time = "canceled", _now()
        return algo

    # --- the market -----------------------------------------------------------------------------

    def trade(self, inst: str, price: Decimal, qty: Decimal | None = None) -> None:
        """A market trade at ``price``: triggers algo orders, fills resting limits up to ``qty``."""
        self.last[inst] = price
        for algo in list(self.algos.values()):
            if algo.inst == inst and algo.state == "live" and algo.triggered(price):
                self._trigger(algo, price)
        left = qty
        for order in list(self.orders.values()):
            if order.inst != inst or order.state not in OPEN or order.px is None:
                continue
            if (order.side == "buy" and price > order.px) or (order.side == "sell" and price < order.px):
                continue
            take = order.sz - order.filled if left is None else min(order.sz - order.filled, left)
            if take <= 0:
                break
            self._fill(order, take, order.px, maker=True)
            if left is not None:
                left -= take

    def deposit(self, ccy: str, amount: Decimal) -> None:
        self.avail[ccy] = self.avail.get(ccy, ZERO) + amount
        self.events.append(("account", self.balance()))

    # --- internals ------------------------------------------------------------------------------

    def _instrument(self, body: dict[str, Any]) -> dict[str, Any]:
        inst = self.instruments.get(str(body.get("instId", "")))
        if inst is None:
            raise OkxReject("51001", "Instrument ID does not exist")
        if inst["state"] != "live":
            raise OkxReject("51000", f"Instrument {inst['instId']} is {inst['state']}")
        return inst

    def _price(self, inst: dict[str, Any], text: Any) -> Decimal:
        try:
            px = Decimal(str(text))
        except ArithmeticError:
            raise OkxReject("51000", "Parameter px error") from None
        if not px.is_finite() or px <= 0 or px % Decimal(inst["tickSz"]):
            raise OkxReject("51000", "Parameter px error")
        return px

    def _size(
        self, inst: dict[str, Any], text: Any, kind: str, side: str, tgt: str, last: Decimal | None
    ) -> Decimal:
        try:
            sz = Decimal(str(text))
        except ArithmeticError:
            raise OkxReject("51000", "Parameter sz error") from None
        if not sz.is_finite() or sz <= 0:
            raise OkxReject("51000", "Parameter sz error")
        if kind == "market" and side == "buy" and tgt != "base_ccy":  # OKX's default: sz in quote
            if last is None:
                raise OkxReject("51000", "no market price")
            lot = Decimal(inst["lotSz"])
            sz = (sz / last / lot).to_integral_value(ROUND_DOWN) * lot
        if sz % Decimal(inst["lotSz"]):
            raise OkxReject("51121", "Order quantity must be a multiple of the lot size")
        if sz < Decimal(inst["minSz"]):
            raise OkxReject("51020", "Order amount should be greater than the min available amount")
        return sz

    def _reserve(self, order: FakeOrder, inst: dict[str, Any], last: Decimal | None) -> None:
        ccy = inst["quoteCcy"] if order.side == "buy" else inst["baseCcy"]
        if order.side == "buy":
            price = order.px if order.px is not None else last
            if price is None:
                raise OkxReject("51000", "no market price")
            need = (order.sz - order.filled) * price
        else:
            need = order.sz - order.filled
        if self.avail.get(ccy, ZERO) < need:
            raise OkxReject("51008", f"Order failed. Insufficient {ccy} balance in account.")
        self.avail[ccy] = self.avail.get(ccy, ZERO) - need
        self.frozen[ccy] = self.frozen.get(ccy, ZERO) + need
        order.frozen = need

    def _release(self, order: FakeOrder) -> None:
        inst = self.instruments[order.inst]
        ccy = inst["quoteCcy"] if order.side == "buy" else inst["baseCcy"]
        self.frozen[ccy] = self.frozen.get(ccy, ZERO) - order.frozen
        self.avail[ccy] = self.avail.get(ccy, ZERO) + order.frozen
        order.frozen = ZERO

    def _match_new(self, order: FakeOrder, last: Decimal | None) -> None:
        crosses = last is not None and (
            order.px is None or (last <= order.px if order.side == "buy" else last >= order.px)
        )
        if order.ord_type == "post_only" and crosses:
            self._end(order, "canceled", "post_only_canceled")
        elif crosses and last is not None:
            self._fill(order, order.sz - order.filled, last, maker=False)
        elif order.ord_type in ("ioc", "fok", "market"):
            self._end(order, "canceled", "ioc_canceled")

    def _trigger(self, algo: FakeAlgo, price: Decimal) -> None:
        sl = algo.sl_trigger is not None and (
            price <= algo.sl_trigger if algo.side == "sell" else price >= algo.sl_trigger
        )
        px = algo.sl_px if sl else algo.tp_px
        body = {
            "instId": algo.inst,
            "tdMode": "cash",
            "side": algo.side,
            "sz": _d(algo.sz),
            "tgtCcy": "base_ccy",
        }
        body |= {"ordType": "market"} if px in ("", "-1") else {"ordType": "limit", "px": px}
        try:
            order = self.place(body, algo=algo)
        except OkxReject:
            algo.state, algo.u_time = "order_failed", _now()
            return
        algo.state, algo.ord_id, algo.u_time = "effective", order.ord_id, _now()

    def _fill(self, order: FakeOrder, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        inst = self.instruments[order.inst]
        base, quote = inst["baseCcy"], inst["quoteCcy"]
        rate = self.maker_fee if maker else self.taker_fee
        notional = qty * price
        if order.side == "buy":
            held = (
                order.frozen
                if order.filled + qty == order.sz
                else min(order.frozen, qty * (order.px or price))
            )
            self.frozen[quote] -= held
            self.avail[quote] = self.avail.get(quote, ZERO) + held - notional
            order.frozen -= held
            fee = qty * rate
            self.avail[base] = self.avail.get(base, ZERO) + qty - fee
        else:
            self.frozen[base] -= qty
            order.frozen -= qty
            fee = notional * rate
            self.avail[quote] = self.avail.get(quote, ZERO) + notional - fee
        order.filled += qty
        order.notional += notional
        order.fee -= fee
        order.state = "filled" if order.filled == order.sz else "partially_filled"
        order.u_time = now = _now()
        counter = self._trade_ids.setdefault(order.inst, itertools.count(242_589_207))
        fill = {
            "instType": "SPOT",
            "instId": order.inst,
            "tradeId": str(next(counter)),
            "ordId": order.ord_id,
            "clOrdId": order.cl_ord_id,
            "billId": str(next(self._bills)),
            "tag": "",
            "fillPx": _d(price),
            "fillSz": _d(qty),
            "side": order.side,
            "posSide": "net",
            "execType": "M" if maker else "T",
            "feeCcy": order.fee_ccy,
            "fee": _d(-fee),
            "ts": str(now),
            "fillTime": str(now),
        }
        self.fills.append(fill)
        self._push(order, fill)
        if order.state == "filled" and order.frozen:
            self._release(order)
        if order.ord_type in ("ioc", "fok", "market") and order.state != "filled":
            self._end(order, "canceled", "ioc_canceled")
        self.events.append(("account", self.balance()))

    def _end(self, order: FakeOrder, state: str, source: str) -> None:
        self._release(order)
        order.state, order.cancel_source, order.u_time = state, source, _now()
        self._push(order)
        self.events.append(("account", self.balance()))

    def _push(self, order: FakeOrder, fill: dict[str, str] | None = None) -> None:
        self.events.append(("orders", order.okx(fill)))
