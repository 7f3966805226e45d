"""The captured OKX v5 frames (tests/data/okx, cryptofeed sample data, 2022) as Python values.

Used by the fake OKX server, the OKX tests and the benchmark.  The 2022 capture has no
``seqId``/``prevSeqId``; :func:`numbered_books` adds them the way OKX sends them today
(snapshot ``prevSeqId`` -1, each update's ``prevSeqId`` the previous ``seqId``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

DATA = Path(__file__).resolve().parent / "data/okx"
WS_CAPTURE = DATA / "OKX.ws.1.0"
INSTRUMENTS = DATA / "OKX.0.spot"
SYMBOLS = {"BTC-USDT": "BTC/USDT", "BTC-USD-220527": "BTC/USD-220527", "UNI-USD-SWAP": "UNI/USD-SWAP"}


class Frame(NamedTuple):
    ts: float  # receive time, unix seconds
    raw: str
    data: dict[str, Any]


def load_frames() -> list[Frame]:
    """Every frame OKX sent (acks and pushes), in order."""
    frames = []
    for line in WS_CAPTURE.read_text().splitlines()[1:]:
        if " <- " in line:
            continue
        ts, _, raw = line.partition(": ")
        frames.append(Frame(float(ts), raw, json.loads(raw)))
    return frames


def instruments_reply() -> str:
    return INSTRUMENTS.read_text().splitlines()[0].partition(": ")[2]


def numbered_books(frames: list[Frame], start: int = 1000, step: int = 7) -> list[Frame]:
    """The frames with ``seqId``/``prevSeqId`` added to every ``books`` push."""
    last: dict[str, int] = {}
    out = []
    for f in frames:
        arg = f.data.get("arg", {})
        if arg.get("channel") != "books" or "data" not in f.data:
            out.append(f)
            continue
        inst = arg["instId"]
        seq = last.get(inst, start) + step
        item = dict(f.data["data"][0])
        item["prevSeqId"] = -1 if f.data["action"] == "snapshot" else last[inst]
        item["seqId"] = last[inst] = seq
        data = {**f.data, "data": [item]}
        out.append(Frame(f.ts, json.dumps(data, separators=(",", ":")), data))
    return out
