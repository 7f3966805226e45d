"""The OKX spot execution actor: our orders to OKX, OKX's order events back.

:class:`OkxExecution` takes the paper exchange's place in a symbol group whose account has
``exchange = "okx"``, exactly as :class:`~adapters.binance.execution.BinanceExecution` does for
Binance: the same order actor, journal, stop-monitor and reconciliation drive it.

In (inbox): ``SubmitOrder``, ``CancelOrder`` for its (exchange, symbol).
Out (router): ``OrderAccepted``, ``OrderRejected``, ``OrderFilled``, ``OrderCanceled``,
``OrderExpired``, ``OrderUnknown``, ``BalancesChanged``.

- Before an order leaves, the instrument's rules (``GET /api/v5/public/instruments``:
  :meth:`~adapters.okx.instruments.OkxRules.prepare`) round its price to ``tickSz`` (never to a
  worse price) and check ``lotSz``, ``minSz``, ``maxMktSz``, ``maxLmtSz`` and ``state``; a breach
  is an OrderRejected naming the rule and nothing is sent.  Our types map to OKX's as
  :func:`adapters.okx.orders.map_order` says (stops as ``conditional`` algo orders);
  ``clOrdId`` is our client order id without its dash.
- Place and cancel go over the private WebSocket (``order_channel = "websocket"``), or REST when
  it is not logged in (nothing was sent) or ``order_channel = "rest"``; algo orders over REST.
- Refusals are OrderRejected with OKX's code and message (``51008`` insufficient balance,
  ``51016`` duplicated clOrdId -- "duplicate client order id" --, ``51121`` lot size ...).  A refused
  cancel is OrderRejected starting ``cancel rejected:`` (the order's own state stands; it is
  queried).
- An unknown outcome (5xx, ``50001`` / ``50004`` / ``50013`` / ``50026``, a timeout, a lost
  connection or reply): OrderUnknown, then the order is queried by ``clOrdId`` (or
  ``algoClOrdId``) with back-off until OKX answers, and what it says is published; "not found"
  is final only once the request's ``expTime`` has passed: OrderRejected "not found at venue".
  It is NEVER sent again.
- ``replaces`` (cancel-replace): OKX amends an order in place but cannot give it a new client id,
  so the old order is canceled first and the new one placed only once the cancel went through; a
  cancel that fails (already filled, canceled, unknown) rejects the new order ("replace
  refused: ...") and the old one is queried.
- An OCO list (``oco_take_profit``) is refused unsent for now: both legs OrderRejected.
- The private WebSocket (:mod:`adapters.okx.private_ws`) delivers every order change (acks,
  fills with fee and maker/taker, cancels) and the account's balances (BalancesChanged); after
  every (re)connect a REST catch-up (:mod:`adapters.okx.order_reconciler`) fills the gap.  A fill
  is published once per (instId, tradeId) (:mod:`adapters.okx.order_tracker`).
- Reconciliation API for the daemon's restart: :meth:`reconcile`, :meth:`open_orders`,
  :meth:`order_status`, :meth:`recent_fills`, :meth:`balances`, :meth:`cancel_foreign`,
  :meth:`adopt` (:mod:`adapters.okx.venue_queries`); :meth:`problems` for readiness and the
  entry gate.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

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
from actors.oco import leg_ids
from actors.runtime import Actor
from actors.timefmt import iso_utc
from adapters.okx.config import OkxAccount
from adapters.okx.credentials import credentials_for
from adapters.okx.data import to_inst_id
from adapters.okx.errors import (
    OkxCancelRefused,
    OkxError,
    OkxOrderRejected,
    OkxOutcomeUnknown,
    OkxRejected,
    OkxUnknownOrder,
)
from adapters.okx.http import OkxHttpClient, OkxHttpStatistics
from adapters.okx.instruments import OkxRules, Refusal
from adapters.okx.order_reconciler import OkxOrderReconciler
from adapters.okx.order_tracker import OkxOrderTracker, TrackedOrder
from adapters.okx.orders import OkxNewAlgo, OkxNewOrder, OkxVenueOrder, map_order, okx_client_id, wire
from adapters.okx.private_ws import NotConnected, OkxPrivateStream, PrivateStreamStatistics
from adapters.okx.ratelimit import shared_limiter
from adapters.okx.replies import OkxAlgoOrder, OkxBalance, OkxOrderAck
from adapters.okx.rules_loader import OkxRulesLoader
from adapters.okx.signing import OkxCredentials
from adapters.okx.venue_queries import OkxVenueQueries, balances_changed

if TYPE_CHECKING:
    from actors.order import OrderRecord
    from daemon.config_schema import Instrument

__all__ = ["OkxExecution", "OkxExecutionStatistics"]

ZERO = Decimal(0)
COMMANDS_IN_FLIGHT = 8


class OkxExecutionStatistics(msgspec.Struct, frozen=True):
    """Counters of one OKX execution actor, for /status and tests."""

    rules_loaded: bool
    rules_failures: int
    rules_last_error: str
    sent: int
    sent_websocket: int
    sent_rest: int
    rejected_locally: int
    rejected_by_venue: int
    unknown: int
    resolved: int
    unresolved: int
    fills: int
    duplicate_fills: int
    bad_fills: int
    foreign_events: int
    catchups: int
    rest: OkxHttpStatistics
    private: PrivateStreamStatistics


class OkxExecution(Actor):
    """One instrument of an OKX spot account; subscribe its inbox to :attr:`subscribes`."""

    kind = "okx-execution"
    subscribes: tuple[type[Message], ...] = (SubmitOrder, CancelOrder)

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        instrument: Instrument,
        account: str,
        config: OkxAccount,
        *,
        inst_id: str = "",
        last_price: Callable[[], Decimal | None] = lambda: None,
        credentials: OkxCredentials | None = None,
        backoff_initial_s: float = 0.2,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.account, self.config = account, config
        self.inst_id = inst_id or to_inst_id(f"{instrument.base}/{instrument.quote}".upper())
        self.last_price = last_price
        self.backoff = (backoff_initial_s, config.resolve_backoff_max_s)
        creds = credentials or credentials_for(config)
        self.rest = OkxHttpClient(
            config.rest_url, creds, simulated=config.simulated, timeout_s=config.timeout_s,
            expiry_ms=config.expiry_ms, limiter=shared_limiter(config.rest_url, creds.api_key),
            conn=f"rest:{account}",
        )  # fmt: skip
        self._opened = False
        self._tg: TaskGroup | None = None
        self._resolving: set[str] = set()
        self._commands = anyio.CapacityLimiter(COMMANDS_IN_FLIGHT)
        self._submitting: dict[str, anyio.Event] = {}
        sends = ("sent", "sent_websocket", "sent_rest", "rejected_locally", "rejected_by_venue", "unknown")
        events = ("resolved", "fills", "duplicate_fills", "bad_fills", "foreign_events", "catchups")
        self.n = dict.fromkeys((*sends, *events), 0)
        self.tracker = OkxOrderTracker(
            exchange, symbol, self.inst_id, router, client=self.client, counters=self.n, log=self.log
        )
        self.reconciler = OkxOrderReconciler(
            self.tracker, self.client, expiry_ms=config.expiry_ms, counters=self.n
        )
        self.queries = OkxVenueQueries(
            self.client, exchange=exchange, symbol=symbol, inst_id=self.inst_id, account=account
        )
        self.rules_loader = OkxRulesLoader(
            config.rest_url, [self.inst_id], exchange=exchange, simulated=config.simulated,
            refresh_s=config.rules_refresh_s, retry_s=backoff_initial_s,
        )  # fmt: skip
        self.stream = OkxPrivateStream(
            config.ws_private_url, creds, [self.inst_id], on_order=self.tracker.on_push,
            on_balance=self._on_balance, on_connect=self.catch_up, before_login=self._sync_clock,
            clock_ms=self.rest.now_ms, limiter=self.rest.limiter, connect_timeout_s=config.connect_timeout_s,
            backoff_initial_s=backoff_initial_s, exchange=exchange,
        )  # fmt: skip
        self.started_ns = time.time_ns()

    # --- lifecycle -----------------------------------------------------------------------------

    async def client(self) -> OkxHttpClient:
        """The REST client (its aiohttp session opened on first use, kept for the actor's life)."""
        if not self._opened:
            await self.rest.__aenter__()
            self._opened = True
        return self.rest

    async def aclose(self) -> None:
        if self._opened:
            await self.rest.__aexit__(None, None, None)
            self._opened = False

    async def run(self) -> None:
        """The inbox loop, alongside the private stream, the rules loader and pending resolutions."""
        failed = False
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                self._resolving.clear()
                tg.start_soon(self.rules_loader.run)
                await tg.start(self.stream.run)
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
            if not failed:
                await self.aclose()

    def close_book(self, reason: str) -> list[Message]:
        """The group stops: orders stay at OKX (restart reconciliation picks them up)."""
        return []

    @property
    def rules(self) -> OkxRules | None:
        """The instrument's rules, ``None`` until they are loaded."""
        return self.rules_loader.rules.get(self.inst_id)

    def statistics(self) -> OkxExecutionStatistics:
        n, loader = self.n, self.rules_loader
        return OkxExecutionStatistics(
            rules_loaded=self.rules is not None,
            rules_failures=loader.load_errors,
            rules_last_error=loader.last_error,
            sent=n["sent"],
            sent_websocket=n["sent_websocket"],
            sent_rest=n["sent_rest"],
            rejected_locally=n["rejected_locally"],
            rejected_by_venue=n["rejected_by_venue"],
            unknown=n["unknown"],
            resolved=n["resolved"],
            unresolved=sum(o.unknown for o in self.tracker.orders.values()),
            fills=n["fills"],
            duplicate_fills=n["duplicate_fills"],
            bad_fills=n["bad_fills"],
            foreign_events=n["foreign_events"],
            catchups=n["catchups"],
            rest=self.rest.statistics(),
            private=self.stream.statistics(),
        )

    def problems(self, now_ns: int, grace_s: float) -> list[str]:
        """Why this instrument cannot trade now (each after ``grace_s``): no rules, REST failing,
        the private WebSocket not logged in and caught up."""
        found = [self._rules_problem(now_ns, grace_s), self.rest.problem(now_ns, grace_s)]
        found.append(self.stream.problem(now_ns, grace_s))
        return [p for p in found if p is not None]

    def _rules_problem(self, now_ns: int, grace_s: float) -> str | None:
        if self.rules is not None or (now_ns - self.started_ns) / 1e9 < grace_s:
            return None
        loader = self.rules_loader
        return (
            f"instrument rules of {self.inst_id} not loaded since {iso_utc(self.started_ns)} "
            f"({loader.load_errors} failed loads; last error: {loader.last_error or 'none yet'})"
        )

    async def _sync_clock(self) -> None:
        """Before each login: OKX's clock, measured by REST when due (a failure keeps the last one)."""
        try:
            await (await self.client()).ensure_clock()
        except OkxError as exc:
            self.log.warning("OKX clock not measured (%s): logging in with the last estimate", exc)

    async def _on_balance(self, balance: OkxBalance) -> None:
        await self.router.publish(balances_changed(self.exchange, self.account, balance))

    async def catch_up(self) -> None:
        """After every private stream (re)connect: :meth:`OkxOrderReconciler.catch_up`."""
        await self.reconciler.catch_up(self._resolving)

    # --- commands ------------------------------------------------------------------------------

    async def handle(self, msg: Message) -> None:
        """Start the command and return: requests overlap (never two for one order at once)."""
        if (
            msg.symbol != self.symbol
            or msg.exchange != self.exchange
            or not isinstance(msg, SubmitOrder | CancelOrder)
        ):
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
            on_wire = ON_WIRE.set(lambda: latency.sent(intent_id))  # called where the bytes leave
            try:
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

    async def _refuse(self, cid: str, reason: str) -> None:
        self.n["rejected_locally"] += 1
        await self.tracker.publish(OrderRejected(**self.tracker.stamp(), client_order_id=cid, reason=reason))

    async def _submit(self, msg: SubmitOrder) -> None:
        cid = msg.client_order_id
        if msg.oco_take_profit is not None:
            for leg in leg_ids(cid):
                await self._refuse(leg, "not sent: OCO lists are not supported on OKX yet")
            return
        if cid in self.tracker.orders:
            await self._refuse(cid, "duplicate client order id: already sent")
            return
        request = await self._prepare(msg)
        if isinstance(request, str):
            await self._refuse(cid, request)
            return
        okx_cid = request.algoClOrdId if isinstance(request, OkxNewAlgo) else request.clOrdId
        order = self.tracker.track(
            TrackedOrder(
                cid,
                okx_cid,
                msg.side,
                msg.quantity,
                algo=isinstance(request, OkxNewAlgo),
                created_ms=self.rest.now_ms(),
            )
        )
        self.n["sent"] += 1
        if msg.replaces and not await self._cancel_for_replace(order, msg.replaces):
            return
        await self._send(order, request)

    async def _prepare(self, msg: SubmitOrder) -> OkxNewOrder | OkxNewAlgo | str:
        """The request body, rounded and checked against the instrument's rules, or why not."""
        rules = self.rules
        if rules is None:
            await self.rules_loader.refresh((await self.client()).session)
            rules = self.rules
        if rules is None:
            why = self.rules_loader.last_error or "not loaded"
            return f"not sent: no instrument rules for {self.inst_id} ({why})"
        if msg.quantity.is_finite() and msg.quantity > 0 and msg.quantity % rules.lot_sz:
            lot = wire(rules.lot_sz)
            return f"lotSz: size {wire(msg.quantity)} is not a multiple of lotSz {lot}"  # never rounded
        last = self.last_price()
        kind: Literal["market", "limit"] = (
            "market" if msg.order_type in ("market", "stop_market") else "limit"
        )
        try:
            checked = rules.prepare(
                msg.side, kind, msg.quantity, msg.price if kind == "limit" else None, last
            )
        except ArithmeticError as exc:
            return f"not sent: the rules could not be applied: {exc!r}"
        if isinstance(checked, Refusal):
            return f"{checked.rule}: {checked.reason}"
        if msg.stop_price is not None and (
            not msg.stop_price.is_finite() or msg.stop_price <= 0 or msg.stop_price % rules.tick_sz
        ):
            return (
                f"tickSz: trigger price {msg.stop_price} is not a positive multiple of tickSz {rules.tick_sz}"
            )
        if checked.price is not None:
            msg = msgspec.structs.replace(msg, price=checked.price)
        try:
            return map_order(msg, self.inst_id, last)
        except ValueError as exc:
            return f"not sent: {exc}"

    async def _send(self, order: TrackedOrder, request: OkxNewOrder | OkxNewAlgo) -> None:
        tracker, client = self.tracker, await self.client()
        try:
            if isinstance(request, OkxNewAlgo):
                self.n["sent_rest"] += 1
                ack_id = (await client.place_algo(request)).algoId
            else:
                ack_id = (await self._place(request)).ordId
        except OkxOutcomeUnknown as exc:
            await self._unknown(order, str(exc), exc.deadline_ms)
            return
        except OkxOrderRejected as exc:
            reason = f"duplicate client order id: {exc}" if exc.duplicate else str(exc)
            order.foreign = exc.duplicate  # OKX's order with this id is not this submission's
            await tracker.venue_rejected(order, reason)
            return
        except OkxRejected as exc:
            await tracker.venue_rejected(order, str(exc))
            return
        except OkxError as exc:  # not expected for an order call: unknown, never re-sent
            await self._unknown(order, str(exc), client.now_ms() + self.config.expiry_ms)
            return
        await tracker.accept(order, ack_id, tracker.stamp()["ts_recv"])

    async def _place(self, request: OkxNewOrder) -> OkxOrderAck:
        """Over the private WebSocket when it is logged in, else (nothing was sent) REST."""
        if self.config.order_channel == "websocket":
            try:
                ack = await self.stream.request(
                    "order", request.body(), inst_id=self.inst_id, timeout_s=self.config.timeout_s,
                    expiry_ms=self.config.expiry_ms,
                )  # fmt: skip
                self.n["sent_websocket"] += 1
                return ack
            except NotConnected:
                pass
        self.n["sent_rest"] += 1
        return await (await self.client()).place_order(request)

    async def _cancel_for_replace(self, order: TrackedOrder, old_cid: str) -> bool:
        """Cancel ``old_cid`` before ``order`` replaces it; False (``order`` rejected) when it failed."""
        old = self.tracker.orders.get(old_cid)
        try:
            await self._cancel_request(old_cid, old)
        except OkxError as exc:
            await self.tracker.venue_rejected(order, f"replace refused: cancel of {old_cid} failed: {exc}")
            if old is not None and not old.done:
                self._resolve_later(old, f"cancel-replace: cancel failed: {exc}", self.rest.now_ms())
            return False
        if old is not None:
            await self._after_cancel(old)
        return True

    async def _cancel(self, cid: str) -> None:
        tracker = self.tracker
        order = tracker.orders.get(cid)
        try:
            await self._cancel_request(cid, order)
        except (OkxCancelRefused, OkxUnknownOrder, OkxRejected) as exc:
            reason = f"cancel rejected: {exc}"
        except OkxError as exc:  # the cancel's outcome is unknown: ask OKX what it did
            reason = f"cancel rejected: outcome unknown: {exc}"
        else:
            if order is None:
                await tracker.publish(OrderCanceled(**tracker.stamp(), client_order_id=cid))
            else:
                await self._after_cancel(order)
            return
        await tracker.publish(OrderRejected(**tracker.stamp(), client_order_id=cid, reason=reason))
        if order is not None and not order.done:
            self._resolve_later(order, reason, self.rest.now_ms())

    async def _cancel_request(self, cid: str, order: TrackedOrder | None) -> None:
        client = await self.client()
        okx_cid = order.okx_cid if order is not None else okx_client_id(cid)
        if order is not None and order.algo:
            algo_id = order.venue_id or (await client.algo_details(algo_cl_ord_id=okx_cid)).algoId
            await client.cancel_algos([(self.inst_id, algo_id)])
            return
        if self.config.order_channel == "websocket":
            try:
                arg = {"instId": self.inst_id, "clOrdId": okx_cid}
                await self.stream.request(
                    "cancel-order", arg, inst_id=self.inst_id, timeout_s=self.config.timeout_s
                )
                return
            except NotConnected:
                pass
        await client.cancel_order(self.inst_id, cl_ord_id=okx_cid)

    async def _after_cancel(self, order: TrackedOrder) -> None:
        """OKX took the cancel: what the order did before it (fills), then its end."""
        client = await self.client()
        if order.algo:
            await self.tracker.apply_algo(order, await client.algo_details(algo_cl_ord_id=order.okx_cid))
        else:
            await self.tracker.apply_query(
                order, await client.order_details(self.inst_id, cl_ord_id=order.okx_cid)
            )

    # --- UNKNOWN outcomes ----------------------------------------------------------------------

    def _resolve_later(self, order: TrackedOrder, reason: str, deadline_ms: int) -> None:
        if not order.unknown:
            order.unknown, order.unknown_reason, order.deadline_ms = True, reason, deadline_ms
            self._spawn_resolve(order)

    async def _unknown(self, order: TrackedOrder, reason: str, deadline_ms: int) -> None:
        """The submission's outcome is unknown: say so (unless a push already told us), then ask."""
        order.unknown, order.unknown_reason, order.deadline_ms = True, reason, deadline_ms
        self.n["unknown"] += 1
        if not order.accepted and not order.done:
            await self.tracker.publish(
                OrderUnknown(**self.tracker.stamp(), client_order_id=order.cid, reason=reason)
            )
        self._spawn_resolve(order)

    def _spawn_resolve(self, order: TrackedOrder) -> None:
        if self._tg is not None and order.cid not in self._resolving:
            self._resolving.add(order.cid)
            self._tg.start_soon(self._resolve, order, name=f"resolve:{order.cid}")

    async def _resolve(self, order: TrackedOrder) -> None:
        """Ask OKX about ``order`` until it answers; publish what it says.  Never re-send."""
        delay, client = self.backoff[0], await self.client()
        try:
            while True:
                try:
                    found = await client.resolve_unknown(
                        self.inst_id, order.okx_cid, deadline_ms=order.deadline_ms, algo=order.algo
                    )
                    break
                except OkxError as exc:
                    self.log.warning(
                        "order %s still unknown (%s): asking again in %.1fs", order.cid, exc, delay
                    )
                    await anyio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self.backoff[1])
            order.unknown = False
            self.n["resolved"] += 1
            if found is None:
                self.log.warning("order %s not found at venue: %s", order.cid, order.unknown_reason)
                if not order.accepted and not order.done:
                    await self.tracker.venue_rejected(order, f"not found at venue: {order.unknown_reason}")
            elif isinstance(found, OkxAlgoOrder):
                await self.tracker.apply_algo(order, found)
            else:
                await self.tracker.apply_query(order, found)
        finally:
            self._resolving.discard(order.cid)

    # --- reconciliation API --------------------------------------------------------------------

    def adopt(self, client_order_id: str, side: Side, quantity: Decimal, cum_qty: Decimal = ZERO) -> None:
        """Track an order this process did not send (restart reconciliation): its events are published."""
        # An order placed without a clOrdId (OKX's web app) is listed under its ordId.
        venue_id = client_order_id if client_order_id.isdigit() else ""
        okx_cid = "" if venue_id else okx_client_id(client_order_id)
        order = TrackedOrder(client_order_id, okx_cid, side, quantity, cum=cum_qty, venue_id=venue_id)
        order.accepted = True
        self.tracker.track(order)

    async def reconcile(self, orders: list[OrderRecord]) -> list[Message]:
        """Restart: the events that bring the journal's open ``orders`` up to OKX's truth."""
        return await self.reconciler.reconcile(orders)

    async def open_orders(self) -> list[OkxVenueOrder]:
        return await self.queries.open_orders()

    async def cancel_foreign(self, client_order_id: str) -> None:
        await self.queries.cancel_foreign(client_order_id)

    async def order_status(self, client_order_id: str) -> OkxVenueOrder | None:
        return await self.queries.order_status(client_order_id)

    async def recent_fills(self, since_ms: int) -> list[OrderFilled]:
        return await self.queries.recent_fills(since_ms)

    async def balances(self) -> BalancesChanged:
        return await self.queries.balances()
