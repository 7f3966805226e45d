"""The local order journal: append-only, checksummed, fsynced segment files; the source of truth.

Each record has an *offset*, a global sequence number never reused in one directory.  On
disk: segments ``<first offset, 20 digits>.jseg`` of :mod:`daemon.spill` frames
``<u32 length><u32 crc32(payload)><payload>`` (payload: msgpack of one Message, decoded by
``ANY_DECODER_MSGPACK``); a record's offset is its segment's first offset plus its index.
``journal.id`` names the journal (random, so a store can tell a recreated directory from the
old one); ``journal.lock`` holds an exclusive ``flock``: one writer per directory.

:meth:`Journal.append` encodes into memory and returns the offset (no I/O: event-loop safe);
:meth:`Journal.flush` writes everything queued and ``fdatasync``s it in a worker thread, one
write and one sync shared by concurrent flushes (group commit).  Once ``flush()`` returned,
the records survive ``kill -9`` and power loss.  Segments rotate at ``segment_bytes`` (the
full one synced first, the directory after).  A failed write is cut back; its records stay
queued.  Readers see *durable* records only, so nothing downstream (the PostgreSQL writer)
ever holds an offset a crash could hand out again.

Opening scans every frame (:mod:`daemon.journal_scan`).  A torn tail of the newest segment
(damage with nothing intact after it: records never reported durable) is truncated.  Any other
damage, a corrupt frame with intact ones after it, damage in an older segment, a deleted
segment, is a *finding*: nothing is truncated, corrupt segments are copied to ``quarantine/``,
every intact frame (also those after the damage) is read, new records go to a new segment past
every offset that may have been used, and :attr:`Journal.findings` tells the daemon to halt
trading until an operator runs ``tradingd journal recover``.  All damage is counted
(``tradingd_journal_damaged_total``), findings are a gauge (``tradingd_journal_findings``).
A frame with a good CRC that does not decode (a kind unknown to this version) is skipped and
counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
import uuid
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Generator, Iterator
from itertools import islice
from pathlib import Path

import anyio
import msgspec

from actors.histogram import IO_BUCKETS
from actors.messages import ANY_DECODER_MSGPACK, Message
from daemon.journal_scan import (
    SUFFIX,
    Inspection,
    JournalMeta,
    fsync_path,
    inspect_journal,
    scan_frames,
    write_meta,
)
from daemon.metrics import METRICS, Metrics
from daemon.spill import HEADER, MAX_FRAME, Damage

__all__ = ["SUFFIX", "Journal", "JournalDamaged", "JournalError", "JournalLocked", "scan_frames"]

log = logging.getLogger("tradingd.journal")
_X = {"component": "journal"}

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
READ_CHUNK = 1024 * 1024
_ENCODER = msgspec.msgpack.Encoder()
_HELP = {
    "tradingd_journal_records_total": ("counter", "Records written to the order journal and synced."),
    "tradingd_journal_fsyncs_total": ("counter", "Journal syncs (one per segment touched by a flush)."),
    "tradingd_journal_errors_total": ("counter", "Journal I/O errors by exception."),
    "tradingd_journal_damaged_total": ("counter", "Damaged journal frames found (torn, crc)."),
    "tradingd_journal_undecodable_total": ("counter", "Journal records that do not decode, skipped."),
    "tradingd_journal_segments": ("gauge", "Journal segment files kept."),
    "tradingd_journal_findings": (
        "gauge",
        "Journal damage an operator must look at (corrupt or missing records): trading is halted while > 0.",
    ),
}


class JournalError(Exception):
    """The journal cannot be used (closed, or its directory is held by another writer)."""


class JournalLocked(JournalError):
    """Another process (or another open in this one) holds the journal directory."""


class JournalDamaged(JournalError):
    """The journal lost records (corrupt or missing): it needs ``tradingd journal recover``."""


def encode_frame(msg: Message) -> bytes:
    payload = _ENCODER.encode(msg)
    if len(payload) > MAX_FRAME:
        raise ValueError(f"a {type(msg).__name__} of {len(payload)} bytes is too large for the journal")
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


class _Segment:
    __slots__ = ("first", "lost_at", "path", "positions", "size")

    def __init__(self, first: int, path: Path, positions: array[int], size: int, lost_at: int = -1) -> None:
        self.first, self.path, self.positions, self.size = first, path, positions, size
        self.lost_at = lost_at  # index of a damaged record (read as nothing), -1 if none


_fsync = fsync_path


class Journal:
    """One journal directory, opened for writing. Build with :meth:`open`; single writer."""

    def __init__(
        self, directory: Path, journal_id: str, lock_fd: int, segment_bytes: int, metrics: Metrics
    ) -> None:
        self.directory, self.journal_id = directory, journal_id
        self.segment_bytes = max(HEADER.size + 1, segment_bytes)
        self.damaged: list[tuple[str, Damage]] = []
        # Damage an operator must look at (corrupt or missing records); while there is any the
        # daemon halts every group. Cleared only by `tradingd journal recover`.
        self.findings: list[str] = []
        self.inspection: Inspection | None = None
        self.meta = JournalMeta()
        self._metrics = metrics
        for name, (kind, text) in _HELP.items():
            metrics.describe(name, kind, text)
        self._fsync_time = metrics.histogram(
            "tradingd_journal_fsync_seconds", "Journal fdatasync of one segment write", bounds=IO_BUCKETS
        )
        self._lock_fd: int | None = lock_fd
        self._lock = threading.Lock()  # the segment table; taken by the flush and reader threads
        self._segments: list[_Segment] = []
        self._fd: int | None = None  # the last segment, open for writing
        self._pending: list[bytes] = []  # appended frames not written yet, first at ``_durable``
        self._next = 0  # offset the next append gets
        self._durable = 0  # every offset below this is on disk and synced
        self._flush_lock: anyio.Lock | None = None
        self._flushed: anyio.Event | None = None
        self._writing = False  # a flush thread uses ``_fd``: close() leaves the files to it
        self._closed = False

    @classmethod
    def open(
        cls,
        directory: Path | str,
        *,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
        metrics: Metrics | None = None,
    ) -> Journal:
        """Lock and scan ``directory`` (made if missing). Blocking I/O: at startup or in a thread."""
        directory = Path(directory)
        if not directory.is_dir():
            directory.mkdir(parents=True)
            _fsync(directory.parent)  # the new directory's entry survives a power loss too
        lock_fd = os.open(directory / "journal.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise JournalLocked(f"journal {directory} is open in another writer") from None
        try:
            journal = cls(directory, _journal_id(directory), lock_fd, segment_bytes, metrics or METRICS)
            journal._scan()
        except BaseException:
            os.close(lock_fd)
            raise
        return journal

    def _scan(self) -> None:
        insp = inspect_journal(self.directory, self.segment_bytes)
        self.inspection = insp
        self.findings = list(insp.findings)
        for scan in insp.segments:
            path = Path(scan.path)
            if scan.damage is not None:
                damage = scan.damage
                self.damaged.append((path.name, damage))
                self._metrics.inc("tradingd_journal_damaged_total", {"reason": damage.reason})
                if scan.torn_tail:  # a crash mid-write: expected, never reported durable
                    log.warning("journal segment %s has a torn tail (%s): truncated", path, damage, extra=_X)
                    if not insp.findings:
                        os.truncate(path, scan.size)
                        _fsync(path)
            positions = array("Q", scan.positions)
            self._segments.append(_Segment(scan.first, path, positions, scan.size, scan.lost_at))
        self._next = self._durable = insp.next_offset
        meta = insp.meta or JournalMeta()
        if self._segments and not self.findings:
            newest = self._segments[-1].first
            if insp.meta is None or meta.newest_segment < newest:
                released = meta.released_below if insp.meta is not None else self._segments[0].first
                meta = JournalMeta(
                    released_below=released, newest_segment=newest, accepted=meta.accepted, floor=meta.floor
                )
                write_meta(self.directory, meta)
        self.meta = meta
        for finding in self.findings:
            log.critical("journal %s: %s", self.directory, finding, extra=_X)
        if self.findings:
            self._quarantine(insp)
        self._metrics.set("tradingd_journal_segments", len(self._segments))
        self._metrics.set("tradingd_journal_findings", len(self.findings))

    def _quarantine(self, insp: Inspection) -> None:
        """Copy every corrupt segment, as it is, to ``quarantine/`` (once per content)."""
        qdir = self.directory / "quarantine"
        for scan in insp.segments:
            if not scan.corrupt:
                continue
            src = Path(scan.path)
            data = src.read_bytes()
            qdir.mkdir(exist_ok=True)
            for n in range(1000):
                dest = qdir / (src.name if n == 0 else f"{src.name}.{n}")
                if not dest.exists():
                    dest.write_bytes(data)
                    _fsync(dest)
                    _fsync(qdir)
                    log.error("journal segment %s copied to %s", src, dest, extra=_X)
                    break
                if dest.read_bytes() == data:
                    break

    def add_finding(self, finding: str) -> None:
        """Record damage found while running (e.g. PostgreSQL ahead of the journal) durably in
        ``journal.meta``: it holds until ``tradingd journal recover`` (blocking I/O, small)."""
        if finding in self.findings:
            return
        self.findings.append(finding)
        self.meta = msgspec.structs.replace(self.meta, unresolved=[*self.meta.unresolved, finding])
        log.critical("journal %s: %s", self.directory, finding, extra=_X)
        self._metrics.set("tradingd_journal_findings", len(self.findings))
        try:
            write_meta(self.directory, self.meta)
        except OSError as exc:
            self._metrics.inc("tradingd_journal_errors_total", {"error": type(exc).__name__})
            log.error("could not record the journal finding in journal.meta: %r", exc, extra=_X)

    def skip_to(self, offset: int) -> None:
        """Hand out no offset below ``offset`` (it was used elsewhere, e.g. the store has it).
        Only before anything is appended; new records go to a new segment."""
        if self._pending:
            raise JournalError("skip_to with records queued")
        if offset > self._next:
            skipped = (self._next, offset)  # never held a record of this journal: not a hole
            self._next = self._durable = offset
            accepted = [*self.meta.accepted, skipped]
            self.meta = msgspec.structs.replace(
                self.meta, floor=max(self.meta.floor, offset), accepted=accepted
            )
            write_meta(self.directory, self.meta)  # durable: a restart never hands them out either

    @property
    def next_offset(self) -> int:
        """The offset the next :meth:`append` returns."""
        return self._next

    @property
    def segment_count(self) -> int:
        """Segment files kept (the oldest are deleted once released)."""
        with self._lock:
            return len(self._segments)

    @property
    def durable_offset(self) -> int:
        """Every record below this offset is on disk and synced (survives a crash)."""
        return self._durable

    @property
    def first_offset(self) -> int:
        """The oldest offset still kept (segments below it were released)."""
        with self._lock:
            return self._segments[0].first if self._segments else self._next

    def append(self, msg: Message) -> int:
        """Queue ``msg`` (in memory, no I/O) and return its offset; durable after the next :meth:`flush`."""
        if self._closed:
            raise JournalError("journal is closed")
        self._pending.append(encode_frame(msg))
        offset = self._next
        self._next += 1
        return offset

    async def flush(self) -> int:
        """Write and sync (in a worker thread) every record appended before this call.

        Returns :attr:`durable_offset`.  Concurrent callers queue on one lock; later ones
        mostly find their records written already.  On ``OSError`` the records stay queued.
        """
        target = self._next
        if self._durable >= target:
            return self._durable
        if self._flush_lock is None:
            self._flush_lock = anyio.Lock()
        async with self._flush_lock:
            if self._durable >= target:
                return self._durable
            if self._closed:
                raise JournalError("journal is closed")
            frames, self._pending = self._pending, []
            progress = [0, 0]  # records written and synced, syncs
            self._writing = True
            try:
                await anyio.to_thread.run_sync(self._write, frames, progress)
            except OSError as exc:
                self._metrics.inc("tradingd_journal_errors_total", {"error": type(exc).__name__})
                log.error("journal write failed, %d records stay queued: %s", len(frames), exc, extra=_X)
                raise
            finally:
                self._writing = False
                if self._closed:
                    self._close_files()
                else:
                    self._pending[:0] = frames[progress[0] :]
                self._metrics.inc("tradingd_journal_fsyncs_total", None, progress[1])
                self._metrics.set("tradingd_journal_segments", len(self._segments))
                if progress[0]:
                    self._metrics.inc("tradingd_journal_records_total", None, progress[0])
                    if self._flushed is not None:
                        self._flushed.set()
                        self._flushed = None
            return self._durable

    def _write(self, frames: list[bytes], progress: list[int]) -> None:
        """Worker thread: write ``frames`` (first at ``_durable``) segment by segment, sync each."""
        i = 0
        while i < len(frames):
            with self._lock:
                seg = self._segments[-1] if self._segments else None
            full = seg is not None and seg.size and seg.size + len(frames[i]) > self.segment_bytes
            if seg is None or full or seg.first + len(seg.positions) != self._durable or seg.lost_at >= 0:
                seg = self._rotate()  # (a damaged segment, or offsets skipped: never write after it)
            positions: array[int] = array("Q")
            j = i
            end = start = seg.size
            while j < len(frames) and (j == i or end + len(frames[j]) <= self.segment_bytes):
                positions.append(end)
                end += len(frames[j])
                j += 1
            if self._fd is None:
                self._fd = os.open(seg.path, os.O_WRONLY)
            data, at = memoryview(b"".join(frames[i:j])), start
            try:
                while data:
                    n = os.pwrite(self._fd, data, at)
                    data, at = data[n:], at + n
                synced = time.perf_counter()
                os.fdatasync(self._fd)
                self._fsync_time.observe(time.perf_counter() - synced)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)  # no torn tail of ours; the next write goes here
                raise
            with self._lock:
                seg.positions.extend(positions)
                seg.size = end
                self._durable += j - i
            progress[0], progress[1] = j, progress[1] + 1
            i = j

    def _rotate(self) -> _Segment:
        if self._fd is not None:
            os.close(self._fd)  # already synced after its last write
            self._fd = None
        path = self.directory / f"{self._durable:020d}{SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            _fsync(self.directory)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd = fd
        seg = _Segment(self._durable, path, array("Q"), 0)
        with self._lock:
            self._segments.append(seg)
        # After the file: a crash between the two leaves a segment journal.meta does not know yet,
        # never journal.meta naming a segment that was not made.
        self.meta = msgspec.structs.replace(self.meta, newest_segment=seg.first)
        try:
            write_meta(self.directory, self.meta)
        except OSError as exc:
            self._metrics.inc("tradingd_journal_errors_total", {"error": type(exc).__name__})
            log.error("could not update journal.meta (a lost segment may go unnoticed): %r", exc, extra=_X)
        return seg

    async def wait_durable(self, offset: int) -> None:
        """Return once the record at ``offset`` is durable (at once if it already is)."""
        while self._durable <= offset:
            if self._flushed is None:
                self._flushed = anyio.Event()
            await self._flushed.wait()

    def read_from(self, offset: int) -> Iterator[tuple[int, Message]]:
        """``(offset, message)`` per durable record from ``offset`` on (blocking I/O), up to the durable
        end as of the call; released offsets and undecodable records (counted) are skipped."""
        for off, msg in self._scan_records(offset):
            if msg is not None:
                yield off, msg

    def read_batch(self, offset: int, max_records: int) -> tuple[list[tuple[int, Message]], int]:
        """Up to ``max_records`` records from ``offset`` and the offset to go on from (blocking I/O);
        the latter moves past skipped records and gaps, so a reader never stalls on them."""
        records: list[tuple[int, Message]] = []
        end = self._durable
        scan = self._scan_records(offset, end)
        nxt = offset
        try:
            for off, msg in islice(scan, max(1, max_records)):
                nxt = off + 1
                if msg is not None:
                    records.append((off, msg))
        finally:
            scan.close()
        if nxt == offset:  # nothing left below the durable end but gaps
            nxt = max(offset, end)
        return records, nxt

    def _scan_records(self, offset: int, end: int | None = None) -> Generator[tuple[int, Message | None]]:
        end = self._durable if end is None else end
        with self._lock:
            segments = list(self._segments)
        for seg in segments:
            with self._lock:  # positions of this segment's offsets in [offset, end)
                count = len(seg.positions)
                lo = max(offset - seg.first, 0)
                hi = max(lo, min(end - seg.first, count))
                positions = seg.positions[lo:hi]
                stop = seg.positions[hi] if hi < count else seg.size
            if not positions:
                continue
            try:
                fd = os.open(seg.path, os.O_RDONLY)
            except FileNotFoundError:  # released meanwhile
                continue
            try:
                n, idx = len(positions), 0
                while idx < n:  # ~READ_CHUNK bytes of whole frames per read
                    base = positions[idx]
                    k = bisect_right(positions, base + READ_CHUNK, idx + 1)
                    buf = memoryview(os.pread(fd, (positions[k] if k < n else stop) - base, base))
                    for r in range(idx, k):
                        if lo + r == seg.lost_at:
                            yield seg.first + lo + r, None  # the damaged bytes: known, reported at open
                            continue
                        frame = buf[positions[r] - base : (positions[r + 1] if r + 1 < n else stop) - base]
                        yield seg.first + lo + r, self._decode(frame, seg.path, seg.first + lo + r)
                    idx = k
            finally:
                os.close(fd)

    def _decode(self, frame: memoryview, path: Path, offset: int) -> Message | None:
        length, crc = HEADER.unpack_from(frame, 0)
        payload = frame[HEADER.size :]
        if length != len(payload) or zlib.crc32(payload) != crc:
            self._metrics.inc("tradingd_journal_damaged_total", {"reason": "crc"})
            log.error("journal record %d in %s fails its checksum: skipped", offset, path, extra=_X)
            return None
        try:
            msg: Message = ANY_DECODER_MSGPACK.decode(payload)
        except msgspec.DecodeError as exc:
            self._metrics.inc("tradingd_journal_undecodable_total")
            log.error("journal record %d in %s does not decode (skipped): %s", offset, path, exc, extra=_X)
            return None
        return msg

    async def release_below(self, offset: int) -> int:
        """Delete segments whose records are all below ``offset`` (never the last one); returns how many."""
        with self._lock:
            keep = len(self._segments) - 1
            while keep > 0 and self._segments[keep].first > offset:
                keep -= 1
            gone, self._segments = self._segments[:keep], self._segments[keep:]
            count = len(self._segments)
            kept_first = self._segments[0].first
        if not gone:
            return 0
        self._metrics.set("tradingd_journal_segments", count)
        self.meta = msgspec.structs.replace(
            self.meta, released_below=max(self.meta.released_below, kept_first)
        )

        def unlink() -> None:
            write_meta(self.directory, self.meta)  # first: a segment gone below it was released
            for seg in gone:
                seg.path.unlink(missing_ok=True)
            _fsync(self.directory)

        try:
            await anyio.to_thread.run_sync(unlink)
        except OSError as exc:  # they are out of the table; a restart rescans and retries
            self._metrics.inc("tradingd_journal_errors_total", {"error": type(exc).__name__})
            log.error("could not delete released journal segments: %s", exc, extra=_X)
        return len(gone)

    def close(self) -> None:
        """Close the files and the lock. Records appended since the last :meth:`flush` are dropped."""
        if self._closed:
            return
        self._closed = True
        if self._pending:
            log.warning("journal closed with %d unflushed records", len(self._pending), extra=_X)
            self._pending = []
        if not self._writing:
            self._close_files()

    def _close_files(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:  # last: no other writer may open while we still write
            os.close(self._lock_fd)
            self._lock_fd = None

    async def aclose(self) -> None:
        """Flush, then :meth:`close`."""
        try:
            if not self._closed:
                await self.flush()
        finally:
            self.close()


_ID_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")


def _journal_id(directory: Path) -> str:
    path, tmp = directory / "journal.id", directory / "journal.id.tmp"
    if path.exists():
        raw = path.read_bytes().strip()
        if raw:
            text = raw.decode("ascii", errors="replace")
            if len(raw) > 64 or not all(c in _ID_CHARS for c in text):
                raise JournalError(
                    f"{path} does not hold a journal id (expected up to 64 characters of [0-9a-zA-Z_-], "
                    f"found {len(raw)} bytes that are not); restore it from a backup, or, if this journal "
                    "is not copied to PostgreSQL, delete the file"
                )
            return text
    text = uuid.uuid4().hex
    tmp.write_text(text + "\n", encoding="ascii")
    _fsync(tmp)
    tmp.rename(path)
    _fsync(directory)
    return text
