"""Where the Redis mirror keeps order-path messages until Redis has them: memory, then disk.

:class:`Backlog` takes :class:`Entry` objects (one message with its stream and explicit
id) and hands them back per stream, oldest first.  Order per stream is always memory
(``StreamState.pending``) < spill on disk < ``Backlog.new`` (where the tap appends).  Past
``memory_limit`` entries go to a :class:`SpillQueue`; they come back in whole segments as
memory frees, and a segment's file is deleted once all its entries are settled.  On
shutdown :meth:`Backlog.persist` writes what is in memory *before* the spill, so a new
process on the same ``state_dir`` sends everything, in order, with the same ids.
Entries Redis refuses for good go to ``mirror-dead-letter.frames``.  All file I/O runs in
worker threads, one at a time.

On disk a spill is a directory of numbered segments (``<n>.seg``, read in numeric order)
holding frames ``<u32 length><u32 crc32(payload)><payload>`` (little-endian; payload =
msgpack :class:`SpillRecord`: stream key, id, type, data).  A batch is one write and one
fsync; a failed append is cut back.  A process never appends to a segment it did not
create, so a torn tail from a crash stays at a file's end, where it is detected, counted
(``tradingd_mirror_spill_damaged_total``) and ignored.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

import anyio
import msgspec

from actors.messages import KEPT_KINDS, Message
from daemon.metrics import Metrics

log = logging.getLogger("tradingd.mirror")
_X = {"component": "mirror"}

HEADER = struct.Struct("<II")
MAX_FRAME = 64 * 1024 * 1024
"""A length prefix above this is garbage, not a record."""

Id = tuple[int, int]


class SpillRecord(msgspec.Struct, frozen=True, array_like=True):
    """One stream entry on disk: ``XADD key id type <type> data <data>``."""

    key: str
    id: str
    type: str
    data: bytes


class Damage(msgspec.Struct, frozen=True):
    """Where a frame file stops making sense; everything from ``offset`` on is ignored."""

    reason: Literal["torn", "crc", "decode"]
    offset: int
    ignored_bytes: int


_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder(SpillRecord)


def parse_id(entry_id: str) -> Id:
    """``"1700000000000-3"`` -> ``(1700000000000, 3)``."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def encode_frames(records: Iterable[SpillRecord]) -> bytes:
    out = bytearray()
    for rec in records:
        payload = _ENCODER.encode(rec)
        out += HEADER.pack(len(payload), zlib.crc32(payload)) + payload
    return bytes(out)


def decode_frames(buf: bytes) -> tuple[list[SpillRecord], Damage | None]:
    """Every intact frame up to the first damaged one, and the damage (None if the file is clean)."""
    records: list[SpillRecord] = []
    pos, end = 0, len(buf)
    while pos < end:
        reason: Literal["torn", "crc", "decode"] | None = "torn"
        if end - pos >= HEADER.size:
            length, crc = HEADER.unpack_from(buf, pos)
            payload = buf[pos + HEADER.size : pos + HEADER.size + length]
            if length > MAX_FRAME or (len(payload) == length and zlib.crc32(payload) != crc):
                reason = "crc"
            elif len(payload) == length:
                try:
                    records.append(_DECODER.decode(payload))
                    reason = None
                except msgspec.DecodeError:
                    reason = "decode"
        if reason is not None:
            return records, Damage(reason=reason, offset=pos, ignored_bytes=end - pos)
        pos += HEADER.size + length
    return records, None


def read_frames(path: Path) -> tuple[list[SpillRecord], Damage | None]:
    return decode_frames(path.read_bytes())


def append_frames(path: Path, records: Sequence[SpillRecord]) -> None:
    """Append and fsync; on failure the file is cut back to where it was (no torn tail of ours)."""
    if not records:
        return
    data = memoryview(encode_frames(records))
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_fsync_dir = fsync_path


