"""A local fake of the Telegram Bot API (aiohttp), enough for aiogram's getUpdates and sendMessage.

Requests go to ``/bot{token}/{method}``: a wrong token gets 401 like Telegram's, an unknown
method 404.  The form fields aiogram sends are checked (``chat_id`` an integer, ``text`` a
non-empty string, ``allowed_updates`` a JSON list).  ``getUpdates`` long-polls: it answers as
soon as an update newer than ``offset`` is queued, or after ``timeout`` seconds (at most 2 here,
so a test stays bounded).  :meth:`FakeTelegram.say` queues a user's message.
"""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
from aiohttp import web


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.updates: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.bad_requests: list[str] = []
        self.wrong_token = 0
        self._next_id = 1
        self._changed = anyio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def say(self, chat_id: int, text: str, username: str = "op") -> None:
        self.updates.append(
            {
                "update_id": self._next_id,
                "message": {
                    "message_id": self._next_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": "Op", "username": username},
                    "text": text,
                },
            }
        )
        self._next_id += 1
        self._changed.set()

    def texts_to(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if token != self.token:
            self.wrong_token += 1
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if request.content_type == "application/json":
            form: dict[str, Any] = await request.json()
        else:  # aiogram posts form data: urlencoded, or multipart with files
            form = dict(await request.post())
        if method == "getUpdates":
            return await self._get_updates(form)
        if method == "sendMessage":
            chat, text = str(form.get("chat_id", "")), form.get("text")
            if not chat.lstrip("-").isdigit() or not isinstance(text, str) or not text:
                self.bad_requests.append(f"sendMessage {form!r}")
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "Bad Request"}, status=400
                )
            msg = {"chat_id": int(chat), "text": text}
            self.sent.append(msg)
            result = {
                "message_id": 1000 + len(self.sent),
                "date": int(time.time()),
                "chat": {"id": int(chat), "type": "private"},
                "text": text,
            }
            return web.json_response({"ok": True, "result": result})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"}, status=404)

    async def _get_updates(self, form: dict[str, Any]) -> web.Response:
        if "allowed_updates" in form and not isinstance(json.loads(str(form["allowed_updates"])), list):
            self.bad_requests.append(f"getUpdates {form!r}")
        offset = int(form.get("offset", 0) or 0)
        wait = min(float(form.get("timeout", 0) or 0), 2.0)
        with anyio.move_on_after(wait):
            while not [u for u in self.updates if u["update_id"] >= offset]:
                self._changed = anyio.Event()
                await self._changed.wait()
        result = [u for u in self.updates if u["update_id"] >= offset]
        return web.json_response({"ok": True, "result": result})

    async def __aenter__(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
