"""The Telegram bot (aiogram): sends alerts and answers operator commands from configured chats.

Takes Telegram updates (``getUpdates`` long polling against ``telegram.api_url``, so a local
fake Bot API server works in tests) and emits replies answered from the daemon's admin API:
``/status``, ``/positions``, ``/balance``, ``/pnl`` at once; ``/halt [reason]``, ``/resume`` and
``/flatten`` only after ``/confirm`` from the same chat within ``confirm_timeout_s``
(``/cancel`` drops it).  Messages from a chat not in ``telegram.chat_ids`` are ignored (logged,
counted).  :class:`TelegramSender` is the ``url = "telegram"`` target: one message per chat.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError
from aiogram.types import Message as TgMessage
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential, wait_random

from daemon.logs import register_secret
from daemon.notify.admin import (
    AdminClient,
    AdminError,
    describe_balances,
    describe_pnl,
    describe_positions,
    describe_status,
)
from daemon.notify.config import Severity, TelegramSection
from daemon.notify.deliver import DeliveryError

log = logging.getLogger("tradingd.notify.telegram")
_X = {"component": "notify"}
HELP = (
    "/status /positions /balance /pnl: ask the daemon\n"
    "/halt [reason], /resume, /flatten: change it (then /confirm)\n/cancel: drop a pending change"
)
CHANGES = ("halt", "resume", "flatten")


def make_bot(cfg: TelegramSection) -> Bot:
    token = os.environ.get(cfg.token_env, "")
    if not token:
        raise ValueError(f"telegram is enabled but the variable {cfg.token_env} (the bot token) is not set")
    register_secret(token)
    session = AiohttpSession(api=TelegramAPIServer.from_base(cfg.api_url.rstrip("/")))
    return Bot(token, session=session)


class TelegramSender:
    """Alerts to every configured chat; a chat that already has this batch is not sent it again."""

    def __init__(self, bot: Bot, chat_ids: tuple[int, ...]) -> None:
        self.bot, self.chat_ids = bot, chat_ids
        self._done: tuple[str, set[int]] = ("", set())

    async def send(self, title: str, body: str, severity: Severity, key: str) -> None:
        if self._done[0] != key:
            self._done = (key, set())
        for chat in self.chat_ids:
            if chat in self._done[1]:
                continue
            try:
                await self.bot.send_message(chat, f"{title}\n{body}"[:4096])
            except (TelegramAPIError, TelegramNetworkError) as exc:
                raise DeliveryError(f"telegram chat {chat}: {exc}") from exc
            self._done[1].add(chat)


class Commands:
    """Answers one chat's command text; state-changing ones wait for ``/confirm``."""

    def __init__(
        self, admin: AdminClient, confirm_timeout_s: float, clock: Callable[[], float] = time.monotonic
    ):
        self.admin, self.timeout_s, self.clock = admin, confirm_timeout_s, clock
        self.pending: dict[int, tuple[str, str, float]] = {}

    async def answer(self, chat: int, text: str, who: str) -> str:
        word, _, rest = text.strip().partition(" ")
        cmd = word.split("@", 1)[0].lower().lstrip("/")
        try:
            return await self._answer(chat, cmd, rest.strip(), who)
        except AdminError as exc:
            return str(exc)

    async def _answer(self, chat: int, cmd: str, rest: str, who: str) -> str:
        if cmd == "status":
            return describe_status(await self.admin.status(), await self.admin.readiness())
        if cmd == "positions":
            return describe_positions(await self.admin.status())
        if cmd == "balance":
            return describe_balances(await self.admin.status())
        if cmd == "pnl":
            return describe_pnl(await self.admin.status())
        if cmd in CHANGES:
            self.pending[chat] = (cmd, rest, self.clock() + self.timeout_s)
            what = {
                "halt": "Halt all new entries",
                "resume": "Resume trading",
                "flatten": "Close every position",
            }
            return f"{what[cmd]}? Reply /confirm within {self.timeout_s:g} s (/cancel to drop it)."
        if cmd == "cancel":
            return "dropped" if self.pending.pop(chat, None) else "nothing to cancel"
        if cmd in ("confirm", "yes"):
            action = self.pending.pop(chat, None)
            if action is None or action[2] < self.clock():
                return "nothing to confirm (or it took too long): send the command again"
            return await self._change(action[0], action[1], who)
        return HELP

    async def _change(self, cmd: str, reason: str, who: str) -> str:
        if cmd == "halt":
            body = {"reason": f"{reason or 'halted'} (telegram, {who})"}
            code, reply = await self.admin.request("POST", "/admin/halt", body)
        elif cmd == "resume":
            code, reply = await self.admin.request("POST", "/admin/resume", {})
        else:
            code, reply = await self.admin.request("POST", "/admin/flatten", {"scope": "all"})
            if code == 404:
                return "this daemon has no /admin/flatten (an older version): close positions another way"
        if code == 200:
            return {
                "halt": "HALTED: no new entries",
                "resume": "resumed",
                "flatten": "flattening every position",
            }[cmd]
        error = reply.get("error") if isinstance(reply, dict) else None
        return f"/{cmd} refused by the daemon: HTTP {code} {error or ''}".strip()


class CommandBot:
    """Long-polls updates and answers allowed chats; :meth:`run` until cancelled."""

    def __init__(self, bot: Bot, cfg: TelegramSection, commands: Commands) -> None:
        self.bot, self.cfg, self.commands = bot, cfg, commands
        self.allowed = frozenset(cfg.chat_ids)
        self.ignored = 0
        self.offset: int | None = None

    async def run(self) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type((TelegramNetworkError, TelegramAPIError)),
            wait=wait_exponential(multiplier=1, max=60) + wait_random(0, 1),
            before_sleep=lambda s: log.warning(
                "telegram polling: %s", s.outcome and s.outcome.exception(), extra=_X
            ),
        )
        async for attempt in retrying:
            with attempt:
                while True:
                    await self.poll_once()

    async def poll_once(self) -> int:
        updates = await self.bot.get_updates(
            offset=self.offset,
            timeout=self.cfg.poll_timeout_s,
            allowed_updates=["message"],
            request_timeout=self.cfg.poll_timeout_s + 10,
        )
        for update in updates:
            self.offset = update.update_id + 1
            if update.message is not None:
                await self._message(update.message)
        return len(updates)

    async def _message(self, msg: TgMessage) -> None:
        chat = msg.chat.id
        if chat not in self.allowed:
            self.ignored += 1
            log.warning("telegram: ignored a message from chat %s (not in telegram.chat_ids)", chat, extra=_X)
            return
        if not msg.text or not msg.text.startswith("/"):
            return
        who = f"chat {chat}" + (
            f" @{msg.from_user.username}" if msg.from_user and msg.from_user.username else ""
        )
        answer = await self.commands.answer(chat, msg.text, who)
        await self.bot.send_message(chat, answer[:4096])
