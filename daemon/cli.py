"""Command line: ``tradingd run | check-config | schema | migrate | backtest | optimize | journal``,
and the operator's ``status | halt | resume | flatten | orders | balances`` (:mod:`daemon.admin_cli`)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from actors.messages import json_schema
from daemon.config import ConfigError, load_config


def _check_config(path: str) -> int:
    try:
        cfg = load_config(path)
    except ConfigError as exc:  # its message shows no URL password, nor an *_env key's value
        print(f"error: {exc}", file=sys.stderr)
        return 1
    enabled = [f"{g.exchange}:{g.symbol}" for g in cfg.groups if g.enabled]
    empty = " (daemon.allow_empty)" if not enabled else ""
    print(f"{path}: ok ({len(enabled)} groups: {', '.join(enabled) or 'none'}{empty})")
    from daemon.admin_token import file_warnings
    from daemon.secrets import inline_passwords

    for warning in inline_passwords(cfg.redis.url, cfg.store.dsn) + file_warnings(cfg.health):
        print(f"warning: {path}: {warning}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    from daemon.admin_cli import COMMANDS as ADMIN_COMMANDS
    from daemon.admin_cli import add_parsers as add_admin_parsers
    from daemon.admin_client import EXIT_CODES
    from daemon.version import tradingd_version

    parser = argparse.ArgumentParser(
        prog="tradingd",
        description="Actor-based trading daemon. `tradingd COMMAND --help` for each command.",
        epilog="the operator's commands (status, halt, resume, flatten, orders, balances) talk to the "
        "running daemon's admin API;\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tradingd {tradingd_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", default="config.toml", help="TOML config file (default: config.toml)")
    check = sub.add_parser("check-config", help="validate a config file; exit 1 with the reason if invalid")
    check.add_argument("file")
    sub.add_parser("schema", help="print the JSON Schema of every bus message")
    migrate = sub.add_parser("migrate", help="apply the PostgreSQL schema migrations")
    migrate.add_argument("--dsn", required=True, help="e.g. postgresql://postgres@127.0.0.1:5432/tradingd")
    from daemon.backtest.cli import add_parsers as add_backtest_parsers
    from daemon.journal_repair import add_parser as add_journal_parser

    add_backtest_parsers(sub)
    add_journal_parser(sub)
    # tradingd notify (its own process; daemon.notify.main, imported only to run it: aiogram takes seconds)
    notify = sub.add_parser("notify", help="send alerts from the daemon's Redis streams (a separate process)")
    notify.add_argument(
        "--config", default="notify.toml", help="the notifier's TOML file (default: notify.toml)"
    )
    add_admin_parsers(sub)
    args = parser.parse_args(argv)

    if args.command in ADMIN_COMMANDS:
        from daemon.admin_cli import main as admin_main

        try:
            return admin_main(args)
        except BrokenPipeError:  # `tradingd status | head`: the reader has gone, nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
            return 0

    if args.command == "notify":
        from daemon.notify.main import notify_main

        return notify_main(args)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "migrate":
        import anyio

        from daemon.store.migrations import migrate_main

        return anyio.run(migrate_main, args.dsn)
    if args.command in ("backtest", "optimize"):
        from daemon.backtest.cli import backtest_main, optimize_main

        return backtest_main(args) if args.command == "backtest" else optimize_main(args)
    if args.command == "journal":
        from daemon.journal_repair import journal_main

        return journal_main(args)
    if args.command == "schema":
        json.dump(json_schema(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    from daemon.app import run as run_daemon

    return run_daemon(args.config)


if __name__ == "__main__":
    sys.exit(main())
