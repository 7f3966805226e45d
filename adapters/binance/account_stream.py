"""One user data stream per Binance account, shared by the execution actors of its symbols.

Binance pushes every order and balance event of an account on each user data stream; a
daemon trading several symbols of one account needs one subscription, not one per symbol.
:class:`AccountUserStream` owns that subscription (a :class:`BinanceUserStream`) and routes:

- ``executionReport`` to the execution actor of its symbol (``s``); a report for a symbol no
  actor trades (another tool's order) is counted in ``unrouted``;
- ``outboundAccountPosition`` (balances) to one actor of the account, so ``BalancesChanged``
  is published once;
- after every (re)connect, each registered actor's REST catch-up, one after the other.

The supervisor runs it (``run``) for as long as the account is in use; execution actors
``register`` when they start and unregister when they stop.

It also holds the account's :class:`~adapters.binance.server_clock.ServerClock` (``clock``): the
execution actors' REST clients measure it and sign with it, and so does the stream's
``userDataStream.subscribe.signature`` (measured through a registered actor's REST client before
a subscription when due, and again after a ``-1021``); one clock for every signed request of the
account.  And the account's :class:`~adapters.binance.venue_health.RestHealth` (``rest``), which
the execution actors' REST clients record into, and answers for the account in readiness
(:meth:`AccountUserStream.problems`): REST unreachable, banned or its key refused, the user data
stream not subscribed or not caught up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import anyio
from anyio.abc import TaskStatus

from adapters.binance.credentials import credentials_for
from adapters.binance.errors import BinanceConnectionError
from adapters.binance.server_clock import ServerClock
from adapters.binance.userdata import BinanceUserStream
from adapters.binance.userdata_schemas import BinanceExecutionReport, UserEvent
from adapters.binance.venue_health import RestHealth
from daemon.config_schema import BinanceAccount


class StreamClient(Protocol):
    """What the shared stream needs of an execution actor."""

    venue_symbol: str

    async def on_user_event(self, event: UserEvent) -> None: ...

    async def catch_up(self) -> None: ...

    async def listen_key(self, method: str, key: str) -> str: ...

    async def sync_clock(self, force: bool) -> None: ...


class AccountUserStream:
    """The user data stream of one account, routed to its symbols' execution actors."""

    def __init__(self, name: str, config: BinanceAccount, *, backoff_initial_s: float = 0.5) -> None:
        self.name = name
        self.config = config
        self.clients: dict[str, StreamClient] = {}
        self.unrouted = 0
        self.rest = RestHealth(name)
        self.clock = ServerClock()
        self.clock_sync_interval_s = 300.0
        creds = credentials_for(config)
        self.stream = BinanceUserStream(
            config.ws_api_url,
            creds.api_key,
            creds.signer,
            on_event=self._route,
            on_connect=self._catch_up,
            clock_ms=self.clock.now_ms,
            sync_clock=self._sync_clock,
            mode=config.user_stream,
            stream_url=config.stream_url,
            listen_key_api=self._listen_key if config.user_stream == "listen_key" else None,
            keepalive_s=config.listen_key_keepalive_s,
            recv_window_ms=config.recv_window_ms,
            connect_timeout_s=config.connect_timeout_s,
            backoff_initial_s=backoff_initial_s,
        )

    def register(self, client: StreamClient) -> Callable[[], None]:
        """An execution actor joins; returns the function that removes it."""
        self.clients[client.venue_symbol] = client

        def leave() -> None:
            if self.clients.get(client.venue_symbol) is client:
                del self.clients[client.venue_symbol]

        return leave

    def problems(self, now_ns: int, grace_s: float) -> list[str]:
        """Why this account cannot trade safely now (each after ``grace_s``); empty when it can."""
        found = (self.rest.problem(now_ns, grace_s), self.stream.problem(now_ns, grace_s))
        return [p for p in found if p is not None]

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        await self.stream.run(task_status=task_status)

    async def _route(self, event: UserEvent) -> None:
        if isinstance(event, BinanceExecutionReport):
            client = self.clients.get(event.s)
            if client is None:
                self.unrouted += 1
                return
            await client.on_user_event(event)
            return
        for client in list(self.clients.values())[:1]:  # account-wide (balances): published once
            await client.on_user_event(event)

    async def _catch_up(self) -> None:
        """Every symbol's REST catch-up; a failure makes the stream retry them all (fills dedupe)."""
        for client in list(self.clients.values()):
            await client.catch_up()

    async def _sync_clock(self, force: bool) -> None:
        """Measure the account's clock before a subscription, if due (or refused: ``force``)."""
        if not force and not self.clock.due(self.clock_sync_interval_s):
            return
        for client in self.clients.values():
            await client.sync_clock(force)
            return
        # Retried with back-off like any failed connection, until a symbol (a REST client) has joined.
        raise BinanceConnectionError("no execution actor registered yet: no REST client to sync the clock")

    async def _listen_key(self, method: str, key: str) -> str:
        for client in self.clients.values():
            return await client.listen_key(method, key)
        # Not an error that ends the stream: it retries (with back-off) until a symbol has joined.
        raise BinanceConnectionError("no execution actor registered yet: no REST client for the listenKey")
