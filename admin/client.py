"""AdminClient: the shell's one authenticated websocket connection to the bot."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import msgspec
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from admin.protocol import (
    TRANSPORT_MAX_BYTES,
    AdminRequest,
    AnyAdminReply,
    AuthRequest,
    ErrorReply,
    Reply,
    WatchEvent,
)
from admin.token import TOKEN_ENV


class ShellError(Exception):
    """No usable connection; the message says what to check."""


def is_error(reply: AnyAdminReply) -> bool:
    return isinstance(reply, ErrorReply) or (isinstance(reply, Reply) and not reply.ok)


_decode_reply = msgspec.json.Decoder(AnyAdminReply).decode


class AdminClient:
    """One authenticated websocket connection to the bot (sync client; one request at a time)."""

    def __init__(
        self,
        url: str,
        token: str,
        token_source: str,
        settings_path: str = "settings.yaml",
        timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.token = token
        self.token_source = token_source
        self.settings_path = settings_path
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._ws: ClientConnection | None = None
        self._stack = contextlib.ExitStack()

    def next_id(self) -> int:
        return next(self._ids)

    def connect(self) -> None:
        stack = contextlib.ExitStack()
        try:  # no proxy: the admin server is this machine's (or a trusted host's)
            ws = stack.enter_context(
                connect(self.url, open_timeout=10, proxy=None, max_size=TRANSPORT_MAX_BYTES)
            )
        except InvalidURI as exc:
            raise ShellError(f"{self.url} is not a websocket address: {exc}") from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise ShellError(self._unreachable(exc)) from None
        self._ws, self._stack = ws, stack
        try:
            _, reply = self.request(AuthRequest(token=self.token))
        except (ConnectionClosed, TimeoutError):
            reply = ErrorReply(id=0, error="connection closed")
        if is_error(reply):
            self.close()
            raise ShellError(
                f"the admin server at {self.url} refused the token from {self.token_source}.\n"
                "Check:\n"
                f"  - the bot takes ${TOKEN_ENV} from its own environment if it is set there,\n"
                "    else admin.token in its data_dir: give the shell the same one\n"
                f"  - is {self.settings_path} the bot's settings file (same data_dir)?"
            )

    def _unreachable(self, exc: BaseException) -> str:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc) or "timeout"
        return (
            f"cannot reach the bot's admin server at {self.url}: {why.lower()}.\n"
            "Check:\n"
            f"  - is the bot running? (python supervisor.py --settings {self.settings_path})\n"
            f"  - is {self.url} its address? (admin.enabled, admin.host and admin.port in\n"
            f"    {self.settings_path}, or --url)\n"
            f"  - the shell's token comes from {self.token_source}"
        )

    @property
    def ws(self) -> ClientConnection:
        if self._ws is None:
            raise ShellError("not connected")
        return self._ws

    def send(self, request: AdminRequest) -> None:
        self.ws.send(msgspec.json.encode(request).decode())

    def receive(self, timeout: float | None = None) -> tuple[str, AnyAdminReply]:
        frame = self.ws.recv(timeout=timeout)
        text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
        try:
            return text, _decode_reply(text)
        except msgspec.DecodeError as exc:  # a newer or foreign server
            return text, ErrorReply(id=None, error=f"unreadable reply from the bot: {exc}")

    def request(self, request: AdminRequest) -> tuple[str, AnyAdminReply]:
        """Send and wait for the reply with the request's id (events of a watch are skipped)."""
        self.send(request)
        while True:
            text, reply = self.receive(self.timeout)
            if isinstance(reply, WatchEvent):
                continue
            if reply.id in (request.id, None):
                return text, reply

    def events(self) -> Iterator[tuple[str, AnyAdminReply]]:
        """Frames as they come (after a Watch): until the connection closes."""
        while True:
            try:
                yield self.receive(None)
            except ConnectionClosed:
                return

    def close(self) -> None:
        self._stack.close()
        self._ws = None
