"""Risk actor (actors/risk.py): daily rules (max trades per UTC day, daily loss limit) and exit-plan sanity.

Days are UTC days of event time: intents and bars carry it; PositionChanged (wall time)
only updates the PnL.  Every rule has a trip test and a pass test.
"""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

from actors.messages import Bar, PositionChanged
from actors.params import RiskLimits
from daemon.config import parse_config
from tests.test_config import mutate, rejects
from tests.test_risk import EX, NS, SYM, Wired, exit_, intent

pytestmark = pytest.mark.anyio

DAY = 86_400 * NS
D0 = 20_000 * DAY  # 2024-10-04 00:00:00 UTC
NOON = D0 + DAY // 2
NEXT_DAY = D0 + DAY


def pos(qty: str, avg: str = "100", realized: str = "0", fees: str = "0") -> PositionChanged:
    return PositionChanged(
        exchange=EX,
        symbol=SYM,
        ts_event=1,  # wall time: never used for the day
        ts_recv=1,
        account="acct",
        quantity=D(qty),
        avg_price=D(avg),
        realized_pnl=D(realized),
        fees=D(fees),
    )


def bar(ts: int, close: str = "100") -> Bar:
    c = D(close)
    return Bar(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts,
        ts_open=ts - 60 * NS,
        interval_s=60,
        open=c,
        high=c,
        low=c,
        close=c,
        volume=D(1),
    )


def daily(position: str = "0", **limits: object) -> Wired:
    return Wired("100", position, max_open_orders=1000, max_orders_per_minute=1000, **limits)


# --- max trades per day -----------------------------------------------------------------------


async def test_max_trades_per_day_trips_on_the_entry_past_the_cap_and_exits_still_pass() -> None:
    w = daily(max_trades_per_day=2, position="5")
    await w.approved(intent("a", ts=D0 + 1))
    await w.approved(intent("b", ts=NOON))
    assert await w.rejected(intent("c", ts=NEXT_DAY - 1)) == (
        "max_trades_per_day",
        "2 entries on 2024-10-04 (UTC), max_trades_per_day is 2",
    )
    await w.approved(exit_("x", "sell", "1"))


async def test_max_trades_per_day_resets_at_the_next_utc_day_of_event_time() -> None:
    w = daily(max_trades_per_day=1)
    await w.approved(intent("a", ts=NOON))
    assert (await w.rejected(intent("b", ts=NOON + 1)))[0] == "max_trades_per_day"
    await w.approved(intent("c", ts=NEXT_DAY))


async def test_max_trades_per_day_zero_means_no_limit_and_rejections_do_not_count() -> None:
    w = daily(max_trades_per_day=0)
    for i in range(25):
        await w.approved(intent(f"a{i}", ts=NOON + i))
    w2 = daily(max_trades_per_day=1)
    await w2.rejected(intent("big", qty="1000", ts=NOON))  # max_notional: not a trade
    await w2.approved(intent("ok", ts=NOON + 1))


async def test_exits_are_not_counted_as_trades() -> None:
    w = daily(max_trades_per_day=1, position="3")
    await w.approved(exit_("x1", "sell", "1"))
    await w.approved(exit_("x2", "sell", "1"))
    await w.approved(intent("a", ts=NOON))


# --- daily loss limit ----------------------------------------------------------------------------


async def test_realized_loss_at_the_limit_switches_to_reducing_until_the_next_utc_day() -> None:
    # Arrange: the day starts flat
    w = daily(daily_loss_limit=D("50"), position="0")
    await w.approved(intent("a", ts=NOON))
    # Act: a losing round trip (realized -45, fees 5): -50 for the day
    await w.risk.handle(pos("0", "0", realized="-45", fees="5"))
    # Assert
    reason = (
        "daily PnL -50 on 2024-10-04 (UTC) breached daily_loss_limit 50: "
        "REDUCING (exits only) until the next UTC day"
    )
    assert await w.rejected(intent("b", ts=NOON + 1)) == ("daily_loss_limit", reason)
    assert w.risk.day_status()["reducing"] == reason
    # latched: even a recovered PnL keeps the day REDUCING
    await w.risk.handle(pos("0", "0", realized="10"))
    assert (await w.rejected(intent("c", ts=NOON + 2)))[0] == "daily_loss_limit"
    await w.approved(intent("d", ts=NEXT_DAY))


async def test_loss_below_the_limit_passes() -> None:
    w = daily(daily_loss_limit=D("50"))
    await w.approved(intent("a", ts=NOON))
    await w.risk.handle(pos("0", "0", realized="-49.99"))
    await w.approved(intent("b", ts=NOON + 1))


