"""OKX decode + normalise throughput on the real 2022 capture, and the checksum's cost per message.

Input: the captured OKX v5 public stream in ``tests/data/okx`` (cryptofeed sample data, 2022),
``seqId``/``prevSeqId`` numbered like OKX's live pushes (:func:`tests.okx_capture.numbered_books`).
Each figure is measured for our code and for a naive baseline in the same run, on the same
frames, building the same messages:

- ``books`` (the snapshot and the updates, applied to the book) and ``trades`` frames per second
  through :meth:`adapters.okx.data.OkxStream.decode` (typed msgspec envelope and payload, value
  checks, seqId continuity, the 400-level book, the CRC32 over the top 25 levels, messages built)
  vs ``json.loads`` + dict access + ``Decimal(str)`` + a dict book + the same messages (no checks,
  no checksum);
- the checksum alone: :meth:`adapters.okx.book.OkxBook.checksum` per call on a synced BTC-USDT
  book, in microseconds, and its share of one books update.

Variants run interleaved, :data:`REPEATS` rounds of about :data:`TARGET_S` seconds each; best and
median are reported.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from actors.messages import BookDelta, BookSnapshot, Message, Side, Trade
from adapters.okx.data import OkxStream
from bench import write_result
from tests.okx_capture import SYMBOLS, load_frames, numbered_books

TARGET_S = 1.0
REPEATS = 3
Round = Callable[[], Callable[[], int]]  # untimed setup -> the timed run, returning frames done


def _interleaved(variants: dict[str, Round]) -> dict[str, dict[str, int]]:
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


# --- naive baseline -----------------------------------------------------------------------------


class _NaiveStream:
    """json.loads, dict access, Decimal(str), a dict per side of each book: no checks, no checksum."""

    def __init__(self) -> None:
        self.books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}

    def decode(self, raw: str, ts_recv: int) -> list[Message]:
        frame = json.loads(raw)
        arg = frame["arg"]
        symbol = SYMBOLS[arg["instId"]]
        if arg["channel"] == "trades":
            out: list[Message] = []
            for t in frame["data"]:
                side: Side = "buy" if t["side"] == "buy" else "sell"
                out.append(
                    Trade(
                        exchange="okx",
                        symbol=symbol,
                        ts_event=int(t["ts"]) * 1_000_000,
                        ts_recv=ts_recv,
                        price=Decimal(t["px"]),
                        size=Decimal(t["sz"]),
                        side=side,
                        trade_id=t["tradeId"],
                    )
                )
            return out
        d = frame["data"][0]
        bids = [(Decimal(lv[0]), Decimal(lv[1])) for lv in d["bids"]]
        asks = [(Decimal(lv[0]), Decimal(lv[1])) for lv in d["asks"]]
        if frame["action"] == "snapshot":
            self.books[arg["instId"]] = (dict(bids), dict(asks))
            book_bids, book_asks = self.books[arg["instId"]]
            top_b = sorted(book_bids.items(), reverse=True)[:100]
            top_a = sorted(book_asks.items())[:100]
            snap = BookSnapshot(
                exchange="okx", symbol=symbol, ts_event=int(d["ts"]) * 1_000_000, ts_recv=ts_recv,
                bids=top_b, asks=top_a, seq=d["seqId"],
            )  # fmt: skip
            return [snap]
        book_bids, book_asks = self.books[arg["instId"]]
        for side_book, levels in ((book_bids, bids), (book_asks, asks)):
            for price, size in levels:
                if size:
                    side_book[price] = size
                else:
                    side_book.pop(price, None)
        delta = BookDelta(
            exchange="okx", symbol=symbol, ts_event=int(d["ts"]) * 1_000_000, ts_recv=ts_recv,
            bids=bids, asks=asks, first_seq=d["prevSeqId"] + 1, last_seq=d["seqId"],
        )  # fmt: skip
        return [delta]


# --- workloads ----------------------------------------------------------------------------------


def _frames(channel: str) -> tuple[list[str], list[str]]:
    """(frames to prime a stream with: the books snapshots, the frames to time)."""
    pushes = [f for f in numbered_books(load_frames()) if "data" in f.data]
    prime = [f.raw for f in pushes if f.data.get("action") == "snapshot"]
    timed = [f.raw for f in pushes if f.data["arg"]["channel"] == channel]
    return prime, timed


def _decode_rates(channel: str) -> dict[str, Any]:
    prime, timed = _frames(channel)
    if channel == "trades":
        prime, timed = [], timed * 10

    def ours() -> Callable[[], int]:
        stream = OkxStream(SYMBOLS)
        return lambda: sum(1 for raw in prime + timed if stream.decode(raw, 1) is not None)

    def naive() -> Callable[[], int]:
        stream = _NaiveStream()
        return lambda: sum(1 for raw in prime + timed if stream.decode(raw, 1) is not None)

    rates = _interleaved({"ours": ours, "naive": naive})
    return {
        **rates,
        "frames": len(prime + timed),
        "ratio": round(rates["ours"]["best"] / rates["naive"]["best"], 2),
    }


def _checksum_cost() -> dict[str, Any]:
    stream = OkxStream(SYMBOLS)
    for f in numbered_books(load_frames()):
        if "data" in f.data:
            stream.decode(f.raw, 1)
    book = stream.books["BTC-USDT"]
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        book.checksum()
    per_call_us = (time.perf_counter() - start) / n * 1e6
    return {"per_message_us": round(per_call_us, 2)}


def report(results: dict[str, Any]) -> None:
    for channel in ("books", "trades"):
        r = results[channel]
        print(
            f"  {channel:6} frames/s: ours {r['ours']['best']:>9,} (median {r['ours']['median']:,})"
            f"  naive json.loads+dict {r['naive']['best']:>9,}  ours/naive {r['ratio']:.2f}x"
        )
    c = results["checksum"]
    books_us = 1e6 / results["books"]["ours"]["best"]
    print(
        f"  checksum: {c['per_message_us']:.1f} us per books message"
        f" ({c['per_message_us'] / books_us:.0%} of our {books_us:.1f} us per books frame)"
    )


def main() -> dict[str, Any]:
    results: dict[str, Any] = {channel: _decode_rates(channel) for channel in ("books", "trades")}
    results["checksum"] = _checksum_cost()
    report(results)
    path = write_result("okx_decode", results)
    print(f"  written to {path}")
    return results


if __name__ == "__main__":
    main()
