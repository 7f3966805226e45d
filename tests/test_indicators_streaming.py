"""Streaming indicators (actors/indicators.py) vs TA-Lib's batch functions on the full bundled candles."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import numpy as np
import pytest
import talib

from actors.indicators import AtrStream, EmaStream, MacdStream, RsiStream, SmaStream, fma, true_range
from tests.strategy_helpers import column

WILDER_REL_TOL = 1e-12  # RSI/ATR: TA-Lib's compiled smoothing rounds differently in the last bits


def stream(update: Callable[[float], float | None], xs: np.ndarray) -> np.ndarray:
    return np.array([np.nan if (v := update(float(x))) is None else v for x in xs])


def ema_values(period: int, xs: np.ndarray) -> np.ndarray:
    s = EmaStream(period=period)

    def step(x: float) -> float | None:
        nonlocal s
        s = s.update(x)
        return s.value

    return stream(step, xs)


@pytest.mark.parametrize("period", [2, 5, 13, 26, 200])
def test_ema_is_bit_for_bit_talib(period: int) -> None:
    c = column(4)
    assert np.array_equal(ema_values(period, c), talib.EMA(c, period), equal_nan=True)


@pytest.mark.parametrize("period", [1, 5, 50, 200])
def test_sma_is_bit_for_bit_talib(period: int) -> None:
    for xs in (column(4), column(5)):
        s = SmaStream(period=period)

        def step(x: float) -> float | None:
            nonlocal s
            s = s.update(x)
            return s.value

        assert np.array_equal(stream(step, xs), talib.SMA(xs, period), equal_nan=True)


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 13, 4), (3, 4, 1)])
def test_macd_is_bit_for_bit_talib(fast: int, slow: int, signal: int) -> None:
    c = column(4)
    s = MacdStream.create(fast, slow, signal)
    got = []
    for x in c:
        s = s.update(float(x))
        got.append((np.nan,) * 3 if s.value is None else s.value)
    out = np.array(got)
    for k, expected in enumerate(talib.MACD(c, fast, slow, signal)):
        assert np.array_equal(out[:, k], expected, equal_nan=True)


@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_talib(period: int) -> None:
    c = column(4)
    s = RsiStream(period=period)

    def step(x: float) -> float | None:
        nonlocal s
        s = s.update(x)
        return s.value

    got, expected = stream(step, c), talib.RSI(c, period)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=WILDER_REL_TOL, atol=1e-10)


@pytest.mark.parametrize("period", [1, 14, 50])
def test_atr_matches_talib(period: int) -> None:
    h, lo, c = column(2), column(3), column(4)
    s = AtrStream(period=period)
    got = []
    for hi, low, close in zip(h, lo, c, strict=True):
        s = s.update(float(hi), float(low), float(close))
        got.append(np.nan if s.value is None else s.value)
    expected = talib.ATR(h, lo, c, period)
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(np.array(got), expected, rtol=WILDER_REL_TOL)
    assert np.array_equal(
        [true_range(float(h[i]), float(lo[i]), float(c[i - 1])) for i in range(1, 500)],
        talib.TRANGE(h, lo, c)[1:500],
    )


def test_flat_series_rsi_is_zero_like_talib() -> None:
    xs = np.full(40, 0.0016)
    s = RsiStream(period=14)
    for x in xs:
        s = s.update(float(x))
    assert s.value == talib.RSI(xs, 14)[-1] == 0.0


def test_fma_rounds_once() -> None:
    assert fma(0.1, 10.0, -1.0) == 5.551115123125783e-17  # (0.1 * 10 rounded) - 1 would be 0.0
    assert fma(2.0, 3.0, 4.0) == 10.0


def test_streams_round_trip_through_msgpack_and_json() -> None:
    c = column(4)[:300]
    states: list[object] = [
        EmaStream(period=5),
        SmaStream(period=7),
        RsiStream(period=14),
        MacdStream.create(5, 13, 4),
    ]
    for i, s in enumerate(states):
        for x in c:
            s = s.update(float(x))  # type: ignore[attr-defined]
        states[i] = s
    atr = AtrStream(period=14)
    for x in c:
        atr = atr.update(float(x) * 1.001, float(x) * 0.999, float(x))
    for s in [*states, atr]:
        for codec in (msgspec.msgpack, msgspec.json):
            assert codec.decode(codec.encode(s), type=type(s)) == s
