"""The supervisor: builds symbol groups and account ledgers from config and keeps them running.

It owns one task group per symbol group (each under its own cancel scope, so one group
can be started, stopped or restarted without touching the others) and one portfolio
actor per account.  ``apply_config`` carries out a reload diff: start and stop groups,
restart groups whose feed/instrument/account changed, update strategy and risk
parameters in place for the rest — actors a change does not touch keep running and
their queues keep flowing, so no market message is lost.

It is also the health server's provider: ``status()``, ``readiness()``, ``halt()``,
``resume()``; the venue's part of readiness and status (exchange rules, REST, user data stream)
is :mod:`daemon.venue_health`.  Each account's balance check (:mod:`daemon.balance_check`) runs
once before ``run`` reports started (so before READY), then every ``balance_check_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from typing import Any

import anyio
import msgspec
from anyio.abc import TaskGroup

from actors.account_risk import AccountRisk
from actors.balance_ledger import BalanceLedger
from actors.channels import Channel, Router, Tap
from actors.messages import HaltChanged, LedgerAdjusted, Message, stamp
from actors.order_fold import OrderFold
from actors.portfolio import Portfolio
from actors.runtime import Actor, GroupState, RestartPolicy, run_supervised
from adapters.binance.account_stream import AccountUserStream
from adapters.paper.account import PaperAccountState
from daemon import display, venue_health
from daemon.balance_check import BalanceChecker
from daemon.config import Config, ConfigDiff, ConfigError, GroupConfig, PaperAccount, diff_configs
from daemon.config_schema import BinanceAccount
from daemon.feed_hubs import FeedHubs
from daemon.group import SymbolGroup
from daemon.halts import HaltBook, HaltScope, describe
from daemon.persistence import StrategyView
from daemon.restore import restore_group

log = logging.getLogger("tradingd.supervisor")
ZERO = Decimal(0)


class AccountRuntime:
    def __init__(self, name: str, cfg: Config, tap: Tap | None) -> None:
        acct = cfg.accounts[name]
        self.name = name
        # A Binance account's balances are the venue's; its paper state is an unused placeholder.
        self.paper = PaperAccountState(acct if isinstance(acct, PaperAccount) else PaperAccount(), name)
        assets = {g.symbol: (g.instrument.base, g.instrument.quote) for g in cfg.groups if g.account == name}
        inbox = Channel[Message](f"portfolio:{name}", cfg.channels.capacity)
        # The portfolio publishes nothing: its router only carries the tap for its system messages.
        balances = dict(acct.balances) if isinstance(acct, PaperAccount) else {}
        self.portfolio = Portfolio(name, Router(tap), inbox, balances, assets)
        self.portfolio.router.subscribe(inbox, (LedgerAdjusted,))  # from the balance check, journaled
        self.balance: BalanceChecker | None = None  # set by the supervisor, which knows the groups
        self.health = GroupState("*", f"portfolio:{name}")
        self.risk = AccountRisk(name, acct.risk)  # [accounts.X.risk]: limits over all its groups
        # A Binance account's user data stream: one subscription shared by all its symbols.
        self.user_stream = AccountUserStream(name, acct) if isinstance(acct, BinanceAccount) else None


class Supervisor:
    def __init__(
        self, cfg: Config, tap: Tap | None, durable: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        self.cfg = cfg
        self.tap = tap
        self.durable = durable
        self.groups: dict[tuple[str, str], SymbolGroup] = {}
        self.accounts: dict[str, AccountRuntime] = {}
        self.started_ns = time.time_ns()
        self.reloads = 0
        self.reload_failures = 0
        self.last_reload_error = ""
        self.last_reload_changes: list[str] = []
        self.halts = HaltBook()  # the operator's kill switch per scope (journaled, restored at start)
        # The journal lost records: every group starts halted (not lifted by resume; only
        # `tradingd journal recover` and a restart), and recovery asks the venue for used ids.
        self.journal_halt_reason = ""
        self.journal_sink: Callable[[Message], None] | None = None  # strategy checkpoints
        self._tg: TaskGroup | None = None
        self.feed_hubs: FeedHubs | None = None  # shared Binance market-data connections (set in run)
        self.recovered: dict[tuple[str, str], OrderFold] = {}  # journal state per group, used at its start
        self.recovered_ledgers: dict[str, BalanceLedger] = {}  # journaled balance ledger per account
        self._checking = False  # True once the start-up balance checks ran: a new account checks alone

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
            self.feed_hubs = FeedHubs(tg)
            for group_cfg in self.cfg.groups:
                if group_cfg.enabled:
                    await self._start_group(group_cfg)
            for acct in list(self.accounts.values()):  # before READY: what changed while we were down
                assert acct.balance is not None
                await acct.balance.check(at_start=True)
                tg.start_soon(acct.balance.run, name=f"balance-check:{acct.name}")
            self._checking = True
            task_status.started()
            await anyio.sleep_forever()

    def _account(self, name: str) -> AccountRuntime:
        acct = self.accounts.get(name)
        if acct is None:
            acct = AccountRuntime(name, self.cfg, self.tap)
            self.accounts[name] = acct
            acct.balance = self._balance_checker(acct)
            assert self._tg is not None
            self._tg.start_soon(
                run_supervised, acct.portfolio, self.policy, acct.health, name=acct.portfolio.name
            )
            if acct.user_stream is not None:
                self._tg.start_soon(acct.user_stream.run, name=f"user-stream:{name}")
            if self._checking:  # an account added by a reload: its first check once its groups run
                self._tg.start_soon(self._check_new_account, acct.balance, name=f"balance-check:{name}")
        return acct

    def _balance_checker(self, acct: AccountRuntime) -> BalanceChecker:
        """The account's balance check; a Binance account's ledger continues the journal's."""
        acct_cfg = self.cfg.accounts[acct.name]
        recovered = self.recovered_ledgers.get(acct.name)
        if recovered is not None and not isinstance(acct_cfg, PaperAccount):
            acct.portfolio.ledger = recovered.copy()  # a paper venue restarts: its ledger does too

        async def fetch() -> dict[str, Decimal]:
            venue = next((g.venue for g in self.groups.values() if g.cfg.account == acct.name), None)
            ask = getattr(venue, "balances", None)
            if ask is None:  # a paper account: its book is the venue
                return {a: total for a, (total, _) in acct.paper.snapshot().items()}
            got = await ask()
            return {
                a: got.free.get(a, ZERO) + got.locked.get(a, ZERO)
                for a in got.free.keys() | got.locked.keys()
            }

        def halt(reason: str) -> None:
            self.halt(reason, scope="account", target=acct.name, by="balance check")

        return BalanceChecker(
            acct.name, acct_cfg, acct.portfolio, fetch, lambda: self.asset_units(acct.name), halt
        )

    async def _check_new_account(self, checker: BalanceChecker | None) -> None:
        assert checker is not None
        await checker.check(at_start=True)
        await checker.run()

    def asset_units(self, account: str) -> dict[str, Decimal]:
        """Per asset of the account's groups its unit: the base asset's step, the quote's tick (<= 0.01)."""
        units: dict[str, Decimal] = {}
        for g in self.groups.values():
            if g.cfg.account != account:
                continue
            inst = g.cfg.instrument
            for asset, unit in (
                (inst.base, inst.step_size),
                (inst.quote, min(inst.tick_size, Decimal("0.01"))),
            ):
                units[asset] = min(units.get(asset, unit), unit)
        return units

    async def _start_group(self, cfg: GroupConfig) -> None:
        assert self._tg is not None
        acct = self._account(cfg.account)
        acct.portfolio.set_assets(cfg.symbol, cfg.instrument.base, cfg.instrument.quote)
        group = SymbolGroup(
            cfg,
            acct.paper,
            acct.portfolio,
            self.tap,
            self.cfg.channels,
            self.policy,
            durable=self.durable,
            venue_account=self.cfg.accounts[cfg.account],
            account_risk=acct.risk,
            account_stream=acct.user_stream,
            feed=self.feed_hubs.feed_for(cfg) if self.feed_hubs is not None else None,
        )
        if reason := self.halts.reason(cfg.account, group.name):
            group.health.admin_halt(reason)
        if self.journal_halt_reason:
            group.health.halt(self.journal_halt_reason)
        group.strategy.checkpoint_sink = self.journal_sink
        fold = self.recovered.pop(cfg.key, None)
        if fold is None and hasattr(group.venue, "open_orders"):
            fold = OrderFold(cfg.exchange, cfg.symbol, cfg.account)  # nothing journaled: still ask the venue
        if fold is not None:
            policy = getattr(self.cfg.accounts.get(cfg.account), "foreign_orders", "flag")
            done = await restore_group(
                group,
                fold,
                getattr(acct, "paper", None),
                foreign_orders=policy,
                journal_damaged=bool(self.journal_halt_reason),
            )
            group.recovery = done
            log.info(
                "group recovered from the journal: %s",
                "; ".join(done),
                extra={"component": "recovery", "exchange": cfg.exchange, "symbol": cfg.symbol},
            )
        self.groups[cfg.key] = group
        await self._tg.start(group.run, name=f"group:{group.name}")
        log.info(
            "group started", extra={"component": "supervisor", "exchange": cfg.exchange, "symbol": cfg.symbol}
        )

    def strategy_states(self) -> Iterator[StrategyView]:
        """Each running group's strategy (name, msgpack of its state) and market time, for snapshots."""
        for key, group in self.groups.items():
            strat = group.strategy
            name = str(getattr(strat.strategy, "name", ""))
            state = msgspec.msgpack.encode(strat.strategy_state)
            reached = group.state.last_ts_event
            yield StrategyView(key, group.cfg.account, name, state, reached, group.risk.day_snapshot())

    def _stop_group(self, key: tuple[str, str]) -> None:
        group = self.groups.pop(key, None)
        if group is not None:
            group.stop()
            log.info("group stopped", extra={"component": "supervisor", "exchange": key[0], "symbol": key[1]})

    def check_reload(self, new: Config) -> ConfigDiff:
        """The diff ``new`` would apply; ConfigError if it would abandon a position or open orders.

        Stopping or restarting a group starts its order book, position and stops afresh, so
        it is refused while the group holds a position or working orders.  A reload that would
        stop every running group (a file emptied or cut short while being written) is refused
        unless the new file sets ``daemon.allow_empty``.
        """
        diff = diff_configs(self.cfg, new)
        if self.groups and not new.daemon.allow_empty and set(self.groups) <= set(diff.stop):
            raise ConfigError(
                "reload refused: it would stop every running group ("
                + ", ".join(g.name for g in self.groups.values())
                + "); check the file is complete, or set daemon.allow_empty = true to stop them all"
            )
        busy = []
        for key in diff.stop + diff.restart:
            group = self.groups.get(key)
            if group is not None and (group.state.position != 0 or group.state.open_orders > 0):
                busy.append(
                    f"{group.name} (position {group.state.position}, {group.state.open_orders} open orders)"
                )
        if busy:
            raise ConfigError(
                "reload refused: it would stop or restart " + ", ".join(busy) + "; close the position and "
                "let orders finish first, or keep the group's feed, instrument and account unchanged"
            )
        return diff

    async def apply_config(self, new: Config) -> ConfigDiff:
        """Carry out the diff between the running config and ``new`` (see ``check_reload``)."""
        diff = self.check_reload(new)
        self.cfg = new
        for name, acct_cfg in new.accounts.items():
            if name in self.accounts:
                self.accounts[name].risk.update(acct_cfg.risk)
                if (checker := self.accounts[name].balance) is not None:
                    checker.update(acct_cfg)
            if name in self.accounts and isinstance(acct_cfg, PaperAccount):
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
        for halt in self.halts.active.values():
            reasons.append(f"trading halted by the operator: {describe(halt)}")
        for acct in self.accounts.values():
            if acct.health.halt_reason:
                reasons.append(f"account {acct.name} ledger halted: {acct.health.halt_reason}")
        for group in self.groups.values():
            if group.health.halt_reason:
                reasons.append(f"group {group.name} halted: {group.health.halt_reason}")
            elif group.health.admin_reason and group.health.admin_reason != self.halts.reason(
                group.cfg.account, group.name
            ):
                reasons.append(f"group {group.name} halted: {group.health.admin_reason}")
            age = group.feed_age_s(now)
            if age is None and (now - self.started_ns) / 1e9 > stale_after:
                reasons.append(f"feed {group.name} has sent nothing in {stale_after:g}s")
            elif age is not None and age > stale_after:
                reasons.append(f"feed {group.name} stale for {age:.0f}s")
        reasons += venue_health.readiness(self, now)
        return reasons

    @property
    def admin_halt_reason(self) -> str:
        """The daemon-wide halt in force, "" if none."""
        halt = self.halts.active.get(("daemon", ""))
        return describe(halt) if halt is not None else ""

    def halt(self, reason: str, scope: HaltScope = "daemon", target: str = "", by: str = "") -> None:
        """Kill switch: no new exposure on the scope's groups (exits and stop-losses still go
        through); journaled (through the tap) and restored at the next start, until :meth:`resume`.

        Each group that was not halted yet cancels its open entry orders (``risk.halt_cancels_orders``).
        """
        exchange, symbol = target.split(":", 1) if scope == "group" else ("*", "*")
        msg = HaltChanged(
            scope=scope,
            target=target,
            halted=True,
            reason=reason or "halted by admin",
            by=by,
            **stamp(exchange, symbol, time.time_ns()),
        )
        self.apply_halt(msg)
        if self.tap is not None:
            self.tap(msg)

    def resume(self, scope: HaltScope = "daemon", target: str = "", by: str = "") -> None:
        """Lift the scope's kill switch (journaled). A supervisor halt (an actor that kept failing)
        and a journal-damage halt stay, and so does a halt of another scope covering a group."""
        exchange, symbol = target.split(":", 1) if scope == "group" else ("*", "*")
        msg = HaltChanged(
            scope=scope, target=target, halted=False, by=by, **stamp(exchange, symbol, time.time_ns())
        )
        self.apply_halt(msg)
        if self.tap is not None:
            self.tap(msg)

    def apply_halt(self, msg: HaltChanged) -> None:
        """Put ``msg`` in force on the running groups (also used for halts restored from the journal)."""
        self.halts.apply(msg)
        for group in self.groups.values():
            covered = msg.scope == "daemon" or msg.target == (
                group.cfg.account if msg.scope == "account" else group.name
            )
            if not covered:
                continue  # another scope's halt, or a group's own (reconciliation) halt, stays
            reason = self.halts.reason(group.cfg.account, group.name)
            if reason:
                group.health.admin_halt(reason)
            else:
                group.health.admin_resume()

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
            "accounts": {name: self._account_status(a, now) for name, a in self.accounts.items()},
            "feeds": self.feed_hubs.status() if self.feed_hubs is not None else [],
        }

    def _account_status(self, acct: AccountRuntime, now: int) -> dict[str, object]:
        pnl: dict[str, dict[str, Decimal]] = {}  # per quote asset: realized, unrealized, fees
        ticks: dict[str, Decimal] = {}  # per quote asset: the finest tick of its groups (display)
        for g in self.groups.values():
            if g.cfg.account != acct.name:
                continue
            tick = g.cfg.instrument.tick_size
            ticks[g.cfg.instrument.quote] = min(ticks.get(g.cfg.instrument.quote, tick), tick)
            row = pnl.setdefault(
                g.cfg.instrument.quote, dict.fromkeys(("realized", "unrealized", "fees"), ZERO)
            )
            row["realized"] += g.order.position.realized_pnl
            row["unrealized"] += _unrealized(g)
            row["fees"] += g.order.position.fees
        return {
            **acct.portfolio.snapshot(),
            "risk": acct.risk.status(),
            "pnl_by_quote": {
                q: {k: display.money(v, ticks[q]) for k, v in row.items()} for q, row in sorted(pnl.items())
            },
            "halted": acct.health.halted,
            "actor": _actor_status(acct.portfolio, now),
            "venue": venue_health.account_status(acct),
            "balance_check": acct.balance.status() if acct.balance is not None else None,
        }

    def _group_status(self, group: SymbolGroup, now: int) -> dict[str, object]:
        st = group.state
        tick, step = group.cfg.instrument.tick_size, group.cfg.instrument.step_size
        pos = group.order.position
        return {
            "exchange": group.cfg.exchange,
            "symbol": group.cfg.symbol,
            "halted": group.health.halted,
            "halt_reason": group.health.reason,
            # rounded to the instrument for a person (the exact values are in the journal/PostgreSQL)
            "last_price": display.price(st.last_price, tick),
            "position": display.quantity(st.position, step),
            "avg_price": display.price(st.avg_price, tick),
            "realized_pnl": display.money(st.realized_pnl, tick),
            "unrealized_pnl": display.money(_unrealized(group), tick),
            "fees": display.money(pos.fees, tick),
            "other_fees": {k: str(v.normalize()) for k, v in pos.other_fees.items()},
            "open_orders": st.open_orders,
            "risk_day": group.risk.day_status(),
            "recovery": group.recovery,
            "feed": msgspec.to_builtins(group.feed.feed.statistics()),
            "venue": venue_health.group_status(group),
            "strategy": msgspec.to_builtins(group.cfg.strategy),
            "risk": msgspec.to_builtins(group.cfg.risk),
            "actors": [_actor_status(a, now) for a in group.actors],
        }


def _unrealized(group: SymbolGroup) -> Decimal:
    """Mark-to-market of the group's position at its last trade price (0 before any price)."""
    last = group.state.last_price
    pos = group.order.position
    return ZERO if last is None or not pos.quantity else pos.unrealized(last)


def _actor_status(a: Actor, now: int) -> dict[str, object]:
    return {
        "name": a.name,
        "kind": a.kind,
        "state": a.status,
        "restarts": a.restarts,
        "handled": a.handled,
        "poisoned": a.poisoned,
        "last_message_age_s": None if not a.last_message_ns else round((now - a.last_message_ns) / 1e9, 3),
        "queue_depth": a.inbox.depth(),
        "last_error": a.last_error,
    }
