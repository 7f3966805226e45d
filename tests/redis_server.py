"""A private redis-server for one test: free loopback port, killable and restartable on that port.

    with RedisServer(tmp_path) as server:          # started, answers PING
        url = server.url
        server.stop()                              # SIGKILL (data gone unless persistent=True)
        server.start()                             # same port, waits until it answers again
        server.pause(); server.resume()            # SIGSTOP / SIGCONT: unreachable, not gone

``persistent=True`` turns on the AOF with ``appendfsync always``, so a SIGKILL loses
nothing Redis acknowledged.  ``tls=ServerTLS(...)`` serves TLS only (no plain port; ``url``
is ``rediss://``); its readiness PING goes over TLS.  Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ping(port: int, timeout: float = 0.2, tls: ssl.SSLContext | None = None) -> bool:
    """True when a Redis on ``port`` answers PING with +PONG (over TLS with a ``tls`` context)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            tls.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw as s,
        ):
            s.sendall(b"PING\r\n")
            reply = s.recv(64)
            return reply.startswith((b"+PONG", b"-NOAUTH"))  # up (a password may be required)
    except OSError:  # ssl.SSLError included
        return False


@dataclass(frozen=True)
class ServerTLS:
    """TLS-only serving: the server's certificate and key, and the CA that client certificates need.

    With ``auth_clients`` Redis wants a client certificate: the readiness PING presents
    ``client_cert_file``/``client_key_file``.  That PING does not verify the server (the
    tests do; the server's certificate may come from another CA on purpose).
    """

    cert_file: Path
    key_file: Path
    ca_file: Path
    auth_clients: bool = False
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    def args(self, port: int) -> list[str]:
        """redis-server's arguments: no plain port, TLS on ``port``."""
        return [
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(self.cert_file), "--tls-key-file", str(self.key_file),
            "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "yes" if self.auth_clients else "no",
        ]  # fmt: skip

    def ping_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        if self.client_cert_file and self.client_key_file:
            ctx.load_cert_chain(self.client_cert_file, self.client_key_file)
        return ctx


class RedisServer:
    def __init__(
        self,
        directory: Path,
        *,
        persistent: bool = False,
        port: int | None = None,
        tls: ServerTLS | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.extra_args = extra_args  # e.g. ("--requirepass", "pw"): a NOAUTH reply counts as up
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.port = port or free_port()
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        if self.proc is not None:
            raise RuntimeError("redis-server already running")
        args = [REDIS_SERVER, *(self.tls.args(self.port) if self.tls else ["--port", str(self.port)])]
        args += ["--bind", "127.0.0.1", "--save", ""]
        args += [
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--protected-mode",
            "no",
            *self.extra_args,
        ]
        args += (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        )
        log = (self.directory / "redis.log").open("ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        tls = self.tls.ping_context() if self.tls else None
        while not ping(self.port, tls=tls):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"redis-server on port {self.port} did not start; see {self.directory}/redis.log"
                )
            time.sleep(0.02)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGKILL: no shutdown save, connections reset."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)  # a paused process must be able to die
            proc.kill()
        proc.wait(timeout=timeout)

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
