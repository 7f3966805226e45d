"""Binance spot live market data: combined-stream WebSockets in, our market messages out.

:class:`BinanceMarketFeed` has the feed interface of :class:`adapters.replay.feed.ReplayFeed`
(``run(sink, *, sink_nowait=..., task_status=...)``, ``emitted``, ``last_emit_ns``,
``statistics()``).  It opens ``{ws_url}/stream?streams=a/b/c`` (aiohttp, ping/pong heartbeat),
decodes frames with :class:`~adapters.binance.data.FrameDecoder` and hands each message to
``sink_nowait`` first, awaiting ``sink`` only when that returns False.

- Sharding: symbols are split so no connection carries more than ``max_streams_per_connection``
  streams; each shard is its own task in the feed's task group.
- Reconnects: forever, exponential backoff with jitter and a cap, on connection errors only
  (aiohttp errors, OSError, timeouts, the peer closing).  Two watchdogs drop a connection: a
  silent peer (no frame for ``silence_timeout_s``) and a stalled symbol (no data for one
  subscribed symbol for ``stall_timeout_s``, counted in ``stalls``).
- Order books (depth streams): one :class:`~adapters.binance.book.OrderBook` per symbol, synced
  by Binance's procedure: diffs are buffered, the REST snapshot is fetched once the first diff
  has arrived, and fetched again whenever the book needs it (counted in ``resyncs``).  A stale
  book's deltas are not forwarded: a :class:`BookSnapshot` is published when it (re)syncs, then
  its deltas.  Every connection starts all books afresh (diffs were missed meanwhile).
- Live ``subscribe`` / ``unsubscribe`` send ``SUBSCRIBE`` / ``UNSUBSCRIBE`` requests with ids.
- The 24 h limit: each connection is rotated make-before-break before Binance cuts it
  (``rotate_after_s``), without a gap (``rotations``, ``forced_rotations``):
  :mod:`adapters.binance.feed_rotation`.  A connection's state: :mod:`adapters.binance.feed_shard`.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from actors.messages import BookDelta, BookSnapshot, Message, Quote, Trade
from adapters.binance.book import BookAction, OrderBook
from adapters.binance.data import BinanceDecodeError, stream_kind
from adapters.binance.errors import BinanceError
from adapters.binance.feed_rotation import ConnectionRotation, trade_is_new
from adapters.binance.feed_shard import CONNECTION_ERRORS, ConnectionLost, FeedShard
from adapters.binance.schemas import DEPTH_SNAPSHOT_DECODER, BinanceDepthSnapshot, BinanceValueError

log = logging.getLogger("tradingd.binance.ws")

COMPONENT = "binance-ws"
DEFAULT_STREAMS = ("aggTrade", "bookTicker", "depth@100ms")
Sink = Callable[[Message], Awaitable[None]]
SinkNowait = Callable[[Message], bool]
SnapshotFetcher = Callable[[str, int], Awaitable[BinanceDepthSnapshot]]
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
        snapshot_limit: int = 1000,
        snapshot_retry_s: float = 1.0,
        snapshot_timeout_s: float = 10.0,
        book_depth: int = 1000,
        fetch_snapshot: SnapshotFetcher | None = None,
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
        self.heartbeat_s, self.backoff = heartbeat_s, (backoff_initial_s, backoff_max_s)
        self.rotate_after_s, self.handover_timeout_s = rotate_after_s, handover_timeout_s
        self.snapshot_limit, self.snapshot_retry_s = snapshot_limit, snapshot_retry_s
        self.snapshot_timeout_s, self.book_depth = snapshot_timeout_s, book_depth
        self._fetch = fetch_snapshot or self._fetch_rest
        self.shards: list[FeedShard] = []
        for i in range(0, len(symbols), self.per_shard):
            self._new_shard(dict(list(symbols.items())[i : i + self.per_shard]))
        self.emitted = self.last_emit_ns = 0
        self.reconnects = self.silences = self.stalls = self.resyncs = 0
        self.rotations = self.forced_rotations = 0
        self.snapshots = self.snapshot_errors = 0
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

    def statistics(self) -> BinanceFeedStatistics:
        reasons: dict[str, int] = {}
        for shard in self.shards:
            for reason, n in shard.decoder.rejected.items():
                reasons[reason] = reasons.get(reason, 0) + n
        symbols = sum(len(s.symbols) for s in self.shards)
        return BinanceFeedStatistics(
            exchange=self.exchange,
            running=self.running,
            connections=len(self.shards),
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
        )

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
            try:
                for shard in self.shards:
                    tg.start_soon(self._run_shard, shard, name=f"binance-{shard.name}")
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self.running, self._tg, self._session = False, None, None

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

    async def _request(self, shard: FeedShard, method: str, params: list[str]) -> None:
        """Send a request on the shard's live socket; without one, the next connect carries it."""
        for ws in (shard.ws, shard.successor):
            if ws is None or ws.closed:
                continue
            self._ids += 1
            try:
                await ws.send_json({"method": method, "params": params, "id": self._ids})
            except CONNECTION_ERRORS as exc:  # the reconnect's URL carries the new subscription
                log.warning("%s request lost: %s", method, exc, extra=self._extra(shard))

    async def _run_shard(self, shard: FeedShard) -> None:
        failures = 0
        while True:
            shard.last_frame = shard.connected_at
            try:
                await self._connect(shard)
            except (*CONNECTION_ERRORS, ConnectionLost) as exc:
                reason = shard.drop_reason or f"{type(exc).__name__}: {exc}"
                log.warning("binance stream lost (%s): reconnecting", reason, extra=self._extra(shard))
            finally:
                shard.ws, shard.tg, shard.drop_reason = None, None, ""
                await self._abandon_successor(shard)
            self.reconnects += 1
            failures = 0 if shard.last_frame > shard.connected_at else failures + 1
            initial, cap = self.backoff
            await anyio.sleep(min(cap, initial * 2 ** min(failures, 30)) * random.uniform(0.5, 1.0))

    async def _open(self, shard: FeedShard) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        url = f"{self.ws_url}/stream?streams={'/'.join(shard.streams())}"
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        with anyio.fail_after(self.snapshot_timeout_s):  # TCP connect and the HTTP upgrade
            return await self._session.ws_connect(
                url, heartbeat=self.heartbeat_s, autoping=True, max_msg_size=0, timeout=timeout
            )

    async def _connect(self, shard: FeedShard) -> None:
        ws = await self._open(shard)
        try:
            shard.reset()
            shard.ws = ws
            async with anyio.create_task_group() as tg:
                shard.tg = tg
                tg.start_soon(self._watchdog, shard, tg)
                tg.start_soon(self._read, shard, ws, tg)
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
                if shard.handover is not None:
                    ws = await self._take_over(shard)
                    continue
                if frame.type is aiohttp.WSMsgType.ERROR:
                    shard.drop_reason = f"websocket error: {ws.exception()}"
                else:  # CLOSE, CLOSING, CLOSED
                    shard.drop_reason = f"closed by peer ({ws.close_code})"
                break
        except CONNECTION_ERRORS as exc:  # raised here, it would reach run() as an ExceptionGroup
            shard.drop_reason = f"{type(exc).__name__}: {exc}"
        tg.cancel_scope.cancel()

    async def _watchdog(self, shard: FeedShard, tg: TaskGroup) -> None:
        """Drop the connection (cancel its task group) on a silent peer or a stalled symbol."""
        period = min(self.silence_timeout_s, self.stall_timeout_s or self.silence_timeout_s) / 4
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            if now - shard.last_frame > self.silence_timeout_s:
                self.silences += 1
                shard.drop_reason = f"silent peer: no frame for {self.silence_timeout_s}s"
                break
            stalled = self._stalled(shard, now)
            if stalled:
                self.stalls += 1
                shard.drop_reason = f"stalled stream: no data for {stalled} in {self.stall_timeout_s}s"
                break
        tg.cancel_scope.cancel()

    def _stalled(self, shard: FeedShard, now: float) -> str:
        if self.stall_timeout_s is None:
            return ""
        late = [sym for sym, t in shard.last_data.items() if now - t > self.stall_timeout_s]
        return ", ".join(late)

    # --- frames and books --------------------------------------------------------------------

    async def _on_frame(self, shard: FeedShard, raw: bytes | str) -> None:
        ts_recv = time.time_ns()
        for msg in shard.decoder.decode(raw, ts_recv):
            symbol = msg.symbol
            if symbol not in shard.last_data:  # unsubscribed meanwhile
                continue
            shard.last_data[symbol] = shard.last_frame
            kind = type(msg)
            if kind is BookDelta and not self._on_delta(shard, msg):  # type: ignore[arg-type]
                continue
            if kind is Trade and shard.trade_floor is not None and not trade_is_new(shard, msg):  # type: ignore[arg-type]
                continue  # around a rotation: the other socket delivered it
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
            self.resyncs += 1
        if action is not BookAction.DROPPED and book.stale:
            self._request_snapshot(shard, delta.symbol)
        return False

    def _request_snapshot(self, shard: FeedShard, symbol: str) -> None:
        if symbol in shard.syncing or shard.tg is None:
            return
        shard.syncing.add(symbol)
        shard.tg.start_soon(self._sync_book, shard, symbol)

    async def _sync_book(self, shard: FeedShard, symbol: str) -> None:
        """Fetch snapshots until the book is synced, then publish it."""
        venue = next((v for v, o in shard.symbols.items() if o == symbol), "")
        try:
            while (book := shard.books.get(symbol)) is not None and book.stale:
                snapshot = await self._snapshot(shard, venue, symbol)
                if snapshot is None or shard.books.get(symbol) is not book:
                    await anyio.sleep(self.snapshot_retry_s)
                    continue
                async with shard.lock:
                    action = book.apply_snapshot(snapshot)
                    if action is BookAction.RESYNC_NEEDED:
                        self.resyncs += 1
                    elif action is BookAction.APPLIED:
                        ts = time.time_ns()
                        published = book.as_snapshot(snapshot.ts_event, ts, self.book_depth)
                        if published is not None:
                            await self._deliver(published)
                if book.stale:
                    await anyio.sleep(self.snapshot_retry_s)
        finally:
            shard.syncing.discard(symbol)

    async def _snapshot(self, shard: FeedShard, venue: str, symbol: str) -> BookSnapshot | None:
        try:
            with anyio.fail_after(self.snapshot_timeout_s):
                reply = await self._fetch(venue, self.snapshot_limit)
            snapshot = reply.parse_to_book_snapshot(self.exchange, symbol, time.time_ns())
        except SNAPSHOT_ERRORS as exc:
            self.snapshot_errors += 1
            log.warning("depth snapshot failed: %s", exc, extra={**self._extra(shard), "symbol": symbol})
            return None
        self.snapshots += 1
        return snapshot

    async def _fetch_rest(self, venue: str, limit: int) -> BinanceDepthSnapshot:
        assert self._session is not None
        url = f"{self.rest_url}/api/v3/depth"
        async with self._session.get(url, params={"symbol": venue, "limit": str(limit)}) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise BinanceDecodeError(f"depth {venue}: HTTP {resp.status}: {body[:160]!r}")
        return DEPTH_SNAPSHOT_DECODER.decode(body)

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

    def _extra(self, shard: FeedShard) -> dict[str, str]:
        return {"component": COMPONENT, "exchange": self.exchange, "symbol": "", "conn": shard.name}
