"""Risk actor (actors/risk.py): every rule trips with its exact name and reason, and lets good intents pass.

Each test publishes one OrderIntent through ``handle`` and asserts on the single
RiskApproved / RiskRejected the actor published.  Approvals reserve ``open_orders`` and
``pending_exposure`` on the shared SymbolState; rejections reserve nothing.
"""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import Message, OrderIntent, RiskApproved, RiskRejected, Side, Trade
from actors.params import RiskLimits
from actors.risk import RiskActor
from actors.runtime import GroupState
from actors.state import SymbolState

EX, SYM = "paper", "BTC/USDT"
NS = 1_000_000_000

pytestmark = pytest.mark.anyio


def intent(
    intent_id: str = "i1",
    side: Side = "buy",
    qty: str = "1",
    order_type: str = "market",
    price: str | None = None,
    stop_price: str | None = None,
    reduce_only: bool = False,
    stop_loss: str | None = "95",
    take_profit: str | None = None,
    ts: int = 1,
) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=ts,
        ts_recv=ts,
        intent_id=intent_id,
        source="test",
        side=side,
        order_type=order_type,  # type: ignore[arg-type]
        quantity=D(qty),
        price=None if price is None else D(price),
        stop_price=None if stop_price is None else D(stop_price),
        reduce_only=reduce_only,
        stop_loss=None if stop_loss is None else D(stop_loss),
        take_profit=None if take_profit is None else D(take_profit),
    )


def exit_(intent_id: str, side: Side, qty: str) -> OrderIntent:
    return intent(intent_id, side, qty, reduce_only=True, stop_loss=None)


class Wired:
    def __init__(self, last_price: str | None = "100", position: str = "0", **limits: object) -> None:
        self.router = Router()
        self.state = SymbolState(EX, SYM, "acct")
        self.state.last_price = None if last_price is None else D(last_price)
        self.state.position = D(position)
        self.group = GroupState(EX, SYM)
        self.out: Channel[Message] = Channel("decisions", 256)
        self.router.subscribe(self.out, (RiskApproved, RiskRejected))
        self.risk = RiskActor(
            EX,
            SYM,
            self.router,
            Channel("risk", 16),
            self.state,
            self.group,
            RiskLimits(**limits),  # type: ignore[arg-type]
        )

    async def decide(self, it: OrderIntent) -> RiskApproved | RiskRejected:
        with anyio.fail_after(2):
            await self.risk.handle(it)
            batch = await self.out.receive_batch()
        assert len(batch) == 1, batch
        msg = batch[0]
        assert isinstance(msg, RiskApproved | RiskRejected)
        assert msg.intent == it
        assert (msg.exchange, msg.symbol) == (EX, SYM)
        return msg

    async def rejected(self, it: OrderIntent) -> tuple[str, str]:
        msg = await self.decide(it)
        assert isinstance(msg, RiskRejected), f"expected a rejection, got {msg}"
        return msg.rule, msg.reason

    async def approved(self, it: OrderIntent) -> None:
        msg = await self.decide(it)
        assert isinstance(msg, RiskApproved), f"expected approval, got {msg}"


# --- trading state --------------------------------------------------------------------------


async def test_halted_group_rejects_entries_but_lets_exits_through() -> None:
    """A halt stops new exposure; an open position must still be able to reach its stop-loss."""
    w = Wired(position="2")
    w.group.halt("order actor failed 6 times")
    assert await w.rejected(intent()) == (
        "halted",
        "group halted (order actor failed 6 times): only reduce-only orders are allowed",
    )
    await w.approved(exit_("x", "sell", "1"))


async def test_admin_halt_rejects_entries_and_resume_lifts_only_the_admin_halt() -> None:
    w = Wired(position="2")
    w.group.admin_halt("desk says stop")
    assert await w.rejected(intent()) == (
        "halted",
        "group halted (admin: desk says stop): only reduce-only orders are allowed",
    )
    w.group.halt("feed failed 6 times")
    w.group.admin_resume()
    assert w.group.halted and w.group.reason == "feed failed 6 times"


