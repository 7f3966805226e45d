"""The notifier's config file (``notify.toml``): its schema and loader.

Takes and emits no messages.  A file of its own, so the daemon's ``config.toml`` schema is
untouched: ``[redis]`` (where the daemon's streams are), ``[notify]`` (consumer group, daily
summary, admin API), ``[notify.telegram]`` (the bot) and ``[[notify.targets]]`` (one per
destination: an apprise URL or the bot, the event kinds and minimum severity it wants, its
rate limit and quiet hours).  Every key is described in ``notify.toml``.  Errors name the file,
line and key path like ``tradingd check-config``; secrets (bot token, URLs with tokens) come
from environment variables named here, never from the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time as dtime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from daemon.config_lines import line_of
from daemon.logs import redact_url, register_secret

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
EventKind = Literal["fill", "order", "stop", "risk", "halt", "feed", "reconcile", "outage", "daemon", "daily"]
EVENT_KINDS: tuple[EventKind, ...] = (
    "fill",
    "order",
    "stop",
    "risk",
    "halt",
    "feed",
    "reconcile",
    "outage",
    "daemon",
    "daily",
)


class NotifyConfigError(Exception):
    """A notifier config that cannot be used; the message names file, line and key."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_url(message))


class _Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class RedisSource(_Base, frozen=True, kw_only=True):
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "tradingd"
    password_env: str = "TRADINGD_REDIS_PASSWORD"
    connect_timeout_s: float = 2.0


class Target(_Base, frozen=True, kw_only=True):
    name: str
    url: str = ""
    url_env: str = ""
    kinds: tuple[EventKind, ...] = EVENT_KINDS
    min_severity: Severity = "info"
    max_per_minute: int = 20
    batch_window_s: float = 2.0
    max_batch: int = 50
    quiet_hours: str = ""
    quiet_min_severity: Severity = "critical"
    timeout_s: float = 10.0
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    retry_attempts: int = 8

    def resolved_url(self) -> str:
        """The apprise URL (from ``url_env`` when set) or ``"telegram"`` for the bot."""
        if self.url_env:
            value = os.environ.get(self.url_env, "")
            if value:
                register_secret(value)
            return value
        return self.url


class TelegramSection(_Base, frozen=True, kw_only=True):
    enabled: bool = False
    token_env: str = "TRADINGD_TELEGRAM_TOKEN"
    api_url: str = "https://api.telegram.org"
    chat_ids: tuple[int, ...] = ()
    commands: bool = True
    confirm_timeout_s: float = 60.0
    poll_timeout_s: int = 25


class NotifySection(_Base, frozen=True, kw_only=True):
    group: str = "notify"
    consumer: str = ""
    start: Literal["now", "all"] = "now"
    claim_idle_s: float = 60.0
    scan_interval_s: float = 5.0
    block_ms: int = 1000
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    admin_url: str = "http://127.0.0.1:8787"
    admin_token_env: str = "TRADINGD_ADMIN_TOKEN"
    daily_summary: bool = True
    daily_time: str = "23:59"
    timezone: str = "UTC"
    telegram: TelegramSection = TelegramSection()
    targets: tuple[Target, ...] = ()


class NotifyConfig(_Base, frozen=True, kw_only=True):
    redis: RedisSource = RedisSource()
    notify: NotifySection = NotifySection()


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def parse_hhmm(text: str) -> dtime:
    m = _HHMM.match(text)
    if not m:
        raise ValueError(f'expected "HH:MM" (24 h), got {text!r}')
    return dtime(int(m.group(1)), int(m.group(2)))


def parse_quiet(text: str) -> tuple[dtime, dtime] | None:
    """``"22:00-07:00"`` -> (22:00, 07:00); ``""`` -> None (no quiet hours)."""
    if not text:
        return None
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f'expected "HH:MM-HH:MM", got {text!r}')
    a, b = parse_hhmm(start.strip()), parse_hhmm(end.strip())
    if a == b:
        raise ValueError(f"expected two different times, got {text!r}")
    return a, b


