"""Risk actor: every OrderIntent passes here before an order may exist.

Takes: OrderIntent (from strategy and stop-monitor); PositionChanged and Bar (only to
keep the day's PnL for the daily loss limit).
Emits: RiskApproved(intent) or RiskRejected(intent, rule, reason) — a rejection is an
event with a reason, never an exception; RiskDayChanged when the day's counters change other
than by an approval (a new UTC day, the loss limit latching or lifted), for the journal.

Checks, in order, each returning early with the rule's name: trading state (group
halted, HALTED, REDUCING), the venue usable for entries (entries only: ``venue_check``, set by
the group wiring from :mod:`daemon.entry_gate`; rules ``venue_blind`` -- the account's user data
stream not subscribed, REST unreachable, the key refused, no exchange rules -- and
``book_stale``; exits pass, and nothing is halted or canceled), daily loss limit (entries
only), intent sanity (positive
finite quantity, prices where the order type needs them, an OCO list's take-profit on the
other side of its stop, a consistent exit plan; an OCO list is one reduce-only exit, reserved once),
reduce-only really reduces (a replacement, ``intent.replaces``, net of the order it
replaces), mandatory stop-loss on entries (always for entries with a time exit), a fresh last
price exists, price band vs last trade, max order notional,
max position (including exposure of orders already approved), max open orders, order
rate (entries only, in event time: a stop-loss exit is never throttled, and accelerated
replays see the same rule as live trading), max trades per day, cooldown (``cooldown_s`` of
event time after an exit, a fill that shrank the position: entries refused, for every
strategy; the exit's time is journaled in a RiskDayChanged, so it survives a restart).

Daily rules work per symbol (this actor's group) on UTC days of *event time*: the day
rolls when an intent or bar with a later UTC day arrives (PositionChanged carries wall
time, so it never rolls the day).

- ``max_trades_per_day`` (0 = off): at most that many entries (non-reduce-only intents)
  approved per UTC day; exits are never counted or refused.
- ``daily_loss_limit`` (0 = off): the day's PnL is equity now minus equity at the start
  of the day, equity being realized PnL - fees (both from the last PositionChanged, fees
  taken as quote currency) + unrealized PnL ``(last trade price - avg price) * position`` (on a bar:
  that bar's close);
  the start-of-day equity is taken at the first event of the day.  It is evaluated on
  every intent, PositionChanged and bar; once it is at or below ``-daily_loss_limit`` the
  group is REDUCING for the rest of that UTC day (latched even if prices recover): entries
  are refused with rule ``daily_loss_limit``, exits pass.  A reload that changes the limit
  clears the latch and re-evaluates with the new limit.

Then, when the group's account has limits of its own (``[accounts.X.risk]``), the
account-wide rules of :mod:`actors.account_risk` (rule names ``account_*``).

Limits are replaced in place on config reload (``apply_limits``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Literal

from actors.account_risk import AccountRisk
from actors.channels import Channel, Router
from actors.histogram import Histogram
from actors.messages import (
    Bar,
    Message,
    OrderIntent,
    PositionChanged,
    RiskApproved,
    RiskDay,
    RiskDayChanged,
    RiskRejected,
    stamp,
)
from actors.params import RiskLimits
from actors.runtime import Actor, GroupState
from actors.state import SymbolState
from actors.timefmt import iso_utc, utc_date

Verdict = tuple[str, str] | None  # (rule, reason) when rejected
NS = 1_000_000_000
DAY_NS = 86_400 * NS
ZERO = Decimal(0)


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
        account: AccountRisk | None = None,
        quote: str = "",
    ) -> None:
        super().__init__(exchange, symbol, router, inbox)
        self.account = account  # account-wide limits shared with the account's other groups
        self.quote = quote
        self.state = state
        self.group = group
        self.limits = limits
        self.decisions: dict[str, int] = {}
        self.decision_time = Histogram()  # an intent in, the verdict known (seconds)
        self._recent_orders: deque[int] = deque()  # event times (ns) of recent entries
        # the UTC day (event time) the daily counters are for; -1 before the first event
        self.day = -1
        self.day_entries = 0
        self.day_start_equity = ZERO
        self.daily_breach = ""  # set (the reason) while the day's loss limit holds the group REDUCING
        self.last_exit_ns = 0  # market time of the last fill that shrank the position (cooldown_s)
        # Is the venue usable for entries now? None: it is (paper); else (rule, reason) when not.
        self.venue_check: Callable[[], Verdict] | None = None
        # The signed leaves of an open order by client id (the order actor's, set by the group
        # wiring): a replacement (``intent.replaces``) is checked net of the order it replaces.
        self.leaves_of: Callable[[str], Decimal] | None = None
        # from the last PositionChanged (SymbolState has no fees)
        self._qty, self._avg, self._realized, self._fees = (
            state.position,
            state.avg_price,
            state.realized_pnl,
            ZERO,
        )

    def apply_limits(self, limits: RiskLimits) -> None:
        if limits.daily_loss_limit != self.limits.daily_loss_limit and self.daily_breach:
            self.log.warning("daily_loss_limit changed by reload: REDUCING latch cleared, re-evaluated")
            self.daily_breach = ""
            self._day_changed("lifted")
        self.limits = limits
        self._check_daily_loss_now()

    # --- daily PnL ----------------------------------------------------------------------------

    def equity(self, mark: Decimal | None = None) -> Decimal:
        """Realized PnL net of fees plus unrealized PnL at ``mark`` (default: the last trade price).

        A bar is marked at its own close, so a batch of bars is judged bar by bar however far
        market-feed has got since."""
        last = self.state.last_price if mark is None else mark
        unrealized = (last - self._avg) * self._qty if last is not None and self._qty else ZERO
        return self._realized - self._fees + unrealized

    def daily_pnl(self, mark: Decimal | None = None) -> Decimal:
        return self.equity(mark) - self.day_start_equity

    def _roll_day(self, ts_event: int, mark: Decimal | None = None) -> None:
        day = ts_event // DAY_NS
        if day > self.day:
            if self.daily_breach:
                self.log.warning("new UTC day %s: daily loss limit lifted", utc_date(day))
            self.day, self.day_entries, self.daily_breach = day, 0, ""
            self.day_start_equity = self.equity(mark)
            self._day_changed("new_day", ts_event)

    def _day_changed(self, why: Literal["new_day", "breach", "lifted", "exit"], ts_event: int = 0) -> None:
        """Journal the day's counters (no subscriber: the tap only), before any approval that follows."""
        ts = ts_event or self.state.last_ts_event or max(self.day, 0) * DAY_NS
        msg = RiskDayChanged(day=self.day_snapshot(), why=why, **stamp(self.exchange, self.symbol, ts))
        for ch in self.router.publish_nowait(msg):  # nobody subscribes; a subscriber never waits here
            ch.send_nowait(msg)

    def _check_daily_loss_now(self, mark: Decimal | None = None) -> None:
        limit = self.limits.daily_loss_limit
        if self.daily_breach or limit <= 0 or self.day < 0:
            return
        pnl = self.daily_pnl(mark)
        if pnl <= -limit:
            self.daily_breach = (
                f"daily PnL {pnl} on {utc_date(self.day)} (UTC) breached daily_loss_limit {limit}: "
                "REDUCING (exits only) until the next UTC day"
            )
            self.log.error("%s", self.daily_breach)
            self._day_changed("breach")

    def _on_position(self, msg: PositionChanged) -> None:
        if abs(msg.quantity) < abs(self._qty) and not msg.recovered:  # an exit (in part or whole)
            self.last_exit_ns = self.state.last_ts_event or msg.ts_event
            if self.limits.cooldown_s > 0:
                self._day_changed("exit", self.last_exit_ns)
        self._qty, self._avg, self._realized, self._fees = (
            msg.quantity,
            msg.avg_price,
            msg.realized_pnl,
            msg.fees,
        )
        if self.state.last_ts_event:
            self._roll_day(self.state.last_ts_event)
        self._check_daily_loss_now()

    def day_snapshot(self) -> RiskDay:
        return RiskDay(
            day=self.day,
            entries=self.day_entries,
            start_equity=self.day_start_equity,
            breach=self.daily_breach,
            last_exit_ns=self.last_exit_ns,
        )

    def restore_day(self, snap: RiskDay) -> None:
        """Restart recovery: the same UTC day goes on with its entries, baseline and REDUCING latch."""
        self.day, self.day_entries = snap.day, snap.entries
        self.day_start_equity, self.daily_breach = snap.start_equity, snap.breach
        self.last_exit_ns = snap.last_exit_ns

    def day_status(self) -> dict[str, object]:
        """For /status: the daily counters of the current UTC day."""
        return {
            "day": utc_date(self.day) if self.day >= 0 else None,
            "entries": self.day_entries,
            "pnl": str(self.daily_pnl()) if self.day >= 0 else None,
            "reducing": self.daily_breach,
        }

    async def handle_batch(self, batch: list[Message]) -> None:
        """Bars (every bar of the group) are handled inline: no coroutine per bar."""
        handle = self.handle
        for i, msg in enumerate(batch):
            self._progress = i
            if type(msg) is Bar:
                ts = msg.ts_event
                if ts // DAY_NS > self.day:
                    self._roll_day(ts, msg.close)
                self._check_daily_loss_now(msg.close)
            else:
                await handle(msg)

    async def handle(self, msg: Message) -> None:
        if isinstance(msg, PositionChanged):
            self._on_position(msg)
            return
        if isinstance(msg, Bar):
            self._roll_day(msg.ts_event, msg.close)
            self._check_daily_loss_now(msg.close)
            return
        if not isinstance(msg, OrderIntent):
            self.log.warning("ignored unexpected message kind %s", type(msg).__name__)
            return
        started = time.perf_counter()
        self._roll_day(msg.ts_event)
        self._check_daily_loss_now()
        verdict = self.check(msg)
        self.decision_time.observe(time.perf_counter() - started)
        if verdict is None:
            self._reserve(msg)
            self._count("approved")
            now = self.clock.time_ns()  # self.system_fields(), spelt out: no dict to unpack
            approved = RiskApproved(
                intent=msg, exchange=self.exchange, symbol=self.symbol, ts_event=self.event_ns(), ts_recv=now
            )
            await self.router.publish(approved)
            return
        fields = self.system_fields()
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
            self._check_venue,
            self._check_daily_loss,
            self._check_sanity,
            self._check_reduce_only,
            self._check_stop_loss,
            self._check_notional_and_band,
            self._check_position,
            self._check_open_orders,
            self._check_rate,
            self._check_trades_per_day,
            self._check_cooldown,
        ):
            verdict = rule(intent)
            if verdict is not None:
                return verdict
        if self.account is not None:
            return self.account.check(intent, self.quote)
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

    def _check_venue(self, intent: OrderIntent) -> Verdict:
        if intent.reduce_only or self.venue_check is None:
            return None  # an exit goes out whenever the venue takes it
        return self.venue_check()

    def _check_daily_loss(self, intent: OrderIntent) -> Verdict:
        if self.daily_breach and not intent.reduce_only:
            return "daily_loss_limit", self.daily_breach
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
            ("trailing_distance", intent.trailing_distance, False),
            ("trailing_pct", intent.trailing_pct, False),
            ("trailing_activation", intent.trailing_activation, False),
        ):
            if needed and value is None:
                return "invalid", f"{intent.order_type} order needs {name}"
            if value is not None and (not value.is_finite() or value <= 0):
                return "invalid", f"{name} must be a positive number, got {value}"
        if intent.post_only and (intent.order_type != "limit" or intent.time_in_force != "gtc"):
            return (
                "invalid",
                f"post_only needs a GTC limit order, got {intent.order_type} {intent.time_in_force}",
            )
        return self._check_oco(intent) or self._check_exit_plan(intent)

    @staticmethod
    def _check_oco(intent: OrderIntent) -> Verdict:
        """An OCO list is a reduce-only stop with its take-profit on the other side of the market."""
        tp, stop = intent.oco_take_profit, intent.stop_price
        if tp is None:
            return None
        if not tp.is_finite() or tp <= 0:
            return "invalid", f"oco_take_profit must be a positive number, got {tp}"
        if not intent.reduce_only or intent.order_type not in ("stop_market", "stop_limit"):
            return "invalid", f"an OCO list is a reduce-only stop order, got {intent.order_type}"
        sell = intent.side == "sell"
        if stop is not None and (tp <= stop if sell else tp >= stop):
            where = "above" if sell else "below"
            return "invalid", f"OCO take-profit {tp} must be {where} the stop {stop} for a {intent.side}"
        return None

    @staticmethod
    def _check_exit_plan(intent: OrderIntent) -> Verdict:
        dist, pct, step = intent.trailing_distance, intent.trailing_pct, intent.trailing_step
        if dist is not None and pct is not None:
            return "invalid", "give trailing_distance or trailing_pct, not both"
        if pct is not None and pct >= 100:
            return "invalid", f"trailing_pct must be below 100, got {pct}"
        if step is not None and (not step.is_finite() or step < 0):
            return "invalid", f"trailing_step must be a non-negative number, got {step}"
        if dist is None and pct is None:
            for name, value in (("trailing_activation", intent.trailing_activation), ("trailing_step", step)):
                if value is not None:
                    return "invalid", f"{name} needs trailing_distance or trailing_pct"
        if intent.exit_at_ns is not None and intent.exit_at_ns <= intent.ts_event:
            return (
                "invalid",
                f"exit_at_ns {iso_utc(intent.exit_at_ns, 'milliseconds')} must be after the intent's time "
                f"{iso_utc(intent.ts_event, 'milliseconds')}",
            )
        return None

    def _check_reduce_only(self, intent: OrderIntent) -> Verdict:
        if not intent.reduce_only:
            return None
        # Net of orders already working: an exit that is pending leaves nothing to reduce.  A
        # replacement takes the place of its old order (canceled in the same venue request).
        pos = self.state.position + self.state.pending_exposure
        if intent.replaces and self.leaves_of is not None:
            pos -= self.leaves_of(intent.replaces)
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
        if intent.reduce_only or intent.stop_loss is not None:
            return None
        if self.limits.require_stop_loss:
            return "stop_loss_required", "entries must carry a stop-loss (risk.require_stop_loss)"
        if intent.exit_at_ns is not None:
            return "stop_loss_required", "entries with a time exit (exit_at_ns) must carry a stop-loss"
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

    def _check_trades_per_day(self, intent: OrderIntent) -> Verdict:
        cap = self.limits.max_trades_per_day
        if intent.reduce_only or cap <= 0 or self.day_entries < cap:
            return None
        return (
            "max_trades_per_day",
            f"{self.day_entries} entries on {utc_date(self.day)} (UTC), max_trades_per_day is {cap}",
        )

    def _check_cooldown(self, intent: OrderIntent) -> Verdict:
        cooldown = self.limits.cooldown_s
        if intent.reduce_only or cooldown <= 0 or not self.last_exit_ns:
            return None
        until = self.last_exit_ns + int(cooldown * NS)
        if intent.ts_event >= until:
            return None
        return (
            "cooldown",
            f"entries refused until {iso_utc(until)}: cooldown_s {cooldown:g} after the exit at "
            f"{iso_utc(self.last_exit_ns)}",
        )

    def open_order_count(self) -> int:
        """Orders approved here and not ended yet (for the account's limits)."""
        return self.state.open_orders

    def _reserve(self, intent: OrderIntent) -> None:
        if self.account is not None:
            self.account.approved(intent)
        if not intent.reduce_only:
            self._recent_orders.append(intent.ts_event)
            self.day_entries += 1
        st = self.state
        st.open_orders += 1
        st.pending_exposure += intent.quantity if intent.side == "buy" else -intent.quantity
