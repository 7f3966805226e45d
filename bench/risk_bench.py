"""Risk decision cost per intent (target <= 10 µs), against a naive baseline in the same run.

Intents are real: entry buys and reduce-only exits priced off the bundled XRP/ETH trades,
every one approved (so every rule runs), each decision starting from the same state.

- ``check``: :meth:`actors.risk.RiskActor.check`, the rules alone;
- ``decide``: ``await RiskActor.handle(intent)``: the day roll and daily-loss check, the
  rules, the reservation and the ``RiskApproved`` published onto a channel (drained),
  i.e. everything risk does per intent;
- ``naive``: the same rules written the way a first version often is: limits kept as the
  config file's strings in a dict and parsed to ``Decimal`` on every check, every rule run
  and its message formatted whether it fails or not, the verdict picked at the end.

Reported: microseconds per intent (median of :data:`REPEATS` runs) and intents per second,
plus naive/decide and naive/check ratios.
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.channels import Channel, Router
from actors.messages import Message, OrderIntent, RiskApproved, RiskRejected, stamp
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState
from adapters.replay.feed import load_trades
from bench import event_loop_name, run_async, write_result

TRADES = Path(__file__).resolve().parent.parent / "adapters/replay/data/trades/XRP_ETH-trades.json.gz"
N = 50_000
REPEATS = 7
LIMITS = RiskLimits(
    max_order_notional=Decimal("1000"),
    max_position=Decimal("1000000"),
    max_open_orders=100,
    price_band_pct=Decimal("5"),
    max_orders_per_minute=1_000_000,
    max_trades_per_day=0,
)


def intents() -> list[OrderIntent]:
    out: list[OrderIntent] = []
    for i, t in enumerate(load_trades(TRADES, exchange="paper", symbol="XRP/ETH")):
        if len(out) >= N:
            break
        exit_ = i % 4 == 3
        out.append(
            OrderIntent(
                intent_id=f"i{i}",
                source="bench",
                side="sell" if exit_ else "buy",
                order_type="limit",
                quantity=Decimal(10),
                price=t.price,
                stop_loss=None if exit_ else t.price * Decimal("0.97"),
                take_profit=None if exit_ else t.price * Decimal("1.05"),
                reduce_only=exit_,
                **stamp("paper", "XRP/ETH", t.ts_event, t.ts_event),
            )
        )
    return out


def make_actor() -> tuple[RiskActor, SymbolState, Channel[Message]]:
    state = SymbolState("paper", "XRP/ETH", "paper")
    router = Router()
    out: Channel[Message] = Channel("order", 4096)
    router.subscribe(out, (RiskApproved, RiskRejected))
    group = GroupState("paper", "XRP/ETH")
    actor = RiskActor("paper", "XRP/ETH", router, Channel("risk", 16), state, group, LIMITS)
    return actor, state, out


def reset(state: SymbolState, price: Decimal) -> None:
    state.last_price = price
    state.position = Decimal(100)
    state.pending_exposure = Decimal(0)
    state.open_orders = 0


def run_check(msgs: list[OrderIntent]) -> float:
    actor, state, _ = make_actor()
    check = actor.check
    t0 = time.perf_counter()
    for m in msgs:
        reset(state, m.price or Decimal(1))
        if check(m) is not None:
            raise AssertionError(f"bench intent refused: {check(m)}")
    return time.perf_counter() - t0


async def run_decide(msgs: list[OrderIntent]) -> float:
    actor, state, out = make_actor()
    handle = actor.handle
    t0 = time.perf_counter()
    for i, m in enumerate(msgs):
        reset(state, m.price or Decimal(1))
        await handle(m)
        if i % 1024 == 1023:
            await out.receive_batch(4096)
    elapsed = time.perf_counter() - t0
    if actor.decisions.get("approved", 0) != len(msgs):
        raise AssertionError(f"not every intent approved: {actor.decisions}")
    return elapsed


CONFIG = {
    "max_order_notional": "1000",
    "max_position": "1000000",
    "max_open_orders": "100",
    "price_band_pct": "5",
    "max_orders_per_minute": "1000000",
    "require_stop_loss": "true",
}


def naive_check(intent: OrderIntent, cfg: dict[str, str], st: dict[str, Any]) -> tuple[str, str] | None:
    verdicts: list[tuple[str, str] | None] = []
    qty, last = intent.quantity, st["last_price"]
    price = intent.price if intent.price is not None else last
    band = Decimal(cfg["price_band_pct"])
    verdicts.append(None if qty > 0 else ("invalid", f"quantity must be positive, got {qty}"))
    off = abs(price - last) * 100 > band * last
    verdicts.append(("price_band", f"price {price} more than {band}% from {last}") if off else None)
    notional = qty * price
    cap = Decimal(cfg["max_order_notional"])
    big = not intent.reduce_only and notional > cap
    verdicts.append(("max_notional", f"notional {notional} exceeds {cap}") if big else None)
    signed = qty if intent.side == "buy" else -qty
    after = st["position"] + st["pending"] + (0 if intent.reduce_only else signed)
    limit = Decimal(cfg["max_position"])
    verdicts.append(("max_position", f"position {after} above {limit}") if abs(after) > limit else None)
    n, cap_n = st["open_orders"], int(cfg["max_open_orders"])
    verdicts.append(
        ("max_open_orders", f"{n} open, max {cap_n}") if not intent.reduce_only and n >= cap_n else None
    )
    needs_sl = cfg["require_stop_loss"] == "true" and not intent.reduce_only and intent.stop_loss is None
    verdicts.append(("stop_loss_required", "entries need a stop-loss") if needs_sl else None)
    recent = [t for t in st["recent"] if intent.ts_event - t <= 60_000_000_000]
    st["recent"] = recent
    rate = int(cfg["max_orders_per_minute"])
    verdicts.append(
        ("order_rate", f"{len(recent)} orders in a minute, max {rate}") if len(recent) >= rate else None
    )
    failed = [v for v in verdicts if v is not None]
    return failed[0] if failed else None


def run_naive(msgs: list[OrderIntent]) -> float:
    st: dict[str, Any] = {"recent": []}
    t0 = time.perf_counter()
    for m in msgs:
        st.update(last_price=m.price, position=Decimal(100), pending=Decimal(0), open_orders=0)
        if naive_check(m, CONFIG, st) is not None:
            raise AssertionError("naive refused a bench intent")
        if not m.reduce_only:
            st["recent"] = [*st["recent"][-100:], m.ts_event]
    return time.perf_counter() - t0


def main() -> dict[str, Any]:
    msgs = intents()
    runs: dict[str, list[float]] = {"check": [], "decide": [], "naive": []}
    for _ in range(REPEATS):  # interleaved, so drift affects all three alike
        runs["naive"].append(run_naive(msgs))
        runs["check"].append(run_check(msgs))
        runs["decide"].append(run_async(lambda: run_decide(msgs)))
    us = {k: statistics.median(v) / len(msgs) * 1e6 for k, v in runs.items()}
    result = {
        "event_loop": event_loop_name(),
        "intents": len(msgs),
        "us_per_intent": {k: round(v, 2) for k, v in us.items()},
        "intents_per_s": {k: round(1e6 / v) for k, v in us.items()},
        "naive_over_check": round(us["naive"] / us["check"], 2),
        "naive_over_decide": round(us["naive"] / us["decide"], 2),
        "target_us": 10.0,
        "decide_meets_target": us["decide"] <= 10.0,
    }
    for k in ("naive", "check", "decide"):
        print(f"  {k:7s} {us[k]:6.2f} µs/intent  ({1e6 / us[k]:,.0f} intents/s)")
    ratios = f"naive/check {result['naive_over_check']}x, naive/decide {result['naive_over_decide']}x"
    print(f"  {ratios}; target <= 10 µs per decision")
    write_result("risk_bench", result)
    return result


if __name__ == "__main__":
    main()
