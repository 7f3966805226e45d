"""daemon.admin_api over real HTTP: hostile input, tokens from every source, cross-origin requests.

The provider checks scopes with the real :func:`daemon.scopes.parse_scope` against a Supervisor
built from a config (not running: only its config and groups are read).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import anyio
import msgspec
import pytest

from daemon.config import HealthSection, parse_config
from daemon.health import open_health_server
from daemon.metrics import Metrics
from daemon.scopes import parse_scope
from daemon.supervisor import Supervisor
from tests.helpers import make_config, unique_prefix

pytestmark = pytest.mark.anyio

TOKEN_ENV = "TRADINGD_TEST_ADMIN_API_TOKEN"
TOKEN = "admin-api-token-4e1f9b27c3"


class Provider:
    """The daemon's admin surface, recording what it was asked."""

    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.calls: list[tuple[str, str, str]] = []

    def status(self) -> dict[str, object]:
        return {}

    def readiness(self) -> list[str]:
        return []

    def halt(self, reason: str, scope: str = "daemon", target: str = "", by: str = "") -> None:
        self.calls.append(("halt", *parse_scope(self.sup, scope, target)))

    def resume(self, scope: str = "daemon", target: str = "", by: str = "") -> None:
        self.calls.append(("resume", *parse_scope(self.sup, scope, target)))

    async def flatten(self, scope: str, target: str, by: str, timeout_s: float) -> dict[str, object]:
        self.calls.append(("flatten", *parse_scope(self.sup, scope, target)))
        return {"ok": True, "groups": []}

    async def operator_status(self) -> dict[str, object]:
        return {"ready": True}

    def orders(self) -> list[dict[str, object]]:
        return []

    async def balances(self) -> list[dict[str, object]]:
        return []


@asynccontextmanager
async def serve(
    tmp_path: Path, cfg: HealthSection | None = None
) -> AsyncIterator[tuple[Provider, aiohttp.ClientSession]]:
    sup = Supervisor(
        parse_config(make_config(tmp_path, prefix=unique_prefix(), redis_enabled=False)), tap=None
    )
    provider = Provider(sup)
    cfg = cfg or HealthSection(bind="127.0.0.1", port=0, admin_token_env=TOKEN_ENV)
    with anyio.fail_after(20):
        async with open_health_server(cfg, provider, Metrics()) as server:
            timeout = aiohttp.ClientTimeout(total=5)
            async with aiohttp.ClientSession(base_url=server.url, timeout=timeout) as http:
                yield provider, http


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_malformed_and_wrong_bodies_are_400_naming_what_was_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with serve(tmp_path) as (provider, http):
        for path, body in (
            ("/admin/halt", b"{not json"),
            ("/admin/halt", b'["scope", "group"]'),
            ("/admin/halt", b'{"scope": 5}'),
            ("/admin/halt", b'{"scope": "group", "target": "paper:UNITTEST/BTC", "extra": 1}'),
            ("/admin/resume", b'{"scope": null}'),
            ("/admin/flatten", b"{}"),  # flatten needs its scope spelt out
            ("/admin/flatten", b'{"scope": "daemon", "timeout_s": -1}'),
            ("/admin/flatten", b'{"scope": "daemon", "timeout_s": 1e9}'),
            ("/admin/flatten", b"\xff\xfe\x00"),
        ):
            async with http.post(path, headers=AUTH, data=body) as r:
                answer = await r.json()
                assert r.status == 400, (path, body, answer)
                assert answer["error"].startswith(("expected a JSON body", "timeout_s: expected")), answer
        async with http.post("/admin/halt", headers=AUTH, data=b"x" * 100_000) as r:
            assert r.status == 413  # bodies are capped (64 KiB)
    assert provider.calls == []


