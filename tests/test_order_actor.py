"""Order actor (actors/order.py): approved intents become venue orders, tracked to the end.

Risk reserves ``open_orders`` and ``pending_exposure`` when it approves; :func:`approve`
does the same here so each test starts from what the order actor would really see.
"""

from __future__ import annotations

from decimal import Decimal as D

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    PositionChanged,
    RiskApproved,
    Side,
    SubmitOrder,
    Trade,
)
from actors.order import TERMINAL, OrderActor
from actors.order_ids import client_order_id
from actors.state import SymbolState

EX, SYM, ACCOUNT = "paper", "BTC/USDT", "acct"
TICK, STEP = D("0.01"), D("0.001")

pytestmark = pytest.mark.anyio


def intent(
    intent_id: str = "i1",
    side: Side = "buy",
    qty: str = "2",
    order_type: str = "limit",
    price: str | None = "100",
    stop_price: str | None = None,
    reduce_only: bool = False,
) -> OrderIntent:
    return OrderIntent(
        exchange=EX,
        symbol=SYM,
        ts_event=1,
        ts_recv=1,
        intent_id=intent_id,
        source="test",
        side=side,
        order_type=order_type,  # type: ignore[arg-type]
        quantity=D(qty),
        price=None if price is None else D(price),
        stop_price=None if stop_price is None else D(stop_price),
        reduce_only=reduce_only,
        stop_loss=D("90"),
        time_in_force="ioc",
    )


def hdr(ts: int = 5) -> dict[str, object]:
    return {"exchange": EX, "symbol": SYM, "ts_event": ts, "ts_recv": ts}


def fill(
    cid: str, side: Side, qty: str, price: str, cum: str, leaves: str, fee: str = "0", trade_id: str = "t"
) -> OrderFilled:
    return OrderFilled(
        **hdr(),  # type: ignore[arg-type]
        client_order_id=cid,
        venue_order_id="v1",
        trade_id=trade_id,
        side=side,
        last_qty=D(qty),
        last_price=D(price),
        cum_qty=D(cum),
        leaves_qty=D(leaves),
        fee=D(fee),
        fee_asset="USDT",
        liquidity="taker",
    )


def accepted(cid: str) -> OrderAccepted:
    return OrderAccepted(**hdr(), client_order_id=cid, venue_order_id="v1")  # type: ignore[arg-type]


class Wired:
    def __init__(self) -> None:
        self.router = Router()
        self.state = SymbolState(EX, SYM, ACCOUNT)
        self.out: Channel[Message] = Channel("out", 1024)
        self.router.subscribe(self.out, (OrderSubmitted, SubmitOrder, PositionChanged))
        self.order = OrderActor(EX, SYM, self.router, Channel("order", 64), self.state, TICK, STEP)

    def approve(self, it: OrderIntent) -> RiskApproved:
        """What risk does on approval: reserve one open order and the signed quantity."""
        self.state.open_orders += 1
        self.state.pending_exposure += it.quantity if it.side == "buy" else -it.quantity
        return RiskApproved(intent=it, **hdr(2))  # type: ignore[arg-type]

    async def send(self, *msgs: Message) -> list[Message]:
        """Handle ``msgs`` in order; return everything published meanwhile."""
        with anyio.fail_after(2):
            for m in msgs:
                await self.order.handle(m)
            return await self.out.receive_batch() if self.out.depth() else []

    async def submit(self, it: OrderIntent) -> str:
        await self.send(self.approve(it))
        return client_order_id(it.intent_id)

    def exposure(self) -> tuple[int, D]:
        return self.state.open_orders, self.state.pending_exposure


def position_of(msg: Message) -> tuple[D, D, D, D, str]:
    assert isinstance(msg, PositionChanged)
    assert (msg.exchange, msg.symbol, msg.account) == (EX, SYM, ACCOUNT)
    return msg.quantity, msg.avg_price, msg.realized_pnl, msg.fees, msg.last_client_order_id


# --- submission -----------------------------------------------------------------------------


