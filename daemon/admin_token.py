"""Where the admin API's bearer token comes from, for the daemon (checking) and the CLI (sending).

Takes and emits no messages.  First found wins:

1. the environment variable ``health.admin_token_env`` (default ``TRADINGD_ADMIN_TOKEN``);
2. the systemd credential ``admin_token``: ``$CREDENTIALS_DIRECTORY/admin_token``
   (``LoadCredential=admin_token:/etc/tradingd/credentials/admin_token`` in the unit);
3. the file ``health.admin_token_file`` (relative to the config file; the first line is the token).

The token is read again on every request, so a rotated file needs no restart.  Every token
found is registered with the log redactor.  Without one the admin API refuses, and
:func:`how_to_set` says how to give one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import msgspec

from daemon.config_schema import HealthSection
from daemon.logs import register_secret
from daemon.secrets import credential

CREDENTIAL = "admin_token"
MIN_LENGTH = 16  # a shorter token is refused: it could be guessed


class Token(msgspec.Struct, frozen=True):
    value: str
    source: str  # where it came from, for messages (never the value)


class TokenProblem(Exception):
    """A token source is set but unusable (a missing or empty file, a token too short)."""


def find_token(cfg: HealthSection) -> Token | None:
    """The token from the first source that has one; None when none is set.

    Raises TokenProblem when a source is configured but cannot give a usable token.
    """
    found: Token | None = None
    env = os.environ.get(cfg.admin_token_env, "").strip() if cfg.admin_token_env else ""
    if env:
        found = Token(env, f"environment variable {cfg.admin_token_env}")
    if found is None and (cred := credential(CREDENTIAL)):
        found = Token(cred.strip(), f"systemd credential {CREDENTIAL}")
    if found is None and cfg.admin_token_file:
        found = Token(
            read_token_file(Path(cfg.admin_token_file)), f"health.admin_token_file {cfg.admin_token_file}"
        )
    if found is None:
        return None
    register_secret(found.value)
    if len(found.value) < MIN_LENGTH:
        raise TokenProblem(f"the admin token from {found.source} is shorter than {MIN_LENGTH} characters")
    return found


def read_token_file(path: Path, what: str = "health.admin_token_file") -> str:
    """The first line of ``path``; TokenProblem naming ``what`` if it is missing, unreadable or empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TokenProblem(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenProblem(f"{what} {path} cannot be read: {exc}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise TokenProblem(f"{what} {path} is empty")
    register_secret(token)
    return token


def file_warnings(cfg: HealthSection) -> list[str]:
    """What check-config and the start say about ``health.admin_token_file`` (never its content)."""
    if not cfg.admin_token_file:
        return []
    path = Path(cfg.admin_token_file)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return [f"health.admin_token_file: {path} does not exist: the admin API refuses until it does"]
    except OSError as exc:
        return [f"health.admin_token_file: {path} cannot be read: {exc.strerror or exc}"]
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return [f"health.admin_token_file: {path} is readable by others: chmod 600 {path}"]
    return []


def how_to_set(cfg: HealthSection) -> str:
    """The refusal's text: no token is configured, and the three ways to give one."""
    return (
        f"admin disabled: no admin token configured; set the environment variable "
        f'{cfg.admin_token_env}, or health.admin_token_file = "/etc/tradingd/admin_token" (a file '
        f"holding the token, mode 0600), or under systemd LoadCredential={CREDENTIAL}:/path/to/file; "
        f"e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > /etc/tradingd/admin_token"
    )
