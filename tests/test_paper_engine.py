"""Paper matching engine: validation, reservations, every order type, fees and slippage, bad data."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from actors.messages import (
    Bar,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderType,
    Quote,
    Side,
    SubmitOrder,
    TimeInForce,
    Trade,
)
from adapters.paper import PaperAccountState, PaperEngine
from daemon.config import Instrument, PaperAccount

EX, SYM = "paper", "ETH/USDT"
INST = Instrument(base="ETH", quote="USDT", tick_size=D("0.01"), step_size=D("0.001"), min_notional=D("10"))


def account(
    usdt: str = "10000",
    eth: str = "5",
    maker: str = "0.001",
    taker: str = "0.002",
    slip: str = "10",
    part: str = "1",
) -> PaperAccountState:
    cfg = PaperAccount(
        balances={"USDT": D(usdt), "ETH": D(eth)},
        maker_fee=D(maker),
        taker_fee=D(taker),
        slippage_bps=D(slip),
        participation=D(part),
    )
    return PaperAccountState(cfg)


def engine(**kw: str) -> PaperEngine:
    return PaperEngine(EX, SYM, INST, account(**kw))


def trade(price: str, size: str = "100", ts: int = 1_000) -> Trade:
    return Trade(exchange=EX, symbol=SYM, ts_event=ts, ts_recv=ts, price=D(price), size=D(size))


def bar(o: str, h: str, lo: str, c: str, volume: str = "100", ts: int = 60_000) -> Bar:
    return Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts,
        ts_open=ts - 60_000,
        interval_s=60,
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(volume),
    )


def order(
    cid: str,
    side: Side,
    order_type: OrderType,
    qty: str,
    price: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = "gtc",
    symbol: str = SYM,
) -> SubmitOrder:
    return SubmitOrder(
        exchange=EX,
        symbol=symbol,
        ts_event=0,
        ts_recv=0,
        intent_id=f"i-{cid}",
        client_order_id=cid,
        side=side,
        order_type=order_type,
        quantity=D(qty),
        price=None if price is None else D(price),
        stop_price=None if stop is None else D(stop),
        time_in_force=tif,
    )


def cancel(cid: str, venue_order_id: str = "") -> CancelOrder:
    return CancelOrder(
        exchange=EX, symbol=SYM, ts_event=0, ts_recv=0, client_order_id=cid, venue_order_id=venue_order_id
    )


def accept(e: PaperEngine, cmd: SubmitOrder) -> OrderAccepted:
    (msg,) = e.submit(cmd, now=5)
    assert isinstance(msg, OrderAccepted), msg
    return msg


def only_fill(msgs: list[Message]) -> OrderFilled:
    (msg,) = msgs
    assert isinstance(msg, OrderFilled), msg
    return msg


def reject_reason(msgs: list[Message]) -> str:
    (msg,) = msgs
    assert isinstance(msg, OrderRejected), msg
    return msg.reason


def balances(e: PaperEngine) -> dict[str, tuple[D, D]]:
    return e.account.snapshot()


# --- acceptance and validation ----------------------------------------------------------------


def test_accepted_orders_get_sequential_venue_ids_and_the_submit_time() -> None:
    e = engine()
    first = accept(e, order("a", "buy", "limit", "1", "1000"))
    second = accept(e, order("b", "sell", "limit", "1", "3000"))
    assert (first.venue_order_id, second.venue_order_id) == ("1", "2")
    assert (first.ts_event, first.client_order_id, first.exchange, first.symbol) == (5, "a", EX, SYM)


def test_limit_buy_reserves_quantity_times_price_plus_taker_fee() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1.5", "2000"))
    assert balances(e)["USDT"] == (D("10000"), D("3006.000"))  # 1.5 * 2000 * 1.002


def test_sell_reserves_the_base_quantity() -> None:
    e = engine()
    accept(e, order("a", "sell", "limit", "2", "3000"))
    assert balances(e)["ETH"] == (D("5"), D("2"))


def test_market_buy_reserves_at_last_price_plus_slippage_and_taker_fee() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "1"))
    assert balances(e)["USDT"][1] == D("2006.004")  # 2000 * 1.001 * 1.002


@pytest.mark.parametrize(
    ("cmd", "reason"),
    [
        (order("a", "buy", "limit", "0", "2000"), "invalid quantity 0: must be > 0"),
        (order("a", "buy", "limit", "-1", "2000"), "invalid quantity -1: must be > 0"),
        (order("a", "buy", "limit", "NaN", "2000"), "invalid quantity NaN: must be > 0"),
        (
            order("a", "buy", "limit", "0.0015", "2000"),
            "invalid quantity 0.0015: not a multiple of step_size 0.001",
        ),
        (order("a", "buy", "limit", "1"), "missing price: required for limit orders"),
        (
            order("a", "buy", "limit", "1", "2000.005"),
            "invalid price 2000.005: not a multiple of tick_size 0.01",
        ),
        (order("a", "buy", "limit", "1", "-5"), "invalid price -5: must be > 0"),
        (order("a", "buy", "limit", "1", "Infinity"), "invalid price Infinity: must be > 0"),
        (order("a", "buy", "stop_market", "1"), "missing stop_price: required for stop_market orders"),
        (order("a", "sell", "stop_limit", "1", stop="1900"), "missing price: required for stop_limit orders"),
        (order("a", "sell", "stop_limit", "1", "1900", "0"), "invalid stop_price 0: must be > 0"),
        (order("a", "buy", "limit", "0.004", "2000"), "notional 8.000 below min_notional 10"),
        (
            order("a", "buy", "market", "1"),
            "no market price yet: a market order needs a trade, bar or quote first",
        ),
        (order("", "buy", "limit", "1", "2000"), "missing client_order_id"),
    ],
)
def test_invalid_orders_are_rejected_with_the_reason(cmd: SubmitOrder, reason: str) -> None:
    e = engine()
    assert reject_reason(e.submit(cmd, now=5)) == reason
    assert e.open_orders == {}
    assert balances(e)["USDT"] == (D("10000"), D("0"))


def test_order_for_another_symbol_is_rejected() -> None:
    e = engine()
    other = order("a", "buy", "limit", "1", "2000", symbol="BTC/USDT")
    assert reject_reason(e.submit(other)) == "wrong venue: this engine trades paper:ETH/USDT"


def test_buy_beyond_free_quote_is_rejected_as_insufficient_balance() -> None:
    e = engine(usdt="1000")
    reason = reject_reason(e.submit(order("a", "buy", "limit", "1", "2000")))
    assert reason == "insufficient balance: need 2004.000 USDT, free 1000 USDT"


def test_sell_beyond_base_balance_is_rejected_no_shorting() -> None:
    e = engine(eth="0.5")
    reason = reject_reason(e.submit(order("a", "sell", "limit", "1", "2000")))
    assert reason == "insufficient balance: need 1 ETH, free 0.5 ETH"


def test_reservations_of_open_orders_limit_later_orders() -> None:
    e = engine(usdt="3000")
    accept(e, order("a", "buy", "limit", "1", "2000"))  # holds 2004
    reason = reject_reason(e.submit(order("b", "buy", "limit", "1", "1000")))
    assert reason == "insufficient balance: need 1002.000 USDT, free 996.000 USDT"


def test_duplicate_client_order_id_is_rejected_even_after_the_order_filled() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "2000"))
    e.on_trade(trade("1999"))
    assert e.open_orders == {}
    assert reject_reason(e.submit(order("a", "buy", "limit", "1", "2000"))) == "duplicate client_order_id a"
    assert balances(e)["ETH"] == (D("6"), D("0"))


def test_duplicate_of_an_open_order_is_rejected_and_the_original_keeps_working() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "2000"))
    assert reject_reason(e.submit(order("a", "buy", "limit", "1", "2000"))) == "duplicate client_order_id a"
    assert list(e.open_orders) == ["a"]
    assert balances(e)["USDT"][1] == D("2004.000")


def test_engines_of_one_account_share_balances_and_venue_id_sequence() -> None:
    acct = account(usdt="3000")
    eth = PaperEngine(EX, SYM, INST, acct)
    btc_inst = Instrument(base="BTC", quote="USDT", tick_size=D("0.01"), step_size=D("0.001"))
    btc = PaperEngine(EX, "BTC/USDT", btc_inst, acct)
    accept(eth, order("a", "buy", "limit", "1", "2000"))
    reason = reject_reason(btc.submit(order("b", "buy", "limit", "0.1", "20000", symbol="BTC/USDT")))
    assert reason == "insufficient balance: need 2004.0000 USDT, free 996.000 USDT"
    assert accept(btc, order("c", "buy", "limit", "0.01", "20000", symbol="BTC/USDT")).venue_order_id == "2"


# --- limit orders -----------------------------------------------------------------------------


def test_resting_limit_buy_fills_at_its_price_as_maker_when_a_trade_prints_below() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "2000"))
    assert e.on_trade(trade("2001")) == []
    fill = only_fill(e.on_trade(trade("1999.5", ts=7_000)))
    assert (fill.client_order_id, fill.venue_order_id, fill.trade_id) == ("a", "1", "T1")
    assert (fill.last_qty, fill.last_price, fill.cum_qty, fill.leaves_qty) == (
        D("1"),
        D("2000"),
        D("1"),
        D("0"),
    )
    assert (fill.fee, fill.fee_asset, fill.liquidity, fill.ts_event) == (D("2.000"), "USDT", "maker", 7_000)
    assert balances(e) == {"ETH": (D("6"), D("0")), "USDT": (D("7998.000"), D("0"))}
    assert e.open_orders == {}


def test_limit_marketable_on_the_first_trade_fills_at_the_trade_price_as_taker() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "2000"))
    fill = only_fill(e.on_trade(trade("1990")))
    assert (fill.last_price, fill.fee, fill.liquidity) == (D("1990.00"), D("3.98"), "taker")
    assert balances(e)["USDT"] == (D("8006.02"), D("0"))


def test_resting_limit_sell_fills_when_a_trade_prints_at_its_price() -> None:
    e = engine()
    accept(e, order("a", "sell", "limit", "2", "2100"))
    assert e.on_trade(trade("2050")) == []
    fill = only_fill(e.on_trade(trade("2100")))
    assert (fill.last_qty, fill.last_price, fill.fee, fill.liquidity) == (
        D("2"),
        D("2100"),
        D("4.200"),
        "maker",
    )
    assert balances(e) == {"ETH": (D("3"), D("0")), "USDT": (D("14195.800"), D("0"))}


def test_limit_buy_on_bars_fills_at_limit_when_low_reaches_it_and_at_open_when_marketable() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "1990"))
    assert e.on_bar(bar("2000", "2010", "1995", "2005")) == []
    maker = only_fill(e.on_bar(bar("2000", "2010", "1985", "2005")))
    assert (maker.last_price, maker.liquidity) == (D("1990"), "maker")
    accept(e, order("b", "buy", "limit", "1", "1990"))
    taker = only_fill(e.on_bar(bar("1980", "1995", "1970", "1990")))
    assert (taker.last_price, taker.liquidity, taker.fee) == (D("1980.00"), "taker", D("3.96"))


def test_limit_sell_on_bars_fills_when_high_reaches_it() -> None:
    e = engine()
    accept(e, order("a", "sell", "limit", "1", "2050"))
    fill = only_fill(e.on_bar(bar("2000", "2060", "1990", "2040")))
    assert (fill.last_price, fill.liquidity) == (D("2050"), "maker")


def test_better_priced_limit_fills_first_when_trade_size_is_short() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "1990"))
    accept(e, order("b", "buy", "limit", "1", "1995"))
    e.on_trade(trade("2000"))
    out = e.on_trade(trade("1990", size="1.5"))
    fills = [(m.client_order_id, m.last_qty, m.last_price) for m in out if isinstance(m, OrderFilled)]
    assert fills == [("b", D("1"), D("1995")), ("a", D("0.5"), D("1990"))]
    assert e.open_orders["a"].leaves == D("0.5")


# --- market orders ----------------------------------------------------------------------------


def test_market_buy_fills_on_the_next_trade_with_adverse_slippage_and_taker_fee() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    assert e.submit(order("a", "buy", "market", "1"), now=5)[0].ts_event == 5
    fill = only_fill(e.on_trade(trade("2000", ts=9_000)))
    assert (fill.last_price, fill.fee, fill.liquidity, fill.ts_event) == (
        D("2002.00"),
        D("4.004"),
        "taker",
        9_000,
    )
    assert balances(e) == {"ETH": (D("6"), D("0")), "USDT": (D("7993.996"), D("0"))}


def test_market_sell_fills_below_the_trade_price_by_the_slippage() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "sell", "market", "2"))
    fill = only_fill(e.on_trade(trade("2000")))
    assert (fill.last_price, fill.fee) == (D("1998.00"), D("7.992"))
    assert balances(e) == {"ETH": (D("3"), D("0")), "USDT": (D("13988.008"), D("0"))}


def test_market_order_fills_in_parts_bounded_by_trade_size_times_participation() -> None:
    e = engine(part="0.5")
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "3"))
    assert e.on_trade(trade("2000", size="0.0015")) == []  # 0.00075 is below one step
    first = only_fill(e.on_trade(trade("2000", size="2")))
    assert (first.last_qty, first.cum_qty, first.leaves_qty) == (D("1"), D("1"), D("2"))
    second = only_fill(e.on_trade(trade("2010", size="10")))
    assert (second.last_qty, second.last_price, second.cum_qty, second.leaves_qty) == (
        D("2"),
        D("2012.01"),
        D("3"),
        D("0"),
    )
    assert second.trade_id == "T2"
    assert balances(e)["USDT"] == (D("10000") - D("2002.00") * D("1.002") - D("4024.02") * D("1.002"), D("0"))


def test_market_order_fills_at_the_next_bars_open_bounded_by_its_volume() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "1.5"))
    first = only_fill(e.on_bar(bar("2010", "2020", "2000", "2015", volume="1")))
    assert (first.last_qty, first.last_price, first.leaves_qty) == (D("1"), D("2012.01"), D("0.5"))
    second = only_fill(e.on_bar(bar("2020", "2030", "2010", "2025", volume="10")))
    assert (second.last_qty, second.last_price, second.leaves_qty) == (D("0.5"), D("2022.02"), D("0"))


def test_market_buy_that_gaps_past_its_reservation_fills_what_it_can_afford() -> None:
    e = engine(usdt="2500")
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "1"))
    fill, canceled = e.on_trade(trade("3000"))
    assert isinstance(fill, OrderFilled) and isinstance(canceled, OrderCanceled)
    assert (fill.last_qty, fill.last_price, fill.fee, fill.leaves_qty) == (
        D("0.83"),
        D("3003.00"),
        D("4.98498"),
        D("0.17"),
    )
    assert canceled.reason == "insufficient balance"
    assert balances(e) == {"ETH": (D("5.830"), D("0")), "USDT": (D("2.52502"), D("0"))}


def test_quotes_move_the_reference_price_but_never_fill() -> None:
    e = engine()
    quote = Quote(
        exchange=EX,
        symbol=SYM,
        ts_event=1,
        ts_recv=1,
        bid_price=D("1999"),
        bid_size=D("5"),
        ask_price=D("2001"),
        ask_size=D("5"),
    )
    assert e.on_quote(quote) == []
    accept(e, order("a", "buy", "market", "1"))
    assert balances(e)["USDT"][1] == D("2006.004")
    assert e.on_quote(quote) == []
    assert list(e.open_orders) == ["a"]


# --- cancel-replace (a native stop moved) -------------------------------------------------------


def test_replace_cancels_the_old_order_and_places_the_new_one_in_one_step() -> None:
    e = engine()
    total, _ = balances(e)["ETH"]  # (total, locked)
    everything = str(total)
    accept(e, order("a", "sell", "stop_market", everything, stop="2900"))
    out = e.submit(
        msgspec.structs.replace(order("b", "sell", "stop_market", everything, stop="2950"), replaces="a"),
        now=6,
    )
    assert [(type(m).__name__, m.client_order_id) for m in out] == [
        ("OrderCanceled", "a"),
        ("OrderAccepted", "b"),
    ]
    assert list(e.open_orders) == ["b"] and balances(e)["ETH"] == (total, total)


def test_replace_of_an_order_that_is_not_open_changes_nothing() -> None:
    e = engine()
    accept(e, order("a", "sell", "stop_market", "1", stop="2900"))
    out = e.submit(
        msgspec.structs.replace(order("b", "sell", "stop_market", "1", stop="2950"), replaces="gone"), now=6
    )
    assert reject_reason(out).startswith("replace refused: cancel failed")
    assert list(e.open_orders) == ["a"]


def test_replace_whose_new_order_fails_still_cancels_the_old_one_like_binance_2021() -> None:
    e = engine()
    total, _ = balances(e)["ETH"]
    accept(e, order("a", "sell", "stop_market", "1", stop="2900"))
    too_much = str(total + 1)
    out = e.submit(
        msgspec.structs.replace(order("b", "sell", "stop_market", too_much, stop="2950"), replaces="a"), now=6
    )
    assert [type(m).__name__ for m in out] == ["OrderCanceled", "OrderRejected"]
    assert not e.open_orders
