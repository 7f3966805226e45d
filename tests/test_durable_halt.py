"""The kill switch survives a crash: a halt is journaled and restored before READY; only resume lifts it.

Unit: the journal fold keeps the halts in force (set, lifted, per scope), and every snapshot
round journals them again, so releasing old segments never drops one.  Process: a paper daemon
is halted over the admin API, SIGKILLed, started again: it is still halted (/readyz, /status,
/metrics say who halted and when) and sends no entry; a resume lifts it, and a restart after
the resume trades.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from actors.messages import HaltChanged, SubmitOrder, stamp
from daemon.config import StoreSection
from daemon.halts import HaltBook
from daemon.metrics import Metrics
from daemon.persistence import Persistence
from tests.helpers import free_port, make_config, ready_count, start_daemon, unique_prefix, wait_for
from tests.test_journal_damage_daemon import _records, _records_safe

TOKEN = "test-admin-token-0123456789"


def _halt(scope: str, target: str, halted: bool, ts: int = 1_750_000_000_000_000_000) -> HaltChanged:
    ex, sym = target.split(":", 1) if scope == "group" else ("*", "*")
    return HaltChanged(scope=scope, target=target, halted=halted, reason="r", by="t", **stamp(ex, sym, ts))  # type: ignore[arg-type]


def test_halt_book_scopes() -> None:
    book = HaltBook()
    assert book.apply(_halt("account", "live", True))
    assert not book.apply(_halt("account", "live", True))  # already in force
    assert book.reason("live", "binance:BTCUSDT").startswith("r (account live, halted 2025-06-15T")
    assert book.reason("paper", "paper:X/Y") == ""
    book.apply(_halt("group", "paper:X/Y", True))
    book.apply(_halt("daemon", "", True))
    assert [m.scope for m in book.covering("paper", "paper:X/Y")] == ["daemon", "group"]
    book.apply(_halt("daemon", "", False))
    assert [m.scope for m in book.covering("live", "binance:BTCUSDT")] == ["account"]


@pytest.mark.anyio
async def test_halts_survive_snapshot_rounds_and_released_segments(tmp_path: Path) -> None:
    cfg = StoreSection(enabled=True, postgres=False, snapshot_interval_s=3600)
    p = Persistence(cfg, tmp_path, Metrics())
    p.offer(_halt("daemon", "", True))
    p.offer(_halt("group", "paper:X/Y", True))
    p.offer(_halt("group", "paper:X/Y", False))
    p.offer(_halt("account", "live", True))
    await p.journal.flush()
    p.journal.segment_bytes = 1  # every flush from here on starts a new segment
    first = p.take_snapshots()
    await p.journal.flush()
    assert await p.journal.release_below(first) >= 1  # the records that set the halts are gone
    p.journal.close()
    again = Persistence(cfg, tmp_path, Metrics())
    again.recover()
    assert set(again.halts.active) == {("daemon", ""), ("account", "live")}
    again.journal.close()


def _request(port: int, path: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data)
    if data is not None:
        req.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def test_halt_kill_9_restart_is_still_halted_until_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADINGD_ADMIN_TOKEN", TOKEN)
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
        wait_for(lambda: ready_count(log) >= 1, 30, "ready")
        code, body = _request(port, "/admin/halt", json.dumps({"reason": "operator test halt"}).encode())
        assert code == 200, body
        time.sleep(0.3)  # within the journal's flush interval (20 ms here) it is durable
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    sent_before = {m.client_order_id for m in _records(state) if isinstance(m, SubmitOrder)}

    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: ready_count(log) >= 2, 30, "the restarted daemon")
        time.sleep(1.0)
        code, body = _request(port, "/readyz")
        assert code == 503 and "operator test halt" in body and "by admin API" in body, body
        status = json.loads(_request(port, "/status")[1])
        assert all(g["halted"] for g in status["groups"])
        assert 'tradingd_halted{scope="daemon",target=""} 1.0' in _request(port, "/metrics")[1]
        assert "trading halt restored from the journal" in log.read_text(errors="replace")
        new = [
            m
            for m in _records_safe(state)
            if isinstance(m, SubmitOrder) and m.client_order_id not in sent_before
        ]
        assert all(m.reduce_only for m in new), "a halted daemon sent an entry after its restart"
        code, body = _request(port, "/admin/resume", b"")
        assert code == 200, body
        wait_for(lambda: "operator test halt" not in _request(port, "/readyz")[1], 10, "the halt to lift")
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    proc = start_daemon(cfg, log)
    try:
        wait_for(lambda: ready_count(log) >= 3, 30, "the third life")
        time.sleep(0.5)
        status = json.loads(_request(port, "/status")[1])
        assert not any(g["halted"] for g in status["groups"])
        assert "operator test halt" not in _request(port, "/readyz")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert "Traceback" not in log.read_text(errors="replace")
