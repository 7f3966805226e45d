"""A stop-loss and a take-profit as one Binance OCO list (``POST /api/v3/orderList/oco``).

Handles no messages: :func:`oco_request` turns the two legs (our ``SubmitOrder`` s, already
mapped and filtered as Binance orders) into the list request; the execution actor
(:meth:`adapters.binance.execution.BinanceExecution.submit_oco`) sends it and publishes each leg's
events under the leg's own client order id.  A sell list: the take-profit above the market as a
``LIMIT_MAKER``, the stop-loss below as ``STOP_LOSS`` (``STOP_LOSS_LIMIT`` for a stop_limit); a
buy list the other way round.  The legs' ids come from the list's
(:func:`actors.oco.leg_ids`), so a re-sent list is a duplicate at the venue.
"""

from __future__ import annotations

import msgspec

from actors.messages import SubmitOrder
from adapters.binance.filters import BinanceNewOrder
from adapters.binance.orders import BinanceNewOco

__all__ = ["oco_request", "take_profit_leg"]


def take_profit_leg(leg: SubmitOrder) -> SubmitOrder:
    """The take-profit leg as it rests in a list: a post-only limit (Binance ``LIMIT_MAKER``)."""
    return msgspec.structs.replace(leg, post_only=True, time_in_force="gtc")


def oco_request(list_cid: str, stop: BinanceNewOrder, take_profit: BinanceNewOrder) -> BinanceNewOco:
    """The list request for the prepared legs ``stop`` and ``take_profit`` (same side and quantity)."""
    above, below = (take_profit, stop) if stop.side == "SELL" else (stop, take_profit)
    return BinanceNewOco(
        symbol=stop.symbol,
        side=stop.side,
        quantity=stop.quantity,
        listClientOrderId=list_cid,
        aboveType=above.type,
        aboveClientOrderId=above.newClientOrderId,
        abovePrice=above.price,
        aboveStopPrice=above.stopPrice,
        aboveTimeInForce=above.timeInForce,
        belowType=below.type,
        belowClientOrderId=below.newClientOrderId,
        belowPrice=below.price,
        belowStopPrice=below.stopPrice,
        belowTimeInForce=below.timeInForce,
    )