async def test_unknown_scope_or_target_is_404_naming_what_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with serve(tmp_path) as (provider, http):
        for path in ("/admin/halt", "/admin/resume", "/admin/flatten"):
            for body, error in (
                (
                    {"scope": "group", "target": "paper:DOGE/BTC"},
                    "unknown group 'paper:DOGE/BTC': expected exchange:symbol, one of paper:UNITTEST/BTC, "
                    "paper:XRP/ETH",
                ),
                ({"scope": "account", "target": "main"}, "unknown account 'main': the accounts are paper"),
                (
                    {"scope": "everything"},
                    "unknown scope 'everything': expected one of daemon, account, group",
                ),
            ):
                async with http.post(path, headers=AUTH, json=body) as r:
                    assert (r.status, await r.json()) == (404, {"error": error}), path
        assert provider.calls == []
        body = {"scope": "group", "target": "paper:XRP/ETH", "reason": "desk"}
        async with http.post("/admin/halt", headers=AUTH, json=body) as r:
            assert r.status == 200
            assert (await r.json())["target"] == "paper:XRP/ETH"
    assert provider.calls == [("halt", "group", "paper:XRP/ETH")]


async def test_wrong_or_missing_token_is_401_on_every_admin_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with serve(tmp_path) as (provider, http):
        for method, path in (
            ("POST", "/admin/halt"),
            ("POST", "/admin/resume"),
            ("POST", "/admin/flatten"),
            ("GET", "/admin/status"),
            ("GET", "/admin/orders"),
            ("GET", "/admin/balances"),
        ):
            for headers in ({}, {"Authorization": "Bearer wrong-token-000000000"}, {"Authorization": TOKEN}):
                async with http.request(method, path, headers=headers, json={"scope": "daemon"}) as r:
                    assert r.status == 401, (path, headers)
                    assert r.headers["WWW-Authenticate"] == 'Bearer realm="tradingd"'
    assert provider.calls == []


async def test_no_token_configured_refuses_saying_how_to_set_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    async with serve(tmp_path) as (_, http), http.get("/admin/status", headers=AUTH) as r:
        assert r.status == 503
        error = (await r.json())["error"]
        assert error.startswith("admin disabled: no admin token configured")
        for way in (TOKEN_ENV, "health.admin_token_file", "LoadCredential=admin_token:"):
            assert way in error


async def test_token_from_file_credential_and_environment_in_that_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "admin_token"
    token_file.write_text("token-from-the-file-11111\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    cfg = HealthSection(bind="127.0.0.1", port=0, admin_token_env=TOKEN_ENV, admin_token_file=str(token_file))
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))

    async def code(http: aiohttp.ClientSession, token: str) -> int:
        async with http.get("/admin/orders", headers={"Authorization": f"Bearer {token}"}) as r:
            return r.status

    async with serve(tmp_path, cfg) as (_, http):
        assert await code(http, "token-from-the-file-11111") == 200
        (creds / "admin_token").write_text("token-from-the-credential-2\n")  # read per request
        assert await code(http, "token-from-the-credential-2") == 200
        assert await code(http, "token-from-the-file-11111") == 401
        monkeypatch.setenv(TOKEN_ENV, "token-from-the-environment-3")
        assert await code(http, "token-from-the-environment-3") == 200
        assert await code(http, "token-from-the-credential-2") == 401
        monkeypatch.setenv(TOKEN_ENV, "short")
        async with http.get("/admin/orders", headers={"Authorization": "Bearer short"}) as r:
            assert r.status == 503 and "shorter than 16 characters" in (await r.json())["error"]
        monkeypatch.delenv(TOKEN_ENV)
        (creds / "admin_token").unlink()
        token_file.unlink()
        async with http.get("/admin/orders", headers={"Authorization": "Bearer x"}) as r:
            assert r.status == 503 and f"{token_file} does not exist" in (await r.json())["error"]


async def test_cross_origin_requests_are_refused_and_never_get_cors_headers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with serve(tmp_path) as (provider, http):
        for extra in (
            {"Origin": "https://evil.example"},
            {"Origin": "null"},
            {"Origin": "http://127.0.0.1:8787"},  # DNS rebinding looks same-origin to the browser
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-origin"},
        ):
            async with http.post("/admin/halt", headers={**AUTH, **extra}, json={}) as r:
                assert r.status == 403, extra
                assert (await r.json())["error"] == "cross-origin requests to the admin API are refused"
                assert not any(h.lower().startswith("access-control-") for h in r.headers)
        preflight = {
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        async with http.options("/admin/flatten", headers=preflight) as r:
            assert r.status == 405
            assert not any(h.lower().startswith("access-control-") for h in r.headers)
        async with http.get("/admin/orders", headers=AUTH) as r:  # a command-line client is fine
            assert r.status == 200 and msgspec.json.decode(await r.read()) == {"orders": []}
    assert provider.calls == []
