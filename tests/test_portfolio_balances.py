"""The account ledger takes the venue's balance reports (BalancesChanged) as the truth."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from actors.channels import Channel, Router
from actors.messages import BalancesChanged, Message, OrderFilled, stamp
from actors.portfolio import Portfolio

pytestmark = pytest.mark.anyio


async def test_fills_move_balances_and_a_venue_report_sets_them() -> None:
    p = Portfolio(
        "live", Router(), Channel[Message]("p", 8), {"USDT": D(1000)}, {"NKN/USDT": ("NKN", "USDT")}
    )
    await p.handle(
        OrderFilled(
            client_order_id="c1",
            venue_order_id="1",
            trade_id="t1",
            side="buy",
            last_qty=D(100),
            last_price=D("0.35"),
            cum_qty=D(100),
            leaves_qty=D(0),
            fee=D("0.1"),
            fee_asset="NKN",
            liquidity="taker",
            **stamp("binance", "NKN/USDT", 1),
        )
    )
    assert p.balances == {"USDT": D(965), "NKN": D("99.9")}
    report = BalancesChanged(
        account="live", free={"NKN": D("99.7")}, locked={"NKN": D("0.1")}, **stamp("binance", "*", 2)
    )
    await p.handle(report)
    await p.handle(BalancesChanged(account="other", free={"USDT": D(1)}, **stamp("binance", "*", 3)))
    assert p.balances == {"USDT": D(965), "NKN": D("99.8")} and p.venue_balances == 1  # the venue's word
