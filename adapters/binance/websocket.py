"""Binance spot live market data: combined-stream WebSockets in, our market messages out.

:class:`BinanceMarketFeed` has the feed interface of :class:`adapters.replay.feed.ReplayFeed`
(``run(sink, *, sink_nowait=..., task_status=...)``, ``emitted``, ``last_emit_ns``,
``statistics()``).  It opens ``{ws_url}/stream?streams=a/b/c`` (aiohttp, ping/pong heartbeat),
decodes frames with :class:`~adapters.binance.data.FrameDecoder` and hands each message to
``sink_nowait`` first, awaiting ``sink`` only when that returns False.

- Sharding: symbols are split so no connection carries more than ``max_streams_per_connection``
  streams; each shard is its own task in the feed's task group.
- Reconnects: forever, exponential backoff with jitter and a cap, on connection errors only
  (aiohttp errors, OSError, timeouts, the peer closing).  Silence is a property of the connection:
  any frame counts, data or control -- Binance pings every connection every 20 s and we ping it
  every ``heartbeat_s`` (at most a third of ``silence_timeout_s``), answering its pings ourselves --
  and only a connection with no frame at all for ``silence_timeout_s`` is dropped (``silences``).
  A symbol without trades, quotes or depth changes is quiet, not lost: once it has been quiet for
  ``stall_timeout_s`` that is counted (``stalls``, once per quiet spell) and logged, and shown on
  /status, but its connection (shared with the other symbols) stays; its book stays synced, since
  a depth stream that skipped an update shows as a gap in the update ids of its next diff.
- Order books (depth streams): one :class:`~adapters.binance.book.OrderBook` per symbol, synced
  by Binance's procedure: diffs are buffered while the REST snapshot is fetched (as soon as the
  connection is open: a symbol that sends no diff has an accurate book from its snapshot alone;
  a diff that does not follow it resyncs), and fetched again whenever the book needs it
  (counted in ``resyncs``).  A stale
  book's deltas are not forwarded: a :class:`BookSnapshot` is published when it (re)syncs, then
  its deltas.  Every connection starts all books afresh (diffs were missed meanwhile).
- Snapshots are REST calls of the venue host's shared, weight-aware limiter
  (:class:`~adapters.binance.http.BinanceHttpClient`, background priority: the order path keeps a
  reserve of every weight window), one :mod:`~adapters.binance.resync_queue` turn each: a few at
  a time per host, the book stale the longest first, none during a 429 back-off or a 418 ban.
  ``limit`` is the smallest of Binance's weight steps (100/500/1000/5000 levels: weight
  5/25/50/250) holding ``book_depth`` levels.  A failed snapshot is retried with exponential
  back-off and jitter (tenacity).  The venue's rateLimits come from one exchangeInfo per host
  unless trading loaded them already.
- Trades: Binance orders a symbol's aggregate trades by their id; the trade time ``T`` is the
  matching engine's and can be a millisecond older than the previous trade's.  Such a trade is
  real volume: it is kept, stamped with the previous trade's time so a symbol's trade times never
  go back (``trade_time_clamped``).
- Live ``subscribe`` / ``unsubscribe`` send ``SUBSCRIBE`` / ``UNSUBSCRIBE`` requests with ids.
- The 24 h limit: each connection is rotated make-before-break before Binance cuts it
  (``rotate_after_s``), without a gap (``rotations``, ``forced_rotations``):
  :mod:`adapters.binance.feed_rotation`.  A connection's state: :mod:`adapters.binance.feed_shard`.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_exponential_jitter

from actors.messages import BookDelta, BookSnapshot, Message, Quote, Trade
from adapters.binance.book import BookAction, OrderBook
from adapters.binance.data import BinanceDecodeError, stream_kind
from adapters.binance.errors import BinanceError
from adapters.binance.feed_rotation import ConnectionRotation, trade_is_new
from adapters.binance.feed_shard import CONNECTION_ERRORS, ConnectionLost, FeedShard
from adapters.binance.feed_status import BookTop, book_top
from adapters.binance.http import BinanceHttpClient
from adapters.binance.resync_queue import ResyncQueue, shared_resync_queue
from adapters.binance.schemas import BinanceDepthSnapshot, BinanceValueError

log = logging.getLogger("tradingd.binance.ws")

COMPONENT = "binance-ws"
DEFAULT_STREAMS = ("aggTrade", "bookTicker", "depth@100ms")
Sink = Callable[[Message], Awaitable[None]]
SinkNowait = Callable[[Message], bool]
SnapshotFetcher = Callable[[str, int], Awaitable[BinanceDepthSnapshot]]
SNAPSHOT_LIMITS = (100, 500, 1000, 5000)  # Binance's weight steps of GET /api/v3/depth
SNAPSHOT_ERRORS = (
    *CONNECTION_ERRORS,
    BinanceDecodeError,
    BinanceError,
    BinanceValueError,
    msgspec.DecodeError,
)


class BinanceFeedStatistics(msgspec.Struct, frozen=True):
    """A snapshot of one live feed, for /status."""

    exchange: str
    running: bool
    connections: int
    connected: int
    symbols: int
    streams: int
    emitted: int
    last_emit_ns: int
    reconnects: int
    rotations: int
    forced_rotations: int
    silences: int
    stalls: int
    resyncs: int
    snapshots: int
    snapshot_errors: int
    books_stale: int
    rejected: int
    rejected_by_reason: dict[str, int]
    trade_time_clamped: int = 0
    snapshot_limit: int = 0
    quiet: list[str] = []  # symbols quiet for stall_timeout_s (not an outage)
    books: dict[str, BookTop] = {}  # our symbol -> synced/stale since when, best bid/ask, update id, age


class BinanceMarketFeed(ConnectionRotation):
    """The live market data of ``symbols`` (Binance's name -> ours: ``NKNUSDT`` -> ``NKN/USDT``).

    ``ws_url`` is the stream base (``wss://stream.binance.com:9443``); ``rest_url`` the REST base
    for depth snapshots, or pass ``fetch_snapshot`` (e.g. ``BinanceHttpClient.depth``).
    Counters: ``emitted``, ``last_emit_ns``, ``reconnects``, ``silences``, ``stalls``,
    ``resyncs``, ``snapshots``, ``snapshot_errors``; ``rejected`` sums the decoders' rejections.
    """

    def __init__(
        self,
        ws_url: str,
        rest_url: str,
        symbols: Mapping[str, str],
        *,
        streams: Sequence[str] = DEFAULT_STREAMS,
        exchange: str = "binance",
        max_streams_per_connection: int = 1024,
        silence_timeout_s: float = 30.0,
        stall_timeout_s: float | None = 300.0,
        heartbeat_s: float = 20.0,
        rotate_after_s: float | None = 23.5 * 3600,
        handover_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        snapshot_limit: int | None = None,
        snapshot_retry_s: float = 1.0,
        snapshot_backoff_max_s: float = 30.0,
        snapshot_timeout_s: float = 10.0,
        book_depth: int = 100,
        fetch_snapshot: SnapshotFetcher | None = None,
        resync_queue: ResyncQueue | None = None,
    ) -> None:
        if not streams or len(streams) > max_streams_per_connection:
            raise ValueError(f"need 1..{max_streams_per_connection} streams per symbol, got {len(streams)}")
        unknown = [s for s in streams if stream_kind(s) is None]
        if unknown:
            raise ValueError(f"unsupported Binance streams: {unknown}")
        self.ws_url, self.rest_url = ws_url.rstrip("/"), rest_url.rstrip("/")
        self.streams, self.exchange = tuple(streams), exchange
        self.depth = any(stream_kind(s) == "depthUpdate" for s in streams)
        self.per_shard = max_streams_per_connection // len(streams)  # symbols per connection
        self.silence_timeout_s, self.stall_timeout_s = silence_timeout_s, stall_timeout_s
        self.heartbeat_s = min(heartbeat_s, silence_timeout_s / 3)  # pongs keep a quiet connection heard
        self.backoff = (backoff_initial_s, backoff_max_s)
        self.rotate_after_s, self.handover_timeout_s = rotate_after_s, handover_timeout_s
        self.snapshot_limit = snapshot_limit or next(
            (n for n in SNAPSHOT_LIMITS if n >= book_depth), SNAPSHOT_LIMITS[-1]
        )
        self.snapshot_retry_s, self.snapshot_backoff_max_s = snapshot_retry_s, snapshot_backoff_max_s
        self.snapshot_timeout_s, self.book_depth = snapshot_timeout_s, book_depth
        self._fetch = fetch_snapshot or self._fetch_rest
        self.queue = resync_queue or shared_resync_queue(self.rest_url)
        self._backoff = wait_exponential_jitter(
            multiplier=snapshot_retry_s, max=snapshot_backoff_max_s, jitter=snapshot_retry_s
        )
        self.rest: BinanceHttpClient | None = None
        self.shards: list[FeedShard] = []
        for i in range(0, len(symbols), self.per_shard):
            self._new_shard(dict(list(symbols.items())[i : i + self.per_shard]))
        self.emitted = self.last_emit_ns = 0
        self.reconnects = self.silences = self.stalls = self.resyncs = 0
        self.rotations = self.forced_rotations = 0
        self.snapshots = self.snapshot_errors = self.trade_time_clamped = 0
        # the counters above per connection (FeedShard.counts) and per symbol (ours -> name -> n)
        self.symbol_counts: dict[str, Counter[str]] = {}
        self.running = False
        self._ids = 0
        self._sink: Sink | None = None
        self._nowait: SinkNowait | None = None
        self._tg: TaskGroup | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- public ------------------------------------------------------------------------------

    @property
    def rejected(self) -> int:
        return sum(sum(s.decoder.rejected.values()) for s in self.shards)

    def books(self) -> dict[str, OrderBook]:
        """Our symbol -> its current book (depth streams only)."""
        return {sym: book for shard in self.shards for sym, book in shard.books.items()}

    def statistics(self, symbol: str | None = None) -> BinanceFeedStatistics:
        """The whole feed, or (``symbol``: ours) what concerns that symbol: its connection's
        state and connection counters (reconnects, silences, rotations, rejected frames), its own
        counters (stalls, resyncs, snapshots, trade times clamped) and its book."""
        if symbol is not None:
            return self._symbol_statistics(symbol)
        reasons: dict[str, int] = {}
        for shard in self.shards:
            for reason, n in shard.decoder.rejected.items():
                reasons[reason] = reasons.get(reason, 0) + n
        symbols = sum(len(s.symbols) for s in self.shards)
        return BinanceFeedStatistics(
            exchange=self.exchange,
            running=self.running,
            connections=self.connections(),
            connected=sum(s.ws is not None for s in self.shards),
            symbols=symbols,
            streams=symbols * len(self.streams),
            emitted=self.emitted,
            last_emit_ns=self.last_emit_ns,
            reconnects=self.reconnects,
            rotations=self.rotations,
            forced_rotations=self.forced_rotations,
            silences=self.silences,
            stalls=self.stalls,
            resyncs=self.resyncs,
            snapshots=self.snapshots,
            snapshot_errors=self.snapshot_errors,
            books_stale=sum(b.stale for b in self.books().values()),
            rejected=sum(reasons.values()),
            rejected_by_reason=reasons,
            trade_time_clamped=self.trade_time_clamped,
            snapshot_limit=self.snapshot_limit,
            quiet=sorted(sym for shard in self.shards for sym in shard.quiet),
            books={sym: book_top(book, time.time_ns()) for sym, book in self.books().items()},
        )

    def connections(self) -> int:
        """Connections carrying at least one symbol (a shard left empty has none open)."""
        return sum(bool(s.symbols) for s in self.shards)

    def _symbol_statistics(self, symbol: str) -> BinanceFeedStatistics:
        shard = self._shard_of(symbol)
        conn: Counter[str] = shard.counts if shard is not None else Counter()
        own = self.symbol_counts.get(symbol, Counter())
        book = shard.books.get(symbol) if shard is not None else None
        reasons = dict(shard.decoder.rejected) if shard is not None else {}
        return BinanceFeedStatistics(
            exchange=self.exchange,
            running=self.running,
            connections=int(shard is not None),
            connected=int(shard is not None and shard.ws is not None),
            symbols=int(shard is not None),
            streams=len(self.streams) if shard is not None else 0,
            emitted=0,
            last_emit_ns=0,
            reconnects=conn["reconnects"],
            rotations=conn["rotations"],
            forced_rotations=conn["forced_rotations"],
            silences=conn["silences"],
            stalls=own["stalls"],
            resyncs=own["resyncs"],
            snapshots=own["snapshots"],
            snapshot_errors=own["snapshot_errors"],
            books_stale=int(book is not None and book.stale),
            rejected=sum(reasons.values()),
            rejected_by_reason=reasons,
            trade_time_clamped=own["trade_time_clamped"],
            snapshot_limit=self.snapshot_limit,
            quiet=[symbol] if shard is not None and symbol in shard.quiet else [],
            books={symbol: book_top(book, time.time_ns())} if book is not None else {},
        )

    def _shard_of(self, symbol: str) -> FeedShard | None:
        """The connection carrying our ``symbol``, if any."""
        for shard in self.shards:
            if symbol in shard.last_data:
                return shard
        return None

    def heard_ns(self, symbol: str | None = None) -> int:
        """When the feed last knew its symbols' data current (wall clock ns, 0: never).

        Its newest message, or -- for quiet symbols -- the last frame (a ping counts) of a
        connection whose every book is synced: a quiet symbol on a live connection is current.
        With ``symbol``, only that symbol's book and connection count (its messages are the
        caller's to know: a shared feed's view counts them)."""
        heard = self.last_emit_ns if symbol is None else 0
        now_mono, now_ns = time.monotonic(), time.time_ns()
        shards = self.shards if symbol is None else [s for s in (self._shard_of(symbol),) if s is not None]
        for shard in shards:
            books = shard.books.values() if symbol is None else [b for b in (shard.books.get(symbol),) if b]
            if shard.ws is None or not shard.symbols or any(b.stale for b in books):
                continue
            if now_mono - shard.last_frame <= self.silence_timeout_s:
                heard = max(heard, now_ns - int((now_mono - shard.last_frame) * 1e9))
        return heard

    def synced_snapshot(self, symbol: str) -> BookSnapshot | None:
        """Our ``symbol``'s book as a snapshot to publish now, if it is synced (else None)."""
        shard = self._shard_of(symbol)
        book = shard.books.get(symbol) if shard is not None else None
        if book is None or book.stale:
            return None
        ts = time.time_ns()
        return book.as_snapshot(ts, ts, self.book_depth)

    def _count(self, name: str, shard: FeedShard, symbol: str | None = None) -> None:
        """One more ``name`` event: for the feed, the connection ``shard`` and our ``symbol``."""
        setattr(self, name, getattr(self, name) + 1)
        shard.counts[name] += 1
        if symbol is not None:
            self.symbol_counts.setdefault(symbol, Counter())[name] += 1

    async def run(
        self,
        sink: Sink,
        *,
        sink_nowait: SinkNowait | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Stream until cancelled; connection failures are retried forever, never raised."""
        self._sink, self._nowait = sink, sink_nowait
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.snapshot_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as tg:
            self._session, self._tg, self.running = session, tg, True
            self.rest = BinanceHttpClient(
                self.rest_url,
                "",
                _Unsigned(),
                timeout_s=self.snapshot_timeout_s,
                session=session,
                conn="rest:feed",
                limiter=self.queue.limiter,
            )
            try:
                for shard in self.shards:
                    tg.start_soon(self._run_shard, shard, name=f"binance-{shard.name}")
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self.running, self._tg, self._session, self.rest = False, None, None, None

    async def subscribe(self, symbols: Mapping[str, str]) -> None:
        """Add ``symbols`` (venue -> ours) live: to shards with room, else to new connections."""
        todo = {v: o for v, o in symbols.items() if not any(v in s.symbols for s in self.shards)}
        for shard in self.shards:
            room = self.per_shard - len(shard.symbols)
            if room <= 0 or not todo:
                continue
            batch = dict(list(todo.items())[:room])
            todo = {v: o for v, o in todo.items() if v not in batch}
            shard.add(batch)
            await self._request(shard, "SUBSCRIBE", shard.streams(list(batch)))
            for ours in batch.values():  # a quiet symbol's book syncs without waiting for a diff
                if ours in shard.books:
                    self._request_snapshot(shard, ours)
        while todo:
            batch = dict(list(todo.items())[: self.per_shard])
            todo = {v: o for v, o in todo.items() if v not in batch}
            shard = self._new_shard(batch)
            if self._tg is not None:
                self._tg.start_soon(self._run_shard, shard, name=f"binance-{shard.name}")

    async def unsubscribe(self, venue_symbols: Sequence[str]) -> None:
        """Stop the streams of ``venue_symbols``; their messages are no longer forwarded."""
        for shard in self.shards:
            mine = [v for v in venue_symbols if v in shard.symbols]
            if mine:
                shard.remove(mine)
                await self._request(shard, "UNSUBSCRIBE", shard.streams(mine))

    # --- connections -------------------------------------------------------------------------

    def _new_shard(self, symbols: Mapping[str, str]) -> FeedShard:
        shard = FeedShard(self, len(self.shards), {})
        shard.add(symbols)
        self.shards.append(shard)
        return shard

    async def _request(
        self,
        shard: FeedShard,
        method: str,
        params: list[str],
        sockets: Sequence[aiohttp.ClientWebSocketResponse | None] | None = None,
    ) -> None:
        """Send a request on the shard's live socket(s) (or ``sockets``); without one, the next
        connect carries it."""
        for ws in (shard.ws, shard.successor) if sockets is None else sockets:
            if ws is None or ws.closed:
                continue
            self._ids += 1
            try:
                await ws.send_json({"method": method, "params": params, "id": self._ids})
            except CONNECTION_ERRORS as exc:  # the reconnect's URL carries the new subscription
                log.warning("%s request lost: %s", method, exc, extra=self._extra(shard, params))

    async def _resubscribe(
        self, shard: FeedShard, opened: Sequence[str], ws: aiohttp.ClientWebSocketResponse
    ) -> None:
        """Symbols (un)subscribed while ``ws`` was opening: its URL (``opened``) did not carry them."""
        wanted, had = shard.streams(), set(opened)
        added = [s for s in wanted if s not in had]
        removed = sorted(had.difference(wanted))
        if added:
            await self._request(shard, "SUBSCRIBE", added, [ws])
        if removed:
            await self._request(shard, "UNSUBSCRIBE", removed, [ws])

    async def _run_shard(self, shard: FeedShard) -> None:
        failures = 0
        while True:
            while not shard.symbols:  # every symbol unsubscribed: no connection until one comes
                shard.wake = anyio.Event()
                await shard.wake.wait()
            shard.last_frame = shard.connected_at
            try:
                await self._connect(shard)
            except (*CONNECTION_ERRORS, ConnectionLost) as exc:
                reason = shard.drop_reason or f"{type(exc).__name__}: {exc}"
                log.warning("binance stream lost (%s): reconnecting", reason, extra=self._extra(shard))
            finally:
                shard.ws, shard.tg, shard.drop_reason = None, None, ""
                await self._abandon_successor(shard)
            self._count("reconnects", shard)
            failures = 0 if shard.last_frame > shard.connected_at else failures + 1
            initial, cap = self.backoff
            await anyio.sleep(min(cap, initial * 2 ** min(failures, 30)) * random.uniform(0.5, 1.0))

    async def _open(self, shard: FeedShard) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        url = f"{self.ws_url}/stream?streams={'/'.join(shard.streams())}"
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        with anyio.fail_after(self.snapshot_timeout_s):  # TCP connect and the HTTP upgrade
            return await self._session.ws_connect(  # pings and pongs reach _read: they are news
                url, heartbeat=self.heartbeat_s, autoping=False, max_msg_size=0, timeout=timeout
            )

    async def _connect(self, shard: FeedShard) -> None:
        opened = shard.streams()  # what _open puts in the URL
        ws = await self._open(shard)
        try:
            shard.reset()
            shard.ws = ws
            await self._resubscribe(shard, opened, ws)
            async with anyio.create_task_group() as tg:
                shard.tg = tg
                tg.start_soon(self._watchdog, shard, tg)
                tg.start_soon(self._read, shard, ws, tg)
                for symbol in list(shard.books):  # a quiet symbol's book syncs without waiting for a diff
                    self._request_snapshot(shard, symbol)
                if self.rotate_after_s:
                    tg.start_soon(self._rotate, shard)
        finally:
            with anyio.CancelScope(shield=True):
                await (shard.ws or ws).close()
        raise ConnectionLost(shard.drop_reason or "closed")

    async def _read(self, shard: FeedShard, ws: aiohttp.ClientWebSocketResponse, tg: TaskGroup) -> None:
        """Handle frames until the socket fails; then say why and end the connection's task group.

        A rotation closes the old socket once its successor caught up: the reader then plays
        the successor's held messages and carries on reading the successor."""
        try:
            while True:
                frame = await ws.receive()
                if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    shard.last_frame = time.monotonic()
                    await self._on_frame(shard, frame.data)
                    continue
                if frame.type is aiohttp.WSMsgType.PING:  # Binance's, every 20 s: answer with its payload
                    shard.last_frame = time.monotonic()
                    await ws.pong(frame.data)
                    continue
                if frame.type is aiohttp.WSMsgType.PONG:  # the answer to our heartbeat
                    shard.last_frame = time.monotonic()
                    continue
                if shard.handover is not None:
                    ws = await self._take_over(shard)
                    continue
                if frame.type is aiohttp.WSMsgType.ERROR and isinstance(
                    ws.exception(), aiohttp.ServerTimeoutError
                ):
                    self._count("silences", shard)  # aiohttp's heartbeat: our ping went unanswered
                    shard.drop_reason = f"silent connection: {ws.exception()}"
                elif frame.type is aiohttp.WSMsgType.ERROR:
                    shard.drop_reason = f"websocket error: {ws.exception()}"
                else:  # CLOSE, CLOSING, CLOSED
                    shard.drop_reason = f"closed by peer ({ws.close_code})"
                break
        except CONNECTION_ERRORS as exc:  # raised here, it would reach run() as an ExceptionGroup
            shard.drop_reason = f"{type(exc).__name__}: {exc}"
        tg.cancel_scope.cancel()

    async def _watchdog(self, shard: FeedShard, tg: TaskGroup) -> None:
        """Drop the connection (cancel its task group) when it is silent: no frame at all, pings
        included.  Symbols gone quiet are counted and logged; their connection stays."""
        period = min(self.silence_timeout_s, self.stall_timeout_s or self.silence_timeout_s) / 4
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            if now - shard.last_frame > self.silence_timeout_s:
                self._count("silences", shard)
                shard.drop_reason = (
                    f"silent connection: no frame, not even a ping, for {self.silence_timeout_s}s"
                )
                break
            self._note_quiet(shard, now)
        tg.cancel_scope.cancel()

    def _note_quiet(self, shard: FeedShard, now: float) -> None:
        """Count each symbol once per quiet spell (no data for ``stall_timeout_s``)."""
        if self.stall_timeout_s is None:
            return
        for sym, t in shard.last_data.items():
            if now - t > self.stall_timeout_s and sym not in shard.quiet:
                shard.quiet.add(sym)
                self._count("stalls", shard, sym)
                log.info(
                    "binance symbol quiet: no trade, quote or depth change for %.0fs (connection alive)",
                    now - t,
                    extra={**self._extra(shard), "symbol": sym},
                )

    # --- frames and books --------------------------------------------------------------------

    async def _on_frame(self, shard: FeedShard, raw: bytes | str) -> None:
        ts_recv = time.time_ns()
        for msg in shard.decoder.decode(raw, ts_recv):
            symbol = msg.symbol
            if symbol not in shard.last_data:  # unsubscribed meanwhile
                continue
            shard.last_data[symbol] = shard.last_frame
            shard.quiet.discard(symbol)
            kind = type(msg)
            if kind is BookDelta and not self._on_delta(shard, msg):  # type: ignore[arg-type]
                continue
            if kind is Trade:
                if shard.trade_floor is not None and not trade_is_new(shard, msg):  # type: ignore[arg-type]
                    continue  # around a rotation: the other socket delivered it
                msg = self._monotonic_trade(shard, msg)  # type: ignore[arg-type]
            if kind is Quote and shard.handover is not None:
                shard.fresh_quotes.add(symbol)
            await self._emit(shard, msg)

    def _on_delta(self, shard: FeedShard, delta: BookDelta) -> bool:
        """Feed the book; True when the delta is to be forwarded (the book is synced)."""
        book = shard.books.get(delta.symbol)
        if book is None:
            return False
        action = book.on_diff(delta)
        if action is BookAction.APPLIED:
            return True
        if action is BookAction.RESYNC_NEEDED:
            self._count("resyncs", shard, delta.symbol)
        if action is not BookAction.DROPPED and book.stale:
            self._request_snapshot(shard, delta.symbol)
        return False

    def _monotonic_trade(self, shard: FeedShard, trade: Trade) -> Trade:
        """Keep a trade whose time is older than the previous one's, stamped with that time."""
        last = shard.last_trade_ts.get(trade.symbol, 0)
        if trade.ts_event >= last:
            shard.last_trade_ts[trade.symbol] = trade.ts_event
            return trade
        self._count("trade_time_clamped", shard, trade.symbol)
        return msgspec.structs.replace(trade, ts_event=last)

    def _request_snapshot(self, shard: FeedShard, symbol: str) -> None:
        if symbol in shard.syncing or shard.tg is None:
            return
        shard.syncing.add(symbol)
        shard.tg.start_soon(self._sync_book, shard, symbol)

    async def _sync_book(self, shard: FeedShard, symbol: str) -> None:
        """Fetch snapshots (one queue turn each, backing off) until the book is synced, then publish it."""
        venue = next((v for v, o in shard.symbols.items() if o == symbol), "")
        book = shard.books.get(symbol)
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda done: not done),  # errors are handled in _snapshot
            wait=self._snapshot_wait,
            sleep=anyio.sleep,
            reraise=True,
        )
        try:
            if book is not None:
                await retrying(self._sync_once, shard, venue, symbol, book)
        finally:
            shard.syncing.discard(symbol)

    def _snapshot_wait(self, state: RetryCallState) -> float:
        """Exponential back-off with jitter, and never before a 429 back-off or 418 ban ends."""
        backoff = self._backoff(state)
        limiter = self.queue.limiter
        blocked_s = (max(limiter.blocked_until_ms, limiter.banned_until_ms) - time.time() * 1000) / 1000
        return max(backoff, blocked_s)

    async def _sync_once(self, shard: FeedShard, venue: str, symbol: str, book: OrderBook) -> bool:
        """One snapshot turn; True when there is nothing more to do (synced, or the book replaced)."""
        await self._ensure_limits()
        async with self.queue.turn(book.since_ns / 1e9):
            if shard.books.get(symbol) is not book or not book.stale:
                return True  # a reconnect replaced the book, or it synced meanwhile: no request
            snapshot = await self._snapshot(shard, venue, symbol)
        if snapshot is None or shard.books.get(symbol) is not book:
            return shard.books.get(symbol) is not book
        async with shard.lock:
            action = book.apply_snapshot(snapshot)
            if action is BookAction.RESYNC_NEEDED:
                self._count("resyncs", shard, symbol)
            elif action is BookAction.APPLIED:
                ts = time.time_ns()
                published = book.as_snapshot(snapshot.ts_event, ts, self.book_depth)
                if published is not None:
                    await self._deliver(published)
        return not book.stale

    async def _ensure_limits(self) -> None:
        """The venue's rateLimits, from one exchangeInfo per host, unless known already."""
        queue = self.queue
        if queue.limiter.configured or queue.limits_tried or self.rest is None:
            return
        async with queue.limits_lock:
            if queue.limits_tried or queue.limiter.configured:
                return
            try:
                with anyio.fail_after(self.snapshot_timeout_s):
                    await self.rest.exchange_info(background=True)
            except SNAPSHOT_ERRORS as exc:
                self._limits_failed(exc)
            finally:
                queue.limits_tried = True

    def _limits_failed(self, exc: BaseException) -> None:
        log.warning(
            "exchangeInfo for the rate limits failed (%s): keeping the defaults",
            exc,
            extra={"component": COMPONENT, "exchange": self.exchange, "symbol": "*", "conn": "rest:feed"},
        )

    async def _snapshot(self, shard: FeedShard, venue: str, symbol: str) -> BookSnapshot | None:
        try:
            with anyio.fail_after(self.snapshot_timeout_s):
                reply = await self._fetch(venue, self.snapshot_limit)
            snapshot = reply.parse_to_book_snapshot(self.exchange, symbol, time.time_ns())
        except SNAPSHOT_ERRORS as exc:
            self._count("snapshot_errors", shard, symbol)
            log.warning("depth snapshot failed: %s", exc, extra={**self._extra(shard), "symbol": symbol})
            return None
        self._count("snapshots", shard, symbol)
        return snapshot

    async def _fetch_rest(self, venue: str, limit: int) -> BinanceDepthSnapshot:
        assert self.rest is not None
        return await self.rest.depth(venue, limit, background=True)

    # --- delivery ----------------------------------------------------------------------------

    async def _emit(self, shard: FeedShard, msg: Message) -> None:
        """Deliver in order: the lock-free path only while no snapshot is being published."""
        if shard.lock.locked() or not (self._nowait is not None and self._nowait(msg)):
            async with shard.lock:
                await self._deliver(msg)
            return
        self.emitted += 1
        self.last_emit_ns = msg.ts_recv

    async def _deliver(self, msg: Message) -> None:
        if self._nowait is None or not self._nowait(msg):
            assert self._sink is not None
            await self._sink(msg)
        self.emitted += 1
        self.last_emit_ns = msg.ts_recv

    def _extra(self, shard: FeedShard, streams: Sequence[str] | None = None) -> dict[str, str]:
        """Log fields: the symbol(s) of the connection (ours, comma-separated), or of ``streams``."""
        if streams is not None:
            venues = {name.partition("@")[0].upper() for name in streams}
            symbols = [o for v, o in shard.symbols.items() if v in venues] or sorted(venues)
        else:
            symbols = list(shard.symbols.values())
        return {
            "component": COMPONENT,
            "exchange": self.exchange,
            "symbol": _symbols_field(symbols),
            "conn": shard.name,
        }


LOG_SYMBOLS = 8  # a connection's log lines name this many of its symbols, then how many more


def _symbols_field(symbols: Sequence[str]) -> str:
    """``A,B,C`` -- or, for a connection shared by many groups, ``A,...,H (+333 more)``."""
    if len(symbols) <= LOG_SYMBOLS:
        return ",".join(symbols)
    return ",".join(symbols[:LOG_SYMBOLS]) + f" (+{len(symbols) - LOG_SYMBOLS} more)"


class _Unsigned:
    """The feed's REST client signs nothing (depth and exchangeInfo are public)."""

    def sign(self, payload: str) -> str:
        raise RuntimeError("the market feed sends no signed requests")
