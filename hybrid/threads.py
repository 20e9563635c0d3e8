"""Thread counts that follow work into helper threads and processes.

OpenMP's thread count (``omp_set_num_threads``, which PySCF's
``lib.num_threads(n)`` and torch's ``set_num_threads(n)`` call) is a setting
of the calling thread: a new thread or process starts from the process
default (``OMP_NUM_THREADS`` or every core). Code that evaluates potentials
in worker threads or processes would therefore run each PySCF or torch
kernel on all cores at once, oversubscribing the machine. :func:`current`
reads the calling thread's counts and :func:`apply` sets them elsewhere;
``inherit()`` packages the counts as a picklable initializer for a
``ThreadPoolExecutor``; a child process takes ``current(blas=True)``.

BLAS pools (OpenBLAS, MKL: numpy's and scipy's, which PySCF calls for its
matrix products) are different: one pool per library per process, sized to
every core unless limited. They are read and limited through
``threadpoolctl`` under the key ``"blas"``. A process that runs one
single-threaded job beside another (an SCF in a child process while the
parent evaluates MLIP terms) must limit them too: an unlimited 2-thread
OpenBLAS pool in a B3LYP child made its energy+gradient 1.55x slower while
a torch MLIP ran on the other core, against 0.97x with one BLAS thread
(``benchmarks/bench_process_contention.py``, 2 cores).
"""
from __future__ import annotations

import sys
from functools import partial


def current(blas: bool = False) -> dict:
    """{"pyscf": n, "torch": n} for the engines this process has imported, and with ``blas`` the size of
    its largest BLAS pool under "blas" (process-wide, so only a new process needs it; reading it scans
    the loaded libraries, ~1.5 ms)."""
    counts = {}
    if blas:
        from threadpoolctl import threadpool_info
        pools = [d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"]
        if pools:
            counts["blas"] = max(pools)
    if "pyscf.lib" in sys.modules:
        counts["pyscf"] = int(sys.modules["pyscf.lib"].num_threads())
    if "torch" in sys.modules:
        counts["torch"] = int(sys.modules["torch"].get_num_threads())
    return counts


def apply(counts: dict) -> None:
    """Set the thread counts of :func:`current`: OpenMP ones in this thread, BLAS pools process-wide
    (numpy's and scipy's are loaded first, so that their pools are among those limited)."""
    if "blas" in counts:
        import numpy  # noqa: F401
        import scipy.linalg  # noqa: F401
        from threadpoolctl import threadpool_limits
        threadpool_limits(limits=int(counts["blas"]), user_api="blas")
    if "pyscf" in counts:
        from pyscf import lib
        lib.num_threads(counts["pyscf"])
    if "torch" in counts:
        import torch
        torch.set_num_threads(counts["torch"])


def inherit():
    """A picklable zero-argument function that gives this thread's OpenMP counts to a worker thread
    (BLAS pools are shared by the process's threads already)."""
    return partial(apply, current())
