"""The Binance local order book, synced from the captured REST snapshots and diff-depth frames.

All four captured symbols sync and end on the same best levels as an independent replay of the raw
JSON (plain dicts, no project code); every captured bookTicker whose update id falls on a diff
boundary agrees with the book to the quantity.  Gaps, stale snapshots, duplicates, reordering and
crossed books are built from the real NKNUSDT diffs.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.messages import BookDelta, BookSnapshot
from adapters.binance.book import BookAction, BookState, OrderBook
from adapters.binance.data import FrameDecoder, decode_depth_snapshot, read_rest_capture, read_ws_capture

DATA = Path(__file__).resolve().parent / "data" / "binance"
SYMBOLS = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR"}
_, FRAMES = read_ws_capture(DATA / "BINANCE.ws.1.0")
REPLIES = {r.url.split("symbol=")[1].split("&")[0]: r for r in read_rest_capture(DATA / "BINANCE.http.0.0")}
D = Decimal
Level = tuple[Decimal, Decimal]


def diffs_of(venue: str) -> list[BookDelta]:
    decoder = FrameDecoder(SYMBOLS)
    messages = [m for f in FRAMES for m in decoder.decode(f.raw, f.ts_recv)]
    return [m for m in messages if isinstance(m, BookDelta) and m.symbol == SYMBOLS[venue]]


def snapshot_of(venue: str) -> BookSnapshot:
    reply = REPLIES[venue]
    return decode_depth_snapshot(reply.raw, "binance", SYMBOLS[venue], reply.ts_recv)


NKN = diffs_of("NKNUSDT")  # NKN[0] (u=499869752) is covered by the snapshot; NKN[1] starts at its id + 1
NKN_SNAPSHOT = snapshot_of("NKNUSDT")


def replay_as_received(venue: str) -> tuple[OrderBook, Counter[BookAction]]:
    """Diffs in receive order, the REST snapshot applied at its own receive time (as live)."""
    book, snap, actions = OrderBook(SYMBOLS[venue]), snapshot_of(venue), Counter[BookAction]()
    pending = True
    for delta in diffs_of(venue):
        if pending and snap.ts_recv <= delta.ts_recv:
            assert book.apply_snapshot(snap) is BookAction.APPLIED
            pending = False
        actions[book.on_diff(delta)] += 1
    if pending:
        assert book.apply_snapshot(snap) is BookAction.APPLIED
    return book, actions


def independent_best(venue: str) -> tuple[Level, Level]:
    """Best bid and ask from the raw JSON alone: the snapshot, then every diff with u > lastUpdateId."""
    snap = json.loads(REPLIES[venue].raw)
    sides = {side: {D(p): D(q) for p, q in snap[side]} for side in ("bids", "asks")}
    last = snap["lastUpdateId"]
    for frame in FRAMES:
        data = json.loads(frame.raw)["data"]
        if data.get("e") != "depthUpdate" or data["s"] != venue or data["u"] <= last:
            continue
        assert data["U"] <= last + 1  # the capture has no gap
        last = data["u"]
        for side, key in (("bids", "b"), ("asks", "a")):
            for p, q in data[key]:
                sides[side][D(p)] = D(q)
                if D(q) == 0:
                    del sides[side][D(p)]
    bid, ask = max(sides["bids"]), min(sides["asks"])
    return (bid, sides["bids"][bid]), (ask, sides["asks"][ask])


def synced_nkn(live: int = 1) -> OrderBook:
    """NKN/USDT from its snapshot plus the live diffs NKN[1 : 1 + live]."""
    book = OrderBook("NKN/USDT")
    book.apply_snapshot(NKN_SNAPSHOT)
    for delta in NKN[1 : 1 + live]:
        assert book.on_diff(delta) is BookAction.APPLIED
    return book


# --- the capture --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "applied", "dropped", "buffered", "last_update_id", "best_bid", "best_ask"),
    [
        ("NKNUSDT", 149, 1, 1, 499870179, ("0.35270000", "9602.00000000"), ("0.35310000", "152.00000000")),
        ("BLZETH", 9, 1, 1, 281916638, ("0.00006547", "100.00000000"), ("0.00006560", "1528.00000000")),
        ("LRCBTC", 13, 2, 1, 259345563, ("0.00000637", "2500.00000000"), ("0.00000638", "2285.00000000")),
        ("RUNEEUR", 1, 1, 1, 15602513, ("6.25100000", "69.30000000"), ("6.26900000", "69.30000000")),
    ],
)
def test_captured_symbol_syncs_and_ends_on_the_independently_replayed_best_levels(
    venue: str,
    applied: int,
    dropped: int,
    buffered: int,
    last_update_id: int,
    best_bid: tuple[str, str],
    best_ask: tuple[str, str],
) -> None:
    book, actions = replay_as_received(venue)

    stats = book.statistics()
    assert (book.state, book.stale) == (BookState.SYNCED, False)
    assert (stats.applied, stats.dropped, stats.buffered, stats.resyncs) == (applied, dropped, buffered, 0)
    assert book.last_update_id == last_update_id
    assert (book.best_bid(), book.best_ask()) == independent_best(venue)
    assert book.best_bid() == (D(best_bid[0]), D(best_bid[1]))
    assert book.best_ask() == (D(best_ask[0]), D(best_ask[1]))
    # Each symbol's buffered diff was covered by its snapshot; every later diff applied or dropped live.
    assert actions == Counter(
        {BookAction.BUFFERED: buffered, BookAction.APPLIED: applied, BookAction.DROPPED: dropped - buffered}
    )


def test_snapshot_first_then_all_diffs_gives_the_same_book() -> None:
    for venue in SYMBOLS:
        late, _ = replay_as_received(venue)
        book = OrderBook(SYMBOLS[venue])
        book.apply_snapshot(snapshot_of(venue))
        for delta in diffs_of(venue):
            book.on_diff(delta)
        assert book.top(1000) == late.top(1000)


def test_every_book_ticker_on_a_diff_boundary_agrees_with_the_book() -> None:
    books = {ours: OrderBook(ours) for ours in SYMBOLS.values()}
    for venue, ours in SYMBOLS.items():
        books[ours].apply_snapshot(snapshot_of(venue))
    decoder = FrameDecoder(SYMBOLS)
    boundaries: dict[tuple[str, int], tuple[Level | None, Level | None]] = {}
    for frame in FRAMES:
        for msg in decoder.decode(frame.raw, frame.ts_recv):
            if isinstance(msg, BookDelta):
                book = books[msg.symbol]
                book.on_diff(msg)
                boundaries[(msg.symbol, book.last_update_id)] = (book.best_bid(), book.best_ask())
    checked = Counter[str]()
    for frame in FRAMES:
        data = json.loads(frame.raw)["data"]
        key = (SYMBOLS[data["s"]], data.get("u"))
        if "e" in data or key not in boundaries:  # bookTicker has no "e"
            continue
        assert boundaries[key] == ((D(data["b"]), D(data["B"])), (D(data["a"]), D(data["A"])))
        checked[data["s"]] += 1
    assert checked == {"NKNUSDT": 19, "LRCBTC": 6, "BLZETH": 1}


def test_top_levels_best_first_and_as_snapshot() -> None:
    book, _ = replay_as_received("NKNUSDT")

    bids, asks = book.top(3)
    snap = book.as_snapshot(ts_event=5, ts_recv=6, depth=2)

    assert bids == [(D("0.3527"), D("9602")), (D("0.3526"), D("2829")), (D("0.3525"), D("1850"))]
    assert asks == [(D("0.3531"), D("152")), (D("0.3532"), D("949")), (D("0.3533"), D("2713"))]
    assert snap == BookSnapshot(
        exchange="binance",
        symbol="NKN/USDT",
        ts_event=5,
        ts_recv=6,
        bids=bids[:2],
        asks=asks[:2],
        seq=499870179,
    )
    assert book.top(0) == ([], [])


# --- the procedure, on the real NKNUSDT diffs --------------------------------------------------


def test_diffs_are_buffered_until_a_snapshot_and_covered_ones_dropped() -> None:
    book = OrderBook("NKN/USDT")

    actions = [book.on_diff(d) for d in NKN[:3]]
    result = book.apply_snapshot(NKN_SNAPSHOT)

    assert actions == [BookAction.BUFFERED] * 3
    assert result is BookAction.APPLIED
    assert (book.applied, book.dropped, book.last_update_id) == (2, 1, NKN[2].last_seq)
    assert book.best_bid() is not None and not book.stale


def test_gap_after_sync_needs_a_resync_and_a_newer_snapshot_recovers() -> None:
    book = synced_nkn(live=1)  # at NKN[1].u; NKN[2] goes missing
    reference = synced_nkn(live=3)  # what a REST snapshot taken at NKN[3].u would show

    gap = book.on_diff(NKN[3])
    meanwhile = book.on_diff(NKN[4])

    assert (gap, meanwhile) == (BookAction.RESYNC_NEEDED, BookAction.BUFFERED)
    assert (book.state, book.stale, book.resyncs) == (BookState.RESYNC_NEEDED, True, 1)
    assert book.resync_reason == "diff U=499869758 u=499869759 does not follow update id 499869754"
    assert (book.best_bid(), book.best_ask(), book.top(5), book.as_snapshot(1, 1, 5)) == (
        None,
        None,
        ([], []),
        None,
    )

    fresh = reference.as_snapshot(ts_event=1, ts_recv=1, depth=10_000)
    assert fresh is not None and book.apply_snapshot(fresh) is BookAction.APPLIED
    for delta in NKN[5:]:
        assert book.on_diff(delta) is BookAction.APPLIED
    assert (book.stale, book.last_update_id) == (False, 499870179)
    assert (book.best_bid(), book.best_ask()) == independent_best("NKNUSDT")


def test_snapshot_older_than_the_first_buffered_diff_needs_a_new_snapshot() -> None:
    book = OrderBook("NKN/USDT")
    for delta in NKN[2:6]:  # NKN[2].U = 499869755 > lastUpdateId + 1 = 499869753
        book.on_diff(delta)

    result = book.apply_snapshot(NKN_SNAPSHOT)

    assert result is BookAction.RESYNC_NEEDED
    assert (book.stale, book.stale_snapshots, book.resyncs) == (True, 1, 0)
    assert book.resync_reason == (
        "snapshot lastUpdateId 499869752 is older than the first buffered diff U=499869755"
    )
    newer = synced_nkn(live=2).as_snapshot(1, 1, 10_000)  # at NKN[2].u = 499869757
    assert newer is not None and book.apply_snapshot(newer) is BookAction.APPLIED
    assert (book.last_update_id, book.applied, book.dropped) == (NKN[5].last_seq, 3, 1)


def test_duplicate_diff_is_dropped_and_leaves_the_book_alone() -> None:
    book = synced_nkn(live=2)
    before = book.top(1000)

    assert book.on_diff(NKN[2]) is BookAction.DROPPED
    assert book.on_diff(NKN[1]) is BookAction.DROPPED
    assert (book.top(1000), book.stale, book.dropped) == (before, False, 2)


def test_out_of_order_diffs_break_the_sync_and_the_late_one_is_dropped() -> None:
    book = synced_nkn(live=1)

    assert book.on_diff(NKN[3]) is BookAction.RESYNC_NEEDED
    assert book.on_diff(NKN[2]) is BookAction.DROPPED  # older than the buffered NKN[3]
    assert book.on_diff(NKN[4]) is BookAction.BUFFERED


def test_duplicates_and_gaps_while_buffering() -> None:
    book = OrderBook("NKN/USDT")

    actions = [book.on_diff(d) for d in (NKN[1], NKN[1], NKN[3], NKN[4])]

    assert actions == [BookAction.BUFFERED, BookAction.DROPPED, BookAction.BUFFERED, BookAction.BUFFERED]
    # The gap NKN[1] -> NKN[3] discarded NKN[1]: the snapshot at 499869752 cannot bridge to NKN[3].
    assert book.apply_snapshot(NKN_SNAPSHOT) is BookAction.RESYNC_NEEDED


def test_crossing_diff_means_out_of_sync() -> None:
    book = synced_nkn(live=0)  # best ask 0.35250000
    crossing = msgspec.structs.replace(NKN[1], bids=[(D("0.3530"), D("1"))], asks=[])

    assert book.on_diff(crossing) is BookAction.RESYNC_NEEDED
    assert (book.stale, book.crossed, book.resyncs) == (True, 1, 1)
    assert book.resync_reason == (
        "crossed book after diff U=499869753 u=499869754: best bid 0.3530 >= best ask 0.35250000"
    )


def test_crossed_snapshot_is_refused_and_the_buffer_kept() -> None:
    book = OrderBook("NKN/USDT")
    book.on_diff(NKN[1])
    crossed = BookSnapshot(exchange="binance", symbol="NKN/USDT", ts_event=1, ts_recv=1,
                           bids=[(D("0.36"), D("1"))], asks=[(D("0.35"), D("1"))], seq=499869752)  # fmt: skip

    assert book.apply_snapshot(crossed) is BookAction.RESYNC_NEEDED
    assert (
        book.resync_reason
        == "crossed book after snapshot lastUpdateId 499869752: best bid 0.36 >= best ask 0.35"
    )
    assert book.apply_snapshot(NKN_SNAPSHOT) is BookAction.APPLIED
    assert (book.applied, book.last_update_id) == (1, NKN[1].last_seq)


def test_quantity_zero_removes_a_level_and_removing_an_absent_level_is_harmless() -> None:
    book = synced_nkn(live=0)
    removal = msgspec.structs.replace(NKN[1], bids=[], asks=[(D("0.35250000"), D("0")), (D("0.9"), D("0"))])

    assert book.on_diff(removal) is BookAction.APPLIED
    assert book.best_ask() == (D("0.35260000"), D("3199.00000000"))


def test_snapshot_older_than_the_synced_book_is_dropped() -> None:
    book = synced_nkn(live=3)

    assert book.apply_snapshot(NKN_SNAPSHOT) is BookAction.DROPPED
    assert (book.last_update_id, book.snapshots) == (NKN[3].last_seq, 1)


# --- property: the book equals a naive model -----------------------------------------------------

PRICES = st.integers(1, 60).map(lambda i: D(i) / 100)
LEVELS = st.lists(st.tuples(PRICES, st.sampled_from([D(0), D(1), D("2.5"), D(7)])), max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(LEVELS, LEVELS), max_size=30), st.integers(1, 8))
def test_book_matches_a_dict_model_for_any_contiguous_diffs(
    updates: list[tuple[list[Level], list[Level]]], n: int
) -> None:
    # Bids live below 0.61, asks are shifted above it: the book never crosses.
    snap = BookSnapshot(exchange="binance", symbol="X", ts_event=0, ts_recv=0, seq=100)
    book = OrderBook("X")
    model: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] = ({}, {})
    book.apply_snapshot(snap)
    seq = 100
    for bids, raw_asks in updates:
        asks = [(p + 1, q) for p, q in raw_asks]
        delta = BookDelta(exchange="binance", symbol="X", ts_event=0, ts_recv=0, bids=bids, asks=asks,
                          first_seq=seq + 1, last_seq=seq + 2)  # fmt: skip
        seq += 2
        assert book.on_diff(delta) is BookAction.APPLIED
        for side, levels in zip(model, (bids, asks), strict=True):
            for p, q in levels:
                side[p] = q
                if not q:
                    del side[p]
    top_bids = sorted(model[0].items(), reverse=True)[:n]
    top_asks = sorted(model[1].items())[:n]
    assert book.top(n) == (top_bids, top_asks)
    assert book.best_bid() == (top_bids[0] if top_bids else None)
    assert book.best_ask() == (top_asks[0] if top_asks else None)
