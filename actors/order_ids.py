"""Deterministic client order ids.

A client order id is derived from the intent id alone, so the same intent (for example
re-created by a replay after a crash) always maps to the same id and a second
submission is refused by the venue as a duplicate instead of being filled twice.
The form fits every venue we target: at most 32 characters of ``[a-z0-9-]``
(Binance allows 36 of ``[.A-Z:/a-z0-9_-]``, OKX 32 alphanumerics — OKX adapters strip the dash).
"""

from __future__ import annotations

import base64
import functools
import hashlib

PREFIX = "td-"


@functools.lru_cache(maxsize=4096)
def client_order_id(intent_id: str) -> str:
    """``td-`` + the first 29 base32 characters (lower case) of the intent id's SHA-256.

    Base32 encodes each 5 bytes on their own, so encoding the first 20 bytes of the digest
    gives the first 32 characters of encoding all of it.  Cached: the order actor and the
    stop-monitor both ask for the id of every approved intent.
    """
    digest = hashlib.sha256(intent_id.encode("utf-8")).digest()
    return PREFIX + base64.b32encode(digest[:20]).decode("ascii").lower()[:29]
