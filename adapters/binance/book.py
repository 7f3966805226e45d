"""One symbol's local order book, kept in sync with Binance's diff-depth stream.

Takes: :class:`~actors.messages.BookDelta` (``depthUpdate``: ``first_seq`` = ``U``, ``last_seq`` =
``u``) and :class:`~actors.messages.BookSnapshot` (``GET /api/v3/depth``: ``seq`` = ``lastUpdateId``).
Gives: best bid/ask, the top ``n`` levels, a top-``n`` ``BookSnapshot`` while synced, and a
:class:`BookAction` per input telling the caller what happened (``RESYNC_NEEDED``: fetch a new
REST snapshot and pass it to :meth:`OrderBook.apply_snapshot`).

The procedure is Binance's, as documented in "How to manage a local order book correctly":

1. buffer the stream's diffs until a snapshot is applied;
2. if the snapshot is older than the first buffered diff (``lastUpdateId + 1 < U``), get a new one;
3. drop buffered diffs with ``u <= lastUpdateId``;
4. the first diff applied must have ``U <= lastUpdateId + 1 <= u``;
5. every later diff must have ``U`` equal to the previous ``u + 1``, else the book is out of sync:
   start again from step 2 (the diffs keep being buffered meanwhile);
6. a level's quantity is absolute; quantity 0 removes the level (removing a level we do not
   hold is normal).

Diffs already covered (``u <= `` the book's update id) are duplicates and dropped.  A checksum-free
consistency check runs after every snapshot and diff: a crossed book (best bid >= best ask) is out
of sync.  While out of sync the book is ``stale`` and empty, so nobody reads a wrong price.
Resyncs are bounded by the snapshots fetched: a stale book only buffers until the next snapshot.
``since_ns`` is when the book last became synced or stale (wall clock), ``updated_ns`` when its
levels last changed (a snapshot or a diff applied): a quiet book is synced, only old.

Each side is a dict price -> quantity plus an ascending list of its prices kept with :mod:`bisect`:
a level change is a dict write (plus a list insert/delete when a price appears or disappears), the
best level is an index and the top ``n`` a slice.  (sortedcontainers would do the same with a
runtime dependency; at Binance's 1,000-level snapshots, list inserts are a short memmove.)
"""

from __future__ import annotations

import enum
import logging
import time
from bisect import bisect_left, insort
from collections import deque
from decimal import Decimal
from typing import NamedTuple

from actors.messages import BookDelta, BookSnapshot

log = logging.getLogger("tradingd.binance")

COMPONENT = "binance-book"
MAX_BUFFER = 10_000  # diffs buffered while waiting for a snapshot (~16 min at 100 ms)

Level = tuple[Decimal, Decimal]


