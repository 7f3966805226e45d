"""Cost of signing one Binance request (the full signed query string of a new LIMIT order).

Measured through :func:`adapters.binance.signing.sign_params` -- parameters encoded in order,
``recvWindow`` and ``timestamp`` stamped, the signature computed and appended -- for an HMAC-SHA256
key and an Ed25519 key, against naive baselines doing the same work the obvious way: HMAC with the
secret re-encoded and ``urlencode`` of ``str()`` values per request; Ed25519 with the PEM key parsed
per request (what a stateless "sign(secret, payload)" helper does).  Reported as microseconds per
request and requests per second, median of :data:`REPEATS` rounds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.binance.signing import Ed25519Signer, HmacSigner, ParamValue, sign_params

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"  # Binance's docs example
ORDER: dict[str, ParamValue] = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "quantity": Decimal("0.00150"),
    "newClientOrderId": "td-6f1c2b9e0a4d4e51",
    "price": Decimal("64321.17"),
    "timeInForce": "GTC",
    "newOrderRespType": "FULL",
}
REPEATS = 5
N = 5000


def _rate(fn: Callable[[int], str]) -> dict[str, float]:
    per: list[float] = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        for i in range(N):
            fn(1_700_000_000_000 + i)
        per.append((time.perf_counter() - start) / N)
    us = statistics.median(per) * 1e6
    return {"us_per_request": round(us, 2), "requests_per_s": round(1e6 / us)}


def _naive_hmac(ts: int) -> str:
    params = {**{k: str(v) for k, v in ORDER.items()}, "recvWindow": "5000", "timestamp": str(ts)}
    query = urlencode(params)
    return f"{query}&signature={hmac.new(SECRET.encode(), query.encode(), hashlib.sha256).hexdigest()}"


def main() -> dict[str, Any]:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    hmac_signer, ed_signer = HmacSigner(SECRET), Ed25519Signer(pem)

    def naive_ed25519(ts: int) -> str:
        loaded = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(loaded, Ed25519PrivateKey)
        params = {**{k: str(v) for k, v in ORDER.items()}, "recvWindow": "5000", "timestamp": str(ts)}
        query = urlencode(params)
        return f"{query}&signature={quote(base64.b64encode(loaded.sign(query.encode())).decode(), safe='')}"

    results = {
        "hmac": _rate(lambda ts: sign_params(ORDER, hmac_signer, timestamp_ms=ts, recv_window_ms=5000)),
        "hmac_naive": _rate(_naive_hmac),
        "ed25519": _rate(lambda ts: sign_params(ORDER, ed_signer, timestamp_ms=ts, recv_window_ms=5000)),
        "ed25519_naive": _rate(naive_ed25519),
    }
    for name in ("hmac", "ed25519"):
        ours, naive = results[name], results[f"{name}_naive"]
        print(
            f"  sign one order ({name}): {ours['us_per_request']} us ({ours['requests_per_s']:,}/s); "
            f"naive {naive['us_per_request']} us ({naive['requests_per_s']:,}/s)"
        )
    return results
