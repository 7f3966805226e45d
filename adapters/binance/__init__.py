"""Binance spot adapter, one module per concern (the NautilusTrader split).

Market data (pure code, no networking):

- :mod:`adapters.binance.schemas`: msgspec Structs for the venue's JSON, named ``Binance<Thing>``
  with the venue's field names verbatim, each stream payload with a ``parse_to_<internal>()``;
  also the REST depth snapshot and exchangeInfo (filters as a tagged union with a fallback).
- :mod:`adapters.binance.data`: raw combined-stream frames in, ``Trade`` / ``Quote`` /
  ``BookDelta`` / ``Bar`` out; hostile input is counted and dropped, never raised.
- :mod:`adapters.binance.book`: one symbol's local book, synced from a REST snapshot plus
  ``BookDelta`` diffs by Binance's documented procedure.

The live feed: ``websocket`` (:class:`~adapters.binance.websocket.BinanceMarketFeed`), its
connections' state in ``feed_shard`` and their make-before-break 24 h rotation in ``feed_rotation``.

Requests and orders: ``signing`` (request signatures), ``filters`` (symbol rules, order checks),
``http`` (the REST client), ``errors`` (its typed errors and the error-code mapping),
``ratelimit`` (the venue's rate-limit windows) and ``replies`` (REST reply Structs).

Trading: ``userdata_schemas`` (user data stream events as Structs), ``userdata`` (the user data
stream over the WebSocket API, or the deprecated listenKey, with reconnects and a REST catch-up
after each) and ``execution`` (:class:`~adapters.binance.execution.BinanceExecution`, the execution
actor a group on a Binance account runs instead of the paper exchange: filters before sending,
venue errors as rejections, UNKNOWN outcomes resolved by query and never re-sent, fills once),
with its parts ``order_tracker`` (its orders and the venue's word applied once), ``order_reconciler``
(catch-up and restart reconciliation), ``venue_queries`` (the restart's queries) and
``rules_loader`` (exchangeInfo rules).
"""
