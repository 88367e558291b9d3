r"""The symbol lifecycle as one pure transition function.

    NEW --evaluate--> ACTIVE           a model covers it
                 \--> TRAINING         history >= min_history_days, no model
                 \--> BLOCKED_HISTORY  history < min_history_days
    BLOCKED_HISTORY --evaluate, history now enough--> TRAINING
    TRAINING --model published (passed the promotion gate)--> ACTIVE
    TRAINING --model rejected by the gate--> NO_EDGE (reasons, retry time)
    NO_EDGE --retry_after of candles newer than the rejected model, or admin retrain--> TRAINING
    TRAINING --training failed--> RETRY_WAIT (backoff) --> TRAINING ... --> BLOCKED_FAILED
    ACTIVE --model older than max age--> ACTIVE + background retrain
    ACTIVE --retrain rejected, old model older than max age--> NO_EDGE
    ACTIVE --retrain rejected, old model still young (an admin retrain)--> ACTIVE on the old model
    any --admin block--> BLOCKED_MANUAL --admin unblock--> NEW
    any --left the universe--> RETIRED
    ACTIVE --its model no longer loads (e.g. after a restart)--> NEW

A NO_EDGE symbol is never retrained because a coverage tick ran: only once
`retry_after_s` of candles exist that the rejected model never saw, or on an
admin retrain (the seed's loop retrained on every tick). A model trained at or
before the last rejection no longer covers its symbol (`rejected_at`), so an
expired model the gate has just outvoted is not traded again by some other path
(a failed retry, a restart, the symbol coming back to the universe).

`step(record, event, policy)` returns the new record, whether a trainer must be
started, and the log note of what happened. The coverage actor owns the records
and does what the step says; it never decides anything itself.

One module on purpose (~510 lines): the states, the record, the events and the
handler of each event are one state machine, read and changed together (the
diagram above is its table of contents); split, one transition would span files.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import msgspec

from core.timefmt import format_utc

DAY_S = 86_400.0


class SymbolState(enum.StrEnum):
    NEW = "NEW"
    TRAINING = "TRAINING"
    ACTIVE = "ACTIVE"
    BLOCKED_HISTORY = "BLOCKED_HISTORY"
    RETRY_WAIT = "RETRY_WAIT"
    BLOCKED_FAILED = "BLOCKED_FAILED"
    BLOCKED_MANUAL = "BLOCKED_MANUAL"
    RETIRED = "RETIRED"
    NO_EDGE = "NO_EDGE"  # its newest model did not beat its costs out of sample


def is_blocked(state: SymbolState) -> bool:
    """In the universe but not allowed to trade (what the heartbeat counts as blocked)."""
    return state not in (SymbolState.ACTIVE, SymbolState.RETIRED)


class SymbolRecord(msgspec.Struct, frozen=True, kw_only=True):
    symbol: str
    state: SymbolState = SymbolState.NEW
    reason: str = "seen in the universe"
    since: float = 0.0  # when it entered `state`
    eligible_at: float | None = None  # BLOCKED_HISTORY: when history reaches the minimum
    attempts: int = 0  # consecutive failed trainings
    next_attempt_at: float | None = None  # backoff: no training before this
    model_version: str | None = None
    model_trained_at: float | None = None
    last_error: str | None = None
    # The promotion gate's verdict on the newest model trained (empty: promoted, or none yet).
    gate_reasons: tuple[str, ...] = ()
    rejected_at: float | None = None  # when the last rejected model was trained
    retry_at: float | None = None  # after a rejection: no automatic training before this


class LifecyclePolicy(msgspec.Struct, frozen=True, kw_only=True):
    min_history_days: float
    max_attempts: int
    retry_base_s: float
    retry_max_s: float
    max_model_age_s: float
    # After a rejected model: wait for this much new data (promotion.retry_after_days).
    retry_after_s: float = DAY_S

    def __post_init__(self) -> None:
        if not self.retry_after_s > 0:  # 0 would retrain on every tick: the seed's loop
            raise ValueError(
                f"promotion.retry_after_days must be > 0, got {self.retry_after_s / DAY_S:g}"
            )

    def backoff_s(self, attempts: int) -> float:
        """Wait after the `attempts`-th consecutive failure: base, 2x base, 4x base ... capped."""
        return float(min(self.retry_max_s, self.retry_base_s * 2 ** max(0, attempts - 1)))


# --- events -----------------------------------------------------------------


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What the coverage actor knows about a symbol at evaluation time."""

    now: float
    in_universe: bool
    listed_at: float | None  # time of the earliest candle; None = no history at all
    trainer_running: bool

    def history_days(self) -> float | None:
        return None if self.listed_at is None else max(0.0, (self.now - self.listed_at) / DAY_S)


