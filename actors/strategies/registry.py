"""Strategy parameters -> strategy: the one place that knows every strategy class."""

from __future__ import annotations

from typing import Any

from actors.params import (
    BreakoutParams,
    EmaCrossParams,
    FloorParams,
    GridParams,
    HyperRsiParams,
    SignalsParams,
    StrategyParams,
    TimeWindowParams,
)
from actors.strategies.base import Strategy
from actors.strategies.breakout import BreakoutStrategy
from actors.strategies.ema_cross import EmaCrossStrategy
from actors.strategies.floor import FloorStrategy
from actors.strategies.grid import GridStrategy
from actors.strategies.hyper_rsi import HyperRsiStrategy
from actors.strategies.signals import SignalsStrategy
from actors.strategies.time_window import TimeWindowStrategy


def build_strategy(params: StrategyParams) -> Strategy[Any]:
    """The strategy for a group's ``[groups.strategy]`` table (dispatch on its params type)."""
    match params:
        case BreakoutParams():
            return BreakoutStrategy(params)
        case EmaCrossParams():
            return EmaCrossStrategy(params)
        case FloorParams():
            return FloorStrategy(params)
        case GridParams():
            return GridStrategy(params)
        case HyperRsiParams():
            return HyperRsiStrategy(params)
        case SignalsParams():
            return SignalsStrategy(params)
        case TimeWindowParams():
            return TimeWindowStrategy(params)
    raise ValueError(f"strategy {params.name!r} is not implemented")
