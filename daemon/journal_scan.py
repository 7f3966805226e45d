"""Reading a journal directory as it is on disk: frames, damage, salvage, and what is missing.

Takes no messages and emits none: it reads segment files (``<first offset>.jseg`` of
``<u32 length><u32 crc32><payload>`` frames) and ``journal.meta``, and tells
:class:`daemon.journal.Journal` (opening), ``tradingd journal verify`` and ``tradingd journal
recover`` the same thing: per segment the byte position of every intact frame and its damage,
and the *findings* that need an operator.

What is what:

- **Torn tail**: damage in the newest segment with no intact frame after it: a crash while
  writing records that were never reported durable.  Truncated at open, not a finding.
- **Corrupt**: damage with intact frames after it (a flipped byte, a garbage length), or any
  damage in an older segment.  The frames after it are *salvaged*: the scan resynchronises on
  the next position holding a frame with a good CRC that decodes as a message.  The damaged
  bytes take exactly one offset (``DamagedSegment.lost_at``), so every salvaged record keeps
  the offset it had when the damage was one record; the journal never writes into such a
  segment again.
- **Missing**: a hole in the segment sequence (a segment starts after the previous one's
  end), segments older than ``journal.meta``'s ``released_below`` gone, or the newest segment
  that ``journal.meta`` recorded gone.  Holes an operator accepted (``journal recover``) are
  listed in ``journal.meta`` and are not findings again.

``journal.meta`` (JSON, replaced atomically) holds ``released_below`` (segments below it were
released on purpose), ``newest_segment`` (first offset of the newest segment created),
``accepted`` (offset ranges an operator accepted as lost) and ``unresolved`` (findings made
while running, e.g. PostgreSQL ahead of the journal, kept until ``journal recover``).

Resynchronising scans for the msgpack key ``kind`` every message starts with (one
``bytes.find`` per candidate), not every byte position in Python: a 64 MiB segment of
garbage is searched in well under a second.
"""

from __future__ import annotations

import os
import zlib
from array import array
from pathlib import Path
from typing import Literal

import msgspec

from actors.messages import ANY_DECODER_MSGPACK
from daemon.spill import HEADER, MAX_FRAME, Damage, fsync_path

__all__ = ["fsync_path"]

SUFFIX = ".jseg"
META = "journal.meta"
MIN_FRAME = HEADER.size + 1
_KIND_KEY = b"\xa4kind"  # msgpack str "kind": the tag key every message map starts with
_MAP_HEADERS = (1, 3, 5)  # fixmap, map16, map32: bytes before the first key


class JournalMeta(msgspec.Struct, kw_only=True):
    """What a journal directory should hold, to tell a deleted segment from a released one."""

    released_below: int = 0
    newest_segment: int = -1
    accepted: list[tuple[int, int]] = []  # [first, end) offset ranges accepted as lost
    unresolved: list[str] = []  # findings made while running, until an operator recovers
    floor: int = 0  # set by `journal recover`: no offset below it is handed out again


class MetaUnreadable(Exception):
    """``journal.meta`` exists but is not ours."""


def read_meta(directory: Path) -> JournalMeta | None:
    path = directory / META
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return msgspec.json.decode(data, type=JournalMeta)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise MetaUnreadable(f"{path} is damaged ({exc}); run `tradingd journal verify`") from None


