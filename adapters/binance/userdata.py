"""Binance spot user data stream: our own orders, fills and balances, pushed by the venue.

:class:`BinanceUserStream` keeps one subscription alive forever and hands each decoded event to
``on_event``; after every (re)connect it awaits ``on_connect`` (the owner's REST catch-up) so that
nothing that happened while it was away is missed.

- WebSocket API (the default, ``user_stream = "ws_api"``): connect to
  ``{ws_api_url}`` (``wss://ws-api.binance.com:443/ws-api/v3``, testnet
  ``wss://ws-api.testnet.binance.vision/ws-api/v3``) and send ``userDataStream.subscribe.signature``
  with ``apiKey``, ``timestamp`` and ``recvWindow``, signed with the REST signer (HMAC hex or
  Ed25519 base64) over the parameters sorted by name, ``k=v`` joined by ``&`` (spot docs,
  "WebSocket API: request security").  Events arrive as ``{"subscriptionId": N, "event": {...}}``.
  The ``timestamp`` is the venue's clock as the account's REST clients measure it (``clock_ms``,
  a shared :class:`~adapters.binance.server_clock.ServerClock`), never the host's: before each
  subscription ``sync_clock`` measures it when due, and after a ``-1021`` refusal (timestamp
  outside recvWindow) the next attempt measures it again first (a measurement that fails, REST
  being down, leaves the last estimate in use: the WebSocket API may still answer).
- listenKey (``user_stream = "listen_key"``, deprecated by Binance, kept as a fallback):
  ``POST /api/v3/userDataStream`` for a key, connect to ``{stream_url}/ws/<key>``, keep it alive
  with ``PUT`` every ``keepalive_s`` (:data:`LISTEN_KEY_KEEPALIVE_S`, 30 min; Binance expires a
  key 60 min after its last keep-alive).  ``listenKeyExpired``, or a keep-alive the venue refuses
  (``-1125``: the key does not exist), ends the connection: the next one asks for a new key and
  catches up over REST.
- Reconnects: forever, exponential backoff with jitter and a cap; on connection errors, a refused
  subscription, ``eventStreamTerminated``, ``listenKeyExpired``, a silent peer, and before the
  venue's 24 h cut (``max_session_s``).
- Health: :meth:`BinanceUserStream.problem` says, for readiness, since when the stream has not
  been subscribed and caught up (:attr:`BinanceUserStream.ready`), how many attempts failed since
  and the last error; a drop that is repaired within the grace period does not count.
- Hostile frames (not JSON, unknown shapes, NaN / negative numbers) are counted by reason in
  ``rejected`` and logged at a bounded rate, never raised; unknown event types are counted in
  ``ignored``.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from actors.timefmt import iso_utc
from adapters.binance.errors import BinanceError, BinanceRejected
from adapters.binance.signing import Signer
from adapters.binance.userdata_schemas import (
    EVENT_DECODERS,
    EVENT_TYPE_DECODER,
    SUBSCRIBED_DECODER,
    USER_ENVELOPE_DECODER,
    BinanceListenKeyExpired,
    BinanceStreamTerminated,
    UserEvent,
    check_event,
)
from daemon.logs import register_secret

log = logging.getLogger("tradingd.binance.userdata")

COMPONENT = "binance-userdata"
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
REJECT_REASONS = ("malformed_json", "bad_envelope", "bad_payload", "bad_value", "venue_error")
EventHandler = Callable[[UserEvent], Awaitable[None]]
CatchUp = Callable[[], Awaitable[None]]
SyncClock = Callable[[bool], Awaitable[None]]  # measure the venue's clock: when due, or now (True)
TIMESTAMP_REFUSED = -1021  # timestamp outside recvWindow
LISTEN_KEY_KEEPALIVE_S = 30 * 60.0  # Binance: keep a listenKey alive about every 30 minutes
ListenKeyApi = Callable[[Literal["POST", "PUT"], str], Awaitable[str]]
UserStreamMode = Literal["ws_api", "listen_key"]


class StreamDropped(Exception):
    """The subscription ended (refused, terminated, silent, too old): reconnect."""


class UserStreamStatistics(msgspec.Struct, frozen=True):
    """A snapshot of the user data stream, for /status and tests."""

    mode: str
    connected: bool
    connects: int
    reconnects: int
    terminated: int
    catchups: int
    catchup_errors: int
    events: dict[str, int]
    ignored: int
    rejected: int
    rejected_by_reason: dict[str, int]
    last_event_ns: int
    ready: bool = False
    down_since: str | None = None
    failed_attempts: int = 0
    last_error: str = ""


def ws_api_signature_payload(params: dict[str, str | int]) -> str:
    """What a WebSocket API request signs: every parameter but ``signature``, sorted by name."""
    return "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")


class BinanceUserStream:
    """One account's user data stream; ``run()`` until cancelled, connection failures never raise."""

    def __init__(
        self,
        ws_api_url: str,
        api_key: str,
        signer: Signer,
        *,
        on_event: EventHandler,
        on_connect: CatchUp | None = None,
        clock_ms: Callable[[], int] | None = None,
        sync_clock: SyncClock | None = None,
        mode: UserStreamMode = "ws_api",
        stream_url: str = "wss://stream.binance.com:9443",
        listen_key_api: ListenKeyApi | None = None,
        recv_window_ms: int = 5000,
        heartbeat_s: float = 20.0,
        connect_timeout_s: float = 10.0,
        silence_timeout_s: float | None = None,
        max_session_s: float = 23.5 * 3600,
        keepalive_s: float | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        exchange: str = "binance",
    ) -> None:
        register_secret(api_key)
        self.ws_api_url, self.stream_url = ws_api_url.rstrip("/"), stream_url.rstrip("/")
        self._api_key, self._signer = api_key, signer
        self._on_event, self._on_connect = on_event, on_connect
        self._clock_ms = clock_ms or (lambda: int(time.time() * 1000))
        self._sync_clock = sync_clock
        self._resync = False  # the venue refused our timestamp: measure its clock before retrying
        self.timestamp_refusals = 0
        self.mode: UserStreamMode = mode
        self._listen_key_api = listen_key_api
        if mode == "listen_key" and listen_key_api is None:
            raise ValueError("the listen_key user stream needs a listen_key_api (the REST client)")
        self.recv_window_ms, self.heartbeat_s = recv_window_ms, heartbeat_s
        self.connect_timeout_s, self.silence_timeout_s = connect_timeout_s, silence_timeout_s
        self.max_session_s = max_session_s
        self.keepalive_s = LISTEN_KEY_KEEPALIVE_S if keepalive_s is None else keepalive_s
        self.backoff = (backoff_initial_s, backoff_max_s)
        self.exchange = exchange
        self.connects = self.reconnects = self.terminated = self.keepalives = 0
        self.catchups = self.catchup_errors = self.ignored = 0
        self.events: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.last_event_ns = 0
        self._last_frame = 0.0
        self._ids = 0
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tg: TaskGroup | None = None
        self._drop_reason = ""
        self._ready = anyio.Event()  # set once subscribed and caught up; replaced on every drop
        self.down_since_ns = time.time_ns()  # not ready since (0 while ready)
        self.failed_attempts = 0  # connections since the last ready one that never got ready
        self.last_error = ""
        self.last_catchup_error = ""
        self.catchup_failures = 0  # failed catch-ups since the last ready
        self._log_budget: dict[str, float] = {}

    # --- public ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def ready(self) -> bool:
        """Subscribed, and the REST catch-up after the (re)connect has run: nothing is missed."""
        return self._ready.is_set()

    def problem(self, now_ns: int, grace_s: float) -> str | None:
        """Why the stream cannot be trusted to report fills, once that has lasted ``grace_s``."""
        if self.ready or (now_ns - self.down_since_ns) / 1e9 < grace_s:
            return None
        since = iso_utc(self.down_since_ns)
        if self.connected:
            last = self.last_catchup_error or "none yet"
            return (
                f"user data stream subscribed but not caught up since {since} "
                f"({self.catchup_failures} catch-up failures; last error: {last})"
            )
        return (
            f"user data stream not subscribed since {since} "
            f"({self.failed_attempts} failed attempts; last error: {self.last_error or 'none yet'})"
        )

    async def wait_ready(self) -> None:
        """Return once the current connection is subscribed and its catch-up has run."""
        await self._ready.wait()

    def drop(self, reason: str) -> None:
        """Drop the current connection (it reconnects and catches up)."""
        if self._tg is not None:
            self._drop_reason = reason
            self._tg.cancel_scope.cancel()

    def statistics(self) -> UserStreamStatistics:
        return UserStreamStatistics(
            mode=self.mode,
            connected=self.connected,
            connects=self.connects,
            reconnects=self.reconnects,
            terminated=self.terminated,
            catchups=self.catchups,
            catchup_errors=self.catchup_errors,
            events=dict(self.events),
            ignored=self.ignored,
            rejected=sum(self.rejected.values()),
            rejected_by_reason=dict(self.rejected),
            last_event_ns=self.last_event_ns,
            ready=self.ready,
            down_since=None if self.ready else iso_utc(self.down_since_ns),
            failed_attempts=self.failed_attempts,
            last_error=self.last_error,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe, catch up, stream; reconnect forever with backoff and jitter."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            task_status.started()
            failures = 0
            while True:
                started = time.monotonic()
                try:
                    await self._connection(session)
                except (*CONNECTION_ERRORS, StreamDropped, BinanceError) as exc:
                    reason = self._drop_reason or f"{type(exc).__name__}: {exc}"
                    self.last_error = reason[:300]
                    log.warning("user data stream lost (%s): reconnecting", reason, extra=self._extra())
                finally:
                    self._ws, self._tg, self._drop_reason = None, None, ""
                    if self._ready.is_set():
                        self._ready = anyio.Event()
                        self.down_since_ns, self.failed_attempts = time.time_ns(), 0
                    else:
                        self.failed_attempts += 1
                self.reconnects += 1
                lasted = time.monotonic() - started
                failures = 0 if lasted > 10 * self.backoff[0] and self.catchups else failures + 1
                initial, cap = self.backoff
                await anyio.sleep(min(cap, initial * 2 ** min(failures, 30)) * random.uniform(0.5, 1.0))

    # --- one connection --------------------------------------------------------------------------

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        listen_key = ""
        if self.mode == "listen_key":
            assert self._listen_key_api is not None
            listen_key = await self._listen_key_api("POST", "")
            register_secret(listen_key)
            url = f"{self.stream_url}/ws/{listen_key}"
        else:
            url = self.ws_api_url
            if self._sync_clock is not None:  # the subscription is signed with the venue's clock
                try:
                    await self._sync_clock(self._resync)
                    self._resync = False
                except (*CONNECTION_ERRORS, BinanceError) as exc:  # REST down: the WS API may not be
                    log.warning(
                        "venue clock not measured (%s): subscribing with the last estimate",
                        exc,
                        extra=self._extra(),
                    )
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0)
        with anyio.fail_after(self.connect_timeout_s):
            ws = await session.ws_connect(
                url, heartbeat=self.heartbeat_s, autoping=True, max_msg_size=0, timeout=timeout
            )
        async with ws:
            self._last_frame = time.monotonic()
            if self.mode == "ws_api":
                await self._subscribe(ws)
            self.connects += 1
            self._ws = ws
            log.info("user data stream subscribed (%s)", self.mode, extra=self._extra())
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._read, ws, tg)
                tg.start_soon(self._catch_up)
                tg.start_soon(self._watchdog, tg)
                if listen_key:
                    tg.start_soon(self._keepalive, listen_key, tg)
        raise StreamDropped(self._drop_reason or "closed")

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ids += 1
        request_id = self._ids
        params: dict[str, str | int] = {
            "apiKey": self._api_key,
            "recvWindow": self.recv_window_ms,
            "timestamp": self._clock_ms(),
        }
        params["signature"] = self._signer.sign(ws_api_signature_payload(params))
        await ws.send_json(
            {"id": request_id, "method": "userDataStream.subscribe.signature", "params": params}
        )
        with anyio.fail_after(self.connect_timeout_s):
            while True:
                frame = await ws.receive()
                if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    raise StreamDropped(f"closed while subscribing ({ws.close_code})")
                try:
                    env = USER_ENVELOPE_DECODER.decode(frame.data)
                except msgspec.MsgspecError:
                    self._reject("malformed_json", "unreadable frame while subscribing")
                    continue
                if env.id != request_id:
                    continue
                if env.status == 200:
                    try:
                        SUBSCRIBED_DECODER.decode(env.result)
                    except msgspec.MsgspecError as exc:
                        raise StreamDropped(f"unreadable subscribe reply: {exc}") from None
                    return
                err = env.error
                detail = f"code {err.code}: {err.msg}" if err else "no error body"
                if err is not None and err.code == TIMESTAMP_REFUSED:
                    self.timestamp_refusals += 1
                    self._resync = True
                self._reject("venue_error", f"subscribe refused: HTTP {env.status} {detail}")
                raise StreamDropped(f"subscribe refused: HTTP {env.status} {detail}")

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, tg: TaskGroup) -> None:
        try:
            while True:
                frame = await ws.receive()
                if frame.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    self._last_frame = time.monotonic()
                    event = self.decode(frame.data)
                    if isinstance(event, BinanceStreamTerminated):
                        self.terminated += 1
                        self._drop_reason = "eventStreamTerminated"
                        break
                    if isinstance(event, BinanceListenKeyExpired):
                        self.terminated += 1
                        self._drop_reason = "listenKeyExpired: a new key, then a catch-up"
                        break
                    if event is not None:
                        await self._deliver(event)
                elif frame.type is aiohttp.WSMsgType.ERROR:
                    self._drop_reason = f"websocket error: {ws.exception()}"
                    break
                else:
                    self._drop_reason = f"closed by peer ({ws.close_code})"
                    break
        except CONNECTION_ERRORS as exc:
            self._drop_reason = f"{type(exc).__name__}: {exc}"
        tg.cancel_scope.cancel()

    async def _deliver(self, event: UserEvent) -> None:
        self.last_event_ns = time.time_ns()
        try:
            await self._on_event(event)
        except Exception:  # one bad event must not stop the account's stream
            self._reject("handler_error", f"handling {event.e} failed")
            log.exception("user data event handler failed", extra=self._extra())

    async def _catch_up(self) -> None:
        """Run the owner's REST catch-up until it succeeds (with backoff); then the stream is ready."""
        delay = self.backoff[0]
        while self._on_connect is not None:
            try:
                await self._on_connect()
                break
            except (*CONNECTION_ERRORS, BinanceError) as exc:
                self.catchup_errors += 1
                self.catchup_failures += 1
                self.last_catchup_error = f"{type(exc).__name__}: {exc}"[:300]
                log.warning("catch-up failed (%s): retrying in %.1fs", exc, delay, extra=self._extra())
                await anyio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff[1])
        self.catchups += 1
        if self.failed_attempts or self.catchup_failures:
            log.warning(
                "user data stream ready again after %.1fs (%d failed attempts, %d failed catch-ups)",
                (time.time_ns() - self.down_since_ns) / 1e9,
                self.failed_attempts,
                self.catchup_failures,
                extra=self._extra(),
            )
        self.down_since_ns, self.failed_attempts, self.catchup_failures = 0, 0, 0
        self._ready.set()

    async def _watchdog(self, tg: TaskGroup) -> None:
        """Leave before the venue's 24 h cut; drop a silent peer."""
        opened = time.monotonic()
        period = min(self.max_session_s, self.silence_timeout_s or self.max_session_s) / 4
        while True:
            await anyio.sleep(max(period, 0.01))
            now = time.monotonic()
            if now - opened >= self.max_session_s:
                self._drop_reason = f"session is {self.max_session_s:g}s old: renewing before the 24h cut"
                break
            if self.silence_timeout_s is not None and now - self._last_frame > self.silence_timeout_s:
                self._drop_reason = f"silent peer: no frame for {self.silence_timeout_s:g}s"
                break
        tg.cancel_scope.cancel()

    async def _keepalive(self, listen_key: str, tg: TaskGroup) -> None:
        """``PUT`` the key every ``keepalive_s``; a key the venue no longer knows ends the connection."""
        assert self._listen_key_api is not None
        while True:
            await anyio.sleep(self.keepalive_s)
            try:
                await self._listen_key_api("PUT", listen_key)
                self.keepalives += 1
            except BinanceRejected as exc:  # the venue answered no (-1125: no such key): a new one
                self._drop_reason = f"listenKey keep-alive refused ({exc}): a new key"
                break
            except BinanceError as exc:  # not reached: the next keep-alive may be; the key lasts 60 min
                log.warning("listenKey keepalive failed: %s", exc, extra=self._extra())
        tg.cancel_scope.cancel()

    # --- frames -----------------------------------------------------------------------------

    def decode(self, raw: bytes | str) -> UserEvent | None:
        """One frame to its event; ``None`` for replies, unknown events and rejected frames."""
        try:
            env = USER_ENVELOPE_DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            return self._reject("bad_envelope", str(exc))
        except msgspec.DecodeError as exc:
            return self._reject("malformed_json", str(exc))
        if env.e is not None:
            body: bytes | str | msgspec.Raw = raw  # listenKey stream: the frame is the event
        elif env.event:
            body = env.event
        else:
            if env.error is not None:
                return self._reject("venue_error", f"code {env.error.code}: {env.error.msg}")
            return None  # a reply to a request
        try:
            kind = EVENT_TYPE_DECODER.decode(body).e
            decoder = EVENT_DECODERS.get(kind)
            if decoder is None:
                self.ignored += 1
                return None
            event = decoder.decode(body)
        except msgspec.ValidationError as exc:
            return self._reject("bad_payload", str(exc))
        except msgspec.DecodeError as exc:
            return self._reject("malformed_json", str(exc))
        bad = check_event(event)
        if bad:
            return self._reject("bad_value", f"{kind}: {bad}")
        self.events[kind] = self.events.get(kind, 0) + 1
        return event

    def _reject(self, reason: str, detail: str) -> UserEvent | None:
        """Count and (rate-limited) log a rejected frame; always ``None`` (``return self._reject(...)``)."""
        n = self.rejected.get(reason, 0) + 1
        self.rejected[reason] = n
        now = time.monotonic()
        if n <= 10 or now - self._log_budget.get(reason, 0.0) > 10.0:
            self._log_budget[reason] = now
            log.warning(
                "user data frame rejected (%s, #%d): %s", reason, n, detail[:200], extra=self._extra()
            )
        return None

    def _extra(self) -> dict[str, str]:
        return {"component": COMPONENT, "exchange": self.exchange, "symbol": "*", "conn": self.mode}
