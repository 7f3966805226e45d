"""Which value rule applies to which key of a decoded config: what msgspec's types cannot say
(ranges, bounds, names, URLs, whether the Redis TLS files load, at least one group).

The rules themselves live in :mod:`daemon.value_checks`.  Each yields ``(key path, what was
expected)``; ``daemon.config`` turns the first into a ConfigError naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from actors.account_risk import AccountRiskLimits
from actors.params import BreakoutParams, RiskLimits, StrategyParams
from adapters.okx.config import OkxFeed
from adapters.okx.data import CHANNELS as OKX_CHANNELS
from daemon.config_schema import (
    AccountConfig,
    BinanceAccount,
    BinanceFeed,
    Config,
    FeedConfig,
    GroupConfig,
    RedisSection,
)
from daemon.redis_wire import TLSConfigError, tls_context
from daemon.strategy_checks import validate_strategy
from daemon.value_checks import (
    Problems,
    at_least,
    computable,
    directory,
    env_name,
    file_path,
    host,
    numbers,
    postgres_dsn,
    printable_name,
    redis_url,
    writable_directory,
)
from daemon.value_checks import bad as _bad
from daemon.value_checks import between as _between
from daemon.value_checks import positive as _positive
from daemon.value_checks import url as _url

MAX_PERIOD = 10_000  # indicator windows hold a multiple of this many bars
MAX_BAR_INTERVAL_S = 86_400  # bars (and replayed candles) of at most a day: bars align to UTC days
MAX_COOLDOWN_S = 7 * 86_400
MIN_BALANCE_CHECK_S = 1.0  # each check is a GET /api/v3/account (request weight 20 on Binance)
MAX_BALANCE_CHECK_S = 86_400.0
MIN_TIMEOUT_S = 0.001  # a timeout, backoff or watchdog shorter than 1 ms is a busy loop
MIN_PERIODIC_S = 0.1  # periodic writes (snapshots, checkpoints, reloads of venue rules)
BUSY = "shorter would spin the loop"
MAX_SNAPSHOT_DEPTH = 5000  # Binance's largest GET /api/v3/depth limit; the feed asks the smallest >= depth
LISTEN_KEY_VALID_S = 3600.0  # Binance: a listenKey lives 60 min after its creation or last keep-alive
SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def validate(cfg: Config) -> Problems:
    """Every problem of ``cfg``, the first one first (specific rules, then the bounds of every number)."""
    yield from _validate(cfg)
    for path, value in numbers(cfg):
        yield from computable(path, value)
    if not cfg.daemon.allow_empty and not any(g.enabled for g in cfg.groups):
        yield (
            "groups",
            "expected at least one enabled [[groups]] table (an empty or truncated file would stop all "
            "trading); set daemon.allow_empty = true to run without groups",
        )


def _validate(cfg: Config) -> Problems:
    d, r, s, c = cfg.daemon, cfg.redis, cfg.supervisor, cfg.channels
    yield from directory("daemon.state_dir", d.state_dir)
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
        ("store.snapshot_interval_s", cfg.store.snapshot_interval_s, False),
        ("store.metrics_checkpoint_s", cfg.store.metrics_checkpoint_s, True),
        ("supervisor.max_restarts", s.max_restarts, True),
        ("supervisor.window_s", s.window_s, False),
        ("supervisor.backoff_initial_s", s.backoff_initial_s, False),
        ("supervisor.backoff_max_s", s.backoff_max_s, False),
        ("channels.capacity", c.capacity, False),
        ("channels.batch_size", c.batch_size, False),
    ):
        yield from _positive(path, value, zero_ok)
    for path, seconds in (
        ("daemon.feed_stale_after_s", d.feed_stale_after_s),
        ("redis.connect_timeout_s", r.connect_timeout_s),
        ("redis.retry_interval_s", r.retry_interval_s),
        ("supervisor.window_s", s.window_s),
        ("supervisor.backoff_initial_s", s.backoff_initial_s),
        ("supervisor.backoff_max_s", s.backoff_max_s),
    ):
        yield from at_least(path, seconds, MIN_TIMEOUT_S, BUSY)
    yield from at_least("store.snapshot_interval_s", cfg.store.snapshot_interval_s, MIN_PERIODIC_S, BUSY)
    yield from at_least(
        "store.metrics_checkpoint_s", cfg.store.metrics_checkpoint_s, MIN_PERIODIC_S, BUSY, zero_off=True
    )
    if s.backoff_initial_s > s.backoff_max_s:
        yield (
            "supervisor.backoff_initial_s",
            f"expected at most backoff_max_s ({s.backoff_max_s}), got {s.backoff_initial_s}",
        )
    yield from postgres_dsn("store.dsn", cfg.store.dsn)
    yield from redis_url("redis.url", r.url)
    yield from env_name("redis.password_env", r.password_env)
    yield from printable_name("redis.prefix", r.prefix, "a Redis key prefix")
    yield from _validate_redis_tls(r)
    if c.capacity > 10_000_000:
        yield "channels.capacity", f"expected at most 10000000 messages, got {c.capacity}"
    if not 0 <= cfg.health.port < 65536:
        yield "health.port", f"expected a TCP port 0..65535 (0 picks a free one), got {cfg.health.port}"
    yield from host("health.bind", cfg.health.bind)
    yield from env_name("health.admin_token_env", cfg.health.admin_token_env)
    if cfg.health.admin_token_file:
        yield from file_path("health.admin_token_file", cfg.health.admin_token_file, "the admin token")
    for name, acct in cfg.accounts.items():
        yield from _validate_account(name, acct)
    real = sorted(name for name, acct in cfg.accounts.items() if isinstance(acct, BinanceAccount))
    if real:  # journal-before-send is never off for a real venue, [store] or not
        why = f"the order journal of account {real[0]} is kept there"
        yield from writable_directory("daemon.state_dir", d.state_dir, why)
    seen: set[tuple[str, str]] = set()
    for i, g in enumerate(cfg.groups):
        yield from _validate_group(cfg, i, g)
        if g.key in seen:
            yield f"groups[{i}]", f"duplicate group for exchange {g.exchange!r} symbol {g.symbol!r}"
        seen.add(g.key)


def _validate_redis_tls(r: RedisSection) -> Problems:
    """tls_* only with rediss://; their files are loaded into an SSLContext now, as the mirror will."""
    if not r.url.startswith("rediss://"):
        scheme = r.url.partition("://")[0]  # not the whole URL: it may hold a password
        for name in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            if value := getattr(r, name):
                yield (
                    f"redis.{name}",
                    f"expected only with a rediss:// (TLS) url, got {value!r} with {scheme}://",
                )
        return
    if not r.enabled:
        return  # the files are read when the mirror is turned on (as for the data of disabled groups)
    try:
        tls_context(r)
    except TLSConfigError as exc:
        yield f"redis.{exc.key}", exc.problem