def _problems(cfg: NotifyConfig) -> list[tuple[str, str]]:
    n = cfg.notify
    out: list[tuple[str, str]] = []
    try:
        ZoneInfo(n.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        out.append(("notify.timezone", f"expected an IANA time zone name, got {n.timezone!r}"))
    try:
        parse_hhmm(n.daily_time)
    except ValueError as exc:
        out.append(("notify.daily_time", str(exc)))
    if not _NAME.match(n.group):
        out.append(("notify.group", "expected 1-64 letters, digits, '_', '.', '-'"))
    if n.consumer and not _NAME.match(n.consumer):
        out.append(("notify.consumer", "expected 1-64 letters, digits, '_', '.', '-'"))
    for key, value in (
        ("notify.claim_idle_s", n.claim_idle_s),
        ("notify.scan_interval_s", n.scan_interval_s),
    ):
        if not 0.01 <= value <= 86400:
            out.append((key, f"expected 0.01..86400, got {value}"))
    if not 1 <= n.block_ms <= 60_000:
        out.append(("notify.block_ms", f"expected 1..60000, got {n.block_ms}"))
    if n.telegram.enabled and not n.telegram.chat_ids:
        out.append(("notify.telegram.chat_ids", "expected at least one chat id to talk to"))
    names: set[str] = set()
    for i, t in enumerate(n.targets):
        where = f"notify.targets[{i}]"
        if not _NAME.match(t.name) or t.name in names:
            out.append((f"{where}.name", f"expected a unique name of letters, digits, '_.-', got {t.name!r}"))
        names.add(t.name)
        if bool(t.url) == bool(t.url_env):
            out.append(
                (f"{where}.url", "expected exactly one of url (an apprise URL or telegram) and url_env")
            )
        if t.url == "telegram" and not n.telegram.enabled:
            out.append((f"{where}.url", "telegram needs [notify.telegram] enabled = true"))
        try:
            parse_quiet(t.quiet_hours)
        except ValueError as exc:
            out.append((f"{where}.quiet_hours", str(exc)))
        if not 1 <= t.max_per_minute <= 600:
            out.append((f"{where}.max_per_minute", f"expected 1..600, got {t.max_per_minute}"))
        if not 1 <= t.max_batch <= 500:
            out.append((f"{where}.max_batch", f"expected 1..500, got {t.max_batch}"))
        if not 1 <= t.retry_attempts <= 1000:
            out.append((f"{where}.retry_attempts", f"expected 1..1000, got {t.retry_attempts}"))
        if not 0 <= t.batch_window_s <= 3600:
            out.append((f"{where}.batch_window_s", f"expected 0..3600, got {t.batch_window_s}"))
        if not 0.001 <= t.retry_initial_s <= t.retry_max_s <= 86400:
            out.append(
                (f"{where}.retry_initial_s", "expected 0.001 <= retry_initial_s <= retry_max_s <= 86400")
            )
        if not 0.1 <= t.timeout_s <= 600:
            out.append((f"{where}.timeout_s", f"expected 0.1..600, got {t.timeout_s}"))
    return out


def parse_notify_config(text: str, source: str = "<notify config>") -> NotifyConfig:
    """Decode and check TOML text; raises :class:`NotifyConfigError` naming line and key."""

    def err(path: str, what: str) -> NotifyConfigError:
        line = line_of(text, path) if path else None
        return NotifyConfigError(f"{source}:{line}: {path}: {what}" if line else f"{source}: {path}: {what}")

    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NotifyConfigError(f"{source}: expected valid TOML: {exc}") from None
    try:
        cfg = msgspec.convert(raw, NotifyConfig, strict=True)
    except msgspec.ValidationError as exc:
        m = _MSGSPEC_PATH.search(str(exc))
        path = m.group("path").lstrip(".") if m else "(top level)"
        raise err(path, str(exc)[: m.start()] if m else str(exc)) from None
    problems = _problems(cfg)
    if problems:
        raise err(*problems[0])
    return cfg


def load_notify_config(path: str | Path) -> NotifyConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotifyConfigError(f"{p}: cannot read notifier config: {exc}") from None
    return parse_notify_config(text, str(p))
