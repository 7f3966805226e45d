"""The mirror's disk spill: frames, segment files, torn and corrupt tails, and the order-path backlog."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec
import pytest

from actors.messages import ANY_DECODER_MSGPACK, Message, OrderFilled
from daemon.metrics import Metrics
from daemon.spill import (
    HEADER,
    Backlog,
    Entry,
    SpillQueue,
    SpillRecord,
    append_frames,
    decode_frames,
    encode_frames,
    parse_id,
    read_frames,
)

ENCODE: Callable[[Message], bytes] = msgspec.msgpack.Encoder().encode


def rec(i: int, key: str = "t:paper:BTC:fill") -> SpillRecord:
    return SpillRecord(key, f"1700000000000-{i}", "OrderFilled", f"payload-{i}".encode())


def drain(q: SpillQueue) -> list[SpillRecord]:
    out: list[SpillRecord] = []
    while (head := q.peek_head()) is not None:
        n, records = head
        q.mark_loaded(n)
        out += records
    return out


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"), key=lambda p: int(p.stem))


def test_frames_round_trip_and_clean_input() -> None:
    records = [rec(i, key=f"k{i}") for i in range(5)]
    assert decode_frames(encode_frames(records)) == (records, None)
    assert decode_frames(b"") == ([], None)
    assert parse_id("1700000000000-7") == (1700000000000, 7)


def test_queue_round_trip_across_segments_and_restart(tmp_path: Path) -> None:
    q = SpillQueue(tmp_path, segment_records=4)
    q.append([rec(i) for i in range(6)])
    q.append([rec(i) for i in range(6, 10)])
    assert q.count == 10
    assert len(segments(tmp_path)) == 3
    reopened = SpillQueue(tmp_path, segment_records=4)
    assert reopened.count == 10
    assert reopened.top_ids == {"t:paper:BTC:fill": (1700000000000, 9)}
    assert reopened.damaged == []
    reopened.append([rec(10)])  # a new process never appends to an old segment
    assert len(segments(tmp_path)) == 4
    assert drain(reopened) == [rec(i) for i in range(11)]
    assert reopened.count == 0


def test_release_deletes_only_loaded_segments(tmp_path: Path) -> None:
    q = SpillQueue(tmp_path, segment_records=2)
    q.append([rec(i) for i in range(4)])
    first, second = segments(tmp_path)
    n, _ = q.peek_head() or (0, [])
    q.mark_loaded(n)
    q.release([n, 12345])
    assert not first.exists() and second.exists()
    assert SpillQueue(tmp_path).count == 2


def test_prepend_goes_before_everything_and_is_atomic(tmp_path: Path) -> None:
    q = SpillQueue(tmp_path, segment_records=3)
    q.append([rec(i) for i in range(3, 6)])
    q.prepend([rec(i) for i in range(3)])
    (tmp_path / "-7.seg.tmp").write_bytes(b"half a prepend from a crash")
    reopened = SpillQueue(tmp_path)
    assert not list(tmp_path.glob("*.tmp"))
    assert drain(reopened) == [rec(i) for i in range(6)]


def test_torn_tail_is_ignored_and_counted(tmp_path: Path) -> None:
    q = SpillQueue(tmp_path)
    q.append([rec(i) for i in range(5)])
    (seg,) = segments(tmp_path)
    seg.write_bytes(seg.read_bytes()[:-3])  # a crash in the middle of the last frame
    reopened = SpillQueue(tmp_path)
    assert reopened.count == 4
    ((name, damage),) = reopened.damaged
    assert name == seg.name and damage.reason == "torn"
    reopened.append([rec(5)])
    assert drain(reopened) == [*[rec(i) for i in range(4)], rec(5)]


def test_torn_header_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "0.seg"
    append_frames(path, [rec(0)])
    path.write_bytes(path.read_bytes() + HEADER.pack(100, 0)[:5])
    records, damage = read_frames(path)
    assert records == [rec(0)]
    assert damage is not None and damage.reason == "torn" and damage.ignored_bytes == 5


def test_corrupt_crc_stops_the_segment(tmp_path: Path) -> None:
    q = SpillQueue(tmp_path)
    q.append([rec(i) for i in range(3)])
    (seg,) = segments(tmp_path)
    raw = bytearray(seg.read_bytes())
    first_len = HEADER.unpack_from(raw, 0)[0]
    raw[HEADER.size + first_len + HEADER.size + 2] ^= 0xFF  # a flipped bit inside frame 2's payload
    seg.write_bytes(bytes(raw))
    reopened = SpillQueue(tmp_path)
    assert reopened.count == 1
    assert [d.reason for _, d in reopened.damaged] == ["crc"]
    assert drain(reopened) == [rec(0)]


def test_absurd_length_prefix_is_corrupt(tmp_path: Path) -> None:
    records, damage = decode_frames(encode_frames([rec(0)]) + HEADER.pack(2**31, 0) + b"x" * 64)
    assert records == [rec(0)]
    assert damage is not None and damage.reason == "crc"


def fill(i: int, symbol: str = "BTC/USDT") -> OrderFilled:
    q, ids = Decimal("0.1"), {"client_order_id": f"c{i}", "venue_order_id": f"v{i}", "trade_id": f"t{i}"}
    return OrderFilled(
        exchange="paper", symbol=symbol, ts_event=i, ts_recv=i, **ids, side="buy", last_qty=q,
        last_price=Decimal(100 + i), cum_qty=q, leaves_qty=Decimal(0), fee=Decimal("0.01"), fee_asset="USDT",
        liquidity="taker",
    )  # fmt: skip


@pytest.mark.anyio
async def test_backlog_spills_past_memory_and_keeps_order_through_persist(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        backlog = Backlog(tmp_path, 3, ENCODE, metrics := Metrics())
        streams = [backlog.stream("t:paper:BTC/USDT:fill"), backlog.stream("t:paper:ETH/USDT:fill")]
        for i in range(10):
            backlog.new.append(Entry(streams[i % 2], 1700000000000 + i, 0, fill(i)))
        await backlog.keep()
        assert backlog.memory() == 3 and backlog.spill.count == 7 and backlog.pending() == 10
        assert metrics.get("tradingd_mirror_spilled_total") == 7
        taken = [streams[0].pending.popleft(), streams[0].pending.popleft()]  # "sent"
        for e in taken:
            backlog.settled(e)
        await backlog.keep()  # loads spilled segments back while memory has room
        assert backlog.memory() == 3 and backlog.spill.count == 5
        assert await backlog.persist() == 3  # memory goes to disk in front of the spill
        assert backlog.pending() == 8 and backlog.memory() == 0

        again = Backlog(tmp_path, 100, ENCODE, Metrics())
        assert (
            again.stream("t:paper:BTC/USDT:fill").ms == 1700000000008
        )  # new ids start above the spilled ones
        for _ in range(5):
            await again.keep()
        got = {
            k: [ANY_DECODER_MSGPACK.decode(e.data or b"") for e in st.pending]
            for k, st in again.streams.items()
        }
        assert got == {
            "t:paper:BTC/USDT:fill": [fill(i) for i in (4, 6, 8)],
            "t:paper:ETH/USDT:fill": [fill(i) for i in (1, 3, 5, 7, 9)],
        }
