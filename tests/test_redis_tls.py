"""The Redis mirror over TLS (``rediss://``) against real redis-server processes on 127.0.0.1 that
serve TLS only: server verification, mutual TLS, refused handshakes as outages, and the config
checks of the ``redis.tls_*`` keys.  The CAs and certificates are made per test with
``cryptography`` (no network, no files shipped).  Every wait is bounded."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from actors.messages import Message
from daemon.config import ConfigError, RedisSection, parse_config
from daemon.metrics import Metrics
from daemon.mirror import DROPPED, ERRORS, PUBLISHED, REDIS_UP, RedisMirror
from daemon.redis_wire import RespConnection, tls_context
from tests.redis_server import RedisServer, ServerTLS, free_port
from tests.test_config import MIN, mutate
from tests.test_mirror import by_key, config, fill, running, stream, trade, wait_until

pytestmark = pytest.mark.anyio

HOST = "127.0.0.1"
LIMIT = 15.0  # the bound of every async test
PASSWORD = "tls-mirror-pw-7d41c9"  # unique: the log redactor must not hide other tests' text
SERVER_SANS: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]


# --- certificates --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None) -> None:
    crypt = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, crypt))


class CertAuthority:
    """A throwaway CA in ``directory`` (``ca.pem``) that issues server and client certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.key = directory, ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = directory / "ca.pem"
        self.pem.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    def issue(self, name: str, *, sans: Sequence[x509.GeneralName], server: bool) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = (
            self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(self.directory / f"{name}.pem", self.directory / f"{name}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(issued.key, key)
        return issued


@dataclass(frozen=True)
class Pki:
    ca: CertAuthority
    server: Issued  # SAN IP:127.0.0.1, DNS:localhost
    client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = CertAuthority(tmp_path / "pki", "tradingd test CA")
    return Pki(
        ca,
        ca.issue("redis-server", sans=SERVER_SANS, server=True),
        ca.issue("tradingd", sans=[x509.DNSName("tradingd")], server=False),
    )


# --- servers and clients -------------------------------------------------------------------------
def tls_server(
    directory: Path, pki: Pki, *, server: Issued | None = None, auth_clients: bool = False
) -> RedisServer:
    """TLS only; client certificates (when wanted) must come from ``pki.ca``."""
    cert = server or pki.server
    tls = ServerTLS(
        cert_file=cert.cert, key_file=cert.key, ca_file=pki.ca.pem, auth_clients=auth_clients,
        client_cert_file=pki.client.cert, client_key_file=pki.client.key,
    )  # fmt: skip
    return RedisServer(directory, tls=tls)


@asynccontextmanager
async def reader(server: RedisServer, ca: Path, client: Issued) -> AsyncIterator[Redis]:
    """redis-py over TLS, verifying the server with ``ca`` (an independent check of what arrived)."""
    r = Redis(
        host=HOST, port=server.port, ssl=True, ssl_ca_certs=str(ca),
        ssl_certfile=str(client.cert), ssl_keyfile=str(client.key), socket_timeout=5.0,
    )  # fmt: skip
    try:
        yield r
    finally:
        await r.aclose()


def tls_config(url: str, **kw: Any) -> RedisSection:
    return config(f"t{uuid4().hex[:8]}", url, **kw)


async def open_fails(url: str, cfg: RedisSection, timeout_s: float = 2.0) -> RedisError:
    """RespConnection.open's error for ``url`` with ``cfg``'s TLS files; it must come within the timeout."""
    start = anyio.current_time()
    with pytest.raises(RedisError) as err:
        conn = await RespConnection.open(url, timeout_s, ssl_context=tls_context(cfg))
        await conn.aclose()
    assert anyio.current_time() - start < timeout_s + 0.5
    return err.value


# --- the mirror over TLS -------------------------------------------------------------------------
async def test_the_mirror_over_rediss_delivers_what_was_published(tmp_path: Path, pki: Pki) -> None:
    metrics = Metrics()
    with anyio.fail_after(LIMIT), tls_server(tmp_path / "redis", pki) as server:
        assert server.url.startswith("rediss://") and server.tls is not None
        cfg = tls_config(server.url, tls_ca_file=str(pki.ca.pem))
        mirror = RedisMirror(cfg, tmp_path / "state", metrics)
        msgs: list[Message] = [m for i in range(25) for m in (fill(i), trade(i), fill(i, "ETH/USDT"))]
        async with running(mirror):
            for m in msgs:
                mirror.offer(m)
            await wait_until(lambda: mirror.pending() == 0)
            assert mirror.redis_state == "up" and metrics.get(REDIS_UP) == 1
        async with reader(server, pki.ca.pem, pki.client) as client:
            expected = by_key(cfg.prefix, msgs)
            assert len(expected) == 3
            for name, want in expected.items():
                assert [m for _, m in await stream(client, name)] == want
    assert metrics.total(PUBLISHED) == len(msgs) and metrics.total(DROPPED) == 0


async def test_password_and_db_in_a_rediss_url(tmp_path: Path, pki: Pki) -> None:
    with anyio.fail_after(LIMIT), tls_server(tmp_path / "redis", pki) as server:
        async with reader(server, pki.ca.pem, pki.client) as admin:
            await admin.config_set("requirepass", PASSWORD)
        url = f"rediss://:{PASSWORD}@{HOST}:{server.port}/4"
        cfg = tls_config(url, tls_ca_file=str(pki.ca.pem))
        conn = await RespConnection.open(url, 2.0, ssl_context=tls_context(cfg))
        try:
            ok, info = await conn.pipeline([("SET", "k", "over-tls"), ("CLIENT", "INFO")])
        finally:
            await conn.aclose()
        assert ok == b"OK" and b" db=4 " in info
        err = await open_fails(f"rediss://:not-{PASSWORD}@{HOST}:{server.port}/0", cfg)
        assert "WRONGPASS" in str(err) and PASSWORD not in str(err)


async def test_a_server_certificate_from_another_ca_is_an_outage_until_the_ca_file_is_fixed(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tradingd.mirror")
    other = CertAuthority(tmp_path / "other-pki", "some other CA")
    foreign = other.issue("foreign-redis", sans=SERVER_SANS, server=True)
    bundle = tmp_path / "ca-bundle.pem"  # what redis.tls_ca_file names; the operator fixes it in place
    bundle.write_bytes(pki.ca.pem.read_bytes())
    metrics = Metrics()
    with anyio.fail_after(LIMIT), tls_server(tmp_path / "redis", pki, server=foreign) as server:
        cfg = tls_config(server.url, tls_ca_file=str(bundle))
        err = await open_fails(server.url, cfg)
        assert isinstance(err, RedisConnectionError)
        assert re.match(
            r"connecting to 127\.0\.0\.1: TLS handshake failed: .*CERTIFICATE_VERIFY_FAILED", str(err)
        )

        mirror = RedisMirror(cfg, tmp_path / "state", metrics)
        async with running(mirror):
            for i in range(10):
                mirror.offer(fill(i))
                mirror.offer(trade(i))
            await wait_until(lambda: mirror.redis_state == "down")
            assert metrics.get(REDIS_UP) == 0 and "tradingd_redis_up 0.0" in metrics.render()
            await anyio.sleep(5 * cfg.retry_interval_s)  # a few more refused handshakes
            assert mirror.redis_state == "down"
            assert metrics.get(ERRORS, {"error": "tls"}) >= 2  # every refused handshake is counted
            assert mirror.pending() == 10  # the order path is held, the market data dropped and counted
            assert metrics.get(DROPPED, {"kind": "trade", "reason": "redis_down"}) == 10
            assert any(
                "unreachable" in r.getMessage() and "CERTIFICATE_VERIFY_FAILED" in r.getMessage()
                for r in caplog.records
            ), caplog.text
            bundle.write_bytes(other.pem.read_bytes())  # the right CA: picked up on the next try
            await wait_until(lambda: mirror.redis_state == "up")
            await wait_until(lambda: mirror.pending() == 0)
            assert metrics.get(REDIS_UP) == 1
        async with reader(server, other.pem, pki.client) as client:
            assert [m for _, m in await stream(client, f"{cfg.prefix}:paper:BTC/USDT:fill")] == [
                fill(i) for i in range(10)
            ]
    assert metrics.total(PUBLISHED) == 10
    assert any("redis is back" in r.getMessage() for r in caplog.records)


async def test_the_server_name_is_verified(tmp_path: Path, pki: Pki) -> None:
    """A certificate from the right CA, for ``localhost`` only, does not do for 127.0.0.1."""
    by_name = pki.ca.issue("named-redis", sans=[x509.DNSName("localhost")], server=True)
    with anyio.fail_after(LIMIT), tls_server(tmp_path / "redis", pki, server=by_name) as server:
        err = await open_fails(server.url, tls_config(server.url, tls_ca_file=str(pki.ca.pem)))
    assert isinstance(err, RedisConnectionError)
    assert "TLS handshake failed" in str(err) and "IP address mismatch" in str(err), str(err)


# --- mutual TLS ----------------------------------------------------------------------------------
async def test_mutual_tls_needs_the_client_certificate(tmp_path: Path, pki: Pki) -> None:
    metrics = Metrics()
    with anyio.fail_after(LIMIT), tls_server(tmp_path / "redis", pki, auth_clients=True) as server:
        without = tls_config(server.url, tls_ca_file=str(pki.ca.pem))
        err = await open_fails(server.url, without)
        assert isinstance(err, RedisConnectionError)
        # TLS 1.3: the server's refusal comes after the handshake, as an alert or as a reset (a race)
        assert re.search(r"TLS.*(CERTIFICATE_REQUIRED|does it want a client cert)", str(err)), str(err)

        stranger_ca = CertAuthority(tmp_path / "stranger-pki", "not the server's client CA")
        stranger = stranger_ca.issue("stranger", sans=[x509.DNSName("stranger")], server=False)
        wrong = tls_config(
            server.url,
            tls_ca_file=str(pki.ca.pem),
            tls_cert_file=str(stranger.cert),
            tls_key_file=str(stranger.key),
        )
        err = await open_fails(server.url, wrong)
        assert isinstance(err, RedisConnectionError) and "TLS" in str(err), str(err)

        cfg = tls_config(
            server.url,
            tls_ca_file=str(pki.ca.pem),
            tls_cert_file=str(pki.client.cert),
            tls_key_file=str(pki.client.key),
        )
        mirror = RedisMirror(cfg, tmp_path / "state", metrics)
        msgs: list[Message] = [m for i in range(20) for m in (fill(i), trade(i))]
        async with running(mirror):
            for m in msgs:
                mirror.offer(m)
            await wait_until(lambda: mirror.pending() == 0)
            assert mirror.redis_state == "up"
        async with reader(server, pki.ca.pem, pki.client) as client:
            for name, want in by_key(cfg.prefix, msgs).items():
                assert [m for _, m in await stream(client, name)] == want
    assert metrics.total(PUBLISHED) == len(msgs)


# --- the wrong scheme for the port fails in time -------------------------------------------------
async def test_plain_redis_url_against_the_tls_port_fails_quickly(tmp_path: Path, pki: Pki) -> None:
    with anyio.fail_after(LIMIT), tls_server(tmp_path / "redis", pki) as server:
        url = f"redis://{HOST}:{server.port}/0"
        err = await open_fails(url, tls_config(url), timeout_s=1.0)
        assert isinstance(err, RedisConnectionError) and "TLS port" in str(err), str(err)


async def test_rediss_url_against_a_plain_port_times_out_naming_tls(tmp_path: Path) -> None:
    with anyio.fail_after(LIMIT), RedisServer(tmp_path / "redis") as server:  # plain Redis: it waits
        url = f"rediss://{HOST}:{server.port}/0"
        err = await open_fails(url, tls_config(url), timeout_s=0.5)
        assert isinstance(err, RedisTimeoutError) and "TLS handshake timed out" in str(err), str(err)


async def test_rediss_url_against_a_closed_port_is_a_connection_error() -> None:
    url = f"rediss://{HOST}:{free_port()}/0"
    with anyio.fail_after(LIMIT):
        err = await open_fails(url, tls_config(url))
    assert isinstance(err, RedisConnectionError) and "TLS" not in str(err)


# --- config checks -------------------------------------------------------------------------------
def redis_lines(*lines: str) -> str:
    """MIN with ``lines`` after ``maxlen`` in [redis]: the first is on line 9, the next on 10..."""
    return mutate("maxlen = 1000", "\n".join(["maxlen = 1000", *lines]))


def rejects(text: str, pattern: str) -> str:
    with pytest.raises(ConfigError) as err:
        parse_config(text, "cfg.toml")
    assert re.fullmatch(pattern, str(err.value)), str(err.value)
    return str(err.value)


def test_config_accepts_rediss_with_and_without_tls_files(pki: Pki) -> None:
    cfg = parse_config(redis_lines('url = "rediss://redis.example.com:6380/0"'), "cfg.toml")
    assert cfg.redis.url.startswith("rediss://") and cfg.redis.tls_ca_file == ""
    text = redis_lines(
        'url = "rediss://127.0.0.1:6380/0"',
        f'tls_ca_file = "{pki.ca.pem}"',
        f'tls_cert_file = "{pki.client.cert}"',
        f'tls_key_file = "{pki.client.key}"',
    )
    r = parse_config(text, "cfg.toml").redis
    assert (r.tls_ca_file, r.tls_cert_file, r.tls_key_file) == tuple(
        map(str, (pki.ca.pem, pki.client.cert, pki.client.key))
    )
    assert tls_context(r) is not None
    assert tls_context(parse_config(MIN, "cfg.toml").redis) is None  # redis://: no TLS


def test_config_rejects_a_missing_ca_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.pem"
    rejects(
        redis_lines('url = "rediss://127.0.0.1:6380/0"', f'tls_ca_file = "{missing}"'),
        re.escape(
            f"cfg.toml:10: redis.tls_ca_file: expected a PEM file of CA certificates, got '{missing}': "
        )
        + r"\[Errno 2\] No such file or directory",
    )


@pytest.mark.parametrize("content", ["garbage", "empty", "key"])
def test_config_rejects_a_ca_file_without_certificates(tmp_path: Path, pki: Pki, content: str) -> None:
    bad = tmp_path / "bad.pem"
    body = {
        "garbage": b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        "empty": b"",
        "key": pki.client.key.read_bytes(),
    }[content]
    bad.write_bytes(body)
    rejects(
        redis_lines('url = "rediss://127.0.0.1:6380/0"', f'tls_ca_file = "{bad}"'),
        re.escape(f"cfg.toml:10: redis.tls_ca_file: expected a PEM file of CA certificates, got '{bad}': ")
        + r"\[X509.*\] .*(PEM lib|no certificate or crl found).*",
    )


@pytest.mark.parametrize("given", ["tls_cert_file", "tls_key_file"])
def test_config_rejects_a_certificate_without_its_key_and_the_reverse(pki: Pki, given: str) -> None:
    path = pki.client.cert if given == "tls_cert_file" else pki.client.key
    need = "tls_key_file" if given == "tls_cert_file" else "tls_cert_file"
    rejects(
        redis_lines('url = "rediss://127.0.0.1:6380/0"', f'{given} = "{path}"'),
        re.escape(f"cfg.toml:10: redis.{given}: expected {need} as well (mutual TLS needs both), got none"),
    )


def test_config_names_the_broken_half_of_the_client_pair(tmp_path: Path, pki: Pki) -> None:
    other_key = tmp_path / "other.key"
    _write_key(other_key, ec.generate_private_key(ec.SECP256R1()))
    encrypted = tmp_path / "encrypted.key"
    _write_key(encrypted, ec.generate_private_key(ec.SECP256R1()), passphrase=b"tls-test-passphrase-5e2a")
    head = ['url = "rediss://127.0.0.1:6380/0"']
    cert, key = pki.client.cert, pki.client.key
    rejects(  # the key where the certificate belongs
        redis_lines(*head, f'tls_cert_file = "{key}"', f'tls_key_file = "{key}"'),
        re.escape(f"cfg.toml:10: redis.tls_cert_file: expected a PEM client certificate, got '{key}': ")
        + ".+",
    )
    rejects(
        redis_lines(*head, f'tls_cert_file = "{cert}"', f'tls_key_file = "{tmp_path / "missing.key"}"'),
        r"cfg\.toml:11: redis\.tls_key_file: expected the unencrypted PEM key of tls_cert_file, got "
        r".*missing\.key': \[Errno 2\] No such file or directory",
    )
    rejects(
        redis_lines(*head, f'tls_cert_file = "{cert}"', f'tls_key_file = "{other_key}"'),
        r"cfg\.toml:11: redis\.tls_key_file: .*KEY_VALUES_MISMATCH.*",
    )
    rejects(  # never a passphrase prompt on the terminal
        redis_lines(*head, f'tls_cert_file = "{cert}"', f'tls_key_file = "{encrypted}"'),
        r"cfg\.toml:11: redis\.tls_key_file: .*the key is encrypted; tradingd cannot ask for a passphrase.*",
    )


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "unix:///run/redis.sock"])
@pytest.mark.parametrize("key", ["tls_ca_file", "tls_cert_file", "tls_key_file"])
def test_config_rejects_tls_keys_without_rediss(pki: Pki, url: str, key: str) -> None:
    scheme = url.partition("://")[0]
    rejects(
        redis_lines(f'url = "{url}"', f'{key} = "{pki.ca.pem}"'),
        re.escape(f"cfg.toml:10: redis.{key}: expected only with a rediss:// (TLS) url, got '{pki.ca.pem}' ")
        + re.escape(f"with {scheme}://"),
    )


def test_config_error_for_tls_keys_does_not_show_the_url_password(pki: Pki) -> None:
    message = rejects(
        redis_lines(f'url = "redis://:{PASSWORD}@127.0.0.1:6379/0"', f'tls_ca_file = "{pki.ca.pem}"'),
        r"cfg\.toml:10: redis\.tls_ca_file: .*",
    )
    assert PASSWORD not in message


def test_config_with_the_mirror_disabled_does_not_read_the_files(tmp_path: Path) -> None:
    text = redis_lines(
        "enabled = false", 'url = "rediss://127.0.0.1:6380/0"', f'tls_ca_file = "{tmp_path}/x"'
    )
    assert parse_config(text, "cfg.toml").redis.tls_ca_file == f"{tmp_path}/x"
