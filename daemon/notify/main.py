"""``tradingd notify --config FILE``: runs the consumer, one deliverer per target, the daily summary
and the Telegram bot in one task group, under systemd (READY=1, WATCHDOG=1, STOPPING=1).

Takes the daemon's Redis streams and Telegram updates; emits notifications.  SIGTERM or SIGINT
stops it with exit code 0; a kill -9 loses nothing (see :mod:`daemon.notify.consumer` and
:mod:`daemon.notify.deliver`).  Exit code 1 for a config that cannot be used.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import socket
import sys

import anyio
from anyio.abc import TaskGroup
from redis.asyncio import Redis
from redis.exceptions import RedisError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from daemon.logs import register_url_password, setup_logging
from daemon.notify.admin import AdminClient
from daemon.notify.config import NotifyConfig, NotifyConfigError, load_notify_config
from daemon.notify.consumer import Consumer
from daemon.notify.daily import DailySummary
from daemon.notify.deliver import AppriseSender, Deliverer, Sender
from daemon.notify.telegram import CommandBot, Commands, TelegramSender, make_bot
from daemon.sdnotify import SystemdNotifier
from daemon.secrets import redis_password

log = logging.getLogger("tradingd.notify")
_X = {"component": "notify"}


def notify_main(args: argparse.Namespace) -> int:
    try:
        cfg = load_notify_config(args.config)
    except NotifyConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    setup_logging(cfg.notify.log_level, cfg.notify.log_format)
    try:
        anyio.run(run, cfg, backend="asyncio")
    except (ValueError, OSError) as exc:  # a target URL, token or address that cannot be used
        log.error("tradingd notify cannot run: %s", exc, extra=_X)
        return 1
    return 0


def consumer_name(cfg: NotifyConfig) -> str:
    return cfg.notify.consumer or re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:64] or "notify"


def _retrying() -> AsyncRetrying:
    return AsyncRetrying(
        retry=retry_if_exception_type((RedisError, OSError)),
        wait=wait_exponential(multiplier=0.2, max=10) + wait_random(0, 0.2),
        before_sleep=lambda s: log.warning(
            "redis: %s; retrying", s.outcome and s.outcome.exception(), extra=_X
        ),
    )


async def _consume(consumer: Consumer, interval_s: float) -> None:
    async for attempt in _retrying():
        with attempt:
            next_scan = anyio.current_time() + interval_s
            while True:
                await consumer.read_once()
                if anyio.current_time() >= next_scan:
                    await consumer.discover()
                    await consumer.claim_idle()
                    next_scan = anyio.current_time() + interval_s


async def _daily(summary: DailySummary) -> None:
    async for attempt in _retrying():
        with attempt:
            await summary.run()


async def _signals(tg: TaskGroup, sd: SystemdNotifier) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("tradingd notify stopping (%s)", signal.Signals(signum).name, extra=_X)
            sd.stopping()
            tg.cancel_scope.cancel()
            return


async def run(cfg: NotifyConfig) -> None:
    """The whole notifier, until SIGTERM/SIGINT."""
    register_url_password(cfg.redis.url)
    sd = SystemdNotifier.from_env()
    redis = Redis.from_url(
        cfg.redis.url,
        password=redis_password(cfg.redis.password_env),
        socket_connect_timeout=cfg.redis.connect_timeout_s,
        socket_timeout=cfg.redis.connect_timeout_s + cfg.notify.block_ms / 1000 + 5,
    )
    tg_cfg = cfg.notify.telegram
    bot = make_bot(tg_cfg) if tg_cfg.enabled else None
    deliverers: list[Deliverer] = []
    for t in cfg.notify.targets:
        url = t.resolved_url()
        sender: Sender
        if url == "telegram" and bot is not None:
            sender = TelegramSender(bot, tg_cfg.chat_ids)
        else:
            try:
                sender = AppriseSender(url, t.timeout_s)
            except ValueError as exc:
                raise ValueError(f"notify.targets {t.name}: {exc}") from None
        deliverers.append(Deliverer(cfg, t, redis, sender))
    consumer = Consumer(cfg, redis, consumer_name(cfg))
    try:
        async for attempt in _retrying():
            with attempt:
                await consumer.setup()
        async with anyio.create_task_group() as tg:
            tg.start_soon(_signals, tg, sd)
            tg.start_soon(sd.watchdog_loop)
            tg.start_soon(_consume, consumer, cfg.notify.scan_interval_s)
            for d in deliverers:
                tg.start_soon(d.run)
            if cfg.notify.daily_summary:
                tg.start_soon(_daily, DailySummary(cfg, redis))
            if bot is not None and tg_cfg.commands:
                commands = Commands(
                    AdminClient(cfg.notify.admin_url, cfg.notify.admin_token_env), tg_cfg.confirm_timeout_s
                )
                tg.start_soon(CommandBot(bot, tg_cfg, commands).run)
            names = ", ".join(t.name for t in cfg.notify.targets) or "none"
            log.info("tradingd notify ready: consumer %s, targets %s", consumer.name, names, extra=_X)
            sd.ready(f"notifying {len(deliverers)} targets")
    finally:
        with anyio.move_on_after(2, shield=True):
            await redis.aclose()
            if bot is not None:
                await bot.session.close()
