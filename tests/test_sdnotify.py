"""daemon.sdnotify against real AF_UNIX datagram sockets (a path in tmp_path and an abstract name)."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from daemon.sdnotify import SystemdNotifier


@pytest.fixture
def path_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify.sock"
    assert len(str(path)) < 100, "AF_UNIX paths are limited to 108 bytes"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


@pytest.fixture
def abstract_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    name = f"tradingd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        monkeypatch.delenv("WATCHDOG_USEC", raising=False)
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def fields(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().split("\n"))


def test_ready_reloading_stopping_status_over_path_socket(path_socket: socket.socket) -> None:
    n = SystemdNotifier.from_env()
    assert n.enabled
    assert n.ready("serving 2 groups")
    assert path_socket.recv(4096) == b"READY=1\nSTATUS=serving 2 groups"
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    got = fields(path_socket.recv(4096))
    assert got["RELOADING"] == "1"
    assert before <= int(got["MONOTONIC_USEC"]) <= after
    assert n.stopping("bye")
    assert fields(path_socket.recv(4096)) == {"STOPPING": "1", "STATUS": "bye"}
    assert n.status("line one\nline two")
    assert path_socket.recv(4096) == b"STATUS=line one line two"
    assert n.watchdog()
    assert path_socket.recv(4096) == b"WATCHDOG=1"


def test_abstract_namespace_socket(abstract_socket: socket.socket) -> None:
    n = SystemdNotifier.from_env()
    assert n.notify("READY=1", "STATUS=abstract")
    assert abstract_socket.recv(4096) == b"READY=1\nSTATUS=abstract"
    assert n.watchdog()
    assert abstract_socket.recv(4096) == b"WATCHDOG=1"


def test_malformed_assignment_is_a_programming_error(path_socket: socket.socket) -> None:
    n = SystemdNotifier.from_env()
    with pytest.raises(ValueError):
        n.notify("READY")
    with pytest.raises(ValueError):
        n.notify("STATUS=a\nb")


def test_without_notify_socket_everything_is_a_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    n = SystemdNotifier.from_env()
    assert not n.enabled
    assert not n.watchdog_enabled
    assert n.ready() is False
    assert n.watchdog() is False


def test_unsupported_socket_kind_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    assert not SystemdNotifier.from_env().enabled


def test_missing_socket_returns_false_and_logs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    n = SystemdNotifier.from_env()
    with caplog.at_level(logging.WARNING, logger="tradingd.sdnotify"):
        assert n.ready() is False
        assert n.watchdog() is False
        assert n.stopping() is False
    assert len([r for r in caplog.records if r.name == "tradingd.sdnotify"]) == 1


def test_watchdog_env_parsing(path_socket: socket.socket, monkeypatch: pytest.MonkeyPatch) -> None:
    assert not SystemdNotifier.from_env().watchdog_enabled
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    n = SystemdNotifier.from_env()
    assert n.watchdog_enabled
    assert n.watchdog_usec == 30_000_000
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert SystemdNotifier.from_env().watchdog_usec == 30_000_000
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert not SystemdNotifier.from_env().watchdog_enabled
    monkeypatch.setenv("WATCHDOG_PID", "not-a-pid")
    assert not SystemdNotifier.from_env().watchdog_enabled
    monkeypatch.delenv("WATCHDOG_PID")
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert not SystemdNotifier.from_env().watchdog_enabled


@pytest.mark.anyio
async def test_watchdog_loop_pings_at_half_the_interval(
    path_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s -> a ping every 0.1 s
    n = SystemdNotifier.from_env()
    path_socket.setblocking(False)
    arrivals: list[float] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(n.watchdog_loop)
            while len(arrivals) < 4:
                await anyio.wait_readable(path_socket)
                assert path_socket.recv(4096) == b"WATCHDOG=1"
                arrivals.append(time.monotonic())
            tg.cancel_scope.cancel()
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert all(gap >= 0.07 for gap in gaps), gaps
    assert 0.25 <= arrivals[-1] - arrivals[0] <= 1.0, gaps


@pytest.mark.anyio
async def test_watchdog_loop_returns_when_watchdog_is_for_another_pid(
    path_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    n = SystemdNotifier.from_env()
    assert not n.watchdog_enabled
    with anyio.fail_after(1):
        await n.watchdog_loop()
    path_socket.setblocking(False)
    with pytest.raises(BlockingIOError):
        path_socket.recv(4096)


@pytest.mark.anyio
async def test_watchdog_loop_returns_without_notify_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    with anyio.fail_after(1):
        await SystemdNotifier.from_env().watchdog_loop()
