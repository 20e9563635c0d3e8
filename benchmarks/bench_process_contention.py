"""What a busy second core costs an SCF in its own process, with its BLAS pool at one thread or at every core.

Two ``ProcessPotential`` children run the same B3LYP/def2-SVP water (grid
level 3 with grid response, warm started); one child's BLAS pools (numpy's
and scipy's OpenBLAS, which PySCF's matrix products use) are limited to one
thread, the other's are left at every core (the library default). Each is
timed "quiet" (nothing else running) and "beside an MLIP" (the parent
evaluates an untrained ``AtomicMLP`` on 512 waters in a loop on the other
core, as ``LinearCombination(workers=2)`` does during a hybrid step). Blocks
of ``--calls`` calls alternate between the four cases, ``--rounds`` times;
the table gives the median wall time of the SCF energy+gradient (the child's
own clock) and the ratio to the same child's quiet median.

Run: python benchmarks/bench_process_contention.py   (about a minute on 2 cores)
"""
from __future__ import annotations

import argparse
import os
import threading

import numpy as np

from bench_openmm_step import water_cluster


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)

    import torch

    from hybrid import threads
    from hybrid.ml.model import AtomicMLP
    from hybrid.ml.potential import MLPotential
    from hybrid.process import ProcessPotential
    from hybrid.qm import PySCFPotential
    from hybrid.system import AtomicSystem

    threads.apply({"pyscf": 1, "torch": 1, "blas": 1})
    numbers, pos, qm = water_cluster(8)
    torch.manual_seed(0)
    ml = MLPotential(AtomicMLP((1, 8), cutoff=4.0, n_radial=6, hidden=(32, 32)))
    environment = AtomicSystem(numbers, pos)
    n_all = os.cpu_count()
    children = {f"BLAS {n}": ProcessPotential(PySCFPotential("B3LYP", "def2-svp"),
                                              threads={"pyscf": 1, "torch": 1, "blas": n}) for n in (1, n_all)}
    stop = threading.Event()

    def mlip_loop():
        threads.apply({"torch": 1})
        while not stop.is_set():
            ml.compute(environment)

    times = {(c, m): [] for c in children for m in ("quiet", "beside an MLIP")}
    n_call = 0
    for c in children.values():                          # start and warm up each child
        for _ in range(2):
            c.compute(AtomicSystem(numbers[qm], pos[qm] + 0.002 * n_call))
            n_call += 1
    for _ in range(args.rounds):
        for (name, mode), out in times.items():
            child = children[name]
            loop = None
            if mode != "quiet":
                stop.clear()
                loop = threading.Thread(target=mlip_loop)
                loop.start()
            for _ in range(args.calls):
                x = pos[qm] + 0.002 * np.sin(np.arange(9).reshape(3, 3) + n_call)
                n_call += 1
                child.compute(AtomicSystem(numbers[qm], x))
            if loop is not None:
                stop.set()
                loop.join()
            out.extend(entry["wall_time"] for entry in child.remote("log")[-args.calls:])
    for c in children.values():
        c.close()

    print(f"B3LYP/def2-SVP water energy+gradient in a child process; median of {args.rounds * args.calls} calls; "
          f"{n_all} cores")
    print()
    print("| child's BLAS threads | quiet s | beside an MLIP s | slow-down |")
    print("|---|---|---|---|")
    for name in children:
        q, b = np.median(times[(name, "quiet")]), np.median(times[(name, "beside an MLIP")])
        print(f"| {name.split()[1]} | {q:.3f} | {b:.3f} | {b / q:.2f}x |")


if __name__ == "__main__":
    main()
