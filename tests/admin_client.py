"""Test helpers for the admin websocket: a bot with its AdminServer, and a raw JSON client.

The client speaks the wire protocol as plain dicts, so the tests check the JSON
frames themselves, not only what the shell makes of them.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from admin.server import AdminServer
from app.builders import build_admin_server
from tests.harness import Bot

TOKEN = "test-admin-token-0123456789abcdef"


class AdminBot:
    """A `tests.harness.Bot` on a virtual clock, plus its admin server on a free loopback port."""

    def __init__(
        self, tmp_path: Path, symbols: list[str], auth_timeout_s: float = 5.0, **sections: Any
    ):
        self.bot = Bot(tmp_path, symbols, **sections).start()
        self.server: AdminServer = build_admin_server(
            self.bot.system, TOKEN, port=0, auth_timeout_s=auth_timeout_s
        )
        self.server.start()

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = TOKEN) -> Client:
        return Client(self.url, token)

    def stop(self) -> None:
        self.server.stop()
        self.bot.stop()


class Client:
    """A websocket connection speaking raw JSON; authenticates unless token is None."""

    def __init__(self, url: str, token: str | None = TOKEN) -> None:
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(url, proxy=None, open_timeout=10)
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []  # WatchEvent frames seen while waiting for replies
        if token is not None:
            reply = self.call("Auth", token=token)
            assert reply == {
                "type": "Reply",
                "id": reply["id"],
                "ok": True,
                "detail": "authenticated",
            }

    def send(self, frame: str | bytes | dict[str, Any]) -> None:
        self.ws.send(json.dumps(frame) if isinstance(frame, dict) else frame)

    def recv(self, timeout: float = 30.0) -> dict[str, Any]:
        frame = self.ws.recv(timeout=timeout)
        assert isinstance(frame, str), "the server sends text frames only"
        decoded: dict[str, Any] = json.loads(frame)
        return decoded

    def reply(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next frame that is not a WatchEvent (those are kept in `events`)."""
        while True:
            frame = self.recv(timeout)
            if frame["type"] != "WatchEvent":
                return frame
            self.events.append(frame)

    def call(self, kind: str, **fields: Any) -> dict[str, Any]:
        request_id = fields.pop("id", next(self._ids))
        self.send({"type": kind, "id": request_id, **fields})
        reply = self.reply()
        assert reply["id"] == request_id, reply
        return reply

    def close(self) -> None:
        self._stack.close()
