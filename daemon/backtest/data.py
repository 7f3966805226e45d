"""Backtest input: a replay data file (candles or trades), its format and a time range.

The file formats are the replay adapter's (:mod:`adapters.replay.feed`); the format is
taken from ``--format`` or recognised from the first row (6 values: candles, 7: trades).
``--from``/``--to`` are ISO 8601 dates or times (UTC when no offset is given); the range
is half-open, ``[from, to)``, on each bar's open time or each trade's time.

Every problem is a :class:`BacktestError` with a message for the user and an exit code:
2 for a bad argument (the command line is wrong), 1 for input that cannot be used.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from actors.messages import Bar, Trade
from actors.timefmt import iso_utc
from adapters.replay.feed import NS_PER_MS, NS_PER_S, load_candles, load_trades

DataFormat = Literal["candles", "trades"]
MarketMessage = Bar | Trade

_FIRST_ROW = re.compile(rb"\[\s*\[([^\[\]]*)\]")


class BacktestError(Exception):
    """A backtest that cannot run; ``str()`` is the message, ``code`` the process exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def parse_time(value: str, option: str) -> int:
    """An ISO 8601 date or date-time as ns since the epoch (naive means UTC)."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BacktestError(
            f"{option}: expected an ISO 8601 date or time such as 2017-11-05 or 2017-11-05T12:30:00Z,"
            f" got {value!r}",
            2,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp()) * NS_PER_S + dt.microsecond * 1000


def iso(ts_ns: int) -> str:
    """``2017-11-05T12:30:00Z`` for a time in ns since the epoch."""
    return iso_utc(ts_ns)


def _head(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read(4096)
        with path.open("rb") as f:
            return f.read(4096)
    except (OSError, EOFError) as exc:
        raise BacktestError(f"{path}: cannot read data file: {exc}") from None


def detect_format(path: Path) -> DataFormat:
    """Candles or trades, from the number of values in the first row."""
    m = _FIRST_ROW.search(_head(path))
    n = len(m.group(1).split(b",")) if m else 0
    if n == 6:
        return "candles"
    if n == 7:
        return "trades"
    raise BacktestError(
        f"{path}: not a replay data file: expected a JSON array of candle rows "
        "[open_time_ms, open, high, low, close, volume] or trade rows "
        "[ts_ms, trade_id, type, side, price, amount, cost]"
    )


def check_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise BacktestError(f"--data {path}: no such file")
    if not p.is_file():
        raise BacktestError(f"--data {path}: not a file")
    return p


def load_messages(
    path: Path, fmt: DataFormat, exchange: str, symbol: str, interval_s: int
) -> list[MarketMessage]:
    """Every message of the file, in time order; BacktestError naming file and row if malformed."""
    try:
        if fmt == "candles":
            return list(load_candles(path, exchange=exchange, symbol=symbol, interval_s=interval_s))
        return list(load_trades(path, exchange=exchange, symbol=symbol))
    except ValueError as exc:
        raise BacktestError(str(exc)) from None
    except OSError as exc:
        raise BacktestError(f"{path}: cannot read data file: {exc}") from None


def start_ns(msg: MarketMessage) -> int:
    """A message's place in time for ``--from/--to``: a bar's open, a trade's time."""
    return msg.ts_open if type(msg) is Bar else msg.ts_event


def select(
    msgs: Sequence[MarketMessage], path: Path, t_from: int | None, t_to: int | None
) -> list[MarketMessage]:
    """The messages in ``[t_from, t_to)``; BacktestError when the range is empty or inverted."""
    if not msgs:
        raise BacktestError(f"{path}: no rows")
    if t_from is not None and t_to is not None and t_from >= t_to:
        raise BacktestError(f"--from {iso(t_from)} is not before --to {iso(t_to)}", 2)
    lo = t_from if t_from is not None else -1
    hi = t_to if t_to is not None else 1 << 80
    out = [m for m in msgs if lo <= start_ns(m) < hi]
    if not out:
        first, last = start_ns(msgs[0]), start_ns(msgs[-1])
        raise BacktestError(
            f"{path}: no data in the range [{iso(lo) if t_from is not None else 'start'}, "
            f"{iso(hi) if t_to is not None else 'end'}): the file covers {iso(first)} .. {iso(last)}"
        )
    return out


__all__ = [
    "NS_PER_MS",
    "BacktestError",
    "DataFormat",
    "MarketMessage",
    "check_file",
    "detect_format",
    "iso",
    "load_messages",
    "parse_time",
    "select",
    "start_ns",
]
