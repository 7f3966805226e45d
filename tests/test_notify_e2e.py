"""End to end: the paper daemon trades and is halted; ``tradingd notify`` (a separate process) delivers
the fills and the halt to a local webhook (``json://``) and to a fake Telegram Bot API server,
survives a kill -9 in the middle of the burst (restarted as another consumer, which reclaims the
first one's pending entries with XAUTOCLAIM), and every event arrives once: none lost, none twice
(the one batch on the wire at the kill may come again, flagged and with the same delivery key).
Telegram commands: a chat that is not configured is ignored; ``/halt`` halts the running daemon
after ``/confirm``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web
from redis.asyncio import Redis

from actors.messages import HaltChanged, PositionChanged
from daemon.notify.config import parse_notify_config
from daemon.notify.consumer import Consumer, decode
from daemon.notify.events import message_alert
from tests.fake_telegram import FakeTelegram
from tests.helpers import ROOT, free_port, make_config, ready_count, start_daemon, unique_prefix

TG_TOKEN = "654321:E2E-telegram_token"
ADMIN = "e2e-admin-token-0123456789"
CHAT, STRANGER = 42, 999


class Receiver:
    """The webhook: every POST apprise's json:// makes, with its delivery key."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.posts.append((request.headers.get("X-Tradingd-Delivery", ""), await request.json()))
        return web.json_response({"ok": True})


def _lines(texts: list[str]) -> list[str]:
    """Alert lines without their ISO time prefix."""
    return [line.split(" ", 1)[1] for t in texts for line in t.splitlines() if line[:2] == "20"]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


async def _until(pred: Any, timeout: float, what: str) -> None:
    with anyio.fail_after(timeout, shield=False):
        while not pred():
            await anyio.sleep(0.1)
    assert pred(), what


async def _expected(r: Redis, cfg: Any, prefix: str) -> Counter[str]:
    """The alert texts the streams hold (fills and halts), made by the notifier's own code."""
    c = Consumer(cfg, r, "expect")
    out: Counter[str] = Counter()
    key = f"{prefix}:paper:UNITTEST/BTC:position"
    for entry_id, fields in await r.xrange(key):
        msg = decode(fields[b"data"])
        if isinstance(msg, PositionChanged):
            alert = await c._fill(key, entry_id.decode(), msg)
            if alert is not None:
                out[alert.text] += 1
    for _id, fields in await r.xrange(f"{prefix}:daemon:all:risk"):
        msg = decode(fields[b"data"])
        alert = message_alert(msg) if isinstance(msg, HaltChanged) else None
        if alert is not None:
            out[alert.text] += 1
    return out


def _notify_cfg(prefix: str, admin_port: int, hook: int, tg_url: str, consumer: str) -> str:
    targets = "".join(
        f"""
[[notify.targets]]
name = "{name}"
url = "{url}"
kinds = ["fill", "halt"]
max_batch = 5
batch_window_s = 0.2
max_per_minute = 600
retry_initial_s = 0.05
retry_max_s = 0.5
"""
        for name, url in (("hook", f"json://127.0.0.1:{hook}/"), ("tg", "telegram"))
    )
    return f"""
[redis]
prefix = "{prefix}"
[notify]
consumer = "{consumer}"
start = "all"
claim_idle_s = 0.5
scan_interval_s = 0.3
block_ms = 200
log_format = "json"
admin_url = "http://127.0.0.1:{admin_port}"
admin_token_env = "E2E_ADMIN_TOKEN"
daily_summary = false
[notify.telegram]
enabled = true
token_env = "E2E_TG_TOKEN"
api_url = "{tg_url}"
chat_ids = [{CHAT}]
poll_timeout_s = 1
confirm_timeout_s = 30
{targets}"""


def _start_notify(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "E2E_TG_TOKEN": TG_TOKEN, "E2E_ADMIN_TOKEN": ADMIN}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "daemon", "notify", "--config", str(cfg)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


