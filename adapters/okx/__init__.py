"""OKX v5 spot: public market data (books with checksums, trades, tickers), instrument rules, trading.

- :mod:`adapters.okx.config` -- the ``[groups.feed] kind = "okx"`` and ``[accounts.X] exchange =
  "okx"`` tables (the adapter's own config).
- :mod:`adapters.okx.schemas` -- the wire Structs (``Okx<Thing>``, OKX's field names verbatim).
- :mod:`adapters.okx.checksum` -- the CRC32 over the top 25 levels, as a signed int32.
- :mod:`adapters.okx.book` -- one ``books`` order book: seqId/prevSeqId continuity and the checksum.
- :mod:`adapters.okx.data` -- frames in, our market messages out (and what to resubscribe).
- :mod:`adapters.okx.websocket` -- the public WebSocket feed: ping, watchdog, reconnects.
- :mod:`adapters.okx.instruments` -- ``GET /api/v5/public/instruments`` rules, rounding and checks.
- :mod:`adapters.okx.rules_loader` -- loading and refreshing those rules (tenacity).

Trading:

- :mod:`adapters.okx.signing` / :mod:`adapters.okx.credentials` -- the OK-ACCESS-* signature, keys
  from the environment.
- :mod:`adapters.okx.errors` -- OKX's ``code`` / ``sCode`` as typed errors (rejected vs unknown).
- :mod:`adapters.okx.ratelimit` -- a sliding window per endpoint rule (user, user + instrument).
- :mod:`adapters.okx.replies` / :mod:`adapters.okx.orders` -- trading wire Structs; our orders in
  OKX's terms (order types, algo stops, client ids).
- :mod:`adapters.okx.http` -- the signed REST client (clock, limits, retries of reads, unknowns).
- :mod:`adapters.okx.private_ws` -- the private WebSocket: login, ``orders`` / ``account``, order ops.
- :mod:`adapters.okx.execution` -- :class:`~adapters.okx.execution.OkxExecution`, the execution
  actor a group on an OKX account runs instead of the paper exchange, with its parts
  ``order_tracker`` (OKX's word applied once, fills by tradeId), ``order_reconciler`` (catch-up
  after every reconnect, restart reconciliation) and ``venue_queries`` (the restart's queries).
"""