async def test_group_that_is_not_halted_approves() -> None:
    w = Wired()
    await w.approved(intent())


async def test_trading_state_halted_rejects_entries_and_exits() -> None:
    w = Wired(position="2", trading_state="halted")
    assert await w.rejected(intent()) == ("halted", "trading state is HALTED")
    assert await w.rejected(exit_("x", "sell", "1")) == ("halted", "trading state is HALTED")


async def test_trading_state_reducing_rejects_entries() -> None:
    w = Wired(trading_state="reducing")
    assert await w.rejected(intent()) == (
        "reducing",
        "trading state is REDUCING: only orders that reduce a position are allowed",
    )


async def test_trading_state_reducing_lets_reduce_only_exits_through() -> None:
    w = Wired(position="2", trading_state="reducing")
    await w.approved(exit_("x", "sell", "1"))


# --- sanity ---------------------------------------------------------------------------------

INVALID = {
    "zero_quantity": (intent(qty="0"), "quantity must be a positive number, got 0"),
    "negative_quantity": (intent(qty="-1"), "quantity must be a positive number, got -1"),
    "nan_quantity": (intent(qty="NaN"), "quantity must be a positive number, got NaN"),
    "infinite_quantity": (intent(qty="Infinity"), "quantity must be a positive number, got Infinity"),
    "limit_without_price": (intent(order_type="limit"), "limit order needs price"),
    "stop_market_without_stop": (intent(order_type="stop_market"), "stop_market order needs stop_price"),
    "stop_limit_without_price": (
        intent(order_type="stop_limit", stop_price="101"),
        "stop_limit order needs price",
    ),
    "stop_limit_without_stop": (
        intent(order_type="stop_limit", price="101"),
        "stop_limit order needs stop_price",
    ),
    "negative_price": (intent(order_type="limit", price="-5"), "price must be a positive number, got -5"),
    "zero_price": (intent(order_type="limit", price="0"), "price must be a positive number, got 0"),
    "nan_stop_price": (
        intent(order_type="stop_market", stop_price="NaN"),
        "stop_price must be a positive number, got NaN",
    ),
    "price_on_market_order_checked_too": (
        intent(order_type="market", price="Infinity"),
        "price must be a positive number, got Infinity",
    ),
}


@pytest.mark.parametrize(("it", "reason"), INVALID.values(), ids=INVALID.keys())
async def test_malformed_intent_is_rejected_as_invalid(it: OrderIntent, reason: str) -> None:
    w = Wired()
    assert await w.rejected(it) == ("invalid", reason)


VALID = {
    "market": intent(),
    "limit": intent(order_type="limit", price="100"),
    "stop_market": intent(order_type="stop_market", stop_price="101"),
    "stop_limit": intent(order_type="stop_limit", price="101", stop_price="101"),
}


@pytest.mark.parametrize("it", VALID.values(), ids=VALID.keys())
async def test_well_formed_intent_of_every_order_type_is_approved(it: OrderIntent) -> None:
    w = Wired()
    await w.approved(it)


# --- reduce-only ----------------------------------------------------------------------------

NOT_REDUCING = {
    "flat": ("0", exit_("x", "sell", "1"), "reduce-only sell but position net of open orders is 0"),
    "buy_on_long": ("2", exit_("x", "buy", "1"), "reduce-only buy but position net of open orders is 2"),
    "sell_on_short": (
        "-2",
        exit_("x", "sell", "1"),
        "reduce-only sell but position net of open orders is -2",
    ),
    "exceeds_long": (
        "2",
        exit_("x", "sell", "3"),
        "reduce-only quantity 3 exceeds position net of open orders 2",
    ),
    "exceeds_short": (
        "-2",
        exit_("x", "buy", "2.5"),
        "reduce-only quantity 2.5 exceeds position net of open orders 2",
    ),
}


@pytest.mark.parametrize(("position", "it", "reason"), NOT_REDUCING.values(), ids=NOT_REDUCING.keys())
async def test_reduce_only_that_does_not_reduce_is_rejected(
    position: str, it: OrderIntent, reason: str
) -> None:
    w = Wired(position=position)
    assert await w.rejected(it) == ("reduce_only", reason)


