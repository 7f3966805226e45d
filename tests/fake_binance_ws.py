"""A fake Binance combined-stream WebSocket (plus REST depth) on 127.0.0.1, replaying real frames.

``/stream?streams=a/b/c`` replays the frames of ``tests/data/binance/BINANCE.ws.1.0`` that match
the connection's streams, with the capture's timing compressed into ``replay_s`` seconds, then
stays open and idle.  ``{"method": "SUBSCRIBE" | "UNSUBSCRIBE", "params": [...], "id": N}`` changes
the connection's streams and is answered ``{"result": null, "id": N}``.

``/api/v3/depth?symbol=X`` serves the venue's current book: the captured snapshot
(``BINANCE.http.0.0``) advanced by every diff the latest connection has replayed (also the ones a
fault hid from the client), so a resync after a gap can succeed.

Fault knobs: ``drop_after`` (connection k is cut after ``drop_after[k]`` frames), ``silent``
(accept, then send nothing while answering pings), ``stall_symbol`` (never send that symbol's
frames), ``stale_snapshots`` (symbol -> how many snapshots older than its first diff to serve
first), ``gap`` (``(symbol, n)``: the n-th diff of that symbol is not sent, on the first connection).

Binance's ways on every connection: ``ping_every_s`` sends a ping frame that often (Binance: 20 s)
and counts the pongs (``pongs``); ``deaf`` accepts, then sends nothing and answers no ping (a
black-holed route), unlike ``silent``.

REST limits as Binance enforces them (``weight_limit`` per ``weight_window_s``, off by default):
each request's weight (depth 5/25/50/250 by ``limit``, exchangeInfo 20) is counted per window on
arrival, ``X-MBX-USED-WEIGHT-<n><s|m>`` says the total; a request over the limit gets 429 with
``Retry-After`` (seconds to the window's end); any request before that has passed gets a 418 ban
for ``ban_s`` (``Retry-After`` too), and so does every request during the ban.  ``statuses``
counts the replies by HTTP status.  The depth reply holds ``limit`` levels a side (default 100).
``/api/v3/exchangeInfo`` has the rateLimits (no symbols); ``/fake/stats`` the counters as JSON,
``POST /fake/calm`` ends a storm (no more drops or gaps).  ``python -m tests.fake_binance_ws
PORTFILE OPTIONS_JSON`` runs it as a process of its own and writes ``{"url", "rest_url"}`` to
PORTFILE once it listens.

Synthetic symbols (``synthetic=n``: ``SYN000USDT`` ...): a depth stream each on one timeline, one
update id every ``synthetic_tick_s`` changing one bid and one ask level, sent as a diff per tick
to the connections that want it; ``gap_every`` hides every n-th of a connection's diffs (a gap),
``drop_every_s`` cuts every connection that long after it opened.

Live mode (``live=True``) is what a real venue does instead: one timeline for everyone, started
by the first connection; a connection gets the frames from the moment it connected, never the
past, and the depth endpoint serves the book as of now.  ``max_connection_s`` closes every
connection after that long (Binance's 24 h limit, compressed).  ``trades_every_s`` adds aggregate
trades of NKNUSDT to the timeline at that cadence: copies of the captured one with increasing
ids, so a test can see every trade arrive exactly once.
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anyio
from aiohttp import web

from adapters.binance.data import read_rest_capture, read_ws_capture

DATA = Path(__file__).parent / "data" / "binance"
WS_CAPTURE = DATA / "BINANCE.ws.1.0"
REST_CAPTURE = DATA / "BINANCE.http.0.0"


@dataclass
class CaptureFrame:
    delay: float  # seconds since the capture's first frame
    stream: str
    symbol: str
    raw: str
    data: dict[str, Any]


def load_frames() -> list[CaptureFrame]:
    _, frames = read_ws_capture(WS_CAPTURE)
    t0 = frames[0].ts_recv
    out = []
    for f in frames:
        msg = json.loads(f.raw)
        out.append(
            CaptureFrame((f.ts_recv - t0) / 1e9, msg["stream"], msg["data"]["s"], f.raw.decode(), msg["data"])
        )
    return out


def load_snapshots() -> dict[str, dict[str, Any]]:
    snaps = {}
    for reply in read_rest_capture(REST_CAPTURE):
        symbol = reply.url.partition("symbol=")[2].partition("&")[0]
        snaps[symbol] = json.loads(reply.raw)
    return snaps


class _Book:
    """The venue's book of one symbol: a captured snapshot plus the diffs replayed since."""

    def __init__(self, snap: dict[str, Any]) -> None:
        self.lid: int = snap["lastUpdateId"]
        self.sides = {k: {Decimal(p): q for p, q in snap[k]} for k in ("bids", "asks")}

    def apply(self, data: dict[str, Any]) -> None:
        if data["u"] <= self.lid:
            return
        for key, side in (("b", "bids"), ("a", "asks")):
            for price, qty in data[key]:
                if Decimal(qty):
                    self.sides[side][Decimal(price)] = qty
                else:
                    self.sides[side].pop(Decimal(price), None)
        self.lid = data["u"]

    def reply(self, lid: int) -> dict[str, Any]:
        bids = sorted(self.sides["bids"].items(), reverse=True)
        asks = sorted(self.sides["asks"].items())
        return {
            "lastUpdateId": lid,
            "bids": [[str(p), q] for p, q in bids],
            "asks": [[str(p), q] for p, q in asks],
        }


