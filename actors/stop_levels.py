"""The stop-monitor's bookkeeping: an entry's exit plan, the armed stop and its native stop order.

:class:`ExitPlan` is what an entry intent asks for (stop-loss, take-profit, trailing
distance/percent/activation/step, exit time).  :class:`ArmedStop` is the one stop a
position has: its levels, the trail (best price since armed), the exit it sent and its
native stop.  :meth:`ArmedStop.check` (which level a price range touches) and
:meth:`ArmedStop.trail` (move the trailing stop for a price range) are the arithmetic of the
"Levels" and "Trailing stop" rules in :mod:`actors.stop_monitor`; they publish nothing.
:class:`NativeStop` is the order kept at the venue for an armed stop: a stop_market at the
stop-loss, a take-profit limit, or both as one OCO list (see :mod:`actors.native_stops`).
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

import msgspec

from actors.messages import OrderIntent, Side, Stamp
from actors.order_ids import client_order_id

__all__ = [
    "EMPTY_PLAN",
    "ArmedStop",
    "ExitPlan",
    "NativeKind",
    "NativeState",
    "NativeStop",
    "Trigger",
    "auto_trail_step",
]

Trigger = Literal["stop_loss", "take_profit", "trailing", "time"]
NativeState = Literal["pending", "working", "canceling", "cancel_failed", "filled"]
NativeKind = Literal["stop", "take_profit", "oco"]
HUNDRED = Decimal(100)
AUTO_TRAIL_TICKS = 10  # risk.trail_step unset: a trailing stop moves by at least 10 ticks ...
AUTO_TRAIL_PCT = Decimal("0.1")  # ... and at least 0.1 % of its level


def auto_trail_step(tick: Decimal | None, level: Decimal | None) -> Decimal:
    """The trail step when ``risk.trail_step`` is unset: max(10 ticks, 0.1 % of the stop level)."""
    ticks = tick * AUTO_TRAIL_TICKS if tick is not None and tick > 0 else Decimal(0)
    pct = level * AUTO_TRAIL_PCT / HUNDRED if level is not None and level > 0 else Decimal(0)
    return max(ticks, pct)


class ExitPlan(msgspec.Struct, frozen=True):
    """What an entry asks the monitor to do once it fills."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_distance: Decimal | None = None
    trailing_pct: Decimal | None = None
    trailing_activation: Decimal | None = None
    trailing_step: Decimal | None = None
    exit_at_ns: int | None = None

    @classmethod
    def of(cls, intent: OrderIntent) -> ExitPlan | None:
        plan = cls(
            intent.stop_loss,
            intent.take_profit,
            intent.trailing_distance,
            intent.trailing_pct,
            intent.trailing_activation,
            intent.trailing_step,
            intent.exit_at_ns,
        )
        return None if plan == EMPTY_PLAN else plan

    @property
    def trails(self) -> bool:
        return self.trailing_distance is not None or self.trailing_pct is not None


EMPTY_PLAN = ExitPlan()


class NativeStop:
    """The order the monitor keeps at the venue for its armed stop."""

    __slots__ = (
        "after",
        "cid",
        "intent_id",
        "kind",
        "legs_ended",
        "level",
        "quantity",
        "replaces",
        "state",
        "take_profit",
        "trigger",
    )

    def __init__(
        self,
        intent_id: str,
        level: Decimal,
        quantity: Decimal,
        trigger: Trigger,
        replaces: str = "",
        kind: NativeKind = "stop",
        take_profit: Decimal | None = None,
    ) -> None:
        self.intent_id = intent_id
        # "stop": a stop_market at the stop-loss; "take_profit": a stop_limit at the take-profit;
        # "oco": the stop_market at ``level`` and a take-profit limit at ``take_profit``, one list
        self.kind: NativeKind = kind
        self.take_profit = take_profit
        self.legs_ended: set[str] = set()  # an OCO list's legs the venue has ended
        self.replaces = replaces  # the client id of the stop order this one cancel-replaces
        self.cid = client_order_id(intent_id)
        self.level = level
        self.quantity = quantity
        self.trigger: Trigger = trigger
        self.state: NativeState = "pending"
        # A take-profit/time exit waiting for this order's cancel: (trigger, level, stamp).
        self.after: tuple[Trigger, Decimal, Stamp] | None = None


