"""Ring buffers, bar series, windowed TA-Lib indicators vs TA-Lib on the full bundled candles."""

from __future__ import annotations

import copy
import pickle
import random
from collections import deque
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np
import pytest
import talib

from actors.indicators import (
    DEFAULT_WINDOW_FACTOR,
    BarSeries,
    RingBuffer,
    atr,
    ema,
    highest_prev,
    lowest_prev,
    rsi,
    sma,
    window_capacity,
)

DATA = Path(__file__).resolve().parents[1] / "adapters" / "replay" / "data"
CANDLES = DATA / "candles" / "UNITTEST_BTC-1m.json"
Row = tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]
FIELDS = ("open", "high", "low", "close", "volume")

# Stated tolerances of the windowed value vs TA-Lib on the full series (window 20x the period).
EMA_REL_TOL = 1e-12
RSI_ABS_TOL = 1e-5
ATR_REL_TOL = 1e-7
SMA_REL_TOL = 1e-9  # TA-Lib's full-series SMA is a running sum: it drifts ~1e-12 relative


@pytest.fixture(scope="module")
def ohlcv() -> dict[str, np.ndarray]:
    rows = msgspec.json.decode(CANDLES.read_bytes(), type=list[Row])
    assert len(rows) == 13_681
    columns = list(zip(*rows, strict=True))[1:]
    return {name: np.array([float(x) for x in col]) for name, col in zip(FIELDS, columns, strict=True)}


# --- RingBuffer ----------------------------------------------------------------------------


@pytest.mark.parametrize("capacity", [1, 2, 3, 7, 64])
def test_ring_buffer_matches_a_deque(capacity: int) -> None:
    rng = random.Random(capacity)
    buf = RingBuffer(capacity)
    ref: deque[float] = deque(maxlen=capacity)
    assert len(buf) == 0 and buf.view().size == 0 and np.isnan(buf.last)
    for _ in range(3 * capacity + 5):
        value = rng.uniform(-1e6, 1e6)
        buf.append(value)
        ref.append(value)
        assert buf.view().tolist() == list(ref)
        assert len(buf) == len(ref) and buf.full == (len(ref) == capacity)
        assert buf.last == ref[-1]
        k = rng.randint(1, capacity + 2)
        assert buf.tail(k).tolist() == list(ref)[-k:]
        assert buf.tail(0).size == 0


def test_view_is_a_contiguous_read_only_view_without_copies() -> None:
    buf = RingBuffer(5)
    storage = buf.data
    for i in range(13):
        buf.append(float(i))
    view = buf.view()
    assert view.flags.c_contiguous and view.dtype == np.float64
    assert not view.flags.writeable and not view.flags.owndata
    assert np.shares_memory(view, np.frombuffer(buf.data, dtype=np.float64))
    assert buf.data is storage and len(storage) == 2 * 5 * 8
    with pytest.raises(ValueError):
        view[0] = 1.0
    assert view.tolist() == [8.0, 9.0, 10.0, 11.0, 12.0]


def test_snapshot_restore_and_resize() -> None:
    buf = RingBuffer(4)
    for i in range(10):
        buf.append(float(i))
    assert buf.snapshot() == [6.0, 7.0, 8.0, 9.0]
    again = RingBuffer.restore(4, buf.snapshot())
    assert again.view().tolist() == buf.view().tolist() and again.full
    assert RingBuffer.restore(2, buf.snapshot()).snapshot() == [8.0, 9.0]
    bigger = buf.resized(6)
    assert bigger.snapshot() == [6.0, 7.0, 8.0, 9.0] and not bigger.full
    bigger.append(10.0)
    assert bigger.snapshot() == [6.0, 7.0, 8.0, 9.0, 10.0]


@pytest.mark.parametrize("codec", [msgspec.msgpack, msgspec.json])
def test_ring_buffer_encodes_and_decodes_into_an_independent_live_buffer(codec: object) -> None:
    buf = RingBuffer(3)
    for i in range(5):
        buf.append(i + 0.1)
    decoded = codec.decode(codec.encode(buf), type=RingBuffer)  # type: ignore[attr-defined]
    assert decoded == buf and decoded.view().tolist() == buf.view().tolist()
    decoded.append(99.0)
    assert buf.last == 4.1 and decoded.snapshot() == [3.1, 4.1, 99.0]
    for copied in (buf.copy(), copy.copy(buf), copy.deepcopy(buf), pickle.loads(pickle.dumps(buf))):
        copied.append(7.0)
        assert buf.snapshot() == [2.1, 3.1, 4.1] and copied.snapshot() == [3.1, 4.1, 7.0]


@pytest.mark.parametrize(
    "fields",
    [
        {"capacity": 3, "size": 1, "head": 1, "data": b"\x00" * 8},
        {"capacity": 3, "size": 2, "head": 0, "data": b"\x00" * 48},
        {"capacity": 3, "size": 4, "head": 0, "data": b"\x00" * 48},
        {"capacity": 0, "size": 0, "head": 0, "data": b""},
        {"capacity": 1, "size": 1, "head": 0, "data": b"\x00" * 8 + b"\x01" * 8},
    ],
)
def test_a_corrupt_buffer_does_not_decode(fields: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.msgpack.decode(msgspec.msgpack.encode(fields), type=RingBuffer)


def test_bar_series_round_trips_and_rejects_mismatched_buffers() -> None:
    series = BarSeries.with_capacity(4)
    for i in range(6):
        series.append(1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0 * i)
    assert len(series) == 4 and series.count == 6 and series.capacity == 4
    snap = series.snapshot()
    assert snap.close == [3.5, 4.5, 5.5, 6.5] and snap.count == 6
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(series), type=BarSeries) == series
    restored = BarSeries.restore(msgspec.json.decode(msgspec.json.encode(snap), type=type(snap)))
    assert restored.snapshot() == snap
    assert series.resized(2).snapshot().volume == [40.0, 50.0]
    with pytest.raises(ValueError):
        BarSeries(
            open=RingBuffer(4),
            high=RingBuffer(4),
            low=RingBuffer(3),
            close=RingBuffer(4),
            volume=RingBuffer(4),
        )


