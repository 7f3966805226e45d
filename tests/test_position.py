"""Position accounting (actors/position.py): average cost, realized PnL, flips, shorts, fees."""

from __future__ import annotations

from decimal import Decimal as D

from actors.position import Position


def snapshot(p: Position) -> tuple[D, D, D, D]:
    return p.quantity, p.avg_price, p.realized_pnl, p.fees


def test_new_position_is_flat_with_zero_average_and_pnl() -> None:
    assert snapshot(Position()) == (D(0), D(0), D(0), D(0))


def test_buys_that_add_to_a_long_move_the_average_cost() -> None:
    # Arrange
    p = Position()
    # Act
    first = p.apply_fill("buy", D("1"), D("100"))
    second = p.apply_fill("buy", D("3"), D("104"))
    # Assert: (1*100 + 3*104) / 4 = 103
    assert (first, second) == (D(0), D(0))
    assert snapshot(p) == (D("4"), D("103"), D(0), D(0))


def test_average_cost_keeps_exact_decimal_fractions() -> None:
    p = Position()
    p.apply_fill("buy", D("0.5"), D("100"))
    p.apply_fill("buy", D("1.5"), D("101"))
    # (0.5*100 + 1.5*101) / 2.0 = 201.5 / 2 = 100.75
    assert snapshot(p) == (D("2.0"), D("100.75"), D(0), D(0))


def test_sell_that_reduces_a_long_realizes_pnl_and_keeps_the_average() -> None:
    p = Position()
    p.apply_fill("buy", D("4"), D("103"))
    realized = p.apply_fill("sell", D("2"), D("110"))
    assert realized == D("14")  # (110 - 103) * 2
    assert snapshot(p) == (D("2"), D("103"), D("14"), D(0))


def test_losing_reduce_realizes_a_negative_pnl() -> None:
    p = Position()
    p.apply_fill("buy", D("2"), D("100"))
    realized = p.apply_fill("sell", D("0.5"), D("98.5"))
    assert realized == D("-0.75")  # (98.5 - 100) * 0.5
    assert snapshot(p) == (D("1.5"), D("100"), D("-0.75"), D(0))


def test_closing_a_long_resets_the_average_to_zero() -> None:
    p = Position()
    p.apply_fill("buy", D("2"), D("100"))
    p.apply_fill("sell", D("2"), D("101"))
    assert snapshot(p) == (D(0), D(0), D("2"), D(0))


def test_sell_through_zero_realizes_the_closed_part_and_opens_a_short_at_the_fill_price() -> None:
    # Arrange
    p = Position()
    p.apply_fill("buy", D("2"), D("103"))
    # Act: sell 3 @ 100 closes 2 (realizing (100-103)*2 = -6) and opens -1 @ 100
    realized = p.apply_fill("sell", D("3"), D("100"))
    # Assert
    assert realized == D("-6")
    assert snapshot(p) == (D("-1"), D("100"), D("-6"), D(0))


def test_buy_through_zero_flips_a_short_into_a_long() -> None:
    p = Position()
    p.apply_fill("sell", D("1"), D("100"))
    realized = p.apply_fill("buy", D("3"), D("90"))
    assert realized == D("10")  # short 1 from 100 covered at 90
    assert snapshot(p) == (D("2"), D("90"), D("10"), D(0))


def test_shorts_average_on_adds_and_gain_when_covered_lower() -> None:
    p = Position()
    p.apply_fill("sell", D("2"), D("50"))
    p.apply_fill("sell", D("2"), D("54"))
    assert snapshot(p) == (D("-4"), D("52"), D(0), D(0))
    realized = p.apply_fill("buy", D("1"), D("50"))
    assert realized == D("2")  # (50 - 52) * 1 * -1
    assert snapshot(p) == (D("-3"), D("52"), D("2"), D(0))


def test_short_covered_higher_realizes_a_loss() -> None:
    p = Position()
    p.apply_fill("sell", D("3"), D("52"))
    realized = p.apply_fill("buy", D("3"), D("55"))
    assert realized == D("-9")
    assert snapshot(p) == (D(0), D(0), D("-9"), D(0))


def test_fees_accumulate_on_every_fill_and_are_not_part_of_realized_pnl() -> None:
    p = Position()
    p.apply_fill("buy", D("1"), D("100"), D("0.1"))
    p.apply_fill("buy", D("1"), D("102"), D("0.05"))
    p.apply_fill("sell", D("2"), D("103"), D("0.0001"))
    assert snapshot(p) == (D(0), D(0), D("4"), D("0.1501"))


def test_realized_pnl_accumulates_over_a_round_trip_sequence() -> None:
    p = Position()
    p.apply_fill("buy", D("1"), D("100"))
    p.apply_fill("buy", D("3"), D("104"))  # 4 @ 103
    p.apply_fill("sell", D("2"), D("110"))  # +14, 2 @ 103
    p.apply_fill("sell", D("3"), D("100"))  # -6, -1 @ 100
    p.apply_fill("buy", D("1"), D("95"))  # +5, flat
    assert snapshot(p) == (D(0), D(0), D("13"), D(0))


def test_unrealized_pnl_is_signed_by_the_position() -> None:
    long, short = Position(), Position()
    long.apply_fill("buy", D("2"), D("100"))
    short.apply_fill("sell", D("2"), D("100"))
    assert long.unrealized(D("101.5")) == D("3.0")
    assert short.unrealized(D("101.5")) == D("-3.0")


def test_zero_quantity_fill_on_a_flat_position_changes_nothing_but_fees() -> None:
    """A fill with ``qty == 0`` on a flat position takes the "adds" branch and computes
    ``(0 * avg + 0 * price) / abs(0)``: decimal.InvalidOperation (0/0).  Through the order
    actor (which does not validate ``last_qty``) that exception kills the order actor;
    it restarts and the rest of its inbox batch is lost.  Fix: return early in
    ``apply_fill`` when ``qty == 0`` (after adding the fee), or reject non-positive
    ``last_qty`` in ``OrderActor._handle_filled`` as an anomaly.
    """
    p = Position()
    realized = p.apply_fill("buy", D(0), D("100"), D("0.01"))
    assert realized == D(0)
    assert snapshot(p) == (D(0), D(0), D(0), D("0.01"))


def test_fee_in_quote_is_a_fee_in_base_shrinks_the_holding_other_assets_kept_apart() -> None:
    # Binance without BNB: a buy's commission comes out of the asset bought
    p = Position("NKN", "USDT")
    p.apply_fill("buy", D("100"), D("0.35"), D("0.1"), "NKN")
    assert snapshot(p) == (D("99.9"), D("0.35"), D(0), D("0.035"))  # fee valued at the fill price
    realized = p.apply_fill("sell", D("99.9"), D("0.40"), D("0.03996"), "USDT")
    assert realized == (D("0.40") - D("0.35")) * D("99.9")
    assert snapshot(p) == (D(0), D(0), realized, D("0.035") + D("0.03996"))
    p.apply_fill("buy", D("10"), D("0.4"), D("0.0001"), "BNB")
    assert p.quantity == D(10) and p.other_fees == {"BNB": D("0.0001")}
    assert p.fees == D("0.035") + D("0.03996")


def test_without_assets_every_fee_counts_in_quote() -> None:
    p = Position()
    p.apply_fill("buy", D("1"), D("100"), D("0.1"), "BTC")
    assert snapshot(p) == (D(1), D(100), D(0), D("0.1"))
