"""The daemon on Binance market data: a symbol group whose feed is the Binance combined stream
(a fake server on 127.0.0.1 replaying the real captured frames and REST snapshots), trading on
paper. The real protocol path: WebSocket, frame decoding, book sync, market-feed, strategy."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actors.messages import BookDelta, BookSnapshot
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.fake_binance_ws import open_fake_binance_ws

pytestmark = pytest.mark.anyio


def _config(state: Path, ws_url: str, rest_url: str) -> str:
    return f"""
[daemon]
state_dir = "{state}"
[health]
port = 0
[redis]
enabled = false
[accounts.paper]
balances = {{ USDT = "1000" }}
[[groups]]
exchange = "binance"
symbol = "NKN/USDT"
account = "paper"
[groups.instrument]
base = "NKN"
quote = "USDT"
tick_size = "0.0001"
step_size = "0.1"
[groups.feed]
kind = "binance"
venue_symbol = "NKNUSDT"
ws_url = "{ws_url}"
rest_url = "{rest_url}"
silence_timeout_s = 5.0
stall_timeout_s = 60.0
[groups.risk]
max_order_notional = "50"
"""


async def test_daemon_trades_paper_on_the_binance_stream_with_a_synced_book(tmp_path: Path) -> None:
    async with open_fake_binance_ws(replay_s=0.5) as fake:
        daemon = Daemon(
            parse_config(_config(tmp_path / "state", fake.url, fake.rest_url)), tmp_path / "c.toml", Metrics()
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(20):
                while ("binance", "NKN/USDT") not in daemon.supervisor.groups:
                    await anyio.sleep(0.02)
                group = daemon.supervisor.groups[("binance", "NKN/USDT")]
                counts = group.router.counts
                while counts.get(BookSnapshot, 0) < 1 or counts.get(BookDelta, 0) < 100:
                    await anyio.sleep(0.05)
            status = daemon.status()
            metrics = daemon.metrics.render()
            tg.cancel_scope.cancel()
    assert group.market_feed.accepted["Quote"] > 0
    assert group.market_feed.rejected == {}
    assert group.state.last_price is not None  # the captured aggTrades reached the group
    assert group.feed.restarts == 0
    (g,) = status["groups"]  # type: ignore[misc]
    assert g["symbol"] == "NKN/USDT" and not g["halted"]
    feed = g["feed"]
    assert (feed["connected"], feed["books_stale"], feed["rejected"]) == (1, 0, 0)
    assert 'tradingd_feed_reconnects_total{exchange="binance",symbol="NKN/USDT"} 0.0' in metrics
    assert 'tradingd_feed_emitted_total{exchange="binance",symbol="NKN/USDT"}' in metrics
