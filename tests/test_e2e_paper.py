"""End to end on paper: bundled real data → feed → strategy → risk → order → paper exchange → stop-monitor,
every message mirrored to the real Redis on 127.0.0.1:6379 and read back by an outside consumer group."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import anyio
import jsonschema
import pytest
import redis.asyncio as aioredis

from actors.messages import ANY_DECODER_MSGPACK, json_schema
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.helpers import make_config, unique_prefix

pytestmark = pytest.mark.anyio
NS = 1_000_000_000


async def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)


async def _run_until_round_trip(tmp_path: Path, prefix: str) -> Daemon:
    text = make_config(tmp_path / "state", prefix=prefix, speed=0.0)
    (tmp_path / "config.toml").write_text(text)
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await _wait(lambda: ("paper", "UNITTEST/BTC") in daemon.supervisor.groups, 10, "groups to start")
        group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
        # a round trip: an entry filled, then an exit (stop-loss, take-profit or signal) filled
        await _wait(
            lambda: group.order.counts["filled"] >= 2 and group.state.position == 0, 60, "a round trip"
        )
        await _wait(
            lambda: daemon.mirror is not None and daemon.mirror.statistics().pending == 0, 30, "mirror flush"
        )
        tg.cancel_scope.cancel()
    return daemon


async def test_replay_produces_round_trip_visible_to_a_redis_consumer_group(tmp_path: Path) -> None:
    prefix = unique_prefix()
    daemon = await _run_until_round_trip(tmp_path, prefix)
    group = daemon.supervisor.groups.get(("paper", "UNITTEST/BTC"))
    assert group is not None
    assert group.order.counts["submitted"] >= 2
    assert group.stop_monitor.triggered + group.strategy.intents >= 2

    r = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        seen: dict[str, set[str]] = {}
        times: dict[str, list[int]] = {}  # message type -> ts_event of each
        for kind, sym in (
            ("bar", "UNITTEST/BTC"),
            ("signal", "UNITTEST/BTC"),
            ("order", "UNITTEST/BTC"),
            ("fill", "UNITTEST/BTC"),
            ("risk", "UNITTEST/BTC"),
            ("position", "UNITTEST/BTC"),
            ("trade", "XRP/ETH"),
        ):
            key = f"{prefix}:paper:{sym}:{kind}"
            await r.xgroup_create(key, "downstream", id="0")
            entries = await r.xreadgroup("downstream", "c1", {key: ">"}, count=100_000)
            assert entries, f"nothing in {key}"
            types = set()
            for _, records in entries:
                for _, fields in records:
                    msg = ANY_DECODER_MSGPACK.decode(fields[b"data"])
                    assert type(msg).__name__ == fields[b"type"].decode()
                    types.add(type(msg).__name__)
                    if sym == "UNITTEST/BTC":
                        times.setdefault(type(msg).__name__, []).append(msg.ts_event)
            seen[kind] = types
        assert "Trade" in seen["trade"]
        assert "Signal" in seen["signal"] and "OrderIntent" in seen["signal"]
        assert {"OrderSubmitted", "SubmitOrder", "OrderAccepted"} <= seen["order"]
        assert "OrderFilled" in seen["fill"]
        assert "RiskApproved" in seen["risk"]
        assert "PositionChanged" in seen["position"]
        # ts_event is the event's time for every kind: the replay's (2024), not the wall clock,
        # also for what risk, the order actor and the paper venue stamp on their own
        first, last = min(times["Bar"]), max(times["Bar"])
        wall = {
            k: [t for t in ts if not first - 3600 * NS <= t <= last + 3600 * NS] for k, ts in times.items()
        }
        assert not any(wall.values()), {k: v[:3] for k, v in wall.items() if v}
    finally:
        keys = [k async for k in r.scan_iter(f"{prefix}:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()


async def test_mirrored_records_validate_against_the_exported_json_schema(tmp_path: Path) -> None:
    """A downstream tool in another language decodes with the schema; check JSON encoding honours it."""
    prefix = unique_prefix()
    text = make_config(tmp_path / "state", prefix=prefix, speed=0.0, trades_group=False).replace(
        'prefix = "', 'encoding = "json"\nprefix = "'
    )
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await _wait(lambda: ("paper", "UNITTEST/BTC") in daemon.supervisor.groups, 10, "groups")
        group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
        await _wait(lambda: group.order.counts["filled"] >= 1, 60, "a fill")
        await _wait(
            lambda: daemon.mirror is not None and daemon.mirror.statistics().pending == 0, 30, "flush"
        )
        tg.cancel_scope.cancel()
    validator = jsonschema.Draft202012Validator(json_schema())
    r = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        kinds: set[str] = set()
        for stream in ("bar", "signal", "risk", "order", "fill", "position", "system"):
            records = await r.xrange(f"{prefix}:paper:UNITTEST/BTC:{stream}")
            assert records, stream
            for _, fields in records:
                doc = json.loads(fields[b"data"])
                validator.validate(doc)  # every record, every kind, against the exported schema
                assert doc["kind"] == fields[b"type"].decode()
                kinds.add(doc["kind"])
        assert {"Bar", "Signal", "OrderIntent", "RiskApproved", "OrderSubmitted", "OrderFilled"} <= kinds
        fill = json.loads((await r.xrange(f"{prefix}:paper:UNITTEST/BTC:fill"))[0][1][b"data"])
        assert Decimal(fill["last_price"]) > 0  # decimals travel as strings
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({**fill, "last_price": 1.5})  # a float price is not a valid record
    finally:
        keys = [k async for k in r.scan_iter(f"{prefix}:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
