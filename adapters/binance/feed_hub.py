"""Several symbol groups on one Binance market-data connection set.

Binance carries up to 1,024 streams on one connection; a daemon trading many symbols needs a
handful of connections, not one per symbol (a symbol per connection also made a quiet symbol's
connection look dead).  :class:`SharedBinanceFeed` owns one
:class:`~adapters.binance.websocket.BinanceMarketFeed` for every group whose feed settings are the
same (URLs, streams, timeouts, book depth: :func:`hub_key`) and routes each message to the group
of its symbol.  Each group gets a :class:`SharedFeedView`: the feed interface its feed actor runs
(``run(sink, sink_nowait=...)``, ``emitted``, ``last_emit_ns``, ``statistics()``, ``heard_ns()``).

Takes (from the feed): ``Trade``, ``Quote``, ``BookDelta``, ``BookSnapshot``.  Emits each to the
sink of its symbol's view; a message of a symbol whose view is not running (a group restarting, a
symbol just unsubscribed) is dropped and counted (``unrouted``).  When a view starts running and
its symbol's book is synced, the view first gets that book as a ``BookSnapshot``, so a group that
(re)starts on a running connection starts from a whole book.

Subscriptions: a view attaches when its group is built, its symbol is subscribed once the group's
feed actor first runs it (not while the group is still being restored) and unsubscribed when the
group stops. The hub reconciles the feed's subscriptions with its views once per ``flush_s`` turn
(0.5 s): at most one ``SUBSCRIBE`` and one ``UNSUBSCRIBE`` per connection a turn, well inside
Binance's 5 incoming messages per second per connection; groups started together (the daemon's
start) go into the first connection's URL at once. A symbol stops and starts again (a reload
restarting its group) without touching the others' data. The supervisor runs the hub in its task
group while any view is attached; ``linger_s`` after the last one left, the hub ends and its
connections close (unless a view attached meanwhile: the supervisor then keeps the same hub).

Per-group numbers: a view's statistics are its symbol's part of the feed's
(:meth:`BinanceMarketFeed.statistics` with a symbol): its connection's state and connection
counters, its own resyncs, snapshots, stalls and book, and the messages routed to it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors.messages import Message
from adapters.binance.websocket import BinanceFeedStatistics, BinanceMarketFeed

__all__ = ["SharedBinanceFeed", "SharedFeedView", "hub_key"]

log = logging.getLogger("tradingd.binance.ws")

Sink = Callable[[Message], Awaitable[None]]
SinkNowait = Callable[[Message], bool]


def hub_key(exchange: str, feed_settings: msgspec.Struct, symbol_field: str = "venue_symbol") -> bytes:
    """Groups whose feed settings are equal but for their symbol share a hub: this is its key."""
    settings = msgspec.structs.replace(feed_settings, **{symbol_field: ""})
    return exchange.encode() + b"\0" + msgspec.json.encode(settings)


class SharedFeedView:
    """One group's share of a :class:`SharedBinanceFeed`: the feed interface of its symbol."""

    def __init__(self, hub: SharedBinanceFeed, venue_symbol: str, symbol: str) -> None:
        self.hub, self.venue_symbol, self.symbol = hub, venue_symbol, symbol
        self.emitted = self.last_emit_ns = 0
        self.sink: Sink | None = None
        self.nowait: SinkNowait | None = None
        self.closed = False
        self.started = False  # its group's feed actor ran: only then is its symbol subscribed
        self.lock = anyio.Lock()  # held while the starting book goes out: the feed's messages wait

    async def run(
        self,
        sink: Sink,
        *,
        sink_nowait: SinkNowait | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Take this symbol's messages into ``sink`` until cancelled (the hub's connections carry on)."""
        if not self.started:
            self.started = True
            self.hub.changed()
        async with self.lock:
            self.sink, self.nowait = sink, sink_nowait
            snapshot = self.hub.feed.synced_snapshot(self.symbol)
            if snapshot is not None:  # started on a running connection: begin with the whole book
                if sink_nowait is None or not sink_nowait(snapshot):
                    await sink(snapshot)
                self.emitted += 1
                self.last_emit_ns = snapshot.ts_recv
        try:
            task_status.started()
            await anyio.sleep_forever()
        finally:
            self.sink = self.nowait = None

    def close(self) -> None:
        """The group stopped: its symbol leaves the connection (at the hub's next turn)."""
        if not self.closed:
            self.closed = True
            self.hub.detach(self)

    def statistics(self) -> BinanceFeedStatistics:
        own = self.hub.feed.statistics(self.symbol)
        return msgspec.structs.replace(own, emitted=self.emitted, last_emit_ns=self.last_emit_ns)

    def heard_ns(self) -> int:
        """This symbol's newest message, or its connection's last frame while its book is synced."""
        return max(self.last_emit_ns, self.hub.feed.heard_ns(self.symbol))


class SharedBinanceFeed:
    """One :class:`BinanceMarketFeed` for the groups of one set of feed settings, routed by symbol.

    ``make_feed`` builds the feed (with no symbols: the views bring them); ``on_idle`` is called
    when the hub has had no view for ``linger_s``: it returns True when the hub may end (the
    supervisor forgets it in the same step, so no view can attach to an ending hub).
    """

    def __init__(
        self,
        key: bytes,
        feed: BinanceMarketFeed,
        *,
        on_idle: Callable[[SharedBinanceFeed], bool] = lambda hub: True,
        flush_s: float = 0.5,
        linger_s: float = 10.0,
    ) -> None:
        self.key, self.feed = key, feed
        self.on_idle, self.flush_s, self.linger_s = on_idle, flush_s, linger_s
        self.views: dict[str, SharedFeedView] = {}  # our symbol -> its view
        self.unrouted = 0
        self.subscribe_requests = self.unsubscribe_requests = 0
        self._changed = anyio.Event()

    # --- views -------------------------------------------------------------------------------

    def view(self, venue_symbol: str, symbol: str) -> SharedFeedView:
        """A new group's view of ``symbol`` (Binance's name ``venue_symbol``); it attaches now."""
        view = SharedFeedView(self, venue_symbol, symbol)
        old = self.views.get(symbol)
        if old is not None:  # a group restarted before the old one closed: the new one takes over
            old.closed = True
            view.started = old.started  # and keeps the subscription (its run sends the book first)
        self.views[symbol] = view
        self._changed.set()
        return view

    def detach(self, view: SharedFeedView) -> None:
        if self.views.get(view.symbol) is view:
            del self.views[view.symbol]
            self._changed.set()

    def changed(self) -> None:
        """The views changed: reconcile the subscriptions at the next turn."""
        self._changed.set()

    # --- routing (the feed's sinks) ----------------------------------------------------------

    def _route_nowait(self, msg: Message) -> bool:
        view = self.views.get(msg.symbol)
        if view is None or view.sink is None:
            self.unrouted += 1
            return True  # nobody to take it: dropped
        nowait = view.nowait
        if nowait is not None and not view.lock.locked() and nowait(msg):
            view.emitted += 1
            view.last_emit_ns = msg.ts_recv
            return True
        return False

    async def _route(self, msg: Message) -> None:
        view = self.views.get(msg.symbol)
        sink = None if view is None else view.sink
        if view is None or sink is None:
            self.unrouted += 1
            return
        async with view.lock:  # after the view's starting book, if it is going out now
            if view.sink is None:
                self.unrouted += 1
                return
            await view.sink(msg)
        view.emitted += 1
        view.last_emit_ns = msg.ts_recv

    # --- running -----------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the feed and keep its subscriptions equal to the views' symbols; end when idle."""
        async with anyio.create_task_group() as tg:
            await tg.start(self._run_feed)
            task_status.started()
            idle_since: float | None = None
            while True:
                with anyio.move_on_after(self.linger_s):  # idle: wake to end even if nothing changes
                    await self._changed.wait()
                await anyio.sleep(self.flush_s)  # one turn: what attached meanwhile goes in one request
                self._changed = anyio.Event()
                await self._flush()
                now = anyio.current_time()
                if self.views:
                    idle_since = None
                elif idle_since is None:
                    idle_since = now
                elif now - idle_since >= self.linger_s and self.on_idle(self):
                    break
            tg.cancel_scope.cancel()

    async def _run_feed(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.feed.run(self._route, sink_nowait=self._route_nowait, task_status=task_status)

    def subscribed(self) -> dict[str, str]:
        """The feed's subscriptions: venue symbol -> ours."""
        return {v: o for shard in self.feed.shards for v, o in shard.symbols.items()}

    async def _flush(self) -> None:
        """Subscribe what the views want and the feed lacks; unsubscribe what no view wants."""
        have = self.subscribed()
        want: Mapping[str, str] = {v.venue_symbol: s for s, v in self.views.items() if v.started}
        gone = [v for v, ours in have.items() if want.get(v) != ours]
        if gone:
            self.unsubscribe_requests += 1
            await self.feed.unsubscribe(gone)
            have = self.subscribed()
        new = {v: ours for v, ours in want.items() if v not in have}
        if new:
            self.subscribe_requests += 1
            await self.feed.subscribe(new)

    def status(self) -> dict[str, object]:
        """The hub for /status: its connections and the groups (symbols) on them."""
        feed = self.feed
        return {
            "exchange": feed.exchange,
            "ws_url": feed.ws_url,
            "streams": list(feed.streams),
            "connections": feed.connections(),
            "connected": sum(s.ws is not None for s in feed.shards),
            "symbols": sorted(self.views),
            "reconnects": feed.reconnects,
            "rotations": feed.rotations,
            "unrouted": self.unrouted,
        }
