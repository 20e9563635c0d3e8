"""Time per MD step of a static QM/MLIP model through OpenMM, beside ASE and a cold PySCF call.

Model: one QM water at the centre of a cluster of n³ waters (cubic lattice,
3.1 Å spacing, random orientations, fixed seed; ``--n-side``, default 3, 6
and 8, i.e. 27, 216 and 512 waters, one table each and a summary), the
static ONIOM blend

    E = E_ML(all) − E_ML(QM water) + E_QM(QM water)

built from ``LinearCombination`` and ``Subset``; QM = ``PySCFPotential``
(B3LYP/def2-SVP, grid level 3 with grid response, conv_tol 1e-10 Eh, warm
started from the extrapolated density), ML = an untrained ``AtomicMLP``
(seed 0; timing only). Side by side, interleaved step by step in an order
that rotates every step, so that machine load and cache effects hit all
paths alike:

* hybrid:  OpenMM VerletIntegrator (0.5 fs, Reference platform) with the
  blend as one ``couplers.openmm_force.PotentialForce``; its terms run
  concurrently (``LinearCombination(workers=2)``), the QM layer in its own
  process (``hybrid.process.ProcessPotential``: two threads of one Python
  process would take turns at the interpreter lock), so the two MLIP terms
  run on the second core while the SCF runs on the first;
* hybrid serial: the same with ``workers=1`` (terms one after another, as
  SimpleQMMM does them), to show what the concurrency is worth;
* ASE:     ``ase.calculators.qmmm.SimpleQMMM`` over ``HybridCalculator`` s of
  an identical PySCFPotential and the same MLIP, ``VelocityVerlet`` 0.5 fs,
  same start (positions and velocities);
* cold:    a fresh PySCF RKS + gradient of the QM water alone (MINAO guess,
  same settings), at the hybrid run's current geometry — what a script
  without warm starts pays for its QM part alone.

PySCF, torch and the BLAS pools run on ``--threads`` threads (default 1: on
a shared 2-core machine OpenMP spin-waiting makes small SCFs several times
slower, and a BLAS pool on both cores in the QM process fights the MLIP). Prints
the medians over ``--steps`` timed steps (after 2 warm-up steps), the
ratios, and the SCF cycles per call.

The sizes matter: every path runs the same warm-started QM layer, so with
27 waters (MLIP call ~8 ms) hybrid and SimpleQMMM differ only by their few
ms of non-QM overhead, within the QM time's noise; with hundreds of MLIP
waters SimpleQMMM pays the MLIP calls after the QM call, while the hybrid
runs them on the second core during the SCF.

Run: python benchmarks/bench_openmm_step.py   (about 1.5 minutes on 2 cores)
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from hybrid import units

WATER = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


def water_cluster(n_side: int = 3, spacing: float = 3.1, seed: int = 0):
    """n_side³ waters on a cubic lattice (Å), non-periodic; returns numbers, positions, index of the centre water."""
    rng = np.random.default_rng(seed)
    pos = []
    for i in range(n_side):
        for j in range(n_side):
            for k in range(n_side):
                rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                pos.append(WATER @ rot.T + spacing * np.array([i, j, k]) + rng.normal(scale=0.05, size=3))
    centre = (n_side ** 3) // 2
    return np.tile([8, 1, 1], n_side ** 3), np.vstack(pos), np.arange(3 * centre, 3 * centre + 3)


def cold_pyscf(method, basis, numbers, pos):
    """Fresh PySCF objects every call: energy + analytic gradient (grid response for DFT)."""
    from pyscf import dft, gto, scf
    t = time.perf_counter()
    mol = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(numbers, pos)], unit="Angstrom", basis=basis, verbose=0)
    if method.upper() == "HF":
        mf = scf.RHF(mol)
    else:
        mf = dft.RKS(mol, xc=method)
        mf.grids.level = 3
    mf.conv_tol = 1e-10
    mf.kernel()
    g = mf.nuc_grad_method()
    if method.upper() != "HF":
        g.grid_response = True
    g.kernel()
    return time.perf_counter() - t, int(mf.cycles)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="B3LYP")
    ap.add_argument("--basis", default="def2-svp")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-side", type=int, nargs="+", default=[3, 6, 8],
                    help="MLIP environments of n³ waters, one table each")
    ap.add_argument("--workers", type=int, default=2, help="threads for the blend's terms (hybrid row)")
    args = ap.parse_args(argv)
    from hybrid import threads
    threads.apply({"pyscf": args.threads, "torch": args.threads, "blas": args.threads})
    summary = [measure(args, n) for n in args.n_side]
    print("## Summary: one QM water, MLIP environment of growing size")
    print()
    print("| waters | atoms | MLIP call s | hybrid s | SimpleQMMM s | cold PySCF s | hybrid / cold (target <= 0.8) "
          "| hybrid / SimpleQMMM (target < 1) | paired per-step median |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in summary:
        print(f"| {r['waters']} | {r['atoms']} | {r['ml']:.3f} | {r['h']:.3f} | {r['a']:.3f} | {r['c']:.3f} "
              f"| {r['h'] / r['c']:.2f} | {r['h'] / r['a']:.2f} | {r['paired']:.2f} |")


def measure(args, n_side: int) -> dict:
    """Run the four paths side by side on one QM water in n_side³ waters; print its table; return the medians."""
    import openmm
    import torch
    from ase import Atoms
    from ase import units as ase_units
    from ase.calculators.qmmm import SimpleQMMM
    from ase.md.verlet import VelocityVerlet

    from couplers.ase_calculator import HybridCalculator
    from couplers.openmm_force import PotentialForce
    from hybrid.ml.model import AtomicMLP
    from hybrid.ml.potential import MLPotential
    from hybrid.potential import LinearCombination, Subset
    from hybrid.process import ProcessPotential
    from hybrid.qm import PySCFPotential
    from hybrid.system import AtomicSystem

    numbers, pos, qm = water_cluster(n_side)
    torch.manual_seed(0)
    ml = MLPotential(AtomicMLP((1, 8), cutoff=4.0, n_radial=6, hidden=(32, 32)))
    whole = AtomicSystem(numbers, pos)
    ml.compute(whole)
    t_ml = []
    for _ in range(5):
        t0 = time.perf_counter()
        ml.compute(whole)
        t_ml.append(time.perf_counter() - t0)
    qm_hybrid = ProcessPotential(PySCFPotential(args.method, args.basis))    # takes this process's counts
    qm_hybrid.start()
    qm_serial = PySCFPotential(args.method, args.basis)
    qm_ase = PySCFPotential(args.method, args.basis)

    def blend(qm_layer, workers):
        return LinearCombination([(1.0, ml), (-1.0, Subset(ml, qm, name="ML[QM]")),
                                  (1.0, Subset(qm_layer, qm, name="QM"))], workers=workers)

    atoms = Atoms(numbers=numbers, positions=pos)
    rng = np.random.default_rng(1)
    masses = atoms.get_masses()
    v = rng.normal(size=pos.shape) * np.sqrt(units.KB_EV * 300 / masses)[:, None]   # ASE velocity units
    atoms.set_velocities(v)
    dt_fs = 0.5

    def openmm_run(potential):
        system = openmm.System()
        for m in masses:
            system.addParticle(float(m))
        force = PotentialForce(potential, np.arange(len(numbers)), numbers, periodic=False, name="QM/ML blend")
        force.add_to(system)
        integ = openmm.VerletIntegrator(dt_fs / units.PS)
        ctx = openmm.Context(system, integ, openmm.Platform.getPlatformByName("Reference"))
        ctx.setPositions(pos / units.NM)
        ctx.setVelocities(v * ase_units.fs * units.PS / units.NM)
        return force, integ, ctx

    # hybrid through OpenMM: terms concurrent, and serial
    force, integ, ctx = openmm_run(blend(qm_hybrid, args.workers))
    force_s, integ_s, _ = openmm_run(blend(qm_serial, 1))

    # ASE SimpleQMMM on the same calculators
    atoms.calc = SimpleQMMM(list(qm), HybridCalculator(qm_ase), HybridCalculator(ml), HybridCalculator(ml))
    md = VelocityVerlet(atoms, timestep=dt_fs * ase_units.fs)

    t_h, t_s, t_a, t_c, cyc_h, cyc_s, cyc_a, cyc_c, t_qm, t_qm_s, t_qm_a = ([] for _ in range(11))
    paths = [lambda: integ.step(1), lambda: integ_s.step(1), lambda: md.run(1)]
    for step in range(2 + args.steps):
        took = [0.0] * 3
        for k in np.roll(np.arange(3), step):      # rotate the order: no path always runs first
            t0 = time.perf_counter()
            paths[k]()
            took[k] = time.perf_counter() - t0
        th, ts, ta = took
        cur = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
        tc, cc = cold_pyscf(args.method, args.basis, numbers[qm], np.asarray(cur)[qm] * units.NM)
        if step >= 2:
            t_h.append(th), t_s.append(ts), t_a.append(ta), t_c.append(tc), cyc_c.append(cc)
            log_h = qm_hybrid.remote("log")
            cyc_h.append(log_h[-1]["scf_cycles"]), cyc_a.append(qm_ase.log[-1]["scf_cycles"])
            cyc_s.append(qm_serial.log[-1]["scf_cycles"])
            t_qm.append(log_h[-1]["wall_time"]), t_qm_a.append(qm_ase.log[-1]["wall_time"])
            t_qm_s.append(qm_serial.log[-1]["wall_time"])
    for f, log in ((force, qm_hybrid.remote("log")), (force_s, qm_serial.log)):
        assert f.n_evaluations == 2 + args.steps and len(log) == 2 + args.steps
    qm_hybrid.close()

    med = {k: float(np.median(x)) for k, x in (("h", t_h), ("s", t_s), ("a", t_a), ("c", t_c))}
    print(f"one {args.method}/{args.basis} QM water in a cluster of {len(numbers) // 3} MLIP waters "
          f"({len(numbers)} atoms), {dt_fs} fs steps, {args.threads} thread(s), "
          f"median of {args.steps} steps after 2 warm-up steps")
    print()
    print("| path | s per step | × cold PySCF | × SimpleQMMM | SCF cycles | QM calls/step |")
    print("|---|---|---|---|---|---|")
    rows = [(f"hybrid: OpenMM VerletIntegrator + PotentialForce, QM in its own process, {args.workers} workers", "h",
             np.median(cyc_h), 1),
            ("hybrid serial: the same, terms one after another", "s", np.median(cyc_s), 1),
            ("ASE SimpleQMMM + VelocityVerlet", "a", np.median(cyc_a), 1),
            ("cold PySCF E+grad of the QM water", "c", np.median(cyc_c), 1)]
    for label, k, cyc, calls in rows:
        print(f"| {label} | {med[k]:.3f} | {med[k] / med['c']:.2f} | {med[k] / med['a']:.2f} | {cyc:.0f} | {calls} |")
    print()
    rest_h = np.median(np.array(t_h) - np.array(t_qm))
    rest_s = np.median(np.array(t_s) - np.array(t_qm_s))
    rest_a = np.median(np.array(t_a) - np.array(t_qm_a))
    print(f"hybrid step = QM layer {np.median(t_qm):.3f} s + what the MLIP terms, blend, OpenMM bridge and "
          f"integrator add beyond it {rest_h * 1e3:.1f} ms (MLIP concurrent with QM)")
    print(f"serial step = QM layer {np.median(t_qm_s):.3f} s + MLIP, blend, OpenMM bridge and integrator "
          f"{rest_s * 1e3:.1f} ms")
    print(f"ASE step    = QM layer {np.median(t_qm_a):.3f} s + MLIP calls, SimpleQMMM and VelocityVerlet "
          f"{rest_a * 1e3:.1f} ms")
    print(f"target hybrid <= 0.8 x cold PySCF: {'met' if med['h'] <= 0.8 * med['c'] else 'NOT met'} "
          f"({med['h'] / med['c']:.3f}); hybrid < SimpleQMMM: {'met' if med['h'] < med['a'] else 'NOT met'} "
          f"({med['h'] / med['a']:.3f}; all paths run the same warm-started QM layer, so the difference is "
          f"the non-QM part, {rest_h * 1e3:.1f} ms vs {rest_a * 1e3:.1f} ms, plus QM-time noise); "
          f"per-step paired ratio hybrid/SimpleQMMM: median {np.median(np.array(t_h) / np.array(t_a)):.3f}")
    print()
    return dict(waters=len(numbers) // 3, atoms=len(numbers), ml=float(np.median(t_ml)),
                paired=float(np.median(np.array(t_h) / np.array(t_a))), **med)


if __name__ == "__main__":
    main()
