"""Binance decode + normalise throughput, and depth levels applied to the local book, on real frames.

Input: the captured combined stream and REST snapshots in ``tests/data/binance`` (cryptofeed
sample data, 2021-10-12), repeated.  Each figure is measured for our code and for a naive baseline
in the same run, same frames, same output messages:

- ``aggTrade`` / ``bookTicker`` / ``depthUpdate`` frames per second through
  :meth:`adapters.binance.data.FrameDecoder.decode` (one typed msgspec pass over envelope and
  payload, symbol map, number checks, message built) vs ``json.loads`` + dict access +
  ``Decimal(str)`` + the same message (no checks);
- depth levels per second applied to a synced NKNUSDT book: :class:`adapters.binance.book.OrderBook`
  (dict + bisect-sorted prices, sequence checks, crossed-book check) vs a dict per side with
  ``max``/``min`` for the best levels after each diff (the crossed check a book needs);
- end to end: raw depth frame -> decode -> book, levels per second.

Variants run interleaved, :data:`REPEATS` rounds of about :data:`TARGET_S` seconds each (only the
timed loop counts, not setting up a fresh synced book); best and median are reported.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from actors.messages import BookDelta, BookSnapshot, Message, Quote, Side, Trade
from adapters.binance.book import BookAction, OrderBook
from adapters.binance.data import FrameDecoder, decode_depth_snapshot, read_rest_capture, read_ws_capture
from bench import write_result

DATA = Path(__file__).resolve().parent.parent / "tests/data/binance"
SYMBOLS = {"NKNUSDT": "NKN/USDT", "BLZETH": "BLZ/ETH", "LRCBTC": "LRC/BTC", "RUNEEUR": "RUNE/EUR"}
TARGET_S = 1.0
REPEATS = 3


Round = Callable[[], Callable[[], int]]  # untimed setup -> the timed run, returning the units it did


def _interleaved(variants: dict[str, Round]) -> dict[str, dict[str, int]]:
    """Units per second of each variant: REPEATS rounds of ~TARGET_S each, variants interleaved so
    a noisy neighbour hits them alike; only the timed run counts, never its setup."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(REPEATS):
        for name, setup in variants.items():
            units, spent = 0, 0.0
            while spent < TARGET_S:
                run = setup()
                start = time.perf_counter()
                units += run()
                spent += time.perf_counter() - start
            rates[name].append(units / spent)
    return {name: {"best": round(max(r)), "median": round(statistics.median(r))} for name, r in rates.items()}


# --- naive baseline: json.loads + dict access + Decimal(str) ------------------------------------


def _naive_decode(raw: bytes, ts_recv: int) -> list[Message]:
    frame = json.loads(raw)
    stream, d = frame["stream"], frame["data"]
    symbol = SYMBOLS[d["s"]]
    if stream.endswith("@aggTrade"):
        side: Side = "sell" if d["m"] else "buy"
        return [
            Trade(
                exchange="binance",
                symbol=symbol,
                ts_event=d["T"] * 1_000_000,
                ts_recv=ts_recv,
                price=Decimal(d["p"]),
                size=Decimal(d["q"]),
                side=side,
                trade_id=str(d["a"]),
            )
        ]
    if stream.endswith("@bookTicker"):
        return [
            Quote(
                exchange="binance",
                symbol=symbol,
                ts_event=ts_recv,
                ts_recv=ts_recv,
                bid_price=Decimal(d["b"]),
                bid_size=Decimal(d["B"]),
                ask_price=Decimal(d["a"]),
                ask_size=Decimal(d["A"]),
            )
        ]
    bids = [(Decimal(p), Decimal(q)) for p, q in d["b"]]
    asks = [(Decimal(p), Decimal(q)) for p, q in d["a"]]
    return [
        BookDelta(
            exchange="binance",
            symbol=symbol,
            ts_event=d["E"] * 1_000_000,
            ts_recv=ts_recv,
            bids=bids,
            asks=asks,
            first_seq=d["U"],
            last_seq=d["u"],
        )
    ]


class _NaiveBook:
    """A dict per side; the best levels by max()/min() after every diff."""

    def __init__(self, snap: BookSnapshot) -> None:
        self.bids = dict(snap.bids)
        self.asks = dict(snap.asks)

    def on_diff(self, delta: BookDelta) -> bool:
        for side, levels in ((self.bids, delta.bids), (self.asks, delta.asks)):
            for price, qty in levels:
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        return max(self.bids) < min(self.asks)


# --- workloads ------------------------------------------------------------------------------------


def _frames_of(kind: str) -> list[tuple[bytes, int]]:
    _, frames = read_ws_capture(DATA / "BINANCE.ws.1.0")
    return [(f.raw, f.ts_recv) for f in frames if f"@{kind}" in f.raw[:40].decode(errors="replace")]


