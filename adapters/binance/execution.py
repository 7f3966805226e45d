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
- A SubmitOrder with ``replaces`` goes as ``POST /api/v3/order/cancelReplace``
  (``cancelReplaceMode=STOP_ON_FAILURE``): the old order's OrderCanceled, then the new one's events;
  -2022 (cancel failed) rejects the new one and queries the old; -2021 (cancel done, new order
  failed) publishes both outcomes; an unknown outcome resolves both orders by query.
- A SubmitOrder with ``oco_take_profit`` is an OCO list (:meth:`BinanceExecution.submit_oco`,
  ``POST /api/v3/orderList/oco``): its two legs (:func:`actors.oco.oco_legs`) publish their events
  under their own client order ids; refused unsent where exchangeInfo says ``ocoAllowed`` false.
  A CancelOrder for the list's id cancels the list (``DELETE /api/v3/orderList``: both legs'
  OrderCanceled; refused: OrderRejected "cancel rejected: ..." under the list's id, and each leg
  is queried: a list that cannot be canceled has usually fired, its fill is then published).
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

The parts, one module each: :mod:`adapters.binance.order_tracker` (the tracked orders and the
venue's word applied to them once), :mod:`adapters.binance.order_reconciler` (the catch-up and the
restart reconciliation), :mod:`adapters.binance.venue_queries` (the restart's read-only queries
and the foreign-order cancel) and :mod:`adapters.binance.rules_loader` (exchangeInfo rules).

