"""From command-line arguments to a runnable backtest: config, group, data, time range.

:func:`prepare` loads and checks everything once (optimisation reuses it for every
parameter set) and raises :class:`~daemon.backtest.data.BacktestError` with a message
for the user on any problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from daemon.backtest.data import (
    BacktestError,
    DataFormat,
    MarketMessage,
    check_file,
    detect_format,
    load_messages,
    parse_time,
    select,
)
from daemon.config import Config, ConfigError, GroupConfig, PaperAccount, ReplayFeed, load_config


@dataclass(slots=True)
class Prepared:
    config: Config
    group: GroupConfig  # its feed replaced by the backtest's data file
    account: PaperAccount
    account_name: str
    data_path: Path
    data_format: DataFormat
    interval_s: int
    messages: list[MarketMessage]


def choose_group(cfg: Config, symbol: str | None, data: Path) -> GroupConfig:
    """The group named by ``--symbol``, else the one whose feed is ``data``, else the first enabled one."""
    groups = [g for g in cfg.groups if g.enabled]
    if symbol is not None:
        for g in cfg.groups:
            if symbol in (g.symbol, f"{g.exchange}:{g.symbol}"):
                return g
        names = ", ".join(f"{g.exchange}:{g.symbol}" for g in cfg.groups) or "none"
        raise BacktestError(f"--symbol {symbol}: no such group in the config (groups: {names})", 2)
    if not groups:
        raise BacktestError("the config has no enabled [[groups]] to backtest")
    for g in groups:
        if isinstance(g.feed, ReplayFeed) and Path(g.feed.path).resolve() == data.resolve():
            return g
    return groups[0]


def interval_of(g: GroupConfig, fmt: DataFormat) -> int:
    """Candle interval (the group's replay feed setting, else its bar interval)."""
    if fmt == "candles" and isinstance(g.feed, ReplayFeed) and g.feed.format == "candles":
        return g.feed.interval_s
    return g.bar_interval_s


def load_backtest_config(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise BacktestError(str(exc)) from None


def prepare(
    config_path: str,
    data: str,
    *,
    symbol: str | None = None,
    data_format: DataFormat | None = None,
    t_from: str | None = None,
    t_to: str | None = None,
) -> Prepared:
    lo = parse_time(t_from, "--from") if t_from is not None else None
    hi = parse_time(t_to, "--to") if t_to is not None else None
    if lo is not None and hi is not None and lo >= hi:
        raise BacktestError(f"--from {t_from} is not before --to {t_to}", 2)
    path = check_file(data)
    cfg = load_backtest_config(config_path)
    g = choose_group(cfg, symbol, path)
    account = cfg.accounts[g.account]
    if not isinstance(account, PaperAccount):
        raise BacktestError(
            f"group {g.exchange}:{g.symbol} trades on account {g.account!r}, which is not a paper account:"
            " a backtest simulates fills, so give the group a paper [accounts.*] table"
            " (balances, fees, slippage)"
        )
    fmt: DataFormat = data_format or detect_format(path)
    interval = interval_of(g, fmt)
    feed = ReplayFeed(path=str(path), format=fmt, speed=0.0, loop=False, interval_s=interval)
    g = msgspec.structs.replace(g, feed=feed)
    msgs = select(load_messages(path, fmt, g.exchange, g.symbol, interval), path, lo, hi)
    return Prepared(cfg, g, account, g.account, path, fmt, interval, msgs)
