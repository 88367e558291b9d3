"""The log file: the console's lines, its own level, rotated by size; and where it goes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from app.logs import add_log_file, configure_logging
from app.run import log_file_path
from config.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_file_gets_the_console_lines_at_its_own_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    path = tmp_path / "logs" / "bot.log"
    add_log_file(path, "DEBUG", max_bytes=1 << 20, backups=1)
    log = logging.getLogger("tradeactors.test")
    log.debug("BTC/USDT: detail only in the file")
    log.info("BTC/USDT: in both")
    console = capsys.readouterr().err.splitlines()
    in_file = path.read_text().splitlines()
    assert len(console) == 1 and console[0].endswith("BTC/USDT: in both")
    assert len(in_file) == 2 and in_file[1] == console[0]
    assert in_file[0].endswith("BTC/USDT: detail only in the file")


@pytest.mark.usefixtures("restore_logging")
def test_file_rotates_by_size_and_keeps_the_given_backups(tmp_path: Path) -> None:
    configure_logging("WARNING")
    path = tmp_path / "bot.log"
    add_log_file(path, "INFO", max_bytes=2048, backups=2)
    log = logging.getLogger("tradeactors.test")
    for i in range(200):
        log.info("line %03d %s", i, "x" * 40)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["bot.log", "bot.log.1", "bot.log.2"]
    assert all(p.stat().st_size <= 2048 for p in tmp_path.iterdir())
    assert path.read_text().splitlines()[-1].endswith(f"line 199 {'x' * 40}")


def test_log_file_path_from_settings_or_the_command_line(tmp_path: Path) -> None:
    settings = msgspec.convert({"data_dir": str(tmp_path)}, type=Settings)
    assert log_file_path(settings) == tmp_path / "logs" / "tradeactors.log"
    assert log_file_path(settings, "elsewhere.log") == Path("elsewhere.log")
    assert log_file_path(settings, "") is None
    none = msgspec.convert({"data_dir": str(tmp_path), "logging": {"file": ""}}, type=Settings)
    assert log_file_path(none) is None
