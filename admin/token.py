"""The admin token: who may steer the bot through the admin websocket.

Looked up in TRADEACTORS_ADMIN_TOKEN, else `<data_dir>/admin.token`, by both
the bot and the shell. At its first start the bot creates the file (random,
mode 0600, written aside and linked into place so a kill leaves no empty token,
never replacing one another process made). The value never appears in a
message or a log line; `Token.source` says where it came from instead.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("tradeactors.admin")

TOKEN_ENV = "TRADEACTORS_ADMIN_TOKEN"
TOKEN_FILE = "admin.token"


class Token(NamedTuple):
    value: str
    source: str  # where it came from, for messages (never the value itself)


class TokenError(Exception):
    """The token file cannot be used; the message says what to do."""


def token_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / TOKEN_FILE


def read_token(data_dir: str | Path, environ: Mapping[str, str] | None = None) -> Token | None:
    """The admin token: TRADEACTORS_ADMIN_TOKEN, else <data_dir>/admin.token; None if neither."""
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV, "").strip()
    if value:
        return Token(value, f"environment variable {TOKEN_ENV}")
    path = token_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read the admin token file {path}: {exc}") from exc
    if not text:
        raise TokenError(
            f"the admin token file {path} is empty; delete it and the bot writes a new one "
            "at its next start"
        )
    return Token(text, f"file {path}")


def load_or_create_token(data_dir: str | Path, environ: Mapping[str, str] | None = None) -> Token:
    """The token the server accepts; creates <data_dir>/admin.token (mode 0600) if there is none."""
    token = read_token(data_dir, environ)
    path = token_path(data_dir)
    if token is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(32)
        # written aside and linked into place: a bot killed mid-write leaves no empty token
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # fails if the name exists: never replaces a token
        except FileExistsError:  # another process was faster: use its token
            again = read_token(data_dir, environ)
            assert again is not None
            return again
        finally:
            tmp.unlink(missing_ok=True)
        log.info("Admin token created in %s (mode 0600)", path)
        return Token(value, f"file {path}")
    if token.source.startswith("file "):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            log.warning(
                "Admin token file %s is readable by other users (mode %o); chmod 600 it",
                path,
                mode,
            )
    return token
