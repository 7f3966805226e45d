"""Binance request signing: which bytes are signed, how, and where the keys come from.

Binance spot REST docs, "SIGNED (TRADE and USER_DATA) Endpoint security": a signed request
carries ``timestamp`` (ms, server time) and optionally ``recvWindow``; the signature is computed
over ``totalParams`` -- the query string concatenated with the request body, exactly as sent --
and appended as the last parameter, ``&signature=<sig>``.

- HMAC-SHA256 (:class:`HmacSigner`): the lowercase hex digest keyed with the secret key.
- Ed25519 (:class:`Ed25519Signer`): the base64 of the Ed25519 signature of the same payload;
  base64 contains ``+``, ``/`` and ``=``, so it is percent-encoded when appended.  Needs the
  ``cryptography`` package, imported only when an Ed25519 key is used.

Keys come from the environment only (:func:`credentials_from_env`), never from config.toml.
Every key is registered with :func:`daemon.logs.register_secret`, so no log line can carry it,
and no ``repr`` here shows one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol
from urllib.parse import quote, urlencode

from daemon.logs import register_secret

__all__ = [
    "Credentials",
    "CredentialsError",
    "Ed25519Signer",
    "HmacSigner",
    "ParamValue",
    "Signer",
    "credentials_from_env",
    "encode_params",
    "sign_params",
    "signed_query",
]

ParamValue = str | int | Decimal | bool


class CredentialsError(RuntimeError):
    """The environment does not hold usable credentials (names the variable, never a value)."""


class Signer(Protocol):
    """Signs ``totalParams``; the result is what goes after ``signature=`` before URL-encoding."""

    def sign(self, payload: str) -> str: ...


class HmacSigner:
    """HMAC-SHA256 with the API secret key, hex digest (Binance's classic key type)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        if not secret:
            raise CredentialsError("the HMAC secret key is empty")
        register_secret(secret)
        self._key = secret.encode()

    def sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "HmacSigner(***)"


class Ed25519Signer:
    """Ed25519 with a PEM (PKCS#8) private key; the signature is base64 (standard alphabet)."""

    __slots__ = ("_key",)

    def __init__(self, private_key_pem: bytes | str, password: bytes | None = None) -> None:
        try:
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
            from cryptography.hazmat.primitives.serialization import load_pem_private_key
        except ImportError as exc:  # pragma: no cover - cryptography is a declared dependency
            raise CredentialsError("Ed25519 signing needs the 'cryptography' package") from exc
        pem = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
        register_secret(pem.decode(errors="replace"))
        try:
            key = load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            raise CredentialsError(f"cannot load the Ed25519 private key: {type(exc).__name__}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise CredentialsError(f"the private key is {type(key).__name__}, not Ed25519")
        self._key = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode())).decode()

    def __repr__(self) -> str:
        return "Ed25519Signer(***)"


def _wire(value: ParamValue) -> str:
    """Decimals in plain notation (never ``1E-7``), booleans as Binance spells them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# What ``urlencode`` leaves as it is (RFC 3986 unreserved): such keys and values skip the quoting.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch


def encode_params(params: Mapping[str, ParamValue]) -> str:
    """URL-encode ``params`` in their given order: the exact string that is sent and signed.

    Identical to ``urlencode``; symbols, sides, decimals, ids and timestamps need no quoting, so
    they are joined directly (``urlencode`` costs ~1 us per pair, most of a request's signing).
    """
    parts = []
    for k, v in params.items():
        w = _wire(v)
        parts.append(f"{k}={w}" if _UNRESERVED(k) and _UNRESERVED(w) else urlencode(((k, w),)))
    return "&".join(parts)


def signed_query(query: str, signer: Signer) -> str:
    """``query`` with ``&signature=...`` appended (the signature percent-encoded for Ed25519)."""
    signature = signer.sign(query)
    if not _UNRESERVED(signature):  # base64 (Ed25519) has + / =; HMAC's hex needs nothing
        signature = quote(signature, safe="")
    return f"{query}&signature={signature}" if query else f"signature={signature}"


def sign_params(
    params: Mapping[str, ParamValue], signer: Signer, *, timestamp_ms: int, recv_window_ms: int
) -> str:
    """The full signed query string: ``params``, ``recvWindow``, ``timestamp``, then ``signature``."""
    stamped = {**params, "recvWindow": recv_window_ms, "timestamp": timestamp_ms}
    return signed_query(encode_params(stamped), signer)


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and the signer for its secret; ``repr`` shows neither."""

    api_key: str = field(repr=False)
    signer: Signer = field(repr=False)


def credentials_from_env(prefix: str = "BINANCE", environ: Mapping[str, str] | None = None) -> Credentials:
    """Read ``{prefix}_API_KEY`` and either ``{prefix}_API_SECRET`` (HMAC) or ``{prefix}_PRIVATE_KEY``
    (Ed25519 PEM, optional ``{prefix}_PRIVATE_KEY_PASSWORD``) from the environment.
    """
    env = os.environ if environ is None else environ
    api_key = env.get(f"{prefix}_API_KEY", "")
    if not api_key:
        raise CredentialsError(f"{prefix}_API_KEY is not set")
    register_secret(api_key)
    secret = env.get(f"{prefix}_API_SECRET", "")
    if secret:
        return Credentials(api_key, HmacSigner(secret))
    pem = env.get(f"{prefix}_PRIVATE_KEY", "")
    if not pem:
        raise CredentialsError(f"neither {prefix}_API_SECRET nor {prefix}_PRIVATE_KEY is set")
    password = env.get(f"{prefix}_PRIVATE_KEY_PASSWORD", "")
    if password:
        register_secret(password)
    return Credentials(api_key, Ed25519Signer(pem, password.encode() or None))
