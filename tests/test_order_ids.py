"""Client order ids never change between versions: a restart after an upgrade must produce the
same id for the same intent, or the venue could not refuse the re-sent order."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from actors.order_ids import client_order_id


def reference(intent_id: str) -> str:
    """The definition: ``td-`` + the first 29 lower-case base32 characters of the SHA-256."""
    digest = hashlib.sha256(intent_id.encode("utf-8")).digest()
    return "td-" + base64.b32encode(digest).decode("ascii").lower()[:29]


def test_known_ids_are_unchanged() -> None:
    # ids produced by earlier versions (journals and venues hold them)
    assert client_order_id("paper:UNITTEST/BTC:ema_cross:1509840000000000000:buy") == reference(
        "paper:UNITTEST/BTC:ema_cross:1509840000000000000:buy"
    )
    assert client_order_id("") == "td-4oymiquy7qobjgx36tejs35zeqt24"


@given(st.text(max_size=80))
def test_every_id_is_the_base32_of_the_sha256(intent_id: str) -> None:
    cid = client_order_id(intent_id)
    assert cid == reference(intent_id)
    assert len(cid) == 32 and cid.replace("-", "").isalnum() and cid == cid.lower()
