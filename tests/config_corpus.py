"""A corpus of broken configs derived from the shipped config.toml, each with its exact message.

Every case is one edit of a base text (the shipped file, or the shipped file pointed at a test's
port and state): ``old`` (a regex, matched once per line) is replaced by ``new``; or ``whole`` makes
the whole text.  :meth:`Case.expected` is the message ``check-config``, ``run`` and a SIGHUP give:
``file:line: key.path: what`` (the line is the first from the edit holding ``at``, by default
``new``'s first line, in which ``{0}`` stands for the matched text; ``whole`` cases without a line
say ``has_line=False``).  ``{dir}`` in ``what`` is the
config file's directory.  ``SECRETS`` are the fake secrets some cases paste where they must not
be: no output may show them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

FAKE_API_KEY = "vmPUZE6mv9SD5VNHk5fSvbgu4kAyxYBG7X0SbZzFqLTrCrWSoPIuRQ6rPDLnNrMq"
FAKE_TOKEN = "Qx7Rk2Lm9Tz4Wp8Vn3Yb6Hc1"
FAKE_REDIS_PW = "rEd1sPassw0rdXyZ"
FAKE_PG_PW = "pGpassw0rd-9Q7"
FAKE_REST_PW = "resTpassW0rd55"
SECRETS = (FAKE_API_KEY, FAKE_TOKEN, FAKE_REDIS_PW, FAKE_PG_PW, FAKE_REST_PW)

POSITIVE = "expected a positive finite number, got"
NON_NEGATIVE = "expected a non-negative finite number, got"
BUSY = "shorter would spin the loop"
ENV = (
    "expected the NAME of an environment variable (letters, digits and '_', at most 64, like "
    "BINANCE_API_KEY), got a value that is not one (not shown: it may be a secret, and secrets never "
    "go in the file)"
)
UNKNOWN = "(check the spelling; see config.toml for every key)"
EMPTY = (
    "expected at least one enabled [[groups]] table (an empty or truncated file would stop all "
    "trading); set daemon.allow_empty = true to run without groups"
)
PREFIX = "expected a Redis key prefix: 1..64 printable characters without spaces or control characters, got"
REDIS_DB = "expected one database number 0..15 (the server's default `databases 16`), got"
REDIS_PORT = "expected a redis://host:port/db URL with a numeric port 1..65535, got"
HOST = "expected an IP address or a host name (0.0.0.0 or :: for every interface), got"
DECIMAL_MAX = "expected a number of at most 1e+18 in magnitude, got"
PLACES = "expected at most 18 decimal places, got"
INT_MAX = "expected an integer of at most 2147483647 in magnitude, got"
BINANCE = '[accounts.live]\nexchange = "binance"\n'


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    what: str
    old: str = ""
    new: str = ""
    at: str | None = None
    whole: Callable[[str], str] | None = None
    has_line: bool = True  # with ``whole``: the line of ``at``, or else the last; False: no line

    def text(self, base: str) -> str:
        if self.whole is not None:
            return self.whole(base)
        text, n = re.subn(
            self.old, lambda m: self.new.replace("{0}", m.group(0)), base, count=1, flags=re.MULTILINE
        )
        assert n == 1, f"{self.name}: {self.old!r} is not in the base config"
        return text

    def expected(self, base: str, source: str, directory: str = "") -> str:
        what = self.what.replace("{dir}", directory)
        text = self.text(base)
        if self.whole is not None:
            if not self.has_line:
                return f"{source}: {self.path}: {what}"
            line = text.count("\n", 0, text.index(self.at)) + 1 if self.at else len(text.splitlines())
            return f"{source}:{line}: {self.path}: {what}"
        start = re.search(self.old, base, flags=re.MULTILINE)
        assert start is not None
        index = text.index(self.at or self.new.splitlines()[0], start.start())
        return f"{source}:{text.count(chr(10), 0, index) + 1}: {self.path}: {what}"


def _set(name: str, key: str, value: str, path: str, what: str, at: str | None = None) -> Case:
    """``key = value`` for the first ``key = ...`` line of the file."""
    return Case(name, path, what, old=rf"^{re.escape(key)} = .*$", new=f"{key} = {value}", at=at)


def _after(name: str, line: str, added: str, path: str, what: str) -> Case:
    """``added`` inserted after the first line that is exactly ``line``; the error is at ``added``."""
    return Case(
        name, path, what, old=rf"^{re.escape(line)}$", new=f"{line}\n{added}", at=added.splitlines()[0]
    )


def _cut(marker: str, extra: int = 0) -> Callable[[str], str]:
    """The base text cut short just before ``marker`` (plus ``extra`` characters): a half-written file."""
    return lambda base: base[: base.index(marker) + extra]


def _disable_all(base: str) -> str:
    return base.replace("bar_interval_s = 60\n", "bar_interval_s = 60\nenabled = false\n")


G0 = "groups[0]"
CASES: list[Case] = [
    # --- [daemon] ---
    _set(
        "state_dir-empty",
        "state_dir",
        '""',
        "daemon.state_dir",
        "expected a directory path (printable, not empty), got ''",
    ),
    _set(
        "state_dir-nul",
        "state_dir",
        '"a\\u0000b"',
        "daemon.state_dir",
        "expected a directory path (printable, not empty), got 'a\\x00b'",
    ),
    _set("log_level-enum", "log_level", '"verbose"', "daemon.log_level", "Invalid enum value 'verbose'"),
    _set(
        "feed_stale-str",
        "feed_stale_after_s",
        '"120"',
        "daemon.feed_stale_after_s",
        "Expected `float`, got `str`",
    ),
    _set(
        "feed_stale-tiny",
        "feed_stale_after_s",
        "1e-9",
        "daemon.feed_stale_after_s",
        f"expected at least 0.001 s: {BUSY}; got 1e-09",
    ),
    _set("allow_empty-str", "allow_empty", '"yes"', "daemon.allow_empty", "Expected `bool`, got `str`"),
    _after(
        "daemon-unknown", "[daemon]", 'log_lvl = "info"', "daemon.log_lvl", f"unknown key `log_lvl` {UNKNOWN}"
    ),
    # --- [health] ---
    _set("bind-not-a-host", "bind", '"not a host"', "health.bind", f"{HOST} 'not a host'"),
    _set("bind-empty", "bind", '""', "health.bind", f"{HOST} ''"),
    _set("bind-bad-ip", "bind", '"999.1.1.1"', "health.bind", f"{HOST} '999.1.1.1'"),
    _set("bind-bracketed", "bind", '"[::1]"', "health.bind", f"{HOST} '[::1]'"),
    _set("port-str", "port", '"8794"', "health.port", "Expected `int`, got `str`"),
    _set(
        "port-range",
        "port",
        "70000",
        "health.port",
        "expected a TCP port 0..65535 (0 picks a free one), got 70000",
    ),
    _set("admin_token_env-space", "admin_token_env", '"my token"', "health.admin_token_env", ENV),
    _set("admin_token_env-secret", "admin_token_env", f'"{FAKE_TOKEN}"', "health.admin_token_env", ENV),
    # --- [redis] ---
    _set(
        "redis-db",
        "url",
        '"redis://127.0.0.1:6379/99999"',
        "redis.url",
        f"{REDIS_DB} 'redis://127.0.0.1:6379/99999'",
    ),
    _set(
        "redis-db-16",
        "url",
        '"redis://127.0.0.1:6379/16"',
        "redis.url",
        f"{REDIS_DB} 'redis://127.0.0.1:6379/16'",
    ),
    _set(
        "redis-db-word",
        "url",
        '"redis://127.0.0.1:6379/x"',
        "redis.url",
        f"{REDIS_DB} 'redis://127.0.0.1:6379/x'",
    ),
    _set(
        "redis-port-word",
        "url",
        '"redis://127.0.0.1:abc/0"',
        "redis.url",
        f"{REDIS_PORT} 'redis://127.0.0.1:abc/0'",
    ),
    _set(
        "redis-port-range",
        "url",
        '"redis://127.0.0.1:99999/0"',
        "redis.url",
        f"{REDIS_PORT} 'redis://127.0.0.1:99999/0'",
    ),
    _set(
        "redis-port-zero",
        "url",
        '"redis://127.0.0.1:0/0"',
        "redis.url",
        "expected a numeric port 1..65535, got 'redis://127.0.0.1:0/0'",
    ),
    _set(
        "redis-no-host",
        "url",
        '"redis:///0"',
        "redis.url",
        "expected a host name or IP address after redis://, got 'redis:///0'",
    ),
    _set(
        "redis-scheme",
        "url",
        '"http://127.0.0.1:6379/0"',
        "redis.url",
        "expected a redis://, rediss:// (TLS) or unix:// URL, got 'http://127.0.0.1:6379/0'",
    ),
    _set(
        "redis-query",
        "url",
        '"redis://127.0.0.1:6379/0?timeout=5"',
        "redis.url",
        "expected no query or fragment but ?db=N, got 'redis://127.0.0.1:6379/0?timeout=5'",
    ),
    _set(
        "redis-password-shown-masked",
        "url",
        f'"redis://tradingd:{FAKE_REDIS_PW}@127.0.0.1:99999/0"',
        "redis.url",
        f"{REDIS_PORT} 'redis://tradingd:***@127.0.0.1:99999/0'",
    ),
    _set(
        "redis-password-only",
        "url",
        f'"redis://:{FAKE_REDIS_PW}@127.0.0.1:6379/99"',
        "redis.url",
        f"{REDIS_DB} 'redis://:***@127.0.0.1:6379/99'",
    ),
    _set(
        "prefix-control",
        "prefix",
        '"trad\\u0007ingd"',
        "redis.prefix",
        f"{PREFIX} 'trad\\x07ingd'",
    ),
    _set(
        "prefix-empty",
        "prefix",
        '""',
        "redis.prefix",
        f"{PREFIX} ''",
    ),
    _set(
        "prefix-space",
        "prefix",
        '"trading d"',
        "redis.prefix",
        f"{PREFIX} 'trading d'",
    ),
    _set("encoding-enum", "encoding", '"xml"', "redis.encoding", "Invalid enum value 'xml'"),
    _set("maxlen-str", "maxlen", '"100000"', "redis.maxlen", "Expected `int`, got `str`"),
    _set("maxlen-huge", "maxlen", "9223372036854775807", "redis.maxlen", f"{INT_MAX} 9223372036854775807"),
    _set("redis-batch-zero", "batch_size", "0", "redis.batch_size", f"{POSITIVE} 0"),
    _after(
        "redis-tls-without-rediss",
        'url = "redis://127.0.0.1:6379/0"',
        'tls_ca_file = "/etc/ca.pem"',
        "redis.tls_ca_file",
        "expected only with a rediss:// (TLS) url, got '/etc/ca.pem' with redis://",
    ),
    _after(
        "redis-retry-tiny",
        'url = "redis://127.0.0.1:6379/0"',
        "retry_interval_s = 0.0000001",
        "redis.retry_interval_s",
        f"expected at least 0.001 s: {BUSY}; got 1e-07",
    ),
    # --- [store] ---
    _set(
        "dsn-typo-masked",
        "dsn",
        f'"postgresq://postgres:{FAKE_PG_PW}@127.0.0.1:5432/tradingd"',
        "store.dsn",
        "expected a postgresql:// DSN, got 'postgresq://postgres:***@127.0.0.1:5432/tradingd'",
    ),
    _set(
        "snapshot-tiny",
        "snapshot_interval_s",
        "1e-9",
        "store.snapshot_interval_s",
        f"expected at least 0.1 s: {BUSY}; got 1e-09",
    ),
    _set(
        "snapshot-str",
        "snapshot_interval_s",
        '"60"',
        "store.snapshot_interval_s",
        "Expected `float`, got `str`",
    ),
    Case(
        "store-flush-zero",
        "store.flush_interval_ms",
        f"{POSITIVE} 0",
        old=r"^flush_interval_ms = 100$",
        new="flush_interval_ms = 0",
    ),
    _set("postgres-str", "postgres", '"no"', "store.postgres", "Expected `bool`, got `str`"),
    _after(
        "checkpoint-tiny",
        "snapshot_interval_s = 60.0",
        "metrics_checkpoint_s = 0.001",
        "store.metrics_checkpoint_s",
        f"expected at least 0.1 s (or 0 = off): {BUSY}; got 0.001",
    ),
    # --- [supervisor] ---
    _set(
        "backoff-initial-over-max",
        "backoff_initial_s",
        "20.0",
        "supervisor.backoff_initial_s",
        "expected at most backoff_max_s (10.0), got 20.0",
    ),
    _set(
        "backoff-max-tiny",
        "backoff_max_s",
        "1e-9",
        "supervisor.backoff_max_s",
        f"expected at least 0.001 s: {BUSY}; got 1e-09",
    ),
    _set("max_restarts-negative", "max_restarts", "-1", "supervisor.max_restarts", f"{NON_NEGATIVE} -1"),
    _set("window-zero", "window_s", "0.0", "supervisor.window_s", f"{POSITIVE} 0.0"),
    _set("max_restarts-str", "max_restarts", '"5"', "supervisor.max_restarts", "Expected `int`, got `str`"),
    # --- [accounts.paper] ---
    _set("exchange-tag", "exchange", '"kraken"', "accounts.paper.exchange", "Invalid value 'kraken'"),
    _set(
        "maker_fee-overflow",
        "maker_fee",
        '"1e999999999"',
        "accounts.paper.maker_fee",
        f"{DECIMAL_MAX} 1E+999999999",
    ),
    _set(
        "balance-places",
        "balances",
        '{ BTC = "1e-30", ETH = "10.0" }',
        "accounts.paper.balances.BTC",
        f"{PLACES} 1E-30",
    ),
    _set("slippage-nan", "slippage_bps", '"NaN"', "accounts.paper.slippage_bps", f"{NON_NEGATIVE} NaN"),
    _set(
        "participation-zero",
        "participation",
        '"0"',
        "accounts.paper.participation",
        "expected a fraction in (0, 1], got 0",
    ),
    _after(
        "latency-str",
        'taker_fee = "0.001"',
        'latency_ms = "5"',
        "accounts.paper.latency_ms",
        "Expected `int`, got `str`",
    ),
    _set(
        "account-max-open-str",
        "max_open_orders",
        '"8"',
        "accounts.paper.risk.max_open_orders",
        "Expected `int`, got `str`",
    ),
    _set(
        "account-daily-loss-inf",
        "daily_loss_limit",
        '{ BTC = "inf" }',
        "accounts.paper.risk.daily_loss_limit.BTC",
        f"{NON_NEGATIVE} Infinity",
    ),
    _after(
        "balance_check-tiny",
        'taker_fee = "0.001"',
        "balance_check_s = 0.01",
        "accounts.paper.balance_check_s",
        "expected at least 1 s (or 0 = off): each check asks the venue; got 0.01",
    ),
    _after(
        "balance_check-week",
        'taker_fee = "0.001"',
        "balance_check_s = 604800.0",
        "accounts.paper.balance_check_s",
        "expected at most 86400 s (a day), got 604800.0",
    ),
    _after(
        "on_balance_drift-word",
        'taker_fee = "0.001"',
        'on_balance_drift = "panic"',
        "accounts.paper.on_balance_drift",
        "Invalid enum value 'panic'",
    ),
    _after(
        "balance_tolerance-negative",
        'taker_fee = "0.001"',
        'balance_tolerance = "-0.01"',
        "accounts.paper.balance_tolerance",
        f"{NON_NEGATIVE} -0.01",
    ),
    Case(
        "binance-balance_check-negative",
        "accounts.live.balance_check_s",
        f"{NON_NEGATIVE} -5.0",
        old=r"^\[\[groups\]\]$",
        new=f"{BINANCE}balance_check_s = -5.0\n\n[[groups]]",
        at="balance_check_s",
    ),
    Case(
        "api_key_env-secret",
        "accounts.live.api_key_env",
        ENV,
        old=r"^\[\[groups\]\]$",
        new=f'{BINANCE}api_key_env = "{FAKE_API_KEY}"\n\n[[groups]]',
        at="api_key_env",
    ),
    Case(
        "secret_env-equals",
        "accounts.live.secret_env",
        ENV,
        old=r"^\[\[groups\]\]$",
        new=f'{BINANCE}secret_env = "abc=def"\n\n[[groups]]',
        at="secret_env",
    ),
    Case(
        "rest_url-masked",
        "accounts.live.rest_url",
        "expected a https:// or http:// URL, got 'ftp://u:***@api.binance.com'",
        old=r"^\[\[groups\]\]$",
        new=f'{BINANCE}rest_url = "ftp://u:{FAKE_REST_PW}@api.binance.com"\n\n[[groups]]',
        at="rest_url",
    ),
    Case(
        "binance-timeout-tiny",
        "accounts.live.timeout_s",
        f"expected at least 0.001 s: {BUSY}; got 1e-06",
        old=r"^\[\[groups\]\]$",
        new=f"{BINANCE}timeout_s = 0.000001\n\n[[groups]]",
        at="timeout_s",
    ),
    # --- [[groups]] (the first: UNITTEST/BTC) ---
    _set(
        "bar_interval-huge",
        "bar_interval_s",
        "9223372036854775807",
        f"{G0}.bar_interval_s",
        "expected at most 86400 s (a day), got 9223372036854775807",
    ),
    _set(
        "bar_interval-week",
        "bar_interval_s",
        "604800",
        f"{G0}.bar_interval_s",
        "expected at most 86400 s (a day), got 604800",
    ),
    _set("bar_interval-str", "bar_interval_s", '"60"', f"{G0}.bar_interval_s", "Expected `int`, got `str`"),
    _set(
        "symbol-space",
        "symbol",
        '"UNITTEST BTC"',
        f"{G0}.symbol",
        "expected a symbol like 'BTC/USDT' (letters, digits, . _ / -), got 'UNITTEST BTC'",
    ),
    _set(
        "account-missing",
        "account",
        '"live"',
        f"{G0}.account",
        "expected the name of an [accounts.*] table, got 'live'",
    ),
    Case(
        "group-exchange-upper",
        f"{G0}.exchange",
        "expected an exchange name of lowercase letters and digits, got 'Paper'",
        old=r'^exchange = "paper"\nsymbol',
        new='exchange = "Paper"\nsymbol',
    ),
    _set(
        "tick-places", "tick_size", '"1e-999999999"', f"{G0}.instrument.tick_size", f"{PLACES} 1E-999999999"
    ),
    _set("step-zero", "step_size", '"0"', f"{G0}.instrument.step_size", f"{POSITIVE} 0"),
    _set("speed-str", "speed", '"600"', f"{G0}.feed.speed", "Expected `float`, got `str`"),
    _set("format-enum", "format", '"csv"', f"{G0}.feed.format", "Invalid enum value 'csv'"),
    _set("kind-tag", "kind", '"kafka"', f"{G0}.feed.kind", "Invalid value 'kafka'"),
    _set(
        "feed-missing-file",
        "path",
        '"adapters/replay/data/candles/missing.json"',
        f"{G0}.feed.path",
        "no such data file: {dir}/adapters/replay/data/candles/missing.json",
    ),
    _after(
        "feed-interval-huge",
        "loop = true",
        "interval_s = 9999999",
        f"{G0}.feed.interval_s",
        "expected at most 86400 s (a day), got 9999999",
    ),
    _set("lookback-str", "lookback", '"20"', f"{G0}.strategy.lookback", "Expected `int`, got `str`"),
    _set("lookback-zero", "lookback", "0", f"{G0}.strategy.lookback", f"{POSITIVE} 0"),
    _set(
        "ema-order", "ema_fast", "13", f"{G0}.strategy.ema_fast", "expected ema_fast < ema_slow, got 13 >= 13"
    ),
    _set(
        "rsi-range",
        "rsi_buy_max",
        "150.0",
        f"{G0}.strategy.rsi_buy_max",
        "expected a number in [0, 100], got 150.0",
    ),
    _set(
        "volume_ratio-huge",
        "volume_ratio",
        "1e300",
        f"{G0}.strategy.volume_ratio",
        "expected a number of at most 1e+09 in magnitude, got 1e+300",
    ),
    _set(
        "confidence-zero",
        "confidence",
        "0.0",
        f"{G0}.strategy.confidence",
        "expected a number in (0, 1], got 0.0",
    ),
    _set("strategy-tag", "name", '"martingale"', f"{G0}.strategy.name", "Invalid value 'martingale'"),
    _set(
        "cooldown-float", "cooldown_s", "1800.5", f"{G0}.strategy.cooldown_s", "Expected `int`, got `float`"
    ),
    _set(
        "notional-overflow",
        "max_order_notional",
        '"1e999999999"',
        f"{G0}.risk.max_order_notional",
        f"{DECIMAL_MAX} 1E+999999999",
    ),
    _set(
        "notional-huge",
        "max_order_notional",
        '"5e18"',
        f"{G0}.risk.max_order_notional",
        f"{DECIMAL_MAX} 5E+18",
    ),
    _set("max_position-negative", "max_position", '"-1"', f"{G0}.risk.max_position", f"{POSITIVE} -1"),
    _set("price_band-word", "price_band_pct", '"abc"', f"{G0}.risk.price_band_pct", "Invalid decimal string"),
    _set(
        "require_stop-str",
        "require_stop_loss",
        '"yes"',
        f"{G0}.risk.require_stop_loss",
        "Expected `bool`, got `str`",
    ),
    Case(
        "daily_loss-negative",
        f"{G0}.risk.daily_loss_limit",
        "expected a loss in quote currency >= 0 (0 = off), got -0.05",
        old=r'^daily_loss_limit = "0.05".*$',
        new='daily_loss_limit = "-0.05"',
    ),
    Case(
        "trades_per_day-huge",
        f"{G0}.risk.max_trades_per_day",
        f"{INT_MAX} 9223372036854775807",
        old=r"^max_trades_per_day = 20 .*$",
        new="max_trades_per_day = 9223372036854775807",
    ),
    _set("trail_step-places", "trail_step", '"1e-40"', f"{G0}.risk.trail_step", f"{PLACES} 1E-40"),
    _after(
        "trading_state-enum",
        "native_stops = false             # true: stop-losses rest at the venue as stop orders",
        'trading_state = "paused"',
        f"{G0}.risk.trading_state",
        "Invalid enum value 'paused'",
    ),
    Case(
        "group-missing-symbol",
        f"{G0}",
        "Object missing required field `symbol`",
        old=r'^\[\[groups\]\]\nexchange = "paper"\nsymbol = "UNITTEST/BTC"\n',
        new='[[groups]]\nexchange = "paper"\n',
        at="[[groups]]",
    ),
    # --- TOML syntax ---
    _set("toml-no-value", "port", "", "health.port", "expected valid TOML: invalid value (column 8)"),
    Case(
        "toml-header",
        "health",
        "expected valid TOML: expected ']' at the end of a table declaration (column 8)",
        old=r"^\[health\]$",
        new="[health",
    ),
    Case(
        "toml-duplicate",
        "health.port",
        "expected valid TOML: cannot overwrite a value (column 12)",
        old=r"^port = \d+$",
        new="{0}\nport = 8788",
        at="port = 8788",
    ),
    _set(
        "toml-open-string",
        "bind",
        '"127.0.0.1',
        "health.bind",
        "expected valid TOML: illegal character '\\n' (column 18)",
    ),
    _set(
        "toml-letter-o",
        "speed",
        "6OO.0",
        f"{G0}.feed.speed",
        "expected valid TOML: expected newline or end of document after a statement (column 10)",
    ),
    # --- whole files: empty, cut short, every group disabled ---
    Case("empty", "groups", EMPTY, whole=lambda _: "", has_line=False),
    Case("comments-only", "groups", EMPTY, whole=lambda _: "# tradingd\n# nothing else\n", has_line=False),
    Case("cut-before-groups", "groups", EMPTY, whole=_cut("# 1-minute candles"), has_line=False),
    Case(
        "cut-after-header",
        "groups[0]",
        "Object missing required field `exchange`",
        whole=_cut("[[groups]]\n", 11),
        at="[[groups]]",
    ),
    Case(
        "cut-before-feed",
        "groups[0]",
        "Object missing required field `feed`",
        whole=_cut("[groups.feed]"),
        at="[[groups]]",
    ),
    Case(
        "cut-in-string",
        f"{G0}.feed.path",
        "expected valid TOML: unterminated string (at the end of the file)",
        whole=_cut('path = "adapters/replay/data/candles', 20),
    ),
    Case(
        "cut-in-key",
        f"{G0}.strategy",
        "expected valid TOML: expected '=' after a key in a key/value pair (at the end of the file)",
        whole=_cut("ema_slow = 13", 5),
    ),
    Case("all-disabled", "groups", EMPTY, whole=_disable_all, has_line=False),
]
