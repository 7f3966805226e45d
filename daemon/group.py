"""One (exchange, symbol) group: the place that wires its actors together.

A group owns its router, one inbox per actor, the shared :class:`SymbolState`, and
the actors: feed adapter, market-feed, strategy, risk, order, stop-monitor and (on a
paper account) the paper exchange.  Routes (who receives which message type):

    feed adapter ──► market-feed ──Trade/Bar/Quote──► strategy, stop-monitor, paper
    strategy ──OrderIntent──► risk ◄──OrderIntent── stop-monitor
    risk ──RiskApproved──► order, stop-monitor;  RiskRejected ──► strategy, stop-monitor
    order ──SubmitOrder/CancelOrder──► paper ──order events──► order
    order ──PositionChanged──► strategy, stop-monitor, portfolio;  OrderFilled ──► portfolio

Every published message also goes to the router's tap (the Redis mirror).  Order-path
volume is small and its channels are sized so the order ↔ venue loop cannot fill both
ways at once.  ``apply`` updates strategy and risk parameters in place.

The stop-monitor also gets OrderAccepted (its native stop orders) and publishes
CancelOrder to the venue; risk also gets PositionChanged and Bar (daily PnL).  When the
group is halted (admin or supervisor) and ``risk.halt_cancels_orders`` is set, a
CancelOrder is published for every open order that is not reduce-only (entries; exits
and native stops stay).  On a real venue risk also gets the group's entry gate
(:func:`daemon.entry_gate.venue_gate`): no new entries while the venue is blind or the book
stale, without a halt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import anyio
import msgspec
from anyio.abc import TaskGroup, TaskStatus

from actors.account_risk import AccountRisk
from actors.channels import Channel, Router, Tap, quote_conflation_key
from actors.market_feed import MarketFeed
from actors.messages import (
    BalancesChanged,
    Bar,
    CancelIntent,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    PositionChanged,
    Quote,
    RiskApproved,
    RiskRejected,
    Trade,
)
from actors.order import OrderActor
from actors.portfolio import Portfolio
from actors.risk import RiskActor
from actors.runtime import Actor, GroupState, RestartPolicy, run_supervised
from actors.state import SymbolState
from actors.stop_monitor import StopMonitor
from actors.strategies.base import Strategy
from actors.strategies.registry import build_strategy
from actors.strategy import StrategyActor
from adapters.binance.account_stream import AccountUserStream
from adapters.binance.execution import BinanceExecution
from adapters.okx.config import OkxFeed
from adapters.okx.data import to_inst_id
from adapters.okx.websocket import OkxMarketFeed
from adapters.paper.account import PaperAccountState
from adapters.paper.actor import PaperExchange
from adapters.replay.feed import ReplayFeed
from daemon.config import AccountConfig, BinanceAccount, BinanceFeed, ChannelsSection, FeedConfig, GroupConfig
from daemon.config import ReplayFeed as ReplayFeedConfig
from daemon.entry_gate import venue_gate
from daemon.feed_hubs import binance_feed

ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired)
MARKET = (Trade, Bar, Quote)


class FeedAdapter(Actor):
    """Runs the venue/replay feed as a supervised actor; its sink is the market-feed inbox."""

    kind = "feed"

    def __init__(
        self, exchange: str, symbol: str, router: Router, inbox: Channel[Message], feed: Feed
    ) -> None:
        self.feed = feed
        super().__init__(exchange, symbol, router, inbox)

    async def run(self) -> None:
        await self.feed.run(self.inbox.send, sink_nowait=self.inbox.send_nowait)

    @property
    def emitted(self) -> int:
        return self.feed.emitted

    @property
    def handled(self) -> int:
        """Messages the feed delivered into the market-feed inbox."""
        return self.feed.emitted

    @handled.setter
    def handled(self, value: int) -> None:
        pass  # counted by the feed itself

    @property
    def last_message_ns(self) -> int:
        return self.feed.last_emit_ns

    @last_message_ns.setter
    def last_message_ns(self, value: int) -> None:
        pass  # the feed keeps its own clock

    async def handle(self, msg: Message) -> None:  # pragma: no cover - the feed has no inbox of its own
        raise NotImplementedError


def oco_allowed(venue: PaperExchange | BinanceExecution) -> Callable[[], bool]:
    """Whether ``venue`` takes OCO lists for its symbol: paper always; Binance where exchangeInfo
    says ``ocoAllowed`` (asked each time: the rules load after the group is built; not loaded yet,
    the list is tried and the execution actor, which waits for the rules, refuses it unsent where
    ``ocoAllowed`` is false: the stop-monitor then rests a plain native stop); any other venue
    never (its stops rest alone)."""
    if isinstance(venue, BinanceExecution):

        def binance() -> bool:
            rules = venue.rules
            return rules is None or rules.oco_allowed

        return binance
    paper = isinstance(venue, PaperExchange)
    return lambda: paper


class Feed(Protocol):
    """What a market-data source offers the group: replay files and live venues alike."""

    emitted: int
    last_emit_ns: int

    def statistics(self) -> msgspec.Struct: ...

    async def run(
        self,
        sink: Callable[[Message], Awaitable[None]],
        *,
        sink_nowait: Callable[[Message], bool] | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None: ...


def builds_bars(feed: FeedConfig) -> bool:
    """Bars are built from trades unless the feed brings its own (recorded candles)."""
    return not (isinstance(feed, ReplayFeedConfig) and feed.format == "candles")


def make_feed(cfg: GroupConfig) -> Feed:
    feed = cfg.feed
    if isinstance(feed, ReplayFeedConfig):
        return ReplayFeed(feed, cfg.exchange, cfg.symbol)
    if isinstance(feed, OkxFeed):
        return OkxMarketFeed(
            feed.ws_url,
            {feed.inst_id or to_inst_id(cfg.symbol): cfg.symbol},
            channels=feed.channels,
            exchange=cfg.exchange,
            rest_url=feed.rest_url if feed.rules_refresh_s > 0 else None,
            simulated=feed.simulated,
            rules_refresh_s=feed.rules_refresh_s,
            ping_after_s=feed.ping_after_s,
            silence_timeout_s=feed.silence_timeout_s,
            resubscribe_timeout_s=feed.resubscribe_timeout_s,
            book_depth=feed.book_depth,
        )
    return binance_feed(feed, cfg.exchange, {feed.venue_symbol: cfg.symbol})


def make_strategy(cfg: GroupConfig) -> Strategy[Any]:
    """The group's strategy, by the type of its ``[groups.strategy]`` table (its ``name``)."""
    return build_strategy(cfg.strategy)


