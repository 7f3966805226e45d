"""The daemon on a damaged journal: halted with the reason everywhere, nothing sent twice, and
back to trading after ``tradingd journal recover``.

A paper daemon trades the bundled candles and stops; one payload byte in the middle of its
journal is flipped (today: the records after it were truncated and filled orders re-sent).  It
starts again: /readyz is 503 naming the damage, /status and /metrics show the findings, the
group refuses entries, and no client order id reaches the venue twice.  `journal verify`
exits 1, `journal recover` salvages the rest, and the next start is ready and trades.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from actors.messages import SubmitOrder
from daemon.journal import SUFFIX, Journal
from daemon.journal_scan import scan_frames
from daemon.metrics import Metrics
from daemon.spill import HEADER
from tests.helpers import ROOT, free_port, make_config, start_daemon, unique_prefix, wait_for


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0


def _records(state: Path) -> list[object]:
    journal = Journal.open(state / "journal", metrics=Metrics())
    try:
        return [m for _, m in journal.read_from(journal.first_offset)]
    finally:
        journal.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )


def test_damaged_journal_halts_until_recovered_and_sends_nothing_twice(tmp_path: Path) -> None:
    port = free_port()
    text = make_config(
        tmp_path / "state",
        prefix=unique_prefix(),
        port=port,
        speed=0.0,
        loop=True,
        trades_group=False,
        redis_enabled=False,
        store_dsn="postgresql://postgres@127.0.0.1:5432/unused",
    )
    text = text.replace("[store]\nenabled = true\n", "[store]\nenabled = true\npostgres = false\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    log = tmp_path / "daemon.log"
    state = tmp_path / "state"

    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: _submits(log) >= 6, 90, "trading", interval=0.25)
    finally:
        _stop(proc)
    before = _records(state)
    sent_before = [m.client_order_id for m in before if isinstance(m, SubmitOrder)]

    seg = sorted((state / "journal").glob("*" + SUFFIX))[-1]
    data = bytearray(seg.read_bytes())
    positions, _ = scan_frames(bytes(data))
    assert len(positions) > 20
    data[positions[len(positions) // 2] + HEADER.size + 5] ^= 0xFF
    seg.write_bytes(bytes(data))

    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: _get(port, "/readyz")[0] == 503, 60, "the damaged daemon's /readyz", interval=0.25)
        time.sleep(1.5)  # let it run: a halted group must not send entries
        code, body = _get(port, "/readyz")
        assert code == 503 and "journal damaged" in body and "tradingd journal recover" in body
        status = json.loads(_get(port, "/status")[1])
        assert status["store"]["journal_findings"]
        (group,) = status["groups"]
        assert group["halted"]
        assert "tradingd_journal_findings 1.0" in _get(port, "/metrics")[1]
    finally:
        _stop(proc)
    assert "Traceback" not in log.read_text(errors="replace")
    damaged_life = _records(state)
    sent = [m.client_order_id for m in damaged_life if isinstance(m, SubmitOrder)]
    assert len(sent) == len(set(sent)), "an order was sent twice"
    new = [m for m in damaged_life if isinstance(m, SubmitOrder) and m.client_order_id not in sent_before]
    assert all(m.reduce_only for m in new), "a halted group sent an entry"

    verify = _cli("journal", "verify", "--config", str(cfg))
    assert verify.returncode == 1 and "CORRUPT" in verify.stdout, verify.stdout + verify.stderr
    recover = _cli("journal", "recover", "--config", str(cfg))
    assert recover.returncode == 0 and "the journal is clean" in recover.stdout, (
        recover.stdout + recover.stderr
    )
    assert _cli("journal", "verify", "--config", str(cfg)).returncode == 0

    submitted_before = _submits(log)
    proc = start_daemon(cfg, log)
    try:
        wait_for(
            lambda: _get(port, "/readyz")[0] == 200, 60, "the recovered daemon to be ready", interval=0.25
        )
        wait_for(lambda: _submits(log) > submitted_before, 90, "new orders after the recovery", interval=0.25)
    finally:
        _stop(proc)
    final = [m.client_order_id for m in _records(state) if isinstance(m, SubmitOrder)]
    assert len(final) == len(set(final)), "an order was sent twice"


def _submits(log: Path) -> int:
    """Orders the daemon logged as submitted (cheap to poll under load, unlike reading the journal)."""
    return log.read_text(errors="replace").count('"submit td-')


def _records_safe(state: Path) -> list[object]:
    """The journal as a reader sees it while the daemon writes (read-only scan, no lock)."""
    from daemon.journal_repair import messages
    from daemon.journal_scan import inspect_journal

    if not (state / "journal").is_dir():
        return []
    return [m for _, m in messages(inspect_journal(state / "journal", 64 * 1024 * 1024))]
