"""The log file: the console's lines, its own level, rotated by size; and where it goes. Long
work: a bar on a terminal, one line at the end in the file (issue 13)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from app.logs import TerminalHandler, add_log_file, configure_logging, progress_bar
from app.run import log_file_path
from config.settings import Settings
from core.progress import Progress, ProgressSteps


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


class Terminal(io.StringIO):
    """What a terminal is to a stream handler: a stream that says it is a tty."""

    def isatty(self) -> bool:
        return True


def _download(log: logging.Logger, task: str, total: int, pages: int) -> ProgressSteps:
    steps = ProgressSteps(log, task, total, what="history download", unit="candles")
    for page in range(1, pages + 1):
        steps(page * total // pages, total)
    return steps


@pytest.mark.usefixtures("restore_logging")
def test_progress_is_a_bar_on_a_terminal_and_one_line_in_the_file(tmp_path: Path) -> None:
    terminal = Terminal()
    configure_logging("INFO", terminal=TerminalHandler(terminal))
    path = tmp_path / "bot.log"
    add_log_file(path, "DEBUG", max_bytes=1 << 20, backups=1)
    log = logging.getLogger("tradeactors.trainer")
    btc = _download(log, "BTC/USDT", 2000, pages=2)
    eth = _download(log, "ETH/USDT", 1000, pages=1)
    log.info("BTC/USDT: history ready: 2,000 candles")
    btc.end()
    eth.end()
    in_file = path.read_text().splitlines()
    assert len(in_file) == 1 and in_file[0].endswith("BTC/USDT: history ready: 2,000 candles")
    screen = terminal.getvalue()
    # every redraw starts at the line's beginning; log lines are never torn by the bar
    assert "history download 50%" not in screen
    assert (
        "\r\x1b[Khistory download [########################] 100%  2 symbols, "
        "3,000 of 3,000 candles" in screen
    )
    # the line erased the bar, took a line of its own, and the bar came back below it
    [line] = [part for part in screen.split("\r\x1b[K") if "history ready" in part]
    assert line.startswith("20") and line.count("\n") == 1
    assert line.endswith(
        "BTC/USDT: history ready: 2,000 candles\nhistory download ["
        + "#" * 24
        + "] 100%  2 symbols, 3,000 of 3,000 candles"
    )


def test_progress_is_dropped_on_a_pipe() -> None:
    pipe = io.StringIO()
    handler = TerminalHandler(pipe)
    log = logging.getLogger("tradeactors.test.pipe")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        _download(log, "BTC/USDT", 1000, pages=4).end()
        log.info("BTC/USDT: history ready")
    finally:
        log.removeHandler(handler)
    assert pipe.getvalue() == "BTC/USDT: history ready\n"


def test_the_bar_sums_its_tasks_and_only_moves_forward() -> None:
    steps = [
        Progress("BTC/USDT", "history download", 500, 1000, "candles"),
        Progress("ETH/USDT", "history download", 1000, 1000, "candles", ended=True),
    ]
    assert progress_bar(steps, width=10) == (
        "history download [########--] 75%  2 symbols, 1,500 of 2,000 candles"
    )
    terminal = Terminal()
    handler = TerminalHandler(terminal)
    log = logging.getLogger("tradeactors.test.bar")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        btc = _download(log, "BTC/USDT", 1000, pages=1)
        eth = ProgressSteps(log, "ETH/USDT", 1000, what="history download", unit="candles")
        eth(100, 1000)
        btc.end()  # BTC stays in the bar, full, until ETH ends too
        assert terminal.getvalue().endswith("1,100 of 2,000 candles")
        eth.end()
        assert handler.tasks == {}
    finally:
        log.removeHandler(handler)
