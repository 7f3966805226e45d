"""What a person reads: numbers rounded to the instrument, times in ISO 8601 UTC.

Takes and emits no messages.  The order path keeps exact decimals; /status, log text and
reports show prices with the instrument's tick decimals, quantities with its step decimals,
money in the quote asset with the tick decimals (at least 2), never a 30-digit decimal or a
raw nanosecond count.  Rounding is half-even; zero is shown as ``0`` with the same places.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from actors.timefmt import iso_utc

NS = 1_000_000_000


def places(unit: Decimal) -> int:
    """Decimal places of a tick or step size (0.0100 -> 2, 1 -> 0, 5E-8 -> 8)."""
    exponent = unit.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def rounded(value: Decimal, decimals: int) -> str:
    """``value`` with exactly ``decimals`` places (half-even), as text; non-finite values as they are."""
    if not value.is_finite():
        return str(value)
    try:
        return f"{value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN):f}"
    except InvalidOperation:  # more digits than the context allows: no rounding needed to show it
        return f"{value:f}"


def price(value: Decimal | None, tick: Decimal) -> str | None:
    return None if value is None else rounded(value, places(tick))


def quantity(value: Decimal, step: Decimal) -> str:
    return rounded(value, places(step))


def money(value: Decimal, tick: Decimal) -> str:
    return rounded(value, max(2, places(tick)))


def iso(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC with milliseconds (``...T12:00:00.123Z``)."""
    return iso_utc(ns, "milliseconds")
