"""/metrics of a running paper daemon through prometheus_client's parser: counters the README says
to watch exist at 0 from the start with every label known up front, and the label lists in
daemon/telemetry.py and daemon/mirror.py hold every literal label the code counts."""

from __future__ import annotations

import re
import time
from pathlib import Path

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from actors.histogram import ON_WIRE, OrderLatency
from adapters.binance.http import BinanceHttpClient
from adapters.binance.venue_health import RestHealth
from daemon import mirror, telemetry
from daemon.app import Daemon
from daemon.config import parse_config
from daemon.metrics import Metrics
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
from tests.helpers import make_config, unique_prefix
from tests.test_binance_http import limit_order

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parent.parent


def _literals(path: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (ROOT / path).read_text(), re.MULTILINE))


def test_every_rule_and_reason_the_code_counts_is_known_up_front() -> None:
    rules = set()
    for path in ("actors/risk.py", "actors/account_risk.py", "daemon/entry_gate.py"):
        rules |= _literals(path, r'return \(?\s*"([a-z_]+)",')
        rules |= _literals(path, r'^\s+"([a-z_]+)",\n\s+f?"')  # a rule on its own line of a verdict tuple
    rules |= _literals("actors/risk.py", r'_count\("([a-z_]+)"\)')
    assert rules - {"limit", "stop_market", "stop_limit"} <= set(telemetry.RISK_DECISIONS)
    market = _literals("actors/market_feed.py", r'_reject\(\s*"([a-z_]+)"')
    assert market == set(telemetry.MARKET_REJECT_REASONS)
    anomalies = _literals("actors/order.py", r'_anomaly\(\s*"([a-z_]+)"')
    assert anomalies == set(telemetry.ORDER_ANOMALIES)
    feed = _literals("adapters/binance/data.py", r'_reject\(\s*"([a-z_]+)"')
    feed |= _literals("adapters/binance/data.py", r'^\s+return "(unknown_[a-z_]+)"$')
    assert feed == set(telemetry.FEED_REJECT_REASONS)
    drops = _literals("daemon/mirror.py", r'_drop\([^)]*"([a-z_]+)"')
    drops |= _literals("daemon/mirror.py", r'market_reason="([a-z_]+)"')
    assert drops == set(mirror.DROP_REASONS)
    source = (ROOT / "daemon/mirror.py").read_text()
    label_fn = source[source.index("def _error_label") :].split("\n\n\n", 1)[0]
    errors = set(re.findall(r'"([a-z_]+)"', label_fn)) - {"TLS"}
    errors |= _literals("daemon/spill.py", r'tradingd_mirror_errors_total", \{"error": "([a-z_]+)"\}')
    assert errors <= set(mirror.ERROR_LABELS)