async def test_unrealized_loss_at_the_last_trade_price_counts() -> None:
    w = daily(daily_loss_limit=D("50"))
    await w.approved(intent("a", ts=NOON))  # day starts flat at last price 100
    await w.risk.handle(pos("2", "100"))
    w.state.position = D(2)
    w.state.last_price = D("75.01")  # -49.98
    await w.approved(intent("b", qty="0.1", ts=NOON + 1))
    w.state.last_price = D("75")  # -50
    assert (await w.rejected(intent("c", qty="0.1", ts=NOON + 2)))[0] == "daily_loss_limit"
    await w.approved(exit_("x", "sell", "2"))  # exits pass while REDUCING


async def test_exits_pass_and_a_halt_is_reported_before_the_daily_loss() -> None:
    w = daily(daily_loss_limit=D("10"), position="1")
    await w.approved(intent("a", ts=NOON))
    await w.risk.handle(pos("1", "100", realized="-20"))
    await w.approved(exit_("x", "sell", "1"))
    w.group.admin_halt("desk")
    assert (await w.rejected(intent("b", ts=NOON + 1)))[0] == "halted"
    w.group.admin_resume()
    assert (await w.rejected(intent("c", qty="0", ts=NOON + 2)))[0] == "daily_loss_limit"  # before sanity


async def test_yesterdays_loss_does_not_count_today() -> None:
    w = daily(daily_loss_limit=D("150"))
    await w.approved(intent("a", ts=NOON))
    await w.risk.handle(pos("0", "0", realized="-100"))
    await w.approved(intent("b", ts=NEXT_DAY + 1))  # today's baseline: -100
    await w.risk.handle(pos("0", "0", realized="-249"))  # -149 today
    await w.approved(intent("c", ts=NEXT_DAY + 2))
    await w.risk.handle(pos("0", "0", realized="-250"))  # -150 today
    assert (await w.rejected(intent("d", ts=NEXT_DAY + 3)))[0] == "daily_loss_limit"


async def test_a_dip_seen_on_a_bar_latches_even_when_the_price_recovers_before_the_next_intent() -> None:
    w = daily(daily_loss_limit=D("50"))
    await w.risk.handle(bar(NOON))  # the day starts, flat
    await w.risk.handle(pos("1", "100"))
    w.state.last_price = D("40")
    await w.risk.handle(bar(NOON + 60 * NS, "40"))
    w.state.last_price = D("100")
    assert (await w.rejected(intent("a", ts=NOON + 120 * NS)))[0] == "daily_loss_limit"


async def test_daily_loss_limit_zero_is_off() -> None:
    w = daily(daily_loss_limit=D("0"))
    await w.approved(intent("a", ts=NOON))
    await w.risk.handle(pos("0", "0", realized="-1000000"))
    await w.approved(intent("b", ts=NOON + 1))


async def test_reload_that_changes_the_limit_clears_the_latch_and_re_evaluates() -> None:
    w = daily(daily_loss_limit=D("50"))
    await w.approved(intent("a", ts=NOON))
    await w.risk.handle(pos("0", "0", realized="-60"))
    assert (await w.rejected(intent("b", ts=NOON + 1)))[0] == "daily_loss_limit"
    w.risk.apply_limits(RiskLimits(daily_loss_limit=D("100"), max_open_orders=1000))
    await w.approved(intent("c", ts=NOON + 2))
    w.risk.apply_limits(RiskLimits(daily_loss_limit=D("60"), max_open_orders=1000))  # trips at once
    assert (await w.rejected(intent("d", ts=NOON + 3)))[0] == "daily_loss_limit"


# --- exit plans on intents ------------------------------------------------------------------------

BAD_PLANS = {
    "negative_distance": ({"trailing_distance": "-1"}, "trailing_distance must be a positive number, got -1"),
    "nan_pct": ({"trailing_pct": "NaN"}, "trailing_pct must be a positive number, got NaN"),
    "pct_100": ({"trailing_pct": "100"}, "trailing_pct must be below 100, got 100"),
    "both": (
        {"trailing_pct": "1", "trailing_distance": "1"},
        "give trailing_distance or trailing_pct, not both",
    ),
    "negative_step": (
        {"trailing_distance": "1", "trailing_step": "-0.1"},
        "trailing_step must be a non-negative number, got -0.1",
    ),
    "activation_alone": (
        {"trailing_activation": "105"},
        "trailing_activation needs trailing_distance or trailing_pct",
    ),
    "step_alone": ({"trailing_step": "1"}, "trailing_step needs trailing_distance or trailing_pct"),
    "exit_in_the_past": (
        {"exit_at_ns": 5},
        "exit_at_ns 1970-01-01T00:00:00.000Z must be after the intent's time 1970-01-01T00:00:00.000Z",
    ),
}


