"""The notifier's parts against the real Redis and local fakes: config errors, alert texts,
exactly-once filing across a crash before XACK, batching and rate limit, quiet hours, a target
that is down, the daily summary, and the Telegram commands (unknown chat ignored, /halt only
after /confirm, /flatten on an older daemon)."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import msgspec
import pytest
from aiohttp import web
from redis.asyncio import Redis

from actors.messages import HaltChanged, OrderAccepted, OrderRejected, OrderUnknown, PositionChanged, stamp
from daemon.notify.admin import AdminClient
from daemon.notify.config import NotifyConfigError, Severity, parse_notify_config
from daemon.notify.consumer import Consumer
from daemon.notify.daily import DailySummary, last_run
from daemon.notify.deliver import Deliverer, DeliveryError, TokenBucket, compose, in_quiet
from daemon.notify.events import ALERT_DECODER, fill_alert, num
from daemon.notify.telegram import CommandBot, Commands, make_bot
from tests.fake_telegram import FakeTelegram
from tests.helpers import unique_prefix

TOKEN = "123456:TEST-telegram_token"
NS = 1_000_000_000


def _cfg(prefix: str, extra: str = "", kinds: str = '["fill", "order", "halt"]') -> Any:
    return parse_notify_config(
        f"""
[redis]
prefix = "{prefix}"
[notify]
start = "all"
claim_idle_s = 0.2
[[notify.targets]]
name = "hook"
url = "json://127.0.0.1:9/"
kinds = {kinds}
batch_window_s = 0
retry_initial_s = 0.01
retry_max_s = 0.02
retry_attempts = 2
{extra}
"""
    )


def _pos(qty: str, pnl: str, ts: int = 1_750_000_000 * NS, recovered: bool = False) -> PositionChanged:
    return PositionChanged(
        account="paper",
        quantity=Decimal(qty),
        avg_price=Decimal("0.0012"),
        realized_pnl=Decimal(pnl),
        fees=Decimal("0.000001"),
        last_client_order_id="c1",
        recovered=recovered,
        **stamp("paper", "UNITTEST/BTC", ts),
    )


def test_config_errors_name_line_and_key() -> None:
    with pytest.raises(NotifyConfigError, match=r"<notify config>:3: notify.timezone: expected an IANA"):
        parse_notify_config('[notify]\n\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(NotifyConfigError, match=r"quiet_hours: expected \"HH:MM-HH:MM\""):
        parse_notify_config('[[notify.targets]]\nname = "a"\nurl = "json://x"\nquiet_hours = "22"\n')
    with pytest.raises(NotifyConfigError, match=r"kinds\[0\]"):
        parse_notify_config('[[notify.targets]]\nname = "a"\nurl = "json://x"\nkinds = ["fills"]\n')
    with pytest.raises(NotifyConfigError, match="chat_ids"):
        parse_notify_config("[notify.telegram]\nenabled = true\n")


def test_alert_texts_are_short_and_rounded() -> None:
    assert num(Decimal("0.001234567891")) == "0.00123457"
    assert num(Decimal("123456789.5")) == "123456790"
    assert num(Decimal("1.50000")) == "1.5"
    entry = fill_alert(_pos("100", "0"), None, Decimal("0.00123456789"), Decimal("0.0000001"))
    assert entry is not None and entry.text == (
        "UNITTEST/BTC entry: bought 100 @ 0.00123457, position 100, fee 0.0000001 (paper)"
    )
    exit_ = fill_alert(_pos("0", "0.000123456789"), _pos("100", "0"), Decimal("0.00125"), None)
    assert (
        exit_ is not None
        and exit_.text == "UNITTEST/BTC exit: sold 100 @ 0.00125, PnL +0.000123457 BTC, flat (paper)"
    )
    assert fill_alert(_pos("100", "0", recovered=True), None, None, None) is None
    title, body, sev = compose([entry, exit_])
    assert title == "tradingd: 2 events (2 fill)" and sev == "info"
    assert body.splitlines()[0].startswith("2025-06-15T15:06:40Z UNITTEST/BTC entry")


def test_token_bucket_and_quiet_hours() -> None:
    now = [0.0]
    bucket = TokenBucket(2, clock=lambda: now[0])
    assert bucket.wait_s() == 0
    bucket.take()
    bucket.take()
    assert bucket.wait_s() == pytest.approx(30.0)
    now[0] = 30.0
    assert bucket.wait_s() == 0
    from daemon.notify.config import parse_quiet

    quiet, tz = parse_quiet("22:00-07:00"), ZoneInfo("Europe/Berlin")
    assert in_quiet(quiet, tz, 1_750_020_000)  # 2025-06-15T20:40Z = 22:40 in Berlin
    assert not in_quiet(quiet, tz, 1_750_000_000)  # 17:06 in Berlin
    assert last_run(1_750_000_000, "08:00", ZoneInfo("UTC")) == 1_749_974_400  # today 08:00Z


async def _xadd(r: Redis, key: str, msg: Any, ms: int) -> str:
    return (
        await r.xadd(key, {"type": type(msg).__name__, "data": msgspec.msgpack.encode(msg)}, id=f"{ms}-0")
    ).decode()


async def _outbox(r: Redis, prefix: str, target: str = "hook") -> list[Any]:
    entries = await r.xrange(f"{prefix}:notify:notify:outbox:{target}")
    return [ALERT_DECODER.decode(f[b"a"]) for _, f in entries]


async def _cleanup(r: Redis, prefix: str) -> None:
    keys = [k async for k in r.scan_iter(match=f"{prefix}:*")]
    if keys:
        await r.delete(*keys)


@pytest.mark.anyio
async def test_filing_is_exactly_once_across_a_crash_before_xack() -> None:
    prefix = unique_prefix()
    cfg = _cfg(prefix)
    r = Redis()
    try:
        pos_key, order_key = f"{prefix}:paper:UNITTEST/BTC:position", f"{prefix}:paper:UNITTEST/BTC:order"
        base = int(time.time() * 1000)
        await _xadd(r, pos_key, _pos("100", "0"), base)
        await _xadd(
            r,
            order_key,
            OrderUnknown(client_order_id="c9", reason="timeout", **stamp("paper", "UNITTEST/BTC", 1)),
            base,
        )
        first = Consumer(cfg, r, "a")
        await first.setup()
        # "crash": entries delivered to consumer a, never handled nor acknowledged
        await r.xreadgroup("notify", "a", {pos_key: ">", order_key: ">"})
        assert await _outbox(r, prefix) == []
        await _xadd(r, pos_key, _pos("0", "0.0001"), base + 1)
        await _xadd(
            r,
            order_key,
            OrderAccepted(client_order_id="c9", venue_order_id="v", **stamp("paper", "UNITTEST/BTC", 2)),
            base + 1,
        )
        await _xadd(
            r,
            order_key,
            OrderRejected(client_order_id="c2", reason="-2010", **stamp("paper", "UNITTEST/BTC", 3)),
            base + 2,
        )
        second = Consumer(cfg, r, "b")  # another process: takes over a's pending entries once idle
        await second.setup()
        assert await second.read_once() == 3  # the new ones
        await anyio.sleep(0.25)
        assert await second.claim_idle() == 2
        assert await second.claim_idle() == 0
        texts = [a.text for a in await _outbox(r, prefix)]
        assert sorted(texts) == sorted(
            [
                "UNITTEST/BTC entry: bought 100, position 100 (paper)",
                "UNITTEST/BTC exit: sold 100, PnL +0.0001 BTC, flat (paper)",
                "UNITTEST/BTC order c9 UNKNOWN (timeout); asking the venue",
                "UNITTEST/BTC order c2 rejected: -2010",
            ]
        ), texts
        # the resolution came before the UNKNOWN was filed (reclaimed later): not claimed as resolved
        third = Consumer(cfg, r, "a")
        await third.setup()
        assert await third.read_once() == 0  # a's pending list is empty: nothing filed twice
        assert len(await _outbox(r, prefix)) == 4
    finally:
        await _cleanup(r, prefix)
        await r.aclose()


class _Flaky:
    def __init__(self, fail: int) -> None:
        self.fail, self.sent = fail, []  # type: ignore[var-annotated]

    async def send(self, title: str, body: str, severity: Severity, key: str) -> None:
        if self.fail > 0:
            self.fail -= 1
            raise DeliveryError("down")
        self.sent.append((title, body, key))


@pytest.mark.anyio
async def test_burst_is_one_summary_and_a_down_target_is_retried_and_counted() -> None:
    prefix = unique_prefix()
    cfg = _cfg(prefix)
    r = Redis()
    try:
        c = Consumer(cfg, r, "a")
        key = f"{prefix}:paper:UNITTEST/BTC:position"
        base = int(time.time() * 1000)
        for i in range(6):
            await _xadd(r, key, _pos(str(100 * (i % 2 == 0)), str(i), ts=(1_750_000_000 + i) * NS), base + i)
        await c.setup()
        await c.read_once()
        sender = _Flaky(fail=3)
        d = Deliverer(cfg, cfg.notify.targets[0], r, sender)
        with pytest.raises(DeliveryError):
            await d.step()  # 2 attempts, both fail: counted, cursor not moved
        assert await r.hget(f"{prefix}:notify:notify:stats", "failed:hook") == b"1"
        assert await d.step() == 6  # third try fails, fourth delivers
        assert len(sender.sent) == 1 and sender.sent[0][0] == "tradingd: 6 events (6 fill)"
        assert len(sender.sent[0][1].splitlines()) == 6
        assert await d.step() == 0  # nothing twice
        # a crash after sending, before the cursor moved: the same batch once more, flagged
        await _xadd(r, key, _pos("50", "9"), base + 10)
        await c.read_once()
        outbox = f"{prefix}:notify:notify:outbox:hook"
        entry = (await r.xrange(outbox))[-1][0].decode()
        await r.set(outbox + ":inflight", f"{entry} {entry}")
        await d.step()
        assert "may repeat" in sender.sent[-1][0] and sender.sent[-1][2] == f"hook:{entry}:{entry}"
    finally:
        await _cleanup(r, prefix)
        await r.aclose()


@pytest.mark.anyio
async def test_quiet_hours_hold_all_but_critical_then_summarise() -> None:
    prefix = unique_prefix()
    cfg = _cfg(prefix, 'quiet_hours = "00:00-23:59"')
    r = Redis()
    try:
        c = Consumer(cfg, r, "a")
        base = int(time.time() * 1000)
        await _xadd(r, f"{prefix}:paper:UNITTEST/BTC:position", _pos("100", "0"), base)
        halt = HaltChanged(scope="daemon", halted=True, reason="test", by="admin API", **stamp("*", "*", 5))
        await _xadd(r, f"{prefix}:daemon:all:risk", halt, base)
        await c.setup()
        await c.read_once()
        sender = _Flaky(fail=0)
        now = [float(base // 1000 // 86400 * 86400 + 3600)]  # 01:00 UTC: quiet
        d = Deliverer(cfg, cfg.notify.targets[0], r, sender, wall=lambda: now[0])
        await d.step()
        assert [s[0] for s in sender.sent] == ["tradingd: HALTED (daemon)"]
        now[0] += 23 * 3600 - 30  # 23:59:30: quiet hours over
        await d.step()
        assert sender.sent[-1][0] == "tradingd: UNITTEST/BTC entry while quiet"
        assert await d.step() == 0
    finally:
        await _cleanup(r, prefix)
        await r.aclose()


@pytest.mark.anyio
async def test_daily_summary_once_per_day() -> None:
    prefix = unique_prefix()
    cfg = _cfg(prefix, kinds='["daily"]')
    r = Redis()
    try:
        key = f"{prefix}:paper:UNITTEST/BTC:position"
        due = time.time()
        base = int(due * 1000) - 3_600_000
        await _xadd(r, key, _pos("100", "0.5"), base - 90_000_000)  # the day before: the baseline
        for i, (q, pnl) in enumerate(
            [("0", "0.7"), ("100", "0.7"), ("0", "0.6"), ("100", "0.6"), ("0", "0.9")]
        ):
            await _xadd(r, key, _pos(q, pnl), base + i)
        summary = DailySummary(cfg, r)
        assert await summary.send(due) == 1
        assert await summary.send(due) == 0  # filed once
        (alert,) = await _outbox(r, prefix)
        assert alert.text.endswith(
            "PnL +0.4 BTC, 5 fills (3 round trips), fees 0 BTC, max drawdown 0.1 BTC"
        ), alert.text
    finally:
        await _cleanup(r, prefix)
        await r.aclose()


class _FakeAdmin:
    """The daemon's admin API as an older daemon has it: no /admin/flatten."""

    def __init__(self) -> None:
        self.halts: list[dict[str, Any]] = []
        self.auth: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()

        async def status(request: web.Request) -> web.Response:
            groups = [
                {
                    "exchange": "paper",
                    "symbol": "UNITTEST/BTC",
                    "halted": bool(self.halts),
                    "position": "100",
                    "avg_price": "0.00123456789",
                    "unrealized_pnl": "0.0001",
                    "realized_pnl": "0.002",
                    "fees": "0.0001",
                }
            ]
            return web.json_response(
                {
                    "uptime_s": 3725.2,
                    "groups": groups,
                    "accounts": {"paper": {"balances": {"BTC": "0.998765432"}}},
                }
            )

        async def readyz(request: web.Request) -> web.Response:
            return web.json_response({"ready": True})

        async def halt(request: web.Request) -> web.Response:
            self.auth.append(request.headers.get("Authorization", ""))
            self.halts.append(await request.json())
            return web.json_response({"ok": True})

        app.add_routes(
            [web.get("/status", status), web.get("/readyz", readyz), web.post("/admin/halt", halt)]
        )
        return app


