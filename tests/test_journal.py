"""The order journal: round trips, reopen, torn tails (corruption: test_journal_damage.py), rotation,
release, group commit, and a writer process SIGKILLed mid-stream that loses nothing it acknowledged
as flushed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import zlib
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import Message, OrderFilled, OrderSubmitted
from daemon.journal import SUFFIX, Journal, JournalLocked
from daemon.metrics import Metrics
from daemon.spill import HEADER
from tests.helpers import ROOT


def msg(i: int) -> Message:
    """Record ``i`` of a deterministic order-path stream (what the killed writer writes, too)."""
    if i % 3 == 0:
        return OrderSubmitted(
            exchange="paper",
            symbol="BTC/USDT",
            ts_event=1_700_000_000_000_000_000 + i,
            ts_recv=1_700_000_000_000_000_000 + i,
            intent_id=f"intent-{i}",
            client_order_id=f"td-{i}",
            side="buy",
            order_type="limit",
            quantity=Decimal("0.00100000"),
            price=Decimal(f"{30000 + i}.12345678"),
        )
    return OrderFilled(
        exchange="paper",
        symbol="BTC/USDT",
        ts_event=1_700_000_000_000_000_000 + i,
        ts_recv=1_700_000_000_000_000_000 + i,
        client_order_id=f"td-{i - i % 3}",
        venue_order_id=f"v-{i}",
        trade_id=f"t-{i}",
        side="buy",
        last_qty=Decimal("0.0005"),
        last_price=Decimal("30000.5"),
        cum_qty=Decimal("0.0005") * (i % 3),
        leaves_qty=Decimal("0.001") - Decimal("0.0005") * (i % 3),
        fee=Decimal("0.00000001"),
        fee_asset="BTC",
        liquidity="maker",
    )


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX))


def read_all(journal: Journal, offset: int = 0) -> list[tuple[int, Message]]:
    return list(journal.read_from(offset))


async def write(directory: Path, n: int, start: int = 0, **kw: int) -> Journal:
    journal = Journal.open(directory, metrics=Metrics(), **kw)
    for i in range(start, start + n):
        assert journal.append(msg(i)) == i
    await journal.flush()
    return journal


@pytest.mark.anyio
async def test_append_flush_read_round_trip_and_reopen(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        journal = Journal.open(tmp_path, metrics=Metrics())
        offsets = [journal.append(msg(i)) for i in range(100)]
        assert offsets == list(range(100))
        assert journal.durable_offset == 0 and read_all(journal) == []  # only durable records are read
        assert await journal.flush() == 100
        assert read_all(journal) == [(i, msg(i)) for i in range(100)]
        assert read_all(journal, 60) == [(i, msg(i)) for i in range(60, 100)]
        records, nxt = journal.read_batch(10, 5)
        assert records == [(i, msg(i)) for i in range(10, 15)] and nxt == 15
        assert journal.read_batch(100, 5) == ([], 100)
        journal_id = journal.journal_id
        journal.close()

        again = Journal.open(tmp_path, metrics=Metrics())
        assert (again.journal_id, again.next_offset, again.durable_offset) == (journal_id, 100, 100)
        assert again.damaged == []
        assert again.append(msg(100)) == 100
        await again.aclose()
        third = Journal.open(tmp_path, metrics=Metrics())
        assert read_all(third) == [(i, msg(i)) for i in range(101)]
        third.close()


@pytest.mark.anyio
async def test_one_writer_per_directory(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path, metrics=Metrics())
    with pytest.raises(JournalLocked):
        Journal.open(tmp_path, metrics=Metrics())
    journal.close()
    Journal.open(tmp_path, metrics=Metrics()).close()


@pytest.mark.anyio
async def test_concurrent_flushes_share_fsyncs(tmp_path: Path) -> None:
    metrics = Metrics()
    journal = Journal.open(tmp_path, metrics=metrics)

    async def producer(k: int) -> None:
        for i in range(20):
            journal.append(msg(k * 1000 + i))
            await journal.flush()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for k in range(20):
                tg.start_soon(producer, k)
    assert journal.durable_offset == 400
    assert metrics.get("tradingd_journal_records_total") == 400
    fsyncs = metrics.get("tradingd_journal_fsyncs_total")
    assert 1 <= fsyncs < 400 / 2, fsyncs  # group commit: far fewer syncs than flush calls
    assert sorted(m.ts_event for _, m in read_all(journal)) == sorted(
        msg(k * 1000 + i).ts_event for k in range(20) for i in range(20)
    )
    journal.close()


@pytest.mark.anyio
async def test_torn_tail_is_truncated_and_counted(tmp_path: Path) -> None:
    (await write(tmp_path, 10)).close()
    (seg,) = segments(tmp_path)
    good = seg.stat().st_size
    frame = HEADER.pack(100, 0) + b"half a frame"
    with seg.open("ab") as f:
        f.write(frame)
    metrics = Metrics()
    journal = Journal.open(tmp_path, metrics=metrics)
    assert [(name, d.reason, d.offset) for name, d in journal.damaged] == [(seg.name, "torn", good)]
    assert metrics.get("tradingd_journal_damaged_total", {"reason": "torn"}) == 1
    assert seg.stat().st_size == good
    assert journal.next_offset == 10 and read_all(journal) == [(i, msg(i)) for i in range(10)]
    journal.append(msg(10))
    await journal.aclose()
    again = Journal.open(tmp_path, metrics=Metrics())
    assert again.damaged == [] and read_all(again) == [(i, msg(i)) for i in range(11)]
    again.close()


@pytest.mark.anyio
async def test_zeroed_tail_is_torn_not_records(tmp_path: Path) -> None:
    (await write(tmp_path, 3)).close()
    (seg,) = segments(tmp_path)
    with seg.open("ab") as f:
        f.write(bytes(4096))  # what a filesystem may show past the last synced write after power loss
    journal = Journal.open(tmp_path, metrics=Metrics())
    assert [d.reason for _, d in journal.damaged] == ["torn"]
    assert read_all(journal) == [(i, msg(i)) for i in range(3)]
    journal.close()


@pytest.mark.anyio
async def test_undecodable_record_is_skipped_and_counted(tmp_path: Path) -> None:
    (await write(tmp_path, 2)).close()
    (seg,) = segments(tmp_path)
    payload = b"\x81\xa4kind\xa9Nonesuchs"  # good CRC, unknown message kind
    with seg.open("ab") as f:
        f.write(HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
    metrics = Metrics()
    journal = Journal.open(tmp_path, metrics=metrics)
    assert journal.damaged == [] and journal.next_offset == 3
    assert journal.read_batch(2, 10) == ([], 3)
    assert metrics.get("tradingd_journal_undecodable_total") == 1
    journal.append(msg(3))
    await journal.flush()
    assert [off for off, _ in read_all(journal)] == [0, 1, 3]
    journal.close()


@pytest.mark.anyio
async def test_rotation_by_size(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        journal = await write(tmp_path, 50, segment_bytes=1000)
        segs = segments(tmp_path)
        assert len(segs) > 3
        assert all(p.stat().st_size <= 1000 for p in segs)
        firsts = [int(p.name[: -len(SUFFIX)]) for p in segs]
        assert firsts[0] == 0 and firsts == sorted(firsts)
        assert read_all(journal) == [(i, msg(i)) for i in range(50)]
        assert read_all(journal, firsts[2] + 1)[0][0] == firsts[2] + 1
        journal.close()
        again = Journal.open(tmp_path, segment_bytes=1000, metrics=Metrics())
        assert again.next_offset == 50 and read_all(again) == [(i, msg(i)) for i in range(50)]
        again.close()


@pytest.mark.anyio
async def test_release_below(tmp_path: Path) -> None:
    with anyio.fail_after(10):
        journal = await write(tmp_path, 50, segment_bytes=1000)
        firsts = [int(p.name[: -len(SUFFIX)]) for p in segments(tmp_path)]
        assert await journal.release_below(firsts[2] - 1) == 1  # segment 1 is not fully below
        assert journal.first_offset == firsts[1]
        assert await journal.release_below(firsts[3]) == 2
        assert journal.first_offset == firsts[3]
        assert [int(p.name[: -len(SUFFIX)]) for p in segments(tmp_path)] == firsts[3:]
        assert read_all(journal)[0] == (firsts[3], msg(firsts[3]))
        assert await journal.release_below(10**9) == len(firsts) - 4  # never the last segment
        assert len(segments(tmp_path)) == 1
        journal.close()
        again = Journal.open(tmp_path, segment_bytes=1000, metrics=Metrics())
        assert again.first_offset == firsts[-1] and again.next_offset == 50
        assert again.read_batch(0, 1000)[0][0][0] == firsts[-1]
        again.close()


@pytest.mark.anyio
async def test_failed_write_is_cut_back_and_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = Metrics()
    journal = await write(tmp_path, 5)
    journal._metrics = metrics
    real = os.pwrite
    calls = {"n": 0}

    def flaky(fd: int, data: bytes | memoryview, offset: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            real(fd, bytes(data)[:7], offset)  # a partial write, then the disk is full
            raise OSError(28, "No space left on device")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", flaky)
    for i in range(5, 10):
        journal.append(msg(i))
    with pytest.raises(OSError):
        await journal.flush()
    assert journal.durable_offset == 5
    assert metrics.get("tradingd_journal_errors_total", {"error": "OSError"}) == 1
    assert await journal.flush() == 10
    journal.close()
    again = Journal.open(tmp_path, metrics=Metrics())
    assert again.damaged == [] and read_all(again) == [(i, msg(i)) for i in range(10)]
    again.close()


CHILD = textwrap.dedent(
    """
    import sys
    import time
    import anyio
    from daemon.journal import Journal
    from daemon.metrics import Metrics
    from tests.test_journal import msg

    async def main() -> None:
        journal = Journal.open(sys.argv[1], segment_bytes=16384, metrics=Metrics())
        i, deadline = journal.next_offset, time.monotonic() + 30  # never outlives a stuck test
        while time.monotonic() < deadline:
            for _ in range(1 + i % 13):
                journal.append(msg(i))
                i += 1
            print(await journal.flush(), flush=True)

    anyio.run(main)
    """
)


def test_sigkill_mid_stream_loses_no_flushed_record(tmp_path: Path) -> None:
    acked = 0
    for _round in range(2):  # the second round appends to the segment the first one was killed in
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        try:
            target = acked + 1500
            for line in proc.stdout:  # each line: every record below it is flushed
                acked = max(acked, int(line))
                if acked >= target:
                    break
            proc.send_signal(signal.SIGKILL)
            rest, _ = proc.communicate(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for line in rest.split():
            acked = max(acked, int(line))
        assert proc.returncode == -signal.SIGKILL and acked >= target
        journal = Journal.open(tmp_path, segment_bytes=16384, metrics=Metrics())
        records = read_all(journal)
        journal.close()
        assert len(segments(tmp_path)) > 2
        assert len(records) >= acked  # everything acknowledged, maybe a little more
        assert records == [(i, msg(i)) for i in range(len(records))]
