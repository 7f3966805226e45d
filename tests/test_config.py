"""Config parsing, validation and diffing: the shipped config.toml, hostile values, reload diffs.

Every rejected config must raise :class:`ConfigError` whose message is
``file:line: key.path: what was expected`` (the line is that of the key, or of its
nearest table when the key is missing).  The "regressions" section pins bugs these
tests found in daemon/config.py and daemon/config_lines.py (since fixed).
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import Config, ConfigError, diff_configs, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config.toml"
UNKNOWN = "(check the spelling; see config.toml for every key)"
replace = msgspec.structs.replace

# A small complete config with every section at a known line (numbers on the right).
MIN = """\
[daemon]
feed_stale_after_s = 120.0

[health]
port = 8787

[redis]
maxlen = 1000

[supervisor]
window_s = 60.0

[channels]
capacity = 64

[accounts.paper]
balances = { BTC = "1" }
participation = "1"
taker_fee = "0.001"

[[groups]]
exchange = "paper"
symbol = "BTC/USDT"
account = "paper"

[groups.instrument]
base = "BTC"
quote = "USDT"
tick_size = "0.01"
step_size = "0.0001"

[groups.feed]
path = "data.json"
format = "candles"
speed = 0.0

[groups.strategy]
ema_fast = 5
ema_slow = 13

