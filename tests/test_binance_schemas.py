"""Binance wire schemas and FrameDecoder, against the captured combined stream (tests/data/binance).

The capture (cryptofeed sample data, 2021-10-12) holds 265 frames: 177 depthUpdate, 84 bookTicker,
2 aggTrade and 2 kline (both still open); the REST replies are its depth snapshots and exchangeInfo.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.messages import Bar, BookDelta, Message, Quote, Trade
from adapters.binance.data import (
    BinanceDecodeError,
    FrameDecoder,
    decode_depth_snapshot,
    decode_exchange_info,
    read_rest_capture,
    read_ws_capture,
)
from adapters.binance.schemas import (
    BinanceLotSizeFilter,
    BinanceMarketLotSizeFilter,
    BinanceMinNotionalFilter,
    BinanceNotionalFilter,
    BinancePercentPriceBySideFilter,
    BinancePercentPriceFilter,
    BinancePriceFilter,
    BinanceRateLimit,
    BinanceUnknownFilter,
    BinanceValueError,
    check_number,
    decode_filter,
)

DATA = Path(__file__).resolve().parent / "data" / "binance"
SYMBOLS = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR"}
URL, FRAMES = read_ws_capture(DATA / "BINANCE.ws.1.0")
D = Decimal


def frame_of(stream: str, index: int = 0) -> dict[str, Any]:
    """The ``index``-th captured frame of ``stream``, as a JSON object to mutate."""
    found = [f for f in FRAMES if json.loads(f.raw)["stream"] == stream]
    obj: dict[str, Any] = json.loads(found[index].raw)
    return obj


def decode_one(
    obj: dict[str, Any] | bytes, symbols: dict[str, str] = SYMBOLS
) -> tuple[list[Message], FrameDecoder]:
    decoder = FrameDecoder(symbols)
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return decoder.decode(raw, 123), decoder


# --- the whole capture --------------------------------------------------------------------------


def test_every_captured_frame_decodes_and_is_counted_by_kind() -> None:
    decoder = FrameDecoder(SYMBOLS)
    messages = [m for f in FRAMES for m in decoder.decode(f.raw, f.ts_recv)]

    assert URL.startswith("wss://stream.binance.com:9443/stream?streams=nknusdt@depth@100ms/")
    assert len(FRAMES) == 265
    assert decoder.decoded == {"depthUpdate": 177, "bookTicker": 84, "aggTrade": 2, "kline_open": 2}
    assert decoder.rejected == {}
    assert Counter((type(m).__name__, m.symbol) for m in messages) == {
        ("BookDelta", "NKN/USDT"): 150,
        ("BookDelta", "LRC/BTC"): 15,
        ("BookDelta", "BLZ/ETH"): 10,
        ("BookDelta", "RUNE/EUR"): 2,
        ("Quote", "NKN/USDT"): 74,
        ("Quote", "LRC/BTC"): 9,
        ("Quote", "BLZ/ETH"): 1,
        ("Trade", "NKN/USDT"): 1,
        ("Trade", "LRC/BTC"): 1,
    }


def test_capture_receive_times_are_exact_nanoseconds() -> None:
    assert FRAMES[0].ts_recv == 1633998512063356900  # "1633998512.0633569"
    assert FRAMES[-1].ts_recv == 1633998542077861800  # "1633998542.0778618"


# --- one payload kind at a time -----------------------------------------------------------------


def test_first_nknusdt_aggtrade_becomes_a_buy_trade() -> None:
    messages, _ = decode_one(frame_of("nknusdt@aggTrade"))

    assert messages == [
        Trade(
            exchange="binance",
            symbol="NKN/USDT",
            ts_event=1633998523963_000_000,
            ts_recv=123,
            price=D("0.35280000"),
            size=D("58.00000000"),
            side="buy",  # "m": false, the buyer was the taker
            trade_id="15683430",
        )
    ]


def test_buyer_maker_flag_means_the_aggressor_sold() -> None:
    obj = frame_of("lrcbtc@aggTrade")
    obj["data"]["m"] = True

    messages, _ = decode_one(obj)

    assert [(m.symbol, m.side, m.price) for m in messages if isinstance(m, Trade)] == [
        ("LRC/BTC", "sell", D("0.00000638"))
    ]


def test_raw_trade_stream_uses_trade_id_and_trade_time() -> None:
    # The payload example of Binance's "Trade Streams" documentation.
    data = {"e": "trade", "E": 1672515782136, "s": "BNBBTC", "t": 12345, "p": "0.001", "q": "100",
            "T": 1672515782136, "m": True, "M": True}  # fmt: skip

    messages, decoder = decode_one({"stream": "bnbbtc@trade", "data": data}, {"BNBBTC": "BNB/BTC"})

    assert messages == [
        Trade(exchange="binance", symbol="BNB/BTC", ts_event=1672515782136_000_000, ts_recv=123,
              price=D("0.001"), size=D("100"), side="sell", trade_id="12345")
    ]  # fmt: skip
    assert decoder.decoded == {"trade": 1}


def test_book_ticker_becomes_a_quote_stamped_with_receive_time() -> None:
    messages, _ = decode_one(frame_of("nknusdt@bookTicker"))

    assert messages == [
        Quote(exchange="binance", symbol="NKN/USDT", ts_event=123, ts_recv=123,
              bid_price=D("0.35210000"), bid_size=D("672.00000000"),
              ask_price=D("0.35260000"), ask_size=D("3199.00000000"))
    ]  # fmt: skip


def test_depth_update_becomes_a_book_delta_with_first_and_last_update_ids() -> None:
    messages, _ = decode_one(frame_of("nknusdt@depth@100ms", 1))

    assert messages == [
        BookDelta(exchange="binance", symbol="NKN/USDT", ts_event=1633998512568_000_000, ts_recv=123,
                  bids=[(D("0.35170000"), D("4265.00000000"))], asks=[(D("0.35290000"), D("10968.00000000"))],
                  first_seq=499869753, last_seq=499869754)
    ]  # fmt: skip


def test_open_kline_yields_nothing_but_is_counted() -> None:
    messages, decoder = decode_one(frame_of("nknusdt@kline_1m"))

    assert messages == []
    assert decoder.decoded == {"kline_open": 1}
    assert decoder.rejected == {}


def test_closed_kline_becomes_a_bar_closing_at_open_plus_interval() -> None:
    obj = frame_of("nknusdt@kline_1m")
    obj["data"]["k"]["x"] = True

    messages, decoder = decode_one(obj)

    assert messages == [
        Bar(exchange="binance", symbol="NKN/USDT", ts_event=1633998540000_000_000, ts_recv=123,
            ts_open=1633998480000_000_000, interval_s=60, open=D("0.35270000"), high=D("0.35280000"),
            low=D("0.35220000"), close=D("0.35280000"), volume=D("25877.00000000"), trades=30)
    ]  # fmt: skip
    assert decoder.decoded == {"kline": 1}


def test_subscription_replies_are_recognised_not_errors() -> None:
    decoder = FrameDecoder(SYMBOLS)

    out = [
        decoder.decode(b'{"result":null,"id":1}', 1),
        decoder.decode(b'{"result":["nknusdt@aggTrade"],"id":"list"}', 2),
        decoder.decode('{"result":true,"id":3}', 3),
    ]

    assert out == [[], [], []]
    assert decoder.decoded == {"reply": 3}
    assert decoder.rejected == {}


# --- hostile frames -----------------------------------------------------------------------------


def _mutated(stream: str, index: int, path: tuple[str, ...], value: Any) -> bytes:
    obj = frame_of(stream, index)
    target = obj
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(obj).encode()


AGG = "nknusdt@aggTrade"
DEPTH = "nknusdt@depth@100ms"
TICKER = "lrcbtc@bookTicker"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "malformed_json"),
        (b"\x00\xff garbage", "malformed_json"),
        (b'{"stream": "nknusdt@aggTrade", "data": {', "malformed_json"),
        (b'{"stream": "nknusdt@aggTrade", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}", "malformed_json"),
        (b"[1, 2]", "bad_envelope"),
        (b"{}", "bad_envelope"),
        (b'{"stream": 5, "data": {}}', "bad_envelope"),
        (b'{"stream": "nknusdt@aggTrade"}', "bad_envelope"),
        (b'{"error": {"code": 2, "msg": "Invalid request"}, "id": 7}', "venue_error"),
        (b'{"stream": "nknusdt@depth5@100ms", "data": {}}', "unknown_stream"),
        (b'{"stream": "btcusdt@aggTrade", "data": {}}', "unknown_symbol"),
        (_mutated(AGG, 0, ("data", "s"), "LRCBTC"), "symbol_mismatch"),
        (_mutated(AGG, 0, ("data", "p"), KeyError), "bad_payload"),
        (_mutated(AGG, 0, ("data", "p"), True), "bad_payload"),
        (_mutated(AGG, 0, ("data", "p"), "0.35x"), "bad_payload"),
        (_mutated(AGG, 0, ("data", "E"), -1), "bad_payload"),
        (_mutated(AGG, 0, ("data", "T"), 2**64), "bad_payload"),
        (_mutated(AGG, 0, ("data", "m"), "false"), "bad_payload"),
        (_mutated(AGG, 0, ("data",), [1, 2]), "bad_payload"),
        (_mutated(AGG, 0, ("data", "p"), "NaN"), "bad_value"),
        (_mutated(AGG, 0, ("data", "p"), "sNaN"), "bad_value"),
        (_mutated(AGG, 0, ("data", "q"), "-58"), "bad_value"),
        (_mutated(AGG, 0, ("data", "q"), "0"), "bad_value"),
        (_mutated(AGG, 0, ("data", "p"), "1e400"), "bad_value"),
        (_mutated(TICKER, 0, ("data", "b"), "Infinity"), "bad_value"),
        (_mutated(DEPTH, 0, ("data", "b"), [["0.35", "NaN"]]), "bad_value"),
        (_mutated(DEPTH, 0, ("data", "a"), [["-0.35", "1"]]), "bad_value"),
        (_mutated(DEPTH, 0, ("data", "a"), [["0.35", "1", "2"]]), "bad_payload"),
        (_mutated(DEPTH, 0, ("data", "U"), 499869753), "bad_value"),
        (_mutated("nknusdt@kline_1m", 0, ("data", "k"), {"x": True}), "bad_payload"),
    ],
)
def test_hostile_frame_is_dropped_and_counted_by_reason(raw: bytes, reason: str) -> None:
    messages, decoder = decode_one(raw)

    assert messages == []
    assert decoder.rejected == {reason: 1}
    assert decoder.decoded == {}


def test_numbers_outside_reason_are_refused_with_the_field_name() -> None:
    with pytest.raises(
        BinanceValueError, match=r"^p: expected a finite positive number below 1e19, got NaN$"
    ):
        check_number("p", D("NaN"), positive=True)
    with pytest.raises(
        BinanceValueError, match=r"^B: expected a finite non-negative number below 1e19, got -1$"
    ):
        check_number("B", D("-1"))
    assert check_number("B", D("0")) == 0


def test_rejections_are_logged_at_a_bounded_rate_with_context(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    decoder = FrameDecoder(SYMBOLS, conn="ws-1", clock=lambda: now[0])
    bad = _mutated(AGG, 0, ("data", "p"), "NaN")

    with caplog.at_level(logging.WARNING, logger="tradingd.binance"):
        for _ in range(25):
            decoder.decode(bad, 1)
        now[0] += 10.0
        decoder.decode(bad, 1)

    records = [r for r in caplog.records if r.name == "tradingd.binance"]
    assert decoder.rejected == {"bad_value": 26}
    assert len(records) == 11  # the first 10, then one line per 10 s window
    assert records[0].getMessage() == (
        "dropped binance frame (bad_value, #1, 0 not logged since the last line): "
        "aggTrade: p: expected a finite positive number below 1e19, got NaN"
    )
    assert records[-1].getMessage().startswith("dropped binance frame (bad_value, #26, 15 not logged")
    assert {(r.component, r.exchange, r.symbol, r.conn) for r in records} == {  # type: ignore[attr-defined]
        ("binance-data", "binance", "NKN/USDT", "ws-1")
    }


FRAME_BYTES = [f.raw for f in FRAMES]
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)
BAD_NUMBERS = st.sampled_from(["NaN", "-NaN", "sNaN", "Infinity", "-1", "0", "", "1e999999", "0x10", " 1"])


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(obj, dict):
        return [prefix] + [p for k, v in obj.items() for p in _paths(v, (*prefix, k))]
    if isinstance(obj, list):
        return [prefix] + [p for i, v in enumerate(obj) for p in _paths(v, (*prefix, i))]
    return [prefix]


@st.composite
def mutated_frames(draw: st.DrawFn) -> bytes:
    obj = json.loads(draw(st.sampled_from(FRAME_BYTES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "bad_number"]))
        if action == "delete" and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            value = draw(BAD_NUMBERS) if action == "bad_number" else draw(JSON_VALUES)
            parent[path[-1]] = value
    return json.dumps(obj).encode()


def _assert_sane(messages: list[Message]) -> None:
    for msg in messages:
        for value in msgspec.structs.asdict(msg).values():
            if isinstance(value, Decimal):
                assert value.is_finite() and value >= 0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_arbitrary_bytes_never_raise_and_every_frame_is_counted(frames: list[bytes]) -> None:
    decoder = FrameDecoder(SYMBOLS)
    for raw in frames:
        assert decoder.decode(raw, 1) == []
    assert sum(decoder.decoded.values()) + sum(decoder.rejected.values()) == len(frames)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_frames(), min_size=1, max_size=5))
def test_mutated_real_frames_never_raise_and_every_frame_is_counted(frames: list[bytes]) -> None:
    decoder = FrameDecoder(SYMBOLS)
    for raw in frames:
        _assert_sane(decoder.decode(raw, 1))
    assert sum(decoder.decoded.values()) + sum(decoder.rejected.values()) == len(frames)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(FRAME_BYTES), st.data())
def test_any_price_turned_nan_is_rejected_as_bad_value(raw: bytes, data: st.DataObject) -> None:
    obj = json.loads(raw)
    payload = obj["data"].get("k", obj["data"])
    fields = [k for k, v in payload.items() if isinstance(v, str) and k not in ("e", "s", "i", "B")]
    if obj["data"].get("e") == "depthUpdate":
        side = data.draw(st.sampled_from([k for k in ("b", "a") if payload[k]] or ["b"]))
        payload[side] = [["NaN", "1"]]
    elif obj["data"].get("e") == "kline":
        payload["x"] = True
        payload[data.draw(st.sampled_from(["o", "h", "l", "c", "v"]))] = "NaN"
    else:
        payload[data.draw(st.sampled_from(fields))] = "NaN"

    messages, decoder = decode_one(json.dumps(obj).encode())

    assert (messages, decoder.rejected) == ([], {"bad_value": 1})


# --- one pass and two passes agree ---------------------------------------------------------------
# FrameDecoder decodes the streams it is given in one pass and everything else (replies, other
# streams, whatever the one pass refuses) in two; streams=() makes it use two passes only.


Outcome = tuple[list[Message], dict[str, int], dict[str, int]]  # messages, decoded, rejected


def _outcome(decoder: FrameDecoder, frames: list[bytes | str]) -> Outcome:
    messages = [m for i, raw in enumerate(frames) for m in decoder.decode(raw, 1000 + i)]
    return messages, decoder.decoded, decoder.rejected


def _agree(frames: list[bytes | str]) -> Outcome:
    one_pass = _outcome(FrameDecoder(SYMBOLS), frames)
    assert one_pass == _outcome(FrameDecoder(SYMBOLS, streams=()), frames)
    return one_pass


def test_one_and_two_passes_agree_on_every_captured_frame() -> None:
    frames: list[bytes | str] = [*FRAME_BYTES, *(f.decode() for f in FRAME_BYTES)]  # str: aiohttp's TEXT

    messages, decoded, rejected = _agree(frames)

    assert len(messages) == 2 * (265 - 2)  # all but the open klines
    assert decoded == {"depthUpdate": 354, "bookTicker": 168, "aggTrade": 4, "kline_open": 4}
    assert rejected == {}


def test_captured_frames_of_subscribed_streams_all_take_the_one_pass_way() -> None:
    subscribed = {name.partition("@")[2] for name in URL.split("streams=")[1].split("/")}
    decoder = FrameDecoder(SYMBOLS, streams=sorted(subscribed))  # as the feed builds it

    def two_pass(raw: bytes | str, ts_recv: int) -> list[Message]:
        raise AssertionError(f"went the two-pass way: {raw!r}")

    decoder._decode_two_pass = two_pass  # type: ignore[method-assign]
    messages = [m for f in FRAMES for m in decoder.decode(f.raw, f.ts_recv)]

    assert len(messages) == 265 - 2
    assert decoder.decoded == {"depthUpdate": 177, "bookTicker": 84, "aggTrade": 2, "kline_open": 2}


def test_streams_without_a_one_pass_type_decode_the_same_two_pass_way() -> None:
    only_trades = FrameDecoder(SYMBOLS, streams=("aggTrade",))

    assert _outcome(only_trades, list(FRAME_BYTES)) == _outcome(FrameDecoder(SYMBOLS), list(FRAME_BYTES))


AGG_NUMBERS = st.sampled_from(
    ["0.35280000", "58", "1e-8", "0E-8", "0", "-0", "-1", "1E+18", "9999999999999999999", "1E+19",
     "10000000000000000000", "NaN", "-NaN", "sNaN", "Infinity", "-Infinity", "1_0", " 1", "1e999999",
     "\u0661"]  # an Arabic-Indic one: Decimal() takes it
) | st.decimals(allow_nan=True, allow_infinity=True).map(str)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(AGG_NUMBERS, AGG_NUMBERS, st.booleans())
def test_one_and_two_passes_agree_on_aggtrade_numbers(p: str, q: str, as_str: bool) -> None:
    obj = frame_of(AGG)
    obj["data"] |= {"p": p, "q": q}
    raw = json.dumps(obj)

    _agree([raw if as_str else raw.encode()])


@pytest.mark.parametrize(
    "raw",
    [
        _mutated(AGG, 0, ("data", "e"), "trade"),  # the two-pass way never looked at "e"
        _mutated(AGG, 0, ("data", "e"), 5),
        _mutated(DEPTH, 0, ("data", "e"), "aggTrade"),
        _mutated(AGG, 0, ("data", "s"), "nknusdt"),
        _mutated(AGG, 0, ("id",), 7),
        _mutated(AGG, 0, ("id",), [7]),
        _mutated(AGG, 0, ("error",), {"code": 1, "msg": "x"}),
        _mutated(AGG, 0, ("stream",), "NKNUSDT@aggTrade"),
        _mutated(AGG, 0, ("stream",), "nknusdt@depth@100ms"),
        _mutated(AGG, 0, ("stream",), "nknusdt@kline_5m"),
        _mutated(AGG, 0, ("stream",), "nknusdt@trade"),
        _mutated(AGG, 0, ("data", "p"), 0.3528),  # a JSON number decodes to Decimal too
        _mutated(AGG, 0, ("data", "a"), 2**63),
        _mutated(AGG, 0, ("data", "f"), "19862790"),
        _mutated(AGG, 0, ("data", "M"), None),
        _mutated(AGG, 0, ("data", "zz"), {"a": [1]}),
        _mutated(AGG, 0, ("zz",), {"stream": "x"}),
        _mutated(AGG, 0, ("data", "m"), True).replace(
            b'"stream"', b'"stream": "lrcbtc@aggTrade", "stream"', 1
        ),
        _mutated(AGG, 0, ("data", "m"), True).replace(b'"data"', b'"data": {"e": "aggTrade"}, "data"', 1),
        _mutated(AGG, 0, ("data", "m"), True).replace(b"@", b"\\u0040", 1),
        json.dumps({"data": frame_of(AGG)["data"], "stream": AGG}).encode(),  # the tag last
    ],
)
def test_one_and_two_passes_agree_on_odd_but_possible_frames(raw: bytes) -> None:
    _agree([raw])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_frames(), min_size=1, max_size=5))
def test_one_and_two_passes_agree_on_mutated_real_frames(frames: list[bytes]) -> None:
    _agree(list(frames))


def test_decoded_counts_go_to_the_dict_assigned_to_a_successor() -> None:
    first = FrameDecoder(SYMBOLS)
    first.decode(json.dumps(frame_of(AGG)).encode(), 1)
    successor = FrameDecoder(SYMBOLS)

    successor.decoded, successor.rejected = first.decoded, first.rejected
    successor.decode(json.dumps(frame_of(AGG)).encode(), 2)
    successor.decode(b'{"result":null,"id":1}', 3)

    assert first.decoded is successor.decoded
    assert first.decoded == {"aggTrade": 2, "reply": 1}


# --- REST replies -------------------------------------------------------------------------------


def test_rest_depth_snapshot_becomes_a_book_snapshot_at_last_update_id() -> None:
    reply = read_rest_capture(DATA / "BINANCE.http.0.0")[0]

    snap = decode_depth_snapshot(reply.raw, "binance", "NKN/USDT", reply.ts_recv)

    assert reply.url == "https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000"
    assert (snap.seq, snap.ts_event, snap.ts_recv) == (499869752, 1633998512320639000, 1633998512320639000)
    assert (len(snap.bids), len(snap.asks)) == (609, 1000)
    assert (snap.bids[0], snap.asks[0]) == (
        (D("0.35210000"), D("672.00000000")),
        (D("0.35250000"), D("3959.00000000")),
    )


def test_rest_depth_snapshot_with_nan_raises_a_typed_error() -> None:
    raw = b'{"lastUpdateId": 1, "bids": [["NaN", "1"]], "asks": []}'

    with pytest.raises(
        BinanceDecodeError,
        match=r"^depth snapshot for NKN/USDT: bids price: expected a finite positive number below 1e19, "
        r"got NaN$",
    ):
        decode_depth_snapshot(raw, "binance", "NKN/USDT", 1)


def test_exchange_info_decodes_rate_limits_and_every_filter() -> None:
    info = decode_exchange_info(read_rest_capture(DATA / "BINANCE.0")[0].raw)

    assert info.rateLimits[:2] == [
        BinanceRateLimit(rateLimitType="REQUEST_WEIGHT", interval="MINUTE", intervalNum=1, limit=1200),
        BinanceRateLimit(rateLimitType="ORDERS", interval="SECOND", intervalNum=10, limit=50),
    ]
    assert len(info.symbols) == 1695
    kinds = Counter(
        f.filterType if isinstance(f, BinanceUnknownFilter) else type(f).__name__
        for s in info.symbols
        for f in s.parse_filters()
    )
    assert kinds == {
        "BinancePriceFilter": 1695,
        "BinancePercentPriceFilter": 1695,
        "BinanceLotSizeFilter": 1695,
        "BinanceMinNotionalFilter": 1695,
        "ICEBERG_PARTS": 1695,
        "MAX_NUM_ORDERS": 1695,
        "MAX_NUM_ALGO_ORDERS": 1695,
        "BinanceMarketLotSizeFilter": 1614,
        "MAX_POSITION": 40,
    }


def test_exchange_info_filters_of_nknusdt_exactly() -> None:
    info = decode_exchange_info(read_rest_capture(DATA / "BINANCE.0")[0].raw)
    (nkn,) = [s for s in info.symbols if s.symbol == "NKNUSDT"]

    assert (nkn.status, nkn.baseAsset, nkn.quoteAsset) == ("TRADING", "NKN", "USDT")
    assert nkn.parse_filters()[:6] == [
        BinancePriceFilter(minPrice=D("0.0001"), maxPrice=D("1000"), tickSize=D("0.0001")),
        BinancePercentPriceFilter(multiplierUp=D("5"), multiplierDown=D("0.2"), avgPriceMins=5),
        BinanceLotSizeFilter(minQty=D("1"), maxQty=D("9000000"), stepSize=D("1")),
        BinanceMinNotionalFilter(minNotional=D("10"), applyToMarket=True, avgPriceMins=5),
        BinanceUnknownFilter(filterType="ICEBERG_PARTS"),
        BinanceMarketLotSizeFilter(minQty=D("0"), maxQty=D("691026.07991660"), stepSize=D("0")),
    ]


def test_newer_filter_types_decode_from_the_documented_examples() -> None:
    # Examples from Binance's spot "Filters" documentation (types added after the capture).
    by_side = (
        b'{"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "1.2", "bidMultiplierDown": "0.2", '
        b'"askMultiplierUp": "5", "askMultiplierDown": "0.8", "avgPriceMins": 1}'
    )
    notional = (
        b'{"filterType": "NOTIONAL", "minNotional": "10.00000000", "applyMinToMarket": false, '
        b'"maxNotional": "10000.00000000", "applyMaxToMarket": false, "avgPriceMins": 5}'
    )

    assert decode_filter(by_side) == BinancePercentPriceBySideFilter(
        bidMultiplierUp=D("1.2"), bidMultiplierDown=D("0.2"), askMultiplierUp=D("5"),
        askMultiplierDown=D("0.8"), avgPriceMins=1,
    )  # fmt: skip
    assert decode_filter(notional) == BinanceNotionalFilter(
        minNotional=D("10"), maxNotional=D("10000"), applyMinToMarket=False, applyMaxToMarket=False,
        avgPriceMins=5,
    )  # fmt: skip
    assert decode_filter(b'{"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10}') == (
        BinanceUnknownFilter(filterType="TRAILING_DELTA")
    )


def test_a_known_filter_with_a_missing_field_is_an_error_not_a_fallback() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"^Object missing required field `tickSize`$"):
        decode_filter(b'{"filterType": "PRICE_FILTER", "minPrice": "0.1", "maxPrice": "10"}')


def test_capture_reader_skips_blank_and_sent_lines(tmp_path: Path) -> None:
    path = tmp_path / "capture"
    path.write_bytes(
        b"wss://example/stream?streams=a <-> 1.5\n"
        b'2.25: {"result":null,"id":1}\n'
        b'3 <- {"method":"SUBSCRIBE","params":["a"],"id":2}\n'
        b"\n"
    )

    url, frames = read_ws_capture(path)

    assert url == "wss://example/stream?streams=a"
    assert [(f.ts_recv, f.raw) for f in frames] == [(2_250_000_000, b'{"result":null,"id":1}')]
