"""The value rules of the config checks: numbers the code can compute with, hosts, URLs, names.

Each yields ``(key path, what was expected)`` problems, the shape ``daemon.config`` turns into
``file:line: key.path: message`` errors.  The bounds, and why:

- every number is finite; a Decimal is at most ``MAX_DECIMAL`` (1e18) in magnitude with at most
  ``MAX_DECIMAL_PLACES`` (18) decimal places, so no price, size or limit can overflow the
  Decimal context (``1e999999999`` raised ``decimal.Overflow`` in the strategy);
- an integer is at most ``MAX_INT`` (2**31 - 1): seconds and milliseconds of that size still
  fit in int64 nanoseconds; a float is at most ``MAX_FLOAT`` (1e9) for the same reason;
- durations have a floor (``at_least``): a timeout or backoff of 1e-9 s is a busy loop;
- a host (``health.bind``, a URL's) is an IP address or a DNS name (never resolved here);
- a Redis URL is parsed strictly: numeric port 1..65535, database 0..``MAX_REDIS_DB`` (the
  server's default ``databases 16``), no query other than ``db``;
- a value shown in a message never shows a URL's password (:func:`daemon.logs.redact_url`),
  and an ``*_env`` value that is not a variable name is never shown at all (it may be the key).
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import msgspec

from daemon.logs import redact_url

Problems = Iterator[tuple[str, str]]

MAX_DECIMAL = Decimal("1e18")
MAX_DECIMAL_PLACES = 18
MAX_INT = 2**31 - 1
MAX_FLOAT = 1e9
MAX_REDIS_DB = 15
MAX_NAME_LEN = 64


def bad(value: float | int | Decimal) -> bool:
    """NaN or infinite (a Decimal or a float; ints are always fine)."""
    if isinstance(value, Decimal):
        return not value.is_finite()
    return isinstance(value, float) and not math.isfinite(value)


def positive(path: str, value: float | int | Decimal, allow_zero: bool = False) -> Problems:
    if bad(value) or value < 0 or (value == 0 and not allow_zero):
        yield path, f"expected a {'non-negative' if allow_zero else 'positive'} finite number, got {value}"


def between(path: str, value: float | Decimal, low: float, high: float, what: str) -> Problems:
    if bad(value) or not low <= value <= high:
        yield path, f"expected {what}, got {value}"


def at_least(path: str, value: float, minimum: float, why: str, zero_off: bool = False) -> Problems:
    """A duration (seconds) of at least ``minimum``; 0 too when ``zero_off`` (0 = off)."""
    if bad(value) or value < 0 or (value == 0 and zero_off) or value >= minimum:
        return
    off = " (or 0 = off)" if zero_off else ""
    yield path, f"expected at least {minimum:g} s{off}: {why}; got {value}"


# --- every number in the config -----------------------------------------------------------------


def numbers(value: object, path: str = "") -> Iterator[tuple[str, int | float | Decimal]]:
    """Every int, float and Decimal inside ``value`` (a Struct, dict, list), with its key path."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float | Decimal):
        yield path, value
    elif isinstance(value, msgspec.Struct):
        for field in msgspec.structs.fields(value):
            yield from numbers(getattr(value, field.name), f"{path}.{field.name}" if path else field.name)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from numbers(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from numbers(item, f"{path}[{i}]")


def computable(path: str, value: int | float | Decimal) -> Problems:
    """Within the bounds above: arithmetic on it can neither overflow nor lose the value."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            yield path, f"expected a finite number, got {value}"
        elif value.copy_abs() > MAX_DECIMAL:  # abs() would round in the context: Overflow
            yield path, f"expected a number of at most {MAX_DECIMAL:.0e} in magnitude, got {value}"
        elif value and _places(value) > MAX_DECIMAL_PLACES:
            yield path, f"expected at most {MAX_DECIMAL_PLACES} decimal places, got {value}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            yield path, f"expected a finite number, got {value}"
        elif abs(value) > MAX_FLOAT:
            yield path, f"expected a number of at most {MAX_FLOAT:.0e} in magnitude, got {value}"
    elif abs(value) > MAX_INT:
        yield path, f"expected an integer of at most {MAX_INT} in magnitude, got {value}"


def _places(value: Decimal) -> int:
    """Decimal places once trailing zeros are dropped ("1.000" has 0; no rounding, unlike normalize)."""
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    text = "".join(map(str, digits))
    return max(0, -(exponent + len(text) - len(text.rstrip("0"))))


# --- text values -------------------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def is_host(value: str) -> bool:
    """An IPv4/IPv6 address or a DNS host name (labels of letters, digits, '-'); not resolved."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        pass
    else:
        return True
    labels = value.removesuffix(".").split(".")
    if not value or len(value) > 253 or labels[-1].isdigit():  # 999.1.1.1 is a bad address, not a name
        return False
    return all(_LABEL.match(label) for label in labels)


def host(path: str, value: str) -> Problems:
    if not is_host(value):
        yield (
            path,
            "expected an IP address or a host name (0.0.0.0 or :: for every interface), "
            f"got {redact_url(value)!r}",
        )


ENV_NAME = re.compile(rf"^[A-Za-z_][A-Za-z0-9_]{{0,{MAX_NAME_LEN - 1}}}$")


def looks_like_secret(value: str) -> bool:
    """A long run of mixed letters and digits without '_': a pasted key, not a variable's name."""
    if "_" in value or len(value) < 16:
        return False
    kinds = sum(any(test(c) for c in value) for test in (str.islower, str.isupper, str.isdigit))
    return kinds >= 2 and (kinds == 3 or len(value) >= 32)


def env_name(path: str, value: str) -> Problems:
    """The NAME of an environment variable; the value itself is never shown (it may be the secret)."""
    if not ENV_NAME.match(value) or looks_like_secret(value):
        yield (
            path,
            f"expected the NAME of an environment variable (letters, digits and '_', at most "
            f"{MAX_NAME_LEN}, like BINANCE_API_KEY), got a value that is not one (not shown: it may be "
            "a secret, and secrets never go in the file)",
        )


def printable_name(path: str, value: str, what: str) -> Problems:
    """Non-empty, at most MAX_NAME_LEN characters, printable, no spaces (a Redis key prefix)."""
    if not value or len(value) > MAX_NAME_LEN or not value.isprintable() or any(c.isspace() for c in value):
        yield (
            path,
            f"expected {what}: 1..{MAX_NAME_LEN} printable characters without spaces or control "
            f"characters, got {value!r}",
        )


def directory(path: str, value: str) -> Problems:
    if not value.strip() or not value.isprintable():
        yield path, f"expected a directory path (printable, not empty), got {value!r}"


def file_path(path: str, value: str, what: str) -> Problems:
    """A path to a file holding ``what`` (printable, no surrounding spaces, not a directory)."""
    if not value.strip() or value != value.strip() or not value.isprintable():
        yield path, f"expected the path of a file holding {what} (printable, no spaces around), got {value!r}"
    elif Path(value).is_dir():
        yield path, f"expected the path of a file holding {what}, but {value} is a directory"


def writable_directory(path: str, value: str, why: str) -> Problems:
    """``value`` is (or can be made as) a directory this user may write."""
    probe = Path(value).absolute()
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        yield path, f"expected a directory ({why}), but {probe} is not one"
    elif not os.access(probe, os.W_OK | os.X_OK):
        yield path, f"expected a directory this user can write ({why}), but {probe} is not writable"


def redis_url(path: str, url: str) -> Problems:
    """redis://[user:password@]host[:port][/db], rediss://... (TLS) or unix:///path[?db=N]."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not the reason: it quotes the port, which may be a misplaced password
        yield path, f"expected a redis://host:port/db URL with a numeric port 1..65535, got {shown!r}"
        return
    if parts.scheme not in ("redis", "rediss", "unix") or not url.startswith(f"{parts.scheme}://"):
        yield path, f"expected a redis://, rediss:// (TLS) or unix:// URL, got {shown!r}"
        return
    if parts.fragment or any(key != "db" for key, _ in parse_qsl(parts.query, keep_blank_values=True)):
        yield path, f"expected no query or fragment but ?db=N, got {shown!r}"
        return
    query_db = [value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key == "db"]
    if parts.scheme == "unix":
        if not parts.path.startswith("/") or parts.netloc:
            yield path, f"expected unix:///absolute/path/to/redis.sock, got {shown!r}"
            return
        dbs = query_db
    else:
        if not is_host(parts.hostname or ""):
            yield path, f"expected a host name or IP address after {parts.scheme}://, got {shown!r}"
            return
        if port == 0 or (port is None and parts.netloc.endswith(":")):
            yield path, f"expected a numeric port 1..65535, got {shown!r}"
            return
        dbs = [parts.path[1:]] if parts.path not in ("", "/") else []
        dbs += query_db
    for db in dbs:
        if not (db.isascii() and db.isdigit() and int(db) <= MAX_REDIS_DB) or len(dbs) > 1:
            yield (
                path,
                f"expected one database number 0..{MAX_REDIS_DB} (the server's default `databases 16`), "
                f"got {shown!r}",
            )
            return


def postgres_dsn(path: str, dsn: str) -> Problems:
    if not dsn.startswith(("postgresql://", "postgres://")):
        yield path, f"expected a postgresql:// DSN, got {redact_url(dsn)!r}"


def url(path: str, value: str, schemes: tuple[str, ...]) -> Problems:
    """An http(s)/ws(s) URL of one of ``schemes`` (each like "https://") with a valid host."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        parts = None
    if not value.startswith(schemes):
        yield path, f"expected a {' or '.join(schemes)} URL, got {redact_url(value)!r}"
    elif parts is None or not is_host(parts.hostname or ""):
        yield path, f"expected a host name or IP address and a port 1..65535, got {redact_url(value)!r}"
