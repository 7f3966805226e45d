"""A damaged or incomplete journal is never truncated past intact records nor silently restarted.

Corruption at the head, middle and tail of the newest and of an older segment, a garbage length
header, deleted segments (oldest, middle, newest, the only one), a garbage ``journal.id``: each
is a *finding* (trading halts), every intact record, also after the damage, is read at its
offset, new records never reuse an offset, and ``tradingd journal recover`` salvages them into a
clean journal that reopens without findings.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from daemon.cli import main as cli_main
from daemon.journal import SUFFIX, Journal, JournalError
from daemon.journal_repair import recover, verify
from daemon.journal_scan import scan_frames
from daemon.metrics import Metrics
from daemon.spill import HEADER
from tests.test_journal import msg, read_all, segments, write

SEG = 1024  # a few records per segment


def flip(path: Path, record: int, at: int = 3) -> None:
    """Flip one payload byte of the ``record``-th frame of ``path``."""
    data = bytearray(path.read_bytes())
    positions, damage = scan_frames(bytes(data))
    assert damage is None
    data[positions[record] + HEADER.size + at] ^= 0xFF
    path.write_bytes(bytes(data))


def first_of(path: Path) -> int:
    return int(path.name[: -len(SUFFIX)])


@pytest.mark.anyio
async def test_flipped_byte_mid_newest_segment_keeps_every_later_record(tmp_path: Path) -> None:
    """The probe's case: record 90 of 186 in the newest segment; today the 96 after it were cut."""
    (await write(tmp_path, 186)).close()
    (seg,) = segments(tmp_path)
    before = seg.read_bytes()
    flip(seg, 90)
    damaged = seg.read_bytes()
    metrics = Metrics()
    journal = Journal.open(tmp_path, metrics=metrics)
    assert len(journal.findings) == 1 and "corrupt" in journal.findings[0]
    assert "95 intact records salvaged" in journal.findings[0]
    assert metrics.get("tradingd_journal_findings") == 1
    assert seg.read_bytes() == damaged  # nothing truncated
    assert (tmp_path / "quarantine" / seg.name).read_bytes() == damaged
    got = read_all(journal)
    assert [off for off, _ in got] == [i for i in range(186) if i != 90]
    assert all(m == msg(off) for off, m in got)
    # new records never reuse an offset the damaged bytes may have held, and go to a new segment
    assert journal.next_offset >= 186
    off = journal.append(msg(500))
    await journal.aclose()
    assert len(segments(tmp_path)) == 2 and first_of(segments(tmp_path)[1]) == off
    again = Journal.open(tmp_path, metrics=Metrics())
    assert again.findings  # still damaged until an operator recovers
    assert read_all(again)[-1] == (off, msg(500))
    again.close()
    assert before != damaged


@pytest.mark.anyio
async def test_garbage_length_header_is_corruption_not_a_tail(tmp_path: Path) -> None:
    (await write(tmp_path, 40)).close()
    (seg,) = segments(tmp_path)
    data = bytearray(seg.read_bytes())
    positions, _ = scan_frames(bytes(data))
    struct.pack_into("<I", data, positions[20], 60 * 1024 * 1024)  # a 60 MB record, says the header
    seg.write_bytes(bytes(data))
    journal = Journal.open(tmp_path, metrics=Metrics())
    assert journal.findings and seg.stat().st_size == len(data)
    assert [off for off, _ in read_all(journal)] == [i for i in range(40) if i != 20]
    journal.close()


