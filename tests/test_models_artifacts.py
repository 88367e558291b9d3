from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import msgspec
import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from models import artifacts
from models.artifacts import ArtifactError, LoadedModel, Manifest
from models.features import FEATURE_NAMES, batch_features, latest_features, make_labels
from models.synthetic import random_walk_candles

N_FEATURES = len(FEATURE_NAMES)


@pytest.fixture(autouse=True, scope="module")
def _one_openmp_thread():
    # As in production: with every core busy, multi-threaded OpenMP fits crawl.
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    candles = random_walk_candles(3000, seed=5, momentum=0.3)
    X = batch_features(candles).to_numpy()
    y = make_labels(candles, 2, 0.0).to_numpy()
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    return candles, X[ok], y[ok].astype(int)


@pytest.fixture(scope="module")
def estimator(data) -> HistGradientBoostingClassifier:
    _, X, y = data
    return HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)


def stage(models_dir: Path, estimator, symbol: str = "BTC/USDT", **overrides) -> Path:
    staging = artifacts.new_staging_dir(models_dir)
    kwargs = dict(
        symbol=symbol,
        timeframe="1m",
        window_start_ms=1_000,
        window_end_ms=2_000,
        trained_at_ms=3_000,
        rows=2_900,
        metrics={"auc": 0.55, "accuracy": 0.52},
        params={"horizon_bars": 15, "label_threshold": 0.0005, "name": "hgb"},
    )
    kwargs.update(overrides)
    artifacts.write_staging(staging, estimator, **kwargs)
    return staging


def publish_one(models_dir: Path, estimator, symbol: str = "BTC/USDT") -> Manifest:
    return artifacts.publish(models_dir, stage(models_dir, estimator, symbol))


def flip_byte(path: Path, offset: int = -20) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_new_staging_dirs_are_unique(tmp_path: Path) -> None:
    a = artifacts.new_staging_dir(tmp_path)
    b = artifacts.new_staging_dir(tmp_path)
    assert a != b
    assert a.parent == b.parent == tmp_path / ".staging"
    assert a.is_dir() and not any(a.iterdir())


def test_write_staging_manifest(tmp_path: Path, estimator) -> None:
    staging = stage(tmp_path, estimator)
    assert sorted(p.name for p in staging.iterdir()) == ["manifest.json", "model.joblib"]
    m = msgspec.json.decode((staging / "manifest.json").read_bytes(), type=Manifest)
    assert m.format == 1
    assert m.version == ""
    assert m.symbols == ["BTC/USDT"]
    assert m.feature_names == list(FEATURE_NAMES)
    assert m.model_file == "model.joblib"
    assert m.params == {"horizon_bars": 15, "label_threshold": 0.0005, "name": "hgb"}
    assert len(m.sha256) == 64
    assert {"sklearn", "numpy", "pandas"} <= set(m.library_versions)


def test_write_staging_rejects_nan_metric(tmp_path: Path, estimator) -> None:
    with pytest.raises(ArtifactError, match="metric 'auc' is nan"):
        stage(tmp_path, estimator, metrics={"auc": float("nan")})
    # JSON has no infinity either: it would come back as null and the manifest not load
    with pytest.raises(ArtifactError, match="param 'min_net_return_pct' is -inf"):
        stage(tmp_path, estimator, params={"min_net_return_pct": float("-inf")})


def test_publish_and_load_round_trip(tmp_path: Path, estimator, data) -> None:
    candles, X, _ = data
    staging = stage(tmp_path, estimator)
    manifest = artifacts.publish(tmp_path, staging)

    assert manifest.version == "v000001"
    assert not staging.exists()
    assert [p.name for p in artifacts.list_versions(tmp_path)] == ["v000001"]
    on_disk = json.loads((tmp_path / "v000001" / "manifest.json").read_text())
    assert on_disk["version"] == "v000001"

    loaded = artifacts.load_version(tmp_path / "v000001")
    assert isinstance(loaded, LoadedModel)
    assert loaded.version == "v000001"
    assert loaded.symbol == "BTC/USDT"
    assert loaded.manifest == manifest
    features = latest_features(candles)
    expected = estimator.predict_proba(features.reshape(1, -1))[0, 1]
    assert loaded.prob_up(features) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), estimator.predict_proba(X))


