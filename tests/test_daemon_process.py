"""The daemon as a real process: sd_notify on a real datagram socket, SIGHUP reloads, SIGTERM exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT, free_port, make_config, unique_prefix, wait_for


class Notify:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET.

    Like systemd it reads continuously (a thread): the kernel queues only
    ``net.unix.max_dgram_qlen`` datagrams (10 on Debian), and the daemon's non-blocking sends
    past that are dropped, so a reader that drains only when asked would lose STOPPING=1 behind
    a queue of WATCHDOG=1 pings.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode())

    def drain(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def seen(self, assignment: str) -> bool:
        return any(assignment in m.split("\n") for m in self.drain())

    def count(self, assignment: str) -> int:
        return sum(assignment in m.split("\n") for m in self.drain())

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    n = Notify(tmp_path / "notify.sock")
    yield n
    n.close()


def _get(port: int, path: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _actors(status: dict[str, object]) -> dict[str, dict[str, object]]:
    groups = status["groups"]
    assert isinstance(groups, list)
    return {a["name"]: a for g in groups for a in g["actors"]}


def test_reload_then_broken_reload_then_sigterm(tmp_path: Path, notify: Notify) -> None:
    port = free_port()
    prefix = unique_prefix()
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(make_config(tmp_path / "state", prefix=prefix, port=port, speed=50.0, loop=True))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify.path),
        "WATCHDOG_USEC": "400000",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("WATCHDOG_PID", None)
    log = (tmp_path / "daemon.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "daemon", "run", "--config", str(cfg_path)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: notify.seen("READY=1"), 20, "READY=1")
        wait_for(lambda: notify.seen("WATCHDOG=1"), 5, "WATCHDOG=1")
        code, status = _get(port, "/status")
        assert code == 200
        wait_for(
            lambda: all(a["state"] == "running" for a in _actors(_get(port, "/status")[1]).values()),
            10,
            "actors running",
        )
        before = _actors(_get(port, "/status")[1])

        # 1. a changed strategy parameter is applied in place; nothing restarts
        cfg_path.write_text(
            make_config(tmp_path / "state", prefix=prefix, port=port, speed=50.0, loop=True, rsi_buy_max=70.0)
        )
        ready_before = notify.count("READY=1")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: notify.count("READY=1") > ready_before, 10, "READY=1 after reload")
        assert notify.seen("RELOADING=1")
        _, status = _get(port, "/status")
        config = status["config"]
        assert isinstance(config, dict)
        assert config["last_changes"] == ["update paper:UNITTEST/BTC"], config
        assert config["last_error"] == ""
        groups = status["groups"]
        assert isinstance(groups, list)
        btc = next(g for g in groups if g["symbol"] == "UNITTEST/BTC")
        assert btc["strategy"]["rsi_buy_max"] == 70.0
        after = _actors(status)
        assert after.keys() == before.keys()
        for name, actor in after.items():
            assert actor["restarts"] == 0, name
            assert actor["handled"] >= before[name]["handled"], f"{name} was rebuilt by the reload"

        # 2. removing a group stops only that group; adding it back starts it again
        def reload_with(text: str) -> dict[str, object]:
            cfg_path.write_text(text)
            ready = notify.count("READY=1")
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: notify.count("READY=1") > ready, 10, "READY=1 after reload")
            return _get(port, "/status")[1]

        btc_only = make_config(
            tmp_path / "state",
            prefix=prefix,
            port=port,
            speed=50.0,
            loop=True,
            rsi_buy_max=70.0,
            trades_group=False,
        )
        status = reload_with(btc_only)
        assert status["config"]["last_changes"] == ["stop paper:XRP/ETH"]  # type: ignore[index]
        now = _actors(status)
        assert all(":XRP/ETH" not in name for name in now)
        for name, actor in now.items():
            assert actor["restarts"] == 0 and actor["handled"] >= after[name]["handled"], name
        both = make_config(
            tmp_path / "state", prefix=prefix, port=port, speed=50.0, loop=True, rsi_buy_max=70.0
        )
        status = reload_with(both)
        assert status["config"]["last_changes"] == ["start paper:XRP/ETH"]  # type: ignore[index]
        assert any(":XRP/ETH" in name for name in _actors(status))

        # 3. a broken file keeps the old config running and says why on /status
        cfg_path.write_text(cfg_path.read_text().replace("rsi_buy_max = 70.0", 'rsi_buy_max = "high"'))
        ready_before = notify.count("READY=1")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: notify.count("READY=1") > ready_before, 10, "READY=1 after rejected reload")
        _, status = _get(port, "/status")
        config = status["config"]
        assert isinstance(config, dict)
        assert "groups[0].strategy.rsi_buy_max: Expected `float`, got `str`" in str(config["last_error"])
        assert config["reload_failures"] == 1
        assert proc.poll() is None
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/livez", timeout=2) as resp:
            assert resp.status == 200

        # a second daemon on the same state_dir refuses to start, naming the holder
        other_cfg = tmp_path / "other.toml"
        other_cfg.write_text(both)
        second = subprocess.run(
            [sys.executable, "-m", "daemon", "run", "--config", str(other_cfg)],
            cwd=ROOT,
            env={**env, "NOTIFY_SOCKET": ""},
            capture_output=True,
            timeout=30,
            text=True,
        )
        assert second.returncode == 2
        assert f"is in use by another tradingd (pid {proc.pid})" in second.stdout + second.stderr

        # 4. SIGTERM: STOPPING=1 and exit code 0 within 5 s
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - t0 < 5
        assert notify.seen("STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