def _validate_binance_account(p: str, acct: BinanceAccount) -> Problems:
    for key, value, schemes in (
        ("rest_url", acct.rest_url, ("https://", "http://")),
        ("ws_api_url", acct.ws_api_url, ("wss://", "ws://")),
        ("stream_url", acct.stream_url, ("wss://", "ws://")),
    ):
        yield from _url(f"{p}.{key}", value, schemes)
    yield from env_name(f"{p}.api_key_env", acct.api_key_env)
    yield from env_name(f"{p}.secret_env", acct.secret_env)
    if acct.api_key_env == acct.secret_env:
        yield f"{p}.secret_env", "expected a variable other than api_key_env, got the same name"
    if not 1 <= acct.recv_window_ms <= 60_000:
        yield f"{p}.recv_window_ms", f"expected 1..60000 ms (Binance's maximum), got {acct.recv_window_ms}"
    yield from _positive(f"{p}.timeout_s", acct.timeout_s)
    yield from _positive(f"{p}.connect_timeout_s", acct.connect_timeout_s)
    yield from _positive(f"{p}.resolve_backoff_max_s", acct.resolve_backoff_max_s)
    yield from _positive(f"{p}.exchange_info_refresh_s", acct.exchange_info_refresh_s)
    for key in ("timeout_s", "connect_timeout_s", "resolve_backoff_max_s"):
        yield from at_least(f"{p}.{key}", getattr(acct, key), MIN_TIMEOUT_S, BUSY)
    yield from at_least(f"{p}.exchange_info_refresh_s", acct.exchange_info_refresh_s, MIN_PERIODIC_S, BUSY)
    yield from _positive(f"{p}.listen_key_keepalive_s", acct.listen_key_keepalive_s)
    yield from at_least(f"{p}.listen_key_keepalive_s", acct.listen_key_keepalive_s, MIN_PERIODIC_S, BUSY)
    if acct.listen_key_keepalive_s >= LISTEN_KEY_VALID_S:
        yield (
            f"{p}.listen_key_keepalive_s",
            f"expected less than {LISTEN_KEY_VALID_S:g} s (Binance expires a listenKey 60 min after its"
            f" last keep-alive), got {acct.listen_key_keepalive_s:g}",
        )