class BookState(enum.Enum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"  # never synced: buffering diffs
    SYNCED = "synced"
    RESYNC_NEEDED = "resync_needed"  # out of sync, or the last snapshot was too old: buffering


class BookAction(enum.Enum):
    APPLIED = "applied"
    BUFFERED = "buffered"
    DROPPED = "dropped"  # already covered by the book (or by the buffer): a duplicate
    RESYNC_NEEDED = "resync_needed"


class BookStatistics(NamedTuple):
    state: str
    last_update_id: int
    snapshots: int
    applied: int
    dropped: int
    buffered: int
    resyncs: int
    stale_snapshots: int
    crossed: int
    levels_applied: int
    bid_levels: int
    ask_levels: int
    resync_reason: str


class _Side:
    """One side of the book: price -> quantity, and the prices in ascending order."""

    __slots__ = ("levels", "prices")

    def __init__(self) -> None:
        self.levels: dict[Decimal, Decimal] = {}
        self.prices: list[Decimal] = []

    def load(self, levels: list[Level]) -> None:
        self.levels = {price: qty for price, qty in levels if qty}
        self.prices = sorted(self.levels)

    def clear(self) -> None:
        self.levels = {}
        self.prices = []

    def update(self, levels: list[Level]) -> None:
        book, prices = self.levels, self.prices
        for price, qty in levels:
            if qty:
                if price not in book:
                    insort(prices, price)
                book[price] = qty
            elif price in book:
                del book[price]
                del prices[bisect_left(prices, price)]


class OrderBook:
    """The local book of ``symbol`` (our name); feed it every diff of the symbol's depth stream."""

    def __init__(self, symbol: str, *, exchange: str = "binance", max_buffer: int = MAX_BUFFER) -> None:
        self.symbol = symbol
        self.exchange = exchange
        self.state = BookState.AWAITING_SNAPSHOT
        self.last_update_id = 0
        self.resync_reason = ""
        self.since_ns = time.time_ns()  # when the book became stale (or synced), wall clock
        self.updated_ns = 0  # when a snapshot or diff last changed it
        self._bids = _Side()
        self._asks = _Side()
        self._buffer: deque[BookDelta] = deque(maxlen=max_buffer)
        self._first_pending = True  # the next diff is the first after a snapshot (step 4)
        self.snapshots = self.applied = self.dropped = self.buffered = 0
        self.resyncs = self.stale_snapshots = self.crossed = self.levels_applied = 0

    @property
    def stale(self) -> bool:
        """True until a snapshot has synced, and again from a gap or crossed book until the next one."""
        return self.state is not BookState.SYNCED

    # --- input --------------------------------------------------------------------------------

    def on_diff(self, delta: BookDelta) -> BookAction:
        if self.state is BookState.SYNCED:
            return self._apply(delta)
        return self._buffer_diff(delta)

    def apply_snapshot(self, snapshot: BookSnapshot) -> BookAction:
        """Load ``snapshot`` and replay the buffered diffs on it.

        APPLIED: synced.  RESYNC_NEEDED: not synced, :attr:`resync_reason` says why -- the snapshot
        is older than the first buffered diff (nothing loaded, the buffer kept), it is crossed, or a
        buffered diff broke the sequence.  DROPPED: the book is synced past the snapshot already.
        """
        if self.state is BookState.SYNCED and snapshot.seq < self.last_update_id:
            return BookAction.DROPPED
        buffer = self._buffer
        if buffer and snapshot.seq + 1 < buffer[0].first_seq:
            self.stale_snapshots += 1
            self.state = BookState.RESYNC_NEEDED
            return self._need_snapshot(
                f"snapshot lastUpdateId {snapshot.seq} is older than the first buffered diff "
                f"U={buffer[0].first_seq}"
            )
        self._bids.load(snapshot.bids)
        self._asks.load(snapshot.asks)
        self.last_update_id = snapshot.seq
        self.state = BookState.SYNCED
        self.since_ns = self.updated_ns = time.time_ns()
        self._first_pending = True
        self.snapshots += 1
        if self._is_crossed():
            return self._crossed_book(f"snapshot lastUpdateId {snapshot.seq}", keep=list(buffer))
        pending = list(buffer)
        buffer.clear()
        for delta in pending:
            if self._apply(delta) is BookAction.RESYNC_NEEDED:
                return BookAction.RESYNC_NEEDED
        return BookAction.APPLIED

    def _buffer_diff(self, delta: BookDelta) -> BookAction:
        buffer = self._buffer
        if buffer:
            last = buffer[-1].last_seq
            if delta.last_seq <= last:
                self.dropped += 1
                return BookAction.DROPPED
            if delta.first_seq != last + 1:
                # A gap inside the buffer: no snapshot can bridge it, only the newer run is useful.
                buffer.clear()
        buffer.append(delta)
        self.buffered += 1
        return BookAction.BUFFERED

    def _apply(self, delta: BookDelta) -> BookAction:
        lid = self.last_update_id
        if delta.last_seq <= lid:
            self.dropped += 1
            return BookAction.DROPPED
        first = delta.first_seq
        if first > lid + 1 or (not self._first_pending and first != lid + 1):
            return self._resync(f"diff U={first} u={delta.last_seq} does not follow update id {lid}", [delta])
        self._bids.update(delta.bids)
        self._asks.update(delta.asks)
        self.last_update_id = delta.last_seq
        self.updated_ns = time.time_ns()
        self._first_pending = False
        self.applied += 1
        self.levels_applied += len(delta.bids) + len(delta.asks)
        if self._is_crossed():
            return self._crossed_book(f"diff U={first} u={delta.last_seq}", keep=[])
        return BookAction.APPLIED

    def _is_crossed(self) -> bool:
        bids, asks = self._bids.prices, self._asks.prices
        return bool(bids and asks and bids[-1] >= asks[0])

    def _crossed_book(self, after: str, keep: list[BookDelta]) -> BookAction:
        self.crossed += 1
        bid, ask = self._bids.prices[-1], self._asks.prices[0]
        return self._resync(f"crossed book after {after}: best bid {bid} >= best ask {ask}", keep)

    def _resync(self, reason: str, keep: list[BookDelta]) -> BookAction:
        """Out of sync: empty the book, keep only ``keep`` buffered, and wait for a new snapshot."""
        if self.state is BookState.SYNCED:
            self.since_ns = time.time_ns()
        self.state = BookState.RESYNC_NEEDED
        self.resyncs += 1
        self._bids.clear()
        self._asks.clear()
        self._buffer.clear()
        self._buffer.extend(keep)
        return self._need_snapshot(reason)

    def _need_snapshot(self, reason: str) -> BookAction:
        self.resync_reason = reason
        log.warning(
            "order book out of sync, needs a new snapshot: %s",
            reason,
            extra={"component": COMPONENT, "exchange": self.exchange, "symbol": self.symbol},
        )
        return BookAction.RESYNC_NEEDED

    # --- output -------------------------------------------------------------------------------

    def best_bid(self) -> Level | None:
        prices = self._bids.prices
        return (prices[-1], self._bids.levels[prices[-1]]) if prices else None

    def best_ask(self) -> Level | None:
        prices = self._asks.prices
        return (prices[0], self._asks.levels[prices[0]]) if prices else None

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        """``(bids, asks)``: the best ``n`` levels of each side, best first; empty while stale."""
        if n <= 0:
            return [], []
        bids, asks = self._bids, self._asks
        top_bids = [(p, bids.levels[p]) for p in bids.prices[: -n - 1 : -1]]
        return top_bids, [(p, asks.levels[p]) for p in asks.prices[:n]]

    def as_snapshot(self, ts_event: int, ts_recv: int, depth: int) -> BookSnapshot | None:
        """The top ``depth`` levels as a message (``seq`` = last update id); None while stale."""
        if self.stale:
            return None
        bids, asks = self.top(depth)
        return BookSnapshot(
            exchange=self.exchange,
            symbol=self.symbol,
            ts_event=ts_event,
            ts_recv=ts_recv,
            bids=bids,
            asks=asks,
            seq=self.last_update_id,
        )

    def statistics(self) -> BookStatistics:
        return BookStatistics(
            state=self.state.value,
            last_update_id=self.last_update_id,
            snapshots=self.snapshots,
            applied=self.applied,
            dropped=self.dropped,
            buffered=self.buffered,
            resyncs=self.resyncs,
            stale_snapshots=self.stale_snapshots,
            crossed=self.crossed,
            levels_applied=self.levels_applied,
            bid_levels=len(self._bids.levels),
            ask_levels=len(self._asks.levels),
            resync_reason=self.resync_reason,
        )