[groups.risk]
max_order_notional = "100"
"""
# 1 [daemon] 2 feed_stale 4 [health] 5 port 7 [redis] 8 maxlen 10 [supervisor] 11 window_s
# 13 [channels] 14 capacity 16 [accounts.paper] 17 balances 18 participation 19 taker_fee
# 21 [[groups]] 22 exchange 23 symbol 24 account 26 [groups.instrument] 27 base 28 quote
# 29 tick_size 30 step_size 32 [groups.feed] 33 path 34 format 35 speed 37 [groups.strategy]
# 38 ema_fast 39 ema_slow 41 [groups.risk] 42 max_order_notional


def mutate(old: str, new: str) -> str:
    assert MIN.count(old) == 1, old
    return MIN.replace(old, new)


def rejects(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        parse_config(text, "cfg.toml")


# --- accepted configs --------------------------------------------------------------------------


def test_min_config_parses_with_defaults() -> None:
    cfg = parse_config(MIN, "cfg.toml")
    assert cfg.health.port == 8787 and cfg.redis.maxlen == 1000 and cfg.channels.capacity == 64
    (g,) = cfg.groups
    assert g.key == ("paper", "BTC/USDT") and g.feed.speed == 0.0 and g.feed.loop is False
    assert g.instrument.tick_size == Decimal("0.01") and g.risk.max_order_notional == Decimal("100")
    assert cfg.accounts["paper"].balances == {"BTC": Decimal("1")}
    assert [MIN.splitlines()[n - 1] for n in (5, 19, 23, 35, 38)] == [
        "port = 8787",
        'taker_fee = "0.001"',
        'symbol = "BTC/USDT"',
        "speed = 0.0",
        "ema_fast = 5",
    ]


def test_shipped_config() -> None:
    cfg = load_config(SHIPPED)
    assert [g.key for g in cfg.groups] == [("paper", "UNITTEST/BTC"), ("paper", "XRP/ETH")]
    candles, trades = cfg.groups
    assert (candles.feed.format, candles.feed.speed, candles.feed.loop) == ("candles", 600.0, True)
    assert (trades.feed.format, trades.feed.speed) == ("trades", 60.0)
    for g in cfg.groups:  # relative data paths are resolved against the config's directory
        assert Path(g.feed.path).is_absolute() and Path(g.feed.path).is_file()
        assert g.account in cfg.accounts and g.strategy.ema_fast < g.strategy.ema_slow
    assert candles.instrument.tick_size == Decimal("0.00000001")
    assert candles.risk.max_order_notional == Decimal("0.5")
    assert cfg.accounts["paper"].balances["BTC"] == Decimal("1.0")
    assert trades.strategy.cooldown_s == 1800 and trades.strategy.lookback == 20  # defaults
    assert parse_config(SHIPPED.read_text(), str(SHIPPED)).groups[0].feed.path.startswith("adapters/")


# --- hostile values ----------------------------------------------------------------------------

TYPE_CASES = [
    ("port = 8787", "port = 80.5", "cfg.toml:5: health.port: Expected `int`, got `float`"),
    ("port = 8787", "port = true", "cfg.toml:5: health.port: Expected `int`, got `bool`"),
    ("port = 8787", "port = 1979-05-27", "cfg.toml:5: health.port: Expected `int`, got `date`"),
    ("speed = 0.0", 'loop = "yes"', "cfg.toml:35: groups[0].feed.loop: Expected `bool`, got `str`"),
    ('format = "candles"', 'format = "csv"', "cfg.toml:34: groups[0].feed.format: Invalid enum value 'csv'"),
    (
        "ema_fast = 5",
        "ema_fast = 5.5",
        "cfg.toml:38: groups[0].strategy.ema_fast: Expected `int`, got `float`",
    ),
    ('symbol = "BTC/USDT"', "symbol = 1", "cfg.toml:23: groups[0].symbol: Expected `str`, got `int`"),
    (
        'balances = { BTC = "1" }',
        'balances = "lots"',
        "cfg.toml:17: accounts.paper.balances: Expected `object`, got `str`",
    ),
    (
        'tick_size = "0.01"',
        'tick_size = "abc"',
        "cfg.toml:29: groups[0].instrument.tick_size: Invalid decimal string",
    ),
    ("[[groups]]", "[groups]", "cfg.toml:21: groups: Expected `array`, got `object`"),
]

UNKNOWN_CASES = [
    ("[daemon]", "bogus = 1\n[daemon]", f"cfg.toml:1: bogus: unknown key `bogus` {UNKNOWN}"),
    (
        "feed_stale_after_s = 120.0",
        "feed_stale_after = 120.0",
        f"cfg.toml:2: daemon.feed_stale_after: unknown key `feed_stale_after` {UNKNOWN}",
    ),
    (
        'taker_fee = "0.001"',
        'taker_fees = "0.001"',
        f"cfg.toml:19: accounts.paper.taker_fees: unknown key `taker_fees` {UNKNOWN}",
    ),
    ("speed = 0.0", "sped = 0.0", f"cfg.toml:35: groups[0].feed.sped: unknown key `sped` {UNKNOWN}"),
    (
        "ema_slow = 13",
        "ema_slw = 13",
        f"cfg.toml:39: groups[0].strategy.ema_slw: unknown key `ema_slw` {UNKNOWN}",
    ),
    (
        "[[groups]]",
        "[accounts.live]\nfees = 1\n\n[[groups]]",
        f"cfg.toml:22: accounts.live.fees: unknown key `fees` {UNKNOWN}",
    ),
]

MISSING_CASES = [
    ('symbol = "BTC/USDT"\n', "", "cfg.toml:21: groups[0]: Object missing required field `symbol`"),
    ('path = "data.json"\n', "", "cfg.toml:32: groups[0].feed: Object missing required field `path`"),
    (
        'tick_size = "0.01"\n',
        "",
        "cfg.toml:26: groups[0].instrument: Object missing required field `tick_size`",
    ),
]

POSITIVE = "expected a positive finite number, got"
NON_NEGATIVE = "expected a non-negative finite number, got"
NUMBER_CASES = [
    ("speed = 0.0", "speed = nan", f"cfg.toml:35: groups[0].feed.speed: {NON_NEGATIVE} nan"),
    ("speed = 0.0", "speed = inf", f"cfg.toml:35: groups[0].feed.speed: {NON_NEGATIVE} inf"),
    ("speed = 0.0", "speed = -1.0", f"cfg.toml:35: groups[0].feed.speed: {NON_NEGATIVE} -1.0"),
    ("window_s = 60.0", "window_s = nan", f"cfg.toml:11: supervisor.window_s: {POSITIVE} nan"),
    ("window_s = 60.0", "window_s = -inf", f"cfg.toml:11: supervisor.window_s: {POSITIVE} -inf"),
    ("maxlen = 1000", "maxlen = -5", f"cfg.toml:8: redis.maxlen: {POSITIVE} -5"),
    ("capacity = 64", "capacity = 0", f"cfg.toml:14: channels.capacity: {POSITIVE} 0"),
    (
        'taker_fee = "0.001"',
        'taker_fee = "NaN"',
        f"cfg.toml:19: accounts.paper.taker_fee: {NON_NEGATIVE} NaN",
    ),
    (
        'taker_fee = "0.001"',
        'taker_fee = "-0.001"',
        f"cfg.toml:19: accounts.paper.taker_fee: {NON_NEGATIVE} -0.001",
    ),
    ('BTC = "1"', 'BTC = "-1"', f"cfg.toml:17: accounts.paper.balances.BTC: {NON_NEGATIVE} -1"),
    ('BTC = "1"', "BTC = nan", f"cfg.toml:17: accounts.paper.balances.BTC: {NON_NEGATIVE} NaN"),
    (
        'tick_size = "0.01"',
        'tick_size = "-0.01"',
        f"cfg.toml:29: groups[0].instrument.tick_size: {POSITIVE} -0.01",
    ),
    (
        'tick_size = "0.01"',
        'tick_size = "Infinity"',
        f"cfg.toml:29: groups[0].instrument.tick_size: {POSITIVE} Infinity",
    ),
    (
        'max_order_notional = "100"',
        'max_order_notional = "0"',
        f"cfg.toml:42: groups[0].risk.max_order_notional: {POSITIVE} 0",
    ),
    ("ema_fast = 5", "ema_fast = -5", f"cfg.toml:38: groups[0].strategy.ema_fast: {POSITIVE} -5"),
    (
        'participation = "1"',
        'participation = "2"',
        "cfg.toml:18: accounts.paper.participation: expected a fraction in (0, 1], got 2",
    ),
    (
        "ema_slow = 13",
        "ema_slow = 13\nconfidence = nan",
        "cfg.toml:40: groups[0].strategy.confidence: expected a number in (0, 1], got nan",
    ),
    (
        "port = 8787",
        "port = 65536",
        "cfg.toml:5: health.port: expected a TCP port 0..65535 (0 picks a free one), got 65536",
    ),
]

RULE_CASES = [
    (
        "ema_fast = 5",
        "ema_fast = 13",
        "cfg.toml:38: groups[0].strategy.ema_fast: expected ema_fast < ema_slow, got 13 >= 13",
    ),
    (
        "ema_slow = 13",
        "ema_slow = 3",
        "cfg.toml:38: groups[0].strategy.ema_fast: expected ema_fast < ema_slow, got 5 >= 3",
    ),
    (
        'account = "paper"',
        'account = "live"',
        "cfg.toml:24: groups[0].account: expected the name of an [accounts.*] table, got 'live'",
    ),
    (
        'symbol = "BTC/USDT"',
        'symbol = "BTC USDT"',
        "cfg.toml:23: groups[0].symbol: expected a symbol like 'BTC/USDT' (letters, digits, . _ / -), "
        "got 'BTC USDT'",
    ),
    (
        'path = "data.json"',
        'path = "data"',
        "cfg.toml:33: groups[0].feed.path: expected a data file (.json or .json.gz), got 'data'",
    ),
    ("port = 8787", "port = ", "cfg.toml:5: health.port: expected valid TOML: invalid value (column 8)"),
    (
        "port = 8787",
        "port = 1\nport = 2",
        "cfg.toml:6: health.port: expected valid TOML: cannot overwrite a value (column 9)",
    ),
    (
        "[health]",
        "[health",
        "cfg.toml:4: health: expected valid TOML: expected ']' at the end of a table declaration (column 8)",
    ),
]


def _case_id(value: object) -> str | None:
    """Test id: the key path named by the expected message (``health.port``), nothing else."""
    text = str(value)
    return text.split(": ")[1].replace(" ", "_") if text.startswith("cfg.toml") else ""


@pytest.mark.parametrize(
    ("old", "new", "message"),
    TYPE_CASES + UNKNOWN_CASES + MISSING_CASES + NUMBER_CASES + RULE_CASES,
    ids=_case_id,
)
def test_hostile_values(old: str, new: str, message: str) -> None:
    rejects(mutate(old, new), message)


def test_duplicate_group() -> None:
    group = MIN[MIN.index("[[groups]]") :]
    text = MIN + "\n" + group
    line = text.splitlines().index("[[groups]]", 30) + 1
    assert line == 44
    rejects(text, f"cfg.toml:{line}: groups[1]: duplicate group for exchange 'paper' symbol 'BTC/USDT'")


def test_hostile_values_in_shipped_config() -> None:
    text = SHIPPED.read_text()
    second = text.index('symbol = "XRP/ETH"')
    bad = text[:second] + text[second:].replace("cooldown_s = 1800", "cooldown_s = 1800\nbogus = 1", 1)
    line = bad.splitlines().index("bogus = 1") + 1
    rejects(bad, f"cfg.toml:{line}: groups[1].strategy.bogus: unknown key `bogus` {UNKNOWN}")
    dup = text.replace('symbol = "XRP/ETH"', 'symbol = "UNITTEST/BTC"')
    line = dup.splitlines().index("[[groups]]", dup.splitlines().index("[[groups]]") + 1) + 1
    rejects(dup, f"cfg.toml:{line}: groups[1]: duplicate group for exchange 'paper' symbol 'UNITTEST/BTC'")


def test_unreadable_and_non_utf8_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.toml"
    latin.write_bytes(b'[daemon]\nstate_dir = "\xe9t\xe9"\n')
    reason = "'utf-8' codec can't decode byte 0xe9 in position 22: invalid continuation byte"
    with pytest.raises(ConfigError, match=f"^{re.escape(f'{latin}: config file is not UTF-8: {reason}')}$"):
        load_config(latin)
    missing = tmp_path / "missing.toml"
    with pytest.raises(
        ConfigError, match=f"^{re.escape(f'{missing}: cannot read config file: No such file or directory')}$"
    ):
        load_config(missing)
    with pytest.raises(
        ConfigError, match=f"^{re.escape(f'{tmp_path}: cannot read config file: Is a directory')}$"
    ):
        load_config(tmp_path)


# --- regressions -------------------------------------------------------------------------------


def test_nan_participation_rejected() -> None:
    """Was: ``0 < participation <= 1`` on a Decimal NaN raised decimal.InvalidOperation."""
    for nan in ("NaN", "sNaN"):
        rejects(
            mutate('participation = "1"', f'participation = "{nan}"'),
            f"cfg.toml:18: accounts.paper.participation: expected a fraction in (0, 1], got {nan}",
        )


def test_deeply_nested_toml_rejected() -> None:
    """Was: tomllib's RecursionError on ``a = [[[[...]]]]`` escaped parse_config."""
    rejects("a = " + "[" * 3000 + "]" * 3000, "cfg.toml: (top level): expected valid TOML: nested too deeply")


