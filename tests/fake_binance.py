"""A fake Binance spot REST server for tests, on 127.0.0.1 and a free port only.

It behaves like the venue where the adapter's correctness depends on it:
- serves the recorded ``/api/v3/exchangeInfo`` (tests/data/binance/BINANCE.0), optionally with a
  lower REQUEST_WEIGHT limit;
- verifies every signed request as Binance does: ``totalParams`` = raw query string + raw body
  (without ``signature``), HMAC-SHA256 or Ed25519 per API key; ``timestamp < serverTime + 1000``
  and ``serverTime - timestamp <= recvWindow`` else -1021; a bad signature is -1022 (HTTP 400);
- keeps orders: MARKET fills at once at ``market_price``, the other types rest; query, cancel,
  cancel-replace (filters first, then -2022 / 409 -2021 with ``data`` as Binance answers a failed
  half), OCO order lists (``POST /api/v3/orderList/oco`` where exchangeInfo says ``ocoAllowed``,
  knob ``oco_allowed``; one leg filling or triggering expires the other, canceling one leg or
  ``DELETE /api/v3/orderList`` cancels both), open orders, account, my trades, depth from the
  resting orders; ``open_log`` records the open orders after every request and market trade;
- meters request weight per server-clock minute: over the limit -> 429 with Retry-After; a
  request before Retry-After has passed -> 418 and a ban of ``ban_s``;
- injects faults on request (:meth:`FakeBinance.fail_next`): before the request is processed
  (``500-unprocessed``, ``429``, ``418``: no order exists) or after (``500``, ``hang``, ``disconnect``
  ...: the order exists, its reply is lost);
- trades: MARKET fills at once at the symbol's last price (``market_price`` until :meth:`FakeBinance.trade`
  sets one), a crossing LIMIT fills as taker, IOC/FOK leftovers expire, LIMIT_MAKER that would take is
  rejected, the rest rests; :meth:`FakeBinance.trade` replays a market trade that fills resting limits
  (as maker, up to its quantity) and triggers stops; balances move with every fill;
- the WebSocket API user data stream (``/ws-api/v3``): ``userDataStream.subscribe.signature`` (signature
  checked over the sorted parameters, like REST), ``session.logon`` + ``userDataStream.subscribe``,
  ``userDataStream.unsubscribe``; every order change is pushed as an ``executionReport``, every fill also
  as ``outboundAccountPosition``; the deprecated listenKey stream (``POST /api/v3/userDataStream``,
  ``/ws/<listenKey>``) pushes the same bare events; a POST with a key active returns that key
  (:meth:`FakeBinance.expire_listen_keys`: every key expires, ``listenKeyExpired`` on its sockets
  or silently, then -1125 on a keep-alive; :meth:`FakeBinance.keepalives` counts the PUTs,
  ``keepalive_times`` dates them).  Knobs: :meth:`FakeBinance.drop_user_sockets`,
  :meth:`FakeBinance.terminate_user_streams`, ``mute_user_stream`` (events are lost), ``refuse_subscribe``,
  :meth:`FakeBinance.send_user_raw` (hostile frames).
- an outage (:meth:`FakeBinance.go_down` / :meth:`FakeBinance.come_back`, or ``unreachable=True`` from
  the start): every REST request's connection is closed without a reply, every WebSocket handshake
  is refused (HTTP 503) and the user sockets are cut, as when the venue or the route to it is down;
- ``GET /api/v3/ping`` (weight 1, ``{}``), as Binance's connectivity test;
- money moved by others (:meth:`FakeBinance.deposit`: a deposit or withdrawal, pushed as
  ``balanceUpdate`` then ``outboundAccountPosition`` like Binance; :meth:`FakeBinance.manual_trade`:
  a market order sent by another client of the account, e.g. the web app, whose
  ``executionReport`` carries a client order id the daemon never made).

Its clock is the wall clock plus ``skew_ms``, which tests move to provoke -1021.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import itertools
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl

import aiohttp
import anyio
import msgspec
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.binance.filters import BinanceNewOrder, SymbolRules, parse_exchange_info, rules_by_symbol

FIXTURE = Path(__file__).parent / "data" / "binance" / "BINANCE.0"
API_KEY, API_SECRET = "fake-api-key", "fake-api-secret"

Fault = Literal["500", "500-unprocessed", "hang", "disconnect", "garbage", "wrong-json", "html", "429", "418"]
PRE_FAULTS = frozenset({"500-unprocessed", "429", "418"})  # answered before the request is processed

WEIGHTS = {
    ("GET", "/api/v3/ping"): 1,
    ("GET", "/api/v3/time"): 1,
    ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/depth"): 5,
    ("POST", "/api/v3/order"): 1,
    ("DELETE", "/api/v3/order"): 1,
    ("GET", "/api/v3/order"): 4,
    ("POST", "/api/v3/order/cancelReplace"): 1,
    ("POST", "/api/v3/orderList/oco"): 1,
    ("DELETE", "/api/v3/orderList"): 1,
    ("GET", "/api/v3/openOrders"): 6,
    ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/myTrades"): 20,
    ("POST", "/api/v3/userDataStream"): 2,
    ("PUT", "/api/v3/userDataStream"): 2,
}
SIGNED = frozenset(
    k
    for k in WEIGHTS
    if k[1]
    not in ("/api/v3/ping", "/api/v3/time", "/api/v3/exchangeInfo", "/api/v3/depth", "/api/v3/userDataStream")
)
KEYED = frozenset({("POST", "/api/v3/userDataStream"), ("PUT", "/api/v3/userDataStream")})
ORDER_CREATING = frozenset(
    {("POST", "/api/v3/order"), ("POST", "/api/v3/order/cancelReplace"), ("POST", "/api/v3/orderList/oco")}
)
OCO_LIMITS = frozenset({"LIMIT_MAKER", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT"})  # a sell's above leg
OCO_STOPS = frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT"})  # a sell's below leg
OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
EXTRA_FIELDS = {"someFieldBinanceAddsLater": {"nested": [1, 2, 3]}, "anotherNewField": None}


class Reply(Exception):
    """Raised inside a handler: answer with this status and Binance error body."""

    def __init__(
        self, status: int, code: int, msg: str, data: dict[str, Any] | None = None, retry_after_ms: int = 0
    ) -> None:
        super().__init__(msg)
        self.status, self.body = status, {"code": code, "msg": msg} | ({"data": data} if data else {})
        self.headers = {"Retry-After": str(math.ceil(retry_after_ms / 1000))} if retry_after_ms else {}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    params: dict[str, str]
    status: int


@functools.cache
def _fixture() -> tuple[dict[str, Any], dict[str, SymbolRules]]:
    """The recorded exchangeInfo (parsed once per test session) and its symbol rules."""
    body = FIXTURE.read_bytes().split(b"\n", 1)[0].split(b": ", 1)[1]
    return json.loads(body), rules_by_symbol(parse_exchange_info(body))


STOPS = frozenset({"STOP_LOSS", "TAKE_PROFIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"})


def _triggered(order: dict[str, Any], price: Decimal) -> bool:
    """Stop-loss: a sell triggers at or below its stop, a buy at or above; take-profit the other way."""
    stop, loss = Decimal(order["stopPrice"]), order["type"].startswith("STOP_LOSS")
    below = price <= stop
    return below if (order["side"] == "SELL") == loss else price >= stop


def _strip_signature(raw: str) -> str:
    return "&".join(p for p in raw.split("&") if p and not p.startswith("signature="))


def _d(value: Decimal) -> str:
    return format(value, "f")


@dataclass
class FakeBinance:
    """State and behaviour; start it with :func:`open_fake_binance`."""

    hmac_keys: dict[str, str] = field(default_factory=lambda: {API_KEY: API_SECRET})
    ed25519_keys: dict[str, Ed25519PublicKey] = field(default_factory=dict)
    weight_limit: int | None = None
    market_price: Decimal = Decimal("0.00350000")
    ban_s: float = 2.0
    hang_s: float = 30.0
    extra_fields: bool = False
    reject_orders: str = ""  # non-empty: new orders get -2010 with this message
    url: str = ""
    ws_api_url: str = ""
    stream_url: str = ""
    skew_ms: int = 0
    time_lie_ms: int = 0  # /api/v3/time reports its clock off by this much (a resync cannot help)
    seen: list[Seen] = field(default_factory=list)
    # after every request and market trade: (what, open orders as (symbol, cid, type, side, stopPrice))
    open_log: list[tuple[str, list[tuple[str, str, str, str, str]]]] = field(default_factory=list)
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    next_order_error: tuple[int, int, str] | None = None  # the next new order gets this (status, code, msg)
    order_types_extra: frozenset[str] = frozenset()  # e.g. STOP_LOSS, TAKE_PROFIT on every symbol
    oco_allowed: bool = True  # False: exchangeInfo says ocoAllowed false for every symbol (-1013 on an OCO)
    order_lists: dict[str, dict[str, Any]] = field(default_factory=dict)  # OCOs by listClientOrderId
    balances: dict[str, Decimal] = field(
        default_factory=lambda: {"BTC": Decimal("1.00000000"), "LTC": Decimal("10.00000000")}
    )
    commission_rate: Decimal = Decimal(0)  # of the quote notional, charged in commission_asset
    commission_asset: str = "BNB"
    last_prices: dict[str, Decimal] = field(default_factory=dict)
    mute_user_stream: bool = False  # events are lost, as if the socket had been down
    refuse_subscribe: int = 0  # the next N subscriptions are refused (-1022)
    user_subscribers: list[tuple[web.WebSocketResponse, int | None]] = field(default_factory=list)
    user_connections: int = 0
    user_requests: list[dict[str, Any]] = field(default_factory=list)
    user_events: list[dict[str, Any]] = field(default_factory=list)  # every event delivered
    listen_keys: set[str] = field(default_factory=set)
    listen_key_sockets: list[tuple[web.WebSocketResponse, str]] = field(default_factory=list)
    keepalive_times: list[float] = field(default_factory=list)  # time.monotonic() of each accepted PUT
    unreachable: bool = False  # an outage: connections are closed unanswered, handshakes refused
    unanswered: int = 0  # requests dropped by the outage
    _outbox: list[dict[str, Any]] = field(default_factory=list)
    _trade_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1001))
    _faults: list[tuple[str | None, Fault, float]] = field(default_factory=list)
    _window: int = -1
    _used: int = 0
    _limited_until: int = 0
    _banned_until: int = 0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _release: anyio.Event = field(default_factory=anyio.Event)

    def __post_init__(self) -> None:
        info, self.rules = _fixture()
        limits = [dict(r) for r in info["rateLimits"]]  # the rest is shared and never modified
        for rl in limits:
            if rl["rateLimitType"] == "REQUEST_WEIGHT" and self.weight_limit is not None:
                rl["limit"] = self.weight_limit
        self._info = info | {"rateLimits": limits}
        if self.order_types_extra:
            extra = sorted(self.order_types_extra)
            symbols = [sym | {"orderTypes": [*sym["orderTypes"], *extra]} for sym in info["symbols"]]
            self._info |= {"symbols": symbols}
            self.rules = {
                k: dataclasses.replace(r, order_types=r.order_types | self.order_types_extra)
                for k, r in self.rules.items()
            }
        if not self.oco_allowed:
            self._info |= {"symbols": [sym | {"ocoAllowed": False} for sym in self._info["symbols"]]}
            self.rules = {k: dataclasses.replace(r, oco_allowed=False) for k, r in self.rules.items()}
        self.limit = next(r["limit"] for r in limits if r["rateLimitType"] == "REQUEST_WEIGHT")

    # --- what tests use ----------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def fail_next(self, fault: Fault, *, path: str | None = None, retry_after: float = 1.0) -> None:
        """The next request (to ``path``, if given) fails this way."""
        self._faults.append((path, fault, retry_after))

    def add_foreign_weight(self, weight: int) -> None:
        """Weight used by other clients on the same IP: only the X-MBX-USED-WEIGHT header tells."""
        self._count_weight(("GET", "/foreign"), self.now_ms())
        self._used += weight - 1

    def order_requests(self, client_order_id: str) -> int:
        """How many order-creating requests carried this client order id."""
        return sum(
            1
            for s in self.seen
            if (s.method, s.path) in ORDER_CREATING and s.params.get("newClientOrderId") == client_order_id
        )

    def statuses(self) -> list[int]:
        return [s.status for s in self.seen]

    def _record_open(self, after: str) -> None:
        """Note the open orders (every symbol) after a request or a market trade: ``open_log``."""
        snapshot = [
            (o["symbol"], o["clientOrderId"], o["type"], o["side"], o["stopPrice"])
            for o in self.orders.values()
            if o["status"] in OPEN
        ]
        self.open_log.append((after, snapshot))

    def price(self, symbol: str) -> Decimal:
        return self.last_prices.get(symbol, self.market_price)

    async def trade(self, symbol: str, price: Decimal, qty: Decimal | None = None) -> None:
        """A market trade at ``price``: triggers stops, fills crossing resting limits (up to ``qty``)."""
        self.last_prices[symbol] = price
        left = qty
        for order in list(self.orders.values()):
            if order["symbol"] != symbol or order["status"] not in OPEN:
                continue
            if order["type"] in STOPS and not order["isWorking"]:
                if not _triggered(order, price):
                    continue
                order["isWorking"] = True
                self._other_leg_ends(order, "EXPIRED")  # an OCO leg triggered: the other one goes
                if order["type"] in ("STOP_LOSS", "TAKE_PROFIT"):
                    self._execute(order, price, Decimal(order["origQty"]), maker=False)
                    continue
            limit = Decimal(order["price"])
            if (order["side"] == "BUY" and price > limit) or (order["side"] == "SELL" and price < limit):
                continue
            remaining = Decimal(order["origQty"]) - Decimal(order["executedQty"])
            take = remaining if left is None else min(remaining, left)
            if take <= 0:
                break
            self._execute(order, limit, take, maker=True)
            if left is not None:
                left -= take
        self._record_open(f"trade {symbol} {_d(price)}")
        await self.flush_events()

    async def go_down(self) -> None:
        """An outage: nothing is answered (REST connections closed, WebSockets refused and cut)."""
        self.unreachable = True
        await self.drop_user_sockets()

    def come_back(self) -> None:
        """The outage ends: requests and handshakes are answered again."""
        self.unreachable = False

    async def deposit(self, asset: str, amount: Decimal) -> None:
        """A deposit (a withdrawal if negative) made outside the daemon: the balance moves with no order."""
        now = self.now_ms()
        self.balances[asset] = self.balances.get(asset, Decimal(0)) + amount
        self._outbox.append({"e": "balanceUpdate", "E": now, "a": asset, "d": _d(amount), "T": now})
        position = [{"a": asset, "f": _d(self.balances[asset]), "l": "0.00000000"}]
        self._outbox.append({"e": "outboundAccountPosition", "E": now, "u": now, "B": position})
        await self.flush_events()

    async def manual_trade(self, symbol: str, side: Literal["BUY", "SELL"], qty: Decimal) -> str:
        """A market order by another client of the account (the web app): it fills at the market
        price and moves the balances; returns its client order id (``web_...``, not the daemon's)."""
        cid = f"web_{next(self._ids)}"
        order = BinanceNewOrder(symbol=symbol, side=side, type="MARKET", quantity=qty, newClientOrderId=cid)
        self._place(order)
        await self.flush_events()
        return cid

    async def expire_listen_keys(self, *, announce: bool = True) -> list[str]:
        """Every listenKey expires, as when it was not kept alive for 60 min: ``listenKeyExpired`` on
        its sockets (``announce``; without it the key is gone silently and only the next keep-alive
        finds out), which get no event after it; a keep-alive of it is -1125.  Returns the keys."""
        expired = sorted(self.listen_keys)
        self.listen_keys.clear()
        for ws, key in self.listen_key_sockets:
            self.user_subscribers = [(w, s) for w, s in self.user_subscribers if w is not ws]
            if not announce:
                continue
            try:
                await ws.send_str(json.dumps({"e": "listenKeyExpired", "E": self.now_ms(), "listenKey": key}))
            except ConnectionResetError:
                continue
        return expired

    def keepalives(self) -> int:
        """How many listenKey keep-alives (``PUT /api/v3/userDataStream``) were answered 200."""
        put = ("PUT", "/api/v3/userDataStream", 200)
        return sum(1 for s in self.seen if (s.method, s.path, s.status) == put)

    async def drop_user_sockets(self) -> None:
        """Cut every user data stream socket (no close frame)."""
        for ws, _ in self.user_subscribers:
            await ws.close(code=1011)
        self.user_subscribers.clear()

    async def terminate_user_streams(self) -> None:
        """Send eventStreamTerminated on every subscription and end them (sockets stay open)."""
        for ws, sid in self.user_subscribers:
            event = {"e": "eventStreamTerminated", "E": self.now_ms()}
            await ws.send_str(json.dumps(event if sid is None else {"subscriptionId": sid, "event": event}))
        self.user_subscribers.clear()

    async def send_user_raw(self, frame: str) -> None:
        """A raw (hostile) frame on every subscribed user socket."""
        for ws, _ in self.user_subscribers:
            await ws.send_str(frame)

    async def flush_events(self) -> None:
        events, self._outbox = self._outbox, []
        if self.mute_user_stream:
            return
        for event in events:
            for ws, sid in list(self.user_subscribers):
                frame = event if sid is None else {"subscriptionId": sid, "event": event}
                try:
                    await ws.send_str(json.dumps(frame))
                except ConnectionResetError:
                    continue
            self.user_events.append(event)

    # --- the request pipeline ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.unreachable:
            self.unanswered += 1
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)  # never reaches the client: the connection is gone
        raw_query, raw_body = request.rel_url.raw_query_string, (await request.read()).decode()
        params = dict(parse_qsl(raw_body)) | dict(parse_qsl(raw_query))  # the query string wins
        key = (request.method, request.path)
        fault = self._take_fault(request.path)
        try:
            self._meter(key, fault)
            if key in SIGNED:
                self._verify(request, raw_query, raw_body, params)
            if key in KEYED and request.headers.get("X-MBX-APIKEY", "") not in self._api_keys():
                raise Reply(401, -2015, "Invalid API-key, IP, or permissions for action.")
            status, payload, headers = 200, self._dispatch(key, params), {}
        except Reply as r:
            status, payload, headers = r.status, r.body, r.headers
        self.seen.append(Seen(request.method, request.path, params, status))
        self._record_open(f"{request.method} {request.path} {status}")
        await self.flush_events()
        if fault is not None and fault[0] not in PRE_FAULTS:
            return await self._post_fault(request, fault[0], status)
        return self._json(status, payload, key, headers)

    def _take_fault(self, path: str) -> tuple[Fault, float] | None:
        for i, (p, fault, retry_after) in enumerate(self._faults):
            if p is None or p == path:
                del self._faults[i]
                return fault, retry_after
        return None

    def _meter(self, key: tuple[str, str], fault: tuple[Fault, float] | None) -> None:
        now = self.now_ms()
        if now < self._banned_until:
            raise self._limit_reply(418, -1003, "IP banned", self._banned_until - now)
        if now < self._limited_until:  # kept going after a 429: ban
            self._banned_until = now + int(self.ban_s * 1000)
            raise self._limit_reply(418, -1003, "IP banned: kept sending after 429", self._banned_until - now)
        if fault is not None and fault[0] in ("429", "418"):
            until = now + int(fault[1] * 1000)
            if fault[0] == "418":
                self._banned_until = until
                raise self._limit_reply(418, -1003, "IP banned", until - now)
            self._limited_until = until
            raise self._limit_reply(429, -1003, "Too much request weight used", until - now)
        if fault is not None and fault[0] == "500-unprocessed":
            raise Reply(500, -1000, "An unknown error occurred while processing the request.")
        self._count_weight(key, now)

    def _count_weight(self, key: tuple[str, str], now: int) -> None:
        window = now // 60_000
        if window != self._window:
            self._window, self._used = window, 0
        weight = WEIGHTS.get(key, 1)
        if self._used + weight > self.limit:
            self._limited_until = (window + 1) * 60_000
            msg = f"Too much request weight used; current limit is {self.limit} request weight per 1 MINUTE."
            raise self._limit_reply(429, -1003, msg, self._limited_until - now)
        self._used += weight

    def _limit_reply(self, status: int, code: int, msg: str, wait_ms: int) -> Reply:
        return Reply(status, code, msg, retry_after_ms=max(wait_ms, 1))

    def _verify(self, request: web.Request, raw_query: str, raw_body: str, params: dict[str, str]) -> None:
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if api_key not in self.hmac_keys and api_key not in self.ed25519_keys:
            raise Reply(401, -2015, "Invalid API-key, IP, or permissions for action.")
        stamp, window = params.get("timestamp", ""), params.get("recvWindow", "5000")
        if not (stamp.isdigit() and window.isdigit()):
            raise Reply(
                400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        server = self.now_ms()
        if not (int(stamp) < server + 1000 and server - int(stamp) <= int(window)):
            raise Reply(400, -1021, "Timestamp for this request is outside of the recvWindow.")
        total = _strip_signature(raw_query) + _strip_signature(raw_body)
        if not self._signature_ok(api_key, total, params.get("signature", "")):
            raise Reply(400, -1022, "Signature for this request is not valid.")

    def _api_keys(self) -> set[str]:
        return set(self.hmac_keys) | set(self.ed25519_keys)

    def _signature_ok(self, api_key: str, total: str, signature: str) -> bool:
        if api_key in self.hmac_keys:
            expected = hmac.new(self.hmac_keys[api_key].encode(), total.encode(), hashlib.sha256).hexdigest()
            return hmac.compare_digest(expected, signature.lower())  # "not case sensitive"
        try:
            self.ed25519_keys[api_key].verify(base64.b64decode(signature, validate=True), total.encode())
        except (InvalidSignature, ValueError):
            return False
        return True

    def _json(self, status: int, payload: Any, key: tuple[str, str], headers: dict[str, str]) -> web.Response:
        if self.extra_fields and isinstance(payload, dict) and status == 200:
            payload = payload | EXTRA_FIELDS
        headers = headers | {"X-MBX-USED-WEIGHT-1M": str(self._used)}
        if key in ORDER_CREATING and status == 200:
            orders = sum(1 for o in self.orders.values() if o["time"] // 10_000 == self.now_ms() // 10_000)
            headers |= {"X-MBX-ORDER-COUNT-10S": str(orders), "X-MBX-ORDER-COUNT-1D": str(len(self.orders))}
        return web.json_response(payload, status=status, headers=headers)

    async def _post_fault(self, request: web.Request, fault: Fault, status: int) -> web.StreamResponse:
        """Faults after the request was processed: the order (if any) exists, the reply is lost."""
        if fault == "hang":
            with anyio.move_on_after(self.hang_s):
                await self._release.wait()
        if fault == "disconnect" and request.transport is not None:
            request.transport.close()
        if fault == "wrong-json":
            return web.json_response(["not", "an", "object"])
        if fault == "garbage":
            return web.Response(
                status=200, body=b'{"symbol": "LTCBTC", "orderId": 12', content_type="application/json"
            )
        page = "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
        html_status = 502 if fault == "html" else 500
        return web.Response(status=html_status, text=page, content_type="text/html")

    # --- endpoints -----------------------------------------------------------------------------

    def _dispatch(self, key: tuple[str, str], p: dict[str, str]) -> Any:
        handlers: dict[tuple[str, str], Callable[[dict[str, str]], Any]] = {
            ("GET", "/api/v3/ping"): lambda _: {},
            ("GET", "/api/v3/time"): lambda _: {"serverTime": self.now_ms() + self.time_lie_ms},
            ("GET", "/api/v3/exchangeInfo"): lambda _: self._info | {"serverTime": self.now_ms()},
            ("GET", "/api/v3/depth"): self._depth,
            ("POST", "/api/v3/order"): self._new_order,
            ("DELETE", "/api/v3/order"): self._cancel,
            ("GET", "/api/v3/order"): lambda q: self._find(q)[1],
            ("POST", "/api/v3/userDataStream"): self._new_listen_key,
            ("PUT", "/api/v3/userDataStream"): self._keepalive_listen_key,
            ("POST", "/api/v3/order/cancelReplace"): self._cancel_replace,
            ("POST", "/api/v3/orderList/oco"): self._new_oco,
            ("DELETE", "/api/v3/orderList"): self._cancel_list,
            ("GET", "/api/v3/openOrders"): lambda q: [
                o
                for o in self.orders.values()
                if o["status"] in OPEN and q.get("symbol", o["symbol"]) == o["symbol"]
            ],
            ("GET", "/api/v3/account"): self._account,
            ("GET", "/api/v3/myTrades"): self._my_trades,
        }
        if key not in handlers:
            raise Reply(404, -1000, f"no route {key[0]} {key[1]}")
        return handlers[key](p)

    def _parse_order(self, p: dict[str, str]) -> tuple[BinanceNewOrder, SymbolRules]:
        if p.get("symbol") not in self.rules:
            raise Reply(400, -1121, "Invalid symbol.")
        fields = {k: p[k] for k in BinanceNewOrder.__struct_fields__ if k in p}
        fields.setdefault("newClientOrderId", f"fake-{next(self._ids)}")
        try:
            order = msgspec.convert(fields, BinanceNewOrder, strict=False)
        except msgspec.ValidationError as exc:
            raise Reply(400, -1102, f"Mandatory parameter malformed: {exc}") from None
        return order, self.rules[order.symbol]

    def _new_order(self, p: dict[str, str]) -> dict[str, Any]:
        if self.next_order_error is not None:
            status, code, msg = self.next_order_error
            self.next_order_error = None
            raise Reply(status, code, msg)
        order, rules = self._parse_order(p)
        rejection = rules.check(order, self.price(order.symbol))
        if rejection is not None:
            raise Reply(400, -1013, f"Filter failure: {rejection.filter}")
        existing = self.orders.get(order.newClientOrderId)
        if self.reject_orders or (existing is not None and existing["status"] in OPEN):
            raise Reply(400, -2010, self.reject_orders or "Duplicate order sent.")
        return self._place(order)

    def _place(self, order: BinanceNewOrder) -> dict[str, Any]:
        now, oid = self.now_ms(), next(self._ids)
        market = self.price(order.symbol)
        crosses = order.price is not None and (
            (order.side == "BUY" and order.price > market) or (order.side == "SELL" and order.price < market)
        )
        if order.type == "LIMIT_MAKER" and crosses:
            raise Reply(400, -2010, "Order would immediately match and take.")
        record: dict[str, Any] = {
            "symbol": order.symbol, "orderId": oid, "orderListId": -1,
            "clientOrderId": order.newClientOrderId, "transactTime": now, "time": now, "updateTime": now,
            "price": _d(order.price or Decimal(0)), "stopPrice": _d(order.stopPrice or Decimal(0)),
            "origQty": _d(order.quantity), "executedQty": "0", "cummulativeQuoteQty": "0",
            "status": "NEW", "timeInForce": order.timeInForce or "GTC",
            "type": order.type, "side": order.side, "isWorking": order.type not in STOPS, "fills": [],
        }  # fmt: skip
        self.orders[order.newClientOrderId] = record
        self._report(record, "NEW")
        fills: list[dict[str, Any]] = []
        if order.type == "MARKET" or (order.type == "LIMIT" and crosses):
            fills.append(self._execute(record, market, order.quantity, maker=False))
        if order.type == "LIMIT" and record["status"] in OPEN and order.timeInForce in ("IOC", "FOK"):
            self._end(record, "EXPIRED")
        reply = dict(record)
        reply["fills"] = [{**f, "tradeId": f["id"]} for f in fills]
        return reply

    def _execute(self, order: dict[str, Any], price: Decimal, qty: Decimal, *, maker: bool) -> dict[str, Any]:
        """One fill of ``order``: a trade, the order's new state, balances, and their events."""
        now, tid = self.now_ms(), next(self._trade_ids)
        fee = (price * qty * self.commission_rate).quantize(Decimal("0.00000001"))
        trade = {"symbol": order["symbol"], "id": tid, "orderId": order["orderId"], "orderListId": -1,
                 "price": _d(price), "qty": _d(qty), "quoteQty": _d(price * qty), "commission": _d(fee),
                 "commissionAsset": self.commission_asset, "time": now, "isBuyer": order["side"] == "BUY",
                 "isMaker": maker, "isBestMatch": True}  # fmt: skip
        self.trades.append(trade)
        executed = Decimal(order["executedQty"]) + qty
        done = executed >= Decimal(order["origQty"])
        order.update(
            executedQty=_d(executed),
            cummulativeQuoteQty=_d(Decimal(order["cummulativeQuoteQty"]) + price * qty),
            status="FILLED" if done else "PARTIALLY_FILLED",
            updateTime=now,
            isWorking=not done,
        )
        self._report(order, "TRADE", trade)
        self._other_leg_ends(order, "EXPIRED")
        rules = self.rules[order["symbol"]]
        sign = 1 if order["side"] == "BUY" else -1
        base, quote = rules.base_asset, rules.quote_asset
        self.balances[base] = self.balances.get(base, Decimal(0)) + sign * qty
        self.balances[quote] = self.balances.get(quote, Decimal(0)) - sign * price * qty
        assets = [base, quote]
        if fee:
            self.balances[self.commission_asset] = self.balances.get(self.commission_asset, Decimal(0)) - fee
            assets.append(self.commission_asset)
        self._outbox.append(
            {
                "e": "outboundAccountPosition",
                "E": now,
                "u": now,
                "B": [{"a": a, "f": _d(self.balances[a]), "l": "0.00000000"} for a in assets],
            }
        )
        return trade

    def _end(self, order: dict[str, Any], status: str, cancel_id: str = "") -> None:
        order.update(status=status, updateTime=self.now_ms(), isWorking=False)
        self._report(order, "CANCELED" if status == "CANCELED" else "EXPIRED", cancel_id=cancel_id)

    def _report(
        self, order: dict[str, Any], x: str, trade: dict[str, Any] | None = None, cancel_id: str = ""
    ) -> None:
        now = self.now_ms()
        t = trade or {}
        self._outbox.append(
            {
                "e": "executionReport",
                "E": now,
                "s": order["symbol"],
                "c": cancel_id or order["clientOrderId"],
                "S": order["side"],
                "o": order["type"],
                "f": order["timeInForce"],
                "q": order["origQty"],
                "p": order["price"],
                "P": order["stopPrice"],
                "F": "0.00000000",
                "g": order.get("orderListId", -1),
                "C": order["clientOrderId"] if cancel_id else "",
                "x": x,
                "X": order["status"],
                "r": "NONE",
                "i": order["orderId"],
                "l": t.get("qty", "0.00000000"),
                "z": order["executedQty"],
                "L": t.get("price", "0.00000000"),
                "n": t.get("commission", "0"),
                "N": t.get("commissionAsset"),
                "T": now,
                "t": t.get("id", -1),
                "I": next(self._ids),
                "w": order["isWorking"],
                "m": t.get("isMaker", False),
                "M": False,
                "O": order["time"],
                "Z": order["cummulativeQuoteQty"],
                "Y": t.get("quoteQty", "0"),
                "Q": "0.00000000",
                "W": order["time"],
                "V": "EXPIRE_MAKER",
            }
        )

    def _my_trades(self, q: dict[str, str]) -> list[dict[str, Any]]:
        out = [t for t in self.trades if t["symbol"] == q.get("symbol")]
        if "orderId" in q:
            out = [t for t in out if str(t["orderId"]) == q["orderId"]]
        if "fromId" in q:
            out = [t for t in out if t["id"] >= int(q["fromId"])]
        elif "startTime" in q:
            out = [t for t in out if t["time"] >= int(q["startTime"])]
        return out[: int(q.get("limit", "500"))]

    def _new_listen_key(self, p: dict[str, str]) -> dict[str, str]:
        """Binance: a POST on an account with an active listenKey returns that key (extended)."""
        key = min(self.listen_keys) if self.listen_keys else f"listen-key-{next(self._ids)}"
        self.listen_keys.add(key)
        return {"listenKey": key}

    def _keepalive_listen_key(self, p: dict[str, str]) -> dict[str, str]:
        if p.get("listenKey") not in self.listen_keys:
            raise Reply(400, -1125, "This listenKey does not exist.")
        self.keepalive_times.append(time.monotonic())
        return {}

    # --- the WebSocket API and the listenKey stream -------------------------------------------------

    async def ws_api(self, request: web.Request) -> web.StreamResponse:
        if self.unreachable:
            self.unanswered += 1
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self.user_connections += 1
        session: dict[str, Any] = {"sid": 0, "api_key": ""}
        try:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await ws.send_str(json.dumps(self._ws_request(ws, session, msg.data)))
        finally:
            self.user_subscribers = [(w, s) for w, s in self.user_subscribers if w is not ws]
        return ws

    async def listen_key_stream(self, request: web.Request) -> web.StreamResponse:
        if self.unreachable:
            self.unanswered += 1
            return web.Response(status=503, text="Service Unavailable")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        if request.match_info["key"] not in self.listen_keys:
            await ws.close(code=1008)
            return ws
        self.user_connections += 1
        self.user_subscribers.append((ws, None))
        self.listen_key_sockets.append((ws, request.match_info["key"]))
        try:
            async for _ in ws:
                pass
        finally:
            self.user_subscribers = [(w, s) for w, s in self.user_subscribers if w is not ws]
            self.listen_key_sockets = [(w, k) for w, k in self.listen_key_sockets if w is not ws]
        return ws

    def _ws_request(self, ws: web.WebSocketResponse, session: dict[str, Any], text: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
            rid, method, params = req.get("id"), req["method"], dict(req.get("params") or {})
        except (ValueError, KeyError, TypeError, AttributeError):
            return {"id": None, "status": 400, "error": {"code": -1102, "msg": "Malformed request."}}
        self.user_requests.append(req)

        def error(status: int, code: int, msg: str) -> dict[str, Any]:
            return {"id": rid, "status": status, "error": {"code": code, "msg": msg}}

        if method in ("userDataStream.subscribe.signature", "session.logon"):
            problem = self._ws_verify(params)
            if problem is None and self.refuse_subscribe > 0:
                self.refuse_subscribe -= 1
                problem = (400, -1022, "Signature for this request is not valid.")
            if problem is not None:
                return error(*problem)
            if method == "session.logon":
                session["api_key"] = params["apiKey"]
                return {
                    "id": rid,
                    "status": 200,
                    "result": {"apiKey": params["apiKey"], "serverTime": self.now_ms()},
                }
        elif method == "userDataStream.subscribe":
            if not session["api_key"]:
                return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
        elif method == "userDataStream.unsubscribe":
            self.user_subscribers = [(w, s) for w, s in self.user_subscribers if w is not ws]
            return {"id": rid, "status": 200, "result": {}}
        else:
            return error(400, -1100, f"Unknown method {method!r}.")
        sid = session["sid"]
        session["sid"] += 1
        self.user_subscribers.append((ws, sid))
        return {"id": rid, "status": 200, "result": {"subscriptionId": sid}}

    def _ws_verify(self, params: dict[str, Any]) -> tuple[int, int, str] | None:
        """WebSocket API signature rules: parameters sorted by name, ``k=v`` joined by ``&``."""
        api_key = str(params.get("apiKey", ""))
        if api_key not in self._api_keys():
            return 401, -2015, "Invalid API-key, IP, or permissions for action."
        stamp, window = params.get("timestamp"), params.get("recvWindow", 5000)
        if not isinstance(stamp, int) or not isinstance(window, int):
            return 400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        server = self.now_ms()
        if not (stamp < server + 1000 and server - stamp <= window):
            return 400, -1021, "Timestamp for this request is outside of the recvWindow."
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "signature")
        if not self._signature_ok(api_key, payload, str(params.get("signature", ""))):
            return 400, -1022, "Signature for this request is not valid."
        return None

    def _find(self, p: dict[str, str]) -> tuple[str, dict[str, Any]]:
        cid = p.get("origClientOrderId", "")
        if "orderId" in p:
            cid = next((c for c, o in self.orders.items() if str(o["orderId"]) == p["orderId"]), "")
        order = self.orders.get(cid)
        if order is None or order["symbol"] != p.get("symbol"):
            raise Reply(400, -2013, "Order does not exist.")
        return cid, order

    def _cancel(self, p: dict[str, str]) -> dict[str, Any]:
        cid = p.get("origClientOrderId", "")
        order = self.orders.get(cid)
        if order is None or order["status"] not in OPEN:
            raise Reply(400, -2011, "Unknown order sent.")
        cancel_id = f"cancel-{next(self._ids)}"
        self._end(order, "CANCELED", cancel_id)
        self._other_leg_ends(order, "CANCELED")  # canceling one leg of an OCO cancels the list
        return order | {"origClientOrderId": cid, "clientOrderId": cancel_id}

    # --- OCO order lists ---------------------------------------------------------------------

    def _new_oco(self, p: dict[str, str]) -> dict[str, Any]:
        """``POST /api/v3/orderList/oco``: two legs of the same side and quantity, one above the
        market, one below (a sell: LIMIT_MAKER / TAKE_PROFIT(_LIMIT) above, STOP_LOSS(_LIMIT)
        below); refused unless the symbol's exchangeInfo says ``ocoAllowed``."""
        symbol, side = p.get("symbol", ""), p.get("side", "")
        rules = self.rules.get(symbol)
        if rules is None:
            raise Reply(400, -1121, "Invalid symbol.")
        if not rules.oco_allowed:
            raise Reply(400, -1013, "OCO orders are not supported for this symbol.")
        above, below = p.get("aboveType", ""), p.get("belowType", "")
        limit_leg, stop_leg = (above, below) if side == "SELL" else (below, above)
        if side not in ("BUY", "SELL") or limit_leg not in OCO_LIMITS or stop_leg not in OCO_STOPS:
            raise Reply(400, -1130, "Invalid data sent for a parameter: aboveType/belowType.")
        list_cid = p.get("listClientOrderId") or f"list-{next(self._ids)}"
        if list_cid in self.order_lists and self.order_lists[list_cid]["listOrderStatus"] == "EXECUTING":
            raise Reply(400, -2010, "Order list's listClientOrderId is already in use.")
        legs = [self._oco_leg(p, "above", symbol, side), self._oco_leg(p, "below", symbol, side)]
        market = self.price(symbol)
        levels = [leg.price if leg.type == "LIMIT_MAKER" else leg.stopPrice for leg in legs]
        if levels[0] is None or levels[1] is None or not levels[0] > market > levels[1]:
            raise Reply(400, -2010, "The relationship of the prices for the orders is not correct.")
        for leg in legs:
            rejection = rules.check(leg, market)
            if rejection is not None:
                raise Reply(400, -1013, f"Filter failure: {rejection.filter}")
            if leg.newClientOrderId in self.orders:
                raise Reply(400, -2010, "Duplicate order sent.")
        list_id = next(self._ids)
        reports = []
        for leg in legs:
            record = self._place(leg)
            self.orders[leg.newClientOrderId]["orderListId"] = list_id
            reports.append(record | {"orderListId": list_id})
        self.order_lists[list_cid] = {
            "orderListId": list_id, "symbol": symbol, "legs": [leg.newClientOrderId for leg in legs],
            "listStatusType": "EXEC_STARTED", "listOrderStatus": "EXECUTING",
            "transactionTime": self.now_ms(),
        }  # fmt: skip
        return self._list_reply(list_cid, reports)

    def _oco_leg(self, p: dict[str, str], where: str, symbol: str, side: str) -> BinanceNewOrder:
        fields = {
            "symbol": symbol,
            "side": side,
            "quantity": p.get("quantity"),
            "type": p.get(f"{where}Type"),
        }
        fields["newClientOrderId"] = p.get(f"{where}ClientOrderId") or f"fake-{next(self._ids)}"
        for ours, theirs in (("price", "Price"), ("stopPrice", "StopPrice"), ("timeInForce", "TimeInForce")):
            if f"{where}{theirs}" in p:
                fields[ours] = p[f"{where}{theirs}"]
        try:
            return msgspec.convert(fields, BinanceNewOrder, strict=False)
        except msgspec.ValidationError as exc:
            raise Reply(400, -1102, f"Mandatory parameter malformed: {exc}") from None

    def _other_leg_ends(self, order: dict[str, Any], status: str) -> None:
        """One leg of an OCO filled, triggered or was canceled: the other one ends (EXPIRED / CANCELED)."""
        list_id = order.get("orderListId", -1)
        if list_id == -1:
            return
        for list_cid, lst in self.order_lists.items():
            if lst["orderListId"] != list_id:
                continue
            for cid in lst["legs"]:
                leg = self.orders[cid]
                if cid != order["clientOrderId"] and leg["status"] in OPEN:
                    self._end(leg, status)
            lst.update(listStatusType="ALL_DONE", listOrderStatus="ALL_DONE", transactionTime=self.now_ms())
            self._outbox.append(
                {
                    "e": "listStatus", "E": self.now_ms(), "s": lst["symbol"], "g": list_id, "c": "OCO",
                    "l": "ALL_DONE", "L": "ALL_DONE", "r": "NONE", "C": list_cid, "T": self.now_ms(),
                    "O": [{"s": lst["symbol"], "i": self.orders[c]["orderId"], "c": c} for c in lst["legs"]],
                }
            )  # fmt: skip

    def _cancel_list(self, p: dict[str, str]) -> dict[str, Any]:
        """``DELETE /api/v3/orderList`` by ``listClientOrderId`` (or ``orderListId``): both legs canceled."""
        list_cid = p.get("listClientOrderId", "")
        if "orderListId" in p:
            list_cid = next(
                (c for c, lst in self.order_lists.items() if str(lst["orderListId"]) == p["orderListId"]), ""
            )
        lst = self.order_lists.get(list_cid)
        if lst is None or lst["symbol"] != p.get("symbol") or lst["listOrderStatus"] != "EXECUTING":
            raise Reply(400, -2011, "Unknown order list sent.")
        first = self.orders[lst["legs"][0]]
        self._end(first, "CANCELED")
        self._other_leg_ends(first, "CANCELED")
        return self._list_reply(list_cid, [dict(self.orders[c]) for c in lst["legs"]])

    def _list_reply(self, list_cid: str, reports: list[dict[str, Any]]) -> dict[str, Any]:
        lst = self.order_lists[list_cid]
        orders = [
            {"symbol": lst["symbol"], "orderId": self.orders[c]["orderId"], "clientOrderId": c}
            for c in lst["legs"]
        ]
        hidden = ("isWorking", "fills", "time")
        return {
            "orderListId": lst["orderListId"], "contingencyType": "OCO",
            "listStatusType": lst["listStatusType"], "listOrderStatus": lst["listOrderStatus"],
            "listClientOrderId": list_cid, "transactionTime": lst["transactionTime"], "symbol": lst["symbol"],
            "orders": orders,
            "orderReports": [{k: v for k, v in r.items() if k not in hidden} for r in reports],
        }  # fmt: skip

    def _cancel_replace(self, p: dict[str, str]) -> dict[str, Any]:
        """Binance's order/cancelReplace: filters first (-1013, nothing changes), then the cancel
        (fails: 400 -2022, the new order NOT_ATTEMPTED under STOP_ON_FAILURE), then the new order
        (fails: 409 -2021, the old one canceled all the same); ``data`` says which half did what."""
        mode = p.get("cancelReplaceMode")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise Reply(
                400,
                -1102,
                "Mandatory parameter 'cancelReplaceMode' was not sent, was empty/null, or malformed.",
            )
        order, rules = self._parse_order(p)
        rejection = rules.check(order, self.price(order.symbol))
        if rejection is not None:
            raise Reply(400, -1013, f"Filter failure: {rejection.filter}")
        canceled: dict[str, Any] | None = None
        try:
            canceled = self._cancel({"origClientOrderId": p.get("cancelOrigClientOrderId", "")})
        except Reply as r:
            if mode == "STOP_ON_FAILURE":
                data = {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                        "cancelResponse": r.body, "newOrderResponse": None}  # fmt: skip
                raise Reply(400, -2022, "Order cancel-replace failed.", data) from None
            cancel_error = r.body
        try:
            placed = self._new_order(p)
        except Reply as r:
            data = {"cancelResult": "SUCCESS" if canceled else "FAILURE", "newOrderResult": "FAILURE",
                    "cancelResponse": canceled or cancel_error, "newOrderResponse": r.body}  # fmt: skip
            if canceled is None:
                raise Reply(400, -2022, "Order cancel-replace failed.", data) from None
            raise Reply(409, -2021, "Order cancel-replace partially failed.", data) from None
        if canceled is None:
            data = {"cancelResult": "FAILURE", "newOrderResult": "SUCCESS",
                    "cancelResponse": cancel_error, "newOrderResponse": placed}  # fmt: skip
            raise Reply(409, -2021, "Order cancel-replace partially failed.", data)
        return {"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
                "cancelResponse": canceled, "newOrderResponse": placed}  # fmt: skip

    def _account(self, p: dict[str, str]) -> dict[str, Any]:
        balances = [{"asset": a, "free": _d(v), "locked": "0.00000000"} for a, v in self.balances.items()]
        return {"makerCommission": 10, "canTrade": True, "updateTime": self.now_ms(), "balances": balances}

    def _depth(self, p: dict[str, str]) -> dict[str, Any]:
        book: dict[str, dict[Decimal, Decimal]] = {"BUY": {}, "SELL": {}}
        for o in self.orders.values():
            if o["symbol"] == p.get("symbol") and o["status"] in OPEN and o["type"] == "LIMIT":
                side = book[o["side"]]
                side[Decimal(o["price"])] = side.get(Decimal(o["price"]), Decimal(0)) + Decimal(o["origQty"])
        levels = {s: sorted(b.items(), reverse=s == "BUY") for s, b in book.items()}
        return {
            "lastUpdateId": len(self.orders),
            "bids": [[_d(px), _d(q)] for px, q in levels["BUY"]],
            "asks": [[_d(px), _d(q)] for px, q in levels["SELL"]],
        }


@asynccontextmanager
async def open_fake_binance(**options: Any) -> AsyncIterator[FakeBinance]:
    """Start a :class:`FakeBinance` on 127.0.0.1 (free port); ``fake.url`` is its base URL."""
    fake = FakeBinance(**options)
    app = web.Application()
    app.router.add_get("/ws-api/v3", fake.ws_api)
    app.router.add_get("/ws/{key}", fake.listen_key_stream)
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        fake.url = f"http://127.0.0.1:{port}"
        fake.ws_api_url, fake.stream_url = f"ws://127.0.0.1:{port}/ws-api/v3", f"ws://127.0.0.1:{port}"
        yield fake
    finally:
        fake._release.set()
        for ws, _ in list(fake.user_subscribers):
            with anyio.move_on_after(1, shield=True):
                await ws.close()
        with anyio.move_on_after(5, shield=True):
            await runner.cleanup()
