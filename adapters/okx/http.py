"""OKX v5 spot REST client: signed requests, the server clock, per-endpoint limits, typed errors.

:class:`OkxHttpClient` (aiohttp) is one account's REST session.  Every reply either decodes into
a tolerant wire Struct (:mod:`adapters.okx.replies`) or raises an
:class:`~adapters.okx.errors.OkxError`; nothing else escapes but cancellation.

- Signing (:mod:`adapters.okx.signing`): ``OK-ACCESS-KEY`` / ``-SIGN`` / ``-TIMESTAMP`` /
  ``-PASSPHRASE`` over ``timestamp + method + path?query + body``; ``x-simulated-trading: 1`` for
  demo trading.  The timestamp is OKX's clock as measured with ``GET /api/v5/public/time``
  (corrected by half the round trip, :class:`OkxClock`, re-measured every
  ``time_sync_interval_s``); a ``50102`` (timestamp expired) re-measures it and retries once.
- Rate limits: each endpoint's rule (:mod:`adapters.okx.ratelimit`) is waited for before the
  request leaves; a ``50011`` / HTTP 429 blocks the rule for a window and the request, which OKX
  did not execute, is retried (at most ``max_retries`` times).  Counted in :meth:`statistics`.
- Retries: a read (a GET: order details, pending orders, fills, balances, time) that meets a 5xx,
  ``50001`` / ``50013`` / ``50026``, a timeout or a broken connection is retried with exponential
  back-off and jitter (tenacity, ``read_attempts``).  Nothing that changes state is retried that
  way.
- Orders: a place order (or algo order, or amend) whose reply does not say what happened -- a
  5xx, ``50001``, ``50004``, ``50013``, ``50026``, ``51149``, a timeout, a dropped connection, an
  unreadable reply -- raises :class:`~adapters.okx.errors.OkxOutcomeUnknown`; the caller resolves
  it by ``clOrdId`` (:meth:`OkxHttpClient.resolve_unknown`), never re-sends it.  Place and amend
  carry OKX's ``expTime`` header (now + ``expiry_ms``): OKX does not process them after that, so
  an order that is still not found then never will be.
- Health: :meth:`OkxHttpClient.problem` says since when REST has been failing (for readiness).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import anyio
import msgspec
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from yarl import URL

from actors.histogram import ON_WIRE
from actors.timefmt import iso_utc
from adapters.okx.errors import (
    RATE_LIMIT_CODES,
    UNKNOWN_CODES,
    OkxBadReply,
    OkxConnectionError,
    OkxError,
    OkxOutcomeUnknown,
    OkxRateLimited,
    OkxServerError,
    OkxTimestampError,
    OkxUnknownOrder,
    error_for,
)
from adapters.okx.orders import OkxNewAlgo, OkxNewOrder
from adapters.okx.ratelimit import OkxRateLimiter, shared_limiter
from adapters.okx.replies import (
    OkxAlgoAck,
    OkxAlgoOrder,
    OkxBalance,
    OkxEnvelope,
    OkxFill,
    OkxOrder,
    OkxOrderAck,
    OkxServerTime,
    ms,
)
from adapters.okx.signing import OkxCredentials, auth_headers

__all__ = ["OkxClock", "OkxHttpClient", "OkxHttpStatistics"]

log = logging.getLogger("tradingd.okx.http")
T = TypeVar("T")
PAGE = 100  # OKX's largest page for orders-pending and fills
TIMESTAMP_WINDOW_MS = 30_000  # OKX refuses a request whose timestamp is further than this from its clock
READ_RETRY_ON = (OkxServerError, OkxConnectionError)


class OkxClock:
    """The offset (ms) of OKX's clock to ours, shared by every signed request of the account."""

    def __init__(self) -> None:
        self.offset_ms = 0.0
        self.synced_at = float("-inf")  # time.monotonic() of the last measurement
        self.syncs = 0
        self.lock = anyio.Lock()

    def now_ms(self) -> int:
        return int(time.time() * 1000 + self.offset_ms)

    def due(self, interval_s: float) -> bool:
        return time.monotonic() - self.synced_at >= interval_s

    def update(self, server_ms: int, sent_ms: float, received_ms: float) -> None:
        self.offset_ms = server_ms - (sent_ms + received_ms) / 2
        self.synced_at = time.monotonic()
        self.syncs += 1