def test_unknown_dotted_table_names_its_line() -> None:
    """Was: ``[accountz.paper]`` gave no line: only the full header path was indexed."""
    rejects(
        MIN.replace("[accounts.paper]", "[accountz.paper]"),
        f"cfg.toml:16: accountz: unknown key `accountz` {UNKNOWN}",
    )


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "feed_stale_after_s = 120.0",
            "feed_stale_after_s = nan",
            f"cfg.toml:2: daemon.feed_stale_after_s: {POSITIVE} nan",
        ),
        (
            "window_s = 60.0",
            "window_s = 60.0\nbackoff_initial_s = -1.0",
            f"cfg.toml:12: supervisor.backoff_initial_s: {POSITIVE} -1.0",
        ),
        (
            "window_s = 60.0",
            "window_s = 60.0\nmax_restarts = -1",
            f"cfg.toml:12: supervisor.max_restarts: {NON_NEGATIVE} -1",
        ),
        ("capacity = 64", "capacity = 64\nbatch_size = 0", f"cfg.toml:15: channels.batch_size: {POSITIVE} 0"),
        ("speed = 0.0", "interval_s = 0", f"cfg.toml:35: groups[0].feed.interval_s: {POSITIVE} 0"),
        (
            "ema_slow = 13",
            "ema_slow = 13\nrsi_buy_max = nan",
            "cfg.toml:40: groups[0].strategy.rsi_buy_max: expected a number in [0, 100], got nan",
        ),
        (
            "ema_slow = 13",
            "ema_slow = 13\ncooldown_s = -1",
            f"cfg.toml:40: groups[0].strategy.cooldown_s: {NON_NEGATIVE} -1",
        ),
        (
            'max_order_notional = "100"',
            'max_order_notional = "100"\nmax_open_orders = -1',
            f"cfg.toml:43: groups[0].risk.max_open_orders: {POSITIVE} -1",
        ),
        (
            'max_order_notional = "100"',
            'max_order_notional = "100"\nmax_position = "NaN"',
            f"cfg.toml:43: groups[0].risk.max_position: {POSITIVE} NaN",
        ),
    ],
)
def test_values_once_accepted_unchecked(old: str, new: str, message: str) -> None:
    """Were accepted: NaN timeouts, negative limits, a zero feed interval (the replay feed
    refuses to start with it)."""
    rejects(mutate(old, new), message)


