"""``user_stream = "listen_key"`` end to end: the daemon trading on the fake Binance gets its fills
over ``/ws/<listenKey>``, keeps the key alive with ``PUT /api/v3/userDataStream`` on schedule
(``listen_key_keepalive_s``, shortened here), and when the key dies -- ``listenKeyExpired`` on the
socket, or a keep-alive refused with -1125 because the venue forgot it silently -- asks for a new
key, reconnects and catches up over REST: fills made while the stream was away arrive once, the
position equals the venue's balance change, and the daemon is ready again.

Binance (spot docs, "User Data Streams"): a listenKey is valid 60 minutes after its creation or
last keep-alive; a POST with a key active returns that key; a connection lasts at most 24 h.  The
fake behaves so.  Bounded by ``anyio.fail_after``; waits are on conditions, not sleeps.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from actors.messages import OrderAccepted, OrderFilled
from adapters.binance.account_stream import AccountUserStream
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
KEEPALIVE_S = 0.3


async def _position(group: SymbolGroup, venue: FakeBinance, within_s: float) -> None:
    """Wait (bounded) for the daemon's position to be the venue's balance change; assert it is."""
    with anyio.move_on_after(within_s):
        while group.state.position != venue.balances["NKN"]:
            await anyio.sleep(0.02)
    assert group.state.position == venue.balances["NKN"], (
        f"daemon position {group.state.position}, venue moved {venue.balances['NKN']}: fills lost"
    )


async def _wait(cond: object, within_s: float = 10.0) -> None:
    assert callable(cond)
    with anyio.fail_after(within_s):
        while not cond():
            await anyio.sleep(0.02)


def _puts(venue: FakeBinance, status: int) -> list[str]:
    return [
        s.params.get("listenKey", "")
        for s in venue.seen
        if (s.method, s.path, s.status) == ("PUT", "/api/v3/userDataStream", status)
    ]


async def test_listen_key_stream_fills_keepalive_expiry_and_refused_keepalive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(venue_health, "VENUE_GRACE_S", 1.0)
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("0")}) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        text = text.replace(
            "timeout_s = 2.0\n",
            f'timeout_s = 2.0\nuser_stream = "listen_key"\nstream_url = "{venue.stream_url}"\n'
            f"listen_key_keepalive_s = {KEEPALIVE_S}\n",
        )
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            with anyio.fail_after(60):
                await _wait(lambda: GROUP in daemon.supervisor.groups)
                group = daemon.supervisor.groups[GROUP]
                shared = daemon.supervisor.accounts["live"].user_stream
                assert isinstance(shared, AccountUserStream)
                stream = shared.stream
                await _wait(lambda: group.state.last_price is not None and stream.ready)
                (first_key,) = venue.listen_keys

                # 1. fills over /ws/<listenKey>: two resting buys filled by the venue's trade
                await group.router.publish(_intent(1, "buy", "limit", "100", "0.3400"))
                await group.router.publish(_intent(2, "buy", "limit", "50", "0.3390"))
                await _until(group, OrderAccepted, 2)
                await venue.trade("NKNUSDT", Decimal("0.3390"))
                await _position(group, venue, 8.0)
                assert group.state.position == Decimal("150")
                assert stream.events.get("executionReport", 0) >= 4  # 2 NEW + 2 TRADE, on the stream
                assert stream.catchups == 1 and stream.connects == 1  # not from a catch-up
                assert venue.user_requests == []  # never the WebSocket API

                # 2. the keep-alive goes out on schedule, for the key in use
                await _wait(lambda: len(venue.keepalive_times) >= 3)
                gaps = [b - a for a, b in zip(venue.keepalive_times, venue.keepalive_times[1:], strict=False)]
                assert all(g >= KEEPALIVE_S * 0.9 for g in gaps), gaps
                assert set(_puts(venue, 200)) == {first_key}

                # 3. listenKeyExpired: a fill made while the stream is away comes with the catch-up
                await group.router.publish(_intent(3, "sell", "limit", "60", "0.3600"))
                await _until(group, OrderAccepted, 3)
                filled = group.router.counts.get(OrderFilled, 0)
                venue.mute_user_stream = True
                assert await venue.expire_listen_keys() == [first_key]
                await venue.trade("NKNUSDT", Decimal("0.3600"))  # its report is lost
                await _wait(lambda: stream.connects == 2 and stream.catchups == 2)
                venue.mute_user_stream = False
                await _position(group, venue, 8.0)
                assert group.state.position == Decimal("90")
                assert group.router.counts.get(OrderFilled, 0) == filled + 1
                (second_key,) = venue.listen_keys
                assert second_key != first_key and stream.terminated == 1

                # 4. the venue forgets the key silently: the keep-alive is refused (-1125), a new key
                await group.router.publish(_intent(4, "buy", "limit", "40", "0.3450"))
                await _until(group, OrderAccepted, 4)
                assert await venue.expire_listen_keys(announce=False) == [second_key]
                await venue.trade("NKNUSDT", Decimal("0.3450"))  # nobody hears it on the stream
                await _wait(lambda: stream.connects == 3 and stream.catchups == 3)
                await _position(group, venue, 8.0)
                assert group.state.position == Decimal("130")
                assert second_key in _puts(venue, 400)
                (third_key,) = venue.listen_keys
                assert third_key not in (first_key, second_key)

                # no fill lost or doubled; the keep-alive goes on for the new key; ready
                assert len(venue.trades) == 4
                assert group.router.counts.get(OrderFilled, 0) == len(venue.trades)
                await _wait(lambda: third_key in _puts(venue, 200))
                await _wait(lambda: stream.ready)
                await anyio.sleep(1.2)  # past the grace: nothing is wrong any more
                assert daemon.readiness() == []
                assert group.router.counts.get(OrderFilled, 0) == len(venue.trades)
            tg.cancel_scope.cancel()
