"""Shared by the tests/test_strategy_*.py files: the bundled candles as bars, contexts, a toy
execution and a runner that feeds bars through a strategy."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest

from actors.messages import Bar, OrderIntent, Signal
from actors.strategies.base import Output, Strategy, StrategyContext
from daemon.config import ConfigError, parse_config

DATA = Path(__file__).resolve().parents[1] / "adapters" / "replay" / "data"
CANDLES = DATA / "candles" / "UNITTEST_BTC-1m.json"
Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]
EXCHANGE, SYMBOL = "replay", "UNITTEST/BTC"
NS = 1_000_000_000
D = Decimal
ZERO = D(0)
TICK, STEP = D("1e-8"), D("0.01")
VOLUME, NOTIONAL = D(10), D("0.5")


def make_bar(ts_event: int, o: Decimal, h: Decimal, lo: Decimal, c: Decimal, v: Decimal = VOLUME) -> Bar:
    return Bar(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        ts_event=ts_event,
        ts_recv=ts_event,
        ts_open=ts_event - 60 * NS,
        interval_s=60,
        open=o,
        high=h,
        low=lo,
        close=c,
        volume=v,
    )


def make_ctx(
    ts: int,
    position: Decimal = ZERO,
    avg_price: Decimal = ZERO,
    open_orders: int = 0,
    max_notional: Decimal = NOTIONAL,
) -> StrategyContext:
    return StrategyContext(
        exchange=EXCHANGE,
        symbol=SYMBOL,
        now_ns=ts,
        position=position,
        avg_price=avg_price,
        max_notional=max_notional,
        tick_size=TICK,
        step_size=STEP,
        open_orders=open_orders,
    )


@cache
def rows() -> list[Row]:
    return msgspec.json.decode(CANDLES.read_bytes(), type=list[Row])


@cache
def bars() -> list[Bar]:
    """The bundled 13,681 one-minute candles as closed bars (ts_event = open time + 60 s)."""
    return [make_bar((t + 60_000) * 1_000_000, o, h, lo, c, v) for t, o, h, lo, c, v in rows()]


def column(k: int) -> np.ndarray:
    """A float column of the candles: 1 open, 2 high, 3 low, 4 close, 5 volume."""
    return np.array([float(r[k]) for r in rows()])


@dataclass
class Run:
    state: Any
    outputs: list[list[Output]]
    position: Decimal = ZERO
    avg_price: Decimal = ZERO
    fills: list[tuple[int, OrderIntent]] = field(default_factory=list)


Fill = Callable[[int, Bar, OrderIntent], bool]


def market_fills(_i: int, _bar: Bar, intent: OrderIntent) -> bool:
    """Every market intent fills at once at the bar's close (limit orders never)."""
    return intent.order_type == "market"


def run(
    strategy: Strategy[Any],
    bar_list: Iterable[Bar],
    state: Any = None,
    fill: Fill | None = market_fills,
    position: Decimal = ZERO,
    avg_price: Decimal = ZERO,
) -> Run:
    """Feed bars; intents ``fill`` accepts change the position before the next bar."""
    state = strategy.initial_state() if state is None else state
    result = Run(state, [], position, avg_price)
    for i, bar in enumerate(bar_list):
        ctx = make_ctx(bar.ts_event, result.position, result.avg_price)
        result.state, out = strategy.on_bar(result.state, bar, ctx)
        result.outputs.append(out)
        for x in out:
            if isinstance(x, OrderIntent) and fill is not None and fill(i, bar, x):
                apply_fill(result, x, x.price if x.price is not None else bar.close)
                result.fills.append((i, x))
    return result


def apply_fill(result: Run, intent: OrderIntent, price: Decimal) -> None:
    qty = intent.quantity if intent.side == "buy" else -intent.quantity
    new = result.position + qty
    if intent.side == "buy":
        total = result.position * result.avg_price + intent.quantity * price
        result.avg_price = total / new if new else ZERO
    elif new == 0:
        result.avg_price = ZERO
    result.position = new


def signals(outputs: list[list[Output]]) -> dict[int, Signal]:
    return {i: x for i, out in enumerate(outputs) for x in out if isinstance(x, Signal)}


def intents(outputs: list[list[Output]]) -> list[tuple[int, OrderIntent]]:
    return [(i, x) for i, out in enumerate(outputs) for x in out if isinstance(x, OrderIntent)]


def roundtrip(state: Any) -> None:
    """The state encodes with msgpack and json and decodes into an equal state."""
    kind = type(state)
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=kind) == state
    assert msgspec.json.decode(msgspec.json.encode(state), type=kind) == state


# --- config ----------------------------------------------------------------------------------

CONFIG = """\
[accounts.paper]
balances = {{ BTC = "1" }}

[[groups]]
exchange = "paper"
symbol = "BTC/USDT"
account = "paper"

[groups.instrument]
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"

[groups.feed]
path = "data.json"
format = "candles"

[groups.risk]
max_order_notional = "100"
max_open_orders = {max_open_orders}

[groups.strategy]
{strategy}
"""
STRATEGY_LINE = 24  # the first line of {strategy}


def config_text(strategy: str, max_open_orders: int = 4) -> str:
    return CONFIG.format(strategy=strategy, max_open_orders=max_open_orders)


def parse_strategy(strategy: str, max_open_orders: int = 4) -> Any:
    return parse_config(config_text(strategy, max_open_orders), "cfg.toml").groups[0].strategy


def rejects(strategy: str, message: str, max_open_orders: int = 4) -> None:
    """The config with this strategy table is refused with exactly ``message``."""
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        parse_config(config_text(strategy, max_open_orders), "cfg.toml")
