"""Stop-monitor actor: closes positions at their stop-loss or take-profit.

Takes: RiskApproved (remembers the stop-loss / take-profit an entry intent carries),
PositionChanged (arms, resizes or disarms the stop), RiskRejected (re-arms a stop whose
exit was refused, so it tries again on the next price — unless another exit is already
working), OrderFilled (its exit completed: if the position is still open it re-arms for
the rest), OrderCanceled/OrderExpired/OrderRejected (an exit it deferred to may have
ended unfilled: look again), Trade and Bar (prices).
Emits: StopArmed, StopCanceled, StopTriggered, and a reduce-only market OrderIntent
for the exit (to risk).

Stops here are synthetic: the monitor watches trades (or bar high/low) itself.  When a
bar touches both levels the stop-loss is assumed to have come first (the conservative
choice, as backtesters do).  One armed stop per position: stop-loss and take-profit
act as one-cancels-other.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from actors.channels import Channel, Router
from actors.messages import (
    Bar,
    Message,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    Side,
    StopArmed,
    StopCanceled,
    StopTriggered,
    Trade,
    stamp,
)
from actors.order import REQUEST_REJECTS
from actors.order_ids import client_order_id
from actors.runtime import Actor

Trigger = Literal["stop_loss", "take_profit"]


class ArmedStop:
    __slots__ = (
        "exit_cid",
        "exit_done",
        "exit_side",
        "quantity",
        "stop_id",
        "stop_price",
        "take_profit",
        "triggered",
    )

    def __init__(
        self, stop_id: str, exit_side: Side, quantity: Decimal, stop: Decimal | None, tp: Decimal | None
    ) -> None:
        self.stop_id = stop_id
        self.exit_side: Side = exit_side
        self.quantity = quantity
        self.stop_price = stop
        self.take_profit = tp
        self.triggered = False
        self.exit_cid = ""  # client order id of the exit this stop sent, while it is working
        self.exit_done = False  # that exit filled completely (the position may still be open)

    def check(self, low: Decimal, high: Decimal) -> tuple[Trigger, Decimal] | None:
        """Which level a price range [low, high] touches; stop-loss first."""
        sl, tp = self.stop_price, self.take_profit
        if self.exit_side == "sell":  # long position
            if sl is not None and low <= sl:
                return "stop_loss", sl
            if tp is not None and high >= tp:
                return "take_profit", tp
        else:
            if sl is not None and high >= sl:
                return "stop_loss", sl
            if tp is not None and low <= tp:
                return "take_profit", tp
        return None


class StopMonitor(Actor):
    kind = "stop-monitor"

    def __init__(self, exchange: str, symbol: str, router: Router, inbox: Channel[Message]) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.levels: dict[str, tuple[Decimal | None, Decimal | None]] = {}  # client order id -> (sl, tp)
        self.stop: ArmedStop | None = None
        self.triggered = 0
        self._last_exit_cid = ""  # the most recent approved reduce-only order (any source)

    async def handle_batch(self, batch: list[Message]) -> None:
        """Prices are skipped without a coroutine while no stop is live (the common case)."""
        handle = self.handle
        for i, msg in enumerate(batch):
            self._progress = i
            t = type(msg)
            if (t is Trade or t is Bar) and (self.stop is None or self.stop.triggered):
                continue
            await handle(msg)

    async def handle(self, msg: Message) -> None:
        match msg:
            case Trade():
                await self._on_price(msg.price, msg.price, msg)
            case Bar():
                await self._on_price(msg.low, msg.high, msg)
            case RiskApproved():
                self._remember(msg.intent)
            case PositionChanged():
                await self._on_position(msg)
            case RiskRejected():
                self._on_rejected(msg)
            case OrderFilled():
                stop = self.stop
                if stop is not None and msg.client_order_id == stop.exit_cid and msg.leaves_qty == 0:
                    stop.exit_done = True
            case OrderCanceled() | OrderExpired() | OrderRejected():
                self._on_order_ended(msg)
            case _:
                self.log.warning("ignored unexpected message kind %s", type(msg).__name__)

    def _on_order_ended(self, msg: OrderCanceled | OrderExpired | OrderRejected) -> None:
        """An order ended unfilled: if it was our exit (or the exit we deferred to), look again."""
        stop = self.stop
        if stop is None or not stop.triggered:
            return
        if isinstance(msg, OrderRejected) and msg.reason.startswith(REQUEST_REJECTS):
            return  # a refused request (e.g. a cancel) ends nothing
        if stop.exit_cid in (msg.client_order_id, "*"):
            self.log.warning(
                "exit %s ended unfilled; %s will trigger again", msg.client_order_id, stop.stop_id
            )
            stop.triggered = False
            stop.exit_cid = ""

    def _on_rejected(self, msg: RiskRejected) -> None:
        stop = self.stop
        if stop is None or not msg.intent.intent_id.startswith(stop.stop_id):
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
        if intent.reduce_only or (intent.stop_loss is None and intent.take_profit is None):
            return
        self.levels[client_order_id(intent.intent_id)] = (intent.stop_loss, intent.take_profit)
        if len(self.levels) > 1000:
            self.levels.pop(next(iter(self.levels)))

    async def _on_position(self, msg: PositionChanged) -> None:
        qty = msg.quantity
        exit_side: Side = "sell" if qty > 0 else "buy"
        if self.stop is not None and (qty == 0 or self.stop.exit_side != exit_side):
            reason = "position closed" if qty == 0 else "position flipped"
            await self._disarm(reason)
        if qty == 0:
            return
        levels = self.levels.get(msg.last_client_order_id)
        stop = self.stop
        if stop is not None:
            # Same position, new size; new levels only if this fill brought them.
            stop.quantity = abs(qty)
            if levels is not None:
                stop.stop_price, stop.take_profit = levels
            if stop.exit_done and msg.last_client_order_id == stop.exit_cid:
                # Our exit filled but the position is still open (e.g. the entry kept filling
                # after the trigger): watch the rest, and exit it on the next price beyond a level.
                self.log.warning(
                    "exit %s filled, %s still open: %s re-armed", stop.exit_cid, qty, stop.stop_id
                )
                stop.triggered, stop.exit_done, stop.exit_cid = False, False, ""
            return
        if levels is None:
            self.log.warning("position %s has no stop-loss/take-profit levels to arm", qty)
            return
        await self._arm(f"stop:{msg.last_client_order_id}", exit_side, abs(qty), levels)

    async def _disarm(self, reason: str) -> None:
        assert self.stop is not None
        stop_id, self.stop = self.stop.stop_id, None
        await self.router.publish(StopCanceled(stop_id=stop_id, reason=reason, **self.system_fields()))

    async def _arm(
        self, stop_id: str, exit_side: Side, qty: Decimal, levels: tuple[Decimal | None, Decimal | None]
    ) -> None:
        self.stop = ArmedStop(stop_id, exit_side, qty, *levels)
        self.log.info("armed %s: exit %s %s at sl %s / tp %s", stop_id, exit_side, qty, levels[0], levels[1])
        await self.router.publish(
            StopArmed(
                stop_id=stop_id,
                side=exit_side,
                quantity=qty,
                stop_price=levels[0],
                take_profit=levels[1],
                **self.system_fields(),
            )
        )

    async def _on_price(self, low: Decimal, high: Decimal, msg: Trade | Bar) -> None:
        stop = self.stop
        if stop is None or stop.triggered:
            return
        hit = stop.check(low, high)
        if hit is None:
            return
        trigger, level = hit
        stop.triggered = True
        self.triggered += 1
        intent_id = f"{stop.stop_id}:{trigger}:{msg.ts_event}"
        stop.exit_cid = client_order_id(intent_id)
        fields = stamp(self.exchange, self.symbol, msg.ts_event, msg.ts_recv)
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
