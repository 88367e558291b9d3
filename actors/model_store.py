"""ModelStoreActor: owns the model artifacts on disk and the loaded models in memory.

Accepts:
- `PublishModel` (trainer): publish the staged artifact as a new version
  (atomically), load it (checksum verified), reply `ModelPublished` or
  `PublishFailed` to `reply_to`, and send `ModelsUpdated` to subscribers.
- `KeepRejected` (trainer): the promotion gate refused the staged model: keep it
  under `models_dir/rejected/` (never as a version, never loaded), record it with
  its reasons, and reply `RejectedKept`. Subscribers hear nothing: the models in
  use did not change.
- `ReloadModels` (admin): reload every version from disk; replies a `CommandResult`
  saying how many models are served and which versions were refused (not ok then).
- `GetModels` (ask): reply `ModelsUpdated` with the current set.
- `Subscribe`: the subscriber gets `ModelsUpdated` now and after every change.

Reloads happen at start, on a publish and on an admin request: never on a timer
(each one is announced as a `ModelsReloaded` event, which the tests count). A
version that fails to load (missing manifest, checksum mismatch, unreadable) is
refused with a log line naming it, and the models in use stay in use.

With `versions` (the database), every promoted version is recorded; at start,
versions found on disk that were never recorded are added, and a recorded
version that no longer loads is named in the log with what is served instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pykka

from actors.base import BaseActor, Runtime, Topic
from actors.clock import Clock, Mailbox
from actors.messages import (
    CommandResult,
    GetModels,
    KeepRejected,
    ModelPublished,
    ModelsReloaded,
    ModelsUpdated,
    PublishFailed,
    PublishModel,
    RejectedKept,
    ReloadModels,
    ReloadTrigger,
    Subscribe,
)
from core.text import plural
from models import artifacts, rejected
from models.artifacts import ArtifactError, LoadedModel
from storage.db import (
    ModelVersionRow,
    ModelVersions,
    RejectedModelRow,
    RejectedModels,
    StorageError,
)


class ModelStoreActor(BaseActor):
    def __init__(
        self,
        *,
        clock: Clock,
        models_dir: Path,
        subscribers: dict[str, Mailbox] | None = None,
        supervisor: Mailbox | None = None,
        events: Topic | None = None,
        runtime: Runtime | None = None,
        versions: ModelVersions | None = None,
        rejections: RejectedModels | None = None,
    ) -> None:
        super().__init__("model_store", clock, supervisor, events, runtime)
        self.versions = versions
        self.rejections = rejections
        self.models_dir = Path(models_dir)
        self.subscribers = Topic(subscribers)
        self.models: dict[str, LoadedModel] = {}
        self.version: str | None = None
        self.refused: set[str] = set()  # versions known bad: not retried on every reload
        self.reloads = 0

    def started(self) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self._reload(ReloadTrigger.STARTUP)
        self._check_recorded()
        # After a restart the subscribers are running and may have lost a reply
        # to the previous incarnation; at first start they are not, and they
        # will Subscribe themselves.
        self.subscribers.publish(self._current(tuple(sorted(self.models))))

    def receive(self, message: Any) -> Any:
        match message:
            case PublishModel():
                self._publish(message)
            case KeepRejected():
                self._keep_rejected(message)
            case ReloadModels(reason=reason):
                self.refused.clear()  # an admin may have repaired a version by hand
                errors: list[ArtifactError] = []
                changed = self._reload(ReloadTrigger.ADMIN, errors)
                self.log.info("Models reloaded (%s): %d symbols", reason, len(self.models))
                self.subscribers.publish(self._current(changed))
                return self._reload_result(errors)
            case GetModels():
                return self._current(())
            case Subscribe(name=name, subscriber=subscriber):
                self.subscribers.subscribe(name, subscriber)
                subscriber.tell(self._current(()))
            case _:
                return super().receive(message)
        return None

    def _reload_result(self, errors: list[ArtifactError]) -> CommandResult:
        served = plural(len(self.models), "model")
        newest = f", newest {self.version}" if self.version else ""
        if not errors:
            return CommandResult(ok=True, detail=f"reloaded: {served}{newest}")
        return CommandResult(
            ok=False,
            detail=f"reloaded with {plural(len(errors), 'version')} refused "
            f"({'; '.join(str(e) for e in errors)}): serving {served}{newest}",
        )

    def _reload(
        self, trigger: ReloadTrigger, refused: list[ArtifactError] | None = None
    ) -> tuple[str, ...]:
        loaded, errors = artifacts.load_latest(self.models_dir, skip=self.refused)
        for error in errors:
            self._refuse(error)
        if refused is not None:
            refused.extend(errors)
        changed = tuple(sorted(s for s, m in loaded.items() if self.models.get(s, None) is not m))
        self.models = loaded
        self.version = self._newest_version()
        self.reloads += 1
        for model in sorted(loaded.values(), key=lambda m: m.symbol):
            self.log.debug("%s: model %s loaded", model.symbol, model.version)
        if trigger is ReloadTrigger.STARTUP:
            self.log.info(
                "Model store: %d models loaded from %s%s",
                len(loaded),
                self.models_dir,
                f" (newest {self.version})" if self.version else "",
            )
        self.publish(
            ModelsReloaded(
                at=self.clock.now(), version=self.version, symbols=changed, trigger=trigger
            )
        )
        return changed

    def _publish(self, message: PublishModel) -> None:
        symbol = message.symbol
        refusal = rejected.gate_refusal(message.staging_dir)
        if refusal is not None:  # only a model that passed the gate is ever a version
            error = f"its manifest says the promotion gate rejected it ({refusal})"
            self.log.error("%s: not published: %s; models in use are unchanged", symbol, error)
            self._reply(message, PublishFailed(symbol=symbol, error=error))
            return
        try:
            manifest = artifacts.publish(self.models_dir, message.staging_dir)
            model = artifacts.load_version(self.models_dir / manifest.version)
        except (ArtifactError, OSError) as exc:
            error = f"publishing the model failed: {exc}"
            self.log.error("%s: %s; models in use are unchanged", symbol, error)
            self._reply(message, PublishFailed(symbol=symbol, error=error))
            return
        self._record(model, "published")
        self.models = {**self.models, symbol: model}
        self.version = model.version
        self.reloads += 1
        metrics = model.manifest.metrics
        self.log.info(
            "%s: model %s published (walk-forward net return %+.2f %% after costs, %d of %d "
            "folds above the gate's minimum; accuracy %.1f %% vs %.1f %% majority class; %s rows)",
            symbol,
            model.version,
            metrics.get("net_return_pct", float("nan")),
            metrics.get("positive_folds", 0),
            metrics.get("folds", 0),
            100 * metrics.get("accuracy", float("nan")),
            100 * metrics.get("baseline_accuracy", float("nan")),
            f"{model.manifest.rows:,}",
        )
        self.publish(
            ModelsReloaded(
                at=self.clock.now(),
                version=model.version,
                symbols=(symbol,),
                trigger=ReloadTrigger.PUBLISHED,
            )
        )
        self._reply(message, ModelPublished(symbol=symbol, version=model.version))
        self.subscribers.publish(self._current((symbol,)))

    def _keep_rejected(self, message: KeepRejected) -> None:
        symbol = message.symbol
        path: str | None = None
        try:
            path = str(
                rejected.keep(
                    self.models_dir, message.staging_dir, symbol, message.trained_at_ms
                )
            )
        except OSError as exc:  # the verdict stands; only the artifact for inspection is lost
            self.log.error("%s: rejected model not kept: %s", symbol, exc)
        # the coverage actor's NO_EDGE line says why at INFO; where it is kept is detail
        self.log.debug(
            "%s: model rejected by the promotion gate (%s); kept in %s, not loaded",
            symbol,
            "; ".join(message.reasons) or "no reason given",
            path or "nowhere",
        )
        if self.rejections is not None:
            row = RejectedModelRow(
                symbol=symbol,
                trained_at_ms=message.trained_at_ms,
                window_end_ms=message.window_end_ms,
                recorded_at=self.clock.now(),
                reasons=list(message.reasons),
                metrics=dict(message.metrics),
                path=path,
            )
            try:
                self.rejections.record(row)
            except StorageError as exc:
                self.log.error("%s: rejected model not recorded in the database: %s", symbol, exc)
        self._reply(message, RejectedKept(symbol=symbol, path=path))

    def _reply(
        self,
        message: PublishModel | KeepRejected,
        reply: ModelPublished | PublishFailed | RejectedKept,
    ) -> None:
        try:
            message.reply_to.tell(reply)
        except pykka.ActorDeadError:  # it gave up waiting (or the bot is stopping)
            self.log.warning(
                "%s: the trainer is gone; %s not delivered", message.symbol, type(reply).__name__
            )

    def _record(self, model: LoadedModel, source: str) -> None:
        if self.versions is None:
            return
        manifest = model.manifest
        row = ModelVersionRow(
            version=manifest.version,
            symbols=list(manifest.symbols),
            trained_at_ms=manifest.trained_at_ms,
            recorded_at=self.clock.now(),
            source=source,
            metrics=dict(manifest.metrics),
            sha256=manifest.sha256,
        )
        try:
            self.versions.record(row)
        except StorageError as exc:  # the record is history: serving the model matters more
            self.log.error(
                "%s: model %s not recorded in the database: %s", model.symbol, row.version, exc
            )

    def _check_recorded(self) -> None:
        """Compare what the database says was promoted with what loads from disk now."""
        if self.versions is None:
            return
        for model in self.models.values():
            self._record(model, "found on disk")
        newest: dict[str, str] = {}
        for row in self.versions.versions():
            for symbol in row.symbols:
                newest[symbol] = max(newest.get(symbol, ""), row.version)
        for symbol, version in sorted(newest.items()):
            serving = self.models.get(symbol)
            if serving is not None and serving.version >= version:
                continue
            instead = f"serving {serving.version}" if serving else "no model: it will be retrained"
            self.log.warning(
                "%s: promoted model %s does not load any more; %s", symbol, version, instead
            )

    def _refuse(self, error: ArtifactError) -> None:
        self.log.error("Model refused: %s; the models in use stay in use", error)
        version = getattr(error, "version", None)
        if version:
            self.refused.add(version)

    def _newest_version(self) -> str | None:
        return max((m.version for m in self.models.values()), default=None)

    def _current(self, changed: tuple[str, ...] | Any) -> ModelsUpdated:
        return ModelsUpdated(version=self.version, symbols=tuple(changed), models=dict(self.models))