class SpillQueue:
    """A FIFO of records in segment files under ``directory``; survives restarts. Not thread-safe."""

    def __init__(self, directory: Path, segment_records: int = 4096) -> None:
        self.directory = directory
        self.segment_records = max(1, segment_records)
        directory.mkdir(parents=True, exist_ok=True)
        self._unread: dict[int, int] = {}  # segment number -> records, not handed out yet
        self._loaded: set[int] = set()  # handed out; the file stays until released
        self._tail: int | None = None  # the segment this process appends to
        self.count = 0
        self.damaged: list[tuple[str, Damage]] = []
        self.top_ids: dict[str, Id] = {}
        for leftover in directory.glob("*.seg.tmp"):
            leftover.unlink()
        for n in sorted(int(p.stem) for p in directory.glob("*.seg") if p.stem.lstrip("-").isdigit()):
            self._scan(n)

    def _path(self, n: int) -> Path:
        return self.directory / f"{n}.seg"

    def _scan(self, n: int) -> None:
        records, damage = read_frames(self._path(n))
        if damage is not None:
            self.damaged.append((self._path(n).name, damage))
            log.error("spill segment %s damaged: %s", self._path(n), damage, extra=_X)
        self._unread[n] = len(records)
        self.count += len(records)
        for rec in records:
            self.top_ids[rec.key] = max(self.top_ids.get(rec.key, (0, 0)), parse_id(rec.id))

    def _numbers(self) -> set[int]:
        return self._unread.keys() | self._loaded

    def append(self, records: Sequence[SpillRecord]) -> None:
        """Add at the end (newest); one fsync per segment touched."""
        pos = 0
        while pos < len(records):
            if self._tail is None or self._unread[self._tail] >= self.segment_records:
                self._tail = max(self._numbers(), default=-1) + 1
                self._unread[self._tail] = 0
            chunk = records[pos : pos + self.segment_records - self._unread[self._tail]]
            append_frames(self._path(self._tail), chunk)
            self._unread[self._tail] += len(chunk)
            self.count += len(chunk)
            pos += len(chunk)

    def prepend(self, records: Sequence[SpillRecord]) -> None:
        """Add at the front (oldest), atomically: all of ``records`` or none."""
        if not records:
            return
        n = min(self._numbers(), default=1) - 1
        tmp = self.directory / f"{n}.seg.tmp"
        tmp.unlink(missing_ok=True)
        append_frames(tmp, records)
        tmp.rename(self._path(n))
        _fsync_dir(self.directory)
        self._unread[n] = len(records)
        self.count += len(records)

    def head_count(self) -> int:
        """Records in the oldest unread segment (0 if none)."""
        return self._unread[min(self._unread)] if self._unread else 0

    def peek_head(self) -> tuple[int, list[SpillRecord]] | None:
        """Read the oldest unread segment without consuming it (:meth:`mark_loaded` does that)."""
        if not self._unread:
            return None
        n = min(self._unread)
        path = self._path(n)
        return n, read_frames(path)[0] if path.exists() else []

    def mark_loaded(self, n: int) -> None:
        """The caller holds segment ``n`` in memory now; its file stays until :meth:`release`."""
        self.count -= self._unread.pop(n)
        self._loaded.add(n)
        if self._tail == n:
            self._tail = None

    def release(self, numbers: Iterable[int]) -> None:
        """Delete loaded segments (their records are delivered, or written again elsewhere)."""
        gone = [n for n in list(numbers) if n in self._loaded]
        for n in gone:
            self._loaded.discard(n)
            self._path(n).unlink(missing_ok=True)
        if gone:
            _fsync_dir(self.directory)

    def release_loaded(self) -> None:
        self.release(self._loaded)


# --- entries and the backlog -------------------------------------------------------------------


class StreamState:
    """One Redis stream: id allocator, last id known to be at or below Redis' top, order-path FIFO."""

    __slots__ = ("blocked_until", "error", "floor", "key", "kind", "ms", "order_path", "pending", "seq")

    def __init__(self, key: str, kind: str) -> None:
        self.key, self.kind, self.order_path = key, kind, kind in KEPT_KINDS
        self.ms, self.seq = 0, 0
        self.floor: Id | None = None  # None: read the top id before the next write
        self.pending: deque[Entry] = deque()
        self.blocked_until = 0.0
        self.error = ""

    def raise_to(self, rid: Id) -> None:
        if rid > (self.ms, self.seq):
            self.ms, self.seq = rid


class Entry(msgspec.Struct):
    """One message for one stream with its id; encoded lazily (``msg`` -> ``data``).

    ``maybe_sent``: the id may already be in Redis (an attempt's outcome is unknown, or it
    came from disk), so it never changes and a refusal of it means "already delivered".
    """

    stream: StreamState
    ms: int
    seq: int
    msg: Message | None
    data: bytes | None = None
    tname: str = ""
    maybe_sent: bool = False
    attempts: int = 0
    segment: int | None = None

    def encoded(self, encode: Callable[[Message], bytes]) -> bytes:
        if self.data is None:
            assert self.msg is not None
            self.data, self.tname, self.msg = encode(self.msg), type(self.msg).__name__, None
        return self.data

    def record(self, encode: Callable[[Message], bytes]) -> SpillRecord:
        data = self.encoded(encode)
        return SpillRecord(self.stream.key, f"{self.ms}-{self.seq}", self.tname, data)


