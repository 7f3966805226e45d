"""Technical indicators from TA-Lib over fixed-size numpy ring buffers.

Role: the numeric side of a strategy.  A strategy appends each closed bar's OHLCV (as
float64; prices stay :class:`~decimal.Decimal` on the order path) to a :class:`BarSeries`
and reads indicators over the last ``capacity`` bars: :func:`ema`, :func:`sma`,
:func:`rsi`, :func:`highest_prev`, :func:`lowest_prev` and :func:`atr` take a window (a
float64 array, oldest first, typically ``buffer.view()``) and return the indicator's value
at its newest element as a float, NaN while the window is too short.

Ring buffers, no copy per append: a :class:`RingBuffer` of capacity ``C`` keeps a
``2*C`` float64 array and writes each value twice, at ``head`` and ``head + C``.  The last
``C`` values are then always the contiguous slice ``[head + C - size, head + C)`` (the
"double-write" trick), so :meth:`RingBuffer.view` is a numpy view that TA-Lib can read
directly: an append is two scalar stores, a read is a slice, nothing is copied.
Views are read-only and alias the buffer; they show new values after the next append,
so use them immediately (TA-Lib does) or copy them.

Windowed TA-Lib vs TA-Lib on the full history:

- SMA, MAX, MIN only look at the last ``n`` values, so over a window they equal TA-Lib on
  the full series: MAX/MIN bit for bit; SMA up to summation order (TA-Lib keeps a running
  sum over the full series, which drifts by ~1e-12 relative; the window sums ``n`` values).
- EMA, RSI and ATR are recursive and TA-Lib seeds them at the first value it is given
  (EMA with an SMA, RSI/ATR with simple averages), so a window that no longer starts at
  the first bar gives a different value.  While ``count <= capacity`` the window *is* the
  full history and the values are identical.  Afterwards the seed's influence decays
  like ``(1 - 2/(p+1))**(C-p)`` (EMA) or ``(1 - 1/p)**(C-p)`` (Wilder: RSI, ATR).  With
  ``C = 20 * p`` (:data:`DEFAULT_WINDOW_FACTOR`, see :func:`window_capacity`) the bundled
  candles give EMA(5) and EMA(13) bit for bit, RSI(14) within 4e-7 points and ATR(14)
  within 6e-9 relative (tests assert 1e-12 relative, 1e-5 points, 1e-7 relative); at
  ``10 * p`` RSI(14) is off by up to 0.009 points, at ``5 * p`` by whole points.
- TA-Lib's global "unstable period" settings change EMA/RSI/ATR; they are left at 0.

Persistence: :class:`RingBuffer` and :class:`BarSeries` are msgspec Structs whose storage
is a ``bytearray`` (little-endian float64, both halves), so a strategy state holding them
encodes with ``msgspec.msgpack``/``msgspec.json`` directly and decodes into live buffers.
``snapshot()``/``restore()`` convert to and from plain lists of floats instead.
Treat the fields as read-only: mutate only through ``append``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from typing import cast

import msgspec
import numpy as np
from numpy.typing import NDArray

from actors import talib_import

talib = talib_import.load()  # without the pandas wrappers: ~40 MB less (see actors.talib_import)

FloatArray = NDArray[np.float64]

DEFAULT_WINDOW_FACTOR = 20
"""Window length per period of the longest recursive indicator (EMA/RSI/ATR)."""

_DTYPE = np.dtype("<f8")
_NAN = math.nan


def window_capacity(
    recursive: Iterable[int], exact: Iterable[int] = (), factor: int = DEFAULT_WINDOW_FACTOR
) -> int:
    """Ring-buffer capacity for these indicator periods.

    ``recursive`` are EMA/RSI/ATR periods (need ``factor * period`` bars to forget their
    seed); ``exact`` are the bar counts windowed indicators need (e.g. ``lookback + 1``
    for the highest high of the previous ``lookback`` bars).
    """
    if factor < 1:
        raise ValueError(f"expected a window factor >= 1, got {factor}")
    longest = max((factor * p for p in recursive), default=1)
    return max(longest, max(exact, default=1), 1)


class RingBuffer(msgspec.Struct, dict=True):
    """The last ``capacity`` float64 values, readable as one contiguous numpy view.

    ``size`` values are held (``<= capacity``); the next append goes to ``head``.
    Construct with ``RingBuffer(capacity)``; the other fields are for decoding.
    """

    capacity: int
    size: int = 0
    head: int = 0
    data: bytearray = msgspec.field(default_factory=bytearray)

    def __post_init__(self) -> None:
        cap = self.capacity
        if cap < 1:
            raise ValueError(f"expected a capacity >= 1, got {cap}")
        if not self.data and self.size == 0:
            self.data = bytearray(16 * cap)
        if len(self.data) != 16 * cap:
            raise ValueError(f"expected {16 * cap} bytes of data for capacity {cap}, got {len(self.data)}")
        wrapped = self.size == cap or self.head == self.size
        if not (0 <= self.size <= cap and 0 <= self.head < cap and wrapped):
            raise ValueError(f"inconsistent ring buffer: capacity {cap}, size {self.size}, head {self.head}")
        if self.data[: 8 * cap] != self.data[8 * cap :]:
            raise ValueError("inconsistent ring buffer: the two halves of its data differ")
        arr = np.frombuffer(self.data, dtype=_DTYPE)
        read_only = arr.view()
        read_only.flags.writeable = False
        self._arr: FloatArray = arr
        self._ro: FloatArray = read_only

    def __len__(self) -> int:
        return self.size

    @property
    def full(self) -> bool:
        return self.size == self.capacity

    def append(self, value: float) -> None:
        """Store ``value`` as the newest element, dropping the oldest when full."""
        head = self.head
        cap = self.capacity
        arr = self._arr
        arr[head] = value
        arr[head + cap] = value
        self.head = head + 1 if head + 1 < cap else 0
        if self.size < cap:
            self.size += 1

    def view(self) -> FloatArray:
        """All held values, oldest first: a read-only contiguous view, no copy."""
        end = self.head + self.capacity
        return self._ro[end - self.size : end]

    def tail(self, n: int) -> FloatArray:
        """The newest ``min(n, size)`` values, oldest first (a view)."""
        end = self.head + self.capacity
        return self._ro[end - min(n, self.size) : end]

    @property
    def last(self) -> float:
        """The newest value, NaN when empty."""
        return float(self._ro[self.head + self.capacity - 1]) if self.size else _NAN

    def snapshot(self) -> list[float]:
        """The held values as a plain list, oldest first."""
        return list(self.view().tolist())

    @classmethod
    def restore(cls, capacity: int, values: Sequence[float]) -> RingBuffer:
        """A buffer holding the last ``capacity`` of ``values`` (as from :meth:`snapshot`)."""
        buf = cls(capacity)
        for value in values[max(0, len(values) - capacity) :]:
            buf.append(float(value))
        return buf

    def resized(self, capacity: int) -> RingBuffer:
        """A new buffer of ``capacity`` holding the newest values of this one."""
        return RingBuffer.restore(capacity, self.snapshot())

    def copy(self) -> RingBuffer:
        """An independent copy (also what ``copy.copy`` gives)."""
        return RingBuffer(self.capacity, self.size, self.head, bytearray(self.data))

    __copy__ = copy


class SeriesSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A :class:`BarSeries` as plain lists, oldest first."""

    capacity: int
    count: int
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]