# --- indicator functions -------------------------------------------------------------------


def test_window_capacity() -> None:
    assert DEFAULT_WINDOW_FACTOR == 20
    assert window_capacity((5, 13, 14), (21, 5)) == 280
    assert window_capacity((5,), (300,)) == 300
    assert window_capacity((14,), factor=10) == 140
    with pytest.raises(ValueError):
        window_capacity((14,), factor=0)


def test_short_windows_give_nan_and_period_one_is_the_value() -> None:
    x = np.array([1.0, 3.0, 2.0])
    assert np.isnan(ema(x, 4)) and np.isnan(sma(x, 4)) and np.isnan(rsi(x, 3))
    assert np.isnan(highest_prev(x, 3)) and np.isnan(lowest_prev(x, 3)) and np.isnan(atr(x, x, x, 3))
    assert ema(x, 1) == 2.0 and sma(x, 1) == 2.0
    assert highest_prev(x, 1) == 3.0 and lowest_prev(x, 1) == 3.0
    assert highest_prev(x, 2) == 3.0 and lowest_prev(x, 2) == 1.0
    assert sma(x, 3) == 2.0
    with pytest.raises(ValueError):
        rsi(x, 1)


def _windowed(ohlcv: dict[str, np.ndarray], capacity: int) -> dict[str, np.ndarray]:
    """Every indicator read at every bar from a BarSeries fed bar by bar."""
    series = BarSeries.with_capacity(capacity)
    n = len(ohlcv["close"])
    out = {k: np.full(n, np.nan) for k in ("ema5", "ema13", "rsi14", "sma5", "max20", "min20", "atr14")}
    columns = [ohlcv[f].tolist() for f in FIELDS]
    for i, (o, h, lo, c, v) in enumerate(zip(*columns, strict=True)):
        series.append(o, h, lo, c, v)
        closes = series.close.view()
        out["ema5"][i] = ema(closes, 5)
        out["ema13"][i] = ema(closes, 13)
        out["rsi14"][i] = rsi(closes, 14)
        out["sma5"][i] = sma(series.volume.view(), 5)
        out["max20"][i] = highest_prev(series.high.view(), 20)
        out["min20"][i] = lowest_prev(series.low.view(), 20)
        out["atr14"][i] = atr(series.high.view(), series.low.view(), closes, 14)
    return out


def _full(ohlcv: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TA-Lib on the whole series; MAX/MIN shifted one bar so they exclude the current bar."""
    h, lo, c, v = ohlcv["high"], ohlcv["low"], ohlcv["close"], ohlcv["volume"]
    return {
        "ema5": talib.EMA(c, 5),
        "ema13": talib.EMA(c, 13),
        "rsi14": talib.RSI(c, 14),
        "sma5": talib.SMA(v, 5),
        "max20": np.concatenate(([np.nan], talib.MAX(h, 20)[:-1])),
        "min20": np.concatenate(([np.nan], talib.MIN(lo, 20)[:-1])),
        "atr14": talib.ATR(h, lo, c, 14),
    }


def test_windowed_indicators_match_talib_on_the_full_real_series(ohlcv: dict[str, np.ndarray]) -> None:
    capacity = window_capacity((5, 13, 14), (21, 5))
    got, want = _windowed(ohlcv, capacity), _full(ohlcv)
    for name in got:  # same warm-up: NaN exactly where TA-Lib gives NaN
        assert np.array_equal(np.isnan(got[name]), np.isnan(want[name])), name
    warm = slice(21, None)
    assert np.array_equal(got["max20"][warm], want["max20"][warm])
    assert np.array_equal(got["min20"][warm], want["min20"][warm])
    assert np.allclose(got["sma5"][warm], want["sma5"][warm], rtol=SMA_REL_TOL, atol=0)
    full_history = slice(0, capacity)  # the window still holds every bar: identical values
    for name in ("ema5", "ema13", "rsi14", "atr14"):
        assert np.array_equal(got[name][full_history], want[name][full_history], equal_nan=True), name
    rolled = slice(capacity, None)
    assert np.allclose(got["ema5"][rolled], want["ema5"][rolled], rtol=EMA_REL_TOL, atol=0)
    assert np.allclose(got["ema13"][rolled], want["ema13"][rolled], rtol=EMA_REL_TOL, atol=0)
    assert np.max(np.abs(got["rsi14"][rolled] - want["rsi14"][rolled])) < RSI_ABS_TOL
    assert np.allclose(got["atr14"][rolled], want["atr14"][rolled], rtol=ATR_REL_TOL, atol=0)


def test_a_short_window_is_measurably_off_for_rsi(ohlcv: dict[str, np.ndarray]) -> None:
    """Why the window is 20x the period: at 5x, RSI(14) drifts by whole points."""
    capacity = window_capacity((14,), factor=5)
    got, want = _windowed(ohlcv, capacity)["rsi14"], talib.RSI(ohlcv["close"], 14)
    assert np.nanmax(np.abs(got[capacity:] - want[capacity:])) > 0.5
