"""The notifier: subscribes to the system's event topic, sends from one thread per target.

Not an actor. The topic calls `tell` on an actor's thread; `tell` only picks the
targets that want the event and puts the note in each target's bounded queue
without waiting (a full queue drops the note, and says so once). Each target's
thread sends its queue in order through apprise, retrying with a doubling wait.
A target that still fails is logged once and marked down: while down, each note
gets one attempt and no retries (so a dead target costs little), and the first
success logs that it answers again, with how many notes were lost meanwhile.
Nothing here can stop or slow the bot.

apprise speaks the protocols (JSON webhooks, Telegram, Discord, Slack, e-mail,
ntfy, ...), so this project writes none of its own.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from config.settings import NotifySettings, NotifyTarget
from notify.notes import Note, describe

log = logging.getLogger("tradeactors.notify")

# sends one note; (delivered, what went wrong)
Send = Callable[[Note], tuple[bool, str]]


class NotifyError(Exception):
    """A notify target that cannot be used (bad URL, unset variable); one line."""


@dataclass
class Target:
    """Where notes go: a label safe to log (no token in it), the events wanted, the sender."""

    label: str
    events: frozenset[str]
    send: Send


class Notifier:
    """Notes to every target that wants them, from the topic (`tell`) or the bot (`notify`)."""

    def __init__(
        self,
        targets: Sequence[Target],
        quote: str,
        queue_size: int = 100,
        retries: int = 3,
        retry_s: float = 5.0,
    ) -> None:
        self.quote = quote
        self._closing = threading.Event()
        self._lanes = [_Lane(t, queue_size, retries, retry_s, self._closing) for t in targets]

    @classmethod
    def from_settings(
        cls, settings: NotifySettings, quote: str, environ: Mapping[str, str]
    ) -> Notifier:
        """Raises NotifyError naming the target when its URL is missing or not understood."""
        targets = [
            apprise_target(_url(i, t, environ), t.events, i) for i, t in enumerate(settings.targets)
        ]
        return cls(targets, quote, settings.queue_size, settings.retries, settings.retry_s)

    def __bool__(self) -> bool:
        return bool(self._lanes)

    def start(self) -> None:
        for lane in self._lanes:
            lane.thread.start()

    def tell(self, message: object) -> None:
        """The topic's delivery (on the publishing actor's thread): never blocks."""
        note = describe(message, self.quote)
        if note is not None:
            self.notify(note)

    def notify(self, note: Note) -> None:
        for lane in self._lanes:
            if note.kinds & lane.target.events:
                lane.offer(note)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued (one attempt each, no more retry waits), for at most `timeout`."""
        self._closing.set()
        for lane in self._lanes:
            lane.finish()
        for lane in self._lanes:
            if lane.thread.is_alive():
                lane.thread.join(timeout)
            if lane.thread.is_alive():
                log.warning(
                    "notify %s: still sending after %.0f s at stop; %d notes not sent",
                    lane.target.label,
                    timeout,
                    lane.queue.qsize(),
                )


class _Lane:
    """One target's queue and thread."""

    def __init__(
        self,
        target: Target,
        queue_size: int,
        retries: int,
        retry_s: float,
        closing: threading.Event,
    ) -> None:
        self.target = target
        self.queue: queue.Queue[Note | None] = queue.Queue(maxsize=queue_size)
        self.retries = retries
        self.retry_s = retry_s
        self.closing = closing
        self.down = False
        self.lost = 0  # notes not delivered since the target went down, or dropped
        self.full = False  # a full queue was logged; logged again once it has caught up
        self.thread = threading.Thread(
            target=self._run, name=f"notify-{target.label[:24]}", daemon=True
        )

    def offer(self, note: Note) -> None:
        try:
            self.queue.put_nowait(note)
        except queue.Full:
            self.lost += 1
            if not self.full:
                self.full = True
                log.warning(
                    "notify %s: %d notes waiting, dropping new ones until it catches up",
                    self.target.label,
                    self.queue.maxsize,
                )

    def finish(self) -> None:
        # wakes a thread waiting for a note; a full queue is drained by `_run` anyway
        with contextlib.suppress(queue.Full):
            self.queue.put_nowait(None)

    def _run(self) -> None:
        while True:
            if self.closing.is_set():  # what is left, then stop (the end mark may not fit)
                try:
                    note = self.queue.get_nowait()
                except queue.Empty:
                    return
            else:
                note = self.queue.get()
            if note is None:
                return
            if self.queue.empty():
                self.full = False  # caught up: a full queue is worth a line again
            self._deliver(note)

    def _deliver(self, note: Note) -> None:
        attempts = 1 if self.down or self.closing.is_set() else 1 + self.retries
        wait = self.retry_s
        detail = ""
        for attempt in range(1, attempts + 1):
            try:
                ok, detail = self.target.send(note)
            except Exception as exc:  # a sender bug must not end the lane: the bot goes on
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            if ok:
                if self.down:
                    log.info(
                        "notify %s: answers again (notes lost while it did not: %d)",
                        self.target.label,
                        self.lost,
                    )
                self.down, self.lost = False, 0
                return
            if attempt < attempts and self.closing.wait(wait):
                break  # stopping: no more waiting
            wait *= 2
        self.lost += 1
        if not self.down:
            self.down = True
            log.warning(
                "notify %s: not delivered after %d attempts (%s); the bot goes on, and this "
                "target's failures are not logged again until it answers",
                self.target.label,
                attempt,
                detail or "no detail",
            )


# --- apprise ------------------------------------------------------------------------------


def _url(index: int, target: NotifyTarget, environ: Mapping[str, str]) -> str:
    if target.url:
        return target.url
    url = environ.get(target.url_env, "")
    if not url:
        raise NotifyError(
            f"notify.targets[{index}].url_env: the environment variable {target.url_env} "
            "is not set (it holds the target's apprise URL)"
        )
    return url


def apprise_target(url: str, events: Iterable[str], index: int = 0) -> Target:
    """A target sending through apprise; NotifyError if apprise does not understand `url`."""
    import apprise  # imported here: only a bot with targets needs it

    _capture_apprise_log()
    client = apprise.Apprise()
    if not client.add(url):
        scheme = url.partition("://")[0] if "://" in url else url[:12]
        raise NotifyError(
            f"notify.targets[{index}]: not an apprise URL apprise {apprise.__version__} "
            f"understands (scheme {scheme!r}); see https://github.com/caronc/apprise/wiki"
        )
    # privacy: tokens and passwords masked; the options apprise adds are noise in a log
    label = client[0].url(privacy=True).split("?")[0]

    def send(note: Note) -> tuple[bool, str]:
        # apprise sends on a thread of its own and says why only in its log: sends are
        # serialised so that what the log captured belongs to this one
        with _SEND_LOCK:
            _CAPTURED.clear()
            ok = bool(client.notify(title=note.title, body=note.body or note.title))
            detail = " ".join(_CAPTURED[-2:])
        return ok, detail

    return Target(label=label, events=frozenset(events), send=send)


_SEND_LOCK = threading.Lock()
_CAPTURED: list[str] = []


class _Capture(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _CAPTURED.append(record.getMessage())


def _capture_apprise_log() -> None:
    """apprise logs each failure at WARNING; the lane logs a target's failure once instead."""
    apprise_log = logging.getLogger("apprise")
    if not any(isinstance(h, _Capture) for h in apprise_log.handlers):
        handler = _Capture(logging.WARNING)
        apprise_log.addHandler(handler)
        apprise_log.propagate = False
