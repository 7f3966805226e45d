"""The replay adapter: recorded market data played back as a live feed.

Two file formats (freqtrade's, see ``data/SOURCES.md``), both a JSON array of rows,
optionally gzip-compressed (``.gz`` suffix):

- ``candles``: ``[open_time_ms, open, high, low, close, volume]`` -> :class:`~actors.messages.Bar`
  (``ts_open`` = open time, ``ts_event`` = close time = ``ts_open + interval_s``);
- ``trades``: ``[ts_ms, trade_id, type, side, price, amount, cost]`` -> :class:`~actors.messages.Trade`.

Numbers are decoded by msgspec straight into :class:`~decimal.Decimal`, so prices are
exactly the digits in the file.  A malformed row (wrong arity, a non-number, NaN or
infinity, a negative value) raises :class:`ValueError` naming the file, the row index
(0-based, ``rows[i]``) and the column, e.g.
``data.json: rows[3]: open (column 1): expected a finite non-negative number, got NaN``.

:class:`ReplayFeed` emits the rows in timestamp order through an async sink, paced
against a monotonic clock at ``speed`` times real time (``0`` = as fast as possible),
optionally looping forever with timestamps shifted so they keep increasing.
:meth:`ReplayFeed.iter_messages` yields the same messages without pacing (backtests,
benchmarks).

Groups replaying the same file share one parsed copy of it (:func:`shared_messages`: by path,
format, interval, size and modification time, kept while any feed uses it); each message is
stamped with its group's exchange and symbol as it goes out.  A file of 14,400 candles is ~10 MB
parsed: a thousand groups on it would hold ten gigabytes with a copy each.
"""

from __future__ import annotations

import bisect
import gzip
import itertools
import json
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.lowlevel
import msgspec
from anyio.abc import TaskStatus

from actors.messages import Bar, Message, Trade

if TYPE_CHECKING:
    from daemon.config import ReplayFeed as ReplayFeedConfig

Sink = Callable[[Message], Awaitable[None]]
ReplayMessage = Bar | Trade

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
SLEEP_THRESHOLD_NS = 1_000_000  # sleep only when the next message is due more than 1 ms from now
YIELD_EVERY = 256  # messages emitted between checkpoints when not sleeping

CandleRow = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]
TradeRow = tuple[int, str | int, str | None, Literal["buy", "sell"] | None, Decimal, Decimal, Decimal | None]

# Column name and kind, used to diagnose a malformed row.
ColumnKind = Literal["ts", "num", "opt_num", "id", "opt_str", "side"]
Columns = tuple[tuple[str, ColumnKind], ...]
CANDLE_COLUMNS: Columns = (
    ("open_time_ms", "ts"),
    ("open", "num"),
    ("high", "num"),
    ("low", "num"),
    ("close", "num"),
    ("volume", "num"),
)
TRADE_COLUMNS: Columns = (
    ("ts_ms", "ts"),
    ("trade_id", "id"),
    ("type", "opt_str"),
    ("side", "side"),
    ("price", "num"),
    ("amount", "num"),
    ("cost", "opt_num"),
)
_EXPECTED: dict[ColumnKind, str] = {
    "ts": "a non-negative integer (milliseconds since the epoch)",
    "num": "a finite non-negative number",
    "opt_num": "a finite non-negative number or null",
    "id": "a string or integer trade id",
    "opt_str": "a string or null",
    "side": '"buy", "sell" or null',
}

_CANDLE_DECODER = msgspec.json.Decoder(list[CandleRow])
_TRADE_DECODER = msgspec.json.Decoder(list[TradeRow])


# --- loading ----------------------------------------------------------------------------------


