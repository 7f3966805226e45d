"""Time bars from trades.

Trades fall into buckets ``[k*interval, (k+1)*interval)`` of event time.  A bar is
emitted when the first trade of a later bucket arrives (or on :meth:`BarBuilder.flush`),
so a bar is only ever published once it is complete.  Intervals without trades produce
no bar: the data has real gaps and a fake zero-volume bar would bias indicators.
"""

from __future__ import annotations

from decimal import Decimal

from actors.messages import Bar, Trade

NS = 1_000_000_000


class BarBuilder:
    __slots__ = (
        "_close",
        "_count",
        "_high",
        "_low",
        "_open",
        "_start",
        "_volume",
        "exchange",
        "interval_ns",
        "symbol",
    )

    def __init__(self, exchange: str, symbol: str, interval_s: int) -> None:
        if interval_s <= 0:
            raise ValueError(f"bar interval must be positive, got {interval_s}")
        self.exchange = exchange
        self.symbol = symbol
        self.interval_ns = interval_s * NS
        self._start = -1
        self._open = self._high = self._low = self._close = Decimal(0)
        self._volume = Decimal(0)
        self._count = 0

    def on_trade(self, trade: Trade, ts_recv: int) -> Bar | None:
        """Add ``trade``; return the bar it completed, if any. Trades must come in event-time order."""
        start = trade.ts_event - trade.ts_event % self.interval_ns
        done = None
        if start != self._start:
            done = self._emit(ts_recv) if self._count else None
            self._start = start
            self._open = self._high = self._low = trade.price
            self._volume = Decimal(0)
            self._count = 0
        price = trade.price
        if price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price
        self._volume += trade.size
        self._count += 1
        return done

    def flush(self, ts_recv: int) -> Bar | None:
        """Emit the bar in progress (end of data)."""
        if not self._count:
            return None
        bar = self._emit(ts_recv)
        self._count = 0
        self._start = -1
        return bar

    def _emit(self, ts_recv: int) -> Bar:
        return Bar(
            exchange=self.exchange,
            symbol=self.symbol,
            ts_event=self._start + self.interval_ns,
            ts_recv=ts_recv,
            ts_open=self._start,
            interval_s=self.interval_ns // NS,
            open=self._open,
            high=self._high,
            low=self._low,
            close=self._close,
            volume=self._volume,
            trades=self._count,
        )
