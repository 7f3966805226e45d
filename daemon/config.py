"""The daemon's configuration: TOML decoded into frozen msgspec Structs, validated, diffed.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose
message names the key path, the line in the file where it can be found, and what was
expected.  ``diff_configs(old, new)`` says which symbol groups to start, stop, restart
or update in place on SIGHUP.

Secrets never live here: accounts name the environment variables that hold them.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Literal

import msgspec

from actors.params import BreakoutParams, RiskLimits, StrategyParams
from daemon.config_lines import line_of

MAX_PERIOD = 10_000  # indicator windows hold a multiple of this many bars
SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


Problems = Iterator[tuple[str, str]]


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is a message for the operator."""


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonSection(Base, frozen=True, kw_only=True):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    state_dir: str = ".state"
    feed_stale_after_s: float = 120.0


class HealthSection(Base, frozen=True, kw_only=True):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8787
    admin_token_env: str = "TRADINGD_ADMIN_TOKEN"


class RedisSection(Base, frozen=True, kw_only=True):
    enabled: bool = True
    url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "tradingd"
    encoding: Literal["msgpack", "json"] = "msgpack"
    maxlen: int = 100_000
    batch_size: int = 256
    flush_interval_ms: int = 5
    queue_size: int = 100_000
    order_path_memory: int = 10_000
    connect_timeout_s: float = 2.0
    retry_interval_s: float = 1.0


class StoreSection(Base, frozen=True, kw_only=True):
    """The order journal (under daemon.state_dir) and its PostgreSQL copy."""

    enabled: bool = False
    dsn: str = "postgresql://postgres@127.0.0.1:5432/tradingd"
    flush_interval_ms: int = 100
    batch_size: int = 1000


class SupervisorSection(Base, frozen=True, kw_only=True):
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0


class ChannelsSection(Base, frozen=True, kw_only=True):
    capacity: int = 4096
    batch_size: int = 1024


class PaperAccount(Base, frozen=True, kw_only=True):
    """A simulated account: the paper matching engine with these balances, fees and slippage."""

    exchange: Literal["paper"] = "paper"
    balances: dict[str, Decimal] = {}
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal("2")
    participation: Decimal = Decimal("1")
    latency_ms: int = 0


class ReplayFeed(Base, frozen=True, kw_only=True, tag_field="kind", tag="replay"):
    """Recorded data played as a live feed (``kind = "replay"``, the default)."""

    path: str
    format: Literal["candles", "trades"]
    speed: float = 1.0
    loop: bool = False
    interval_s: int = 60


class BinanceFeed(Base, frozen=True, kw_only=True, tag_field="kind", tag="binance"):
    """Binance spot market data over the combined WebSocket stream (production or testnet URLs)."""

    venue_symbol: str
    ws_url: str = "wss://stream.binance.com:9443"
    rest_url: str = "https://api.binance.com"
    streams: tuple[str, ...] = ("aggTrade", "bookTicker", "depth@100ms")
    silence_timeout_s: float = 30.0
    stall_timeout_s: float = 300.0


FeedConfig = ReplayFeed | BinanceFeed


class Instrument(Base, frozen=True, kw_only=True):
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal = Decimal("0")


class GroupConfig(Base, frozen=True, kw_only=True):
    """One (exchange, symbol) actor group."""

    exchange: str
    symbol: str
    account: str
    instrument: Instrument
    feed: FeedConfig
    strategy: StrategyParams = BreakoutParams()
    risk: RiskLimits = RiskLimits()
    bar_interval_s: int = 60
    enabled: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.exchange, self.symbol)


class Config(Base, frozen=True, kw_only=True):
    daemon: DaemonSection = DaemonSection()
    health: HealthSection = HealthSection()
    redis: RedisSection = RedisSection()
    store: StoreSection = StoreSection()
    supervisor: SupervisorSection = SupervisorSection()
    channels: ChannelsSection = ChannelsSection()
    accounts: dict[str, PaperAccount] = {}
    groups: list[GroupConfig] = []


# ---------------------------------------------------------------------------------------------


def _err(text: str, path: str, message: str, source: str) -> ConfigError:
    line = line_of(text, path) if text else None
    where = f"{source}:{line}: " if line else f"{source}: "
    return ConfigError(f"{where}{path}: {message}")


_MSGSPEC_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def _msgspec_path(msg: str) -> tuple[str, str]:
    """Split msgspec's 'Expected `int`, got `str` - at `$.a[0].b`' into ('a[0].b', 'Expected ...')."""
    m = _MSGSPEC_PATH.search(msg)
    if not m:
        return "", msg
    return m.group("path").lstrip("."), msg[: m.start()]


