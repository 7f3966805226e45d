"""Process logging: JSON lines for journald/log shippers, readable lines on a terminal, secrets redacted.

:func:`setup_logging` installs one handler on the root logger (calling it again replaces
it).  ``fmt="auto"`` writes human-readable lines when the stream is a TTY and JSON lines
otherwise (under systemd stderr is the journal, so the daemon logs JSON there).

A JSON line carries ``ts`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``, ``msg``,
every JSON-able field passed through ``extra=`` (``component``, ``exchange``, ``symbol``,
``conn`` ...) and ``exc`` (the formatted traceback) when there is one.

Redaction runs on the finished output line of both formatters, so it covers the message,
its ``%`` arguments, extra fields and exception tracebacks alike: values registered with
:func:`register_secret`, ``api_key=...``-style key/value pairs and the password of a URL's
userinfo (``redis://user:***@host``, see :func:`redact_url`) become ``***``.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import msgspec

__all__ = [
    "JsonFormatter",
    "TextFormatter",
    "redact",
    "redact_url",
    "register_secret",
    "register_url_password",
    "setup_logging",
]

MASK = "***"
MIN_SECRET_LEN = 4
"""Shorter values are not registered: masking every "abc" in the logs would hide more than it protects."""

_KEYS = (
    r"api[_-]?key|api[_-]?secret|secret(?:[_-]?key)?|signature|passphrase|password|passwd"
    r"|access[_-]?token|refresh[_-]?token|listen[_-]?key|x-mbx-apikey"
)
# key, optional (JSON-escaped) quote, '=' or ':', optional quote; then the value up to a delimiter.
_KV = rf"""(?i)\b((?:{_KEYS})\\?["']?\s*[=:]\s*\\?["']?)([^\s"'&,;)}}\]\\]+)"""
# "Authorization: Bearer x", "authorization=Basic x", and a bare "Bearer x" anywhere.
_AUTH = (
    r"""(?i)(authorization\\?["']?\s*[=:]\s*\\?["']?(?:(?:bearer|basic|token)\s+)?"""
    r"""|\b(?-i:Bearer)\s+)([^\s"',;)}\]\\]+)"""
)
# scheme://user:password@host: the password runs to the last '@' before a space or a quote (a
# mistyped password may hold '/' or '@'), so more is masked rather than less.
_URL_PASSWORD = re.compile(r"""(?i)(\b[a-z][a-z0-9+.\-]*://[^\s/?#@:'"\\]*:)[^\s'"\\]*@""")
_PATTERNS = (re.compile(_KV), re.compile(_AUTH))

_lock = threading.Lock()
_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secret(value: str) -> None:
    """Never log ``value`` (nor its JSON- or repr-escaped forms): every occurrence becomes ``***``."""
    global _secret_re
    if len(value) < MIN_SECRET_LEN:
        return
    forms = {value, msgspec.json.encode(value).decode()[1:-1], repr(value)[1:-1]}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        ordered = sorted(_secrets, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(s) for s in ordered))


def register_url_password(url: str) -> None:
    """Never log the password of ``url``'s userinfo, even outside a URL (e.g. in a server's reply)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    if password:
        register_secret(password)
        register_secret(unquote(password))


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` masked (the user is kept)."""
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)


def redact(text: str) -> str:
    """``text`` with registered secrets, URL passwords and credential-looking key/value pairs masked."""
    secret_re = _secret_re
    if secret_re is not None:
        text = secret_re.sub(MASK, text)
    text = redact_url(text)
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{MASK}", text)
    return text


# --- formatters ---------------------------------------------------------------------------------

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def _timestamp(record: logging.LogRecord) -> str:
    """ISO 8601 UTC with milliseconds, e.g. ``2024-05-01T12:00:00.123Z``."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    """Fields passed through ``extra=`` (or a LoggerAdapter), in insertion order."""
    return {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}


def _encodable(value: Any) -> bool:
    try:
        msgspec.json.encode(value)
    except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
        return False
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, encoded with msgspec; the whole line is redacted."""

    _encoder = msgspec.json.Encoder()

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return redact(self._encode(entry))

    def _encode(self, entry: dict[str, Any]) -> str:
        try:
            return self._encoder.encode(entry).decode()
        except (msgspec.EncodeError, TypeError, ValueError, OverflowError):
            # An extra field that is not JSON-able: keep the line, drop that field.
            kept = {k: v for k, v in entry.items() if _encodable(v)}
            return self._encoder.encode(kept).decode()


class TextFormatter(logging.Formatter):
    """``2024-05-01T12:00:00.123Z INFO    tradingd.feed: msg [component=feed symbol=BTC/USDT]``."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = _extras(record)
        if extras:
            line += " [" + " ".join(f"{k}={v}" for k, v in extras.items()) + "]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return redact(line)


# --- setup ----------------------------------------------------------------------------------------

_MARK = "_tradingd_handler"


def _is_tty(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _formatter(fmt: str, stream: IO[str]) -> logging.Formatter:
    if fmt == "auto":
        fmt = "text" if _is_tty(stream) else "json"
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log format must be auto, json or text, got {fmt!r}")


def _level(level: str) -> int:
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}")
    return value


def setup_logging(level: str, fmt: str = "auto", stream: IO[str] | None = None) -> logging.Handler:
    """Route the root logger to ``stream`` (default stderr) at ``level``; replaces an earlier setup."""
    out = stream if stream is not None else sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(_formatter(fmt, out))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(_level(level))
    return handler