# --- diff --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped() -> Config:
    return parse_config(SHIPPED.read_text(), "config.toml")


def test_diff_identical_is_empty(shipped: Config) -> None:
    d = diff_configs(shipped, parse_config(SHIPPED.read_text(), "config.toml"))
    assert (d.start, d.stop, d.restart, d.update, d.process, d.describe()) == ([], [], [], [], [], [])


def test_diff_add_and_remove_group(shipped: Config) -> None:
    extra = replace(shipped.groups[0], symbol="ETH/BTC")
    added = replace(shipped, groups=[*shipped.groups, extra])
    d = diff_configs(shipped, added)
    assert (d.start, d.stop, d.restart, d.update) == ([("paper", "ETH/BTC")], [], [], [])
    assert d.describe() == ["start paper:ETH/BTC"]
    d = diff_configs(added, shipped)
    assert (d.start, d.stop, d.describe()) == ([], [("paper", "ETH/BTC")], ["stop paper:ETH/BTC"])
    disabled = replace(shipped, groups=[shipped.groups[0], replace(shipped.groups[1], enabled=False)])
    assert diff_configs(shipped, disabled).stop == [("paper", "XRP/ETH")]


def test_diff_strategy_change_updates_in_place(shipped: Config) -> None:
    g = shipped.groups[1]
    new = replace(shipped, groups=[shipped.groups[0], replace(g, strategy=replace(g.strategy, lookback=30))])
    d = diff_configs(shipped, new)
    assert (d.update, d.restart, d.process) == ([("paper", "XRP/ETH")], [], [])
    risk = replace(shipped, groups=[replace(shipped.groups[0], risk=replace(g.risk, max_open_orders=2)), g])
    assert diff_configs(shipped, risk).describe() == ["update paper:UNITTEST/BTC"]


