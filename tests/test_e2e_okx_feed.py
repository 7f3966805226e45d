"""The daemon on OKX market data: a symbol group whose feed is the OKX v5 public WebSocket (the fake
OKX server on 127.0.0.1 replaying the real 2022 capture with an authoritative book), trading on
paper.  The real protocol path: WebSocket, frame decoding, checksummed books, market-feed, strategy."""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest

from actors.messages import BookDelta, BookSnapshot, Trade
from daemon.app import Daemon
from daemon.config import ConfigError, parse_config
from daemon.metrics import Metrics
from tests.fake_okx import open_fake_okx, until

pytestmark = pytest.mark.anyio


def _config(state: Path, ws_url: str, rest_url: str, extra: str = "") -> str:
    return f"""
[daemon]
state_dir = "{state}"
[health]
port = 0
[redis]
enabled = false
[accounts.paper]
balances = {{ USDT = "100000" }}
[[groups]]
exchange = "okx"
symbol = "BTC/USDT"
account = "paper"
[groups.instrument]
base = "BTC"
quote = "USDT"
tick_size = "0.1"
step_size = "0.00000001"
[groups.feed]
kind = "okx"
ws_url = "{ws_url}"
rest_url = "{rest_url}"
silence_timeout_s = 5.0
{extra}
[groups.risk]
max_order_notional = "50"
"""


async def test_daemon_trades_paper_on_the_okx_feed_with_a_checksummed_book(tmp_path: Path) -> None:
    async with open_fake_okx(replay_s=1.0) as fake:
        daemon = Daemon(
            parse_config(_config(tmp_path / "state", fake.url, fake.rest_url)), tmp_path / "c.toml", Metrics()
        )
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            await until(lambda: ("okx", "BTC/USDT") in daemon.supervisor.groups, 20)
            group = daemon.supervisor.groups[("okx", "BTC/USDT")]
            counts = group.router.counts
            await until(
                lambda: (
                    counts.get(BookSnapshot, 0) >= 1
                    and counts.get(BookDelta, 0) >= 50
                    and counts.get(Trade, 0) >= 20
                ),
                20,
            )
            status = daemon.status()
            metrics = daemon.metrics.render()
            tg.cancel_scope.cancel()
    assert group.market_feed.accepted["Quote"] > 0 and group.market_feed.rejected == {}
    assert group.state.last_price is not None  # the captured BTC-USDT trades reached the group
    assert group.feed.restarts == 0
    (g,) = status["groups"]  # type: ignore[misc]
    feed = g["feed"]
    assert (feed["connected"], feed["books_stale"], feed["rejected"], feed["checksum_failures"]) == (
        1,
        0,
        0,
        0,
    )
    assert feed["books"]["BTC/USDT"]["synced"] and feed["instruments"] == {"BTC-USDT": "live"}
    assert 'tradingd_feed_reconnects_total{exchange="okx",symbol="BTC/USDT"} 0.0' in metrics
    assert 'tradingd_feed_book_synced{exchange="okx",symbol="BTC/USDT"} 1.0' in metrics
    for name in ("resubscribes", "checksum_failures", "gaps"):  # the OKX book counters, at 0 from the start
        assert f'tradingd_feed_{name}_total{{exchange="okx",symbol="BTC/USDT"}} 0.0' in metrics


@pytest.mark.parametrize(
    ("extra", "key", "why"),
    [
        ("ping_after_s = 45.0", "ping_after_s", "OKX closes a connection silent for 30 s"),
        ('inst_id = "btc_usdt"', "inst_id", "expected an OKX spot instId like 'BTC-USDT'"),
        ('channels = ["books", "candle1m"]', "channels", "expected some of books, trades, tickers, bbo-tbt"),
        ("book_depth = 401", "book_depth", "expected 1..400 levels"),
    ],
)
def test_check_config_refuses_okx_feed_values_naming_the_key(
    tmp_path: Path, extra: str, key: str, why: str
) -> None:
    bad = _config(tmp_path, "ws://127.0.0.1:1/ws/v5/public", "http://127.0.0.1:1", extra)
    with pytest.raises(ConfigError, match=rf"groups\[0\]\.feed\.{key}: .*{re.escape(why)}"):
        parse_config(bad)
