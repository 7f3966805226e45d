"""Paper trading: a deterministic matching engine that answers orders like a real exchange adapter.

In:  ``SubmitOrder``, ``CancelOrder`` and market data ``Trade``/``Bar``/``Quote`` for one
(exchange, symbol) — :class:`PaperExchange` is the actor, :class:`PaperEngine` the
synchronous matcher behind it, :class:`PaperAccountState` the balances shared by every
symbol of one ``[accounts.*]`` table.
Out: ``OrderAccepted``, ``OrderRejected``, ``OrderFilled``, ``OrderCanceled``, ``OrderExpired``.

Matching rules (prices in quote per base; fees in the quote asset):

- A submit is validated (duplicate client id ever seen, quantity > 0 on ``step_size``,
  required prices > 0 on ``tick_size``, ``min_notional``, free balance) and answered at
  once with ``OrderAccepted`` (sequential ``venue_order_id``) or ``OrderRejected``.
  Buys reserve ``quantity * price estimate * (1 + taker_fee)`` of the quote asset (market:
  last price plus slippage; stop-market: stop plus slippage), sells reserve the base
  quantity (spot: no shorting).  Reservations are released on fill, cancel and expiry.
- Orders only fill on a *later* ``Trade`` or ``Bar``; quotes only move the reference price.
  Each event offers ``size`` (bars: ``volume``) times ``participation`` per side, shared by
  our orders in priority order (market-like first, then limits by price, then by arrival);
  what is left keeps working on the following events.  ``PaperEngine.volume_limited =
  False`` (``tradingd backtest --ignore-volume``) lifts that bound: orders fill in full.
- Market (and triggered stop-market) orders fill at the trade price or the bar's open,
  moved against the order by ``slippage_bps`` and rounded to tick, as taker.
- Limits fill at the limit price as maker when a trade prints at or through them (bars:
  the low for buys, the high for sells).  A limit already marketable on the first trade
  after it arrived, or at a bar's open, fills at that price (never worse than the limit)
  as taker.
- Stops trigger when price trades through ``stop_price`` (bars: high for buys, low for
  sells).  Stop-market then fills at that event from ``max(open, stop)`` (buy) /
  ``min(open, stop)`` (sell) with slippage; stop-limit becomes a limit at ``price`` that
  takes liquidity at once only if that trigger price is already through its limit.
- ``ioc``: whatever fills on the order's first matching event, the rest is canceled
  (reason "ioc").  ``fok``: everything on that event, or ``OrderExpired``.
- A buy that cannot pay for a fill (a price gap past its reservation, a fee change)
  fills what it can afford and the rest is canceled (reason "insufficient balance").
- Fees are ``rate * notional`` in the quote asset; balances change exactly (Decimal).
- Cancel of an unknown or finished order: ``OrderRejected`` "cancel rejected: unknown order <id>".
- Client ids are remembered per (exchange, symbol) by the account for the life of the
  process, so a re-send is refused even by a restarted group's new engine.  When the
  actor stops for good its open orders are canceled ("venue stopped") and released.
- Market data with non-finite or non-positive prices is ignored and counted in
  ``PaperEngine.rejected_market_events``.
"""

from adapters.paper.account import InsufficientBalance, PaperAccountState
from adapters.paper.actor import PaperExchange
from adapters.paper.engine import PaperEngine
from adapters.paper.orders import PaperOrder, check_order

__all__ = [
    "InsufficientBalance",
    "PaperAccountState",
    "PaperEngine",
    "PaperExchange",
    "PaperOrder",
    "check_order",
]
