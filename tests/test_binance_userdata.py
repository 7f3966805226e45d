"""The Binance user data stream: decoding (typed, hostile input counted never raised), the WebSocket
API subscription signed like REST, reconnects (drops, eventStreamTerminated, refused subscriptions,
the 24 h renewal), the listenKey fallback, and the REST catch-up after a reconnect delivering a fill
missed while the socket was down exactly once.  Live tests run against tests/fake_binance.py on
127.0.0.1, each bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import anyio
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import OrderAccepted, OrderFilled
from adapters.binance.http import BinanceHttpClient
from adapters.binance.signing import Ed25519Signer, HmacSigner, Signer
from adapters.binance.userdata import BinanceUserStream, ws_api_signature_payload
from adapters.binance.userdata_schemas import (
    BinanceAccountPosition,
    BinanceBalanceUpdate,
    BinanceExecutionReport,
    UserEvent,
)
from tests.binance_exec_helpers import of, running, submit, until
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance, open_fake_binance

pytestmark = pytest.mark.anyio

REPORT: dict[str, Any] = {
    "e": "executionReport", "E": 1499405658658, "s": "ETHBTC", "c": "mUvoqJxFIILMdfAW5iGSOW",
    "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.00000000", "p": "0.10264410", "P": "0.00000000",
    "F": "0.00000000", "g": -1, "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE",
    "i": 4293153, "l": "0.40000000", "z": "0.40000000", "L": "0.10264410", "n": "0.00004106",
    "N": "BNB", "T": 1499405658657, "t": 77, "I": 8641984, "w": False, "m": True, "M": False,
    "O": 1499405658657, "Z": "0.04105764", "Y": "0.04105764", "Q": "0.00000000", "W": 1499405658657,
    "V": "NONE",
}  # fmt: skip


def _stream(**options: Any) -> tuple[BinanceUserStream, list[UserEvent]]:
    got: list[UserEvent] = []

    async def on_event(event: UserEvent) -> None:
        got.append(event)

    stream = BinanceUserStream(
        options.pop("ws_api_url", "ws://unused"),
        options.pop("api_key", API_KEY),
        options.pop("signer", HmacSigner(API_SECRET)),
        on_event=on_event,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        **options,
    )
    return stream, got


def _wrap(event: dict[str, Any]) -> str:
    return json.dumps({"subscriptionId": 0, "event": event})


# --- decoding ------------------------------------------------------------------------------------


def test_execution_report_decodes_with_every_field_typed() -> None:
    stream, _ = _stream()
    er = stream.decode(_wrap(REPORT | {"someNewField": {"x": [1]}}))
    assert isinstance(er, BinanceExecutionReport)
    assert (er.client_order_id, er.x, er.X, er.i, er.t, er.m) == (
        "mUvoqJxFIILMdfAW5iGSOW",
        "TRADE",
        "PARTIALLY_FILLED",
        4293153,
        77,
        True,
    )
    assert (er.l, er.L, er.z, er.n, er.N) == (
        Decimal("0.4"),
        Decimal("0.10264410"),
        Decimal("0.4"),
        Decimal("0.00004106"),
        "BNB",
    )
    cancel = stream.decode(
        _wrap(REPORT | {"x": "CANCELED", "X": "CANCELED", "c": "cancel-req", "C": "orig-id"})
    )
    assert isinstance(cancel, BinanceExecutionReport) and cancel.client_order_id == "orig-id"
    assert stream.events == {"executionReport": 2} and stream.rejected == {}


def test_account_events_reply_listen_key_frames_and_unknown_events() -> None:
    stream, _ = _stream()
    pos = stream.decode(
        _wrap({"e": "outboundAccountPosition", "E": 1, "u": 1, "B": [{"a": "ETH", "f": "10.5", "l": "0"}]})
    )
    assert isinstance(pos, BinanceAccountPosition) and pos.B[0].f == Decimal("10.5")
    upd = stream.decode(
        json.dumps({"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "-1.5", "T": 1})
    )  # listenKey: bare
    assert isinstance(upd, BinanceBalanceUpdate) and upd.d == Decimal("-1.5")
    assert stream.decode('{"id": 3, "status": 200, "result": {"subscriptionId": 0}}') is None
    assert stream.decode(_wrap({"e": "listStatus", "E": 1})) is None
    assert stream.decode(_wrap({"e": "externalLockUpdate", "E": 1})) is None
    assert stream.ignored == 2 and stream.rejected == {}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "malformed_json"),
        ('{"subscriptionId": 0, "event": {"e": "executionReport", "E": NaN}}', "malformed_json"),
        ('["a", "list"]', "bad_envelope"),
        ('{"subscriptionId": "zero", "event": {}}', "bad_envelope"),
        (_wrap({"E": 1}), "bad_payload"),
        (_wrap({k: v for k, v in REPORT.items() if k != "i"}), "bad_payload"),
        (_wrap(REPORT | {"l": "NaN"}), "bad_value"),
        (_wrap(REPORT | {"L": "-1"}), "bad_value"),
        (_wrap(REPORT | {"z": "Infinity"}), "bad_value"),
        (_wrap(REPORT | {"i": 2**64}), "bad_payload"),
        (
            _wrap({"e": "outboundAccountPosition", "E": 1, "B": [{"a": "X", "f": "1e30", "l": "0"}]}),
            "bad_value",
        ),
        (
            '{"id": 1, "status": 400, "error": {"code": -1022, "msg": "Signature not valid."}}',
            "venue_error",
        ),
    ],
)
def test_hostile_frames_are_counted_by_reason(frame: str, reason: str) -> None:
    stream, _ = _stream()
    assert stream.decode(frame) is None
    assert stream.rejected == {reason: 1}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300),
        st.dictionaries(
            st.sampled_from(sorted(REPORT)),
            st.one_of(
                st.none(), st.integers(), st.text(max_size=8), st.floats(allow_nan=True), st.booleans()
            ),
        ).map(lambda patch: _wrap(REPORT | patch)),
    )
)
def test_any_frame_decodes_or_is_counted_never_raises(frame: bytes | str) -> None:
    stream, _ = _stream()
    out = stream.decode(frame)
    seen = sum(stream.events.values()) + sum(stream.rejected.values()) + stream.ignored
    assert seen <= 1
    assert out is None or isinstance(out, BinanceExecutionReport)


def test_ws_api_signature_payload_sorts_parameters_and_skips_the_signature() -> None:
    payload = ws_api_signature_payload({"timestamp": 5, "apiKey": "k", "signature": "x", "recvWindow": 100})
    assert payload == "apiKey=k&recvWindow=100&timestamp=5"


# --- live ------------------------------------------------------------------------------------------


@asynccontextmanager
async def live(
    fake: FakeBinance, **options: Any
) -> AsyncIterator[tuple[BinanceUserStream, list[UserEvent], list[int]]]:
    catchups: list[int] = []

    async def catch_up() -> None:
        catchups.append(fake.user_connections)

    stream, got = _stream(ws_api_url=fake.ws_api_url, on_connect=catch_up, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(stream.run)
        yield stream, got, catchups
        tg.cancel_scope.cancel()


async def _place(fake: FakeBinance, cid: str) -> None:
    async with BinanceHttpClient(fake.url, API_KEY, API_SECRET) as client:
        from tests.test_binance_http import limit_order

        await client.new_order(limit_order(cid, price="0.003300"))


async def test_subscribes_with_a_signed_request_and_receives_events() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, live(fake) as (stream, got, catchups):
            await stream.wait_ready()
            await _place(fake, "a")
            await until(lambda: len(got) == 1)
            stats = stream.statistics()

    (req,) = fake.user_requests
    assert req["method"] == "userDataStream.subscribe.signature"
    assert sorted(req["params"]) == ["apiKey", "recvWindow", "signature", "timestamp"]
    assert isinstance(got[0], BinanceExecutionReport) and got[0].c == "a" and got[0].x == "NEW"
    assert catchups == [1] and stats.connected and stats.events == {"executionReport": 1}


async def test_ed25519_key_subscribes() -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer: Signer = Ed25519Signer(pem)
    with anyio.fail_after(10):
        async with (
            open_fake_binance(ed25519_keys={"ed-test-api-key-7d1": key.public_key()}) as fake,
            live(fake, api_key="ed-test-api-key-7d1", signer=signer) as (stream, _, _),
        ):
            await stream.wait_ready()
    assert stream.connects == 1 and stream.rejected == {}


async def test_a_bad_signature_is_refused_counted_and_retried_until_it_is_accepted() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance(refuse_subscribe=2) as fake, live(fake) as (stream, _, catchups):
            await stream.wait_ready()

    assert stream.rejected == {"venue_error": 2}
    assert stream.connects == 1 and stream.reconnects == 2 and fake.user_connections == 3
    assert catchups == [3]


async def test_wrong_secret_never_subscribes_and_never_raises() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, live(fake, signer=HmacSigner("wrong")) as (stream, _, _):
            await until(lambda: stream.reconnects >= 3)
    assert stream.connects == 0 and stream.rejected["venue_error"] >= 3


@pytest.mark.parametrize("how", ["drop", "terminate", "renew"])
async def test_reconnects_resubscribes_and_catches_up_again(how: str) -> None:
    options = {"max_session_s": 0.5} if how == "renew" else {}
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, live(fake, **options) as (stream, got, catchups):
            await stream.wait_ready()
            if how == "drop":
                await fake.drop_user_sockets()
            elif how == "terminate":
                await fake.terminate_user_streams()
            await until(lambda: len(catchups) == 2)
            await stream.wait_ready()
            await _place(fake, "after")
            await until(lambda: len(got) == 1)

    assert stream.connects == 2 and stream.reconnects == 1
    assert stream.terminated == (1 if how == "terminate" else 0)


async def test_hostile_frames_on_the_socket_are_counted_and_the_stream_carries_on() -> None:
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, live(fake) as (stream, got, _):
            await stream.wait_ready()
            for frame in (
                "{oops",
                '{"subscriptionId": 0, "event": {"e": "executionReport"}}',
                _wrap(REPORT | {"q": "NaN"}),
                "[]",
            ):
                await fake.send_user_raw(frame)
            await _place(fake, "ok")
            await until(lambda: len(got) == 1)

    assert stream.rejected == {"malformed_json": 1, "bad_payload": 1, "bad_value": 1, "bad_envelope": 1}
    assert stream.connects == 1


async def test_listen_key_fallback_streams_bare_events() -> None:
    with anyio.fail_after(10):
        async with (
            open_fake_binance() as fake,
            BinanceHttpClient(fake.url, API_KEY, API_SECRET) as client,
            live(
                fake,
                mode="listen_key",
                stream_url=fake.stream_url,
                listen_key_api=client.listen_key,
                keepalive_s=0.2,
            ) as (stream, got, _),
        ):
            await stream.wait_ready()
            await _place(fake, "lk")
            await until(lambda: len(got) == 1)
            await until(lambda: any(s.method == "PUT" for s in fake.seen))

    assert isinstance(got[0], BinanceExecutionReport) and got[0].c == "lk"
    assert fake.user_requests == [] and len(fake.listen_keys) == 1


# --- the execution actor's catch-up ----------------------------------------------------------------


async def test_user_socket_dropped_mid_fill_catch_up_delivers_the_fill_exactly_once() -> None:
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, running(fake) as (actor, events):
            await actor.inbox.send(submit("mid", "buy", "limit", qty="3", price="0.003400"))
            await until(lambda: bool(of(events, OrderAccepted, "mid")))
            await fake.trade("LTCBTC", Decimal("0.0034"), Decimal("1"))  # first part: on the stream
            await until(lambda: len(of(events, OrderFilled)) == 1)

            fake.mute_user_stream = True  # the socket goes down mid-fill: the second part is lost ...
            await fake.trade("LTCBTC", Decimal("0.0034"), Decimal("5"))
            await fake.drop_user_sockets()
            fake.mute_user_stream = False
            await until(lambda: len(of(events, OrderFilled)) == 2)  # ... and the catch-up brings it
            await until(lambda: actor.user_stream.catchups == 2)
            await fake.terminate_user_streams()  # another reconnect: its catch-up repeats nothing
            await until(lambda: actor.user_stream.catchups == 3)
            await anyio.sleep(0.1)

    fills = of(events, OrderFilled)
    assert [(f.last_qty, f.cum_qty, f.leaves_qty) for f in fills] == [
        (Decimal("1"), Decimal("1"), Decimal("2")),
        (Decimal("2"), Decimal("3"), Decimal("0")),
    ]
    assert len({f.trade_id for f in fills}) == 2
    assert actor.user_stream.reconnects == 2 and fake.order_requests("mid") == 1
