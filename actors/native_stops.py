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
  falls back to synthetic watching for the rest of its life;
- when the position closes or flips, a resting native stop is canceled (one still on its way
  is canceled as soon as the venue accepts it).

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
from actors.params import RiskLimits
from actors.stop_levels import ArmedStop, NativeKind, NativeState, NativeStop, Trigger

__all__ = ["NativeStops"]


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
    stop: ArmedStop | None
    triggered: int
    replacements: int
    _orphans: set[str]
    _native_seq: int
    _resume_native: tuple[OrderIntent, NativeState] | None
    _send_exit: Callable[[ArmedStop, Trigger, Decimal, Stamp], Awaitable[None]]

    @property
    def native_enabled(self) -> bool:
        return (self.limits.native_stops or self.limits.native_take_profit) and self.venue_stops

    def _native_target(self, stop: ArmedStop) -> tuple[NativeKind, Decimal] | None:
        """What rests at the venue for ``stop``: its stop-loss (``native_stops``), else its
        take-profit (``native_take_profit``), else nothing."""
        if self.limits.native_stops and stop.stop_price is not None:
            return "stop", stop.stop_price
        if self.limits.native_take_profit and stop.take_profit is not None:
            return "take_profit", stop.take_profit
        return None

    @staticmethod
    def _level_of(stop: ArmedStop, n: NativeStop) -> Decimal | None:
        """The level the native order ``n`` should rest at now."""
        return stop.stop_price if n.kind == "stop" else stop.take_profit

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
            **fields,
        )

    def _take_back_native(self, stop: ArmedStop) -> None:
        """After a restart: the stop order still open at the venue becomes the new stop's native stop."""
        native, self._resume_native = self._resume_native, None
        if native is not None and native[0].side == stop.exit_side and native[0].stop_price is not None:
            order, state = native
            assert order.stop_price is not None
            if order.order_type == "stop_limit":
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
        cid = msg.client_order_id
        if cid in self._orphans:
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
        elif n.level != self._level_of(stop, n) or n.quantity != stop.quantity:
            await self._replace_native(stop, n, stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv))

    async def _on_native_refused(self, stop: ArmedStop, n: NativeStop, msg: RiskRejected) -> None:
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
            self.log.info("native %s stop %s filled at %s", n.trigger, stop.stop_id, msg.last_price)
            await self.router.publish(
                StopTriggered(
                    stop_id=stop.stop_id,
                    trigger=n.trigger,
                    price=n.level,
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
        n = NativeStop(intent_id, level, stop.quantity, trigger, kind=kind)
        stop.native = n
        self.log.info("native %s %s: %s %s at %s", trigger, n.cid, stop.exit_side, stop.quantity, level)
        await self.router.publish(self._native_intent(stop, n, fields, f"native {n.trigger} at {level}"))

    async def _amend_native(self, stop: ArmedStop, fields: Stamp) -> None:
        """Bring the venue's stop in line with the armed stop's level and size."""
        if stop.triggered:
            return
        n = stop.native
        if n is None:
            await self._place_native(stop, fields)
        elif n.state == "working" and (n.level != self._level_of(stop, n) or n.quantity != stop.quantity):
            await self._replace_native(stop, n, fields)
        # pending: checked when accepted; canceling: the replacement takes the latest level and size

    async def _replace_native(self, stop: ArmedStop, n: NativeStop, fields: Stamp) -> None:
        """Move the resting stop ``n`` to the armed stop's level and size in one cancel-replace."""
        level = self._level_of(stop, n)
        if level is None:
            await self._cancel_native(n, fields)
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

    async def _cancel_native(self, n: NativeStop, cause: Message | Stamp) -> None:
        n.state = "canceling"
        await self._cancel(n.cid, cause)

    async def _cancel(self, cid: str, cause: Message | Stamp) -> None:
        if isinstance(cause, Message):
            fields = stamp(self.exchange, self.symbol, cause.ts_event, cause.ts_recv)
        else:
            fields = cause
        await self.router.publish(CancelOrder(client_order_id=cid, **fields))
