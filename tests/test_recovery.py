"""Restart recovery: the journal fold, snapshots, the order actor's restore, replay resume."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import anyio
import msgspec
import pytest

from actors.channels import Channel, Router
from actors.messages import (
    GroupSnapshot,
    Message,
    OrderAccepted,
    OrderCanceled,
    OrderFilled,
    OrderIntent,
    OrderRejected,
    OrderSubmitted,
    OrderUnknown,
    PositionChanged,
    RiskApproved,
    RiskDay,
    SubmitOrder,
    stamp,
)
from actors.order import OrderActor
from actors.order_fold import OrderFold
from actors.state import SymbolState
from adapters.replay.feed import ReplayFeed
from daemon.config_schema import ReplayFeed as ReplayFeedConfig
from daemon.config_schema import StoreSection
from daemon.metrics import Metrics
from daemon.persistence import Persistence, StrategyView
from tests.helpers import CANDLES

EX, SYM = "paper", "UNITTEST/BTC"
D = Decimal


def st(ts: int = 1) -> dict[str, object]:
    return dict(stamp(EX, SYM, ts))


def intent(n: int, side: str = "buy", qty: str = "10", reduce_only: bool = False) -> OrderIntent:
    return OrderIntent(
        intent_id=f"i{n}",
        source="test",
        side=side,  # type: ignore[arg-type]
        order_type="limit",
        quantity=D(qty),
        price=D("0.001"),
        reduce_only=reduce_only,
        stop_loss=None if reduce_only else D("0.0009"),
        **st(n),  # type: ignore[arg-type]
    )


def fill(
    cid: str,
    trade: str,
    qty: str,
    cum: str,
    leaves: str,
    side: str = "buy",
    price: str = "0.001",
    fee_asset: str = "BTC",
) -> OrderFilled:
    return OrderFilled(
        client_order_id=cid,
        venue_order_id="v" + cid,
        trade_id=trade,
        side=side,  # type: ignore[arg-type]
        last_qty=D(qty),
        last_price=D(price),
        cum_qty=D(cum),
        leaves_qty=D(leaves),
        fee=D("0.00001"),
        fee_asset=fee_asset,
        liquidity="maker",
        **st(),  # type: ignore[arg-type]
    )


class Harness:
    """An order actor whose tap folds everything, as the daemon's persistence does."""

    def __init__(self) -> None:
        self.fold = OrderFold(EX, SYM, "paper", "UNITTEST", "BTC")
        self.sent: list[Message] = []

        def tap(msg: Message) -> None:
            self.sent.append(msg)
            if msg.symbol != "*":
                self.fold.apply(msg)

        self.router = Router(tap)
        self.state = SymbolState(EX, SYM, "paper")
        self.actor = OrderActor(
            EX,
            SYM,
            self.router,
            Channel("order", 1000),
            self.state,
            D("0.00000001"),
            D("0.01"),
            base_asset="UNITTEST",
            quote_asset="BTC",
        )
        self.venue_inbox: Channel[Message] = Channel("venue", 1000)
        self.router.subscribe(self.venue_inbox, (SubmitOrder,))

    async def approve(self, i: OrderIntent) -> str:
        self.state.open_orders += 1
        self.state.pending_exposure += i.quantity if i.side == "buy" else -i.quantity
        msg = RiskApproved(intent=i, **st())  # type: ignore[arg-type]
        self.router.tap(msg)  # type: ignore[misc]
        await self.actor.handle(msg)
        return next(m.client_order_id for m in reversed(self.sent) if isinstance(m, OrderSubmitted))

    async def event(self, msg: Message) -> None:
        self.router.tap(msg)  # type: ignore[misc]
        await self.actor.handle(msg)


def assert_same(fold: OrderFold, actor: OrderActor) -> None:
    opened = {r.cid: (r.status, r.cum_qty, r.quantity) for r in actor.open_orders()}
    folded = {o.cid: (o.status, o.cum_qty, o.quantity) for o in fold.open.values()}
    assert folded == opened
    p, q = fold.position, actor.position
    assert (p.quantity, p.avg_price, p.realized_pnl, p.fees) == (
        q.quantity,
        q.avg_price,
        q.realized_pnl,
        q.fees,
    )
    assert p.other_fees == q.other_fees


