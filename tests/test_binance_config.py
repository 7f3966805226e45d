"""Config of a Binance account: accounts are a tagged union on ``exchange`` (missing means paper),
value rules with file, line and key path, credentials named by environment variable only (a clear
error at start when one is missing), and a Binance account's group running BinanceExecution."""

from __future__ import annotations

import pytest

from adapters.binance.credentials import credential_problems
from daemon.config import BinanceAccount, ConfigError, PaperAccount, diff_configs, parse_config

GROUP = """
[[groups]]
exchange = "binance"
symbol = "BTC/USDT"
account = "live"
[groups.instrument]
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.00001"
[groups.feed]
kind = "binance"
venue_symbol = "BTCUSDT"
"""


def _cfg(live: str, paper: str = 'balances = { USDT = "1000" }') -> str:
    return f"[accounts.paper]\n{paper}\n[accounts.live]\n{live}\n{GROUP}"


def test_accounts_are_a_tagged_union_and_a_missing_exchange_means_paper() -> None:
    cfg = parse_config(
        _cfg(
            'exchange = "binance"\nrest_url = "https://testnet.binance.vision"\n'
            'ws_api_url = "wss://ws-api.testnet.binance.vision/ws-api/v3"\nkey_type = "ed25519"\n'
            'api_key_env = "TESTNET_KEY"\nsecret_env = "TESTNET_PEM"\nuser_stream = "listen_key"'
        )
    )
    paper, live = cfg.accounts["paper"], cfg.accounts["live"]
    assert isinstance(paper, PaperAccount) and isinstance(live, BinanceAccount)
    assert (live.rest_url, live.key_type, live.user_stream, live.recv_window_ms) == (
        "https://testnet.binance.vision",
        "ed25519",
        "listen_key",
        5000,
    )
    assert live.api_key_env == "TESTNET_KEY"


@pytest.mark.parametrize(
    ("live", "message"),
    [
        (
            'exchange = "binance"\napi_secret = "s3cr3t"',
            r"^c\.toml:5: accounts\.live\.api_secret: unknown key `api_secret`",
        ),
        (
            'exchange = "binance"\nrest_url = "ftp://x"',
            r"^c\.toml:5: accounts\.live\.rest_url: expected a https:// or http:// URL, got 'ftp://x'$",
        ),
        (
            'exchange = "binance"\nws_api_url = "https://x"',
            r"^c\.toml:5: accounts\.live\.ws_api_url: expected a wss:// or ws:// URL",
        ),
        (
            'exchange = "binance"\nsecret_env = "abc=def"',
            r"^c\.toml:5: accounts\.live\.secret_env: expected the NAME of an environment variable",
        ),
        (
            'exchange = "binance"\nrecv_window_ms = 70000',
            r"^c\.toml:5: accounts\.live\.recv_window_ms: expected 1\.\.60000 ms .*, got 70000$",
        ),
        (
            'exchange = "binance"\nkey_type = "rsa"',
            r"^c\.toml:5: accounts\.live\.key_type: Invalid enum value 'rsa'$",
        ),
        ('exchange = "kraken"', r"^c\.toml:4: accounts\.live\.exchange: Invalid value 'kraken'$"),
        (
            'exchange = "binance"\nlisten_key_keepalive_s = 3600.0',
            r"^c\.toml:5: accounts\.live\.listen_key_keepalive_s: expected less than 3600 s \(Binance",
        ),
    ],
)
def test_bad_binance_accounts_name_file_line_and_key(live: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(_cfg(live), "c.toml")


@pytest.mark.parametrize("depth", [0, 5001, 10_000])
def test_a_book_depth_no_depth_snapshot_can_give_is_refused(depth: int) -> None:
    text = _cfg('exchange = "binance"') + f"book_depth = {depth}\n"
    line = text.splitlines().index(f"book_depth = {depth}") + 1
    with pytest.raises(ConfigError) as err:
        parse_config(text, "c.toml")
    assert str(err.value).startswith(
        f"c.toml:{line}: groups[0].feed.book_depth: expected 1..5000 levels: a Binance depth snapshot"
    ), str(err.value)
    assert str(err.value).endswith(f"got {depth}")


@pytest.mark.parametrize("depth", [1, 5, 100, 101, 5000])
def test_every_book_depth_a_snapshot_can_hold_is_accepted(depth: int) -> None:
    cfg = parse_config(_cfg('exchange = "binance"') + f"book_depth = {depth}\n")
    assert cfg.groups[0].feed.book_depth == depth  # type: ignore[union-attr]


def test_missing_credentials_are_reported_by_variable_name_only_for_used_accounts() -> None:
    cfg = parse_config(_cfg('exchange = "binance"\napi_key_env = "K"\nsecret_env = "S"'))
    assert credential_problems(cfg, {}) == [
        "accounts.live: environment variable K (the Binance API key) is not set"
    ]
    assert credential_problems(cfg, {"K": "tk-2c7a94"}) == [
        "accounts.live: environment variable S (the Binance hmac secret) is not set"
    ]
    assert credential_problems(cfg, {"K": "tk-2c7a94", "S": "ts-e41b06"}) == []


def test_switching_an_account_to_binance_restarts_its_group() -> None:
    old = parse_config(_cfg('exchange = "binance"'))
    new = parse_config(_cfg('exchange = "binance"\nrecv_window_ms = 3000'))
    assert diff_configs(old, new).restart == [("binance", "BTC/USDT")] or diff_configs(old, new).update == [
        ("binance", "BTC/USDT")
    ]