_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`$")


def _name_dict_key(raw: dict[str, object], path: str) -> str:
    """msgspec writes `accounts[...]` for a dict value; find which account it was."""
    if not path.startswith("accounts[...]"):
        return path
    accounts = raw.get("accounts")
    if isinstance(accounts, dict):
        for name, value in accounts.items():
            try:
                msgspec.convert(value, PaperAccount, strict=False)
            except msgspec.ValidationError:
                return path.replace("accounts[...]", f"accounts.{name}", 1)
    return path


def _default_feed_kind(raw: dict[str, object]) -> None:
    """``[groups.feed]`` without ``kind`` is a replay feed (the tagged union needs the tag)."""
    groups = raw.get("groups")
    for g in groups if isinstance(groups, list) else ():
        feed = g.get("feed") if isinstance(g, dict) else None
        if isinstance(feed, dict):
            feed.setdefault("kind", "replay")


def parse_config(text: str, source: str = "<config>") -> Config:
    """Decode and validate TOML text. Raises ConfigError naming key path, line and expectation."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None
    _default_feed_kind(raw)
    try:
        cfg = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        path, what = _msgspec_path(str(exc))
        path = _name_dict_key(raw, path)
        unknown = _UNKNOWN.match(what)
        if unknown:
            path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
            what = f"unknown key `{unknown.group(1)}` (check the spelling; see config.toml for every key)"
        raise _err(text, path or "(top level)", what, source) from None
    problems = list(_validate(cfg))
    if problems:
        path, what = problems[0]
        raise _err(text, path, what, source)
    return cfg


def load_config(path: str | Path) -> Config:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: config file is not UTF-8: {exc}") from None
    cfg = _resolve_paths(parse_config(text, str(p)), p.parent)
    for i, g in enumerate(cfg.groups):
        if g.enabled and isinstance(g.feed, ReplayFeed) and not Path(g.feed.path).is_file():
            raise _err(text, f"groups[{i}].feed.path", f"no such data file: {g.feed.path}", str(p))
    return cfg


INSTALL_ROOT = Path(__file__).resolve().parent.parent  # holds daemon/, actors/, adapters/


def _resolve_paths(cfg: Config, base: Path) -> Config:
    """Relative feed paths are relative to the config file; failing that, to the installation
    (so ``adapters/replay/data/...`` finds the bundled data wherever the config lives)."""
    groups = []
    for g in cfg.groups:
        if not isinstance(g.feed, ReplayFeed):
            groups.append(g)
            continue
        fp = Path(g.feed.path)
        if not fp.is_absolute():
            fp = (
                (base / fp).resolve()
                if (base / fp).exists() or not (INSTALL_ROOT / fp).exists()
                else INSTALL_ROOT / fp
            )
        groups.append(msgspec.structs.replace(g, feed=msgspec.structs.replace(g.feed, path=str(fp))))
    return msgspec.structs.replace(cfg, groups=groups)


def _bad(value: float | int | Decimal) -> bool:
    if isinstance(value, Decimal):
        return not value.is_finite()
    return isinstance(value, float) and not math.isfinite(value)


def _positive(path: str, value: float | int | Decimal, allow_zero: bool = False) -> Problems:
    if _bad(value) or value < 0 or (value == 0 and not allow_zero):
        yield path, f"expected a {'non-negative' if allow_zero else 'positive'} finite number, got {value}"


def _between(path: str, value: float | Decimal, low: float, high: float, what: str) -> Problems:
    if _bad(value) or not low <= value <= high:
        yield path, f"expected {what}, got {value}"


def _validate(cfg: Config) -> Problems:
    d, r, s, c = cfg.daemon, cfg.redis, cfg.supervisor, cfg.channels
    for path, value, zero_ok in (
        ("daemon.feed_stale_after_s", d.feed_stale_after_s, False),
        ("redis.maxlen", r.maxlen, False),
        ("redis.batch_size", r.batch_size, False),
        ("redis.flush_interval_ms", r.flush_interval_ms, False),
        ("redis.queue_size", r.queue_size, False),
        ("redis.order_path_memory", r.order_path_memory, False),
        ("redis.connect_timeout_s", r.connect_timeout_s, False),
        ("redis.retry_interval_s", r.retry_interval_s, False),
        ("store.flush_interval_ms", cfg.store.flush_interval_ms, False),
        ("store.batch_size", cfg.store.batch_size, False),
        ("supervisor.max_restarts", s.max_restarts, True),
        ("supervisor.window_s", s.window_s, False),
        ("supervisor.backoff_initial_s", s.backoff_initial_s, False),
        ("supervisor.backoff_max_s", s.backoff_max_s, False),
        ("channels.capacity", c.capacity, False),
        ("channels.batch_size", c.batch_size, False),
    ):
        yield from _positive(path, value, zero_ok)
    if not cfg.store.dsn.startswith(("postgresql://", "postgres://")):
        yield "store.dsn", f"expected a postgresql:// DSN, got {cfg.store.dsn!r}"
    if not r.url.startswith(("redis://", "unix://")):
        yield (
            "redis.url",
            f"expected a redis:// or unix:// URL (TLS rediss:// is not supported yet), got {r.url!r}",
        )
    if c.capacity > 10_000_000:
        yield "channels.capacity", f"expected at most 10000000 messages, got {c.capacity}"
    if not 0 <= cfg.health.port < 65536:
        yield "health.port", f"expected a TCP port 0..65535 (0 picks a free one), got {cfg.health.port}"
    for name, acct in cfg.accounts.items():
        yield from _validate_account(name, acct)
    seen: set[tuple[str, str]] = set()
    for i, g in enumerate(cfg.groups):
        yield from _validate_group(cfg, i, g)
        if g.key in seen:
            yield f"groups[{i}]", f"duplicate group for exchange {g.exchange!r} symbol {g.symbol!r}"
        seen.add(g.key)


def _validate_account(name: str, acct: PaperAccount) -> Problems:
    if not NAME_RE.match(name):
        yield f"accounts.{name}", "expected an account name of lowercase letters, digits, '-' or '_'"
    for asset, amount in acct.balances.items():
        yield from _positive(f"accounts.{name}.balances.{asset}", amount, allow_zero=True)
    yield from _positive(f"accounts.{name}.taker_fee", acct.taker_fee, allow_zero=True)
    yield from _positive(f"accounts.{name}.maker_fee", acct.maker_fee, allow_zero=True)
    yield from _positive(f"accounts.{name}.slippage_bps", acct.slippage_bps, allow_zero=True)
    yield from _positive(f"accounts.{name}.latency_ms", acct.latency_ms, allow_zero=True)
    if _bad(acct.participation) or not 0 < acct.participation <= 1:
        yield f"accounts.{name}.participation", f"expected a fraction in (0, 1], got {acct.participation}"


def _validate_group(cfg: Config, i: int, g: GroupConfig) -> Problems:
    p = f"groups[{i}]"
    if not SYMBOL_RE.match(g.symbol):
        yield f"{p}.symbol", f"expected a symbol like 'BTC/USDT' (letters, digits, . _ / -), got {g.symbol!r}"
    if not NAME_RE.match(g.exchange):
        yield (
            f"{p}.exchange",
            f"expected an exchange name of lowercase letters and digits, got {g.exchange!r}",
        )
    if g.account not in cfg.accounts:
        yield f"{p}.account", f"expected the name of an [accounts.*] table, got {g.account!r}"
    yield from _positive(f"{p}.instrument.tick_size", g.instrument.tick_size)
    yield from _positive(f"{p}.instrument.step_size", g.instrument.step_size)
    yield from _positive(f"{p}.instrument.min_notional", g.instrument.min_notional, allow_zero=True)
    yield from _validate_feed(f"{p}.feed", g.feed)
    yield from _positive(f"{p}.bar_interval_s", g.bar_interval_s)
    yield from _validate_risk(f"{p}.risk", g.risk)
    yield from _validate_strategy(f"{p}.strategy", g.strategy, g.risk)


def _validate_feed(p: str, feed: FeedConfig) -> Problems:
    if isinstance(feed, BinanceFeed):
        if not feed.ws_url.startswith(("wss://", "ws://")):
            yield f"{p}.ws_url", f"expected a ws:// or wss:// URL, got {feed.ws_url!r}"
        if not feed.rest_url.startswith(("https://", "http://")):
            yield f"{p}.rest_url", f"expected an http(s):// URL, got {feed.rest_url!r}"
        if not re.fullmatch(r"[A-Z0-9]{2,20}", feed.venue_symbol):
            yield f"{p}.venue_symbol", f"expected a Binance symbol like 'BTCUSDT', got {feed.venue_symbol!r}"
        yield from _positive(f"{p}.silence_timeout_s", feed.silence_timeout_s)
        yield from _positive(f"{p}.stall_timeout_s", feed.stall_timeout_s)
        return
    yield from _positive(f"{p}.speed", feed.speed, allow_zero=True)
    yield from _positive(f"{p}.interval_s", feed.interval_s)
    if not Path(feed.path).suffix:
        yield f"{p}.path", f"expected a data file (.json or .json.gz), got {feed.path!r}"


def _validate_risk(p: str, r: RiskLimits) -> Problems:
    yield from _positive(f"{p}.max_order_notional", r.max_order_notional)
    yield from _positive(f"{p}.max_position", r.max_position)
    yield from _positive(f"{p}.max_open_orders", r.max_open_orders)
    yield from _positive(f"{p}.price_band_pct", r.price_band_pct)
    yield from _positive(f"{p}.max_orders_per_minute", r.max_orders_per_minute)


def _validate_strategy(p: str, s: StrategyParams, risk: RiskLimits) -> Problems:
    for field in ("lookback", "ema_fast", "ema_slow", "rsi_period", "volume_sma", "max_trades_per_day"):
        yield from _positive(f"{p}.{field}", getattr(s, field))
    for field in ("lookback", "ema_fast", "ema_slow", "rsi_period", "volume_sma"):
        if getattr(s, field) > MAX_PERIOD:
            yield f"{p}.{field}", f"expected at most {MAX_PERIOD} bars, got {getattr(s, field)}"
    for field in ("stop_loss_pct", "take_profit_pct", "volume_ratio"):
        yield from _positive(f"{p}.{field}", getattr(s, field))
    yield from _positive(f"{p}.cooldown_s", s.cooldown_s, allow_zero=True)
    yield from _between(f"{p}.rsi_buy_max", s.rsi_buy_max, 0, 100, "a number in [0, 100]")
    yield from _between(f"{p}.rsi_sell_min", s.rsi_sell_min, 0, 100, "a number in [0, 100]")
    if s.rsi_period < 2:
        yield f"{p}.rsi_period", f"expected an RSI period >= 2 (TA-Lib's minimum), got {s.rsi_period}"
    if s.ema_fast >= s.ema_slow:
        yield f"{p}.ema_fast", f"expected ema_fast < ema_slow, got {s.ema_fast} >= {s.ema_slow}"
    yield from _between(f"{p}.confidence", s.confidence, 1e-12, 1, "a number in (0, 1]")
    yield from _between(f"{p}.max_position_fraction", s.max_position_fraction, 1e-12, 1, "a number in (0, 1]")
    if risk.require_stop_loss and s.stop_loss_pct <= 0:
        yield f"{p}.stop_loss_pct", "risk.require_stop_loss is set: expected a stop-loss > 0"


# --- diff -------------------------------------------------------------------------------------


class ConfigDiff(msgspec.Struct, frozen=True):
    """What a reload changes. Keys are (exchange, symbol)."""

    start: list[tuple[str, str]]
    stop: list[tuple[str, str]]
    restart: list[tuple[str, str]]
    update: list[tuple[str, str]]
    process: list[str]

    def describe(self) -> list[str]:
        out = [f"start {e}:{s}" for e, s in self.start]
        out += [f"stop {e}:{s}" for e, s in self.stop]
        out += [f"restart {e}:{s}" for e, s in self.restart]
        out += [f"update {e}:{s}" for e, s in self.update]
        out += [f"{name} changed (takes effect on restart)" for name in self.process]
        return out


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """Groups whose feed, instrument or account name changed restart; parameter changes apply in place."""
    old_groups = {g.key: g for g in old.groups if g.enabled}
    new_groups = {g.key: g for g in new.groups if g.enabled}
    start = [k for k in new_groups if k not in old_groups]
    stop = [k for k in old_groups if k not in new_groups]
    restart: list[tuple[str, str]] = []
    update: list[tuple[str, str]] = []
    for k in sorted(new_groups.keys() & old_groups.keys()):
        a, b = old_groups[k], new_groups[k]
        account_changed = old.accounts.get(a.account) != new.accounts.get(b.account)
        if a == b and not account_changed:
            continue
        structural = (a.feed, a.instrument, a.account, a.bar_interval_s) != (
            b.feed,
            b.instrument,
            b.account,
            b.bar_interval_s,
        )
        if structural or a.strategy.name != b.strategy.name:
            restart.append(k)
        else:
            # strategy/risk parameters and the account's fees/slippage apply in place
            update.append(k)
    process = [
        name
        for name in ("daemon", "health", "redis", "store", "supervisor", "channels")
        if getattr(old, name) != getattr(new, name)
    ]
    return ConfigDiff(
        start=sorted(start),
        stop=sorted(stop),
        restart=sorted(restart),
        update=sorted(update),
        process=process,
    )
