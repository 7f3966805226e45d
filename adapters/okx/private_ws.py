"""OKX v5 private WebSocket: login, the ``orders`` and ``account`` channels, order ops, reconnects.

:class:`OkxPrivateStream` keeps one logged-in connection to ``wss://ws.okx.com:8443/ws/v5/private``
(demo trading: ``wss://wspap.okx.com:8443/ws/v5/private``) alive forever:

- ``{"op": "login", "args": [{apiKey, passphrase, timestamp, sign}]}`` with the signature of
  ``timestamp + "GET" + "/users/self/verify"`` (timestamp in Unix seconds, OKX's clock as the
  account's REST client measured it); ``60009`` (login failed) or no answer within
  ``connect_timeout_s`` ends the attempt, retried with back-off.
- Then ``subscribe`` ``orders`` (``instType`` SPOT, one arg per ``instId``) and ``account``; an
  ``error`` event in answer (``60018`` no such channel ...) ends the attempt too.
- After every (re)connect ``on_connect`` (the owner's REST catch-up) runs while pushes are already
  read; once it has succeeded the stream is :attr:`~OkxPrivateStream.ready`.  Nothing that
  happened while the socket was down is missed; what both paths report is de-duplicated by the
  owner (fills by ``tradeId``).
- Pushes: every ``orders`` item goes to ``on_order`` (an acknowledgement, a fill with ``tradeId`` /
  ``fillPx`` / ``fillSz`` / ``fillFee``, a cancel), every ``account`` item to ``on_balance``.
- Order ops (:meth:`~OkxPrivateStream.request`): ``{"id", "op": "order" | "cancel-order" |
  "amend-order", "args": [...], "expTime"}``, answered with the same ``id``; the answer's
  ``code`` / ``sCode`` are judged as REST's are.  No answer within ``timeout_s`` or a connection
  lost meanwhile: :class:`~adapters.okx.errors.OkxOutcomeUnknown` for an ``order`` (the owner
  queries it by ``clOrdId``, never re-sends it).  Not logged in: :class:`NotConnected` before
  anything is sent (the owner uses REST instead).  The ops count against the REST rate limits
  (OKX shares them).
- Keep-alive: the text ``ping`` after ``ping_after_s`` without a frame (OKX closes a connection
  silent for 30 s); nothing at all for ``silence_timeout_s`` drops it.
- Hostile frames (not JSON, unknown shapes, bad numbers) are counted by reason in ``rejected``
  and logged at a bounded rate, never raised.

Takes no messages; hands OKX's frames to its owner, :class:`~adapters.okx.execution.OkxExecution`.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from actors.timefmt import iso_utc
from adapters.okx.errors import (
    RATE_LIMIT_CODES,
    UNKNOWN_CODES,
    OkxBadReply,
    OkxConnectionError,
    OkxError,
    OkxOutcomeUnknown,
    error_for,
)
from adapters.okx.ratelimit import OkxRateLimiter
from adapters.okx.replies import OkxBalance, OkxOrder, OkxOrderAck
from adapters.okx.signing import OkxCredentials, login_args

__all__ = ["NotConnected", "OkxPrivateStream", "PrivateStreamStatistics"]

log = logging.getLogger("tradingd.okx.private")
COMPONENT = "okx-private"
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, TimeoutError)
OP_RULES = {
    "order": ("place_order", "sub_account_orders"),
    "cancel-order": ("cancel_order",),
    "amend-order": ("amend_order", "sub_account_orders"),
}


class StreamDropped(Exception):
    """Login or subscription refused, the peer closed, or the watchdog gave up: reconnect."""


class NotConnected(OkxConnectionError):
    """The private WebSocket is not logged in: the op was not sent."""


class _Push(msgspec.Struct, frozen=True):
    arg: dict[str, str] | None = None
    event: str = ""
    op: str = ""
    id: str = ""
    code: str = ""
    msg: str = ""
    data: msgspec.Raw = msgspec.Raw(b"[]")


class PrivateStreamStatistics(msgspec.Struct, frozen=True):
    connected: bool
    ready: bool
    connects: int
    reconnects: int
    logins: int
    login_failures: int
    catchups: int
    catchup_errors: int
    pushes: dict[str, int]
    ops: int
    op_timeouts: int
    pings: int
    pongs: int
    rejected: int
    rejected_by_reason: dict[str, int]
    down_since: str | None
    last_error: str


class _Pending:
    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.reply: _Push | None = None
        self.error = ""


class OkxPrivateStream:
    """One account's private WebSocket; ``run()`` until cancelled, connection failures never raise."""

    def __init__(
        self,
        url: str,
        credentials: OkxCredentials,
        inst_ids: Sequence[str],
        *,
        on_order: Callable[[OkxOrder], Awaitable[None]],
        on_balance: Callable[[OkxBalance], Awaitable[None]],
        on_connect: Callable[[], Awaitable[None]] | None = None,
        before_login: Callable[[], Awaitable[None]] | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        limiter: OkxRateLimiter | None = None,
        ping_after_s: float = 20.0,
        silence_timeout_s: float = 30.0,
        connect_timeout_s: float = 10.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        exchange: str = "okx",
    ) -> None:
        self.url, self._creds, self.inst_ids = url, credentials, tuple(inst_ids)
        self._on_order, self._on_balance, self._on_connect = on_order, on_balance, on_connect
        self._before_login = before_login  # e.g. measure OKX's clock: the login is signed with it
        self._clock_ms, self.limiter = clock_ms, limiter
        self.ping_after_s = min(ping_after_s, silence_timeout_s * 2 / 3)
        self.silence_timeout_s, self.connect_timeout_s = silence_timeout_s, connect_timeout_s
        self.backoff = (backoff_initial_s, backoff_max_s)
        self.exchange = exchange
        counters = ("connects", "reconnects", "logins", "login_failures", "catchups", "catchup_errors")
        self.n = dict.fromkeys((*counters, "ops", "op_timeouts", "pings", "pongs"), 0)
        self.pushes: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tg: TaskGroup | None = None
        self._ready = anyio.Event()
        self._logged_in = False
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._last_frame = 0.0
        self._drop_reason = ""
        self.down_since_ns = time.time_ns()
        self.last_error = ""
        self._log_budget: dict[str, float] = {}

    # --- public --------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._ws is not None and self._logged_in

    @property
    def ready(self) -> bool:
        """Logged in, subscribed, and caught up by REST since the last (re)connect."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def problem(self, now_ns: int, grace_s: float) -> str | None:
        """Why fills cannot be trusted to arrive, once that has lasted ``grace_s``."""
        if self.ready or (now_ns - self.down_since_ns) / 1e9 < grace_s:
            return None
        state = "logged in but not caught up" if self.connected else "not logged in"
        last = self.last_error or "none yet"
        return f"private WebSocket {state} since {iso_utc(self.down_since_ns)} (last error: {last})"

    def drop(self, reason: str) -> None:
        """Drop the current connection (it reconnects and catches up)."""
        if self._tg is not None:
            self._drop_reason = reason
            self._tg.cancel_scope.cancel()

    def statistics(self) -> PrivateStreamStatistics:
        n = self.n
        return PrivateStreamStatistics(
            connected=self.connected,
            ready=self.ready,
            connects=n["connects"],
            reconnects=n["reconnects"],
            logins=n["logins"],
            login_failures=n["login_failures"],
            catchups=n["catchups"],
            catchup_errors=n["catchup_errors"],
            pushes=dict(self.pushes),
            ops=n["ops"],
            op_timeouts=n["op_timeouts"],
            pings=n["pings"],
            pongs=n["pongs"],
            rejected=sum(self.rejected.values()),
            rejected_by_reason=dict(self.rejected),
            down_since=None if self.ready else iso_utc(self.down_since_ns),
            last_error=self.last_error,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, log in, subscribe, catch up, stream; reconnect forever with back-off and jitter."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            task_status.started()
            failures = 0
            while True:
                try:
                    await self._connection(session)
                except (*CONNECTION_ERRORS, StreamDropped) as exc:
                    reason = self._drop_reason or f"{type(exc).__name__}: {exc}"
                    self.last_error = reason[:300]
                    log.warning("okx private stream lost (%s): reconnecting", reason, extra=self._extra())
                finally:
                    was_ready = self._ready.is_set()
                    self._closed()
                failures = 0 if was_ready else failures + 1
                self.n["reconnects"] += 1
                initial, cap = self.backoff
                await anyio.sleep(min(cap, initial * 2 ** min(failures, 30)) * random.uniform(0.5, 1.0))

    async def request(
        self, op: str, arg: dict[str, Any], *, inst_id: str, timeout_s: float, expiry_ms: int = 0
    ) -> OkxOrderAck:
        """One order op; its ack, or the typed error (see the module docstring)."""
        ws = self._ws
        if ws is None or not self._logged_in:
            raise NotConnected(f"okx private WebSocket not logged in: {op} not sent")
        if self.limiter is not None:
            await self._throttle(OP_RULES[op], inst_id)
        request_id = f"{next(self._ids)}"
        message: dict[str, Any] = {"id": request_id, "op": op, "args": [arg]}
        if expiry_ms:
            message["expTime"] = str(self._clock_ms() + expiry_ms)
        deadline = self._clock_ms() + (expiry_ms or 30_000)
        cid = str(arg.get("clOrdId", ""))
        pending = self._pending[request_id] = _Pending()
        try:
            self.n["ops"] += 1
            await ws.send_str(json.dumps(message, separators=(",", ":")))
            with anyio.move_on_after(timeout_s):
                await pending.done.wait()
        except CONNECTION_ERRORS as exc:
            pending.error = f"{type(exc).__name__}: {exc}"
        finally:
            del self._pending[request_id]
        return self._judge(op, cid, inst_id, pending, deadline)

    # --- one connection ------------------------------------------------------------------------

    async def _connection(self, session: aiohttp.ClientSession) -> None:
        if self._before_login is not None:
            await self._before_login()
        with anyio.fail_after(self.connect_timeout_s):
            ws = await session.ws_connect(
                self.url, heartbeat=None, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
            )
        async with ws:
            self._ws, self._last_frame = ws, time.monotonic()
            self.n["connects"] += 1
            await self._login(ws)
            await self._subscribe(ws)
            log.info("okx private stream logged in and subscribed", extra=self._extra())
            async with anyio.create_task_group() as tg:
                self._tg = tg
                tg.start_soon(self._read, ws, tg)
                tg.start_soon(self._watchdog, ws, tg)
                tg.start_soon(self._catch_up)
        raise StreamDropped(self._drop_reason or f"closed ({ws.close_code})")

    async def _login(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        args = login_args(self._creds, self._clock_ms() // 1000)
        await ws.send_str(json.dumps({"op": "login", "args": [args]}))
        push = await self._expect(ws, "login")
        if push.event != "login" or push.code != "0":
            self.n["login_failures"] += 1
            raise StreamDropped(f"login refused: {push.code} {push.msg}")
        self.n["logins"] += 1
        self._logged_in = True

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        args: list[dict[str, str]] = [
            {"channel": "orders", "instType": "SPOT", "instId": i} for i in self.inst_ids
        ]
        args.append({"channel": "account"})
        await ws.send_str(json.dumps({"op": "subscribe", "args": args}))
        for _ in args:
            push = await self._expect(ws, "subscribe")
            if push.event != "subscribe":
                raise StreamDropped(f"subscription refused: {push.code} {push.msg}")

    async def _expect(self, ws: aiohttp.ClientWebSocketResponse, event: str) -> _Push:
        """The next ``event`` (or ``error``) event; pushes meanwhile are handled as usual."""
        with anyio.fail_after(self.connect_timeout_s):
            while True:
                frame = await ws.receive()
                if frame.type is not aiohttp.WSMsgType.TEXT:
                    raise StreamDropped(f"closed while waiting for {event} ({ws.close_code})")
                self._last_frame = time.monotonic()
                push = self._decode(frame.data)
                if push is not None and push.event in (event, "error"):
                    return push
                if push is not None:
                    await self._dispatch(push)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, tg: TaskGroup) -> None:
        try:
            while True:
                frame = await ws.receive()
                if frame.type is aiohttp.WSMsgType.TEXT:
                    self._last_frame = time.monotonic()
                    push = self._decode(frame.data)
                    if push is not None:
                        await self._dispatch(push)
                    continue
                if frame.type is aiohttp.WSMsgType.BINARY:
                    self._reject("bad_envelope", "binary frame")
                    continue
                self._drop_reason = (
                    f"websocket error: {ws.exception()}"
                    if frame.type is aiohttp.WSMsgType.ERROR
                    else f"closed by peer ({ws.close_code})"
                )
                break
        except CONNECTION_ERRORS as exc:
            self._drop_reason = f"{type(exc).__name__}: {exc}"
        tg.cancel_scope.cancel()

    async def _watchdog(self, ws: aiohttp.ClientWebSocketResponse, tg: TaskGroup) -> None:
        pinged = 0.0
        while True:
            await anyio.sleep(max(self.ping_after_s / 4, 0.01))
            now = time.monotonic()
            idle = now - self._last_frame
            if idle > self.silence_timeout_s:
                self._drop_reason = f"silent peer: no frame, not even a pong, for {self.silence_timeout_s:g}s"
                break
            if idle > self.ping_after_s and pinged <= self._last_frame:
                pinged = now
                self.n["pings"] += 1
                await ws.send_str("ping")
        tg.cancel_scope.cancel()

    async def _catch_up(self) -> None:
        """The owner's REST catch-up, retried with back-off until it works; then the stream is ready."""
        delay = self.backoff[0]
        while self._on_connect is not None:
            try:
                await self._on_connect()
                break
            except (*CONNECTION_ERRORS, OkxError) as exc:
                self.n["catchup_errors"] += 1
                self.last_error = f"catch-up failed: {type(exc).__name__}: {exc}"[:300]
                log.warning("okx catch-up failed (%s): retrying in %.1fs", exc, delay, extra=self._extra())
                await anyio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, self.backoff[1])
        self.n["catchups"] += 1
        self.down_since_ns, self.last_error = 0, ""
        self._ready.set()

    def _closed(self) -> None:
        self._ws, self._tg, self._logged_in, self._drop_reason = None, None, False, ""
        for pending in self._pending.values():
            pending.error = "connection lost before the answer"
            pending.done.set()
        if self._ready.is_set():
            self._ready = anyio.Event()
            self.down_since_ns = time.time_ns()

    # --- frames --------------------------------------------------------------------------------

    def _decode(self, text: str) -> _Push | None:
        if text == "pong":
            self.n["pongs"] += 1
            return None
        try:
            return msgspec.json.decode(text, type=_Push)
        except msgspec.ValidationError as exc:
            self._reject("bad_envelope", str(exc))
        except msgspec.DecodeError as exc:
            self._reject("malformed_json", str(exc))
        return None

    async def _dispatch(self, push: _Push) -> None:
        if push.op and push.id:
            pending = self._pending.get(push.id)
            if pending is not None:
                pending.reply = push
                pending.done.set()
            return
        if push.event:
            if push.event == "error":
                self._reject("venue_error", f"{push.code} {push.msg}")
            return
        channel = (push.arg or {}).get("channel", "")
        try:
            if channel == "orders":
                for order in msgspec.json.decode(push.data, type=list[OkxOrder]):
                    await self._on_order(order)
            elif channel == "account":
                for balance in msgspec.json.decode(push.data, type=list[OkxBalance]):
                    await self._on_balance(balance)
            else:
                self._reject("unknown_channel", channel or "no arg")
                return
        except msgspec.MsgspecError as exc:
            self._reject("bad_payload", f"{channel}: {exc}")
            return
        except (OkxBadReply, ArithmeticError) as exc:  # a number OKX should never send
            self._reject("bad_value", f"{channel}: {exc}")
            return
        self.pushes[channel] = self.pushes.get(channel, 0) + 1

    def _judge(self, op: str, cid: str, inst_id: str, pending: _Pending, deadline: int) -> OkxOrderAck:
        reply = pending.reply
        if reply is None:
            self.n["op_timeouts"] += pending.error == ""
            reason = pending.error or "no answer in time"
            if op == "order":
                raise OkxOutcomeUnknown(
                    f"ws {op} {cid}: outcome unknown: {reason}",
                    inst_id=inst_id, client_order_id=cid, deadline_ms=deadline,
                )  # fmt: skip
            raise OkxConnectionError(f"ws {op} {cid}: {reason}")
        try:
            items = msgspec.json.decode(reply.data, type=list[OkxOrderAck])
        except msgspec.MsgspecError:
            items = []
        code, msg = reply.code, reply.msg
        if code in ("1", "2") and items and items[0].sCode != "0":
            code, msg = items[0].sCode, items[0].sMsg
        if code == "0" and items:
            return items[0]
        if op == "order" and (code in UNKNOWN_CODES or code == "0"):
            raise OkxOutcomeUnknown(
                f"ws {op} {cid}: outcome unknown: code {code}: {msg or 'no data'}",
                inst_id=inst_id, client_order_id=cid, deadline_ms=deadline,
            )  # fmt: skip
        if code in RATE_LIMIT_CODES and self.limiter is not None:
            self.limiter.penalize(self.limiter.keys(OP_RULES[op], inst_id), time.monotonic())
        raise error_for(0, code, msg)

    async def _throttle(self, rules: tuple[str, ...], inst_id: str) -> None:
        assert self.limiter is not None
        keys = self.limiter.keys(rules, inst_id)
        while True:
            delay = self.limiter.delay(keys, time.monotonic())
            if delay <= 0:
                self.limiter.acquire(keys, time.monotonic())
                return
            await anyio.sleep(delay)

    def _reject(self, reason: str, detail: str) -> None:
        n = self.rejected[reason] = self.rejected.get(reason, 0) + 1
        now = time.monotonic()
        if n <= 10 or now - self._log_budget.get(reason, 0.0) > 10.0:
            self._log_budget[reason] = now
            log.warning(
                "okx private frame rejected (%s, #%d): %s", reason, n, detail[:200], extra=self._extra()
            )

    def _extra(self) -> dict[str, str]:
        return {
            "component": COMPONENT,
            "exchange": self.exchange,
            "symbol": ",".join(self.inst_ids),
            "conn": "private",
        }