async def test_approved_intent_becomes_order_submitted_and_submit_order_with_a_deterministic_id() -> None:
    # Arrange
    w = Wired()
    it = intent("strat:1", "buy", "1.23456", "limit", "100.006")
    # Act
    out = await w.send(w.approve(it))
    # Assert
    cid = client_order_id("strat:1")
    assert cid == client_order_id("strat:1") and cid.startswith("td-") and len(cid) == 32
    assert len(out) == 2
    submitted, submit = out
    assert isinstance(submitted, OrderSubmitted) and isinstance(submit, SubmitOrder)
    assert (submitted.intent_id, submitted.client_order_id, submitted.side, submitted.order_type) == (
        "strat:1",
        cid,
        "buy",
        "limit",
    )
    assert (submitted.quantity, submitted.price, submitted.stop_price) == (D("1.234"), D("100.01"), None)
    assert (submit.intent_id, submit.client_order_id, submit.side, submit.order_type) == (
        "strat:1",
        cid,
        "buy",
        "limit",
    )
    assert (submit.quantity, submit.price, submit.stop_price) == (D("1.234"), D("100.01"), None)
    assert (submit.time_in_force, submit.reduce_only, submit.exchange, submit.symbol) == (
        "ioc",
        False,
        EX,
        SYM,
    )
    assert w.order.orders[cid].status == "submitted"
    assert w.order.counts["submitted"] == 1


async def test_stop_price_is_rounded_to_the_tick_and_reduce_only_is_passed_on() -> None:
    w = Wired()
    w.state.position = D("3")
    it = intent("x", "sell", "3", "stop_market", None, stop_price="94.994", reduce_only=True)
    out = await w.send(w.approve(it))
    submit = out[1]
    assert isinstance(submit, SubmitOrder)
    assert (submit.price, submit.stop_price, submit.reduce_only, submit.quantity) == (
        None,
        D("94.99"),
        True,
        D("3"),
    )


async def test_quantity_floored_to_step_gives_the_rounded_off_reservation_back() -> None:
    w = Wired()
    await w.send(w.approve(intent("a", "buy", "1.23456")))
    assert w.exposure() == (1, D("1.234"))
    await w.send(w.approve(intent("b", "sell", "0.5009")))
    assert w.exposure() == (2, D("0.734"))


async def test_intent_that_floors_to_zero_quantity_is_not_sent_and_its_reservation_is_released() -> None:
    """Risk checks the intent's quantity (> 0) but not the instrument's step; the order
    actor floors ``0.0009`` to ``0.000`` with step 0.001 and still publishes
    OrderSubmitted + SubmitOrder with ``quantity=0``, keeps the open-order slot reserved
    and records an order that can never fill.  Fix: in ``_handle_approved``, when
    ``qty <= 0`` after flooring, publish nothing, release the whole reservation
    (``pending_exposure`` and ``open_orders``) and count an anomaly such as
    ``"below_step"`` (or let risk reject quantities below one step).
    """
    w = Wired()
    out = await w.send(w.approve(intent("b", "sell", "0.0009")))
    assert out == []
    assert w.exposure() == (0, D(0))
    assert sum(w.order.anomalies.values()) == 1


async def test_same_intent_approved_twice_is_sent_once_and_the_second_reservation_is_released() -> None:
    # Arrange
    w = Wired()
    it = intent("dup", "buy", "2")
    first = await w.send(w.approve(it))
    # Act
    second = await w.send(w.approve(it))
    # Assert
    assert [type(m) for m in first] == [OrderSubmitted, SubmitOrder]
    assert second == []
    assert w.order.anomalies == {"duplicate_intent": 1}
    assert w.exposure() == (1, D("2"))
    assert w.order.counts["submitted"] == 1


# --- lifecycle ------------------------------------------------------------------------------


async def test_accepted_then_partially_filled_then_filled_publishes_the_position_after_each_fill() -> None:
    # Arrange
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2", "limit", "101"))
    # Act / Assert: ack
    assert await w.send(accepted(cid)) == []
    assert w.order.orders[cid].status == "accepted"
    # first fill
    out = await w.send(fill(cid, "buy", "0.5", "100", "0.5", "1.5", fee="0.05", trade_id="t1"))
    assert [position_of(m) for m in out] == [(D("0.5"), D("100"), D(0), D("0.05"), cid)]
    assert w.order.orders[cid].status == "partially_filled"
    assert w.exposure() == (1, D("1.5"))
    # second fill completes the order
    out = await w.send(fill(cid, "buy", "1.5", "101", "2", "0", fee="0.15", trade_id="t2"))
    assert [position_of(m) for m in out] == [(D("2"), D("100.75"), D(0), D("0.20"), cid)]
    assert w.order.orders[cid].status == "filled"
    assert w.exposure() == (0, D(0))
    assert (w.state.position, w.state.avg_price, w.state.realized_pnl) == (D("2"), D("100.75"), D(0))
    assert w.order.open_orders() == []
    assert {k: v for k, v in w.order.counts.items() if v} == {
        "submitted": 1,
        "accepted": 1,
        "partially_filled": 1,
        "filled": 1,
    }