class BarSeries(msgspec.Struct, kw_only=True):
    """OHLCV ring buffers of one capacity, appended together; ``count`` bars seen in all."""

    open: RingBuffer
    high: RingBuffer
    low: RingBuffer
    close: RingBuffer
    volume: RingBuffer
    count: int = 0

    def __post_init__(self) -> None:
        shapes = {(b.capacity, b.size, b.head) for b in self._buffers()}
        if len(shapes) != 1:
            raise ValueError(f"expected OHLCV buffers of one shape, got {sorted(shapes)}")
        if self.count < self.close.size:
            raise ValueError(f"count {self.count} is below the {self.close.size} bars held")

    @classmethod
    def with_capacity(cls, capacity: int) -> BarSeries:
        return cls(
            open=RingBuffer(capacity),
            high=RingBuffer(capacity),
            low=RingBuffer(capacity),
            close=RingBuffer(capacity),
            volume=RingBuffer(capacity),
        )

    def _buffers(self) -> tuple[RingBuffer, RingBuffer, RingBuffer, RingBuffer, RingBuffer]:
        return (self.open, self.high, self.low, self.close, self.volume)

    @property
    def capacity(self) -> int:
        return self.close.capacity

    def __len__(self) -> int:
        return self.close.size

    def append(self, open_: float, high: float, low: float, close: float, volume: float) -> None:
        self.open.append(open_)
        self.high.append(high)
        self.low.append(low)
        self.close.append(close)
        self.volume.append(volume)
        self.count += 1

    def snapshot(self) -> SeriesSnapshot:
        return SeriesSnapshot(
            capacity=self.capacity,
            count=self.count,
            open=self.open.snapshot(),
            high=self.high.snapshot(),
            low=self.low.snapshot(),
            close=self.close.snapshot(),
            volume=self.volume.snapshot(),
        )

    @classmethod
    def restore(cls, snap: SeriesSnapshot, capacity: int | None = None) -> BarSeries:
        """Rebuild from :meth:`snapshot`, optionally with another capacity (newest bars kept)."""
        cap = snap.capacity if capacity is None else capacity
        lengths = {len(v) for v in (snap.open, snap.high, snap.low, snap.close, snap.volume)}
        if len(lengths) != 1:
            raise ValueError(f"expected OHLCV lists of one length, got {sorted(lengths)}")
        return cls(
            open=RingBuffer.restore(cap, snap.open),
            high=RingBuffer.restore(cap, snap.high),
            low=RingBuffer.restore(cap, snap.low),
            close=RingBuffer.restore(cap, snap.close),
            volume=RingBuffer.restore(cap, snap.volume),
            count=max(snap.count, min(cap, lengths.pop())),
        )

    def resized(self, capacity: int) -> BarSeries:
        return BarSeries.restore(self.snapshot(), capacity)

    def copy(self) -> BarSeries:
        """An independent copy of the buffers (also what ``copy.copy`` gives)."""
        o, h, lo, c, v = (b.copy() for b in self._buffers())
        return BarSeries(open=o, high=h, low=lo, close=c, volume=v, count=self.count)

    __copy__ = copy


