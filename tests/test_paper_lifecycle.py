"""Paper engine order life cycle: ioc/fok, stops on trades and bars, cancels, bad market data, reloads."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.messages import Bar, OrderCanceled, OrderExpired, OrderFilled, Quote, Side, Trade
from daemon.config import PaperAccount
from tests.test_paper_engine import (
    EX,
    SYM,
    accept,
    balances,
    bar,
    cancel,
    engine,
    only_fill,
    order,
    reject_reason,
    trade,
)

# --- ioc / fok ------------------------------------------------------------------------------------


def test_ioc_fills_what_the_next_trade_offers_and_cancels_the_rest() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "3", tif="ioc"))
    fill, canceled = e.on_trade(trade("2000", size="1"))
    assert isinstance(fill, OrderFilled) and (fill.last_qty, fill.leaves_qty) == (D("1"), D("2"))
    assert isinstance(canceled, OrderCanceled) and (canceled.client_order_id, canceled.reason) == ("a", "ioc")
    assert balances(e)["USDT"] == (D("7993.996"), D("0"))


def test_ioc_limit_that_does_not_cross_the_next_trade_is_canceled_unfilled() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "1990", tif="ioc"))
    (canceled,) = e.on_trade(trade("2000"))
    assert isinstance(canceled, OrderCanceled) and canceled.reason == "ioc"
    assert balances(e)["USDT"] == (D("10000"), D("0"))


def test_fok_expires_when_the_next_trade_cannot_fill_it_all() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "3", tif="fok"))
    (expired,) = e.on_trade(trade("2000", size="2"))
    assert isinstance(expired, OrderExpired) and (expired.client_order_id, expired.venue_order_id) == (
        "a",
        "1",
    )
    assert balances(e) == {"ETH": (D("5"), D("0")), "USDT": (D("10000"), D("0"))}


def test_fok_fills_completely_when_the_next_trade_is_large_enough() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "2", "2000", tif="fok"))
    fill = only_fill(e.on_trade(trade("1999", size="2")))
    assert (fill.last_qty, fill.last_price, fill.leaves_qty) == (D("2"), D("1999.00"), D("0"))


# --- stops ------------------------------------------------------------------------------------------


def test_buy_stop_market_triggers_when_a_trade_reaches_the_stop_and_fills_with_slippage() -> None:
    e = engine()
    accept(e, order("a", "buy", "stop_market", "1", stop="2050"))
    assert e.on_trade(trade("2049.99")) == []
    fill = only_fill(e.on_trade(trade("2050")))
    assert (fill.last_price, fill.liquidity, fill.fee) == (D("2052.05"), "taker", D("4.1041"))


def test_sell_stop_market_triggers_when_a_trade_prints_below_the_stop() -> None:
    e = engine()
    accept(e, order("a", "sell", "stop_market", "1", stop="1950"))
    assert e.on_trade(trade("1950.01")) == []
    assert only_fill(e.on_trade(trade("1940"))).last_price == D("1938.06")


@pytest.mark.parametrize(
    ("side", "stop", "ohlc", "price"),
    [
        ("buy", "2050", ("2000", "2060", "1990", "2055"), "2052.05"),  # at the stop
        ("buy", "2050", ("2070", "2080", "2065", "2075"), "2072.07"),  # gapped over: at the open
        ("sell", "1950", ("2000", "2005", "1940", "1945"), "1948.05"),
        ("sell", "1950", ("1900", "1910", "1890", "1905"), "1898.10"),
    ],
)
def test_stop_market_on_bars_fills_from_the_worse_of_open_and_stop(
    side: Side, stop: str, ohlc: tuple[str, str, str, str], price: str
) -> None:
    e = engine()
    accept(e, order("a", side, "stop_market", "1", stop=stop))
    assert only_fill(e.on_bar(bar(*ohlc))).last_price == D(price)


def test_stop_market_on_a_bar_that_does_not_reach_the_stop_stays_open() -> None:
    e = engine()
    accept(e, order("a", "buy", "stop_market", "1", stop="2050"))
    assert e.on_bar(bar("2000", "2049.99", "1990", "2040")) == []
    assert list(e.open_orders) == ["a"]


def test_stop_limit_triggered_inside_its_limit_takes_liquidity_at_the_trade_price() -> None:
    e = engine()
    accept(e, order("a", "buy", "stop_limit", "1", "2060", "2050"))
    fill = only_fill(e.on_trade(trade("2055")))
    assert (fill.last_price, fill.liquidity, fill.fee) == (D("2055.00"), "taker", D("4.11"))


def test_stop_limit_triggered_beyond_its_limit_rests_and_fills_later_as_maker() -> None:
    e = engine()
    accept(e, order("a", "buy", "stop_limit", "1", "2052", "2050"))
    assert e.on_trade(trade("2055")) == []
    assert e.open_orders["a"].triggered
    fill = only_fill(e.on_trade(trade("2051")))
    assert (fill.last_price, fill.liquidity) == (D("2052"), "maker")


def test_stop_limit_on_bars_triggers_on_the_low_and_then_rests_at_its_limit() -> None:
    e = engine()
    accept(e, order("a", "sell", "stop_limit", "1", "1960", "1950"))
    assert e.on_bar(bar("2000", "2000", "1940", "1945")) == []  # triggered at 1950, limit 1960 not reached
    fill = only_fill(e.on_bar(bar("1945", "1965", "1940", "1950")))
    assert (fill.last_price, fill.liquidity) == (D("1960"), "maker")


def test_untriggered_stop_limit_does_not_fill_as_a_limit() -> None:
    e = engine()
    accept(e, order("a", "sell", "stop_limit", "1", "1940", "1950"))
    assert e.on_trade(trade("2000")) == []  # above the 1940 limit, but the stop has not traded
    assert not e.open_orders["a"].triggered


# --- cancels ------------------------------------------------------------------------------------------


def test_cancel_of_an_open_order_releases_its_reservation() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "1", "2000"))
    (canceled,) = e.cancel(cancel("a"), now=11)
    assert isinstance(canceled, OrderCanceled)
    assert (canceled.client_order_id, canceled.venue_order_id, canceled.reason, canceled.ts_event) == (
        "a",
        "1",
        "canceled",
        11,
    )
    assert balances(e)["USDT"] == (D("10000"), D("0"))


def test_cancel_by_venue_order_id_alone() -> None:
    e = engine()
    accept(e, order("a", "sell", "limit", "1", "2100"))
    (canceled,) = e.cancel(cancel("", venue_order_id="1"))
    assert isinstance(canceled, OrderCanceled) and canceled.client_order_id == "a"


def test_cancel_of_a_partly_filled_order_keeps_the_fill_and_releases_the_rest() -> None:
    e = engine()
    accept(e, order("a", "buy", "limit", "2", "2000"))
    e.on_trade(trade("2001"))
    e.on_trade(trade("2000", size="0.5"))
    (canceled,) = e.cancel(cancel("a"))
    assert isinstance(canceled, OrderCanceled)
    assert balances(e) == {"ETH": (D("5.5"), D("0")), "USDT": (D("8999.0000"), D("0"))}


@pytest.mark.parametrize("when", ["unknown", "filled", "canceled"])
def test_cancel_of_an_unknown_or_finished_order_is_rejected(when: str) -> None:
    e = engine()
    if when != "unknown":
        accept(e, order("a", "buy", "limit", "1", "2000"))
        if when == "filled":
            e.on_trade(trade("1999"))
        else:
            e.cancel(cancel("a"))
    assert reject_reason(e.cancel(cancel("a"))) == "cancel rejected: unknown order a"


# --- bad market data ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        trade("NaN"),
        trade("sNaN"),
        trade("Infinity"),
        trade("-2000"),
        trade("0"),
        trade("2000", size="NaN"),
        trade("2000", size="-1"),
        bar("NaN", "2010", "1990", "2000"),
        bar("2000", "2010", "0", "2000"),
        bar("2000", "2010", "-5", "2000"),
        bar("2000", "1990", "1980", "2000"),  # high below open
        bar("2000", "2010", "1990", "2000", volume="-1"),
        Quote(
            exchange=EX,
            symbol=SYM,
            ts_event=1,
            ts_recv=1,
            bid_price=D("0"),
            bid_size=D("1"),
            ask_price=D("NaN"),
            ask_size=D("1"),
        ),
    ],
)
def test_non_finite_or_non_positive_market_data_is_ignored_and_counted(bad: Trade | Bar | Quote) -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "1"))
    if isinstance(bad, Trade):
        assert e.on_trade(bad) == []
    elif isinstance(bad, Bar):
        assert e.on_bar(bad) == []
    else:
        assert e.on_quote(bad) == []
    assert (e.rejected_market_events, e.last_price) == (1, D("2000"))
    assert only_fill(e.on_trade(trade("2000"))).last_price == D("2002.00")


def test_trade_with_no_open_orders_only_updates_the_last_price() -> None:
    e = engine()
    assert e.on_trade(trade("2000.5")) == []
    assert (e.last_price, e.rejected_market_events) == (D("2000.5"), 0)


def test_config_reload_changes_fees_for_later_fills_and_keeps_balances() -> None:
    e = engine()
    e.on_trade(trade("2000"))
    accept(e, order("a", "buy", "market", "1"))
    e.account.update_config(
        PaperAccount(balances={"USDT": D("1")}, taker_fee=D("0.003"), slippage_bps=D("0"))
    )
    fill = only_fill(e.on_trade(trade("2000")))
    assert (fill.last_price, fill.fee) == (D("2000.00"), D("6.000"))
    assert balances(e)["USDT"] == (D("7994.000"), D("0"))
