"""Risk refuses new entries while the venue is unusable for them, and lets exits out.

Against the fake Binance: a user data stream the venue will not subscribe (the daemon cannot hear
of fills) is ``venue_blind``; a market feed that has gone quiet past its silence timeout and the
grace is ``book_stale``.  Neither halts the group (a halt would cancel its open entry orders): a
reduce-only exit is approved and filled, and entries are approved again once the venue is usable.
Grace periods are shortened; every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import time
from contextlib import AsyncExitStack
from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import OrderAccepted, OrderFilled, RiskApproved, RiskRejected
from daemon import venue_health
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.group import SymbolGroup
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws
from tests.test_e2e_binance_trading import _config, _intent, _until

pytestmark = pytest.mark.anyio

GROUP = ("binance", "NKN/USDT")


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(venue_health, "VENUE_GRACE_S", 1.0)


async def _group(daemon: Daemon) -> SymbolGroup:
    while GROUP not in daemon.supervisor.groups:
        await anyio.sleep(0.02)
    group = daemon.supervisor.groups[GROUP]
    while group.state.last_price is None:
        await anyio.sleep(0.02)
    return group


def _rejected(group: SymbolGroup, rule: str) -> int:
    return group.risk.decisions.get(rule, 0)


async def test_entries_are_refused_while_the_user_stream_is_not_subscribed_and_exits_go_out(
    tmp_path: Path, fast: None
) -> None:
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("0")}) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(30):
                group = await _group(daemon)
                stream = daemon.supervisor.accounts["live"].user_stream
                assert stream is not None
                while not stream.stream.ready:
                    await anyio.sleep(0.02)
                await group.router.publish(_intent(1, "buy", "market", "100"))
                while group.state.position != Decimal("100"):
                    await anyio.sleep(0.02)

                # the venue stops subscribing the account's stream: the daemon is blind to fills
                venue.refuse_subscribe = 10**6
                await venue.drop_user_sockets()
                while not any("user data stream not subscribed" in r for r in daemon.readiness()):
                    await anyio.sleep(0.05)
                rejected = group.router.counts.get(RiskRejected, 0)
                await group.router.publish(_intent(2, "buy", "limit", "50", "0.3400"))
                await _until(group, RiskRejected, rejected + 1)
                assert _rejected(group, "venue_blind") == 1, group.risk.decisions
                approved = group.router.counts.get(RiskApproved, 0)
                await group.router.publish(_intent(3, "sell", "market", "40"))  # an exit still goes out
                await _until(group, RiskApproved, approved + 1)
                while group.state.position != Decimal("60"):
                    await anyio.sleep(0.02)
                assert not group.health.halted
                assert _rejected(group, "venue_blind") == 1

                venue.refuse_subscribe = 0  # subscribed again: entries are approved again
                while not stream.stream.ready:
                    await anyio.sleep(0.05)
                accepted = group.router.counts.get(OrderAccepted, 0)
                await group.router.publish(_intent(4, "buy", "limit", "50", "0.3400"))
                await _until(group, OrderAccepted, accepted + 1)
                assert _rejected(group, "venue_blind") == 1
            tg.cancel_scope.cancel()


async def test_entries_are_refused_on_a_stale_book_and_exits_go_out(tmp_path: Path, fast: None) -> None:
    async with (
        AsyncExitStack() as market_server,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("0")}) as venue,
    ):
        market = await market_server.enter_async_context(open_fake_binance_ws(replay_s=0.5))
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        text = text.replace("silence_timeout_s = 5.0", "silence_timeout_s = 1.0")
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(30):
                group = await _group(daemon)
                filled = group.router.counts.get(OrderFilled, 0)
                await group.router.publish(_intent(1, "buy", "market", "100"))
                await _until(group, OrderFilled, filled + 1)
                while group.state.position != Decimal("100"):
                    await anyio.sleep(0.02)
                await market_server.aclose()  # the market is gone: the book goes stale
                while (group.feed_age_s(time.time_ns()) or 0.0) < 2.5:  # silence 1 s + grace 1 s
                    await anyio.sleep(0.05)
                rejected = group.router.counts.get(RiskRejected, 0)
                await group.router.publish(_intent(2, "buy", "limit", "50", "0.3400"))
                await _until(group, RiskRejected, rejected + 1)
                assert _rejected(group, "book_stale") == 1, group.risk.decisions
                approved = group.router.counts.get(RiskApproved, 0)
                await group.router.publish(_intent(3, "sell", "market", "40"))
                await _until(group, RiskApproved, approved + 1)
                while group.state.position != Decimal("60"):
                    await anyio.sleep(0.02)
                assert not group.health.halted and _rejected(group, "book_stale") == 1
            tg.cancel_scope.cancel()
