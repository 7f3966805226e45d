"""Shared per-symbol state that actors of one group read without a message hop.

The market-feed actor writes the last price; the order actor writes position and
open-order exposure; risk and the strategy read them.  All actors of a group run on one
event loop thread, so plain attributes are consistent between awaits.  Only the
owning actor writes each field (noted per field).
"""

from __future__ import annotations

from decimal import Decimal


class SymbolState:
    """What risk and strategy need to know right now about one (exchange, symbol)."""

    __slots__ = (
        "account",
        "avg_price",
        "exchange",
        "last_price",
        "last_recv_ns",
        "last_ts_event",
        "open_orders",
        "pending_exposure",
        "position",
        "realized_pnl",
        "symbol",
    )

    def __init__(self, exchange: str, symbol: str, account: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.account = account
        # written by market-feed
        self.last_price: Decimal | None = None
        self.last_ts_event = 0
        self.last_recv_ns = 0
        # written by order (and risk reserves open_orders/pending_exposure at approval)
        self.position = Decimal(0)
        self.avg_price = Decimal(0)
        self.realized_pnl = Decimal(0)
        self.open_orders = 0
        self.pending_exposure = Decimal(0)