class OkxHttpStatistics(msgspec.Struct, frozen=True):
    requests: int
    throttled: int
    throttled_s: float
    rate_limited: int
    retries: int
    clock_syncs: int
    clock_offset_ms: float
    failures: dict[str, int]
    up: bool
    down_since: str | None
    last_error: str


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    rules: tuple[str, ...]
    params: Mapping[str, str] = field(default_factory=dict)
    body: Any = None  # a dict, or a list (cancel-algos), sent as compact JSON
    inst_id: str = ""
    signed: bool = True
    order_id: str = ""  # the clOrdId / algoClOrdId this call may create: failures are OutcomeUnknown
    expires: bool = False  # carries expTime (place, amend)


class OkxHttpClient:
    """OKX v5 REST (``https://www.okx.com``; demo trading: the same host with ``simulated``).

    Use as ``async with OkxHttpClient(url, credentials) as client:``; pass ``session`` to share an
    aiohttp session (it is then not closed).
    """

    def __init__(
        self,
        base_url: str,
        credentials: OkxCredentials | None,
        *,
        simulated: bool = False,
        timeout_s: float = 10.0,
        expiry_ms: int = 5000,
        time_sync_interval_s: float = 300.0,
        max_wait_s: float = 10.0,
        max_retries: int = 3,
        read_attempts: int = 3,
        retry_s: float = 0.2,
        session: aiohttp.ClientSession | None = None,
        limiter: OkxRateLimiter | None = None,
        clock: OkxClock | None = None,
        conn: str = "rest",
    ) -> None:
        self._base = base_url.rstrip("/")
        self._creds = credentials
        self._simulated = simulated
        self._timeout_s, self.expiry_ms = timeout_s, expiry_ms
        self._sync_interval_s = time_sync_interval_s
        self._max_wait_s, self._max_retries = max_wait_s, max_retries
        self._read_attempts, self._retry_s = read_attempts, retry_s
        self._session, self._owns_session = session, session is None
        key = credentials.api_key if credentials is not None else ""
        self.limiter = limiter if limiter is not None else shared_limiter(base_url, key)
        self.clock = clock if clock is not None else OkxClock()
        self._x = {"component": "okx.http", "exchange": "okx", "conn": conn}
        self._n = {"requests": 0, "throttled": 0, "rate_limited": 0, "retries": 0}
        self._throttled_s = 0.0
        self.failures: dict[str, int] = {}
        self.up, self.down_since_ns, self.last_error = False, time.time_ns(), ""

    async def __aenter__(self) -> OkxHttpClient:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owns_session and self._session is not None:
            with anyio.move_on_after(5, shield=True):
                await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open aiohttp session (for the instrument rules loader)."""
        assert self._session is not None, "use the client as `async with OkxHttpClient(...)`"
        return self._session

    def statistics(self) -> OkxHttpStatistics:
        n = self._n
        return OkxHttpStatistics(
            requests=n["requests"],
            throttled=n["throttled"],
            throttled_s=round(self._throttled_s, 3),
            rate_limited=n["rate_limited"],
            retries=n["retries"],
            clock_syncs=self.clock.syncs,
            clock_offset_ms=self.clock.offset_ms,
            failures=dict(self.failures),
            up=self.up,
            down_since=None if self.up else iso_utc(self.down_since_ns),
            last_error=self.last_error,
        )

    def problem(self, now_ns: int, grace_s: float) -> str | None:
        """Why REST cannot be used now, once that has lasted ``grace_s``; None when it works."""
        if self.up or (now_ns - self.down_since_ns) / 1e9 < grace_s:
            return None
        last = self.last_error or "none yet"
        return f"OKX REST failing since {iso_utc(self.down_since_ns)} (last error: {last})"

    def now_ms(self) -> int:
        """Our estimate of OKX's clock."""
        return self.clock.now_ms()

    # --- clock ---------------------------------------------------------------------------------

    async def sync_time(self) -> None:
        """Measure the offset to OKX's clock (``GET /api/v5/public/time``), less half the round trip."""
        t0 = time.time() * 1000
        reply = await self._one(_Call("GET", "/api/v5/public/time", ("time",), signed=False), OkxServerTime)
        t1 = time.time() * 1000
        server = ms(reply.ts)
        if not server:
            raise OkxBadReply(f"GET /api/v5/public/time: ts {reply.ts!r} is not a time in ms")
        self.clock.update(server, t0, t1)

    async def ensure_clock(self, force: bool = False) -> None:
        async with self.clock.lock:
            if force or self.clock.due(self._sync_interval_s):
                await self.sync_time()

    # --- orders --------------------------------------------------------------------------------

    async def place_order(self, order: OkxNewOrder) -> OkxOrderAck:
        """``POST /api/v5/trade/order``: raises OkxOutcomeUnknown when OKX may or may not have it."""
        body = order.body()
        call = _Call(
            "POST",
            "/api/v5/trade/order",
            ("place_order", "sub_account_orders"),
            body=body,
            inst_id=order.instId,
            order_id=order.clOrdId,
            expires=True,
        )
        return await self._one(call, OkxOrderAck)

    async def cancel_order(self, inst_id: str, *, cl_ord_id: str = "", ord_id: str = "") -> OkxOrderAck:
        """``POST /api/v5/trade/cancel-order`` by ``ordId`` or ``clOrdId``."""
        body = {"instId": inst_id} | ({"ordId": ord_id} if ord_id else {"clOrdId": cl_ord_id})
        return await self._one(
            _Call("POST", "/api/v5/trade/cancel-order", ("cancel_order",), body=body, inst_id=inst_id),
            OkxOrderAck,
        )

    async def amend_order(
        self, inst_id: str, cl_ord_id: str, *, new_sz: str = "", new_px: str = "", req_id: str = ""
    ) -> OkxOrderAck:
        """``POST /api/v5/trade/amend-order`` (the same order, a new size and/or price)."""
        body = {"instId": inst_id, "clOrdId": cl_ord_id, "cxlOnFail": False}
        body |= {k: v for k, v in (("newSz", new_sz), ("newPx", new_px), ("reqId", req_id)) if v}
        call = _Call(
            "POST",
            "/api/v5/trade/amend-order",
            ("amend_order", "sub_account_orders"),
            body=body,
            inst_id=inst_id,
            order_id=cl_ord_id,
            expires=True,
        )
        return await self._one(call, OkxOrderAck)

    async def order_details(self, inst_id: str, *, cl_ord_id: str = "", ord_id: str = "") -> OkxOrder:
        """``GET /api/v5/trade/order``; an order OKX does not know raises OkxUnknownOrder (51603)."""
        params = {"instId": inst_id} | ({"ordId": ord_id} if ord_id else {"clOrdId": cl_ord_id})
        return await self._read(
            _Call("GET", "/api/v5/trade/order", ("order_details",), params, inst_id=inst_id), OkxOrder
        )

    async def pending_orders(self, inst_id: str) -> list[OkxOrder]:
        """``GET /api/v5/trade/orders-pending``: every open order of ``inst_id`` (all pages)."""
        out: list[OkxOrder] = []
        while True:
            params = {"instType": "SPOT", "instId": inst_id, "limit": str(PAGE)}
            if out:
                params["after"] = out[-1].ordId
            call = _Call("GET", "/api/v5/trade/orders-pending", ("orders_pending",), params)
            page = await self._read_list(call, OkxOrder)
            out += page
            if len(page) < PAGE:
                return out

    async def fills(
        self, inst_id: str, *, ord_id: str = "", begin_ms: int = 0, history: bool = False
    ) -> list[OkxFill]:
        """Our fills of ``inst_id`` (of one order, or since ``begin_ms``), newest first, all pages:
        ``GET /api/v5/trade/fills`` (last 3 days) or, with ``history``, ``fills-history`` (3 months)."""
        path, rule = (
            ("/api/v5/trade/fills-history", "fills_history") if history else ("/api/v5/trade/fills", "fills")
        )
        out: list[OkxFill] = []
        while True:
            params = {"instType": "SPOT", "instId": inst_id, "limit": str(PAGE)}
            if ord_id:
                params["ordId"] = ord_id
            if begin_ms:
                params["begin"] = str(begin_ms)
            if out:
                params["after"] = out[-1].billId
            page = await self._read_list(_Call("GET", path, (rule,), params), OkxFill)
            out += page
            if len(page) < PAGE or not page[-1].billId:
                return out

    async def balance(self, ccys: Sequence[str] = ()) -> OkxBalance:
        """``GET /api/v5/account/balance`` (of ``ccys``, or every currency held)."""
        params = {"ccy": ",".join(ccys)} if ccys else {}
        page = await self._read_list(
            _Call("GET", "/api/v5/account/balance", ("balance",), params), OkxBalance
        )
        if not page:
            raise OkxBadReply("GET /api/v5/account/balance: no balance in the reply")
        return page[0]

    # --- algo orders ---------------------------------------------------------------------------

    async def place_algo(self, algo: OkxNewAlgo) -> OkxAlgoAck:
        """``POST /api/v5/trade/order-algo``: as place_order, an unknown outcome is OkxOutcomeUnknown."""
        call = _Call(
            "POST",
            "/api/v5/trade/order-algo",
            ("place_algo",),
            body=algo.body(),
            inst_id=algo.instId,
            order_id=algo.algoClOrdId,
        )
        return await self._one(call, OkxAlgoAck)

    async def cancel_algos(self, items: Sequence[tuple[str, str]]) -> OkxAlgoAck:
        """``POST /api/v5/trade/cancel-algos`` of ``(instId, algoId)`` pairs (OKX takes a JSON array)."""
        body = [{"instId": inst, "algoId": algo_id} for inst, algo_id in items]
        return await self._one(
            _Call("POST", "/api/v5/trade/cancel-algos", ("cancel_algos",), body=body), OkxAlgoAck
        )

    async def algo_details(self, *, algo_cl_ord_id: str = "", algo_id: str = "") -> OkxAlgoOrder:
        """``GET /api/v5/trade/order-algo``; an algo order OKX does not know raises OkxUnknownOrder."""
        params = {"algoId": algo_id} if algo_id else {"algoClOrdId": algo_cl_ord_id}
        return await self._read(
            _Call("GET", "/api/v5/trade/order-algo", ("algo_details",), params), OkxAlgoOrder
        )

    async def algos_pending(self, inst_id: str, ord_type: str = "conditional") -> list[OkxAlgoOrder]:
        """``GET /api/v5/trade/orders-algo-pending`` of ``inst_id`` (one page of 100: stops are few)."""
        params = {"instType": "SPOT", "instId": inst_id, "ordType": ord_type, "limit": str(PAGE)}
        return await self._read_list(
            _Call("GET", "/api/v5/trade/orders-algo-pending", ("algos_pending",), params), OkxAlgoOrder
        )

    async def resolve_unknown(
        self, inst_id: str, cl_ord_id: str, *, deadline_ms: int, algo: bool = False, margin_ms: int = 500
    ) -> OkxOrder | OkxAlgoOrder | None:
        """The order after an OkxOutcomeUnknown, or ``None``: it does not exist and never will.

        "Not found" is only final once OKX would no longer process the request (``deadline_ms``,
        its expTime, plus ``margin_ms`` of clock error); until then the query is repeated.
        """
        while True:
            try:
                if algo:
                    return await self.algo_details(algo_cl_ord_id=cl_ord_id)
                return await self.order_details(inst_id, cl_ord_id=cl_ord_id)
            except OkxUnknownOrder:
                wait_ms = deadline_ms + margin_ms - self.now_ms()
                if wait_ms <= 0:
                    return None
                await anyio.sleep(min(wait_ms, 1000) / 1000)

    # --- request machinery ---------------------------------------------------------------------

    async def _read(self, call: _Call, tp: type[T]) -> T:
        page = await self._read_list(call, tp)
        if not page:
            raise OkxBadReply(f"{call.method} {call.path}: empty data")
        return page[0]

    async def _read_list(self, call: _Call, tp: type[T]) -> list[T]:
        """A GET, retried with back-off on server and connection errors (it changes nothing)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(READ_RETRY_ON),
            stop=stop_after_attempt(self._read_attempts),
            wait=wait_exponential_jitter(multiplier=self._retry_s, max=2.0, jitter=self._retry_s),
            sleep=anyio.sleep,
            reraise=True,
            before_sleep=lambda _: self._count("retries"),
        )
        raw: bytes = await retrying(self._call, call)
        return self._decode(call, raw, tp)

    async def _one(self, call: _Call, tp: type[T]) -> T:
        page = self._decode(call, await self._call(call), tp)
        if not page:
            if call.order_id:
                raise self._unknown(call, "the reply has no data", 200, self.now_ms())
            raise OkxBadReply(f"{call.method} {call.path}: empty data")
        return page[0]

    def _decode(self, call: _Call, raw: bytes, tp: type[T]) -> list[T]:
        try:
            page: list[T] = msgspec.json.decode(raw, type=list[tp])  # type: ignore[valid-type]
            return page
        except msgspec.MsgspecError as exc:
            self._fail("bad_reply", f"{call.method} {call.path}: unreadable data ({exc})")
            if call.order_id:  # OKX said code 0: the request was executed, its reply is garbled
                raise self._unknown(call, f"unreadable data ({exc})", 200, self.now_ms()) from exc
            raise OkxBadReply(f"{call.method} {call.path}: unreadable data ({exc})", status=200) from exc

    async def _call(self, call: _Call) -> bytes:
        """One request, re-measuring the clock once after 50102 and waiting out 50011 (not executed)."""
        resynced, limited = False, 0
        while True:
            try:
                return await self._attempt(call)
            except OkxTimestampError:
                if resynced:
                    raise
                resynced = True
                log.warning("timestamp refused (50102): measuring OKX's clock again", extra=self._extra(call))
                await self.ensure_clock(force=True)
            except OkxRateLimited:
                limited += 1
                if limited > self._max_retries:
                    raise

    async def _attempt(self, call: _Call) -> bytes:
        if call.signed:
            await self.ensure_clock()
        await self._throttle(call)
        query = "&".join(f"{k}={v}" for k, v in call.params.items())
        path = f"{call.path}?{query}" if query else call.path
        body = "" if call.body is None else json.dumps(call.body, separators=(",", ":"))
        stamp = self.now_ms()
        headers = {"Content-Type": "application/json"} if body else {}
        if self._simulated:
            headers["x-simulated-trading"] = "1"
        if call.signed:
            if self._creds is None:
                raise OkxError(f"{call.method} {call.path}: no OKX credentials to sign with")
            headers |= auth_headers(self._creds, stamp, call.method, path, body)
        deadline = stamp + (self.expiry_ms if call.expires else TIMESTAMP_WINDOW_MS)
        if call.expires:
            headers["expTime"] = str(deadline)
        status, raw = await self._send(call, path, body, headers, deadline)
        return self._check(call, status, raw, deadline)

    async def _send(
        self, call: _Call, path: str, body: str, headers: dict[str, str], deadline: int
    ) -> tuple[int, bytes]:
        assert self._session is not None, "use the client as `async with OkxHttpClient(...)`"
        self._n["requests"] += 1
        if call.order_id and (on_wire := ON_WIRE.get()) is not None:
            ON_WIRE.set(None)  # once: the frame -> order latency ends where the bytes leave
            on_wire()
        try:
            with anyio.fail_after(self._timeout_s):
                async with self._session.request(
                    call.method, URL(self._base + path, encoded=True), data=body or None, headers=headers
                ) as resp:
                    return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            reason = "timeout" if isinstance(exc, TimeoutError) else "connection"
            text = f"{call.method} {call.path}: {type(exc).__name__} {exc}".strip()
            self._fail(reason, text)
            if call.order_id:
                raise self._unknown(call, f"{type(exc).__name__}: {exc}", 0, deadline) from exc
            raise OkxConnectionError(text) from exc

    def _check(self, call: _Call, status: int, raw: bytes, deadline: int) -> bytes:
        try:
            env = msgspec.json.decode(raw, type=OkxEnvelope)
        except msgspec.MsgspecError:
            return self._unreadable(call, status, raw, deadline)
        code, msg = env.code, env.msg
        if code == "0" and status < 300:
            self._ok()
            return env.data
        if code in ("1", "2"):  # "All operations failed": each order's own sCode says why
            code, msg = _item_error(env.data) or (code, msg)
        if code in RATE_LIMIT_CODES or status == 429:
            self._count("rate_limited")
            self._fail("rate_limited", f"{call.method} {call.path}: {code} {msg}")
            self.limiter.penalize(self.limiter.keys(call.rules, call.inst_id), time.monotonic())
            log.warning("rate limited (%s %s): waiting a window", code, msg, extra=self._extra(call))
        elif status >= 500 or code in UNKNOWN_CODES:
            self._fail("server_error", f"{call.method} {call.path}: HTTP {status} {code} {msg}")
        else:
            self._ok()  # OKX answered and refused this request: it is reachable
        if call.order_id and (status >= 500 or code in UNKNOWN_CODES):
            raise self._unknown(call, f"HTTP {status} code {code}: {msg}", status, deadline)
        raise error_for(status, code, msg)

    def _unreadable(self, call: _Call, status: int, raw: bytes, deadline: int) -> bytes:
        text = " ".join(raw[:160].decode(errors="replace").split()) or "(empty body)"
        if status == 429:
            self._count("rate_limited")
            self.limiter.penalize(self.limiter.keys(call.rules, call.inst_id), time.monotonic())
            raise OkxRateLimited(f"HTTP 429: {text}", status=429)
        self._fail(
            "server_error" if status >= 500 else "bad_reply",
            f"{call.method} {call.path}: HTTP {status} {text}",
        )
        if call.order_id and (status >= 500 or 200 <= status < 300):
            raise self._unknown(call, f"HTTP {status}: unreadable reply {text}", status, deadline)
        if status >= 500:
            raise OkxServerError(f"HTTP {status}: {text}", status=status)
        raise OkxBadReply(f"HTTP {status} on {call.path}: unreadable reply {text}", status=status)

    async def _throttle(self, call: _Call) -> None:
        keys = self.limiter.keys(call.rules, call.inst_id)
        while True:
            now = time.monotonic()
            delay = self.limiter.delay(keys, now)
            if delay <= 0:
                self.limiter.acquire(keys, now)
                return
            if delay > self._max_wait_s:
                raise OkxRateLimited(
                    f"{call.method} {call.path}: rate limit: would wait {delay:.1f}s: not sent"
                )
            self._n["throttled"] += 1
            self._throttled_s += delay
            await anyio.sleep(delay)

    def _unknown(self, call: _Call, reason: str, status: int, deadline: int) -> OkxOutcomeUnknown:
        log.error("order %s outcome unknown: %s", call.order_id, reason, extra=self._extra(call))
        return OkxOutcomeUnknown(
            f"{call.method} {call.path} {call.order_id}: outcome unknown: {reason}",
            inst_id=call.inst_id,
            client_order_id=call.order_id,
            deadline_ms=deadline,
            status=status,
        )

    def _count(self, name: str) -> None:
        self._n[name] += 1

    def _ok(self) -> None:
        self.up, self.last_error = True, ""

    def _fail(self, reason: str, text: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1
        if self.up:
            self.down_since_ns = time.time_ns()
        self.up, self.last_error = False, text[:300]

    def _extra(self, call: _Call) -> dict[str, str]:
        return {**self._x, "symbol": call.inst_id}


def _item_error(data: msgspec.Raw) -> tuple[str, str] | None:
    """The first per-order ``sCode`` / ``sMsg`` that is not ``"0"`` in a failed reply's data."""
    try:
        items = msgspec.json.decode(data, type=list[dict[str, Any]])
    except msgspec.MsgspecError:
        return None
    for item in items:
        code = item.get("sCode")
        if isinstance(code, str) and code not in ("", "0"):
            return code, str(item.get("sMsg", ""))
    return None
