"""The ``[groups.feed] kind = "okx"`` table: OKX v5 public market data for one group.

The adapter's own config type; ``daemon.config_schema`` puts it in the feed union.  Keys:

- ``inst_id``: OKX's instrument (``BTC-USDT``); empty: the group's symbol with ``-`` for ``/``.
- ``ws_url``: the public WebSocket (demo trading: ``wss://wspap.okx.com:8443/ws/v5/public``).
- ``rest_url`` and ``simulated`` (the ``x-simulated-trading: 1`` header of demo trading): where
  the instrument rules come from, every ``rules_refresh_s`` (0: never loaded).
- ``channels``: of ``books``, ``trades``, ``tickers``, ``bbo-tbt``.
- ``ping_after_s`` (OKX closes a connection silent for 30 s), ``silence_timeout_s``,
  ``resubscribe_timeout_s``, ``book_depth`` (levels published in a BookSnapshot).
"""

from __future__ import annotations

import msgspec

__all__ = ["OkxFeed"]


class OkxFeed(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="kind", tag="okx"
):
    """OKX v5 spot market data over the public WebSocket (production or demo trading URLs)."""

    inst_id: str = ""
    ws_url: str = "wss://ws.okx.com:8443/ws/v5/public"
    rest_url: str = "https://www.okx.com"
    simulated: bool = False
    channels: tuple[str, ...] = ("books", "trades", "tickers")
    ping_after_s: float = 20.0
    silence_timeout_s: float = 30.0
    resubscribe_timeout_s: float = 10.0
    rules_refresh_s: float = 3600.0
    book_depth: int = 100
