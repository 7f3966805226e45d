"""Risk, the order actor, the stop-monitor and a venue wired as a group wires them, for the OCO tests.

The venue is the paper exchange actor or the Binance execution actor against tests/fake_binance.py
(loopback, signatures checked, fills back on the user data stream).  Both record what rests at the
venue after every request and market trade, with the stop-monitor's state at that moment
(:attr:`OcoWired.records`): whether the position was guarded -- a stop resting at the venue, or the
monitor watching the stop-loss itself, or an exit already under way -- can be checked for every one.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal as D
from typing import Any, Literal

import anyio

from actors.channels import Channel, Router
from actors.messages import (
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderUnknown,
    PositionChanged,
    RiskApproved,
    RiskRejected,
    StopTriggered,
    SubmitOrder,
    Trade,
)
from actors.order import OrderActor
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState
from actors.stop_monitor import StopMonitor
from adapters.binance.execution import BinanceExecution
from adapters.paper.account import PaperAccountState
from adapters.paper.actor import PaperExchange
from daemon.config import PaperAccount
from daemon.group import oco_allowed
from tests.binance_exec_helpers import CREDS, LTC, account_config
from tests.fake_binance import FakeBinance, open_fake_binance

EX, SYM, VENUE = "binance", "LTC/BTC", "LTCBTC"
ORDER_EVENTS = (OrderAccepted, OrderRejected, OrderFilled, OrderCanceled, OrderExpired, OrderUnknown)
VenueKind = Literal["paper", "binance"]
LTC_AT_START = D("10")  # the fake Binance account's LTC
Resting = tuple[str, str, D]  # (client order id, kind: stop / limit, level)


@dataclass(frozen=True)
class Record:
    """What rested at the venue after one request or market trade, and the monitor then."""

    after: str
    resting: list[Resting]
    position: D  # the position at the venue at that moment
    watching: bool  # the monitor watched the stop-loss itself
    exiting: bool  # the stop had triggered: an exit (ours or the venue's) under way

    @property
    def guarded(self) -> bool:
        has_stop = any(kind == "stop" for _, kind, _ in self.resting)
        return self.position == 0 or has_stop or self.watching or self.exiting


class RecordingPaper(PaperExchange):
    """The paper exchange actor, noting the book after every message it acts on."""

    on_dispatch: Callable[[str], None] = staticmethod(lambda after: None)

    def dispatch(self, msg: Message) -> list[Message]:
        out = super().dispatch(msg)
        self.on_dispatch(type(msg).__name__)
        return out


@dataclass
class OcoWired:
    kind: VenueKind
    state: SymbolState
    router: Router
    risk: RiskActor
    order: OrderActor
    monitor: StopMonitor
    venue: PaperExchange | BinanceExecution
    fake: FakeBinance | None
    seen: list[Message]
    ts: itertools.count[int] = field(default_factory=lambda: itertools.count(10))
    records: list[Record] = field(default_factory=list)

    async def price(self, px: str, venue: bool = True) -> None:
        """A market trade at ``px``: at the venue (``venue``: fills or triggers what rests there) and on
        our feed; the paper venue trades on our feed, so it always sees it."""
        price = D(px)
        if self.fake is not None and venue:
            await self.fake.trade(VENUE, price)
        ts = next(self.ts)
        self.state.last_price = price
        await self.router.publish(
            Trade(exchange=EX, symbol=SYM, ts_event=ts, ts_recv=ts, price=price, size=D(100))
        )

    def resting(self) -> list[Resting]:
        """Our open orders at the venue: (client id, "stop" or "limit", level)."""
        if isinstance(self.venue, PaperExchange):
            out = []
            for o in self.venue.engine.open_orders.values():
                cmd = o.cmd
                stop = cmd.order_type in ("stop_market", "stop_limit")
                level = cmd.stop_price if stop else cmd.price
                out.append((cmd.client_order_id, "stop" if stop else "limit", level or D(0)))
            return out
        assert self.fake is not None
        return [
            (
                o["clientOrderId"],
                "stop" if o["type"].startswith("STOP_LOSS") else "limit",
                D(o["stopPrice"] if o["type"].startswith("STOP_LOSS") else o["price"]),
            )
            for o in self.fake.orders.values()
            if o["symbol"] == VENUE and o["status"] in ("NEW", "PARTIALLY_FILLED")
        ]

    def note(self, after: str) -> None:
        stop = self.monitor.stop
        watching = stop is not None and not stop.triggered and self.monitor._watched(stop.native)[0]
        exiting = stop is not None and stop.triggered
        if isinstance(self.venue, PaperExchange):
            position = self.venue.account.total("LTC")
        else:
            assert self.fake is not None
            position = self.fake.balances["LTC"] - LTC_AT_START
        self.records.append(Record(after, self.resting(), position, watching, exiting))

    def from_the_first_stop(self) -> list[Record]:
        """The records from the first one with a stop resting on (before it, the entry was filling
        and nothing could rest yet)."""
        first = next(i for i, r in enumerate(self.records) if any(k == "stop" for _, k, _ in r.resting))
        return self.records[first:]

    def native(self, kind: str = "oco", state: str = "working") -> str | None:
        """The monitor's native order's client id, when it is of ``kind`` and in ``state``."""
        stop = self.monitor.stop
        n = stop.native if stop is not None else None
        return n.cid if n is not None and n.kind == kind and n.state == state else None

    def exits(self) -> list[OrderIntent]:
        """The monitor's own market exits."""
        return [
            m for m in self.seen if isinstance(m, OrderIntent) and m.order_type == "market" and m.reduce_only
        ]

    def sells(self) -> list[OrderFilled]:
        return [m for m in self.seen if isinstance(m, OrderFilled) and m.side == "sell"]

    def triggers(self) -> list[tuple[str, D]]:
        return [(m.trigger, m.price) for m in self.seen if isinstance(m, StopTriggered)]

    def flat_once(self) -> bool:
        return len([m for m in self.seen if isinstance(m, PositionChanged) and m.quantity == 0]) == 1

    def oco_requests(self) -> int:
        """Lists sent: OCO SubmitOrders handed to the venue."""
        return sum(1 for m in self.seen if isinstance(m, SubmitOrder) and m.oco_take_profit is not None)

    async def enter(self, *, sl: str = "0.003400", tp: str = "0.003600", **plan: Any) -> None:
        """1 LTC bought at market at 0.0035 with stop-loss ``sl`` and take-profit ``tp``."""
        await self.router.publish(
            OrderIntent(
                exchange=EX,
                symbol=SYM,
                ts_event=1,
                ts_recv=1,
                intent_id="entry",
                source="test",
                side="buy",
                order_type="market",
                quantity=D("1"),
                stop_loss=D(sl),
                take_profit=D(tp),
                **{k: D(v) for k, v in plan.items()},
            )
        )
        if self.fake is None:
            await until("entry sent", lambda: self.order.orders)
            await self.price(str(self.state.last_price))  # the paper venue fills on the next trade
        await until("entry filled", lambda: self.order.position.quantity == D("1"))


