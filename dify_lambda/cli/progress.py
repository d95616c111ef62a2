"""Progress on stderr: step lines stamped with the elapsed time, and a heartbeat while a step is silent.

Every command that does long work takes a :class:`Reporter` (it is a ``Progress`` callable: one
line per step). Each line is printed to stderr as ``[ 12.3 s] step`` (the time since the command
started, so each step's duration reads off the next line), and on a terminal a background heartbeat
says "still <step> (N s)" when nothing was reported for a while, e.g. during dependency resolution.
``-q`` and ``--json`` print nothing, so stdout stays a single machine-readable document.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Reporter", "reporter_for"]


class Reporter:
    """A progress callback with step durations and an optional heartbeat.

    ``clock`` and ``heartbeat_s`` are injectable; ``heartbeat_s=None`` disables the heartbeat.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        heartbeat_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self._lock = threading.Lock()
        self._current: str | None = None
        self._origin = clock()
        self._started = self._origin
        self._last_output = self._origin
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the Progress callable -----------------------------------------------------------------

    def __call__(self, line: str) -> None:
        """Report that a new step started (the previous one is finished)."""
        with self._lock:
            self._current = line
            self._started = self.clock()
            self._write(line)

    def tick(self) -> None:
        """Print a heartbeat line if the current step has been silent for ``heartbeat_s``."""
        with self._lock:
            if self.heartbeat_s is None or self._current is None:
                return
            now = self.clock()
            if now - self._last_output < self.heartbeat_s:
                return
            self._write(f"... still {self._current} ({now - self._started:.0f} s)")

    # --- lifetime ------------------------------------------------------------------------------

    def __enter__(self) -> Reporter:
        if self.heartbeat_s is not None and not self.quiet:
            self._thread = threading.Thread(target=self._beat, name="progress-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        interval = max((self.heartbeat_s or 1.0) / 4, 0.05)
        while not self._stop.wait(interval):
            self.tick()

    def _write(self, text: str) -> None:
        if self.quiet:
            return
        elapsed = self.clock() - self._origin
        try:
            print(f"  [{elapsed:5.1f} s] {text}", file=self.stream, flush=True)
        except (BrokenPipeError, ValueError):
            self.quiet = True  # stderr went away: progress is optional
        self._last_output = self.clock()


def reporter_for(*, quiet: bool = False, json_output: bool = False, heartbeat_s: float = 15.0) -> Reporter:
    """The reporter a command uses: silent with ``-q`` or ``--json``, heartbeat only on a terminal."""
    stream = sys.stderr
    interactive = bool(getattr(stream, "isatty", lambda: False)())
    return Reporter(stream, quiet=quiet or json_output, heartbeat_s=heartbeat_s if interactive else None)