class Evaluate(msgspec.Struct, frozen=True):
    facts: Facts


class ModelCovered(msgspec.Struct, frozen=True):
    now: float
    version: str
    trained_at: float


class TrainingOutcome(msgspec.Struct, frozen=True):
    now: float
    ok: bool
    error: str | None = None


class ModelRejected(msgspec.Struct, frozen=True):
    """The newest model failed the promotion gate: kept as rejected, not traded."""

    now: float
    trained_at: float  # the rejected model's training time
    window_end: float  # time of the last candle it was trained on
    reasons: tuple[str, ...]


class ManualBlock(msgspec.Struct, frozen=True):
    now: float
    reason: str


class ManualUnblock(msgspec.Struct, frozen=True):
    now: float


class ManualRetrain(msgspec.Struct, frozen=True):
    facts: Facts


class ModelLost(msgspec.Struct, frozen=True):
    """The model version the record names is not among the loaded models any more."""

    now: float
    version: str


Event = (
    Evaluate
    | ModelCovered
    | TrainingOutcome
    | ModelRejected
    | ManualBlock
    | ManualUnblock
    | ManualRetrain
    | ModelLost
)


class Step(msgspec.Struct, frozen=True):
    record: SymbolRecord
    start_training: bool = False
    note: str | None = None  # what happened, for the log; None = nothing worth a line
    refused: str | None = None  # an admin request that does not apply, and why


# --- the transition function -------------------------------------------------


def step(record: SymbolRecord, event: Event, policy: LifecyclePolicy) -> Step:
    match event:
        case Evaluate(facts):
            return _evaluate(record, facts, policy)
        case ModelCovered():
            return _model_covered(record, event)
        case TrainingOutcome():
            return _training_outcome(record, event, policy)
        case ModelRejected():
            return _model_rejected(record, event, policy)
        case ManualBlock(now, reason):
            moved = _move(record, SymbolState.BLOCKED_MANUAL, now, f"blocked by admin: {reason}")
            return Step(moved, note=_note(record, moved))
        case ManualUnblock(now):
            if record.state not in (SymbolState.BLOCKED_MANUAL, SymbolState.BLOCKED_FAILED):
                return Step(record, refused=f"{record.symbol} is {record.state}, not blocked")
            moved = _move(record, SymbolState.NEW, now, "unblocked by admin", attempts=0)
            return Step(moved, note=_note(record, moved))
        case ManualRetrain(facts):
            return _manual_retrain(record, facts, policy)
        case ModelLost(now, version):
            return _model_lost(record, now, version)
    raise TypeError(f"unknown lifecycle event {event!r}")  # pragma: no cover


