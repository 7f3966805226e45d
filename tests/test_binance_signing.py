"""Binance request signing: the documented HMAC-SHA256 vector, Ed25519, encoding, credentials."""

from __future__ import annotations

import base64
import logging
from decimal import Decimal
from urllib.parse import parse_qsl

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.binance.signing import (
    CredentialsError,
    Ed25519Signer,
    HmacSigner,
    ParamValue,
    credentials_from_env,
    encode_params,
    sign_params,
    signed_query,
)
from daemon.logs import redact

# Binance spot REST docs, "SIGNED Endpoint Examples for POST /api/v3/order" (shared/data/SOURCES.md).
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PAYLOAD = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"  # noqa: E501 (verbatim from the docs)
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"


def _pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_hmac_matches_the_documented_known_answer() -> None:
    assert HmacSigner(DOC_SECRET).sign(DOC_PAYLOAD) == DOC_SIGNATURE


def test_signed_params_reproduce_the_documented_query_exactly() -> None:
    params: dict[str, ParamValue] = {
        "symbol": "LTCBTC",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": Decimal("1"),
        "price": Decimal("0.1"),
    }

    query = sign_params(params, HmacSigner(DOC_SECRET), timestamp_ms=1499827319559, recv_window_ms=5000)

    assert query == f"{DOC_PAYLOAD}&signature={DOC_SIGNATURE}"


def test_ed25519_signature_verifies_with_the_public_key() -> None:
    key = Ed25519PrivateKey.generate()
    signer = Ed25519Signer(_pem(key))

    signature = signer.sign(DOC_PAYLOAD)

    key.public_key().verify(base64.b64decode(signature), DOC_PAYLOAD.encode())  # raises if wrong
    assert len(base64.b64decode(signature)) == 64


def test_ed25519_signature_is_percent_encoded_in_the_query() -> None:
    signer = Ed25519Signer(_pem(Ed25519PrivateKey.generate()))

    query = signed_query(DOC_PAYLOAD, signer)

    raw_signature = query.rsplit("&signature=", 1)[1]
    assert not set(raw_signature) & set("+/=")
    assert dict(parse_qsl(query))["signature"] == signer.sign(DOC_PAYLOAD)


def test_ed25519_rejects_a_key_of_another_type() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with pytest.raises(CredentialsError, match=r"^the private key is \w+, not Ed25519$"):
        Ed25519Signer(pem)


def test_encode_params_writes_decimals_plainly_and_booleans_lowercase() -> None:
    assert encode_params({"price": Decimal("1E-7"), "flag": True, "n": 3}) == "price=0.0000001&flag=true&n=3"


def test_credentials_come_from_the_environment_and_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    env = {"BINANCE_API_KEY": "my-api-key-123", "BINANCE_API_SECRET": "my-secret-456"}

    creds = credentials_from_env(environ=env)
    logging.getLogger("test").warning("key %s secret %s", "my-api-key-123", "my-secret-456")

    assert creds.api_key == "my-api-key-123"
    assert creds.signer.sign("x") == HmacSigner("my-secret-456").sign("x")
    assert "my-api-key-123" not in repr(creds) and "my-secret-456" not in repr(creds)
    assert redact(caplog.records[-1].getMessage()) == "key *** secret ***"


def test_ed25519_credentials_from_the_environment() -> None:
    key = Ed25519PrivateKey.generate()
    env = {"X_API_KEY": "ed-key-0001", "X_PRIVATE_KEY": _pem(key).decode()}

    creds = credentials_from_env("X", environ=env)

    key.public_key().verify(base64.b64decode(creds.signer.sign("a=1")), b"a=1")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "BINANCE_API_KEY is not set"),
        ({"BINANCE_API_KEY": "k-123"}, "neither BINANCE_API_SECRET nor BINANCE_PRIVATE_KEY is set"),
    ],
)
def test_missing_credentials_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(CredentialsError, match=rf"^{message}$"):
        credentials_from_env(environ=env)