class Backlog:
    """The order path's holding area: per-stream memory FIFOs, the spill, the dead letters."""

    def __init__(
        self, state_dir: Path, memory_limit: int, encode: Callable[[Message], bytes], metrics: Metrics
    ) -> None:
        self.limit, self._encode, self._metrics = memory_limit, encode, metrics
        self.streams: dict[str, StreamState] = {}
        self.new: deque[Entry] = deque()
        self.dead: list[Entry] = []
        self.spill = SpillQueue(state_dir / "mirror-spill", max(1, memory_limit // 2))
        self.dead_path = state_dir / "mirror-dead-letter.frames"
        self._seg_left: dict[int, int] = {}
        self._released: list[int] = []
        self._busy = False  # a thread is touching the spill: memory intake must wait
        self._writing = 0
        for key, top in self.spill.top_ids.items():
            self.stream(key).raise_to(top)
        for _name, damage in self.spill.damaged:
            metrics.inc("tradingd_mirror_spill_damaged_total", {"reason": damage.reason})

    def stream(self, key: str) -> StreamState:
        st = self.streams.get(key)
        if st is None:
            st = self.streams[key] = StreamState(key, key.rsplit(":", 1)[-1])
        return st

    def memory(self) -> int:
        return sum(len(st.pending) for st in self.streams.values())

    def pending(self) -> int:
        """Order-path entries held here (dead letters excluded)."""
        return len(self.new) + self.memory() + self._writing + self.spill.count

    def settled(self, e: Entry) -> None:
        """``e`` is in Redis (or dead-lettered): its spill segment may go once all its entries are."""
        if e.segment is not None:
            self._seg_left[e.segment] -= 1
            if not self._seg_left[e.segment]:
                del self._seg_left[e.segment]
                self._released.append(e.segment)

    def intake(self) -> None:
        """Move ``new`` to memory while nothing is on disk and memory has room."""
        if self._busy or self.spill.count or not self.new:
            return
        room, new = self.limit - self.memory(), self.new
        while room > 0 and new:
            e = new.popleft()
            e.stream.pending.append(e)
            room -= 1

    async def keep(self) -> None:
        """One housekeeping round: dead letters, freed segments, spill ``new``, load from disk."""
        if self.dead:
            dead, self.dead = self.dead, []
            recs = [e.record(self._encode) for e in dead]
            if await self._disk(lambda: append_frames(self.dead_path, recs), lambda: self.dead.extend(dead)):
                for e in dead:
                    self.settled(e)
        if self._released:
            nums, self._released = self._released, []
            await self._disk(lambda: self.spill.release(nums), lambda: self._released.extend(nums))
        self.intake()
        if self.new:
            await self._spill_new()
        await self._refill()

    async def _disk(self, work: Callable[[], None], undo: Callable[[], None]) -> bool:
        """Run ``work`` in a thread; if it did not complete (I/O error, cancelled first) run ``undo``."""
        done = False

        def run() -> None:
            nonlocal done
            work()
            done = True

        self._busy = True
        try:
            await anyio.to_thread.run_sync(run)
        except OSError as exc:
            self._metrics.inc("tradingd_mirror_errors_total", {"error": "disk"})
            log.error("spill I/O failed, keeping the messages in memory: %s", exc, extra=_X)
        finally:
            self._busy = False
            if not done:
                undo()
        return done

    async def _spill_new(self) -> None:
        entries = list(self.new)
        self.new.clear()
        records = [e.record(self._encode) for e in entries]

        def write() -> None:
            self.spill.append(records)
            self._writing = 0  # counted by the spill now (a moment of overcount, never an undercount)

        self._writing = len(records)
        try:
            if await self._disk(write, lambda: self.new.extendleft(reversed(entries))):
                self._metrics.inc("tradingd_mirror_spilled_total", None, len(records))
        finally:
            self._writing = 0

    async def _refill(self) -> None:
        """Load spilled segments, oldest first, while memory has room for a whole one (or is empty)."""
        while self.spill.count and (
            not self.memory() or self.memory() + self.spill.head_count() <= self.limit
        ):
            head = await self._peek()
            if head is None:
                return
            n, records = head
            self.spill.mark_loaded(n)
            for rec in records:
                st = self.stream(rec.key)
                e = Entry(st, *parse_id(rec.id), None)
                e.data, e.tname, e.segment = rec.data, rec.type, n
                e.maybe_sent = True  # a previous process may have sent it before it died: keep the id
                st.pending.append(e)
            if records:
                self._seg_left[n] = len(records)
            else:
                self._released.append(n)

    async def _peek(self) -> tuple[int, list[SpillRecord]] | None:
        box: list[tuple[int, list[SpillRecord]] | None] = []
        await self._disk(lambda: box.append(self.spill.peek_head()), lambda: None)
        return box[0] if box else None

    async def persist(self) -> int:
        """Shutdown: memory before the spill, ``new`` after it, dead letters to their file. Returns count."""
        head = [e.record(self._encode) for st in self.streams.values() for e in st.pending]
        tail = [e.record(self._encode) for e in self.new]
        dead = [e.record(self._encode) for e in self.dead]

        def write() -> None:  # release last: a crash in between replays (refused as duplicates), never loses
            append_frames(self.dead_path, dead)
            self.spill.prepend(head)
            self.spill.append(tail)
            self.spill.release_loaded()

        try:
            await anyio.to_thread.run_sync(write)
        except OSError as exc:
            log.critical(
                "could not keep %d order-path messages on disk: %s", len(head) + len(tail), exc, extra=_X
            )
            return 0
        for st in self.streams.values():
            st.pending.clear()
        self.new.clear()
        self.dead.clear()
        return len(head) + len(tail)
