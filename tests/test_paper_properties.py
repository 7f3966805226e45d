"""Property test of the paper engine: random orders, cancels and market data never break the books.

Checked after every step: no balance (total, reserved, free) goes negative and nothing stays
reserved once no order is open.  Checked over the whole run: every order's fills add up to its
``cum_qty``, which never exceeds its quantity; each order reaches at most one terminal state and
hears nothing after it; a re-used client id is always refused; and the balances equal the
starting balances plus exactly what the fills and fees say.  A second property checks that the
engine's shortcut for events that cannot touch the book never changes what it emits.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import (
    Bar,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    SubmitOrder,
    Trade,
)
from adapters.paper import PaperAccountState, PaperEngine
from adapters.paper.orders import BookLevels
from daemon.config import Instrument, PaperAccount

EX, SYM = "paper", "B/Q"
INST = Instrument(base="B", quote="Q", tick_size=D("0.5"), step_size=D("0.1"), min_notional=D("0"))
START = {"B": D("3"), "Q": D("100")}
TICK, STEP = INST.tick_size, INST.step_size

prices = st.integers(1, 60).map(lambda n: n * TICK)
market_prices = st.one_of(prices, st.sampled_from([D("NaN"), D("-1"), D("0"), D("Infinity")]))
sizes = st.integers(0, 40).map(lambda n: n * STEP)
client_ids = st.integers(0, 15).map(lambda n: f"c{n}")  # collisions exercise duplicate handling
HDR = {"exchange": EX, "symbol": SYM, "ts_event": 1, "ts_recv": 1}
HDR_ST = {k: st.just(v) for k, v in HDR.items()}


def make_bar(o: D, a: D, b: D, volume: D) -> Bar:
    lo, hi = min(a, b), max(a, b)
    return Bar(**HDR, ts_open=0, interval_s=60, open=o, high=hi, low=lo, close=hi, volume=volume)  # type: ignore[arg-type]


submits = st.builds(
    SubmitOrder,
    **HDR_ST,
    intent_id=st.just("i"),
    client_order_id=client_ids,
    side=st.sampled_from(["buy", "sell"]),
    order_type=st.sampled_from(["market", "limit", "stop_market", "stop_limit"]),
    quantity=st.integers(1, 30).map(lambda n: n * STEP),
    price=prices,
    stop_price=prices,
    time_in_force=st.sampled_from(["gtc", "gtc", "ioc", "fok"]),
)
cancels = st.builds(CancelOrder, **HDR_ST, client_order_id=client_ids)
trades = st.builds(Trade, **HDR_ST, price=market_prices, size=sizes)
bars = st.builds(make_bar, market_prices, prices, prices, sizes)
ops = st.lists(st.one_of(submits, cancels, trades, trades, bars), max_size=60)


def make_engine(participation: D, maker: D, taker: D) -> PaperEngine:
    cfg = PaperAccount(balances=dict(START), maker_fee=maker, taker_fee=taker, participation=participation)
    return PaperEngine(EX, SYM, INST, PaperAccountState(cfg))


def apply(e: PaperEngine, msg: Message) -> list[Message]:
    if isinstance(msg, SubmitOrder):
        return e.submit(msg, now=1)
    if isinstance(msg, CancelOrder):
        return e.cancel(msg, now=1)
    if isinstance(msg, Trade):
        return e.on_trade(msg)
    assert isinstance(msg, Bar)
    return e.on_bar(msg)


def check_balances(e: PaperEngine) -> None:
    for asset, (total, reserved) in e.account.snapshot().items():
        assert total >= 0 and reserved >= 0 and total - reserved >= 0, (asset, total, reserved)
        if not e.open_orders:
            assert reserved == 0, (asset, reserved)


class Ledger:
    """Everything the engine said, per order, checked as it arrives."""

    def __init__(self) -> None:
        self.orders: dict[str, SubmitOrder] = {}
        self.cum: dict[str, D] = {}
        self.done: set[str] = set()
        self.balances = dict(START)

    def record(self, cmd: Message, msgs: list[Message]) -> None:
        if isinstance(cmd, SubmitOrder):
            self._submitted(cmd, msgs)
            return
        for m in msgs:
            if isinstance(m, OrderRejected):
                assert m.reason.startswith("cancel rejected: unknown order")
                continue
            assert isinstance(m, OrderFilled | OrderCanceled | OrderExpired), m
            assert m.client_order_id in self.orders and m.client_order_id not in self.done, m
            if isinstance(m, OrderFilled):
                self._filled(m)
            else:
                self.done.add(m.client_order_id)

    def _submitted(self, cmd: SubmitOrder, msgs: list[Message]) -> None:
        (answer,) = msgs
        cid = cmd.client_order_id
        if cid in self.orders:
            assert isinstance(answer, OrderRejected) and answer.reason == f"duplicate client_order_id {cid}"
            return
        self.orders[cid] = cmd
        self.cum[cid] = D(0)
        if isinstance(answer, OrderRejected):
            self.done.add(cid)
        else:
            assert isinstance(answer, OrderAccepted)

    def _filled(self, m: OrderFilled) -> None:
        cmd = self.orders[m.client_order_id]
        self.cum[m.client_order_id] += m.last_qty
        assert m.last_qty > 0 and m.cum_qty == self.cum[m.client_order_id] <= cmd.quantity
        assert m.leaves_qty == cmd.quantity - m.cum_qty
        notional = m.last_qty * m.last_price
        sign = 1 if m.side == "buy" else -1
        self.balances["B"] += sign * m.last_qty
        self.balances["Q"] += -sign * notional - m.fee
        if m.leaves_qty == 0:
            self.done.add(m.client_order_id)


@settings(max_examples=300, deadline=None)
@given(
    steps=ops,
    participation=st.sampled_from([D("1"), D("0.5"), D("0.3")]),
    maker=st.sampled_from([D("0"), D("0.001")]),
    taker=st.sampled_from([D("0"), D("0.002"), D("0.0075")]),
)
def test_random_order_flow_keeps_balances_fills_and_terminal_states_consistent(
    steps: list[Message], participation: D, maker: D, taker: D
) -> None:
    e = make_engine(participation, maker, taker)
    ledger = Ledger()
    for msg in steps:
        ledger.record(msg, apply(e, msg))
        check_balances(e)
    assert set(e.open_orders) == set(ledger.orders) - ledger.done
    for cid, order in e.open_orders.items():
        assert order.cum_qty == ledger.cum[cid]
    assert {a: e.account.total(a) for a in START} == ledger.balances


class _AlwaysTouched(BookLevels):
    def __init__(self) -> None:
        pass

    def touched(self, high: D, low: D) -> bool:
        return True


class _NoShortcutEngine(PaperEngine):
    """Reference: runs the full matcher on every event instead of skipping untouched ones."""

    def _untouched(self, high: D, low: D) -> bool:
        self._levels = _AlwaysTouched()
        return super()._untouched(high, low)


@settings(max_examples=200, deadline=None)
@given(steps=ops, participation=st.sampled_from([D("1"), D("0.3")]))
def test_skipping_untouched_events_never_changes_the_outcome(steps: list[Message], participation: D) -> None:
    fast = make_engine(participation, D("0.001"), D("0.002"))
    cfg = fast.account.config
    slow = _NoShortcutEngine(EX, SYM, INST, PaperAccountState(cfg))
    for msg in steps:
        got = [msgspec.structs.replace(m, ts_recv=0) for m in apply(fast, msg)]
        want = [msgspec.structs.replace(m, ts_recv=0) for m in apply(slow, msg)]
        assert got == want
    assert fast.account.snapshot() == slow.account.snapshot()
