"""Paper matching engine for one symbol: orders in, the order events a real venue would send out.

:class:`PaperEngine` is plain synchronous code (no I/O, no randomness, no clock other than
the ``now`` it is given and ``self.clock`` for ``ts_recv``: the wall clock, or event time in
a backtest) so it is cheap to test and to run.  :class:`adapters.paper.actor.PaperExchange`
wraps it in an actor.

In:  ``SubmitOrder`` (:meth:`PaperEngine.submit`), an OCO list of two
     (:meth:`PaperEngine.submit_oco`), ``CancelOrder`` (:meth:`PaperEngine.cancel`), market data
     ``Trade``/``Bar``/``Quote`` (:meth:`on_trade`, :meth:`on_bar`, :meth:`on_quote`).
Out: ``OrderAccepted``, ``OrderRejected``, ``OrderFilled``, ``OrderCanceled``, ``OrderExpired``.

The matching rules are described in :mod:`adapters.paper` (the package docstring).

OCO lists behave as Binance's ``orderList/oco``: the two legs (a stop-loss below and a
take-profit above for a sell, the other way round for a buy; the same side and quantity) hold
one reservation between them (a spot balance covers one resting exit); when one leg triggers
(a stop) or fills (a limit), the other is expired (OrderExpired) and the reservation stays with
the leg that works; a cancel of either leg cancels both (OrderCanceled for each).  A bar that
reaches both levels triggers the stop-loss leg (the conservative choice, as the stop-monitor).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import msgspec

from actors.bar_check import bar_ok
from actors.messages import (
    Bar,
    CancelOrder,
    Liquidity,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Quote,
    Side,
    Stamp,
    SubmitOrder,
    Trade,
    stamp,
)
from actors.oco import leg_ids
from actors.runtime import WALL_CLOCK, Clock
from actors.strategies.base import floor_to_step, round_to_tick
from adapters.paper.account import BPS, ZERO, PaperAccountState
from adapters.paper.orders import BookLevels, PaperOrder, check_order, ok_price, reference_price
from daemon.config import Instrument

ONE = Decimal(1)
TWO = Decimal(2)
UNLIMITED = Decimal("Infinity")


@dataclass(slots=True)
class _Event:
    """A matching event: a trade is a bar with open == high == low."""

    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    is_bar: bool
    budget: dict[str, Decimal]


def _crosses(side: Side, px: Decimal, limit: Decimal) -> bool:
    return px <= limit if side == "buy" else px >= limit


class PaperEngine:
    """Per-symbol order book of our own orders, matched against the public tape."""

    def __init__(
        self, exchange: str, symbol: str, instrument: Instrument, account: PaperAccountState
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.instrument = instrument
        self.account = account
        self.last_price: Decimal | None = None
        self.rejected_market_events = 0
        self.clock: Clock = WALL_CLOCK  # a backtest swaps in event time
        # False (backtests that compare with volume-blind tools): fills ignore the traded volume
        self.volume_limited = True
        self._open: dict[str, PaperOrder] = {}
        self._seen = account.seen_client_ids(exchange, symbol)
        self._seq = 0
        self._events = 0  # matching events seen while orders were open
        self._levels: BookLevels | None = None  # None: recompute before the next event
        self._oco: dict[str, str] = {}  # an open OCO leg's client order id -> the other leg's

    # -- queries ---------------------------------------------------------------------------
    @property
    def open_orders(self) -> dict[str, PaperOrder]:
        """Open orders by client_order_id (read only)."""
        return self._open

    def _hdr(self, ts: int) -> Stamp:
        return stamp(self.exchange, self.symbol, ts, self.clock.time_ns())

    # -- commands --------------------------------------------------------------------------
    def submit(self, cmd: SubmitOrder, now: int | None = None) -> list[Message]:
        """Validate and accept (or reject) an order. Nothing fills before the next market event.

        ``cmd.replaces``: one atomic cancel-replace, as Binance's STOP_ON_FAILURE: the old order
        is canceled (its reservation freed), then the new one placed; an old order that is not
        open refuses the whole request ("replace refused: ..."), nothing changes.
        """
        ts = self.clock.time_ns() if now is None else now
        if cmd.replaces:
            old = self._open.get(cmd.replaces)
            if old is None or cmd.replaces in self._oco:
                what = "an OCO leg (cancel the list)" if old is not None else "unknown order"
                refused = f"replace refused: cancel failed: {what} {cmd.replaces}"
                return [OrderRejected(client_order_id=cmd.client_order_id, reason=refused, **self._hdr(ts))]
            return [
                self._close_canceled(old, "replaced", ts),
                *self.submit(msgspec.structs.replace(cmd, replaces=""), ts),
            ]
        reason = self._validate(cmd)
        if reason is None and cmd.post_only:
            reason = self._would_take(cmd)
        if reason is None:
            reason = self._accept(cmd)
        if reason is not None:
            return [OrderRejected(client_order_id=cmd.client_order_id, reason=reason, **self._hdr(ts))]
        vid = self._open[cmd.client_order_id].venue_order_id
        return [
            OrderAccepted(
                client_order_id=cmd.client_order_id,
                venue_order_id=vid,
                exchange=self.exchange,
                symbol=self.symbol,
                ts_event=ts,
                ts_recv=self.clock.time_ns(),
            )
        ]

    def submit_oco(
        self,
        list_client_order_id: str,
        stop_leg: SubmitOrder,
        take_profit_leg: SubmitOrder,
        now: int | None = None,
    ) -> list[Message]:
        """Rest ``stop_leg`` (stop_market or stop_limit) and ``take_profit_leg`` (a limit: Binance's
        LIMIT_MAKER leg) as one OCO list: both accepted (OrderAccepted each) or both rejected
        (OrderRejected each, with the same reason).  Refused as Binance refuses a list: a
        duplicate list or leg id, legs of different sides or quantities, or prices the wrong way
        round (a sell: the take-profit above the market, the stop below; a buy mirrored)."""
        ts = self.clock.time_ns() if now is None else now
        legs = (stop_leg, take_profit_leg)
        reason = self._check_oco(list_client_order_id, stop_leg, take_profit_leg)
        for leg in legs:
            reason = reason or self._validate(leg)
        if reason is None:
            self._seen.add(list_client_order_id)
            reason = self._accept_oco(stop_leg, take_profit_leg)
        if reason is not None:
            return [
                OrderRejected(client_order_id=leg.client_order_id, reason=reason, **self._hdr(ts))
                for leg in legs
            ]
        return [
            OrderAccepted(
                client_order_id=leg.client_order_id,
                venue_order_id=self._open[leg.client_order_id].venue_order_id,
                **self._hdr(ts),
            )
            for leg in legs
        ]

    def _check_oco(self, list_cid: str, sl: SubmitOrder, tp: SubmitOrder) -> str | None:
        if not list_cid or list_cid in self._seen:
            return f"duplicate listClientOrderId {list_cid}" if list_cid else "missing listClientOrderId"
        if sl.side != tp.side or sl.quantity != tp.quantity:
            return "OCO legs must have the same side and quantity"
        if sl.order_type not in ("stop_market", "stop_limit") or tp.order_type != "limit":
            return f"OCO legs must be a stop and a limit, got {sl.order_type} and {tp.order_type}"
        sl_px, tp_px = sl.stop_price, tp.price
        if sl_px is None or tp_px is None:
            return "OCO legs need their trigger prices"
        last = self.last_price
        sell = sl.side == "sell"
        if (sell and not sl_px < tp_px) or (not sell and not sl_px > tp_px):
            return f"OCO prices the wrong way round: stop {sl_px}, take-profit {tp_px} for a {sl.side}"
        if last is not None and (
            (sell and not sl_px < last < tp_px) or (not sell and not tp_px < last < sl_px)
        ):
            return f"OCO prices the wrong way round: stop {sl_px}, take-profit {tp_px}, market {last}"
        return None

    def _accept_oco(self, sl: SubmitOrder, tp: SubmitOrder) -> str | None:
        """Reserve once for both legs: the leg that may cost more holds it, the other holds none."""
        first, second = sl, tp
        if sl.side == "buy" and (reference_price(tp, self.last_price) or ZERO) > (
            reference_price(sl, self.last_price) or ZERO
        ):
            first, second = tp, sl
        reason = self._accept(first)
        if reason is not None:
            return reason
        held = self._open[first.client_order_id]
        self._seq += 1
        vid = self.account.next_venue_order_id()
        self._open[second.client_order_id] = PaperOrder(
            second, vid, self._seq, held.reserve_asset, held.reserve_rate, ZERO, arrived=self._events
        )
        if second is sl:  # the stop-loss leg first: it wins a bar that reaches both levels
            self._open[first.client_order_id] = self._open.pop(first.client_order_id)
        self._oco[sl.client_order_id] = tp.client_order_id
        self._oco[tp.client_order_id] = sl.client_order_id
        return None

    def _oco_fired(self, o: PaperOrder, ts: int, out: list[Message]) -> None:
        """``o`` triggered or filled: if it is an OCO leg, expire the other, taking its reservation."""
        other_cid = self._oco.get(o.cmd.client_order_id)
        other = self._open.get(other_cid) if other_cid is not None else None
        if other is None:
            return
        o.reserved += other.reserved
        other.reserved = ZERO
        out.append(self._close_expired(other, ts))

    def cancel(self, cmd: CancelOrder, now: int | None = None) -> list[Message]:
        """Cancel an open order; unknown or finished ids are refused like Binance's -2011.

        A leg of an OCO list, or the list's own id (``DELETE orderList``), cancels the whole list
        (both legs' OrderCanceled)."""
        ts = self.clock.time_ns() if now is None else now
        order = self._open.get(cmd.client_order_id)
        if order is None:  # the list's id: its legs
            order = next((self._open[leg] for leg in leg_ids(cmd.client_order_id) if leg in self._oco), None)
        if order is None and cmd.venue_order_id:
            order = next((o for o in self._open.values() if o.venue_order_id == cmd.venue_order_id), None)
        if order is None:
            reason = f"cancel rejected: unknown order {cmd.client_order_id or cmd.venue_order_id}"
            return [OrderRejected(client_order_id=cmd.client_order_id, reason=reason, **self._hdr(ts))]
        other = self._open.get(self._oco.get(order.cmd.client_order_id, ""))
        out: list[Message] = [self._close_canceled(order, "canceled", ts)]
        if other is not None:
            out.append(self._close_canceled(other, "canceled (OCO list)", ts))
        return out

    def cancel_all(self, reason: str, now: int | None = None) -> list[Message]:
        """Cancel every open order (the venue is going away) and release what they reserved."""
        ts = self.clock.time_ns() if now is None else now
        return [self._close_canceled(o, reason, ts) for o in list(self._open.values())]

    # -- validation and reservation ------------------------------------------------------------
    def _validate(self, cmd: SubmitOrder) -> str | None:
        cid = cmd.client_order_id
        if not cid:
            return "missing client_order_id"
        if cid in self._seen:
            return f"duplicate client_order_id {cid}"
        self._seen.add(cid)
        if cmd.exchange != self.exchange or cmd.symbol != self.symbol:
            return f"wrong venue: this engine trades {self.exchange}:{self.symbol}"
        return check_order(cmd, self.instrument, self.last_price)

    def _would_take(self, cmd: SubmitOrder) -> str | None:
        """A post-only order that would match at once is refused, as Binance refuses a LIMIT_MAKER."""
        last, limit = self.last_price, cmd.price
        if cmd.order_type != "limit" or limit is None:
            return f"post-only needs a limit order, got {cmd.order_type}"
        if last is not None and _crosses(cmd.side, last, limit):
            return f"post-only order would immediately match and take (limit {limit}, market {last})"
        return None

    def _accept(self, cmd: SubmitOrder) -> str | None:
        """Reserve what the order may spend and book it; returns a reject reason instead."""
        if cmd.side == "buy":
            asset = self.instrument.quote
            est = reference_price(cmd, self.last_price) or ZERO
            if cmd.order_type in ("market", "stop_market"):
                est = est * (ONE + self.account.slippage_bps / BPS)
            rate = est * (ONE + self.account.taker_fee)
        else:
            asset, rate = self.instrument.base, ONE
        amount = cmd.quantity * rate
        free = self.account.free(asset)
        if amount > free:
            return f"insufficient balance: need {amount} {asset}, free {free} {asset}"
        self.account.reserve(asset, amount)
        self._seq += 1
        vid = self.account.next_venue_order_id()
        self._open[cmd.client_order_id] = PaperOrder(
            cmd, vid, self._seq, asset, rate, amount, arrived=self._events
        )
        self._levels = None
        return None

    # -- market data -----------------------------------------------------------------------------
    def on_trade(self, msg: Trade) -> list[Message]:
        price, size = msg.price, msg.size
        if not (price.is_finite() and price > ZERO and size.is_finite() and size >= ZERO):
            self.rejected_market_events += 1
            return []
        self.last_price = price
        if not self._open or self._untouched(price, price):
            return []
        budget = size * self.account.participation if self.volume_limited else UNLIMITED
        ev = _Event(msg.ts_event, price, price, price, False, {"buy": budget, "sell": budget})
        return self._match(ev)

    def on_bar(self, msg: Bar) -> list[Message]:
        if not bar_ok(msg):  # finite prices > 0, finite volume >= 0, low/high contain open/close
            self.rejected_market_events += 1
            return []
        self.last_price = msg.close
        if not self._open:
            return []
        h, lo = msg.high, msg.low
        if self._untouched(h, lo):
            return []
        budget = msg.volume * self.account.participation if self.volume_limited else UNLIMITED
        return self._match(_Event(msg.ts_event, msg.open, h, lo, True, {"buy": budget, "sell": budget}))

    def quiet_bars(self, bars: Sequence[Bar], start: int, stop: int) -> int:
        """How many of ``bars[start:stop]``, in a row, :meth:`on_bar` would answer with nothing.

        A question, not a step: nothing changes (the matching levels are computed, as the
        next event would).  No open order: every bar; otherwise bars until one reaches a
        level of the book (a market or ioc/fok order is reached by every bar).
        """
        if not self._open:
            return stop - start
        levels = self._levels
        if levels is None:
            levels = self._levels = BookLevels(self._open.values())
        touched = levels.touched
        i = start
        while i < stop and not touched(bars[i].high, bars[i].low):
            i += 1
        return i - start

    def on_quote(self, msg: Quote) -> list[Message]:
        """Quotes only move the reference price (market-order estimates); they never fill."""
        if not (ok_price(msg.bid_price) and ok_price(msg.ask_price)):
            self.rejected_market_events += 1
            return []
        self.last_price = (msg.bid_price + msg.ask_price) / TWO
        return []

    # -- matching ---------------------------------------------------------------------------------
    def _untouched(self, high: Decimal, low: Decimal) -> bool:
        """Count a matching event; True when it cannot fill or trigger anything (the common case)."""
        self._events += 1
        if self._levels is None:
            self._levels = BookLevels(self._open.values())
        return not self._levels.touched(high, low)

    def _match(self, ev: _Event) -> list[Message]:
        orders = list(self._open.values())
        out: list[Message] = []
        if len(orders) == 1 and orders[0].active:  # one working order: nothing to trigger or sort
            self._match_order(orders[0], ev, out)
            return out
        triggered = [o for o in orders if not o.active and self._trigger(o, ev)]
        if triggered:
            self._levels = None
        if self._oco:
            for o in triggered:
                if o.cmd.client_order_id in self._open:  # not expired by its leg just now
                    self._oco_fired(o, ev.ts, out)
            orders = [o for o in orders if o.cmd.client_order_id in self._open]
            triggered = [o for o in triggered if o.cmd.client_order_id in self._open]
        for o in sorted((o for o in orders if o.active), key=self._priority):
            self._match_order(o, ev, out)
        for o in triggered:
            o.trig_px = None
        return out

    @staticmethod
    def _priority(o: PaperOrder) -> tuple[int, Decimal, int]:
        if o.market_like:
            return (0, ZERO, o.seq)
        limit = o.cmd.price or ZERO
        return (1, -limit if o.side == "buy" else limit, o.seq)

    @staticmethod
    def _trigger(o: PaperOrder, ev: _Event) -> bool:
        stop = o.cmd.stop_price or ZERO
        if o.side == "buy" and ev.high >= stop:
            o.trig_px = max(ev.open, stop)
        elif o.side == "sell" and ev.low <= stop:
            o.trig_px = min(ev.open, stop)
        else:
            return False
        o.triggered = True
        return True

    def _fill_price(self, o: PaperOrder, ev: _Event) -> tuple[Decimal, Liquidity] | None:
        first = ev.open if o.trig_px is None else o.trig_px
        if o.market_like:
            return self._slip(first, o.side), "taker"
        limit = o.cmd.price or ZERO
        fresh = o.arrived == self._events - 1
        taker_ok = not o.cmd.post_only  # a post-only order rests: it fills as maker or not at all
        if taker_ok and _crosses(o.side, first, limit) and (fresh or ev.is_bar or o.trig_px is not None):
            return self._to_tick(first), "taker"
        touch = ev.low if o.side == "buy" else ev.high
        if o.trig_px is None and _crosses(o.side, touch, limit):
            return limit, "maker"
        return None

    def _to_tick(self, px: Decimal) -> Decimal:
        tick = self.instrument.tick_size
        return max(round_to_tick(px, tick), tick)

    def _slip(self, px: Decimal, side: Side) -> Decimal:
        f = self.account.slippage_bps / BPS
        return self._to_tick(px * (ONE + f) if side == "buy" else px * (ONE - f))

    def _match_order(self, o: PaperOrder, ev: _Event, out: list[Message]) -> None:
        priced = self._fill_price(o, ev)
        px, liquidity = priced if priced is not None else (ZERO, "taker")
        qty, short = ZERO, False
        if priced is not None:
            qty = floor_to_step(min(o.leaves, ev.budget[o.side]), self.instrument.step_size)
            if o.side == "buy" and qty > 0:
                affordable = self._affordable(o, px, liquidity)
                short = affordable < qty
                qty = min(qty, affordable)
        tif = o.cmd.time_in_force
        if tif == "fok" and qty < o.leaves:
            out.append(self._close_expired(o, ev.ts))
            return
        if qty > 0:
            ev.budget[o.side] -= qty
            if self._oco:
                self._oco_fired(o, ev.ts, out)  # a limit leg filling: the stop leg expires
            out.append(self._fill(o, qty, px, liquidity, ev.ts))
        if o.leaves == 0:
            return
        if short:
            out.append(self._close_canceled(o, "insufficient balance", ev.ts))
        elif tif == "ioc":
            out.append(self._close_canceled(o, "ioc", ev.ts))

    def _fee_rate(self, liquidity: Liquidity) -> Decimal:
        return self.account.maker_fee if liquidity == "maker" else self.account.taker_fee

    def _affordable(self, o: PaperOrder, px: Decimal, liquidity: Liquidity) -> Decimal:
        """Largest step multiple of ``o.leaves`` a buy can pay for at ``px``, fee included."""
        avail = self.account.free(self.instrument.quote) + o.reserved
        unit = px * (ONE + self._fee_rate(liquidity))
        step = self.instrument.step_size
        qty = floor_to_step(min(o.leaves, avail / unit), step)
        while qty > 0 and qty * unit > avail:
            qty -= step
        return qty

    # -- settlement -------------------------------------------------------------------------------
    def _fill(self, o: PaperOrder, qty: Decimal, px: Decimal, liquidity: Liquidity, ts: int) -> OrderFilled:
        acct, inst = self.account, self.instrument
        notional = qty * px
        fee = notional * self._fee_rate(liquidity)
        o.cum_qty += qty
        if o.side == "buy":
            acct.release(o.reserve_asset, o.reserved)
            acct.debit(inst.quote, notional + fee)
            acct.credit(inst.base, qty)
            o.reserved = min(o.leaves * o.reserve_rate, acct.free(inst.quote))
            acct.reserve(inst.quote, o.reserved)
        else:
            acct.release(o.reserve_asset, qty)
            o.reserved -= qty
            acct.debit(inst.base, qty)
            acct.credit(inst.quote, notional - fee)
        if o.leaves == 0:
            self._remove(o)
        return OrderFilled(
            client_order_id=o.cmd.client_order_id,
            venue_order_id=o.venue_order_id,
            trade_id=acct.next_trade_id(),
            side=o.side,
            last_qty=qty,
            last_price=px,
            cum_qty=o.cum_qty,
            leaves_qty=o.leaves,
            fee=fee,
            fee_asset=inst.quote,
            liquidity=liquidity,
            exchange=self.exchange,  # self._hdr(ts), spelt out: no dict to unpack on every fill
            symbol=self.symbol,
            ts_event=ts,
            ts_recv=self.clock.time_ns(),
        )

    def _remove(self, o: PaperOrder) -> None:
        self.account.release(o.reserve_asset, o.reserved)
        o.reserved = ZERO
        cid = o.cmd.client_order_id
        del self._open[cid]
        self._levels = None
        other = self._oco.pop(cid, None)
        if other is not None:
            self._oco.pop(other, None)

    def _close_canceled(self, o: PaperOrder, reason: str, ts: int) -> OrderCanceled:
        self._remove(o)
        cid, vid = o.cmd.client_order_id, o.venue_order_id
        return OrderCanceled(client_order_id=cid, venue_order_id=vid, reason=reason, **self._hdr(ts))

    def _close_expired(self, o: PaperOrder, ts: int) -> OrderExpired:
        self._remove(o)
        return OrderExpired(
            client_order_id=o.cmd.client_order_id, venue_order_id=o.venue_order_id, **self._hdr(ts)
        )
