"""Hostile input at the feed boundary under the whole daemon: a data file with a NaN row halts only
its own group, with the reason on /readyz; the other group keeps trading."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.helpers import CANDLES, make_config, unique_prefix

pytestmark = pytest.mark.anyio


async def test_a_malformed_data_file_halts_only_its_group_and_says_why(tmp_path: Path) -> None:
    rows = json.loads(CANDLES.read_text())[:50]
    rows[7][2] = "NaN"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rows))
    text = make_config(tmp_path / "state", prefix=unique_prefix(), speed=0.0, redis_enabled=False)
    text = text.replace(str(CANDLES), str(bad))
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(20):
            while ("paper", "UNITTEST/BTC") not in daemon.supervisor.groups:
                await anyio.sleep(0.02)
            btc = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
            xrp = daemon.supervisor.groups[("paper", "XRP/ETH")]
            while not btc.health.halted or xrp.market_feed.accepted["Trade"] < 1000:
                await anyio.sleep(0.02)
        reasons = daemon.readiness()
        tg.cancel_scope.cancel()
    assert not xrp.health.halted
    assert btc.feed.restarts == 3  # supervisor.max_restarts in the test config
    (reason,) = [r for r in reasons if "UNITTEST/BTC halted" in r]
    assert f'{bad}: rows[7]: high (column 2): expected a finite non-negative number, got "NaN"' in reason
