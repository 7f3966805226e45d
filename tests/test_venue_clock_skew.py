"""A venue clock that is not ours: the daemon trading on the fake Binance with its server clock 7 s
ahead or 3 s behind (and flipped to the other side while running) hears of every fill.

The fake refuses every signed request -- REST and the WebSocket API's
``userDataStream.subscribe.signature`` -- whose timestamp is outside recvWindow with -1021, as
Binance does.  Resting orders are filled by the venue's own trades, so their fills reach the
daemon only over the user data stream (or its catch-up): the position must equal the venue's
balance change, and the daemon must be ready.  Every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import OrderAccepted
from daemon import venue_health
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.group import SymbolGroup
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws
from tests.test_e2e_binance_trading import _config, _intent, _until

pytestmark = pytest.mark.anyio

GROUP = ("binance", "NKN/USDT")


async def _position(group: SymbolGroup, venue: FakeBinance, start: Decimal, within_s: float) -> None:
    """Wait (bounded) for the daemon's position to be the venue's balance change; assert it is."""
    with anyio.move_on_after(within_s):
        while group.state.position != venue.balances["NKN"] - start:
            await anyio.sleep(0.02)
    assert group.state.position == venue.balances["NKN"] - start, (
        f"daemon position {group.state.position}, venue moved {venue.balances['NKN'] - start}: fills lost"
    )


@pytest.mark.parametrize(("skew_ms", "then_ms"), [(7000, -3000), (-3000, 7000)], ids=["ahead", "behind"])
async def test_fills_reach_the_daemon_with_the_venue_clock_ahead_or_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skew_ms: int, then_ms: int
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(venue_health, "VENUE_GRACE_S", 1.0)
    start = Decimal("0")
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": start}, skew_ms=skew_ms) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(40):
                while GROUP not in daemon.supervisor.groups:
                    await anyio.sleep(0.02)
                group = daemon.supervisor.groups[GROUP]
                while group.state.last_price is None:
                    await anyio.sleep(0.02)
                # two resting buys, accepted over REST; the venue's trade fills them
                await group.router.publish(_intent(1, "buy", "limit", "100", "0.3400"))
                await group.router.publish(_intent(2, "buy", "limit", "50", "0.3390"))
                await _until(group, OrderAccepted, 2)
                await venue.trade("NKNUSDT", Decimal("0.3390"))
                await _position(group, venue, start, 8.0)
                assert group.state.position == Decimal("150")

                # the venue's clock jumps to the other side while the daemon runs; the stream drops
                venue.skew_ms = then_ms
                await venue.drop_user_sockets()
                await group.router.publish(_intent(3, "sell", "limit", "60", "0.3600"))  # rests
                await _until(group, OrderAccepted, 3)
                await venue.trade("NKNUSDT", Decimal("0.3600"))
                await group.router.publish(_intent(4, "buy", "limit", "40", "0.3450"))
                await _until(group, OrderAccepted, 4)
                await venue.trade("NKNUSDT", Decimal("0.3450"))
                await _position(group, venue, start, 8.0)
                assert group.state.position == Decimal("130")
                assert len(venue.trades) == 4

                stream = daemon.supervisor.accounts["live"].user_stream
                assert stream is not None
                while not stream.stream.ready:
                    await anyio.sleep(0.05)
                await anyio.sleep(1.2)  # past the grace: nothing is wrong any more
                assert daemon.readiness() == []
            tg.cancel_scope.cancel()
