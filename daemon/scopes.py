"""What an operator's command applies to: the whole daemon, one account, or one group.

Takes and emits no messages.  :func:`parse_scope` checks a scope and target from the admin API
against the running config (an unknown scope, account or group is a :class:`ScopeError` naming
what exists); :func:`groups_in` lists the running groups a scope covers.
"""

from __future__ import annotations

from typing import cast

from daemon.admin_api import AdminError
from daemon.group import SymbolGroup
from daemon.halts import HaltScope
from daemon.supervisor import Supervisor

SCOPES: tuple[HaltScope, ...] = ("daemon", "account", "group")


class ScopeError(AdminError):
    """An unknown scope or target; the message says what exists (HTTP 404)."""

    status = 404


def parse_scope(sup: Supervisor, scope: str, target: str) -> tuple[HaltScope, str]:
    """(scope, target) checked against ``sup``'s config: a daemon scope has no target, an account
    is one of ``[accounts]``, a group ``exchange:symbol`` one of the enabled ``[[groups]]``.
    ``"all"`` is another name for the daemon scope."""
    scope = "daemon" if scope == "all" else scope
    if scope not in SCOPES:
        raise ScopeError(f"unknown scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if scope == "daemon":
        if target:
            raise ScopeError(f"scope daemon takes no target, got {target!r}")
        return "daemon", ""
    if scope == "account":
        known = sorted(sup.cfg.accounts)
        if target not in known:
            raise ScopeError(f"unknown account {target!r}: the accounts are {', '.join(known) or 'none'}")
        return "account", target
    known = sorted({f"{g.exchange}:{g.symbol}" for g in sup.cfg.groups if g.enabled} | set(_running(sup)))
    if target not in known:
        raise ScopeError(
            f"unknown group {target!r}: expected exchange:symbol, one of {', '.join(known) or 'none'}"
        )
    return cast(HaltScope, scope), target


def _running(sup: Supervisor) -> dict[str, SymbolGroup]:
    return {g.name: g for g in sup.groups.values()}


def groups_in(sup: Supervisor, scope: HaltScope, target: str) -> list[SymbolGroup]:
    """The running groups ``scope``/``target`` covers, in the supervisor's order."""
    return [
        g
        for g in sup.groups.values()
        if scope == "daemon"
        or (scope == "account" and g.cfg.account == target)
        or (scope == "group" and g.name == target)
    ]
