"""What a backtest records: round trips from the fills, the equity curve from the bars.

:class:`Ledger` sees the group's ``OrderFilled`` messages and every ``Bar`` the strategy
sees.  A round trip opens when the position leaves zero and closes when it is back at
zero; a fill that crosses zero closes one and opens the next (its quantity and fee are
split).  Prices and PnL are exact decimals; PnL is net of fees.  The equity curve (in
the quote asset: quote balance + base balance x close) is sampled at every bar's close,
after the fills of that bar, as floats.
"""

from __future__ import annotations

from array import array
from decimal import Decimal

import msgspec

from actors.messages import OrderFilled, Side

ZERO = Decimal(0)


class RoundTrip(msgspec.Struct, kw_only=True):
    """One position from open to flat. Bars are 0-based indexes into the backtest's bars."""

    direction: str  # "long" or "short"
    entry_bar: int
    entry_ns: int
    quantity: Decimal = ZERO  # largest absolute size reached
    bought_qty: Decimal = ZERO
    bought_value: Decimal = ZERO
    sold_qty: Decimal = ZERO
    sold_value: Decimal = ZERO
    fees: Decimal = ZERO
    exit_bar: int = -1
    exit_ns: int = 0

    @property
    def closed(self) -> bool:
        return self.exit_bar >= 0

    @property
    def entry_price(self) -> Decimal:
        q, v = (
            (self.bought_qty, self.bought_value)
            if self.direction == "long"
            else (self.sold_qty, self.sold_value)
        )
        return v / q if q else ZERO

    @property
    def exit_price(self) -> Decimal:
        q, v = (
            (self.sold_qty, self.sold_value)
            if self.direction == "long"
            else (self.bought_qty, self.bought_value)
        )
        return v / q if q else ZERO

    @property
    def pnl(self) -> Decimal:
        """Net of fees; for a closed trip (bought and sold the same quantity)."""
        return self.sold_value - self.bought_value - self.fees

    @property
    def return_pct(self) -> float:
        entry_value = self.bought_value if self.direction == "long" else self.sold_value
        return float(self.pnl / entry_value * 100) if entry_value else 0.0


class Ledger:
    """Round trips, position, and the per-bar equity curve of one backtest."""

    def __init__(self, base_balance: Decimal, quote_balance: Decimal) -> None:
        self.position = ZERO
        self.trips: list[RoundTrip] = []
        self.open: RoundTrip | None = None
        self.fills = 0
        self.fees = ZERO
        self.base = base_balance  # mirrors the account's totals, moved by the fills
        self.quote = quote_balance
        self.base_f = float(base_balance)  # float copies for the per-bar equity
        self.quote_f = float(quote_balance)
        self.equity = array("d")
        self.bar_open_ns = array("q")
        self.exposed_bars = 0

    def on_fill(self, f: OrderFilled, bar: int, ts_ns: int) -> None:
        """Apply one fill at bar index ``bar`` (the bar whose price filled it), time ``ts_ns``."""
        self.fills += 1
        self.fees += f.fee
        qty, px = f.last_qty, f.last_price
        if f.side == "buy":
            self.base += qty
            self.quote -= qty * px
        else:
            self.base -= qty
            self.quote += qty * px
        self.quote -= f.fee
        self.base_f, self.quote_f = float(self.base), float(self.quote)
        side: Side = f.side
        signed = qty if side == "buy" else -qty
        pos = self.position
        if pos != 0 and (pos > 0) != (signed > 0) and abs(signed) > abs(pos):
            # crosses zero: close the open trip with part of the fill, open a new one with the rest
            part = abs(pos)
            fee_part = f.fee * part / qty
            self._apply(side, part, px, fee_part, bar, ts_ns)
            self._apply(side, qty - part, px, f.fee - fee_part, bar, ts_ns)
        else:
            self._apply(side, qty, px, f.fee, bar, ts_ns)

    def _apply(self, side: Side, qty: Decimal, px: Decimal, fee: Decimal, bar: int, ts_ns: int) -> None:
        trip = self.open
        if trip is None:
            trip = RoundTrip(direction="long" if side == "buy" else "short", entry_bar=bar, entry_ns=ts_ns)
            self.open = trip
            self.trips.append(trip)
        if side == "buy":
            trip.bought_qty += qty
            trip.bought_value += qty * px
            self.position += qty
        else:
            trip.sold_qty += qty
            trip.sold_value += qty * px
            self.position -= qty
        trip.fees += fee
        trip.quantity = max(trip.quantity, abs(self.position))
        if self.position == 0:
            trip.exit_bar, trip.exit_ns = bar, ts_ns
            self.open = None

    def on_bar_close(self, close: float, open_ns: int) -> None:
        """Sample equity at a bar's close (after that bar's fills).

        The runner inlines this for candle input; keep the two in step.
        """
        self.equity.append(self.quote_f + self.base_f * close)
        self.bar_open_ns.append(open_ns)
        if self.position:
            self.exposed_bars += 1

    @property
    def closed_trips(self) -> list[RoundTrip]:
        return [t for t in self.trips if t.closed]
