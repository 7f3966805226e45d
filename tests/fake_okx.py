"""A fake OKX v5 public server on 127.0.0.1: the WebSocket replaying the real 2022 capture and the
instruments REST reply, with faults.

WebSocket ``/ws/v5/public`` behaves like OKX's: ``{"op": "subscribe", "args": [...]}`` is
acknowledged per arg with ``{"event": "subscribe", "arg", "connId"}``; an unknown channel or
instId gets ``{"event": "error", "code": "60018", "msg": "Wrong URL or channel:..., instId:...
doesn't exist."}``, a frame that is not a request ``60012 Invalid request``; the text ``ping`` is
answered ``pong``.  A ``books`` subscription first gets a snapshot of the fake's authoritative
book (``prevSeqId`` -1), then the captured updates with ``seqId``/``prevSeqId`` the fake numbers
and the checksum of its own book (which equals the captured one: the capture verifies).  The
captured pushes are replayed in ``replay_s`` seconds, then again from the captured snapshots (each
book subscriber gets a new snapshot) when ``loop``.

Faults: :meth:`FakeOkx.drop` closes every connection, ``silent`` stops every frame (pongs too),
:meth:`FakeOkx.corrupt_checksum` and :meth:`FakeOkx.skip_seq` break the next update of a book,
:meth:`FakeOkx.send_error` sends an ``error`` event.

REST ``GET /api/v5/public/instruments?instType=SPOT`` answers the captured reply (states
overridable in ``instrument_state``); ``instruments_errors`` are OKX codes answered first, one per
request (50011 with HTTP 429, like OKX).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
from aiohttp import WSMsgType, web

from tests.okx_capture import instruments_reply, load_frames

CHANNELS = ("books", "trades", "tickers", "bbo-tbt")
ERROR_MSGS = {
    "50001": "Service temporarily unavailable. Please try again later.",
    "50011": "Too Many Requests",
    "50013": "Systems are busy. Please try again later.",
}


async def until(cond: Callable[[], bool], timeout: float, period: float = 0.01) -> None:
    """Wait (asynchronously) until ``cond()`` holds, failing after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(period)


def _crc(bids: list[list[str]], asks: list[list[str]]) -> int:
    parts: list[str] = []
    for i in range(max(min(len(bids), 25), min(len(asks), 25))):
        for side in (bids, asks):
            if i < min(len(side), 25):
                parts += side[i][:2]
    crc = zlib.crc32(":".join(parts).encode())
    return crc - 2**32 if crc >= 2**31 else crc


