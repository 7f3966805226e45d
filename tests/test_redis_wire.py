"""daemon/redis_wire.py against real Redis: the shared server on 127.0.0.1:6379, private servers
(tests/redis_server.py and a password-protected one started here) and tiny fake TCP servers for
the faults Redis itself cannot produce on demand.  Always the real server."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import anyio
import hiredis
import pytest
import redis
from anyio.abc import SocketAttribute, SocketStream
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from daemon.redis_wire import RespConnection, pack_xadd, xadd_prefix, xinfo_dict
from tests.redis_server import REDIS_SERVER, RedisServer, free_port

HOST = "127.0.0.1"
MAIN_PORT = 6379
MAIN_URL = f"redis://{HOST}:{MAIN_PORT}/0"
LIMIT = 5.0  # the bound of every async test
OP_TIMEOUT = 2.0  # RespConnection's timeout where the test is not about timeouts
PASSWORD = "s3cret"
ACL_USER, ACL_PASSWORD, ACL_PASSWORD_URL = "mirror", "p@ss:w/rd", "p%40ss%3Aw%2Frd"


# --- helpers -------------------------------------------------------------------------------------
def bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def main_db(db: int) -> redis.Redis:
    return redis.Redis(host=HOST, port=MAIN_PORT, db=db, socket_timeout=2.0)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A unique key prefix on the shared Redis; its keys (db 0 and db 3) are deleted afterwards."""
    pfx = f"tradingd-test:wire:{uuid4().hex}:"
    yield pfx
    for db in (0, 3):
        with main_db(db) as r:
            keys = list(r.scan_iter(match=f"{pfx}*", count=1000))
            if keys:
                r.delete(*keys)


@asynccontextmanager
async def connected(url: str, timeout_s: float = OP_TIMEOUT) -> AsyncIterator[RespConnection]:
    conn = await RespConnection.open(url, timeout_s)
    try:
        yield conn
    finally:
        await conn.aclose()