@pytest.mark.anyio
async def test_notify_delivers_every_event_once_across_kill_9_and_telegram_halts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADINGD_ADMIN_TOKEN", ADMIN)
    prefix, port = unique_prefix(), free_port()
    daemon_cfg = tmp_path / "config.toml"
    daemon_cfg.write_text(
        make_config(tmp_path / "state", prefix=prefix, port=port, speed=0.0, trades_group=False)
    )
    daemon_log, notify_log = tmp_path / "daemon.log", tmp_path / "notify.log"
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    hook = int(runner.addresses[0][1])
    r = Redis()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with FakeTelegram(TG_TOKEN) as tg:
            notify_cfg = tmp_path / "notify.toml"
            notify_cfg.write_text(_notify_cfg(prefix, port, hook, tg.url, "n1"))
            procs.append(start_daemon(daemon_cfg, daemon_log))
            await _until(lambda: ready_count(daemon_log) >= 1, 30, "the daemon to get ready")
            first = _start_notify(notify_cfg, notify_log)
            procs.append(first)
            await _until(lambda: len(receiver.posts) >= 3, 30, "the first deliveries")
            first.send_signal(signal.SIGKILL)  # mid-burst: the replay's fills are still going out
            first.wait(10)
            killed_at = len(receiver.posts)
            notify_cfg.write_text(_notify_cfg(prefix, port, hook, tg.url, "n2"))  # a replacement elsewhere
            procs.append(_start_notify(notify_cfg, notify_log))

            # Telegram: a stranger is ignored; /halt needs /confirm, then the daemon is halted
            tg.say(STRANGER, "/halt")
            tg.say(CHAT, "/halt e2e via telegram")
            await _until(
                lambda: any("/confirm" in t for t in tg.texts_to(CHAT)), 20, "the confirmation question"
            )
            assert "e2e via telegram" not in _get(port, "/readyz")[1]
            tg.say(CHAT, "/confirm")
            await _until(lambda: "e2e via telegram" in _get(port, "/readyz")[1], 20, "the daemon to halt")
            await _until(lambda: "HALTED: no new entries" in tg.texts_to(CHAT), 10, "the reply")
            assert tg.texts_to(STRANGER) == []

            # every event once: compare with what the streams hold (the replay has ended by now)
            cfg = parse_notify_config(notify_cfg.read_text())
            lengths: list[int] = []

            def settled() -> bool:
                return len(lengths) > 3 and lengths[-1] == lengths[-4]

            while not settled():
                lengths.append(await r.xlen(f"{prefix}:paper:UNITTEST/BTC:position"))
                await anyio.sleep(0.5)
            expected = await _expected(r, cfg, prefix)
            assert sum(expected.values()) > 20 and any(t.startswith("HALTED") for t in expected)

            def hook_lines() -> Counter[str]:
                by_key = {key: body for key, body in receiver.posts}  # the same key: one delivery
                return Counter(_lines([b["message"] for b in by_key.values()]))

            def tg_lines(repeats: bool) -> Counter[str]:
                alerts = [t for t in tg.texts_to(CHAT) if t.startswith("tradingd: ")]
                return Counter(_lines([t for t in alerts if ("may repeat" in t.splitlines()[0]) == repeats]))

            with anyio.move_on_after(60):
                while hook_lines() != expected or tg_lines(False) + tg_lines(True) < expected:
                    await anyio.sleep(0.2)
            assert hook_lines() == expected, "webhook: an event lost or delivered twice"
            tg_once = tg_lines(False)
            assert tg_once <= expected, "telegram: an event sent twice"
            assert not expected - (tg_once + tg_lines(True)), "telegram: an event lost"
            keys = Counter(key for key, _ in receiver.posts)
            assert sum(n - 1 for n in keys.values()) <= 1, "more than the one batch on the wire came again"
            assert len(receiver.posts) > killed_at and tg.wrong_token == 0 and tg.bad_requests == []
            assert receiver.posts[0][1]["title"].startswith("tradingd: ")

            procs[-1].send_signal(signal.SIGTERM)
            assert procs[-1].wait(20) == 0
            assert "Traceback" not in notify_log.read_text(errors="replace")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        keys = [k async for k in r.scan_iter(match=f"{prefix}:*")]
        if keys:
            await r.delete(*keys)
        await r.aclose()
        await runner.cleanup()