def _evaluate(record: SymbolRecord, facts: Facts, policy: LifecyclePolicy) -> Step:
    now, state = facts.now, record.state
    if not facts.in_universe:
        if state is SymbolState.RETIRED:
            return Step(record)
        moved = _move(record, SymbolState.RETIRED, now, "left the universe")
        return Step(moved, note=_note(record, moved))
    if state is SymbolState.RETIRED:
        record = _move(record, SymbolState.NEW, now, "back in the universe")
        state = record.state
    if state in (SymbolState.BLOCKED_MANUAL, SymbolState.BLOCKED_FAILED):
        return Step(record)
    if state is SymbolState.ACTIVE:
        return _maybe_retrain_active(record, facts, policy)
    if state is SymbolState.TRAINING and facts.trainer_running:
        return Step(record)
    if state is SymbolState.NO_EDGE:
        return _retry_no_edge(record, facts, policy)
    # NEW, BLOCKED_HISTORY, RETRY_WAIT, or TRAINING with no trainer alive (after a restart).
    if covers(record):
        moved = _move(record, SymbolState.ACTIVE, now, f"model {record.model_version} covers it")
        retrain = _maybe_retrain_active(moved, facts, policy)
        note = _join(_note(record, moved), retrain.note)
        return Step(retrain.record, retrain.start_training, note)
    days = facts.history_days()
    if days is None or days < policy.min_history_days:
        if state is SymbolState.BLOCKED_HISTORY:
            return Step(record)
        eligible_at = (
            None if facts.listed_at is None else facts.listed_at + policy.min_history_days * DAY_S
        )
        reason = _short_history_reason(days, policy.min_history_days, eligible_at)
        moved = _move(record, SymbolState.BLOCKED_HISTORY, now, reason, eligible_at=eligible_at)
        note = _note(record, moved)
        if state in (SymbolState.TRAINING, SymbolState.RETRY_WAIT):
            # it was being trained (history unknown now, e.g. the exchange is down): say that
            # this is no cause to train; a symbol never trained has nothing to stop
            note += ". Will NOT trigger retraining."
        return Step(moved, note=note)
    if facts.trainer_running:  # a trainer already works on it (e.g. an admin retrain)
        moved = _move(record, SymbolState.TRAINING, now, "a trainer is already running")
        return Step(moved, note=_note(record, moved))
    if state is SymbolState.RETRY_WAIT and (record.next_attempt_at or 0.0) > now:
        return Step(record)
    if state is SymbolState.NEW and record.retry_at is not None and record.retry_at > now:
        # back in the universe, or unblocked: the gate's verdict still stands
        moved = _move(record, SymbolState.NO_EDGE, now, _no_edge_reason(record, policy))
        return Step(moved, note=_note(record, moved))
    if state is SymbolState.BLOCKED_HISTORY:
        reason = f"history now {days:.1f} days >= {_num(policy.min_history_days)} minimum"
    elif state is SymbolState.RETRY_WAIT:
        reason = f"retry {record.attempts + 1} of {policy.max_attempts} after backoff"
    else:
        reason = f"{days:.1f} days of history >= {_num(policy.min_history_days)} minimum, no model"
    moved = _move(record, SymbolState.TRAINING, now, reason, eligible_at=None, next_attempt_at=None)
    return Step(moved, start_training=True, note=_note(record, moved))


def _maybe_retrain_active(record: SymbolRecord, facts: Facts, policy: LifecyclePolicy) -> Step:
    if facts.trainer_running or record.model_trained_at is None:
        return Step(record)
    days = facts.history_days()
    if days is None or days < policy.min_history_days:
        return Step(record)  # history unknown (exchange down) or short: keep the old model
    age = facts.now - record.model_trained_at
    if age <= policy.max_model_age_s:
        return Step(record)
    if record.next_attempt_at is not None and record.next_attempt_at > facts.now:
        return Step(record)
    if record.attempts >= policy.max_attempts:
        return Step(record)  # retraining gave up; keeps trading on the old model
    if record.retry_at is not None and record.retry_at > facts.now:
        return Step(record)  # a retrain was just rejected: wait for new data
    note = (
        f"{record.symbol}: ACTIVE, model {record.model_version} is {age / DAY_S:.1f} days old > "
        f"{policy.max_model_age_s / DAY_S:.1f} maximum; retraining in the background, "
        "still trading on it"
    )
    return Step(record, start_training=True, note=note)


def _model_covered(record: SymbolRecord, event: ModelCovered) -> Step:
    updated = msgspec.structs.replace(
        record, model_version=event.version, model_trained_at=event.trained_at
    )
    if record.rejected_at is not None and event.trained_at <= record.rejected_at:
        return Step(updated)  # older than the model the gate rejected: covers nothing
    updated = msgspec.structs.replace(updated, gate_reasons=(), rejected_at=None, retry_at=None)
    if record.state in (
        SymbolState.NEW,
        SymbolState.TRAINING,
        SymbolState.BLOCKED_HISTORY,
        SymbolState.RETRY_WAIT,
        SymbolState.NO_EDGE,
    ):
        moved = _move(
            updated,
            SymbolState.ACTIVE,
            event.now,
            f"model {event.version} published",
            attempts=0,
            next_attempt_at=None,
            last_error=None,
        )
        return Step(moved, note=_note(record, moved))
    if record.state is SymbolState.ACTIVE:
        updated = msgspec.structs.replace(updated, attempts=0, next_attempt_at=None)
        if record.model_version != event.version:
            # the reason names the model it trades on, not the first one it was given
            updated = msgspec.structs.replace(updated, reason=f"model {event.version} published")
            note = f"{record.symbol}: ACTIVE, now trading on model {event.version}"
            return Step(updated, note=note)
    return Step(updated)