async def until(what: str, pred: Callable[[], object], timeout: float = 10) -> None:
    try:
        with anyio.fail_after(timeout):
            while not pred():
                await anyio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def paper_venue(router: Router) -> RecordingPaper:
    account = PaperAccountState(
        PaperAccount(
            balances={"BTC": D("1"), "LTC": D("0")}, taker_fee=D("0"), maker_fee=D("0"), slippage_bps=D("0")
        )
    )
    return RecordingPaper(EX, SYM, router, Channel("paper-exchange", 256), LTC, account)


@asynccontextmanager
async def oco_wired(
    kind: VenueKind,
    trail_step: str = "0.000020",
    native_stops: bool = True,
    native_take_profit: bool = True,
    **fake_options: Any,
) -> AsyncIterator[OcoWired]:
    async with _venue(kind, **fake_options) as fake:
        seen: list[Message] = []
        router = Router(seen.append)
        state = SymbolState(EX, SYM, "main")
        state.last_price = D("0.0035")
        limits = RiskLimits(
            native_stops=native_stops,
            native_take_profit=native_take_profit,
            trail_step=D(trail_step),
            max_order_notional=D("10"),
        )
        risk = RiskActor(EX, SYM, router, Channel("risk", 256), state, GroupState(EX, SYM), limits)
        order = OrderActor(EX, SYM, router, Channel("order", 256), state, LTC.tick_size, LTC.step_size)
        risk.leaves_of = order.signed_leaves
        monitor = StopMonitor(
            EX, SYM, router, Channel("stop-monitor", 256), limits, venue_stops=True, tick_size=LTC.tick_size
        )
        venue: PaperExchange | BinanceExecution
        if fake is None:
            venue = paper_venue(router)
        else:
            venue = BinanceExecution(
                EX,
                SYM,
                router,
                Channel("binance-execution", 256),
                LTC,
                "main",
                account_config(fake, recv_window_ms=1000),
                last_price=lambda: state.last_price,
                credentials=CREDS,
                backoff_initial_s=0.05,
            )
        monitor.venue_oco = oco_allowed(venue)
        router.subscribe(risk.inbox, (OrderIntent, PositionChanged))
        router.subscribe(order.inbox, (RiskApproved, *ORDER_EVENTS))
        router.subscribe(
            monitor.inbox, (Trade, RiskApproved, RiskRejected, PositionChanged, *ORDER_EVENTS[:-1])
        )
        venue_kinds = (SubmitOrder, CancelOrder) if fake is not None else (SubmitOrder, CancelOrder, Trade)
        router.subscribe(venue.inbox, venue_kinds)
        w = OcoWired(kind, state, router, risk, order, monitor, venue, fake, seen)
        if isinstance(venue, RecordingPaper):
            venue.on_dispatch = w.note
        elif fake is not None:
            record = fake._record_open

            def both(after: str) -> None:
                record(after)
                w.note(after)

            fake._record_open = both  # type: ignore[method-assign]
        async with anyio.create_task_group() as tg:
            for actor in (risk, order, monitor, venue):
                tg.start_soon(actor.run)
            if isinstance(venue, BinanceExecution):
                await until("user stream caught up", lambda: venue.user_stream.catchups > 0)
                await until("exchange rules", lambda: venue.rules is not None)
            else:
                await w.price("0.0035")
            yield w
            tg.cancel_scope.cancel()


@asynccontextmanager
async def _venue(kind: VenueKind, **fake_options: Any) -> AsyncIterator[FakeBinance | None]:
    if kind == "paper":
        yield None
        return
    async with open_fake_binance(
        order_types_extra=frozenset({"STOP_LOSS", "TAKE_PROFIT"}), **fake_options
    ) as fake:
        yield fake
