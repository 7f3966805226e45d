"""OKX v5 spot: public market data (books with checksums, trades, tickers) and instrument rules.

- :mod:`adapters.okx.config` -- the ``[groups.feed] kind = "okx"`` table (the adapter's own config).
- :mod:`adapters.okx.schemas` -- the wire Structs (``Okx<Thing>``, OKX's field names verbatim).
- :mod:`adapters.okx.checksum` -- the CRC32 over the top 25 levels, as a signed int32.
- :mod:`adapters.okx.book` -- one ``books`` order book: seqId/prevSeqId continuity and the checksum.
- :mod:`adapters.okx.data` -- frames in, our market messages out (and what to resubscribe).
- :mod:`adapters.okx.websocket` -- the public WebSocket feed: ping, watchdog, reconnects.
- :mod:`adapters.okx.instruments` -- ``GET /api/v5/public/instruments`` rules, rounding and checks.
- :mod:`adapters.okx.rules_loader` -- loading and refreshing those rules (tenacity).

Trading (signed REST, the private WebSocket, algo orders) is not here yet.
"""
