"""The real bot in a subprocess: `python supervisor.py --settings FILE`, output read as it comes.

Tests wait for a line (a real event, with a generous timeout), never for time to pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parents[1]


class BotProcess:
    def __init__(
        self,
        settings: Path,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        new_session: bool = False,
    ) -> None:
        """`argv`: instead of `supervisor.py --settings FILE`; `new_session`: its own process
        group (to clean up whatever it started)."""
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, *(argv or ["supervisor.py", "--settings", str(settings)])],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=new_session,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float) -> bool:
        """True once a line containing `text` was printed; False after `timeout` s."""
        with self._cond:
            return self._cond.wait_for(lambda: any(text in line for line in self.lines), timeout)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then the exit code (the whole output is in `text` afterwards)."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)
        return code

    @property
    def text(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def __enter__(self) -> BotProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
