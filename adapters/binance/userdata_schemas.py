"""Binance spot user data stream wire schemas: the account's own events as msgspec Structs.

In: frames of the WebSocket API (``wss://ws-api.binance.com:443/ws-api/v3``) after
``userDataStream.subscribe.signature`` -- replies ``{"id", "status", "result" | "error"}`` and
events ``{"subscriptionId": N, "event": {...}}`` -- or, on the deprecated listenKey stream, the bare
event object.  Events modelled here (spot docs, "User Data Streams"):

- ``executionReport``: one order update (``x`` execution type NEW / TRADE / CANCELED / REJECTED /
  EXPIRED / TRADE_PREVENTION / REPLACED, ``X`` order status); ``c`` is the client order id, except on
  a cancel where ``C`` holds the canceled order's id and ``c`` the cancel request's own;
- ``outboundAccountPosition``: free / locked balances of the assets an event changed;
- ``balanceUpdate``: a deposit, withdrawal or transfer (a delta);
- ``eventStreamTerminated``: the subscription ended (logout, or the venue closed it);
- ``listenKeyExpired`` (listenKey stream only): the key expired, no event follows on it.

Field names are the venue's, verbatim; unknown fields are ignored (Binance adds fields), and an
unknown event type is peeked at (``e``) and skipped, never an error.  Decoders are built once.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import msgspec

from adapters.binance.schemas import Millis

ZERO = Decimal(0)
OrderId = Annotated[int, msgspec.Meta(ge=-1, le=2**63 - 1)]


class BinanceUserError(msgspec.Struct, frozen=True):
    code: int = 0
    msg: str = ""


class BinanceUserEnvelope(msgspec.Struct, frozen=True):
    """One WebSocket API frame: a reply to our request (``id``) or a pushed ``event``.

    On the listenKey stream the event object is the whole frame: then ``e`` is set and the
    frame itself is the event.
    """

    id: int | str | None = None
    status: int | None = None
    result: msgspec.Raw = msgspec.Raw(b"")
    error: BinanceUserError | None = None
    subscriptionId: int | None = None
    event: msgspec.Raw = msgspec.Raw(b"")
    e: str | None = None


class _EventType(msgspec.Struct, frozen=True):
    e: str


class BinanceExecutionReport(msgspec.Struct, frozen=True):
    """``executionReport``: what happened to one order (``x``) and its status after it (``X``)."""

    e: str
    E: Millis
    s: str
    c: str
    S: str
    o: str
    x: str
    X: str
    i: OrderId
    q: Decimal
    p: Decimal = ZERO
    P: Decimal = ZERO
    f: str = ""
    C: str | None = None
    r: str = "NONE"
    l: Decimal = ZERO  # noqa: E741 - the venue's name for the last executed quantity
    z: Decimal = ZERO
    L: Decimal = ZERO
    n: Decimal | None = None
    N: str | None = None
    T: Millis = 0
    t: OrderId = -1
    m: bool = False
    w: bool = False
    O: Millis = 0  # noqa: E741 - the venue's name for the order creation time
    Z: Decimal = ZERO

    @property
    def client_order_id(self) -> str:
        """The order's own client id: ``C`` on a cancel (``c`` is then the cancel request's id)."""
        return self.C if self.x == "CANCELED" and self.C else self.c


class BinanceBalance(msgspec.Struct, frozen=True):
    a: str
    f: Decimal
    l: Decimal  # noqa: E741 - the venue's name for the locked amount


class BinanceAccountPosition(msgspec.Struct, frozen=True):
    """``outboundAccountPosition``: free and locked of every asset the triggering event changed."""

    e: str
    E: Millis
    B: list[BinanceBalance]
    u: Millis = 0


class BinanceBalanceUpdate(msgspec.Struct, frozen=True):
    """``balanceUpdate``: a deposit, withdrawal or transfer of ``d`` (signed) ``a``."""

    e: str
    E: Millis
    a: str
    d: Decimal
    T: Millis = 0


class BinanceStreamTerminated(msgspec.Struct, frozen=True):
    """``eventStreamTerminated``: the subscription is over; subscribe again."""

    e: str
    E: Millis = 0


class BinanceListenKeyExpired(msgspec.Struct, frozen=True):
    """``listenKeyExpired`` (listenKey stream): no more events on this key; connect with a new one."""

    e: str
    E: Millis | str = 0  # some Binance streams send the event time as a string
    listenKey: str = ""


class BinanceSubscribed(msgspec.Struct, frozen=True):
    """``result`` of ``userDataStream.subscribe(.signature)``."""

    subscriptionId: int


class BinanceListenKey(msgspec.Struct, frozen=True):
    """``POST /api/v3/userDataStream`` (deprecated listenKey stream)."""

    listenKey: str


UserEvent = (
    BinanceExecutionReport
    | BinanceAccountPosition
    | BinanceBalanceUpdate
    | BinanceStreamTerminated
    | BinanceListenKeyExpired
)

USER_ENVELOPE_DECODER = msgspec.json.Decoder(BinanceUserEnvelope)
EVENT_TYPE_DECODER = msgspec.json.Decoder(_EventType)
SUBSCRIBED_DECODER = msgspec.json.Decoder(BinanceSubscribed)
LISTEN_KEY_DECODER = msgspec.json.Decoder(BinanceListenKey)
EVENT_DECODERS: dict[str, msgspec.json.Decoder[UserEvent]] = {
    "executionReport": msgspec.json.Decoder(BinanceExecutionReport),
    "outboundAccountPosition": msgspec.json.Decoder(BinanceAccountPosition),
    "balanceUpdate": msgspec.json.Decoder(BinanceBalanceUpdate),
    "eventStreamTerminated": msgspec.json.Decoder(BinanceStreamTerminated),
    "listenKeyExpired": msgspec.json.Decoder(BinanceListenKeyExpired),
}


def _finite(name: str, value: Decimal | None) -> str:
    if value is None or (value.is_finite() and value >= ZERO and value.adjusted() <= 18):
        return ""
    return f"{name}: expected a finite non-negative number below 1e19, got {value}"


def check_event(event: UserEvent) -> str:
    """Why ``event`` holds a value no real frame carries (NaN, negative ...), or ``""``."""
    if isinstance(event, BinanceExecutionReport):
        for name in ("q", "p", "P", "l", "z", "L", "n", "Z"):
            bad = _finite(name, getattr(event, name))
            if bad:
                return bad
        return ""
    if isinstance(event, BinanceAccountPosition):
        for b in event.B:
            bad = _finite(f"B[{b.a}].f", b.f) or _finite(f"B[{b.a}].l", b.l)
            if bad:
                return bad
        return ""
    if isinstance(event, BinanceBalanceUpdate):
        return "" if event.d.is_finite() else f"d: expected a finite number, got {event.d}"
    return ""
