"""Value rules for the ``[groups.strategy]`` tables of the strategies other than breakout.

``validate_strategy(path, params, risk)`` yields ``(key path, what was expected)`` like
:mod:`daemon.config_checks` (which checks breakout itself and calls this for the others).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from actors.params import (
    BreakoutParams,
    EmaCrossParams,
    FloorParams,
    GridParams,
    HyperRsiParams,
    RiskLimits,
    SignalsParams,
    StrategyParams,
    TimeWindowParams,
)
from daemon.value_checks import Problems
from daemon.value_checks import bad as _bad
from daemon.value_checks import between as _between
from daemon.value_checks import positive as _positive

MAX_PERIOD = 10_000
MAX_GRID_LEVELS = 1_000
MAX_FLOOR_LAYERS = 100
HHMM_RE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def _period(path: str, value: int, minimum: int = 1) -> Problems:
    if not minimum <= value <= MAX_PERIOD:
        yield path, f"expected a period of {minimum}..{MAX_PERIOD} bars, got {value}"


def _stop_pct(path: str, value: float, name: str) -> Problems:
    """A stop-loss percentage: entries must carry one, and it must leave a price > 0."""
    if _bad(value) or not 0 < value < 100:
        yield path, f"{name} entries need a stop-loss: expected 0 < stop_loss_pct < 100, got {value}"


def validate_strategy(p: str, s: StrategyParams, risk: RiskLimits) -> Problems:
    match s:
        case EmaCrossParams():
            yield from _ema_cross(p, s)
        case HyperRsiParams():
            yield from _hyper_rsi(p, s)
        case GridParams():
            yield from _grid(p, s, risk)
        case FloorParams():
            yield from _floor(p, s)
        case TimeWindowParams():
            yield from _time_window(p, s)
        case SignalsParams():
            yield from _signals(p, s)
        case BreakoutParams():  # checked by daemon.config_checks
            pass


def _ema_cross(p: str, s: EmaCrossParams) -> Problems:
    yield from _period(f"{p}.ema_fast", s.ema_fast)
    yield from _period(f"{p}.ema_slow", s.ema_slow, 2)
    if s.ema_fast >= s.ema_slow:
        yield f"{p}.ema_fast", f"expected ema_fast < ema_slow, got {s.ema_fast} >= {s.ema_slow}"
    yield from _positive(f"{p}.quantity", s.quantity)
    yield from _stop_pct(f"{p}.stop_loss_pct", s.stop_loss_pct, "ema_cross")
    yield from _positive(f"{p}.take_profit_pct", s.take_profit_pct, allow_zero=True)


def _hyper_rsi(p: str, s: HyperRsiParams) -> Problems:
    yield from _period(f"{p}.rsi_period", s.rsi_period, 2)
    yield from _between(f"{p}.oversold", s.oversold, 0, 100, "a number in [0, 100]")
    yield from _between(f"{p}.overbought", s.overbought, 0, 100, "a number in [0, 100]")
    if not s.oversold < s.overbought:
        yield f"{p}.oversold", f"expected oversold < overbought, got {s.oversold} >= {s.overbought}"
    yield from _period(f"{p}.trend_period", s.trend_period)
    yield from _period(f"{p}.atr_period", s.atr_period)
    yield from _positive(f"{p}.quantity", s.quantity)
    yield from _positive(f"{p}.atr_mult", s.atr_mult, allow_zero=True)
    if s.atr_mult == 0:
        yield from _stop_pct(f"{p}.stop_loss_pct", s.stop_loss_pct, "hyper_rsi (atr_mult = 0)")
    else:
        yield from _positive(f"{p}.stop_loss_pct", s.stop_loss_pct, allow_zero=True)
    yield from _positive(f"{p}.take_profit_pct", s.take_profit_pct, allow_zero=True)


def _grid(p: str, s: GridParams, risk: RiskLimits) -> Problems:
    yield from _positive(f"{p}.lower", s.lower)
    yield from _positive(f"{p}.upper", s.upper)
    if not _bad(s.lower) and not _bad(s.upper) and not s.lower < s.upper:
        yield f"{p}.upper", f"expected lower < upper, got lower {s.lower} >= upper {s.upper}"
    if not 2 <= s.levels <= MAX_GRID_LEVELS:
        yield f"{p}.levels", f"expected 2..{MAX_GRID_LEVELS} grid levels, got {s.levels}"
    elif risk.max_open_orders < s.levels:
        yield (
            f"{p}.levels",
            f"expected at most risk.max_open_orders ({risk.max_open_orders}) levels: the grid keeps up "
            f"to levels - 1 limit orders working, got {s.levels}",
        )
    yield from _positive(f"{p}.quantity", s.quantity)
    yield from _positive(f"{p}.take_profit_quote", s.take_profit_quote, allow_zero=True)
    yield from _stop_pct(f"{p}.stop_loss_pct", s.stop_loss_pct, "grid")
    yield from _between(
        f"{p}.arm_within_pct", s.arm_within_pct, 0, 99.99, "a percentage in [0, 100) (0: no limit)"
    )


def _floor(p: str, s: FloorParams) -> Problems:
    yield from _positive(f"{p}.initial_units", s.initial_units)
    yield from _between(f"{p}.retracement", s.retracement, 1e-12, 0.99, "a fraction in (0, 0.99]")
    if not 1 <= s.max_layers <= MAX_FLOOR_LAYERS:
        yield f"{p}.max_layers", f"expected 1..{MAX_FLOOR_LAYERS} layers, got {s.max_layers}"
    if s.layer_size and len(s.layer_size) < s.max_layers - 1:
        yield (
            f"{p}.layer_size",
            f"expected a size for each of the {s.max_layers - 1} layers after the first, "
            f"got {len(s.layer_size)}",
        )
    for i, size in enumerate(s.layer_size):
        yield from _positive(f"{p}.layer_size[{i}]", size)
    yield from _positive(f"{p}.layer_multiplier", s.layer_multiplier)
    yield from _between(f"{p}.take_profit", s.take_profit, 1e-12, 10, "a fraction in (0, 10]")
    yield from _positive(f"{p}.volatility_threshold", s.volatility_threshold, allow_zero=True)
    yield from _period(f"{p}.atr_period", s.atr_period)
    yield from _stop_pct(f"{p}.stop_loss_pct", s.stop_loss_pct, "floor")


def _time_window(p: str, s: TimeWindowParams) -> Problems:
    for key, value in (("buy_time", s.buy_time), ("sell_time", s.sell_time)):
        if not HHMM_RE.match(value):
            yield f"{p}.{key}", f"expected a time of day HH:MM (00:00..23:59), got {value!r}"
    if s.buy_time == s.sell_time:
        yield f"{p}.sell_time", f"expected sell_time different from buy_time, got {s.sell_time!r} for both"
    try:
        ZoneInfo(s.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        yield (
            f"{p}.timezone",
            f"expected an IANA time zone name like 'UTC' or 'America/New_York', got {s.timezone!r}",
        )
    yield from _positive(f"{p}.quantity", s.quantity)
    if _bad(s.stop_loss_pct) or not 0 < s.stop_loss_pct < 100:
        yield (
            f"{p}.stop_loss_pct",
            f"time_window needs a stop-loss: expected 0 < stop_loss_pct < 100, got {s.stop_loss_pct}",
        )
    yield from _positive(f"{p}.take_profit_pct", s.take_profit_pct, allow_zero=True)


def _signals(p: str, s: SignalsParams) -> Problems:
    yield from _period(f"{p}.macd_fast", s.macd_fast, 2)
    yield from _period(f"{p}.macd_slow", s.macd_slow, 2)
    yield from _period(f"{p}.macd_signal", s.macd_signal)
    if s.macd_fast >= s.macd_slow:
        yield f"{p}.macd_fast", f"expected macd_fast < macd_slow, got {s.macd_fast} >= {s.macd_slow}"
    yield from _period(f"{p}.rsi_period", s.rsi_period, 2)
    yield from _between(f"{p}.rsi_buy_max", s.rsi_buy_max, 0, 100, "a number in [0, 100]")
    yield from _between(f"{p}.rsi_sell_min", s.rsi_sell_min, 0, 100, "a number in [0, 100]")
    if not 0 <= s.trend_sma <= MAX_PERIOD:
        yield (
            f"{p}.trend_sma",
            f"expected 0 (no trend filter) or a period of 1..{MAX_PERIOD} bars, got {s.trend_sma}",
        )
    yield from _period(f"{p}.atr_period", s.atr_period)
    yield from _positive(f"{p}.atr_stop_mult", s.atr_stop_mult)
    yield from _positive(f"{p}.atr_target_mult", s.atr_target_mult, allow_zero=True)
    yield from _positive(f"{p}.quantity", s.quantity)