@pytest.mark.anyio
@pytest.mark.parametrize("where", ["head", "middle", "tail"])
@pytest.mark.parametrize("which", ["older", "newest"])
async def test_corruption_anywhere_is_a_finding_with_every_other_record_kept(
    tmp_path: Path, where: str, which: str
) -> None:
    journal = await write(tmp_path, 30, segment_bytes=SEG)
    total = 30
    while len(scan_frames(segments(tmp_path)[-1].read_bytes())[0]) < 3:  # a middle in the newest
        journal.append(msg(total))
        await journal.flush()
        total += 1
    journal.close()
    segs = segments(tmp_path)
    assert len(segs) >= 3
    seg = segs[0] if which == "older" else segs[-1]
    n = len(scan_frames(seg.read_bytes())[0])
    index = {"head": 0, "middle": n // 2, "tail": n - 1}[where]
    flip(seg, index)
    journal = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    lost = first_of(seg) + index
    if which == "newest" and where == "tail":
        # damage with nothing intact after it in the newest segment: a torn write, truncated
        assert journal.findings == [] and journal.next_offset == lost
        assert [off for off, _ in read_all(journal)] == list(range(lost))
    else:
        assert len(journal.findings) == 1
        assert [off for off, _ in read_all(journal)] == [i for i in range(total) if i != lost]
        assert journal.next_offset >= total
    journal.close()


@pytest.mark.anyio
@pytest.mark.parametrize("which", ["oldest", "middle", "newest", "only"])
async def test_deleted_segment_is_detected(tmp_path: Path, which: str) -> None:
    if which == "only":
        (await write(tmp_path, 10)).close()
    else:
        (await write(tmp_path, 30, segment_bytes=SEG)).close()
    segs = segments(tmp_path)
    victim = segs[{"oldest": 0, "middle": 1, "newest": -1, "only": 0}[which]]
    victim.unlink()
    assert (tmp_path / "journal.id").exists()
    journal = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    assert len(journal.findings) == 1, journal.findings
    assert "missing" in journal.findings[0]
    assert journal.next_offset >= (10 if which == "only" else 30)  # offsets never restart
    journal.close()
    code, lines = verify(tmp_path, SEG)
    assert code == 1 and any("missing" in line for line in lines)


@pytest.mark.anyio
async def test_released_segments_are_not_findings(tmp_path: Path) -> None:
    journal = await write(tmp_path, 30, segment_bytes=SEG)
    firsts = [first_of(p) for p in segments(tmp_path)]
    assert await journal.release_below(firsts[2]) == 2
    journal.close()
    again = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    assert again.findings == [] and again.first_offset == firsts[2] and again.next_offset == 30
    again.close()


@pytest.mark.anyio
async def test_recover_salvages_and_reopens_clean(tmp_path: Path) -> None:
    (await write(tmp_path, 30, segment_bytes=SEG)).close()
    segs = segments(tmp_path)
    flip(segs[0], 1)
    segs[2].unlink()
    # the daemon ran damaged for a while: its records went past every possibly used offset
    journal = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    assert len(journal.findings) == 2
    before = read_all(journal)
    extra = journal.append(msg(1000))
    await journal.aclose()
    held = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    try:
        with pytest.raises(JournalError, match="stop it first"):
            recover(tmp_path, SEG)
        assert held.findings
    finally:
        held.close()
    code, lines = recover(tmp_path, SEG)
    assert code == 0 and any("journal is clean" in line for line in lines)
    assert list((tmp_path / "quarantine").glob("*/report.txt"))
    clean = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    assert clean.findings == []
    assert read_all(clean) == [*before, (extra, msg(1000))]  # every salvaged record at its offset
    nxt = clean.append(msg(1001))
    assert nxt > extra
    await clean.aclose()
    final = Journal.open(tmp_path, segment_bytes=SEG, metrics=Metrics())
    assert final.findings == [] and read_all(final)[-1] == (nxt, msg(1001))
    final.close()
    assert verify(tmp_path, SEG)[0] == 0
    assert recover(tmp_path, SEG)[0] == 0  # nothing to do


@pytest.mark.anyio
async def test_journal_cli_verify_and_recover(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (await write(tmp_path, 20)).close()
    flip(segments(tmp_path)[0], 5)
    assert cli_main(["journal", "verify", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "CORRUPT" in out and "group paper:BTC/USDT" in out
    assert cli_main(["journal", "recover", "--dir", str(tmp_path)]) == 0
    assert cli_main(["journal", "verify", "--dir", str(tmp_path)]) == 0
    assert cli_main(["journal", "verify", "--dir", str(tmp_path / "nope")]) == 2


@pytest.mark.anyio
async def test_garbage_journal_id_is_a_clear_error(tmp_path: Path) -> None:
    (await write(tmp_path, 3)).close()
    (tmp_path / "journal.id").write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(JournalError, match=r"does not hold a journal id"):
        Journal.open(tmp_path, metrics=Metrics())


@pytest.mark.anyio
async def test_garbage_meta_is_a_finding(tmp_path: Path) -> None:
    (await write(tmp_path, 3)).close()
    (tmp_path / "journal.meta").write_bytes(b"\x00\x01not json")
    journal = Journal.open(tmp_path, metrics=Metrics())
    assert journal.findings and "journal.meta" in journal.findings[0]
    assert [off for off, _ in read_all(journal)] == [0, 1, 2]
    journal.close()
