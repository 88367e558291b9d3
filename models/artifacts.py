"""The model artifact format: staging, publishing and loading model versions.

A published version is one folder ``models_dir/vNNNNNN/`` holding the model
(``model.joblib``) and ``manifest.json``. Training writes into a staging folder
under ``models_dir/.staging/``; the model store (the single writer) publishes it
by renaming the whole folder to the next version number, so a version folder
either does not exist or is complete. Loading checks the model file's sha256
against the manifest before unpickling it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

import joblib
import msgspec
import numpy as np
import pandas as pd
import sklearn
from threadpoolctl import ThreadpoolController

from core.durable import fsync_dir, fsync_file, write_atomically, write_synced
from models.evaluation import Gate, TradingReport
from models.forest import class_index, forest_of
from models.strategy import DEFAULT_STRATEGY, Strategy, StrategyError, load_strategy

FORMAT = 1
MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
STAGING = ".staging"
_VERSION_RE = re.compile(r"^v(\d{6})$")
_MAX_VERSION = 999_999

ParamValue = bool | int | float | str


class ArtifactError(Exception):
    """A model folder cannot be written, published or loaded; names the path."""


class Manifest(msgspec.Struct, frozen=True):
    format: int
    version: str  # "vNNNNNN"; "" while staged
    symbols: list[str]
    timeframe: str
    feature_names: list[str]
    window_start_ms: int
    window_end_ms: int
    trained_at_ms: int
    rows: int
    metrics: dict[str, float]
    params: dict[str, ParamValue]
    model_file: str
    sha256: str
    library_versions: dict[str, str]
    # The features and estimator (models/strategy.py) the model was trained with, and so
    # must be traded with.
    strategy: str = DEFAULT_STRATEGY
    # Walk-forward trading of the out-of-sample blocks, and the promotion gate's verdict;
    # None in manifests written before the gate existed.
    trading: TradingReport | None = None
    gate: Gate | None = None


class LoadedModel(msgspec.Struct, frozen=True):
    manifest: Manifest
    estimator: Any

    @property
    def symbol(self) -> str:
        return self.manifest.symbols[0]

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def strategy(self) -> Strategy:
        """The strategy its features come from (loaded and checked once per process)."""
        return load_strategy(self.manifest.strategy)

    def prob_up(self, features: np.ndarray) -> float:
        """Probability of class 1 (price up) for one row from ``strategy.latest_features``."""
        x = np.asarray(features, dtype=np.float64).reshape(1, -1)
        if x.shape[1] != len(self.manifest.feature_names):
            raise ValueError(
                f"expected {len(self.manifest.feature_names)} features, got {x.shape[1]}"
            )
        if not np.isfinite(x).all():
            x = np.where(np.isfinite(x), x, np.nan)  # the model treats NaN as missing
        _single_openmp_thread()
        forest = forest_of(self.estimator, f"{self.symbol} {self.version}")
        if forest is not None:  # predict_proba's number, 3-8x sooner (forest.py)
            return forest.prob(x[0])
        proba = self.estimator.predict_proba(x)
        return float(proba[0, class_index(self.estimator)])


_openmp_capped = threading.local()
_openmp_controller: list[ThreadpoolController] = []


def _single_openmp_thread() -> None:
    """Cap OpenMP at one thread for the calling thread (once per thread).

    A one-row prediction gains nothing from threads, and with the cores busy
    (training worker, other actors) a multi-threaded OpenMP region waits on
    descheduled threads: measured p99 1.2-2.4 s per call instead of ~1.5 ms.
    OpenMP limits are per thread, so other threads of the process are unaffected.
    """
    if getattr(_openmp_capped, "done", False):
        return
    if not _openmp_controller:
        # Created after a model was unpickled, so the OpenMP runtime is loaded.
        _openmp_controller.append(ThreadpoolController())
    _openmp_controller[0].limit(limits=1, user_api="openmp")
    _openmp_capped.done = True


# ---------------------------------------------------------------- file helpers


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def _write_manifest_atomically(folder: Path, manifest: Manifest) -> None:
    write_atomically(folder / MANIFEST_FILE, _encode_manifest(manifest))


def _library_versions() -> dict[str, str]:
    return {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "joblib": joblib.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
    }


def read_manifest(folder: str | Path) -> Manifest:
    """Decode and sanity-check ``folder/manifest.json``; raises ArtifactError."""
    path = Path(folder) / MANIFEST_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{folder}: {MANIFEST_FILE} missing") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read manifest: {e}") from e
    try:
        manifest = msgspec.json.decode(data, type=Manifest)
    except msgspec.DecodeError as e:
        raise ArtifactError(f"{path}: invalid manifest: {e}") from e
    if manifest.format != FORMAT:
        raise ArtifactError(
            f"{path}: unsupported manifest format {manifest.format} (expected {FORMAT})"
        )
    name = manifest.model_file
    if not name or name in (".", "..") or Path(name).name != name:
        raise ArtifactError(f"{path}: model_file {name!r} is not a plain file name")
    if not manifest.symbols:
        raise ArtifactError(f"{path}: manifest lists no symbols")
    try:
        strategy = load_strategy(manifest.strategy)
    except StrategyError as e:
        raise ArtifactError(f"{path}: {e}") from e
    if manifest.feature_names != list(strategy.feature_names):
        raise ArtifactError(
            f"{path}: feature list does not match this code: manifest has "
            f"{manifest.feature_names}, strategy {manifest.strategy} has "
            f"{list(strategy.feature_names)}"
        )
    return manifest


def _read_verified_model(folder: Path, manifest: Manifest) -> bytes:
    """The model file's bytes, after checking them against the manifest's sha256."""
    path = folder / manifest.model_file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: model file missing") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read model file: {e}") from e
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.sha256:
        raise ArtifactError(
            f"{path}: checksum mismatch: expected {manifest.sha256[:12]}, actual {actual[:12]}"
        )
    return data


# ---------------------------------------------------------------- writing


def new_staging_dir(models_dir: str | Path) -> Path:
    """A fresh, empty, uniquely named folder under ``models_dir/.staging/``."""
    root = Path(models_dir) / STAGING
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="job-", dir=root))


def discard_staging(staging_dir: str | Path) -> None:
    """Remove a staging folder (after a failed job or a refused publish); no error if gone."""
    shutil.rmtree(staging_dir, ignore_errors=True)


def discard_all_staging(models_dir: str | Path) -> int:
    """Remove every staging folder, left by jobs of a process that was killed; returns how many.

    Call only when no training job can be running (at the start of the bot).
    """
    root = Path(models_dir) / STAGING
    try:
        leftovers = [e.path for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


def write_staging(
    staging_dir: str | Path,
    estimator: Any,
    symbol: str,
    timeframe: str,
    window_start_ms: int,
    window_end_ms: int,
    trained_at_ms: int,
    rows: int,
    metrics: dict[str, float],
    params: dict[str, Any],
    strategy: str = DEFAULT_STRATEGY,
    feature_names: Collection[str] | None = None,
    trading: TradingReport | None = None,
    gate: Gate | None = None,
) -> Manifest:
    """Write ``model.joblib`` and ``manifest.json`` (version "") into ``staging_dir``.

    ``feature_names`` default to those of ``strategy``.

    Both files are fsynced. Raises ArtifactError if the folder cannot be written
    or a metric is not a finite number (JSON has no NaN).
    """
    folder = Path(staging_dir)
    if feature_names is None:
        feature_names = load_strategy(strategy).feature_names
    for key, value in metrics.items():
        if not np.isfinite(value):
            raise ArtifactError(f"{folder}: metric {key!r} is {value}, not a finite number")
    for key, value in params.items():
        if isinstance(value, float) and not np.isfinite(value):
            raise ArtifactError(f"{folder}: param {key!r} is {value}, not a finite number")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        model_path = folder / MODEL_FILE
        with open(model_path, "wb") as f:
            joblib.dump(estimator, f)
            f.flush()
            os.fsync(f.fileno())
        manifest = Manifest(
            format=FORMAT,
            version="",
            symbols=[symbol],
            timeframe=timeframe,
            feature_names=list(feature_names),
            window_start_ms=int(window_start_ms),
            window_end_ms=int(window_end_ms),
            trained_at_ms=int(trained_at_ms),
            rows=int(rows),
            metrics={k: float(v) for k, v in metrics.items()},
            params={k: _param_value(v) for k, v in params.items()},
            model_file=MODEL_FILE,
            sha256=_sha256_file(model_path),
            library_versions=_library_versions(),
            strategy=strategy,
            trading=trading,
            gate=gate,
        )
        write_synced(folder / MANIFEST_FILE, _encode_manifest(manifest))
        fsync_dir(folder)
    except OSError as e:
        raise ArtifactError(f"{folder}: cannot write staging files: {e}") from e
    return manifest


def _param_value(value: Any) -> ParamValue:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def staged_files(staging_dir: str | Path) -> dict[str, bytes]:
    """The staged model file and manifest as bytes, to carry them to another machine.

    Used where the fit ran (a Dask worker, which does not share the bot's disk);
    `write_staged_files` lays them out again where the store publishes them.
    """
    folder = Path(staging_dir)
    manifest = read_manifest(folder)
    names = (manifest.model_file, MANIFEST_FILE)
    try:
        return {name: (folder / name).read_bytes() for name in names}
    except OSError as e:
        raise ArtifactError(f"{folder}: cannot read staged files: {e}") from e


def write_staged_files(staging_dir: str | Path, files: dict[str, bytes]) -> None:
    """Write files from `staged_files` into an (empty) staging folder, fsynced.

    Only plain file names are accepted. The checksum is not checked here: `publish`
    checks it, as for a fit that staged its files on this machine.
    """
    folder = Path(staging_dir)
    if MANIFEST_FILE not in files:
        raise ArtifactError(f"{folder}: received files lack {MANIFEST_FILE}: {sorted(files)}")
    for name in files:
        if not name or name in (".", "..") or Path(name).name != name:
            raise ArtifactError(f"{folder}: received file name {name!r} is not a plain file name")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            write_synced(folder / name, data)
        fsync_dir(folder)
    except OSError as e:
        raise ArtifactError(f"{folder}: cannot write received files: {e}") from e


def publish(models_dir: str | Path, staging_dir: str | Path) -> Manifest:
    """Publish a staging folder as the next version ``models_dir/vNNNNNN``.

    Single writer only (the model store). Verifies the staged model's checksum,
    stamps the version into the manifest, then renames the folder in one step,
    so no partial version folder can appear. Raises ArtifactError; on failure
    the staging folder is left in place.
    """
    root = Path(models_dir)
    staging = Path(staging_dir)
    if not staging.is_dir():
        raise ArtifactError(f"{staging}: staging folder missing")
    manifest = read_manifest(staging)
    _read_verified_model(staging, manifest)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(f"{root}: cannot create models folder: {e}") from e
    versions = list_versions(root)
    number = int(versions[-1].name[1:]) + 1 if versions else 1
    if number > _MAX_VERSION:
        raise ArtifactError(f"{root}: version numbers exhausted (v{_MAX_VERSION:06d})")
    name = f"v{number:06d}"
    target = root / name
    published = msgspec.structs.replace(manifest, version=name)
    try:
        _write_manifest_atomically(staging, published)
        fsync_file(staging / published.model_file)
        # A rename onto an existing non-empty folder fails, so a concurrent
        # writer cannot be overwritten; EXDEV means staging is on another disk.
        os.rename(staging, target)
        fsync_dir(root)
        with contextlib.suppress(OSError):
            fsync_dir(staging.parent)
    except OSError as e:
        raise ArtifactError(f"{staging}: cannot publish as {target}: {e}") from e
    return published


# ---------------------------------------------------------------- reading


def list_versions(models_dir: str | Path) -> list[Path]:
    """Version folders ``vNNNNNN`` under ``models_dir``, oldest (lowest number) first."""
    root = Path(models_dir)
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return []
    found = [
        (int(m.group(1)), Path(e.path))
        for e in entries
        if (m := _VERSION_RE.match(e.name)) and e.is_dir(follow_symlinks=False)
    ]
    return [path for _, path in sorted(found)]


def load_version(version_dir: str | Path) -> LoadedModel:
    """Load one version folder, checking its sha256 before unpickling. Raises ArtifactError."""
    folder = Path(version_dir)
    manifest = read_manifest(folder)
    if _VERSION_RE.match(folder.name) and manifest.version != folder.name:
        raise ArtifactError(
            f"{folder / MANIFEST_FILE}: manifest says version {manifest.version!r}, "
            f"folder is {folder.name}"
        )
    data = _read_verified_model(folder, manifest)
    model_path = folder / manifest.model_file
    try:
        estimator = joblib.load(io.BytesIO(data))
    except Exception as e:
        raise ArtifactError(f"{model_path}: cannot unpickle model: {type(e).__name__}: {e}") from e
    if not callable(getattr(estimator, "predict_proba", None)):
        raise ArtifactError(f"{model_path}: {type(estimator).__name__} has no predict_proba")
    try:
        class_index(estimator)
    except (AttributeError, ValueError, TypeError) as e:
        raise ArtifactError(f"{model_path}: unusable classifier: {e}") from e
    wanted = len(manifest.feature_names)
    n_in = getattr(estimator, "n_features_in_", wanted)
    if n_in != wanted:
        raise ArtifactError(f"{model_path}: model takes {n_in} features, manifest has {wanted}")
    _single_openmp_thread()
    # compiled here (the store's thread), not at the trader's next candle
    forest_of(estimator, f"{manifest.symbols[0]} {manifest.version}")
    return LoadedModel(manifest=manifest, estimator=estimator)


def load_latest(
    models_dir: str | Path, skip: Collection[str] = ()
) -> tuple[dict[str, LoadedModel], list[ArtifactError]]:
    """For every symbol, the newest version that loads cleanly.

    Versions are read newest first; a broken one is reported in the error list
    and the symbol falls back to its next older good version. Versions named in
    ``skip`` (already known bad) are neither loaded nor reported. A model file is
    only unpickled when its version is the newest candidate for a symbol.
    """
    models: dict[str, LoadedModel] = {}
    errors: list[ArtifactError] = []
    for folder in reversed(list_versions(models_dir)):
        if folder.name in skip:
            continue
        try:
            manifest = read_manifest(folder)
        except ArtifactError as e:
            errors.append(e)
            continue
        if all(symbol in models for symbol in manifest.symbols):
            continue  # every symbol already has a newer good model
        try:
            loaded = load_version(folder)
        except ArtifactError as e:
            errors.append(e)
            continue
        for symbol in loaded.manifest.symbols:
            models.setdefault(symbol, loaded)
    return models, errors
