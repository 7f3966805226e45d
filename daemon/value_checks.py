"""The value rules shared by the config checks: finite, positive or non-negative, within a range.

Each yields ``(key path, what was expected)`` problems, the shape ``daemon.config`` turns into
``file:line: key.path: message`` errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal

Problems = Iterator[tuple[str, str]]


def bad(value: float | int | Decimal) -> bool:
    """NaN or infinite (a Decimal or a float; ints are always fine)."""
    if isinstance(value, Decimal):
        return not value.is_finite()
    return isinstance(value, float) and not math.isfinite(value)


def positive(path: str, value: float | int | Decimal, allow_zero: bool = False) -> Problems:
    if bad(value) or value < 0 or (value == 0 and not allow_zero):
        yield path, f"expected a {'non-negative' if allow_zero else 'positive'} finite number, got {value}"


def between(path: str, value: float | Decimal, low: float, high: float, what: str) -> Problems:
    if bad(value) or not low <= value <= high:
        yield path, f"expected {what}, got {value}"
