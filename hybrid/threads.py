"""Thread counts that follow work into helper threads and processes.

OpenMP's thread count (``omp_set_num_threads``, which PySCF's
``lib.num_threads(n)`` and torch's ``set_num_threads(n)`` call) is a setting
of the calling thread: a new thread or process starts from the process
default (``OMP_NUM_THREADS`` or every core). Code that evaluates potentials
in worker threads or processes would therefore run each PySCF or torch
kernel on all cores at once, oversubscribing the machine. :func:`current`
reads the calling thread's counts and :func:`apply` sets them elsewhere;
``inherit()`` packages both as a picklable initializer (for a
``ThreadPoolExecutor`` or a child process).
"""
from __future__ import annotations

import sys
from functools import partial


def current() -> dict:
    """{"pyscf": n, "torch": n} for the engines this process has imported."""
    counts = {}
    if "pyscf.lib" in sys.modules:
        counts["pyscf"] = int(sys.modules["pyscf.lib"].num_threads())
    if "torch" in sys.modules:
        counts["torch"] = int(sys.modules["torch"].get_num_threads())
    return counts


def apply(counts: dict) -> None:
    """Set the thread counts of :func:`current` in this thread (importing the engines named)."""
    if "pyscf" in counts:
        from pyscf import lib
        lib.num_threads(counts["pyscf"])
    if "torch" in counts:
        import torch
        torch.set_num_threads(counts["torch"])


def inherit():
    """A picklable zero-argument function that gives the current thread counts to another thread or process."""
    return partial(apply, current())