def test_diff_feed_change_restarts(shipped: Config) -> None:
    g = shipped.groups[0]
    new = replace(shipped, groups=[replace(g, feed=replace(g.feed, speed=60.0)), shipped.groups[1]])
    d = diff_configs(shipped, new)
    assert (d.restart, d.update, d.describe()) == (
        [("paper", "UNITTEST/BTC")],
        [],
        ["restart paper:UNITTEST/BTC"],
    )
    g2 = shipped.groups[1]
    moved = replace(
        shipped, groups=[g, replace(g2, instrument=replace(g2.instrument, step_size=Decimal("10")))]
    )
    assert diff_configs(shipped, moved).restart == [("paper", "XRP/ETH")]


def test_account_change_updates_its_groups(shipped: Config) -> None:
    """Was: ``if a == b: continue`` ran before the account comparison, so changed fees gave
    an empty diff and SIGHUP kept the old fees.  Now every group on the account updates."""
    acct = replace(shipped.accounts["paper"], taker_fee=Decimal("0.002"))
    fees = replace(shipped, accounts={"paper": acct})
    d = diff_configs(shipped, fees)
    assert (d.restart, d.update) == ([], [("paper", "UNITTEST/BTC"), ("paper", "XRP/ETH")])


def test_diff_process_sections(shipped: Config) -> None:
    new = replace(shipped, redis=replace(shipped.redis, batch_size=512))
    d = diff_configs(shipped, new)
    assert (d.start, d.stop, d.restart, d.update, d.process) == ([], [], [], [], ["redis"])
    assert d.describe() == ["redis changed (takes effect on restart)"]
    both = replace(new, health=replace(shipped.health, port=9999))
    assert diff_configs(shipped, both).process == ["health", "redis"]


def test_diff_from_edited_text(shipped: Config) -> None:
    text = (
        SHIPPED.read_text()
        .replace("lookback = 20", "lookback = 25")
        .replace("batch_size = 256", "batch_size = 128")
    )
    d = diff_configs(shipped, parse_config(text, "config.toml"))
    assert d.describe() == ["update paper:UNITTEST/BTC", "redis changed (takes effect on restart)"]


# --- property tests ----------------------------------------------------------------------------

SHIPPED_LINES = SHIPPED.read_text().splitlines()
TOML_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(
        lambda f: repr(f).replace("nan", "nan").replace("inf", "inf")
    ),
    st.sampled_from(
        ["nan", "+inf", "-inf", "-0.0", "0", "true", "false", "1979-05-27", "07:32:00", "[]", "{}"]
    ),
    st.sampled_from(['"NaN"', '"sNaN"', '"-1"', '"Infinity"', '"1e999999"', '""', '"0"', '"abc"', '"-0"']),
    st.text(max_size=12).map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    st.lists(st.integers(-5, 5), max_size=3).map(str),
)
KEY_LINES = [i for i, line in enumerate(SHIPPED_LINES) if re.match(r"^\s*[A-Za-z_]+\s*=", line)]


