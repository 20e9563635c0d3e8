"""Independent tasks on a Dask cluster (or in this process), results handed back as they complete.

Where the work runs (``scheduler``):

* ``None`` (default): a ``dask.distributed.LocalCluster`` with ``n_workers`` single-threaded worker
  processes, started and closed by the runner;
* ``"synchronous"``: this process, tasks one after another (no Dask; the same task functions);
* a scheduler address (``"tcp://host:8786"``), a ``distributed.Client``, or any cluster object with a
  ``scheduler_address`` (a ``LocalCluster``, or a dask-jobqueue ``SLURMCluster``/``PBSCluster``/...,
  see :func:`jobqueue_cluster`); these are used, not closed.

A runner takes tasks (``submit(key, fn, *args)``), keeps at most ``window`` of them on the cluster, and
yields ``(key, Outcome)`` in completion order. A task that raises, or whose worker dies, comes back as an
Outcome with ``ok=False`` and the error: it never stops the other tasks. Large arguments shared by many
tasks (a pickled potential) go out once with ``share``.
"""
from __future__ import annotations

import traceback
from collections import deque
from dataclasses import dataclass

from .errors import InputError


@dataclass
class Outcome:
    """What one task returned (``value``) or why it failed (``error``, ``traceback``)."""

    ok: bool
    value: object = None
    error: str = ""
    traceback: str = ""


def runner(scheduler=None, n_workers: int = 2, window: int | None = None):
    """A :class:`SynchronousRunner` for ``scheduler="synchronous"``, else a :class:`DaskRunner`."""
    if isinstance(scheduler, str) and scheduler == "synchronous":
        return SynchronousRunner()
    return DaskRunner(scheduler, n_workers, window)


class SynchronousRunner:
    """Tasks one after another in this process, in submission order."""

    def __init__(self):
        self.queue: deque = deque()

    def share(self, obj):
        return obj

    def submit(self, key, fn, *args) -> None:
        self.queue.append((key, fn, args))

    def results(self):
        while self.queue:
            key, fn, args = self.queue.popleft()
            yield key, _call(fn, args)

    def close(self) -> None:
        self.queue.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class DaskRunner:
    """Tasks on a Dask cluster, at most ``window`` (default 4 per worker, at least 8) in flight."""

    def __init__(self, scheduler=None, n_workers: int = 2, window: int | None = None):
        from distributed import Client, LocalCluster
        self.owned = []
        if not (scheduler is None or isinstance(scheduler, (str, Client)) or hasattr(scheduler, "scheduler_address")):
            raise InputError(f"scheduler {scheduler!r}: expected None, 'synchronous', a scheduler address, "
                             "a distributed.Client or a Dask cluster")
        try:
            if scheduler is None:
                cluster = LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                                       dashboard_address=None)
                self.owned.append(cluster)
                client = Client(cluster)
                self.owned.insert(0, client)
            elif isinstance(scheduler, Client):
                client = scheduler
            else:
                client = Client(scheduler)
                self.owned.append(client)
            self.client = client
            n = len(client.scheduler_info().get("workers", {})) or int(n_workers)
            self.window = int(window) if window else max(8, 4 * n)
        except BaseException:
            self.close()
            raise
        self.queue: deque = deque()

    def share(self, obj):
        """``obj`` sent to every worker once; pass the returned future as a task argument."""
        return self.client.scatter(obj, broadcast=True)

    def submit(self, key, fn, *args) -> None:
        self.queue.append((key, fn, args))

    def results(self):
        from distributed import as_completed
        what = {}
        ac = as_completed()

        def fill():
            while self.queue and ac.count() < self.window:
                key, fn, args = self.queue.popleft()
                fut = self.client.submit(_call, fn, args, pure=False)
                what[fut.key] = key
                ac.add(fut)

        fill()
        for fut in ac:
            key = what.pop(fut.key)
            try:
                out = fut.result()
            except Exception as exc:   # e.g. KilledWorker: the worker died on this task
                out = Outcome(False, error=f"{type(exc).__name__}: {exc}")
            fut.release()
            yield key, out
            fill()       # tasks submitted while the caller handled this result go out too

    def close(self) -> None:
        for obj in self.owned:
            try:
                obj.close()
            except Exception:  # closing a cluster that is already gone
                pass
        self.owned = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _call(fn, args) -> Outcome:
    """Run one task; never raises (the error comes back in the Outcome)."""
    try:
        return Outcome(True, fn(*args))
    except Exception as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()[-4000:])


def jobqueue_cluster(kind: str = "slurm", n_jobs: int = 0, **kwargs):
    """A dask-jobqueue cluster of ``kind`` (slurm, pbs, sge, lsf, htcondor, oar, moab).

    ``kwargs`` go to the cluster class (cores, memory, queue, account,
    walltime, job_script_prologue, ...); ``n_jobs`` > 0 submits that many
    batch jobs at once. Pass the result as ``scheduler=``.
    """
    classes = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster",
               "htcondor": "HTCondorCluster", "oar": "OARCluster", "moab": "MoabCluster"}
    cls_name = classes.get(str(kind).lower())
    if cls_name is None:
        raise InputError(f"jobqueue cluster kind {kind!r} is not one of {sorted(classes)}")
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise InputError("jobqueue_cluster needs dask-jobqueue: pip install dask-jobqueue") from exc
    cluster = getattr(dask_jobqueue, cls_name)(**kwargs)
    if n_jobs:
        cluster.scale(jobs=int(n_jobs))
    return cluster


def pickler():
    """cloudpickle (ships with dask; also pickles lambdas and classes defined in scripts), else pickle."""
    try:
        import cloudpickle
        return cloudpickle
    except ImportError:  # synchronous runs without dask installed
        import pickle
        return pickle
