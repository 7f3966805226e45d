"""Market-feed actor (actors/market_feed.py): the validating gate between a venue adapter and the group.

Hostile input is dropped and counted per reason in ``rejected``; the actor keeps going,
later good messages pass, and only good trades/bars move ``SymbolState.last_price``.
"""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import pytest

from actors.bar_builder import NS
from actors.channels import Channel, Router
from actors.market_feed import MarketFeed
from actors.messages import (
    MARKET_TYPES,
    Bar,
    BookDelta,
    BookSnapshot,
    Message,
    OrderIntent,
    Quote,
    Signal,
    Trade,
)
from actors.state import SymbolState

EX, SYM = "paper", "BTC/USDT"


def trade(ts: int, price: str = "100", size: str = "1") -> Trade:
    return Trade(exchange=EX, symbol=SYM, ts_event=ts, ts_recv=ts, price=D(price), size=D(size))


def quote(ts: int, bid: str = "99", ask: str = "101", bid_size: str = "1", ask_size: str = "1") -> Quote:
    return Quote(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts,
        bid_price=D(bid),
        bid_size=D(bid_size),
        ask_price=D(ask),
        ask_size=D(ask_size),
    )


def bar(close_ts: int, o: str = "100", h: str = "110", lo: str = "90", c: str = "105", v: str = "10") -> Bar:
    return Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=close_ts,
        ts_recv=close_ts,
        ts_open=close_ts - 60,
        interval_s=60,
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(v),
    )


def signal(ts: int) -> Signal:
    return Signal(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts,
        strategy="s",
        side="buy",
        confidence=1.0,
        price=D("100"),
        reason="r",
    )


class Wired:
    def __init__(self, build_bars_s: int | None = None) -> None:
        self.router = Router()
        self.state = SymbolState(EX, SYM, "acct")
        self.inbox: Channel[Message] = Channel("market-feed", 64)
        self.out: Channel[Message] = Channel("downstream", 1024)
        self.router.subscribe(self.out, MARKET_TYPES)
        self.feed = MarketFeed(EX, SYM, self.router, self.inbox, self.state, build_bars_s)

    async def published(self) -> list[Message]:
        """Everything published so far (handle() publishes without waiting on this big channel)."""
        return await self.out.receive_batch() if self.out.depth() else []


# --- trades ---------------------------------------------------------------------------------

BAD_TRADES = {
    "nan_price": ("NaN", "1"),
    "snan_price": ("sNaN", "1"),
    "infinite_price": ("Infinity", "1"),
    "negative_infinite_price": ("-Infinity", "1"),
    "negative_price": ("-100", "1"),
    "zero_price": ("0", "1"),
    "negative_zero_price": ("-0", "1"),
    "nan_size": ("100", "NaN"),
    "infinite_size": ("100", "Infinity"),
    "negative_size": ("100", "-1"),
    "zero_size": ("100", "0"),
}


@pytest.mark.anyio
@pytest.mark.parametrize(("price", "size"), BAD_TRADES.values(), ids=BAD_TRADES.keys())
async def test_trade_with_bad_price_or_size_is_dropped_counted_and_the_feed_keeps_going(
    price: str, size: str
) -> None:
    # Arrange
    w = Wired()
    good_before, good_after = trade(1, "100"), trade(3, "101")
    with anyio.fail_after(2):
        await w.feed.handle(good_before)
        # Act
        await w.feed.handle(trade(2, price, size))
        assert w.state.last_price == D("100")
        await w.feed.handle(good_after)
        out = await w.published()
    # Assert
    assert out == [good_before, good_after]
    assert w.feed.rejected == {"bad_number": 1}
    assert w.feed.accepted["Trade"] == 2
    assert (w.state.last_price, w.state.last_ts_event) == (D("101"), 3)


@pytest.mark.anyio
async def test_trade_older_than_the_last_one_is_dropped_as_out_of_order() -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(trade(10, "100"))
        await w.feed.handle(trade(5, "50"))
        await w.feed.handle(trade(11, "101"))
        out = await w.published()
    assert out == [trade(10, "100"), trade(11, "101")]
    assert w.feed.rejected == {"out_of_order": 1}
    assert w.state.last_price == D("101")


@pytest.mark.anyio
async def test_trades_with_equal_event_time_are_all_accepted() -> None:
    w = Wired()
    with anyio.fail_after(2):
        for p in ("100", "100.5", "101"):
            await w.feed.handle(trade(10, p))
        out = await w.published()
    assert [m.price for m in out if isinstance(m, Trade)] == [D("100"), D("100.5"), D("101")]
    assert w.feed.rejected == {}


@pytest.mark.anyio
async def test_rejected_trade_does_not_advance_the_event_time_watermark() -> None:
    # A hostile trade far in the future must not make later good trades look out of order.
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(trade(10, "100"))
        await w.feed.handle(trade(10**18, "NaN"))
        await w.feed.handle(trade(11, "101"))
        out = await w.published()
    assert out == [trade(10, "100"), trade(11, "101")]
    assert w.feed.rejected == {"bad_number": 1}