async def test_closing_fill_publishes_realized_pnl() -> None:
    w = Wired()
    buy = await w.submit(intent("e1", "buy", "2", "limit", "100"))
    await w.send(fill(buy, "buy", "2", "100", "2", "0", fee="0.2"))
    sell = await w.submit(intent("x1", "sell", "2", "market", None, reduce_only=True))
    out = await w.send(fill(sell, "sell", "2", "102.5", "2", "0", fee="0.2"))
    assert [position_of(m) for m in out] == [(D(0), D(0), D("5.0"), D("0.4"), sell)]
    assert (w.state.position, w.state.avg_price, w.state.realized_pnl) == (D(0), D(0), D("5.0"))
    assert w.exposure() == (0, D(0))


async def test_fill_before_its_ack_is_handled_and_the_late_ack_changes_nothing() -> None:
    # Arrange
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "1"))
    # Act: the fill overtakes the acknowledgement
    out = await w.send(fill(cid, "buy", "1", "99", "1", "0"))
    late = await w.send(accepted(cid))
    # Assert
    assert [position_of(m) for m in out] == [(D("1"), D("99"), D(0), D(0), cid)]
    assert late == []
    rec = w.order.orders[cid]
    assert (rec.status, rec.venue_order_id, rec.cum_qty) == ("filled", "v1", D("1"))
    assert w.exposure() == (0, D(0))
    assert w.order.anomalies == {}


async def test_partial_fill_before_ack_keeps_the_order_open() -> None:
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    await w.send(fill(cid, "buy", "0.5", "99", "0.5", "1.5"))
    await w.send(accepted(cid))
    assert w.order.orders[cid].status == "partially_filled"
    assert [r.cid for r in w.order.open_orders()] == [cid]
    assert w.exposure() == (1, D("1.5"))


def canceled(cid: str) -> OrderCanceled:
    return OrderCanceled(**hdr(), client_order_id=cid, reason="user")  # type: ignore[arg-type]


def expired(cid: str) -> OrderExpired:
    return OrderExpired(**hdr(), client_order_id=cid)  # type: ignore[arg-type]


def rejected(cid: str, reason: str = "insufficient balance") -> OrderRejected:
    return OrderRejected(**hdr(), client_order_id=cid, reason=reason)  # type: ignore[arg-type]


ENDINGS = {"canceled": canceled, "expired": expired, "rejected": rejected}


@pytest.mark.parametrize("status", ENDINGS.keys())
async def test_order_ending_unfilled_releases_its_open_order_and_exposure(status: str) -> None:
    w = Wired()
    cid = await w.submit(intent("e1", "sell", "2"))
    assert w.exposure() == (1, D("-2"))
    out = await w.send(ENDINGS[status](cid))
    assert out == []
    assert w.order.orders[cid].status == status
    assert w.exposure() == (0, D(0))
    assert w.order.counts[status] == 1


@pytest.mark.parametrize("status", ["canceled", "expired"])
async def test_order_ending_after_a_partial_fill_releases_only_the_unfilled_rest(status: str) -> None:
    # Arrange: buy 2, 0.5 filled, another order's 1 still reserved
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    await w.submit(intent("e2", "buy", "1"))
    await w.send(accepted(cid), fill(cid, "buy", "0.5", "100", "0.5", "1.5"))
    assert w.exposure() == (2, D("2.5"))
    # Act
    await w.send(ENDINGS[status](cid))
    # Assert
    assert w.exposure() == (1, D("1"))
    assert w.state.position == D("0.5")


async def test_second_terminal_event_for_a_finished_order_is_counted_and_releases_nothing() -> None:
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    await w.send(canceled(cid))
    await w.send(expired(cid))
    assert w.order.orders[cid].status == "canceled"
    assert w.order.anomalies == {"late_terminal": 1}
    assert w.exposure() == (0, D(0))


