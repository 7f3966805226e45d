"""The OKX ``books`` checksum: CRC32 over the top 25 levels of each side, as a signed int32.

OKX v5 (order book channel, "Checksum"): take up to 25 bids and 25 asks, best first, and join
``bidPx:bidSz:askPx:askSz:...`` with colons, interleaving the two sides level by level; when one
side has fewer levels, the other side's remaining levels follow alone.  The prices and sizes are
the strings exactly as OKX sent them (``"30243.5"``, not a normalised decimal).  The CRC32 of that
text is compared with ``checksum`` read as a signed 32-bit integer.

Takes: the best-first ``(price, size)`` strings of each side.  Gives: the signed int32.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

__all__ = ["CHECKSUM_DEPTH", "book_checksum", "signed_crc32"]

CHECKSUM_DEPTH = 25


def signed_crc32(text: str) -> int:
    crc = zlib.crc32(text.encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc


def book_checksum(bids: Sequence[tuple[str, str]], asks: Sequence[tuple[str, str]]) -> int:
    """The checksum of a book whose sides are given best first (only the top 25 are read)."""
    parts: list[str] = []
    top_bids, top_asks = bids[:CHECKSUM_DEPTH], asks[:CHECKSUM_DEPTH]
    for i in range(max(len(top_bids), len(top_asks))):
        if i < len(top_bids):
            parts += top_bids[i]
        if i < len(top_asks):
            parts += top_asks[i]
    return signed_crc32(":".join(parts))
