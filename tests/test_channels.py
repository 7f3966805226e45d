"""Channel and Router semantics: batching, order, lossless back-pressure, quote conflation, fan-out.

The two ``test_held_quote_*`` tests pin bugs these tests found in actors/channels.py
(since fixed): a held quote lost at end of stream, or when a blocked send was cancelled.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import anyio
import pytest

from actors.channels import Channel, ChannelStats, Router, quote_conflation_key
from actors.messages import Bar, Message, OrderIntent, Quote, Trade

pytestmark = pytest.mark.anyio


def trade(i: int, symbol: str = "BTC/USDT") -> Trade:
    return Trade(exchange="x", symbol=symbol, ts_event=i, ts_recv=i, price=Decimal(i), size=Decimal(1))


def quote(i: int, symbol: str = "BTC/USDT") -> Quote:
    p = Decimal(i)
    return Quote(
        exchange="x", symbol=symbol, ts_event=i, ts_recv=i, bid_price=p, bid_size=p, ask_price=p, ask_size=p
    )


def intent(i: int) -> OrderIntent:
    return OrderIntent(
        exchange="x",
        symbol="BTC/USDT",
        ts_event=i,
        ts_recv=i,
        intent_id=f"i{i}",
        source="test",
        side="buy",
        order_type="market",
        quantity=Decimal(1),
    )


def ids(msgs: list[Message]) -> list[int]:
    return [m.ts_event for m in msgs]


def conflating(capacity: int) -> Channel[Message]:
    return Channel("c", capacity, quote_conflation_key)


async def drain(ch: Channel[Message], max_items: int = 1024) -> list[list[Message]]:
    """Every batch until end of stream."""
    batches = []
    while True:
        try:
            batches.append(await ch.receive_batch(max_items))
        except anyio.EndOfStream:
            return batches


# --- batching and order ------------------------------------------------------------------------


async def test_batch_returns_everything_buffered_in_order() -> None:
    ch: Channel[Message] = Channel("c", 16)
    for i in range(10):
        assert ch.send_nowait(trade(i))
    with anyio.fail_after(1):
        assert ids(await ch.receive_batch()) == list(range(10))
        for i in range(10, 13):
            ch.send_nowait(trade(i))
        assert ids(await ch.receive_batch(max_items=2)) == [10, 11]
        assert ids(await ch.receive_batch(max_items=2)) == [12]


async def test_receive_batch_waits_for_the_first_message() -> None:
    ch: Channel[Message] = Channel("c", 4)
    got: list[list[Message]] = []
    with anyio.fail_after(1):
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                got.append(await ch.receive_batch())

            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            ch.send_nowait(trade(1))
    assert [ids(b) for b in got] == [[1]]


async def test_end_of_stream_after_close_and_drain() -> None:
    ch: Channel[Message] = Channel("c", 4)
    ch.send_nowait(trade(1))
    ch.send_nowait(trade(2))
    ch.close()
    with anyio.fail_after(1):
        assert [ids(b) for b in await drain(ch)] == [[1, 2]]
        with pytest.raises(anyio.EndOfStream):
            await ch.receive_batch()


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^channel 'c': capacity must be >= 1, got 0$"):
        Channel("c", 0)


# --- lossless back-pressure --------------------------------------------------------------------


@pytest.mark.parametrize("mk", [trade, intent], ids=["trade", "intent"])
async def test_lossless_never_dropped_send_waits_for_consumer(mk: Callable[[int], Message]) -> None:
    ch: Channel[Message] = conflating(2)
    done = anyio.Event()
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                for i in range(6):
                    await ch.send(mk(i))
                done.set()

            tg.start_soon(produce)
            await anyio.wait_all_tasks_blocked()
            assert not done.is_set()  # the producer waits: the buffer (2) is full
            assert ch.depth() == 2 and ch.blocked_sends == 1
            assert not ch.send_nowait(mk(99))  # lossless: refused, not dropped or held
            got: list[Message] = []
            while len(got) < 6:
                got += await ch.receive_batch()
            await done.wait()
    assert ids(got) == list(range(6))
    assert ch.conflated == 0 and ch.sent == ch.received == 6


async def test_many_producers_lossless_under_pressure() -> None:
    ch: Channel[Message] = Channel("c", 3)
    got: list[Message] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for p in range(4):

                async def produce(p: int = p) -> None:
                    for i in range(200):
                        await ch.send(trade(p * 1000 + i))

                tg.start_soon(produce)

            async def consume() -> None:
                while len(got) < 800:
                    got.extend(await ch.receive_batch(max_items=5))

            tg.start_soon(consume)
    assert len(got) == 800 and ch.sent == ch.received == 800
    for p in range(4):  # each producer's messages arrive in its order
        assert [m.ts_event for m in got if m.ts_event // 1000 == p] == [p * 1000 + i for i in range(200)]


# --- quote conflation --------------------------------------------------------------------------


async def test_quotes_conflated_when_full_newest_wins() -> None:
    ch = conflating(2)
    ch.send_nowait(trade(1))
    ch.send_nowait(trade(2))
    for i in range(10, 15):  # five quotes for BTC/USDT while full: the newest is kept
        assert ch.send_nowait(quote(i))
    assert ch.send_nowait(quote(20, "ETH/USDT"))
    assert ch.send_nowait(quote(21, "ETH/USDT"))
    assert ch.conflated == 4 + 1
    assert ch.depth() == 4
    with anyio.fail_after(1):
        batch = await ch.receive_batch()
    # older buffered messages first, then the newest quote per key in first-held key order
    assert ids(batch) == [1, 2, 14, 21]
    assert ch.statistics() == ChannelStats(
        name="c", capacity=2, depth=0, sent=4, received=4, conflated=5, blocked_sends=0
    )


async def test_conflated_quotes_delivered_before_later_messages_send_nowait() -> None:
    ch = conflating(3)
    for i in (1, 2, 3):
        ch.send_nowait(trade(i))
    ch.send_nowait(quote(4))
    ch.send_nowait(quote(5))
    with anyio.fail_after(1):
        assert ids(await ch.receive_batch(max_items=2)) == [1, 2]
        assert ch.send_nowait(trade(6))  # room again: the held quote goes into the buffer first
        assert not ch.send_nowait(trade(7))  # full again: a lossless message is refused, not held
        assert ids(await ch.receive_batch()) == [3, 5, 6]


async def test_conflated_quotes_delivered_before_later_messages_blocking_send() -> None:
    ch = conflating(2)
    ch.send_nowait(trade(1))
    ch.send_nowait(trade(2))
    ch.send_nowait(quote(3))
    ch.send_nowait(quote(4))
    got: list[int] = []
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:

            async def produce() -> None:
                await ch.send(trade(5))
                await ch.send(trade(6))
                ch.close()

            tg.start_soon(produce)
            await anyio.wait_all_tasks_blocked()
            assert ch.blocked_sends == 1
            for batch in await drain(ch):
                got += ids(batch)
    assert got == [1, 2, 4, 5, 6]
    assert ch.conflated == 1 and ch.sent == ch.received == 5


async def test_quotes_pass_through_when_not_full() -> None:
    ch = conflating(8)
    for i in range(5):
        ch.send_nowait(quote(i))
    with anyio.fail_after(1):
        assert ids(await ch.receive_batch()) == [0, 1, 2, 3, 4]
    assert ch.conflated == 0


async def test_without_conflate_key_quotes_are_lossless() -> None:
    ch: Channel[Message] = Channel("c", 1)
    assert ch.send_nowait(quote(1))
    assert not ch.send_nowait(quote(2))
    assert ch.conflated == 0 and ch.depth() == 1


async def test_held_quote_delivered_when_closed_after_exact_max_items_drain() -> None:
    """Was lost: a batch that stops at exactly ``max_items`` leaves the buffer empty and the
    quote held; after close(), receive_batch() raised EndOfStream without looking at it."""
    ch = conflating(2)
    ch.send_nowait(trade(1))
    ch.send_nowait(trade(2))
    ch.send_nowait(quote(3))  # held: the buffer is full
    with anyio.fail_after(1):
        assert ids(await ch.receive_batch(max_items=2)) == [1, 2]
        ch.close()
        assert [ids(b) for b in await drain(ch)] == [[3]]


async def test_held_quote_kept_when_blocked_send_is_cancelled() -> None:
    """Was lost: send() removed the held quote before awaiting its delivery, so a cancelled
    send (actor restart, shutdown) dropped the newest quote uncounted."""
    ch = conflating(1)
    ch.send_nowait(trade(1))
    ch.send_nowait(quote(2))  # held
    with anyio.fail_after(1):
        with anyio.move_on_after(0.05):
            await ch.send(trade(3))  # blocks on the held quote, then is cancelled
        ch.close()
        got = [m for b in await drain(ch) for m in b]
    assert ids(got) == [1, 2]  # the trade was never accepted, the quote was


# --- router ------------------------------------------------------------------------------------


async def test_router_fans_out_and_tap_sees_everything() -> None:
    tapped: list[Message] = []
    router = Router(tap=tapped.append)
    trades_a: Channel[Message] = Channel("a", 16)
    trades_b: Channel[Message] = Channel("b", 16)
    bars: Channel[Message] = Channel("bars", 16)
    router.subscribe(trades_a, [Trade])
    router.subscribe(trades_b, [Trade, Bar])
    router.subscribe(trades_b, [Trade])  # idempotent
    router.subscribe(bars, [Bar])
    bar = Bar(
        exchange="x",
        symbol="BTC/USDT",
        ts_event=60,
        ts_recv=60,
        ts_open=0,
        interval_s=60,
        open=Decimal(1),
        high=Decimal(1),
        low=Decimal(1),
        close=Decimal(1),
        volume=Decimal(1),
    )
    msgs: list[Message] = [trade(1), bar, trade(2), quote(3)]  # nobody subscribed to quotes
    with anyio.fail_after(1):
        await router.publish_many(msgs)
        assert ids(await trades_a.receive_batch()) == [1, 2]
        assert ids(await trades_b.receive_batch()) == [1, 60, 2]
        assert ids(await bars.receive_batch()) == [60]
    assert tapped == msgs
    assert router.counts == {Trade: 2, Bar: 1, Quote: 1}
    assert router.routes_for(Trade) == (trades_a, trades_b)
    assert router.routes_for(Quote) == ()
    router.unsubscribe(trades_b)
    assert router.routes_for(Trade) == (trades_a,) and router.routes_for(Bar) == (bars,)


async def test_router_publish_waits_for_a_full_lossless_subscriber() -> None:
    router = Router()
    slow: Channel[Message] = Channel("slow", 1)
    router.subscribe(slow, [Trade])
    got: list[int] = []
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:

            async def publish() -> None:
                for i in range(5):
                    await router.publish(trade(i))
                slow.close()

            tg.start_soon(publish)
            await anyio.wait_all_tasks_blocked()
            assert slow.blocked_sends == 1 and router.counts == {Trade: 2}
            for batch in await drain(slow):
                got += ids(batch)
    assert got == [0, 1, 2, 3, 4]


async def test_statistics_counts() -> None:
    ch = conflating(3)
    assert ch.statistics() == ChannelStats(
        name="c", capacity=3, depth=0, sent=0, received=0, conflated=0, blocked_sends=0
    )
    for i in range(3):
        ch.send_nowait(trade(i))
    ch.send_nowait(quote(10))
    ch.send_nowait(quote(11))
    assert ch.statistics() == ChannelStats(
        name="c", capacity=3, depth=4, sent=3, received=0, conflated=1, blocked_sends=0
    )
    with anyio.fail_after(1):
        await ch.receive_batch(max_items=2)
    assert ch.statistics() == ChannelStats(
        name="c", capacity=3, depth=2, sent=3, received=2, conflated=1, blocked_sends=0
    )
    with anyio.fail_after(1):
        assert ids(await ch.receive_batch()) == [2, 11]
    assert ch.statistics() == ChannelStats(
        name="c", capacity=3, depth=0, sent=4, received=4, conflated=1, blocked_sends=0
    )
