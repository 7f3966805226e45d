"""The paper exchange actor: one symbol of a simulated venue, driven by the live (or replayed) tape.

In (inbox):  ``SubmitOrder`` (one with ``oco_take_profit`` is an OCO list of two legs:
:meth:`~adapters.paper.engine.PaperEngine.submit_oco`), ``CancelOrder`` and market data
``Trade``/``Bar``/``Quote`` for its (exchange, symbol); anything else, or another symbol's
messages, is counted in ``ignored`` and dropped.
Out (router): ``OrderAccepted``, ``OrderRejected``, ``OrderFilled``, ``OrderCanceled``,
``OrderExpired`` — the same messages a real exchange adapter publishes.

All logic lives in :class:`adapters.paper.engine.PaperEngine`; this actor only feeds it
and publishes what it returns.  The engine (open orders) belongs to the actor object, so a
supervisor restart of :meth:`run` after a failure keeps the book.  When the actor stops for
good (its group is cancelled or its inbox closed) the venue goes away with it: every open
order is canceled (reason "venue stopped", sent to the router's tap only, as nobody in the
group is left to receive it) so the shared account releases what they reserved.  Client ids
already seen are kept by the account, so a restarted group still refuses re-sends.
"""

from __future__ import annotations

from actors.channels import Channel, Router
from actors.messages import Bar, CancelOrder, Message, Quote, SubmitOrder, Trade
from actors.oco import oco_legs
from actors.runtime import WALL_CLOCK, Actor, Clock
from adapters.paper.account import PaperAccountState
from adapters.paper.engine import PaperEngine
from daemon.config import Instrument, PaperAccount


class PaperExchange(Actor):
    """Simulated venue for one symbol; subscribe its inbox to :attr:`subscribes`."""

    kind = "paper-exchange"
    subscribes: tuple[type[Message], ...] = (SubmitOrder, CancelOrder, Trade, Bar, Quote)

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        instrument: Instrument,
        account: PaperAccountState,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.engine = PaperEngine(exchange, symbol, instrument, account)
        self.ignored = 0

    def set_clock(self, clock: Clock) -> None:
        """Use ``clock`` (e.g. a backtest's event time) here and in the engine."""
        self.clock = clock
        self.engine.clock = clock

    @property
    def account(self) -> PaperAccountState:
        return self.engine.account

    def update_account_config(self, config: PaperAccount) -> None:
        """Config reload: new fees/slippage/participation for the whole account; balances are kept."""
        self.engine.account.update_config(config)

    def dispatch(self, msg: Message) -> list[Message]:
        """Run ``msg`` through the engine; returns the order events to publish."""
        if msg.symbol != self.symbol or msg.exchange != self.exchange:
            self.ignored += 1
            return []
        engine = self.engine
        if isinstance(msg, Trade):
            return engine.on_trade(msg)
        if isinstance(msg, Bar):
            return engine.on_bar(msg)
        if isinstance(msg, Quote):
            return engine.on_quote(msg)
        if isinstance(msg, SubmitOrder):
            if self.clock is WALL_CLOCK:  # the paper venue's wire (a backtest's event time measures nothing)
                self.router.latency.sent(msg.intent_id)
            if msg.oco_take_profit is not None:  # an OCO list: both legs in one request
                return engine.submit_oco(msg.client_order_id, *oco_legs(msg), now=msg.ts_event)
            return engine.submit(msg, msg.ts_event)  # the venue acts at the request's (market) time
        if isinstance(msg, CancelOrder):
            return engine.cancel(msg, msg.ts_event)
        self.ignored += 1
        return []

    async def run(self) -> None:
        """The inbox loop; a clean end or a cancellation closes the book, a failure keeps it."""
        failed = False
        try:
            await super().run()
        except Exception:
            failed = True  # the supervisor will restart run(): keep the book
            raise
        finally:
            if not failed:
                self.close_book("venue stopped")

    def close_book(self, reason: str) -> list[Message]:
        """Cancel every open order, releasing its reservation; the events go to the tap only."""
        events = self.engine.cancel_all(reason)
        tap = self.router.tap
        if tap is not None:
            for event in events:
                tap(event)
        return events

    async def handle_batch(self, batch: list[Message]) -> None:
        """Market data without resting orders produces nothing: no coroutine per message."""
        engine = self.engine
        for i, msg in enumerate(batch):
            self._progress = i
            if type(msg) is Bar and msg.symbol == self.symbol and msg.exchange == self.exchange:
                out = engine.on_bar(msg)  # dispatch's most common case
            else:
                out = self.dispatch(msg)
            if out:
                publish = self.router.publish
                for event in out:
                    await publish(event)

    async def handle(self, msg: Message) -> None:
        out = self.dispatch(msg)
        if out:
            publish = self.router.publish
            for event in out:
                await publish(event)
