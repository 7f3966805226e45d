"""Account-wide risk limits (actors/account_risk.py): every rule trips and passes; groups add up."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.account_risk import DAY_NS, NS, AccountRisk, AccountRiskLimits
from actors.channels import Channel, Router
from actors.messages import Message, OrderIntent, RiskApproved, RiskRejected, stamp
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState
from daemon.config import ConfigError, parse_config

T0 = 1_700_000_000 * NS  # 2023-11-14T22:13:20Z


class View:
    def __init__(self, open_orders: int = 0, pnl: str = "0") -> None:
        self.open_orders, self.pnl = open_orders, D(pnl)

    def open_order_count(self) -> int:
        return self.open_orders

    def daily_pnl(self) -> D:
        return self.pnl


def entry(ts: int = T0, reduce_only: bool = False, symbol: str = "A/USDT") -> OrderIntent:
    return OrderIntent(
        intent_id=f"i{ts}",
        source="test",
        side="sell" if reduce_only else "buy",
        order_type="market",
        quantity=D(1),
        reduce_only=reduce_only,
        stop_loss=None if reduce_only else D(90),
        **stamp("paper", symbol, ts),
    )


def account(**limits: object) -> tuple[AccountRisk, View, View]:
    acct = AccountRisk("main", AccountRiskLimits(**limits))  # type: ignore[arg-type]
    a, b = View(), View()
    acct.register(("paper", "A/USDT"), "USDT", a)
    acct.register(("paper", "B/USDT"), "USDT", b)
    return acct, a, b


def test_no_limits_means_no_account_rule() -> None:
    acct, a, _ = account()
    a.open_orders, a.pnl = 1000, D(-1_000_000)
    assert acct.check(entry(), "USDT") is None


def test_max_open_orders_counts_every_group_of_the_account() -> None:
    acct, a, b = account(max_open_orders=3)
    a.open_orders, b.open_orders = 1, 1
    assert acct.check(entry(), "USDT") is None  # 2 open: passes
    b.open_orders = 2
    verdict = acct.check(entry(), "USDT")
    assert verdict is not None and verdict[0] == "account_max_open_orders" and "3 orders open" in verdict[1]
    assert acct.check(entry(reduce_only=True), "USDT") is None  # exits always pass


def test_order_rate_over_the_account_in_event_time() -> None:
    acct, _, _ = account(max_orders_per_minute=2)
    for k in range(2):
        assert acct.check(entry(T0 + k * NS), "USDT") is None
        acct.approved(entry(T0 + k * NS))
    verdict = acct.check(entry(T0 + 30 * NS), "USDT")
    assert verdict is not None and verdict[0] == "account_order_rate"
    assert acct.check(entry(T0 + 62 * NS), "USDT") is None  # both fell out of the minute


def test_trades_per_day_and_the_next_utc_day() -> None:
    acct, _, _ = account(max_trades_per_day=2)
    day0 = T0 - T0 % DAY_NS
    for k in range(2):
        assert acct.check(entry(day0 + k * NS), "USDT") is None
        acct.approved(entry(day0 + k * NS))
    verdict = acct.check(entry(day0 + 3600 * NS), "USDT")
    assert verdict is not None and verdict[0] == "account_max_trades_per_day"
    assert acct.check(entry(day0 + DAY_NS), "USDT") is None  # a new UTC day


def test_daily_loss_sums_the_groups_of_one_quote_and_latches() -> None:
    acct, a, b = account(daily_loss_limit={"USDT": D(100)})
    a.pnl, b.pnl = D(-60), D(-30)
    assert acct.check(entry(), "USDT") is None  # -90: passes
    b.pnl = D(-45)
    verdict = acct.check(entry(), "USDT")
    assert verdict is not None and verdict[0] == "account_daily_loss_limit" and "-105" in verdict[1]
    assert acct.check(entry(), "BTC") is None  # another quote asset has no limit
    a.pnl = b.pnl = D(0)
    assert acct.check(entry(T0 + 60 * NS), "USDT") is not None  # latched for the day
    assert acct.check(entry(reduce_only=True), "USDT") is None
    acct.update(AccountRiskLimits(daily_loss_limit={"USDT": D(200)}))  # a reload re-evaluates
    assert acct.check(entry(T0 + 61 * NS), "USDT") is None


def test_group_stopping_leaves_the_account() -> None:
    acct = AccountRisk("main", AccountRiskLimits(max_open_orders=1))
    leave = acct.register(("paper", "A/USDT"), "USDT", View(open_orders=5))
    assert acct.check(entry(), "USDT") is not None
    leave()
    assert acct.check(entry(), "USDT") is None


@pytest.mark.anyio
async def test_two_risk_actors_share_the_account_limit() -> None:
    acct = AccountRisk("main", AccountRiskLimits(max_open_orders=2))
    router = Router()
    out: Channel[Message] = Channel("out", 64)
    router.subscribe(out, (RiskApproved, RiskRejected))
    actors = []
    for sym in ("A/USDT", "B/USDT"):
        state = SymbolState("paper", sym, "main")
        state.last_price = D(100)
        risk = RiskActor(
            "paper",
            sym,
            router,
            Channel("risk", 8),
            state,
            GroupState("paper", sym),
            RiskLimits(),
            acct,
            "USDT",
        )
        acct.register(("paper", sym), "USDT", risk)
        actors.append(risk)
    await actors[0].handle(entry(T0, symbol="A/USDT"))
    await actors[1].handle(entry(T0 + NS, symbol="B/USDT"))
    await actors[1].handle(entry(T0 + 2 * NS, symbol="B/USDT"))  # the account's third open order
    decisions = await out.receive_batch(10)
    assert [type(m).__name__ for m in decisions] == ["RiskApproved", "RiskApproved", "RiskRejected"]
    assert decisions[2].rule == "account_max_open_orders"  # type: ignore[attr-defined]
    assert actors[1].decisions == {"approved": 1, "account_max_open_orders": 1}


def test_config_table_is_validated() -> None:
    base = """
[daemon]
allow_empty = true
[accounts.main]
balances = { USDT = "1000" }
[accounts.main.risk]
max_open_orders = 10
daily_loss_limit = { USDT = "50" }
"""
    cfg = parse_config(base, "cfg.toml")
    assert cfg.accounts["main"].risk.daily_loss_limit == {"USDT": D(50)}
    with pytest.raises(ConfigError, match=r"cfg.toml:7: accounts.main.risk.max_open_orders: .*-1"):
        parse_config(base.replace("max_open_orders = 10", "max_open_orders = -1"), "cfg.toml")
    with pytest.raises(ConfigError, match=r"accounts.main.risk.daily_loss_limit.USDT: .*NaN"):
        parse_config(base.replace('"50"', '"NaN"'), "cfg.toml")
    with pytest.raises(ConfigError, match="unknown"):
        parse_config(base.replace("max_open_orders", "max_opn_orders"), "cfg.toml")