# --- indicators over a window (oldest first, e.g. RingBuffer.view()): the value at its
# newest element, NaN while the window is too short ----------------------------------------


def ema(values: FloatArray, period: int) -> float:
    """TA-Lib EMA over the whole window (recursive: see the module docstring)."""
    if len(values) < period:
        return _NAN
    if period == 1:
        return float(values[-1])
    return float(talib.EMA(values, period)[-1])


def sma(values: FloatArray, period: int) -> float:
    """TA-Lib SMA of the newest ``period`` values (the newest included)."""
    if len(values) < period:
        return _NAN
    if period == 1:
        return float(values[-1])
    return float(talib.SMA(values[-period:], period)[-1])


def rsi(values: FloatArray, period: int) -> float:
    """TA-Lib RSI (Wilder) over the whole window; needs ``period + 1`` values."""
    if period < 2:
        raise ValueError(f"expected an RSI period >= 2, got {period}")
    if len(values) <= period:
        return _NAN
    return float(talib.RSI(values, period)[-1])


def highest_prev(values: FloatArray, n: int) -> float:
    """TA-Lib MAX of the ``n`` values before the newest one (the current bar excluded)."""
    if len(values) <= n:
        return _NAN
    if n == 1:
        return float(values[-2])
    return float(talib.MAX(values[-n - 1 : -1], n)[-1])


def lowest_prev(values: FloatArray, n: int) -> float:
    """TA-Lib MIN of the ``n`` values before the newest one (the current bar excluded)."""
    if len(values) <= n:
        return _NAN
    if n == 1:
        return float(values[-2])
    return float(talib.MIN(values[-n - 1 : -1], n)[-1])


def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int) -> float:
    """TA-Lib ATR (Wilder) over the whole (aligned) windows; needs ``period + 1`` bars."""
    if len(close) <= period:
        return _NAN
    return float(talib.ATR(high, low, close, period)[-1])


# --- streaming indicators: O(1) per value, equal to TA-Lib's batch result ------------------
#
# Immutable msgspec Structs: ``update(x)`` returns the next indicator (the old one is left
# as it was), ``value`` is the newest output or None while warming up.  Each repeats
# TA-Lib's own arithmetic in the same order (seeds, Wilder smoothing, TA_IS_ZERO), so on
# the bundled candles EMA, SMA and MACD are bit for bit those of TA-Lib over the full
# history, RSI and ATR within 1e-12 relative (TA-Lib's compiled Wilder smoothing rounds
# differently in the last bit); tests/test_indicators_streaming.py checks both.  They hold no NaN, so a
# strategy state holding them encodes with msgspec json as well as msgpack.

_TA_EPSILON = 1e-14  # TA_IS_ZERO in TA-Lib >= 0.6 (RSI of a flat series is 0)


