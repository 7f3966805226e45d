"""The broken-config corpus (tests/config_corpus.py) through ``check-config`` and through SIGHUP.

Each case must be refused with its exact ``file:line: key.path: expected ...`` message: by
``check-config`` (the CLI function; a few also as a process), and by a running daemon, which keeps
trading on its old config and shows the message on ``/status`` under ``config.last_error``.  No
output (stdout, stderr, the log, ``/status``, the Redis ``system`` stream) may show the corpus's
fake secrets.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import redis

from daemon.cli import main
from tests.config_corpus import CASES, FAKE_API_KEY, SECRETS, Case
from tests.helpers import ROOT, free_port, unique_prefix, wait_for

SHIPPED = (ROOT / "config.toml").read_text()
BY_NAME = {case.name: case for case in CASES}


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_check_config_refuses_every_case_with_its_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(CASES) >= 60 and len(BY_NAME) == len(CASES)
    path = tmp_path / "broken.toml"
    wrong: list[str] = []
    for case in CASES:
        path.write_text(case.text(SHIPPED))
        code = main(["check-config", str(path)])
        out, err = capsys.readouterr()
        want = f"error: {case.expected(SHIPPED, str(path), str(tmp_path))}\n"
        if code != 1 or err != want or out or _leaks(out + err):
            wrong.append(f"{case.name}: exit {code}, stdout {out!r}, stderr {err!r}, expected {want!r}")
    assert wrong == [], "\n".join(wrong)


def test_check_config_accepts_the_shipped_file_and_allow_empty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.toml"
    path.write_text("[daemon]\nallow_empty = true\n")
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok (0 groups: none (daemon.allow_empty))\n"


@pytest.mark.parametrize("name", ["bind-not-a-host", "empty", "api_key_env-secret", "toml-no-value"])
def test_check_config_process(tmp_path: Path, name: str) -> None:
    case = BY_NAME[name]
    path = tmp_path / "broken.toml"
    path.write_text(case.text(SHIPPED))
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"error: {case.expected(SHIPPED, str(path), str(tmp_path))}\n"
    assert FAKE_API_KEY not in done.stderr


def _status(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=2) as resp:
        body: dict[str, object] = json.loads(resp.read())
        return body


def _config(status: dict[str, object]) -> dict[str, object]:
    config = status["config"]
    assert isinstance(config, dict)
    return config


def _actors(status: dict[str, object]) -> dict[str, dict[str, object]]:
    groups = status["groups"]
    assert isinstance(groups, list)
    return {a["name"]: a for g in groups for a in g["actors"]}


def _running_base(port: int, prefix: str) -> str:
    """The shipped config on a free port and a private Redis prefix, without the journal."""
    text = SHIPPED.replace("port = 8787", f"port = {port}").replace(
        'prefix = "tradingd"', f'prefix = "{prefix}"'
    )
    text = text.replace("enabled = true\npostgres = false", "enabled = false\npostgres = false")
    assert text.count(str(port)) == 1 and text.count(prefix) == 1 and "enabled = false\npostgres" in text
    return text


def test_sighup_refuses_every_case_and_the_groups_keep_trading(tmp_path: Path) -> None:
    port, prefix = free_port(), unique_prefix()
    base = _running_base(port, prefix)
    path = (tmp_path / "config.toml").resolve()
    path.write_text(base)
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "daemon", "run", "--config", str(path)],
            cwd=tmp_path,  # state_dir = ".state" lands here; the bundled data resolves from the install
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NOTIFY_SOCKET": "", "PYTHONPATH": str(ROOT)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        wait_for(lambda: _up(port), 30, "the health server")
        wait_for(lambda: len(_actors(_status(port))) >= 2 and _all_running(port), 15, "actors running")
        before = _actors(_status(port))
        wrong = _reload_every_case(proc, port, path, base, tmp_path)
        assert wrong == [], "\n".join(wrong)
        status = _status(port)
        assert _config(status)["reload_failures"] == len(CASES)
        after = _actors(status)
        assert after.keys() == before.keys()
        for name, actor in after.items():
            assert actor["state"] == "running" and actor["restarts"] == 0, (name, actor)
        wait_for(
            lambda: any(
                a["handled"] > before[n]["handled"]  # type: ignore[operator]
                for n, a in _actors(_status(port)).items()
            ),
            10,
            "the groups still trading",
        )
        system = b"".join(
            value for _, fields in client.xrange(f"{prefix}:daemon:all:system") for value in fields.values()
        )
        assert b"redis.url" in system  # the rejected reloads were mirrored ...
        assert _leaks(system.decode("utf-8", "replace")) == []  # ... without the secrets
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        keys = list(client.scan_iter(f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    log_text = log_path.read_text()
    assert log_text.count("config reload rejected") == len(CASES)
    assert _leaks(log_text) == []


def _up(port: int) -> bool:
    try:
        _status(port)
    except OSError:
        return False
    return True


def _all_running(port: int) -> bool:
    return all(a["state"] == "running" for a in _actors(_status(port)).values())


def _reload_every_case(
    proc: subprocess.Popen[bytes], port: int, path: Path, base: str, tmp: Path
) -> list[str]:
    wrong = []
    for n, case in enumerate(CASES, start=1):
        path.write_text(case.text(base))
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda n=n: _config(_status(port))["reload_failures"] == n, 10, f"reload {case.name}", 0.01)  # type: ignore[misc]
        status = _status(port)
        error = str(_config(status)["last_error"])
        want = _expected(case, base, path)
        if error != want or _leaks(json.dumps(status)):
            wrong.append(f"{case.name}: /status config.last_error {error!r}, expected {want!r}")
    path.write_text(base)
    return wrong


def _expected(case: Case, base: str, path: Path) -> str:
    return case.expected(base, str(path), str(path.parent))