def _series(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_counters_to_watch_exist_at_zero_from_the_start(tmp_path: Path) -> None:
    text = make_config(tmp_path / "state", prefix=unique_prefix(), speed=1.0)
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(10):
            while ("paper", "UNITTEST/BTC") not in daemon.supervisor.groups:
                await anyio.sleep(0.02)
        series = _series(daemon.metrics.render())
        tg.cancel_scope.cancel()
    group = {"exchange": "paper", "symbol": "UNITTEST/BTC"}
    for name, label, known in (
        ("tradingd_market_rejected_total", "reason", telemetry.MARKET_REJECT_REASONS),
        ("tradingd_risk_decisions_total", "decision", telemetry.RISK_DECISIONS),
        ("tradingd_orders_total", "event", telemetry.ORDER_EVENTS),
        ("tradingd_order_anomalies_total", "kind", telemetry.ORDER_ANOMALIES),
    ):
        labels = [dict(k) for k in series[name]]
        present = {d[label] for d in labels if d["exchange"] == "paper" and d["symbol"] == "UNITTEST/BTC"}
        assert set(known) <= present, name
    dropped = {(dict(k)["kind"], dict(k)["reason"]) for k in series["tradingd_mirror_dropped_total"]}
    assert {(k, r) for k in mirror.DROPPED_KINDS for r in mirror.DROP_REASONS} <= dropped
    assert {dict(k)["error"] for k in series["tradingd_mirror_errors_total"]} >= set(mirror.ERROR_LABELS)
    assert series["tradingd_mirror_spilled_total"] == {(): 0.0}
    assert series["tradingd_stop_replacements_total"][tuple(sorted(group.items()))] == 0.0
    assert series["tradingd_oco_refused_total"][tuple(sorted(group.items()))] == 0.0
    bad_number = tuple(sorted({**group, "reason": "bad_number"}.items()))
    assert series["tradingd_market_rejected_total"][bad_number] == 0.0  # the real data has none


def _histogram(series: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> tuple[float, float]:
    """(count, count at le=+Inf) of histogram ``name`` over all its series; checks buckets are cumulative."""
    buckets: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for labels, value in series.get(f"{name}_bucket", {}).items():
        rest = tuple(kv for kv in labels if kv[0] != "le")
        buckets.setdefault(rest, []).append((float(dict(labels)["le"]), value))
    inf = 0.0
    for per_series in buckets.values():
        counts = [v for _, v in sorted(per_series)]
        assert counts == sorted(counts), f"{name} buckets are not cumulative"
        inf += counts[-1]
    return sum(series.get(f"{name}_count", {}).values()), inf


async def test_histograms_fill_during_a_paper_run(tmp_path: Path) -> None:
    text = make_config(tmp_path / "state", prefix=unique_prefix(), speed=0.0)
    text = text.replace("[store]\nenabled = false\n", "[store]\nenabled = true\npostgres = false\n")
    daemon = Daemon(parse_config(text), tmp_path / "config.toml", Metrics())
    names = (
        "tradingd_order_latency_seconds",
        "tradingd_risk_decision_seconds",
        "tradingd_journal_fsync_seconds",
        "tradingd_mirror_delay_seconds",
    )

    def filled() -> bool:
        series = _series(daemon.metrics.render())
        return all(_histogram(series, n)[0] > 0 for n in names)

    async with anyio.create_task_group() as tg:
        tg.start_soon(daemon.run)
        with anyio.fail_after(60):
            while not filled():
                await anyio.sleep(0.1)
        series = _series(daemon.metrics.render())
        # No await since the scrape: the groups' own histograms hold what it read.
        own = {
            (("exchange", ex), ("symbol", sym)): g.router.latency.histogram.count
            for (ex, sym), g in daemon.supervisor.groups.items()
        }
        tg.cancel_scope.cancel()
    for name in names:
        count, inf = _histogram(series, name)
        assert count == inf > 0, name
    # Replayed as fast as it goes, the inboxes are full: counts, not a latency figure, are checked.
    assert series["tradingd_order_latency_seconds_count"] == own


async def test_rest_round_trips_per_endpoint_and_the_order_on_the_wire_against_the_fake_binance() -> None:
    health = RestHealth("live")
    latency = OrderLatency()
    latency.note("intent-1", time.time_ns())
    wired: list[str] = []
    async with (
        open_fake_binance() as fake,
        BinanceHttpClient(fake.url, API_KEY, API_SECRET, health=health) as client,
    ):
        token = ON_WIRE.set(lambda: (wired.append("order"), latency.sent("intent-1"))[-1])
        try:
            await client.ping()  # not an order: the mark waits for the order's request
            assert wired == []
            await client.new_order(limit_order())
            await client.query_order("LTCBTC", "cid-1")
        finally:
            ON_WIRE.reset(token)
    assert wired == ["order"]  # once, right before the order's request was written
    assert latency.histogram.count == 1 and latency.unmatched == 0
    assert {k: h.count for k, h in health.round_trips.items()} == {
        ("GET", "/api/v3/ping"): 1,
        ("GET", "/api/v3/time"): 1,
        ("POST", "/api/v3/order"): 1,
        ("GET", "/api/v3/order"): 1,
    }
