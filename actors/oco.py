"""OCO (one-cancels-the-other) order lists: the client ids of a list's two legs.

Handles no messages; used by the venues that rest a stop-loss and a take-profit as one list
(the paper engine's :meth:`~adapters.paper.engine.PaperEngine.submit_oco`; Binance
``POST /api/v3/orderList/oco``).  A list gets its client id from its intent like any order
(:func:`actors.order_ids.client_order_id`); each leg's id is derived from the list's, so a
re-sent list carries the same three ids (the venue refuses it as a duplicate) and an open
order found at the venue after a restart is recognised as a leg of one of our lists by its
id alone (:func:`list_of_leg`), not taken for a foreign order.  A list travels to a venue as one
``SubmitOrder`` (the stop, with ``oco_take_profit`` set, under the list's id); :func:`oco_legs`
splits it into its two legs.

Leg ids are the list id plus ``-sl`` (the stop-loss leg) or ``-tp`` (the take-profit leg):
35 characters for a ``td-`` list id, within Binance's 36.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from actors.messages import SubmitOrder

__all__ = ["LEG_SUFFIXES", "Leg", "leg_ids", "list_of_leg", "oco_legs"]

Leg = Literal["sl", "tp"]
LEG_SUFFIXES: dict[Leg, str] = {"sl": "-sl", "tp": "-tp"}


def leg_ids(list_client_order_id: str) -> tuple[str, str]:
    """The stop-loss and take-profit legs' client order ids of the list ``list_client_order_id``."""
    return list_client_order_id + LEG_SUFFIXES["sl"], list_client_order_id + LEG_SUFFIXES["tp"]


def list_of_leg(client_order_id: str) -> tuple[str, Leg] | None:
    """The list id and leg of ``client_order_id`` when it is an OCO leg's id, else None."""
    for leg, suffix in LEG_SUFFIXES.items():
        if client_order_id.endswith(suffix) and len(client_order_id) > len(suffix):
            return client_order_id[: -len(suffix)], leg
    return None


def oco_legs(cmd: SubmitOrder) -> tuple[SubmitOrder, SubmitOrder]:
    """The stop-loss and take-profit legs of the list ``cmd`` (``oco_take_profit`` set): the stop
    as it is, under its leg id, and a reduce-only GTC limit at ``oco_take_profit`` (same side and
    quantity) under the other."""
    assert cmd.oco_take_profit is not None
    sl, tp = leg_ids(cmd.client_order_id)
    stop = msgspec.structs.replace(cmd, client_order_id=sl, oco_take_profit=None)
    take = msgspec.structs.replace(
        cmd,
        client_order_id=tp,
        order_type="limit",
        price=cmd.oco_take_profit,
        stop_price=None,
        time_in_force="gtc",
        oco_take_profit=None,
    )
    return stop, take
