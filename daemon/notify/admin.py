"""A client of the running daemon's admin API (``health.bind``:``health.port``), and replies for a person.

Takes and emits no messages: ``GET /status`` and ``/readyz``, ``POST /admin/halt``,
``/admin/resume`` and ``/admin/flatten`` (``{"scope": "all"}``) with
``Authorization: Bearer $TRADINGD_ADMIN_TOKEN``; the ``describe_*`` functions turn ``/status``
into the short texts the Telegram commands answer with (numbers rounded).
"""

from __future__ import annotations

import os
from decimal import Decimal, InvalidOperation
from typing import Any

import aiohttp
import msgspec

from daemon.logs import register_secret
from daemon.notify.events import num


class AdminError(Exception):
    """The daemon could not be asked (down, refused, an unexpected answer)."""


class AdminClient:
    def __init__(self, base_url: str, token_env: str, timeout_s: float = 5.0) -> None:
        self.base_url, self.token_env, self.timeout_s = base_url.rstrip("/"), token_env, timeout_s

    async def request(self, method: str, path: str, body: object | None = None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON or None); AdminError when the daemon cannot be reached."""
        headers = {}
        token = os.environ.get(self.token_env, "")
        if token:
            register_secret(token)
            headers["Authorization"] = f"Bearer {token}"
        data = msgspec.json.encode(body) if body is not None else None
        if data is not None:
            headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.request(method, self.base_url + path, data=data, headers=headers) as resp,
            ):
                raw = await resp.read()
                try:
                    decoded = msgspec.json.decode(raw) if raw else None
                except msgspec.DecodeError:
                    decoded = None
                return resp.status, decoded
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise AdminError(f"the daemon's admin API at {self.base_url} is not answering ({exc})") from exc

    async def status(self) -> dict[str, Any]:
        code, body = await self.request("GET", "/status")
        if code != 200 or not isinstance(body, dict):
            raise AdminError(f"/status answered {code}")
        return body

    async def readiness(self) -> list[str]:
        code, body = await self.request("GET", "/readyz")
        if isinstance(body, dict) and code in (200, 503):
            return [str(r) for r in body.get("reasons", [])]
        raise AdminError(f"/readyz answered {code}")


def _n(value: object) -> str:
    try:
        return num(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return str(value)


def _zero(value: object) -> bool:
    try:
        return Decimal(str(value)) == 0
    except (InvalidOperation, ValueError):
        return False


def describe_status(status: dict[str, Any], reasons: list[str]) -> str:
    groups = status.get("groups", [])
    halted = [f"{g.get('exchange')}:{g.get('symbol')}" for g in groups if g.get("halted")]
    uptime = int(float(status.get("uptime_s", 0)))
    head = "ready" if not reasons else "NOT ready: " + "; ".join(reasons[:5])
    lines = [
        f"tradingd {head}",
        f"up {uptime // 3600}h {uptime % 3600 // 60}m; {len(groups)} groups, {len(halted)} halted",
    ]
    if halted:
        lines.append("halted: " + ", ".join(halted))
    return "\n".join(lines)


def describe_positions(status: dict[str, Any]) -> str:
    lines = []
    for g in status.get("groups", []):
        if not _zero(g.get("position", 0)):
            lines.append(
                f"{g.get('symbol')}: {_n(g.get('position'))} @ {_n(g.get('avg_price'))}, "
                f"unrealized {_n(g.get('unrealized_pnl', 0))}"
            )
    return "\n".join(lines) or "no open positions"


def describe_balances(status: dict[str, Any]) -> str:
    lines = []
    for name, acct in sorted(status.get("accounts", {}).items()):
        balances = acct.get("balances", {}) if isinstance(acct, dict) else {}
        shown = ", ".join(f"{asset} {_n(v)}" for asset, v in sorted(balances.items())) or "none"
        lines.append(f"{name}: {shown}")
    return "\n".join(lines) or "no accounts"


def describe_pnl(status: dict[str, Any]) -> str:
    lines = []
    for g in status.get("groups", []):
        lines.append(
            f"{g.get('symbol')}: realized {_n(g.get('realized_pnl', 0))}, "
            f"unrealized {_n(g.get('unrealized_pnl', 0))}, fees {_n(g.get('fees', 0))}"
        )
    return "\n".join(lines) or "no groups"
