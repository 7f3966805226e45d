"""Secrets that never need to be in config.toml: the Redis and PostgreSQL passwords.

Takes and emits no messages.  Where a password comes from, first found wins:

1. a systemd credential: ``$CREDENTIALS_DIRECTORY/<name>`` (``LoadCredential=<name>:/path``
   in the unit; the file is readable by the service only, never in its environment);
2. an environment variable (``redis.password_env``, default ``TRADINGD_REDIS_PASSWORD``;
   PostgreSQL's own ``PGPASSWORD``, or ``PGPASSFILE`` for a pgpass file, which asyncpg reads);
3. the URL itself (``redis://:pw@host``, ``postgresql://u:pw@host``): works, but check-config
   warns about it.

Credentials: ``redis_password`` (the Redis password), ``postgres_password`` (exported as
``PGPASSWORD`` for asyncpg when that is unset) and ``pgpass`` (exported as ``PGPASSFILE``).
Every password found is registered with the log redactor, so it is masked wherever it would
appear.  Read again on every Redis reconnect, so a rotated credential needs no restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from daemon.logs import register_secret

REDIS_CREDENTIAL = "redis_password"
POSTGRES_CREDENTIAL = "postgres_password"
PGPASS_CREDENTIAL = "pgpass"


def credential(name: str) -> str | None:
    """The systemd credential ``name`` (trailing newline stripped), None when there is none."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    if not directory:
        return None
    path = Path(directory) / name
    try:
        value = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (FileNotFoundError, IsADirectoryError):
        return None
    if value:
        register_secret(value)
    return value or None


def redis_password(env_name: str) -> str | None:
    """The Redis password from a credential or the environment (None: the URL's, if any)."""
    found = credential(REDIS_CREDENTIAL)
    if found is None and env_name:
        found = os.environ.get(env_name) or None
        if found:
            register_secret(found)
    return found


def export_postgres_credentials() -> list[str]:
    """Make systemd credentials visible to asyncpg as PGPASSWORD / PGPASSFILE (only if unset);
    returns what was exported, for the log (names, never values)."""
    done = []
    password = credential(POSTGRES_CREDENTIAL)
    if password is not None and not os.environ.get("PGPASSWORD"):
        os.environ["PGPASSWORD"] = password
        done.append(f"PGPASSWORD from credential {POSTGRES_CREDENTIAL}")
    directory = os.environ.get("CREDENTIALS_DIRECTORY", "")
    passfile = Path(directory) / PGPASS_CREDENTIAL if directory else None
    if passfile is not None and passfile.is_file() and not os.environ.get("PGPASSFILE"):
        os.environ["PGPASSFILE"] = str(passfile)
        done.append(f"PGPASSFILE from credential {PGPASS_CREDENTIAL}")
    if env := os.environ.get("PGPASSWORD"):
        register_secret(env)
    return done


def inline_passwords(redis_url: str, dsn: str) -> list[str]:
    """Warnings for passwords written into the config file (key paths only, never the values)."""
    warnings = []
    for key, url, where in (
        ("redis.url", redis_url, f"${{CREDENTIALS_DIRECTORY}}/{REDIS_CREDENTIAL} or redis.password_env"),
        ("store.dsn", dsn, f"${{CREDENTIALS_DIRECTORY}}/{POSTGRES_CREDENTIAL}, PGPASSWORD or PGPASSFILE"),
    ):
        try:
            has_password = bool(urlsplit(url).password)
        except ValueError:
            continue
        if has_password:
            warnings.append(f"{key}: a password is written in the config file; give it through {where}")
    return warnings
