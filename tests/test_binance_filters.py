"""Symbol rules from the recorded exchangeInfo: rounding, and each filter's rejection with its reason.

Symbols and filter values are the real ones in tests/data/binance/BINANCE.0 (2021-10-12).  That
capture predates NOTIONAL and PERCENT_PRICE_BY_SIDE, so those two are tested on LTCBTC with its
MIN_NOTIONAL / PERCENT_PRICE entries replaced by the examples of Binance's filters documentation.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from adapters.binance.filters import (
    BinanceNewOrder,
    Rejection,
    SymbolRules,
    parse_exchange_info,
    rules_by_symbol,
)

FIXTURE = Path(__file__).parent / "data" / "binance" / "BINANCE.0"
LAST = Decimal("0.0035")  # an LTCBTC price of that day


def _raw_info() -> dict[str, Any]:
    info: dict[str, Any] = json.loads(FIXTURE.read_bytes().split(b"\n", 1)[0].split(b": ", 1)[1])
    return info


@pytest.fixture(scope="module")
def rules() -> dict[str, SymbolRules]:
    return rules_by_symbol(parse_exchange_info(FIXTURE.read_bytes().split(b"\n", 1)[0].split(b": ", 1)[1]))


def order(
    symbol: str = "LTCBTC",
    *,
    side: str = "BUY",
    type: str = "LIMIT",
    qty: str = "1",
    price: str | None = None,
    stop: str | None = None,
) -> BinanceNewOrder:
    tif = "GTC" if type in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") else None
    fields: dict[str, str | None] = {
        "symbol": symbol,
        "side": side,
        "type": type,
        "quantity": qty,
        "newClientOrderId": "c1",
    }
    fields |= {"price": price, "stopPrice": stop, "timeInForce": tif}
    return msgspec.convert(fields, BinanceNewOrder)


def rejected(filter_name: str, reason: str) -> Rejection:
    return Rejection(filter_name, reason)


def _doc_filters_symbol() -> SymbolRules:
    info = _raw_info()
    ltc = next(s for s in info["symbols"] if s["symbol"] == "LTCBTC")
    documented = [
        {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "1.2", "bidMultiplierDown": "0.2",
         "askMultiplierUp": "5", "askMultiplierDown": "0.8", "avgPriceMins": 1},
        {"filterType": "NOTIONAL", "minNotional": "0.00010000", "applyMinToMarket": False,
         "maxNotional": "0.10000000", "applyMaxToMarket": False, "avgPriceMins": 5},
    ]  # fmt: skip
    ltc["filters"] = [f for f in ltc["filters"] if f["filterType"] not in ("MIN_NOTIONAL", "PERCENT_PRICE")]
    ltc["filters"] += documented
    return rules_by_symbol(parse_exchange_info(json.dumps(info | {"symbols": [ltc]})))["LTCBTC"]


# --- parsing ------------------------------------------------------------------------------------


def test_every_recorded_symbol_parses_with_its_real_filters(rules: dict[str, SymbolRules]) -> None:
    ltc = rules["LTCBTC"]

    assert len(rules) == 1695
    assert (ltc.tick_size, ltc.step_size) == (Decimal("0.00000100"), Decimal("0.00100000"))
    assert ltc.min_notional is not None and ltc.min_notional.minNotional == Decimal("0.0001")
    assert ltc.market_lot_size is not None and ltc.market_lot_size.maxQty == Decimal("6790.78422098")


def test_unknown_fields_and_filter_types_are_tolerated() -> None:
    info = _raw_info()
    ltc = next(s for s in info["symbols"] if s["symbol"] == "LTCBTC")
    ltc["brandNewField"] = {"x": [1]}
    ltc["filters"].append({"filterType": "SOMETHING_NEW", "limit": 3})
    info["anotherTopLevelField"] = True

    rules = rules_by_symbol(parse_exchange_info(json.dumps(info | {"symbols": [ltc]})))

    assert rules["LTCBTC"].tick_size == Decimal("0.000001")


def test_a_malformed_enforced_filter_fails_loudly() -> None:
    info = _raw_info()
    ltc = next(s for s in info["symbols"] if s["symbol"] == "LTCBTC")
    ltc["filters"][0] = {"filterType": "PRICE_FILTER", "minPrice": "0.000001", "maxPrice": "1"}  # no tickSize

    with pytest.raises(msgspec.ValidationError, match=r"tickSize"):
        rules_by_symbol(parse_exchange_info(json.dumps(info | {"symbols": [ltc]})))


# --- rounding -----------------------------------------------------------------------------------


def test_price_rounds_to_the_tick_and_quantity_down_to_the_step(rules: dict[str, SymbolRules]) -> None:
    prepared = rules["BTCUSDT"].prepare(order("BTCUSDT", qty="0.123456789", price="57123.456"))

    assert isinstance(prepared, BinanceNewOrder)
    assert (prepared.price, prepared.quantity) == (Decimal("57123.46"), Decimal("0.12345"))


def test_quantity_is_never_rounded_up_and_half_ticks_go_to_even(rules: dict[str, SymbolRules]) -> None:
    prepared = rules["BTCUSDT"].prepare(order("BTCUSDT", qty="0.999999", price="57123.445"))

    assert isinstance(prepared, BinanceNewOrder)
    assert (prepared.price, prepared.quantity) == (Decimal("57123.44"), Decimal("0.99999"))


def test_prepared_orders_are_on_the_grid_for_every_trading_symbol(rules: dict[str, SymbolRules]) -> None:
    for rule in rules.values():
        if rule.status != "TRADING":
            continue
        wanted = rule.lot_size.minQty * Decimal("3.7") if rule.lot_size else Decimal(1)
        raw = order(rule.symbol, qty=str(wanted), price=str(rule.tick_size * Decimal("12345.678")))
        prepared = rule.prepare(raw)
        assert isinstance(prepared, BinanceNewOrder | Rejection)
        if isinstance(prepared, BinanceNewOrder):
            assert prepared.quantity <= wanted and prepared.quantity % rule.step_size == 0
            assert prepared.price is not None and prepared.price % rule.tick_size == 0


# --- each filter's rejection --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "last", "expected"),
    [
        (
            order(price="0.0000004"),
            None,
            rejected("PRICE_FILTER", "price 0.00000000 is below minPrice 0.00000100"),
        ),
        (
            order(price="100001"),
            None,
            rejected("PRICE_FILTER", "price 100001.00000000 is above maxPrice 100000.00000000"),
        ),
        (
            order(side="SELL", type="STOP_LOSS_LIMIT", price="0.0035", stop="0.0000001"),
            None,
            rejected("PRICE_FILTER", "stopPrice 0.00000000 is below minPrice 0.00000100"),
        ),
        (
            order(price="0.02"),
            LAST,
            rejected(
                "PERCENT_PRICE", "price 0.02000000 is above 0.0175 = last price 0.0035 x multiplierUp 5"
            ),
        ),
        (
            order(price="0.0006"),
            LAST,
            rejected(
                "PERCENT_PRICE", "price 0.00060000 is below 0.0007 = last price 0.0035 x multiplierDown 0.2"
            ),
        ),
        (
            order(qty="0.0009", price="0.0035"),
            None,
            rejected("LOT_SIZE", "quantity 0.00000000 is below minQty 0.00100000"),
        ),
        (
            order(qty="100001", price="0.0035"),
            None,
            rejected("LOT_SIZE", "quantity 100001.00000000 is above maxQty 100000.00000000"),
        ),
        (
            order(type="MARKET", qty="7000"),
            LAST,
            rejected("MARKET_LOT_SIZE", "quantity 7000.00000000 is above maxQty 6790.78422098"),
        ),
        (
            order(qty="0.01", price="0.0035"),
            None,
            rejected("MIN_NOTIONAL", "notional 0.000035 is below minNotional 0.00010000"),
        ),
        (
            order(type="MARKET", qty="0.02"),
            LAST,
            rejected("MIN_NOTIONAL", "notional 0.00007 is below minNotional 0.00010000"),
        ),
        (order("BCCBTC", price="0.0035"), None, rejected("STATUS", "BCCBTC is BREAK, not TRADING")),
        (
            order(side="SELL", type="STOP_LOSS", stop="0.003"),
            None,
            rejected("ORDER_TYPES", "STOP_LOSS orders are not allowed on LTCBTC"),
        ),
        (order(price=None), None, rejected("PARAMETERS", "LIMIT order needs price")),
        (order(type="MARKET", price="0.0035"), None, rejected("PARAMETERS", "MARKET order takes no price")),
    ],
)
def test_each_filter_rejects_with_its_name_and_reason(
    rules: dict[str, SymbolRules], raw: BinanceNewOrder, last: Decimal | None, expected: Rejection
) -> None:
    assert rules[raw.symbol].prepare(raw, last) == expected


def test_an_order_inside_every_filter_passes(rules: dict[str, SymbolRules]) -> None:
    prepared = rules["LTCBTC"].prepare(order(qty="1.2345", price="0.00351234"), LAST)

    assert prepared == order(qty="1.234", price="0.003512")


def test_check_without_rounding_names_tick_and_step_violations(rules: dict[str, SymbolRules]) -> None:
    ltc = rules["LTCBTC"]

    assert ltc.check(order(price="0.0034567")) == rejected(
        "PRICE_FILTER", "price 0.0034567 is not a multiple of tickSize 0.00000100"
    )
    assert ltc.check(order(qty="1.0005", price="0.0035")) == rejected(
        "LOT_SIZE", "quantity 1.0005 is not a multiple of stepSize 0.00100000"
    )


def test_percent_price_by_side_uses_the_bid_or_ask_multipliers() -> None:
    rules = _doc_filters_symbol()

    buy = rules.prepare(order(price="0.0043"), LAST)
    sell = rules.prepare(order(side="SELL", price="0.0027"), LAST)

    assert buy == rejected(
        "PERCENT_PRICE_BY_SIDE", "price 0.00430000 is above 0.0042 = last price 0.0035 x bidMultiplierUp 1.2"
    )
    assert sell == rejected(
        "PERCENT_PRICE_BY_SIDE",
        "price 0.00270000 is below 0.0028 = last price 0.0035 x askMultiplierDown 0.8",
    )
    assert isinstance(rules.prepare(order(side="SELL", price="0.0043"), LAST), BinanceNewOrder)


def test_notional_bounds_and_their_market_flags() -> None:
    rules = _doc_filters_symbol()

    small = rules.prepare(order(qty="0.01", price="0.0035"), LAST)
    large = rules.prepare(order(qty="30", price="0.0035"), LAST)
    small_market = rules.prepare(order(type="MARKET", qty="0.01"), LAST)

    assert small == rejected("NOTIONAL", "notional 0.000035 is below minNotional 0.00010000")
    assert large == rejected("NOTIONAL", "notional 0.105 is above maxNotional 0.10000000")
    assert isinstance(small_market, BinanceNewOrder)  # applyMinToMarket is false
