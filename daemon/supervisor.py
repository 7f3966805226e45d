"""The supervisor: builds symbol groups and account ledgers from config and keeps them running.

It owns one task group per symbol group (each under its own cancel scope, so one group
can be started, stopped or restarted without touching the others) and one portfolio
actor per account.  ``apply_config`` carries out a reload diff: start and stop groups,
restart groups whose feed/instrument/account changed, update strategy and risk
parameters in place for the rest — actors a change does not touch keep running and
their queues keep flowing, so no market message is lost.

It is also the health server's provider: ``status()``, ``readiness()``, ``halt()``,
``resume()``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from actors.channels import Channel, Router, Tap
from actors.messages import Message
from actors.portfolio import Portfolio
from actors.runtime import GroupState, RestartPolicy, run_supervised
from adapters.paper.account import PaperAccountState
from daemon.config import Config, ConfigDiff, GroupConfig, diff_configs
from daemon.group import SymbolGroup

log = logging.getLogger("tradingd.supervisor")


class AccountRuntime:
    def __init__(self, name: str, cfg: Config, tap: Tap | None) -> None:
        acct = cfg.accounts[name]
        self.name = name
        self.paper = PaperAccountState(acct)
        assets = {g.symbol: (g.instrument.base, g.instrument.quote) for g in cfg.groups if g.account == name}
        inbox = Channel[Message](f"portfolio:{name}", cfg.channels.capacity)
        # The portfolio publishes nothing: its router only carries the tap for its system messages.
        self.portfolio = Portfolio(name, Router(tap), inbox, dict(acct.balances), assets)
        self.health = GroupState("*", f"portfolio:{name}")


class Supervisor:
    def __init__(self, cfg: Config, tap: Tap | None) -> None:
        self.cfg = cfg
        self.tap = tap
        self.groups: dict[tuple[str, str], SymbolGroup] = {}
        self.accounts: dict[str, AccountRuntime] = {}
        self.started_ns = time.time_ns()
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload_error = ""
        self.last_reload_changes: list[str] = []
        self.admin_halt_reason = ""
        self._tg: TaskGroup | None = None

    @property
    def policy(self) -> RestartPolicy:
        s = self.cfg.supervisor
        return RestartPolicy(
            max_restarts=s.max_restarts,
            window_s=s.window_s,
            backoff_initial_s=s.backoff_initial_s,
            backoff_max_s=s.backoff_max_s,
        )

    async def run(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Start accounts and groups, then keep them until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for group_cfg in self.cfg.groups:
                if group_cfg.enabled:
                    await self._start_group(group_cfg)
            task_status.started()
            await anyio.sleep_forever()

    def _account(self, name: str) -> AccountRuntime:
        acct = self.accounts.get(name)
        if acct is None:
            acct = AccountRuntime(name, self.cfg, self.tap)
            self.accounts[name] = acct
            assert self._tg is not None
            self._tg.start_soon(
                run_supervised, acct.portfolio, self.policy, acct.health, name=acct.portfolio.name
            )
        return acct

    async def _start_group(self, cfg: GroupConfig) -> None:
        assert self._tg is not None
        acct = self._account(cfg.account)
        acct.portfolio.set_assets(cfg.symbol, cfg.instrument.base, cfg.instrument.quote)
        group = SymbolGroup(cfg, acct.paper, acct.portfolio, self.tap, self.cfg.channels, self.policy)
        self.groups[cfg.key] = group
        await self._tg.start(group.run, name=f"group:{group.name}")
        log.info(
            "group started", extra={"component": "supervisor", "exchange": cfg.exchange, "symbol": cfg.symbol}
        )

    def _stop_group(self, key: tuple[str, str]) -> None:
        group = self.groups.pop(key, None)
        if group is not None:
            group.stop()
            log.info("group stopped", extra={"component": "supervisor", "exchange": key[0], "symbol": key[1]})

    async def apply_config(self, new: Config) -> ConfigDiff:
        """Carry out the diff between the running config and ``new``."""
        diff = diff_configs(self.cfg, new)
        self.cfg = new
        for name, acct_cfg in new.accounts.items():
            if name in self.accounts:
                self.accounts[name].paper.update_config(acct_cfg)
        by_key = {g.key: g for g in new.groups if g.enabled}
        for key in diff.stop + diff.restart:
            self._stop_group(key)
        for key in diff.update:
            self.groups[key].apply(by_key[key])
        for key in diff.restart + diff.start:
            await self._start_group(by_key[key])
        return diff

    # --- health provider ----------------------------------------------------------------------
    def readiness(self) -> list[str]:
        reasons = []
        now = time.time_ns()
        stale_after = self.cfg.daemon.feed_stale_after_s
        if self.admin_halt_reason:
            reasons.append(f"trading halted by admin: {self.admin_halt_reason}")
        for group in self.groups.values():
            if group.health.halted:
                reasons.append(f"group {group.name} halted: {group.health.halt_reason}")
            age = group.feed_age_s(now)
            if age is None and (now - self.started_ns) / 1e9 > stale_after:
                reasons.append(f"feed {group.name} has sent nothing in {stale_after:g}s")
            elif age is not None and age > stale_after:
                reasons.append(f"feed {group.name} stale for {age:.0f}s")
        return reasons

    def halt(self, reason: str) -> None:
        self.admin_halt_reason = reason or "halted by admin"
        for group in self.groups.values():
            group.health.halt(self.admin_halt_reason)

    def resume(self) -> None:
        self.admin_halt_reason = ""
        for group in self.groups.values():
            group.health.halted = False
            group.health.halt_reason = ""

    def status(self) -> dict[str, object]:
        now = time.time_ns()
        return {
            "uptime_s": round((now - self.started_ns) / 1e9, 3),
            "config": {
                "reloads": self.reloads,
                "reload_failures": self.reload_failures,
                "last_error": self.last_reload_error,
                "last_changes": self.last_reload_changes,
            },
            "groups": [self._group_status(g, now) for g in self.groups.values()],
            "accounts": {name: a.portfolio.snapshot() for name, a in self.accounts.items()},
        }

    def _group_status(self, group: SymbolGroup, now: int) -> dict[str, object]:
        st = group.state
        return {
            "exchange": group.cfg.exchange,
            "symbol": group.cfg.symbol,
            "halted": group.health.halted,
            "halt_reason": group.health.halt_reason,
            "last_price": str(st.last_price) if st.last_price is not None else None,
            "position": str(st.position),
            "avg_price": str(st.avg_price),
            "realized_pnl": str(st.realized_pnl),
            "open_orders": st.open_orders,
            "strategy": msgspec.to_builtins(group.cfg.strategy),
            "risk": msgspec.to_builtins(group.cfg.risk),
            "actors": [
                {
                    "name": a.name,
                    "kind": a.kind,
                    "state": a.status,
                    "restarts": a.restarts,
                    "handled": a.handled,
                    "last_message_age_s": None
                    if not a.last_message_ns
                    else round((now - a.last_message_ns) / 1e9, 3),
                    "queue_depth": a.inbox.depth(),
                    "last_error": a.last_error,
                }
                for a in group.actors
            ],
        }