Clock: the REST client signs with the account's shared
:class:`~adapters.binance.server_clock.ServerClock` (the shared stream's ``clock``), the same one
the user data stream's subscription is signed with (:meth:`BinanceExecution.sync_clock`).

Health: the REST client records every request in the account's
:class:`~adapters.binance.venue_health.RestHealth` (the shared stream's ``rest``, or the actor's
own), and the actor pings the venue (``GET /api/v3/ping``) whenever
:meth:`~adapters.binance.venue_health.RestHealth.probe_due` says so, so that an outage shows while
nothing else is asked, and its end shows soon after.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import aiohttp
import anyio
import msgspec
from anyio.abc import TaskGroup

from actors.channels import Channel, Router
from actors.histogram import ON_WIRE
from actors.messages import (
    BalancesChanged,
    CancelOrder,
    Message,
    OrderCanceled,
    OrderFilled,
    OrderRejected,
    OrderUnknown,
    Side,
    SubmitOrder,
)
from actors.oco import leg_ids, oco_legs
from actors.runtime import Actor, now_ns
from adapters.binance import venue_health
from adapters.binance.account_stream import AccountUserStream
from adapters.binance.credentials import credentials_for
from adapters.binance.errors import (
    BinanceCancelReplaceFailed,
    BinanceError,
    BinanceOrderRejected,
    BinanceRejected,
    OutcomeUnknown,
)
from adapters.binance.filters import BinanceNewOrder, Rejection, SymbolRules
from adapters.binance.http import BinanceHttpClient
from adapters.binance.oco import oco_request, take_profit_leg
from adapters.binance.order_reconciler import OrderReconciler
from adapters.binance.order_tracker import OrderTracker, TrackedOrder
from adapters.binance.orders import VenueOrder, map_order, stop_loss_as_limit
from adapters.binance.replies import BinanceOrderReply
from adapters.binance.rules_loader import SymbolRulesLoader
from adapters.binance.schemas import NS_PER_MS
from adapters.binance.signing import Credentials
from adapters.binance.userdata import BinanceUserStream, UserStreamStatistics
from adapters.binance.userdata_schemas import BinanceAccountPosition, BinanceExecutionReport, UserEvent
from adapters.binance.venue_health import RestHealth
from adapters.binance.venue_queries import BinanceVenueQueries
from daemon.config_schema import BinanceAccount, Instrument

if TYPE_CHECKING:
    from actors.order import OrderRecord

__all__ = ["BinanceExecution", "ExecutionStatistics"]

ZERO = Decimal(0)


def _reply_of(data: object) -> BinanceOrderReply | None:
    """One half of a failed cancelReplace's ``data``: the order reply, or None (an error body)."""
    if not isinstance(data, dict) or "orderId" not in data:
        return None
    try:
        return msgspec.convert(data, BinanceOrderReply, strict=False)
    except msgspec.ValidationError:
        return None


COMMANDS_IN_FLIGHT = 8


class ExecutionStatistics(msgspec.Struct, frozen=True):
    """Counters of one execution actor, for /status and tests."""

    rules_loaded: bool
    rules_failures: int
    rules_last_error: str
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
        self._client: BinanceHttpClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tg: TaskGroup | None = None
        self._resolving: set[str] = set()
        # Commands run concurrently (a hung request must not hold up a stop-loss exit), at most
        # COMMANDS_IN_FLIGHT at once; a cancel waits for its own order's submission to finish.
        self._commands = anyio.CapacityLimiter(COMMANDS_IN_FLIGHT)
        self._submitting: dict[str, anyio.Event] = {}
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
        self.tracker = OrderTracker(
            exchange, symbol, self.venue_symbol, router, client=self.client, counters=self.n, log=self.log
        )
        self.reconciler = OrderReconciler(
            self.tracker, self.client, recv_window_ms=config.recv_window_ms, counters=self.n
        )
        self.queries = BinanceVenueQueries(
            self.client, exchange=exchange, symbol=symbol, venue_symbol=self.venue_symbol, account=account
        )
        self.rules_loader = SymbolRulesLoader(
            self.client,
            self.venue_symbol,
            refresh_s=config.exchange_info_refresh_s,
            backoff_initial_s=backoff_initial_s,
            counters=self.n,
            log=self.log,
        )
        # The account's shared user data stream (the daemon), or one of its own (standalone).
        self.account_stream = account_stream
        self.rest_health = account_stream.rest if account_stream is not None else RestHealth(account)
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
                sync_clock=self.sync_clock,
                mode=config.user_stream,
                stream_url=config.stream_url,
                listen_key_api=self._listen_key,
                keepalive_s=config.listen_key_keepalive_s,
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
                health=self.rest_health,
                clock=self.account_stream.clock if self.account_stream is not None else None,
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
                tg.start_soon(self.rules_loader.load)
                tg.start_soon(self.rules_loader.refresh)
                tg.start_soon(self._probe_rest)
                if self.account_stream is None:
                    await tg.start(self.user_stream.run)
                else:  # the shared stream runs already: join it and catch up on our own symbol
                    self._leave_stream = self.account_stream.register(self)
                    tg.start_soon(self._first_catch_up)
                for order in self.tracker.orders.values():  # after a restart: resolutions still owed
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
            rules_failures=self.rules_loader.failures,
            rules_last_error=self.rules_loader.last_error,
            sent=n["sent"],
            rejected_locally=n["rejected_locally"],
            rejected_by_venue=n["rejected_by_venue"],
            unknown=n["unknown"],
            resolved=n["resolved"],
            unresolved=sum(o.unknown for o in self.tracker.orders.values()),
            fills=n["fills"],
            duplicate_fills=n["duplicate_fills"],
            foreign_events=n["foreign_events"],
            catchups=n["catchups"],
            user_stream=self.user_stream.statistics(),
        )

    @property
    def rules(self) -> SymbolRules | None:
        """The symbol's exchangeInfo rules, ``None`` until they are loaded."""
        return self.rules_loader.rules

    def _now_ms(self) -> int:
        return self._client.now_ms() if self._client is not None else int(time.time() * 1000)

    async def _probe_rest(self) -> None:
        """Ping the venue when the account's REST health says a probe is due (never two at once)."""
        health = self.rest_health
        while True:
            await anyio.sleep(venue_health.PROBE_CHECK_S * random.uniform(0.5, 1.0))
            if not health.probe_due(time.time_ns()):
                continue
            health.probing = True
            try:
                await (await self.client()).ping()
            except BinanceError as exc:  # recorded by the client: the verdict is in rest_health
                self.log.debug("REST probe failed: %s", exc)
            finally:
                health.probing = False

    def problems(self, now_ns: int, grace_s: float) -> list[str]:
        """Why this symbol cannot trade now (each after ``grace_s``): its rules missing; standalone
        (no shared account stream) also the account's REST and user data stream."""
        found = [self.rules_loader.problem(now_ns, grace_s)]
        if self.account_stream is None:
            found += [self.rest_health.problem(now_ns, grace_s), self.user_stream.problem(now_ns, grace_s)]
        return [p for p in found if p is not None]

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

    async def sync_clock(self, force: bool) -> None:
        """Measure the venue's clock (shared with the account's stream) when due, or now with ``force``."""
        await (await self.client()).ensure_clock(force)

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
            latency, intent_id = self.router.latency, msg.intent_id
            on_wire = ON_WIRE.set(lambda: latency.sent(intent_id))  # called by the REST client
            try:
                if msg.oco_take_profit is not None:  # an OCO list (it takes the limiter itself)
                    await self.submit_oco(msg.client_order_id, *oco_legs(msg))
                else:
                    async with self._commands:
                        await self._submit(msg)
            finally:
                ON_WIRE.reset(on_wire)
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
        tracker = self.tracker
        cid = msg.client_order_id
        if cid in tracker.orders:
            self.n["rejected_locally"] += 1
            await tracker.publish(
                OrderRejected(
                    **tracker.stamp(), client_order_id=cid, reason="duplicate client order id: already sent"
                )
            )
            return
        try:
            rules = await self.rules_loader.ensure()
        except (BinanceError, KeyError) as exc:
            self.n["rejected_locally"] += 1
            await tracker.publish(
                OrderRejected(
                    **tracker.stamp(), client_order_id=cid, reason=f"not sent: no exchangeInfo: {exc}"
                )
            )
            return
        last = self.last_price()
        wire = self._stop_limit_if_needed(
            map_order(msg, self.venue_symbol, last, limit_maker=self.config.limit_maker), rules
        )
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
            await tracker.publish(OrderRejected(**tracker.stamp(), client_order_id=cid, reason=reason))
            return
        order = tracker.track(TrackedOrder(cid, msg.side, msg.quantity))
        client = await self.client()
        self.n["sent"] += 1
        if msg.replaces:
            await self._replace(order, prepared, msg.replaces, client)
            return
        try:
            reply = await client.new_order(prepared, "FULL")
        except OutcomeUnknown as exc:
            await self._unknown(order, str(exc), exc.deadline_ms)
            return
        except BinanceOrderRejected as exc:
            duplicate = "duplicate" in str(exc).lower()
            await tracker.venue_rejected(
                order, f"duplicate client order id: {exc}" if duplicate else str(exc)
            )
            order.foreign = duplicate  # the venue's order with this id is not this submission's
            return
        except BinanceRejected as exc:
            await tracker.venue_rejected(order, str(exc))
            return
        except BinanceError as exc:  # not expected for an order call: treat as unknown, never re-send
            await self._unknown(order, str(exc), client.now_ms() + self.config.recv_window_ms)
            return
        await tracker.apply_reply(order, reply)

    def _stop_limit_if_needed(self, wire: BinanceNewOrder, rules: SymbolRules) -> BinanceNewOrder:
        """A STOP_LOSS as STOP_LOSS_LIMIT where the symbol allows only that (see ``stop_loss_as_limit``)."""
        return stop_loss_as_limit(wire, rules.order_types, rules.tick_size, self.config.stop_limit_offset_pct)

    async def _replace(
        self, order: TrackedOrder, prepared: BinanceNewOrder, old_cid: str, client: BinanceHttpClient
    ) -> None:
        """``POST /api/v3/order/cancelReplace`` (STOP_ON_FAILURE): cancel ``old_cid``, place ``order``.

        Success: the old order's OrderCanceled, then the new one's events.  -2022 (the cancel
        failed, nothing placed): the new order is rejected ("replace refused: ..."), the old one
        stands -- it is queried, since a failed cancel usually means it filled.  -2021 (the cancel
        went through, the new order failed): the old one's OrderCanceled, then the new one's
        rejection.  Unknown outcome: both orders are resolved by query, never re-sent.
        """
        tracker = self.tracker
        old = tracker.orders.get(old_cid)
        self.n["replaces"] = self.n.get("replaces", 0) + 1
        try:
            reply = await client.cancel_replace(old_cid, prepared)
        except OutcomeUnknown as exc:
            await self._unknown(order, str(exc), exc.deadline_ms)
            if old is not None and not old.done:
                self._resolve_later(old, f"cancel-replace outcome unknown: {exc}", exc.deadline_ms)
            return
        except BinanceCancelReplaceFailed as exc:
            data = exc.data or {}
            halves = f"cancel {data.get('cancelResult', '?')}, new order {data.get('newOrderResult', '?')}"
            canceled = (
                _reply_of(data.get("cancelResponse")) if data.get("cancelResult") == "SUCCESS" else None
            )
            placed = (
                _reply_of(data.get("newOrderResponse")) if data.get("newOrderResult") == "SUCCESS" else None
            )
            if old is not None and canceled is not None:
                await tracker.apply_reply(old, canceled, query_trades=True)
            elif old is not None and not old.done:  # the old one stands (or filled): ask
                self._resolve_later(old, f"cancel-replace: {halves}", client.now_ms())
            if placed is not None:
                await tracker.apply_reply(order, placed)
            else:
                await tracker.venue_rejected(order, f"replace refused: {halves}: {exc}")
            return
        except BinanceRejected as exc:  # the request was refused as a whole: nothing changed
            await tracker.venue_rejected(order, f"replace refused: {exc}")
            return
        except BinanceError as exc:  # not expected for an order call: unknown, never re-sent
            deadline = client.now_ms() + self.config.recv_window_ms
            await self._unknown(order, str(exc), deadline)
            if old is not None and not old.done:
                self._resolve_later(old, f"cancel-replace outcome unknown: {exc}", deadline)
            return
        if old is not None and reply.cancelResponse is not None:
            await tracker.apply_reply(old, reply.cancelResponse, query_trades=True)
        if reply.newOrderResponse is not None:
            await tracker.apply_reply(order, reply.newOrderResponse)

    async def submit_oco(self, list_cid: str, stop: SubmitOrder, take_profit: SubmitOrder) -> None:
        """Rest ``stop`` (a stop_market or stop_limit) and ``take_profit`` (a limit, sent as LIMIT_MAKER)
        as one OCO list, ``listClientOrderId`` = ``list_cid`` (:mod:`adapters.binance.oco`).

        Each leg is tracked and its events published under its own client order id: both legs'
        OrderAccepted from the reply, then the stream's fills and ends (one leg filling or
        triggering expires the other at the venue: that leg's OrderExpired; a cancel of one leg
        cancels both).  Refused here (both legs' OrderRejected, nothing sent): a symbol whose
        exchangeInfo says ``ocoAllowed`` false, a leg the filters refuse, a leg id already sent.
        Refused by the venue: both rejected.  Unknown outcome: both legs resolved by query, never
        re-sent.
        """
        tracker = self.tracker
        legs = (stop, take_profit)

        async def refuse(reason: str) -> None:
            self.n["rejected_locally"] += 1
            for leg in legs:
                await tracker.publish(
                    OrderRejected(**tracker.stamp(), client_order_id=leg.client_order_id, reason=reason)
                )

        if any(leg.client_order_id in tracker.orders for leg in legs):
            await refuse("duplicate client order id: already sent")
            return
        try:
            rules = await self.rules_loader.ensure()
        except (BinanceError, KeyError) as exc:
            await refuse(f"not sent: no exchangeInfo: {exc}")
            return
        if not rules.oco_allowed:
            await refuse(f"not sent: OCO not allowed for {self.venue_symbol} (exchangeInfo ocoAllowed false)")
            return
        last = self.last_price()
        prepared: list[BinanceNewOrder] = []
        for leg in (stop, take_profit_leg(take_profit)):
            wire = self._stop_limit_if_needed(map_order(leg, self.venue_symbol, last), rules)
            try:
                ready = rules.prepare(wire, last)
            except ArithmeticError as exc:
                ready = Rejection("PARAMETERS", f"filters could not be applied: {exc!r}")
            if isinstance(ready, Rejection):
                await refuse(f"{ready.filter}: {ready.reason}")
                return
            prepared.append(ready)
        request = oco_request(list_cid, prepared[0], prepared[1])
        orders = [tracker.track(TrackedOrder(leg.client_order_id, leg.side, leg.quantity)) for leg in legs]
        client = await self.client()
        self.n["sent"] += 1
        latency, intent_id = self.router.latency, stop.intent_id
        on_wire = ON_WIRE.set(lambda: latency.sent(intent_id))
        try:
            async with self._commands:
                reply = await client.new_oco(request)
        except OutcomeUnknown as exc:
            for order in orders:
                await self._unknown(order, str(exc), exc.deadline_ms)
            return
        except BinanceRejected as exc:
            for order in orders:
                await tracker.venue_rejected(order, str(exc))
            return
        except BinanceError as exc:  # not expected for an order call: unknown, never re-sent
            for order in orders:
                await self._unknown(order, str(exc), client.now_ms() + self.config.recv_window_ms)
            return
        finally:
            ON_WIRE.reset(on_wire)
        reports = {r.clientOrderId: r for r in reply.orderReports}
        for order in orders:
            report = reports.get(order.cid)
            if report is not None:
                await tracker.apply_reply(order, report)
            else:
                self._resolve_later(order, f"OCO {list_cid}: no report for leg {order.cid}", client.now_ms())

    def _resolve_later(self, order: TrackedOrder, reason: str, deadline_ms: int) -> None:
        """Ask the venue what became of an accepted order (it stays open here until it answers)."""
        if not order.unknown:
            order.unknown, order.unknown_reason, order.deadline_ms = True, reason, deadline_ms
            self._spawn_resolve(order)

    async def _unknown(self, order: TrackedOrder, reason: str, deadline_ms: int) -> None:
        """The submission's outcome is unknown: say so (unless the stream already told us), then ask."""
        tracker = self.tracker
        order.unknown, order.unknown_reason, order.deadline_ms = True, reason, deadline_ms
        self.n["unknown"] += 1
        if not order.accepted and not order.done:
            await tracker.publish(OrderUnknown(**tracker.stamp(), client_order_id=order.cid, reason=reason))
        self._spawn_resolve(order)

    async def _cancel(self, cid: str) -> None:
        tracker = self.tracker
        if cid not in tracker.orders and any(leg in tracker.orders for leg in leg_ids(cid)):
            await self._cancel_list(cid)
            return
        client = await self.client()
        try:
            reply = await client.cancel_order(self.venue_symbol, cid)
        except BinanceRejected as exc:
            await tracker.publish(
                OrderRejected(**tracker.stamp(), client_order_id=cid, reason=f"cancel rejected: {exc}")
            )
            return
        except BinanceError as exc:  # the cancel's outcome is unknown: ask the venue what it did
            await tracker.publish(
                OrderRejected(
                    **tracker.stamp(), client_order_id=cid, reason=f"cancel rejected: outcome unknown: {exc}"
                )
            )
            order = tracker.orders.get(cid)
            if order is not None and not order.unknown:
                order.unknown, order.unknown_reason = True, f"cancel outcome unknown: {exc}"
                order.deadline_ms = client.now_ms() + self.config.recv_window_ms
                self._spawn_resolve(order)
            return
        order = tracker.orders.get(cid)
        if order is None:
            await tracker.publish(
                OrderCanceled(**tracker.stamp(), client_order_id=cid, venue_order_id=str(reply.orderId))
            )
            return
        await tracker.apply_reply(order, reply, query_trades=True)

    async def _cancel_list(self, list_cid: str) -> None:
        """``DELETE /api/v3/orderList`` by ``listClientOrderId``: both legs' ends from the reply."""
        tracker = self.tracker
        client = await self.client()
        legs = [tracker.orders[leg] for leg in leg_ids(list_cid) if leg in tracker.orders]
        try:
            reply = await client.cancel_order_list(self.venue_symbol, list_cid)
        except BinanceRejected as exc:  # usually: the list fired (a leg filled) -- ask about each leg
            await tracker.publish(
                OrderRejected(**tracker.stamp(), client_order_id=list_cid, reason=f"cancel rejected: {exc}")
            )
            for order in legs:
                if not order.done:
                    self._resolve_later(order, f"list cancel refused: {exc}", client.now_ms())
            return
        except BinanceError as exc:  # the cancel's outcome is unknown: ask the venue about each leg
            reason = f"cancel rejected: outcome unknown: {exc}"
            await tracker.publish(OrderRejected(**tracker.stamp(), client_order_id=list_cid, reason=reason))
            for order in legs:
                if not order.done:
                    self._resolve_later(order, f"list cancel outcome unknown: {exc}", client.now_ms())
            return
        for report in reply.orderReports:
            leg = tracker.orders.get(report.origClientOrderId) or tracker.orders.get(report.clientOrderId)
            if leg is not None:
                await tracker.apply_reply(leg, report, query_trades=True)

    # --- UNKNOWN outcomes --------------------------------------------------------------------

    def _spawn_resolve(self, order: TrackedOrder) -> None:
        if self._tg is not None and order.cid not in self._resolving:
            self._resolving.add(order.cid)
            self._tg.start_soon(self._resolve, order, name=f"resolve:{order.cid}")

    async def _resolve(self, order: TrackedOrder) -> None:
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
                    await self.tracker.venue_rejected(order, f"not found at venue: {order.unknown_reason}")
                return
            await self.tracker.apply_reply(order, reply, query_trades=True)
        finally:
            self._resolving.discard(order.cid)

    # --- what the venue says -----------------------------------------------------------------

    async def on_user_event(self, event: UserEvent) -> None:
        """One user data stream event (the stream's handler)."""
        if isinstance(event, BinanceExecutionReport):
            await self.tracker.on_report(event)
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

    async def catch_up(self) -> None:
        """After every user data stream (re)connect: :meth:`OrderReconciler.catch_up`."""
        await self.reconciler.catch_up(self._resolving)

    # --- bookkeeping: the tracker's entry points, on the actor too (the replies fuzz test uses them)

    def _track(self, order: TrackedOrder) -> TrackedOrder:
        return self.tracker.track(order)

    async def _apply_reply(
        self, order: TrackedOrder, reply: BinanceOrderReply, *, query_trades: bool = False
    ) -> None:
        await self.tracker.apply_reply(order, reply, query_trades=query_trades)

    def adopt(self, client_order_id: str, side: Side, quantity: Decimal, cum_qty: Decimal = ZERO) -> None:
        """Track an order this process did not send (restart reconciliation): its events are published."""
        self.tracker.track(TrackedOrder(client_order_id, side, quantity, cum_qty, accepted=True))

    # --- reconciliation API: see OrderReconciler and BinanceVenueQueries ----------------------

    async def reconcile(self, orders: list[OrderRecord]) -> list[Message]:
        """Restart: the events that bring the journal's open ``orders`` up to the venue's truth."""
        return await self.reconciler.reconcile(orders)

    async def open_orders(self) -> list[VenueOrder]:
        """Every open order of this symbol at the venue."""
        return await self.queries.open_orders()

    async def cancel_foreign(self, client_order_id: str) -> None:
        """Cancel an open order of this symbol that the daemon did not send (restart policy)."""
        await self.queries.cancel_foreign(client_order_id)

    async def order_status(self, client_order_id: str) -> VenueOrder | None:
        """The venue's view of one order, ``None`` if it does not know it."""
        return await self.queries.order_status(client_order_id)

    async def recent_fills(self, since_ms: int) -> list[OrderFilled]:
        """Our fills of this symbol since ``since_ms`` (venue time), with cum/leaves per order."""
        return await self.queries.recent_fills(since_ms)

    async def balances(self) -> BalancesChanged:
        """The account's balances (``GET /api/v3/account``)."""
        return await self.queries.balances()
