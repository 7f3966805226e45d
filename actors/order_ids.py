"""Deterministic client order ids.

A client order id is derived from the intent id alone, so the same intent (for example
re-created by a replay after a crash) always maps to the same id and a second
submission is refused by the venue as a duplicate instead of being filled twice.
The form fits every venue we target: at most 32 characters of ``[a-z0-9-]``
(Binance allows 36 of ``[.A-Z:/a-z0-9_-]``, OKX 32 alphanumerics — OKX adapters strip the dash).
"""

from __future__ import annotations

import functools
import hashlib

PREFIX = "td-"
_B32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_PAIRS = [a + b for a in _B32 for b in _B32]  # every 10-bit group as its two characters


@functools.lru_cache(maxsize=4096)
def client_order_id(intent_id: str) -> str:
    """``td-`` + the first 29 base32 characters (lower case) of the intent id's SHA-256.

    Base32 encodes each 5 bytes on their own, so encoding the first 20 bytes of the digest
    gives the first 32 characters of encoding all of it.  Cached: the order actor and the
    stop-monitor both ask for the id of every approved intent.
    """
    digest = hashlib.sha256(intent_id.encode("utf-8")).digest()
    # base64.b32encode(digest[:20]).lower(), ten bits at a time (it is pure Python, and slow)
    n = int.from_bytes(digest[:20], "big")
    pairs = _PAIRS
    text = "".join([pairs[(n >> shift) & 1023] for shift in range(150, -1, -10)])
    return PREFIX + text[:29]
