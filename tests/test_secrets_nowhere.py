"""Secrets out of the config file, and nowhere they should not be.

The Redis password comes from a systemd credential ($CREDENTIALS_DIRECTORY/redis_password), the
PostgreSQL one from PGPASSWORD, the admin token from the environment; a paper daemon runs with
the journal, PostgreSQL and a password-protected Redis, and afterwards the known fake secrets are
searched for in its log, every Redis stream it wrote, its journal and state files, every
PostgreSQL row, /status and /metrics: none is found (and the mirror did reach Redis with the
credential's password).  check-config warns about a password written into the file, without
showing it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import asyncpg
import pytest
import redis

from tests.helpers import ROOT, free_port, make_config, ready_count, start_daemon, unique_prefix, wait_for
from tests.redis_server import RedisServer
from tests.test_store import _admin, dsn_for

REDIS_SECRET = "redis-Secret-" + uuid.uuid4().hex
PG_SECRET = "pg-Secret-" + uuid.uuid4().hex
ADMIN_SECRET = "admin-Secret-" + uuid.uuid4().hex
SECRETS = (REDIS_SECRET, PG_SECRET, ADMIN_SECRET)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"tradingd_test_{uuid.uuid4().hex[:12]}"
    anyio.run(_admin, f"CREATE DATABASE {name}")
    try:
        yield dsn_for(name)
    finally:
        anyio.run(_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _all_rows(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        tables = [
            r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ]
        out = []
        for table in tables:
            out += [str(r[0]) for r in await conn.fetch(f'SELECT t::text FROM "{table}" t')]
        return "\n".join(out)
    finally:
        await conn.close()


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as resp:
        return resp.read().decode()


def test_known_secrets_appear_nowhere(tmp_path: Path, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "redis_password").write_text(REDIS_SECRET + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("PGPASSWORD", PG_SECRET)  # trust auth here: accepted and ignored by the server
    monkeypatch.setenv("TRADINGD_ADMIN_TOKEN", ADMIN_SECRET)
    port = free_port()
    prefix = unique_prefix()
    with RedisServer(tmp_path / "redis", extra_args=("--requirepass", REDIS_SECRET)) as server:
        text = make_config(
            tmp_path / "state", prefix=prefix, port=port, speed=0.0, loop=True, trades_group=False,
            redis_url=server.url, store_dsn=database,
        )  # fmt: skip
        cfg = tmp_path / "config.toml"
        cfg.write_text(text)
        log = tmp_path / "daemon.log"
        proc = start_daemon(cfg, log)
        try:
            wait_for(lambda: ready_count(log) >= 1, 30, "ready")
            client = redis.Redis(host="127.0.0.1", port=server.port, password=REDIS_SECRET)
            wait_for(lambda: any(client.scan_iter(f"{prefix}:*:fill")), 60, "fills mirrored to Redis", 0.25)
            time.sleep(1.0)
            seen = [_get(port, "/status"), _get(port, "/metrics"), _get(port, "/readyz")]
            req = urllib.request.Request(f"http://127.0.0.1:{port}/admin/halt", data=b"")
            req.add_header("Authorization", f"Bearer {ADMIN_SECRET}")
            with urllib.request.urlopen(req, timeout=3) as resp:
                seen.append(resp.read().decode())
            time.sleep(0.5)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        for key in client.scan_iter(f"{prefix}:*"):
            for _id, fields in client.xrange(key):
                seen += [repr(k) + repr(v) for k, v in fields.items()]
        client.close()
    seen.append(log.read_text(errors="replace"))
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            seen.append(path.read_bytes().decode("latin-1"))
    seen.append(anyio.run(_all_rows, database))
    blob = "\n".join(seen)
    assert "OrderFilled" in blob  # something was written everywhere we look
    for secret in SECRETS:
        assert secret not in blob, f"a secret leaked: {secret[:12]}..."


def test_check_config_warns_about_an_inline_password_without_showing_it(tmp_path: Path) -> None:
    text = make_config(tmp_path / "state", prefix="p", redis_url=f"redis://:{REDIS_SECRET}@127.0.0.1:6379/0")
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "check-config", str(cfg)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "redis.url: a password is written in the config file" in done.stderr
    assert REDIS_SECRET not in done.stdout + done.stderr
