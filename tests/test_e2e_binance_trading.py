"""The daemon trading on Binance end to end, on loopback fakes: market data from the fake combined
stream (tests/fake_binance_ws.py replaying the real NKNUSDT capture), orders to the fake REST venue
(tests/fake_binance.py, signatures checked), fills back on the WebSocket API user data stream, and
the group's position and PnL right.  Intents enter at risk, as a strategy's would.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import (
    BalancesChanged,
    Message,
    OrderAccepted,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    PositionChanged,
    Side,
)
from adapters.binance.execution import BinanceExecution
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.group import SymbolGroup
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws

pytestmark = pytest.mark.anyio


def _config(state: Path, ws_url: str, rest_url: str, venue_rest: str, ws_api: str) -> str:
    return f"""
[daemon]
state_dir = "{state}"
[health]
port = 0
[redis]
enabled = false
[accounts.live]
exchange = "binance"
rest_url = "{venue_rest}"
ws_api_url = "{ws_api}"
api_key_env = "TEST_BINANCE_KEY"
secret_env = "TEST_BINANCE_SECRET"
timeout_s = 2.0
[[groups]]
exchange = "binance"
symbol = "NKN/USDT"
account = "live"
[groups.instrument]
base = "NKN"
quote = "USDT"
tick_size = "0.0001"
step_size = "1"
[groups.feed]
kind = "binance"
venue_symbol = "NKNUSDT"
ws_url = "{ws_url}"
rest_url = "{rest_url}"
silence_timeout_s = 5.0
stall_timeout_s = 60.0
[groups.risk]
max_order_notional = "50"
require_stop_loss = false
"""


def _intent(n: int, side: Side, order_type: str, qty: str, price: str | None = None) -> OrderIntent:
    now = time.time_ns()
    return OrderIntent(
        exchange="binance",
        symbol="NKN/USDT",
        ts_event=now,
        ts_recv=now,
        intent_id=f"e2e-{n}",
        source="test",
        side=side,
        order_type=order_type,  # type: ignore[arg-type]
        quantity=Decimal(qty),
        price=None if price is None else Decimal(price),
        reduce_only=side == "sell",
    )


async def _until(group: SymbolGroup, kind: type[Message], n: int) -> None:
    while group.router.counts.get(kind, 0) < n:
        await anyio.sleep(0.02)


async def test_daemon_trades_on_binance_with_fills_from_the_user_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    seen: list[Message] = []
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("0")}) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")  # the captured aggTrade's price
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        cfg = parse_config(text)
        daemon = Daemon(cfg, tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(25):
                while ("binance", "NKN/USDT") not in daemon.supervisor.groups:
                    await anyio.sleep(0.02)
                group = daemon.supervisor.groups[("binance", "NKN/USDT")]
                assert isinstance(group.venue, BinanceExecution)
                tap = group.router.tap
                group.router.tap = lambda m: (seen.append(m), tap(m) if tap else None)[-1]  # type: ignore[func-returns-value]
                while group.state.last_price is None or group.venue.user_stream.catchups == 0:
                    await anyio.sleep(0.02)

                await group.router.publish(_intent(1, "buy", "market", "100"))  # fills at once
                await _until(group, PositionChanged, 1)
                await group.router.publish(_intent(2, "sell", "limit", "100", "0.3600"))  # rests
                await _until(group, OrderAccepted, 2)
                assert group.state.position == Decimal("100")
                await venue.trade("NKNUSDT", Decimal("0.3600"), Decimal("40"))  # the stream's fills
                await _until(group, PositionChanged, 2)
                await venue.trade("NKNUSDT", Decimal("0.3600"), Decimal("100"))
                await _until(group, PositionChanged, 3)
                await _until(group, BalancesChanged, 3)
                status = daemon.status()
                stats = group.venue.statistics()
            tg.cancel_scope.cancel()

    assert group.state.position == 0
    assert group.state.realized_pnl == Decimal("0.72")  # (0.36 - 0.3528) x 100
    fills = [m for m in seen if isinstance(m, OrderFilled)]
    assert [(f.side, f.last_qty, f.last_price, f.leaves_qty, f.liquidity) for f in fills] == [
        ("buy", Decimal("100"), Decimal("0.3528"), Decimal("0"), "taker"),
        ("sell", Decimal("40"), Decimal("0.36"), Decimal("60"), "maker"),
        ("sell", Decimal("60"), Decimal("0.36"), Decimal("0"), "maker"),
    ]
    submitted = [m.client_order_id for m in seen if isinstance(m, OrderSubmitted)]
    assert all(venue.order_requests(cid) == 1 for cid in submitted) and len(submitted) == 2
    assert venue.balances["NKN"] == 0 and venue.balances["USDT"] == Decimal("1000.72")
    last_balances = [m for m in seen if isinstance(m, BalancesChanged)][-1]
    assert last_balances.free["USDT"] == Decimal("1000.72") and last_balances.account == "live"
    ledger = status["accounts"]["live"]  # type: ignore[index]
    assert Decimal(ledger["balances"]["USDT"]) == Decimal("1000.72")  # fills, then the venue's report
    assert ledger["venue_balance_reports"] >= 1
    assert group.order.anomalies == {}
    groups = status["groups"]
    assert isinstance(groups, list) and not groups[0]["halted"] and groups[0]["open_orders"] == 0
    assert stats.duplicate_fills >= 1  # the market fill came twice (reply and stream), published once