@pytest.mark.anyio
async def test_telegram_commands_unknown_chat_ignored_halt_needs_confirm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TG_TOKEN_TEST", TOKEN)
    monkeypatch.setenv("ADMIN_TOKEN_TEST", "admin-secret-1234")
    admin = _FakeAdmin()
    runner = web.AppRunner(admin.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    try:
        async with FakeTelegram(TOKEN) as tg:
            cfg = parse_notify_config(
                f'[notify.telegram]\nenabled = true\ntoken_env = "TG_TOKEN_TEST"\napi_url = "{tg.url}"\n'
                "chat_ids = [42]\npoll_timeout_s = 1\n"
            ).notify.telegram
            bot = make_bot(cfg)
            commands = Commands(AdminClient(f"http://127.0.0.1:{port}", "ADMIN_TOKEN_TEST"), 60)
            cb = CommandBot(bot, cfg, commands)
            try:
                tg.say(666, "/halt")
                tg.say(42, "/positions")
                tg.say(42, "/balance")
                tg.say(42, "/halt fat finger")
                assert await cb.poll_once() == 4
                assert tg.texts_to(666) == [] and cb.ignored == 1
                assert admin.halts == []
                assert tg.texts_to(42)[0] == "UNITTEST/BTC: 100 @ 0.00123457, unrealized 0.0001"
                assert tg.texts_to(42)[1] == "paper: BTC 0.998765"
                assert "/confirm" in tg.texts_to(42)[2]
                tg.say(666, "/confirm")
                await cb.poll_once()
                assert admin.halts == []
                tg.say(42, "/confirm")
                await cb.poll_once()
                assert admin.halts == [{"reason": "fat finger (telegram, chat 42 @op)"}]
                assert admin.auth == ["Bearer admin-secret-1234"]
                assert tg.texts_to(42)[-1] == "HALTED: no new entries"
                tg.say(42, "/flatten")
                tg.say(42, "/confirm")
                await cb.poll_once()
                assert "no /admin/flatten" in tg.texts_to(42)[-1]
                tg.say(42, "/status")
                await cb.poll_once()
                assert tg.texts_to(42)[-1].startswith("tradingd ready\nup 1h 2m; 1 groups, 1 halted")
                assert tg.wrong_token == 0 and tg.bad_requests == []
            finally:
                await bot.session.close()
    finally:
        await runner.cleanup()


def test_the_shipped_notify_toml_loads() -> None:
    from daemon.notify.config import load_notify_config
    from tests.helpers import ROOT

    cfg = load_notify_config(ROOT / "notify.toml")
    assert cfg.notify.targets[0].name == "ops" and not cfg.notify.telegram.enabled
