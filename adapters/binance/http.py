"""Binance spot REST client: signed requests, the server clock, rate limits and typed errors.

:class:`BinanceHttpClient` (aiohttp) owns one REST session per account.  Every reply either
decodes into a tolerant wire Struct or raises a :class:`BinanceError` subclass; nothing else
escapes but cancellation.

- Clock: the offset to Binance's clock is measured with ``GET /api/v3/time`` (corrected by half the
  round trip), refreshed every ``time_sync_interval_s``, and on ``-1021`` (timestamp outside
  recvWindow) re-measured before the request is retried once.  It lives in a
  :class:`~adapters.binance.server_clock.ServerClock` (``clock=``) that every REST client of the
  account and its user data stream share, so all of them sign with the same venue-synced time;
  :meth:`BinanceHttpClient.ensure_clock` measures it when due (or forced).
- Rate limits (spot docs, "LIMITS"): :class:`RateLimiter` keeps Binance's fixed windows, aligned
  to server time, for REQUEST_WEIGHT, ORDERS and RAW_REQUESTS (limits from exchangeInfo
  ``rateLimits``), counts each request before it leaves and takes the venue's
  ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*`` headers as the floor; a request that would
  exceed a limit waits for the next window.  The limiter is the venue host's, shared by every client
  of the process (:func:`~adapters.binance.ratelimit.shared_limiter`: Binance counts weight per IP),
  unless ``limiter=`` gives one; background calls (the feed's snapshots) leave the order path a
  reserve of each window.  429: wait ``Retry-After`` (or back off) and retry.
  418: the IP is banned; every request fails fast with :class:`BinanceBanned`, without touching
  the network, until ``Retry-After`` has passed.
- Orders: "HTTP 5XX ... the execution status is UNKNOWN and could have been a success" (spot docs,
  "HTTP Return Codes"), as are -1000/-1001/-1006/-1007, timeouts, disconnects and an unreadable
  2xx reply.  For a call that may create an order these raise :class:`OutcomeUnknown`; the caller
  queries by client order id (:meth:`BinanceHttpClient.resolve_unknown`), never re-sends.
- Health: every request that leaves is recorded in the account's
  :class:`~adapters.binance.venue_health.RestHealth` (``health=``): a reply, or a failure by reason;
  :meth:`BinanceHttpClient.ping` is the cheapest request there is (weight 1), for probing.

The errors live in :mod:`adapters.binance.errors`, the rate-limit windows in
:mod:`adapters.binance.ratelimit` and the reply Structs in :mod:`adapters.binance.replies`; they are
re-exported here, so ``from adapters.binance.http import ...`` keeps working for all of them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, NoReturn, TypeVar

import aiohttp
import anyio
import msgspec
from yarl import URL

from actors.histogram import ON_WIRE
from adapters.binance.errors import (
    UNKNOWN_CODES,
    BinanceBadReply,
    BinanceBanned,
    BinanceCancelReplaceFailed,
    BinanceConnectionError,
    BinanceError,
    BinanceOrderRejected,
    BinanceParameterError,
    BinanceRateLimited,
    BinanceRejected,
    BinanceServerError,
    BinanceSignatureError,
    BinanceTimestampError,
    BinanceUnknownOrder,
    OutcomeUnknown,
    error_for,
)
from adapters.binance.filters import BinanceNewOrder
from adapters.binance.orders import BinanceNewOco
from adapters.binance.ratelimit import DEFAULT_LIMITS, RateLimiter, shared_limiter
from adapters.binance.replies import (
    BinanceAccount,
    BinanceAccountTrade,
    BinanceBalance,
    BinanceCancelReplaceReply,
    BinanceErrorBody,
    BinanceFill,
    BinanceOrderListReply,
    BinanceOrderReply,
    BinanceServerTime,
)
from adapters.binance.schemas import BinanceDepthSnapshot, BinanceExchangeInfo
from adapters.binance.server_clock import ServerClock
from adapters.binance.signing import HmacSigner, ParamValue, Signer, encode_params, sign_params
from adapters.binance.venue_health import RestHealth
from daemon.logs import register_secret

__all__ = [
    "DEFAULT_LIMITS",
    "BinanceAccount",
    "BinanceAccountTrade",
    "BinanceBadReply",
    "BinanceBalance",
    "BinanceBanned",
    "BinanceCancelReplaceFailed",
    "BinanceCancelReplaceReply",
    "BinanceConnectionError",
    "BinanceError",
    "BinanceFill",
    "BinanceHttpClient",
    "BinanceHttpStatistics",
    "BinanceOrderRejected",
    "BinanceOrderReply",
    "BinanceParameterError",
    "BinanceRateLimited",
    "BinanceRejected",
    "BinanceServerError",
    "BinanceSignatureError",
    "BinanceTimestampError",
    "BinanceUnknownOrder",
    "OutcomeUnknown",
    "RateLimiter",
    "depth_weight",
]

log = logging.getLogger("tradingd.binance.http")
T = TypeVar("T")
_BAN_DEFAULT_S = 120.0  # Binance bans last 2 minutes to 3 days; assume the shortest if unsaid.
_KEY_REFUSED = frozenset({-2015, -1022})  # key/IP/permission refused, signature not valid


class BinanceHttpStatistics(msgspec.Struct, frozen=True):
    requests: int
    throttled: int
    throttled_s: float
    rate_limited: int
    bans: int
    banned_until_ms: int
    clock_syncs: int
    clock_offset_ms: float
    used_weight: int


# --- the client -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Call:
    method: str
    path: str
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    weight: int = 1
    signed: bool = False
    orders: int = 0
    symbol: str = ""
    order_id: str = ""  # client order id this call may create: failures are OutcomeUnknown
    keyed: bool = False  # sends X-MBX-APIKEY without a signature (listenKey endpoints)
    background: bool = False  # market data: leaves the order path its reserve of the weight windows


def depth_weight(limit: int) -> int:
    """The request weight of a depth snapshot of ``limit`` levels (spot docs, GET /api/v3/depth)."""
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return max(float(headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


def _error_body(body: bytes) -> BinanceErrorBody | None:
    try:
        return msgspec.json.decode(body, type=BinanceErrorBody)
    except msgspec.MsgspecError:
        return None


def _snippet(body: bytes) -> str:
    return " ".join(body[:160].decode(errors="replace").split()) or "(empty body)"


class BinanceHttpClient:
    """Binance spot REST (``https://api.binance.com``, testnet ``https://testnet.binance.vision``).

    Use as ``async with BinanceHttpClient(url, key, secret) as client:``; a ``str`` secret signs
    with HMAC-SHA256, a :class:`Signer` (e.g. :class:`~adapters.binance.signing.Ed25519Signer`)
    with its own scheme.  Pass ``session`` to share one aiohttp session (it is then not closed).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        secret: str | Signer,
        *,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        time_sync_interval_s: float = 300.0,
        max_wait_s: float = 65.0,
        max_retries: int = 2,
        session: aiohttp.ClientSession | None = None,
        conn: str = "rest",
        health: RestHealth | None = None,
        clock: ServerClock | None = None,
        limiter: RateLimiter | None = None,
    ) -> None:
        if api_key:
            register_secret(api_key)
        self._base = base_url.rstrip("/")
        self._api_key = api_key
        self._signer = HmacSigner(secret) if isinstance(secret, str) else secret
        self._recv_window_ms, self._timeout_s = recv_window_ms, timeout_s
        self._sync_interval_s = time_sync_interval_s
        self._max_wait_s, self._max_retries = max_wait_s, max_retries
        self._session, self._owns_session = session, session is None
        self._x = {"component": "binance.http", "exchange": "binance", "conn": conn}
        self.limiter = limiter if limiter is not None else shared_limiter(base_url)
        self.health = health
        self.clock = clock if clock is not None else ServerClock()
        self._n = {"requests": 0, "throttled": 0, "rate_limited": 0, "bans": 0, "clock_syncs": 0}
        self._throttled_s, self._consecutive_429 = 0.0, 0

    async def __aenter__(self) -> BinanceHttpClient:
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

    def statistics(self) -> BinanceHttpStatistics:
        n, lim = self._n, self.limiter
        return BinanceHttpStatistics(
            requests=n["requests"],
            throttled=n["throttled"],
            throttled_s=self._throttled_s,
            rate_limited=n["rate_limited"],
            bans=n["bans"],
            banned_until_ms=lim.banned_until_ms,
            clock_syncs=n["clock_syncs"],
            clock_offset_ms=self.clock.offset_ms,
            used_weight=lim.used(),
        )

    def now_ms(self) -> int:
        """Our estimate of Binance's clock."""
        return self.clock.now_ms()

    # --- endpoints -------------------------------------------------------------------------

    async def sync_time(self) -> None:
        """Measure the offset to the server clock, corrected by half the round trip."""
        t0 = time.time() * 1000
        reply = await self._get(_Call("GET", "/api/v3/time"), BinanceServerTime)
        t1 = time.time() * 1000
        self.clock.update(reply.serverTime, t0, t1)
        self._n["clock_syncs"] += 1

    async def ensure_clock(self, force: bool = False) -> None:
        """Measure the (shared) server clock if it is due, or now with ``force``."""
        async with self.clock.lock:
            if force or self.clock.due(self._sync_interval_s):
                await self.sync_time()

    async def ping(self) -> None:
        """``GET /api/v3/ping`` (weight 1): is REST reachable?  Raises a BinanceError if not."""
        await self._get(_Call("GET", "/api/v3/ping"), dict[str, object])

    async def exchange_info(self, *, background: bool = False) -> BinanceExchangeInfo:
        """Symbols and filters; the reply's ``rateLimits`` become the limiter's limits."""
        call = _Call("GET", "/api/v3/exchangeInfo", weight=20, background=background)
        info = await self._get(call, BinanceExchangeInfo)
        if info.rateLimits:
            self.limiter.configure(info.rateLimits)
        return info

    async def depth(self, symbol: str, limit: int = 100, *, background: bool = False) -> BinanceDepthSnapshot:
        """``GET /api/v3/depth``: weight 5 up to 100 levels, 25 to 500, 50 to 1000, 250 to 5000."""
        params: dict[str, ParamValue] = {"symbol": symbol, "limit": limit}
        weight = depth_weight(limit)
        call = _Call("GET", "/api/v3/depth", params, weight, symbol=symbol, background=background)
        return await self._get(call, BinanceDepthSnapshot)

    async def new_order(
        self, order: BinanceNewOrder, resp_type: Literal["ACK", "RESULT", "FULL"] = "FULL"
    ) -> BinanceOrderReply:
        """``POST /api/v3/order``: raises OutcomeUnknown when the venue may or may not have it."""
        params = {**self._order_params(order), "newOrderRespType": resp_type}
        call = _Call("POST", "/api/v3/order", params, 1, True, 1, order.symbol, order.newClientOrderId)
        return await self._get(call, BinanceOrderReply)

    async def cancel_order(self, symbol: str, client_order_id: str) -> BinanceOrderReply:
        params = {"symbol": symbol, "origClientOrderId": client_order_id}
        return await self._get(
            _Call("DELETE", "/api/v3/order", params, 1, True, symbol=symbol), BinanceOrderReply
        )

    async def cancel_replace(
        self, cancel_client_order_id: str, order: BinanceNewOrder, mode: str = "STOP_ON_FAILURE"
    ) -> BinanceCancelReplaceReply:
        """Cancel ``cancel_client_order_id`` and place ``order`` in one request (new order: see new_order)."""
        params: dict[str, ParamValue] = {
            "cancelReplaceMode": mode,
            "cancelOrigClientOrderId": cancel_client_order_id,
        }
        params |= self._order_params(order)
        path = "/api/v3/order/cancelReplace"
        call = _Call("POST", path, params, 1, True, 1, order.symbol, order.newClientOrderId)
        return await self._get(call, BinanceCancelReplaceReply)

    async def new_oco(self, oco: BinanceNewOco) -> BinanceOrderListReply:
        """``POST /api/v3/orderList/oco`` (weight 1, two orders): an OCO pair; like new_order, an
        unknown outcome raises OutcomeUnknown (for ``listClientOrderId``).  Only on a symbol whose
        exchangeInfo says ``ocoAllowed`` (:attr:`~adapters.binance.filters.SymbolRules.oco_allowed`)."""
        fields = msgspec.structs.asdict(oco)
        params: dict[str, ParamValue] = {k: v for k, v in fields.items() if v is not None}
        params["newOrderRespType"] = "FULL"
        path = "/api/v3/orderList/oco"
        call = _Call("POST", path, params, 1, True, 2, oco.symbol, oco.listClientOrderId)
        return await self._get(call, BinanceOrderListReply)

    async def cancel_order_list(self, symbol: str, list_client_order_id: str) -> BinanceOrderListReply:
        """``DELETE /api/v3/orderList``: cancel both legs of an OCO."""
        params: dict[str, ParamValue] = {"symbol": symbol, "listClientOrderId": list_client_order_id}
        call = _Call("DELETE", "/api/v3/orderList", params, 1, True, symbol=symbol)
        return await self._get(call, BinanceOrderListReply)

    async def query_order(
        self, symbol: str, client_order_id: str = "", *, order_id: int | None = None
    ) -> BinanceOrderReply:
        """``GET /api/v3/order`` by client order id, or by the venue's ``order_id``."""
        params: dict[str, ParamValue] = {"symbol": symbol}
        if order_id is not None:
            params["orderId"] = order_id
        else:
            params["origClientOrderId"] = client_order_id
        return await self._get(
            _Call("GET", "/api/v3/order", params, 4, True, symbol=symbol), BinanceOrderReply
        )

    async def open_orders(self, symbol: str | None = None) -> list[BinanceOrderReply]:
        params: dict[str, ParamValue] = {"symbol": symbol} if symbol else {}
        call = _Call("GET", "/api/v3/openOrders", params, 6 if symbol else 80, True, symbol=symbol or "")
        return await self._get(call, list[BinanceOrderReply])

    async def account(self) -> BinanceAccount:
        return await self._get(_Call("GET", "/api/v3/account", weight=20, signed=True), BinanceAccount)

    async def my_trades(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_time_ms: int | None = None,
        limit: int = 500,
    ) -> list[BinanceAccountTrade]:
        """``GET /api/v3/myTrades``: an order's trades, trades from id ``from_id`` on, or since a time."""
        params: dict[str, ParamValue] = {"symbol": symbol, "limit": limit}
        if order_id is not None:
            params["orderId"] = order_id
        if from_id is not None:
            params["fromId"] = from_id
        if start_time_ms is not None:
            params["startTime"] = start_time_ms
        call = _Call("GET", "/api/v3/myTrades", params, 20, True, symbol=symbol)
        return await self._get(call, list[BinanceAccountTrade])

    async def listen_key(self, method: Literal["POST", "PUT"], listen_key: str = "") -> str:
        """Deprecated listenKey user stream: ``POST`` a new key, ``PUT`` to keep ``listen_key`` alive."""
        params: dict[str, ParamValue] = {"listenKey": listen_key} if method == "PUT" else {}
        call = _Call(method, "/api/v3/userDataStream", params, 2, keyed=True)
        reply = await self._get(call, dict[str, str])
        return reply.get("listenKey", listen_key)

    async def resolve_unknown(
        self, symbol: str, client_order_id: str, *, deadline_ms: int = 0, margin_ms: int = 500
    ) -> BinanceOrderReply | None:
        """The order's state after an OutcomeUnknown, or ``None``: it does not exist and never will.

        "Not found" is only final once the venue would refuse the original request (its
        ``deadline_ms`` plus ``margin_ms`` for clock error); until then the query is repeated.
        """
        while True:
            try:
                return await self.query_order(symbol, client_order_id)
            except BinanceUnknownOrder:
                wait_ms = deadline_ms + margin_ms - self.now_ms()
                if wait_ms <= 0:
                    return None
                await anyio.sleep(wait_ms / 1000)

    # --- request machinery -----------------------------------------------------------------

    @staticmethod
    def _order_params(order: BinanceNewOrder) -> dict[str, ParamValue]:
        fields = msgspec.structs.asdict(order)
        return {k: v for k, v in fields.items() if v is not None}

    async def _get(self, call: _Call, tp: type[T]) -> T:
        body = await self._call(call)
        try:
            return msgspec.json.decode(body, type=tp)
        except msgspec.MsgspecError as exc:
            if self.health is not None:
                self.health.failure("bad_reply", f"HTTP 200 on {call.path}: unreadable reply ({exc})")
            if call.order_id:  # the venue answered 2xx: the request was executed
                raise self._unknown(call, f"unreadable reply ({exc})", 0) from exc
            raise BinanceBadReply(f"HTTP 200 on {call.path}: unreadable reply ({exc})", status=200) from exc

    async def _call(self, call: _Call) -> bytes:
        resynced, retries = False, 0
        while True:
            try:
                return await self._attempt(call)
            except BinanceTimestampError:
                if resynced:
                    raise
                resynced = True
                log.warning("timestamp outside recvWindow: resyncing the clock", extra=self._extra(call))
                await self.sync_time()
            except BinanceRateLimited as exc:
                retries += 1  # a 429 was not executed: retry once its Retry-After has passed
                if exc.status != 429 or retries > self._max_retries:
                    raise

    async def _attempt(self, call: _Call) -> bytes:
        if call.signed:
            await self.ensure_clock()
        await self._throttle(call)
        stamp = self.now_ms()
        query = encode_params(call.params)
        if call.signed:
            query = sign_params(
                call.params, self._signer, timestamp_ms=stamp, recv_window_ms=self._recv_window_ms
            )
        url = URL(f"{self._base}{call.path}" + (f"?{query}" if query else ""), encoded=True)
        headers = {"X-MBX-APIKEY": self._api_key} if call.signed or call.keyed else {}
        assert self._session is not None, "use the client as `async with BinanceHttpClient(...)`"
        self._n["requests"] += 1
        token = self.health.sent() if self.health is not None else 0
        if call.order_id and (on_wire := ON_WIRE.get()) is not None:
            ON_WIRE.set(None)  # once: a retry of this order is not another frame's latency
            on_wire()
        started = time.perf_counter()
        try:
            with anyio.fail_after(self._timeout_s):
                async with self._session.request(call.method, url, headers=headers) as resp:
                    status, reply_headers, body = resp.status, resp.headers, await resp.read()
            if self.health is not None:
                self.health.round_trip(call.method, call.path, time.perf_counter() - started)
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            if self.health is not None:
                reason = "timeout" if isinstance(exc, TimeoutError) else "connection"
                self.health.failure(reason, f"{call.method} {call.path}: {type(exc).__name__} {exc}".strip())
            if call.order_id:
                raise self._unknown(call, f"{type(exc).__name__}: {exc}", stamp) from exc
            raise BinanceConnectionError(f"{call.method} {call.path}: {type(exc).__name__} {exc}") from exc
        finally:
            if self.health is not None:
                self.health.answered(token)
        self.limiter.observe(reply_headers, self.now_ms())
        try:
            self._check(call, status, reply_headers, body, stamp)
        except BinanceError as exc:
            self._record(call, status, exc)
            raise
        self._record(call, status, None)
        return body

    def _record(self, call: _Call, status: int, exc: BinanceError | None) -> None:
        """This reply's verdict on the venue's health (see :mod:`adapters.binance.venue_health`)."""
        health = self.health
        if health is None:
            return
        lim = self.limiter
        limit = max((w.limit for w in lim.windows if w.kind == "REQUEST_WEIGHT"), default=0)
        health.limits(lim.used(), limit, lim.banned_until_ms)
        if exc is None:
            health.ok(signed=call.signed)
            return
        code = exc.code
        text = f"{call.method} {call.path}: {exc}"
        if status == 418:
            health.failure("banned", text)
        elif status == 429:
            health.failure("rate_limited", text)
        elif status >= 500 or code in UNKNOWN_CODES:
            health.failure("server_error", text)
        else:  # the venue answered and refused this request: it is reachable
            health.ok()
            if (call.signed or call.keyed) and code in _KEY_REFUSED:
                health.refused_key(text)

    async def _throttle(self, call: _Call) -> None:
        while True:
            now = self.now_ms()
            if (ban_ms := self.limiter.banned_until_ms - now) > 0:
                banned = BinanceBanned(
                    f"IP banned for another {ban_ms / 1000:.1f}s: request not sent", status=418
                )
                banned.until_ms = self.limiter.banned_until_ms
                raise banned
            delay_ms = self.limiter.delay_ms(call.weight, call.orders, now, background=call.background)
            if delay_ms <= 0:
                self.limiter.acquire(call.weight, call.orders, now)
                return
            if delay_ms > self._max_wait_s * 1000:
                raise BinanceRateLimited(f"rate limit: would wait {delay_ms / 1000:.1f}s: request not sent")
            self._n["throttled"] += 1
            self._throttled_s += delay_ms / 1000
            await anyio.sleep(delay_ms / 1000)

    def _check(self, call: _Call, status: int, headers: Mapping[str, str], body: bytes, stamp: int) -> None:
        if 200 <= status < 300:
            self._consecutive_429 = 0
            return
        err = _error_body(body)
        code, msg = (err.code, err.msg) if err else (None, _snippet(body))
        if status in (418, 429):
            self._limited(call, status, _retry_after(headers), code, msg)
        if call.order_id and (status >= 500 or code in UNKNOWN_CODES):
            raise self._unknown(call, f"HTTP {status} code {code}: {msg}", stamp, status)
        exc = error_for(status, code, msg)
        if isinstance(exc, BinanceCancelReplaceFailed):
            exc.data = (err.data or {}) if err else {}
        raise exc

    def _limited(
        self, call: _Call, status: int, retry_after: float | None, code: int | None, msg: str
    ) -> NoReturn:
        now = self.now_ms()
        text = f"HTTP {status} code {code}: {msg}"
        if status == 418:
            self._n["bans"] += 1
            self.limiter.banned_until_ms = now + int((retry_after or _BAN_DEFAULT_S) * 1000)
            log.error("IP banned by Binance for %ss: %s", retry_after, msg, extra=self._extra(call))
            banned = BinanceBanned(text, status=418, code=code)
            banned.until_ms = self.limiter.banned_until_ms
            raise banned
        self._n["rate_limited"] += 1
        self._consecutive_429 += 1
        backoff = retry_after if retry_after is not None else min(2.0**self._consecutive_429, 60.0)
        self.limiter.blocked_until_ms = max(self.limiter.blocked_until_ms, now + int(backoff * 1000))
        log.warning("rate limited (429): backing off %.1fs: %s", backoff, msg, extra=self._extra(call))
        raise BinanceRateLimited(text, status=429, code=code)

    def _unknown(self, call: _Call, reason: str, stamp: int, status: int = 0) -> OutcomeUnknown:
        log.error("order %s outcome unknown: %s", call.order_id, reason, extra=self._extra(call))
        deadline = stamp + self._recv_window_ms if stamp else 0
        message = f"{call.method} {call.path} {call.order_id}: outcome unknown: {reason}"
        return OutcomeUnknown(
            message, symbol=call.symbol, client_order_id=call.order_id, deadline_ms=deadline, status=status
        )

    def _extra(self, call: _Call) -> dict[str, str]:
        return {**self._x, "symbol": call.symbol}
