"""Start-up failures: one line, a non-zero exit, and nothing left on disk.

Through `supervisor.main` in this process (each fails before any actor or thread of
the bot starts), and once as a real subprocess to see the whole output.
Permission cases run as `nobody` when the tests run as root (root may write a
read-only file, so the check would rightly pass).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import supervisor
from app import preflight
from app.preflight import PreflightError
from config.settings import (
    Settings,
    SettingsError,
    UniverseSettings,
    load_settings,
    rule_problems,
)

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534


@contextlib.contextmanager
def unprivileged() -> Iterator[None]:
    """Run the block as `nobody` if the tests run as root (effective ids only, restored)."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(NOBODY)
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder `nobody` can enter (pytest's tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="tradeactors-preflight-"))
    path.chmod(0o755)
    yield path
    for sub in path.rglob("*"):  # give write back, so the folder can be removed
        if sub.is_dir():
            sub.chmod(0o755)
    shutil.rmtree(path)


def write_settings(folder: Path, body: str) -> Path:
    path = folder / "settings.yaml"
    path.write_text(body)
    path.chmod(0o644)
    return path


def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str]]:
    code = supervisor.main(list(argv))
    return code, capsys.readouterr().err.strip().splitlines()


def refused(capsys: pytest.CaptureFixture[str], work: Path, data_dir: Path) -> list[str]:
    """Start a bot on `data_dir` as a user other than root; it must exit 2: its stderr."""
    settings = write_settings(work, f"data_dir: {data_dir}\nadmin: {{port: 0}}\n")
    with unprivileged():
        code, lines = main(capsys, "--settings", str(settings))
    assert code == 2
    return lines


# --- the data folder ---------------------------------------------------------------------


