"""Risk actor: every OrderIntent passes here before an order may exist.

Takes: OrderIntent (from strategy and stop-monitor).
Emits: RiskApproved(intent) or RiskRejected(intent, rule, reason) — a rejection is an
event with a reason, never an exception.

Checks, in order, each returning early with the rule's name: trading state (group
halted, HALTED, REDUCING), intent sanity (positive finite quantity, prices where the
order type needs them), reduce-only really reduces, mandatory stop-loss on entries,
a fresh last price exists, price band vs last trade, max order notional, max position
(including exposure of orders already approved), max open orders, order rate (entries
only, in event time: a stop-loss exit is never throttled, and accelerated replays see the
same rule as live trading).
Limits are replaced in place on config reload (``apply_limits``).
"""

from __future__ import annotations

import logging
from collections import deque

from actors.channels import Channel, Router
from actors.messages import Message, OrderIntent, RiskApproved, RiskRejected
from actors.params import RiskLimits
from actors.runtime import Actor, GroupState
from actors.state import SymbolState

Verdict = tuple[str, str] | None  # (rule, reason) when rejected
NS = 1_000_000_000


class RiskActor(Actor):
    kind = "risk"

    def __init__(
        self,
        exchange: str,
        symbol: str,
        router: Router,
        inbox: Channel[Message],
        state: SymbolState,
        group: GroupState,
        limits: RiskLimits,
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.state = state
        self.group = group
        self.limits = limits
        self.decisions: dict[str, int] = {}
        self._recent_orders: deque[int] = deque()  # event times (ns) of recent entries

    def apply_limits(self, limits: RiskLimits) -> None:
        self.limits = limits

    async def handle(self, msg: Message) -> None:
        if not isinstance(msg, OrderIntent):
            self.log.warning("ignored unexpected message kind %s", type(msg).__name__)
            return
        verdict = self.check(msg)
        fields = self.system_fields()
        if verdict is None:
            self._reserve(msg)
            self._count("approved")
            await self.router.publish(RiskApproved(intent=msg, **fields))
            return
        rule, reason = verdict
        self._count(rule)
        # An exit refused because another exit already covers the position is routine.
        level = logging.INFO if rule == "reduce_only" else logging.WARNING
        self.log.log(level, "rejected %s (%s): %s", msg.intent_id, rule, reason)
        await self.router.publish(RiskRejected(intent=msg, rule=rule, reason=reason, **fields))

    def _count(self, key: str) -> None:
        self.decisions[key] = self.decisions.get(key, 0) + 1

    def check(self, intent: OrderIntent) -> Verdict:
        """The first rule ``intent`` breaks, or None. Pure apart from reading state and the clock."""
        for rule in (
            self._check_state,
            self._check_sanity,
            self._check_reduce_only,
            self._check_stop_loss,
            self._check_notional_and_band,
            self._check_position,
            self._check_open_orders,
            self._check_rate,
        ):
            verdict = rule(intent)
            if verdict is not None:
                return verdict
        return None

    def _check_state(self, intent: OrderIntent) -> Verdict:
        if self.group.halted and not intent.reduce_only:
            return "halted", f"group halted ({self.group.reason}): only reduce-only orders are allowed"
        mode = self.limits.trading_state
        if mode == "halted":
            return "halted", "trading state is HALTED"
        if mode == "reducing" and not intent.reduce_only:
            return "reducing", "trading state is REDUCING: only orders that reduce a position are allowed"
        return None

    def _check_sanity(self, intent: OrderIntent) -> Verdict:
        if not intent.quantity.is_finite() or intent.quantity <= 0:
            return "invalid", f"quantity must be a positive number, got {intent.quantity}"
        needs_price = intent.order_type in ("limit", "stop_limit")
        needs_stop = intent.order_type in ("stop_market", "stop_limit")
        for name, value, needed in (
            ("price", intent.price, needs_price),
            ("stop_price", intent.stop_price, needs_stop),
            ("stop_loss", intent.stop_loss, False),
            ("take_profit", intent.take_profit, False),
        ):
            if needed and value is None:
                return "invalid", f"{intent.order_type} order needs {name}"
            if value is not None and (not value.is_finite() or value <= 0):
                return "invalid", f"{name} must be a positive number, got {value}"
        return None

    def _check_reduce_only(self, intent: OrderIntent) -> Verdict:
        if not intent.reduce_only:
            return None
        # Net of orders already working: an exit that is pending leaves nothing to reduce.
        pos = self.state.position + self.state.pending_exposure
        reduces = (pos > 0 and intent.side == "sell") or (pos < 0 and intent.side == "buy")
        if not reduces:
            return "reduce_only", f"reduce-only {intent.side} but position net of open orders is {pos}"
        if intent.quantity > abs(pos):
            return (
                "reduce_only",
                f"reduce-only quantity {intent.quantity} exceeds position net of open orders {abs(pos)}",
            )
        return None

    def _check_stop_loss(self, intent: OrderIntent) -> Verdict:
        if self.limits.require_stop_loss and not intent.reduce_only and intent.stop_loss is None:
            return "stop_loss_required", "entries must carry a stop-loss (risk.require_stop_loss)"
        return None

    def _check_notional_and_band(self, intent: OrderIntent) -> Verdict:
        last = self.state.last_price
        if last is None:
            return "no_price", "no trade seen yet: cannot value the order"
        price = intent.price if intent.price is not None else last
        band = self.limits.price_band_pct
        if intent.price is not None and abs(intent.price - last) * 100 > band * last:
            return "price_band", f"price {intent.price} is more than {band}% away from last trade {last}"
        notional = intent.quantity * price
        if not intent.reduce_only and notional > self.limits.max_order_notional:
            return (
                "max_notional",
                f"notional {notional} exceeds max_order_notional {self.limits.max_order_notional}",
            )
        return None

    def _check_position(self, intent: OrderIntent) -> Verdict:
        if intent.reduce_only:
            return None
        signed = intent.quantity if intent.side == "buy" else -intent.quantity
        after = self.state.position + self.state.pending_exposure + signed
        if abs(after) > self.limits.max_position:
            return "max_position", f"position would be {after}, above max_position {self.limits.max_position}"
        return None

    def _check_open_orders(self, intent: OrderIntent) -> Verdict:
        if intent.reduce_only:
            return None  # exits are never blocked by working entries
        if self.state.open_orders >= self.limits.max_open_orders:
            return (
                "max_open_orders",
                f"{self.state.open_orders} orders open, max_open_orders is {self.limits.max_open_orders}",
            )
        return None

    def _check_rate(self, intent: OrderIntent) -> Verdict:
        if intent.reduce_only:
            return None  # a stop-loss exit is never throttled
        now = intent.ts_event  # event time: the same rule live, on paper and in accelerated replay
        recent = self._recent_orders
        while recent and now - recent[0] > 60 * NS:
            recent.popleft()
        if len(recent) >= self.limits.max_orders_per_minute:
            return (
                "order_rate",
                f"{len(recent)} orders in the last minute, "
                f"max_orders_per_minute is {self.limits.max_orders_per_minute}",
            )
        return None

    def _reserve(self, intent: OrderIntent) -> None:
        if not intent.reduce_only:
            self._recent_orders.append(intent.ts_event)
        st = self.state
        st.open_orders += 1
        st.pending_exposure += intent.quantity if intent.side == "buy" else -intent.quantity
