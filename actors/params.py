"""Parameters of actors and strategies, as frozen msgspec Structs.

They live in the actor kernel so actors and strategies never import the daemon shell;
``daemon.config`` embeds them in the config file's schema.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class BreakoutParams(Base, frozen=True, kw_only=True):
    """The seed breakout strategy (see actors/strategies/breakout.py)."""

    name: Literal["breakout"] = "breakout"
    lookback: int = 20
    ema_fast: int = 5
    ema_slow: int = 13
    rsi_period: int = 14
    rsi_buy_max: float = 75.0
    rsi_sell_min: float = 25.0
    volume_sma: int = 5
    volume_ratio: float = 1.2
    stop_loss_pct: float = 0.3
    take_profit_pct: float = 0.6
    cooldown_s: int = 1800
    max_trades_per_day: int = 10
    confidence: float = 0.8
    max_position_fraction: float = 0.5
    allow_short: bool = False


StrategyParams = BreakoutParams


class RiskLimits(Base, frozen=True, kw_only=True):
    max_order_notional: Decimal = Decimal("1000")
    max_position: Decimal = Decimal("1000000")
    max_open_orders: int = 4
    price_band_pct: Decimal = Decimal("5")
    max_orders_per_minute: int = 30
    require_stop_loss: bool = True
    trading_state: Literal["active", "reducing", "halted"] = "active"
