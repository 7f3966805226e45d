"""A lean RESP connection for the mirror's hot path: one write, one parse per batch.

redis-py's asyncio pipeline packs every command in Python and reads every reply with
its own timeout, which held the mirror to ~20k entries/s.  This connection packs with
hiredis (C) and parses the replies of a whole batch with one ``hiredis.Reader``, so a
MULTI/XADD*N/EXEC batch costs one round trip and little Python.

It speaks only what the mirror needs (AUTH, SELECT, PING, XINFO, MULTI/EXEC/XADD) over
TCP, TLS (``rediss://``, with :func:`tls_context`'s verification and optional client
certificate) or a unix socket, and raises redis-py's exception types so callers handle
errors the same way: ``ConnectionError`` / ``TimeoutError`` when the outcome is unknown
(a refused TLS handshake is a ``ConnectionError``), ``ResponseError`` (``OutOfMemoryError``
for OOM) for a refusal.  Error replies inside a batch come back as exception instances in
the result list.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, cast

import anyio
import hiredis
from anyio.abc import ByteStream
from anyio.streams.tls import TLSStream
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from daemon.config_schema import RedisSection

Command = Sequence[str | bytes | int]

# hiredis' stub types pack_command's argument as a 1-tuple and redis-py's parse_url is untyped.
_pack = cast(Callable[[tuple[str | bytes | int, ...]], bytes], hiredis.pack_command)
_parse_url = cast(Callable[[str], dict[str, Any]], parse_url)


def _error(reply: Exception) -> ResponseError:
    text = str(reply)
    return OutOfMemoryError(text) if text.startswith("OOM") else ResponseError(text)


def xadd_prefix(key: str, maxlen: int) -> bytes:
    """The constant head of ``XADD key MAXLEN ~ maxlen <id> type <t> data <d>`` for one stream."""
    return _pack(("XADD", key, "MAXLEN", "~", maxlen))[4:]  # drop "*5\r\n"


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


TYPE_FIELD = _bulk(b"type")
DATA_FIELD = _bulk(b"data")


def pack_xadd(prefix: bytes, entry_id: str, type_name: bytes, data: bytes) -> bytes:
    """One XADD in RESP, from a cached per-stream prefix: cheaper than packing 10 arguments."""
    return b"".join(
        (
            b"*10\r\n",
            prefix,
            _bulk(entry_id.encode()),
            TYPE_FIELD,
            type_name,
            DATA_FIELD,
            b"$%d\r\n" % len(data),
            data,
            b"\r\n",
        )
    )


class TLSConfigError(ValueError):
    """A ``redis.tls_*`` setting that cannot be used: ``key`` names it, ``problem`` says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"redis.{key}: {problem}")
        self.key, self.problem = key, problem


def _no_passphrase() -> bytes:
    raise ValueError("the key is encrypted; tradingd cannot ask for a passphrase (store it unencrypted)")


@contextmanager
def _blame(key: str, expected: str, path: str) -> Iterator[None]:
    try:
        yield
    # ssl.SSLError is an OSError; ValueError: a NUL byte in the path, an encrypted key (_no_passphrase)
    except (OSError, ValueError) as exc:
        raise TLSConfigError(key, f"expected {expected}, got {path!r}: {exc}") from exc


def tls_context(cfg: RedisSection) -> ssl.SSLContext | None:
    """The client TLS context for a ``rediss://`` URL, built from the files as they are now; else None.

    The server's certificate must chain to ``tls_ca_file`` (the system's CAs when empty) and
    name the URL's host (an IP address must be in its subjectAltName); ``tls_cert_file`` and
    ``tls_key_file`` are presented when set (mutual TLS).  The files are read on every call,
    so a reconnect picks up rotated ones.  Raises :class:`TLSConfigError` naming the setting.
    """
    if not cfg.url.startswith("rediss://"):
        return None
    if bool(cfg.tls_cert_file) != bool(cfg.tls_key_file):
        have, need = "tls_cert_file", "tls_key_file"
        if not cfg.tls_cert_file:
            have, need = need, have
        raise TLSConfigError(have, f"expected {need} as well (mutual TLS needs both), got none")
    with _blame("tls_ca_file", "a PEM file of CA certificates", cfg.tls_ca_file):
        ctx = ssl.create_default_context(cafile=cfg.tls_ca_file or None)
    if cfg.tls_cert_file:
        with _blame("tls_cert_file", "a PEM client certificate", cfg.tls_cert_file):
            # load_cert_chain's errors do not say which file is wrong: try the certificate alone first.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=cfg.tls_cert_file)
        with _blame("tls_key_file", "the unencrypted PEM key of tls_cert_file", cfg.tls_key_file):
            ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file, password=_no_passphrase)
    return ctx


async def _start_tls(stream: ByteStream, host: str, ctx: ssl.SSLContext) -> TLSStream:
    """The client side of a TLS handshake on ``stream``; closes it when the handshake fails."""
    try:
        # standard_compatible=False: no close_notify exchange on close (Redis may not answer one).
        return await TLSStream.wrap(
            stream, server_side=False, hostname=host, ssl_context=ctx, standard_compatible=False
        )
    except BaseException:
        await anyio.aclose_forcefully(stream)
        raise


def _setup_failure(exc: RedisConnectionError, tls: bool) -> str:
    """What a connection lost before the first replies most likely means, for the operator."""
    cause = exc.__cause__
    if isinstance(cause, ssl.SSLError):  # TLS 1.3: the server's verdict on our certificate comes late
        return f"TLS handshake failed: {cause}"
    if not isinstance(cause, anyio.BrokenResourceError | anyio.EndOfStream | OSError):
        return str(exc)
    why = repr(cause.__cause__ or cause)
    if tls:
        return f"the server closed the TLS connection before answering ({why}); does it want a client cert?"
    return f"the server closed the connection before answering ({why}); is it a TLS port (rediss://)?"


