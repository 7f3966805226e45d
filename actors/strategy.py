"""Strategy actor: runs one pure strategy on the group's market data.

Takes: Bar, Trade, Quote (market), PositionChanged (so the strategy sees its position),
RiskApproved / RiskRejected (its intents decided: counted as working orders until then).
Emits: Signal (recorded on the bus) and OrderIntent (to risk); with a ``checkpoint_sink``
(the daemon's journal) a StrategyCheckpoint after each event it decided on (journal only).

Restart: ``reconcile_due`` (set by restart recovery) makes the first market event after the
restart first call the strategy's ``reconcile(state, ctx, orders)`` with the recovered position
and the strategy's open orders (``open_orders_view``), so a restored state older than them is
re-derived (the grid's slots) instead of waiting for orders that ended long ago.
``decision_floor_ns`` is the event time of the newest decision the journal (or the
store, or the venue) knows; whatever the strategy decides on events up to it was decided
before the crash and is dropped here, counted (``tradingd_strategy_replayed_total``), never
sent to risk again.  A replay resuming from a checkpoint older than that floor so rebuilds
the strategy's state without deciding anything twice.

The actor owns I/O and the strategy's state; the strategy itself is a pure function of
(state, event, context).  ``apply_params`` swaps the strategy's parameters in place on a
config reload, keeping its state (indicator history, cooldowns).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import msgspec

from actors.channels import Channel, Router
from actors.messages import (
    Bar,
    CancelIntent,
    Message,
    OrderIntent,
    PositionChanged,
    Quote,
    RiskApproved,
    RiskRejected,
    Signal,
    StrategyCheckpoint,
    Trade,
    stamp,
)
from actors.runtime import Actor
from actors.state import SymbolState
from actors.strategies.base import OpenOrder, Output, Strategy, StrategyContext

UNDECIDED_TTL_S = 60.0


class StrategyActor(Actor):
    kind = "strategy"

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        state: SymbolState,
        strategy: Strategy[Any],
        max_notional: Decimal,
        tick_size: Decimal,
        step_size: Decimal,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.symbol_state = state
        self.strategy = strategy
        self.strategy_state = strategy.initial_state()
        self.max_notional = max_notional
        self.tick_size = tick_size
        self.step_size = step_size
        self.signals = 0
        self.intents = 0
        self.rejections = 0
        # Intents sent to risk and not yet decided: risk reserves open_orders only when it approves,
        # so without this a second bar in the same batch would see no working order and repeat.
        # (An intent risk never answers — it failed on it — stops counting after UNDECIDED_TTL_S.)
        self._undecided: dict[str, float] = {}
        self.decision_floor_ns = 0  # restart: decisions on events up to here were made already
        self.replayed = 0  # outputs dropped for that
        self.reconcile_due = False  # restart: reconcile the restored state on the next market event
        self.open_orders_view: Callable[[], Sequence[OpenOrder]] = tuple
        self.reconciled = 0
        self.checkpoint_sink: Callable[[Message], None] | None = None
        self._encode = msgspec.msgpack.Encoder().encode

    def apply_params(self, strategy: Strategy[Any], max_notional: Decimal) -> None:
        """Config reload: new parameters, same state."""
        self.strategy = strategy
        self.max_notional = max_notional

    def _reconcile(self, now_ns: int) -> None:
        """The restored state brought in line with the recovered position and open orders."""
        self.reconcile_due = False
        orders = list(self.open_orders_view())
        ctx = self._context(now_ns)
        self.strategy_state = self.strategy.reconcile(self.strategy_state, ctx, orders)
        self.reconciled += 1
        self.log.info(
            "strategy state reconciled with position %s and %d open orders", ctx.position, len(orders)
        )

    def _undecided_count(self) -> int:
        if not self._undecided:
            return 0
        cutoff = self.clock.monotonic() - UNDECIDED_TTL_S
        for intent_id in [i for i, t in self._undecided.items() if t < cutoff]:
            del self._undecided[intent_id]
        return len(self._undecided)

    def _context(self, now_ns: int) -> StrategyContext:
        st = self.symbol_state
        return StrategyContext(
            exchange=self.exchange,
            symbol=self.symbol,
            now_ns=now_ns,
            position=st.position,
            avg_price=st.avg_price,
            max_notional=self.max_notional,
            tick_size=self.tick_size,
            step_size=self.step_size,
            open_orders=(st.open_orders + self._undecided_count()) if self._undecided else st.open_orders,
        )

    async def take_bars(self, bars: Sequence[Bar], start: int, stop: int) -> tuple[int, bool]:
        """Handle ``bars[start:stop]`` in order, up to and including the first that produces output.

        Each bar is handled exactly as :meth:`handle_batch` handles it; the outputs of the last
        one taken, if any, are emitted.  Returns how many bars were taken and whether the last
        of them emitted something.  With an intent undecided no bar is taken (the context then
        depends on the clock).

        The backtest runner hands the strategy its bars this way while the rest of the group
        is quiet, to learn at which bar something happens (see :mod:`daemon.backtest.runner`).
        """
        if self._undecided:
            return 0, False
        if self.reconcile_due and start < stop:
            self._reconcile(bars[start].ts_event)
        on_bar, context = self.strategy.on_bar, self._context
        i = start
        while i < stop:
            bar = bars[i]
            self._progress = i - start
            self.strategy_state, out = on_bar(self.strategy_state, bar, context(bar.ts_event))
            i += 1
            if out:
                await self._emit(out, bar.ts_event, bar.ts_recv)
                return i - start, True
        return i - start, False

    async def handle_batch(self, batch: list[Message]) -> None:
        handle = self.handle
        for i, msg in enumerate(batch):
            self._progress = i
            if type(msg) is Bar:
                if self.reconcile_due:
                    self._reconcile(msg.ts_event)
                self.strategy_state, out = self.strategy.on_bar(
                    self.strategy_state, msg, self._context(msg.ts_event)
                )
                if out:
                    await self._emit(out, msg.ts_event, msg.ts_recv)
            else:
                await handle(msg)

    async def handle(self, msg: Message) -> None:
        if self.reconcile_due and isinstance(msg, Bar | Trade | Quote):
            self._reconcile(msg.ts_event)
        match msg:
            case Bar():
                self.strategy_state, out = self.strategy.on_bar(
                    self.strategy_state, msg, self._context(msg.ts_event)
                )
            case Trade():
                self.strategy_state, out = self.strategy.on_trade(
                    self.strategy_state, msg, self._context(msg.ts_event)
                )
            case Quote():
                self.strategy_state, out = self.strategy.on_quote(
                    self.strategy_state, msg, self._context(msg.ts_event)
                )
            case PositionChanged():
                return
            case RiskApproved():
                self._undecided.pop(msg.intent.intent_id, None)
                return
            case RiskRejected():
                self._undecided.pop(msg.intent.intent_id, None)
                self.rejections += 1
                return
            case _:
                self.log.warning("ignored unexpected message kind %s", type(msg).__name__)
                return
        if out:
            await self._emit(out, msg.ts_event, msg.ts_recv)

    async def _emit(self, out: list[Output], event_ns: int, frame_recv_ns: int) -> None:
        floor = self.decision_floor_ns
        if floor and out[0].ts_event <= floor:  # decided before the restart (the journal has it)
            self.replayed += len(out)
            return
        for item in out:
            if isinstance(item, Signal):
                self.signals += 1
                self.log.info(
                    "signal %s %s @ %s: %s", item.side.upper(), self.symbol, item.price, item.reason
                )
            elif isinstance(item, OrderIntent):
                self.intents += 1
                self._undecided[item.intent_id] = self.clock.monotonic()
                self.router.latency.note(item.intent_id, frame_recv_ns)
                self.log.info(
                    "intent %s %s %s %s (sl %s, tp %s) %s",
                    item.intent_id,
                    item.side,
                    item.quantity,
                    item.order_type,
                    item.stop_loss,
                    item.take_profit,
                    item.reason,
                )
            elif isinstance(item, CancelIntent):
                self._undecided.pop(item.intent_id, None)
                self.log.info("cancel intent %s: %s", item.intent_id, item.reason)
            await self.router.publish(item)
        sink = self.checkpoint_sink
        if sink is not None:  # after the decision, so a crash never keeps a state without it
            ts = event_ns
            sink(
                StrategyCheckpoint(
                    strategy=str(getattr(self.strategy, "name", "")),
                    state=self._encode(self.strategy_state),
                    reached_ns=ts,
                    **stamp(self.exchange, self.symbol, ts),
                )
            )