@pytest.mark.anyio
async def test_fold_follows_the_order_actor_through_a_lifecycle() -> None:
    h = Harness()
    a = await h.approve(intent(1))
    b = await h.approve(intent(2, qty="5"))
    c = await h.approve(intent(3, qty="3"))
    await h.event(OrderAccepted(client_order_id=a, venue_order_id="va", **st()))  # type: ignore[arg-type]
    await h.event(fill(a, "t1", "4", "4", "6"))
    await h.event(fill(a, "t1", "4", "4", "6"))  # the same execution again (stream + catch-up)
    await h.event(OrderUnknown(client_order_id=b, reason="timeout", **st()))  # type: ignore[arg-type]
    await h.event(OrderRejected(client_order_id=c, reason="cancel rejected: -2011", **st()))  # type: ignore[arg-type]
    await h.event(OrderCanceled(client_order_id=c, **st()))  # type: ignore[arg-type]
    await h.event(fill(c, "t9", "1", "1", "2"))  # a fill racing its cancel still moves the position
    assert h.actor.anomalies.get("duplicate_fill") == 1
    assert {r.cid: r.status for r in h.actor.open_orders()} == {a: "partially_filled", b: "unknown"}
    assert_same(h.fold, h.actor)
    assert h.fold.position.quantity == D("5")


@pytest.mark.anyio
async def test_fold_equals_actor_on_random_event_sequences() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        h = Harness()
        cids: list[str] = []
        pos_sign = 1
        for step in range(60):
            roll = rng.random()
            if roll < 0.3 or not cids:
                side = "buy" if pos_sign > 0 else "sell"
                cids.append(await h.approve(intent(step, side=side, qty=str(rng.randint(1, 9)))))
                continue
            cid = rng.choice(cids)
            rec = h.actor.orders[cid]
            if roll < 0.7:
                left = rec.quantity - rec.cum_qty
                qty = min(left, D(rng.randint(1, 5))) if left > 0 else D(1)
                cum = rec.cum_qty + qty
                await h.event(
                    fill(
                        cid,
                        f"t{rng.randint(0, 30)}",
                        str(qty),
                        str(cum),
                        str(rec.quantity - cum),
                        rec.intent.side,
                        fee_asset=rng.choice(["BTC", "UNITTEST", "BNB"]),  # quote, base, other
                    )
                )
            elif roll < 0.8:
                await h.event(OrderAccepted(client_order_id=cid, venue_order_id="v", **st()))  # type: ignore[arg-type]
            elif roll < 0.9:
                await h.event(OrderCanceled(client_order_id=cid, **st()))  # type: ignore[arg-type]
            else:
                await h.event(OrderUnknown(client_order_id=cid, reason="5xx", **st()))  # type: ignore[arg-type]
            pos_sign = -pos_sign if rng.random() < 0.1 else pos_sign
        assert_same(h.fold, h.actor)
        # a snapshot round-trips through the journal's encoding and continues identically
        snap = h.fold.snapshot(stamp(EX, SYM, 5), "breakout", b"state", 123)
        again = msgspec.msgpack.decode(msgspec.msgpack.encode(snap), type=GroupSnapshot)
        restored = OrderFold(EX, SYM)
        restored.apply(again)
        assert_same(restored, h.actor)
        assert restored.last_event_ns == 123 and restored.strategy_state == b"state"


@pytest.mark.anyio
async def test_restored_actor_carries_on_and_refuses_old_client_ids() -> None:
    h = Harness()
    a = await h.approve(intent(1))
    done = await h.approve(intent(2, qty="2"))
    await h.event(fill(done, "t1", "2", "2", "0"))
    await h.event(fill(a, "t2", "3", "3", "7"))
    fresh_state = SymbolState(EX, SYM, "paper")
    router = Router()
    inbox: Channel[Message] = Channel("venue", 10)
    router.subscribe(inbox, (SubmitOrder,))
    actor = OrderActor(EX, SYM, router, Channel("order", 100), fresh_state, D("0.00000001"), D("0.01"))
    actor.restore(h.fold)
    assert fresh_state.position == D(5) and fresh_state.open_orders == 1
    assert fresh_state.pending_exposure == D(7)
    # the same intents again (a replayed bar after a crash): never sent a second time
    for i in (intent(1), intent(2, qty="2")):
        fresh_state.open_orders += 1
        fresh_state.pending_exposure += i.quantity
        await actor.handle(RiskApproved(intent=i, **st()))  # type: ignore[arg-type]
    assert actor.anomalies["duplicate_intent"] == 2
    assert inbox.depth() == 0
    assert fresh_state.open_orders == 1 and fresh_state.pending_exposure == D(7)
    await actor.handle(fill(a, "t3", "7", "10", "0"))
    assert actor.position.quantity == D(12) and fresh_state.open_orders == 0


def _persistence(tmp: Path) -> Persistence:
    cfg = StoreSection(enabled=True, postgres=False, snapshot_interval_s=3600)
    return Persistence(cfg, tmp, Metrics())


