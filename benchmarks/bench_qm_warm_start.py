"""Cold PySCF energy+gradient vs the QM layer's warm call, side by side.

Water trimer, B3LYP/def2-SVP, grid level 3 with grid response, conv_tol
1e-10 Eh. A 0.5 fs velocity-Verlet trajectory at 300 K (HF/STO-3G forces,
fixed seed) gives 1 + 6 MD-like geometries. For every geometry after the
first, one run times

* cold:  a fresh PySCF RKS + gradient (MINAO guess), exactly as a script would;
* scanner: PySCF's own gradient scanner (previous density as the guess);
* layer: hybrid's PySCFPotential (cubic density extrapolation in the
  Löwdin basis; AO values cached per geometry; no redundant check cycle),
  after WARMUP earlier MD steps, as in a running simulation,

and prints wall time and SCF cycles per call, the speed-up over cold, and
the largest energy difference from cold (must be < 1e-7 Eh). A second table
shows what density fitting and a coarser grid add, with their energy and
force errors against the exact-J/K, level-3 reference.

Run: python benchmarks/bench_qm_warm_start.py  (about 3 minutes on 2 cores)
"""
from __future__ import annotations

import time

import numpy as np
from ase import Atoms
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet
from ase import units as ase_units

from couplers.ase_calculator import HybridCalculator
from hybrid import units
from hybrid.qm import PySCFPotential
from hybrid.system import AtomicSystem

WARMUP = 4      # MD steps the layer has seen before the measured ones (its history in a running MD)
TRIMER = """O 0.000 0.000 0.000; H 0.757 0.586 0.000; H -0.757 0.586 0.000
O 2.900 0.000 0.000; H 3.300 0.000 0.880; H 3.300 0.760 -0.440
O 1.450 2.500 0.000; H 1.400 3.100 0.760; H 0.700 1.900 0.000"""
METHOD, BASIS, LEVEL, TOL = "B3LYP", "def2-svp", 3, 1e-10


def trajectory(n_steps: int = 6 + WARMUP - 1, seed: int = 1):
    rows = [r.split() for r in TRIMER.replace("\n", ";").split(";")]
    atoms = Atoms([r[0] for r in rows], positions=[[float(x) for x in r[1:]] for r in rows])
    atoms.calc = HybridCalculator(PySCFPotential("HF", "sto-3g"))
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    frames = [atoms.positions.copy()]
    md = VelocityVerlet(atoms, timestep=0.5 * ase_units.fs)
    for _ in range(n_steps):
        md.run(1)
        frames.append(atoms.positions.copy())
    return atoms.numbers.copy(), frames


def cold(numbers, pos, density_fit=False, level=LEVEL):
    from pyscf import dft, gto
    t = time.perf_counter()
    mol = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(numbers, pos)], unit="Angstrom", basis=BASIS, verbose=0)
    mf = dft.RKS(mol, xc=METHOD)
    mf.grids.level = level
    if density_fit:
        mf = mf.density_fit()
    mf.conv_tol = TOL
    e = mf.kernel()
    g = mf.nuc_grad_method()
    g.grid_response = True
    grad = g.kernel()
    return time.perf_counter() - t, mf.cycles, e, grad


def main():
    numbers, frames = trajectory()
    layer = PySCFPotential(METHOD, BASIS, grids_level=LEVEL, conv_tol=TOL)
    for pos in frames[:WARMUP]:                        # the steps before fill the extrapolation history
        layer(AtomicSystem(numbers, pos))
    frames = frames[WARMUP - 1:]

    from pyscf import dft, gto
    mol = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(numbers, frames[0])], unit="Angstrom",
                basis=BASIS, verbose=0)
    mf = dft.RKS(mol, xc=METHOD)
    mf.grids.level, mf.conv_tol = LEVEL, TOL
    grad = mf.nuc_grad_method()
    grad.grid_response = True
    scanner = grad.as_scanner()
    scanner(mol)

    rows = []
    for pos in frames[1:]:
        tc, nc, ec, gc = cold(numbers, pos)
        t = time.perf_counter()
        es, gs = scanner(gto.M(atom=[(int(z), tuple(r)) for z, r in zip(numbers, pos)], unit="Angstrom",
                               basis=BASIS, verbose=0))
        ts, ns = time.perf_counter() - t, scanner.base.cycles
        r = layer(AtomicSystem(numbers, pos))
        info = layer.log[-1]
        rows.append((tc, nc, ts, ns, info["wall_time"], info["scf_cycles"],
                     abs(es - ec), abs(info["energy_hartree"] - ec),
                     np.abs(-r.forces * units.BOHR / units.HARTREE - gc).max()))
    a = np.array(rows)
    print(f"\nWater trimer {METHOD}/{BASIS}, grid level {LEVEL} + grid response, conv_tol {TOL:g}; "
          f"{len(rows)} MD steps of 0.5 fs\n")
    print(f"{'step':>4} {'cold s':>8} {'cyc':>4} {'scanner s':>10} {'cyc':>4} {'layer s':>8} {'cyc':>4} "
          f"{'|dE| scan Eh':>13} {'|dE| layer Eh':>13} {'max|dG| Eh/a0':>14}")
    for k, r in enumerate(rows, 1):
        print(f"{k:>4} {r[0]:8.2f} {r[1]:4d} {r[2]:10.2f} {r[3]:4d} {r[4]:8.2f} {r[5]:4d} "
              f"{r[6]:13.1e} {r[7]:13.1e} {r[8]:14.1e}")
    print(f"mean {a[:, 0].mean():8.2f} {a[:, 1].mean():4.1f} {a[:, 2].mean():10.2f} {a[:, 3].mean():4.1f} "
          f"{a[:, 4].mean():8.2f} {a[:, 5].mean():4.1f}")
    print(f"\nspeed-up over cold: scanner {a[:, 0].sum() / a[:, 2].sum():.2f}x, "
          f"layer {a[:, 0].sum() / a[:, 4].sum():.2f}x (target >= 1.3x); "
          f"max |E_layer - E_cold| = {a[:, 7].max():.1e} Eh (target < 1e-7)")

    # --- what density fitting and a coarser grid add -----------------------------
    print(f"\nCheaper settings, cold calls on the same {len(frames) - 1} geometries "
          "(errors against exact J/K, level 3):")
    print(f"{'setting':>22} {'time s':>8} {'ratio':>6} {'max|dE| Eh':>11} {'max|dF| eV/A':>13}")
    ref = [cold(numbers, p) for p in frames[1:]]
    base_t = np.mean([r[0] for r in ref])
    for label, kw in [("exact J/K, level 3", {}), ("density fitting", {"density_fit": True}),
                      ("grid level 1", {"level": 1}), ("DF + level 1", {"density_fit": True, "level": 1})]:
        out = [cold(numbers, p, **kw) for p in frames[1:]]
        t = np.mean([o[0] for o in out])
        de = max(abs(o[2] - r[2]) for o, r in zip(out, ref))
        df = max(np.abs(o[3] - r[3]).max() for o, r in zip(out, ref)) * units.HARTREE / units.BOHR
        print(f"{label:>22} {t:8.2f} {base_t / t:6.2f} {de:11.1e} {df:13.1e}")


if __name__ == "__main__":
    main()
