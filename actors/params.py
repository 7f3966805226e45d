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


class StrategyBase(Base, frozen=True, kw_only=True, tag_field="name"):
    """A strategy table: a tagged union on ``name`` (a table without ``name`` is breakout)."""

    @property
    def name(self) -> str:
        """The strategy's name: the union's tag (e.g. "breakout")."""
        return str(type(self).__struct_config__.tag)


class BreakoutParams(StrategyBase, frozen=True, kw_only=True, tag="breakout"):
    """The seed breakout strategy (see actors/strategies/breakout.py)."""

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


class EmaCrossParams(StrategyBase, frozen=True, kw_only=True, tag="ema_cross"):
    """EMA crossover, long only, fixed size (see actors/strategies/ema_cross.py)."""

    ema_fast: int = 5
    ema_slow: int = 13
    quantity: Decimal = Decimal("1")
    stop_loss_pct: float = 50.0
    take_profit_pct: float = 0.0


class HyperRsiParams(StrategyBase, frozen=True, kw_only=True, tag="hyper_rsi"):
    """RSI leaving oversold / overbought with a trend filter (see actors/strategies/hyper_rsi.py)."""

    rsi_period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    trend_filter: Literal["ema_slope", "price_above_ema", "none"] = "ema_slope"
    trend_period: int = 200
    quantity: Decimal = Decimal("1")
    atr_mult: float = 0.0
    atr_period: int = 14
    stop_loss_pct: float = 2.0
    take_profit_pct: float = 0.0


class GridParams(StrategyBase, frozen=True, kw_only=True, tag="grid"):
    """Limit-order grid between ``lower`` and ``upper`` (see actors/strategies/grid.py)."""

    lower: Decimal = Decimal("0")
    upper: Decimal = Decimal("0")
    levels: int = 10
    spacing: Literal["arithmetic", "geometric"] = "arithmetic"
    quantity: Decimal = Decimal("1")
    on_exit_range: Literal["stop", "rebalance"] = "stop"
    take_profit_quote: Decimal = Decimal("0")
    stop_loss_pct: float = 5.0
    arm_within_pct: float = 4.0
    post_only: bool = False  # the resting buys and sells are post-only (maker or refused)


class FloorParams(StrategyBase, frozen=True, kw_only=True, tag="floor"):
    """Layered buying on retracements, one take-profit (see actors/strategies/floor.py)."""

    initial_units: Decimal = Decimal("1")
    retracement: float = 0.01
    max_layers: int = 4
    layer_size: list[Decimal] = []
    layer_multiplier: float = 1.0
    take_profit: float = 0.01
    volatility_threshold: float = 0.0
    atr_period: int = 14
    stop_loss_pct: float = 10.0


class TimeWindowParams(StrategyBase, frozen=True, kw_only=True, tag="time_window"):
    """Buy at ``buy_time``, sell at ``sell_time`` (see actors/strategies/time_window.py)."""

    buy_time: str = "09:00"
    sell_time: str = "17:00"
    timezone: str = "UTC"
    quantity: Decimal = Decimal("1")
    stop_loss_pct: float = 0.0
    take_profit_pct: float = 0.0


class SignalsParams(StrategyBase, frozen=True, kw_only=True, tag="signals"):
    """MACD cross with RSI and SMA filters, ATR stop and target (see actors/strategies/signals.py)."""

    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    rsi_period: int = 14
    rsi_buy_max: float = 70.0
    rsi_sell_min: float = 30.0
    trend_sma: int = 200
    atr_period: int = 14
    atr_stop_mult: float = 2.0
    atr_target_mult: float = 3.0
    quantity: Decimal = Decimal("1")


StrategyParams = (
    BreakoutParams
    | EmaCrossParams
    | HyperRsiParams
    | GridParams
    | FloorParams
    | TimeWindowParams
    | SignalsParams
)
STRATEGY_NAMES: tuple[str, ...] = (
    "breakout",
    "ema_cross",
    "hyper_rsi",
    "grid",
    "floor",
    "time_window",
    "signals",
)


class RiskLimits(Base, frozen=True, kw_only=True):
    max_order_notional: Decimal = Decimal("1000")
    max_position: Decimal = Decimal("1000000")
    max_open_orders: int = 4
    price_band_pct: Decimal = Decimal("5")
    max_orders_per_minute: int = 30
    require_stop_loss: bool = True
    trading_state: Literal["active", "reducing", "halted"] = "active"
    # Entries approved per UTC day (event time) for this symbol; 0 = no limit.
    max_trades_per_day: int = 0
    # Loss (quote currency, > 0) of the UTC day's realized + unrealized PnL, net of fees, at which
    # the group goes REDUCING (exits only) until the next UTC day; 0 = off.
    daily_loss_limit: Decimal = Decimal("0")
    # A halt (admin or supervisor) cancels the group's open entry orders (not reduce-only ones).
    halt_cancels_orders: bool = True
    # Seconds (event time) after an exit (a fill that shrank the position) during which entries
    # are refused (rule ``cooldown``); 0 = off.  Any strategy; survives a restart.
    cooldown_s: float = 0.0
    # Stop-monitor: smallest move (price units) of a trailing stop that amends it (and replaces a
    # native stop at the venue); an entry's own trailing_step overrides it.  Unset (None): the
    # larger of 10 ticks and 0.1 % of the stop (actors.stop_levels.auto_trail_step); 0 = every
    # improvement moves the stop.
    trail_step: Decimal | None = None
    # Stop-monitor: rest stop-losses at the venue as reduce-only stop_market orders (when the
    # venue supports them) instead of watching prices.
    native_stops: bool = False
    # Stop-monitor: rest the take-profit at the venue too: with native_stops, the stop-loss and the
    # take-profit as ONE OCO list where the venue takes lists for the symbol (Binance ocoAllowed;
    # paper always), else alone as a reduce-only take-profit limit order (Binance TAKE_PROFIT_LIMIT)
    # when no native stop-loss rests (a spot balance covers one resting exit, not two); the
    # stop-loss is then watched by the monitor.
    native_take_profit: bool = False
