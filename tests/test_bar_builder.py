"""Time bars from trades (actors/bar_builder.py): complete bars only, no empty-interval bars, exact OHLCV."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.bar_builder import NS, BarBuilder
from actors.messages import Bar, Trade

EX, SYM = "paper", "XRP/ETH"


def trade(ts_s: float, price: str, size: str, recv: int | None = None) -> Trade:
    ts = round(ts_s * NS)
    return Trade(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts if recv is None else recv,
        price=D(price),
        size=D(size),
    )


def bar(
    start_s: int, o: str, h: str, lo: str, c: str, v: str, n: int, recv: int, interval_s: int = 60
) -> Bar:
    return Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=(start_s + interval_s) * NS,
        ts_recv=recv,
        ts_open=start_s * NS,
        interval_s=interval_s,
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(v),
        trades=n,
    )


def test_trades_within_one_interval_produce_no_bar_until_a_later_bucket_starts() -> None:
    # Arrange
    b = BarBuilder(EX, SYM, 60)
    # Act
    out = [
        b.on_trade(t, t.ts_recv)
        for t in (trade(0, "100", "1"), trade(10, "105", "2"), trade(59.999, "99", "0.5"))
    ]
    # Assert
    assert out == [None, None, None]


def test_first_trade_of_the_next_bucket_emits_the_completed_bar_with_exact_ohlcv() -> None:
    b = BarBuilder(EX, SYM, 60)
    for t in (
        trade(0, "100", "1"),
        trade(10, "105", "2"),
        trade(20, "98", "0.25"),
        trade(59.999, "99", "0.5"),
    ):
        b.on_trade(t, t.ts_recv)
    nxt = trade(61, "101", "1", recv=777)
    assert b.on_trade(nxt, nxt.ts_recv) == bar(0, "100", "105", "98", "99", "3.75", 4, recv=777)


def test_trade_exactly_on_the_boundary_belongs_to_the_new_bucket() -> None:
    b = BarBuilder(EX, SYM, 60)
    b.on_trade(trade(59, "100", "1"), 1)
    done = b.on_trade(trade(60, "200", "2"), 2)
    assert done == bar(0, "100", "100", "100", "100", "1", 1, recv=2)
    assert b.flush(3) == bar(60, "200", "200", "200", "200", "2", 1, recv=3)


def test_empty_intervals_produce_no_bars() -> None:
    # Arrange: trades in buckets 0 and 5 (60 s bars); buckets 1..4 are empty
    b = BarBuilder(EX, SYM, 60)
    b.on_trade(trade(30, "10", "1"), 1)
    # Act
    done = b.on_trade(trade(330, "11", "1"), 2)
    last = b.flush(3)
    # Assert: exactly one bar per bucket that had trades
    assert done == bar(0, "10", "10", "10", "10", "1", 1, recv=2)
    assert last == bar(300, "11", "11", "11", "11", "1", 1, recv=3)


def test_flush_emits_the_bar_in_progress_once_then_nothing() -> None:
    b = BarBuilder(EX, SYM, 5)
    b.on_trade(trade(1, "2.5", "3"), 1)
    b.on_trade(trade(2, "2.4", "1"), 2)
    assert b.flush(9) == bar(0, "2.5", "2.5", "2.4", "2.4", "4", 2, recv=9, interval_s=5)
    assert b.flush(10) is None


def test_flush_with_no_trades_returns_none() -> None:
    assert BarBuilder(EX, SYM, 60).flush(1) is None


def test_after_flush_the_next_trade_starts_a_fresh_bar() -> None:
    b = BarBuilder(EX, SYM, 60)
    b.on_trade(trade(1, "5", "1"), 1)
    b.flush(2)
    assert b.on_trade(trade(2, "6", "1"), 3) is None  # same bucket as before the flush, but a new bar
    assert b.flush(4) == bar(0, "6", "6", "6", "6", "1", 1, recv=4)


@pytest.mark.parametrize("interval", [0, -60])
def test_non_positive_interval_is_refused(interval: int) -> None:
    with pytest.raises(ValueError, match="bar interval must be positive"):
        BarBuilder(EX, SYM, interval)
