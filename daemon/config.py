"""The daemon's configuration: TOML decoded into frozen msgspec Structs, validated, diffed.

``load_config(path)`` returns a :class:`Config` or raises :class:`ConfigError` whose
message names the key path, the line in the file where it can be found, and what was
expected.  ``diff_configs(old, new)`` says which symbol groups to start, stop, restart
or update in place on SIGHUP.

Secrets never live here: accounts name the environment variables that hold them.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec

from daemon.config_checks import validate
from daemon.config_lines import line_of, path_at
from daemon.config_schema import (
    AccountConfig,
    BinanceAccount,
    BinanceFeed,
    ChannelsSection,
    Config,
    DaemonSection,
    FeedConfig,
    GroupConfig,
    HealthSection,
    Instrument,
    PaperAccount,
    RedisSection,
    ReplayFeed,
    StoreSection,
    SupervisorSection,
)
from daemon.logs import redact_url

__all__ = [
    "AccountConfig",
    "BinanceAccount",
    "BinanceFeed",
    "ChannelsSection",
    "Config",
    "ConfigDiff",
    "ConfigError",
    "DaemonSection",
    "FeedConfig",
    "GroupConfig",
    "HealthSection",
    "Instrument",
    "PaperAccount",
    "RedisSection",
    "ReplayFeed",
    "StoreSection",
    "SupervisorSection",
    "diff_configs",
    "load_config",
    "parse_config",
]


class ConfigError(Exception):
    """A config file that cannot be used; ``str()`` is a message for the operator, in which no URL
    shows its password (it goes to the log, ``/status`` and the Redis ``system`` stream)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_url(message))


def _err(text: str, path: str, message: str, source: str) -> ConfigError:
    line = line_of(text, path) if text else None
    where = f"{source}:{line}: " if line else f"{source}: "
    return ConfigError(f"{where}{path}: {message}")


_TOML_AT = re.compile(r"^(?P<what>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$")


def _toml_error(text: str, source: str, exc: tomllib.TOMLDecodeError) -> ConfigError:
    """``file:line: key.path: expected valid TOML: what (column N)``, like every other config error."""
    m = _TOML_AT.match(str(exc))
    what = m.group("what") if m else str(exc)
    if m and m.group("line"):
        line, where = int(m.group("line")), f"column {m.group('col')}"
    else:  # a truncated file: the error is at its end
        line, where = max(len(text.splitlines()), 1), "at the end of the file"
    path = path_at(text, line) or "(top level)"
    what = what[:1].lower() + what[1:]
    return ConfigError(f"{source}:{line}: {path}: expected valid TOML: {what} ({where})")


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
                msgspec.convert(value, AccountConfig, strict=True)
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


def _default_account_exchange(raw: dict[str, object]) -> None:
    """``[accounts.x]`` without ``exchange`` is a paper account (the tagged union needs the tag)."""
    accounts = raw.get("accounts")
    for acct in accounts.values() if isinstance(accounts, dict) else ():
        if isinstance(acct, dict):
            acct.setdefault("exchange", "paper")


def _default_strategy_name(raw: dict[str, object]) -> None:
    """``[groups.strategy]`` without ``name`` is breakout (the tagged union needs the tag)."""
    groups = raw.get("groups")
    for g in groups if isinstance(groups, list) else ():
        strategy = g.get("strategy") if isinstance(g, dict) else None
        if isinstance(strategy, dict):
            strategy.setdefault("name", "breakout")


def parse_config(text: str, source: str = "<config>") -> Config:
    """Decode and validate TOML text. Raises ConfigError naming key path, line and expectation."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(text, source, exc) from None
    except RecursionError:
        raise ConfigError(f"{source}: (top level): expected valid TOML: nested too deeply") from None
    _default_feed_kind(raw)
    _default_strategy_name(raw)
    _default_account_exchange(raw)
    try:
        cfg = msgspec.convert(raw, Config, strict=True)  # "8794" is not a port, "20" not a lookback
    except msgspec.ValidationError as exc:
        path, what = _msgspec_path(str(exc))
        path = _name_dict_key(raw, path)
        unknown = _UNKNOWN.match(what)
        if unknown:
            path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
            what = f"unknown key `{unknown.group(1)}` (check the spelling; see config.toml for every key)"
        raise _err(text, path or "(top level)", what, source) from None
    problems = list(validate(cfg))
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
    health = cfg.health
    if health.admin_token_file and not Path(health.admin_token_file).is_absolute():
        token_file = str((base / health.admin_token_file).absolute())  # the token file: next to the config
        health = msgspec.structs.replace(health, admin_token_file=token_file)
    return msgspec.structs.replace(cfg, groups=groups, health=health)


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
