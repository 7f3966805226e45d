"""Venue health in the Binance adapter, against tests/fake_binance.py: what the REST client records
per reply (reachable, failing by reason, banned, key refused), the exchange rules and user data
stream verdicts of an execution actor while the venue is down, and their end when it returns.

Every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import re
import time

import anyio
import pytest

from adapters.binance import venue_health
from adapters.binance.http import (
    BinanceBanned,
    BinanceConnectionError,
    BinanceServerError,
    BinanceUnknownOrder,
)
from adapters.binance.venue_health import RestHealth
from tests.binance_exec_helpers import make_actor, until
from tests.fake_binance import API_KEY, API_SECRET, open_fake_binance
from tests.test_binance_http import client_for

pytestmark = pytest.mark.anyio

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


async def test_rest_health_counts_failures_by_reason_and_a_reply_clears_them() -> None:
    health = RestHealth("main")
    with anyio.fail_after(15):
        async with open_fake_binance() as fake, client_for(fake, health=health) as client:
            await client.ping()
            assert health.up and health.problem(time.time_ns(), 0.0) is None

            fake.fail_next("500-unprocessed", path="/api/v3/ping")
            with pytest.raises(BinanceServerError):
                await client.ping()
            await fake.go_down()
            with pytest.raises(BinanceConnectionError):
                await client.exchange_info()
            assert not health.up and health.consecutive_failures == 2
            assert health.failures["server_error"] == 1 and health.failures["connection"] == 1
            assert health.problem(time.time_ns(), 60.0) is None  # within the grace: no verdict yet
            problem = health.problem(time.time_ns(), 0.0)
            assert problem is not None
            assert re.fullmatch(
                rf"REST unreachable since {ISO} \(2 failures; last error: connection: .+\)", problem
            )

            fake.come_back()
            with pytest.raises(BinanceUnknownOrder):  # a refusal is an answer: the venue is reachable
                await client.query_order("LTCBTC", "nope")
            assert health.up and health.consecutive_failures == 0
            assert health.problem(time.time_ns(), 0.0) is None
            assert 0 < health.weight_used <= health.weight_limit

            fake.fail_next("418", retry_after=5)
            with pytest.raises(BinanceBanned):
                await client.ping()
            assert health.failures["banned"] == 1 and not health.probe_due(time.time_ns())
            problem = health.problem(time.time_ns(), 60.0)  # a ban shows at once
            assert problem is not None and re.fullmatch(
                rf"REST banned by Binance \(HTTP 418\) until {ISO}", problem
            )


async def test_a_refused_api_key_is_a_problem_although_the_venue_answers() -> None:
    health = RestHealth("main")
    with anyio.fail_after(10):
        async with (
            open_fake_binance() as fake,
            client_for(fake, api_key="wrong-key", health=health) as client,
        ):
            with pytest.raises(Exception, match="-2015"):
                await client.account()
            await client.ping()  # unsigned requests still work; the account is blind all the same
            assert health.up
            problem = health.problem(time.time_ns(), 0.0)
            assert problem is not None and problem.startswith("API key refused since") and "-2015" in problem
        async with open_fake_binance() as fake, client_for(fake, health=health) as client:
            assert fake.hmac_keys == {API_KEY: API_SECRET}
            await client.account()  # a signed request that works clears it
            assert health.problem(time.time_ns(), 0.0) is None


async def test_an_unreachable_venue_keeps_the_rules_out_and_the_stream_down_until_it_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(venue_health, "PROBE_CHECK_S", 0.05)
    monkeypatch.setattr(venue_health, "PROBE_FAILING_S", 0.2)
    with anyio.fail_after(30):
        async with open_fake_binance(unreachable=True) as fake:
            actor, _ = make_actor(fake)
            async with anyio.create_task_group() as tg:
                tg.start_soon(actor.run)
                await until(
                    lambda: actor.rules_loader.failures >= 3 and actor.user_stream.failed_attempts >= 2
                )
                problems = actor.problems(time.time_ns(), 0.0)
                rules, rest, stream = problems
                assert re.fullmatch(
                    rf"exchange rules not loaded since {ISO} \(\d+ failed attempts; last error: .+\)", rules
                ), rules
                assert rest.startswith("REST unreachable since") and "connection" in rest
                assert re.fullmatch(
                    rf"user data stream not subscribed since {ISO} "
                    r"\(\d+ failed attempts; last error: .*503.*\)",
                    stream,
                ), stream
                assert actor.problems(time.time_ns(), 3600.0) == []  # the grace hides a short outage
                assert actor.statistics().rules_failures >= 3 and not actor.statistics().rules_loaded

                fake.come_back()
                await until(lambda: actor.problems(time.time_ns(), 0.0) == [], timeout=20)
                assert actor.rules is not None and actor.user_stream.ready and actor.rest_health.up
                tg.cancel_scope.cancel()


async def test_the_probe_finds_an_outage_while_nothing_else_is_asked_and_its_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(venue_health, "PROBE_CHECK_S", 0.05)
    monkeypatch.setattr(venue_health, "PROBE_FAILING_S", 0.2)
    monkeypatch.setattr(venue_health, "PROBE_IDLE_S", 0.3)
    with anyio.fail_after(20):
        async with open_fake_binance() as fake:
            actor, _ = make_actor(fake)
            async with anyio.create_task_group() as tg:
                tg.start_soon(actor.run)
                await until(lambda: actor.rules is not None and actor.user_stream.ready)
                await until(lambda: any(s.path == "/api/v3/ping" for s in fake.seen))  # idle: probed
                await fake.go_down()
                await until(lambda: not actor.rest_health.up)
                assert actor.rest_health.failures["connection"] >= 1
                fake.come_back()
                await until(lambda: actor.rest_health.up)
                tg.cancel_scope.cancel()


async def test_a_request_left_unanswered_is_a_problem_before_its_timeout_and_a_timeout_after() -> None:
    health = RestHealth("main")
    with anyio.fail_after(10):
        async with open_fake_binance() as fake, client_for(fake, health=health, timeout_s=1.0) as client:
            await client.ping()
            fake.fail_next("hang", path="/api/v3/ping")  # the route drops everything: no reply at all
            async with anyio.create_task_group() as tg:

                async def ping() -> None:
                    with pytest.raises(BinanceConnectionError):
                        await client.ping()

                tg.start_soon(ping)
                await anyio.sleep(0.4)
                assert health.up and health.problem(time.time_ns(), 5.0) is None
                problem = health.problem(time.time_ns(), 0.3)
                assert problem is not None
                assert re.fullmatch(rf"REST not answering since {ISO} \(a request has waited 0s\)", problem)
            assert health.failures["timeout"] == 1 and not health.up and health.waiting_since_ns() == 0
