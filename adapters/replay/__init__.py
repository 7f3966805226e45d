"""Replay adapter: recorded market data (bundled under ``data/``) played back as a live feed.

:func:`load_candles` / :func:`load_trades` read a file into exact-Decimal
:class:`~actors.messages.Bar` / :class:`~actors.messages.Trade` lists (ValueError naming
file, row and column for a malformed row); :class:`ReplayFeed` plays one file through an
async sink at ``speed`` times real time, optionally looping.  See
:mod:`adapters.replay.feed` for the formats, pacing and looping rules.
"""

from __future__ import annotations

from adapters.replay.feed import (
    ReplayFeed,
    ReplayStats,
    Sink,
    load_candle_rows,
    load_candles,
    load_trade_rows,
    load_trades,
)

__all__ = [
    "ReplayFeed",
    "ReplayStats",
    "Sink",
    "load_candle_rows",
    "load_candles",
    "load_trade_rows",
    "load_trades",
]