class ArmedStop:
    """The one stop of a position: its levels, the trail, the exit it sent and its native stop."""

    __slots__ = (
        "best",
        "exit_cid",
        "exit_done",
        "exit_side",
        "native",
        "native_off",
        "native_prev",
        "oco_off",
        "plan",
        "plan_cid",
        "quantity",
        "stop_id",
        "stop_price",
        "take_profit",
        "trailed",
        "triggered",
    )

    def __init__(self, stop_id: str, exit_side: Side, quantity: Decimal, plan: ExitPlan) -> None:
        self.stop_id = stop_id
        self.exit_side: Side = exit_side
        self.quantity = quantity
        self.triggered = False
        self.exit_cid = ""  # client order id of the exit this stop sent, while it is working
        self.exit_done = False  # that exit filled completely (the position may still be open)
        self.native: NativeStop | None = None
        # While a replacement (native, pending) is on its way: the stop order it replaces, which
        # rests at the venue until the replace's cancel half is confirmed.
        self.native_prev: NativeStop | None = None
        self.native_off = False  # the venue/risk refused a native stop: watch prices instead
        self.oco_off = False  # the venue/risk refused an OCO list: a plain native stop instead
        self.set_plan(plan, "")

    def set_plan(self, plan: ExitPlan, cid: str) -> None:
        self.plan = plan
        self.plan_cid = cid  # the entry whose plan this is: its further fills keep the trail
        self.stop_price = plan.stop_loss
        self.take_profit = plan.take_profit
        self.best: Decimal | None = None  # best price since armed (trailing)
        self.trailed = False  # stop_price came from the trail

    @property
    def long(self) -> bool:
        return self.exit_side == "sell"

    def check(
        self, low: Decimal, high: Decimal, watch_stop: bool = True, watch_tp: bool = True
    ) -> tuple[Trigger, Decimal] | None:
        """Which level a price range [low, high] touches; stop-loss first (a level resting at the
        venue as a native order is not watched: ``watch_stop`` / ``watch_tp`` False)."""
        sl, tp = (self.stop_price if watch_stop else None), (self.take_profit if watch_tp else None)
        stop_trigger: Trigger = "trailing" if self.trailed else "stop_loss"
        if self.long:
            if sl is not None and low <= sl:
                return stop_trigger, sl
            if tp is not None and high >= tp:
                return "take_profit", tp
        else:
            if sl is not None and high >= sl:
                return stop_trigger, sl
            if tp is not None and low <= tp:
                return "take_profit", tp
        return None

    def trail(self, low: Decimal, high: Decimal, step: Decimal, tick: Decimal | None) -> bool:
        """Move the trailing stop for the price range [low, high]; True when it moved."""
        plan = self.plan
        if not plan.trails:
            return False
        long = self.long
        extreme = high if long else low
        best = self.best
        if best is None or (extreme > best if long else extreme < best):
            best = self.best = extreme
        act = plan.trailing_activation
        if act is not None and (best < act if long else best > act):
            return False
        if plan.trailing_distance is not None:
            dist = plan.trailing_distance
            cand = best - dist if long else best + dist
        else:
            pct = plan.trailing_pct or Decimal(0)
            cand = best * (HUNDRED - pct) / HUNDRED if long else best * (HUNDRED + pct) / HUNDRED
        if tick is not None and tick > 0:
            cand = (cand / tick).to_integral_value(ROUND_FLOOR if long else ROUND_CEILING) * tick
        if cand <= 0:
            return False
        cur = self.stop_price
        if cur is not None:
            gain = cand - cur if long else cur - cand
            if gain <= 0 or gain < step:
                return False
        self.stop_price = cand
        self.trailed = True
        return True
