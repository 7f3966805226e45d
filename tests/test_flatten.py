"""daemon.flatten against a real Supervisor and the paper venue in process.

One paper group plays the bundled candles (a bar every 0.1 s), ``native_stops`` on: a market
entry fills and the stop-monitor rests its stop-loss at the venue as a stop_market order; a
limit entry rests below the market.  Flatten then cancels both, closes the position with a
reduce-only market order and leaves the group halted: checked at the paper venue (no open
order in its book, the account's base balance back to where it started).  A position whose
rest is below min_notional is reported as dust and not retried.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal as D
from pathlib import Path

import anyio
import pytest

from actors.messages import OrderIntent
from daemon.config import parse_config
from daemon.flatten import flatten_scope
from daemon.group import SymbolGroup
from daemon.scopes import ScopeError, parse_scope
from daemon.supervisor import Supervisor
from tests.helpers import make_config, unique_prefix

pytestmark = pytest.mark.anyio

KEY = ("paper", "UNITTEST/BTC")
NAME = "paper:UNITTEST/BTC"
TICK = D("0.00000001")


def config_text(tmp_path: Path, min_notional: str = "0", native_stops: bool = True) -> str:
    text = make_config(
        tmp_path / "state",
        prefix=unique_prefix(),
        speed=600.0,
        trades_group=False,
        redis_enabled=False,
        rsi_buy_max=0.0,  # the strategy stays out of the way
    )
    text = text.replace('step_size = "0.01"\n', f'step_size = "0.01"\nmin_notional = "{min_notional}"\n', 1)
    return text + f"native_stops = {str(native_stops).lower()}\n"


async def until(pred: Callable[[], object], what: str, timeout: float = 10) -> None:
    try:
        with anyio.fail_after(timeout):
            while not pred():
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


@asynccontextmanager
async def running(
    tmp_path: Path, min_notional: str = "0", native_stops: bool = True
) -> AsyncIterator[tuple[Supervisor, SymbolGroup]]:
    sup = Supervisor(parse_config(config_text(tmp_path, min_notional, native_stops)), tap=None)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            await tg.start(sup.run)
            group = sup.groups[KEY]
            await until(lambda: group.state.last_price is not None, "first bar")
            yield sup, group
            tg.cancel_scope.cancel()


def intent(group: SymbolGroup, intent_id: str, **kw: object) -> OrderIntent:
    ts = group.state.last_ts_event
    fields: dict[str, object] = {"source": "test", "order_type": "market", "side": "buy", **kw}
    return OrderIntent(exchange=KEY[0], symbol=KEY[1], ts_event=ts, ts_recv=ts, intent_id=intent_id, **fields)  # type: ignore[arg-type]


def venue_open(group: SymbolGroup) -> dict[str, object]:
    return dict(group.venue.engine._open)  # type: ignore[union-attr]


async def build_position(group: SymbolGroup) -> None:
    """A filled market entry with a native stop resting at the venue, and a resting limit entry."""
    last = group.state.last_price
    assert last is not None
    stop = (last * D("0.5")).quantize(TICK)
    await group.router.publish(intent(group, "entry", quantity=D("20"), stop_loss=stop))
    await until(lambda: group.order.position.quantity == D("20"), "entry filled")
    await until(
        lambda: any(
            r.intent.order_type == "stop_market" and r.status == "accepted" for r in group.order.open_orders()
        ),
        "native stop resting",
    )
    now = group.state.last_price
    assert now is not None
    price = (now * D("0.96")).quantize(TICK)  # inside risk's 5 % band, below the market
    await group.router.publish(
        intent(group, "resting", order_type="limit", quantity=D("30"), price=price, stop_loss=stop)
    )
    await until(lambda: len(venue_open(group)) == 2, "limit entry resting at the venue")


async def test_flatten_cancels_entries_and_stop_closes_the_position_and_halts(tmp_path: Path) -> None:
    async with running(tmp_path) as (sup, group):
        base_before = group.venue.account.total("UNITTEST")  # type: ignore[union-attr]
        await build_position(group)
        kinds = sorted(r.intent.order_type for r in group.order.open_orders())
        assert kinds == ["limit", "stop_market"]

        report = await flatten_scope(sup, "group", NAME, "test", timeout_s=20)

        assert report.ok, report
        (g,) = report.groups
        assert (g.position_before, g.position_after, g.open_orders_after, g.flat) == (
            "20.00",
            "0.00",
            0,
            True,
        )
        cancels = [s for s in g.steps if s.action == "cancel"]
        assert sorted((s.order_type, s.result) for s in cancels) == [
            ("limit", "canceled"),
            ("stop_market", "canceled"),
        ]
        (close,) = [s for s in g.steps if s.action == "close"]
        assert (close.side, close.quantity, close.result, close.source) == (
            "sell",
            "20.00",
            "filled",
            "flatten",
        )
        assert close.price is not None and len(close.price.split(".")[1]) == 8  # rounded to the tick
        # at the venue: nothing open, the base asset back where it started
        assert venue_open(group) == {}
        assert group.venue.account.total("UNITTEST") == base_before  # type: ignore[union-attr]
        assert group.venue.account.reserved_of("BTC") == 0  # type: ignore[union-attr]
        # the scope stays halted: an entry is refused, and the halt is the operator's (journaled kind)
        assert group.health.halted and "flattened by the operator" in group.health.reason
        assert ("group", NAME) in sup.halts.active
        await group.router.publish(intent(group, "after", quantity=D("5"), stop_loss=(D("0.0001"))))
        await anyio.sleep(0.5)
        assert group.order.position.quantity == 0 and "after" not in {
            r.intent.intent_id for r in group.order.orders.values()
        }


async def test_flatten_reports_dust_below_min_notional_and_does_not_retry(tmp_path: Path) -> None:
    async with running(tmp_path, min_notional="0.0001", native_stops=False) as (sup, group):
        last = group.state.last_price
        assert last is not None
        stop = (last * D("0.5")).quantize(TICK)
        await group.router.publish(intent(group, "entry", quantity=D("20"), stop_loss=stop))
        await until(lambda: group.order.position.quantity == D("20"), "entry filled")
        # sell all but 0.05: 0.05 * ~0.0016 BTC is far below min_notional 0.0001
        await group.router.publish(intent(group, "exit", side="sell", quantity=D("19.95"), reduce_only=True))
        await until(lambda: group.order.position.quantity == D("0.05"), "partial exit filled")

        report = await flatten_scope(sup, "daemon", "", "test", timeout_s=10)

        (g,) = report.groups
        assert [s.action for s in g.steps] == ["dust"], g.steps
        assert "below min_notional 0.0001" in g.steps[0].detail and g.steps[0].quantity == "0.05"
        assert (g.done, g.flat, report.ok) == (True, False, True)
        assert group.order.position.quantity == D("0.05") and venue_open(group) == {}
        assert sum(1 for r in group.order.orders.values() if r.intent.source == "flatten") == 0
        assert group.health.halted


async def test_flatten_of_an_empty_group_does_nothing_but_halt(tmp_path: Path) -> None:
    async with running(tmp_path) as (sup, group):
        report = await flatten_scope(sup, "account", "paper", "test", timeout_s=5)
        assert report.ok and report.groups[0].steps == [] and report.groups[0].flat
        assert group.health.halted and "account paper" in report.halted + group.health.reason


async def test_scope_checks_name_what_exists(tmp_path: Path) -> None:
    sup = Supervisor(parse_config(config_text(tmp_path)), tap=None)
    assert parse_scope(sup, "group", NAME) == ("group", NAME)
    assert parse_scope(sup, "account", "paper") == ("account", "paper")
    assert parse_scope(sup, "all", "") == ("daemon", "")
    for scope, target, message in (
        (
            "group",
            "paper:NOPE/BTC",
            "unknown group 'paper:NOPE/BTC': expected exchange:symbol, one of paper:UNITTEST/BTC",
        ),
        ("account", "live", "unknown account 'live': the accounts are paper"),
        ("planet", "", "unknown scope 'planet': expected one of daemon, account, group"),
        ("daemon", "x", "scope daemon takes no target, got 'x'"),
    ):
        with pytest.raises(ScopeError) as err:
            parse_scope(sup, scope, target)
        assert str(err.value) == message and err.value.status == 404
