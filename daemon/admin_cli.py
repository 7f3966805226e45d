"""``tradingd status | halt | resume | flatten | orders | balances``: the operator's commands.

Takes and emits no messages: each command is one request to the running daemon's admin API
(:mod:`daemon.admin_client`), printed as tables for a person or, with ``--json``, as the
daemon's JSON answer.  Numbers arrive rounded to each instrument by the daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tabulate import tabulate

from daemon.admin_client import EXIT_CODES, INCOMPLETE, NOT_CONFIRMED, OK, AdminFailure, Target

RAW = argparse.RawDescriptionHelpFormatter
COMMANDS = ("status", "halt", "resume", "flatten", "orders", "balances")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="the daemon's config file (default: $TRADINGD_CONFIG or ./config.toml)")
    p.add_argument("--url", help="the daemon's health server (default: health.bind:health.port of --config)")
    p.add_argument("--token-file", help="a file holding the admin token (default: the daemon's own sources)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the answer (default 60)")
    p.add_argument("--json", action="store_true", help="print the daemon's JSON answer, for machines")


def _scope(p: argparse.ArgumentParser, all_flag: bool) -> None:
    g = p.add_mutually_exclusive_group(required=all_flag)
    g.add_argument("--group", metavar="EX:SYM", help="one group, e.g. paper:UNITTEST/BTC")
    g.add_argument("--account", metavar="NAME", help="every group of one account")
    if all_flag:
        g.add_argument("--all", action="store_true", help="every group of the daemon")


def _parser(sub: Any, name: str, text: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=text,
        description=text,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return p


def add_parsers(sub: Any) -> None:
    """The operator's subcommands, on the ``tradingd`` parser's subparsers."""
    _common(_parser(sub, "status", "groups, positions, open orders, balances (venue vs ledger), readiness"))
    halt = _parser(
        sub, "halt", "no new exposure (exits and stop-losses still go out); default: the whole daemon"
    )
    _scope(halt, all_flag=False)
    halt.add_argument("--reason", default="", help="shown in /readyz, /status and the journal")
    _common(halt)
    resume = _parser(sub, "resume", "lift the halt of the same scope (default: the whole daemon's)")
    _scope(resume, all_flag=False)
    _common(resume)
    flatten = _parser(
        sub,
        "flatten",
        "cancel every open order of the scope, close each position with a reduce-only market order, "
        "leave the scope halted",
    )
    _scope(flatten, all_flag=True)
    flatten.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    flatten.add_argument("--wait", type=float, default=30.0, help="seconds the daemon may take (default 30)")
    _common(flatten)
    _common(_parser(sub, "orders", "every open order of every group"))
    _common(_parser(sub, "balances", "account balances: the venue's beside the ledger's"))


def _scope_body(args: argparse.Namespace) -> dict[str, object]:
    if getattr(args, "group", None):
        return {"scope": "group", "target": args.group}
    if getattr(args, "account", None):
        return {"scope": "account", "target": args.account}
    return {"scope": "daemon", "target": ""}


def _where(body: dict[str, object]) -> str:
    return "the whole daemon" if body["scope"] == "daemon" else f"{body['scope']} {body['target']}"


def main(args: argparse.Namespace) -> int:
    """Run one operator command; returns the exit code (printed errors go to stderr)."""
    try:
        target = Target.from_args(args.config, args.url, args.token_file, args.timeout)
        return _COMMANDS[args.command](target, args)
    except AdminFailure as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


def _print_json(answer: object) -> None:
    json.dump(answer, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], empty: str) -> str:
    if not rows:
        return f"  ({empty})"
    body = [["" if r.get(k) is None else _cell(r.get(k)) for k, _ in columns] for r in rows]
    return tabulate(body, headers=[h for _, h in columns], tablefmt="simple", disable_numparse=True)


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    return str(value)


GROUP_COLUMNS = [
    ("group", "group"),
    ("account", "account"),
    ("state", "state"),
    ("feed_age_s", "feed age s"),
    ("strategy", "strategy"),
    ("open_orders", "open orders"),
    ("why", "why"),
]
POSITION_COLUMNS = [
    ("group", "group"),
    ("position", "position"),
    ("avg_price", "avg price"),
    ("last_price", "last price"),
    ("unrealized_pnl", "unrealized"),
    ("realized_pnl", "realized"),
    ("fees", "fees"),
    ("quote", "in"),
]
ORDER_COLUMNS = [
    ("group", "group"),
    ("client_order_id", "client order id"),
    ("source", "source"),
    ("side", "side"),
    ("type", "type"),
    ("quantity", "quantity"),
    ("filled", "filled"),
    ("price", "price"),
    ("stop_price", "stop"),
    ("reduce_only", "reduce-only"),
    ("status", "status"),
]
BALANCE_COLUMNS = [
    ("account", "account"),
    ("asset", "asset"),
    ("venue", "venue"),
    ("ledger", "ledger"),
    ("difference", "venue - ledger"),
]
STEP_COLUMNS = [
    ("group", "group"),
    ("action", "action"),
    ("client_order_id", "client order id"),
    ("source", "placed by"),
    ("side", "side"),
    ("order_type", "type"),
    ("quantity", "quantity"),
    ("price", "price"),
    ("result", "result"),
    ("detail", "detail"),
]


def _balance_rows(accounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for acct in accounts:
        for asset in acct["assets"]:
            rows.append({"account": acct["account"], **asset})
        if acct.get("venue_error"):
            rows.append({"account": acct["account"], "asset": "-", "venue": f"error: {acct['venue_error']}"})
        check = acct.get("balance_check") or {}
        if check.get("last_check"):  # the balance check (daemon/balance_check.py): drifts since start
            found = ", ".join(f"{a} {n}" for a, n in sorted(check.get("drifts", {}).items()))
            what = f"drifts since start: {found}" if found else "no drift since start"
            rows.append(
                {"account": acct["account"], "asset": "-", "venue": f"checked {check['last_check']}: {what}"}
            )
    return rows


def _status(target: Target, args: argparse.Namespace) -> int:
    s = target.request("GET", "/admin/status")
    if args.json:
        _print_json(s)
        return OK if s.get("ready") else INCOMPLETE
    groups: list[dict[str, Any]] = s["groups"]  # type: ignore[assignment]
    ready = "ready" if s.get("ready") else "NOT READY"
    print(f"tradingd {s['version']} at {target.url}: {ready} (since {s['started']}, now {s['time']})")
    for reason in s.get("reasons", []):  # type: ignore[attr-defined]
        print(f"  - {reason}")
    print("\nGroups")
    print(_table(groups, GROUP_COLUMNS, "no groups running"))
    print("\nPositions")
    print(_table(groups, POSITION_COLUMNS, "no groups running"))
    print("\nOpen orders")
    print(_table(s["orders"], ORDER_COLUMNS, "none"))  # type: ignore[arg-type]
    print("\nBalances")
    print(_table(_balance_rows(s["balances"]), BALANCE_COLUMNS, "no accounts"))  # type: ignore[arg-type]
    return OK if s.get("ready") else INCOMPLETE


def _halt(target: Target, args: argparse.Namespace) -> int:
    body = _scope_body(args)
    if args.reason:
        body["reason"] = args.reason
    answer = target.request("POST", "/admin/halt", body)
    if args.json:
        _print_json(answer)
    else:
        print(f"halted {_where(body)}: {answer.get('reason', '')} (exits and stop-losses still go out)")
    return OK


def _resume(target: Target, args: argparse.Namespace) -> int:
    body = _scope_body(args)
    answer = target.request("POST", "/admin/resume", body)
    if args.json:
        _print_json(answer)
    else:
        print(f"resumed {_where(body)} (a halt of another scope, or of the supervisor, stays)")
    return OK


def _confirmed(body: dict[str, object], yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        print("error: flatten needs --yes when not run from a terminal", file=sys.stderr)
        return False
    answer = input(
        f"flatten {_where(body)}: cancel every open order and close every position at market? [yes/no] "
    )
    return answer.strip().lower() in ("y", "yes")


def _flatten(target: Target, args: argparse.Namespace) -> int:
    body = _scope_body(args)
    body["timeout_s"] = args.wait
    if not _confirmed(body, args.yes):
        return NOT_CONFIRMED
    target.timeout_s = max(target.timeout_s, args.wait + 10)
    report = target.request("POST", "/admin/flatten", body)
    if args.json:
        _print_json(report)
        return OK if report.get("ok") else INCOMPLETE
    groups: list[dict[str, Any]] = report["groups"]  # type: ignore[assignment]
    steps = [{"group": g["group"], **step} for g in groups for step in g["steps"]]
    print(f"flatten {_where(body)}, {report['started']} .. {report['finished']}")
    print(_table(steps, STEP_COLUMNS, "nothing to do: no open orders, no positions"))
    print()
    for g in groups:
        state = "flat" if g["flat"] else ("done (dust left)" if g["done"] else "NOT flat")
        print(
            f"{g['group']}: position {g['position_before']} -> {g['position_after']}, "
            f"{g['open_orders_after']} open orders: {state}"
        )
    print(f"halted: {report['halted']}" if report.get("halted") else "")
    return OK if report.get("ok") else INCOMPLETE


def _orders(target: Target, args: argparse.Namespace) -> int:
    answer = target.request("GET", "/admin/orders")
    if args.json:
        _print_json(answer)
    else:
        print(_table(answer["orders"], ORDER_COLUMNS, "no open orders"))  # type: ignore[arg-type]
    return OK


def _balances(target: Target, args: argparse.Namespace) -> int:
    answer = target.request("GET", "/admin/balances")
    if args.json:
        _print_json(answer)
    else:
        print(_table(_balance_rows(answer["accounts"]), BALANCE_COLUMNS, "no accounts"))  # type: ignore[arg-type]
    return OK


_COMMANDS = {
    "status": _status,
    "halt": _halt,
    "resume": _resume,
    "flatten": _flatten,
    "orders": _orders,
    "balances": _balances,
}
