"""The daemon's shared market-data connections: one hub per set of Binance feed settings.

Groups whose ``[groups.feed]`` is a Binance feed with ``shared_connection = true`` (the default)
and the same settings but for ``venue_symbol`` share one
:class:`~adapters.binance.feed_hub.SharedBinanceFeed`: one connection per 1,024 streams, not one
per symbol.  :class:`FeedHubs` finds or makes the hub of a group's settings (:meth:`feed_for`),
runs a new hub in the supervisor's task group, and forgets a hub that has had no group for its
linger time (the hub then ends and closes its connections).  Takes and emits no messages: the
hubs route the feed's messages to the groups.
"""

from __future__ import annotations

from anyio.abc import TaskGroup

from adapters.binance.feed_hub import SharedBinanceFeed, SharedFeedView, hub_key
from adapters.binance.websocket import BinanceMarketFeed
from daemon.config_schema import BinanceFeed, GroupConfig

__all__ = ["FeedHubs", "binance_feed"]


def binance_feed(feed: BinanceFeed, exchange: str, symbols: dict[str, str]) -> BinanceMarketFeed:
    """The live feed of ``symbols`` (venue -> ours) with ``feed``'s settings."""
    return BinanceMarketFeed(
        feed.ws_url,
        feed.rest_url,
        symbols,
        streams=tuple(feed.streams),
        exchange=exchange,
        silence_timeout_s=feed.silence_timeout_s,
        book_depth=feed.book_depth,
        stall_timeout_s=feed.stall_timeout_s,
        rotate_after_s=feed.rotate_after_s,
    )


class FeedHubs:
    """The running hubs by key; ``tg`` (the supervisor's) runs them."""

    def __init__(self, tg: TaskGroup, *, flush_s: float = 0.5, linger_s: float = 10.0) -> None:
        self.tg, self.flush_s, self.linger_s = tg, flush_s, linger_s
        self.hubs: dict[bytes, SharedBinanceFeed] = {}

    def feed_for(self, cfg: GroupConfig) -> SharedFeedView | None:
        """The group's view of its shared connection, or None when its feed is its own."""
        feed = cfg.feed
        if not isinstance(feed, BinanceFeed) or not feed.shared_connection:
            return None
        key = hub_key(cfg.exchange, feed)
        hub = self.hubs.get(key)
        if hub is None:
            hub = SharedBinanceFeed(
                key,
                binance_feed(feed, cfg.exchange, {}),
                on_idle=self._forget,
                flush_s=self.flush_s,
                linger_s=self.linger_s,
            )
            self.hubs[key] = hub
            self.tg.start_soon(hub.run, name=f"feed-hub:{cfg.exchange}:{feed.ws_url}")
        return hub.view(feed.venue_symbol, cfg.symbol)

    def _forget(self, hub: SharedBinanceFeed) -> bool:
        """An idle hub ends: no group can attach to it from now on."""
        if hub.views:
            return False
        if self.hubs.get(hub.key) is hub:
            del self.hubs[hub.key]
        return True

    def status(self) -> list[dict[str, object]]:
        return [hub.status() for hub in self.hubs.values()]