def test_data_dir_that_is_a_file_is_one_line_and_exit_2_in_a_real_process(work: Path) -> None:
    (work / "var").write_text("not a folder")
    settings = write_settings(work, f"data_dir: {work / 'var'}\nadmin: {{port: 0}}\n")
    before = tree(work)
    proc = subprocess.run(
        [sys.executable, "supervisor.py", "--settings", str(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"data_dir {work / 'var'}: is a file, not a folder; choose a folder"
    ]
    assert tree(work) == before


def test_data_dir_under_a_file(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "afile").write_text("x")
    data, afile = work / "afile" / "var", work / "afile"
    lines = refused(capsys, work, data)
    assert lines == [f"data_dir {data}: a file is in the way ({afile} is not a folder)"]


def test_data_dir_in_a_read_only_folder(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = work / "ro"
    parent.mkdir(mode=0o555)
    parent.chmod(0o555)
    assert refused(capsys, work, parent / "a" / "var") == [
        f"data_dir {parent / 'a' / 'var'}: cannot be created, {parent} is not writable; "
        "make it writable or choose another folder"
    ]
    assert tree(parent) == []


def test_read_only_data_dir(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = work / "var"
    data.mkdir()
    data.chmod(0o555)
    assert refused(capsys, work, data) == [
        f"data_dir {data}: is not writable by this user; "
        "fix its permissions or choose another folder"
    ]
    assert tree(data) == []


def test_lock_file_not_writable(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = work / "var"
    data.mkdir()
    data.chmod(0o777)  # the folder is fine: only the lock file left by another user is not
    lock = data / "tradeactors.db.lock"
    lock.write_text("123")
    lock.chmod(0o444)
    assert refused(capsys, work, data) == [
        f"data_dir {data}: tradeactors.db.lock: is not writable by this user; "
        "fix its permissions (the bot must own its data folder)"
    ]
    assert tree(data) == ["tradeactors.db.lock"]


def test_a_folder_where_the_database_belongs(work: Path) -> None:
    (work / "tradeactors.db").mkdir()
    with pytest.raises(PreflightError, match=r"tradeactors.db: is a folder where a file belongs"):
        preflight.check_data_dir(work)


def test_a_usable_data_dir_passes_and_a_missing_one_is_left_to_be_made(work: Path) -> None:
    preflight.check_data_dir(work)
    preflight.check_data_dir(work / "new" / "var")
    assert tree(work) == []


# --- simulate --out ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        ("afile", "{out}: is a file, not a folder; choose a folder"),
        ("afile/report", "{out}: a file is in the way ({work}/afile is not a folder)"),
    ],
)
def test_simulate_out_unusable(
    work: Path, capsys: pytest.CaptureFixture[str], out: str, expected: str
) -> None:
    (work / "afile").write_text("x")
    settings = write_settings(work, "")
    code, lines = main(capsys, "simulate", "--settings", str(settings), "--out", str(work / out))
    assert code == 2
    message = expected.format(out=work / out, work=work)
    assert lines == [f"simulate: --out {message}"]
    assert tree(work) == ["afile", "settings.yaml"]


def test_simulate_out_with_a_read_only_report(work: Path) -> None:
    work.chmod(0o777)  # the folder is writable: only the report in it is not
    (work / "report.html").write_text("old")
    (work / "report.html").chmod(0o444)
    with unprivileged(), pytest.raises(PreflightError, match=r"report\.html: is not writable"):
        preflight.check_output_dir(work, ("summary.json", "report.html"))


# --- the admin port ---------------------------------------------------------------------------


def test_admin_port_in_use_is_one_line_before_anything_starts(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = write_settings(work, f"data_dir: {work / 'var'}\nadmin: {{port: {port}}}\n")
        code, lines = main(capsys, "--settings", str(settings))
    assert code == 2
    assert lines == [
        f"admin port 127.0.0.1:{port} cannot be used (Address already in use: another program "
        "(or another tradeactors) listens there); change admin.port, or set admin.enabled: false"
    ]
    assert tree(work) == ["settings.yaml"]  # no data folder, database, lock or staging


def test_admin_port_free_passes_and_disabled_admin_is_not_checked(work: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        disabled = msgspec.convert(
            {"data_dir": str(work), "admin": {"enabled": False, "port": port}}, type=Settings
        )
        preflight.check_settings(disabled)
    preflight.check_port_free("127.0.0.1", port)  # released: free again


def test_admin_host_not_on_this_machine() -> None:
    with pytest.raises(PreflightError, match=r"admin port 192\.0\.2\.1:8765 cannot be used .*"):
        preflight.check_port_free("192.0.2.1", 8765)  # TEST-NET-1: never a local address


# --- the universe -----------------------------------------------------------------------------


def test_static_universe_with_unknown_symbols_names_them_and_leaves_nothing(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = write_settings(
        work,
        f"data_dir: {work / 'var'}\nadmin: {{port: 0}}\n"
        "universe: {mode: static, symbols: [btc/usdt, FOO/USDT, eth/usdt, BAR/USDT]}\n",
    )
    code, lines = main(capsys, "--settings", str(settings))
    assert code == 2
    assert lines == [
        "universe.symbols: FOO/USDT, BAR/USDT are not listed on paper; fix the names or remove them"
    ]
    assert tree(work) == ["settings.yaml"]


def test_static_universe_symbols_are_upper_cased_and_deduplicated(work: Path) -> None:
    path = write_settings(
        work, "universe: {mode: static, symbols: [btc/usdt, ' Eth/Usdt', BTC/USDT]}\n"
    )
    assert load_settings(path).universe.symbols == ("BTC/USDT", "ETH/USDT")


def test_static_universe_must_not_be_empty(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = write_settings(
        work, f"data_dir: {work / 'var'}\nuniverse: {{mode: static, symbols: []}}\n"
    )
    code, lines = main(capsys, "--settings", str(settings))
    assert code == 2
    assert lines == [
        f"{settings}: universe.mode static needs universe.symbols, e.g. [BTC/USDT, ETH/USDT]; "
        "it is empty (use mode auto for the top_n by volume) - at $.universe"
    ]
    assert tree(work) == ["settings.yaml"]


def test_a_symbol_that_is_not_a_pair_is_refused(work: Path) -> None:
    path = write_settings(work, "universe: {symbols: [BTCUSDT]}\n")
    with pytest.raises(SettingsError, match=r"BTCUSDT is not BASE/QUOTE"):
        load_settings(path)


def test_check_universe_passes_known_symbols_and_ignores_auto_mode() -> None:
    static = UniverseSettings(mode="static", symbols=("btc/usdt",))
    preflight.check_universe(static, {"BTC/USDT"}, "paper")
    preflight.check_universe(UniverseSettings(mode="auto"), set(), "paper")
    with pytest.raises(PreflightError, match="BTC/USDT is not listed on paper"):
        preflight.check_universe(static, {"ETH/USDT"}, "paper")


# --- rules across fields ----------------------------------------------------------------------


def test_entry_threshold_below_exit_is_refused_at_start(
    work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = write_settings(
        work,
        f"data_dir: {work / 'var'}\ntrading: {{entry_threshold: 0.4, exit_threshold: 0.45}}\n",
    )
    code, lines = main(capsys, "--settings", str(settings))
    assert code == 2
    assert lines == [
        f"{settings}: trading.entry_threshold 0.4 must be above trading.exit_threshold 0.45 "
        "(hysteresis: a signal between them neither enters nor exits) - at $.trading"
    ]
    assert tree(work) == ["settings.yaml"]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"training": {"retry_base_s": 600, "retry_max_s": 300}}, "retry_max_s (300 s) must be"),
        (
            {"universe": {"mode": "static", "symbols": ["BTC/EUR"]}},
            "BTC/EUR not quoted in exchange.quote USDT",
        ),
        ({"timeframe": "1m", "trading": {"candle_delay_s": 60}}, "shorter than one 1m candle"),
        ({"coverage": {"interval_s": 300, "max_model_age_s": 60}}, "max_model_age_s (60 s)"),
        (
            {"exchange": {"starting_balance": 50}, "trading": {"stake_quote": 100}},
            "stake_quote (100 USDT) is more than exchange.starting_balance (50 USDT)",
        ),
    ],
)
def test_rules_across_fields(raw: dict[str, object], problem: str) -> None:
    problems = rule_problems(msgspec.convert(raw, type=Settings))
    assert len(problems) == 1 and problem in problems[0]


def test_the_defaults_break_no_rule() -> None:
    assert rule_problems(Settings()) == []
    assert rule_problems(load_settings(ROOT / "settings.yaml")) == []


def test_log_file_in_a_folder_under_a_file(work: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (work / "afile").write_text("x")
    settings = write_settings(work, f"data_dir: {work / 'var'}\nadmin: {{port: 0}}\n")
    log_file = work / "afile" / "bot.log"
    code, lines = main(capsys, "--settings", str(settings), "--log-file", str(log_file))
    assert code == 2
    assert lines == [f"log folder {work / 'afile'}: is a file, not a folder; choose a folder"]
    assert tree(work) == ["afile", "settings.yaml"]


def test_version_is_the_projects() -> None:
    import tomllib

    from core.version import VERSION

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == VERSION
