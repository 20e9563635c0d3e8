"""SIGTERM and Ctrl-C as requests to stop a run cleanly.

A batch scheduler sends SIGTERM at a job's time limit (and SIGKILL a grace
period later); a user at a terminal presses Ctrl-C (SIGINT). Inside
:class:`StopRequests` neither signal interrupts what is running (an SCF, an
OpenMM force callback, a file write): the handler only records the signal,
and the run loop asks :attr:`StopRequests.signal` after each step, writes a
checkpoint at that step, flushes its outputs and stops (exit code 3 of
``hybrid run``). A second Ctrl-C raises ``KeyboardInterrupt`` at once, for a
user who will not wait for the step to finish; the outputs then keep the
last periodic checkpoint.

Handlers can be installed only in the main thread; elsewhere (a run started
from a worker thread) the signals keep their previous behaviour.
"""
from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequests:
    """Context manager recording SIGTERM/SIGINT; ``signal`` is the first one received (or None)."""

    def __init__(self):
        self.signal: int | None = None
        self._saved: dict = {}

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signal).name if self.signal is not None else None

    def _handle(self, signum, frame) -> None:
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt          # a second Ctrl-C: stop now, without a checkpoint at this step
        if self.signal is None:
            self.signal = signum

    def install(self) -> None:
        """Record SIGTERM/SIGINT from now on (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._saved[s] = signal.signal(s, self._handle)

    def restore(self) -> None:
        """Give the signals back their previous handlers."""
        for s, old in self._saved.items():
            signal.signal(s, old)
        self._saved.clear()

    def __enter__(self) -> "StopRequests":
        self.install()
        return self

    def __exit__(self, *exc) -> None:
        self.restore()