class SymbolGroup:
    def __init__(
        self,
        cfg: GroupConfig,
        account: PaperAccountState,
        portfolio: Portfolio,
        tap: Tap | None,
        channels: ChannelsSection,
        policy: RestartPolicy,
        channel_cls: type[Channel[Message]] = Channel,
        durable: Callable[[], Awaitable[object]] | None = None,
        venue_account: AccountConfig | None = None,
        account_risk: AccountRisk | None = None,
        account_stream: AccountUserStream | None = None,
        feed: Feed | None = None,
    ) -> None:
        self.cfg = cfg
        self.policy = policy
        ex, sym = cfg.exchange, cfg.symbol
        self.health = GroupState(ex, sym)
        self.state = SymbolState(ex, sym, cfg.account)
        self.router = Router(tap)
        self.portfolio = portfolio
        cap = channels.capacity

        def inbox(name: str, conflate: bool = False) -> Channel[Message]:
            key = quote_conflation_key if conflate else None
            return channel_cls(f"{name}:{ex}:{sym}", cap, conflate_key=key)

        inst = cfg.instrument
        self.market_feed = MarketFeed(
            ex,
            sym,
            self.router,
            inbox("market-feed", True),
            self.state,
            cfg.bar_interval_s if builds_bars(cfg.feed) else None,
        )
        self.feed = FeedAdapter(
            ex, sym, self.router, self.market_feed.inbox, make_feed(cfg) if feed is None else feed
        )
        self.strategy = StrategyActor(
            ex,
            sym,
            self.router,
            inbox("strategy", True),
            self.state,
            make_strategy(cfg),
            cfg.risk.max_order_notional,
            inst.tick_size,
            inst.step_size,
        )
        self.risk = RiskActor(
            ex,
            sym,
            self.router,
            inbox("risk"),
            self.state,
            self.health,
            cfg.risk,
            account=account_risk,
            quote=cfg.instrument.quote,
        )
        self._leave_account = (
            account_risk.register(cfg.key, cfg.instrument.quote, self.risk) if account_risk else lambda: None
        )
        self.order = OrderActor(
            ex,
            sym,
            self.router,
            inbox("order"),
            self.state,
            inst.tick_size,
            inst.step_size,
            durable=durable,
            base_asset=inst.base,
            quote_asset=inst.quote,
        )
        # Both venues (paper, Binance spot) take stop_market orders: native stops are possible.
        self.stop_monitor = StopMonitor(
            ex,
            sym,
            self.router,
            inbox("stop-monitor", True),
            cfg.risk,
            venue_stops=True,
            tick_size=inst.tick_size,
        )
        self.venue: PaperExchange | BinanceExecution
        if isinstance(venue_account, BinanceAccount):  # a real account: orders go to Binance
            feed_cfg = cfg.feed
            self.venue = BinanceExecution(
                ex,
                sym,
                self.router,
                inbox("binance-execution"),
                inst,
                cfg.account,
                venue_account,
                venue_symbol=feed_cfg.venue_symbol if isinstance(feed_cfg, BinanceFeed) else "",
                last_price=lambda: self.state.last_price,
                account_stream=account_stream,
            )
        else:
            self.venue = PaperExchange(ex, sym, self.router, inbox("paper-exchange", True), inst, account)
        self.stop_monitor.venue_oco = oco_allowed(self.venue)  # SL + TP as one list where the symbol may
        self.risk.venue_check = venue_gate(self)  # entries refused while the venue is blind or the book stale
        self.risk.leaves_of = self.order.signed_leaves  # a cancel-replace is netted against its old order
        self._wire()
        self.actors: list[Actor] = [
            self.feed,
            self.market_feed,
            self.strategy,
            self.risk,
            self.order,
            self.stop_monitor,
            self.venue,
        ]
        state = self.state
        for actor in self.actors:  # what they stamp on their own: the market's time, not the wall clock
            actor.event_time = lambda: state.last_ts_event
        self.scope: anyio.CancelScope | None = None
        self.recovery: list[str] = []  # what restart recovery did (daemon.restore), for /status
        self._tg: TaskGroup | None = None
        self.health.on_halt.append(self.cancel_open_entries)

    @property
    def key(self) -> tuple[str, str]:
        return self.cfg.key

    @property
    def name(self) -> str:
        return f"{self.cfg.exchange}:{self.cfg.symbol}"

    def _wire(self) -> None:
        r = self.router
        wants = self.strategy.strategy.consumes
        market = (Bar, *((Trade,) if "trade" in wants else ()), *((Quote,) if "quote" in wants else ()))
        r.subscribe(self.strategy.inbox, (*market, PositionChanged, RiskApproved, RiskRejected))
        r.subscribe(self.risk.inbox, (OrderIntent, PositionChanged, Bar))
        r.subscribe(self.order.inbox, (RiskApproved, CancelIntent, *ORDER_EVENTS))
        r.subscribe(
            self.stop_monitor.inbox,
            (
                Trade,
                Bar,
                RiskApproved,
                RiskRejected,
                PositionChanged,
                OrderAccepted,
                OrderFilled,
                OrderRejected,
                OrderCanceled,
                OrderExpired,
            ),
        )
        r.subscribe(self.venue.inbox, self.venue.subscribes)
        r.subscribe(self.portfolio.inbox, (OrderFilled, PositionChanged, BalancesChanged))

    def apply(self, cfg: GroupConfig) -> None:
        """Config reload: strategy and risk parameters in place; nothing restarts."""
        self.cfg = cfg
        self.strategy.apply_params(make_strategy(cfg), cfg.risk.max_order_notional)
        self.risk.apply_limits(cfg.risk)
        self.stop_monitor.apply_limits(cfg.risk)

    def cancel_open_entries(self, reason: str) -> int:
        """On halt: CancelOrder for each open order that is not reduce-only; returns how many."""
        if not self.cfg.risk.halt_cancels_orders:
            return 0
        fields = self.order.system_fields()
        cancels = [
            CancelOrder(client_order_id=r.cid, venue_order_id=r.venue_order_id, **fields)
            for r in self.order.open_orders()
            if not r.intent.reduce_only
        ]
        for cancel in cancels:
            for full in self.router.publish_nowait(cancel):
                if self._tg is not None:  # a full venue inbox: finish the send in the group's tasks
                    self._tg.start_soon(full.send, cancel)
        if cancels:
            self.order.log.warning("group halted (%s): canceling %d open entry orders", reason, len(cancels))
        return len(cancels)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every actor of the group until cancelled (``stop``)."""
        with anyio.CancelScope() as scope:
            self.scope = scope
            async with anyio.create_task_group() as tg:
                self._tg = tg
                for actor in self.actors:
                    tg.start_soon(run_supervised, actor, self.policy, self.health, name=actor.name)
                task_status.started()
        self.portfolio_detach()

    def stop(self) -> None:
        """Cancel the group's actors; open paper orders are canceled and their reservations released."""
        self._leave_account()
        close = getattr(self.feed.feed, "close", None)  # a shared connection's view: leave it
        if close is not None:
            close()
        if self.scope is not None:
            self.scope.cancel()
        self.venue.close_book("venue stopped")

    def portfolio_detach(self) -> None:
        self.router.unsubscribe(self.portfolio.inbox)

    def feed_age_s(self, now_ns: int) -> float | None:
        """Seconds since the feed was last known current: its last trade, or for a live feed whose
        connection is heard (pings count) and whose book is synced, that (a quiet symbol is fine)."""
        heard = getattr(self.feed.feed, "heard_ns", None)
        last = max(self.state.last_recv_ns, heard() if heard is not None else 0)
        return None if last == 0 else (now_ns - last) / 1e9
