"""What a person reads is rounded to the instrument and dated in ISO 8601 UTC (daemon/display.py)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from daemon import display


@pytest.mark.parametrize(
    ("unit", "places"), [(D("0.01"), 2), (D("0.0100"), 2), (D("1"), 0), (D("5E-8"), 8), (D("10"), 0)]
)
def test_places_of_a_tick_or_step(unit: D, places: int) -> None:
    assert display.places(unit) == places


def test_long_decimals_are_rounded_to_the_instrument() -> None:
    avg = D("30123.456789012345678901234567890")
    assert display.price(avg, D("0.01")) == "30123.46"
    assert display.quantity(D("0.123456789012345678901234"), D("0.00001")) == "0.12346"
    assert display.money(D("-1.005"), D("0.01")) == "-1.00"  # half-even
    assert display.money(D("12"), D("1")) == "12.00"  # money keeps at least cents
    assert display.price(None, D("0.01")) is None
    assert display.rounded(D("NaN"), 2) == "NaN"


def test_iso_utc() -> None:
    assert display.iso(1_509_902_640_000_000_000) == "2017-11-05T17:24:00.000Z"