def _training_outcome(
    record: SymbolRecord, event: TrainingOutcome, policy: LifecyclePolicy
) -> Step:
    if event.ok:
        return Step(record)  # ACTIVE comes with the published model (ModelCovered)
    attempts = record.attempts + 1
    error = event.error or "unknown error"
    if record.state is SymbolState.TRAINING:
        if attempts >= policy.max_attempts:
            moved = _move(
                record,
                SymbolState.BLOCKED_FAILED,
                event.now,
                f"training failed {attempts} times, last: {error}; "
                "use 'retrain' or 'unblock' in the admin shell after fixing the cause",
                attempts=attempts,
                last_error=error,
            )
            return Step(moved, note=_note(record, moved))
        wait = policy.backoff_s(attempts)
        retry_at = event.now + wait
        moved = _move(
            record,
            SymbolState.RETRY_WAIT,
            event.now,
            f"training failed (attempt {attempts} of {policy.max_attempts}): {error}; "
            f"retry after {format_utc(retry_at)} (backoff {_duration(wait)})",
            attempts=attempts,
            next_attempt_at=retry_at,
            last_error=error,
        )
        return Step(moved, note=_note(record, moved))
    if record.state is SymbolState.ACTIVE:
        retry_at = event.now + policy.backoff_s(attempts)
        updated = msgspec.structs.replace(
            record, attempts=attempts, next_attempt_at=retry_at, last_error=error
        )
        note = (
            f"{record.symbol}: ACTIVE, retraining failed (attempt {attempts} of "
            f"{policy.max_attempts}): {error}; still trading on model {record.model_version}"
        )
        return Step(updated, note=note)
    return Step(msgspec.structs.replace(record, last_error=error))


def _model_rejected(record: SymbolRecord, event: ModelRejected, policy: LifecyclePolicy) -> Step:
    retry_at = event.window_end + policy.retry_after_s
    verdict = msgspec.structs.replace(
        record,
        gate_reasons=event.reasons,
        retry_at=retry_at,
        attempts=0,
        next_attempt_at=None,
        last_error=None,
    )
    reasons = _reasons(event.reasons)
    if record.state is SymbolState.ACTIVE and record.model_trained_at is not None:
        age = event.now - record.model_trained_at
        if age <= policy.max_model_age_s:
            # Asked for by an admin: the model in use passed the gate and is not due yet.
            note = (
                f"{record.symbol}: ACTIVE, new model rejected by the promotion gate ({reasons}); "
                f"still trading on model {record.model_version} ({age / DAY_S:.1f} days old <= "
                f"{policy.max_model_age_s / DAY_S:g} maximum)"
            )
            return Step(verdict, note=note)
    verdict = msgspec.structs.replace(verdict, rejected_at=event.trained_at)
    if record.state not in (SymbolState.TRAINING, SymbolState.ACTIVE):
        return Step(verdict)  # blocked or retired meanwhile: the verdict waits with it
    reason = _no_edge_reason(verdict, policy)
    if record.state is SymbolState.ACTIVE:
        reason = f"model {record.model_version} expired and its retrain has {reason}"
    moved = _move(verdict, SymbolState.NO_EDGE, event.now, reason)
    return Step(moved, note=_note(record, moved))