def _read(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a valid gzip file: {exc}") from None


def _ok_number(d: Decimal | None) -> bool:
    return d is None or (d.is_finite() and d >= 0)


def _rows_ok(rows: list[Any]) -> bool:
    """Typed rows: timestamps non-negative, every Decimal finite and non-negative."""
    return all(r[0] >= 0 and all(_ok_number(x) for x in r if type(x) is Decimal) for r in rows)


def _show(value: object) -> str:
    """A value as it (roughly) appears in the JSON file, cut short."""
    text = str(value) if isinstance(value, Decimal) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _value_ok(kind: ColumnKind, v: object) -> bool:
    if kind == "ts":
        return type(v) is int and v >= 0
    if kind in ("num", "opt_num"):
        if v is None:
            return kind == "opt_num"
        if isinstance(v, bool) or not isinstance(v, int | Decimal | str):
            return False
        try:
            return _ok_number(Decimal(v))
        except InvalidOperation:
            return False
    if kind == "id":
        return isinstance(v, str | int) and not isinstance(v, bool)
    if kind == "opt_str":
        return v is None or isinstance(v, str)
    return v in ("buy", "sell", None)


def _row_problem(row: object, columns: Columns) -> str | None:
    names = ", ".join(name for name, _ in columns)
    if not isinstance(row, list):
        return f"expected an array [{names}], got {_show(row)}"
    if len(row) != len(columns):
        return f"expected {len(columns)} values [{names}], got {len(row)}"
    for j, ((name, kind), value) in enumerate(zip(columns, row, strict=True)):
        if not _value_ok(kind, value):
            return f"{name} (column {j}): expected {_EXPECTED[kind]}, got {_show(value)}"
    return None


def _diagnose(path: Path, raw: bytes, columns: Columns, fallback: str) -> ValueError:
    """Re-read a file the fast decoder refused (slowly, leniently) to say which row is wrong."""
    try:
        data = json.loads(raw, parse_float=Decimal, parse_constant=Decimal)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        return ValueError(f"{path}: not valid JSON: {exc}")
    if not isinstance(data, list):
        return ValueError(f"{path}: expected a JSON array of rows, got {_show(data)}")
    for i, row in enumerate(data):
        problem = _row_problem(row, columns)
        if problem is not None:
            return ValueError(f"{path}: rows[{i}]: {problem}")
    return ValueError(f"{path}: {fallback}")


def _sorted_by_ts(rows: list[Any]) -> list[Any]:
    if all(a[0] <= b[0] for a, b in itertools.pairwise(rows)):
        return rows
    return sorted(rows, key=lambda r: r[0])  # stable: same-millisecond rows keep file order


def _load_rows(path: str | Path, decoder: msgspec.json.Decoder[list[Any]], columns: Columns) -> list[Any]:
    p = Path(path)
    raw = _read(p)
    try:
        rows = decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise _diagnose(p, raw, columns, str(exc)) from None
    if not _rows_ok(rows):
        raise _diagnose(p, raw, columns, "invalid values")
    return _sorted_by_ts(rows)


def load_candle_rows(path: str | Path) -> list[CandleRow]:
    """Validated candle rows, sorted by open time. Raises ValueError naming file and row."""
    return _load_rows(path, _CANDLE_DECODER, CANDLE_COLUMNS)


def load_trade_rows(path: str | Path) -> list[TradeRow]:
    """Validated trade rows, sorted by time (stable). Raises ValueError naming file and row."""
    return _load_rows(path, _TRADE_DECODER, TRADE_COLUMNS)


def load_candles(
    path: str | Path, *, exchange: str = "replay", symbol: str = "", interval_s: int = 60
) -> list[Bar]:
    """Bars from a candles file; ``ts_recv`` is set to ``ts_event`` (the close time)."""
    if interval_s <= 0:
        raise ValueError(f"{path}: interval_s must be positive, got {interval_s}")
    iv = interval_s * NS_PER_S
    bars = []
    for ts_ms, o, h, lo, c, v in load_candle_rows(path):
        ts_open = ts_ms * NS_PER_MS
        bars.append(
            Bar(
                exchange=exchange,
                symbol=symbol,
                ts_event=ts_open + iv,
                ts_recv=ts_open + iv,
                ts_open=ts_open,
                interval_s=interval_s,
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
            )
        )
    return bars


def load_trades(path: str | Path, *, exchange: str = "replay", symbol: str = "") -> list[Trade]:
    """Trades from a trades file; ``ts_recv`` is set to ``ts_event``."""
    return [
        Trade(
            exchange=exchange,
            symbol=symbol,
            ts_event=ts_ms * NS_PER_MS,
            ts_recv=ts_ms * NS_PER_MS,
            price=price,
            size=amount,
            side=side,
            trade_id=str(trade_id),
        )
        for ts_ms, trade_id, _type, side, price, amount, _cost in load_trade_rows(path)
    ]


# --- the feed ---------------------------------------------------------------------------------


class _Messages(list[ReplayMessage]):
    """A parsed file's messages (unstamped: no exchange or symbol); weakly cached."""


_SHARED: weakref.WeakValueDictionary[tuple[str, str, int, int, int], _Messages] = (
    weakref.WeakValueDictionary()
)
_SHARED_LOCK = threading.Lock()  # feeds load in worker threads: one parse per file


def shared_messages(path: str, fmt: str, interval_s: int) -> list[ReplayMessage]:
    """The messages of ``path`` (exchange and symbol empty), parsed once for every feed using
    the same file unchanged (same size and modification time); ValueError as the loaders."""
    st = Path(path).stat()
    key = (str(Path(path).resolve()), fmt, interval_s, st.st_size, st.st_mtime_ns)
    with _SHARED_LOCK:
        cached = _SHARED.get(key)
        if cached is not None:
            return cached
        msgs = _Messages(load_candles(path, interval_s=interval_s) if fmt == "candles" else load_trades(path))
        if not msgs:
            raise ValueError(f"{path}: no rows to replay")
        _SHARED[key] = msgs
        return msgs


class ReplayStats(msgspec.Struct, frozen=True):
    """A snapshot of one replay feed, for /status."""

    exchange: str
    symbol: str
    path: str
    format: str
    speed: float
    loop: bool
    running: bool
    rows: int
    emitted: int
    loops: int
    last_ts_event: int
    behind_ms: float


def _shifted(msg: ReplayMessage, shift: int, ts_recv: int, exchange: str, symbol: str) -> ReplayMessage:
    """``msg`` of the shared file as this feed's: its exchange and symbol, times shifted by a pass."""
    if shift == 0:
        return msgspec.structs.replace(msg, exchange=exchange, symbol=symbol, ts_recv=ts_recv)
    if type(msg) is Bar:
        return msgspec.structs.replace(
            msg,
            exchange=exchange,
            symbol=symbol,
            ts_event=msg.ts_event + shift,
            ts_open=msg.ts_open + shift,
            ts_recv=ts_recv,
        )
    return msgspec.structs.replace(
        msg, exchange=exchange, symbol=symbol, ts_event=msg.ts_event + shift, ts_recv=ts_recv
    )


class ReplayFeed:
    """Plays one recorded file as the live feed of ``(exchange, symbol)``.

    The file is read on first use (:meth:`load`, run in a worker thread by :meth:`run`).
    Counters: ``emitted`` (messages the sink accepted), ``loops`` (completed passes over
    the file), ``behind_ms`` (how late the last batch went out against its schedule).

    The position survives :meth:`run` returning or being cancelled: a supervisor that
    restarts the feed resumes at the first message the sink did not accept, so
    timestamps never go backwards.  Run one :meth:`run` at a time.
    """

    def __init__(self, cfg: ReplayFeedConfig, exchange: str, symbol: str) -> None:
        if not cfg.speed >= 0 or cfg.interval_s <= 0:  # `not >=` also refuses NaN
            raise ValueError(
                f"{cfg.path}: need speed >= 0, interval_s > 0; got {cfg.speed}, {cfg.interval_s}"
            )
        self.cfg = cfg
        self.exchange = exchange
        self.symbol = symbol
        self.emitted = 0
        self.loops = 0
        self.last_ts_event = 0
        self.last_emit_ns = 0  # wall clock of the last emission (for "last message age")
        self.behind_ms = 0.0
        self.running = False
        self._index = 0  # next message of the current pass
        self._messages: list[ReplayMessage] | None = None
        self._resume_after_ns = 0

    # -- data ------------------------------------------------------------------------------
    def load(self) -> list[ReplayMessage]:
        """Read and validate the file once (shared with every feed of the same file); ValueError
        if it is malformed or empty.  The messages' exchange and symbol are empty: the feed
        stamps its own on the way out (:meth:`iter_messages`, :meth:`run`)."""
        if self._messages is None:
            c = self.cfg
            self._messages = shared_messages(c.path, c.format, c.interval_s)
        return self._messages

    def loop_shift_ns(self) -> int:
        """How far each pass is shifted from the previous one: the file's span plus one interval."""
        msgs = self.load()
        return msgs[-1].ts_event - msgs[0].ts_event + self.cfg.interval_s * NS_PER_S

    def iter_messages(self, loops: int = 1) -> Iterator[ReplayMessage]:
        """Every message of ``loops`` passes from the start, unpaced; ``ts_recv`` equals ``ts_event``.

        Independent of :meth:`run` (no counters, no position): deterministic for backtests.
        """
        msgs = self.load()
        step = self.loop_shift_ns()
        for k in range(loops):
            shift = k * step
            for msg in msgs:
                yield _shifted(msg, shift, msg.ts_event + shift, self.exchange, self.symbol)

    def resume_after(self, ts_event_ns: int) -> None:
        """Restart recovery: start with the first message (of any pass) whose event time is after
        ``ts_event_ns``, so a restarted daemon carries on where the last one was (applied by the
        next :meth:`run`; only before anything was emitted)."""
        self._resume_after_ns = ts_event_ns

    def _apply_resume(self, msgs: list[ReplayMessage]) -> None:
        after, self._resume_after_ns = self._resume_after_ns, 0
        if not after or self.emitted or after < msgs[0].ts_event:
            return
        step = self.loop_shift_ns()
        loops = (after - msgs[0].ts_event) // step
        index = bisect.bisect_right([m.ts_event for m in msgs], after - loops * step)
        if index == len(msgs):
            loops, index = loops + 1, 0
        if loops and not self.cfg.loop:
            loops, index = 1, 0  # past the end of a file played once: nothing left
        self.loops, self._index = loops, index

    # -- playback --------------------------------------------------------------------------
    async def run(
        self,
        sink: Sink,
        *,
        sink_nowait: Callable[[Message], bool] | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Emit the messages to ``sink`` in timestamp order; returns at the end unless ``loop``.

        ``sink_nowait``, when given, is tried first for each message (the channel pattern:
        deliver without awaiting, and ``await sink`` only when it returns False).
        ``task_status.started()`` is called once the file is loaded, so a bad file fails
        ``TaskGroup.start()``.  Cancellation stops playback at the next sleep, sink await
        or checkpoint (every few hundred messages).
        """
        msgs = await anyio.to_thread.run_sync(self.load)
        self._apply_resume(msgs)
        self.running = True
        task_status.started()
        try:
            if self.cfg.speed == 0:
                await self._run_unpaced(sink, msgs, sink_nowait)
            else:
                await self._run_paced(sink, msgs)
        finally:
            self.running = False

    def _more_passes(self) -> bool:
        return self.cfg.loop or self.loops == 0

    async def _emit(self, sink: Sink, msg: ReplayMessage, shift: int) -> None:
        out = _shifted(msg, shift, time.time_ns(), self.exchange, self.symbol)
        await sink(out)
        self._index += 1
        self.emitted += 1
        self.last_ts_event, self.last_emit_ns = out.ts_event, out.ts_recv

    def _end_pass(self) -> None:
        self.loops += 1
        self._index = 0

    async def _run_unpaced(
        self, sink: Sink, msgs: list[ReplayMessage], sink_nowait: Callable[[Message], bool] | None
    ) -> None:
        """As fast as the consumer takes it, in chunks of YIELD_EVERY with one clock read each."""
        step = self.loop_shift_ns()
        n = len(msgs)
        ex, sym = self.exchange, self.symbol
        while self._more_passes():
            shift = self.loops * step
            while self._index < n:
                ts_recv = time.time_ns()
                for i in range(self._index, min(self._index + YIELD_EVERY, n)):
                    out = _shifted(msgs[i], shift, ts_recv, ex, sym)
                    if sink_nowait is None or not sink_nowait(out):
                        await sink(out)
                    self._index = i + 1
                    self.emitted += 1
                self.last_ts_event, self.last_emit_ns = out.ts_event, ts_recv
                await anyio.lowlevel.checkpoint()
            self._end_pass()
            await anyio.lowlevel.checkpoint()

    async def _run_paced(self, sink: Sink, msgs: list[ReplayMessage]) -> None:
        """Sleep until each message's scheduled time; emit everything already due in one go.

        The schedule is absolute (start time + data offset / speed), so sleeping late never
        accumulates drift: a late wake-up just means a bigger batch.
        """
        step = self.loop_shift_ns()
        sched = _Schedule(self.cfg.speed, msgs[self._index].ts_event + self.loops * step)
        while self._more_passes():
            shift = self.loops * step
            while self._index < len(msgs):
                now = time.monotonic_ns()
                ahead = sched.due(msgs[self._index].ts_event + shift) - now
                if ahead > SLEEP_THRESHOLD_NS:
                    await anyio.sleep(ahead / NS_PER_S)
                    continue
                self.behind_ms = max(0.0, -ahead / NS_PER_MS)
                await self._emit_due(sink, msgs, shift, sched, now + SLEEP_THRESHOLD_NS)
            self._end_pass()

    async def _emit_due(
        self, sink: Sink, msgs: list[ReplayMessage], shift: int, sched: _Schedule, horizon: int
    ) -> None:
        """Emit messages from the current position while they are due by ``horizon``."""
        count = 0
        while self._index < len(msgs) and sched.due(msgs[self._index].ts_event + shift) <= horizon:
            await self._emit(sink, msgs[self._index], shift)
            count += 1
            if count % YIELD_EVERY == 0:
                await anyio.lowlevel.checkpoint()

    def statistics(self) -> ReplayStats:
        return ReplayStats(
            exchange=self.exchange,
            symbol=self.symbol,
            path=self.cfg.path,
            format=self.cfg.format,
            speed=self.cfg.speed,
            loop=self.cfg.loop,
            running=self.running,
            rows=len(self._messages) if self._messages is not None else 0,
            emitted=self.emitted,
            loops=self.loops,
            last_ts_event=self.last_ts_event,
            behind_ms=self.behind_ms,
        )


class _Schedule:
    """Monotonic time (ns) at which a data timestamp is due: ``m0 + (ts - t0) / speed``."""

    def __init__(self, speed: float, t0: int) -> None:
        self.speed = speed
        self.t0 = t0
        self.m0 = time.monotonic_ns()

    def due(self, ts: int) -> int:
        return self.m0 + int((ts - self.t0) / self.speed)
