"""ProcessPotential: the same numbers as in-process, warm starts kept in the child, errors carried back."""
import copy
import os
import pickle
import signal
import time

import numpy as np
import pytest
import torch

from hybrid.errors import HybridError, InputError
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.potential import LinearCombination, Potential, Result, Subset
from hybrid.process import ProcessPotential
from hybrid.system import AtomicSystem
from hybrid.threads import current
from fdtools import WATER, fd_forces


class Sleepy(Potential):
    """E = k/2 Σ|R|², after ``delay`` seconds; raises ValueError when ``fail``."""

    def __init__(self, delay=0.0, fail=False, k=1.0):
        self.delay, self.fail, self.k, self.name = delay, fail, k, "sleepy"

    def _compute(self, s):
        time.sleep(self.delay)
        if self.fail:
            raise ValueError("sleepy was told to fail")
        return Result(0.5 * self.k * (s.positions ** 2).sum(), -self.k * s.positions)


class ThreadCounts(Sleepy):
    """Reports the thread counts of the process it runs in (``remote("counts")``)."""

    @property
    def counts(self):
        return current(blas=True)


def test_child_takes_the_thread_counts_blas_pools_included():
    """OpenMP, torch and BLAS counts reach the child, BLAS limited after the engines' libraries load."""
    remote = ProcessPotential(ThreadCounts(), threads={"torch": 1, "blas": 1})
    try:
        counts = remote.remote("counts")
        assert counts["torch"] == 1 and counts["blas"] == 1
    finally:
        remote.close()
    default = ProcessPotential(ThreadCounts())        # no counts given: the parent's own
    try:
        assert default.remote("counts")["blas"] == current(blas=True)["blas"]
    finally:
        default.close()


def test_same_result_and_exact_forces_through_the_process(water):
    torch.manual_seed(0)
    ml = MLPotential(AtomicMLP((1, 8), cutoff=3.0, n_radial=4, hidden=(8,)))
    remote = ProcessPotential(ml)
    try:
        r, r0 = remote.compute(water), ml.compute(water)
        assert abs(r.energy - r0.energy) < 1e-12 and np.abs(r.forces - r0.forces).max() < 1e-12
        assert np.abs(fd_forces(remote, water, h=1e-4) - r.forces).max() < 1e-5
    finally:
        remote.close()


def test_warm_start_lives_in_the_child_and_copies_start_their_own(water):
    from hybrid.qm import PySCFPotential
    qm = ProcessPotential(PySCFPotential("HF", "sto-3g", conv_tol=1e-10))
    assert qm.stateful
    try:
        e = [qm.compute(water.with_positions(water.positions + 0.002 * k)).energy for k in range(3)]
        log = qm.remote("log")
        assert len(log) == 3 and log[2]["scf_cycles"] < log[0]["scf_cycles"]   # extrapolated guesses
        ref = PySCFPotential("HF", "sto-3g", conv_tol=1e-10).compute(water.with_positions(water.positions + 0.004))
        assert abs(e[2] - ref.energy) < 1e-6
        twin = copy.deepcopy(qm)
        twin.compute(water)
        assert len(twin.remote("log")) == 1 and twin._process.pid != qm._process.pid
        twin.close()
        assert pickle.loads(pickle.dumps(qm)).remote("log") == []     # a pickle carries the potential, not the child
    finally:
        qm.close()


def test_terms_in_a_process_overlap_with_terms_in_the_parent(water):
    slow = ProcessPotential(Sleepy(delay=0.4))
    slow.start()
    try:
        slow.compute(water)                      # child up and warm
        both = LinearCombination([(1.0, slow), (1.0, Sleepy(delay=0.4))], workers=2)
        t0 = time.perf_counter()
        r = both.compute(water)
        assert time.perf_counter() - t0 < 0.7    # 0.4 s each, side by side
        assert r.energy == pytest.approx(2 * Sleepy().compute(water).energy)
        shared = LinearCombination([(1.0, slow), (2.0, Subset(slow, [0, 1]))], workers=2)   # one pipe, two threads
        ref = Sleepy().compute(water).energy + 2 * Sleepy().compute(water.subset([0, 1])).energy
        assert shared.compute(water).energy == pytest.approx(ref)
    finally:
        slow.close()


def test_errors_come_back_named(water):
    bad = ProcessPotential(Sleepy(fail=True))
    try:
        with pytest.raises(ValueError, match="told to fail") as info:
            bad.compute(water)
        assert "in the worker process of sleepy" in str(info.value.__cause__)
        with pytest.raises(InputError, match="closer than"):          # checked in the parent
            bad.compute(AtomicSystem([8, 1, 1], [WATER[0], WATER[0], WATER[2]]))
    finally:
        bad.close()
    dead = ProcessPotential(Sleepy())
    dead.compute(water)
    os.kill(dead._process.pid, signal.SIGKILL)
    with pytest.raises(HybridError, match="worker process died"):
        dead.compute(water)
    assert dead.compute(water).energy > 0        # the next call starts a fresh child
    dead.close()