@asynccontextmanager
async def fake_server(handler: Callable[[SocketStream], Awaitable[None]]) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 running ``handler`` per connection; yields its port."""
    listener = await anyio.create_tcp_listener(local_host=HOST)
    port = int(listener.extra(SocketAttribute.local_port))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, handler)
            try:
                yield port
            finally:
                tg.cancel_scope.cancel()
    finally:
        await listener.aclose()


async def _drain(stream: SocketStream) -> None:
    with contextlib.suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        while True:
            await stream.receive()


async def silent(stream: SocketStream) -> None:
    """Accepts, reads everything, never answers."""
    async with stream:
        await _drain(stream)


async def half_reply(stream: SocketStream) -> None:
    """Reads a request, sends the first part of a reply, closes the connection."""
    async with stream:
        await stream.receive()
        await stream.send(b"*2\r\n$3\r\nfoo\r\n$10\r\nbar")


async def not_redis(stream: SocketStream) -> None:
    """Answers like a web server (a URL pointing at the wrong port)."""
    async with stream:
        await stream.receive()
        await stream.send(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await _drain(stream)


async def raw_connection(port: int, timeout_s: float) -> RespConnection:
    """A RespConnection on a bare socket (no AUTH/SELECT/PING), for servers that never answer."""
    return RespConnection(await anyio.connect_tcp(HOST, port), timeout_s)


# --- pack_xadd -----------------------------------------------------------------------------------
PACK_CASES = [
    ("tradingd:paper:BTC/USDT:trade", 10_000, "1700000000000-0", b"Trade", b"\x85\xa5price\xa5100.5"),
    ("tradingd:bybit:ÄÖÜ/€:book", 1, "1-1", b"BookDelta", b""),
    ("日本語:キー/1", 1_000_000, "18446744073709551615-18446744073709551615", b"OrderFilled", b"x"),
    ("k", 0, "0-1", b"Heartbeat", bytes(range(256))),
    ("spaces and\r\nnewlines:/", 123, "5-7", b"Signal", b"*3\r\n$3\r\nSET\r\n"),
]


@pytest.mark.parametrize(("key", "maxlen", "entry_id", "tname", "data"), PACK_CASES)
def test_pack_xadd_is_byte_identical_to_hiredis_pack_command(
    key: str, maxlen: int, entry_id: str, tname: bytes, data: bytes
) -> None:
    ours = pack_xadd(xadd_prefix(key, maxlen), entry_id, bulk(tname), data)
    args: Any = ("XADD", key, "MAXLEN", "~", maxlen, entry_id, "type", tname, "data", data)
    theirs = hiredis.pack_command(args)  # its stub types the argument as a 1-tuple
    assert ours == theirs


@pytest.mark.anyio
async def test_packed_xadds_land_with_explicit_ids_and_fields(prefix: str) -> None:
    cases = [(f"{prefix}{key}", entry_id, tname, data) for key, _, entry_id, tname, data in PACK_CASES]
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            packed = [pack_xadd(xadd_prefix(k, 1000), i, bulk(t), d) for k, i, t, d in cases]
            # the mirror's way (bytes inside a transaction) and the plain pipeline both work
            assert await conn.transaction(packed[:2]) == [c[1].encode() for c in cases[:2]]
            assert await conn.pipeline(packed[2:]) == [c[1].encode() for c in cases[2:]]
    with main_db(0) as r:
        for key, entry_id, tname, data in cases:
            assert r.xrange(key) == [(entry_id.encode(), {b"type": tname, b"data": data})]


# --- open, SELECT, pipeline ------------------------------------------------------------------------
@pytest.mark.anyio
async def test_open_selects_the_db_in_the_url(prefix: str) -> None:
    key = f"{prefix}db"
    with anyio.fail_after(LIMIT):
        async with connected(f"redis://{HOST}:{MAIN_PORT}/3") as conn:
            assert await conn.pipeline([("PING",), ("SET", key, "in-3"), ("GET", key)]) == [
                b"PONG",
                b"OK",
                b"in-3",
            ]
        async with connected(f"redis://{HOST}:{MAIN_PORT}") as conn:  # no db: db 0, nothing selected
            assert await conn.pipeline([("EXISTS", key)]) == [0]
    with main_db(3) as r3, main_db(0) as r0, main_db(2) as r2:
        assert r3.get(key) == b"in-3"
        assert r0.exists(key) == 0
        assert r2.exists(key) == 0


@pytest.mark.anyio
async def test_pipeline_returns_one_reply_per_command_in_order(prefix: str) -> None:
    key = f"{prefix}counter"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            replies = await conn.pipeline(
                [
                    ("SET", key, 1),
                    ("INCR", key),
                    ("INCRBY", key, 5),
                    ("GET", key),
                    ("ECHO", "héllo"),
                    ("PING",),
                    ("DEL", key),
                    ("EXISTS", key),
                ]
            )
            assert replies == [b"OK", 2, 7, b"7", "héllo".encode(), b"PONG", 1, 0]
            assert await conn.pipeline([]) == []


@pytest.mark.anyio
async def test_pipeline_replies_spanning_many_reads(prefix: str) -> None:
    """Replies larger than one 64 KiB read, and thousands of them in one batch."""
    key = f"{prefix}big"
    value = bytes(range(256)) * 1200  # 300 KiB
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            commands: list[Any] = [("SET", key, value), ("GET", key)]
            commands += [("ECHO", str(i)) for i in range(3000)]
            replies = await conn.pipeline(commands)
            assert replies[:2] == [b"OK", value]
            assert replies[2:] == [str(i).encode() for i in range(3000)]
            assert await conn.pipeline([("STRLEN", key)]) == [len(value)]


@pytest.mark.anyio
async def test_error_reply_in_pipeline_is_an_instance_and_the_connection_goes_on(prefix: str) -> None:
    key = f"{prefix}text"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            replies = await conn.pipeline([("SET", key, "abc"), ("INCR", key), ("NOSUCHCMD",), ("PING",)])
            assert replies[0] == b"OK"
            assert type(replies[1]) is ResponseError
            assert "not an integer" in str(replies[1])
            assert type(replies[2]) is ResponseError
            assert "unknown command" in str(replies[2])
            assert replies[3] == b"PONG"
            assert await conn.pipeline([("GET", key)]) == [b"abc"]


@pytest.mark.anyio
async def test_wrongtype_maps_to_response_error(prefix: str) -> None:
    key = f"{prefix}plain"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            ok, err = await conn.pipeline([("SET", key, "v"), ("XADD", key, "*", "a", "b")])
            assert ok == b"OK"
            assert isinstance(err, ResponseError)
            assert not isinstance(err, OutOfMemoryError)
            assert str(err).startswith("WRONGTYPE")
            [in_tx] = await conn.transaction([("XADD", key, "*", "a", "b")])
            assert isinstance(in_tx, ResponseError)
            assert str(in_tx).startswith("WRONGTYPE")


@pytest.mark.anyio
async def test_oom_maps_to_out_of_memory_error(tmp_path: Path) -> None:
    with (
        RedisServer(tmp_path) as server,
        redis.Redis(host=HOST, port=server.port, socket_timeout=2.0) as admin,
    ):
        admin.config_set("maxmemory", 1)
        with anyio.fail_after(LIMIT):
            async with connected(server.url) as conn:
                set_reply, xadd_reply, ping = await conn.pipeline(
                    [("SET", "k", "v"), ("XADD", "s", "1-0", "type", "T", "data", b"x"), ("PING",)]
                )
                assert isinstance(set_reply, OutOfMemoryError)
                assert isinstance(xadd_reply, OutOfMemoryError)
                assert str(xadd_reply).startswith("OOM")
                assert ping == b"PONG"
                packed = pack_xadd(xadd_prefix("s", 100), "2-0", bulk(b"T"), b"y")
                with pytest.raises(OutOfMemoryError):
                    await conn.transaction([packed, ("SET", "k2", "v")])
                assert await conn.pipeline([("PING",)]) == [b"PONG"]
        assert admin.exists("k", "s", "k2") == 0


# --- transaction ---------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_transaction_returns_every_result_in_order(prefix: str) -> None:
    key, stream = f"{prefix}n", f"{prefix}s"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            results = await conn.transaction(
                [
                    ("SET", key, 10),
                    ("INCR", key),
                    ("XADD", stream, "3-1", "type", "T", "data", b""),
                    pack_xadd(xadd_prefix(stream, 10), "3-2", bulk(b"T"), b"\x00"),
                    ("GET", key),
                    ("XLEN", stream),
                ]
            )
            assert results == [b"OK", 11, b"3-1", b"3-2", b"11", 2]
            assert await conn.transaction([]) == []


@pytest.mark.anyio
async def test_transaction_runtime_error_is_an_instance_and_the_rest_applies(prefix: str) -> None:
    stream = f"{prefix}s"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            assert await conn.pipeline([("XADD", stream, "5-0", "type", "T", "data", b"a")]) == [b"5-0"]
            head = xadd_prefix(stream, 100)
            results = await conn.transaction(
                [
                    pack_xadd(head, "6-0", bulk(b"T"), b"b"),
                    pack_xadd(head, "3-0", bulk(b"T"), b"stale"),  # below the top: refused
                    pack_xadd(head, "7-0", bulk(b"T"), b"c"),
                ]
            )
            assert results[0] == b"6-0"
            assert type(results[1]) is ResponseError
            assert "equal or smaller" in str(results[1])  # what the mirror's duplicate check looks for
            assert results[2] == b"7-0"
    with main_db(0) as r:
        assert [entry_id for entry_id, _ in r.xrange(stream)] == [b"5-0", b"6-0", b"7-0"]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("bad", "message"),
    [(("XADD",), "wrong number of arguments"), (("NOSUCHCMD", "x"), "unknown command")],
)
async def test_transaction_refused_whole_raises_and_applies_nothing(
    prefix: str, bad: tuple[str, ...], message: str
) -> None:
    first, stream = f"{prefix}first", f"{prefix}s"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            with pytest.raises(ResponseError, match=message) as excinfo:
                await conn.transaction(
                    [
                        ("SET", first, "a"),
                        (bad[0], stream, *bad[1:]) if bad[0] == "XADD" else bad,
                        pack_xadd(xadd_prefix(stream, 10), "1-1", bulk(b"T"), b"z"),
                    ]
                )
            assert not isinstance(excinfo.value, OutOfMemoryError)
            # the mirror keeps the connection after a refusal: it must be in step
            assert await conn.pipeline([("PING",), ("EXISTS", first, stream)]) == [b"PONG", 0]
    with main_db(0) as r:
        assert r.exists(first, stream) == 0


# --- AUTH ----------------------------------------------------------------------------------------
@dataclass
class AuthServer:
    port: int
    socket: str
    admin: redis.Redis

    def url(self, userinfo: str, db: int = 0) -> str:
        return f"redis://{userinfo}@{HOST}:{self.port}/{db}"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[AuthServer]:
    """A private redis-server with ``requirepass``, a unix socket and an ACL user; killed at the end."""
    with tempfile.TemporaryDirectory(prefix="rw-", dir="/tmp") as d:
        port, sock = free_port(), f"{d}/redis.sock"
        args = [REDIS_SERVER, "--port", str(port), "--bind", HOST, "--requirepass", PASSWORD]
        args += ["--save", "", "--appendonly", "no", "--dir", d, "--daemonize", "no"]
        args += ["--unixsocket", sock, "--unixsocketperm", "700"]
        with (Path(d) / "redis.log").open("ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        admin = redis.Redis(host=HOST, port=port, password=PASSWORD, socket_timeout=2.0)
        try:
            deadline = time.monotonic() + 10.0
            while True:
                try:
                    admin.ping()
                    break
                except RedisConnectionError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server with requirepass did not start; see {d}") from None
                    time.sleep(0.02)
            admin.acl_setuser(
                ACL_USER, enabled=True, passwords=[f"+{ACL_PASSWORD}"], keys=["*"], commands=["+@all"]
            )
            admin.acl_setuser(
                "nomulti", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-multi"]
            )
            yield AuthServer(port, sock, admin)
        finally:
            admin.close()
            proc.kill()
            proc.wait(timeout=5.0)


async def wait_clients(admin: redis.Redis, n: int) -> int:
    """Polls CLIENT LIST (admin included) until ``n`` clients remain, for at most 2 s."""
    deadline = anyio.current_time() + 2.0
    while (count := len(admin.client_list())) != n and anyio.current_time() < deadline:
        await anyio.sleep(0.02)
    return count


@pytest.mark.anyio
async def test_auth_with_password_connects_and_selects(auth_server: AuthServer) -> None:
    with anyio.fail_after(LIMIT):
        async with connected(auth_server.url(f":{PASSWORD}", db=2)) as conn:
            assert await conn.pipeline([("PING",), ("SET", "wire:auth", "yes")]) == [b"PONG", b"OK"]
    with redis.Redis(host=HOST, port=auth_server.port, password=PASSWORD, db=2, socket_timeout=2.0) as r2:
        assert r2.get("wire:auth") == b"yes"
    assert auth_server.admin.exists("wire:auth") == 0


@pytest.mark.anyio
@pytest.mark.parametrize(
    "userinfo", [":wrong", f"{ACL_USER}:wrong", "nobody:x", ""], ids=["password", "acl", "user", "none"]
)
async def test_auth_refused_raises_response_error_and_closes(auth_server: AuthServer, userinfo: str) -> None:
    url = auth_server.url(userinfo) if userinfo else f"redis://{HOST}:{auth_server.port}/0"
    alone = await wait_clients(auth_server.admin, 1)
    assert alone == 1
    with anyio.fail_after(LIMIT):
        with pytest.raises(ResponseError) as excinfo:
            await RespConnection.open(url, OP_TIMEOUT)
        assert "WRONGPASS" in str(excinfo.value) or "NOAUTH" in str(excinfo.value)
        # excinfo (and with it the failed connection's frames) is still alive: only aclose closed it
        assert await wait_clients(auth_server.admin, 1) == 1


@pytest.mark.anyio
async def test_auth_with_acl_user_and_escaped_password(auth_server: AuthServer) -> None:
    with anyio.fail_after(LIMIT):
        async with connected(auth_server.url(f"{ACL_USER}:{ACL_PASSWORD_URL}")) as conn:
            assert await conn.pipeline([("ACL", "WHOAMI"), ("PING",)]) == [ACL_USER.encode(), b"PONG"]


@pytest.mark.anyio
async def test_unix_socket_with_password_and_db(auth_server: AuthServer) -> None:
    with anyio.fail_after(LIMIT):
        async with connected(f"unix://:{PASSWORD}@{auth_server.socket}?db=1") as conn:
            assert await conn.pipeline([("SET", "wire:unix", "1"), ("PING",)]) == [b"OK", b"PONG"]
    with redis.Redis(host=HOST, port=auth_server.port, password=PASSWORD, db=1, socket_timeout=2.0) as r1:
        assert r1.get("wire:unix") == b"1"


@pytest.mark.anyio
async def test_transaction_whose_multi_is_refused_does_not_claim_nothing_applied(
    auth_server: AuthServer,
) -> None:
    """A ResponseError from transaction() promises "refused as a whole, nothing applied"; the mirror
    relies on that.  But MULTI, the commands and EXEC go out in one write: when Redis refuses MULTI
    itself but not the commands (an ACL user without +multi: NOPERM) the commands run one by one,
    *outside* a transaction, and then EXEC fails ("EXEC without MULTI").
    transaction() turns that EXEC error into a ResponseError although the XADDs were applied, and
    the mirror, taking it for a refusal, keeps the connection and retries the same batch forever
    (every retry sees the same refusal; entries that did land are never settled).

    Fix: in transaction(), when ``replies[0]`` (MULTI's reply) is an error, raise an outcome-unknown
    error instead (e.g. ``RedisConnectionError(f"MULTI refused: {replies[0]}; commands may have run
    outside a transaction")``), so the caller drops the connection and treats the batch as maybe
    sent -- never a ResponseError, which means nothing was applied.
    """
    key = f"wire:nomulti:{uuid4().hex}"
    with anyio.fail_after(LIMIT):
        async with connected(auth_server.url("nomulti:pw")) as conn:
            try:
                await conn.transaction([("SET", key, "applied")])
            except ResponseError:
                assert auth_server.admin.exists(key) == 0, "ResponseError, yet the command was applied"
            except RedisError:
                pass  # outcome unknown: an honest answer


# --- faults --------------------------------------------------------------------------------------
@pytest.mark.anyio
async def test_closed_port_raises_connection_error_quickly() -> None:
    port = free_port()
    with anyio.fail_after(LIMIT):
        start = anyio.current_time()
        with pytest.raises(RedisConnectionError, match=HOST):
            await RespConnection.open(f"redis://{HOST}:{port}/0", OP_TIMEOUT)
        assert anyio.current_time() - start < 1.0


@pytest.mark.anyio
async def test_server_that_never_answers_times_out() -> None:
    timeout = 0.3
    with anyio.fail_after(LIMIT):
        async with fake_server(silent) as port:
            conn = await raw_connection(port, timeout)
            try:
                start = anyio.current_time()
                with pytest.raises(RedisTimeoutError):
                    await conn.pipeline([("PING",)])
                assert timeout * 0.9 <= anyio.current_time() - start < timeout + 1.0
            finally:
                await conn.aclose()
            start = anyio.current_time()
            with pytest.raises(RedisTimeoutError):  # open()'s PING times out the same way
                await RespConnection.open(f"redis://{HOST}:{port}/0", timeout)
            assert anyio.current_time() - start < timeout + 1.0


@pytest.mark.anyio
async def test_server_closing_mid_reply_raises_connection_error() -> None:
    with anyio.fail_after(LIMIT):
        async with fake_server(half_reply) as port:
            conn = await raw_connection(port, OP_TIMEOUT)
            try:
                with pytest.raises(RedisConnectionError):
                    await conn.pipeline([("LRANGE", "l", 0, -1)])
            finally:
                await conn.aclose()
            with pytest.raises(RedisConnectionError):
                await RespConnection.open(f"redis://{HOST}:{port}/0", OP_TIMEOUT)


@pytest.mark.anyio
async def test_non_redis_server_raises_a_redis_connection_error() -> None:
    """A URL pointing at a port that is not Redis (here: an HTTP answer) makes hiredis' Reader raise
    ``hiredis.ProtocolError`` in ``_replies``; pipeline() lets it through (it catches only timeouts
    and OSError/anyio stream errors), so open() raises it as is.  The mirror's ``_connect`` and
    ``_send`` catch ``(RedisError, OSError)`` only: the ProtocolError kills the sender loop (and
    the mirror's task group) instead of marking Redis down and retrying.  The Reader is also
    poisoned for good after a protocol error.

    Fix: in pipeline(), also catch ``hiredis.ProtocolError`` and raise
    ``RedisConnectionError(f"redis protocol error: {exc}")`` from it (the connection must be
    dropped, as for any outcome-unknown error).
    """
    with anyio.fail_after(LIMIT):
        async with fake_server(not_redis) as port:
            with pytest.raises(RedisConnectionError):
                await RespConnection.open(f"redis://{HOST}:{port}/0", OP_TIMEOUT)


@pytest.mark.anyio
async def test_rediss_against_a_plain_port_times_out_naming_tls() -> None:
    with anyio.fail_after(LIMIT), pytest.raises(RedisTimeoutError, match="TLS"):
        await RespConnection.open(f"rediss://{HOST}:{MAIN_PORT}/0", 0.5)


@pytest.mark.anyio
async def test_xinfo_dict_on_real_replies(prefix: str) -> None:
    stream, missing = f"{prefix}s", f"{prefix}missing"
    with anyio.fail_after(LIMIT):
        async with connected(MAIN_URL) as conn:
            await conn.pipeline([("XADD", stream, "7-3", "type", "T", "data", b"x")])
            info, error = await conn.pipeline([("XINFO", "STREAM", stream), ("XINFO", "STREAM", missing)])
    as_dict = xinfo_dict(info)
    assert as_dict["last-generated-id"] == b"7-3"
    assert as_dict["length"] == 1
    assert all(isinstance(k, str) for k in as_dict)
    assert isinstance(error, ResponseError)
    assert xinfo_dict(error) == {}
    assert xinfo_dict(None) == {}


@pytest.mark.anyio
async def test_killed_redis_raises_connection_error_then_recovers(tmp_path: Path) -> None:
    with RedisServer(tmp_path) as server:
        with anyio.fail_after(LIMIT):
            conn = await RespConnection.open(server.url, OP_TIMEOUT)
            try:
                assert await conn.pipeline([("PING",)]) == [b"PONG"]
                server.stop()
                start = anyio.current_time()
                with pytest.raises(RedisConnectionError):
                    await conn.pipeline([("PING",)])
                with pytest.raises(RedisConnectionError):  # and again: still no hang
                    await conn.transaction([("SET", "k", "v")])
                assert anyio.current_time() - start < 1.0
            finally:
                await conn.aclose()
            with pytest.raises(RedisConnectionError):
                await RespConnection.open(server.url, OP_TIMEOUT)
            server.start()
            async with connected(server.url) as fresh:
                assert await fresh.pipeline([("PING",)]) == [b"PONG"]


@pytest.mark.anyio
async def test_paused_redis_times_out(tmp_path: Path) -> None:
    timeout = 0.3
    with RedisServer(tmp_path) as server, anyio.fail_after(LIMIT):
        conn = await RespConnection.open(server.url, timeout)
        try:
            server.pause()
            try:
                with pytest.raises(RedisTimeoutError):
                    await conn.pipeline([("PING",)])
            finally:
                server.resume()
        finally:
            await conn.aclose()