@pytest.mark.parametrize(("plan", "reason"), BAD_PLANS.values(), ids=BAD_PLANS.keys())
async def test_inconsistent_exit_plan_is_rejected_as_invalid(plan: dict[str, object], reason: str) -> None:
    w = daily()
    fields = {k: (D(v) if isinstance(v, str) else v) for k, v in plan.items()}
    it = msgspec.structs.replace(intent("a", ts=10), **fields)
    assert await w.rejected(it) == ("invalid", reason)


async def test_good_exit_plan_passes() -> None:
    w = daily()
    it = msgspec.structs.replace(
        intent("a", ts=10),
        trailing_pct=D("1.5"),
        trailing_activation=D("101"),
        trailing_step=D("0"),
        exit_at_ns=11,
    )
    await w.approved(it)


async def test_time_exit_needs_a_stop_loss_even_when_stop_losses_are_not_required() -> None:
    w = daily(require_stop_loss=False)
    it = msgspec.structs.replace(intent("a", ts=10, stop_loss=None), exit_at_ns=20)
    assert await w.rejected(it) == (
        "stop_loss_required",
        "entries with a time exit (exit_at_ns) must carry a stop-loss",
    )
    await w.approved(msgspec.structs.replace(intent("b", ts=10), exit_at_ns=20))


# --- config validation of the new risk keys ---------------------------------------------------

RISK_LINE = 'max_order_notional = "100"'  # line 42 of tests.test_config.MIN

BAD_RISK = {
    "negative_trades": (
        "max_trades_per_day = -1",
        "max_trades_per_day",
        "expected a number of entries per UTC day >= 0 (0 = no limit), got -1",
    ),
    "negative_loss": (
        'daily_loss_limit = "-5"',
        "daily_loss_limit",
        "expected a loss in quote currency >= 0 (0 = off), got -5",
    ),
    "nan_loss": (
        'daily_loss_limit = "NaN"',
        "daily_loss_limit",
        "expected a loss in quote currency >= 0 (0 = off), got NaN",
    ),
    "negative_step": (
        'trail_step = "-0.1"',
        "trail_step",
        "expected a trailing-stop step in price units >= 0 (0 = every improvement), got -0.1",
    ),
    "infinite_step": (
        'trail_step = "Infinity"',
        "trail_step",
        "expected a trailing-stop step in price units >= 0 (0 = every improvement), got Infinity",
    ),
}


@pytest.mark.parametrize(("line", "key", "expected"), BAD_RISK.values(), ids=BAD_RISK.keys())
def test_config_rejects_bad_daily_and_stop_settings(line: str, key: str, expected: str) -> None:
    rejects(mutate(RISK_LINE, f"{RISK_LINE}\n{line}"), f"cfg.toml:43: groups[0].risk.{key}: {expected}")


def test_config_rejects_non_boolean_switches() -> None:
    rejects(
        mutate(RISK_LINE, f'{RISK_LINE}\nnative_stops = "yes"'),
        "cfg.toml:43: groups[0].risk.native_stops: Expected `bool`, got `str`",
    )
    rejects(
        mutate(RISK_LINE, f'{RISK_LINE}\nhalt_cancels_orders = "no"'),
        "cfg.toml:43: groups[0].risk.halt_cancels_orders: Expected `bool`, got `str`",
    )


def test_config_accepts_the_new_risk_keys() -> None:
    extra = "\n".join(
        (
            "max_trades_per_day = 5",
            'daily_loss_limit = "250"',
            "halt_cancels_orders = false",
            'trail_step = "0.5"',
            "native_stops = true",
        )
    )
    (g,) = parse_config(mutate(RISK_LINE, f"{RISK_LINE}\n{extra}"), "cfg.toml").groups
    assert (g.risk.max_trades_per_day, g.risk.daily_loss_limit, g.risk.trail_step) == (5, D("250"), D("0.5"))
    assert (g.risk.halt_cancels_orders, g.risk.native_stops) == (False, True)
    defaults = RiskLimits()
    assert (defaults.max_trades_per_day, defaults.daily_loss_limit) == (0, D(0))
    assert defaults.halt_cancels_orders is True
    assert (defaults.trail_step, defaults.native_stops) == (None, False)  # unset: max(10 ticks, 0.1 %)


def test_risk_day_survives_a_restart_through_its_snapshot() -> None:
    from actors.messages import RiskDay

    a = daily().risk
    a.restore_day(RiskDay(day=20_000, entries=4, start_equity=D("1.5"), breach="latched"))
    snap = a.day_snapshot()
    assert (snap.day, snap.entries, snap.start_equity, snap.breach) == (20_000, 4, D("1.5"), "latched")
    assert a.day_status()["entries"] == 4 and a.day_status()["reducing"] == "latched"
