from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_settings_are_the_defaults() -> None:
    assert load_settings(ROOT / "settings.yaml") == Settings()


def test_defaults_match_the_promised_values() -> None:
    s = Settings()
    assert (s.coverage.interval_s, s.universe.refresh_s, s.heartbeat_s, s.health_s) == (
        300,
        3600,
        600,
        300,
    )
    assert (s.timeframe, s.exchange.kind, s.exchange.market) == ("1m", "paper", "synthetic")
    assert s.training.workers == 1


def test_wrong_type_names_file_field_and_problem(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("coverage:\n  interval_s: often\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value) == f"{path}: Expected int, got str - at $.coverage.interval_s"


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("trading:\n  stake: 5\n")
    with pytest.raises(
        SettingsError, match=r"unknown field stake - at \$.trading|Object contains unknown field"
    ):
        load_settings(path)


def test_out_of_range_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("coverage:\n  interval_s: 0\n")
    with pytest.raises(SettingsError, match=r"Expected int >= 1 - at \$.coverage.interval_s"):
        load_settings(path)


def start_bot(settings: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "supervisor.py", "--settings", str(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_settings_exit_2_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("heartbeat_s: soon\n")
    proc = start_bot(path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith(f"{path}: Expected") and "$.heartbeat_s" in lines[0]
    )


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read settings file"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("entry", "exit_"), [(0.5, 0.5), (0.4, 0.6), (0.0, 0.0)])
def test_entry_threshold_must_be_above_exit_threshold(
    tmp_path: Path, entry: float, exit_: float
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(f"trading:\n  entry_threshold: {entry}\n  exit_threshold: {exit_}\n")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    message = str(err.value)
    assert f"trading.entry_threshold {entry:g} must be above trading.exit_threshold" in message
    assert message.endswith("- at $.trading") and "\n" not in message


def test_promotion_and_strategy_settings(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(
        "promotion: {min_net_return_pct: 0.5, min_auc: 0.52}\n"
        "training: {strategy: 'examples.logistic:strategy'}\n"
    )
    s = load_settings(path)
    assert (s.promotion.min_net_return_pct, s.promotion.min_auc) == (0.5, 0.52)
    assert s.promotion.retry_after_days == Settings().promotion.retry_after_days
    assert s.training.strategy == "examples.logistic:strategy"
    path.write_text("training: {strategy: 'examples/logistic.py'}\n")
    with pytest.raises(SettingsError, match=r"\$\.training\.strategy"):
        load_settings(path)


def test_a_broken_strategy_stops_the_bot_at_start_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(
        f"data_dir: {tmp_path}/var\ntraining: {{strategy: 'no_such_module:strategy'}}\n"
        "admin: {port: 0}\n"  # a bot beside the suite holds 8765, checked before the plug-in
    )
    proc = start_bot(path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "training.strategy: strategy no_such_module:strategy" in lines[0]
    assert "cannot import no_such_module" in lines[0]