# --- quotes ---------------------------------------------------------------------------------

BAD_QUOTES = {
    "nan_bid": dict(bid="NaN"),
    "infinite_ask": dict(ask="Infinity"),
    "negative_bid": dict(bid="-1"),
    "zero_bid": dict(bid="0"),
    "zero_ask": dict(ask="0"),
    "nan_bid_size": dict(bid_size="NaN"),
    "infinite_ask_size": dict(ask_size="Infinity"),
    "negative_ask_size": dict(ask_size="-0.5"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("fields", BAD_QUOTES.values(), ids=BAD_QUOTES.keys())
async def test_quote_with_bad_numbers_is_dropped_as_bad_number(fields: dict[str, str]) -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(quote(1, **fields))
        await w.feed.handle(quote(2))
        out = await w.published()
    assert out == [quote(2)]
    assert w.feed.rejected == {"bad_number": 1}
    assert w.feed.accepted["Quote"] == 1


@pytest.mark.anyio
@pytest.mark.parametrize(("bid", "ask"), [("101", "100"), ("100", "100")], ids=["crossed", "locked"])
async def test_crossed_or_locked_quote_is_dropped_as_crossed_quote(bid: str, ask: str) -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(quote(1, bid=bid, ask=ask))
        await w.feed.handle(quote(2, bid="99.99", ask="100"))
        out = await w.published()
    assert out == [quote(2, bid="99.99", ask="100")]
    assert w.feed.rejected == {"crossed_quote": 1}


@pytest.mark.anyio
async def test_quote_with_zero_sizes_passes() -> None:
    w = Wired()
    q = quote(1, bid_size="0", ask_size="0")
    with anyio.fail_after(2):
        await w.feed.handle(q)
        out = await w.published()
    assert out == [q]
    assert w.feed.rejected == {}


@pytest.mark.anyio
async def test_quotes_do_not_move_the_last_price() -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(quote(1, bid="99", ask="101"))
    assert w.state.last_price is None
    assert w.state.last_ts_event == 0


# --- bars -----------------------------------------------------------------------------------

BAD_BARS = {
    "nan_open": dict(o="NaN"),
    "infinite_high": dict(h="Infinity"),
    "zero_low": dict(lo="0"),
    "negative_close": dict(c="-105"),
    "nan_volume": dict(v="NaN"),
    "negative_volume": dict(v="-1"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("fields", BAD_BARS.values(), ids=BAD_BARS.keys())
async def test_bar_with_bad_numbers_is_dropped_as_bad_number(fields: dict[str, str]) -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(bar(60, **fields))
        assert w.state.last_price is None
        await w.feed.handle(bar(120))
        out = await w.published()
    assert out == [bar(120)]
    assert w.feed.rejected == {"bad_number": 1}
    assert (w.state.last_price, w.state.last_ts_event) == (D("105"), 120)


INCONSISTENT_BARS = {
    "high_below_close": dict(h="104"),
    "high_below_open": dict(o="111", c="95"),
    "low_above_open": dict(lo="101"),
    "low_above_close": dict(o="105", c="95", lo="96"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("fields", INCONSISTENT_BARS.values(), ids=INCONSISTENT_BARS.keys())
async def test_bar_whose_high_low_do_not_contain_open_close_is_dropped(fields: dict[str, str]) -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(bar(60, **fields))
        await w.feed.handle(bar(120))
        out = await w.published()
    assert out == [bar(120)]
    assert w.feed.rejected == {"inconsistent_bar": 1}


@pytest.mark.anyio
async def test_bar_with_zero_volume_passes() -> None:
    w = Wired()
    b = bar(60, v="0")
    with anyio.fail_after(2):
        await w.feed.handle(b)
        out = await w.published()
    assert out == [b]
    assert w.feed.rejected == {}


@pytest.mark.anyio
async def test_bar_not_after_the_last_bar_is_dropped_as_out_of_order() -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.feed.handle(bar(120, c="105"))
        await w.feed.handle(bar(120, c="106"))  # same close time: a repeat
        await w.feed.handle(bar(60, c="107"))  # older
        await w.feed.handle(bar(180, c="108"))
        out = await w.published()
    assert out == [bar(120, c="105"), bar(180, c="108")]
    assert w.feed.rejected == {"out_of_order": 2}
    assert w.state.last_price == D("108")


# --- other kinds ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unknown_message_kind_is_dropped_as_unknown_kind() -> None:
    w = Wired()
    intent = OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=2,
        ts_recv=2,
        intent_id="i",
        source="s",
        side="buy",
        order_type="market",
        quantity=D(1),
    )
    router_counts_before = dict(w.router.counts)
    with anyio.fail_after(2):
        await w.feed.handle(signal(1))
        await w.feed.handle(intent)
        await w.feed.handle(trade(3))
        out = await w.published()
    assert out == [trade(3)]
    assert w.feed.rejected == {"unknown_kind": 2}
    assert router_counts_before == {}
    assert w.router.counts == {Trade: 1}


@pytest.mark.anyio
async def test_book_messages_pass_through_unchanged() -> None:
    w = Wired()
    delta = BookDelta(
        exchange=EX, symbol=SYM, ts_event=1, ts_recv=1, bids=[(D("99"), D("0"))], first_seq=5, last_seq=6
    )
    snap = BookSnapshot(exchange=EX, symbol=SYM, ts_event=2, ts_recv=2, asks=[(D("101"), D("2"))], seq=7)
    with anyio.fail_after(2):
        await w.feed.handle(delta)
        await w.feed.handle(snap)
        out = await w.published()
    assert out == [delta, snap]
    assert (w.feed.accepted["BookDelta"], w.feed.accepted["BookSnapshot"]) == (1, 1)


@pytest.mark.anyio
async def test_hostile_stream_through_run_is_filtered_and_counted_exactly() -> None:
    # Arrange: a mixed stream through the inbox; the actor's run loop must survive all of it
    w = Wired()
    stream: list[Message] = [
        trade(1, "100"),
        trade(2, "NaN"),
        quote(3, bid="102", ask="101"),
        trade(4, "-1"),
        bar(60, h="1"),
        signal(5),
        trade(0, "99"),  # older than ts 1
        quote(6),
        bar(120, v="Infinity"),
        bar(180),
        bar(180),
        trade(7, "101", "0"),
        trade(8, "102"),
    ]
    good = [trade(1, "100"), quote(6), bar(180), trade(8, "102")]
    for m in stream:
        w.inbox.send_nowait(m)
    w.inbox.close()
    # Act
    with anyio.fail_after(2):
        await w.feed.run()
        out = await w.published()
    # Assert
    assert out == good
    assert w.feed.rejected == {
        "bad_number": 4,
        "crossed_quote": 1,
        "inconsistent_bar": 1,
        "unknown_kind": 1,
        "out_of_order": 2,
    }
    assert w.feed.accepted == {"Trade": 2, "Quote": 1, "Bar": 1, "BookDelta": 0, "BookSnapshot": 0}
    assert w.feed.handled == len(stream)
    assert (w.state.last_price, w.state.last_ts_event) == (D("102"), 8)


# --- bars built from trades -----------------------------------------------------------------


def built(start_s: int, o: str, h: str, lo: str, c: str, v: str, n: int, recv: int) -> Bar:
    return Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=(start_s + 60) * NS,
        ts_recv=recv,
        ts_open=start_s * NS,
        interval_s=60,
        open=D(o),
        high=D(h),
        low=D(lo),
        close=D(c),
        volume=D(v),
        trades=n,
    )


@pytest.mark.anyio
async def test_feed_builds_bars_from_trades_only_when_a_later_bucket_starts() -> None:
    # Arrange
    w = Wired(build_bars_s=60)
    first = [trade(0, "100", "1"), trade(10 * NS, "105", "2"), trade(59_999_999_999, "99", "0.5")]
    # Act / Assert: nothing but the trades while the first minute is open
    with anyio.fail_after(2):
        for t in first:
            await w.feed.handle(t)
        assert await w.published() == first
        t61 = trade(61 * NS, "101", "1")
        await w.feed.handle(t61)
        assert await w.published() == [t61, built(0, "100", "105", "99", "99", "3.5", 3, recv=61 * NS)]
        # minutes 2 and 3 see no trades: the next bar is minute 1's, and no empty bars appear
        t200 = trade(200 * NS, "102", "1")
        await w.feed.handle(t200)
        assert await w.published() == [t200, built(60, "101", "101", "101", "101", "1", 1, recv=200 * NS)]
    assert w.feed.accepted["Bar"] == 2
    assert w.feed.accepted["Trade"] == 5


@pytest.mark.anyio
async def test_rejected_trades_never_reach_the_bar_builder() -> None:
    w = Wired(build_bars_s=60)
    with anyio.fail_after(2):
        await w.feed.handle(trade(1 * NS, "100", "1"))
        await w.feed.handle(trade(2 * NS, "1000000", "NaN"))
        await w.feed.handle(trade(0, "1", "1"))  # out of order
        await w.feed.handle(trade(3 * NS, "Infinity", "1"))
        await w.feed.handle(trade(61 * NS, "101", "1"))
        out = await w.published()
    bars = [m for m in out if isinstance(m, Bar)]
    assert bars == [built(0, "100", "100", "100", "100", "1", 1, recv=61 * NS)]
    assert w.feed.rejected == {"bad_number": 2, "out_of_order": 1}