def write_meta(directory: Path, meta: JournalMeta) -> None:
    """Replace ``journal.meta`` atomically and durably (blocking I/O)."""
    path, tmp = directory / META, directory / (META + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, msgspec.json.encode(meta) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.rename(path)
    fsync_path(directory)


def _frame_at(buf: bytes, pos: int, end: int) -> int:
    """End of the intact frame at ``pos`` (CRC good), or -1."""
    if end - pos < HEADER.size:
        return -1
    length, crc = HEADER.unpack_from(buf, pos)
    stop = pos + HEADER.size + length
    if not length or length > MAX_FRAME or stop > end:
        return -1
    return stop if zlib.crc32(memoryview(buf)[pos + HEADER.size : stop]) == crc else -1


def scan_frames(buf: bytes | memoryview) -> tuple[array[int], Damage | None]:
    """Byte position of every intact frame up to the first damaged one, and the damage (None if clean)."""
    positions: array[int] = array("Q")
    data = bytes(buf) if isinstance(buf, memoryview) else buf
    pos, end = 0, len(data)
    while pos < end:
        stop = _frame_at(data, pos, end)
        if stop < 0:
            reason: Literal["torn", "crc"] = "torn"
            if end - pos >= HEADER.size:
                length, _ = HEADER.unpack_from(data, pos)
                if length > MAX_FRAME or (length and pos + HEADER.size + length <= end):
                    reason = "crc"
            return positions, Damage(reason=reason, offset=pos, ignored_bytes=end - pos)
        positions.append(pos)
        pos = stop
    return positions, None


def _decodes(buf: bytes, pos: int, stop: int) -> bool:
    try:
        ANY_DECODER_MSGPACK.decode(memoryview(buf)[pos + HEADER.size : stop])
    except msgspec.DecodeError:
        return False
    return True


def resync(buf: bytes, start: int) -> int:
    """The byte position of the first intact, decodable frame after ``start``, or -1."""
    end = len(buf)
    at = start + 1
    while True:
        k = buf.find(_KIND_KEY, at + HEADER.size)
        if k < 0:
            return -1
        for skip in _MAP_HEADERS:
            pos = k - skip - HEADER.size
            if pos > start:
                stop = _frame_at(buf, pos, end)
                if stop > 0 and _decodes(buf, pos, stop):
                    return pos
        at = k - HEADER.size + 1


class SegmentScan(msgspec.Struct, kw_only=True):
    """One segment file as found: its intact frames and what is wrong with it."""

    first: int
    path: str
    file_size: int
    positions: list[int]  # byte position of every record, in offset order (a lost one included)
    size: int  # bytes that hold records (the rest is a torn tail or damage)
    damage: Damage | None = None
    torn_tail: bool = False  # damage with nothing intact after it, in the newest segment
    lost_at: int = -1  # index in ``positions`` of the damaged bytes (-1: none)
    salvaged: int = 0  # intact records found after the damage
    damaged_bytes: int = 0

    @property
    def records(self) -> int:
        return len(self.positions)

    @property
    def end(self) -> int:
        """The offset after this segment's last record."""
        return self.first + len(self.positions)

    @property
    def corrupt(self) -> bool:
        return self.damage is not None and not self.torn_tail


class Inspection(msgspec.Struct, kw_only=True):
    """A journal directory as found on disk."""

    directory: str
    segments: list[SegmentScan]
    findings: list[str]  # each needs an operator: trading is refused until `journal recover`
    gaps: list[tuple[int, int]]  # [first, end) offset ranges with no record, not accepted
    meta: JournalMeta | None
    next_offset: int  # where new records may go without reusing an offset that was ever used

    @property
    def damaged(self) -> bool:
        return bool(self.findings)


def segment_files(directory: Path) -> list[tuple[int, Path]]:
    return sorted(
        (int(p.name[: -len(SUFFIX)]), p)
        for p in directory.glob("*" + SUFFIX)
        if p.name[: -len(SUFFIX)].isdigit()
    )


def scan_segment(first: int, path: Path, data: bytes, newest: bool) -> SegmentScan:
    positions, damage = scan_frames(data)
    scan = SegmentScan(
        first=first, path=str(path), file_size=len(data), positions=list(positions), size=len(data)
    )
    if damage is None:
        return scan
    scan.damage = damage
    nxt = resync(data, damage.offset)
    if nxt < 0:
        scan.damaged_bytes = len(data) - damage.offset
        if newest:
            scan.size, scan.torn_tail = damage.offset, True
        else:  # an older segment was complete once: its damaged tail held (at least) one record
            scan.lost_at = len(scan.positions)
            scan.positions.append(damage.offset)
        return scan
    scan.lost_at = len(scan.positions)
    scan.positions.append(damage.offset)  # the damaged bytes take one offset
    scan.damaged_bytes = nxt - damage.offset
    pos, end = nxt, len(data)
    while pos < end:
        stop = _frame_at(data, pos, end)
        if stop < 0:
            again = resync(data, pos)
            if again < 0:
                break  # a torn tail after the salvaged records
            scan.damaged_bytes += again - pos
            pos = again
            continue
        scan.positions.append(pos)
        scan.salvaged += 1
        pos = stop
    scan.size = pos
    return scan


def _covered(lo: int, hi: int, accepted: list[tuple[int, int]]) -> bool:
    return any(a <= lo and hi <= b for a, b in accepted)


def inspect_journal(directory: Path, segment_bytes: int) -> Inspection:
    """Scan every segment of ``directory`` (blocking I/O; nothing is changed)."""
    try:
        meta = read_meta(directory)
        meta_problem = ""
    except MetaUnreadable as exc:
        meta, meta_problem = None, str(exc)
    files = segment_files(directory)
    scans = [
        scan_segment(first, path, path.read_bytes(), k == len(files) - 1)
        for k, (first, path) in enumerate(files)
    ]
    findings: list[str] = [meta_problem] if meta_problem else []
    gaps: list[tuple[int, int]] = []
    accepted = meta.accepted if meta is not None else []
    if meta is not None:
        findings += meta.unresolved
    for s in scans:
        if s.corrupt:
            assert s.damage is not None
            name = Path(s.path).name
            findings.append(
                f"segment {name} is corrupt at byte {s.damage.offset} ({s.damage.reason}): "
                f"{s.lost_at if s.lost_at >= 0 else len(s.positions)} records before it, "
                f"{s.salvaged} intact records salvaged after it, {s.damaged_bytes} bytes unreadable"
            )
    expected = meta.released_below if meta is not None else (scans[0].first if scans else 0)
    for s in scans:
        if s.first > expected and not _covered(expected, s.first, accepted):
            gaps.append((expected, s.first))
            findings.append(
                f"records {expected}..{s.first - 1} are missing before segment {Path(s.path).name} "
                "(a segment file was deleted or lost)"
            )
        elif s.first < expected and s.first >= (meta.released_below if meta is not None else 0):
            findings.append(
                f"segment {Path(s.path).name} overlaps the records before it (offsets from {s.first}, "
                f"expected {expected})"
            )
        expected = max(expected, s.end)
    newest_seen = scans[-1].first if scans else -1
    if meta is not None and meta.newest_segment > newest_seen:
        findings.append(
            f"the newest segment ({meta.newest_segment:020d}{SUFFIX}) is missing: "
            "its records and everything after them are lost"
        )
    # Where new records may go: past every offset that may ever have been handed out.
    nxt = expected
    for s in scans:
        if s.corrupt or s.torn_tail:
            nxt = max(nxt, s.end + s.damaged_bytes // MIN_FRAME)
    if meta is not None and meta.newest_segment > newest_seen:
        nxt = max(nxt, meta.newest_segment + segment_bytes // MIN_FRAME + 1)
    if not findings:
        tail = scans[-1] if scans else None
        nxt = expected if tail is None else max(expected, tail.end)
    if meta is not None:
        nxt = max(nxt, meta.floor)
    return Inspection(
        directory=str(directory), segments=scans, findings=findings, gaps=gaps, meta=meta, next_offset=nxt
    )
