"""Bounded in-process channels with the batch-drain pattern, and the router that fans messages out.

A :class:`Channel` wraps one anyio memory object stream.  Producers call
:meth:`Channel.send_nowait` and only ``await`` (:meth:`Channel.send`) when the buffer is
full; consumers ``await`` once for the first message of a batch and then drain with
``receive_nowait`` until the buffer is empty (:meth:`Channel.receive_batch`).  Measured
on this project's machines that is ~25x the throughput of one await per message.

Back-pressure policy: messages for which ``conflate_key`` returns a key (quotes) are
conflated when the buffer is full — the newest message per key is kept aside and
delivered after the buffered ones, older ones are dropped and counted.  Every other
message (trades, bars, the whole order path) is never dropped: the producer waits.

A :class:`Router` maps message types to the channels that subscribed to them and
offers every published message to an optional non-blocking tap (the Redis mirror).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

import anyio
import msgspec
from anyio import WouldBlock

from actors.histogram import OrderLatency
from actors.messages import Message, Quote

T = TypeVar("T")


class ChannelStats(msgspec.Struct, frozen=True):
    """A snapshot of one channel's counters, for /status and /metrics."""

    name: str
    capacity: int
    depth: int
    sent: int
    received: int
    conflated: int
    blocked_sends: int


def quote_conflation_key(msg: object) -> Hashable | None:
    """Quotes are conflated per (exchange, symbol); everything else is lossless."""
    if type(msg) is Quote:
        return (msg.exchange, msg.symbol)
    return None


class Channel(Generic[T]):
    """One bounded memory stream plus counters; one consumer, any number of producers."""

    def __init__(
        self,
        name: str,
        capacity: int = 4096,
        conflate_key: Callable[[T], Hashable | None] | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"channel {name!r}: capacity must be >= 1, got {capacity}")
        self.name = name
        self.capacity = capacity
        self._tx, self._rx = anyio.create_memory_object_stream[T](capacity)
        self._conflate_key = conflate_key
        self._pending: dict[Hashable, T] = {}
        self._room: anyio.Event | None = None  # set by the consumer after it took a batch
        self.sent = 0
        self.received = 0
        self.conflated = 0
        self.blocked_sends = 0

    # -- producer side -------------------------------------------------------------------
    def send_nowait(self, item: T) -> bool:
        """Deliver without waiting. Returns False only for a lossless item when the buffer is full."""
        if self._pending and not self._flush_pending():
            return self._hold_or_refuse(item)
        try:
            self._tx.send_nowait(item)
        except WouldBlock:
            return self._hold_or_refuse(item)
        self.sent += 1
        return True

    async def send(self, item: T) -> None:
        """Deliver, waiting for room if ``item`` is lossless and the buffer is full.

        Waiting happens on an event the consumer sets after each batch; held quotes stay in
        ``_pending`` until a synchronous send moves them, so a cancelled ``send`` loses nothing
        and the consumer can never receive a held quote twice.
        """
        if self.send_nowait(item):
            return
        self.blocked_sends += 1
        while True:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
            if self.send_nowait(item):
                return

    def _hold_or_refuse(self, item: T) -> bool:
        key = self._conflate_key(item) if self._conflate_key is not None else None
        if key is None:
            return False
        if key in self._pending:
            self.conflated += 1
        self._pending[key] = item
        return True

    def _flush_pending(self) -> bool:
        """Move conflated items into the buffer, oldest key first. True when none are left."""
        while self._pending:
            key, held = next(iter(self._pending.items()))
            try:
                self._tx.send_nowait(held)
            except WouldBlock:
                return False
            del self._pending[key]
            self.sent += 1
        return True

    def close(self) -> None:
        """End of stream for the consumer once it has drained what is buffered."""
        self._tx.close()

    # -- consumer side -------------------------------------------------------------------
    async def receive_batch(self, max_items: int = 1024) -> list[T]:
        """Wait for at least one item, then take everything already buffered (up to ``max_items``).

        Raises ``anyio.EndOfStream`` once the channel is closed and drained.
        """
        rx = self._rx
        try:
            first = rx.receive_nowait()
        except (WouldBlock, anyio.EndOfStream):
            if self._pending:
                return self._take_pending()
            first = await rx.receive()
        batch = [first]
        append = batch.append
        try:
            while len(batch) < max_items:
                append(rx.receive_nowait())
        except (WouldBlock, anyio.EndOfStream):
            # Buffer empty: conflated items are newer than anything that was buffered.
            if self._pending:
                self.received += len(batch)
                batch.extend(self._take_pending())
                self._wake_senders()
                return batch
        self.received += len(batch)
        self._wake_senders()
        return batch

    def _wake_senders(self) -> None:
        room = self._room
        if room is not None:
            self._room = None
            room.set()

    def _take_pending(self) -> list[T]:
        items = list(self._pending.values())
        self._pending.clear()
        self._wake_senders()
        self.sent += len(items)
        self.received += len(items)
        return items

    def depth(self) -> int:
        return self._tx.statistics().current_buffer_used + len(self._pending)

    def statistics(self) -> ChannelStats:
        return ChannelStats(
            name=self.name,
            capacity=self.capacity,
            depth=self.depth(),
            sent=self.sent,
            received=self.received,
            conflated=self.conflated,
            blocked_sends=self.blocked_sends,
        )


Tap = Callable[[Message], None]


class Router:
    """Fans each published message out to the channels subscribed to its type, and to the tap."""

    def __init__(self, tap: Tap | None = None) -> None:
        self._routes: dict[type[Message], tuple[Channel[Message], ...]] = {}
        self.tap = tap
        self.counts: dict[type[Message], int] = {}
        self.latency = OrderLatency()  # frame received -> order on the wire, for this group

    def subscribe(self, channel: Channel[Message], types: Iterable[type[Message]]) -> None:
        for t in types:
            current = self._routes.get(t, ())
            if channel not in current:
                self._routes[t] = (*current, channel)

    def unsubscribe(self, channel: Channel[Message]) -> None:
        for t, chans in list(self._routes.items()):
            self._routes[t] = tuple(c for c in chans if c is not channel)

    def routes_for(self, msg_type: type[Message]) -> tuple[Channel[Message], ...]:
        return self._routes.get(msg_type, ())

    def set_routes(self, msg_type: type[Message], channels: Iterable[Channel[Message]]) -> None:
        """Replace the subscribers of ``msg_type`` (a backtest holds bars back this way)."""
        self._routes[msg_type] = tuple(channels)

    def publish_nowait(self, msg: Message) -> tuple[Channel[Message], ...]:
        """Offer ``msg`` to the tap and every subscriber without waiting.

        Returns the subscribers whose buffer was full for a lossless message (normally none):
        the caller must ``await ch.send(msg)`` on each before publishing anything else.
        """
        counts = self.counts
        t = type(msg)
        counts[t] = counts.get(t, 0) + 1
        tap = self.tap
        if tap is not None:
            tap(msg)
        full: tuple[Channel[Message], ...] = ()
        for ch in self._routes.get(t, ()):
            if not ch.send_nowait(msg):
                full += (ch,)
        return full

    async def publish(self, msg: Message) -> None:
        """Deliver ``msg`` everywhere, waiting only on subscribers that are full."""
        for ch in self.publish_nowait(msg):
            await ch.send(msg)

    async def publish_many(self, msgs: Iterable[Message]) -> None:
        for msg in msgs:
            await self.publish(msg)
