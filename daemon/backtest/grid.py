"""The ``--grid`` syntax of ``tradingd optimize``: parameter names and the values to try.

A grid is whitespace-separated ``key=values`` terms, for example
``'ema_fast=3..8 ema_slow=10..30:5 stop_loss_pct=1,2.5 quantity=100'``:

- ``a..b`` every value from a to b inclusive in steps of 1; ``a..b:s`` in steps of s
  (decimals are exact: ``0.5..2:0.5`` is 0.5, 1, 1.5, 2);
- ``a,b,c`` a list (items may be ranges: ``1..3,10``); a single value is a list of one;
- numbers without a point are integers; ``true``/``false`` are booleans; anything else
  is a string (for choice parameters such as ``trend_filter=ema_slope,none``).

Keys are the group's ``[groups.strategy]`` table keys.  A key that is not one, but is the
end of exactly one (``fast`` for ``ema_fast``), means that one.  Every mistake is a
:class:`~daemon.backtest.data.BacktestError` (exit code 2) saying what was expected.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterator, Sequence
from decimal import Decimal, InvalidOperation

from daemon.backtest.data import BacktestError

Value = int | float | bool | str
MAX_RANGE = 100_000
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _bad(term: str, why: str) -> BacktestError:
    return BacktestError(
        f"--grid: {term!r}: {why}; expected key=values with values a list a,b,c or a range a..b[:step],"
        " e.g. 'ema_fast=3..8 ema_slow=10..30:5'",
        2,
    )


def _number(text: str, term: str) -> Decimal:
    if not _NUMBER.match(text):
        raise _bad(term, f"{text!r} is not a number")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise _bad(term, f"{text!r} is not a number") from None


def _as_value(d: Decimal, integral: bool) -> Value:
    return int(d) if integral else float(d)


def _scalar(text: str, term: str) -> Value:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if _NUMBER.match(text):
        d = _number(text, term)
        return _as_value(d, "." not in text and "e" not in low)
    if not text:
        raise _bad(term, "empty value")
    return text


def _range(text: str, term: str) -> list[Value]:
    body, _, step_text = text.partition(":")
    a_text, _, b_text = body.partition("..")
    if not a_text or not b_text:
        raise _bad(term, f"range {text!r} needs both ends")
    a, b = _number(a_text, term), _number(b_text, term)
    step = _number(step_text, term) if step_text else Decimal(1)
    if step <= 0:
        raise _bad(term, f"step {step_text} must be > 0")
    if a > b:
        raise _bad(term, f"range {a_text}..{b_text} is empty (start > end)")
    if (b - a) / step >= MAX_RANGE:
        raise _bad(term, f"range {text!r} has more than {MAX_RANGE} values")
    integral = all("." not in t and "e" not in t.lower() for t in (a_text, b_text, step_text or "1"))
    out: list[Value] = []
    v = a
    while v <= b:
        out.append(_as_value(v, integral))
        v += step
    return out


def _values(spec: str, term: str) -> list[Value]:
    if not spec:
        raise _bad(term, "no values")
    out: list[Value] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            raise _bad(term, "empty item in the list")
        out.extend(_range(item, term) if ".." in item else [_scalar(item, term)])
    return list(dict.fromkeys(out))  # keep order, drop repeats


def resolve_key(key: str, fields: Sequence[str], strategy: str, term: str) -> str:
    if key in fields:
        return key
    ends = [f for f in fields if f.endswith(f"_{key}")]
    if len(ends) == 1:
        return ends[0]
    known = ", ".join(fields)
    if len(ends) > 1:
        raise BacktestError(f"--grid: {term!r}: {key!r} could be {' or '.join(ends)}; use the full name", 2)
    raise BacktestError(
        f"--grid: {term!r}: {key!r} is not a parameter of strategy {strategy} (parameters: {known})", 2
    )


def parse_grid(text: str, fields: Sequence[str], strategy: str) -> dict[str, list[Value]]:
    """``{strategy key: [values]}`` in the order given; BacktestError (code 2) on any mistake."""
    grid: dict[str, list[Value]] = {}
    terms = text.split()
    if not terms:
        raise BacktestError("--grid: empty; expected e.g. 'ema_fast=3..8 ema_slow=10..30:5'", 2)
    for term in terms:
        key, eq, spec = term.partition("=")
        if not eq or not key:
            raise _bad(term, "missing '='" if not eq else "missing the parameter name")
        name = resolve_key(key.strip(), fields, strategy, term)
        if name == "name":
            raise BacktestError("--grid: the strategy's name cannot be optimised; use another config", 2)
        if name in grid:
            raise BacktestError(f"--grid: {name} is given twice", 2)
        grid[name] = _values(spec.strip(), term)
    return grid


def size(grid: dict[str, list[Value]]) -> int:
    n = 1
    for values in grid.values():
        n *= len(values)
    return n


def combinations(grid: dict[str, list[Value]]) -> Iterator[dict[str, Value]]:
    """Every parameter set, the last key varying fastest."""
    keys = list(grid)
    for combo in itertools.product(*grid.values()):
        yield dict(zip(keys, combo, strict=True))


def sample(grid: dict[str, list[Value]], n: int, seed: int) -> list[dict[str, Value]]:
    """``n`` distinct parameter sets drawn with ``random.Random(seed)``, in grid order."""
    total = size(grid)
    if n >= total:
        return list(combinations(grid))
    keys, lists = list(grid), list(grid.values())
    out = []
    for index in sorted(random.Random(seed).sample(range(total), n)):
        combo: dict[str, Value] = {}
        for key, values in zip(reversed(keys), reversed(lists), strict=True):
            index, i = divmod(index, len(values))
            combo[key] = values[i]
        out.append({k: combo[k] for k in keys})
    return out
