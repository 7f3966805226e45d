"""Is a bar well formed?  One answer per bar, shared by everyone who checks it.

:func:`bar_ok` is the rule market-feed applies to every bar before anyone sees it, and
the paper engine applies again before it matches against one: prices finite and > 0,
volume finite and >= 0, ``low <= min(open, close)`` and ``high >= max(open, close)``.

It is written as one chain of comparisons (``0 < low <= open <= high``, ``low <= close
<= high``, high finite, ``0 <= volume``, volume finite), which accepts exactly the bars
the rule above accepts: a finite high and a positive low bound every price.  A NaN
cannot be compared: the comparison raises (or is false when the InvalidOperation trap is
off), and the bar is refused.

Bars are immutable, so the answers for the bars checked lately are kept (with the bars
themselves, compared by identity, so an id is never mistaken for a newer object's): in a
group, market-feed, the paper engine and the strategy (through
:func:`actors.strategies.common.bar_close`) check the same Bar object one after the other —
in a backtest a whole run of bars at a time — and every check after the first is a lookup.
At most :data:`MEMO_SIZE` answers are kept; then the memo starts afresh.
"""

from __future__ import annotations

from decimal import Decimal

from actors.messages import Bar

ZERO = Decimal(0)

MEMO_SIZE = 20_000  # more than a backtest chunk of bars (the runner's PROGRESS_EVERY)
_memo: dict[int, tuple[Bar, bool]] = {}  # id(bar) -> (bar, answer); the bar keeps its id taken


def bar_ok(bar: Bar) -> bool:
    """True when ``bar`` has finite prices > 0, a finite volume >= 0 and a consistent range."""
    known = _memo.get(id(bar))
    if known is not None and known[0] is bar:
        return known[1]
    lo, hi, vol = bar.low, bar.high, bar.volume
    try:
        ok = bool(
            ZERO < lo <= bar.open <= hi
            and lo <= bar.close <= hi
            and hi.is_finite()
            and vol >= ZERO
            and vol.is_finite()
        )
    except ArithmeticError:  # a NaN in an ordering comparison
        ok = False
    if len(_memo) >= MEMO_SIZE:
        _memo.clear()
    _memo[id(bar)] = (bar, ok)
    return ok
