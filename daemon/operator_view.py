"""What ``tradingd status``, ``orders`` and ``balances`` show: the supervisor's state for a person.

Takes and emits no messages; reads the supervisor's groups and accounts.  Prices are rounded to
the instrument's tick, quantities to its step, money in the quote asset to the tick (at least 2
places), times ISO 8601 UTC (``daemon.display``); the exact values stay in the journal.

* :func:`groups` -- per group: state ACTIVE / REDUCING / HALTED and why, feed age, strategy,
  position with average price, unrealized and realized PnL, fees, open orders.
* :func:`open_orders` -- every open order of every group.
* :func:`balances` -- per account and asset: the ledger (the portfolio actor) beside the venue
  (the paper account's book; a Binance account asked over REST, ``GET /api/v3/account``).
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import anyio

from actors.order import OrderRecord
from daemon import display
from daemon.config import PaperAccount
from daemon.group import SymbolGroup
from daemon.logs import redact
from daemon.supervisor import AccountRuntime, Supervisor

log = logging.getLogger("tradingd.admin")
ZERO = Decimal(0)
VENUE_TIMEOUT_S = 10.0


def group_state(group: SymbolGroup) -> tuple[str, str]:
    """("ACTIVE" | "REDUCING" | "HALTED", why)."""
    mode = group.cfg.risk.trading_state
    if group.health.halted:
        return "HALTED", group.health.reason
    if mode == "halted":
        return "HALTED", "risk.trading_state = halted in the config"
    if mode == "reducing":
        return "REDUCING", "risk.trading_state = reducing in the config"
    if group.risk.daily_breach:
        return "REDUCING", group.risk.daily_breach
    return "ACTIVE", ""


def groups(sup: Supervisor) -> list[dict[str, object]]:
    now = time.time_ns()
    out: list[dict[str, object]] = []
    for g in sup.groups.values():
        inst = g.cfg.instrument
        tick, step = inst.tick_size, inst.step_size
        pos = g.order.position
        last = g.state.last_price
        state, why = group_state(g)
        age = g.feed_age_s(now)
        out.append(
            {
                "group": g.name,
                "account": g.cfg.account,
                "state": state,
                "why": why,
                "feed_age_s": None if age is None else round(age, 1),
                "strategy": str(getattr(g.strategy.strategy, "name", "")),
                "last_price": display.price(last, tick),
                "position": display.quantity(pos.quantity, step),
                "base": inst.base,
                "quote": inst.quote,
                "avg_price": display.price(pos.avg_price if pos.quantity else None, tick),
                "unrealized_pnl": display.money(
                    pos.unrealized(last) if last is not None and pos.quantity else ZERO, tick
                ),
                "realized_pnl": display.money(pos.realized_pnl, tick),
                "fees": display.money(pos.fees, tick),
                "open_orders": len(g.order.open_orders()),
            }
        )
    return out


def _order_row(g: SymbolGroup, r: OrderRecord) -> dict[str, object]:
    inst = g.cfg.instrument
    it = r.intent
    return {
        "group": g.name,
        "client_order_id": r.cid,
        "venue_order_id": r.venue_order_id,
        "source": it.source,
        "side": it.side,
        "type": "oco" if it.oco_take_profit is not None else it.order_type,  # price: its take-profit
        "quantity": display.quantity(r.quantity, inst.step_size),
        "filled": display.quantity(r.cum_qty, inst.step_size),
        "price": display.price(it.oco_take_profit or it.price, inst.tick_size),
        "stop_price": display.price(it.stop_price, inst.tick_size),
        "reduce_only": it.reduce_only,
        "status": r.status,
    }


def open_orders(sup: Supervisor) -> list[dict[str, object]]:
    return [_order_row(g, r) for g in sup.groups.values() for r in g.order.open_orders()]


def _units(sup: Supervisor, account: str) -> dict[str, Decimal]:
    """Per asset the unit it is shown in: a base asset's step, a quote asset's tick (at least 0.01)."""
    units: dict[str, Decimal] = {}
    for g in sup.groups.values():
        if g.cfg.account != account:
            continue
        inst = g.cfg.instrument
        for asset, unit in ((inst.base, inst.step_size), (inst.quote, min(inst.tick_size, Decimal("0.01")))):
            units[asset] = min(units.get(asset, unit), unit)
    return units


async def _venue_balances(acct: AccountRuntime, sup: Supervisor) -> tuple[dict[str, Decimal], str]:
    """{asset: free + locked} at the venue, and "" or why it could not be asked."""
    venue = next((g.venue for g in sup.groups.values() if g.cfg.account == acct.name), None)
    ask = getattr(venue, "balances", None)
    if ask is None:  # a paper account: its book is the venue
        return {a: total for a, (total, _) in acct.paper.snapshot().items()}, ""
    try:
        with anyio.fail_after(VENUE_TIMEOUT_S):
            got = await ask()
    except TimeoutError:
        return {}, f"the venue did not answer within {VENUE_TIMEOUT_S:g}s"
    except Exception as exc:  # noqa: BLE001 -- any venue error is shown, not raised: the ledger still is
        log.warning("balances of account %s: %s", acct.name, exc, extra={"component": "admin"})
        return {}, redact(f"{type(exc).__name__}: {exc}")[:300]
    return {
        a: got.free.get(a, ZERO) + got.locked.get(a, ZERO) for a in got.free.keys() | got.locked.keys()
    }, ""


async def balances(sup: Supervisor) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for name, acct in sup.accounts.items():
        venue, error = await _venue_balances(acct, sup)
        units = _units(sup, name)
        ledger = acct.portfolio.ledger.balances or acct.portfolio.balances  # before its first check
        rows = []
        for asset in sorted(ledger.keys() | venue.keys()):
            unit = units.get(asset, Decimal("0.00000001"))
            mine, theirs = ledger.get(asset), venue.get(asset)
            rows.append(
                {
                    "asset": asset,
                    "ledger": None if mine is None else display.quantity(mine, unit),
                    "venue": None if theirs is None else display.quantity(theirs, unit),
                    "difference": None
                    if mine is None or theirs is None
                    else display.quantity(theirs - mine, unit),
                }
            )
        kind = "paper" if isinstance(sup.cfg.accounts.get(name), PaperAccount) else "binance"
        check = acct.balance.status() if acct.balance is not None else None
        out.append(
            {"account": name, "venue_error": error, "assets": rows, "kind": kind, "balance_check": check}
        )
    return out
