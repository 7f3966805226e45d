"""daemon.health: every endpoint over real HTTP on 127.0.0.1 with a fake provider."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import anyio
import msgspec
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import HealthSection
from daemon.health import PROMETHEUS_CONTENT_TYPE, HealthServer, open_health_server
from daemon.metrics import Metrics
from daemon.version import tradingd_version

pytestmark = pytest.mark.anyio


def _family(families: dict[str, Metric], name: str) -> tuple[str, dict[tuple[tuple[str, str], ...], float]]:
    """A parsed family's type and its samples by sorted labels."""
    family = families[name]
    return family.type, {tuple(sorted(s.labels.items())): s.value for s in family.samples}


TOKEN_ENV = "TRADINGD_TEST_ADMIN_TOKEN"
TOKEN = "test-admin-token-5f1c2e"


class Position(msgspec.Struct):
    symbol: str
    qty: Decimal


class FakeProvider:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.fail: Exception | None = None
        self.halted: list[str] = []
        self.resumed = 0

    def status(self) -> dict[str, object]:
        if self.fail is not None:
            raise self.fail
        return {
            "groups": {"paper:BTC/USDT": {"halted": False}},
            "position": Position("BTC/USDT", Decimal("0.5")),
        }

    def readiness(self) -> list[str]:
        if self.fail is not None:
            raise self.fail
        return list(self.reasons)

    def halt(self, reason: str, scope: str = "daemon", target: str = "", by: str = "") -> None:
        self.halted.append(reason)

    def resume(self, scope: str = "daemon", target: str = "", by: str = "") -> None:
        self.resumed += 1


@asynccontextmanager
async def serve(
    provider: FakeProvider, metrics: Metrics, **kwargs: Any
) -> AsyncIterator[tuple[HealthServer, aiohttp.ClientSession]]:
    cfg = HealthSection(bind="127.0.0.1", port=0, admin_token_env=TOKEN_ENV)
    with anyio.fail_after(10):
        async with open_health_server(cfg, provider, metrics, **kwargs) as server:
            assert server.port > 0
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(base_url=server.url, timeout=timeout) as session:
                yield server, session


async def test_livez_ok() -> None:
    async with serve(FakeProvider(), Metrics()) as (_, http), http.get("/livez") as r:
        assert r.status == 200
        assert r.content_type == "text/plain"
        assert (await r.text()).startswith("ok loop_lag_s=")


async def test_livez_503_when_the_loop_lags() -> None:
    kwargs = {"max_loop_lag_s": 0.1, "probe_interval_s": 0.05, "lag_window_s": 30.0}
    async with serve(FakeProvider(), Metrics(), **kwargs) as (server, http):
        time.sleep(0.4)  # noqa: ASYNC251 -- block the event loop on purpose
        async with http.get("/livez") as r:
            assert r.status == 503
            assert "event loop lag" in await r.text()
        assert server.probe.recent_max() > 0.1


async def test_readyz_ready_and_not_ready() -> None:
    provider = FakeProvider()
    async with serve(provider, Metrics()) as (_, http):
        async with http.get("/readyz") as r:
            assert r.status == 200
            assert await r.json() == {"ready": True}
        provider.reasons = ["feed paper:XRP/ETH stale for 130s", "redis down"]
        async with http.get("/readyz") as r:
            assert r.status == 503
            assert await r.json() == {"ready": False, "reasons": provider.reasons}


async def test_status_encodes_decimals_and_structs() -> None:
    async with serve(FakeProvider(), Metrics()) as (_, http), http.get("/status") as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert await r.json() == {
            "groups": {"paper:BTC/USDT": {"halted": False}},
            "position": {"symbol": "BTC/USDT", "qty": "0.5"},
        }


async def test_metrics_text_is_parsed_by_prometheus_client() -> None:
    metrics = Metrics()
    metrics.describe("tradingd_test_orders_total", "counter", "Orders in the test.")
    metrics.inc("tradingd_test_orders_total", {"exchange": "paper"}, 3)
    # A probe that never wakes during the test keeps the lag gauge at exactly 0.
    async with serve(FakeProvider(), metrics, probe_interval_s=3600) as (_, http):
        for path in ("/livez", "/readyz", "/nope"):
            async with http.get(path):
                pass
        async with http.get("/metrics") as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == PROMETHEUS_CONTENT_TYPE
            body = await r.text()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    assert _family(families, "tradingd_test_orders") == ("counter", {(("exchange", "paper"),): 3.0})
    assert _family(families, "tradingd_event_loop_lag_seconds") == ("gauge", {(): 0.0})
    assert _family(families, "tradingd_http_requests") == (
        "counter",
        {
            (("code", "200"), ("path", "/livez")): 1.0,
            (("code", "200"), ("path", "/readyz")): 1.0,
            (("code", "404"), ("path", "other")): 1.0,
        },
    )
    build = (("python", platform.python_version()), ("version", tradingd_version()))
    assert _family(families, "tradingd_build_info") == ("gauge", {build: 1.0})
    assert families["process_cpu_seconds"].type == "counter"
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert families["process_start_time_seconds"].samples[0].value <= time.time()
    # The names scrapers already use are unchanged; the text is the library's.
    assert (
        "# HELP tradingd_test_orders_total Orders in the test.\n"
        "# TYPE tradingd_test_orders_total counter\n"
        'tradingd_test_orders_total{exchange="paper"} 3.0\n'
    ) in body
    # The collector is removed when the server stops.
    assert "tradingd_event_loop_lag_seconds" not in metrics.render()


