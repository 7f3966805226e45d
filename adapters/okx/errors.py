"""Typed errors of the OKX REST client and the mapping from OKX's ``code`` / ``sCode`` to them.

OKX answers ``{"code": "0", "msg": "", "data": [...]}`` on success.  A refusal of the whole request
has another ``code`` (``50011`` rate limit with HTTP 429, ``50113`` invalid signature with HTTP
401, ``51603`` order does not exist with HTTP 200 ...); an order endpoint that refuses the order
answers ``code`` ``"1"`` ("All operations failed") and the reason per order in ``data[i].sCode`` /
``sMsg`` (``51008`` insufficient balance, ``51016`` duplicated clOrdId ...).  Codes from the OKX
v5 docs, "Error Code".

- :class:`OkxRejected` and its subclasses: the venue refused the request, it was not executed.
- :class:`OkxServerError` / :class:`OkxConnectionError` / :class:`OkxBadReply`: a call that
  creates no order failed.
- :class:`OkxOutcomeUnknown`: a call that may have created an order failed without saying whether
  it did (HTTP 5xx, ``50001`` service unavailable, ``50004`` "endpoint request timeout (does not
  mean that the request was successful or failed, please check the request result)", ``50013``
  system busy, ``50026`` system error, ``51149`` order timed out, a timeout, a dropped connection,
  an unreadable reply).  The order is queried by ``clOrdId``, never sent again.

:func:`error_for` maps a refusal to its class.
"""

from __future__ import annotations

__all__ = [
    "UNKNOWN_CODES",
    "OkxAuthError",
    "OkxBadReply",
    "OkxCancelRefused",
    "OkxConnectionError",
    "OkxError",
    "OkxOrderRejected",
    "OkxOutcomeUnknown",
    "OkxParameterError",
    "OkxRateLimited",
    "OkxRejected",
    "OkxServerError",
    "OkxTimestampError",
    "OkxUnknownOrder",
    "error_for",
]

# The outcome of an order request answered with these is unknown (see the module docstring).
UNKNOWN_CODES = frozenset({"50001", "50004", "50013", "50026", "51149"})
RATE_LIMIT_CODES = frozenset({"50011", "50061"})  # per endpoint; the sub-account's order limit
TIMESTAMP_CODES = frozenset({"50102", "50112"})  # expired, invalid OK-ACCESS-TIMESTAMP
NOT_FOUND_CODES = frozenset({"51603", "51503", "51400"})  # query, amend, cancel of an unknown order
CANCEL_REFUSED_CODES = frozenset({"51401", "51402", "51410"})  # already canceled, completed, canceling
PARAMETER_CODES = frozenset({"50014", "50015", "50016", "50024", "50025", "51000"})
DUPLICATE_CODE = "51016"  # duplicated clOrdId
ORDER_EXPIRED = "50037"  # arrived after its expTime: not processed


class OkxError(Exception):
    """Any failure of an OKX REST call; ``status`` is the HTTP status (0: none), ``code`` OKX's."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class OkxRejected(OkxError):
    """The venue refused the request: it was not executed."""


class OkxParameterError(OkxRejected):
    """50014..50025, 51000: a parameter is missing or wrong; fix the request, do not retry."""


class OkxOrderRejected(OkxRejected):
    """The order was refused (``sCode`` 51xxx: 51008 insufficient balance, 51016 duplicated clOrdId)."""

    @property
    def duplicate(self) -> bool:
        return self.code == DUPLICATE_CODE


class OkxUnknownOrder(OkxRejected):
    """51603 (order does not exist), 51503 / 51400 (amend / cancel of an order OKX does not know)."""


class OkxCancelRefused(OkxRejected):
    """51401 already canceled, 51402 already completed, 51410 being canceled."""


class OkxTimestampError(OkxRejected):
    """50102 / 50112: ``OK-ACCESS-TIMESTAMP`` expired or invalid (the clock is re-measured, retried once)."""


class OkxAuthError(OkxRejected):
    """50100..50115: key, passphrase, signature, IP whitelist or environment (50101) refused."""


class OkxRateLimited(OkxRejected):
    """50011 / 50061 / HTTP 429 still after the retries, or a window too long to wait for."""


class OkxServerError(OkxError):
    """HTTP 5xx or 50001 / 50004 / 50013 / 50026 on a call that creates no order."""


class OkxConnectionError(OkxError):
    """Timeout or broken connection on a call that creates no order."""


class OkxBadReply(OkxError):
    """A reply that is not the JSON expected."""


class OkxOutcomeUnknown(OkxError):
    """A call that may have created ``client_order_id`` failed without saying whether it did.

    Query it by ``clOrdId``; never send it again.  OKX does not process the request after
    ``deadline_ms`` (its ``expTime`` header, server time).
    """

    def __init__(
        self, message: str, *, inst_id: str, client_order_id: str, deadline_ms: int, status: int = 0
    ) -> None:
        super().__init__(message, status=status)
        self.inst_id, self.client_order_id, self.deadline_ms = inst_id, client_order_id, deadline_ms


def error_for(status: int, code: str, msg: str) -> OkxError:
    """The typed error of a refusal whose outcome is known (``code`` OKX's, "" when unreadable;
    ``status`` 0: an answer on the private WebSocket)."""
    kind: type[OkxError]
    if code in RATE_LIMIT_CODES or status == 429:
        kind = OkxRateLimited
    elif code in TIMESTAMP_CODES:
        kind = OkxTimestampError
    elif code.startswith("501") and len(code) == 5:
        kind = OkxAuthError
    elif code in NOT_FOUND_CODES:
        kind = OkxUnknownOrder
    elif code in CANCEL_REFUSED_CODES:
        kind = OkxCancelRefused
    elif code in PARAMETER_CODES:
        kind = OkxParameterError
    elif status >= 500 or code in UNKNOWN_CODES:
        kind = OkxServerError
    elif (code[:2] in ("51", "54") and len(code) == 5) or code == ORDER_EXPIRED:
        kind = OkxOrderRejected
    else:
        kind = OkxRejected
    if not status:  # a private WebSocket op's answer
        text = f"code {code}: {msg}"
    else:
        text = f"HTTP {status} code {code}: {msg}" if code else f"HTTP {status}: {msg}"
    return kind(text, status=status, code=code)
