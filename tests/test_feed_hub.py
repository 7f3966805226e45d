"""Several groups on one Binance market-data connection (adapters/binance/feed_hub.py).

Against the fake Binance stream (real captured frames of four symbols, live mode: one timeline,
a connection gets what happens from the moment it subscribed): the daemon's groups share one
connection, each sees only its symbol (books, counters, status), a reload takes a symbol off and
back on the running connection without a reconnect or a gap for the others, many groups joining
at once stay within Binance's 5 messages a second, an idle hub closes its connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from actors.messages import BookDelta, BookSnapshot, Quote
from adapters.binance.feed_hub import SharedBinanceFeed, hub_key
from adapters.binance.websocket import BinanceMarketFeed
from daemon.app import Daemon
from daemon.config import load_config, parse_config
from daemon.config_schema import BinanceFeed
from daemon.metrics import Metrics
from tests.fake_binance_ws import FakeBinanceWs, open_fake_binance_ws
from tests.helpers import module_process
from tests.test_binance_feed import Collector

pytestmark = pytest.mark.anyio

GROUPS = {  # ours: (venue, tick, step)
    "NKN/USDT": ("NKNUSDT", "0.0001", "0.1"),
    "BLZ/ETH": ("BLZETH", "0.00000001", "1"),
    "LRC/BTC": ("LRCBTC", "0.00000001", "1"),
    "RUNE/EUR": ("RUNEEUR", "0.001", "0.01"),
}
FAST: dict[str, Any] = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1, "snapshot_retry_s": 0.02}


def _config(state: Path, fake: FakeBinanceWs, symbols: list[str], *, shared: bool = True) -> str:
    text = f"""
[daemon]
state_dir = "{state}"
[health]
port = 0
[redis]
enabled = false
[accounts.paper]
balances = {{ USDT = "1000", ETH = "1", BTC = "0.1", EUR = "1000" }}
"""
    for ours in symbols:
        venue, tick, step = GROUPS[ours]
        base, quote = ours.split("/")
        text += f"""
