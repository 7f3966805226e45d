"""The HTTP health server (aiohttp): liveness, readiness, status, Prometheus metrics, admin halt/resume.

Endpoints:

* ``GET /livez`` -- 200 ``ok ...`` while the event loop keeps up; 503 when the loop lag
  measured by a probe task (the largest in the last ``lag_window_s``) exceeds
  ``max_loop_lag_s``.
* ``GET /readyz`` -- 200 ``{"ready": true}`` or 503 ``{"ready": false, "reasons": [...]}``
  from :meth:`HealthProvider.readiness`.
* ``GET /status`` -- :meth:`HealthProvider.status` encoded with msgspec (Decimals, Structs).
* ``GET /metrics`` -- :meth:`daemon.metrics.Metrics.render` as Prometheus text 0.0.4.
* ``/admin/...`` -- the admin API (halt, resume, flatten, status, orders, balances), bearer
  token and cross-origin refusal: :mod:`daemon.admin_api`.  A halt lets only reduce-only orders
  through and (with ``risk.halt_cancels_orders``, the default) cancels each group's open entries.

A failing provider gives a 500 with a JSON error and counts in
``tradingd_health_errors_total``; the server keeps serving.  Every response counts in
``tradingd_http_requests_total{path,code}`` (unknown paths as ``path="other"``).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler
from anyio.abc import TaskStatus

from daemon.admin_api import ADMIN_DENIED, AdminEndpoints
from daemon.admin_api import PATHS as ADMIN_PATHS
from daemon.admin_token import TokenProblem, find_token, how_to_set
from daemon.config import HealthSection
from daemon.logs import redact
from daemon.metrics import Metrics, Sample

__all__ = ["HealthProvider", "HealthServer", "LoopLagProbe", "open_health_server"]

log = logging.getLogger("tradingd.health")

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUESTS = "tradingd_http_requests_total"
ERRORS = "tradingd_health_errors_total"
LOOP_LAG = "tradingd_event_loop_lag_seconds"
KNOWN_PATHS = frozenset({"/livez", "/readyz", "/status", "/metrics"}) | ADMIN_PATHS
MAX_REASON_LEN = 500


class HealthProvider(Protocol):
    """What the daemon exposes to the health server. Methods are called on the event loop."""

    def status(self) -> dict[str, object]:
        """A JSON-able (msgspec-encodable) snapshot: groups, actors, feeds, redis..."""
        ...

    def readiness(self) -> list[str]:
        """Empty when ready; otherwise reasons like ``"feed paper:XRP/ETH stale for 130s"``."""
        ...

    def halt(self, reason: str, scope: str = "daemon", target: str = "", by: str = "") -> None:
        """Stop opening new positions in the scope (operator request); AdminError for a bad scope."""
        ...

    def resume(self, scope: str = "daemon", target: str = "", by: str = "") -> None:
        """Undo :meth:`halt` for the scope."""
        ...


class LoopLagProbe:
    """Sleeps ``interval_s`` in a loop and records how late it wakes up: the event-loop lag."""

    def __init__(self, interval_s: float = 0.5, window_s: float = 10.0) -> None:
        self.interval_s = interval_s
        self.window_s = window_s
        self._due = time.monotonic() + interval_s
        self._last = 0.0
        self._samples: deque[tuple[float, float]] = deque()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Measure until cancelled; ``started`` once the first measurement is scheduled."""
        self._due = time.monotonic() + self.interval_s
        task_status.started()
        while True:
            await anyio.sleep(max(0.0, self._due - time.monotonic()))
            now = time.monotonic()
            self._record(now, max(0.0, now - self._due))
            self._due = now + self.interval_s

    def _record(self, now: float, lag: float) -> None:
        self._last = lag
        self._samples.append((now, lag))
        while self._samples and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()

    def current(self) -> float:
        """The last measured lag, or how overdue the probe is now if that is larger."""
        return max(self._last, time.monotonic() - self._due, 0.0)

    def recent_max(self) -> float:
        """The largest lag seen in the last ``window_s`` seconds (including now)."""
        now = time.monotonic()
        recent = (lag for t, lag in self._samples if now - t <= self.window_s)
        return max(self.current(), *recent, 0.0)


class HealthServer:
    """The running server: where it listens and what the loop-lag probe sees."""

    def __init__(self, host: str, port: int, probe: LoopLagProbe) -> None:
        self.host = host
        self.port = port
        self.probe = probe

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(obj), status=status, content_type="application/json")


