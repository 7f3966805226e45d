"""Channel hop: real Trade messages through producer -> 3 forwarding stages -> consumer.

Two variants in the same run, same capacity, same messages:

- ``naive``: plain anyio memory object streams, one ``await send()`` and one
  ``async for`` step per message per hop;
- ``batched``: :class:`actors.channels.Channel` with ``send_nowait`` (awaiting only when
  full) and ``receive_batch`` (one await per batch), the pattern every actor uses.

Each variant is calibrated to take about :data:`TARGET_S` seconds, run
:data:`REPEATS` times, and reported as messages per second through the whole chain
(best and median), plus the ratio batched/naive.  The consumer checks it got every
message, in order.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from actors.channels import Channel
from actors.messages import Message, Trade
from adapters.replay.feed import load_trades
from bench import event_loop_name, run_async, write_result

TRADES = Path(__file__).resolve().parent.parent / "adapters/replay/data/trades/XRP_ETH-trades.json.gz"
STAGES = 3  # producer -> stage1 -> stage2 -> stage3 -> consumer: 4 hops
CAPACITY = 4096  # config.toml channels.capacity default
BATCH = 1024  # config.toml channels.batch_size default
TARGET_S = 1.5
REPEATS = 3
PILOT_N = 5_000

Variant = Callable[[list[Message]], Awaitable[float]]


def make_messages(n: int) -> list[Message]:
    """``n`` real trades (the bundled XRP/ETH tape, cycled)."""
    tape: list[Trade] = load_trades(TRADES, exchange="paper", symbol="XRP/ETH")
    return list(itertools.islice(itertools.cycle(tape), n))


def _check(got: int, last: Message | None, msgs: list[Message]) -> None:
    if got != len(msgs) or last is not msgs[-1]:
        raise AssertionError(f"consumer got {got} of {len(msgs)} messages (or out of order)")


# --- (a) naive: one await per message per hop -------------------------------------------------


async def _naive_stage(rx: ObjectReceiveStream[Message], tx: ObjectSendStream[Message]) -> None:
    async with rx, tx:
        async for msg in rx:
            await tx.send(msg)


async def naive(msgs: list[Message]) -> float:
    """Seconds to push ``msgs`` through the chain of plain memory object streams."""
    streams = [anyio.create_memory_object_stream[Message](CAPACITY) for _ in range(STAGES + 1)]
    got = 0
    last: Message | None = None

    async def consume(rx: ObjectReceiveStream[Message]) -> None:
        nonlocal got, last
        async with rx:
            async for msg in rx:
                got += 1
                last = msg

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(STAGES):
            tg.start_soon(_naive_stage, streams[i][1], streams[i + 1][0])
        tg.start_soon(consume, streams[STAGES][1])
        async with streams[0][0] as tx:
            for msg in msgs:
                await tx.send(msg)
    elapsed = time.perf_counter() - start
    _check(got, last, msgs)
    return elapsed


# --- (b) our pattern: send_nowait + receive_batch ---------------------------------------------


async def _forward(batch: list[Message], out: Channel[Message]) -> None:
    for msg in batch:
        if not out.send_nowait(msg):
            await out.send(msg)


async def _batched_stage(inbox: Channel[Message], out: Channel[Message]) -> None:
    try:
        while True:
            await _forward(await inbox.receive_batch(BATCH), out)
    except anyio.EndOfStream:
        out.close()


async def batched(msgs: list[Message]) -> float:
    """Seconds to push ``msgs`` through the chain of :class:`Channel` with batch draining."""
    chans = [Channel[Message](f"hop{i}", CAPACITY) for i in range(STAGES + 1)]
    got = 0
    last: Message | None = None

    async def consume(inbox: Channel[Message]) -> None:
        nonlocal got, last
        try:
            while True:
                batch = await inbox.receive_batch(BATCH)
                got += len(batch)
                last = batch[-1]
        except anyio.EndOfStream:
            pass

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for i in range(STAGES):
            tg.start_soon(_batched_stage, chans[i], chans[i + 1])
        tg.start_soon(consume, chans[STAGES])
        await _forward(msgs, chans[0])
        chans[0].close()
    elapsed = time.perf_counter() - start
    _check(got, last, msgs)
    return elapsed


# --- driver -----------------------------------------------------------------------------------


async def measure(variant: Variant, tape: list[Message]) -> dict[str, Any]:
    """Calibrate N to ~TARGET_S, then run REPEATS times; msgs/s through the whole chain."""
    pilot = await variant(tape[:PILOT_N])
    n = max(PILOT_N, min(len(tape), int(PILOT_N * TARGET_S / max(pilot, 1e-6))))
    msgs = tape[:n]
    rates = [n / await variant(msgs) for _ in range(REPEATS)]
    return {
        "messages": n,
        "hops": STAGES + 1,
        "msgs_per_s_best": round(max(rates)),
        "msgs_per_s_median": round(statistics.median(rates)),
        "seconds_per_run": round(n / statistics.median(rates), 3),
        "runs_msgs_per_s": [round(r) for r in rates],
    }


async def run_all(max_messages: int) -> dict[str, Any]:
    tape = make_messages(max_messages)
    results: dict[str, Any] = {}
    for name, variant in (("naive", naive), ("batched", batched)):
        results[name] = await measure(variant, tape)
    return results


def report(results: dict[str, Any], loop: str) -> None:
    print(f"loop: {loop}; chain: producer -> {STAGES} stages -> consumer; capacity {CAPACITY}, batch {BATCH}")
    for name in ("naive", "batched"):
        r = results[name]
        print(
            f"  {name:8s} {r['msgs_per_s_best']:>12,} msgs/s best  {r['msgs_per_s_median']:>12,} median"
            f"  (N={r['messages']:,}, {r['seconds_per_run']:.2f} s/run)"
        )
    best, median = results["ratio_best"], results["ratio_median"]
    print(f"  ratio batched/naive: {best:.1f}x (best), {median:.1f}x (median)")


def main(max_messages: int = 20_000_000) -> dict[str, Any]:
    loop = event_loop_name()
    results: dict[str, Any] = run_async(lambda: run_all(max_messages))
    fast, slow = results["batched"], results["naive"]
    results["ratio_best"] = round(fast["msgs_per_s_best"] / slow["msgs_per_s_best"], 2)
    results["ratio_median"] = round(fast["msgs_per_s_median"] / slow["msgs_per_s_median"], 2)
    results = {"loop": loop, "message": "Trade", "capacity": CAPACITY, "batch": BATCH, **results}
    report(results, loop)
    path = write_result("channel_hop", results)
    print(f"  written to {path}")
    return results


if __name__ == "__main__":
    main()
