"""The full actor graph on replay: market events per second through one symbol group.

One XRP/ETH group is built exactly as the daemon builds it (feed → market-feed →
strategy, stop-monitor, paper exchange; risk, order, portfolio attached) and the
bundled real trades are replayed as fast as the CPU allows (``speed = 0``, looping).
The rate is the number of trades the market-feed accepted per second, measured over a
fixed window after a warm-up; the graph is lossless, so the strategy and every other
consumer handled them too (checked).

Variants, in the same run:
- ``feed → strategy``: only the replay feed, market-feed and strategy actors: trades in,
  bars built from them reach the breakout strategy (as the daemon runs it), and again
  with the strategy also receiving every trade;
- ``naive``: the same graph, but every channel used one ``await`` per message (send and
  receive) — the baseline the batch-drain pattern is measured against;
- ``mirror off``: our channels, no Redis;
- ``mirror on``: our channels, every message mirrored to the local Redis
  (127.0.0.1:6379, a throw-away prefix deleted afterwards).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import redis

from actors.channels import Channel, Router, quote_conflation_key
from actors.market_feed import MarketFeed
from actors.messages import Bar, Message, Trade
from actors.params import BreakoutParams
from actors.portfolio import Portfolio
from actors.runtime import GroupState, RestartPolicy, run_supervised
from actors.state import SymbolState
from actors.strategies.breakout import BreakoutStrategy
from actors.strategy import StrategyActor
from adapters.paper.account import PaperAccountState
from bench import run_async, write_result
from daemon.config import ChannelsSection, PaperAccount, RedisSection, parse_config
from daemon.group import FeedAdapter, SymbolGroup, make_feed
from daemon.metrics import Metrics
from daemon.mirror import RedisMirror

ROOT = Path(__file__).resolve().parent.parent
TRADES = ROOT / "adapters/replay/data/trades/XRP_ETH-trades.json.gz"
WARMUP_S = 0.5
WINDOW_S = 2.0
ROUNDS = 3

CONFIG = f"""
[accounts.paper]
balances = {{ ETH = "10.0" }}
[[groups]]
exchange = "paper"
symbol = "XRP/ETH"
account = "paper"
[groups.instrument]
base = "XRP"
quote = "ETH"
tick_size = "0.00000001"
step_size = "1"
[groups.feed]
path = "{TRADES}"
format = "trades"
speed = 0.0
loop = true
[groups.risk]
max_order_notional = "2.0"
"""


class NaiveChannel(Channel[Message]):
    """One await per message on both ends: the baseline."""

    def send_nowait(self, item: Message) -> bool:
        return False

    async def send(self, item: Message) -> None:
        await self._tx.send(item)
        self.sent += 1

    async def receive_batch(self, max_items: int = 1024) -> list[Message]:
        msg = await self._rx.receive()
        self.received += 1
        return [msg]


async def _measure(channel_cls: type[Channel[Message]], mirror: RedisMirror | None) -> dict[str, Any]:
    cfg = parse_config(CONFIG)
    gcfg = cfg.groups[0]
    tap = mirror.offer if mirror is not None else None
    portfolio = Portfolio("paper", Router(tap), channel_cls("portfolio", 4096), {}, {})
    paper = cfg.accounts["paper"]
    assert isinstance(paper, PaperAccount)
    account = PaperAccountState(paper)
    group = SymbolGroup(gcfg, account, portfolio, tap, ChannelsSection(), RestartPolicy(), channel_cls)
    async with anyio.create_task_group() as tg:
        if mirror is not None:
            await tg.start(mirror.run)
        tg.start_soon(run_supervised, portfolio, RestartPolicy(), GroupState("*", "portfolio"))
        await tg.start(group.run)
        await anyio.sleep(WARMUP_S)
        n0, s0, t0 = group.market_feed.accepted["Trade"], group.strategy.handled, time.perf_counter()
        await anyio.sleep(WINDOW_S)
        n1, s1, t1 = group.market_feed.accepted["Trade"], group.strategy.handled, time.perf_counter()
        tg.cancel_scope.cancel()
    dropped = mirror.statistics().dropped if mirror is not None else 0
    return {
        "events_per_s": (n1 - n0) / (t1 - t0),
        "strategy_msgs_per_s": (s1 - s0) / (t1 - t0),
        "fills": group.order.counts["filled"],
        "mirror_dropped": dropped,
    }


class _TradeBreakout(BreakoutStrategy):
    """The breakout strategy, also subscribed to trades (it ignores them): every event reaches it."""

    consumes = frozenset({"trade"})


async def _feed_to_strategy(with_trades: bool) -> dict[str, Any]:
    g = parse_config(CONFIG).groups[0]
    params = g.strategy
    assert isinstance(params, BreakoutParams), "the bench config's strategy is breakout"
    ex, sym = g.exchange, g.symbol
    router = Router()
    state = SymbolState(ex, sym, g.account)
    feed_inbox = Channel[Message]("market-feed", 4096, conflate_key=quote_conflation_key)
    market = MarketFeed(ex, sym, router, feed_inbox, state, g.bar_interval_s)
    feed = FeedAdapter(ex, sym, router, feed_inbox, make_feed(g))
    strategy = StrategyActor(
        ex,
        sym,
        router,
        Channel[Message]("strategy", 4096),
        state,
        _TradeBreakout(params) if with_trades else BreakoutStrategy(params),
        g.risk.max_order_notional,
        g.instrument.tick_size,
        g.instrument.step_size,
    )
    router.subscribe(strategy.inbox, (Trade, Bar) if with_trades else (Bar,))
    health = GroupState(ex, sym)
    async with anyio.create_task_group() as tg:
        for actor in (market, strategy, feed):
            tg.start_soon(run_supervised, actor, RestartPolicy(), health)
        await anyio.sleep(WARMUP_S)
        n0, s0, t0 = market.accepted["Trade"], strategy.handled, time.perf_counter()
        await anyio.sleep(WINDOW_S)
        n1, s1, t1 = market.accepted["Trade"], strategy.handled, time.perf_counter()
        tg.cancel_scope.cancel()
    return {"events_per_s": (n1 - n0) / (t1 - t0), "strategy_msgs_per_s": (s1 - s0) / (t1 - t0)}


async def _with_mirror(prefix: str, state_dir: Path) -> dict[str, Any]:
    cfg = RedisSection(prefix=prefix, maxlen=100_000, batch_size=1024)
    mirror = RedisMirror(cfg, state_dir, Metrics())
    return await _measure(Channel, mirror)


def main() -> dict[str, Any]:
    import tempfile

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # Interleaved rounds, median per variant: a noisy neighbour hits every variant alike.
        variants: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
            "feed_to_strategy": lambda: _feed_to_strategy(False),
            "feed_to_strategy_all_trades": lambda: _feed_to_strategy(True),
            "naive": lambda: _measure(NaiveChannel, None),
            "mirror_off": lambda: _measure(Channel, None),
            "mirror_on": lambda: _with_mirror(prefix, Path(tmp)),
        }
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, variant in variants.items():
                runs[name].append(run_async(variant))
        for name, got in runs.items():
            got.sort(key=lambda r: float(r["events_per_s"]))
            results[name] = {**got[len(got) // 2], "runs": [r["events_per_s"] for r in got]}
    client = redis.Redis()
    try:
        keys = list(client.scan_iter(f"{prefix}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
    off, on, naive = (results[k]["events_per_s"] for k in ("mirror_off", "mirror_on", "naive"))
    results["batch_vs_naive"] = off / naive
    results["mirror_cost_pct"] = 100.0 * (1 - on / off)
    print(f"  median of {ROUNDS} interleaved rounds of {WINDOW_S:g} s each")
    fts = results["feed_to_strategy"]["events_per_s"]
    fta = results["feed_to_strategy_all_trades"]["events_per_s"]
    print(
        f"  feed -> strategy (bars)       : {fts:>12,.0f} trades/s in, bars built from them to the strategy"
    )
    print(f"  feed -> strategy (every trade): {fta:>12,.0f} trades/s, the strategy also receiving each trade")
    print("  whole group (feed, strategy, risk, order, stop-monitor, paper exchange, portfolio):")
    print(f"  naive channels (one await/msg): {naive:>12,.0f} market events/s")
    print(f"  batch-drain, mirror off       : {off:>12,.0f} market events/s  ({off / naive:.1f}x naive)")
    print(
        f"  batch-drain, mirror on        : {on:>12,.0f} market events/s  "
        f"(mirror costs {results['mirror_cost_pct']:.0f} %, {results['mirror_on']['mirror_dropped']} dropped)"
    )
    write_result("actor_graph", results)
    return results
