"""The OKX frame core (adapters/okx/data.py, book.py, checksum.py) on the real 2022 capture.

Every ``books`` push of the capture verifies its CRC32 checksum; a corrupted checksum, a skipped
``seqId`` and a refused push each make the book stale and queue its resubscription, and nothing
of that book is forwarded until the resubscription's snapshot; mutated captured frames never
raise and are counted.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import BookDelta, BookSnapshot, Message, Quote, Trade
from adapters.okx.checksum import book_checksum, signed_crc32
from adapters.okx.data import OkxStream, to_inst_id, to_symbol
from tests.okx_capture import SYMBOLS, Frame, load_frames, numbered_books

FRAMES = numbered_books(load_frames())


def _replay(stream: OkxStream, frames: list[Frame]) -> list[Message]:
    out: list[Message] = []
    for f in frames:
        out += stream.decode(f.raw, 1)
    return out


def _books_of(inst: str) -> list[Frame]:
    return [f for f in FRAMES if "data" in f.data and f.data["arg"] == {"channel": "books", "instId": inst}]


def test_every_captured_books_push_verifies_its_checksum() -> None:
    # an independent book: dicts of the strings as sent, sorted at every push
    books: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    checked = 0
    for f in load_frames():
        if f.data.get("arg", {}).get("channel") != "books" or "data" not in f.data:
            continue
        item = f.data["data"][0]
        inst = f.data["arg"]["instId"]
        if f.data["action"] == "snapshot":
            books[inst] = ({}, {})
        bids, asks = books[inst]
        for side, levels in ((bids, item["bids"]), (asks, item["asks"])):
            for px, sz, *_ in levels:
                if Decimal(sz) == 0:
                    side.pop(px, None)
                else:
                    side[px] = sz
        top_b = sorted(bids.items(), key=lambda kv: -Decimal(kv[0]))
        top_a = sorted(asks.items(), key=lambda kv: Decimal(kv[0]))
        assert book_checksum(top_b, top_a) == item["checksum"], (inst, f.ts)
        checked += 1
    assert checked == 290  # 3 snapshots and 287 updates

    stream = OkxStream(SYMBOLS)
    kinds = Counter(type(m).__name__ for m in _replay(stream, FRAMES))
    assert (stream.checksum_failures, stream.gaps, stream.rejected) == (0, 0, {})
    assert kinds == {"BookSnapshot": 3, "BookDelta": 287, "Trade": 74, "Quote": 28}


def test_signed_crc32_is_okx_signed_int32() -> None:
    assert signed_crc32("") == 0
    assert signed_crc32("a") == -390611389  # crc32("a") = 0xE8B7BE43, above 2**31


def test_symbols_map_both_ways() -> None:
    assert to_inst_id("BTC/USDT") == "BTC-USDT" and to_symbol("BTC-USDT") == "BTC/USDT"


def test_messages_are_the_venue_neutral_ones_with_exact_decimals() -> None:
    out = _replay(OkxStream(SYMBOLS), FRAMES[:60])
    trade = next(m for m in out if isinstance(m, Trade) and m.symbol == "BTC/USDT")
    assert (trade.price, trade.size, trade.side, trade.trade_id) == (
        Decimal("30236"),
        Decimal("0.0002"),
        "buy",
        "338476307",
    )
    assert trade.ts_event == 1652459224818 * 1_000_000
    quote = next(m for m in out if isinstance(m, Quote) and m.symbol == "BTC/USDT")
    assert (quote.bid_price, quote.ask_price) == (Decimal("30228.6"), Decimal("30228.7"))
    snap = next(m for m in out if isinstance(m, BookSnapshot) and m.symbol == "BTC/USDT")
    assert snap.bids[0] == (Decimal("30243.4"), Decimal("0.0012029")) and len(snap.bids) == 100
    assert snap.asks[0] == (Decimal("30243.5"), Decimal("1.44679"))


def _tamper(frame: Frame, **item: object) -> str:
    data = json.loads(frame.raw)
    data["data"][0].update(item)
    return json.dumps(data)


def _break_then_resync(raw_breaking: str, index: int, inst: str) -> tuple[OkxStream, list[Message]]:
    """Replay ``inst``'s books with push ``index`` replaced, then a fresh snapshot (the resubscription)."""
    stream = OkxStream(SYMBOLS)
    books = _books_of(inst)
    out = _replay(stream, books[:index])
    assert stream.books[inst].synced
    out_broken = stream.decode(raw_breaking, 2)
    out_broken += _replay(stream, books[index + 1 : index + 5])  # still in flight before the resubscribe
    assert out_broken == []
    assert stream.resubscribe == [inst] and not stream.books[inst].synced
    resync = stream.decode(books[0].raw, 3)  # the resubscription's snapshot
    assert [type(m) for m in resync] == [BookSnapshot] and stream.books[inst].synced
    return stream, out


