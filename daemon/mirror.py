"""The Redis stream mirror: every bus message, XADDed to ``{prefix}:{exchange}:{symbol}:{kind}``.

Takes messages through :meth:`RedisMirror.offer` (the router's tap: synchronous, O(1),
never blocks) and emits one stream entry per message with fields ``type`` (the message
tag) and ``data`` (msgpack, or JSON with ``encoding = "json"``), ``MAXLEN ~ maxlen``.
Entry ids are explicit, assigned at offer time: ``<ms>-<seq>``, strictly increasing per
stream.  Before a stream's first write on a connection its top id is read (XINFO STREAM)
and ids that never left the process are moved above it, so a restart is never refused.

:meth:`RedisMirror.run` runs a sender and a keeper.  The sender writes MULTI/EXEC
pipelines of up to ``batch_size`` entries (at least every ``flush_interval_ms``).  A
transaction runs whole or not at all, so per-stream order holds, and an entry whose
earlier attempt had an unknown outcome is recognised as delivered when Redis refuses its
id ("equal or smaller than the target stream top item": counted as a duplicate).  The
keeper runs :class:`daemon.spill.Backlog`: order-path messages beyond
``order_path_memory`` go to disk and come back, in order.

Market data and system messages are dropped (counted) when the queue is full, Redis is
down or refuses them.  Order-path messages (and the daemon's ServiceChanged news, kind
``event``) are never dropped: they wait through outages
and restarts; one refused ``max_attempts`` times is dead-lettered so it cannot wedge its
stream.  On cancellation the order path is written to the spill (shielded, bounded).

Metrics: tradingd_mirror_{published,dropped,spilled,duplicates,errors,dead_letters}_total,
tradingd_mirror_spill_damaged_total, tradingd_mirror_pending, tradingd_mirror_lag_seconds,
tradingd_redis_up.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from time import time_ns
from typing import Any, Literal

import anyio
import msgspec
from anyio.abc import TaskStatus
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actors.histogram import IO_BUCKETS
from actors.messages import KEPT_KINDS, STREAM_KIND, Message
from daemon.config import RedisSection
from daemon.metrics import Metrics, Sample
from daemon.redis_wire import RespConnection, pack_xadd, tls_context, xadd_prefix, xinfo_dict
from daemon.secrets import redis_password
from daemon.spill import Backlog, Entry, Id, StreamState, parse_id

log = logging.getLogger("tradingd.mirror")
_X = {"component": "mirror"}
_NO_ID: Id = (0, 0)

PUBLISHED = "tradingd_mirror_published_total"
DROPPED = "tradingd_mirror_dropped_total"
DUPLICATES = "tradingd_mirror_duplicates_total"
ERRORS = "tradingd_mirror_errors_total"
DEAD_LETTERS = "tradingd_mirror_dead_letters_total"
REDIS_UP = "tradingd_redis_up"
DELAY = "tradingd_mirror_delay_seconds"
_DELAY_HELP = "A message offered to the mirror to Redis having it (entry id time to the reply; ms resolution)"
# Labels known up front, so these counters exist at 0 from the start (the README says to watch them).
DROPPED_KINDS = tuple(sorted(set(STREAM_KIND.values()) - KEPT_KINDS))
DROP_REASONS = ("redis_down", "queue_full", "refused", "shutdown")
ERROR_LABELS = ("connection", "timeout", "tls", "oom", "config", "id_conflict", "response", "disk")
_HELP = {
    PUBLISHED: ("counter", "Stream entries written to Redis, by stream kind"),
    DROPPED: ("counter", "Market/system messages not mirrored, by kind and reason"),
    "tradingd_mirror_spilled_total": ("counter", "Order-path messages written to the disk spill"),
    DUPLICATES: ("counter", "Re-sent entries Redis already had (refused id), not written twice"),
    ERRORS: ("counter", "Redis or disk errors seen by the mirror, by error"),
    DEAD_LETTERS: ("counter", "Order-path messages Redis refused for good, kept in the dead-letter file"),
    "tradingd_mirror_spill_damaged_total": ("counter", "Spill segments with a torn or corrupt tail"),
    "tradingd_mirror_pending": ("gauge", "Messages not yet in Redis (queue + memory + spill)"),
    "tradingd_mirror_lag_seconds": ("gauge", "Age of the oldest message not yet in Redis"),
    REDIS_UP: ("gauge", "1 when the mirror's Redis connection works"),
}


DAEMON_EXCHANGE, DAEMON_SYMBOL = "daemon", "all"


def stream_key(prefix: str, msg: Message) -> str:
    """``{prefix}:{exchange}:{symbol}:{kind}``; a message of the whole daemon (exchange and
    symbol ``*``: config reloads, operator halts) goes to ``{prefix}:daemon:all:{kind}``, a key a
    consumer can type (no glob character in it)."""
    ex = DAEMON_EXCHANGE if msg.exchange == "*" else msg.exchange
    sym = DAEMON_SYMBOL if msg.symbol == "*" else msg.symbol
    return f"{prefix}:{ex}:{sym}:{STREAM_KIND[type(msg)]}"


class MirrorStats(msgspec.Struct, frozen=True):
    """For /status. ``spilled`` is on disk now; ``published`` and ``dropped`` are totals."""

    connected: bool
    pending: int
    spilled: int
    published: int
    dropped: int
    lag_s: float


def _is_dup(exc: BaseException) -> bool:
    return isinstance(exc, ResponseError) and "equal or smaller" in str(exc)


def _error_label(exc: BaseException) -> str:
    if isinstance(exc, OutOfMemoryError):
        return "oom"
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, RedisConnectionError | OSError):
        return "tls" if "TLS" in str(exc) else "connection"
    if isinstance(exc, ValueError):
        return "config"  # a URL redis cannot parse, a tls_* file that does not load
    if _is_dup(exc):
        return "id_conflict"
    word = str(exc).split(" ", 1)[0]
    return word.lower() if word.isalpha() and word.isupper() else "response"


def _top_id(info: object) -> Id:
    """``last-generated-id`` from XINFO STREAM; a missing (or hostile) key counts as empty."""
    top = info.get("last-generated-id") if isinstance(info, dict) else None
    return parse_id(top.decode()) if isinstance(top, bytes) else _NO_ID


class RedisMirror:
    """Mirrors the bus to Redis streams. ``offer`` is the router tap; ``run`` does the I/O."""

    def __init__(
        self,
        config: RedisSection,
        state_dir: Path,
        metrics: Metrics,
        *,
        max_attempts: int = 5,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self._cfg, self._metrics = config, metrics
        self._max_attempts, self._shutdown_timeout_s = max_attempts, shutdown_timeout_s
        self._op_timeout = 3 * config.connect_timeout_s + 1.0
        self._queue_size = config.queue_size
        self._disabled = not config.enabled
        enc = msgspec.json.Encoder() if config.encoding == "json" else msgspec.msgpack.Encoder()
        self._encode = enc.encode
        self._backlog = Backlog(state_dir, config.order_path_memory, self._encode, metrics)
        self._delay = metrics.histogram(DELAY, _DELAY_HELP, bounds=IO_BUCKETS)
        self._streams = self._backlog.streams
        self._op_new = self._backlog.new
        self._routes: dict[tuple[type[Message], str, str], StreamState] = {}
        self._mkt: deque[Entry] = deque()
        self._inflight: list[Entry] = []
        self._client: RespConnection | None = None
        self._xadd_heads: dict[str, bytes] = {}  # per stream key: packed "XADD key MAXLEN ~ n"
        self._type_bulks: dict[str, bytes] = {}  # per message tag: the packed value
        self._up: bool | None = None  # None: not tried yet (market data is queued meanwhile)
        self.outages = 0  # times Redis went away (daemon.service_watch tells each, however short)
        self.last_down_ns = 0  # wall clock, when it last went away
        self._down_since = 0.0
        self._published = self._dropped = self._rr = 0
        for name, (kind, text) in _HELP.items():
            metrics.describe(name, kind, text)
        metrics.set(REDIS_UP, 0)
        metrics.zero(DROPPED, ({"kind": k, "reason": r} for k in DROPPED_KINDS for r in DROP_REASONS))
        metrics.zero(ERRORS, ({"error": e} for e in ERROR_LABELS))
        metrics.zero(DEAD_LETTERS, ({"kind": k} for k in sorted(KEPT_KINDS)))
        metrics.zero("tradingd_mirror_spilled_total", [{}])
        metrics.add_collector(self._collect)

    # --- the tap --------------------------------------------------------------------------
    def offer(self, msg: Message) -> None:
        """Queue ``msg`` with its stream id. Never blocks or awaits; market data may be dropped."""
        if self._disabled:
            return
        st = self._routes.get((type(msg), msg.exchange, msg.symbol)) or self._route(msg)
        if st.order_path:
            queue = self._op_new
        else:
            queue = self._mkt
            if self._up is False or len(queue) >= self._queue_size:
                self._drop(st.kind, "redis_down" if self._up is False else "queue_full")
                return
        now = time_ns() // 1_000_000
        if now > st.ms:
            st.ms = now
            st.seq = 0
            queue.append(Entry(st, now, 0, msg))
        else:
            st.seq += 1
            queue.append(Entry(st, st.ms, st.seq, msg))

    def _route(self, msg: Message) -> StreamState:
        st = self._backlog.stream(stream_key(self._cfg.prefix, msg))
        self._routes[(type(msg), msg.exchange, msg.symbol)] = st
        return st

    def _drop(self, kind: str, reason: str, n: int = 1) -> None:
        self._dropped += n
        self._metrics.inc(DROPPED, {"kind": kind, "reason": reason}, n)

    # --- status ---------------------------------------------------------------------------
    @property
    def dropped(self) -> int:
        """Messages dropped so far (market data and system messages only)."""
        return self._dropped

    @property
    def redis_state(self) -> Literal["up", "down", "disabled"]:
        return "disabled" if self._disabled else "up" if self._up else "down"

    def pending(self) -> int:
        """Messages not yet in Redis: queued, in flight, held in memory and on disk."""
        return len(self._mkt) + len(self._inflight) + self._backlog.pending()

    def lag_s(self) -> float:
        """Age of the oldest message not yet in Redis (from its entry id's milliseconds)."""
        heads = [st.pending[0].ms for st in self._streams.values() if st.pending]
        heads += [q[0].ms for q in (self._mkt, self._op_new, self._inflight) if q]
        return max(0.0, time.time() - min(heads) / 1000) if heads else 0.0

    def statistics(self) -> MirrorStats:
        return MirrorStats(
            connected=self._up is True,
            pending=self.pending(),
            spilled=self._backlog.spill.count,
            published=self._published,
            dropped=self._dropped,
            lag_s=self.lag_s(),
        )

    def _collect(self) -> Iterator[Sample]:
        yield "tradingd_mirror_pending", (), float(self.pending())
        yield "tradingd_mirror_lag_seconds", (), self.lag_s()

    # --- tasks ----------------------------------------------------------------------------
    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Send, spill and reconnect until cancelled; then keep the order path on disk (shielded)."""
        if self._disabled:
            task_status.started()
            await anyio.sleep_forever()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._sender_loop)
                tg.start_soon(self._keeper_loop)
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True) as scope:
                scope.deadline = anyio.current_time() + self._shutdown_timeout_s
                await self._shutdown()

    async def _keeper_loop(self) -> None:
        while True:
            await anyio.sleep(self._cfg.flush_interval_ms / 1000)
            await self._backlog.keep()

    async def _sender_loop(self) -> None:
        interval = self._cfg.flush_interval_ms / 1000
        while True:
            if self._client is None:
                await self._connect()
            self._backlog.intake()
            if len(self._mkt) + len(self._op_new) + self._backlog.memory() < self._cfg.batch_size:
                await anyio.sleep(interval)
                self._backlog.intake()
            batch = self._take_batch()
            if batch:
                await self._send(batch)
            else:
                await anyio.sleep(interval)

    async def _connect(self) -> None:
        """Ping until Redis answers, every ``retry_interval_s``; each try is bounded.

        The TLS context (rediss://) is built for each try, so rotated certificate files are used
        on the next connection; a refused handshake or an unusable file is an outage like any other.
        """
        cfg = self._cfg
        while True:
            try:
                ctx = await anyio.to_thread.run_sync(tls_context, cfg)  # the system's CAs take ~25 ms
                self._client = await RespConnection.open(
                    cfg.url, self._op_timeout, ssl_context=ctx, password=redis_password(cfg.password_env)
                )
            # ValueError: a URL redis cannot parse, a tls_* file that does not load (TLSConfigError)
            except (RedisError, OSError, ValueError) as exc:
                self._count_error(exc)
                self._set_down(exc)
                await anyio.sleep(cfg.retry_interval_s)
                continue
            self._set_up()
            return

    async def _close(self, client: RespConnection) -> None:
        with anyio.move_on_after(1.0, shield=True):
            try:
                await client.aclose()
            except (RedisError, OSError) as exc:
                log.debug("closing the redis connection: %s", exc, extra=_X)

    def _set_down(self, exc: BaseException) -> None:
        if self._up is not False:
            url = re.sub(r"//[^@/]*@", "//***@", self._cfg.url)
            log.warning(
                "redis %s unreachable (%s): dropping market data, holding the order path", url, exc, extra=_X
            )
            self._up, self._down_since = False, time.monotonic()
            self.outages, self.last_down_ns = self.outages + 1, time_ns()
            self._metrics.set(REDIS_UP, 0)
        while self._mkt:
            self._drop(self._mkt.popleft().stream.kind, "redis_down")

    def _set_up(self) -> None:
        if self._up is False:
            down_s = time.monotonic() - self._down_since
            log.warning("redis is back after %.1fs; %d messages pending", down_s, self.pending(), extra=_X)
        self._up = True
        self._metrics.set(REDIS_UP, 1)
        for st in self._streams.values():
            st.floor = None

    # --- sending --------------------------------------------------------------------------
    def _take_batch(self) -> list[Entry]:
        """Order-path streams round-robin (skipping those backing off), then market data."""
        size, now = self._cfg.batch_size, time.monotonic()
        ready = [st for st in self._streams.values() if st.pending and st.blocked_until <= now]
        batch: list[Entry] = []
        if ready:
            self._rr = (self._rr + 1) % len(ready)
            ready = ready[self._rr :] + ready[: self._rr]
            share = max(1, max(size // 2, size - len(self._mkt)) // len(ready))
            for st in ready:
                batch.extend(st.pending.popleft() for _ in range(min(share, len(st.pending))))
        while len(batch) < size and self._mkt:
            batch.append(self._mkt.popleft())
        return batch

    async def _send(self, batch: list[Entry]) -> None:
        client = self._client
        assert client is not None
        self._inflight, sent = batch, False
        try:
            with anyio.fail_after(self._op_timeout):
                await self._prime(client, batch)
                sent = True  # from here on the ids may reach Redis: they never change again
                results = await self._execute(client, self._fix_ids(batch))
        except ResponseError as exc:  # the transaction was refused whole (OOM, EXECABORT)
            self._inflight = []
            self._count_error(exc)
            self._requeue(batch, maybe_sent=sent, market_reason="refused")
            await anyio.sleep(self._cfg.retry_interval_s)
            return
        except (RedisError, OSError) as exc:  # outcome unknown: all of it, or none, was written
            self._inflight, self._client = [], None
            self._count_error(exc)
            self._requeue(batch, maybe_sent=sent, market_reason="redis_down")
            await self._close(client)
            self._set_down(exc)
            return
        self._inflight = []
        self._settle(batch, results)

    async def _prime(self, client: RespConnection, batch: list[Entry]) -> None:
        """Read the top id of streams not written on this connection yet."""
        todo = list({id(e.stream): e.stream for e in batch if e.stream.floor is None}.values())
        if not todo:
            return
        replies = await client.pipeline([("XINFO", "STREAM", st.key) for st in todo])
        for st, info in zip(todo, replies, strict=True):
            st.floor = _top_id(xinfo_dict(info))
            st.raise_to(st.floor)

    def _fix_ids(self, batch: list[Entry]) -> list[Entry]:
        """Entries that never left the process and sit at or below their stream's top move above it.

        Ids within a stream's queue only grow, so a stream whose first entry in the batch is
        above the top needs no further look (the common case: one comparison per stream).
        """
        clean: set[int] = set()
        tops: dict[int, Id] = {}
        for e in batch:
            st = e.stream
            sid = id(st)
            if sid in clean:
                continue
            top = tops.get(sid, st.floor or _NO_ID)
            if (e.ms, e.seq) > top and sid not in tops:
                clean.add(sid)
                continue
            if not e.maybe_sent and (e.ms, e.seq) <= top:
                e.ms, e.seq = top[0], top[1] + 1
                st.raise_to((e.ms, e.seq))
            tops[sid] = max(top, (e.ms, e.seq))
        return batch

    async def _execute(self, client: RespConnection, batch: list[Entry]) -> list[Any]:
        encode, heads, types = self._encode, self._xadd_heads, self._type_bulks
        commands: list[bytes] = []
        for e in batch:
            data = e.encoded(encode)  # sets e.tname too
            key = e.stream.key
            head = heads.get(key)
            if head is None:
                head = heads[key] = xadd_prefix(key, self._cfg.maxlen)
            tname = types.get(e.tname)
            if tname is None:
                raw = e.tname.encode()
                tname = types[e.tname] = b"$%d\r\n%s\r\n" % (len(raw), raw)
            commands.append(pack_xadd(head, f"{e.ms}-{e.seq}", tname, data))
        return await client.transaction(commands)

    def _settle(self, batch: list[Entry], results: list[Any]) -> None:
        retry: list[Entry] = []
        published: dict[str, int] = {}
        last: dict[int, Entry] = {}  # per stream, the last entry Redis now has
        now_ms, observe = time.time() * 1000, self._delay.observe
        for e, res in zip(batch, results, strict=True):
            if not isinstance(res, Exception):
                kind = e.stream.kind
                published[kind] = published.get(kind, 0) + 1
                observe(max(0.0, now_ms - e.ms) / 1000)
            elif e.maybe_sent and _is_dup(res):
                self._metrics.inc(DUPLICATES)
            else:
                self._refused(e, res, retry)
                continue
            last[id(e.stream)] = e
            if e.segment is not None:
                self._backlog.settled(e)
        for e in last.values():
            self._delivered(e)
        for kind, n in published.items():
            self._published += n
            self._metrics.inc(PUBLISHED, {"kind": kind}, n)
        for e in reversed(retry):
            e.stream.pending.appendleft(e)

    def _delivered(self, e: Entry) -> None:
        """``e`` is the newest entry of its stream that Redis has: raise the stream's floor."""
        st = e.stream
        st.floor = max(st.floor or _NO_ID, (e.ms, e.seq))
        if st.error:
            log.warning("redis accepts writes to %s again", st.key, extra=_X)
            st.error = ""

    def _refused(self, e: Entry, exc: Exception, retry: list[Entry]) -> None:
        """Per-entry refusal: market data is dropped, the order path retried, then dead-lettered."""
        st, label = e.stream, self._count_error(exc)
        if st.error != label:
            log.error("redis refuses %s on %s: %s", e.tname, st.key, exc, extra=_X)
            st.error = label
        if _is_dup(exc):
            st.floor = None  # someone else writes here: read the top again, move fresh ids above it
        if not st.order_path:
            self._drop(st.kind, "refused")
            return
        e.attempts += 1
        if e.attempts < self._max_attempts:
            st.blocked_until = time.monotonic() + self._cfg.retry_interval_s
            retry.append(e)
            return
        rid = f"{e.ms}-{e.seq}"
        log.error("dead-lettering %s %s on %s after %d refusals", e.tname, rid, st.key, e.attempts, extra=_X)
        self._metrics.inc(DEAD_LETTERS, {"kind": st.kind})
        self._backlog.dead.append(e)

    def _count_error(self, exc: BaseException) -> str:
        label = _error_label(exc)
        self._metrics.inc(ERRORS, {"error": label})
        return label

    def _requeue(self, batch: Sequence[Entry], *, maybe_sent: bool, market_reason: str) -> None:
        """Order-path entries go back to the front of their streams, in order; market data is dropped."""
        for e in reversed(batch):
            if e.stream.order_path:
                e.maybe_sent = e.maybe_sent or maybe_sent
                e.stream.pending.appendleft(e)
            else:
                self._drop(e.stream.kind, market_reason)

    async def _shutdown(self) -> None:
        """Keep the whole order path on disk, oldest first; market data is dropped (counted)."""
        self._requeue(self._inflight, maybe_sent=True, market_reason="shutdown")
        self._inflight = []
        while self._mkt:
            self._drop(self._mkt.popleft().stream.kind, "shutdown")
        kept = await self._backlog.persist()
        if kept:
            log.info("kept %d order-path messages on disk for the next start", kept, extra=_X)
        if self._client is not None:
            client, self._client = self._client, None
            await self._close(client)