@pytest.mark.parametrize(
    ("position", "it"),
    [("2", exit_("x", "sell", "2")), ("2", exit_("x", "sell", "0.5")), ("-2", exit_("x", "buy", "2"))],
    ids=["close_long", "part_long", "close_short"],
)
async def test_reduce_only_that_reduces_is_approved(position: str, it: OrderIntent) -> None:
    w = Wired(position=position)
    await w.approved(it)


async def test_second_reduce_only_exit_for_an_already_exiting_position_is_rejected() -> None:
    # Position 2 long; the stop-monitor's exit (sell 2) is approved and working.  The
    # strategy's own exit on the same bar would flip the position short if both filled.
    w = Wired(position="2")
    await w.approved(exit_("stop-exit", "sell", "2"))
    assert await w.rejected(exit_("strategy-exit", "sell", "2")) == (
        "reduce_only",
        "reduce-only sell but position net of open orders is 0",
    )


async def test_reduce_only_exit_may_take_what_pending_exits_leave() -> None:
    w = Wired(position="3")
    await w.approved(exit_("a", "sell", "1"))
    assert await w.rejected(exit_("b", "sell", "2.5")) == (
        "reduce_only",
        "reduce-only quantity 2.5 exceeds position net of open orders 2",
    )
    await w.approved(exit_("c", "sell", "2"))


# --- stop-loss ------------------------------------------------------------------------------


async def test_entry_without_stop_loss_is_rejected_when_required() -> None:
    w = Wired()
    assert await w.rejected(intent(stop_loss=None)) == (
        "stop_loss_required",
        "entries must carry a stop-loss (risk.require_stop_loss)",
    )


async def test_entry_without_stop_loss_passes_when_not_required() -> None:
    w = Wired(require_stop_loss=False)
    await w.approved(intent(stop_loss=None))


async def test_reduce_only_exit_needs_no_stop_loss() -> None:
    w = Wired(position="1")
    await w.approved(exit_("x", "sell", "1"))


@pytest.mark.parametrize(
    ("stop_loss", "take_profit"),
    [("NaN", None), ("-95", None), ("0", None), ("95", "Infinity")],
    ids=["nan_stop", "negative_stop", "zero_stop", "infinite_take_profit"],
)
async def test_entry_with_non_finite_or_non_positive_bracket_levels_is_rejected_as_invalid(
    stop_loss: str, take_profit: str | None
) -> None:
    """``_check_sanity`` validates quantity, price and stop_price but not ``stop_loss`` /
    ``take_profit``, and ``_check_stop_loss`` only asks that a stop-loss is present.  An
    entry with ``stop_loss=NaN`` is approved; once it fills, the stop-monitor arms it and
    its next price check does ``low <= Decimal('NaN')``, which raises
    decimal.InvalidOperation on every trade: the stop-monitor crash-loops until the group
    halts, and the position has no working stop.  A negative/zero stop never triggers.
    Fix: in ``_check_sanity`` treat ``stop_loss`` and ``take_profit`` like ``price``
    (when not None they must be finite and > 0; rule ``invalid``, reason
    ``"stop_loss must be a positive number, got NaN"``).
    """
    w = Wired()
    rule, reason = await w.rejected(intent(stop_loss=stop_loss, take_profit=take_profit))
    assert rule == "invalid"
    assert ("stop_loss" if take_profit is None else "take_profit") in reason


# --- price ----------------------------------------------------------------------------------


async def test_intent_before_any_trade_is_rejected_for_want_of_a_price() -> None:
    w = Wired(last_price=None)
    assert await w.rejected(intent()) == ("no_price", "no trade seen yet: cannot value the order")


async def test_intent_is_valued_once_a_last_price_exists() -> None:
    w = Wired(last_price=None)
    w.state.last_price = D("100")
    await w.approved(intent())


@pytest.mark.parametrize("price", ["105.01", "94.99"])
async def test_limit_price_outside_the_band_around_the_last_trade_is_rejected(price: str) -> None:
    w = Wired()
    assert await w.rejected(intent(order_type="limit", price=price)) == (
        "price_band",
        f"price {price} is more than 5% away from last trade 100",
    )


