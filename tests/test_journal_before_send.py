"""Journal before send: an order never leaves the process before its OrderSubmitted record is fsynced."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import anyio
import pytest

from actors.channels import Channel, Router
from actors.messages import Message, OrderSubmitted, RiskApproved, SubmitOrder, is_order_path
from actors.order import OrderActor
from actors.state import SymbolState
from daemon.journal import Journal
from tests.test_order_actor import EX, STEP, SYM, TICK, intent

pytestmark = pytest.mark.anyio


async def test_submit_order_is_published_only_after_its_record_is_durable(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "journal")
    seen: list[tuple[str, int]] = []  # (message type, durable offset when the tap saw it)

    def tap(msg: Message) -> None:
        if is_order_path(msg):
            journal.append(msg)
        seen.append((type(msg).__name__, journal.durable_offset))

    router = Router(tap)
    venue: Channel[Message] = Channel("venue", 16)
    router.subscribe(venue, (SubmitOrder,))
    order = OrderActor(
        EX, SYM, router, Channel("order", 16), SymbolState(EX, SYM, "acct"), TICK, STEP, durable=journal.flush
    )
    order.state.open_orders, order.state.pending_exposure = 1, D("2")  # as risk reserves on approval
    with anyio.fail_after(5):
        await order.handle(RiskApproved(exchange=EX, symbol=SYM, ts_event=1, ts_recv=1, intent=intent("i1")))
    kinds = [k for k, _ in seen]
    assert kinds == ["OrderSubmitted", "SubmitOrder"]
    submitted_offset = 0  # the first record of a fresh journal
    durable_when_sent = seen[1][1]
    assert durable_when_sent > submitted_offset, "SubmitOrder left before OrderSubmitted was on disk"
    await journal.aclose()
    reopened = Journal.open(tmp_path / "journal")
    records = [m for _, m in reopened.read_from(0)]
    assert isinstance(records[0], OrderSubmitted) and records[0].intent_id == "i1"
    await reopened.aclose()


async def test_a_failing_journal_rejects_the_order_unsent_and_frees_its_reservation() -> None:
    tapped: list[Message] = []
    router = Router(tapped.append)
    venue: Channel[Message] = Channel("venue", 16)
    router.subscribe(venue, (SubmitOrder,))

    async def disk_full() -> int:
        raise OSError(28, "No space left on device")

    state = SymbolState(EX, SYM, "acct")
    order = OrderActor(EX, SYM, router, Channel("order", 16), state, TICK, STEP, durable=disk_full)
    state.open_orders, state.pending_exposure = 1, D("2")  # as risk reserves on approval
    with anyio.fail_after(5), pytest.raises(OSError, match="No space left"):
        await order.handle(RiskApproved(exchange=EX, symbol=SYM, ts_event=1, ts_recv=1, intent=intent("i1")))
    assert venue.depth() == 0  # nothing left the process
    assert (state.open_orders, state.pending_exposure) == (0, D(0))
    (rec,) = order.orders.values()
    assert rec.status == "rejected"
    assert [type(m).__name__ for m in tapped] == ["OrderSubmitted", "OrderRejected"]
    assert tapped[1].reason == "not sent: journal write failed: OSError(28, 'No space left on device')"  # type: ignore[attr-defined]