def _validate_account_risk(p: str, lim: AccountRiskLimits) -> Problems:
    for key in ("max_open_orders", "max_orders_per_minute", "max_trades_per_day"):
        yield from _positive(f"{p}.{key}", getattr(lim, key), allow_zero=True)
    for quote, amount in lim.daily_loss_limit.items():
        yield from _positive(f"{p}.daily_loss_limit.{quote}", amount, allow_zero=True)


def _validate_balance_check(p: str, acct: AccountConfig) -> Problems:
    yield from _positive(f"{p}.balance_check_s", acct.balance_check_s, allow_zero=True)
    yield from at_least(
        f"{p}.balance_check_s", acct.balance_check_s, MIN_BALANCE_CHECK_S, "each check asks the venue", True
    )
    if acct.balance_check_s > MAX_BALANCE_CHECK_S:
        yield (
            f"{p}.balance_check_s",
            f"expected at most {MAX_BALANCE_CHECK_S:g} s (a day), got {acct.balance_check_s}",
        )
    if acct.balance_tolerance is not None:
        yield from _positive(f"{p}.balance_tolerance", acct.balance_tolerance, allow_zero=True)


def _validate_account(name: str, acct: AccountConfig) -> Problems:
    yield from _validate_account_risk(f"accounts.{name}.risk", acct.risk)
    yield from _validate_balance_check(f"accounts.{name}", acct)
    if not NAME_RE.match(name):
        yield f"accounts.{name}", "expected an account name of lowercase letters, digits, '-' or '_'"
    if isinstance(acct, BinanceAccount):
        yield from _validate_binance_account(f"accounts.{name}", acct)
        return
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
    if g.bar_interval_s > MAX_BAR_INTERVAL_S:
        yield (
            f"{p}.bar_interval_s",
            f"expected at most {MAX_BAR_INTERVAL_S} s (a day), got {g.bar_interval_s}",
        )
    yield from _validate_risk(f"{p}.risk", g.risk)
    yield from _validate_strategy(f"{p}.strategy", g.strategy, g.risk)


def _validate_feed(p: str, feed: FeedConfig) -> Problems:
    if isinstance(feed, OkxFeed):
        yield from _validate_okx_feed(p, feed)
        return
    if isinstance(feed, BinanceFeed):
        yield from _url(f"{p}.ws_url", feed.ws_url, ("wss://", "ws://"))
        yield from _url(f"{p}.rest_url", feed.rest_url, ("https://", "http://"))
        if not re.fullmatch(r"[A-Z0-9]{2,20}", feed.venue_symbol):
            yield f"{p}.venue_symbol", f"expected a Binance symbol like 'BTCUSDT', got {feed.venue_symbol!r}"
        yield from _positive(f"{p}.silence_timeout_s", feed.silence_timeout_s)
        yield from _positive(f"{p}.stall_timeout_s", feed.stall_timeout_s)
        for key in ("silence_timeout_s", "stall_timeout_s"):
            yield from at_least(f"{p}.{key}", getattr(feed, key), MIN_TIMEOUT_S, BUSY)
        if not 1 <= feed.book_depth <= MAX_SNAPSHOT_DEPTH:
            yield (
                f"{p}.book_depth",
                f"expected 1..{MAX_SNAPSHOT_DEPTH} levels: a Binance depth snapshot (GET /api/v3/depth,"
                f" limit 5..{MAX_SNAPSHOT_DEPTH}) gives at most {MAX_SNAPSHOT_DEPTH}, so a book of that"
                f" depth could never be filled from one; got {feed.book_depth}",
            )
        if not 0 < feed.rotate_after_s < 86_400:
            why = "Binance closes a connection after 24 h"
            yield f"{p}.rotate_after_s", f"expected seconds in (0, 86400): {why}; got {feed.rotate_after_s}"
        return
    yield from _positive(f"{p}.speed", feed.speed, allow_zero=True)
    yield from _positive(f"{p}.interval_s", feed.interval_s)
    if feed.interval_s > MAX_BAR_INTERVAL_S:
        yield f"{p}.interval_s", f"expected at most {MAX_BAR_INTERVAL_S} s (a day), got {feed.interval_s}"
    if not Path(feed.path).suffix:
        yield f"{p}.path", f"expected a data file (.json or .json.gz), got {feed.path!r}"


