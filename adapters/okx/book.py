"""One OKX ``books`` order book (400 levels): snapshot, incremental updates, continuity, checksum.

OKX v5 order book channel: the first push after a subscribe is ``action: "snapshot"``
(``prevSeqId`` -1), then ``action: "update"`` pushes whose ``prevSeqId`` is the ``seqId`` of the
push before (equal ``seqId`` and ``prevSeqId``: nothing changed).  A level of size ``"0"`` is
removed.  After applying a push, the CRC32 over the top 25 levels
(:func:`adapters.okx.checksum.book_checksum`) must equal its ``checksum``.  A ``prevSeqId`` that
does not follow, or a checksum that does not match, makes the book stale: OKX's remedy is to
resubscribe, which brings a fresh snapshot (:mod:`adapters.okx.data` does that).  While stale,
updates are ignored (``NOT_SYNCED``).  ``seqId`` is absent from older captures (2022), and
``checksum`` 0 or absent means "not sent": then that check is skipped.

Takes: :class:`~adapters.okx.schemas.OkxBookData`.  Gives: a :class:`BookResult` and, for an
applied push, the changed levels as exact decimals (for a ``BookDelta``).
"""

from __future__ import annotations

import bisect
import enum
import time
from decimal import Decimal, InvalidOperation

from adapters.okx.checksum import book_checksum
from adapters.okx.schemas import Level, OkxBookData

__all__ = ["BadLevel", "BookResult", "OkxBook", "parse_levels"]

MAX_DEPTH = 400
Changes = list[tuple[Decimal, Decimal]]


class BookResult(enum.Enum):
    APPLIED = "applied"
    GAP = "gap"  # prevSeqId is not the last seqId: a push was lost
    CHECKSUM = "checksum"  # the top 25 levels differ from OKX's
    NOT_SYNCED = "not_synced"  # stale, awaiting the snapshot of a resubscription


class BadLevel(ValueError):
    """A level that is not ``[price > 0, size >= 0, ...]`` with finite decimals."""


def parse_levels(levels: list[Level]) -> list[tuple[Decimal, Decimal, str, str]]:
    out = []
    for level in levels:
        if len(level) < 2:
            raise BadLevel(f"level {level!r}: expected [price, size, ...]")
        px, sz = level[0], level[1]
        try:
            price, size = Decimal(px), Decimal(sz)
        except InvalidOperation:
            raise BadLevel(f"level {level!r}: not decimal numbers") from None
        if not (price.is_finite() and size.is_finite()) or price <= 0 or size < 0:
            raise BadLevel(f"level {level!r}: price must be > 0 and size >= 0")
        out.append((price, size, px, sz))
    return out


class _Side:
    """Levels of one side; ``keys`` ascending (bids keyed by -price so the best comes first)."""

    def __init__(self, bids: bool) -> None:
        self.sign = -1 if bids else 1
        self.keys: list[Decimal] = []
        self.levels: dict[Decimal, tuple[str, str, Decimal, Decimal]] = {}  # key -> as sent, as decimals

    def set(self, price: Decimal, size: Decimal, px: str, sz: str) -> None:
        key = price if self.sign > 0 else -price
        if size == 0:
            if self.levels.pop(key, None) is not None:
                del self.keys[bisect.bisect_left(self.keys, key)]
            return
        if key not in self.levels:
            bisect.insort(self.keys, key)
        self.levels[key] = (px, sz, price, size)

    def load(self, levels: list[tuple[Decimal, Decimal, str, str]]) -> None:
        """A snapshot's side: one sort (OKX sends it sorted, so it is linear) instead of inserts."""
        sign = self.sign
        self.levels = {p if sign > 0 else -p: (px, sz, p, s) for p, s, px, sz in levels if s}
        self.keys = sorted(self.levels)

    def truncate(self, depth: int) -> None:
        for key in self.keys[depth:]:
            del self.levels[key]
        del self.keys[depth:]

    def top(self, n: int) -> list[tuple[str, str]]:
        levels = self.levels
        return [levels[k][:2] for k in self.keys[:n]]

    def best(self) -> tuple[Decimal, Decimal] | None:
        if not self.keys:
            return None
        _, _, price, size = self.levels[self.keys[0]]
        return price, size

    def decimals(self, n: int) -> list[tuple[Decimal, Decimal]]:
        levels = self.levels
        return [levels[k][2:] for k in self.keys[:n]]


class OkxBook:
    """The local copy of one instrument's ``books`` channel."""

    def __init__(self, symbol: str, max_depth: int = MAX_DEPTH) -> None:
        self.symbol, self.max_depth = symbol, max_depth
        self.bids, self.asks = _Side(True), _Side(False)
        self.synced = False
        self.seq_id: int | None = None
        self.since_ns = time.time_ns()  # when it became synced / stale
        self.updated_ns = 0
        self.reason = "awaiting snapshot"

    def mark_stale(self, reason: str) -> None:
        if self.synced:
            self.since_ns = time.time_ns()
        self.synced, self.reason = False, reason

    def apply(self, action: str, data: OkxBookData) -> tuple[BookResult, Changes, Changes]:
        """Apply one push (levels already validated by :func:`parse_levels`)."""
        bids, asks = parse_levels(data.bids), parse_levels(data.asks)
        if action == "snapshot":
            self.bids, self.asks = _Side(True), _Side(False)
        elif not self.synced:
            return BookResult.NOT_SYNCED, [], []
        elif data.prevSeqId is not None and self.seq_id is not None and data.prevSeqId != self.seq_id:
            self.mark_stale(f"sequence gap: prevSeqId {data.prevSeqId} after seqId {self.seq_id}")
            return BookResult.GAP, [], []
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            if action == "snapshot":
                side.load(levels)
            else:
                for price, size, px, sz in levels:
                    side.set(price, size, px, sz)
            side.truncate(self.max_depth)
        if data.checksum and data.checksum != self.checksum():
            self.mark_stale(f"checksum mismatch: OKX {data.checksum}, ours {self.checksum()}")
            return BookResult.CHECKSUM, [], []
        if not self.synced:
            self.synced, self.since_ns, self.reason = True, time.time_ns(), ""
        self.seq_id = data.seqId
        self.updated_ns = time.time_ns()
        return BookResult.APPLIED, [(p, s) for p, s, _, _ in bids], [(p, s) for p, s, _, _ in asks]

    def checksum(self) -> int:
        return book_checksum(self.bids.top(25), self.asks.top(25))

    def best_bid(self) -> tuple[Decimal, Decimal] | None:
        return self.bids.best()

    def best_ask(self) -> tuple[Decimal, Decimal] | None:
        return self.asks.best()