def _retry_no_edge(record: SymbolRecord, facts: Facts, policy: LifecyclePolicy) -> Step:
    """New data since the rejected model's window, or nothing happens: never on a tick alone."""
    if facts.trainer_running or record.retry_at is None or record.retry_at > facts.now:
        return Step(record)
    days = facts.history_days()
    if days is None or days < policy.min_history_days:
        return Step(record)  # history unknown (exchange down): ask again at the next check
    moved = _move(
        record,
        SymbolState.TRAINING,
        facts.now,
        f"{_duration(policy.retry_after_s)} of new candles since its model was rejected",
    )
    return Step(moved, start_training=True, note=_note(record, moved))


def covers(record: SymbolRecord) -> bool:
    """The record names a model, trained after any model the gate rejected since."""
    if record.model_version is None:
        return False
    if record.rejected_at is None:
        return True
    return record.model_trained_at is not None and record.model_trained_at > record.rejected_at


def _no_edge_reason(record: SymbolRecord, policy: LifecyclePolicy) -> str:
    when = "unknown" if record.retry_at is None else format_utc(record.retry_at)
    return (
        f"no edge: {_reasons(record.gate_reasons)}; retry after {when} "
        f"({_duration(policy.retry_after_s)} of new candles) or on admin 'retrain'"
    )


def _reasons(reasons: tuple[str, ...]) -> str:
    return "; ".join(reasons) or "rejected by the promotion gate"


def _manual_retrain(record: SymbolRecord, facts: Facts, policy: LifecyclePolicy) -> Step:
    if record.state is SymbolState.BLOCKED_MANUAL:
        return Step(record, refused=f"{record.symbol} is blocked by admin; unblock it first")
    if record.state is SymbolState.RETIRED or not facts.in_universe:
        return Step(record, refused=f"{record.symbol} is not in the universe")
    if facts.trainer_running:
        return Step(record, refused=f"{record.symbol} is already training")
    days = facts.history_days()
    if days is None or days < policy.min_history_days:
        shown = "no" if days is None else f"only {days:.1f} days of"
        minimum = _num(policy.min_history_days)
        return Step(record, refused=f"{record.symbol} has {shown} history < {minimum} minimum")
    if record.state is SymbolState.ACTIVE:
        updated = msgspec.structs.replace(record, attempts=0, next_attempt_at=None)
        note = f"{record.symbol}: ACTIVE, retraining requested by admin; still trading meanwhile"
        return Step(updated, start_training=True, note=note)
    moved = _move(
        record,
        SymbolState.TRAINING,
        facts.now,
        "retraining requested by admin",
        attempts=0,
        next_attempt_at=None,
        eligible_at=None,
    )
    return Step(moved, start_training=True, note=_note(record, moved))


def _model_lost(record: SymbolRecord, now: float, version: str) -> Step:
    if record.model_version != version:
        return Step(record)
    cleared = msgspec.structs.replace(record, model_version=None, model_trained_at=None)
    if record.state is not SymbolState.ACTIVE:
        return Step(cleared)  # blocked or retired: stays so, without the model
    moved = _move(cleared, SymbolState.NEW, now, f"its model {version} no longer loads")
    return Step(moved, note=_note(record, moved))


# --- helpers -----------------------------------------------------------------


def _move(
    record: SymbolRecord, state: SymbolState, now: float, reason: str, **changes: Any
) -> SymbolRecord:
    """The record in `state` since `now`; eligibility only ever describes BLOCKED_HISTORY."""
    if state is not SymbolState.BLOCKED_HISTORY:
        changes.setdefault("eligible_at", None)
    return msgspec.structs.replace(record, state=state, reason=reason, since=now, **changes)


def _note(old: SymbolRecord, new: SymbolRecord) -> str:
    return f"{new.symbol}: {old.state} -> {new.state} ({new.reason})"


def _join(a: str | None, b: str | None) -> str | None:
    return "; ".join(x for x in (a, b) if x) or None


def _short_history_reason(days: float | None, minimum: float, eligible_at: float | None) -> str:
    if days is None:
        return f"no history yet < {_num(minimum)} days minimum"
    when = "unknown" if eligible_at is None else format_utc(eligible_at)
    return f"{days:.1f} days of history < {_num(minimum)} minimum; eligible {when}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _duration(seconds: float) -> str:
    if seconds >= DAY_S:
        days = seconds / DAY_S
        return f"{days:g} day{'' if days == 1 else 's'}"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{math.ceil(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
