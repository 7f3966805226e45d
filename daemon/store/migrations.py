"""Versioned schema migrations: ``daemon/store/sql/NNNN_name.sql``, applied in order, each once.

:func:`migrate` takes a session advisory lock (:data:`LOCK_KEY`) first, so two processes
migrating the same database run one after the other: the second finds everything applied
and does nothing.  Each file runs in its own transaction together with its row in
``schema_migrations`` (version, name, sha256 of the file), so a failing migration leaves
neither a half-applied schema nor a record of it.  A file changed after it was applied is
an error (:class:`MigrationError`); versions in the database that this code does not know
(a newer release ran) are logged and left alone.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import anyio
import asyncpg

log = logging.getLogger("tradingd.store")
_X = {"component": "store"}

LOCK_KEY = 0x7472_6164_696E_6764  # b"tradingd" as a bigint
"""The ``pg_advisory_lock`` key every tradingd migration takes."""

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     text PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(Exception):
    """The migration files and the database disagree, or a migration failed."""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default: the bundled ``sql/``), ordered by version."""
    root = resources.files("daemon.store") / "sql" if directory is None else directory
    found: dict[str, Migration] = {}
    for entry in root.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        version, name = match.groups()
        if version in found:
            raise MigrationError(f"two migrations with version {version}: {found[version].name}, {name}")
        found[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def migrate(dsn: str, *, directory: Path | None = None, connect_timeout: float = 30.0) -> list[str]:
    """Apply every pending migration; returns the versions applied by this call (``[]``: up to date)."""
    migrations = load_migrations(directory)
    conn = await asyncpg.connect(
        dsn, timeout=connect_timeout, server_settings={"application_name": "tradingd-migrate"}
    )
    try:  # the session lock goes with the connection, however this ends
        await conn.execute("SELECT pg_advisory_lock($1)", LOCK_KEY)
        done = await _apply(conn, migrations)
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK_KEY)
        return done
    finally:
        await close_connection(conn)


CLOSE_TIMEOUT = 5.0


async def close_connection(conn: asyncpg.Connection) -> None:
    """Close ``conn`` politely if it answers in :data:`CLOSE_TIMEOUT`, even when cancelled; else drop it."""
    with (
        anyio.CancelScope(shield=True),
        anyio.move_on_after(CLOSE_TIMEOUT),
        contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError),
    ):
        await conn.close(timeout=CLOSE_TIMEOUT)
    if not conn.is_closed():
        conn.terminate()


async def _apply(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(_CREATE_TABLE)
    rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY version")
    applied = {str(r["version"]): (str(r["name"]), str(r["checksum"])) for r in rows}
    known = {m.version for m in migrations}
    for version in sorted(applied.keys() - known):
        log.warning(
            "database has migration %s_%s that this release does not know (a newer release ran)",
            version,
            applied[version][0],
            extra=_X,
        )
    done: list[str] = []
    for m in migrations:
        if m.version in applied:
            if applied[m.version][1] != m.checksum:
                raise MigrationError(
                    f"migration {m.version}_{m.name} was changed after it was applied "
                    "(write a new migration instead of editing an applied one)"
                )
            continue
        try:
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
        except asyncpg.PostgresError as exc:
            raise MigrationError(f"migration {m.version}_{m.name} failed: {exc}") from exc
        log.info("applied migration %s_%s", m.version, m.name, extra=_X)
        done.append(m.version)
    return done


async def migrate_main(dsn: str) -> int:
    """``tradingd migrate --dsn DSN``: apply pending migrations; 0 on success, 1 with the reason if not."""
    try:
        applied = await migrate(dsn)
        latest = ([m.version for m in load_migrations()] or ["none"])[-1]
    except (MigrationError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        print(f"error: migration failed: {exc}", file=sys.stderr)
        return 1
    if applied:
        print(f"applied migrations {', '.join(applied)}; schema at {latest}")
    else:
        print(f"schema up to date at {latest}")
    return 0