def _validate_okx_feed(p: str, feed: OkxFeed) -> Problems:
    yield from _url(f"{p}.ws_url", feed.ws_url, ("wss://", "ws://"))
    yield from _url(f"{p}.rest_url", feed.rest_url, ("https://", "http://"))
    if feed.inst_id and not re.fullmatch(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}", feed.inst_id):
        yield f"{p}.inst_id", f"expected an OKX spot instId like 'BTC-USDT', got {feed.inst_id!r}"
    unknown = [c for c in feed.channels if c not in OKX_CHANNELS]
    if unknown or not feed.channels:
        yield f"{p}.channels", f"expected some of {', '.join(OKX_CHANNELS)}, got {list(feed.channels)}"
    if not 0 < feed.ping_after_s < 30:
        yield (
            f"{p}.ping_after_s",
            f"expected seconds in (0, 30): OKX closes a connection silent for 30 s; got {feed.ping_after_s}",
        )
    for key in ("silence_timeout_s", "resubscribe_timeout_s"):
        yield from _positive(f"{p}.{key}", getattr(feed, key))
        yield from at_least(f"{p}.{key}", getattr(feed, key), MIN_TIMEOUT_S, BUSY)
    yield from _positive(f"{p}.rules_refresh_s", feed.rules_refresh_s, allow_zero=True)
    if not 1 <= feed.book_depth <= 400:
        yield f"{p}.book_depth", f"expected 1..400 levels (OKX books), got {feed.book_depth}"


def _validate_risk(p: str, r: RiskLimits) -> Problems:
    yield from _positive(f"{p}.max_order_notional", r.max_order_notional)
    yield from _positive(f"{p}.max_position", r.max_position)
    yield from _positive(f"{p}.max_open_orders", r.max_open_orders)
    yield from _positive(f"{p}.price_band_pct", r.price_band_pct)
    yield from _positive(f"{p}.max_orders_per_minute", r.max_orders_per_minute)
    if r.max_trades_per_day < 0:
        yield (
            f"{p}.max_trades_per_day",
            f"expected a number of entries per UTC day >= 0 (0 = no limit), got {r.max_trades_per_day}",
        )
    if _bad(r.daily_loss_limit) or r.daily_loss_limit < 0:
        yield (
            f"{p}.daily_loss_limit",
            f"expected a loss in quote currency >= 0 (0 = off), got {r.daily_loss_limit}",
        )
    if not 0 <= r.cooldown_s <= MAX_COOLDOWN_S:
        yield (
            f"{p}.cooldown_s",
            f"expected seconds after an exit in [0, {MAX_COOLDOWN_S}] (0 = off), got {r.cooldown_s}",
        )
    if r.trail_step is not None and (_bad(r.trail_step) or r.trail_step < 0):
        yield (
            f"{p}.trail_step",
            f"expected a trailing-stop step in price units >= 0 (0 = every improvement), got {r.trail_step}",
        )


def _validate_strategy(p: str, s: StrategyParams, risk: RiskLimits) -> Problems:
    if isinstance(s, BreakoutParams):
        yield from _validate_breakout(p, s, risk)
    else:
        yield from validate_strategy(p, s, risk)


def _validate_breakout(p: str, s: BreakoutParams, risk: RiskLimits) -> Problems:
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
