"""Delivers one target's outbox: rate limit, batching into a summary, quiet hours, retries.

Takes :class:`~daemon.notify.events.Alert` records from the target's outbox stream (after its
cursor) and emits notifications through a :class:`Sender`: apprise (``json://``, ``tgram://``,
``discord://``, ``slack://``, ``ntfy://``, ``mailto://`` ...) or the Telegram bot.  What has
piled up (within ``batch_window_s``, or while the rate limit ``max_per_minute`` holds it back)
goes as one summary message of up to ``max_batch`` lines.  In quiet hours only alerts of
``quiet_min_severity`` or worse go out; the rest wait in the target's held stream and go as one
summary when the quiet hours end.

A send is retried with exponential backoff (tenacity, ``retry_attempts``); a target that stays
down is counted (``{prefix}:notify:{group}:stats``, ``failed:{target}``) and retried later, and
never holds up the other targets (each runs in its own task).  Before a send the batch is noted
as in flight; the cursor moves past it after the send.  A crash in between (the one request on
the wire) re-sends that same batch once after the restart, marked "may repeat", with the same
``X-Tradingd-Delivery`` key for webhooks (json://, form://, xml://) to deduplicate on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

import anyio
import apprise
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from daemon.notify.config import NotifyConfig, Severity, Target, parse_quiet
from daemon.notify.events import ALERT_DECODER, ALERT_ENCODER, Alert, iso_s, severity_at_least
from daemon.notify.outbox import OUTBOX_MAXLEN, Keys

log = logging.getLogger("tradingd.notify.deliver")
_X = {"component": "notify"}
REPEAT_NOTE = " (re-sent after a restart: may repeat)"
_IDEMPOTENT_SCHEMES = ("json", "jsons", "form", "forms", "xml", "xmls")


class DeliveryError(Exception):
    """A target did not take a notification."""


class Sender(Protocol):
    async def send(self, title: str, body: str, severity: Severity, key: str) -> None:
        """Deliver or raise :class:`DeliveryError`; ``key`` is the same for a re-sent batch."""
        ...


class AppriseSender:
    """One apprise URL."""

    def __init__(self, url: str, timeout_s: float) -> None:
        if not apprise.Apprise().add(url):
            raise ValueError("not an apprise URL apprise can use")
        self.url, self.timeout_s = url, timeout_s
        self.scheme = url.split("://", 1)[0].lower()

    async def send(self, title: str, body: str, severity: Severity, key: str) -> None:
        url = self.url
        if self.scheme in _IDEMPOTENT_SCHEMES:
            url += ("&" if "?" in url else "?") + "+X-Tradingd-Delivery=" + quote(key, safe="")
        ap = apprise.Apprise()
        ap.add(url)
        kind = {"info": apprise.NotifyType.INFO, "warning": apprise.NotifyType.WARNING}.get(
            severity, apprise.NotifyType.FAILURE
        )
        with anyio.fail_after(self.timeout_s):
            ok = await ap.async_notify(body=body, title=title, notify_type=kind)
        if not ok:
            raise DeliveryError(f"apprise {self.scheme}:// refused or unreachable")


def compose(
    alerts: Sequence[Alert], *, repeat: bool = False, held: bool = False
) -> tuple[str, str, Severity]:
    """Title, body and worst severity of one notification for ``alerts`` (one line each, dated)."""
    worst: Severity = max((a.severity for a in alerts), key=("info", "warning", "critical").index)
    lines = [f"{iso_s(a.ts_ms)} {a.text}" for a in sorted(alerts, key=lambda a: a.ts_ms)]
    if len(alerts) == 1:
        title = f"tradingd: {alerts[0].title}"
    else:
        kinds = Counter(a.kind for a in alerts)
        what = ", ".join(f"{n} {k}" for k, n in kinds.most_common())
        title = f"tradingd: {len(alerts)} events ({what})"
    if held:
        title += " while quiet"
    if repeat:
        title += REPEAT_NOTE
    return title, "\n".join(lines), worst


class TokenBucket:
    """``per_minute`` sends a minute, a burst of at most that many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity, self.rate, self.clock = float(per_minute), per_minute / 60.0, clock
        self.tokens, self.at = self.capacity, clock()

    def wait_s(self) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        self.tokens -= 1


def in_quiet(quiet: tuple[Any, Any] | None, tz: ZoneInfo, now: float) -> bool:
    if quiet is None:
        return False
    start, end = quiet
    t = datetime.fromtimestamp(now, tz).time()
    return bool(start <= t < end if start < end else (t >= start or t < end))


