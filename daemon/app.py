"""The running daemon: one root task group that owns everything, and the signal loop.

Start-up: load config (exit 2 if invalid), set up logging, open the Redis mirror, the
supervisor (symbol groups and account ledgers), the health server and the systemd
watchdog, then tell systemd READY=1.  Signals: SIGHUP reloads the config (RELOADING=1 …
READY=1; an invalid file keeps the old config and is reported on /status), SIGTERM and
SIGINT send STOPPING=1 and cancel the root scope; the process then exits 0.
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path

import anyio
import msgspec

from actors.channels import Tap
from actors.messages import ConfigReloaded, Message, Stamp, stamp
from daemon import operator_view, telemetry
from daemon.admin_token import file_warnings
from daemon.config import Config, ConfigError, PaperAccount, load_config
from daemon.flatten import flatten_scope
from daemon.halts import describe, iso
from daemon.health import open_health_server
from daemon.journal import JournalError
from daemon.logs import redact, register_url_password, setup_logging
from daemon.metrics import Metrics
from daemon.mirror import RedisMirror
from daemon.persistence import Persistence
from daemon.scopes import parse_scope
from daemon.sdnotify import SystemdNotifier
from daemon.service_watch import ServiceWatch, daemon_started, daemon_stopping
from daemon.state_lock import StateDirLocked, StateLock
from daemon.supervisor import Supervisor
from daemon.version import tradingd_version

log = logging.getLogger("tradingd.daemon")


class Daemon:
    """Everything one process runs, and the health provider for the HTTP server."""

    def __init__(self, cfg: Config, config_path: Path, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        _register_passwords(cfg)
        # One registry per daemon: several daemons in one process (tests) never share series.
        self.metrics = metrics = Metrics() if metrics is None else metrics
        self.notifier = SystemdNotifier.from_env()
        self.mirror: RedisMirror | None = None
        if cfg.redis.enabled:
            self.mirror = RedisMirror(cfg.redis, Path(cfg.daemon.state_dir), metrics)
        self.persistence: Persistence | None = None
        store = cfg.store
        if not store.enabled and _real_accounts(cfg):
            # Journal-before-send is never optional with real money: the journal runs, PostgreSQL stays off.
            store = msgspec.structs.replace(store, enabled=True, postgres=False)
            log.info(
                "order journal on for real account(s) %s ([store] is off: no PostgreSQL copy)",
                ", ".join(_real_accounts(cfg)),
                extra={"component": "store"},
            )
        if store.enabled:
            self.persistence = Persistence(store, Path(cfg.daemon.state_dir), metrics)
            self.persistence.assets_for = self._assets_for
            self.persistence.account_for = self._account_for
        durable = self.persistence.durable if self.persistence is not None else None
        self.supervisor = Supervisor(cfg, self._tap(), durable)
        telemetry.register(metrics, self.supervisor)
        self._flatten_lock = anyio.Lock()
        metrics.describe("tradingd_config_reloads_total", "counter", "Config reloads by result")

    def _assets_for(self, key: tuple[str, str]) -> tuple[str, str]:
        """(base, quote) of the group ``key`` in the running config, ("", "") if there is none."""
        for g in self.cfg.groups:
            if g.key == key:
                return g.instrument.base, g.instrument.quote
        return "", ""

    def _account_for(self, key: tuple[str, str]) -> str:
        """The account of the group ``key`` in the running config, "" if there is none."""
        return next((g.account for g in self.cfg.groups if g.key == key), "")

    def _real_venue_groups(self) -> list[tuple[str, str]]:
        """Groups trading on a venue that outlives the daemon (not paper): their ids can collide."""
        return [
            g.key
            for g in self.cfg.groups
            if g.enabled and not isinstance(self.cfg.accounts.get(g.account), PaperAccount)
        ]

    def _tap(self) -> Tap | None:
        """Every bus message to the Redis mirror; order-path messages also to the journal."""
        taps = [
            t for t in (self.mirror and self.mirror.offer, self.persistence and self.persistence.offer) if t
        ]
        if len(taps) <= 1:
            return taps[0] if taps else None
        first, second = taps

        def both(msg: Message) -> None:
            first(msg)
            second(msg)

        return both

    # --- health provider ------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        out = self.supervisor.status()
        out["config"] = {**out["config"], "path": str(self.config_path)}  # type: ignore[dict-item]
        out["redis"] = msgspec.to_builtins(self.mirror.statistics()) if self.mirror else {"state": "disabled"}
        out["store"] = self.persistence.status() if self.persistence else {"state": "disabled"}
        out["systemd"] = {"notify": self.notifier.enabled}
        return out

    def readiness(self) -> list[str]:
        reasons = self.supervisor.readiness()
        if self.mirror is not None and self.mirror.redis_state != "up":
            reasons.append(f"redis {self.mirror.redis_state}: order-path messages are held until it returns")
        if self.persistence is not None:
            reasons += self.persistence.readiness()
        return reasons

    def halt(self, reason: str, scope: str = "daemon", target: str = "", by: str = "admin API") -> None:
        """The kill switch for a scope; ScopeError (404) for an unknown scope, account or group."""
        checked, target = parse_scope(self.supervisor, scope, target)
        log.warning(
            "trading halted by admin (%s %s): %s", checked, target, reason, extra={"component": "admin"}
        )
        self.supervisor.halt(reason, scope=checked, target=target, by=by)

    def resume(self, scope: str = "daemon", target: str = "", by: str = "admin API") -> None:
        checked, target = parse_scope(self.supervisor, scope, target)
        log.warning("trading resumed by admin (%s %s)", checked, target, extra={"component": "admin"})
        self.supervisor.resume(scope=checked, target=target, by=by)

    async def flatten(self, scope: str, target: str, by: str, timeout_s: float) -> dict[str, object]:
        """Cancel the scope's orders, close its positions, leave it halted (daemon.flatten)."""
        checked, target = parse_scope(self.supervisor, scope, target)
        async with self._flatten_lock:  # one flatten at a time: each order canceled once
            report = await flatten_scope(self.supervisor, checked, target, by, timeout_s)
        log.warning(
            "flatten (%s %s) %s: %s",
            checked,
            target,
            "done" if report.ok else "NOT complete",
            "; ".join(
                f"{g.group} position {g.position_after}, {g.open_orders_after} open" for g in report.groups
            ),
            extra={"component": "admin"},
        )
        out: dict[str, object] = msgspec.to_builtins(report)
        return out

    async def operator_status(self) -> dict[str, object]:
        """Everything `tradingd status` shows, rounded for a person."""
        reasons = self.readiness()
        sup = self.supervisor
        return {
            "version": tradingd_version(),
            "time": iso(time.time_ns()),
            "started": iso(sup.started_ns),
            "ready": not reasons,
            "reasons": reasons,
            "halts": [describe(h) for h in sup.halts.active.values()],
            "groups": operator_view.groups(sup),
            "orders": operator_view.open_orders(sup),
            "balances": await operator_view.balances(sup),
        }

    def orders(self) -> list[dict[str, object]]:
        return operator_view.open_orders(self.supervisor)

    async def balances(self) -> list[dict[str, object]]:
        return await operator_view.balances(self.supervisor)

    # --- lifecycle ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Mirror outside, trading inside: on shutdown the groups stop first (their last order
        events still reach the mirror), then the mirror keeps what Redis has not got on disk."""
        try:
            await self._run()
        finally:
            if self.persistence is not None:
                await self.persistence.aclose()

    async def _run(self) -> None:
        async with anyio.create_task_group() as outer:
            if self.mirror is not None:
                await outer.start(self.mirror.run)
            if self.persistence is not None:
                # Restart recovery before anything trades: the journal's open orders and positions
                # go back into their groups (reconciled with the venue) as the supervisor starts them.
                await self.persistence.check_store(self._real_venue_groups())
                self.supervisor.recovered = await anyio.to_thread.run_sync(self.persistence.recover)
                self.supervisor.recovered_ledgers = self.persistence.ledgers  # copied by each account
                self.persistence.strategies = self.supervisor.strategy_states
                self.supervisor.journal_sink = self.persistence.offer
                for halt in self.persistence.halts.active.values():  # before any group starts
                    self.supervisor.halts.apply(halt)
                    log.warning(
                        "trading halt restored from the journal: %s",
                        describe(halt),
                        extra={"component": "admin"},
                    )
                if self.persistence.findings:
                    self.supervisor.journal_halt_reason = (
                        f"journal damaged ({'; '.join(self.persistence.findings)}): trading halted; stop the "
                        "daemon, run `tradingd journal verify` and `tradingd journal recover`, then start it"
                    )
                await outer.start(self.persistence.run)
            outer.start_soon(self.notifier.watchdog_loop)
            async with anyio.create_task_group() as inner:
                await inner.start(self.supervisor.run)
                inner.start_soon(self._watch_services().run, name="service-watch")
                if self.cfg.health.enabled:
                    async with open_health_server(self.cfg.health, self, self.metrics) as server:
                        log.info(
                            "health server on http://%s:%d",
                            self.cfg.health.bind,
                            server.port,
                            extra={"component": "health"},
                        )
                        await self._serve(inner.cancel_scope)
                else:
                    await self._serve(inner.cancel_scope)
            outer.cancel_scope.cancel()

    def _watch_services(self) -> ServiceWatch:
        sup, store = self.supervisor, self.persistence
        return ServiceWatch(
            self._announce,
            lambda: list(sup.groups.values()),
            self.mirror,
            store.writer if store is not None and store.cfg.postgres else None,
            lambda: sup.cfg.daemon.feed_stale_after_s,
            sup.started_ns,
        )

    async def _serve(self, root: anyio.CancelScope) -> None:
        groups = ", ".join(g.name for g in self.supervisor.groups.values())
        self.notifier.ready(f"trading {len(self.supervisor.groups)} groups")
        log.info("tradingd ready: %s", groups or "no groups", extra={"component": "daemon"})
        restored = sum(1 for g in self.supervisor.groups.values() if g.recovery)
        recovered = f"{restored} groups restored from the journal" if restored else ""
        self._announce(daemon_started([g.name for g in self.supervisor.groups.values()], recovered))
        with anyio.open_signal_receiver(signal.SIGHUP, signal.SIGTERM, signal.SIGINT) as signals:
            async for signum in signals:
                if signum == signal.SIGHUP:
                    await self.reload()
                    continue
                name = signal.Signals(signum).name
                log.info("received %s, stopping", name, extra={"component": "daemon"})
                self._announce(daemon_stopping(f"received {name}"))
                self.notifier.stopping()
                root.cancel()
                return

    async def reload(self) -> None:
        """SIGHUP: parse, validate, diff, apply. An invalid file changes nothing."""
        self.notifier.reloading()
        sup = self.supervisor
        try:
            new = load_config(self.config_path)
            _register_passwords(new)
            sup.check_reload(new)
            if self.persistence is None and _real_accounts(new):
                raise ConfigError(
                    f"reload refused: account(s) {', '.join(_real_accounts(new))} trade a real venue, which "
                    "needs the order journal; it starts with the daemon: restart to add them"
                )
        except ConfigError as exc:
            error = redact(str(exc))  # shown on /status and mirrored to Redis: no password
            sup.reload_failures += 1
            sup.last_reload_error = error
            self.metrics.inc("tradingd_config_reloads_total", {"result": "invalid"})
            log.error(
                "config reload rejected, keeping the running config: %s", error, extra={"component": "config"}
            )
            self._announce(ConfigReloaded(ok=False, error=error, **_sys()))
            self.notifier.ready("reload rejected: " + error[:200])
            return
        try:
            diff = await sup.apply_config(new)
        except Exception as exc:
            sup.reload_failures += 1
            sup.last_reload_error = redact(f"reload failed while applying: {exc!r}")
            self.metrics.inc("tradingd_config_reloads_total", {"result": "failed"})
            log.exception(
                "config reload failed while applying; running groups kept", extra={"component": "config"}
            )
            self.notifier.ready("reload failed: " + redact(repr(exc))[:200])
            return
        self.cfg = new
        logging.getLogger().setLevel(new.daemon.log_level.upper())
        sup.reloads += 1
        sup.last_reload_error = ""
        sup.last_reload_changes = diff.describe()
        self.metrics.inc("tradingd_config_reloads_total", {"result": "applied"})
        log.info(
            "config reloaded: %s", "; ".join(diff.describe()) or "no changes", extra={"component": "config"}
        )
        self._announce(ConfigReloaded(ok=True, changes=diff.describe(), **_sys()))
        self.notifier.ready(f"trading {len(sup.groups)} groups")

    def _announce(self, msg: Message) -> None:
        if self.mirror is not None:
            self.mirror.offer(msg)


def _register_passwords(cfg: Config) -> None:
    """The Redis URL's and the DSN's passwords are masked in every log line, wherever they appear."""
    register_url_password(cfg.redis.url)
    register_url_password(cfg.store.dsn)


def _real_accounts(cfg: Config) -> list[str]:
    return sorted(name for name, acct in cfg.accounts.items() if not isinstance(acct, PaperAccount))


def _sys() -> Stamp:
    return stamp("*", "*", time.time_ns())


def run(config_path: str) -> int:
    """Entry point of ``tradingd run``: returns the process exit code."""
    try:
        cfg = load_config(config_path)
    except ConfigError as exc:
        setup_logging("info", "auto")
        log.error("%s", exc, extra={"component": "config"})
        return 2
    setup_logging(cfg.daemon.log_level, cfg.daemon.log_format)
    from daemon.secrets import export_postgres_credentials, inline_passwords

    for exported in export_postgres_credentials():
        log.info("%s", exported, extra={"component": "config"})
    for warning in inline_passwords(cfg.redis.url, cfg.store.dsn) + file_warnings(cfg.health):
        log.warning("%s", warning, extra={"component": "config"})
    from adapters.binance.credentials import credential_problems

    problems = credential_problems(cfg)  # secrets come from the environment only
    for problem in problems:
        log.error("%s", problem, extra={"component": "config"})
    if problems:
        return 2
    lock = StateLock(Path(cfg.daemon.state_dir))
    try:
        lock.acquire()
    except (StateDirLocked, OSError) as exc:
        log.error("%s", exc, extra={"component": "daemon"})
        return 2
    try:
        try:
            daemon = Daemon(cfg, Path(config_path).resolve())
        except JournalError as exc:
            log.error("cannot open the order journal: %s", exc, extra={"component": "journal"})
            return 2
        import uvloop  # noqa: F401 - the backend option below needs it importable

        anyio.run(daemon.run, backend="asyncio", backend_options={"use_uvloop": True})
    except KeyboardInterrupt:
        pass
    finally:
        lock.release()
    log.info("tradingd stopped", extra={"component": "daemon"})
    return 0