def test_prob_up_checks_length_and_tolerates_inf(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator)
    loaded = artifacts.load_version(tmp_path / "v000001")
    with pytest.raises(ValueError, match=f"expected {N_FEATURES} features, got 3"):
        loaded.prob_up(np.zeros(3))
    p = loaded.prob_up(np.full(N_FEATURES, np.inf))
    assert 0.0 <= p <= 1.0


def test_version_numbers_increment(tmp_path: Path, estimator) -> None:
    names = [publish_one(tmp_path, estimator).version for _ in range(3)]
    assert names == ["v000001", "v000002", "v000003"]
    # Numbering follows the highest existing version, not the count.
    (tmp_path / "v000041").mkdir()
    assert publish_one(tmp_path, estimator).version == "v000042"
    (tmp_path / "v000041").rmdir()
    # Unrelated entries are ignored.
    (tmp_path / "v12").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "v9999999").mkdir()
    assert [p.name for p in artifacts.list_versions(tmp_path)] == [
        "v000001",
        "v000002",
        "v000003",
        "v000042",
    ]
    assert not any(p.name == ".staging" for p in artifacts.list_versions(tmp_path))


def test_list_versions_missing_dir(tmp_path: Path) -> None:
    assert artifacts.list_versions(tmp_path / "nope") == []
    assert artifacts.load_latest(tmp_path / "nope") == ({}, [])


def test_corrupted_model_refused_before_unpickling(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator)
    model = tmp_path / "v000001" / "model.joblib"
    flip_byte(model)
    with pytest.raises(ArtifactError, match=r"checksum mismatch: expected [0-9a-f]{12}, actual"):
        artifacts.load_version(tmp_path / "v000001")
    with pytest.raises(ArtifactError) as info:
        artifacts.load_version(tmp_path / "v000001")
    assert str(model) in str(info.value)


def test_publish_refuses_corrupted_staging(tmp_path: Path, estimator) -> None:
    staging = stage(tmp_path, estimator)
    flip_byte(staging / "model.joblib", offset=10)
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        artifacts.publish(tmp_path, staging)
    assert artifacts.list_versions(tmp_path) == []
    assert staging.is_dir()  # left for inspection; discard_staging removes it
    artifacts.discard_staging(staging)
    assert not staging.exists()


def test_missing_manifest_refused(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator)
    (tmp_path / "v000001" / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"v000001: manifest\.json missing"):
        artifacts.load_version(tmp_path / "v000001")
    with pytest.raises(ArtifactError, match=r"manifest\.json missing"):
        artifacts.publish(tmp_path, tmp_path / "v000001")


def test_missing_model_file_refused(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator)
    (tmp_path / "v000001" / "model.joblib").unlink()
    with pytest.raises(ArtifactError, match=r"model\.joblib: model file missing"):
        artifacts.load_version(tmp_path / "v000001")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda raw: b"{not json", "invalid manifest: JSON is malformed"),
        (
            lambda raw: json.dumps({k: v for k, v in json.loads(raw).items() if k != "sha256"}),
            "invalid manifest: Object missing required field `sha256`",
        ),
        (lambda raw: raw.replace(b'"rows": 2900', b'"rows": "many"'), r"`\$.rows`"),
        (lambda raw: raw.replace(b'"format": 1', b'"format": 2'), "unsupported manifest format 2"),
        (lambda raw: raw.replace(b'"ret_1"', b'"ret_one"'), "feature list does not match"),
        (
            lambda raw: raw.replace(b'"models.strategy:', b'"gone.strategy:'),
            "strategy gone.strategy:hist_gradient_boosting: cannot import gone",
        ),
        (
            lambda raw: raw.replace(b'"model.joblib"', b'"../x.joblib"'),
            "is not a plain file name",
        ),
        (lambda raw: raw.replace(b'"v000001"', b'"v000007"'), "manifest says version 'v000007'"),
    ],
)
def test_invalid_manifest_refused(tmp_path: Path, estimator, edit, message: str) -> None:
    publish_one(tmp_path, estimator)
    path = tmp_path / "v000001" / "manifest.json"
    new = edit(path.read_bytes())
    path.write_bytes(new.encode() if isinstance(new, str) else new)
    with pytest.raises(ArtifactError, match=message) as info:
        artifacts.load_version(tmp_path / "v000001")
    assert str(tmp_path / "v000001") in str(info.value)


