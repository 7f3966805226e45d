"""What /status shows of one order book of the Binance live feed: synced or stale since when, its top.

Takes: an :class:`~adapters.binance.book.OrderBook`.  Gives: a :class:`BookTop` (msgspec, JSON-able)
with the book's state and since when (ISO 8601 UTC and seconds), best bid and ask (price, quantity
as strings), the last update id, and how long ago its levels last changed (a quiet symbol's synced
book grows old, it does not go stale).
"""

from __future__ import annotations

import msgspec

from actors.timefmt import iso_utc
from adapters.binance.book import OrderBook

__all__ = ["BookTop", "book_top"]


class BookTop(msgspec.Struct, frozen=True):
    state: str  # synced, awaiting_snapshot, resync_needed
    synced: bool
    since: str  # ISO 8601 UTC: when it became synced / stale
    since_s: float
    best_bid: list[str] | None  # [price, quantity]
    best_ask: list[str] | None
    update_id: int
    age_s: float | None  # since a snapshot or diff last changed the book (None: never)
    resync_reason: str


def book_top(book: OrderBook, now_ns: int) -> BookTop:
    bid, ask = book.best_bid(), book.best_ask()
    return BookTop(
        state=book.state.value,
        synced=not book.stale,
        since=iso_utc(book.since_ns),
        since_s=round(max(0, now_ns - book.since_ns) / 1e9, 3),
        best_bid=[str(bid[0]), str(bid[1])] if bid else None,
        best_ask=[str(ask[0]), str(ask[1])] if ask else None,
        update_id=book.last_update_id,
        age_s=round(max(0, now_ns - book.updated_ns) / 1e9, 3) if book.updated_ns else None,
        resync_reason=book.resync_reason if book.stale else "",
    )
