"""A potential evaluated in its own persistent worker process.

Python threads share one interpreter lock. A QM layer and an MLIP run in two
threads of one process take turns at it (both spend much of a small
system's time in Python), so a step gains nothing from the second core.
:class:`ProcessPotential` moves a potential into a child process: each
``compute(system)`` sends the AtomicSystem through a pipe, the child
evaluates it and sends the Result back. While the parent waits on the pipe
it holds no lock, so the other terms of a ``LinearCombination(workers=2)``
run meanwhile on the other core. The child keeps its potential between
calls, so warm starts (the PySCF density history, tblite's wavefunction)
persist exactly as in-process.

The child is started on first use with the "spawn" method (a fresh
interpreter: safe whatever OpenMP or torch threads the parent runs), from a
pickle of the potential, and with the parent's PySCF, torch and BLAS thread
counts (:mod:`hybrid.threads`) unless ``threads`` says otherwise. Errors
raised in the child are raised again in the parent, with the child's
traceback in the message; a child that dies raises
:class:`~hybrid.errors.HybridError` naming the potential and exit code.

Copies (``copy.deepcopy``, e.g. a blend's private copy per region) and
pickles carry the potential as it was given, not the process: a copy
starts its own child. ``close()`` (also at exit) stops the child.
"""
from __future__ import annotations

import copy
import pickle
import threading
import traceback
import weakref

from .errors import HybridError
from .potential import Potential, Result
from .system import AtomicSystem


def _serve(conn, blob: bytes, counts: dict) -> None:
    """The child's loop: ("compute", system) -> ("ok", Result); ("attr", name) -> ("ok", value); None stops.

    The child ignores SIGINT and SIGTERM: Ctrl-C at a terminal (and a scheduler's SIGTERM) reaches every
    process of the job, and the parent decides when to stop; the child ends when its pipe closes.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from .threads import apply
    potential = pickle.loads(blob)      # imports the engines first, so that their BLAS pools get limited
    apply(counts)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        kind, payload = msg
        try:
            out = ("ok", potential.compute(payload) if kind == "compute" else getattr(potential, payload))
        except BaseException as exc:  # send every failure back; the parent re-raises it
            out = ("error", exc, traceback.format_exc())
        try:
            conn.send(out)
        except Exception:              # an unpicklable exception: send its text
            conn.send(("error", None, out[2] if out[0] == "error" else traceback.format_exc()))


def _stop(process, conn) -> None:
    try:
        conn.send(None)
    except (OSError, ValueError):
        pass
    process.join(timeout=10)
    if process.is_alive():
        process.terminate()
        process.join()
    conn.close()


class ProcessPotential(Potential):
    """``potential`` evaluated in a child process (see module docstring).

    threads : {"pyscf": n, "torch": n, "blas": n} for the child; default: the parent's
        counts when the child starts.
    """

    def __init__(self, potential: Potential, threads: dict | None = None, name: str | None = None):
        if not isinstance(potential, Potential):
            raise HybridError(f"ProcessPotential needs a Potential, got {type(potential).__name__}")
        self.potential = potential
        self.threads = threads
        self.name = name or potential.name
        self.species = potential.species
        self.min_distance = potential.min_distance
        self.stateful = getattr(potential, "stateful", False)
        self._process = self._conn = self._finalizer = None
        self._lock = threading.Lock()        # one request at a time on the pipe

    # -- the child -----------------------------------------------------------------
    def start(self) -> None:
        """Start the child now (otherwise it starts on the first call)."""
        if self._process is not None:
            return
        import multiprocessing as mp

        from .threads import current
        try:
            blob = pickle.dumps(self.potential)
        except Exception as exc:
            raise HybridError(f"{self.name}: the potential cannot be pickled for its worker process "
                              f"({type(exc).__name__}: {exc}); create the ProcessPotential before its first call") from None
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, blob, self.threads or current(blas=True)),
                                    name=f"hybrid:{self.name}", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        self._finalizer = weakref.finalize(self, _stop, self._process, parent)

    def close(self) -> None:
        """Stop the child (a later call starts a new one, with a fresh potential)."""
        if self._finalizer is not None:
            self._finalizer()
        self._process = self._conn = self._finalizer = None

    def _ask(self, kind: str, payload):
        with self._lock:
            return self._ask_locked(kind, payload)

    def _ask_locked(self, kind: str, payload):
        self.start()
        try:
            self._conn.send((kind, payload))
            reply = self._conn.recv()
        except (EOFError, OSError):
            self._process.join(timeout=1)
            code = self._process.exitcode
            self.close()
            raise HybridError(f"{self.name}: its worker process died (exit code {code})") from None
        except Exception as exc:    # e.g. an exception class that cannot be rebuilt from its pickle
            raise HybridError(f"{self.name}: could not read its worker's reply ({type(exc).__name__}: {exc})") from None
        if reply[0] == "ok":
            return reply[1]
        _, exc, text = reply
        if exc is None:
            raise HybridError(f"{self.name} failed in its worker process:\n{text}")
        raise exc from HybridError(f"in the worker process of {self.name}:\n{text}")

    def remote(self, attribute: str):
        """An attribute of the potential in the child (e.g. ``"log"`` of a PySCF layer)."""
        return self._ask("attr", attribute)

    # -- the potential ---------------------------------------------------------------
    def check(self, system: AtomicSystem) -> None:
        self.potential.check(system)

    def _compute(self, system: AtomicSystem) -> Result:
        return self._ask("compute", system)

    # -- copies carry the potential, not the process --------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_process"] = state["_conn"] = state["_finalizer"] = state["_lock"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __deepcopy__(self, memo):
        return ProcessPotential(copy.deepcopy(self.potential, memo), threads=self.threads, name=self.name)
