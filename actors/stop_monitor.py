"""Stop-monitor actor: closes positions at their stop-loss, take-profit, trailing stop or exit time.

Takes: RiskApproved (remembers the exit plan an entry intent carries: stop_loss,
take_profit, trailing_distance / trailing_pct, trailing_activation, trailing_step,
exit_at_ns), PositionChanged (arms, resizes or disarms the stop), RiskRejected (re-arms a
stop whose exit was refused, so it tries again on the next price — unless another exit is
already working), OrderAccepted / OrderFilled (its exit or native stop order progressed),
OrderCanceled/OrderExpired/OrderRejected (an exit it deferred to may have ended unfilled:
look again; a native stop ended), Trade and Bar (prices).
Emits: StopArmed (also as the amendment when the stop level moves), StopCanceled,
StopTriggered, reduce-only OrderIntents (market exits; stop_market orders for native
stops) to risk, and CancelOrder for its own native stop orders.

Rules, per position (one armed stop; stop-loss, take-profit and time exit act as
one-cancels-other — the first to trigger sends the only exit):

- **Levels.** A long exits when a trade is at or below the stop (a bar: its low) or at or
  above the take-profit (a bar: its high); a short mirrored.  A price that gaps through a
  level triggers at once; StopTriggered reports the level, the exit is a market order.  When
  a bar touches both levels the stop-loss is taken (the conservative choice).
- **Trailing stop** (``trailing_distance`` in price or ``trailing_pct`` percent of the best
  price): the monitor tracks the best price since the stop was armed (highest trade / bar
  high for a long, lowest for a short).  Once the best price has reached
  ``trailing_activation`` (immediately when unset) the candidate stop is
  ``best - distance`` (``best * (1 - pct/100)``; short: ``+``), rounded to the tick away
  from the market.  The stop only ever moves in the favourable direction, and only when the
  candidate beats the current stop by at least the step (the entry's ``trailing_step``, else
  ``risk.trail_step``, unset: max(10 ticks, 0.1 % of the stop); 0 = any improvement): each
  such move publishes one StopArmed (and replaces a native stop once: ``replacements``)
  amendment — no churn below the step.  A trade is checked against the stop before it moves
  the trail; a bar is checked with the stop as it stood before the bar and only then moves
  the trail with its high/low (its intra-bar order is unknown), so the new level applies
  from the next price.  A stop that has moved is reported with trigger "trailing".
- **Time exit** (``exit_at_ns``, event time): the first trade or bar with
  ``ts_event >= exit_at_ns`` closes the position with a market exit (trigger "time", price:
  the trade price or bar close) unless a level triggers on the same price (levels first).
  Risk refuses entries with ``exit_at_ns`` but no stop-loss.
- **Re-arming.** An exit refused by risk (other than "another exit is working") or ended
  unfilled triggers again on the next price; an exit that filled while the position is still
  open (the entry kept filling) re-arms for the rest.  A partially filled exit keeps waiting.
  An adding entry that brings its own plan replaces the plan (and restarts the trail);
  further fills of the entry whose plan is in force keep it (and the trail) as it is.
- **A hit withdraws the entry still filling.** A level hit while an entry of the position is
  still working (it fills in parts, e.g. below its own stop) withdraws that entry (a
  CancelIntent: the order actor cancels it) and exits what is held; only what the entry filled
  before the cancel landed is left, and it is exited on the next price beyond the level — so
  one position sees one exit in flight, and at most one more, not one per partial fill.

Stops are synthetic by default: the monitor watches trades (or bar high/low) itself.  With
``risk.native_stops = true`` and a venue that supports stop orders (``venue_stops``), the
stop-loss rests at the venue as a reduce-only ``stop_market`` order instead (with
``risk.native_take_profit`` too, and a venue that takes OCO lists for the symbol, the stop-loss
and the take-profit as one OCO list); how it is placed, replaced, canceled and taken as the exit
is told in :mod:`actors.native_stops` (the :class:`~actors.native_stops.NativeStops` mixin).
The exit plan, the armed stop with its level and trail arithmetic, and the native stop record
are in :mod:`actors.stop_levels`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal

from actors.channels import Channel, Router
from actors.messages import (
    Bar,
    CancelIntent,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    Side,
    Stamp,
    StopArmed,
    StopCanceled,
    StopTriggered,
    Trade,
    stamp,
)
from actors.native_stops import NativeStops
from actors.oco import list_of_leg
from actors.order import REQUEST_REJECTS
from actors.order_ids import client_order_id
from actors.params import RiskLimits
from actors.runtime import Actor
from actors.stop_levels import (
    EMPTY_PLAN,
    ArmedStop,
    ExitPlan,
    NativeState,
    NativeStop,
    Trigger,
    auto_trail_step,
)
from actors.timefmt import iso_utc

__all__ = ["EMPTY_PLAN", "ArmedStop", "ExitPlan", "NativeState", "NativeStop", "StopMonitor", "Trigger"]


class StopMonitor(NativeStops, Actor):
    kind = "stop-monitor"

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        limits: RiskLimits | None = None,
        *,
        venue_stops: bool = False,
        venue_oco: bool | Callable[[], bool] = False,
        tick_size: Decimal | None = None,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.limits = limits if limits is not None else RiskLimits()
        self.venue_stops = venue_stops  # the venue takes stop_market orders
        # the venue takes OCO lists for this symbol (asked when a stop is placed: exchange rules load late)
        self.venue_oco: Callable[[], bool] = venue_oco if callable(venue_oco) else (lambda: venue_oco)
        self.tick_size = tick_size
        self.levels: dict[str, ExitPlan] = {}  # entry client order id -> its exit plan
        self.stop: ArmedStop | None = None
        self.triggered = 0
        self.amendments = 0  # trailing moves published
        self.replacements = 0  # native stops moved by a cancel-replace (tradingd_stop_replacements_total)
        self.oco_refused = 0  # OCO lists refused, a plain native stop instead (tradingd_oco_refused_total)
        self._last_exit_cid = ""  # the most recent approved reduce-only order (any source)
        self._entries: dict[str, OrderIntent] = {}  # entry orders approved and not ended, by client id
        self._orphans: set[str] = set()  # native stops of a disarmed stop, canceled once accepted
        self._native_seq = 0
        # The stop as published before a restart: the next stop armed on that side takes its
        # levels (a trailed stop keeps its level instead of falling back to the plan's), and
        # its native stop order still resting at the venue, if any, is taken back.
        self._resume: StopArmed | None = None
        self._resume_native: tuple[OrderIntent, NativeState] | None = None

    def resume(
        self, last: StopArmed | None, native: OrderIntent | None = None, native_state: NativeState = "working"
    ) -> None:
        """After a restart: arm the position's stop as it stood before.

        Restart recovery re-arms the stop from the entry's exit plan; ``last`` (the journal's
        newest StopArmed of the open position) then sets its stop-loss and take-profit, so a
        trailed stop never loosens back to the plan's level.  The trail goes on from the next
        price and, as always, only moves the stop in the favourable direction.

        ``native``: this monitor's stop_market order still open at the venue (``native_state``
        "pending" until the venue acknowledged it).  It becomes the armed stop's native stop
        again — amended, canceled and its fills taken as the exit as before — instead of
        a second stop order being placed beside it.
        """
        self._resume = last
        self._resume_native = None if native is None else (native, native_state)

    def apply_limits(self, limits: RiskLimits) -> None:
        """Config reload: trail_step and native_stops apply to moves and stops placed from now on."""
        self.limits = limits

    def quiet_bars(self, bars: Sequence[Bar], start: int, stop: int) -> int:
        """How many of ``bars[start:stop]``, in a row, this monitor would take without acting.

        A question, not a step: nothing changes.  With no live stop every bar is quiet; with
        a synthetic, non-trailing stop, a bar is quiet until one touches a level or reaches
        the exit time (exactly :meth:`_on_price`'s tests); a trailing or native stop moves
        or re-places itself on prices, so no bar is promised quiet (0).  The backtest runner
        hands the quiet bars to :meth:`handle_batch` in one batch.
        """
        armed = self.stop
        if armed is None or armed.triggered:
            return stop - start
        if armed.plan.trails or armed.native is not None or self.native_enabled:
            return 0
        # armed.check(low, high) is None, spelt out for the long and the short side
        sl, tp = armed.stop_price, armed.take_profit
        exit_at = armed.plan.exit_at_ns
        if exit_at is not None:
            stop = start + next(
                (k for k, bar in enumerate(bars[start:stop]) if bar.ts_event >= exit_at), stop - start
            )
        i = start
        if armed.long:
            while i < stop:
                bar = bars[i]
                if (sl is not None and bar.low <= sl) or (tp is not None and bar.high >= tp):
                    break
                i += 1
        else:
            while i < stop:
                bar = bars[i]
                if (sl is not None and bar.high >= sl) or (tp is not None and bar.low <= tp):
                    break
                i += 1
        return i - start

    async def handle_batch(self, batch: list[Message]) -> None:
        """Prices are skipped without a coroutine while no stop is live (the common case)."""
        handle = self.handle
        on_price = self._on_price
        for i, msg in enumerate(batch):
            self._progress = i
            if type(msg) is Bar:
                stop = self.stop
                if stop is not None and not stop.triggered:
                    await on_price(msg.low, msg.high, msg.close, msg)
                continue
            if type(msg) is Trade and (self.stop is None or self.stop.triggered):
                continue
            await handle(msg)

    async def handle(self, msg: Message) -> None:
        match msg:
            case Trade():
                await self._on_price(msg.price, msg.price, msg.price, msg)
            case Bar():
                await self._on_price(msg.low, msg.high, msg.close, msg)
            case RiskApproved():
                self._remember(msg.intent)
            case PositionChanged():
                await self._on_position(msg)
            case RiskRejected():
                await self._on_rejected(msg)
            case OrderAccepted():
                await self._on_accepted(msg)
            case OrderFilled():
                await self._on_filled(msg)
            case OrderCanceled() | OrderExpired() | OrderRejected():
                await self._on_order_ended(msg)
            case _:
                self.log.warning("ignored unexpected message kind %s", type(msg).__name__)

    # --- order events -----------------------------------------------------------------------

    async def _on_filled(self, msg: OrderFilled) -> None:
        if msg.leaves_qty == 0:
            self._entries.pop(msg.client_order_id, None)
        stop = self.stop
        if stop is None:
            return
        prev = stop.native_prev
        if prev is not None and msg.client_order_id == prev.cid:
            await self._on_prev_filled(stop, prev, msg)
            return
        n = stop.native
        leg = list_of_leg(msg.client_order_id)
        if n is not None and (msg.client_order_id == n.cid or (leg is not None and leg[0] == n.cid)):
            await self._on_native_filled(stop, n, msg)
            return
        if msg.client_order_id == stop.exit_cid and msg.leaves_qty == 0:
            stop.exit_done = True

    async def _on_order_ended(self, msg: OrderCanceled | OrderExpired | OrderRejected) -> None:
        """An order ended unfilled: if it was our exit (or the exit we deferred to), look again."""
        request_reject = isinstance(msg, OrderRejected) and msg.reason.startswith(REQUEST_REJECTS)
        cid = msg.client_order_id
        if not request_reject:
            self._entries.pop(cid, None)
        leg = list_of_leg(cid)
        if leg is not None:
            cid = leg[0]  # a leg of an OCO list: the list's
        if cid in self._orphans:
            if not request_reject:
                self._orphans.discard(cid)
            return
        stop = self.stop
        if stop is None:
            return
        prev = stop.native_prev
        if prev is not None and cid == prev.cid:
            if not request_reject:
                self._on_prev_ended(stop, prev, msg)
            return
        n = stop.native
        if n is not None and cid == n.cid:
            if n.kind == "oco" and leg is not None and not await self._oco_leg_ended(stop, n, msg):
                return  # the list goes on (or was refused: a plain stop follows)
            await self._on_native_ended(stop, n, msg, request_reject)
            return
        if not stop.triggered or request_reject:
            return  # a refused request (e.g. a cancel) ends nothing
        if stop.exit_cid in (cid, "*"):
            self.log.warning("exit %s ended unfilled; %s will trigger again", cid, stop.stop_id)
            stop.triggered = False
            stop.exit_cid = ""

    async def _on_rejected(self, msg: RiskRejected) -> None:
        stop = self.stop
        iid = msg.intent.intent_id
        cid = client_order_id(iid)
        if cid in self._orphans:
            self._orphans.discard(cid)
            return
        if stop is None or not iid.startswith(stop.stop_id):
            return
        n = stop.native
        if n is not None and n.intent_id == iid:
            await self._on_native_refused(stop, n, msg)
            return
        if msg.rule == "reduce_only":
            # Another exit (e.g. the strategy's) is already working for this position: follow it,
            # and trigger again only if it ends unfilled ("*": one we never saw approved — any
            # order ending unfilled makes us look again).
            stop.exit_cid = self._last_exit_cid or "*"
            self.log.info(
                "exit for %s deferred to working order %s: %s", stop.stop_id, stop.exit_cid, msg.reason
            )
            return
        self.log.warning("exit for %s refused (%s), will retry on next price", stop.stop_id, msg.reason)
        stop.triggered = False
        stop.exit_cid = ""

    def _remember(self, intent: OrderIntent) -> None:
        if intent.reduce_only:
            self._last_exit_cid = client_order_id(intent.intent_id)
            return
        self._entries[client_order_id(intent.intent_id)] = intent
        if len(self._entries) > 1000:  # ends we never saw (a lost event): forget the oldest
            self._entries.pop(next(iter(self._entries)))
        plan = ExitPlan.of(intent)
        if plan is None:
            return
        self.levels[client_order_id(intent.intent_id)] = plan
        if len(self.levels) > 1000:
            self.levels.pop(next(iter(self.levels)))

    # --- positions --------------------------------------------------------------------------

    async def _on_position(self, msg: PositionChanged) -> None:
        qty = msg.quantity
        exit_side: Side = "sell" if qty > 0 else "buy"
        if self.stop is not None and (qty == 0 or self.stop.exit_side != exit_side):
            reason = "position closed" if qty == 0 else "position flipped"
            await self._disarm(reason, msg)
        if qty == 0:
            return
        plan = self.levels.get(msg.last_client_order_id)
        stop = self.stop
        fields = stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv)
        if stop is not None:
            # Same position, new size; a new plan only if this fill brought one.
            stop.quantity = abs(qty)
            if plan is not None and msg.last_client_order_id != stop.plan_cid:
                stop.set_plan(plan, msg.last_client_order_id)
                await self._publish_armed(stop)
            if stop.exit_done and msg.last_client_order_id == stop.exit_cid:
                # Our exit filled but the position is still open (e.g. the entry kept filling
                # after the trigger): watch the rest, and exit it on the next price beyond a level.
                self.log.warning(
                    "exit %s filled, %s still open: %s re-armed", stop.exit_cid, qty, stop.stop_id
                )
                stop.triggered, stop.exit_done, stop.exit_cid = False, False, ""
                if stop.native is not None and stop.native.state == "filled":
                    stop.native = None
            await self._amend_native(stop, fields)
            return
        if plan is None:
            self.log.warning("position %s has no exit plan to arm", qty)
            return
        stop = self.stop = ArmedStop(f"stop:{msg.last_client_order_id}", exit_side, abs(qty), plan)
        stop.plan_cid = msg.last_client_order_id
        last, self._resume = self._resume, None
        if last is not None and last.side == exit_side:
            stop.stop_price, stop.take_profit = last.stop_price, last.take_profit
            stop.trailed = plan.trails and last.stop_price != plan.stop_loss
            self.log.info(
                "%s resumed at sl %s / tp %s (as published before the restart)",
                stop.stop_id,
                last.stop_price,
                last.take_profit,
            )
        self._take_back_native(stop)
        await self._publish_armed(stop)
        await self._amend_native(stop, fields)  # places one, or brings the one taken back in line

    async def _disarm(self, reason: str, cause: Message) -> None:
        assert self.stop is not None
        stop, self.stop = self.stop, None
        await self._drop_native(stop.native, cause)
        await self._drop_native(stop.native_prev, cause)
        await self.router.publish(StopCanceled(stop_id=stop.stop_id, reason=reason, **self.system_fields()))

    async def _publish_armed(self, stop: ArmedStop) -> None:
        self.log.info(
            "armed %s: exit %s %s at sl %s / tp %s%s",
            stop.stop_id,
            stop.exit_side,
            stop.quantity,
            stop.stop_price,
            stop.take_profit,
            f" / exit at {iso_utc(stop.plan.exit_at_ns)}" if stop.plan.exit_at_ns is not None else "",
        )
        await self.router.publish(
            StopArmed(
                stop_id=stop.stop_id,
                side=stop.exit_side,
                quantity=stop.quantity,
                stop_price=stop.stop_price,
                take_profit=stop.take_profit,
                **self.system_fields(),
            )
        )

    # --- prices -----------------------------------------------------------------------------

    async def _on_price(self, low: Decimal, high: Decimal, last: Decimal, msg: Trade | Bar) -> None:
        stop = self.stop
        if stop is None or stop.triggered:
            return
        watch_stop, watch_tp = self._watched(stop.native)
        hit = stop.check(low, high, watch_stop, watch_tp)
        plan = stop.plan
        exit_at = plan.exit_at_ns
        if hit is None and exit_at is not None and msg.ts_event >= exit_at:
            hit = ("time", last)
        if hit is not None:
            fields = stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv)
            await self._fire(stop, hit[0], hit[1], fields)
            return
        if plan.trails:
            step = plan.trailing_step if plan.trailing_step is not None else self.limits.trail_step
            if step is None:
                step = auto_trail_step(
                    self.tick_size, stop.stop_price if stop.stop_price is not None else stop.best
                )
            if stop.trail(low, high, step, self.tick_size):
                self.amendments += 1
                await self._publish_armed(stop)
                await self._amend_native(stop, stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv))
                return
        if stop.native is None and self.native_enabled:
            # a fallen-through native stop comes back
            await self._place_native(stop, stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv))

    async def _fire(self, stop: ArmedStop, trigger: Trigger, level: Decimal, fields: Stamp) -> None:
        stop.triggered = True
        n = stop.native
        if n is not None:
            # One-cancels-other with the resting stop: cancel it, exit once it is gone.
            n.after = (trigger, level, fields)
            self.log.info(
                "%s hit for %s at %s: canceling native stop %s first", trigger, stop.stop_id, level, n.cid
            )
            if n.state == "working":
                await self._cancel_native(n, fields)
            return  # pending: canceled when accepted; canceling: the exit follows the cancel
        await self._send_exit(stop, trigger, level, fields)

    async def _withdraw_entries(self, stop: ArmedStop, trigger: Trigger, fields: Stamp) -> None:
        """Cancel the entries still working on this position's side (once each)."""
        opening = "buy" if stop.exit_side == "sell" else "sell"
        for cid, intent in list(self._entries.items()):
            if intent.side != opening:
                continue
            del self._entries[cid]
            self.log.warning(
                "%s hit for %s while entry %s still works: withdrawn", trigger, stop.stop_id, cid
            )
            await self.router.publish(
                CancelIntent(
                    intent_id=intent.intent_id,
                    source="stop-monitor",
                    reason=f"{trigger} hit for {stop.stop_id} while the entry was filling",
                    **fields,
                )
            )

    async def _send_exit(self, stop: ArmedStop, trigger: Trigger, level: Decimal, fields: Stamp) -> None:
        stop.triggered = True
        self.triggered += 1
        await self._withdraw_entries(stop, trigger, fields)
        intent_id = f"{stop.stop_id}:{trigger}:{fields['ts_event']}"
        stop.exit_cid = client_order_id(intent_id)
        self.router.latency.note(intent_id, fields["ts_recv"])
        self.log.info(
            "%s hit for %s at %s: exit %s %s", trigger, stop.stop_id, level, stop.exit_side, stop.quantity
        )
        await self.router.publish(
            StopTriggered(stop_id=stop.stop_id, trigger=trigger, price=level, intent_id=intent_id, **fields)
        )
        await self.router.publish(
            OrderIntent(
                intent_id=intent_id,
                source="stop-monitor",
                side=stop.exit_side,
                order_type="market",
                quantity=stop.quantity,
                reduce_only=True,
                reason=f"{trigger} at {level}",
                **fields,
            )
        )