@pytest.mark.anyio
async def test_recover_from_snapshot_plus_tail_equals_full_fold(tmp_path: Path) -> None:
    p = _persistence(tmp_path)
    h = Harness()
    full = OrderFold(EX, SYM, "paper")

    def tap(msg: Message) -> None:
        h.sent.append(msg)
        p.offer(msg)
        if not isinstance(msg, GroupSnapshot) and msg.symbol != "*":
            full.apply(msg)

    h.router.tap = tap
    a = await h.approve(intent(1))
    await h.event(fill(a, "t1", "4", "4", "6"))
    day = RiskDay(day=17_500, entries=3, start_equity=D("0.5"), breach="daily PnL -1 breached")
    p.strategies = lambda: [StrategyView((EX, SYM), "paper", "breakout", b"\x01", 777, day)]
    first = p.take_snapshots()
    b = await h.approve(intent(2, qty="3"))
    await h.event(fill(a, "t2", "6", "10", "0"))
    await h.event(OrderUnknown(client_order_id=b, reason="timeout", **st()))  # type: ignore[arg-type]
    await p.journal.flush()
    await p.aclose()  # takes a last snapshot too

    again = _persistence(tmp_path)
    try:
        folds = again.recover()
        fold = folds[(EX, SYM)]
        assert_same(fold, h.actor)
        assert_same(full, h.actor)
        assert {a, b} <= fold.client_order_ids()
        assert fold.strategy == "breakout" and fold.strategy_state == b"\x01"
        assert fold.last_event_ns == 777
        assert fold.risk_day == day  # risk's day goes on after the restart: entries, baseline, latch
        kinds = [type(m).__name__ for _, m in again.journal.read_from(first)]
        assert kinds.count("GroupSnapshot") == 2
    finally:
        await again.aclose()


@pytest.mark.anyio
async def test_recover_survives_a_torn_tail(tmp_path: Path) -> None:
    p = _persistence(tmp_path)
    h = Harness()

    def tap(msg: Message) -> None:
        h.sent.append(msg)
        p.offer(msg)

    h.router.tap = tap
    a = await h.approve(intent(1))
    await h.event(fill(a, "t1", "4", "4", "6"))
    await p.journal.flush()
    p.journal.close()
    seg = sorted((tmp_path / "journal").glob("*.jseg"))[-1]
    with seg.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")  # a frame cut off by the crash
    again = _persistence(tmp_path)
    try:
        fold = again.recover()[(EX, SYM)]
        assert fold.position.quantity == D(4)
        assert [o.cid for o in fold.open.values()] == [a]
    finally:
        await again.aclose()


def test_replay_resumes_after_the_event_time_reached() -> None:
    cfg = ReplayFeedConfig(path=str(CANDLES), format="candles", speed=0.0, loop=True)
    feed = ReplayFeed(cfg, EX, SYM)
    msgs = feed.load()
    step = feed.loop_shift_ns()
    got: list[Message] = []

    async def sink(msg: Message) -> None:
        got.append(msg)
        if len(got) == 3:
            raise anyio.get_cancelled_exc_class()()

    for after, expect in (
        (msgs[100].ts_event, msgs[101].ts_event),
        (msgs[-1].ts_event, msgs[0].ts_event + step),
        (msgs[50].ts_event + 2 * step, msgs[51].ts_event + 2 * step),
        (msgs[50].ts_event + 2 * step + 1, msgs[51].ts_event + 2 * step),
        (0, msgs[0].ts_event),
    ):
        got.clear()
        feed = ReplayFeed(cfg, EX, SYM)
        feed.resume_after(after)

        async def run(feed: ReplayFeed) -> None:
            with anyio.CancelScope() as scope:
                try:
                    await feed.run(sink)
                except anyio.get_cancelled_exc_class():
                    scope.cancel()

        anyio.run(run, feed)
        assert got[0].ts_event == expect, after


def test_position_changed_is_what_restore_publishes() -> None:
    fold = OrderFold(EX, SYM, "paper")
    fold.position.apply_fill("buy", D(3), D("0.002"))
    actor = OrderActor(EX, SYM, Router(), Channel("o", 1), SymbolState(EX, SYM, "paper"), D("0.01"), D(1))
    actor.restore(fold)
    msg = actor.position_message("c1", recovered=True)
    assert isinstance(msg, PositionChanged)
    assert (msg.quantity, msg.avg_price, msg.last_client_order_id, msg.recovered) == (
        D(3),
        D("0.002"),
        "c1",
        True,
    )
