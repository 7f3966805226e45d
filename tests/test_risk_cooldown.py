"""risk.cooldown_s: entries refused for that long (event time) after an exit, for every strategy.

An exit is a fill that shrank the position (its PositionChanged); the cooldown runs from the
market time of that moment, exits are never refused, a restored position is no exit, and the
exit's time is journaled (RiskDayChanged "exit") and restored after a restart.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.messages import RiskDayChanged
from actors.order_fold import OrderFold
from actors.runtime import GroupState
from daemon.config import ConfigError, parse_config
from tests.test_config import mutate
from tests.test_risk import exit_, intent
from tests.test_risk_daily import D0, NS, daily, pos


@pytest.mark.anyio
async def test_entries_wait_out_the_cooldown_after_an_exit_and_exits_pass() -> None:
    w = daily(cooldown_s=600, position="5")
    journaled: list[object] = []
    w.router.tap = journaled.append
    w.state.last_ts_event = D0 + 100 * NS
    await w.risk.handle(pos("5"))
    await w.approved(intent("a", ts=D0 + 101 * NS))  # no exit yet: no cooldown
    await w.risk.handle(pos("2"))  # a fill shrank the position: an exit at D0 + 100 s
    (change,) = [m for m in journaled if isinstance(m, RiskDayChanged) and m.why == "exit"]
    assert change.why == "exit" and change.day.last_exit_ns == D0 + 100 * NS
    rule, reason = await w.rejected(intent("b", ts=D0 + 699 * NS))
    assert rule == "cooldown"
    assert "until 2024-10-04T00:11:40Z" in reason and "after the exit at 2024-10-04T00:01:40Z" in reason
    await w.approved(exit_("x", "sell", "1"))  # exits are never cooled down
    await w.approved(intent("c", ts=D0 + 700 * NS))


@pytest.mark.anyio
async def test_no_cooldown_when_off_or_for_a_growing_or_restored_position() -> None:
    w = daily(position="0")
    w.state.last_ts_event = D0
    await w.risk.handle(pos("5"))
    await w.risk.handle(pos("1"))
    await w.approved(intent("a", ts=D0 + 1))  # cooldown_s = 0: off
    w = daily(cooldown_s=600)
    w.state.last_ts_event = D0
    await w.risk.handle(pos("5"))  # grew: no exit
    await w.approved(intent("b", ts=D0 + 1))


@pytest.mark.anyio
async def test_cooldown_survives_a_restart_through_the_journal() -> None:
    w = daily(cooldown_s=600, position="5")
    journaled: list[object] = []
    w.router.tap = journaled.append
    w.state.last_ts_event = D0 + 100 * NS
    await w.risk.handle(pos("5"))
    await w.risk.handle(pos("0"))
    fold = OrderFold("paper", "X/Y")
    for msg in journaled:
        fold.apply(msg)  # type: ignore[arg-type]
    assert fold.risk_day is not None
    fresh = daily(cooldown_s=600)
    fresh.risk.restore_day(fold.risk_day)
    assert (await fresh.rejected(intent("b", ts=D0 + 300 * NS)))[0] == "cooldown"
    await fresh.approved(intent("c", ts=D0 + 700 * NS))
    assert isinstance(fresh.group, GroupState) and fresh.state.position == D(0)


@pytest.mark.parametrize("value", ["-1", "nan", "1e9"])
def test_config_refuses_a_bad_cooldown(value: str) -> None:
    text = mutate("[groups.risk]\n", f"[groups.risk]\ncooldown_s = {value}\n")
    with pytest.raises(ConfigError, match=r"groups\[0\]\.risk\.cooldown_s: expected seconds after an exit"):
        parse_config(text, "cfg.toml")


def test_config_takes_a_cooldown() -> None:
    cfg = parse_config(mutate("[groups.risk]\n", "[groups.risk]\ncooldown_s = 900\n"), "cfg.toml")
    assert cfg.groups[0].risk.cooldown_s == 900
