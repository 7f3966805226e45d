"""Turns for the depth snapshots of one venue host: the oldest stale book first, a few at a time.

Takes: a book's request for a snapshot turn (:meth:`ResyncQueue.turn`, with the time the book went
stale).  Gives: the turn, when it is this book's: at most ``concurrency`` snapshots of the host are
in flight, the book stale the longest goes next, and nobody's turn starts while the host's
:class:`~adapters.binance.ratelimit.RateLimiter` is in a 429 back-off (``Retry-After``) or a 418
ban.  The weight itself is paced by the limiter (background requests leave the order path its
reserve); this queue spreads a mass resync (every book of 200 symbols after a reconnect) over time
in the order that matters, instead of 200 requests at once.

One queue per venue host for the whole process (:func:`shared_resync_queue`), like the limiter:
every feed of that host takes its turns here.  Pure bookkeeping on anyio events, no task of its
own: a waiting book's task belongs to its connection's task group.
"""

from __future__ import annotations

import heapq
import itertools
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from adapters.binance.ratelimit import RateLimiter, shared_limiter, venue_key

__all__ = ["ResyncQueue", "shared_resync_queue"]


@dataclass(order=True)
class _Waiter:
    stale_since: float
    seq: int
    event: anyio.Event = field(compare=False, default_factory=anyio.Event)


class ResyncQueue:
    """Snapshot turns of one venue host (``limiter`` is the host's)."""

    def __init__(self, limiter: RateLimiter, *, concurrency: int = 2) -> None:
        self.limiter = limiter
        self.concurrency = concurrency
        self.active = 0
        self.granted = 0  # turns given so far
        self.limits_tried = False  # a feed asked exchangeInfo for the venue's rateLimits
        self.limits_lock = anyio.Lock()  # snapshots wait for that answer: it may shrink the windows
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()

    @property
    def waiting(self) -> int:
        return len(self._heap)

    @asynccontextmanager
    async def turn(self, stale_since: float) -> AsyncIterator[None]:
        """Wait for this book's turn (``stale_since``: ``time.monotonic()`` when it went stale)."""
        me = _Waiter(stale_since, next(self._seq))
        heapq.heappush(self._heap, me)
        try:
            while True:
                if self.active < self.concurrency and self._heap[0] is me:
                    await self._until_allowed()
                    if self.active < self.concurrency and self._heap[0] is me:
                        break
                me.event = anyio.Event()
                await me.event.wait()
        except BaseException:
            self._heap.remove(me)
            heapq.heapify(self._heap)
            self._wake()
            raise
        heapq.heappop(self._heap)
        self.active += 1
        self.granted += 1
        self._wake()
        try:
            yield
        finally:
            self.active -= 1
            self._wake()

    async def _until_allowed(self) -> None:
        """Sleep through a 429 back-off or a 418 ban of the host: no request would be allowed."""
        while True:  # a deadline can move on while we sleep (another 429, a longer ban)
            wait_ms = max(self.limiter.blocked_until_ms, self.limiter.banned_until_ms) - _now_ms()
            if wait_ms <= 0:
                return
            await anyio.sleep(wait_ms / 1000)

    def _wake(self) -> None:
        if self._heap and self.active < self.concurrency:
            self._heap[0].event.set()


def _now_ms() -> int:
    """The limiter's deadlines are venue times; the feed's client does not correct its clock."""
    return int(time.time() * 1000)


_SHARED: weakref.WeakValueDictionary[str, ResyncQueue] = weakref.WeakValueDictionary()


def shared_resync_queue(base_url: str) -> ResyncQueue:
    """The process's snapshot queue for the venue host of ``base_url`` (on its shared limiter)."""
    key = venue_key(base_url)
    queue = _SHARED.get(key)
    if queue is None:
        queue = _SHARED[key] = ResyncQueue(shared_limiter(base_url))
    return queue
