"""What an account should hold at its venue, from what the daemon itself did: the balance ledger.

Takes :class:`~actors.messages.OrderFilled` (the account's own fills) and
:class:`~actors.messages.LedgerAdjusted` (baselines from the venue, re-bases after a drift, the
whole ledger journaled with a snapshot); emits nothing.  Pure and exact (Decimal): the same
code runs in the portfolio actor (the live ledger) and in the journal's fold (the ledger a
restart starts from), so both agree record for record.

A fill moves the base asset by its quantity and the quote asset by its notional (a buy adds
base and takes quote), and takes its fee in its fee asset.  Fills are keyed by (symbol, trade
id) so one delivered twice (the user stream, then a REST catch-up) counts once.  A fill moves
only assets that have a baseline: before it, the venue's amount (which has the fill) is the start.
:meth:`BalanceLedger.drifts` compares the ledger with the venue's balances asset by asset.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from actors.messages import LedgerAdjusted, OrderFilled

ZERO = Decimal(0)
MAX_SEEN = 100_000  # fill keys remembered (a duplicate comes within seconds, not days)


class BalanceLedger:
    """Per asset, the amount (free + locked) the account should hold at its venue."""

    def __init__(self) -> None:
        self.balances: dict[str, Decimal] = {}
        self.fills = 0
        self.duplicates = 0
        self._seen: dict[tuple[str, str], None] = {}

    @property
    def based(self) -> bool:
        """True once a baseline from the venue (or a journaled ledger) is in."""
        return bool(self.balances)

    def apply_fill(self, f: OrderFilled, base: str, quote: str) -> bool:
        """Take one of the account's fills; False for a fill already counted."""
        key = (f.symbol, f.trade_id or f"{f.client_order_id}:{f.cum_qty}")
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.pop(next(iter(self._seen)))
        sign = 1 if f.side == "buy" else -1
        self._move(base, sign * f.last_qty)
        self._move(quote, -sign * f.last_qty * f.last_price)
        if f.fee:
            self._move(f.fee_asset, -f.fee)
        self.fills += 1
        return True

    def _move(self, asset: str, amount: Decimal) -> None:
        if asset in self.balances:
            self.balances[asset] += amount

    def apply(self, msg: LedgerAdjusted) -> None:
        """A baseline, a re-base after a drift (both add ``adjust``), or a snapshot (replaces)."""
        if msg.reason == "snapshot":
            self.balances = dict(msg.balances)
            return
        for asset, amount in msg.adjust.items():
            self._add(asset, amount)

    def _add(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, ZERO) + amount

    def copy(self) -> BalanceLedger:
        twin = BalanceLedger()
        twin.balances, twin._seen = dict(self.balances), dict(self._seen)
        return twin

    def drifts(
        self,
        venue: Mapping[str, Decimal],
        assets: Iterable[str],
        tolerance: Callable[[str], Decimal],
    ) -> dict[str, Decimal]:
        """Per asset of ``assets`` the ledger knows, venue minus ledger where it exceeds the
        asset's tolerance (an asset the venue does not list holds zero there)."""
        out: dict[str, Decimal] = {}
        for asset in sorted(set(assets)):
            mine = self.balances.get(asset)
            if mine is None:
                continue
            diff = venue.get(asset, ZERO) - mine
            if abs(diff) > tolerance(asset):
                out[asset] = diff
        return out

    def unknown(self, venue: Mapping[str, Decimal], assets: Iterable[str]) -> dict[str, Decimal]:
        """Assets of ``assets`` the ledger has no amount for yet: the venue's amount (a baseline)."""
        return {a: venue.get(a, ZERO) for a in sorted(set(assets)) if a not in self.balances}
