"""One symbol's exchangeInfo rules for the Binance execution actor: loaded, then kept fresh.

:class:`SymbolRulesLoader` holds the :class:`~adapters.binance.filters.SymbolRules` that
:class:`~adapters.binance.execution.BinanceExecution` checks every order against before it leaves.
They are fetched (after a clock sync) when first needed, retried with backoff until they load,
and reloaded every ``exchange_info_refresh_s``; a failed reload keeps the rules in force.
Until they are in, no order can leave ("not sent: no exchangeInfo"): :meth:`SymbolRulesLoader.problem`
says so for readiness, with the attempts that failed and the last error.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable

import anyio

from actors.timefmt import iso_utc
from adapters.binance.errors import BinanceError
from adapters.binance.filters import SymbolRules
from adapters.binance.http import BinanceHttpClient

__all__ = ["SymbolRulesLoader"]


class SymbolRulesLoader:
    """The rules of ``venue_symbol``, ``None`` until loaded; ``counters`` are the actor's, shared."""

    def __init__(
        self,
        client: Callable[[], Awaitable[BinanceHttpClient]],
        venue_symbol: str,
        *,
        refresh_s: float,
        backoff_initial_s: float,
        counters: dict[str, int],
        log: logging.LoggerAdapter[logging.Logger],
    ) -> None:
        self.client = client
        self.venue_symbol = venue_symbol
        self.refresh_s = refresh_s
        self.backoff_initial_s = backoff_initial_s
        self.counters = counters
        self.log = log
        self.rules: SymbolRules | None = None
        self.created_ns = time.time_ns()  # rules are wanted from here on
        self.loaded_ns = 0
        self.failures = 0  # failed attempts to load them (refreshes are counted apart)
        self.last_error = ""

    async def load(self) -> None:
        """Load the rules, retrying with backoff until they are in."""
        delay = self.backoff_initial_s
        while self.rules is None:
            try:
                await self.ensure()
            except (BinanceError, KeyError) as exc:
                self.log.warning("exchangeInfo failed (%s): retrying in %.1fs", exc, delay)
                await anyio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 30.0)

    async def refresh(self) -> None:
        """Reload exchangeInfo every ``exchange_info_refresh_s``: filters and order types change
        (tick sizes, minimum notionals, a symbol halted); a failed refresh keeps the rules in force."""
        while True:
            await anyio.sleep(self.refresh_s)
            try:
                rules = await self._fetch(await self.client())
            except (BinanceError, KeyError) as exc:
                self.counters["rules_refresh_failures"] = self.counters.get("rules_refresh_failures", 0) + 1
                self.log.warning("exchangeInfo refresh failed (%s): keeping the rules in force", exc)
                continue
            if rules != self.rules:
                self.log.info("exchangeInfo refreshed: %s rules changed", self.venue_symbol)
            self.rules, self.loaded_ns = rules, self.loaded_ns or time.time_ns()
            self.counters["rules_refreshes"] = self.counters.get("rules_refreshes", 0) + 1

    async def ensure(self) -> SymbolRules:
        """The rules, fetched (after a clock sync) if they are not loaded yet."""
        if self.rules is None:
            client = await self.client()
            try:
                await client.sync_time()
                rules = await self._fetch(client)
            except (BinanceError, KeyError) as exc:
                self.failures += 1
                self.last_error = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
                raise
            if self.rules is None:
                self.rules, self.loaded_ns = rules, time.time_ns()
        return self.rules

    def problem(self, now_ns: int, grace_s: float) -> str | None:
        """Why orders cannot leave (the rules are missing), once that has lasted ``grace_s``."""
        if self.rules is not None or (now_ns - self.created_ns) / 1e9 < grace_s:
            return None
        if not self.failures:
            return f"exchange rules not loaded since {iso_utc(self.created_ns)} (no reply yet)"
        return (
            f"exchange rules not loaded since {iso_utc(self.created_ns)} "
            f"({self.failures} failed attempts; last error: {self.last_error})"
        )

    async def _fetch(self, client: BinanceHttpClient) -> SymbolRules:
        info = await client.exchange_info()
        sym = next((s for s in info.symbols if s.symbol == self.venue_symbol), None)
        if sym is None:
            raise KeyError(f"{self.venue_symbol} is not in exchangeInfo")
        return SymbolRules.from_symbol(sym)