def test_a_corrupted_checksum_resubscribes_and_forwards_nothing_of_the_book() -> None:
    books = _books_of("BTC-USDT")
    bad = _tamper(books[10], checksum=books[10].data["data"][0]["checksum"] ^ 1)
    stream, _ = _break_then_resync(bad, 10, "BTC-USDT")
    assert (stream.checksum_failures, stream.gaps) == (1, 0)


def test_a_skipped_seq_id_resubscribes_and_forwards_nothing_of_the_book() -> None:
    books = _books_of("UNI-USD-SWAP")
    item = books[10].data["data"][0]
    bad = _tamper(books[10], prevSeqId=item["prevSeqId"] + 1)
    stream, _ = _break_then_resync(bad, 10, "UNI-USD-SWAP")
    assert (stream.checksum_failures, stream.gaps) == (0, 1)


def test_a_refused_books_push_breaks_the_book_and_is_counted() -> None:
    books = _books_of("BTC-USDT")
    bad = books[5].raw.replace('"bids":[[', '"bids":[["NaN","1","0","1"],[', 1)
    stream, _ = _break_then_resync(bad, 5, "BTC-USDT")
    assert stream.rejected == {"bad_value": 1}


def test_events_pong_and_hostile_values_are_counted_not_forwarded() -> None:
    stream = OkxStream(SYMBOLS)
    trade = next(
        f for f in FRAMES if "data" in f.data and f.data["arg"] == {"channel": "trades", "instId": "BTC-USDT"}
    )
    frames = [
        "pong",
        '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a1"}',
        '{"event":"error","code":"60018","msg":"Wrong URL or channel:books,instId:NOPE-USDT","connId":"a1"}',
        '{"event":"error","code":"60012","msg":"Invalid request: {\\"op\\": \\"subscribe\\"}","connId":"a1"}',
        "{not json",
        trade.raw.replace('"px":"', '"px":"-', 1),
        trade.raw.replace('"sz":"', '"sz":"NaN', 1),
        trade.raw.replace('"BTC-USDT"', '"ETH-USDT"'),
        '{"arg":{"channel":"candle1m","instId":"BTC-USDT"},"data":[]}',
    ]
    assert [m for raw in frames for m in stream.decode(raw, 1)] == []
    assert stream.pongs == 1 and stream.decoded["event_subscribe"] == 1
    assert stream.rejected == {
        "venue_error": 2,
        "malformed_json": 1,
        "bad_value": 2,
        "unknown_symbol": 1,
        "unknown_stream": 1,
    }
    assert stream.errors[0].startswith("60018 ")


def _mutate(raw: str, data: st.DataObject) -> str:
    kind = data.draw(st.sampled_from(["byte", "number", "cut", "swap"]))
    if kind == "cut":
        return raw[: data.draw(st.integers(0, len(raw)))]
    if kind == "byte":
        i = data.draw(st.integers(0, len(raw) - 1))
        return raw[:i] + data.draw(st.characters(codec="ascii")) + raw[i + 1 :]
    if kind == "swap":
        return raw.replace('"asks"', '"bidz"', 1)
    value = data.draw(st.sampled_from(['"NaN"', '"-1"', '"0"', '"1e999"', "null", "[]", '"x"', "-1", "1.5"]))
    i = raw.find('"', data.draw(st.integers(0, len(raw) - 1)))
    j = raw.find('"', i + 1)
    return raw if i < 0 or j < 0 else raw[:i] + value + raw[j + 1 :]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_captured_frames_never_crash_and_a_broken_book_forwards_nothing(data: st.DataObject) -> None:
    stream = OkxStream(SYMBOLS)
    target = data.draw(st.integers(20, 150))
    out = _replay(stream, FRAMES[:target])
    mutated = _mutate(FRAMES[target].raw, data)
    rejected_before = sum(stream.rejected.values())
    emitted = stream.decode(mutated, 2)
    rest = [m for f in FRAMES[target + 1 : target + 60] for m in stream.decode(f.raw, 3)]
    for m in out + emitted + rest:
        assert msgspec.json.decode(msgspec.json.encode(m), type=type(m)) == m  # well-formed messages
    assert stream.checksum_failures + stream.gaps <= 1  # only the mutated push can break a book
    if not emitted and mutated != FRAMES[target].raw and not FRAMES[target].raw.startswith('{"event"'):
        assert sum(stream.rejected.values()) > rejected_before or stream.resubscribe  # refused: counted
    for inst in stream.resubscribe:  # a book gone stale forwards nothing after it broke
        sym = SYMBOLS[inst]
        assert not any(isinstance(m, BookDelta) and m.symbol == sym for m in rest)