async def test_unknown_path_404_and_wrong_method_405() -> None:
    async with serve(FakeProvider(), Metrics()) as (_, http):
        async with http.get("/does/not/exist") as r:
            assert r.status == 404
            assert await r.json() == {"error": "not found"}
        async with http.get("/admin/halt") as r:
            assert r.status == 405
            assert r.headers["Allow"] == "POST"


async def test_provider_exception_gives_500_and_server_keeps_running() -> None:
    provider, metrics = FakeProvider(), Metrics()
    async with serve(provider, metrics) as (_, http):
        provider.fail = RuntimeError("state store unavailable")
        async with http.get("/status") as r:
            assert r.status == 500
            assert await r.json() == {
                "error": "/status failed",
                "detail": "RuntimeError: state store unavailable",
            }
        async with http.get("/readyz") as r:
            assert r.status == 500
        provider.fail = None
        async with http.get("/status") as r:
            assert r.status == 200
        async with http.get("/livez") as r:
            assert r.status == 200
    assert metrics.get("tradingd_health_errors_total", {"path": "/status"}) == 1
    assert metrics.get("tradingd_health_errors_total", {"path": "/readyz"}) == 1
    assert metrics.get("tradingd_http_requests_total", {"path": "/status", "code": "500"}) == 1
    assert metrics.get("tradingd_http_requests_total", {"path": "/status", "code": "200"}) == 1


async def test_admin_disabled_without_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    provider = FakeProvider()
    async with serve(provider, Metrics()) as (_, http):
        for path in ("/admin/halt", "/admin/resume"):
            async with http.post(path, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
                assert r.status == 503
                assert "admin disabled" in (await r.json())["error"]
    assert provider.halted == []
    assert provider.resumed == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
)
async def test_admin_rejects_missing_or_wrong_token(
    monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    provider, metrics = FakeProvider(), Metrics()
    async with serve(provider, metrics) as (_, http):
        for path in ("/admin/halt", "/admin/resume"):
            async with http.post(path, headers=headers) as r:
                assert r.status == 401
                assert await r.json() == {"error": "unauthorized"}
                assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert provider.halted == []
    assert provider.resumed == 0
    assert metrics.total("tradingd_admin_denied_total") == 2


async def test_admin_halt_and_resume_with_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    provider = FakeProvider()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with serve(provider, Metrics()) as (_, http):
        async with http.post("/admin/halt", headers=auth, json={"reason": "exchange maintenance"}) as r:
            assert r.status == 200
            daemon_wide = {"scope": "daemon", "target": ""}
            assert await r.json() == {
                "ok": True,
                "action": "halt",
                "reason": "exchange maintenance",
                **daemon_wide,
            }
        async with http.post("/admin/halt", headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["reason"] == "halted by operator via /admin/halt"
        async with http.post("/admin/halt", headers=auth, data=b"{not json") as r:
            assert r.status == 400
        async with http.post("/admin/resume", headers=auth) as r:
            assert r.status == 200
            assert json.loads(await r.text()) == {"ok": True, "action": "resume", **daemon_wide}
    assert provider.halted == ["exchange maintenance", "halted by operator via /admin/halt"]
    assert provider.resumed == 1


async def test_bind_port_in_use_raises() -> None:
    provider, metrics = FakeProvider(), Metrics()
    async with serve(provider, metrics) as (server, _):
        cfg = HealthSection(bind="127.0.0.1", port=server.port, admin_token_env=TOKEN_ENV)
        with pytest.raises(OSError):
            async with open_health_server(cfg, provider, metrics):
                pass


async def test_block_exception_propagates_unwrapped_and_server_stops() -> None:
    cfg = HealthSection(bind="127.0.0.1", port=0, admin_token_env=TOKEN_ENV)
    metrics = Metrics()
    with anyio.fail_after(10), pytest.raises(KeyError, match="boom"):
        async with open_health_server(cfg, FakeProvider(), metrics) as server:
            port = server.port
            raise KeyError("boom")
    with anyio.fail_after(5), pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/livez"):
            pass
    assert "tradingd_event_loop_lag_seconds" not in metrics.render()


async def test_cancellation_stops_the_server() -> None:
    cfg = HealthSection(bind="127.0.0.1", port=0, admin_token_env=TOKEN_ENV)
    with anyio.fail_after(10):
        with anyio.move_on_after(0.2) as scope:
            async with open_health_server(cfg, FakeProvider(), Metrics()):
                await anyio.sleep_forever()
        assert scope.cancelled_caught