class RespConnection:
    """One connection to Redis. Not for concurrent use: the mirror's sender owns it."""

    def __init__(self, stream: ByteStream, timeout_s: float) -> None:
        self._stream = stream
        self._timeout = timeout_s
        self._reader = hiredis.Reader(notEnoughData=False)

    @classmethod
    async def open(
        cls,
        url: str,
        timeout_s: float,
        ssl_context: ssl.SSLContext | None = None,
        password: str | None = None,
    ) -> RespConnection:
        """Connect, AUTH and SELECT as the URL says: redis://, rediss:// (TLS) or unix://.

        ``password`` (from a credential or the environment, see :mod:`daemon.secrets`) is used
        when the URL carries none.

        rediss:// verifies the server with ``ssl_context`` (see :func:`tls_context`; None: the
        system's CAs) against the URL's host name.  A failed handshake raises ConnectionError
        naming TLS; the connection (and handshake) takes at most ``timeout_s``, as does the setup.
        """
        opts = _parse_url(url)
        tls = url.startswith("rediss://")
        where = opts.get("host", opts.get("path"))
        handshake = False
        try:
            with anyio.fail_after(timeout_s):
                if "path" in opts:
                    stream: ByteStream = await anyio.connect_unix(opts["path"])
                else:
                    host = opts.get("host", "127.0.0.1")
                    stream = await anyio.connect_tcp(host, int(opts.get("port", 6379)))
                    if tls:
                        handshake = True
                        stream = await _start_tls(stream, host, ssl_context or ssl.create_default_context())
        except TimeoutError as exc:
            what = "TLS handshake timed out (is it a TLS port?)" if handshake else "timed out"
            raise RedisTimeoutError(f"connecting to {where}: {what}") from exc
        except ssl.SSLError as exc:
            raise RedisConnectionError(f"connecting to {where}: TLS handshake failed: {exc}") from exc
        except (anyio.BrokenResourceError, anyio.EndOfStream) as exc:  # only the TLS handshake raises these
            raise RedisConnectionError(
                f"connecting to {where}: TLS handshake failed: the server closed the connection "
                f"({exc.__cause__ or exc!r})"
            ) from exc
        except OSError as exc:
            raise RedisConnectionError(f"connecting to {where}: {exc}") from exc
        conn = cls(stream, timeout_s)
        setup: list[Command] = []
        secret = opts.get("password") or password
        if secret:
            user = opts.get("username")
            setup.append(("AUTH", user, secret) if user else ("AUTH", secret))
        if int(opts.get("db", 0)):
            setup.append(("SELECT", int(opts["db"])))
        setup.append(("PING",))
        try:
            for reply in await conn.pipeline(setup):
                if isinstance(reply, ResponseError):
                    raise reply
        except RedisConnectionError as exc:
            await conn.aclose()
            raise RedisConnectionError(f"connecting to {where}: {_setup_failure(exc, tls)}") from exc
        except BaseException:
            await conn.aclose()
            raise
        return conn

    async def aclose(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._stream.aclose()

    async def pipeline(self, commands: Sequence[Command | bytes]) -> list[Any]:
        """Send all commands in one write and return one reply per command (errors as instances).

        A command is an argument tuple, or bytes already in RESP (see :func:`pack_xadd`).
        """
        payload = b"".join(c if isinstance(c, bytes) else _pack(tuple(c)) for c in commands)
        try:
            with anyio.fail_after(self._timeout):
                await self._stream.send(payload)
                return await self._replies(len(commands))
        except TimeoutError as exc:
            raise RedisTimeoutError("redis did not answer in time") from exc
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream) as exc:
            raise RedisConnectionError(f"redis connection lost: {exc!r}") from exc
        except hiredis.ProtocolError as exc:  # not Redis at the other end; the reader is unusable now
            raise RedisConnectionError(f"redis protocol error: {exc}") from exc

    async def _replies(self, n: int) -> list[Any]:
        out: list[Any] = []
        reader = self._reader
        while len(out) < n:
            reply = reader.gets()
            if reply is False:
                reader.feed(await self._stream.receive(1 << 16))
                continue
            out.append(_error(reply) if isinstance(reply, hiredis.ReplyError) else reply)
        return out

    async def transaction(self, commands: Sequence[Command | bytes]) -> list[Any]:
        """MULTI, the commands, EXEC: all run or none. Per-command errors come back as instances.

        Raises ResponseError when Redis refuses the transaction as a whole (EXECABORT, OOM).
        """
        replies = await self.pipeline([("MULTI",), *commands, ("EXEC",)])
        if isinstance(replies[0], ResponseError):
            # Without MULTI the commands ran one by one: what was applied is unknown to us.
            raise RedisConnectionError(
                f"MULTI refused ({replies[0]}); commands may have run outside a transaction"
            )
        result = replies[-1]
        if isinstance(result, ResponseError):
            queued = [r for r in replies[1:-1] if isinstance(r, ResponseError)]
            raise queued[0] if queued else result
        if not isinstance(result, list):
            raise ResponseError(f"unexpected EXEC reply {result!r}")
        return [_error(r) if isinstance(r, hiredis.ReplyError) else r for r in result]


def xinfo_dict(reply: Any) -> dict[str, Any]:
    """XINFO STREAM's flat key/value reply (RESP2) as a dict with str keys; {} for an error reply."""
    if not isinstance(reply, list):
        return {}
    return {
        k.decode() if isinstance(k, bytes) else str(k): v
        for k, v in zip(reply[::2], reply[1::2], strict=False)
    }