@pytest.mark.parametrize("price", ["105", "95"])
async def test_limit_price_at_the_edge_of_the_band_is_approved(price: str) -> None:
    w = Wired()
    await w.approved(intent(order_type="limit", price=price))


async def test_market_order_above_max_notional_is_rejected_using_the_last_price() -> None:
    w = Wired()
    assert await w.rejected(intent(qty="10.01")) == (
        "max_notional",
        "notional 1001.00 exceeds max_order_notional 1000",
    )


async def test_limit_order_notional_uses_its_own_price() -> None:
    w = Wired()
    assert await w.rejected(intent(qty="10", order_type="limit", price="101")) == (
        "max_notional",
        "notional 1010 exceeds max_order_notional 1000",
    )


async def test_order_at_exactly_max_notional_is_approved() -> None:
    w = Wired()
    await w.approved(intent(qty="10"))


async def test_reduce_only_exit_is_exempt_from_max_notional() -> None:
    w = Wired(position="20")
    await w.approved(exit_("x", "sell", "20"))  # 2000 notional


# --- position and exposure ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "side", "after"), [("3", "buy", "6"), ("-3", "sell", "-6")], ids=["long", "short"]
)
async def test_entry_that_would_take_the_position_past_max_position_is_rejected(
    position: str, side: Side, after: str
) -> None:
    w = Wired(position=position, max_position=D("5"))
    assert await w.rejected(intent(side=side, qty="3")) == (
        "max_position",
        f"position would be {after}, above max_position 5",
    )


async def test_entry_that_reaches_exactly_max_position_is_approved() -> None:
    w = Wired(position="3", max_position=D("5"))
    await w.approved(intent(qty="2"))


async def test_max_position_counts_the_exposure_of_orders_already_approved() -> None:
    # Arrange: flat, but a first buy of 3 is approved and not yet filled
    w = Wired(max_position=D("5"))
    await w.approved(intent("a", qty="3"))
    # Act / Assert: a second buy of 3 would make 6 once both fill
    assert await w.rejected(intent("b", qty="3")) == (
        "max_position",
        "position would be 6, above max_position 5",
    )
    await w.approved(intent("c", qty="2"))


async def test_entry_in_the_opposite_direction_of_pending_exposure_is_approved() -> None:
    w = Wired(max_position=D("5"))
    w.state.pending_exposure = D("5")
    await w.approved(intent(side="sell", qty="3"))


async def test_reduce_only_exit_is_exempt_from_max_position() -> None:
    w = Wired(position="8", max_position=D("5"))  # already above the limit (limit lowered on reload)
    await w.approved(exit_("x", "sell", "1"))


# --- open orders and rate -------------------------------------------------------------------


async def test_intent_is_rejected_when_max_open_orders_are_open() -> None:
    w = Wired(max_open_orders=2)
    await w.approved(intent("a"))
    await w.approved(intent("b"))
    assert await w.rejected(intent("c")) == ("max_open_orders", "2 orders open, max_open_orders is 2")


async def test_intent_is_approved_again_once_an_open_order_finishes() -> None:
    w = Wired(max_open_orders=2)
    w.state.open_orders = 2
    await w.rejected(intent("a"))
    w.state.open_orders = 1  # the order actor saw one order end
    await w.approved(intent("b"))


async def test_reduce_only_exit_is_not_blocked_by_max_open_orders() -> None:
    w = Wired(position="2", max_open_orders=2)
    w.state.open_orders = 2
    await w.approved(exit_("x", "sell", "2"))


async def test_order_rate_limit_rejects_entries_until_a_minute_of_event_time_has_passed() -> None:
    # Arrange: two entries 30 s apart in event time
    w = Wired(max_orders_per_minute=2, max_open_orders=100)
    await w.approved(intent("a", ts=1000 * NS))
    await w.approved(intent("b", ts=1030 * NS))
    # Act / Assert
    rate = ("order_rate", "2 orders in the last minute, max_orders_per_minute is 2")
    assert await w.rejected(intent("c", ts=1060 * NS)) == rate  # "a" is exactly 60 s old: still counts
    await w.approved(intent("d", ts=1060 * NS + 1))  # "a" is now more than 60 s old
    assert await w.rejected(intent("e", ts=1061 * NS)) == rate


