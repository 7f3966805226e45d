"""OKX v5 request signing: which bytes are signed, how, and the headers that carry it.

OKX v5 docs, "REST Authentication": a private request carries

- ``OK-ACCESS-KEY``: the API key;
- ``OK-ACCESS-TIMESTAMP``: the request time, ISO 8601 UTC with milliseconds
  (``2020-12-08T09:08:57.715Z``); OKX refuses one more than 30 s away from its clock (50102);
- ``OK-ACCESS-SIGN``: base64 of HMAC-SHA256, keyed with the secret key, over
  ``timestamp + METHOD + requestPath + body``, where requestPath includes the query string of a
  GET (``/api/v5/trade/order?instId=BTC-USDT&clOrdId=x``) and body is the JSON text exactly as
  sent (empty for a GET);
- ``OK-ACCESS-PASSPHRASE``: the passphrase chosen when the key was created;
- ``x-simulated-trading: 1`` for demo trading (a demo key is refused on production: 50101).

The private WebSocket's ``login`` op signs ``timestamp + "GET" + "/users/self/verify"`` the same
way, with the timestamp in Unix seconds (:func:`login_args`).

Secrets: every key, secret and passphrase is registered with :func:`daemon.logs.register_secret`,
so no log line can carry one, and no ``repr`` here shows one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import UTC, datetime

from daemon.logs import register_secret

__all__ = [
    "LOGIN_PATH",
    "OkxCredentials",
    "OkxSigner",
    "auth_headers",
    "iso_timestamp",
    "login_args",
    "prehash",
]

LOGIN_PATH = "/users/self/verify"


class OkxSigner:
    """HMAC-SHA256 with the API secret key, base64 (standard alphabet) of the digest."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the OKX secret key is empty")
        register_secret(secret)
        self._key = secret.encode()

    def sign(self, payload: str) -> str:
        return base64.b64encode(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()).decode()

    def __repr__(self) -> str:
        return "OkxSigner(***)"


@dataclass(frozen=True, slots=True)
class OkxCredentials:
    """An OKX API key, its signer and passphrase; ``repr`` shows none of them."""

    api_key: str = field(repr=False)
    signer: OkxSigner = field(repr=False)
    passphrase: str = field(repr=False)

    def __post_init__(self) -> None:
        register_secret(self.api_key)
        register_secret(self.passphrase)


def iso_timestamp(ms: int) -> str:
    """``2020-12-08T09:08:57.715Z``: the ``OK-ACCESS-TIMESTAMP`` of Unix milliseconds ``ms``."""
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def prehash(timestamp: str, method: str, request_path: str, body: str = "") -> str:
    """What OKX signs: ``timestamp + METHOD + requestPath (+ ?query) + body``."""
    return f"{timestamp}{method.upper()}{request_path}{body}"


def auth_headers(
    creds: OkxCredentials, timestamp_ms: int, method: str, request_path: str, body: str = ""
) -> dict[str, str]:
    """The four ``OK-ACCESS-*`` headers of one request."""
    stamp = iso_timestamp(timestamp_ms)
    return {
        "OK-ACCESS-KEY": creds.api_key,
        "OK-ACCESS-SIGN": creds.signer.sign(prehash(stamp, method, request_path, body)),
        "OK-ACCESS-TIMESTAMP": stamp,
        "OK-ACCESS-PASSPHRASE": creds.passphrase,
    }


def login_args(creds: OkxCredentials, timestamp_s: int) -> dict[str, str]:
    """The one ``args`` item of the private WebSocket's ``{"op": "login"}`` (timestamp in seconds)."""
    stamp = str(timestamp_s)
    return {
        "apiKey": creds.api_key,
        "passphrase": creds.passphrase,
        "timestamp": stamp,
        "sign": creds.signer.sign(prehash(stamp, "GET", LOGIN_PATH)),
    }
