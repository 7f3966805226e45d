"""Loading OKX spot instrument rules at start and refreshing them (tenacity).

``GET {rest_url}/api/v5/public/instruments?instType=SPOT`` (public, no signature; the demo
trading environment wants the ``x-simulated-trading: 1`` header).  :meth:`OkxRulesLoader.run`
loads once, says so through ``task_status`` (started even when the first load failed: the feed
must not wait on REST), then reloads every ``refresh_s``.  Each load is retried with exponential
back-off and jitter on connection errors, timeouts, HTTP errors and OKX error codes (e.g. 50011
rate limit, 50013 busy, 50001 unavailable); a load that still fails keeps the rules it had and is
counted (``load_errors``).  A watched instrument that changes state (``live`` -> ``suspend``) or
is missing from the reply is logged.

Takes: nothing (it asks OKX).  Gives: :attr:`OkxRulesLoader.rules` (instId -> :class:`OkxRules`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import aiohttp
import anyio
from anyio.abc import TaskStatus
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from adapters.okx.instruments import OkxRestError, OkxRules, parse_instruments

__all__ = ["INSTRUMENTS_PATH", "OkxRulesLoader"]

log = logging.getLogger("tradingd.okx.rules")
INSTRUMENTS_PATH = "/api/v5/public/instruments"
RETRY_ON = (aiohttp.ClientError, OSError, TimeoutError, OkxRestError)


class OkxRulesLoader:
    """The rules of ``inst_ids`` (all SPOT instruments are kept; these are watched and logged)."""

    def __init__(
        self,
        rest_url: str,
        inst_ids: Sequence[str] = (),
        *,
        exchange: str = "okx",
        simulated: bool = False,
        refresh_s: float = 3600.0,
        timeout_s: float = 10.0,
        attempts: int = 4,
        retry_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self.url = f"{rest_url.rstrip('/')}{INSTRUMENTS_PATH}"
        self.inst_ids, self.exchange = tuple(inst_ids), exchange
        self.headers = {"x-simulated-trading": "1"} if simulated else {}
        self.refresh_s, self.timeout_s = refresh_s, timeout_s
        self.attempts, self.retry_s, self.retry_max_s = attempts, retry_s, retry_max_s
        self.rules: dict[str, OkxRules] = {}
        self.loads = self.load_errors = 0
        self.loaded_ns = 0
        self.last_error = ""

    @property
    def failures(self) -> int:
        """Failed loads (each after its retries), as the daemon's venue health reads them."""
        return self.load_errors

    async def run(self, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with aiohttp.ClientSession() as session:
            await self.refresh(session)
            task_status.started()
            while True:
                await anyio.sleep(self.refresh_s)
                await self.refresh(session)

    async def refresh(self, session: aiohttp.ClientSession) -> bool:
        """One load with retries; True when the rules were replaced."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RETRY_ON),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=self.retry_s, max=self.retry_max_s, jitter=self.retry_s),
            sleep=anyio.sleep,
            reraise=True,
        )
        try:
            rules: dict[str, OkxRules] = await retrying(self._load_once, session)
        except RETRY_ON as exc:
            self.load_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "okx instruments not loaded (%s): keeping the rules we have", exc, extra=self._extra("*")
            )
            return False
        self._note_changes(rules)
        self.rules, self.loaded_ns, self.last_error = rules, time.time_ns(), ""
        self.loads += 1
        return True

    async def _load_once(self, session: aiohttp.ClientSession) -> dict[str, OkxRules]:
        with anyio.fail_after(self.timeout_s):
            async with session.get(self.url, params={"instType": "SPOT"}, headers=self.headers) as resp:
                body = await resp.read()
                if resp.status == 429:
                    raise OkxRestError("50011", "rate limit reached (HTTP 429)")
                if resp.status >= 500:
                    raise OkxRestError(str(resp.status), f"HTTP {resp.status}")
        return parse_instruments(body)

    def _note_changes(self, rules: dict[str, OkxRules]) -> None:
        for inst in self.inst_ids:
            new, old = rules.get(inst), self.rules.get(inst)
            if new is None:
                log.warning("okx instrument %s not in the instruments reply", inst, extra=self._extra(inst))
            elif new.state != "live" and (old is None or old.state != new.state):
                log.warning("okx instrument %s is %s: no orders", inst, new.state, extra=self._extra(inst))
            elif old is not None and old.state != "live":
                log.info("okx instrument %s is live again", inst, extra=self._extra(inst))

    def _extra(self, inst: str) -> dict[str, str]:
        return {"component": "okx-rules", "exchange": self.exchange, "symbol": inst, "conn": "rest:rules"}
