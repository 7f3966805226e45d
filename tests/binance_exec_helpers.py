"""Helpers for the Binance execution tests: an execution actor wired to tests/fake_binance.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, TypeVar

import anyio

from actors.channels import Channel, Router
from actors.messages import CancelOrder, Message, OrderType, Side, SubmitOrder, TimeInForce, stamp
from adapters.binance.execution import BinanceExecution
from adapters.binance.signing import Credentials, HmacSigner
from daemon.config_schema import BinanceAccount, Instrument
from tests.fake_binance import API_KEY, API_SECRET, FakeBinance

LTC = Instrument(base="LTC", quote="BTC", tick_size=Decimal("0.000001"), step_size=Decimal("0.001"))
CREDS = Credentials(API_KEY, HmacSigner(API_SECRET))
M = TypeVar("M", bound=Message)


def account_config(fake: FakeBinance, **options: Any) -> BinanceAccount:
    return BinanceAccount(
        rest_url=fake.url,
        ws_api_url=fake.ws_api_url,
        stream_url=fake.stream_url,
        timeout_s=options.pop("timeout_s", 2.0),
        resolve_backoff_max_s=0.2,
        **options,
    )


@asynccontextmanager
async def running(
    fake: FakeBinance,
    *,
    last_price: Callable[[], Decimal | None] | None = None,
    credentials: Credentials = CREDS,
    **options: Any,
) -> AsyncIterator[tuple[BinanceExecution, list[Message]]]:
    """A running execution actor for LTC/BTC (venue LTCBTC) whose published messages are collected."""
    actor, events = make_actor(fake, last_price=last_price, credentials=credentials, **options)
    async with anyio.create_task_group() as tg:
        tg.start_soon(actor.run)
        with anyio.fail_after(5):
            while actor.user_stream.catchups == 0:
                await anyio.sleep(0.01)
        yield actor, events
        tg.cancel_scope.cancel()


def make_actor(
    fake: FakeBinance,
    *,
    last_price: Callable[[], Decimal | None] | None = None,
    credentials: Credentials = CREDS,
    **options: Any,
) -> tuple[BinanceExecution, list[Message]]:
    """An execution actor for LTC/BTC (venue LTCBTC), not started; what it publishes is collected."""
    events: list[Message] = []
    actor = BinanceExecution(
        "binance",
        "LTC/BTC",
        Router(tap=events.append),
        Channel[Message]("binance-execution", 64),
        LTC,
        "main",
        account_config(fake, **options),
        last_price=last_price or (lambda: fake.price("LTCBTC")),
        credentials=credentials,
        backoff_initial_s=0.05,
    )
    return actor, events


def submit(
    cid: str,
    side: Side = "buy",
    order_type: OrderType = "limit",
    qty: str = "1",
    price: str | None = "0.003400",
    stop: str | None = None,
    tif: TimeInForce = "gtc",
) -> SubmitOrder:
    return SubmitOrder(
        **stamp("binance", "LTC/BTC", 1),
        intent_id=f"intent-{cid}",
        client_order_id=cid,
        side=side,
        order_type=order_type,
        quantity=Decimal(qty),
        price=None if price is None else Decimal(price),
        stop_price=None if stop is None else Decimal(stop),
        time_in_force=tif,
    )


def cancel(cid: str) -> CancelOrder:
    return CancelOrder(**stamp("binance", "LTC/BTC", 1), client_order_id=cid)


def of(events: list[Message], kind: type[M], cid: str | None = None) -> list[M]:
    return [
        e for e in events if isinstance(e, kind) and (cid is None or getattr(e, "client_order_id", "") == cid)
    ]


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not cond():
            await anyio.sleep(0.01)


def kinds(events: list[Message], cid: str) -> list[str]:
    return [type(e).__name__ for e in events if getattr(e, "client_order_id", None) == cid]