class _Book:
    """The fake's authoritative book of one instrument (the levels as OKX sent them)."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.bids: dict[str, list[str]] = {lv[0]: lv for lv in snapshot["bids"]}
        self.asks: dict[str, list[str]] = {lv[0]: lv for lv in snapshot["asks"]}

    def apply(self, item: dict[str, Any]) -> None:
        for side, levels in ((self.bids, item["bids"]), (self.asks, item["asks"])):
            for lv in levels:
                if Decimal(lv[1]) == 0:
                    side.pop(lv[0], None)
                else:
                    side[lv[0]] = lv

    def sides(self) -> tuple[list[list[str]], list[list[str]]]:
        bids = sorted(self.bids.values(), key=lambda lv: -Decimal(lv[0]))[:400]
        asks = sorted(self.asks.values(), key=lambda lv: Decimal(lv[0]))[:400]
        return bids, asks

    def checksum(self) -> int:
        return _crc(*self.sides())


class _Conn:
    def __init__(self, ws: web.WebSocketResponse, conn_id: str) -> None:
        self.ws, self.id = ws, conn_id
        self.subs: set[tuple[str, str]] = set()


class FakeOkx:
    def __init__(self, *, replay_s: float = 2.0, loop: bool = True, seq_step: int = 7) -> None:
        self.replay_s, self.loop, self.seq_step = replay_s, loop, seq_step
        frames = [f for f in load_frames() if "data" in f.data]
        self.snapshots = {
            f.data["arg"]["instId"]: f.data["data"][0] for f in frames if f.data.get("action") == "snapshot"
        }
        self.pushes = [f for f in frames if f.data.get("action") != "snapshot"]
        self.known = {f.data["arg"]["instId"] for f in frames}
        self.books = {inst: _Book(s) for inst, s in self.snapshots.items()}
        self.seq = dict.fromkeys(self.books, 1000)
        self.conns: list[_Conn] = []
        self.silent = False
        self._corrupt: set[str] = set()
        self._skip: set[str] = set()
        self.faulted: dict[str, int] = {}  # instId -> seqId of the last push a fault broke
        self._ids = itertools.count(1)
        self.connections = self.pings = self.loops = 0
        self.requests: list[dict[str, Any]] = []  # every op received
        self.sent: dict[str, int] = {}  # pushes sent by channel
        self.instruments_requests = self.simulated_headers = 0
        self.instruments_errors: list[str] = []
        self.instrument_state: dict[str, str] = {}
        self.url = self.rest_url = ""

    # --- faults -------------------------------------------------------------------------------------

    def corrupt_checksum(self, inst: str) -> None:
        self._corrupt.add(inst)

    def skip_seq(self, inst: str) -> None:
        self._skip.add(inst)

    async def drop(self) -> None:
        for conn in list(self.conns):
            await conn.ws.close()

    async def send_error(self, code: str, msg: str) -> None:
        for conn in list(self.conns):
            await self._send(conn, {"event": "error", "code": code, "msg": msg, "connId": conn.id})

    def subscribes(self, channel: str, inst: str) -> int:
        args = [a for r in self.requests if r.get("op") == "subscribe" for a in r.get("args", [])]
        return sum(a == {"channel": channel, "instId": inst} for a in args)

    # --- WebSocket ----------------------------------------------------------------------------------

    async def ws_public(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _Conn(ws, f"{next(self._ids):08x}")
        self.conns.append(conn)
        self.connections += 1
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                await self._on_text(conn, msg.data)
        finally:
            self.conns.remove(conn)
        return ws

    async def _on_text(self, conn: _Conn, text: str) -> None:
        if text == "ping":
            self.pings += 1
            if not self.silent:
                await conn.ws.send_str("pong")
            return
        try:
            req = json.loads(text)
            op, args = req["op"], req["args"]
            assert op in ("subscribe", "unsubscribe") and isinstance(args, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            await self._send(
                conn,
                {"event": "error", "code": "60012", "msg": f"Invalid request: {text}", "connId": conn.id},
            )
            return
        self.requests.append(req)
        for arg in args:
            await self._op(conn, op, arg)

    async def _op(self, conn: _Conn, op: str, arg: dict[str, str]) -> None:
        channel, inst = arg.get("channel", ""), arg.get("instId", "")
        if channel not in CHANNELS or inst not in self.known:
            msg = (
                f"Wrong URL or channel:{channel},instId:{inst} doesn't exist. "
                "Please use the correct URL, channel and parameters referring to API document."
            )
            await self._send(conn, {"event": "error", "code": "60018", "msg": msg, "connId": conn.id})
            return
        key = (channel, inst)
        if op == "unsubscribe":
            conn.subs.discard(key)
            await self._send(conn, {"event": "unsubscribe", "arg": arg, "connId": conn.id})
            return
        await self._send(conn, {"event": "subscribe", "arg": arg, "connId": conn.id})
        conn.subs.add(key)
        if channel == "books":
            await self._send(conn, self._snapshot(inst))

    def _snapshot(self, inst: str) -> dict[str, Any]:
        bids, asks = self.books[inst].sides()
        item = {
            "asks": asks,
            "bids": bids,
            "ts": str(int(time.time() * 1000)),
            "checksum": _crc(bids, asks),
            "prevSeqId": -1,
            "seqId": self.seq[inst],
        }
        return {"arg": {"channel": "books", "instId": inst}, "action": "snapshot", "data": [item]}

    async def _send(self, conn: _Conn, data: dict[str, Any] | str) -> None:
        if self.silent or conn.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):  # the client went away: its handler ends
            await conn.ws.send_str(data if isinstance(data, str) else json.dumps(data))

    # --- replay -------------------------------------------------------------------------------------

    async def replay(self) -> None:
        t0 = self.pushes[0].ts
        span = max(self.pushes[-1].ts - t0, 1e-3)
        while True:
            start = time.monotonic()
            for f in self.pushes:
                due = start + (f.ts - t0) / span * self.replay_s
                delay = due - time.monotonic()
                if delay > 0.002:
                    await anyio.sleep(delay)
                await self._push(f.data)
            self.loops += 1
            if not self.loop:
                return
            await self._restart_books()

    async def _restart_books(self) -> None:
        """Play the capture again: every book back to its captured snapshot, resent to subscribers."""
        self.books = {inst: _Book(s) for inst, s in self.snapshots.items()}
        for inst in self.books:
            self.seq[inst] += self.seq_step
            for conn in list(self.conns):
                if ("books", inst) in conn.subs:
                    await self._send(conn, self._snapshot(inst))

    async def _push(self, data: dict[str, Any]) -> None:
        arg = data["arg"]
        channel, inst = arg["channel"], arg["instId"]
        if channel == "books":
            data = self._book_update(inst, data)
        text = json.dumps(data, separators=(",", ":"))
        for conn in list(self.conns):
            if (channel, inst) in conn.subs:
                self.sent[channel] = self.sent.get(channel, 0) + 1
                await self._send(conn, text)

    def _book_update(self, inst: str, data: dict[str, Any]) -> dict[str, Any]:
        item = dict(data["data"][0])
        book = self.books[inst]
        book.apply(item)
        prev = self.seq[inst]
        if inst in self._skip:  # a push the client never gets
            self._skip.discard(inst)
            prev += self.seq_step
            self.faulted[inst] = prev + self.seq_step
        self.seq[inst] = prev + self.seq_step
        item.update(prevSeqId=prev, seqId=self.seq[inst], checksum=book.checksum())
        if inst in self._corrupt:
            self.faulted[inst] = self.seq[inst]
            self._corrupt.discard(inst)
            item["checksum"] ^= 0x5A5A
        return {**data, "data": [item]}

    # --- REST ---------------------------------------------------------------------------------------

    async def instruments(self, request: web.Request) -> web.Response:
        self.instruments_requests += 1
        self.simulated_headers += request.headers.get("x-simulated-trading") == "1"
        if self.instruments_errors:
            code = self.instruments_errors.pop(0)
            body = {"code": code, "msg": ERROR_MSGS.get(code, "error"), "data": []}
            return web.json_response(body, status=429 if code == "50011" else 200)
        if request.query.get("instType") != "SPOT":
            body = {"code": "51000", "msg": "Parameter instType error", "data": []}
            return web.json_response(body, status=400)
        reply = json.loads(instruments_reply())
        for item in reply["data"]:
            item["state"] = self.instrument_state.get(item["instId"], item["state"])
        return web.json_response(reply)


@asynccontextmanager
async def open_fake_okx(**options: Any) -> AsyncIterator[FakeOkx]:
    fake = FakeOkx(**options)
    app = web.Application()
    app.router.add_get("/ws/v5/public", fake.ws_public)
    app.router.add_get("/api/v5/public/instruments", fake.instruments)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    fake.rest_url = f"http://127.0.0.1:{port}"
    fake.url = f"ws://127.0.0.1:{port}/ws/v5/public"
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(fake.replay)
            yield fake
            tg.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await fake.drop()
            await runner.cleanup()
