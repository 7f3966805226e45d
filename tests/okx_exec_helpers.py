"""Helpers for the OKX execution tests: an execution actor wired to tests/fake_okx_venue.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import anyio

from actors.channels import Channel, Router
from actors.messages import CancelOrder, Message, OrderType, Side, SubmitOrder, TimeInForce, stamp
from actors.order_ids import client_order_id
from adapters.okx.config import OkxAccount
from adapters.okx.execution import OkxExecution
from adapters.okx.signing import OkxCredentials, OkxSigner
from daemon.config_schema import Instrument
from tests.fake_okx_venue import API_KEY, API_SECRET, PASSPHRASE, FakeOkxVenue

INST = "BTC-USDT"
BTC = Instrument(base="BTC", quote="USDT", tick_size=Decimal("0.1"), step_size=Decimal("0.00000001"))
CREDS = OkxCredentials(API_KEY, OkxSigner(API_SECRET), PASSPHRASE)
M = TypeVar("M", bound=Message)


def account_config(venue: FakeOkxVenue, **options: Any) -> OkxAccount:
    return OkxAccount(
        rest_url=venue.url,
        ws_private_url=venue.ws_private_url,
        timeout_s=options.pop("timeout_s", 2.0),
        connect_timeout_s=2.0,
        resolve_backoff_max_s=0.2,
        **options,
    )


def make_actor(venue: FakeOkxVenue, **options: Any) -> tuple[OkxExecution, list[Message]]:
    """An execution actor for BTC/USDT, not started; what it publishes is collected."""
    events: list[Message] = []
    actor = OkxExecution(
        "okx",
        "BTC/USDT",
        Router(tap=events.append),
        Channel[Message]("okx-execution", 64),
        BTC,
        "main",
        account_config(venue, **options),
        last_price=lambda: venue.book.last.get(INST),
        credentials=CREDS,
        backoff_initial_s=0.05,
    )
    return actor, events


@asynccontextmanager
async def running(venue: FakeOkxVenue, **options: Any) -> AsyncIterator[tuple[OkxExecution, list[Message]]]:
    """A running execution actor (logged in, caught up, rules loaded) whose messages are collected."""
    actor, events = make_actor(venue, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(actor.run)
        await until(lambda: actor.stream.ready and actor.rules is not None)
        yield actor, events
        tg.cancel_scope.cancel()


def cid(name: str) -> str:
    """Our client order id of intent ``name`` (td- + 29 base32)."""
    return client_order_id(name)


def submit(
    name: str,
    side: Side = "buy",
    order_type: OrderType = "limit",
    qty: str = "0.01",
    price: str | None = "29000",
    stop: str | None = None,
    tif: TimeInForce = "gtc",
    **extra: Any,
) -> SubmitOrder:
    return SubmitOrder(
        **stamp("okx", "BTC/USDT", 1),
        intent_id=name,
        client_order_id=cid(name),
        side=side,
        order_type=order_type,
        quantity=Decimal(qty),
        price=None if price is None else Decimal(price),
        stop_price=None if stop is None else Decimal(stop),
        time_in_force=tif,
        **extra,
    )


def cancel(name: str) -> CancelOrder:
    return CancelOrder(**stamp("okx", "BTC/USDT", 1), client_order_id=cid(name))


def of(events: list[Message], kind: type[M], name: str | None = None) -> list[M]:
    return [
        e
        for e in events
        if isinstance(e, kind) and (name is None or getattr(e, "client_order_id", "") == cid(name))
    ]


def kinds(events: list[Message], name: str) -> list[str]:
    return [type(e).__name__ for e in events if getattr(e, "client_order_id", None) == cid(name)]


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.01)
