"""Native venue stops of the stop-monitor: its stop-loss kept at the venue as a stop_market order.

Stops are synthetic by default: the monitor watches trades (or bar high/low) itself.  With
``risk.native_stops = true`` and a venue that supports stop orders (``venue_stops``), the
stop-loss rests at the venue as a reduce-only ``stop_market`` order instead:

- it is placed (through risk, like any intent) when the stop arms, and replaced when the
  trail moves the stop by at least the step or the position size changes: one reduce-only
  stop_market intent with ``replaces`` = the resting order, which the venue cancel-replaces in
  one request (Binance ``order/cancelReplace``, STOP_ON_FAILURE; the paper venue atomically),
  so at no moment is the position without a resting stop — never more than one replacement in
  flight; a move meanwhile is applied once the replacement is accepted, with the latest level
  and size;
- a replacement refused (by risk, or the venue's cancel half failed) leaves the old stop
  resting and in force (a fill of it is the exit, as always); if the venue canceled the old
  one but refused the new one (Binance -2021), a new stop is placed at once;
- while it exists the monitor does not watch the stop level; take-profit and time exits are
  still watched, and first cancel the resting stop, sending their market exit only once the
  cancel is confirmed;
- a cancel the venue refuses ("cancel rejected: ...") means the stop has filled or is
  filling: no replacement and no take-profit/time exit is sent, and its fills are the exit
  (StopTriggered is published at its first fill);
- if risk or the venue refuses the stop order, or the venue ends it on its own, the stop
  falls back to synthetic watching for the rest of its life -- except a refusal for want of a
  price (risk's ``no_price``: a restart re-arms before prices flow): the levels are watched and
  the order placed on the next price;
- when the position closes or flips, a resting native stop is canceled (one still on its way
  is canceled as soon as the venue accepts it).

With both ``risk.native_stops`` and ``risk.native_take_profit`` on, a plan with a stop-loss and a
take-profit, and a venue that takes OCO lists for the symbol (``venue_oco``: the paper venue
always, Binance where exchangeInfo says ``ocoAllowed``), both rest as ONE OCO list instead: one
reduce-only stop_market intent carrying ``oco_take_profit`` (one exit for risk and the order
actor; its legs' events are mapped to it by :func:`actors.oco.list_of_leg`):

- the venue guards the position once it has accepted the list; until then, and from the moment
  its cancel is sent, the monitor watches both levels itself (a hit there is the exit, sent once
  the list is gone);
- one leg filling or triggering expires the other: its fills are the exit (StopTriggered names the
  leg: take_profit, or stop_loss / trailing), and no exit of the monitor's is sent;
- moving it (a trail move by at least the step, a resize) cancels the list and rests a new one
  once the cancel is confirmed -- counted in ``replacements`` as a cancel-replace is; a list that
  fired before its cancel landed ("cancel rejected") is the exit, nothing new is placed;
- a list the venue or risk refuses (both legs rejected) falls back to a plain native stop-loss
  with the take-profit watched, for the rest of the stop's life: logged and counted
  (``oco_refused``, ``tradingd_oco_refused_total``).

:class:`NativeStops` is mixed into :class:`~actors.stop_monitor.StopMonitor`: the monitor's
order-event handlers hand the events of its native stop order to the ``_on_native_*``
methods here; the order's state lives on the armed stop's
:class:`~actors.stop_levels.NativeStop`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

from actors.channels import Router
from actors.messages import (
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    RiskRejected,
    Stamp,
    StopTriggered,
    stamp,
)
from actors.oco import list_of_leg
from actors.params import RiskLimits
from actors.stop_levels import ArmedStop, NativeKind, NativeState, NativeStop, Trigger

__all__ = ["NativeStops"]

RETRY_RULES = frozenset({"no_price"})  # risk refusals that pass: the order is placed on the next price


class NativeStops:
    """The native-stop half of :class:`~actors.stop_monitor.StopMonitor` (a mixin).

    What it uses of the monitor is declared here.
    """

    exchange: str
    symbol: str
    router: Router
    log: logging.LoggerAdapter[logging.Logger]
    limits: RiskLimits
    venue_stops: bool
    venue_oco: Callable[[], bool]
    stop: ArmedStop | None
    triggered: int
    replacements: int
    oco_refused: int
    _orphans: set[str]
    _native_seq: int
    _resume_native: tuple[OrderIntent, NativeState] | None
    _send_exit: Callable[[ArmedStop, Trigger, Decimal, Stamp], Awaitable[None]]

    @property
    def native_enabled(self) -> bool:
        return (self.limits.native_stops or self.limits.native_take_profit) and self.venue_stops

    def _native_target(self, stop: ArmedStop) -> tuple[NativeKind, Decimal] | None:
        """What rests at the venue for ``stop``: its stop-loss and take-profit as one OCO list (both
        native, the venue takes lists), else its stop-loss (``native_stops``), else its take-profit
        (``native_take_profit``), else nothing."""
        if self.limits.native_stops and stop.stop_price is not None:
            both = self.limits.native_take_profit and stop.take_profit is not None
            if both and not stop.oco_off and self.venue_oco():
                return "oco", stop.stop_price
            return "stop", stop.stop_price
        if self.limits.native_take_profit and stop.take_profit is not None:
            return "take_profit", stop.take_profit
        return None

    @staticmethod
    def _level_of(stop: ArmedStop, n: NativeStop) -> Decimal | None:
        """The level the native order ``n`` should rest at now."""
        if n.kind == "oco" and stop.take_profit is None:
            return None  # a list without its take-profit: canceled, a plain stop follows
        return stop.take_profit if n.kind == "take_profit" else stop.stop_price

    def _native_stale(self, stop: ArmedStop, n: NativeStop) -> bool:
        """The order ``n`` no longer rests where the armed stop is (level, take-profit, size)."""
        tp_moved = n.kind == "oco" and n.take_profit != stop.take_profit
        return n.level != self._level_of(stop, n) or n.quantity != stop.quantity or tp_moved

    @staticmethod
    def _watched(n: NativeStop | None) -> tuple[bool, bool]:
        """Whether the monitor watches the stop-loss and the take-profit itself, given ``n``: what
        does not rest at the venue, and both levels of an OCO list the venue has not accepted yet
        or whose cancel is on its way (a list being moved: the position is guarded meanwhile)."""
        if n is None:
            return True, True
        if n.kind == "oco":
            unguarded = n.state in ("pending", "canceling")
            return unguarded, unguarded
        return n.kind != "stop", n.kind != "take_profit"

    def _native_intent(self, stop: ArmedStop, n: NativeStop, fields: Stamp, reason: str) -> OrderIntent:
        """The reduce-only order for ``n``: a stop_market at the stop, or a stop_limit at the take-profit
        (Binance TAKE_PROFIT_LIMIT: it triggers at the level and sells no lower / buys no higher)."""
        take_profit = n.kind == "take_profit"
        return OrderIntent(
            intent_id=n.intent_id,
            source="stop-monitor",
            side=stop.exit_side,
            order_type="stop_limit" if take_profit else "stop_market",
            quantity=n.quantity,
            stop_price=n.level,
            price=n.level if take_profit else None,
            reduce_only=True,
            reason=reason,
            replaces=n.replaces,
            oco_take_profit=n.take_profit if n.kind == "oco" else None,
            **fields,
        )

    def _take_back_native(self, stop: ArmedStop) -> None:
        """After a restart: the stop order still open at the venue becomes the new stop's native stop."""
        native, self._resume_native = self._resume_native, None
        if native is not None and native[0].side == stop.exit_side and native[0].stop_price is not None:
            order, state = native
            assert order.stop_price is not None
            if order.oco_take_profit is not None:
                trigger: Trigger = "trailing" if stop.trailed else "stop_loss"
                n = NativeStop(
                    order.intent_id,
                    order.stop_price,
                    order.quantity,
                    trigger,
                    kind="oco",
                    take_profit=order.oco_take_profit,
                )
            elif order.order_type == "stop_limit":
                n = NativeStop(
                    order.intent_id, order.stop_price, order.quantity, "take_profit", kind="take_profit"
                )
            else:
                n = NativeStop(
                    order.intent_id,
                    order.stop_price,
                    order.quantity,
                    "trailing" if stop.trailed else "stop_loss",
                )
            n.state = state
            stop.native = n
            self.log.info("native stop %s (%s at %s) taken back after the restart", n.cid, state, n.level)

    async def _drop_native(self, n: NativeStop | None, cause: Message) -> None:
        """The stop disarmed: cancel its native stop order (and the one a replacement replaces)."""
        if n is None:
            return
        if n.state == "pending":
            self._orphans.add(n.cid)  # cancel it as soon as the venue has it
            if len(self._orphans) > 1000:
                self._orphans.pop()
        elif n.state == "working":
            await self._cancel(n.cid, cause)

    # --- order events -----------------------------------------------------------------------

    async def _on_accepted(self, msg: OrderAccepted) -> None:
        leg = list_of_leg(msg.client_order_id)
        cid = msg.client_order_id if leg is None else leg[0]  # a leg's acceptance is its list's
        if cid in self._orphans:
            if leg is not None:
                self._orphans.discard(cid)  # one cancel for the list, not one per leg
            await self._cancel(cid, msg)
            return
        stop = self.stop
        n = stop.native if stop is not None else None
        if stop is None or n is None or n.cid != cid or n.state != "pending":
            return
        n.state = "working"
        if n.replaces:
            stop.native_prev = None  # the replace went through: the old stop is canceled
        if n.after is not None:
            await self._cancel_native(n, msg)
        elif self._native_stale(stop, n):
            await self._replace_native(stop, n, stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv))

    async def _on_native_refused(self, stop: ArmedStop, n: NativeStop, msg: RiskRejected) -> None:
        if msg.rule in RETRY_RULES and not n.replaces:
            # Nothing wrong with the order: no price yet (a restart re-arms before prices flow).
            self.log.warning(
                "native %s for %s refused by risk (%s): watching prices, placed again on the next one",
                n.kind,
                stop.stop_id,
                msg.reason,
            )
            stop.native = None
            if n.after is not None:
                await self._send_exit(stop, *n.after)
            return
        if n.kind == "oco":
            await self._oco_refused(stop, n, f"risk: {msg.reason}", msg)
            return
        if n.replaces:
            await self._replacement_failed(stop, n, f"risk: {msg.reason}", msg)
            return
        self.log.warning(
            "native stop for %s refused by risk (%s): watching prices instead", stop.stop_id, msg.reason
        )
        stop.native, stop.native_off = None, True
        if n.after is not None:
            await self._send_exit(stop, *n.after)

    async def _on_native_filled(self, stop: ArmedStop, n: NativeStop, msg: OrderFilled) -> None:
        if n.state != "filled":
            # The venue's stop fired: its fills are the exit (whatever we asked of it meanwhile).
            if n.after is not None:
                self.log.info("native stop %s filled first: %s exit not sent", n.cid, n.after[0])
            n.state, n.after = "filled", None
            stop.triggered, stop.exit_cid, stop.exit_done = True, n.cid, False
            self.triggered += 1
            fields = stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv)
            trigger, level = n.trigger, n.level
            leg = list_of_leg(msg.client_order_id)
            if leg is not None and leg[1] == "tp" and n.take_profit is not None:
                trigger, level = "take_profit", n.take_profit  # the list's take-profit leg filled
            self.log.info(
                "native %s %s of %s filled at %s", trigger, msg.client_order_id, stop.stop_id, msg.last_price
            )
            await self.router.publish(
                StopTriggered(
                    stop_id=stop.stop_id,
                    trigger=trigger,
                    price=level,
                    intent_id=n.intent_id,
                    **fields,
                )
            )
        if msg.leaves_qty == 0:
            stop.exit_done = True

    async def _on_prev_filled(self, stop: ArmedStop, prev: NativeStop, msg: OrderFilled) -> None:
        """The stop being replaced fired first: it is the native stop again, its fills the exit."""
        n = stop.native
        stop.native, stop.native_prev = prev, None
        if n is not None:
            prev.after = prev.after or n.after
            if n.state == "pending":
                self._orphans.add(n.cid)  # refused by the venue (its cancel half failed), or canceled
            elif n.state == "working":
                await self._cancel(n.cid, msg)
        await self._on_native_filled(stop, prev, msg)

    def _on_prev_ended(
        self, stop: ArmedStop, prev: NativeStop, msg: OrderCanceled | OrderExpired | OrderRejected
    ) -> None:
        """The stop being replaced ended: the replace's cancel half (the replacement follows)."""
        stop.native_prev = None
        self.log.info("native stop %s %s: replaced", prev.cid, type(msg).__name__)

    async def _replacement_failed(self, stop: ArmedStop, n: NativeStop, why: str, cause: Message) -> None:
        """A replacement did not happen: the old stop stands, or (canceled after all) a new one goes out."""
        prev, stop.native_prev = stop.native_prev, None
        fields = stamp(self.exchange, self.symbol, cause.ts_event, cause.ts_recv)
        if prev is not None:
            stop.native, prev.after = prev, n.after
            self.log.warning(
                "replacement %s of native stop %s refused (%s): it stays at %s",
                n.cid,
                prev.cid,
                why,
                prev.level,
            )
            if prev.after is not None and prev.state == "working":
                await self._cancel_native(prev, fields)
            return
        stop.native = None
        self.log.error(
            "replacement %s refused (%s) after its old stop was canceled: placing a new stop at once",
            n.cid,
            why,
        )
        if n.after is not None:
            await self._send_exit(stop, *n.after)
        elif not stop.triggered:
            await self._place_native(stop, fields)

    async def _oco_leg_ended(
        self, stop: ArmedStop, n: NativeStop, msg: OrderCanceled | OrderExpired | OrderRejected
    ) -> bool:
        """A leg of the OCO list ``n`` ended: True once the list has (both legs), else handled here.

        A leg rejected before the venue took the list: the list is refused (a plain native stop
        follows).  One leg expiring while the other works: the other filled or triggered at the
        venue, its fills are the exit (no exit of ours, no new list) -- as a refused cancel says."""
        n.legs_ended.add(msg.client_order_id)
        if isinstance(msg, OrderRejected) and n.state == "pending":
            await self._oco_refused(stop, n, msg.reason, msg)
            return False
        if len(n.legs_ended) >= 2:
            return True
        if isinstance(msg, OrderExpired) and n.state != "filled":
            if n.after is not None:
                self.log.info("OCO list %s fired first: %s exit not sent", n.cid, n.after[0])
            self.log.info("OCO list %s: leg %s expired, the other leg fires", n.cid, msg.client_order_id)
            n.state, n.after = "cancel_failed", None
            stop.triggered = True
        return False

    async def _oco_refused(self, stop: ArmedStop, n: NativeStop, why: str, cause: Message) -> None:
        """The OCO list was refused: a plain native stop-loss (the take-profit watched) from now on."""
        self.oco_refused += 1
        stop.native, stop.oco_off = None, True
        self.log.warning(
            "OCO list %s for %s refused (%s): falling back to a native stop-loss, the take-profit watched",
            n.cid,
            stop.stop_id,
            why,
        )
        if n.after is not None:
            await self._send_exit(stop, *n.after)
        elif not stop.triggered:
            await self._place_native(stop, stamp(self.exchange, self.symbol, cause.ts_event, cause.ts_recv))

    async def _on_native_ended(
        self,
        stop: ArmedStop,
        n: NativeStop,
        msg: OrderCanceled | OrderExpired | OrderRejected,
        request_reject: bool,
    ) -> None:
        if n.replaces and n.state == "pending" and isinstance(msg, OrderRejected) and not request_reject:
            await self._replacement_failed(stop, n, msg.reason, msg)
            return
        if request_reject:
            if n.state == "canceling":
                # Too late to cancel: the stop has filled (or is filling). Its fill is the exit.
                reason = msg.reason if isinstance(msg, OrderRejected) else ""
                self.log.warning("cancel of native stop %s refused (%s): awaiting its fill", n.cid, reason)
                if n.after is not None:
                    self.log.info("%s exit not sent: the native stop filled first", n.after[0])
                n.state, n.after = "cancel_failed", None
                stop.triggered = True
            return
        stop.native = None
        if n.state in ("filled", "cancel_failed"):
            # Partly filled (or not filled after all), then ended: look again — the next price
            # re-places the native stop or watches the level.
            stop.triggered, stop.exit_cid = False, ""
            return
        if n.state in ("pending", "working"):
            self.log.warning(
                "native stop %s ended by the venue (%s): %s falls back to watching prices",
                n.cid,
                type(msg).__name__,
                stop.stop_id,
            )
            stop.native_off = True
        after = n.after
        if after is not None:
            await self._send_exit(stop, *after)
        elif not stop.triggered:
            await self._place_native(stop, stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv))

    # --- native stop orders -----------------------------------------------------------------

    async def _place_native(self, stop: ArmedStop, fields: Stamp) -> None:
        """Rest the stop (or the take-profit) at the venue: native mode only, with a level."""
        if stop.native is not None or stop.native_off or stop.triggered or not self.native_enabled:
            return
        target = self._native_target(stop)
        if target is None:
            return
        kind, level = target
        self._native_seq += 1
        intent_id = f"{stop.stop_id}:native:{fields['ts_event']}:{self._native_seq}"
        trigger: Trigger = (
            "take_profit" if kind == "take_profit" else "trailing" if stop.trailed else "stop_loss"
        )
        tp = stop.take_profit if kind == "oco" else None
        n = NativeStop(intent_id, level, stop.quantity, trigger, kind=kind, take_profit=tp)
        stop.native = n
        also = f" + take-profit {tp} (one OCO list)" if tp is not None else ""
        self.log.info(
            "native %s %s: %s %s at %s%s", trigger, n.cid, stop.exit_side, stop.quantity, level, also
        )
        reason = f"native {n.trigger} at {level}{also}"
        await self.router.publish(self._native_intent(stop, n, fields, reason))

    async def _amend_native(self, stop: ArmedStop, fields: Stamp) -> None:
        """Bring the venue's stop in line with the armed stop's level and size."""
        if stop.triggered:
            return
        n = stop.native
        if n is None:
            await self._place_native(stop, fields)
        elif n.state == "working" and self._native_stale(stop, n):
            await self._replace_native(stop, n, fields)
        # pending: checked when accepted; canceling: the replacement takes the latest level and size

    async def _replace_native(self, stop: ArmedStop, n: NativeStop, fields: Stamp) -> None:
        """Move the resting stop ``n`` to the armed stop's level and size in one cancel-replace."""
        level = self._level_of(stop, n)
        if level is None:
            await self._cancel_native(n, fields)
            return
        if n.kind == "oco":
            await self._move_oco(stop, n, fields)
            return
        self._native_seq += 1
        intent_id = f"{stop.stop_id}:native:{fields['ts_event']}:{self._native_seq}"
        trigger: Trigger = (
            n.trigger if n.kind == "take_profit" else "trailing" if stop.trailed else "stop_loss"
        )
        new = NativeStop(intent_id, level, stop.quantity, trigger, n.cid, n.kind)
        stop.native, stop.native_prev = new, n
        self.replacements += 1
        self.log.info(
            "native stop %s replaces %s: %s %s stop_market at %s (was %s)",
            new.cid,
            n.cid,
            stop.exit_side,
            stop.quantity,
            level,
            n.level,
        )
        reason = f"native {new.trigger} at {level}, replacing {n.cid} at {n.level}"
        await self.router.publish(self._native_intent(stop, new, fields, reason))

    async def _move_oco(self, stop: ArmedStop, n: NativeStop, fields: Stamp) -> None:
        """A list is not cancel-replaced: cancel it; the new one rests once the cancel is confirmed
        (:meth:`_on_native_ended` places it), the monitor watching both levels meanwhile."""
        self.replacements += 1
        self.log.info(
            "OCO list %s (sl %s / tp %s, %s) moves to sl %s / tp %s, %s: canceled first, "
            "both levels watched until the new list rests",
            n.cid,
            n.level,
            n.take_profit,
            n.quantity,
            stop.stop_price,
            stop.take_profit,
            stop.quantity,
        )
        await self._cancel_native(n, fields)

    async def _cancel_native(self, n: NativeStop, cause: Message | Stamp) -> None:
        n.state = "canceling"
        await self._cancel(n.cid, cause)

    async def _cancel(self, cid: str, cause: Message | Stamp) -> None:
        if isinstance(cause, Message):
            fields = stamp(self.exchange, self.symbol, cause.ts_event, cause.ts_recv)
        else:
            fields = cause
        await self.router.publish(CancelOrder(client_order_id=cid, **fields))
