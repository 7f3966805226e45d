"""The config file's schema: frozen msgspec Structs, one per TOML table.

``daemon.config`` parses a file into :class:`Config` and checks it with
``daemon.config_checks``; this module only says what each table may hold.
Secrets never live here: accounts name the environment variables that hold them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from actors.account_risk import AccountRiskLimits
from actors.params import BreakoutParams, RiskLimits, StrategyParams
from adapters.okx.config import OkxFeed


class Base(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class DaemonSection(Base, frozen=True, kw_only=True):
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "text"] = "auto"
    state_dir: str = ".state"
    feed_stale_after_s: float = 120.0
    # A config without an enabled group (an empty or truncated file) is refused, and so is a reload
    # that would stop every running group, unless this is set.
    allow_empty: bool = False


class HealthSection(Base, frozen=True, kw_only=True):
    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 8787
    admin_token_env: str = "TRADINGD_ADMIN_TOKEN"
    # A file holding the admin token (relative: to the config file); "" = none.  The environment
    # variable and the systemd credential admin_token come first (daemon.admin_token).
    admin_token_file: str = ""


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
    # rediss:// only. The server's certificate is always verified, with its host name (the URL's).
    tls_ca_file: str = ""  # PEM CA bundle for the server's certificate; "" = the system's CAs
    tls_cert_file: str = ""  # client certificate (PEM) for mutual TLS; with tls_key_file
    tls_key_file: str = ""  # its unencrypted private key (PEM)
    # The password, when the URL has none: $CREDENTIALS_DIRECTORY/redis_password, else this variable.
    password_env: str = "TRADINGD_REDIS_PASSWORD"


class StoreSection(Base, frozen=True, kw_only=True):
    """The order journal (under daemon.state_dir) and its PostgreSQL copy."""

    enabled: bool = False
    postgres: bool = True
    dsn: str = "postgresql://postgres@127.0.0.1:5432/tradingd"
    flush_interval_ms: int = 100
    batch_size: int = 1000
    snapshot_interval_s: float = 60.0
    metrics_checkpoint_s: float = 60.0  # copies of every metric into metrics_checkpoints; 0 = off


class SupervisorSection(Base, frozen=True, kw_only=True):
    max_restarts: int = 5
    window_s: float = 60.0
    backoff_initial_s: float = 0.1
    backoff_max_s: float = 10.0


class ChannelsSection(Base, frozen=True, kw_only=True):
    capacity: int = 4096
    batch_size: int = 1024


class PaperAccount(Base, frozen=True, kw_only=True, tag_field="exchange", tag="paper"):
    """A simulated account (``exchange = "paper"``, the default): the paper matching engine."""

    balances: dict[str, Decimal] = {}
    maker_fee: Decimal = Decimal("0.001")
    taker_fee: Decimal = Decimal("0.001")
    slippage_bps: Decimal = Decimal("2")
    participation: Decimal = Decimal("1")
    latency_ms: int = 0
    risk: AccountRiskLimits = AccountRiskLimits()
    balance_check_s: float = 300.0  # venue balances vs the ledger this often (0: only at start)
    on_balance_drift: Literal["alert", "halt"] = "alert"
    balance_tolerance: Decimal | None = None  # per asset; unset: the asset's step (base) or tick (quote)


class BinanceAccount(Base, frozen=True, kw_only=True, tag_field="exchange", tag="binance"):
    """A real Binance spot account (``exchange = "binance"``): orders go to the venue.

    The API key and secret come from the environment variables named here, never from the file;
    ``secret_env`` holds the HMAC secret (``key_type = "hmac"``) or the Ed25519 private key PEM
    (``key_type = "ed25519"``; the PEM itself or a path to it).
    """

    rest_url: str = "https://api.binance.com"
    ws_api_url: str = "wss://ws-api.binance.com:443/ws-api/v3"
    stream_url: str = "wss://stream.binance.com:9443"  # listenKey user stream only
    api_key_env: str = "BINANCE_API_KEY"
    secret_env: str = "BINANCE_API_SECRET"
    key_type: Literal["hmac", "ed25519"] = "hmac"
    recv_window_ms: int = 5000
    user_stream: Literal["ws_api", "listen_key"] = "ws_api"
    listen_key_keepalive_s: float = 1800.0  # listen_key only: PUT this often (Binance: valid 60 min)
    timeout_s: float = 10.0
    connect_timeout_s: float = 10.0
    resolve_backoff_max_s: float = 10.0
    limit_maker: bool = False  # good-till-cancel limit orders go as LIMIT_MAKER (post-only)
    # a stop-loss on a symbol without STOP_LOSS rests as STOP_LOSS_LIMIT, its limit this % beyond
    stop_limit_offset_pct: Decimal = Decimal("0.5")
    risk: AccountRiskLimits = AccountRiskLimits()
    exchange_info_refresh_s: float = 3600.0  # filters and order types are reloaded this often
    foreign_orders: Literal["flag", "cancel", "adopt"] = "flag"
    balance_check_s: float = 300.0  # venue balances vs the ledger this often (0: only at start)
    on_balance_drift: Literal["alert", "halt"] = "alert"
    balance_tolerance: Decimal | None = None  # per asset; unset: the asset's step (base) or tick (quote)
    """At start, open orders of a traded symbol that the journal does not know: log and report
    them (flag), cancel them, or take them over (adopt: their fills move the group's position)."""


AccountConfig = PaperAccount | BinanceAccount


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
    rotate_after_s: float = 84_600.0  # Binance cuts a stream connection after 24 h: hand over before
    book_depth: int = 100  # levels kept and published; the snapshot limit is the smallest step holding them
    # groups with the same feed settings (but venue_symbol) share one connection set (1,024 streams
    # a connection); false: this group's symbol gets connections of its own
    shared_connection: bool = True


# OkxFeed is the OKX adapter's own table (adapters/okx/config.py)
FeedConfig = ReplayFeed | BinanceFeed | OkxFeed


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
    accounts: dict[str, AccountConfig] = {}
    groups: list[GroupConfig] = []


# ---------------------------------------------------------------------------------------------
