"""``tradingd status | halt | resume | flatten | orders | balances`` against a daemon in a subprocess.

The daemon runs the paper candles group (redis off) with its admin token in a file
(``health.admin_token_file``); each command runs as its own process, as an operator types it, and
its output and exit code are checked: wrong token (4), unknown group (2), flatten without --yes
(5), and the daemon stopped (3).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, make_config, start_daemon, unique_prefix, wait_for

TOKEN = "operator-cli-token-7a9c1e55d2"
GROUP = "paper:UNITTEST/BTC"


def tradingd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if k not in ("TRADINGD_ADMIN_TOKEN", "CREDENTIALS_DIRECTORY")
    }
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Path]:
    port = free_port()
    (tmp_path / "admin_token").write_text(TOKEN + "\n")
    (tmp_path / "admin_token").chmod(0o600)
    text = make_config(
        tmp_path / "state",
        prefix=unique_prefix(),
        port=port,
        speed=600.0,
        loop=True,
        redis_enabled=False,
        trades_group=False,
    )
    text = text.replace(f"port = {port}\n", f'port = {port}\nadmin_token_file = "admin_token"\n', 1)
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    log = tmp_path / "daemon.log"
    env_token = os.environ.pop("TRADINGD_ADMIN_TOKEN", None)
    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: "tradingd ready" in log.read_text(errors="replace"), 30, "the daemon's READY")
        yield cfg
    finally:
        if env_token is not None:
            os.environ["TRADINGD_ADMIN_TOKEN"] = env_token
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        assert "Traceback" not in log.read_text(errors="replace")


@pytest.mark.slow
def test_every_command_against_a_running_daemon(daemon: Path, tmp_path: Path) -> None:
    cfg = str(daemon)
    out = tradingd("status", "--config", cfg)
    assert out.returncode in (0, 1), out.stderr  # 1: not ready (a stale feed is possible at start)
    for heading in ("Groups", "Positions", "Open orders", "Balances"):
        assert f"\n{heading}\n" in out.stdout
    assert GROUP in out.stdout and "ACTIVE" in out.stdout and "breakout" in out.stdout
    assert "tradingd 0.1.0 at http://127.0.0.1:" in out.stdout.splitlines()[0]

    # `tradingd status | head -1`: the reader goes away; no traceback, no error
    piped = subprocess.Popen(
        [sys.executable, "-m", "daemon", "status", "--config", cfg],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if k != "TRADINGD_ADMIN_TOKEN"},
    )
    assert piped.stdout is not None and piped.stderr is not None
    piped.stdout.close()  # before it has printed anything (its imports take a while)
    assert piped.wait(timeout=30) == 0
    assert piped.stderr.read() == b""

    machine = json.loads(tradingd("status", "--config", cfg, "--json").stdout)
    (group,) = machine["groups"]
    assert (group["group"], group["state"], group["strategy"]) == (GROUP, "ACTIVE", "breakout")
    assert len(group["last_price"].split(".")[1]) == 8 and len(group["position"].split(".")[1]) == 2
    assert {a["account"] for a in machine["balances"]} == {"paper"}
    assert machine["time"].endswith("Z")

    halted = tradingd("halt", "--config", cfg, "--group", GROUP, "--reason", "desk check")
    assert (halted.returncode, halted.stdout.strip()) == (
        0,
        f"halted group {GROUP}: desk check (exits and stop-losses still go out)",
    )
    machine = json.loads(tradingd("status", "--config", cfg, "--json").stdout)
    assert machine["groups"][0]["state"] == "HALTED" and "desk check" in machine["groups"][0]["why"]
    resumed = tradingd("resume", "--config", cfg, "--group", GROUP)
    assert resumed.returncode == 0 and resumed.stdout.startswith(f"resumed group {GROUP}")

    unknown = tradingd("halt", "--config", cfg, "--group", "paper:NOPE/BTC")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == (
        "error: unknown group 'paper:NOPE/BTC': expected exchange:symbol, one of paper:UNITTEST/BTC"
    )

    orders = tradingd("orders", "--config", cfg)
    assert orders.returncode == 0
    assert "client order id" in orders.stdout or orders.stdout.strip() == "(no open orders)"
    balances = tradingd("balances", "--config", cfg)
    assert balances.returncode == 0
    assert "venue - ledger" in balances.stdout and "UNITTEST" in balances.stdout
    assert "no drift since start" in balances.stdout  # the balance check at start found nothing

    unconfirmed = tradingd("flatten", "--config", cfg, "--all")
    assert unconfirmed.returncode == 5
    assert "flatten needs --yes" in unconfirmed.stderr
    flat = tradingd("flatten", "--config", cfg, "--all", "--yes", "--wait", "20")
    assert flat.returncode == 0, flat.stdout + flat.stderr
    assert f"{GROUP}: position " in flat.stdout and "0 open orders: flat" in flat.stdout
    assert "halted: flattened by the operator (all groups)" in flat.stdout
    after = json.loads(tradingd("status", "--config", cfg, "--json").stdout)
    assert after["orders"] == [] and after["groups"][0]["position"] == "0.00"
    assert after["groups"][0]["state"] == "HALTED" and after["ready"] is False

    wrong = tmp_path / "wrong_token"
    wrong.write_text("not-the-daemons-token-0000\n")
    refused = tradingd("status", "--config", cfg, "--token-file", str(wrong))
    assert refused.returncode == 4
    assert "refused the admin token from --token-file" in refused.stderr

    version = tradingd("--version")
    assert (version.returncode, version.stdout.strip()) == (0, "tradingd 0.1.0")
    helptext = tradingd("flatten", "--help").stdout
    assert "exit codes:" in helptext and "5  flatten not confirmed" in helptext


@pytest.mark.slow
def test_daemon_not_running_and_no_token(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = tmp_path / "token"
    token.write_text(TOKEN)
    down = tradingd("status", "--url", url, "--token-file", str(token))
    assert down.returncode == 3
    assert (
        down.stderr.startswith(f"error: tradingd is not answering at {url} (")
        and "Is it running?" in down.stderr
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(make_config(tmp_path / "state", prefix=unique_prefix(), port=port, redis_enabled=False))
    none = tradingd("orders", "--config", str(cfg))
    assert none.returncode == 4
    assert none.stderr.startswith("error: no admin token here. admin disabled: no admin token configured")
    bad = tradingd("halt", "--group")
    assert bad.returncode == 2
