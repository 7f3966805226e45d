"""Typed errors of the Binance REST client and the mapping from Binance error codes to them.

Every failure of a :class:`~adapters.binance.http.BinanceHttpClient` call is a :class:`BinanceError`:
:class:`BinanceRejected` and its subclasses when the venue refused the request (not executed),
:class:`BinanceServerError` / :class:`BinanceConnectionError` / :class:`BinanceBadReply` when a call
that creates no order failed, and :class:`OutcomeUnknown` when a call that may have created an order
failed without saying whether it did.  :func:`error_for` maps a non-2xx reply to its class (spot
docs, "Error codes"); :data:`UNKNOWN_CODES` are the codes whose execution status is unknown.
"""

from __future__ import annotations

from typing import Any

# "The execution status is UNKNOWN" codes (spot docs, "Error codes"), like HTTP 5xx.
UNKNOWN_CODES = frozenset({-1000, -1001, -1006, -1007})


class BinanceError(Exception):
    """Any failure of a Binance REST call; ``status`` is the HTTP status (0: none), ``code`` Binance's."""

    def __init__(self, message: str, *, status: int = 0, code: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code = status, code


class BinanceRejected(BinanceError):
    """The venue refused the request (4xx): it was not executed."""


class BinanceParameterError(BinanceRejected):
    """-1013 (filter failure) or -1100..-1199 (bad parameters): fix the request, do not retry."""


class BinanceOrderRejected(BinanceRejected):
    """-2010: the matching engine refused the new order (insufficient balance, duplicate id, ...)."""


class BinanceUnknownOrder(BinanceRejected):
    """-2011 (cancel rejected) or -2013: no such order."""


class BinanceTimestampError(BinanceRejected):
    """-1021: timestamp outside recvWindow (the clock is re-synced and the request retried once)."""


class BinanceSignatureError(BinanceRejected):
    """-1022: signature not valid (wrong secret, or the query changed after signing)."""


class BinanceCancelReplaceFailed(BinanceRejected):
    """-2021 (one half failed) / -2022 (both failed); ``data`` says which (``newOrderResult``)."""

    data: dict[str, Any] | None = None


class BinanceRateLimited(BinanceRejected):
    """429 still after the retries, or the wait for a window would exceed ``max_wait_s``."""


class BinanceBanned(BinanceRejected):
    """418: the IP is banned until ``until_ms`` (server time); requests are not sent until then."""

    until_ms: int = 0


class BinanceServerError(BinanceError):
    """5xx (or -1000/-1001/-1006/-1007) on a call that creates no order."""


class BinanceConnectionError(BinanceError):
    """Timeout or broken connection on a call that creates no order."""


class BinanceBadReply(BinanceError):
    """A 2xx reply that is not the JSON expected."""


class OutcomeUnknown(BinanceError):
    """A call that may have created ``client_order_id`` failed without saying whether it did.

    Query it (:meth:`~adapters.binance.http.BinanceHttpClient.resolve_unknown`); never send it
    again blindly.  The venue refuses the request after ``deadline_ms`` (its timestamp +
    recvWindow, server time).
    """

    def __init__(
        self, message: str, *, symbol: str, client_order_id: str, deadline_ms: int, status: int = 0
    ) -> None:
        super().__init__(message, status=status)
        self.symbol, self.client_order_id, self.deadline_ms = symbol, client_order_id, deadline_ms


def error_for(status: int, code: int | None, msg: str) -> BinanceError:
    """The typed error for a non-2xx reply whose outcome is known (spot docs, "Error codes")."""
    kind: type[BinanceError]
    match code:
        case -1021:
            kind = BinanceTimestampError
        case -1022:
            kind = BinanceSignatureError
        case -2010:
            kind = BinanceOrderRejected
        case -2011 | -2013:
            kind = BinanceUnknownOrder
        case -2021 | -2022:
            kind = BinanceCancelReplaceFailed
        case int() if code == -1013 or -1199 <= code <= -1100:
            kind = BinanceParameterError
        case _:
            kind = BinanceRejected if status < 500 else BinanceServerError
    text = f"HTTP {status} code {code}: {msg}" if code is not None else f"HTTP {status}: {msg}"
    return kind(text, status=status, code=code)
