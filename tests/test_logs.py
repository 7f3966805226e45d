"""daemon.logs: JSON vs text choice, JSON fields, extras, secret and pattern redaction, idempotent setup."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from decimal import Decimal

import pytest

from daemon.logs import redact, register_secret, setup_logging

TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]


def test_auto_format_writes_json_when_not_a_tty() -> None:
    out = io.StringIO()
    setup_logging("info", "auto", out)
    logging.getLogger("tradingd.test").info("hello %s", "world")
    [entry] = json_lines(out)
    assert list(entry)[:4] == ["ts", "level", "logger", "msg"]
    assert entry["level"] == "INFO"
    assert entry["logger"] == "tradingd.test"
    assert entry["msg"] == "hello world"
    assert TS_RE.match(str(entry["ts"]))
    assert "exc" not in entry


def test_auto_format_writes_text_on_a_tty() -> None:
    out = FakeTTY()
    setup_logging("info", "auto", out)
    logging.getLogger("tradingd.test").warning("careful", extra={"component": "feed"})
    line = out.getvalue().strip()
    assert not line.startswith("{")
    assert re.match(r"^\d{4}-\d\d-\d\dT\S+Z WARNING tradingd\.test: careful \[component=feed\]$", line)


def test_explicit_formats_override_tty_detection() -> None:
    tty, plain = FakeTTY(), io.StringIO()
    setup_logging("info", "json", tty)
    logging.getLogger("t").info("a")
    assert json.loads(tty.getvalue())["msg"] == "a"
    setup_logging("info", "text", plain)
    logging.getLogger("t").info("b")
    assert plain.getvalue().rstrip().endswith("t: b")


def test_extra_fields_appear_and_unencodable_ones_are_dropped() -> None:
    out = io.StringIO()
    setup_logging("debug", "json", out)
    extra = {
        "component": "risk",
        "exchange": "paper",
        "symbol": "BTC/USDT",
        "conn": "ws-1",
        "qty": Decimal("1.5"),
    }
    logging.getLogger("tradingd.risk").debug("checked", extra=extra)
    logging.getLogger("tradingd.risk").info("odd", extra={"component": "x", "thing": object()})
    first, second = json_lines(out)
    assert first["component"] == "risk"
    assert first["exchange"] == "paper"
    assert first["symbol"] == "BTC/USDT"
    assert first["conn"] == "ws-1"
    assert first["qty"] == "1.5"
    assert second["component"] == "x"
    assert "thing" not in second


def test_logger_adapter_context_is_included() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    adapter = logging.LoggerAdapter(
        logging.getLogger("tradingd.feed"), {"component": "feed", "exchange": "paper"}
    )
    adapter.info("tick")
    [entry] = json_lines(out)
    assert (entry["component"], entry["exchange"]) == ("feed", "paper")


def test_exception_traceback_is_in_exc() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    try:
        raise RuntimeError("kaboom")
    except RuntimeError:
        logging.getLogger("t").exception("failed")
    [entry] = json_lines(out)
    assert entry["msg"] == "failed"
    assert "Traceback (most recent call last)" in str(entry["exc"])
    assert "RuntimeError: kaboom" in str(entry["exc"])


def test_level_filters_and_bad_values_raise() -> None:
    out = io.StringIO()
    setup_logging("warning", "json", out)
    logging.getLogger("t").info("hidden")
    logging.getLogger("t").error("shown")
    assert [e["msg"] for e in json_lines(out)] == ["shown"]
    with pytest.raises(ValueError, match="log level"):
        setup_logging("loud", "json", out)
    with pytest.raises(ValueError, match="log format"):
        setup_logging("info", "xml", out)


def test_setup_twice_does_not_duplicate_handlers() -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("info", "json", first)
    setup_logging("info", "json", second)
    marked = [h for h in logging.getLogger().handlers if getattr(h, "_tradingd_handler", False)]
    assert len(marked) == 1
    logging.getLogger("t").info("once")
    assert first.getvalue() == ""
    assert len(json_lines(second)) == 1


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_registered_secret_is_redacted_in_msg_args_extra_and_traceback(fmt: str) -> None:
    secret = "sk-live-Zx9q7Tt3-unit-test"
    register_secret(secret)
    out = io.StringIO()
    setup_logging("info", fmt, out)
    lg = logging.getLogger("tradingd.secret")
    lg.info(f"key in message {secret}")
    lg.info("key in args %s and %r", secret, secret)
    lg.info("key in extra", extra={"component": secret, "nested": {"k": [secret]}})
    try:
        raise ValueError(f"auth failed for {secret}")
    except ValueError:
        lg.exception("with traceback")
    text = out.getvalue()
    assert secret not in text
    assert text.count("***") >= 6
    assert "Traceback" in text


def test_secret_needing_json_escapes_is_redacted() -> None:
    secret = 'quo"te\\back-slash'
    register_secret(secret)
    out = io.StringIO()
    setup_logging("info", "json", out)
    logging.getLogger("t").info("value %s", secret)
    assert json_lines(out)[0]["msg"] == "value ***"


def test_short_values_are_not_registered() -> None:
    register_secret("ab")
    assert redact("ab cab") == "ab cab"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("GET /api?api_key=abc123&x=1", "GET /api?api_key=***&x=1"),
        ("params {'apiKey': 'k1', 'q': 2}", "params {'apiKey': '***', 'q': 2}"),
        ('{"apiKey": "k2"}', '{"apiKey": "***"}'),
        ("secret=s3 signature=deadbeef", "secret=*** signature=***"),
        ("headers X-MBX-APIKEY: KEY123 sent", "headers X-MBX-APIKEY: *** sent"),
        ("Authorization: Bearer tok.123 next", "Authorization: Bearer *** next"),
        ("authorization=Basic dXNlcjpw", "authorization=Basic ***"),
        ("nothing to see, the bearer of news", "nothing to see, the bearer of news"),
    ],
)
def test_pattern_redaction(raw: str, expected: str) -> None:
    assert redact(raw) == expected


def test_patterns_are_redacted_in_log_args_and_exceptions() -> None:
    out = io.StringIO()
    setup_logging("info", "json", out)
    lg = logging.getLogger("tradingd.rest")
    lg.info("request %s", "https://x/order?symbol=BTC&signature=abcdef0123")
    try:
        raise ConnectionError("401 for header X-MBX-APIKEY: LEAKYKEY999")
    except ConnectionError:
        lg.exception("rest call failed")
    text = out.getvalue()
    assert "abcdef0123" not in text
    assert "LEAKYKEY999" not in text
    first, second = json_lines(out)
    assert first["msg"] == "request https://x/order?symbol=BTC&signature=***"
    assert "X-MBX-APIKEY: ***" in str(second["exc"])


def test_url_passwords_are_redacted_and_nothing_else() -> None:
    cases = [
        ("redis://user:pass@host:6379/0", "redis://user:***@host:6379/0"),
        ("at rediss://:p%40ss@redis.example.com:6380/0 now", "at rediss://:***@redis.example.com:6380/0 now"),
        ("got 'postgresql://postgres:pw/with@slash@db:5432/x'", "got 'postgresql://postgres:***@db:5432/x'"),
        ("postgresql://postgres@127.0.0.1:5432/tradingd", "postgresql://postgres@127.0.0.1:5432/tradingd"),
        ("http://127.0.0.1:8787/status", "http://127.0.0.1:8787/status"),
    ]
    assert [redact(raw) for raw, _ in cases] == [expected for _, expected in cases]


def test_url_password_is_redacted_in_log_lines_even_outside_its_url() -> None:
    from daemon.logs import register_url_password

    out = io.StringIO()
    setup_logging("info", "json", out)
    register_url_password("redis://tradingd:Ur1Passw0rdQ@127.0.0.1:6379/0")
    lg = logging.getLogger("tradingd.mirror")
    lg.error("cannot reach %s", "redis://tradingd:Ur1Passw0rdQ@127.0.0.1:6379/0")
    lg.error("server said: WRONGPASS for Ur1Passw0rdQ")
    assert "Ur1Passw0rdQ" not in out.getvalue()
    first, second = json_lines(out)
    assert first["msg"] == "cannot reach redis://tradingd:***@127.0.0.1:6379/0"
    assert second["msg"] == "server said: WRONGPASS for ***"