def test_unpickle_failure_reported(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator)
    folder = tmp_path / "v000001"
    garbage = b"this is not a pickle"
    (folder / "model.joblib").write_bytes(garbage)
    manifest = artifacts.read_manifest(folder)
    fixed = msgspec.structs.replace(manifest, sha256=hashlib.sha256(garbage).hexdigest())
    (folder / "manifest.json").write_bytes(msgspec.json.encode(fixed))
    with pytest.raises(ArtifactError, match="cannot unpickle model"):
        artifacts.load_version(folder)


def test_load_latest_falls_back_and_reports(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator, "BTC/USDT")  # v1
    publish_one(tmp_path, estimator, "ETH/USDT")  # v2
    publish_one(tmp_path, estimator, "BTC/USDT")  # v3
    publish_one(tmp_path, estimator, "ETH/USDT")  # v4
    models, errors = artifacts.load_latest(tmp_path)
    assert {s: m.version for s, m in models.items()} == {
        "BTC/USDT": "v000003",
        "ETH/USDT": "v000004",
    }
    assert errors == []

    flip_byte(tmp_path / "v000003" / "model.joblib")
    (tmp_path / "v000004" / "manifest.json").unlink()
    models, errors = artifacts.load_latest(tmp_path)
    assert {s: m.version for s, m in models.items()} == {
        "BTC/USDT": "v000001",
        "ETH/USDT": "v000002",
    }
    assert len(errors) == 2
    assert all(isinstance(e, ArtifactError) for e in errors)
    assert "v000004" in str(errors[0]) and "manifest.json missing" in str(errors[0])
    assert "v000003" in str(errors[1]) and "checksum mismatch" in str(errors[1])

    # Known-bad versions are skipped silently.
    models, errors = artifacts.load_latest(tmp_path, skip={"v000003", "v000004"})
    assert {s: m.version for s, m in models.items()} == {
        "BTC/USDT": "v000001",
        "ETH/USDT": "v000002",
    }
    assert errors == []


def test_load_latest_does_not_unpickle_shadowed_versions(tmp_path: Path, estimator) -> None:
    publish_one(tmp_path, estimator, "BTC/USDT")
    publish_one(tmp_path, estimator, "BTC/USDT")
    flip_byte(tmp_path / "v000001" / "model.joblib")  # old and broken, but never needed
    models, errors = artifacts.load_latest(tmp_path)
    assert models["BTC/USDT"].version == "v000002"
    assert errors == []


def test_publish_never_leaves_partial_version(tmp_path: Path, estimator, monkeypatch) -> None:
    staging = stage(tmp_path, estimator)

    def failing_rename(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(ArtifactError, match=r"cannot publish as .*v000001: .*cross-device"):
        artifacts.publish(tmp_path, staging)
    monkeypatch.undo()
    assert artifacts.list_versions(tmp_path) == []
    assert staging.is_dir()
    # The staging folder is still publishable afterwards.
    assert artifacts.publish(tmp_path, staging).version == "v000001"


def test_publish_missing_staging(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="staging folder missing"):
        artifacts.publish(tmp_path, tmp_path / ".staging" / "gone")