async def test_rejected_intents_do_not_count_towards_the_order_rate() -> None:
    w = Wired(max_orders_per_minute=1)
    await w.rejected(intent("a", qty="1000"))
    await w.rejected(intent("b", stop_loss=None))
    await w.approved(intent("c"))


async def test_reduce_only_exits_are_never_throttled_and_do_not_use_up_the_rate() -> None:
    w = Wired(position="3", max_orders_per_minute=1, max_open_orders=100)
    await w.approved(exit_("x1", "sell", "1"))
    await w.approved(intent("a", side="sell", ts=2))
    assert await w.rejected(intent("b", side="sell", ts=3)) == (
        "order_rate",
        "1 orders in the last minute, max_orders_per_minute is 1",
    )
    await w.approved(exit_("x2", "sell", "1"))


# --- reservations, config reload, bookkeeping ------------------------------------------------


async def test_approvals_reserve_open_orders_and_signed_pending_exposure() -> None:
    w = Wired(position="1")
    await w.approved(intent("a", "buy", "2"))
    assert (w.state.open_orders, w.state.pending_exposure) == (1, D("2"))
    await w.approved(intent("b", "sell", "0.5"))
    assert (w.state.open_orders, w.state.pending_exposure) == (2, D("1.5"))
    await w.approved(exit_("c", "sell", "1"))
    assert (w.state.open_orders, w.state.pending_exposure) == (3, D("0.5"))


async def test_rejections_reserve_nothing() -> None:
    w = Wired()
    await w.rejected(intent(qty="1000"))
    assert (w.state.open_orders, w.state.pending_exposure) == (0, D(0))


async def test_apply_limits_changes_the_next_decision() -> None:
    # Arrange
    w = Wired()
    await w.approved(intent("a", qty="5"))
    # Act: a config reload lowers the notional cap
    w.risk.apply_limits(RiskLimits(max_order_notional=D("400")))
    # Assert
    assert await w.rejected(intent("b", qty="5")) == (
        "max_notional",
        "notional 500 exceeds max_order_notional 400",
    )
    w.risk.apply_limits(RiskLimits(max_order_notional=D("400"), trading_state="halted"))
    assert await w.rejected(intent("c", qty="1")) == ("halted", "trading state is HALTED")
    w.risk.apply_limits(RiskLimits())
    await w.approved(intent("d", qty="5"))


async def test_first_broken_rule_wins_in_the_documented_order() -> None:
    # halted beats invalid quantity, which beats the missing stop-loss and price
    w = Wired(last_price=None, trading_state="halted")
    it = intent(qty="0", stop_loss=None)
    assert (await w.rejected(it))[0] == "halted"
    w.risk.apply_limits(RiskLimits())
    assert (await w.rejected(it))[0] == "invalid"
    assert (await w.rejected(intent(stop_loss=None)))[0] == "stop_loss_required"
    assert (await w.rejected(intent()))[0] == "no_price"


async def test_decisions_are_counted_by_outcome_and_rule() -> None:
    w = Wired()
    await w.approved(intent("a"))
    await w.approved(intent("b"))
    await w.rejected(intent("c", qty="1000"))
    await w.rejected(intent("d", stop_loss=None))
    assert w.risk.decisions == {"approved": 2, "max_notional": 1, "stop_loss_required": 1}


async def test_message_that_is_not_an_intent_is_ignored_and_publishes_nothing() -> None:
    w = Wired()
    with anyio.fail_after(2):
        await w.risk.handle(Trade(exchange=EX, symbol=SYM, ts_event=1, ts_recv=1, price=D(1), size=D(1)))
    assert w.out.depth() == 0
    assert w.risk.decisions == {}
    assert (w.state.open_orders, w.state.pending_exposure) == (0, D(0))