def _load_fma() -> Callable[[float, float, float], float]:
    """``x * y + z`` rounded once (C ``fma``): TA-Lib's build contracts ``(x - ema) * k + ema``
    into one, so the streaming EMA uses it too to give the very same bits."""
    fn = getattr(math, "fma", None)  # Python >= 3.13
    if fn is not None:
        return cast("Callable[[float, float, float], float]", fn)
    name = ctypes.util.find_library("m")
    if name is not None:
        libm = ctypes.CDLL(name)
        c_fma = libm.fma
        c_fma.restype = ctypes.c_double
        c_fma.argtypes = (ctypes.c_double, ctypes.c_double, ctypes.c_double)
        return cast("Callable[[float, float, float], float]", c_fma)

    def exact(x: float, y: float, z: float) -> float:
        return float(Fraction(x) * Fraction(y) + Fraction(z))

    return exact


_c_fma = _load_fma()

_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's split of a double into two 26-bit halves
_fsum = math.fsum


def _py_fma(x: float, y: float, z: float) -> float:
    """``x * y + z`` rounded once.

    Without ``math.fma`` (Python < 3.13) a call into libm costs more than the arithmetic, so
    for operands of moderate size (``1e-100 < |x|, |y| < 1e100``, ``|z| < 1e300``: no
    overflow, no underflow) the product is split exactly into ``p + e`` (Dekker) and
    ``math.fsum`` rounds ``p + e + z`` once, correctly: the very bits of a hardware fma.
    Anything else (zeros, NaN, infinities, extreme magnitudes) goes to libm's ``fma``.
    """
    if 1e-100 < abs(x) < 1e100 and 1e-100 < abs(y) < 1e100 and abs(z) < 1e300:
        p = x * y
        t = _SPLIT * x
        xh = t - (t - x)
        xl = x - xh
        t = _SPLIT * y
        yh = t - (t - y)
        yl = y - yh
        return _fsum((p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl, z))
    return _c_fma(x, y, z)


_NATIVE_FMA = getattr(math, "fma", None) is not None
# Python >= 3.13: math.fma, one C call, is cheapest.
fma: Callable[[float, float, float], float] = _c_fma if _NATIVE_FMA else _py_fma

_ema_k: dict[int, tuple[float, float, float]] = {}


def _ema_factor(period: int) -> tuple[float, float, float]:
    """``k = 2 / (period + 1)`` and its exact Veltkamp halves (cached per period)."""
    parts = _ema_k.get(period)
    if parts is None:
        k = 2.0 / (period + 1)
        t = _SPLIT * k
        kh = t - (t - k)
        parts = _ema_k[period] = (k, kh, k - kh)
    return parts


def _ta_is_zero(value: float) -> bool:
    return -_TA_EPSILON < value < _TA_EPSILON


class EmaStream(msgspec.Struct, frozen=True, kw_only=True):
    """TA-Lib EMA: seeded with the SMA of the first ``period`` values, then
    ``ema = (x - ema) * k + ema`` with ``k = 2 / (period + 1)``.

    ``skip`` values are ignored before the seed starts (TA-Lib's MACD seeds its fast EMA
    ``slow - fast`` values late; see :class:`MacdStream`).
    """

    period: int
    skip: int = 0
    seen: int = 0
    total: float = 0.0
    value: float | None = None

    def update(self, x: float) -> EmaStream:
        prev = self.value
        if prev is not None:  # the steady state first: one fused multiply-add: :func:`fma`
            # with k's split cached per period (inlined: this runs for every bar)
            period = self.period
            d = x - prev
            k, kh, kl = _ema_k.get(period) or _ema_factor(period)
            if 1e-100 < abs(d) < 1e100 and -1e300 < prev < 1e300 and not _NATIVE_FMA:
                p = d * k
                t = _SPLIT * d
                dh = t - (t - d)
                dl = d - dh
                value = _fsum((p, ((dh * kh - p) + dh * kl + dl * kh) + dl * kl, prev))
            else:
                value = fma(d, k, prev)
            return EmaStream(period=period, skip=self.skip, seen=self.seen + 1, value=value)
        seen = self.seen + 1
        n = seen - self.skip
        if n <= 0:
            return msgspec.structs.replace(self, seen=seen)
        if n < self.period:
            return msgspec.structs.replace(self, seen=seen, total=self.total + x)
        total = self.total + x
        return msgspec.structs.replace(self, seen=seen, total=total, value=total / self.period)