def _decode_rates(kind: str) -> dict[str, Any]:
    frames = _frames_of(kind) * max(1, 2000 // len(_frames_of(kind)))
    decoder = FrameDecoder(SYMBOLS)

    def ours() -> int:
        decode = decoder.decode
        for raw, ts in frames:
            decode(raw, ts)
        return len(frames)

    def naive() -> int:
        for raw, ts in frames:
            _naive_decode(raw, ts)
        return len(frames)

    check = [m for raw, ts in frames[:50] for m in decoder.decode(raw, ts)]
    if check != [m for raw, ts in frames[:50] for m in _naive_decode(raw, ts)]:
        raise AssertionError(f"{kind}: our messages differ from the baseline's")
    rates = _interleaved({"ours": lambda: ours, "naive": lambda: naive})
    return {
        "frames": len(frames),
        "ours_frames_per_s": rates["ours"],
        "naive_frames_per_s": rates["naive"],
        "ratio_median": round(rates["ours"]["median"] / rates["naive"]["median"], 2),
    }


def _nkn() -> tuple[BookSnapshot, list[BookDelta], list[tuple[bytes, int]]]:
    reply = next(r for r in read_rest_capture(DATA / "BINANCE.http.0.0") if "NKNUSDT" in r.url)
    snap = decode_depth_snapshot(reply.raw, "binance", "NKN/USDT", reply.ts_recv)
    raws = [f for f in _frames_of("depth") if b'"NKNUSDT"' in f[0]]
    decoder = FrameDecoder(SYMBOLS)
    deltas = [m for raw, ts in raws for m in decoder.decode(raw, ts) if isinstance(m, BookDelta)]
    live = [i for i, d in enumerate(deltas) if d.last_seq > snap.seq]
    return snap, [deltas[i] for i in live], [raws[i] for i in live]


def _book_rates() -> dict[str, Any]:
    snap, deltas, raws = _nkn()
    levels = sum(len(d.bids) + len(d.asks) for d in deltas)
    decoder = FrameDecoder(SYMBOLS)

    def ours() -> Callable[[], int]:
        book = OrderBook("NKN/USDT")
        book.apply_snapshot(snap)

        def apply() -> int:
            for d in deltas:
                if book.on_diff(d) is not BookAction.APPLIED:
                    raise AssertionError("the captured NKNUSDT diffs must all apply")
            return levels

        return apply

    def naive() -> Callable[[], int]:
        book = _NaiveBook(snap)

        def apply() -> int:
            for d in deltas:
                book.on_diff(d)
            return levels

        return apply

    def end_to_end() -> Callable[[], int]:
        book = OrderBook("NKN/USDT")
        book.apply_snapshot(snap)

        def apply() -> int:
            for raw, ts in raws:
                for msg in decoder.decode(raw, ts):
                    if isinstance(msg, BookDelta):
                        book.on_diff(msg)
            return levels

        return apply

    rates = _interleaved({"ours": ours, "naive": naive, "decode_and_apply": end_to_end})
    return {
        "diffs": len(deltas),
        "levels_per_round": levels,
        "snapshot_levels": len(snap.bids) + len(snap.asks),
        **{f"{name}_levels_per_s": rate for name, rate in rates.items()},
        "ratio_median": round(rates["ours"]["median"] / rates["naive"]["median"], 2),
    }


def report(results: dict[str, Any]) -> None:
    for kind in ("aggTrade", "bookTicker", "depth"):
        r = results[kind]
        print(
            f"  {kind:<11} frames/s  ours {r['ours_frames_per_s']['median']:>9,}  "
            f"naive {r['naive_frames_per_s']['median']:>9,}  ratio {r['ratio_median']}"
        )
    b = results["book"]
    print(
        f"  book        levels/s  ours {b['ours_levels_per_s']['median']:>9,}  "
        f"naive {b['naive_levels_per_s']['median']:>9,}  ratio {b['ratio_median']}  "
        f"({b['diffs']} NKNUSDT diffs, {b['levels_per_round']} levels, "
        f"on a {b['snapshot_levels']}-level book)"
    )
    print(f"  decode+book levels/s  {b['decode_and_apply_levels_per_s']['median']:>9,}")


def main() -> dict[str, Any]:
    results: dict[str, Any] = {kind: _decode_rates(kind) for kind in ("aggTrade", "bookTicker", "depth")}
    results["book"] = _book_rates()
    report(results)
    from bench.binance_signing import main as signing  # signing cost per request (HMAC, Ed25519)

    results["signing"] = signing()
    path = write_result("binance_decode", results)
    print(f"  written to {path}")
    return results


if __name__ == "__main__":
    main()
