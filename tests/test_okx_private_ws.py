"""OkxPrivateStream against the fake OKX's /ws/v5/private: login, channels, order ops, reconnects,
hostile frames.  Each test is bounded by ``anyio.fail_after``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import pytest

from adapters.okx.errors import OkxOrderRejected, OkxOutcomeUnknown
from adapters.okx.private_ws import NotConnected, OkxPrivateStream
from adapters.okx.replies import OkxBalance, OkxOrder
from adapters.okx.signing import OkxCredentials, OkxSigner
from tests.fake_okx import until
from tests.fake_okx_venue import API_KEY, API_SECRET, PASSPHRASE, FakeOkxVenue, open_fake_okx_venue

pytestmark = pytest.mark.anyio
INST = "BTC-USDT"


class Sink:
    def __init__(self) -> None:
        self.orders: list[OkxOrder] = []
        self.balances: list[OkxBalance] = []
        self.catchups = 0

    async def order(self, o: OkxOrder) -> None:
        self.orders.append(o)

    async def balance(self, b: OkxBalance) -> None:
        self.balances.append(b)

    async def catch_up(self) -> None:
        self.catchups += 1


@asynccontextmanager
async def running(
    venue: FakeOkxVenue, sink: Sink, passphrase: str = PASSPHRASE, **options: Any
) -> AsyncIterator[OkxPrivateStream]:
    stream = OkxPrivateStream(
        venue.ws_private_url,
        OkxCredentials(API_KEY, OkxSigner(API_SECRET), passphrase),
        [INST],
        on_order=sink.order,
        on_balance=sink.balance,
        on_connect=sink.catch_up,
        clock_ms=venue.now_ms,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        connect_timeout_s=2.0,
        **options,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(stream.run)
        yield stream
        tg.cancel_scope.cancel()


def order_arg(cid: str, px: str = "29000") -> dict[str, str]:
    return {
        "instId": INST,
        "tdMode": "cash",
        "side": "buy",
        "ordType": "limit",
        "sz": "0.01",
        "px": px,
        "clOrdId": cid,
    }


async def test_logs_in_subscribes_catches_up_and_hears_orders_and_balances() -> None:
    sink = Sink()
    with anyio.fail_after(10):
        async with (
            open_fake_okx_venue(prices={INST: Decimal("30000")}) as venue,
            running(venue, sink) as stream,
        ):
            await stream.wait_ready()
            ack = await stream.request("order", order_arg("tdws1"), inst_id=INST, timeout_s=2, expiry_ms=5000)
            await venue.trade(INST, Decimal("29000"))
            await until(lambda: any(o.state == "filled" for o in sink.orders), 5)
            stats = stream.statistics()
    assert ack.sCode == "0" and ack.clOrdId == "tdws1" and ack.ordId
    assert [(o.state, o.tradeId, o.fillSz) for o in sink.orders] == [
        ("live", "", "0"),
        ("filled", "242589207", "0.01"),
    ]
    assert sink.orders[-1].fillPx == "29000" and sink.orders[-1].execType == "M"
    assert sink.balances[0].details and sink.catchups == 1
    assert venue.logins == 1 and venue.order_requests("tdws1") == 1
    subscribe = next(r for r in venue.ws_requests if r["op"] == "subscribe")
    assert subscribe["args"] == [
        {"channel": "orders", "instType": "SPOT", "instId": INST},
        {"channel": "account"},
    ]
    assert stats.ready and stats.logins == 1 and stats.pushes["orders"] == 2


async def test_a_wrong_passphrase_is_refused_and_retried_never_ready() -> None:
    sink = Sink()
    with anyio.fail_after(10):
        async with (
            open_fake_okx_venue() as venue,
            running(venue, sink, passphrase="wrong-phrase-01") as stream,
        ):
            await until(lambda: stream.n["login_failures"] >= 2, 5)
            with pytest.raises(NotConnected, match=r"^okx private WebSocket not logged in: order not sent$"):
                await stream.request("order", order_arg("tdno1"), inst_id=INST, timeout_s=1)
            problem = stream.problem(venue.now_ms() * 1_000_000 + 10**10, 5.0)
    assert not stream.ready and sink.catchups == 0 and venue.logins == 0
    assert problem is not None and "private WebSocket not logged in since" in problem
    assert "login refused: 60009 Login failed." in problem
    assert venue.order_requests("tdno1") == 0


async def test_an_op_without_an_answer_is_unknown_and_a_refusal_is_typed() -> None:
    sink = Sink()
    with anyio.fail_after(10):
        async with (
            open_fake_okx_venue(prices={INST: Decimal("30000")}) as venue,
            running(venue, sink) as stream,
        ):
            await stream.wait_ready()
            with pytest.raises(OkxOrderRejected, match=r"code 51008: Order failed. Insufficient USDT"):
                await stream.request("order", order_arg("tdbig1") | {"sz": "100"}, inst_id=INST, timeout_s=2)
            venue.mute_ops = True
            with pytest.raises(
                OkxOutcomeUnknown, match=r"^ws order tdmute1: outcome unknown: no answer in time$"
            ):
                await stream.request(
                    "order", order_arg("tdmute1"), inst_id=INST, timeout_s=0.3, expiry_ms=1000
                )
    assert "tdmute1" in venue.book.by_cl  # it was placed: only a query can tell
    assert stream.n["op_timeouts"] == 1


async def test_a_dropped_socket_reconnects_and_catches_up_again() -> None:
    sink = Sink()
    with anyio.fail_after(10):
        async with (
            open_fake_okx_venue(prices={INST: Decimal("30000")}) as venue,
            running(venue, sink) as stream,
        ):
            await stream.wait_ready()
            await venue.drop_private()
            await until(lambda: sink.catchups == 2 and stream.ready, 5)
            await stream.request("order", order_arg("tdafter1"), inst_id=INST, timeout_s=2)
    assert venue.logins == 2 and venue.private_connections == 2 and stream.n["reconnects"] == 1


async def test_hostile_frames_are_counted_and_the_stream_goes_on() -> None:
    sink = Sink()
    frames = [
        "not json",
        '{"arg": {"channel": "orders"}, "data": [{"instId": 7}]}',
        '{"arg": {"channel": "orders"}, "data": "nope"}',
        '{"arg": {"channel": "positions"}, "data": []}',
        '{"event": "error", "code": "60012", "msg": "Invalid request"}',
        "[1, 2]",
    ]
    with anyio.fail_after(10):
        async with (
            open_fake_okx_venue(prices={INST: Decimal("30000")}) as venue,
            running(venue, sink) as stream,
        ):
            await stream.wait_ready()
            for frame in frames:
                await venue.send_private_raw(frame)
            await stream.request("order", order_arg("tdhostile1"), inst_id=INST, timeout_s=2)
            await until(lambda: any(o.clOrdId == "tdhostile1" for o in sink.orders), 5)
            stats = stream.statistics()
    assert stats.rejected_by_reason == {
        "malformed_json": 1, "bad_payload": 2, "unknown_channel": 1, "venue_error": 1, "bad_envelope": 1,
    }  # fmt: skip
    assert stats.connected and stats.reconnects == 0


async def test_an_idle_connection_is_kept_alive_with_ping() -> None:
    sink = Sink()
    with anyio.fail_after(10):
        async with (
            open_fake_okx_venue() as venue,
            running(venue, sink, ping_after_s=0.2, silence_timeout_s=3) as stream,
        ):
            await stream.wait_ready()
            await until(lambda: stream.n["pongs"] >= 2, 5)
    assert stream.n["pings"] >= 2 and stream.n["reconnects"] == 0