class _SynBook:
    """A synthetic symbol's book: 20 levels a side, one update id per tick since it was created."""

    def __init__(self, tick_s: float) -> None:
        self.tick_s, self.t0 = tick_s, time.monotonic()
        self.lid = 1000
        self.bids = {Decimal(100) - Decimal(i) / 10: Decimal(1) for i in range(20)}
        self.asks = {Decimal(101) + Decimal(i) / 10: Decimal(1) for i in range(20)}
        self.changed: dict[int, tuple[Decimal, Decimal, Decimal]] = {}  # lid -> (bid, ask, qty)

    def advance(self) -> None:
        target = 1000 + int((time.monotonic() - self.t0) / self.tick_s)
        while self.lid < target:
            self.lid += 1
            k = self.lid
            bid, ask, qty = (
                Decimal(100) - Decimal(k % 20) / 10,
                Decimal(101) + Decimal(k % 20) / 10,
                Decimal(k % 7 + 1),
            )
            self.bids[bid] = self.asks[ask] = qty
            self.changed[k] = (bid, ask, qty)
            self.changed.pop(k - 10_000, None)

    def diff(self, symbol: str, first: int) -> dict[str, Any]:
        bids: dict[Decimal, Decimal] = {}
        asks: dict[Decimal, Decimal] = {}
        for k in range(first, self.lid + 1):
            bid, ask, qty = self.changed[k]
            bids[bid], asks[ask] = qty, qty
        ms = int(time.time() * 1000)
        return {
            "e": "depthUpdate",
            "E": ms,
            "s": symbol,
            "U": first,
            "u": self.lid,
            "b": [[str(p), str(q)] for p, q in bids.items()],
            "a": [[str(p), str(q)] for p, q in asks.items()],
        }

    def reply(self, limit: int) -> dict[str, Any]:
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.lid,
            "bids": [[str(p), str(q)] for p, q in bids],
            "asks": [[str(p), str(q)] for p, q in asks],
        }


