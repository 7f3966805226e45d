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

The order actor and the journal's fold track a list as one order under the list's id: each leg's
events move it (:func:`leg_of`), a leg's end is noted and the list ends as :func:`list_end` says:
refused as a whole (a leg rejected before the venue took the list), else once both legs have
ended (one leg filling or triggering expires the other; a cancel of the list cancels both).

Leg ids are the list id plus ``-sl`` (the stop-loss leg) or ``-tp`` (the take-profit leg):
35 characters for a ``td-`` list id, within Binance's 36.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import msgspec

from actors.messages import SubmitOrder

__all__ = ["LEG_SUFFIXES", "Leg", "leg_ids", "leg_of", "list_end", "list_of_leg", "oco_legs"]

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


def leg_of(client_order_id: str, lists: Mapping[str, object]) -> str | None:
    """The id of the list in ``lists`` (open or ended orders by client id) whose leg is
    ``client_order_id``, else None (not a leg, or a leg of a list we do not know)."""
    found = list_of_leg(client_order_id)
    return found[0] if found is not None and found[0] in lists else None


def list_end(status: str, legs_ended: set[str], leg: str, ended_as: str) -> str | None:
    """The leg ``leg`` of a list in state ``status`` ended (``ended_as``: "rejected", "canceled" or
    "expired"; it is added to ``legs_ended``): the list's end status now, or None while the other
    leg still works.  A list is refused as a whole: a leg rejected before the venue accepted the
    list rejects it.  Otherwise it ends when both legs have ended, as the last one did."""
    legs_ended.add(leg)
    if ended_as == "rejected" and status in ("submitted", "unknown"):
        return "rejected"
    return ended_as if len(legs_ended) >= len(LEG_SUFFIXES) else None


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