def _check(text: str) -> None:
    try:
        parse_config(text, "cfg.toml")
    except ConfigError as exc:
        assert re.match(r"^cfg\.toml(:\d+)?: \S", str(exc)), str(exc)


def _mutated_line(line: str, op: str, value: str, junk: str) -> list[str]:
    key, sep, _ = line.partition("=")
    if op == "value" and sep and not line.lstrip().startswith("#"):
        return [f"{key}= {value}"]
    if op == "delete":
        return []
    if op == "duplicate":
        return [line, line]
    if op == "insert":
        return [line, junk]
    return [line]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.sampled_from(KEY_LINES), st.integers(0, len(SHIPPED_LINES) - 1)),
            st.sampled_from(["value", "value", "value", "delete", "duplicate", "insert"]),
            TOML_VALUES,
            st.sampled_from(["bogus = 1", "[groups.extra]", "[[groups]]", "[accounts.x]", "x.y = 2", "]"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_random_mutations_of_shipped_config_raise_only_config_error(
    edits: list[tuple[int, str, str, str]],
) -> None:
    lines = list(SHIPPED_LINES)
    for index, op, value, junk in edits:
        index = min(index, len(lines) - 1)
        lines[index : index + 1] = _mutated_line(lines[index], op, value, junk)
        if not lines:
            lines = [""]
    _check("\n".join(lines) + "\n")


TOMLISH = st.text(
    alphabet=st.sampled_from(list("[]{}=\".,'#\n \t0123456789abcdefgnpsuxyz_-+:eE\\é\x00")), max_size=200
)


@settings(max_examples=300, deadline=None)
@given(TOMLISH)
def test_arbitrary_tomlish_text_raises_only_config_error(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(
                [
                    "[daemon]",
                    "[health]",
                    "[redis]",
                    "[accounts.paper]",
                    "[[groups]]",
                    "[groups.feed]",
                    "[groups.strategy]",
                ]
            ),
            st.tuples(
                st.sampled_from(
                    ["port", "symbol", "exchange", "account", "path", "format", "speed", "ema_fast", "maxlen"]
                ),
                TOML_VALUES,
            ).map(lambda kv: f"{kv[0]} = {kv[1]}"),
        ),
        max_size=15,
    )
)
def test_structured_random_configs_raise_only_config_error(lines: list[str]) -> None:
    _check("\n".join(lines) + "\n")


HOSTILE = ["nan", "inf", "-inf", "-1", "0", "1e400", "-0.0", "true", "[]", "{}", "1979-05-27"]
HOSTILE += ['"NaN"', '"sNaN"', '"-1"', '"Infinity"', '"1e999999"', '""', '"abc"', '"\\u0000"']


def test_every_key_with_every_hostile_value_raises_only_config_error() -> None:
    """Exhaustive single-key sweep over the shipped config (the property tests combine edits)."""
    escaped: list[str] = []
    for index in KEY_LINES:
        key = SHIPPED_LINES[index].partition("=")[0]
        for value in HOSTILE:
            lines = list(SHIPPED_LINES)
            lines[index] = f"{key}= {value}"
            try:
                _check("\n".join(lines))
            except Exception as exc:  # noqa: BLE001 - anything but ConfigError is the finding
                escaped.append(f"{key.strip()} = {value}: {type(exc).__name__}: {exc}")
    assert escaped == []


def test_missing_data_file_is_a_config_error_naming_the_key_and_line(tmp_path: Path) -> None:
    text = SHIPPED.read_text().replace("adapters/replay/data/candles/UNITTEST_BTC-1m.json", "missing.json")
    path = tmp_path / "cfg.toml"
    path.write_text(text)
    line = text.splitlines().index('path = "missing.json"') + 1
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert (
        str(err.value)
        == f"{path}:{line}: groups[0].feed.path: no such data file: {tmp_path / 'missing.json'}"
    )


def test_relative_bundled_data_paths_resolve_from_any_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(SHIPPED.read_text())
    cfg = load_config(path)
    assert [Path(g.feed.path).name for g in cfg.groups] == ["UNITTEST_BTC-1m.json", "XRP_ETH-trades.json.gz"]
    assert all(Path(g.feed.path).is_file() for g in cfg.groups)
