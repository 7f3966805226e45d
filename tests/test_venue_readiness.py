"""/readyz, /status and /metrics of the daemon trading on the fake Binance while the venue goes away
and comes back: per-group reasons (exchange rules not loaded) and per-account reasons (REST
unreachable, user data stream not subscribed), 503 while they last, 200 again once the venue answers.

The market data (tests/fake_binance_ws.py) stays up throughout, so only the venue's health moves.
Grace and probe intervals are shortened; every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import json
import re
import socket
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest

from adapters.binance import venue_health as adapter_health
from daemon import venue_health
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
from tests.fake_binance_ws import open_fake_binance_ws
from tests.test_e2e_binance_trading import _config

pytestmark = pytest.mark.anyio

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
GROUP = ("binance", "NKN/USDT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def fast_health(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_BINANCE_KEY", API_KEY)
    monkeypatch.setenv("TEST_BINANCE_SECRET", API_SECRET)
    monkeypatch.setattr(venue_health, "VENUE_GRACE_S", 1.0)
    monkeypatch.setattr(adapter_health, "PROBE_CHECK_S", 0.1)
    monkeypatch.setattr(adapter_health, "PROBE_FAILING_S", 0.3)
    monkeypatch.setattr(adapter_health, "PROBE_IDLE_S", 0.5)


class Http:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(path) as r:
            return r.status, await r.text()

    async def readyz(self) -> tuple[int, list[str]]:
        code, body = await self.get("/readyz")
        return code, list(json.loads(body).get("reasons", []))

    async def until_ready(self, want: bool) -> list[str]:
        while True:
            code, reasons = await self.readyz()
            if (code == 200) == want:
                return reasons
            await anyio.sleep(0.1)

    async def metric(self, line_start: str) -> float:
        _, text = await self.get("/metrics")
        (line,) = [ln for ln in text.splitlines() if ln.startswith(line_start + " ")]
        return float(line.rsplit(" ", 1)[1])

    async def status(self) -> dict[str, Any]:
        _, body = await self.get("/status")
        out: dict[str, Any] = json.loads(body)
        return out


async def _daemon(tmp_path: Path, venue_url: str, ws_api: str, market: Any, port: int) -> Daemon:
    text = _config(tmp_path / "state", market.url, market.rest_url, venue_url, ws_api)
    text = text.replace("[health]\nport = 0\n", f"[health]\nport = {port}\n")
    return Daemon(parse_config(text), tmp_path / "c.toml", Metrics())


async def test_readyz_names_the_account_while_the_venue_is_unreachable_and_recovers(
    tmp_path: Path, fast_health: None
) -> None:
    port = _free_port()
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(balances={"USDT": Decimal("1000"), "NKN": Decimal("0")}) as venue,
    ):
        venue.last_prices["NKNUSDT"] = Decimal("0.3528")
        daemon = await _daemon(tmp_path, venue.url, venue.ws_api_url, market, port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            timeout = aiohttp.ClientTimeout(total=5)
            with anyio.fail_after(60):
                while GROUP not in daemon.supervisor.groups:
                    await anyio.sleep(0.02)
                async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=timeout) as session:
                    http = Http(session)
                    while True:  # the health server comes up after the groups
                        try:
                            await http.get("/livez")
                            break
                        except aiohttp.ClientConnectionError:
                            await anyio.sleep(0.05)
                    stream = daemon.supervisor.accounts["live"].user_stream
                    while stream is None or not stream.stream.ready:
                        await anyio.sleep(0.05)
                    await anyio.sleep(1.5)  # past the grace: nothing is wrong
                    assert await http.readyz() == (200, [])
                    assert await http.metric('tradingd_venue_rest_up{account="live"}') == 1
                    assert await http.metric('tradingd_user_stream_up{account="live"}') == 1
                    labels = '{exchange="binance",symbol="NKN/USDT"}'
                    assert await http.metric(f"tradingd_exchange_rules_loaded{labels}") == 1

                    await venue.go_down()
                    reasons = await http.until_ready(False)
                    while len(reasons) < 2:  # the REST probe and the stream each notice on their own
                        _, reasons = await http.readyz()
                        await anyio.sleep(0.1)
                    rest = [r for r in reasons if r.startswith("account live: REST")]
                    stream = [r for r in reasons if r.startswith("account live: user data stream")]
                    assert rest and re.fullmatch(
                        rf"account live: REST unreachable since {ISO} "
                        r"\(\d+ failures; last error: connection: .+\)",
                        rest[0],
                    ), reasons
                    assert stream and re.fullmatch(
                        rf"account live: user data stream not subscribed since {ISO} "
                        r"\(\d+ failed attempts; .+\)",
                        stream[0],
                    ), reasons
                    assert not [r for r in reasons if "exchange rules" in r]  # loaded before: still in force
                    assert await http.metric('tradingd_venue_rest_up{account="live"}') == 0
                    assert await http.metric('tradingd_user_stream_up{account="live"}') == 0
                    failures = 'tradingd_venue_rest_failures_total{account="live",reason="connection"}'
                    assert await http.metric(failures) >= 1
                    live = (await http.status())["accounts"]["live"]["venue"]
                    assert not live["ready"] and not live["rest"]["up"] and not live["user_stream"]["ready"]
                    assert re.fullmatch(ISO, live["rest"]["down_since"]) and live["problems"]

                    venue.come_back()
                    assert await http.until_ready(True) == []
                    assert await http.metric('tradingd_venue_rest_up{account="live"}') == 1
                    assert await http.metric('tradingd_user_stream_up{account="live"}') == 1
                    live = (await http.status())["accounts"]["live"]["venue"]
                    assert live["ready"] and live["rest"]["up"] and live["user_stream"]["ready"]
            tg.cancel_scope.cancel()


async def test_readyz_says_the_exchange_rules_are_missing_while_the_venue_is_down_from_the_start(
    tmp_path: Path, fast_health: None
) -> None:
    port = _free_port()
    async with (
        open_fake_binance_ws(replay_s=0.5) as market,
        open_fake_binance(unreachable=True) as venue,
    ):
        daemon = await _daemon(tmp_path, venue.url, venue.ws_api_url, market, port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            timeout = aiohttp.ClientTimeout(total=5)
            with anyio.fail_after(60):
                async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=timeout) as session:
                    http = Http(session)
                    while True:
                        try:
                            code, reasons = await http.readyz()
                        except aiohttp.ClientConnectionError:
                            await anyio.sleep(0.05)
                            continue
                        if code == 503 and len(reasons) >= 3:
                            break
                        await anyio.sleep(0.1)
                    assert any(
                        re.fullmatch(
                            rf"binance:NKN/USDT: exchange rules not loaded since {ISO} "
                            r"\(\d+ failed attempts; last error: .+\)",
                            r,
                        )
                        for r in reasons
                    ), reasons
                    assert any(r.startswith("account live: REST unreachable since") for r in reasons), reasons
                    assert any(r.startswith("account live: user data stream not subscribed") for r in reasons)
                    labels = '{exchange="binance",symbol="NKN/USDT"}'
                    assert await http.metric(f"tradingd_exchange_rules_loaded{labels}") == 0
                    assert await http.metric(f"tradingd_exchange_rules_failures_total{labels}") >= 1
                    (group,) = (await http.status())["groups"]
                    assert group["venue"]["rules_loaded"] is False and group["venue"]["rules_last_error"]

                    venue.come_back()
                    assert await http.until_ready(True) == []
                    assert await http.metric(f"tradingd_exchange_rules_loaded{labels}") == 1
                    (group,) = (await http.status())["groups"]
                    assert group["venue"]["rules_loaded"] is True and re.fullmatch(
                        ISO, group["venue"]["rules_loaded_at"]
                    )
            tg.cancel_scope.cancel()


async def test_a_listen_key_account_gets_ready_instead_of_crashing_the_daemon(
    tmp_path: Path, fast_health: None
) -> None:
    """The shared stream starts before any symbol has joined: its first listenKey request must wait
    for a REST client (a retried connection failure), not end the daemon."""
    port = _free_port()
    async with open_fake_binance_ws(replay_s=0.5) as market, open_fake_binance() as venue:
        text = _config(tmp_path / "state", market.url, market.rest_url, venue.url, venue.ws_api_url)
        text = text.replace("[health]\nport = 0\n", f"[health]\nport = {port}\n").replace(
            "timeout_s = 2.0\n",
            f'timeout_s = 2.0\nuser_stream = "listen_key"\nstream_url = "{venue.stream_url}"\n',
        )
        daemon = Daemon(parse_config(text), tmp_path / "c.toml", Metrics())
        async with anyio.create_task_group() as tg:
            tg.start_soon(daemon.run)
            timeout = aiohttp.ClientTimeout(total=5)
            with anyio.fail_after(30):
                async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", timeout=timeout) as session:
                    http = Http(session)
                    while True:
                        try:
                            await http.get("/livez")
                            break
                        except aiohttp.ClientConnectionError:
                            await anyio.sleep(0.05)
                    stream = daemon.supervisor.accounts["live"].user_stream
                    assert stream is not None
                    while not stream.stream.ready:  # subscribed once the group has joined
                        await anyio.sleep(0.05)
                    assert len(venue.listen_keys) >= 1
                    await anyio.sleep(1.5)  # past the grace: nothing is wrong
                    assert await http.readyz() == (200, [])
            tg.cancel_scope.cancel()
