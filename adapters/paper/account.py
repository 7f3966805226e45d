"""Paper account state: balances, reservations for open orders, fees, slippage, id sequences.

One :class:`PaperAccountState` is shared by every paper matching engine (one per symbol)
that trades the same ``[accounts.*]`` table, so a buy of ETH/BTC and a buy of XRP/BTC draw
on the same BTC.  It handles no messages itself: the engines call it while they turn
``SubmitOrder``/``CancelOrder`` and market data into order events.

Balances are spot balances per asset, kept exactly as :class:`~decimal.Decimal`:
``total`` is what the account owns, ``reserved`` is what open orders hold, and
``free = total - reserved`` is what a new order may use.  Neither ever goes negative.
Fees, slippage and participation come from a :class:`daemon.config.PaperAccount`, which
:meth:`PaperAccountState.update_config` swaps in place on a config reload without
touching balances.
"""

from __future__ import annotations

from decimal import Decimal

from daemon.config import PaperAccount

ZERO = Decimal(0)
BPS = Decimal(10_000)


class InsufficientBalance(Exception):
    """A reservation or debit larger than what the account has free."""


class PaperAccountState:
    """Live balances and settings of one simulated account, shared by all its symbols."""

    def __init__(self, config: PaperAccount, name: str = "paper") -> None:
        self.name = name
        self.config = config
        self.balances: dict[str, Decimal] = {asset: Decimal(v) for asset, v in config.balances.items()}
        self.reserved: dict[str, Decimal] = {}
        self._order_seq = 0
        self._trade_seq = 0
        self._client_ids: dict[tuple[str, str], set[str]] = {}

    # -- settings --------------------------------------------------------------------------
    @property
    def maker_fee(self) -> Decimal:
        return self.config.maker_fee

    @property
    def taker_fee(self) -> Decimal:
        return self.config.taker_fee

    @property
    def slippage_bps(self) -> Decimal:
        return self.config.slippage_bps

    @property
    def participation(self) -> Decimal:
        return self.config.participation

    def update_config(self, config: PaperAccount) -> None:
        """Apply new fees, slippage and participation (config reload). Live balances are kept.

        Open orders keep the reservation they were accepted with; fills after the change use
        the new rates.
        """
        self.config = config

    # -- balances --------------------------------------------------------------------------
    def total(self, asset: str) -> Decimal:
        return self.balances.get(asset, ZERO)

    def reserved_of(self, asset: str) -> Decimal:
        return self.reserved.get(asset, ZERO)

    def free(self, asset: str) -> Decimal:
        return self.total(asset) - self.reserved_of(asset)

    def reserve(self, asset: str, amount: Decimal) -> None:
        """Hold ``amount`` of ``asset`` for an open order. Raises InsufficientBalance."""
        free = self.free(asset)
        if amount > free:
            raise InsufficientBalance(f"need {amount} {asset}, free {free} {asset}")
        self.reserved[asset] = self.reserved_of(asset) + amount

    def release(self, asset: str, amount: Decimal) -> None:
        """Give back (part of) a reservation; never below zero."""
        if amount:
            self.reserved[asset] = max(ZERO, self.reserved_of(asset) - amount)

    def credit(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.total(asset) + amount

    def debit(self, asset: str, amount: Decimal) -> None:
        """Take ``amount`` out of ``asset``'s free balance. Raises InsufficientBalance."""
        free = self.free(asset)
        if amount > free:
            raise InsufficientBalance(f"debit {amount} {asset}, free {free} {asset}")
        self.balances[asset] = self.total(asset) - amount

    def snapshot(self) -> dict[str, tuple[Decimal, Decimal]]:
        """``{asset: (total, reserved)}`` for status pages and tests."""
        assets = sorted(self.balances.keys() | self.reserved.keys())
        return {a: (self.total(a), self.reserved_of(a)) for a in assets}

    # -- venue ids -------------------------------------------------------------------------
    def next_venue_order_id(self) -> str:
        """Sequential order ids, unique across every symbol of the account: "1", "2", ..."""
        self._order_seq += 1
        return str(self._order_seq)

    def seen_client_ids(self, exchange: str, symbol: str) -> set[str]:
        """Every client order id submitted for (exchange, symbol) since start; outlives engine restarts."""
        return self._client_ids.setdefault((exchange, symbol), set())

    def next_trade_id(self) -> str:
        """Sequential execution ids, unique across every symbol of the account: "T1", "T2", ..."""
        self._trade_seq += 1
        return f"T{self._trade_seq}"