class SmaStream(msgspec.Struct, frozen=True, kw_only=True):
    """TA-Lib SMA: a running total (add the newest, output, subtract the trailing value)."""

    period: int
    window: tuple[float, ...] = ()
    total: float = 0.0
    value: float | None = None

    def update(self, x: float) -> SmaStream:
        window = (*self.window, x)
        total = self.total + x
        if len(window) < self.period:
            return msgspec.structs.replace(self, window=window, total=total)
        value = total / self.period
        return SmaStream(period=self.period, window=window[1:], total=total - window[0], value=value)


class RsiStream(msgspec.Struct, frozen=True, kw_only=True):
    """TA-Lib RSI (Wilder): average gain/loss of the first ``period`` changes, then
    ``avg = (avg * (period - 1) + change) / period``; RSI = 100 * gain / (gain + loss),
    0 when gain + loss is (TA-Lib) zero."""

    period: int
    prev: float | None = None
    changes: int = 0
    gain: float = 0.0
    loss: float = 0.0
    value: float | None = None

    def update(self, x: float) -> RsiStream:
        prev = self.prev
        if prev is None:
            return msgspec.structs.replace(self, prev=x)
        change = x - prev
        gain, loss, period = self.gain, self.loss, self.period
        changes = self.changes + 1
        if changes > period:
            loss *= period - 1
            gain *= period - 1
        if change < 0:
            loss -= change
        else:
            gain += change
        if changes < period:
            return msgspec.structs.replace(self, prev=x, changes=changes, gain=gain, loss=loss)
        loss /= period
        gain /= period
        total = gain + loss
        value = 0.0 if _ta_is_zero(total) else 100.0 * (gain / total)
        return RsiStream(period=period, prev=x, changes=changes, gain=gain, loss=loss, value=value)


def true_range(high: float, low: float, prev_close: float) -> float:
    """TA-Lib TRANGE: the largest of high - low, |prev_close - high|, |prev_close - low|."""
    greatest = high - low
    val2 = abs(prev_close - high)
    if val2 > greatest:
        greatest = val2
    val3 = abs(prev_close - low)
    if val3 > greatest:
        greatest = val3
    return greatest


class AtrStream(msgspec.Struct, frozen=True, kw_only=True):
    """TA-Lib ATR (Wilder): the mean of the first ``period`` true ranges (from the second
    bar on), then ``atr = (atr * (period - 1) + tr) / period``."""

    period: int
    prev_close: float | None = None
    ranges: int = 0
    total: float = 0.0
    value: float | None = None

    def update(self, high: float, low: float, close: float) -> AtrStream:
        prev_close = self.prev_close
        if prev_close is None:
            return msgspec.structs.replace(self, prev_close=close)
        tr = true_range(high, low, prev_close)
        ranges = self.ranges + 1
        period = self.period
        if period == 1:
            return msgspec.structs.replace(self, prev_close=close, ranges=ranges, value=tr)
        if ranges < period:
            return msgspec.structs.replace(self, prev_close=close, ranges=ranges, total=self.total + tr)
        if ranges == period:
            total = self.total + tr
            return msgspec.structs.replace(
                self, prev_close=close, ranges=ranges, total=total, value=total / period
            )
        prev = self.value
        assert prev is not None
        value = prev * (period - 1)
        value += tr
        value /= period
        return msgspec.structs.replace(self, prev_close=close, ranges=ranges, value=value)


class MacdStream(msgspec.Struct, frozen=True, kw_only=True):
    """TA-Lib MACD(fast, slow, signal), ``fast < slow``: the fast EMA is seeded ``slow - fast``
    values late (as TA-Lib does), MACD = fast - slow from the slow EMA's first value on, the
    signal line an EMA of MACD; ``value`` is ``(macd, signal, hist)`` once the signal exists."""

    fast: EmaStream
    slow: EmaStream
    signal: EmaStream
    value: tuple[float, float, float] | None = None

    @classmethod
    def create(cls, fast: int, slow: int, signal: int) -> MacdStream:
        if not 1 <= fast < slow:
            raise ValueError(f"expected 1 <= fast < slow MACD periods, got {fast} and {slow}")
        return cls(
            fast=EmaStream(period=fast, skip=slow - fast),
            slow=EmaStream(period=slow),
            signal=EmaStream(period=signal),
        )

    def update(self, x: float) -> MacdStream:
        fast, slow = self.fast.update(x), self.slow.update(x)
        if fast.value is None or slow.value is None:
            return msgspec.structs.replace(self, fast=fast, slow=slow)
        macd = fast.value - slow.value
        signal = self.signal.update(macd)
        value = None if signal.value is None else (macd, signal.value, macd - signal.value)
        return MacdStream(fast=fast, slow=slow, signal=signal, value=value)
