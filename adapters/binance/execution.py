"""The Binance spot execution actor: our orders to the venue, the venue's order events back.

:class:`BinanceExecution` is a drop-in replacement for :class:`adapters.paper.actor.PaperExchange`
in a symbol group (a group whose account has ``exchange = "binance"``).

In (inbox): ``SubmitOrder``, ``CancelOrder`` for its (exchange, symbol).
Out (router): ``OrderAccepted``, ``OrderRejected``, ``OrderFilled``, ``OrderCanceled``,
``OrderExpired``, ``OrderUnknown``, ``BalancesChanged``.

- Before an order leaves, the symbol's exchangeInfo filters are applied
  (:meth:`~adapters.binance.filters.SymbolRules.prepare`); a rejection names the filter and nothing
  is sent.  Our types map to Binance's as :func:`adapters.binance.orders.map_order` says;
  ``newClientOrderId`` is our client order id.  Credentials: :mod:`adapters.binance.credentials`.
- Refusals are OrderRejected with the code and message: filter and parameter errors (-1013,
  -1100..-1199), -2010 (insufficient balance; "duplicate" for a client id the venue already has),
  rate limits and bans (not sent).  A refused cancel (-2011 ...) is OrderRejected with a reason
  starting ``cancel rejected:`` (a request rejection: the order's own state stands).
- 5xx, -1000/-1001/-1006/-1007, timeouts, disconnects, unreadable replies: the order's fate is
  unknown.  OrderUnknown is published, then the order is queried by ``origClientOrderId`` (retried
  with backoff until the venue answers) and what the venue says is published: OrderAccepted, its
  fills (from myTrades), OrderCanceled / OrderExpired, or OrderRejected "not found at venue" once
  the venue would refuse the original request (its recvWindow has passed).  It is NEVER re-sent.
- The user data stream (:class:`~adapters.binance.userdata.BinanceUserStream`) delivers
  executionReports (NEW -> OrderAccepted, TRADE -> OrderFilled with commission, maker flag,
  cum/leaves; CANCELED, REJECTED, EXPIRED / EXPIRED_IN_MATCH) and outboundAccountPosition
  (-> BalancesChanged).  After every (re)connect a REST catch-up (open orders, myTrades since the
  last trade seen, and a query of every order still open here but not at the venue) fills the gap.
  A fill is published once per (symbol, trade id), however many paths report it; acceptance and
  the terminal event once per order.
- Reconciliation API for the daemon's restart: :meth:`BinanceExecution.open_orders`,
  :meth:`~BinanceExecution.order_status`, :meth:`~BinanceExecution.recent_fills`,
  :meth:`~BinanceExecution.balances`, and :meth:`~BinanceExecution.adopt` to track an order this
  process did not send.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup

from actors.channels import Channel, Router
from actors.messages import (
    BalancesChanged,
    CancelOrder,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderUnknown,
    Side,
    Stamp,
    SubmitOrder,
    stamp,
)
from actors.runtime import Actor, now_ns
from adapters.binance.account_stream import AccountUserStream
from adapters.binance.credentials import credentials_for
from adapters.binance.errors import (
    BinanceError,
    BinanceOrderRejected,
    BinanceRejected,
    BinanceUnknownOrder,
    OutcomeUnknown,
)
from adapters.binance.filters import (
    BinanceNewOrder,
    Rejection,
    SymbolRules,
)
from adapters.binance.http import BinanceHttpClient
from adapters.binance.orders import VenueOrder, map_order
from adapters.binance.replies import BinanceAccountTrade, BinanceOrderReply
from adapters.binance.signing import Credentials
from adapters.binance.userdata import BinanceUserStream, UserStreamStatistics
from adapters.binance.userdata_schemas import (
    BinanceAccountPosition,
    BinanceExecutionReport,
    UserEvent,
)
from daemon.config_schema import BinanceAccount, Instrument

if TYPE_CHECKING:
    from actors.order import OrderRecord

__all__ = ["BinanceExecution", "ExecutionStatistics"]

ZERO = Decimal(0)
NS_PER_MS = 1_000_000
KEEP_TRADES = 100_000  # (symbol, trade id) pairs remembered for de-duplication
KEEP_ORDERS = 10_000  # finished orders remembered
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED", "PENDING_NEW", "PENDING_CANCEL"})


COMMANDS_IN_FLIGHT = 8


def _positive(value: Decimal) -> bool:
    return value.is_finite() and value > 0


class ExecutionStatistics(msgspec.Struct, frozen=True):
    """Counters of one execution actor, for /status and tests."""

    rules_loaded: bool
    sent: int
    rejected_locally: int
    rejected_by_venue: int
    unknown: int
    resolved: int
    unresolved: int
    fills: int
    duplicate_fills: int
    foreign_events: int
    catchups: int
    user_stream: UserStreamStatistics


@dataclass(slots=True)
class _Order:
    cid: str
    side: Side
    quantity: Decimal
    cum: Decimal = ZERO
    venue_id: str = ""
    accepted: bool = False
    done: bool = False
    unknown: bool = False
    unknown_reason: str = ""
    deadline_ms: int = 0
    foreign: bool = False  # the venue's order with this id is another's: its events are not ours


class BinanceExecution(Actor):
    """One symbol of a Binance spot account; subscribe its inbox to :attr:`subscribes`."""

    kind = "binance-execution"
    subscribes: tuple[type[Message], ...] = (SubmitOrder, CancelOrder)

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        instrument: Instrument,
        account: str,
        config: BinanceAccount,
        *,
        venue_symbol: str = "",
        last_price: Callable[[], Decimal | None] = lambda: None,
        credentials: Credentials | None = None,
        backoff_initial_s: float = 0.2,
        account_stream: AccountUserStream | None = None,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.account = account
        self.config = config
        self.venue_symbol = venue_symbol or f"{instrument.base}{instrument.quote}".upper()
        self.last_price = last_price
        self.credentials = credentials or credentials_for(config)
        self.backoff = (backoff_initial_s, config.resolve_backoff_max_s)
        self.rules: SymbolRules | None = None
        self._client: BinanceHttpClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._orders: OrderedDict[str, _Order] = OrderedDict()
        self._by_venue_id: dict[str, str] = {}
        self._trades: OrderedDict[tuple[str, int], None] = OrderedDict()
        self._last_trade_id = -1
        self._started_ms = int(time.time() * 1000)
        self._tg: TaskGroup | None = None
        self._resolving: set[str] = set()
        # Commands run concurrently (a hung request must not hold up a stop-loss exit), at most
        # COMMANDS_IN_FLIGHT at once; a cancel waits for its own order's submission to finish.
        self._commands = anyio.CapacityLimiter(COMMANDS_IN_FLIGHT)
        self._submitting: dict[str, anyio.Event] = {}
        self._collect: list[Message] | None = None  # reconcile(): events are returned, not published
        self.n = dict.fromkeys(
            (
                "sent",
                "rejected_locally",
                "rejected_by_venue",
                "unknown",
                "resolved",
                "fills",
                "duplicate_fills",
                "foreign_events",
                "catchups",
            ),
            0,
        )
        # The account's shared user data stream (the daemon), or one of its own (standalone).
        self.account_stream = account_stream
        self._leave_stream: Callable[[], None] = lambda: None
        self.user_stream = (
            account_stream.stream
            if account_stream is not None
            else BinanceUserStream(
                config.ws_api_url,
                self.credentials.api_key,
                self.credentials.signer,
                on_event=self.on_user_event,
                on_connect=self.catch_up,
                clock_ms=self._now_ms,
                mode=config.user_stream,
                stream_url=config.stream_url,
                listen_key_api=self._listen_key,
                recv_window_ms=config.recv_window_ms,
                connect_timeout_s=config.connect_timeout_s,
                backoff_initial_s=backoff_initial_s,
                exchange=exchange,
            )
        )

    # --- lifecycle ---------------------------------------------------------------------------

    async def client(self) -> BinanceHttpClient:
        """The REST client (one aiohttp session for the actor's life, opened on first use)."""
        if self._client is None:
            cfg = self.config
            self._session = aiohttp.ClientSession()
            self._client = BinanceHttpClient(
                cfg.rest_url,
                self.credentials.api_key,
                self.credentials.signer,
                recv_window_ms=cfg.recv_window_ms,
                timeout_s=cfg.timeout_s,
                session=self._session,
                conn=f"rest:{self.account}",
            )
        return self._client

    async def aclose(self) -> None:
        if self._session is not None:
            with anyio.move_on_after(5, shield=True):
                await self._session.close()
        self._session = self._client = None

    async def run(self) -> None:
        """The inbox loop, alongside the user data stream, the rules loader and pending resolutions."""
        failed = False
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._resolving.clear()
                tg.start_soon(self._load_rules)
                tg.start_soon(self._refresh_rules)
                if self.account_stream is None:
                    await tg.start(self.user_stream.run)
                else:  # the shared stream runs already: join it and catch up on our own symbol
                    self._leave_stream = self.account_stream.register(self)
                    tg.start_soon(self._first_catch_up)
                for order in self._orders.values():  # after a restart: resolutions still owed
                    if order.unknown:
                        self._spawn_resolve(order)
                await super().run()
                tg.cancel_scope.cancel()
        except Exception:
            failed = True  # the supervisor restarts run(): keep the session and the orders
            raise
        finally:
            self._tg = None
            self._leave_stream()
            if not failed:
                await self.aclose()

    def close_book(self, reason: str) -> list[Message]:
        """The group stops: orders stay at the venue (restart reconciliation picks them up)."""
        return []

    def statistics(self) -> ExecutionStatistics:
        n = self.n
        return ExecutionStatistics(
            rules_loaded=self.rules is not None,
            sent=n["sent"],
            rejected_locally=n["rejected_locally"],
            rejected_by_venue=n["rejected_by_venue"],
            unknown=n["unknown"],
            resolved=n["resolved"],
            unresolved=sum(o.unknown for o in self._orders.values()),
            fills=n["fills"],
            duplicate_fills=n["duplicate_fills"],
            foreign_events=n["foreign_events"],
            catchups=n["catchups"],
            user_stream=self.user_stream.statistics(),
        )

    async def _load_rules(self) -> None:
        delay = self.backoff[0]
        while self.rules is None:
            try:
                await self._ensure_rules()
            except (BinanceError, KeyError) as exc:
                self.log.warning("exchangeInfo failed (%s): retrying in %.1fs", exc, delay)
                await anyio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 30.0)

    async def _refresh_rules(self) -> None:
        """Reload exchangeInfo every ``exchange_info_refresh_s``: filters and order types change
        (tick sizes, minimum notionals, a symbol halted); a failed refresh keeps the rules in force."""
        while True:
            await anyio.sleep(self.config.exchange_info_refresh_s)
            try:
                client = await self.client()
                info = await client.exchange_info()
                sym = next((s for s in info.symbols if s.symbol == self.venue_symbol), None)
                if sym is None:
                    raise KeyError(f"{self.venue_symbol} is not in exchangeInfo")
                rules = SymbolRules.from_symbol(sym)
            except (BinanceError, KeyError) as exc:
                self.n["rules_refresh_failures"] = self.n.get("rules_refresh_failures", 0) + 1
                self.log.warning("exchangeInfo refresh failed (%s): keeping the rules in force", exc)
                continue
            if rules != self.rules:
                self.log.info("exchangeInfo refreshed: %s rules changed", self.venue_symbol)
            self.rules = rules
            self.n["rules_refreshes"] = self.n.get("rules_refreshes", 0) + 1

    async def _ensure_rules(self) -> SymbolRules:
        if self.rules is None:
            client = await self.client()
            await client.sync_time()
            info = await client.exchange_info()
            sym = next((s for s in info.symbols if s.symbol == self.venue_symbol), None)
            if sym is None:
                raise KeyError(f"{self.venue_symbol} is not in exchangeInfo")
            self.rules = SymbolRules.from_symbol(sym)
        return self.rules

    def _now_ms(self) -> int:
        return self._client.now_ms() if self._client is not None else int(time.time() * 1000)

    async def _first_catch_up(self) -> None:
        """Joining a running shared stream: this symbol's catch-up, retried until it works."""
        delay = self.backoff[0]
        while True:
            try:
                await self.catch_up()
                return
            except BinanceError as exc:
                self.log.warning("catch-up failed (%s): retrying in %.1fs", exc, delay)
                await anyio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 30.0)

    async def listen_key(self, method: str, key: str) -> str:
        """The account stream's listenKey calls go through this actor's REST client."""
        return await self._listen_key(method, key)

    async def _listen_key(self, method: str, key: str) -> str:
        client = await self.client()
        return await client.listen_key("PUT" if method == "PUT" else "POST", key)

    # --- commands ----------------------------------------------------------------------------

    async def handle(self, msg: Message) -> None:
        """Start the command and return: requests overlap (never two for one order at once)."""
        if msg.symbol != self.symbol or msg.exchange != self.exchange:
            self.n["foreign_events"] += 1
            return
        if not isinstance(msg, SubmitOrder | CancelOrder):
            self.n["foreign_events"] += 1
            return
        if self._tg is None:  # not running (tests drive handle() directly): one at a time
            await self._command(msg)
            return
        if isinstance(msg, SubmitOrder):
            self._submitting.setdefault(msg.client_order_id, anyio.Event())
        self._tg.start_soon(self._command, msg, name=f"{type(msg).__name__}:{msg.client_order_id}")

    async def _command(self, msg: SubmitOrder | CancelOrder) -> None:
        cid = msg.client_order_id
        if isinstance(msg, SubmitOrder):
            try:
                async with self._commands:
                    await self._submit(msg)
            finally:
                done = self._submitting.pop(cid, None)
                if done is not None:
                    done.set()
            return
        pending = self._submitting.get(cid)
        if pending is not None:
            await pending.wait()  # cancel after the submission's outcome (or its UNKNOWN) is known
        async with self._commands:
            await self._cancel(cid)

    async def _submit(self, msg: SubmitOrder) -> None:
        cid = msg.client_order_id
        if cid in self._orders:
            self.n["rejected_locally"] += 1
            await self._publish(
                OrderRejected(
                    **self._stamp(), client_order_id=cid, reason="duplicate client order id: already sent"
                )
            )
            return
        try:
            rules = await self._ensure_rules()
        except (BinanceError, KeyError) as exc:
            self.n["rejected_locally"] += 1
            await self._publish(
                OrderRejected(
                    **self._stamp(), client_order_id=cid, reason=f"not sent: no exchangeInfo: {exc}"
                )
            )
            return
        last = self.last_price()
        wire = map_order(msg, self.venue_symbol, last, limit_maker=self.config.limit_maker)
        try:
            prepared: BinanceNewOrder | Rejection = rules.prepare(wire, last)
        except ArithmeticError as exc:  # never leave an order without an answer
            prepared = Rejection("PARAMETERS", f"filters could not be applied: {exc!r}")
        if not isinstance(prepared, Rejection) and prepared.quantity != wire.quantity:
            step = rules.step_size
            prepared = Rejection("LOT_SIZE", f"quantity {wire.quantity} is not a multiple of stepSize {step}")
        if isinstance(prepared, Rejection):
            self.n["rejected_locally"] += 1
            reason = f"{prepared.filter}: {prepared.reason}"
            await self._publish(OrderRejected(**self._stamp(), client_order_id=cid, reason=reason))
            return
        order = self._track(_Order(cid, msg.side, msg.quantity))
        client = await self.client()
        self.n["sent"] += 1
        try:
            reply = await client.new_order(prepared, "FULL")
        except OutcomeUnknown as exc:
            await self._unknown(order, str(exc), exc.deadline_ms)
            return
        except BinanceOrderRejected as exc:
            duplicate = "duplicate" in str(exc).lower()
            await self._venue_rejected(order, f"duplicate client order id: {exc}" if duplicate else str(exc))
            order.foreign = duplicate  # the venue's order with this id is not this submission's
            return
        except BinanceRejected as exc:
            await self._venue_rejected(order, str(exc))
            return
        except BinanceError as exc:  # not expected for an order call: treat as unknown, never re-send
            await self._unknown(order, str(exc), client.now_ms() + self.config.recv_window_ms)
            return
        await self._apply_reply(order, reply)

    async def _unknown(self, order: _Order, reason: str, deadline_ms: int) -> None:
        """The submission's outcome is unknown: say so (unless the stream already told us), then ask."""
        order.unknown, order.unknown_reason, order.deadline_ms = True, reason, deadline_ms
        self.n["unknown"] += 1
        if not order.accepted and not order.done:
            await self._publish(OrderUnknown(**self._stamp(), client_order_id=order.cid, reason=reason))
        self._spawn_resolve(order)

    async def _venue_rejected(self, order: _Order, reason: str) -> None:
        self.n["rejected_by_venue"] += 1
        order.done = True
        await self._publish(OrderRejected(**self._stamp(), client_order_id=order.cid, reason=reason))

    async def _cancel(self, cid: str) -> None:
        client = await self.client()
        try:
            reply = await client.cancel_order(self.venue_symbol, cid)
        except BinanceRejected as exc:
            await self._publish(
                OrderRejected(**self._stamp(), client_order_id=cid, reason=f"cancel rejected: {exc}")
            )
            return
        except BinanceError as exc:  # the cancel's outcome is unknown: ask the venue what it did
            await self._publish(
                OrderRejected(
                    **self._stamp(), client_order_id=cid, reason=f"cancel rejected: outcome unknown: {exc}"
                )
            )
            order = self._orders.get(cid)
            if order is not None and not order.unknown:
                order.unknown, order.unknown_reason = True, f"cancel outcome unknown: {exc}"
                order.deadline_ms = client.now_ms() + self.config.recv_window_ms
                self._spawn_resolve(order)
            return
        order = self._orders.get(cid)
        if order is None:
            await self._publish(
                OrderCanceled(**self._stamp(), client_order_id=cid, venue_order_id=str(reply.orderId))
            )
            return
        await self._apply_reply(order, reply, query_trades=True)

    # --- UNKNOWN outcomes --------------------------------------------------------------------

    def _spawn_resolve(self, order: _Order) -> None:
        if self._tg is not None and order.cid not in self._resolving:
            self._resolving.add(order.cid)
            self._tg.start_soon(self._resolve, order, name=f"resolve:{order.cid}")

    async def _resolve(self, order: _Order) -> None:
        """Ask the venue about ``order`` until it answers; publish what it says.  Never re-send."""
        delay = self.backoff[0]
        client = await self.client()
        try:
            while True:
                try:
                    reply = await client.resolve_unknown(
                        self.venue_symbol, order.cid, deadline_ms=order.deadline_ms
                    )
                    break
                except BinanceError as exc:
                    self.log.warning(
                        "order %s still unknown (%s): asking again in %.1fs", order.cid, exc, delay
                    )
                    await anyio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self.backoff[1])
            order.unknown = False
            self.n["resolved"] += 1
            if reply is None:
                self.log.warning("order %s not found at venue: %s", order.cid, order.unknown_reason)
                if not order.accepted and not order.done:
                    await self._venue_rejected(order, f"not found at venue: {order.unknown_reason}")
                return
            await self._apply_reply(order, reply, query_trades=True)
        finally:
            self._resolving.discard(order.cid)

    # --- what the venue says -----------------------------------------------------------------

    async def _apply_reply(
        self, order: _Order, reply: BinanceOrderReply, *, query_trades: bool = False
    ) -> None:
        """An order reply (new, query, cancel): acceptance, fills, then its end, each published once."""
        status = reply.status
        if status == "REJECTED":
            if not order.accepted:
                await self._venue_rejected(order, "rejected by venue")
            return
        ts = (reply.transactTime or reply.updateTime) * NS_PER_MS or now_ns()
        await self._accept(order, str(reply.orderId), ts)
        if reply.fills:
            for f in reply.fills:  # FULL reply of a new order: these fills took liquidity
                await self._fill(order, f.tradeId, f.qty, f.price, f.commission, f.commissionAsset, False, ts)
        elif query_trades and reply.executedQty > order.cum:
            client = await self.client()
            trades = await client.my_trades(self.venue_symbol, order_id=reply.orderId)
            for t in sorted(trades, key=lambda t: t.id):
                await self._trade(order, t)
        if status == "CANCELED":
            await self._finish(
                order,
                OrderCanceled(**self._stamp(), client_order_id=order.cid, venue_order_id=order.venue_id),
            )
        elif status in ("EXPIRED", "EXPIRED_IN_MATCH"):
            await self._finish(
                order, OrderExpired(**self._stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )

    async def on_user_event(self, event: UserEvent) -> None:
        """One user data stream event (the stream's handler)."""
        if isinstance(event, BinanceExecutionReport):
            await self._on_report(event)
        elif isinstance(event, BinanceAccountPosition):
            free = {b.a: b.f for b in event.B}
            locked = {b.a: b.l for b in event.B}
            ts = event.E * NS_PER_MS
            await self.router.publish(
                BalancesChanged(
                    exchange=self.exchange,
                    symbol="*",
                    ts_event=ts,
                    ts_recv=now_ns(),
                    account=self.account,
                    free=free,
                    locked=locked,
                )
            )

    async def _on_report(self, er: BinanceExecutionReport) -> None:
        order = self._orders.get(er.client_order_id) if er.s == self.venue_symbol else None
        if order is None or order.foreign:
            self.n["foreign_events"] += 1
            return
        ts = (er.T or er.E) * NS_PER_MS
        x = er.x
        if x == "REJECTED":
            if not order.accepted:
                await self._venue_rejected(order, f"rejected by venue: {er.r}")
            return
        await self._accept(order, str(er.i), ts)
        if x == "TRADE":
            fee = er.n if er.n is not None else ZERO
            await self._fill(order, er.t, er.l, er.L, fee, er.N or "", er.m, ts)
        elif x == "CANCELED":
            await self._finish(
                order,
                OrderCanceled(**self._stamp(), client_order_id=order.cid, venue_order_id=order.venue_id),
            )
        elif x in ("EXPIRED", "TRADE_PREVENTION") or er.X in ("EXPIRED", "EXPIRED_IN_MATCH"):
            await self._finish(
                order, OrderExpired(**self._stamp(), client_order_id=order.cid, venue_order_id=order.venue_id)
            )

    async def _accept(self, order: _Order, venue_id: str, ts: int) -> None:
        if not order.venue_id:
            order.venue_id = venue_id
            self._by_venue_id[venue_id] = order.cid
        if order.accepted:
            return
        order.accepted = True
        await self._publish(
            OrderAccepted(**self._stamp(ts), client_order_id=order.cid, venue_order_id=venue_id)
        )

    async def _trade(self, order: _Order, t: BinanceAccountTrade) -> None:
        ts = t.time * NS_PER_MS
        await self._fill(order, t.id, t.qty, t.price, t.commission, t.commissionAsset, t.isMaker, ts)

    async def _fill(
        self,
        order: _Order,
        trade_id: int,
        qty: Decimal,
        price: Decimal,
        fee: Decimal,
        fee_asset: str,
        maker: bool,
        ts: int,
    ) -> None:
        key = (self.venue_symbol, trade_id)
        if key in self._trades:
            self.n["duplicate_fills"] += 1
            return
        if not (_positive(qty) and _positive(price) and fee.is_finite() and fee >= 0):
            # A garbled reply: never publish it.  The trade id is not marked seen, so the user
            # stream or the next catch-up still delivers the real fill.
            self.n["bad_fills"] = self.n.get("bad_fills", 0) + 1
            self.log.error(
                "fill %s of %s refused: qty %s, price %s, fee %s (not finite or out of range)",
                trade_id,
                order.cid,
                qty,
                price,
                fee,
            )
            return
        self._trades[key] = None
        if len(self._trades) > KEEP_TRADES:
            self._trades.popitem(last=False)
        self._last_trade_id = max(self._last_trade_id, trade_id)
        order.cum += qty
        leaves = max(order.quantity - order.cum, ZERO)
        if leaves == 0:
            order.done = True
        self.n["fills"] += 1
        await self._publish(
            OrderFilled(
                **self._stamp(ts),
                client_order_id=order.cid,
                venue_order_id=order.venue_id,
                trade_id=str(trade_id),
                side=order.side,
                last_qty=qty,
                last_price=price,
                cum_qty=order.cum,
                leaves_qty=leaves,
                fee=fee,
                fee_asset=fee_asset,
                liquidity="maker" if maker else "taker",
            )
        )

    async def _finish(self, order: _Order, msg: OrderCanceled | OrderExpired) -> None:
        if order.done:
            return
        order.done = True
        await self._publish(msg)

    async def _publish(self, msg: Message) -> None:
        if self._collect is not None:
            self._collect.append(msg)
            return
        await self.router.publish(msg)

    def _stamp(self, ts_event: int | None = None) -> Stamp:
        now = now_ns()
        return stamp(self.exchange, self.symbol, ts_event or now, now)

    # --- catch-up after every (re)connect ---------------------------------------------------------

    async def catch_up(self) -> None:
        """Open orders, trades since the last one seen, and every order open here but not at the venue."""
        client = await self.client()
        opens = await client.open_orders(self.venue_symbol)
        open_ids = {o.clientOrderId for o in opens}
        for o in opens:
            order = self._orders.get(o.clientOrderId)
            if order is not None and not order.unknown:
                await self._accept(order, str(o.orderId), (o.updateTime or o.transactTime) * NS_PER_MS)
        for t in await self._trades_since():
            cid = self._by_venue_id.get(str(t.orderId))
            order = self._orders.get(cid) if cid else None
            if order is not None:
                await self._trade(order, t)
        for order in list(self._orders.values()):
            if order.done or order.unknown or order.cid in open_ids or order.cid in self._resolving:
                continue
            try:
                reply = await client.query_order(self.venue_symbol, order.cid)
            except BinanceUnknownOrder:
                continue  # its request is still in flight; its reply (or the UNKNOWN path) decides
            await self._apply_reply(order, reply, query_trades=True)
        self.n["catchups"] += 1

    async def _trades_since(self) -> list[BinanceAccountTrade]:
        client = await self.client()
        out: list[BinanceAccountTrade] = []
        from_id = self._last_trade_id + 1 if self._last_trade_id >= 0 else None
        start = None if from_id is not None else self._started_ms - 60_000
        while True:
            page = await client.my_trades(self.venue_symbol, from_id=from_id, start_time_ms=start, limit=1000)
            out.extend(page)
            if len(page) < 1000:
                return sorted(out, key=lambda t: t.id)
            from_id, start = max(t.id for t in page) + 1, None

    # --- bookkeeping -------------------------------------------------------------------------

    def _track(self, order: _Order) -> _Order:
        self._orders[order.cid] = order
        if len(self._orders) > KEEP_ORDERS:
            for cid in list(self._orders)[: len(self._orders) - KEEP_ORDERS]:
                old = self._orders[cid]
                if old.done and not old.unknown:
                    del self._orders[cid]
                    self._by_venue_id.pop(old.venue_id, None)
        return order

    def adopt(self, client_order_id: str, side: Side, quantity: Decimal, cum_qty: Decimal = ZERO) -> None:
        """Track an order this process did not send (restart reconciliation): its events are published."""
        self._track(_Order(client_order_id, side, quantity, cum_qty, accepted=True))

    # --- reconciliation API ------------------------------------------------------------------

    async def reconcile(self, orders: list[OrderRecord]) -> list[Message]:
        """Restart: the events that bring the journal's open ``orders`` up to the venue's truth.

        Each order is tracked again (fills the journal has are not repeated), queried by client
        order id, and its acceptance, missing fills (myTrades) and end are returned, not published.
        An order the venue does not know is asked about once more after a recvWindow (it may have
        been in flight at the crash), then rejected "not found at venue".
        """
        out: list[Message] = []
        self._collect = out
        try:
            missing: list[_Order] = []
            for rec in orders:
                order = self._track(
                    _Order(rec.cid, rec.intent.side, rec.quantity, rec.cum_qty, venue_id=rec.venue_order_id)
                )
                order.accepted = bool(rec.venue_order_id)
                if rec.venue_order_id:
                    self._by_venue_id[rec.venue_order_id] = rec.cid
                for tid in rec.trade_ids:
                    if tid.isdigit():
                        self._trades[(self.venue_symbol, int(tid))] = None
                if not await self._reconcile_one(order):
                    missing.append(order)
            if missing:
                await anyio.sleep(self.config.recv_window_ms / 1000 + 1)
                for order in missing:
                    if not await self._reconcile_one(order) and not order.done:
                        await self._venue_rejected(order, "not found at venue: unknown after a restart")
        finally:
            self._collect = None
        return out

    async def _reconcile_one(self, order: _Order) -> bool:
        client = await self.client()
        try:
            reply = await client.query_order(self.venue_symbol, order.cid)
        except BinanceUnknownOrder:
            return False
        await self._apply_reply(order, reply, query_trades=True)
        return True

    async def open_orders(self) -> list[VenueOrder]:
        """Every open order of this symbol at the venue."""
        client = await self.client()
        return [VenueOrder.from_reply(o, self.symbol) for o in await client.open_orders(self.venue_symbol)]

    async def cancel_foreign(self, client_order_id: str) -> None:
        """Cancel an open order of this symbol that the daemon did not send (restart policy)."""
        client = await self.client()
        await client.cancel_order(self.venue_symbol, client_order_id)

    async def order_status(self, client_order_id: str) -> VenueOrder | None:
        """The venue's view of one order, ``None`` if it does not know it."""
        client = await self.client()
        try:
            reply = await client.query_order(self.venue_symbol, client_order_id)
        except BinanceUnknownOrder:
            return None
        return VenueOrder.from_reply(reply, self.symbol)

    async def recent_fills(self, since_ms: int) -> list[OrderFilled]:
        """Our fills of this symbol since ``since_ms`` (venue time), with cum/leaves per order."""
        client = await self.client()
        trades = await client.my_trades(self.venue_symbol, start_time_ms=since_ms, limit=1000)
        out: list[OrderFilled] = []
        orders: dict[int, tuple[BinanceOrderReply, list[BinanceAccountTrade]]] = {}
        for t in sorted(trades, key=lambda t: t.id):
            if t.orderId not in orders:
                reply = await client.query_order(self.venue_symbol, order_id=t.orderId)
                history = await client.my_trades(self.venue_symbol, order_id=t.orderId, limit=1000)
                orders[t.orderId] = (reply, sorted(history, key=lambda h: h.id))
            reply, history = orders[t.orderId]
            cum = sum((h.qty for h in history if h.id <= t.id), ZERO)
            ts = t.time * NS_PER_MS
            out.append(
                OrderFilled(
                    exchange=self.exchange,
                    symbol=self.symbol,
                    ts_event=ts,
                    ts_recv=now_ns(),
                    client_order_id=reply.clientOrderId,
                    venue_order_id=str(t.orderId),
                    trade_id=str(t.id),
                    side="buy" if t.isBuyer else "sell",
                    last_qty=t.qty,
                    last_price=t.price,
                    cum_qty=cum,
                    leaves_qty=max(reply.origQty - cum, ZERO),
                    fee=t.commission,
                    fee_asset=t.commissionAsset,
                    liquidity="maker" if t.isMaker else "taker",
                )
            )
        return out

    async def balances(self) -> BalancesChanged:
        """The account's balances (``GET /api/v3/account``)."""
        client = await self.client()
        acct = await client.account()
        now = now_ns()
        return BalancesChanged(
            exchange=self.exchange, symbol="*", ts_event=(acct.updateTime * NS_PER_MS) or now, ts_recv=now,
            account=self.account, free={b.asset: b.free for b in acct.balances},
            locked={b.asset: b.locked for b in acct.balances},
        )  # fmt: skip