class Deliverer:
    """Runs one target: :meth:`run` until cancelled, or :meth:`step` once (tests)."""

    def __init__(
        self,
        cfg: NotifyConfig,
        target: Target,
        redis: Redis,
        sender: Sender,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.cfg, self.t, self.r, self.sender, self.wall = cfg, target, redis, sender, wall
        self.keys = Keys(cfg.redis.prefix, cfg.notify.group)
        self.bucket = TokenBucket(target.max_per_minute)
        self.quiet = parse_quiet(target.quiet_hours)
        self.tz = ZoneInfo(cfg.notify.timezone)
        self.sent = self.failed = 0
        self._tried: set[str] = set()  # batches this process has tried (a retry is not a repeat)

    async def run(self) -> None:
        """Deliver forever; a failing target or Redis is retried with backoff (tenacity)."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((DeliveryError, RedisError, OSError)),
            wait=wait_exponential(multiplier=self.t.retry_initial_s, max=self.t.retry_max_s)
            + wait_random(0, self.t.retry_initial_s),
            before_sleep=self._down,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                while True:
                    if not await self.step():
                        await anyio.sleep(0.2)

    def _backoff(self) -> Any:
        return wait_exponential(multiplier=self.t.retry_initial_s, max=self.t.retry_max_s) + wait_random(
            0, self.t.retry_initial_s
        )

    def _down(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("target %s: %s; retrying", self.t.name, exc, extra=_X)

    async def step(self) -> int:
        """Send what is due now (held summary, then the outbox); how many alerts went or were held."""
        quiet = in_quiet(self.quiet, self.tz, self.wall())
        n = 0
        if not quiet:
            n += await self._stream(self.keys.held(self.t.name), quiet=False, held=True)
        return n + await self._stream(self.keys.outbox(self.t.name), quiet=quiet, held=False)

    async def _stream(self, stream: str, *, quiet: bool, held: bool) -> int:
        cursor_key, inflight_key = self.keys.cursor(stream), self.keys.inflight(stream)
        raw: Any = await self.r.mget(cursor_key, inflight_key)
        cursor_raw, inflight_raw = raw
        cursor = cursor_raw.decode() if cursor_raw else "0-0"
        entries: Any = await self.r.xrange(stream, min=f"({cursor}", max="+", count=self.t.max_batch)
        if not entries:
            return 0
        first = entries[0][0].decode()
        inflight = inflight_raw.decode().split() if inflight_raw else []
        same = len(inflight) == 2 and inflight[0] == first
        repeat = same and inflight_raw.decode() not in self._tried  # on the wire when a process died
        if same:  # the very same batch again (the same idempotency key)
            entries = [e for e in entries if _id(e[0]) <= _id(inflight[1].encode())]
        elif not held and len(entries) < self.t.max_batch:
            age_s = time.time() - int(entries[0][0].split(b"-")[0]) / 1000
            if age_s < self.t.batch_window_s:  # collect a burst for up to batch_window_s
                await anyio.sleep(self.t.batch_window_s - age_s)
                return 0  # read again: more may have come
        last = entries[-1][0].decode()
        alerts = [ALERT_DECODER.decode(fields[b"a"]) for _, fields in entries]
        now = [not quiet or severity_at_least(a.severity, self.t.quiet_min_severity) for a in alerts]
        urgent = [a for a, go in zip(alerts, now, strict=True) if go]
        if urgent:
            await self._rate_limit()
            await self.r.set(inflight_key, f"{first} {last}")
            self._tried.add(f"{first} {last}")
            await self._send(urgent, key=f"{self.t.name}:{first}:{last}", repeat=repeat, held=held)
        async with self.r.pipeline(transaction=True) as pipe:
            for a, go in zip(alerts, now, strict=True):
                if not go:
                    pipe.xadd(
                        self.keys.held(self.t.name), {"a": ALERT_ENCODER.encode(a)}, maxlen=OUTBOX_MAXLEN
                    )
            pipe.set(cursor_key, last)
            pipe.delete(inflight_key)
            self._tried.clear()
            pipe.xtrim(stream, minid=last)
            await pipe.execute()
        return len(alerts)

    async def _rate_limit(self) -> None:
        wait = self.bucket.wait_s()
        while wait > 0:
            await anyio.sleep(wait)
            wait = self.bucket.wait_s()
        self.bucket.take()

    async def _send(self, alerts: Sequence[Alert], *, key: str, repeat: bool, held: bool) -> None:
        title, body, severity = compose(alerts, repeat=repeat, held=held)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((DeliveryError, OSError, TimeoutError)),
            stop=stop_after_attempt(self.t.retry_attempts),
            wait=wait_exponential(multiplier=self.t.retry_initial_s, max=self.t.retry_max_s)
            + wait_random(0, self.t.retry_initial_s),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await self.sender.send(title, body, severity, key)
        except (DeliveryError, OSError, TimeoutError) as exc:
            self.failed += 1
            await self.r.hincrby(self.keys.stats, f"failed:{self.t.name}", 1)
            raise DeliveryError(
                f"{len(alerts)} alerts not delivered after {self.t.retry_attempts} tries: {exc}"
            ) from exc
        self.sent += 1
        await self.r.hincrby(self.keys.stats, f"sent:{self.t.name}", 1)


def _id(raw: bytes) -> tuple[int, int]:
    ms, _, seq = raw.decode().partition("-")
    return int(ms), int(seq or 0)