[[groups]]
exchange = "binance"
symbol = "{ours}"
account = "paper"
[groups.instrument]
base = "{base}"
quote = "{quote}"
tick_size = "{tick}"
step_size = "{step}"
[groups.feed]
kind = "binance"
venue_symbol = "{venue}"
ws_url = "{fake.url}"
rest_url = "{fake.rest_url}"
silence_timeout_s = 5.0
stall_timeout_s = 60.0
shared_connection = {"true" if shared else "false"}
[groups.risk]
max_order_notional = "50"
"""
    return text


async def until(cond: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.02)


def _books_synced(daemon: Daemon, symbols: list[str]) -> bool:
    groups = daemon.supervisor.groups
    return all(
        ("binance", s) in groups and groups[("binance", s)].router.counts.get(BookSnapshot, 0) >= 1
        for s in symbols
    )


async def test_groups_share_one_connection_and_each_sees_only_its_symbol(tmp_path: Path) -> None:
    async with open_fake_binance_ws(live=True, replay_s=8.0) as fake:
        cfg = parse_config(_config(tmp_path / "state", fake, list(GROUPS)))
        daemon = Daemon(cfg, tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: _books_synced(daemon, list(GROUPS)), "every group's book")
            groups = daemon.supervisor.groups
            busy = ["NKN/USDT", "BLZ/ETH", "LRC/BTC"]  # RUNE/EUR: 2 diffs in the capture, a quiet symbol
            await until(
                lambda: all(groups[("binance", s)].router.counts.get(BookDelta, 0) > 0 for s in busy),
                "deltas for the busy groups",
            )
            status = daemon.status()
            metrics = daemon.metrics.render()
            tg.cancel_scope.cancel()
    assert fake.connections == 1  # four groups, one connection
    assert sorted(fake.connect_streams[0] + [p for r in fake.requests for p in r["params"]]) == sorted(
        f"{v.lower()}@{s}" for v, _, _ in GROUPS.values() for s in ("aggTrade", "bookTicker", "depth@100ms")
    )
    (hub,) = status["feeds"]  # type: ignore[misc]
    assert hub["symbols"] == sorted(GROUPS) and hub["connections"] == 1 and hub["reconnects"] == 0
    for g in status["groups"]:  # type: ignore[attr-defined]
        feed = g["feed"]
        assert set(feed["books"]) == {g["symbol"]}, g["symbol"]  # its own book only
        assert feed["books"][g["symbol"]]["synced"] is True
        assert (feed["symbols"], feed["connected"], feed["books_stale"], feed["reconnects"]) == (1, 1, 0, 0)
        assert feed["emitted"] > 0
    for ours in GROUPS:
        group = daemon.supervisor.groups[("binance", ours)]
        assert group.market_feed.rejected == {}
        assert f'tradingd_feed_snapshots_total{{exchange="binance",symbol="{ours}"}} 1.0' in metrics
    hub_labels = f'{{exchange="binance",url="{fake.url}"}}'
    assert f"tradingd_feed_shared_connections{hub_labels} 1.0" in metrics
    assert f"tradingd_feed_shared_symbols{hub_labels} 4.0" in metrics
    assert f"tradingd_feed_unrouted_total{hub_labels} 0.0" in metrics


async def test_reload_takes_a_symbol_off_and_back_on_the_running_connection(tmp_path: Path) -> None:
    async with open_fake_binance_ws(live=True, replay_s=30.0) as fake:
        path = tmp_path / "c.toml"
        path.write_text(_config(tmp_path / "state", fake, list(GROUPS)))
        daemon = Daemon(load_config(path), path, Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: _books_synced(daemon, list(GROUPS)), "every group's book")
            nkn = daemon.supervisor.groups[("binance", "NKN/USDT")]
            before = nkn.feed.feed.emitted
            path.write_text(_config(tmp_path / "state", fake, ["NKN/USDT", "LRC/BTC", "RUNE/EUR"]))
            await daemon.reload()
            await until(
                lambda: any(r["method"] == "UNSUBSCRIBE" for r in fake.requests), "the UNSUBSCRIBE request"
            )
            (unsub,) = [r for r in fake.requests if r["method"] == "UNSUBSCRIBE"]
            assert sorted(unsub["params"]) == ["blzeth@aggTrade", "blzeth@bookTicker", "blzeth@depth@100ms"]
            await until(lambda: nkn.feed.feed.emitted > before + 20, "NKN/USDT data after the reload")
            path.write_text(_config(tmp_path / "state", fake, list(GROUPS)))
            await daemon.reload()
            await until(lambda: _books_synced(daemon, ["BLZ/ETH"]), "BLZ/ETH's book again")
            blz = daemon.supervisor.groups[("binance", "BLZ/ETH")]
            await until(lambda: blz.router.counts.get(BookDelta, 0) > 0, "BLZ/ETH deltas again")
            status = daemon.status()
            tg.cancel_scope.cancel()
    assert fake.connections == 1  # the symbol left and came back on the same connection
    subs = [r for r in fake.requests if r["method"] == "SUBSCRIBE"]
    assert [sorted(r["params"]) for r in subs] == [
        ["blzeth@aggTrade", "blzeth@bookTicker", "blzeth@depth@100ms"]
    ]
    assert nkn is daemon.supervisor.groups[("binance", "NKN/USDT")]  # untouched by both reloads
    assert nkn.market_feed.rejected == {}
    (hub,) = status["feeds"]  # type: ignore[misc]
    assert hub["reconnects"] == 0 and hub["symbols"] == sorted(GROUPS)


async def test_own_connections_when_not_shared(tmp_path: Path) -> None:
    async with open_fake_binance_ws(live=True, replay_s=20.0) as fake:
        symbols = ["NKN/USDT", "BLZ/ETH"]
        cfg = parse_config(_config(tmp_path / "state", fake, symbols, shared=False))
        daemon = Daemon(cfg, tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: _books_synced(daemon, symbols), "both books")
            status = daemon.status()
            tg.cancel_scope.cancel()
    assert fake.connections == 2 and status["feeds"] == []


def _hub(fake: FakeBinanceWs, **options: Any) -> SharedBinanceFeed:
    settings = BinanceFeed(venue_symbol="", ws_url=fake.url, rest_url=fake.rest_url)
    feed = BinanceMarketFeed(fake.url, fake.rest_url, {}, **FAST)
    return SharedBinanceFeed(hub_key("binance", settings), feed, **options)


async def test_many_groups_joining_stay_within_five_messages_a_second() -> None:
    n = 60
    async with open_fake_binance_ws(synthetic=n, synthetic_tick_s=0.05) as fake:
        hub = _hub(fake, flush_s=0.5)
        outs = {f"SYN{i:03d}/USDT": Collector() for i in range(n)}
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            for i, (ours, out) in enumerate(outs.items()):
                view = hub.view(f"SYN{i:03d}USDT", ours)
                tg.start_soon(lambda v=view, o=out: v.run(o.sink, sink_nowait=o.nowait))
                await anyio.sleep(0.03)  # groups start one after another over ~2 s
            await until(lambda: all(o.of(BookSnapshot, s) for s, o in outs.items()), "every book", 20)
            await until(lambda: all(o.of(BookDelta, s) for s, o in outs.items()), "every book's deltas", 20)
            tg.cancel_scope.cancel()
    assert fake.connections == 1
    times = fake.request_times
    busiest = max((sum(t <= u < t + 1.0 for u in times) for t in times), default=0)
    assert busiest <= 5, times  # Binance: at most 5 incoming messages a second per connection
    assert len(fake.requests) <= 8  # one SUBSCRIBE a turn, not one per group
    for ours, out in outs.items():  # each view got its symbol only
        assert {m.symbol for m in out.messages} == {ours}


async def test_a_view_started_on_a_running_connection_begins_with_the_whole_book() -> None:
    async with open_fake_binance_ws(live=True, replay_s=20.0) as fake:
        hub = _hub(fake, flush_s=0.05)
        first, late = Collector(), Collector()
        async with anyio.create_task_group() as tg:
            await tg.start(hub.run)
            view = hub.view("NKNUSDT", "NKN/USDT")
            await tg.start(
                lambda task_status: view.run(first.sink, sink_nowait=first.nowait, task_status=task_status)
            )
            await until(lambda: len(first.of(BookDelta, "NKN/USDT")) > 3, "deltas")
            replacement = hub.view("NKNUSDT", "NKN/USDT")  # the group restarted: same symbol
            await tg.start(
                lambda task_status: replacement.run(
                    late.sink, sink_nowait=late.nowait, task_status=task_status
                )
            )
            await until(lambda: len(late.of(BookDelta, "NKN/USDT")) > 3, "deltas to the new view")
            n_first = len(first.messages)
            await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
    assert type(late.messages[0]) is BookSnapshot  # the whole book first, then its deltas
    assert len(first.messages) == n_first  # the old view gets nothing once replaced
    snap, delta = late.messages[0], late.of(BookDelta, "NKN/USDT")[0]
    assert isinstance(snap, BookSnapshot) and isinstance(delta, BookDelta)
    assert delta.first_seq <= snap.seq + 1 <= delta.last_seq  # the chain goes on from the snapshot
    assert fake.connections == 1


async def test_messages_without_a_running_view_are_counted_and_an_idle_hub_closes() -> None:
    async with open_fake_binance_ws(live=True, replay_s=20.0) as fake:
        ended: list[SharedBinanceFeed] = []

        def idle(hub: SharedBinanceFeed) -> bool:
            ended.append(hub)
            return True

        hub = _hub(fake, flush_s=0.05, linger_s=0.3, on_idle=idle)
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                await tg.start(hub.run)
                view = hub.view("NKNUSDT", "NKN/USDT")
                out = Collector()
                async with anyio.create_task_group() as actor:
                    actor.start_soon(partial(view.run, out.sink, sink_nowait=out.nowait))
                    await until(lambda: len(out.messages) > 3, "messages to the view")
                    actor.cancel_scope.cancel()  # the group's feed actor stops: its messages go nowhere
                await until(lambda: hub.unrouted > 3, "unrouted messages")
                view.close()
                await until(lambda: bool(ended), "the hub to end")
                await until(lambda: fake.open_connections == 0, "its connection to close")
            # the hub's run returned by itself: the task group ended without a cancel
    assert ended == [hub] and fake.connections == 1
    assert [r["method"] for r in fake.requests] == ["UNSUBSCRIBE"]  # it came in the connection's URL


async def test_a_symbol_subscribed_while_the_socket_opens_is_subscribed_once_it_is_open() -> None:
    async with open_fake_binance_ws(live=True, replay_s=20.0) as fake:
        feed = BinanceMarketFeed(fake.url, fake.rest_url, {"NKNUSDT": "NKN/USDT"}, **FAST)
        opening, release = anyio.Event(), anyio.Event()
        real_open = feed._open

        async def slow_open(shard: Any) -> Any:
            ws = await real_open(shard)  # the URL holds NKNUSDT only
            opening.set()
            await release.wait()
            return ws

        feed._open = slow_open  # type: ignore[method-assign]
        out = Collector()
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: feed.run(out.sink, sink_nowait=out.nowait, task_status=task_status)
            )
            await opening.wait()
            await feed.subscribe({"BLZETH": "BLZ/ETH"})  # no socket yet to send it on
            release.set()
            await until(
                lambda: bool(out.of(Quote, "BLZ/ETH")) and bool(out.of(BookDelta, "BLZ/ETH")), "BLZ/ETH"
            )
            tg.cancel_scope.cancel()
    assert fake.connect_streams[0] == ["nknusdt@aggTrade", "nknusdt@bookTicker", "nknusdt@depth@100ms"]
    assert [(r["method"], sorted(r["params"])) for r in fake.requests] == [
        ("SUBSCRIBE", ["blzeth@aggTrade", "blzeth@bookTicker", "blzeth@depth@100ms"])
    ]


async def test_symbol_statistics_are_that_symbols_own() -> None:
    async with open_fake_binance_ws(replay_s=0.8, gap=("NKNUSDT", 3)) as fake:
        symbols = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH"}
        feed = BinanceMarketFeed(fake.url, fake.rest_url, symbols, **FAST)
        out = Collector()
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: feed.run(out.sink, sink_nowait=out.nowait, task_status=task_status)
            )
            await until(
                lambda: feed.resyncs >= 1 and not any(b.stale for b in feed.books().values()), "resync"
            )
            tg.cancel_scope.cancel()
    nkn, blz = feed.statistics("NKN/USDT"), feed.statistics("BLZ/ETH")
    assert nkn.resyncs == feed.resyncs >= 1 and blz.resyncs == 0  # the gap was NKN's
    assert nkn.snapshots >= 2 and blz.snapshots == 1
    assert set(nkn.books) == {"NKN/USDT"} and set(blz.books) == {"BLZ/ETH"}
    assert (nkn.connections, nkn.symbols, nkn.reconnects) == (1, 1, 0)
    assert feed.statistics().snapshots == nkn.snapshots + blz.snapshots


async def test_quiet_symbols_on_a_shared_connection_stay_connected_and_ready(tmp_path: Path) -> None:
    """After the capture, every symbol is quiet (RUNEEUR never sends anything): only Binance's pings
    reach the connection, for many silence timeouts; the groups stay ready, nothing reconnects."""
    options = {"replay_s": 1.0, "ping_every_s": 0.3, "stall_symbol": "RUNEEUR"}
    with module_process(tmp_path, "tests.fake_binance_ws", json.dumps(options), name="fake") as urls:
        fake = FakeBinanceWs(url=urls["url"], rest_url=urls["rest_url"])
        text = _config(tmp_path / "state", fake, list(GROUPS))
        text = text.replace("silence_timeout_s = 5.0", "silence_timeout_s = 1.5")
        text = text.replace("stall_timeout_s = 60.0", "stall_timeout_s = 0.5")
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        not_ready: list[list[str]] = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: _books_synced(daemon, list(GROUPS)) and not daemon.readiness(), "ready")
            t_end = anyio.current_time() + 8.0  # > 5 silence timeouts, > 15 stall timeouts
            while anyio.current_time() < t_end:
                if reasons := daemon.readiness():
                    not_ready.append(reasons)
                await anyio.sleep(0.1)
            status = daemon.status()
            tg.cancel_scope.cancel()
        async with aiohttp.ClientSession() as http, http.get(urls["rest_url"] + "/fake/stats") as reply:
            stats = await reply.json()
    assert not_ready == []  # quiet is not an outage
    assert stats["connections"] == 1 and stats["pongs"] > 10  # the one connection, kept by its pings
    (hub,) = status["feeds"]  # type: ignore[misc]
    assert hub["reconnects"] == 0
    for g in status["groups"]:  # type: ignore[attr-defined]
        feed = g["feed"]
        assert feed["quiet"] == [g["symbol"]] and feed["stalls"] == 1, g["symbol"]  # counted once
        assert feed["silences"] == 0 and feed["books"][g["symbol"]]["synced"] is True
