"""Named independent tasks (λ windows, umbrella windows, Monte Carlo chains, ring-polymer replicas) run on
the Dask cluster of :mod:`hybrid.cluster`, each result stored as soon as it finishes; a rerun computes
only what is missing.

``run_tasks({"lambda_0.25": Task(fn, args, kwargs, inputs={...}), ...}, directory)`` runs ``fn(*args,
**kwargs)`` per name and returns the values by name. Files in ``directory``:

* ``<name>.pkl``: the result and the task's ``inputs`` (cloudpickle), written to a temporary file, fsync'ed
  and renamed over the final name: a kill -9 at any moment leaves each result whole or absent;
* ``failures.jsonl``: one JSON line per failed attempt (name, attempt, error, traceback);
* ``.lock``: an exclusive lock, so two runs cannot write one directory.

``inputs`` (JSON-serialisable: the parameters that define the task, e.g. ``{"lambda": 0.25, "seed": 3,
"steps": 2000}``) is stored with the result; a rerun whose task under the same name has different inputs
is refused before anything runs, instead of silently mixing two set-ups. A task that raises is retried up
to ``max_attempts`` times in all; what still fails is reported in :attr:`TaskResults.failed` (and a rerun
tries it again). SIGTERM (a batch system's time limit) stops the run like Ctrl-C: results already stored
stay, and the rerun continues from them.
"""
from __future__ import annotations

import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cluster
from .errors import InputError
from .files import FileLock, atomic_write_bytes

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")


@dataclass
class Task:
    """``fn(*args, **kwargs)`` on a worker; ``inputs`` identifies the task's set-up (JSON-serialisable)."""

    fn: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    inputs: dict | None = None


@dataclass
class TaskResults:
    """values {name: result} of the tasks done (stored earlier or now); failed {name: last error}."""

    values: dict
    failed: dict
    resumed: list
    computed: list
    wall_time: float

    def __getitem__(self, name):
        if name in self.failed:
            raise InputError(f"task {name!r} failed: {self.failed[name]}")
        return self.values[name]


def run_tasks(tasks: dict, directory, *, scheduler=None, n_workers: int = 2, max_attempts: int = 2,
              progress: bool = False) -> TaskResults:
    """Run the tasks not yet stored in ``directory``; see the module docstring."""
    t0 = time.perf_counter()
    if not isinstance(tasks, dict) or not tasks:
        raise InputError("run_tasks: tasks must be a non-empty dict {name: Task}")
    for name, task in tasks.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(f"run_tasks: task name {name!r} must be letters, digits and _ . + = - "
                             "(it names a file)")
        if not isinstance(task, Task) or not callable(task.fn):
            raise InputError(f"run_tasks: task {name!r} must be a Task with a callable fn")
        try:
            json.dumps(task.inputs)
        except TypeError as exc:
            raise InputError(f"run_tasks: task {name!r}: inputs must be JSON-serialisable ({exc})") from None
    if isinstance(max_attempts, bool) or int(max_attempts) != max_attempts or max_attempts < 1:
        raise InputError(f"run_tasks: max_attempts must be an integer >= 1, got {max_attempts!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pickle = cluster.pickler()
    with FileLock(directory / ".lock", os.fspath(directory)):
        values, resumed = {}, []
        for name, task in tasks.items():
            path = directory / f"{name}.pkl"
            if not path.exists():
                continue
            stored = pickle.loads(path.read_bytes())
            if _canonical(stored["inputs"]) != _canonical(task.inputs):
                raise InputError(
                    f"{path}: stored for other inputs than task {name!r} now has "
                    f"({_differences(stored['inputs'], task.inputs)}); use another directory, or delete the "
                    "file to recompute it")
            values[name] = stored["value"]
            resumed.append(name)
        pending = [n for n in tasks if n not in values]
        failed, computed = {}, []
        if pending:
            with _sigterm_as_interrupt():
                _run(tasks, pending, directory, scheduler, n_workers, int(max_attempts), progress, values,
                     failed, computed, pickle)
    return TaskResults(values, failed, resumed, computed, time.perf_counter() - t0)


def _run(tasks, pending, directory, scheduler, n_workers, max_attempts, progress, values, failed, computed,
         pickle) -> None:
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(tasks), initial=len(tasks) - len(pending), desc="tasks", unit="task")
    log = directory / "failures.jsonl"
    with cluster.runner(scheduler, n_workers) as run:
        def submit(name, attempt):
            t = tasks[name]
            run.submit((name, attempt), _call_task, t.fn, t.args, t.kwargs)

        for name in pending:
            submit(name, 1)
        for (name, attempt), out in run.results():
            if out.ok:
                atomic_write_bytes(directory / f"{name}.pkl",
                                   pickle.dumps({"inputs": tasks[name].inputs, "value": out.value}))
                values[name] = out.value
                computed.append(name)
                failed.pop(name, None)
                if bar is not None:
                    bar.update(1)
                continue
            with open(log, "a") as fh:
                fh.write(json.dumps({"name": name, "attempt": attempt, "error": out.error,
                                     "traceback": out.traceback}) + "\n")
            failed[name] = out.error
            if attempt < max_attempts:
                submit(name, attempt + 1)
    if bar is not None:
        bar.close()


def _call_task(fn, args, kwargs):
    return fn(*args, **kwargs)


def _differences(old, new, prefix: str = "") -> str:
    """The keys whose values differ, as 'key: old -> new', nested keys dotted."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = [_differences(old.get(k), new.get(k), f"{prefix}{k}.")
                 for k in sorted(set(old) | set(new), key=str) if _canonical(old.get(k)) != _canonical(new.get(k))]
        return "; ".join(parts)
    return f"{prefix.rstrip('.') or 'inputs'}: {old!r} -> {new!r}"


def _canonical(inputs) -> str:
    return json.dumps(inputs, sort_keys=True)


class _sigterm_as_interrupt:
    """Within the block, SIGTERM raises KeyboardInterrupt in the main thread (stored results stay)."""

    def __enter__(self):
        import threading
        self.old = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise KeyboardInterrupt("SIGTERM")
            self.old = signal.signal(signal.SIGTERM, handler)
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False