# --- anomalies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        accepted("td-unknown"),
        fill("td-unknown", "buy", "1", "100", "1", "0"),
        canceled("td-unknown"),
        expired("td-unknown"),
        rejected("td-unknown"),
    ],
    ids=["accepted", "filled", "canceled", "expired", "rejected"],
)
async def test_event_for_an_unknown_client_order_id_is_counted_not_guessed_at(event: Message) -> None:
    # Arrange: one real order working
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    # Act
    out = await w.send(event)
    # Assert: nothing published, nothing moved
    assert out == []
    assert w.order.anomalies == {"unknown_order": 1}
    assert w.exposure() == (1, D("2"))
    assert w.state.position == D(0)
    assert w.order.orders[cid].status == "submitted"
    assert list(w.order.orders) == [cid]


async def test_fill_that_would_overfill_the_order_is_refused() -> None:
    # Arrange
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "1"))
    await w.send(fill(cid, "buy", "0.6", "100", "0.6", "0.4", trade_id="t1"))
    # Act
    out = await w.send(fill(cid, "buy", "0.6", "100", "1.2", "0", trade_id="t2"))
    # Assert
    assert out == []
    assert w.order.anomalies == {"overfill": 1}
    rec = w.order.orders[cid]
    assert (rec.cum_qty, rec.status) == (D("0.6"), "partially_filled")
    assert w.state.position == D("0.6")
    assert w.exposure() == (1, D("0.4"))


async def test_duplicate_client_order_id_reject_of_a_submit_ends_the_order_and_frees_its_reservation() -> (
    None
):
    """After a restart the same intent is re-sent; the venue refuses the id it already has.
    This submission did nothing: the order ends here and its reservation comes back, so
    open_orders cannot stay stuck (which would block every later entry)."""
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    await w.send(rejected(cid, f"duplicate client_order_id {cid}"))
    assert w.order.orders[cid].status == "rejected"
    assert w.exposure() == (0, D(0))
    assert w.order.counts["rejected"] == 1


async def test_rejection_of_a_cancel_request_does_not_end_the_order() -> None:
    # Arrange
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    await w.send(accepted(cid))
    # Act
    await w.send(rejected(cid, "cancel rejected: unknown order td-abc"))
    # Assert
    assert w.order.orders[cid].status == "accepted"
    assert w.order.anomalies == {"request_rejected": 1}
    assert w.exposure() == (1, D("2"))
    assert w.order.counts["rejected"] == 0
    # the order still fills normally afterwards
    out = await w.send(fill(cid, "buy", "2", "100", "2", "0"))
    assert [position_of(m) for m in out] == [(D("2"), D("100"), D(0), D(0), cid)]
    assert w.exposure() == (0, D(0))


async def test_unexpected_message_kind_is_counted() -> None:
    w = Wired()
    out = await w.send(Trade(**hdr(), price=D(1), size=D(1)))  # type: ignore[arg-type]
    assert out == []
    assert w.order.anomalies == {"unexpected_kind": 1}


async def test_fill_arriving_after_cancel_moves_the_position_but_not_the_reservations() -> None:
    """Events may arrive out of order (module docstring), so a fill can land after the
    order's OrderCanceled.  ``_handle_filled`` counts ``fill_after_terminal`` but carries
    on: it subtracts the fill from ``pending_exposure`` although ``_handle_finished``
    already released the whole unfilled rest on cancel (exposure goes to -1 here, and
    risk's max_position / reduce-only checks are off by that much from then on), and it
    sets the status back to ``partially_filled``, so ``open_orders()`` lists an order the
    venue has closed.  Fix: in ``_handle_filled`` remember ``was_open`` before touching
    anything; when the record was already terminal, apply the fill to the position and
    publish PositionChanged, but do not touch ``pending_exposure`` / ``open_orders`` and
    keep the terminal status (or set ``filled`` only if cum_qty reached quantity).
    """
    # Arrange
    w = Wired()
    cid = await w.submit(intent("e1", "buy", "2"))
    await w.send(accepted(cid), canceled(cid))
    assert w.exposure() == (0, D(0))
    # Act
    out = await w.send(fill(cid, "buy", "1", "100", "1", "0"))
    # Assert: the fill is real, so the position moves...
    assert [position_of(m) for m in out] == [(D("1"), D("100"), D(0), D(0), cid)]
    # ...but nothing that was already released is released again, and the order stays closed
    assert w.exposure() == (0, D(0))
    assert w.order.orders[cid].status in TERMINAL
    assert w.order.open_orders() == []
