"""Net position accounting with average cost, exact decimals.

``apply_fill`` takes one execution and returns the realized PnL it produced: a fill
that adds to the position moves the average price; one that reduces it realizes
``(fill price - average) * reduced quantity`` (sign-adjusted for shorts); one that
crosses zero realizes on the closed part and opens the rest at the fill price.
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)


class Position:
    __slots__ = ("avg_price", "fees", "quantity", "realized_pnl")

    def __init__(self) -> None:
        self.quantity = ZERO
        self.avg_price = ZERO
        self.realized_pnl = ZERO
        self.fees = ZERO

    def apply_fill(self, side: str, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> Decimal:
        """Apply a fill; return the PnL it realized (before fees)."""
        self.fees += fee
        if qty == 0:
            return ZERO
        signed = qty if side == "buy" else -qty
        pos = self.quantity
        if pos == 0 or (pos > 0) == (signed > 0):
            total = pos + signed
            self.avg_price = (abs(pos) * self.avg_price + qty * price) / abs(total)
            self.quantity = total
            return ZERO
        closed = min(qty, abs(pos))
        direction = 1 if pos > 0 else -1
        realized = (price - self.avg_price) * closed * direction
        self.realized_pnl += realized
        self.quantity = pos + signed
        if self.quantity == 0:
            self.avg_price = ZERO
        elif (self.quantity > 0) != (pos > 0):
            self.avg_price = price
        return realized

    def unrealized(self, mark: Decimal) -> Decimal:
        return (mark - self.avg_price) * self.quantity
