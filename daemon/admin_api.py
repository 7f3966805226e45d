"""The admin API's HTTP handlers (served by :mod:`daemon.health` under ``/admin/``).

Takes and emits no messages itself; its provider (the daemon) halts and resumes through the
supervisor (HaltChanged, journaled) and flattens through :mod:`daemon.flatten`.

Every request needs ``Authorization: Bearer <token>`` (:mod:`daemon.admin_token`: the variable
``health.admin_token_env``, the systemd credential ``admin_token``, or ``health.admin_token_file``):
401 for a missing or wrong token, 503 with how to set one when none is configured.  A request from
a web page is refused (403) before the token is looked at: it carries ``Origin`` or a
``Sec-Fetch-Site`` other than ``none``, which no command-line client sends, and no answer ever
carries ``Access-Control-Allow-*`` headers, so a browser never lets a page read one.

* ``POST /admin/halt`` ``{"scope": "daemon"|"account"|"group", "target": "...", "reason": "..."}``
  (all optional: the whole daemon by default) -- no new exposure on the scope's groups.
* ``POST /admin/resume`` ``{"scope": ..., "target": ...}`` -- lifts that scope's halt.
* ``POST /admin/flatten`` ``{"scope": ..., "target": ..., "timeout_s": 30}`` (``scope`` required)
  -- cancels the scope's open orders, closes its positions, leaves it halted; answers the report.
* ``GET /admin/status`` -- groups, positions, open orders, balances (venue vs ledger), readiness.
* ``GET /admin/orders``, ``GET /admin/balances`` -- those parts alone.

A body that is not the JSON object described is 400 naming what was expected; an unknown scope,
account or group is 404 naming those that exist.
"""

from __future__ import annotations

import hmac
import logging
from typing import Protocol, TypeVar, runtime_checkable

import msgspec
from aiohttp import web

from daemon.admin_token import TokenProblem, find_token, how_to_set
from daemon.config_schema import HealthSection
from daemon.metrics import Metrics

log = logging.getLogger("tradingd.health")

ADMIN_DENIED = "tradingd_admin_denied_total"
DEFAULT_HALT_REASON = "halted by operator via /admin/halt"
MAX_REASON_LEN = 500
MAX_FLATTEN_TIMEOUT_S = 600.0
PATHS = frozenset(f"/admin/{p}" for p in ("halt", "resume", "flatten", "status", "orders", "balances"))


class AdminError(Exception):
    """A request the provider refuses; ``status`` is the HTTP code (404: unknown scope or target)."""

    status = 400


class HaltTarget(msgspec.Struct, forbid_unknown_fields=True):
    scope: str = "daemon"
    target: str = ""


class HaltBody(HaltTarget, forbid_unknown_fields=True):
    reason: str = DEFAULT_HALT_REASON


class FlattenBody(msgspec.Struct, forbid_unknown_fields=True):
    scope: str
    target: str = ""
    timeout_s: float = 30.0


class HaltControl(Protocol):
    """The kill switch (the supervisor, or the daemon checking the scope first)."""

    def halt(self, reason: str, scope: str = "daemon", target: str = "", by: str = "") -> None: ...

    def resume(self, scope: str = "daemon", target: str = "", by: str = "") -> None: ...


@runtime_checkable
class AdminProvider(Protocol):
    """What the daemon offers beyond the kill switch. Raises AdminError for a bad scope/target."""

    async def flatten(self, scope: str, target: str, by: str, timeout_s: float) -> dict[str, object]: ...

    async def operator_status(self) -> dict[str, object]: ...

    def orders(self) -> list[dict[str, object]]: ...

    async def balances(self) -> list[dict[str, object]]: ...


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(obj), status=status, content_type="application/json")


T = TypeVar("T")


def _decode(raw: bytes, type_: type[T], expected: str) -> T:
    try:
        return msgspec.json.decode(raw if raw.strip() else b"{}", type=type_)
    except msgspec.DecodeError as exc:
        raise AdminError(f"expected a JSON body {expected}: {exc}") from None


