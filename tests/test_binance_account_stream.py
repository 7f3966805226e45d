"""One user data stream per Binance account (adapters/binance/account_stream.py): events reach the
execution actor of their symbol, balances one actor, and every reconnect catches all symbols up."""

from __future__ import annotations

from decimal import Decimal

import anyio
import pytest

from adapters.binance.account_stream import AccountUserStream
from adapters.binance.userdata_schemas import (
    BinanceAccountPosition,
    BinanceBalance,
    BinanceExecutionReport,
    UserEvent,
)
from daemon.config_schema import BinanceAccount

pytestmark = pytest.mark.anyio


class Client:
    def __init__(self, venue_symbol: str) -> None:
        self.venue_symbol = venue_symbol
        self.events: list[UserEvent] = []
        self.catchups = 0

    async def on_user_event(self, event: UserEvent) -> None:
        self.events.append(event)

    async def catch_up(self) -> None:
        self.catchups += 1

    async def listen_key(self, method: str, key: str) -> str:
        return f"{method}:{key}"

    async def sync_clock(self, force: bool) -> None:
        pass


def report(symbol: str) -> BinanceExecutionReport:
    return BinanceExecutionReport(
        e="executionReport", E=1, s=symbol, c="td-1", S="BUY", o="LIMIT", x="NEW", X="NEW", i=7, q=Decimal(1)
    )


async def test_routing_by_symbol_balances_once_and_catch_up_for_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "acct-stream-test-key-7f3a")
    monkeypatch.setenv("S", "acct-stream-test-secret-9c1b")
    shared = AccountUserStream("live", BinanceAccount(api_key_env="K", secret_env="S"))
    nkn, ltc = Client("NKNUSDT"), Client("LTCBTC")
    leave_nkn = shared.register(nkn)
    shared.register(ltc)
    await shared._route(report("NKNUSDT"))
    await shared._route(report("LTCBTC"))
    await shared._route(report("BTCUSDT"))  # another tool's order on the same account
    balances = BinanceAccountPosition(
        e="outboundAccountPosition", E=1, B=[BinanceBalance("USDT", Decimal(5), Decimal(0))]
    )
    await shared._route(balances)
    assert [e.s for e in nkn.events if isinstance(e, BinanceExecutionReport)] == ["NKNUSDT"]
    assert [e.s for e in ltc.events if isinstance(e, BinanceExecutionReport)] == ["LTCBTC"]
    assert sum(isinstance(e, BinanceAccountPosition) for e in nkn.events + ltc.events) == 1
    assert shared.unrouted == 1
    await shared._catch_up()
    assert (nkn.catchups, ltc.catchups) == (1, 1)
    assert await shared._listen_key("PUT", "k1") == "PUT:k1"
    leave_nkn()
    await shared._route(report("NKNUSDT"))
    assert shared.unrouted == 2 and len(nkn.events) == 2


async def test_a_daemon_with_two_symbols_of_one_account_opens_one_user_stream(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pathlib import Path

    from daemon.app import Daemon
    from daemon.config import parse_config
    from daemon.metrics import Metrics
    from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
    from tests.fake_binance_ws import open_fake_binance_ws
    from tests.test_e2e_binance_trading import _config

    assert isinstance(tmp_path, Path)
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    async with open_fake_binance_ws(replay_s=0.5) as market, open_fake_binance() as venue:
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        second = text[text.index("[[groups]]") :].replace('symbol = "NKN/USDT"', 'symbol = "LRC/BTC"')
        second = second.replace('base = "NKN"', 'base = "LRC"').replace('quote = "USDT"', 'quote = "BTC"')
        second = second.replace('venue_symbol = "NKNUSDT"', 'venue_symbol = "LRCBTC"')
        daemon = Daemon(parse_config(text + second), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(15):
                while len(daemon.supervisor.groups) < 2:
                    await anyio.sleep(0.02)
                groups = list(daemon.supervisor.groups.values())
                while not all(g.venue.user_stream.catchups for g in groups):  # type: ignore[union-attr]
                    await anyio.sleep(0.02)
                await anyio.sleep(0.3)
            tg.cancel_scope.cancel()
    assert venue.user_connections == 1  # one subscription for the account, not one per symbol
    assert groups[0].venue.user_stream is groups[1].venue.user_stream  # type: ignore[union-attr]
