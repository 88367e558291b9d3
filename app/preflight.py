"""Checks run before anything starts: every start-up failure is one line and an exit code.

Each check raises `PreflightError` with one line naming the file, port or field and
what to do. None creates anything: a check that fails leaves the disk as it was
(no data folder, lock file, database or staging folder appears).

- `check_data_dir`: the data folder and the files the bot will open in it are usable.
- `check_output_dir`: a folder a command will write into (`simulate --out`) is usable.
- `check_log_file`: the log file and its folder are writable.
- `check_port_free`: the admin port can be bound on the configured host.
- `check_universe`: a static universe names only symbols the exchange lists.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

from config.settings import Settings, UniverseSettings

EXIT_SETTINGS = 2  # the settings (or the command line) ask for something impossible

# what the bot opens in its data folder, by kind: files it writes, folders it writes in
DATA_FILES = (
    "tradeactors.db",
    "tradeactors.db.lock",
    "tradeactors.db-wal",
    "tradeactors.db-shm",
    "paper/state.json",
    "paper/anchor.json",
)
DATA_FOLDERS = ("models", "candles", "paper", "logs")
READ_ONLY_FILES = ("admin.token",)


class PreflightError(Exception):
    """A start-up check failed; the message is one line, `code` the exit code."""

    def __init__(self, message: str, code: int = EXIT_SETTINGS) -> None:
        super().__init__(message)
        self.code = code


def check_data_dir(data_dir: str | Path) -> None:
    """The data folder (or the folder it will be made in) and the files in it are usable."""
    root = Path(data_dir)
    what = f"data_dir {root}"
    _check_folder(root, what)
    if not root.exists():
        return  # created at start: nothing in it yet
    for name in DATA_FOLDERS:
        path = root / name
        if path.exists():
            _check_folder(path, f"{what}: {name}")
    for name in DATA_FILES:
        _check_file(root / name, f"{what}: {name}", writable=True)
    for name in READ_ONLY_FILES:
        _check_file(root / name, f"{what}: {name}", writable=False)


def check_output_dir(out: str | Path, files: Iterable[str] = (), flag: str = "--out") -> None:
    """A folder a command writes `files` into: a folder (or creatable), writable."""
    root = Path(out)
    what = f"{flag} {root}"
    _check_folder(root, what)
    for name in files:
        _check_file(root / name, f"{what}: {name}", writable=True)


def check_port_free(host: str, port: int) -> None:
    """Bind-test `host:port` as the admin server will (SO_REUSEADDR, every address of host).

    Port 0 (any free port) always passes. The server may still lose a race for the
    port; it then fails at start as before, but the common case is caught here.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise PreflightError(
            f"admin.host {host}: cannot be resolved ({exc.strerror}); fix admin.host"
        ) from None
    for family, kind, proto, _, address in infos:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                hint = (
                    "another program (or another tradeactors) listens there"
                    if exc.errno == errno.EADDRINUSE
                    else "not an address of this machine"
                    if exc.errno == errno.EADDRNOTAVAIL
                    else "binding it is not allowed"
                )
                raise PreflightError(
                    f"admin port {host}:{port} cannot be used ({exc.strerror}: {hint}); "
                    "change admin.port, or set admin.enabled: false"
                ) from None


def check_universe(universe: UniverseSettings, listed: Collection[str], exchange: str) -> None:
    """A static universe names only symbols the exchange lists (`listed`: its markets)."""
    if universe.mode != "static":
        return
    unknown = [s for s in universe.symbols if s not in listed]
    if unknown:
        raise PreflightError(
            f"universe.symbols: {', '.join(unknown)} "
            f"{'is' if len(unknown) == 1 else 'are'} not listed on {exchange}; "
            "fix the names or remove them"
        )


def check_log_file(path: Path) -> None:
    """The log file can be written, and rotated (its folder is writable)."""
    _check_folder(path.parent, f"log folder {path.parent}")
    _check_file(path, f"log file {path}", writable=True)


def check_settings(settings: Settings, log_file: Path | None = None) -> None:
    """Everything that can be checked before the exchange is built."""
    check_data_dir(settings.data_dir)
    if log_file is not None:
        check_log_file(log_file)
    if settings.admin.enabled:
        check_port_free(settings.admin.host, settings.admin.port)


# --- the disk ---------------------------------------------------------------------------


def _check_folder(path: Path, what: str) -> None:
    """`path` is a writable folder, or the nearest existing ancestor is one it can be made in."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        parent = _nearest_existing(path)
        if not parent.is_dir():
            raise PreflightError(
                f"{what}: cannot be created, {parent} is a file, not a folder"
            ) from None
        if not _can(parent, os.W_OK | os.X_OK):
            raise PreflightError(
                f"{what}: cannot be created, {parent} is not writable; "
                "make it writable or choose another folder"
            ) from None
        return
    except NotADirectoryError:
        raise PreflightError(
            f"{what}: a file is in the way ({_nearest_existing(path)} is not a folder)"
        ) from None
    except OSError as exc:
        raise PreflightError(f"{what}: cannot be used ({exc.strerror})") from None
    if not stat.S_ISDIR(mode):
        raise PreflightError(f"{what}: is a file, not a folder; choose a folder")
    if not _can(path, os.R_OK | os.W_OK | os.X_OK):
        raise PreflightError(
            f"{what}: is not writable by this user; fix its permissions or choose another folder"
        )


def _check_file(path: Path, what: str, writable: bool) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # made when needed, in a folder checked already
    except OSError as exc:
        raise PreflightError(f"{what}: cannot be used ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise PreflightError(f"{what}: is a folder where a file belongs; move it aside")
    need = os.R_OK | (os.W_OK if writable else 0)
    if not _can(path, need):
        raise PreflightError(
            f"{what}: is not {'writable' if writable else 'readable'} by this user; "
            "fix its permissions (the bot must own its data folder)"
        )


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.absolute().parents):
        if os.path.lexists(candidate):
            return candidate
    return Path("/")


def _can(path: Path, mode: int) -> bool:
    # effective ids: what the process may really do (root may write a 0444 file, and does)
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)
