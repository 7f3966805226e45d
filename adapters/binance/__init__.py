"""Binance spot adapter, one module per concern (the NautilusTrader split).

Market data (pure code, no networking):

- :mod:`adapters.binance.schemas`: msgspec Structs for the venue's JSON, named ``Binance<Thing>``
  with the venue's field names verbatim, each stream payload with a ``parse_to_<internal>()``;
  also the REST depth snapshot and exchangeInfo (filters as a tagged union with a fallback).
- :mod:`adapters.binance.data`: raw combined-stream frames in, ``Trade`` / ``Quote`` /
  ``BookDelta`` / ``Bar`` out; hostile input is counted and dropped, never raised.
- :mod:`adapters.binance.book`: one symbol's local book, synced from a REST snapshot plus
  ``BookDelta`` diffs by Binance's documented procedure.

Requests and orders: ``signing`` (request signatures), ``filters`` (symbol rules, order checks),
``http`` (the REST client), ``errors`` (its typed errors and the error-code mapping),
``ratelimit`` (the venue's rate-limit windows) and ``replies`` (REST reply Structs).
"""
