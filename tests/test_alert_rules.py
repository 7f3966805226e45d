"""deploy/prometheus/alerts.yml: promtool accepts the rules and their unit tests (alerts_test.yml:
halt, stale feed, UNKNOWN orders, mirror backlog, watchdog) when promtool is installed (Debian:
apt-get install prometheus); without it, the structure is checked here. Either way, every metric
a rule reads is one the daemon exposes, so a rename cannot silently disarm an alert."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from daemon import mirror, telemetry, venue_health
from daemon.health import LOOP_LAG
from daemon.journal import _HELP as JOURNAL_HELP
from daemon.metrics import Metrics

RULES_DIR = Path(__file__).resolve().parent.parent / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
COVERED = {
    "halt": {"TradingdHalted", "TradingdGroupHalted"},
    "stale feed": {"TradingdFeedSilent", "TradingdBookStale"},
    "UNKNOWN orders": {"TradingdOrderUnknown"},
    "mirror backlog": {"TradingdMirrorBacklog"},
    "watchdog": {"TradingdEventLoopStalled", "TradingdRestarted", "TradingdDown"},
}


def _rules() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus); structure checked instead")
    return subprocess.run([promtool, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_rules() -> None:
    done = _promtool("check", "rules", "alerts.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


def test_promtool_unit_tests_fire_each_alert_as_expected() -> None:
    done = _promtool("test", "rules", "alerts_test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_are_well_formed_and_cover_what_operators_watch() -> None:
    rules = _rules()
    names = [str(r["alert"]) for r in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert rule["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule["alert"]
    for concern, alerts in COVERED.items():
        assert alerts <= set(names), concern


def test_every_metric_a_rule_reads_is_exposed() -> None:
    metrics = Metrics()
    known = set(telemetry.HELP) | set(venue_health.HELP) | set(JOURNAL_HELP) | {LOOP_LAG}
    known |= {mirror.REDIS_UP, "tradingd_mirror_pending", "tradingd_mirror_lag_seconds"}
    known |= {line.split()[2] for line in metrics.render().splitlines() if line.startswith("# TYPE ")}
    histograms = {n for n, (kind, _) in telemetry.HELP.items() if kind == "histogram"}
    known |= {f"{n}_bucket" for n in histograms}
    read = {m for r in _rules() for m in re.findall(r"\b((?:tradingd|process)_[a-z_]+)", str(r["expr"]))}
    assert read - known == set()
