"""OKX v5 public wire Structs, field names verbatim (``instId``, ``seqId``, ``tickSz`` ...).

Venue schemas are tolerant: OKX adds fields (``seqId``/``prevSeqId`` arrived in 2022, the
``books`` checksum is being phased out), so unknown fields are ignored.  Numbers stay the strings
OKX sends: the checksum is computed over them verbatim, and prices become exact ``Decimal`` only
when a message is built (:mod:`adapters.okx.data`).

Frames (public WebSocket, "WebSocket API" of the OKX v5 docs):

- push: ``{"arg": {"channel", "instId"}, "action"?: "snapshot"|"update", "data": [...]}``;
- event: ``{"event": "subscribe"|"unsubscribe"|"error", "arg"?, "code"?, "msg"?, "connId"?}``;
- the text ``pong``, OKX's answer to our ``ping``.

REST: ``GET /api/v5/public/instruments`` -> ``{"code": "0", "msg": "", "data": [instrument]}``.
"""

from __future__ import annotations

import msgspec

__all__ = [
    "INSTRUMENTS_DECODER",
    "OkxArg",
    "OkxBookData",
    "OkxBookPush",
    "OkxEvent",
    "OkxFrame",
    "OkxInstrument",
    "OkxInstrumentsReply",
    "OkxTicker",
    "OkxTickersPush",
    "OkxTrade",
    "OkxTradesPush",
]

Level = list[str]  # [price, size, liquidated orders (deprecated, "0"), orders at the level]


class OkxArg(msgspec.Struct, frozen=True):
    channel: str
    instId: str = ""


class OkxFrame(msgspec.Struct, frozen=True):
    """Envelope of every JSON frame: enough to route it before the payload is decoded."""

    arg: OkxArg | None = None
    event: str | None = None
    action: str | None = None
    data: msgspec.Raw = msgspec.Raw()  # empty: no data (an event)
    code: str = ""
    msg: str = ""
    connId: str = ""


class OkxEvent(msgspec.Struct, frozen=True):
    """A subscribe/unsubscribe ack or an ``error`` event (e.g. 60012 bad request, 60018 no such channel)."""

    event: str
    arg: OkxArg | None = None
    code: str = ""
    msg: str = ""
    connId: str = ""


class OkxBookData(msgspec.Struct, frozen=True):
    asks: list[Level]
    bids: list[Level]
    ts: str
    checksum: int | None = None
    seqId: int | None = None
    prevSeqId: int | None = None


class OkxBookPush(msgspec.Struct, frozen=True):
    arg: OkxArg
    data: list[OkxBookData]
    action: str = "snapshot"


class OkxTrade(msgspec.Struct, frozen=True):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str


class OkxTradesPush(msgspec.Struct, frozen=True):
    arg: OkxArg
    data: list[OkxTrade]


class OkxTicker(msgspec.Struct, frozen=True):
    instId: str
    bidPx: str
    bidSz: str
    askPx: str
    askSz: str
    ts: str
    last: str = ""
    lastSz: str = ""


class OkxTickersPush(msgspec.Struct, frozen=True):
    arg: OkxArg
    data: list[OkxTicker]


class OkxInstrument(msgspec.Struct, frozen=True):
    instId: str
    instType: str
    tickSz: str
    lotSz: str
    minSz: str
    state: str
    baseCcy: str = ""
    quoteCcy: str = ""
    maxMktSz: str = ""
    maxLmtSz: str = ""


class OkxInstrumentsReply(msgspec.Struct, frozen=True):
    code: str
    data: list[OkxInstrument] = []
    msg: str = ""


INSTRUMENTS_DECODER = msgspec.json.Decoder(OkxInstrumentsReply)
