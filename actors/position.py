"""Net position accounting with average cost, exact decimals.

``apply_fill`` takes one execution and returns the realized PnL it produced: a fill
that adds to the position moves the average price; one that reduces it realizes
``(fill price - average) * reduced quantity`` (sign-adjusted for shorts); one that
crosses zero realizes on the closed part and opens the rest at the fill price.

Fees by the asset they are charged in (``fee_asset``; a position knows its ``base`` and
``quote`` assets, empty = every fee is in quote, as on the paper venue):

- quote: added to ``fees`` (quote money);
- base (Binance charges a buy's commission in the bought asset when BNB is not used):
  the holding shrinks by the fee (the account received that much less), the average price
  stays, and ``fee * price`` is added to ``fees`` — so ``quantity`` is what the venue holds;
- any other asset (BNB): kept apart in ``other_fees[asset]`` (no price to value it here).
"""

from __future__ import annotations

from decimal import Decimal

ZERO = Decimal(0)


class Position:
    __slots__ = ("avg_price", "base", "fees", "other_fees", "quantity", "quote", "realized_pnl")

    def __init__(self, base: str = "", quote: str = "") -> None:
        self.base = base
        self.quote = quote
        self.quantity = ZERO
        self.avg_price = ZERO
        self.realized_pnl = ZERO
        self.fees = ZERO
        self.other_fees: dict[str, Decimal] = {}

    def apply_fill(
        self, side: str, qty: Decimal, price: Decimal, fee: Decimal = ZERO, fee_asset: str = ""
    ) -> Decimal:
        """Apply a fill; return the PnL it realized (before fees)."""
        realized = self._apply(side, qty, price)
        if not fee:
            return realized
        if not fee_asset or not self.base or fee_asset == self.quote:
            self.fees += fee
        elif fee_asset == self.base:
            self.fees += fee * price
            self.quantity -= fee
            if self.quantity == 0:
                self.avg_price = ZERO
        else:
            self.other_fees[fee_asset] = self.other_fees.get(fee_asset, ZERO) + fee
        return realized

    def _apply(self, side: str, qty: Decimal, price: Decimal) -> Decimal:
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
