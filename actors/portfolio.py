"""Portfolio actor: the ledger of one account across all its symbol groups.

Takes: OrderFilled, PositionChanged and BalancesChanged from every group trading on the account;
LedgerAdjusted from the account's balance check (:mod:`daemon.balance_check`).
Emits: nothing; risk and /status read it.

Balances start from the configured amounts and move with every fill (base asset by the
fill quantity, quote asset by notional and fee), in exact decimals.  A venue that reports
balances (BalancesChanged: Binance's outboundAccountPosition) is the truth: each asset it
reports is set to its free + locked amount (``venue_balances`` counts them).  Realized PnL is
kept per symbol from the order actors' PositionChanged messages.  Fills are keyed by
(symbol, trade id), so a fill delivered twice is counted once.

``ledger`` (:class:`actors.balance_ledger.BalanceLedger`) is what the account should hold from
the daemon's own fills alone, from a baseline the venue gave: the balance check compares it with
the venue.  LedgerAdjusted reaches it through this inbox, so it sees baselines, re-bases and
fills in the order the journal has them.
"""

from __future__ import annotations

from decimal import Decimal

from actors.balance_ledger import BalanceLedger
from actors.channels import Channel, Router
from actors.messages import BalancesChanged, LedgerAdjusted, Message, OrderFilled, PositionChanged
from actors.runtime import Actor

MAX_SEEN = 100_000


class Portfolio(Actor):
    kind = "portfolio"

    def __init__(
        self,
        account: str,
        router: Router,
        inbox: Channel[Message],
        balances: dict[str, Decimal],
        assets: dict[str, tuple[str, str]],
    ) -> None:
        super().__init__("*", account, router, inbox)
        self.account = account
        self.balances: dict[str, Decimal] = dict(balances)
        self.assets = dict(assets)  # symbol -> (base, quote)
        self.realized: dict[str, Decimal] = {}
        self.positions: dict[str, Decimal] = {}
        self.fees: dict[str, Decimal] = {}
        self.fills = 0
        self.duplicates = 0
        self.venue_balances = 0
        self._seen: dict[tuple[str, str], None] = {}
        self.ledger = BalanceLedger()

    @property
    def name(self) -> str:
        return f"portfolio:{self.account}"

    def set_assets(self, symbol: str, base: str, quote: str) -> None:
        self.assets[symbol] = (base, quote)

    async def handle(self, msg: Message) -> None:
        match msg:
            case OrderFilled():
                self._apply_fill(msg)
            case BalancesChanged():
                if msg.account == self.account:
                    self.set_venue_balances(msg)
            case LedgerAdjusted():
                if msg.account == self.account:
                    self.ledger.apply(msg)
            case PositionChanged():
                self.realized[msg.symbol] = msg.realized_pnl
                self.positions[msg.symbol] = msg.quantity
            case _:
                self.log.warning("ignored unexpected message kind %s", type(msg).__name__)

    def set_venue_balances(self, msg: BalancesChanged) -> None:
        """The venue's balances (its account stream, or GET /api/v3/account at start) are the truth."""
        for asset in msg.free.keys() | msg.locked.keys():
            self.balances[asset] = msg.free.get(asset, Decimal(0)) + msg.locked.get(asset, Decimal(0))
        self.venue_balances += 1

    def _apply_fill(self, f: OrderFilled) -> None:
        key = (f.symbol, f.trade_id or f"{f.client_order_id}:{f.cum_qty}")
        if key in self._seen:
            self.duplicates += 1
            return
        self._seen[key] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.pop(next(iter(self._seen)))
        base, quote = self.assets.get(f.symbol, ("?", "?"))
        self.ledger.apply_fill(f, base, quote)
        notional = f.last_qty * f.last_price
        sign = 1 if f.side == "buy" else -1
        b = self.balances
        b[base] = b.get(base, Decimal(0)) + sign * f.last_qty
        b[quote] = b.get(quote, Decimal(0)) - sign * notional
        b[f.fee_asset] = b.get(f.fee_asset, Decimal(0)) - f.fee
        self.fees[f.fee_asset] = self.fees.get(f.fee_asset, Decimal(0)) + f.fee
        self.fills += 1

    def snapshot(self) -> dict[str, object]:
        return {
            "balances": {k: str(v) for k, v in sorted(self.balances.items())},
            "realized_pnl": {k: str(v) for k, v in sorted(self.realized.items())},
            "positions": {k: str(v) for k, v in sorted(self.positions.items())},
            "fees": {k: str(v) for k, v in sorted(self.fees.items())},
            "fills": self.fills,
            "duplicate_fills": self.duplicates,
            "venue_balance_reports": self.venue_balances,
        }