class _Endpoints:
    """Request handlers and the counting/error middleware, sharing config, provider and metrics."""

    def __init__(
        self,
        cfg: HealthSection,
        provider: HealthProvider,
        metrics: Metrics,
        probe: LoopLagProbe,
        max_lag: float,
    ) -> None:
        self.cfg = cfg
        self.provider = provider
        self.metrics = metrics
        self.probe = probe
        self.max_lag = max_lag
        self.admin = AdminEndpoints(cfg, provider, metrics)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/livez", self.livez, allow_head=True),
            web.get("/readyz", self.readyz, allow_head=True),
            web.get("/status", self.status),
            web.get("/metrics", self.metrics_text),
            *self.admin.routes(),
        ]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count every response by path and code; turn errors into JSON responses."""
        path = request.path if request.path in KNOWN_PATHS else "other"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = _json({"error": exc.reason.lower()}, exc.status)
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception as exc:
            log.exception("health endpoint %s failed", request.path, extra={"component": "health"})
            self.metrics.inc(ERRORS, {"path": path})
            detail = redact(f"{type(exc).__name__}: {exc}")[:MAX_REASON_LEN]
            response = _json({"error": f"{request.path} failed", "detail": detail}, 500)
        self.metrics.inc(REQUESTS, {"path": path, "code": str(response.status)})
        return response

    async def livez(self, request: web.Request) -> web.Response:
        current, worst = self.probe.current(), self.probe.recent_max()
        if worst > self.max_lag:
            text = f"event loop lag {worst:.3f}s exceeds {self.max_lag:.3f}s\n"
            return web.Response(text=text, status=503)
        return web.Response(text=f"ok loop_lag_s={current:.4f} recent_max_s={worst:.4f}\n")

    async def readyz(self, request: web.Request) -> web.Response:
        reasons = list(self.provider.readiness())
        if reasons:
            return _json({"ready": False, "reasons": reasons}, 503)
        return _json({"ready": True})

    async def status(self, request: web.Request) -> web.Response:
        return _json(self.provider.status())

    async def metrics_text(self, request: web.Request) -> web.Response:
        body = self.metrics.render().encode()
        return web.Response(body=body, headers={"Content-Type": PROMETHEUS_CONTENT_TYPE})


def _describe(metrics: Metrics) -> None:
    metrics.describe(REQUESTS, "counter", "HTTP requests to the health server by path and status code.")
    metrics.describe(ERRORS, "counter", "Health endpoints that failed with an internal error (500).")
    metrics.describe(ADMIN_DENIED, "counter", "Admin requests refused for a missing or wrong token.")
    metrics.describe(LOOP_LAG, "gauge", "Event-loop lag measured by the health server's probe task.")


@asynccontextmanager
async def _running(probe: LoopLagProbe) -> AsyncIterator[None]:
    """Run the probe in this context's own task group while the caller's block runs.

    The block's exception (cancellation included) is re-raised as itself after the group
    has stopped the probe, instead of coming out wrapped in an ExceptionGroup.
    """
    error: BaseException | None = None
    async with anyio.create_task_group() as tg:
        await tg.start(probe.run)
        try:
            yield
        except BaseException as exc:  # noqa: BLE001 -- re-raised below, once the probe has stopped
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error


@asynccontextmanager
async def open_health_server(
    cfg: HealthSection,
    provider: HealthProvider,
    metrics: Metrics,
    *,
    max_loop_lag_s: float = 2.0,
    probe_interval_s: float = 0.5,
    lag_window_s: float = 10.0,
) -> AsyncIterator[HealthServer]:
    """Serve on ``cfg.bind``:``cfg.port`` (0 = any free port) until the block exits."""
    probe = LoopLagProbe(probe_interval_s, lag_window_s)
    endpoints = _Endpoints(cfg, provider, metrics, probe, max_loop_lag_s)
    app = web.Application(middlewares=[endpoints.middleware], client_max_size=64 * 1024)
    app.add_routes(endpoints.routes())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)

    def lag_collector() -> list[Sample]:
        return [(LOOP_LAG, (), probe.current())]

    _describe(metrics)
    try:
        token = find_token(cfg)  # registers it with the log redactor
        if token is None:
            log.warning("%s", how_to_set(cfg), extra={"component": "health"})
        else:
            log.info("admin API token from %s", token.source, extra={"component": "health"})
    except TokenProblem as exc:
        log.warning("admin API disabled: %s", exc, extra={"component": "health"})
    await runner.setup()
    try:
        site = web.TCPSite(runner, cfg.bind, cfg.port)
        await site.start()
        server = HealthServer(cfg.bind, int(runner.addresses[0][1]), probe)
        log.info("health server listening on %s", server.url, extra={"component": "health"})
        metrics.add_collector(lag_collector)
        async with _running(probe):
            yield server
    finally:
        metrics.remove_collector(lag_collector)
        with anyio.move_on_after(5, shield=True):
            await runner.cleanup()
