"""A fake OKX v5 trading venue on 127.0.0.1: signed REST, per-endpoint rate limits, the private
WebSocket, and faults.  The account itself (orders, fills, balances, matching) is
:class:`tests.fake_okx_matching.OkxBook`.

- Authentication exactly as OKX checks it (v5 docs, "REST Authentication" and "Error Code"), all
  with HTTP 401: a missing ``OK-ACCESS-KEY`` / ``-PASSPHRASE`` / ``-SIGN`` / ``-TIMESTAMP`` is
  50103 / 50104 / 50106 / 50107; a timestamp that is not ISO 8601 with milliseconds 50112, one
  more than 30 s from the server's clock 50102; an unknown key 50111; a demo key without
  ``x-simulated-trading: 1`` (or a live key with it) 50101; a wrong passphrase 50105; a signature
  that is not base64(HMAC-SHA256(secret, timestamp + METHOD + path?query + body)) 50113.
- ``expTime`` (place, amend): past it, the order is not processed (sCode 50037 "Order expired").
- Rate limits per endpoint and key (user, or user + instId), the numbers of OKX's docs unless
  ``limits`` lowers them: over the limit, HTTP 429 ``{"code": "50011"}``, nothing executed.
- REST: ``public/time``, ``public/instruments``, ``trade/order`` (POST, GET), ``cancel-order``,
  ``amend-order``, ``orders-pending``, ``fills``, ``fills-history``, ``account/balance``,
  ``order-algo`` (POST, GET), ``cancel-algos``, ``orders-algo-pending``; OKX's envelope, ``code``
  ``"1"`` with the order's ``sCode`` when an order is refused; replies carry fields the client
  does not know.
- The private WebSocket ``/ws/v5/private``: ``login`` (signature of timestamp + ``GET`` +
  ``/users/self/verify``, timestamp in seconds within 30 s; else ``60009`` and the socket is
  closed), ``subscribe`` to ``orders`` (``instType`` SPOT, optional ``instId``) and ``account``
  (a snapshot first), before login ``60011``; the ops ``order``, ``cancel-order``,
  ``amend-order`` answered with the request's ``id``; ``ping`` -> ``pong``.  Every order change is
  pushed on ``orders`` (a fill with ``tradeId``, ``fillPx``, ``fillSz``, ``fillFee``), every
  balance change on ``account``.
- Faults (:meth:`FakeOkxVenue.fail_next`): before processing (``500-unprocessed``, ``50013``,
  ``50011``: nothing happens) or after (``500``, ``hang``, ``disconnect``, ``garbage``: the order
  exists, its reply is lost); :meth:`FakeOkxVenue.drop_private` cuts the private sockets,
  ``mute_private`` loses pushes, :meth:`FakeOkxVenue.send_private_raw` sends hostile frames,
  ``skew_ms`` moves the server clock.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import anyio
from aiohttp import WSMsgType, web

from tests.fake_okx_matching import FakeAlgo, OkxBook, OkxReject
from tests.okx_capture import instruments_reply

API_KEY, API_SECRET, PASSPHRASE = "okx-fake-key-0001", "okx-fake-secret-0001", "okx-fake-pass-0001"
Fault = Literal["500", "500-unprocessed", "50013", "50011", "hang", "disconnect", "garbage"]
PRE_FAULTS = frozenset({"500-unprocessed", "50013", "50011"})
ISO_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").fullmatch
# (method, path) -> (rule, limit per 2 s, per instrument)
LIMITS: dict[tuple[str, str], tuple[str, int, bool]] = {
    ("POST", "/api/v5/trade/order"): ("place_order", 60, True),
    ("POST", "/api/v5/trade/cancel-order"): ("cancel_order", 60, True),
    ("POST", "/api/v5/trade/amend-order"): ("amend_order", 60, True),
    ("GET", "/api/v5/trade/order"): ("order_details", 60, True),
    ("GET", "/api/v5/trade/orders-pending"): ("orders_pending", 60, False),
    ("GET", "/api/v5/trade/fills"): ("fills", 60, False),
    ("GET", "/api/v5/trade/fills-history"): ("fills_history", 10, False),
    ("GET", "/api/v5/account/balance"): ("balance", 10, False),
    ("POST", "/api/v5/trade/order-algo"): ("place_algo", 20, False),
    ("POST", "/api/v5/trade/cancel-algos"): ("cancel_algos", 20, False),
    ("GET", "/api/v5/trade/order-algo"): ("algo_details", 20, False),
    ("GET", "/api/v5/trade/orders-algo-pending"): ("algos_pending", 20, False),
    ("GET", "/api/v5/public/time"): ("time", 10, False),
}
PUBLIC = frozenset({("GET", "/api/v5/public/time"), ("GET", "/api/v5/public/instruments")})
ORDER_CREATING = frozenset({("POST", "/api/v5/trade/order"), ("POST", "/api/v5/trade/order-algo")})


class Reply(Exception):
    def __init__(self, status: int, code: str, msg: str, data: list[Any] | None = None) -> None:
        super().__init__(msg)
        self.status, self.body = status, {"code": code, "msg": msg, "data": data or []}


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    body: Any
    status: int
    code: str


def okx_sign(secret: str, payload: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()).decode()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


class FakeOkxVenue:
    """State and behaviour; serve it with :func:`open_fake_okx_venue` (or mount :meth:`routes`)."""

    def __init__(
        self,
        *,
        balances: dict[str, Decimal] | None = None,
        prices: dict[str, Decimal] | None = None,
        simulated: bool = False,
        limits: dict[str, int] | None = None,
        maker_fee: Decimal = Decimal(0),
        taker_fee: Decimal = Decimal(0),
        hang_s: float = 30.0,
    ) -> None:
        self.book = OkxBook(balances, prices=prices, maker_fee=maker_fee, taker_fee=taker_fee)
        self.keys = {API_KEY: (API_SECRET, PASSPHRASE)}
        self.simulated = simulated
        self.limits = dict(limits or {})
        self.hang_s = hang_s
        self.skew_ms = 0
        self.seen: list[Seen] = []
        self.ws_requests: list[dict[str, Any]] = []
        self.mute_private = False  # pushes are lost, as if the socket had been down
        self.mute_ops = False  # WebSocket order ops are carried out but never answered
        self.private: list[tuple[web.WebSocketResponse, set[tuple[str, str]]]] = []
        self.private_connections = self.logins = 0
        self.url = self.ws_private_url = ""
        self._faults: list[tuple[str | None, Fault]] = []
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._release = anyio.Event()
        self._conn_ids = itertools.count(1)

    # --- what tests use -----------------------------------------------------------------------

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def fail_next(self, fault: Fault, *, path: str | None = None) -> None:
        """The next request (to ``path``, if given) fails this way."""
        self._faults.append((path, fault))

    def order_requests(self, cl_ord_id: str) -> int:
        """How many order-creating requests (REST or WebSocket) carrying this client id OKX processed."""
        rest = sum(
            1
            for s in self.seen
            if (s.method, s.path) in ORDER_CREATING
            and isinstance(s.body, dict)
            and cl_ord_id in (s.body.get("clOrdId"), s.body.get("algoClOrdId"))
            and s.code in ("0", "1")  # it reached the matching engine (a refusal is code 1)
        )
        ws = sum(
            1 for r in self.ws_requests if r.get("op") == "order" and r["args"][0].get("clOrdId") == cl_ord_id
        )
        return rest + ws

    def codes(self, path: str) -> list[str]:
        return [s.code for s in self.seen if s.path == path]

    async def trade(self, inst: str, price: Decimal, qty: Decimal | None = None) -> None:
        self.book.trade(inst, price, qty)
        await self.flush()

    async def deposit(self, ccy: str, amount: Decimal) -> None:
        self.book.deposit(ccy, amount)
        await self.flush()

    async def drop_private(self) -> None:
        for ws, _ in list(self.private):
            await ws.close()

    async def send_private_raw(self, frame: str) -> None:
        for ws, _ in list(self.private):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_str(frame)

    async def flush(self) -> None:
        """Push the queued ``orders`` / ``account`` events to the subscribed private sockets."""
        events, self.book.events = self.book.events, []
        if self.mute_private:
            return
        for channel, item in events:
            for ws, subs in list(self.private):
                if not any(c == channel and (not inst or inst == item.get("instId")) for c, inst in subs):
                    continue
                arg = {"channel": channel, "uid": "448743607034327908"}
                if channel == "orders":
                    arg |= {"instType": "SPOT", "instId": item["instId"]}
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(json.dumps({"arg": arg, "data": [item]}))

    # --- REST pipeline ------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = (await request.read()).decode()
        key = (request.method, request.path)
        fault = self._take_fault(request.path)
        body: Any = None
        try:
            body = json.loads(raw) if raw else None
            if key not in PUBLIC:
                self._verify(request, raw)
            self._meter(key, request, body)
            if fault is not None and fault[1] in PRE_FAULTS:
                self._pre_fault(fault[1])
            status, payload = 200, {"code": "0", "msg": "", "data": self._dispatch(key, request, body)}
        except Reply as r:
            status, payload = r.status, r.body
        except ValueError:
            status, payload = 400, {"code": "50002", "msg": "JSON syntax error", "data": []}
        self.seen.append(Seen(request.method, request.path, body, status, str(payload.get("code"))))
        await self.flush()
        if fault is not None and fault[1] not in PRE_FAULTS:
            return await self._post_fault(request, fault[1])
        return web.json_response(payload | {"inTime": str(self.now_ms() * 1000)}, status=status)

    def _take_fault(self, path: str) -> tuple[str | None, Fault] | None:
        for i, (p, fault) in enumerate(self._faults):
            if p is None or p == path:
                del self._faults[i]
                return p, fault
        return None

    def _pre_fault(self, fault: Fault) -> None:
        if fault == "500-unprocessed":
            raise Reply(500, "50026", "System error. Try again later")
        if fault == "50013":
            raise Reply(200, "50013", "Systems are busy. Please try again later.")
        raise Reply(
            429,
            "50011",
            "Rate limit reached. Please refer to API documentation and throttle requests accordingly",
        )

    async def _post_fault(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        """After the request was processed: the order (if any) exists, the reply is lost."""
        if fault == "hang":
            with anyio.move_on_after(self.hang_s):
                await self._release.wait()
        if fault == "disconnect" and request.transport is not None:
            request.transport.close()
        if fault == "garbage":
            return web.Response(
                status=200, body=b'{"code":"0","data":[{"ordId":', content_type="application/json"
            )
        return web.Response(
            status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html"
        )

    def _verify(self, request: web.Request, raw_body: str) -> None:
        h = request.headers
        key, sign = h.get("OK-ACCESS-KEY", ""), h.get("OK-ACCESS-SIGN", "")
        stamp, phrase = h.get("OK-ACCESS-TIMESTAMP", ""), h.get("OK-ACCESS-PASSPHRASE", "")
        for value, code, name in (
            (key, "50103", "OK-ACCESS-KEY"),
            (phrase, "50104", "OK-ACCESS-PASSPHRASE"),
            (sign, "50106", "OK-ACCESS-SIGN"),
            (stamp, "50107", "OK-ACCESS-TIMESTAMP"),
        ):
            if not value:
                raise Reply(401, code, f'Request header "{name}" cannot be empty.')
        if not ISO_MS(stamp):
            raise Reply(401, "50112", "Invalid OK-ACCESS-TIMESTAMP")
        if abs(self.now_ms() - _ms(stamp)) > 30_000:
            raise Reply(401, "50102", "Timestamp request expired")
        if key not in self.keys:
            raise Reply(401, "50111", "Invalid OK-ACCESS-KEY")
        if (h.get("x-simulated-trading") == "1") != self.simulated:
            raise Reply(401, "50101", "APIKey does not match current environment.")
        secret, passphrase = self.keys[key]
        if phrase != passphrase:
            raise Reply(401, "50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.')
        path = request.rel_url.raw_path + (
            f"?{request.rel_url.raw_query_string}" if request.rel_url.raw_query_string else ""
        )
        expected = okx_sign(secret, f"{stamp}{request.method}{path}{raw_body}")
        if not hmac.compare_digest(expected, sign):
            raise Reply(401, "50113", "Invalid Sign")

    def _meter(self, key: tuple[str, str], request: web.Request, body: Any) -> None:
        rule = LIMITS.get(key)
        if rule is None:
            return
        name, limit, per_inst = rule
        inst = ""
        if per_inst:
            inst = request.query.get("instId", "") or (
                body.get("instId", "") if isinstance(body, dict) else ""
            )
        window = self._windows.setdefault((name, str(inst)), deque())
        now = time.monotonic()
        while window and window[0] <= now - 2.0:
            window.popleft()
        if len(window) >= self.limits.get(name, limit):
            raise Reply(
                429,
                "50011",
                "Rate limit reached. Please refer to API documentation and throttle requests accordingly",
            )
        window.append(now)

    def _dispatch(self, key: tuple[str, str], request: web.Request, body: Any) -> list[Any]:
        q = request.query
        routes: dict[tuple[str, str], Callable[[], list[Any]]] = {
            ("GET", "/api/v5/public/time"): lambda: [{"ts": str(self.now_ms())}],
            ("GET", "/api/v5/public/instruments"): lambda: json.loads(instruments_reply())["data"],
            ("POST", "/api/v5/trade/order"): lambda: self._orders_op(request, "order", body),
            ("POST", "/api/v5/trade/cancel-order"): lambda: self._orders_op(request, "cancel-order", body),
            ("POST", "/api/v5/trade/amend-order"): lambda: self._orders_op(request, "amend-order", body),
            ("GET", "/api/v5/trade/order"): lambda: [
                self._found(
                    lambda: self.book.find(q.get("instId", ""), q.get("ordId", ""), q.get("clOrdId", ""))
                ).okx()
            ],
            ("GET", "/api/v5/trade/orders-pending"): lambda: self._pending(q),
            ("GET", "/api/v5/trade/fills"): lambda: self._fills(q),
            ("GET", "/api/v5/trade/fills-history"): lambda: self._fills(q),
            ("GET", "/api/v5/account/balance"): lambda: [self.book.balance()],
            ("POST", "/api/v5/trade/order-algo"): lambda: [self._algo(body)],
            ("POST", "/api/v5/trade/cancel-algos"): lambda: self._cancel_algos(body),
            ("GET", "/api/v5/trade/order-algo"): lambda: [
                self._found(lambda: self.book.find_algo(q.get("algoId", ""), q.get("algoClOrdId", ""))).okx()
            ],
            ("GET", "/api/v5/trade/orders-algo-pending"): lambda: [
                a.okx()
                for a in reversed(self.book.algos.values())
                if a.state == "live" and a.inst == q.get("instId", a.inst)
            ],
        }
        route = routes.get(key)
        if route is None:
            raise Reply(404, "50005", "API is offline or unavailable")
        return route()

    @staticmethod
    def _found(find: Callable[[], Any]) -> Any:
        try:
            return find()
        except OkxReject as exc:
            raise Reply(200, exc.code, exc.msg) from None

    def _orders_op(self, request: web.Request, op: str, body: Any) -> list[Any]:
        if not isinstance(body, dict):
            raise Reply(400, "50002", "JSON syntax error")
        exp = request.headers.get("expTime", "")
        ack = self.order_op(op, body, expired=bool(exp.isdigit() and self.now_ms() > int(exp)))
        if ack["sCode"] != "0":
            raise Reply(200, "1", "All operations failed", [ack])
        return [ack]

    def order_op(self, op: str, body: dict[str, Any], *, expired: bool = False) -> dict[str, str]:
        """One ``order`` / ``cancel-order`` / ``amend-order`` (REST or WebSocket): its ack item."""
        cl, inst = str(body.get("clOrdId", "")), str(body.get("instId", ""))
        ack = {
            "clOrdId": cl,
            "ordId": str(body.get("ordId", "")),
            "tag": "",
            "ts": str(self.now_ms()),
            "sCode": "0",
            "sMsg": "",
        }
        try:
            if expired:
                raise OkxReject("50037", "Order expired.")
            if op == "order":
                order = self.book.place(body)
            elif op == "cancel-order":
                order = self.book.cancel(inst, str(body.get("ordId", "")), cl)
            else:
                order = self.book.amend(inst, cl, str(body.get("newSz", "")), str(body.get("newPx", "")))
                ack["reqId"] = str(body.get("reqId", ""))
        except OkxReject as exc:
            return ack | {"sCode": exc.code, "sMsg": exc.msg}
        return ack | {"ordId": order.ord_id, "clOrdId": order.cl_ord_id}

    def _pending(self, q: Any) -> list[Any]:
        opened = [o for o in reversed(self.book.orders.values()) if o.state in ("live", "partially_filled")]
        opened = [o for o in opened if o.inst == q.get("instId", o.inst)]
        after = q.get("after", "")
        if after:
            opened = [o for o in opened if int(o.ord_id) < int(after)]
        return [o.okx() for o in opened[: int(q.get("limit", "100"))]]

    def _fills(self, q: Any) -> list[Any]:
        fills = [f for f in reversed(self.book.fills) if f["instId"] == q.get("instId", f["instId"])]
        if q.get("ordId"):
            fills = [f for f in fills if f["ordId"] == q["ordId"]]
        if q.get("begin"):
            fills = [f for f in fills if int(f["ts"]) >= int(q["begin"])]
        if q.get("after"):
            fills = [f for f in fills if int(f["billId"]) < int(q["after"])]
        return fills[: int(q.get("limit", "100"))]

    def _algo(self, body: Any) -> dict[str, str]:
        if not isinstance(body, dict):
            raise Reply(400, "50002", "JSON syntax error")
        cl = str(body.get("algoClOrdId", ""))
        try:
            algo: FakeAlgo = self.book.place_algo(body)
        except OkxReject as exc:
            raise Reply(
                200,
                "1",
                "All operations failed",
                [{"algoId": "", "algoClOrdId": cl, "clOrdId": "", "sCode": exc.code, "sMsg": exc.msg}],
            ) from None
        return {"algoId": algo.algo_id, "algoClOrdId": cl, "clOrdId": "", "sCode": "0", "sMsg": "", "tag": ""}

    def _cancel_algos(self, body: Any) -> list[Any]:
        if not isinstance(body, list):
            raise Reply(400, "50002", "JSON syntax error")
        out = []
        for item in body:
            try:
                algo = self.book.cancel_algo(str(item.get("instId", "")), str(item.get("algoId", "")))
                out.append({"algoId": algo.algo_id, "sCode": "0", "sMsg": ""})
            except OkxReject as exc:
                out.append({"algoId": str(item.get("algoId", "")), "sCode": exc.code, "sMsg": exc.msg})
        if any(o["sCode"] != "0" for o in out):
            raise Reply(200, "1", "All operations failed", out)
        return out

    # --- the private WebSocket ------------------------------------------------------------------

    async def ws_private(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self.private_connections += 1
        conn_id = f"{next(self._conn_ids):08x}"
        subs: set[tuple[str, str]] = set()
        session = {"logged_in": False}
        self.private.append((ws, subs))
        try:
            async for msg in ws:
                if msg.type is WSMsgType.TEXT:
                    await self._ws_text(ws, subs, session, conn_id, msg.data)
        finally:
            self.private.remove((ws, subs))
        return ws

    async def _ws_text(
        self,
        ws: web.WebSocketResponse,
        subs: set[tuple[str, str]],
        session: dict[str, bool],
        conn_id: str,
        text: str,
    ) -> None:
        if text == "ping":
            await ws.send_str("pong")
            return
        try:
            req = json.loads(text)
            op, args = req["op"], req["args"]
            assert isinstance(args, list) and args and all(isinstance(a, dict) for a in args)
        except (ValueError, KeyError, TypeError, AssertionError):
            await ws.send_str(
                json.dumps(
                    {"event": "error", "code": "60012", "msg": f"Invalid request: {text}", "connId": conn_id}
                )
            )
            return
        self.ws_requests.append(req)
        if op == "login":
            await self._login(ws, session, conn_id, args[0])
        elif not session["logged_in"]:
            await ws.send_str(
                json.dumps({"event": "error", "code": "60011", "msg": "Please log in", "connId": conn_id})
            )
        elif op == "subscribe":
            await self._subscribe(ws, subs, conn_id, args)
        elif op in ("order", "cancel-order", "amend-order"):
            ack = self.order_op(
                op,
                args[0],
                expired=str(req.get("expTime", "")).isdigit() and self.now_ms() > int(req["expTime"]),
            )
            code, msg = ("0", "") if ack["sCode"] == "0" else ("1", "All operations failed")
            if self.mute_ops:
                await self.flush()
                return
            await ws.send_str(
                json.dumps(
                    {
                        "id": req.get("id", ""),
                        "op": op,
                        "code": code,
                        "msg": msg,
                        "data": [ack],
                        "inTime": "",
                        "outTime": "",
                    }
                )
            )
            await self.flush()
        else:
            await ws.send_str(
                json.dumps(
                    {"event": "error", "code": "60012", "msg": f"Invalid request: {text}", "connId": conn_id}
                )
            )

    async def _login(
        self, ws: web.WebSocketResponse, session: dict[str, bool], conn_id: str, arg: dict[str, Any]
    ) -> None:
        key, stamp = str(arg.get("apiKey", "")), str(arg.get("timestamp", ""))
        secret, phrase = self.keys.get(key, ("", ""))
        ok = (
            bool(secret)
            and stamp.isdigit()
            and abs(self.now_ms() / 1000 - int(stamp)) <= 30
            and arg.get("passphrase") == phrase
            and hmac.compare_digest(
                okx_sign(secret, f"{stamp}GET/users/self/verify"), str(arg.get("sign", ""))
            )
        )
        if not ok:
            await ws.send_str(
                json.dumps({"event": "error", "code": "60009", "msg": "Login failed.", "connId": conn_id})
            )
            await ws.close()
            return
        self.logins += 1
        session["logged_in"] = True
        await ws.send_str(json.dumps({"event": "login", "code": "0", "msg": "", "connId": conn_id}))

    async def _subscribe(
        self, ws: web.WebSocketResponse, subs: set[tuple[str, str]], conn_id: str, args: list[dict[str, Any]]
    ) -> None:
        for arg in args:
            channel = arg.get("channel")
            if channel not in ("orders", "account") or (
                channel == "orders" and arg.get("instType") not in ("SPOT", "ANY")
            ):
                msg = f"Wrong URL or channel:{channel}, instId:{arg.get('instId', '')} doesn't exist."
                await ws.send_str(
                    json.dumps({"event": "error", "code": "60018", "msg": msg, "connId": conn_id})
                )
                continue
            subs.add((channel, str(arg.get("instId", ""))))
            await ws.send_str(json.dumps({"event": "subscribe", "arg": arg, "connId": conn_id}))
            if channel == "account":
                await ws.send_str(
                    json.dumps(
                        {
                            "arg": {"channel": "account", "uid": "448743607034327908"},
                            "data": [self.book.balance()],
                        }
                    )
                )

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/ws/v5/private", self.ws_private)
        app.router.add_route("*", "/api/v5/{tail:.*}", self.handle)


@asynccontextmanager
async def open_fake_okx_venue(**options: Any) -> AsyncIterator[FakeOkxVenue]:
    """Start a :class:`FakeOkxVenue` on 127.0.0.1 (free port); ``venue.url`` is its REST base URL."""
    venue = FakeOkxVenue(**options)
    app = web.Application()
    venue.routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        venue.url, venue.ws_private_url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws/v5/private"
        yield venue
    finally:
        venue._release.set()
        for ws, _ in list(venue.private):
            with anyio.move_on_after(1, shield=True):
                await ws.close()
        with anyio.move_on_after(5, shield=True):
            await runner.cleanup()
