"""The adapter's own config tables: ``[groups.feed] kind = "okx"`` (market data) and
``[accounts.X] exchange = "okx"`` (trading); ``daemon.config_schema`` puts them in its unions.

:class:`OkxFeed`, OKX v5 public market data for one group.  Keys:

- ``inst_id``: OKX's instrument (``BTC-USDT``); empty: the group's symbol with ``-`` for ``/``.
- ``ws_url``: the public WebSocket (demo trading: ``wss://wspap.okx.com:8443/ws/v5/public``).
- ``rest_url`` and ``simulated`` (the ``x-simulated-trading: 1`` header of demo trading): where
  the instrument rules come from, every ``rules_refresh_s`` (0: never loaded).
- ``channels``: of ``books``, ``trades``, ``tickers``, ``bbo-tbt``.
- ``ping_after_s`` (OKX closes a connection silent for 30 s), ``silence_timeout_s``,
  ``resubscribe_timeout_s``, ``book_depth`` (levels published in a BookSnapshot).

:class:`OkxAccount`, an OKX spot account: where REST and the private WebSocket are, which
environment variables hold the key, secret and passphrase, demo trading (``simulated``), whether
orders go over the private WebSocket (``order_channel``, REST the fallback) and the order
request's ``expiry_ms`` (OKX's ``expTime``), plus the keys every account has (``risk``,
``foreign_orders``, ``balance_check_s`` ...).  :func:`account_problems` is its check-config.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from actors.account_risk import AccountRiskLimits

__all__ = ["OkxAccount", "OkxFeed"]


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


class OkxAccount(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="exchange", tag="okx"
):
    """A real OKX spot account (``exchange = "okx"``): orders go to OKX (or its demo trading).

    The API key, secret and passphrase come from the environment variables named here, never from
    the file.  ``simulated`` is OKX demo trading: ``x-simulated-trading: 1`` on every request, and
    the demo private WebSocket (``wss://wspap.okx.com:8443/ws/v5/private``).
    """

    rest_url: str = "https://www.okx.com"
    ws_private_url: str = "wss://ws.okx.com:8443/ws/v5/private"
    simulated: bool = False
    api_key_env: str = "OKX_API_KEY"
    secret_env: str = "OKX_API_SECRET"
    passphrase_env: str = "OKX_API_PASSPHRASE"
    order_channel: Literal["rest", "websocket"] = (
        "websocket"  # place/cancel over the private WS, REST fallback
    )
    expiry_ms: int = 5000  # expTime of an order request: OKX does not process it later than this
    timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    resolve_backoff_max_s: float = 10.0
    rules_refresh_s: float = 3600.0  # instrument rules (tickSz, lotSz, minSz, state) reloaded this often
    risk: AccountRiskLimits = AccountRiskLimits()
    foreign_orders: Literal["flag", "cancel", "adopt"] = "flag"
    balance_check_s: float = 300.0  # venue balances vs the ledger this often (0: only at start)
    on_balance_drift: Literal["alert", "halt"] = "alert"
    balance_tolerance: Decimal | None = None  # per asset; unset: the asset's step (base) or tick (quote)