@dataclass
class FakeBinanceWs:
    replay_s: float = 1.0
    drop_after: list[int] = field(default_factory=list)
    silent: bool = False
    stall_symbol: str = ""
    stale_snapshots: dict[str, int] = field(default_factory=dict)
    gap: tuple[str, int] | None = None
    url: str = ""  # ws://127.0.0.1:port (the stream base)
    rest_url: str = ""  # http://127.0.0.1:port
    connections: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)  # time.monotonic() of each request
    connect_streams: list[list[str]] = field(default_factory=list)
    snapshot_requests: list[str] = field(default_factory=list)
    hidden: list[tuple[str, int, int]] = field(default_factory=list)  # (symbol, U, u) diffs not sent
    frames: list[CaptureFrame] = field(default_factory=load_frames)
    snapshots: dict[str, dict[str, Any]] = field(default_factory=load_snapshots)
    books: dict[str, _Book] = field(default_factory=dict)
    live: bool = False
    max_connection_s: float | None = None
    trades_every_s: float | None = None
    t0: float | None = None  # live mode: when the timeline started (time.monotonic())
    closed_by_limit: int = 0
    trade_price: Callable[[], Decimal] | None = None  # live mode: synthetic trades' price when sent
    ping_every_s: float | None = None
    deaf: bool = False
    pongs: int = 0
    weight_limit: int | None = None
    weight_window_s: int = 60
    ban_s: float = 120.0
    statuses: Counter[int] = field(default_factory=Counter)
    weight_peak: int = 0  # the most weight counted in one window
    synthetic: int = 0
    synthetic_tick_s: float = 0.1
    gap_every: int = 0
    drop_every_s: float | None = None
    open_connections: int = 0
    _window: tuple[int, int] = (0, 0)  # (window index, weight counted in it)
    _blocked_until: float = 0.0  # after a 429: a request before this is banned
    _banned_until: float = 0.0
    _syn: dict[str, _SynBook] = field(default_factory=dict)
    _timeline: list[CaptureFrame] | None = None

    def timeline(self) -> list[CaptureFrame]:
        """The frames of live mode, ``delay`` in seconds of the (compressed) timeline."""
        if self._timeline is None:
            self._timeline = self._make_timeline()
        return self._timeline

    def _make_timeline(self) -> list[CaptureFrame]:
        span = self.frames[-1].delay or 1.0
        out = [
            CaptureFrame(f.delay / span * self.replay_s, f.stream, f.symbol, f.raw, f.data)
            for f in self.frames
        ]
        if self.trades_every_s:  # the captured NKNUSDT trade becomes the model of a steady stream
            model = next(f for f in self.frames if f.stream == "nknusdt@aggTrade")
            out = [f for f in out if f.stream != model.stream]
            n = int(self.replay_s / self.trades_every_s)
            for k in range(n):
                ms = int(k * self.trades_every_s * 1000)  # trade time moves with the timeline
                data = {
                    **model.data,
                    "a": model.data["a"] + k,
                    "T": model.data["T"] + ms,
                    "E": model.data["E"] + ms,
                }
                raw = json.dumps({"stream": model.stream, "data": data})
                out.append(CaptureFrame(k * self.trades_every_s, model.stream, model.symbol, raw, data))
        return sorted(out, key=lambda f: f.delay)

    def live_book(self, symbol: str) -> _Book:
        """Live mode: the captured snapshot advanced by every diff of the timeline up to now."""
        book = _Book(self.snapshots[symbol])
        now = 0.0 if self.t0 is None else time.monotonic() - self.t0
        for f in self.timeline():
            if f.delay > now:
                break
            if f.symbol == symbol and f.data.get("e") == "depthUpdate":
                book.apply(f.data)
        return book

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=False)  # pings answered below (not when deaf)
        await ws.prepare(request)
        conn = self.connections
        self.connections += 1
        self.open_connections += 1
        streams = [s for s in request.query.get("streams", "").split("/") if s]
        self.connect_streams.append(streams)
        wanted = set(streams)
        try:
            async with anyio.create_task_group() as tg:
                if self.deaf:
                    pass
                elif self.synthetic:
                    tg.start_soon(self._replay_synthetic, request, ws, wanted)
                elif self.live:
                    tg.start_soon(self._replay_live, ws, wanted)
                else:
                    tg.start_soon(self._replay, request, ws, conn, wanted)
                if self.ping_every_s and not self.deaf:
                    tg.start_soon(self._ping, ws)
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT and not self.deaf:
                        await self._request(ws, msg.data, wanted)
                    elif msg.type is aiohttp.WSMsgType.PING and not self.deaf:
                        await ws.pong(msg.data)
                    elif msg.type is aiohttp.WSMsgType.PONG:
                        self.pongs += 1
                tg.cancel_scope.cancel()
        finally:
            self.open_connections -= 1
        return ws

    async def _ping(self, ws: web.WebSocketResponse) -> None:
        assert self.ping_every_s is not None
        while not ws.closed:
            await anyio.sleep(self.ping_every_s)
            await ws.ping(b"binance")

    def syn_book(self, symbol: str) -> _SynBook:
        book = self._syn.get(symbol)
        if book is None:
            book = self._syn[symbol] = _SynBook(self.synthetic_tick_s)
        book.advance()
        return book

    async def _replay_synthetic(
        self, request: web.Request, ws: web.WebSocketResponse, wanted: set[str]
    ) -> None:
        opened = time.monotonic()
        sent: dict[str, int] = {}  # symbol -> the last update id this connection sent
        n = 0
        while True:
            await anyio.sleep(self.synthetic_tick_s)
            if self.drop_every_s is not None and time.monotonic() - opened >= self.drop_every_s:
                assert request.transport is not None
                request.transport.abort()  # a cut, not a goodbye
                return
            for name in sorted(wanted):
                symbol = name.partition("@")[0].upper()
                if not symbol.startswith("SYN") or "@depth" not in name:
                    continue
                book = self.syn_book(symbol)
                first = sent.get(symbol, book.lid)
                sent[symbol] = book.lid
                if book.lid <= first:
                    continue
                n += 1
                if self.gap_every and n % self.gap_every == 0:
                    continue
                await ws.send_str(json.dumps({"stream": name, "data": book.diff(symbol, first + 1)}))

    async def _request(self, ws: web.WebSocketResponse, text: str, wanted: set[str]) -> None:
        req = json.loads(text)
        self.requests.append(req)
        self.request_times.append(time.monotonic())
        if req.get("method") == "SUBSCRIBE":
            wanted.update(req["params"])
        elif req.get("method") == "UNSUBSCRIBE":
            wanted.difference_update(req["params"])
        await ws.send_str(json.dumps({"result": None, "id": req.get("id")}))

    async def _replay(
        self, request: web.Request, ws: web.WebSocketResponse, conn: int, wanted: set[str]
    ) -> None:
        if self.silent:
            await anyio.sleep_forever()
        self.books = {s: _Book(snap) for s, snap in self.snapshots.items()}
        span = self.frames[-1].delay or 1.0
        limit = self.drop_after[conn] if conn < len(self.drop_after) else None
        start, sent, diffs = anyio.current_time(), 0, dict.fromkeys(self.snapshots, 0)
        for frame in self.frames:
            await anyio.sleep(max(0.0, start + frame.delay / span * self.replay_s - anyio.current_time()))
            if frame.data.get("e") == "depthUpdate":
                self.books[frame.symbol].apply(frame.data)
                diffs[frame.symbol] += 1
                if self.gap is not None and conn == 0 and self.gap == (frame.symbol, diffs[frame.symbol]):
                    self.hidden.append((frame.symbol, frame.data["U"], frame.data["u"]))
                    continue
            if frame.stream not in wanted or frame.symbol == self.stall_symbol:
                continue
            if limit is not None and sent >= limit:
                assert request.transport is not None
                request.transport.abort()  # a cut, not a goodbye: no close frame
                return
            await ws.send_str(frame.raw)
            sent += 1
        await anyio.sleep_forever()

    async def _replay_live(self, ws: web.WebSocketResponse, wanted: set[str]) -> None:
        now = time.monotonic()
        if self.t0 is None:
            self.t0 = now
        opened = now - self.t0
        deadline = None if self.max_connection_s is None else opened + self.max_connection_s
        for frame in self.timeline():
            if frame.delay < opened:
                continue  # the past: a new connection gets what happens from now on
            if deadline is not None and frame.delay >= deadline:
                break
            await anyio.sleep(max(0.0, self.t0 + frame.delay - time.monotonic()))
            if frame.stream in wanted:
                raw = frame.raw
                if self.trade_price is not None and frame.data.get("e") == "aggTrade":
                    raw = json.dumps(
                        {"stream": frame.stream, "data": {**frame.data, "p": str(self.trade_price())}}
                    )
                await ws.send_str(raw)
        if deadline is not None:
            await anyio.sleep(max(0.0, self.t0 + deadline - time.monotonic()))
            self.closed_by_limit += 1
            await ws.close(code=1000, message=b"connection lifetime reached")
            return
        await anyio.sleep_forever()

    def _limited(self, weight: int) -> web.Response | None:
        """Binance's REST limits: None when the request may go on, else its 429 or 418."""
        if self.weight_limit is None:
            return None
        now = time.monotonic()
        if now < self._banned_until or now < self._blocked_until:
            self._banned_until = max(self._banned_until, now + self.ban_s)
            self.statuses[418] += 1
            retry = str(math.ceil(self._banned_until - now))
            body = {"code": -1003, "msg": "Way too many requests; IP banned."}
            return web.json_response(body, status=418, headers={"Retry-After": retry})
        index = int(time.time() // self.weight_window_s)
        used = self._window[1] if self._window[0] == index else 0
        if used + weight > self.weight_limit:
            end = (index + 1) * self.weight_window_s
            self._blocked_until = now + (end - time.time())
            self.statuses[429] += 1
            retry = str(max(1, math.ceil(end - time.time())))
            body = {"code": -1003, "msg": "Too much request weight used; please use WebSocket Streams."}
            return web.json_response(body, status=429, headers={"Retry-After": retry})
        self._window = (index, used + weight)
        self.weight_peak = max(self.weight_peak, used + weight)
        return None

    def _weight_headers(self) -> dict[str, str]:
        if self.weight_limit is None:
            return {}
        n = self.weight_window_s
        name = f"X-MBX-USED-WEIGHT-{n // 60}M" if n % 60 == 0 else f"X-MBX-USED-WEIGHT-{n}S"
        return {name: str(self._window[1])}

    async def exchange_info(self, request: web.Request) -> web.Response:
        if (refused := self._limited(20)) is not None:
            return refused
        self.statuses[200] += 1
        n = self.weight_window_s
        interval = ("MINUTE", n // 60) if n % 60 == 0 else ("SECOND", n)
        limits = [{"rateLimitType": "REQUEST_WEIGHT", "interval": interval[0], "intervalNum": interval[1]}]
        limits[0]["limit"] = self.weight_limit or 6000
        body = {"timezone": "UTC", "serverTime": int(time.time() * 1000), "rateLimits": limits, "symbols": []}
        return web.json_response(body, headers=self._weight_headers())

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "weight_peak": self.weight_peak,
                "snapshot_requests": len(self.snapshot_requests),
                "connections": self.connections,
                "open_connections": self.open_connections,
                "pongs": self.pongs,
            }
        )

    async def calm(self, request: web.Request) -> web.Response:
        self.drop_every_s, self.gap_every = None, 0
        return web.json_response({"calm": True})

    async def depth(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        try:
            limit = min(max(int(request.query.get("limit", "100")), 1), 5000)
        except ValueError:
            limit = 100
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        if (refused := self._limited(weight)) is not None:
            return refused
        self.statuses[200] += 1
        self.snapshot_requests.append(symbol)
        if symbol.startswith("SYN") and self.synthetic:
            return web.json_response(self.syn_book(symbol).reply(limit), headers=self._weight_headers())
        if symbol not in self.snapshots:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if self.live:
            book = self.live_book(symbol)
        else:
            book = self.books.get(symbol) or _Book(self.snapshots[symbol])
        lid = book.lid
        if self.stale_snapshots.get(symbol, 0) > 0:
            self.stale_snapshots[symbol] -= 1
            first = next(
                f.data["U"] for f in self.frames if f.symbol == symbol and f.data.get("e") == "depthUpdate"
            )
            lid = first - 10
        reply = book.reply(lid)
        reply["bids"], reply["asks"] = reply["bids"][:limit], reply["asks"][:limit]
        return web.json_response(reply, headers=self._weight_headers())


@asynccontextmanager
async def open_fake_binance_ws(**options: Any) -> AsyncIterator[FakeBinanceWs]:
    """Start a :class:`FakeBinanceWs` on 127.0.0.1 (free port): ``fake.url``, ``fake.rest_url``."""
    fake = FakeBinanceWs(**options)
    app = web.Application()
    app.router.add_get("/stream", fake.stream)
    app.router.add_get("/api/v3/depth", fake.depth)
    app.router.add_get("/api/v3/exchangeInfo", fake.exchange_info)
    app.router.add_get("/fake/stats", fake.stats)
    app.router.add_post("/fake/calm", fake.calm)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        fake.url, fake.rest_url = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
        yield fake
    finally:
        with anyio.move_on_after(3, shield=True):
            await runner.cleanup()


async def _serve(portfile: Path, options: dict[str, Any]) -> None:
    async with open_fake_binance_ws(**options) as fake:
        tmp = portfile.with_suffix(".tmp")
        tmp.write_text(json.dumps({"url": fake.url, "rest_url": fake.rest_url}))
        tmp.rename(portfile)
        await anyio.sleep_forever()


if __name__ == "__main__":
    import sys

    anyio.run(_serve, Path(sys.argv[1]), json.loads(sys.argv[2]))
