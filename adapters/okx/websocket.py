"""OKX v5 public market data: one WebSocket for many instruments, our market messages out.

:class:`OkxMarketFeed` has the feed interface of the Binance feed and the replay feed
(``run(sink, *, sink_nowait=..., task_status=...)``, ``emitted``, ``last_emit_ns``,
``statistics()``, ``heard_ns()``).  It opens ``ws_url`` (default
``wss://ws.okx.com:8443/ws/v5/public``; demo trading ``wss://wspap.okx.com:8443/ws/v5/public``),
subscribes every (channel, instId) -- requests of at most :data:`MAX_REQUEST_BYTES`, OKX's
limit on one request -- and decodes frames with :class:`~adapters.okx.data.OkxStream`, handing
each message to ``sink_nowait`` first, awaiting ``sink`` only when that returns False.

- Keep-alive: OKX closes a connection after 30 s without a frame; when none came for
  ``ping_after_s`` we send the text ``ping`` (OKX answers ``pong``), and a connection with no
  frame at all for ``silence_timeout_s`` is dropped (``silences``).
- Reconnects: forever, on connection errors only, exponential back-off with jitter and a cap
  (tenacity); the back-off starts over after a connection that carried data.  Every connection
  subscribes afresh and every book starts from the snapshot of its subscription.
- Books: a sequence gap, a checksum mismatch or a refused push (:mod:`adapters.okx.data`)
  resubscribes that book alone (``unsubscribe`` then ``subscribe``: OKX sends a new snapshot;
  ``resubscribes``); nothing of it is forwarded while it is stale.  A book still stale after
  ``resubscribe_timeout_s`` (a lost answer) is resubscribed again.
- Errors: OKX ``error`` events (60012 bad request, 60018 unknown channel or instId ...) are
  logged and counted (``rejected_by_reason["venue_error"]``, the latest in ``errors``).
- Instrument rules: with ``rest_url``, :class:`~adapters.okx.rules_loader.OkxRulesLoader` runs in
  the feed's task group (loaded at start, refreshed every ``rules_refresh_s``); ``rules``.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from actors.messages import Message
from actors.timefmt import iso_utc
from adapters.okx.book import OkxBook
from adapters.okx.data import CHANNELS, OkxStream
from adapters.okx.instruments import OkxRules
from adapters.okx.rules_loader import OkxRulesLoader

__all__ = ["DEFAULT_CHANNELS", "DEFAULT_WS_URL", "DEMO_WS_URL", "OkxFeedStatistics", "OkxMarketFeed"]

log = logging.getLogger("tradingd.okx.ws")
COMPONENT = "okx-ws"
DEFAULT_WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
DEMO_WS_URL = "wss://wspap.okx.com:8443/ws/v5/public"
DEFAULT_CHANNELS = ("books", "trades", "tickers")
MAX_REQUEST_BYTES = 4096
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
Sink = Callable[[Message], Awaitable[None]]
SinkNowait = Callable[[Message], bool]


class ConnectionLost(Exception):
    """The peer closed the socket, or the watchdog gave up on it: reconnect."""


class OkxBookTop(msgspec.Struct, frozen=True):
    synced: bool
    since: str  # ISO 8601 UTC: when it became synced / stale
    since_s: float
    best_bid: list[str] | None
    best_ask: list[str] | None
    seq_id: int | None
    resync_reason: str


class OkxFeedStatistics(msgspec.Struct, frozen=True):
    """A snapshot of the OKX feed, for /status and /metrics."""

    exchange: str
    running: bool
    connected: int
    symbols: int
    subscriptions: int
    emitted: int
    last_emit_ns: int
    reconnects: int
    silences: int
    pings: int
    pongs: int
    resubscribes: int
    checksum_failures: int
    gaps: int
    books_stale: int
    rejected: int
    rejected_by_reason: dict[str, int]
    errors: list[str] = []
    rules_loads: int = 0
    rules_errors: int = 0
    instruments: dict[str, str] = {}  # instId -> state (live, suspend ...)
    books: dict[str, OkxBookTop] = {}


class OkxMarketFeed:
    """The live market data of ``symbols`` (OKX instId -> ours: ``BTC-USDT`` -> ``BTC/USDT``)."""

    def __init__(
        self,
        ws_url: str,
        symbols: Mapping[str, str],
        *,
        channels: Sequence[str] = DEFAULT_CHANNELS,
        exchange: str = "okx",
        rest_url: str | None = None,
        simulated: bool = False,
        rules_refresh_s: float = 3600.0,
        ping_after_s: float = 20.0,
        silence_timeout_s: float = 30.0,
        resubscribe_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        book_depth: int = 100,
    ) -> None:
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown or not channels:
            raise ValueError(
                f"unsupported OKX channels: {unknown or 'none given'}; known: {', '.join(CHANNELS)}"
            )
        self.ws_url, self.channels, self.exchange = ws_url, tuple(channels), exchange
        self.symbols = dict(symbols)
        self.ping_after_s = min(ping_after_s, silence_timeout_s * 2 / 3)
        self.silence_timeout_s, self.resubscribe_timeout_s = silence_timeout_s, resubscribe_timeout_s
        self.backoff = (backoff_initial_s, backoff_max_s)
        self.connect_timeout_s = connect_timeout_s
        self.stream = OkxStream(self.symbols, exchange=exchange, book_depth=book_depth)
        if "books" not in self.channels:
            self.stream.books.clear()
        self.rules_loader = (
            OkxRulesLoader(
                rest_url,
                list(self.symbols),
                exchange=exchange,
                simulated=simulated,
                refresh_s=rules_refresh_s,
            )
            if rest_url
            else None
        )
        self.emitted = self.last_emit_ns = 0
        self.reconnects = self.silences = self.pings = self.resubscribes = 0
        self.running = False
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.last_frame = 0.0
        self._ping_sent = 0.0
        self._resubscribed_at: dict[str, float] = {}
        self._drop_reason = ""
        self._sink: Sink | None = None
        self._nowait: SinkNowait | None = None
        self._session: aiohttp.ClientSession | None = None

    # --- public ------------------------------------------------------------------------------------

    @property
    def rules(self) -> dict[str, OkxRules]:
        return {} if self.rules_loader is None else self.rules_loader.rules

    def statistics(self) -> OkxFeedStatistics:
        s, now = self.stream, time.time_ns()
        rules = self.rules_loader
        return OkxFeedStatistics(
            exchange=self.exchange,
            running=self.running,
            connected=int(self.ws is not None),
            symbols=len(self.symbols),
            subscriptions=len(self.symbols) * len(self.channels),
            emitted=self.emitted,
            last_emit_ns=self.last_emit_ns,
            reconnects=self.reconnects,
            silences=self.silences,
            pings=self.pings,
            pongs=s.pongs,
            resubscribes=self.resubscribes,
            checksum_failures=s.checksum_failures,
            gaps=s.gaps,
            books_stale=sum(not b.synced for b in s.books.values()),
            rejected=sum(s.rejected.values()),
            rejected_by_reason=dict(s.rejected),
            errors=list(s.errors),
            rules_loads=rules.loads if rules else 0,
            rules_errors=rules.load_errors if rules else 0,
            instruments={i: r.state for i, r in self.rules.items() if i in self.symbols},
            books={b.symbol: _top(b, now) for b in s.books.values()},
        )

    def heard_ns(self) -> int:
        """When the feed last knew its data current: its newest message, or the last frame of a
        live connection whose books are all synced (a quiet instrument is current)."""
        heard = self.last_emit_ns
        if self.ws is not None and all(b.synced for b in self.stream.books.values()):
            age = time.monotonic() - self.last_frame
            if age <= self.silence_timeout_s:
                heard = max(heard, time.time_ns() - int(age * 1e9))
        return heard

    async def run(
        self,
        sink: Sink,
        *,
        sink_nowait: SinkNowait | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Stream until cancelled; connection failures are retried forever, never raised."""
        self._sink, self._nowait = sink, sink_nowait
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session, anyio.create_task_group() as tg:
            self._session, self.running = session, True
            try:
                if self.rules_loader is not None:
                    tg.start_soon(self.rules_loader.run, name="okx-rules")
                tg.start_soon(self._run_connection, name="okx-ws0")
                task_status.started()
                await anyio.sleep_forever()
            finally:
                self.running, self._session = False, None

    # --- connection --------------------------------------------------------------------------------

    async def _run_connection(self) -> None:
        initial, cap = self.backoff
        while True:
            retrying = AsyncRetrying(
                retry=retry_if_exception_type((*CONNECTION_ERRORS, ConnectionLost)),
                wait=wait_exponential_jitter(multiplier=initial, max=cap, jitter=initial),
                sleep=anyio.sleep,
                before_sleep=self._lost,
            )
            await retrying(self._connect)  # returns after a connection that carried data ended
            self.reconnects += 1
            await anyio.sleep(initial * random.uniform(0.5, 1.0))

    def _lost(self, state: RetryCallState) -> None:
        self.reconnects += 1
        exc = state.outcome.exception() if state.outcome is not None else None
        log.warning("okx stream lost (%s): reconnecting", self._drop_reason or exc, extra=self._extra())
        self._drop_reason = ""

    async def _connect(self) -> None:
        """One connection: subscribe, read and watch it; raises unless it carried data."""
        assert self._session is not None
        with anyio.fail_after(self.connect_timeout_s):
            ws = await self._session.ws_connect(
                self.ws_url, heartbeat=None, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
            )
        self.stream.reset_books()
        self._resubscribed_at.clear()
        self.last_frame = self._ping_sent = time.monotonic()
        connected_at, decoded_before = self.last_frame, sum(self.stream.decoded.values())
        try:
            self.ws = ws
            await self._send_op(ws, "subscribe", [(c, i) for i in self.symbols for c in self.channels])
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watchdog, ws, tg)
                tg.start_soon(self._read, ws, tg)
        finally:
            self.ws = None
            with anyio.CancelScope(shield=True):
                await ws.close()
        reason = self._drop_reason or f"closed by peer ({ws.close_code})"
        if sum(self.stream.decoded.values()) == decoded_before or self.last_frame == connected_at:
            raise ConnectionLost(reason)
        log.warning("okx stream lost (%s): reconnecting", reason, extra=self._extra())
        self._drop_reason = ""

    async def _send_op(
        self, ws: aiohttp.ClientWebSocketResponse, op: str, args: list[tuple[str, str]]
    ) -> None:
        """``op`` for ``args`` in requests of at most MAX_REQUEST_BYTES each."""
        batch: list[dict[str, str]] = []
        for channel, inst in args:
            batch.append({"channel": channel, "instId": inst})
            if len(json.dumps({"op": op, "args": batch})) > MAX_REQUEST_BYTES and len(batch) > 1:
                await ws.send_str(json.dumps({"op": op, "args": batch[:-1]}))
                batch = batch[-1:]
        if batch:
            await ws.send_str(json.dumps({"op": op, "args": batch}))

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, tg: TaskGroup) -> None:
        try:
            while True:
                frame = await ws.receive()
                if frame.type is aiohttp.WSMsgType.TEXT:
                    self.last_frame = time.monotonic()
                    await self._on_text(ws, frame.data)
                    continue
                if frame.type is aiohttp.WSMsgType.BINARY:  # OKX's public channels send text only
                    continue
                if frame.type is aiohttp.WSMsgType.ERROR:
                    self._drop_reason = f"websocket error: {ws.exception()}"
                else:  # CLOSE, CLOSING, CLOSED
                    self._drop_reason = f"closed by peer ({ws.close_code})"
                break
        except CONNECTION_ERRORS as exc:
            self._drop_reason = f"{type(exc).__name__}: {exc}"
        tg.cancel_scope.cancel()

    async def _on_text(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        for msg in self.stream.decode(text, time.time_ns()):
            await self._deliver(msg)
        if self.stream.resubscribe:
            await self._resubscribe(ws, self.stream.resubscribe)
            self.stream.resubscribe.clear()

    async def _resubscribe(self, ws: aiohttp.ClientWebSocketResponse, inst_ids: list[str]) -> None:
        args = [("books", inst) for inst in inst_ids]
        await self._send_op(ws, "unsubscribe", args)
        await self._send_op(ws, "subscribe", args)
        now = time.monotonic()
        for inst in inst_ids:
            self.resubscribes += 1
            self._resubscribed_at[inst] = now

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse, tg: TaskGroup) -> None:
        """Ping when idle, drop the connection when silent, resubscribe books stuck stale."""
        period = min(self.ping_after_s, self.resubscribe_timeout_s) / 4
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            idle = now - self.last_frame
            if idle > self.silence_timeout_s:
                self.silences += 1
                self._drop_reason = (
                    f"silent connection: no frame, not even a pong, for {self.silence_timeout_s}s"
                )
                break
            if idle > self.ping_after_s and self._ping_sent <= self.last_frame:
                self._ping_sent = now
                self.pings += 1
                await ws.send_str("ping")
            stuck = [
                inst
                for inst, at in self._resubscribed_at.items()
                if now - at > self.resubscribe_timeout_s and not self.stream.books[inst].synced
            ]
            if stuck:
                await self._resubscribe(ws, stuck)
        tg.cancel_scope.cancel()

    # --- delivery ----------------------------------------------------------------------------------

    async def _deliver(self, msg: Message) -> None:
        if self._nowait is None or not self._nowait(msg):
            assert self._sink is not None
            await self._sink(msg)
        self.emitted += 1
        self.last_emit_ns = msg.ts_recv

    def _extra(self) -> dict[str, str]:
        return {
            "component": COMPONENT,
            "exchange": self.exchange,
            "symbol": ",".join(self.symbols.values()),
            "conn": "ws0",
        }


def _top(book: OkxBook, now_ns: int) -> OkxBookTop:
    bid, ask = book.best_bid(), book.best_ask()
    return OkxBookTop(
        synced=book.synced,
        since=iso_utc(book.since_ns),
        since_s=round(max(0, now_ns - book.since_ns) / 1e9, 3),
        best_bid=[str(bid[0]), str(bid[1])] if bid and book.synced else None,
        best_ask=[str(ask[0]), str(ask[1])] if ask and book.synced else None,
        seq_id=book.seq_id,
        resync_reason=book.reason if not book.synced else "",
    )
