"""API keys for a real exchange, and keeping them out of every log line and message.

Keys come only from the environment (`Credentials.from_env`), never from a settings
file. Their repr, str and every error text the adapter writes (`redacted_error`) mask
them; ccxt's own DEBUG lines (request headers, signed URLs) go through
`RedactingLogger`. No ccxt import here: the settings checks use these names without
paying for ccxt.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from exchange.types import ExchangeError

API_KEY_ENV = "TRADEACTORS_API_KEY"
API_SECRET_ENV = "TRADEACTORS_API_SECRET"
# What `exchange.live_confirm` must say, word for word, before mode `live` trades.
LIVE_CONFIRMATION = "I understand this trades real money"

KEY_SOURCES: dict[str, str] = {
    "sandbox": "https://testnet.binance.vision (spot testnet keys)",
    "demo": "https://demo.binance.com, API Management (demo trading keys)",
    "live": "the exchange's API management page (live keys)",
}

_QUERY = re.compile(r"\?\S*")
_SIGNATURE = re.compile(r"(signature=)[0-9a-fA-F]+")


class MissingCredentials(ExchangeError):
    """The keys a mode needs are not in the environment."""


class Credentials:
    """An API key pair. Its repr, str and equality never show the secret or the key."""

    __slots__ = ("api_key", "secret")

    def __init__(self, api_key: str, secret: str) -> None:
        self.api_key = api_key
        self.secret = secret

    @classmethod
    def from_env(cls, environ: Mapping[str, str], mode: str = "sandbox") -> Credentials:
        missing = [name for name in (API_KEY_ENV, API_SECRET_ENV) if not environ.get(name)]
        if missing:
            raise MissingCredentials(
                f"exchange mode {mode!r} needs API keys: set {' and '.join(missing)} in the "
                f"environment (keys from {KEY_SOURCES.get(mode, KEY_SOURCES['live'])}); "
                "keys are never read from settings files"
            )
        return cls(environ[API_KEY_ENV].strip(), environ[API_SECRET_ENV].strip())

    def redact(self, text: str) -> str:
        """`text` with the key and the secret masked (real ones are 64 characters; a value
        under 8 characters is no secret, and masking it would garble every word)."""
        for secret in (self.secret, self.api_key):
            if len(secret) >= 8:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return "Credentials(api_key=***, secret=***)"

    __str__ = __repr__


def redacted_error(exc: BaseException, credentials: Credentials) -> str:
    """An exception as one line for a log or a message: its class, no query string (signed
    URLs carry the signature and the timestamp), no keys, at most 500 characters."""
    text = _QUERY.sub("", f"{type(exc).__name__}: {exc}")
    return credentials.redact(" ".join(text.split()))[:500]


def without_query(url: str) -> str:
    return _QUERY.sub("", url)


class RedactingLogger:
    """The logger handed to ccxt: its DEBUG lines show request headers (the API key) and
    signed URLs; this one writes them with the key, the secret and signatures masked."""

    def __init__(self, credentials: Credentials) -> None:
        self._log = logging.getLogger("tradeactors.exchange.ccxt")
        self._creds = credentials

    def isEnabledFor(self, level: int) -> bool:
        return self._log.isEnabledFor(level)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self._log.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self._log.log(level, "%s", self._creds.redact(_SIGNATURE.sub(r"\1***", text)))

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args)
