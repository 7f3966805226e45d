"""Run every benchmark in order: ``python -m bench [name ...]`` (``make bench``).

Prints a machine line first (CPU model, cores, Python, package versions), then each
benchmark's report.  To add a benchmark, write a module with ``main() -> dict`` and
append its name to :data:`BENCHES`.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any

from bench import machine_info, machine_line

BENCHES: tuple[str, ...] = (
    "channel_hop",
    "actor_graph",
    "binance_decode",
    "okx_decode",
    "store_bench",
    "risk_bench",
    "backtest_bench",
    "order_latency",
)


def run(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    print(machine_line(machine_info()), flush=True)
    results: dict[str, dict[str, Any]] = {}
    for name in names:
        print(f"\n== {name}", flush=True)
        start = time.perf_counter()
        results[name] = importlib.import_module(f"bench.{name}").main()
        print(f"== {name} done in {time.perf_counter() - start:.1f} s", flush=True)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # The actors log every order decision; a benchmark's output is its figures.
    logging.basicConfig(level=logging.ERROR)
    run(args or BENCHES)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
