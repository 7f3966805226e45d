"""The command line's side of the admin API: where the daemon is, which token to send, the request.

Takes and emits no messages.  The daemon's address is ``--url``, else ``health.bind``:``health.port``
of the config (``--config``, default ``$TRADINGD_CONFIG`` or ``./config.toml``), else
http://127.0.0.1:8787.  The token is ``--token-file``'s, else the daemon's own sources in their
order (:mod:`daemon.admin_token`: the variable ``health.admin_token_env``, the systemd credential
``admin_token``, ``health.admin_token_file``).  Failures are :class:`AdminFailure` with the exit
code they mean (see :data:`EXIT_CODES`) and a message saying what to do.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

from daemon.admin_token import Token, TokenProblem, find_token, how_to_set, read_token_file
from daemon.config import ConfigError, load_config
from daemon.config_schema import HealthSection

OK, INCOMPLETE, USAGE, UNREACHABLE, TOKEN, NOT_CONFIRMED = 0, 1, 2, 3, 4, 5
EXIT_CODES = f"""exit codes:
  {OK}  done
  {INCOMPLETE}  done, but not all of it: flatten left a position, dust or open orders; status: not ready
  {USAGE}  bad arguments, or the daemon refused them (unknown scope, account or group, bad value)
  {UNREACHABLE}  the daemon cannot be reached (not running, wrong --url or health.port)
  {TOKEN}  no admin token here, the daemon refused it, or the daemon has none configured
  {NOT_CONFIRMED}  flatten not confirmed (answer 'yes', or pass --yes)"""
DEFAULT_CONFIG = "config.toml"


class AdminFailure(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class Target:
    """The daemon to talk to and the token to send it."""

    def __init__(
        self, url: str, health: HealthSection, token_file: str = "", timeout_s: float = 60.0
    ) -> None:
        self.url = url.rstrip("/")
        self.health = health
        self.token_file = token_file
        self.timeout_s = timeout_s

    @classmethod
    def from_args(
        cls, config: str | None, url: str | None, token_file: str | None, timeout_s: float
    ) -> Target:
        path = config or os.environ.get("TRADINGD_CONFIG") or DEFAULT_CONFIG
        health = HealthSection()
        if config is not None or Path(path).is_file():
            try:
                health = load_config(path).health
            except ConfigError as exc:
                raise AdminFailure(USAGE, f"error: {exc}") from None
        return cls(url or _url(health), health, token_file or "", timeout_s)

    def token(self) -> Token:
        try:
            if self.token_file:
                return Token(
                    read_token_file(Path(self.token_file), "--token-file"), f"--token-file {self.token_file}"
                )
            found = find_token(self.health)
        except TokenProblem as exc:
            raise AdminFailure(TOKEN, f"error: {exc}") from None
        if found is None:
            raise AdminFailure(
                TOKEN, f"error: no admin token here. {how_to_set(self.health)}; or pass --token-file"
            )
        return found

    def request(self, method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
        """The daemon's JSON answer to an admin request; AdminFailure for anything but a 2xx."""
        token = self.token()
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {token.value}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                answer: dict[str, object] = json.loads(resp.read() or b"{}")
                return answer
        except urllib.error.HTTPError as exc:
            raise self._refused(exc, token) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise AdminFailure(
                UNREACHABLE,
                f"error: tradingd is not answering at {self.url} ({reason}). Is it running? "
                "(systemctl status tradingd, or make run; the address is health.bind and health.port "
                "of --config, or --url)",
            ) from None

    def _refused(self, exc: urllib.error.HTTPError, token: Token) -> AdminFailure:
        try:
            error = str(json.loads(exc.read() or b"{}").get("error", ""))
        except (ValueError, AttributeError):
            error = ""
        error = error or exc.reason or f"HTTP {exc.code}"
        if exc.code == 401:
            return AdminFailure(
                TOKEN,
                f"error: the daemon at {self.url} refused the admin token from {token.source} ({error}): "
                "it is not the daemon's token",
            )
        if exc.code == 503:
            return AdminFailure(TOKEN, f"error: the daemon at {self.url} says: {error}")
        if exc.code in (400, 404):
            return AdminFailure(USAGE, f"error: {error}")
        return AdminFailure(INCOMPLETE, f"error: the daemon at {self.url} answered HTTP {exc.code}: {error}")


def _url(health: HealthSection) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(health.bind, health.bind)
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{health.port}"
