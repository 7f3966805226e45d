"""Paper engine OCO lists (Binance orderList/oco): one reservation for both legs, a stop leg
triggering or the limit leg filling expires the other, a cancel of one leg cancels both, and the
lists Binance refuses are refused; leg ids derived from the list id (actors.oco)."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from actors.channels import Channel, Router
from actors.messages import (
    Bar,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    Side,
    SubmitOrder,
    Trade,
)
from actors.oco import leg_ids, list_of_leg, oco_legs
from actors.order_ids import client_order_id
from adapters.paper import PaperAccountState, PaperEngine
from adapters.paper.actor import PaperExchange
from daemon.config import Instrument, PaperAccount

EX, SYM = "paper", "ETH/USDT"
INST = Instrument(base="ETH", quote="USDT", tick_size=D("0.01"), step_size=D("0.001"), min_notional=D("10"))
LIST = client_order_id("stop:entry-1:native:1:1")
SL, TP = leg_ids(LIST)


def engine(eth: str = "1", usdt: str = "0") -> PaperEngine:
    cfg = PaperAccount(
        balances={"USDT": D(usdt), "ETH": D(eth)},
        maker_fee=D("0.001"),
        taker_fee=D("0.002"),
        slippage_bps=D("0"),
        participation=D("1"),
    )
    eng = PaperEngine(EX, SYM, INST, PaperAccountState(cfg))
    eng.on_trade(trade("100"))
    return eng


def trade(price: str, ts: int = 1_000) -> Trade:
    return Trade(exchange=EX, symbol=SYM, ts_event=ts, ts_recv=ts, price=D(price), size=D("100"))


def legs(
    side: Side = "sell", qty: str = "1", sl: str = "95", tp: str = "110"
) -> tuple[SubmitOrder, SubmitOrder]:
    common = {"side": side, "quantity": D(qty), "reduce_only": True, "exchange": EX, "symbol": SYM}
    stop = SubmitOrder(
        intent_id="i-sl",
        client_order_id=SL,
        order_type="stop_market",
        stop_price=D(sl),
        ts_event=1,
        ts_recv=1,
        **common,  # type: ignore[arg-type]
    )
    take = SubmitOrder(
        intent_id="i-tp",
        client_order_id=TP,
        order_type="limit",
        price=D(tp),
        ts_event=1,
        ts_recv=1,
        **common,  # type: ignore[arg-type]
    )
    return stop, take


def kinds(out: list[Message]) -> list[tuple[str, str]]:
    return [(type(m).__name__, getattr(m, "client_order_id", "")) for m in out]


def test_leg_ids_are_derived_from_the_list_id() -> None:
    assert (SL, TP) == (LIST + "-sl", LIST + "-tp")
    assert len(SL) <= 36 and len(TP) <= 36  # Binance's limit
    assert list_of_leg(SL) == (LIST, "sl") and list_of_leg(TP) == (LIST, "tp")
    assert list_of_leg(LIST) is None and list_of_leg("-sl") is None


def test_both_legs_rest_on_one_reservation() -> None:
    eng = engine(eth="1")
    out = eng.submit_oco(LIST, *legs())
    assert kinds(out) == [("OrderAccepted", SL), ("OrderAccepted", TP)]
    assert all(isinstance(m, OrderAccepted) and m.venue_order_id for m in out)
    assert set(eng.open_orders) == {SL, TP}
    assert eng.account.reserved_of("ETH") == D("1")  # one ETH covers both exits
    assert eng.account.free("ETH") == 0


def test_take_profit_fill_expires_the_stop_leg() -> None:
    eng = engine()
    eng.submit_oco(LIST, *legs())
    assert eng.on_trade(trade("105", ts=2_000)) == []
    out = eng.on_trade(trade("110", ts=3_000))
    assert kinds(out) == [("OrderExpired", SL), ("OrderFilled", TP)]
    fill = out[1]
    assert isinstance(fill, OrderFilled) and fill.last_qty == D("1") and fill.leaves_qty == 0
    assert eng.open_orders == {}
    assert eng.account.reserved_of("ETH") == 0 and eng.account.free("ETH") == 0
    assert eng.on_trade(trade("90", ts=4_000)) == []  # the stop is gone: no second exit


def test_stop_trigger_expires_the_take_profit_leg() -> None:
    eng = engine()
    eng.submit_oco(LIST, *legs())
    out = eng.on_trade(trade("94", ts=2_000))
    assert kinds(out) == [("OrderExpired", TP), ("OrderFilled", SL)]
    assert isinstance(out[1], OrderFilled) and out[1].last_qty == D("1")
    assert eng.open_orders == {} and eng.account.reserved_of("ETH") == 0
    assert eng.on_trade(trade("120", ts=3_000)) == []


def test_a_bar_reaching_both_levels_takes_the_stop() -> None:
    eng = engine()
    eng.submit_oco(LIST, *legs())
    b = Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=60_000,
        ts_recv=60_000,
        ts_open=0,
        open=D("100"),
        high=D("111"),
        low=D("94"),
        close=D("100"),
        volume=D("100"),
        interval_s=60,
    )
    out = eng.on_bar(b)
    assert kinds(out) == [("OrderExpired", TP), ("OrderFilled", SL)]


def test_cancel_of_one_leg_cancels_the_list() -> None:
    eng = engine()
    eng.submit_oco(LIST, *legs())
    out = eng.cancel(CancelOrder(client_order_id=SL, exchange=EX, symbol=SYM, ts_event=5, ts_recv=5))
    assert kinds(out) == [("OrderCanceled", SL), ("OrderCanceled", TP)]
    assert all(isinstance(m, OrderCanceled) for m in out)
    assert eng.open_orders == {} and eng.account.free("ETH") == D("1")
    # the freed balance takes the next list at once (cancel list -> new list)
    sl2, tp2 = leg_ids(client_order_id("next"))
    stop, take = legs(sl="96")
    out = eng.submit_oco(
        client_order_id("next"),
        msgspec.structs.replace(stop, client_order_id=sl2),
        msgspec.structs.replace(take, client_order_id=tp2),
    )
    assert kinds(out) == [("OrderAccepted", sl2), ("OrderAccepted", tp2)]


def test_a_leg_is_not_cancel_replaced() -> None:
    eng = engine()
    eng.submit_oco(LIST, *legs())
    stop, _ = legs(sl="97")
    out = eng.submit(msgspec.structs.replace(stop, client_order_id="td-new", replaces=SL))
    assert len(out) == 1 and isinstance(out[0], OrderRejected) and "OCO leg" in out[0].reason
    assert set(eng.open_orders) == {SL, TP}


def test_refused_lists() -> None:
    eng = engine(eth="1")
    # the wrong way round for a sell: stop above the market
    out = eng.submit_oco(LIST, *legs(sl="101", tp="110"))
    assert kinds(out) == [("OrderRejected", SL), ("OrderRejected", TP)]
    assert all(isinstance(m, OrderRejected) and "wrong way round" in m.reason for m in out)
    assert eng.open_orders == {} and eng.account.free("ETH") == D("1")
    # a duplicate list id (a re-send) is refused as a duplicate
    other = client_order_id("other")
    s, t = leg_ids(other)
    stop, take = legs()
    ok = eng.submit_oco(
        other,
        msgspec.structs.replace(stop, client_order_id=s),
        msgspec.structs.replace(take, client_order_id=t),
    )
    assert kinds(ok) == [("OrderAccepted", s), ("OrderAccepted", t)]
    again = eng.submit_oco(
        other,
        msgspec.structs.replace(stop, client_order_id=s),
        msgspec.structs.replace(take, client_order_id=t),
    )
    assert all(isinstance(m, OrderRejected) and "duplicate" in m.reason for m in again)
    assert set(eng.open_orders) == {s, t}
    # not enough balance for even one leg
    poor = engine(eth="0.5")
    out = poor.submit_oco(LIST, *legs())
    assert all(isinstance(m, OrderRejected) and "insufficient balance" in m.reason for m in out)
    assert poor.open_orders == {}


def test_buy_list_reserves_the_dearer_leg_once() -> None:
    eng = engine(eth="0", usdt="1000")
    stop, take = legs(side="buy", sl="105", tp="90")
    out = eng.submit_oco(LIST, stop, take)
    assert kinds(out) == [("OrderAccepted", SL), ("OrderAccepted", TP)]
    # 1 at the 105 stop plus the taker fee: the one reservation
    assert eng.account.reserved_of("USDT") == D("105") * D("1.002")
    out = eng.on_trade(trade("90", ts=2_000))
    assert kinds(out) == [("OrderExpired", SL), ("OrderFilled", TP)]
    assert eng.account.reserved_of("USDT") == 0
    assert isinstance(out[0], OrderExpired)


def test_the_paper_exchange_takes_a_list_as_one_submit_order() -> None:
    eng = engine()
    venue = PaperExchange(EX, SYM, Router(), Channel("paper-exchange", 8), INST, eng.account)
    venue.dispatch(trade("100"))
    stop, _ = legs()
    listed = msgspec.structs.replace(stop, client_order_id=LIST, oco_take_profit=D("110"))
    sl, tp = oco_legs(listed)
    assert (sl.client_order_id, sl.order_type, sl.stop_price) == (SL, "stop_market", D("95"))
    assert (tp.client_order_id, tp.order_type, tp.price, tp.stop_price) == (TP, "limit", D("110"), None)
    assert tp.reduce_only and tp.quantity == stop.quantity and tp.oco_take_profit is None
    assert kinds(venue.dispatch(listed)) == [("OrderAccepted", SL), ("OrderAccepted", TP)]
    assert kinds(venue.dispatch(trade("111", ts=2_000))) == [("OrderExpired", SL), ("OrderFilled", TP)]
