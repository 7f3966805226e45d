"""Reload safety under a running supervisor: a reload that would abandon a position or working
orders is refused whole; an apply that fails leaves the running groups in place."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import anyio
import pytest

from daemon.app import Daemon
from daemon.config import ConfigError, parse_config
from daemon.metrics import Metrics
from tests.helpers import make_config, unique_prefix

pytestmark = pytest.mark.anyio


def _config(tmp_path: Path, **kw: object) -> str:
    return make_config(tmp_path / "state", prefix=unique_prefix(), speed=1.0, redis_enabled=False, **kw)  # type: ignore[arg-type]


async def test_reload_that_would_stop_a_group_holding_a_position_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path))
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(10):
            while len(daemon.supervisor.groups) < 2:
                await anyio.sleep(0.02)
        xrp = daemon.supervisor.groups[("paper", "XRP/ETH")]
        xrp.state.position = Decimal("120")
        path.write_text(_config(tmp_path, trades_group=False))
        with pytest.raises(
            ConfigError,
            match=r"^reload refused: it would stop or restart paper:XRP/ETH \(position 120, 0 open orders\)",
        ):
            daemon.supervisor.check_reload(parse_config(path.read_text()))
        await daemon.reload()
        assert daemon.supervisor.groups[("paper", "XRP/ETH")] is xrp  # still running, untouched
        assert daemon.supervisor.last_reload_error.startswith(
            "reload refused: it would stop or restart paper:XRP/ETH"
        )
        xrp.state.position = Decimal(0)
        await daemon.reload()
        assert ("paper", "XRP/ETH") not in daemon.supervisor.groups
        assert daemon.supervisor.last_reload_changes[0] == "stop paper:XRP/ETH"
        tg.cancel_scope.cancel()


async def test_admin_halt_applies_to_groups_started_later(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path, trades_group=False))
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(10):
            while not daemon.supervisor.groups:
                await anyio.sleep(0.02)
        daemon.halt("desk says stop")
        path.write_text(_config(tmp_path))
        await daemon.reload()
        xrp = daemon.supervisor.groups[("paper", "XRP/ETH")]
        assert xrp.health.halted
        assert xrp.health.reason.startswith("admin: desk says stop (all groups, halted ")
        daemon.resume()
        assert not xrp.health.halted
        tg.cancel_scope.cancel()


async def test_sighup_changes_a_risk_limit_and_the_next_decision_uses_it(tmp_path: Path) -> None:
    from actors.channels import Channel
    from actors.messages import Message, OrderIntent, RiskApproved, RiskRejected, stamp

    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path, trades_group=False))
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(15):
            while ("paper", "UNITTEST/BTC") not in daemon.supervisor.groups:
                await anyio.sleep(0.02)
            group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
            while group.state.last_price is None:
                await anyio.sleep(0.02)
            decisions: Channel[Message] = Channel("decisions", 64)
            group.router.subscribe(decisions, (RiskApproved, RiskRejected))
            price = group.state.last_price

            async def decide(n: int) -> Message:
                intent = OrderIntent(
                    intent_id=f"reload-{n}",
                    source="test",
                    side="buy",
                    order_type="limit",
                    quantity=Decimal("0.4") / price,
                    price=price,
                    stop_loss=price * Decimal("0.9"),
                    **stamp("paper", "UNITTEST/BTC", group.state.last_ts_event),
                )
                group.state.open_orders = 0  # nothing else counts against the intent
                await group.risk.handle(intent)
                while True:
                    (msg,) = await decisions.receive_batch(1)
                    if getattr(msg, "intent", None) is not None and msg.intent.intent_id == intent.intent_id:  # type: ignore[attr-defined]
                        return msg

            assert isinstance(await decide(1), RiskApproved)  # notional 0.4 under the 0.5 cap
            path.write_text(
                path.read_text().replace('max_order_notional = "0.5"', 'max_order_notional = "0.3"')
            )
            await daemon.reload()
            assert daemon.supervisor.last_reload_changes == ["update paper:UNITTEST/BTC"], (
                daemon.supervisor.last_reload_changes
            )
            rejected = await decide(2)
            assert isinstance(rejected, RiskRejected) and rejected.rule == "max_notional"
            assert group.risk.limits.max_order_notional == Decimal("0.3")
        tg.cancel_scope.cancel()


async def test_status_shows_unrealized_pnl_per_group_and_per_account_quote(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path, trades_group=False).replace("speed = 1.0", "speed = 0.001"))
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(10):
            while ("paper", "UNITTEST/BTC") not in daemon.supervisor.groups:
                await anyio.sleep(0.02)
        group = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
        pos = group.order.position
        pos.quantity, pos.avg_price, pos.realized_pnl, pos.fees = (
            Decimal(10),
            Decimal("0.002"),
            Decimal("0.5"),
            Decimal("0.01"),
        )
        group.state.last_price = Decimal("0.0025")
        status = daemon.status()
        tg.cancel_scope.cancel()
    (g,) = status["groups"]  # type: ignore[misc]
    # rounded to the instrument (tick 0.00000001 BTC): never a 30-digit decimal
    assert g["unrealized_pnl"] == "0.00500000" and g["fees"] == "0.01000000"
    assert (g["position"], g["last_price"]) == ("0.00", "0.00250000")  # step 0.01, tick 1e-8
    assert status["accounts"]["paper"]["pnl_by_quote"] == {  # type: ignore[index]
        "BTC": {"realized": "0.50000000", "unrealized": "0.00500000", "fees": "0.01000000"}
    }


async def _running(daemon: Daemon, keys: int) -> None:
    with anyio.fail_after(10):
        while len(daemon.supervisor.groups) < keys:
            await anyio.sleep(0.02)


async def test_reload_that_would_stop_every_group_is_refused_unless_allow_empty(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(_config(tmp_path, trades_group=False))
    daemon = Daemon(parse_config(path.read_text()), path, Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await _running(daemon, 1)
        btc = daemon.supervisor.groups[("paper", "UNITTEST/BTC")]
        other = _config(tmp_path, candles_group=False)  # valid, but every running group would stop
        path.write_text(other)
        await daemon.reload()
        assert daemon.supervisor.groups == {("paper", "UNITTEST/BTC"): btc}
        assert daemon.supervisor.last_reload_error == (
            "reload refused: it would stop every running group (paper:UNITTEST/BTC); check the file is "
            "complete, or set daemon.allow_empty = true to stop them all"
        )
        path.write_text(other.replace("[daemon]\n", "[daemon]\nallow_empty = true\n"))
        await daemon.reload()
        assert daemon.supervisor.last_reload_changes[:2] == ["start paper:XRP/ETH", "stop paper:UNITTEST/BTC"]
        assert list(daemon.supervisor.groups) == [("paper", "XRP/ETH")]
        tg.cancel_scope.cancel()


async def test_empty_or_truncated_file_never_stops_trading(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = _config(tmp_path)
    path.write_text(text)
    daemon = Daemon(parse_config(text), path, Metrics())
    empty = (
        f"{path}: groups: expected at least one enabled [[groups]] table (an empty or truncated file "
        "would stop all trading); set daemon.allow_empty = true to run without groups"
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        await _running(daemon, 2)
        groups = dict(daemon.supervisor.groups)
        for cut in ("", text[: text.index("[[groups]]")], text[: text.index("[[groups]]") + 11]):
            path.write_text(cut)
            await daemon.reload()
            assert daemon.supervisor.groups == groups
            assert daemon.supervisor.last_reload_error.startswith(f"{path}:"), cut
        assert daemon.supervisor.reload_failures == 3
        path.write_text("")
        await daemon.reload()
        assert daemon.supervisor.last_reload_error == empty
        path.write_text(
            text[: text.index("[[groups]]")].replace("[daemon]\n", "[daemon]\nallow_empty = true\n")
        )
        await daemon.reload()  # said so: every group stops
        assert daemon.supervisor.groups == {}
        assert daemon.supervisor.last_reload_error == ""
        tg.cancel_scope.cancel()