class AdminEndpoints:
    def __init__(self, cfg: HealthSection, control: HaltControl, metrics: Metrics) -> None:
        self.cfg = cfg
        self.control = control
        self.admin = control if isinstance(control, AdminProvider) else None
        self.metrics = metrics

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/admin/halt", self.halt),
            web.post("/admin/resume", self.resume),
            web.post("/admin/flatten", self.flatten),
            web.get("/admin/status", self.status),
            web.get("/admin/orders", self.orders),
            web.get("/admin/balances", self.balances),
        ]

    def guard(self, request: web.Request) -> web.Response | None:
        """None when the request may go on; else the answer: 403 cross-origin, 503 no token, 401 wrong."""
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site", "none")
        if origin is not None or fetch_site != "none":
            self.metrics.inc(ADMIN_DENIED, {"path": request.path})
            log.warning(
                "cross-origin admin request to %s from %s refused (Origin %r)",
                request.path,
                request.remote,
                origin,
                extra={"component": "health"},
            )
            return _json({"error": "cross-origin requests to the admin API are refused"}, 403)
        try:
            token = find_token(self.cfg)
        except TokenProblem as exc:
            return _json({"error": f"admin disabled: {exc}; {how_to_set(self.cfg)}"}, 503)
        if token is None:
            return _json({"error": how_to_set(self.cfg)}, 503)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.value.encode()):
            return None
        self.metrics.inc(ADMIN_DENIED, {"path": request.path})
        log.warning(
            "admin request to %s from %s denied", request.path, request.remote, extra={"component": "health"}
        )
        return web.Response(
            body=msgspec.json.encode({"error": "unauthorized"}),
            status=401,
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="tradingd"'},
        )

    async def _run(self, request: web.Request) -> web.Response | None:
        denied = self.guard(request)
        if denied is None and self.admin is None and request.path not in ("/admin/halt", "/admin/resume"):
            return _json({"error": f"{request.path} is not available here"}, 501)
        return denied

    async def halt(self, request: web.Request) -> web.Response:
        if (denied := await self._run(request)) is not None:
            return denied
        try:
            body = _decode(await request.read(), HaltBody, '{"scope": ..., "target": ..., "reason": "..."}')
            reason = body.reason.strip()[:MAX_REASON_LEN] or DEFAULT_HALT_REASON
            log.warning(
                "admin halt (%s %s) from %s: %s",
                body.scope,
                body.target,
                request.remote,
                reason,
                extra={"component": "health"},
            )
            self.control.halt(reason, scope=body.scope, target=body.target, by="admin API")
        except AdminError as exc:
            return _json({"error": str(exc)}, exc.status)
        return _json(
            {"ok": True, "action": "halt", "scope": body.scope, "target": body.target, "reason": reason}
        )

    async def resume(self, request: web.Request) -> web.Response:
        if (denied := await self._run(request)) is not None:
            return denied
        try:
            body = _decode(await request.read(), HaltTarget, '{"scope": ..., "target": ...}')
            log.warning(
                "admin resume (%s %s) from %s",
                body.scope,
                body.target,
                request.remote,
                extra={"component": "health"},
            )
            self.control.resume(scope=body.scope, target=body.target, by="admin API")
        except AdminError as exc:
            return _json({"error": str(exc)}, exc.status)
        return _json({"ok": True, "action": "resume", "scope": body.scope, "target": body.target})

    async def flatten(self, request: web.Request) -> web.Response:
        if (denied := await self._run(request)) is not None:
            return denied
        assert self.admin is not None
        try:
            raw = await request.read()
            body = _decode(
                raw, FlattenBody, '{"scope": "daemon"|"account"|"group", "target": ..., "timeout_s": 30}'
            )
            if not 0 < body.timeout_s <= MAX_FLATTEN_TIMEOUT_S:
                raise AdminError(
                    f"timeout_s: expected 0 < timeout_s <= {MAX_FLATTEN_TIMEOUT_S:g}, got {body.timeout_s}"
                )
            log.warning(
                "admin flatten (%s %s) from %s",
                body.scope,
                body.target,
                request.remote,
                extra={"component": "health"},
            )
            report = await self.admin.flatten(body.scope, body.target, "admin API", body.timeout_s)
        except AdminError as exc:
            return _json({"error": str(exc)}, exc.status)
        return _json(report)

    async def status(self, request: web.Request) -> web.Response:
        if (denied := await self._run(request)) is not None:
            return denied
        assert self.admin is not None
        return _json(await self.admin.operator_status())

    async def orders(self, request: web.Request) -> web.Response:
        if (denied := await self._run(request)) is not None:
            return denied
        assert self.admin is not None
        return _json({"orders": self.admin.orders()})

    async def balances(self, request: web.Request) -> web.Response:
        if (denied := await self._run(request)) is not None:
            return denied
        assert self.admin is not None
        return _json({"accounts": await self.admin.balances()})
