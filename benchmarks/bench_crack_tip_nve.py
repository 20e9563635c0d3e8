"""NVE of a silicon crack whose high-level region follows the tip, beside the low level alone.

A 432-atom Si (111)[1-10] slab (continuum.crack_slab) opened by the anisotropic K_I field about its
centre, 100 K Maxwell–Boltzmann velocities, velocity Verlet (ASE). Stillinger–Weber stands in for the
MLIP and Kumagai–Tersoff for the QM level (both matscipy, so the run takes minutes; the real levels are
issue #14's Si MLIP and GFN2-xTB). The region: a ball of 4 Å + 1.5 Å buffer about the tip that
couplers.crack_tip locates at every step, either per-atom units with ``sorted`` partitions (the buffer
holds 10-30 atoms) or blocks of ~4 atoms (block_units) with ``product`` partitions (3-4 in the buffer).

One table: for each K, the low level alone and the blend, max |E − E0| and the end drift of the total
energy, how far the located tip moved, and wall time per step.

    python benchmarks/bench_crack_tip_nve.py [--steps 400] [--dt 0.5] [--K 1 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def levels():
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms import Kumagai, StillingerWeber
    from matscipy.calculators.manybody.explicit_forms.kumagai import Kumagai_Comp_Mat_Sci_39_Si
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import Stillinger_Weber_PRB_31_5262_Si

    from hybrid.ml.adapters import ASECalculatorPotential
    from hybrid.system import AtomicSystem

    class InBox(ASECalculatorPotential):
        """matscipy needs a cell: isolated regions get a 200 Å open box."""
        def _compute(self, system):
            if not system.periodic:
                system = AtomicSystem(system.numbers, system.positions, np.eye(3) * 200.0, [False] * 3,
                                      system.charge, system.multiplicity)
            return super()._compute(system)

    return (InBox(Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si)), "SW"),
            InBox(Manybody(**Kumagai(Kumagai_Comp_Mat_Sci_39_Si)), "Kumagai"))


def run(potential, system, steps, dt, tip=None):
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
    from ase.md.verlet import VelocityVerlet

    from couplers.ase_calculator import HybridCalculator
    atoms = system.to_ase()
    atoms.calc = HybridCalculator(potential)
    MaxwellBoltzmannDistribution(atoms, temperature_K=100, rng=np.random.default_rng(1))
    Stationary(atoms)
    energies, tips = [], []

    def record():
        energies.append(atoms.get_potential_energy() + atoms.get_kinetic_energy())
        if tip is not None:
            tips.append(tip.last_tip.position[0])

    dyn = VelocityVerlet(atoms, dt * units.fs)
    dyn.attach(record, interval=1)
    t0 = time.perf_counter()
    dyn.run(steps)
    e = np.array(energies) - energies[0]
    return np.abs(e).max(), e[-1], (tips[-1] - tips[0]) if tips else float("nan"), (time.perf_counter() - t0) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--dt", type=float, default=0.5, help="fs")
    ap.add_argument("--K", type=float, nargs="+", default=[1.0, 2.0], help="loads in MPa√m")
    args = ap.parse_args(argv)
    from continuum.crack_slab import GPA, MPA_SQRT_M, k_field_positions, silicon_crack, silicon_crack_slab
    from couplers.blend import blended
    from couplers.crack_tip import CrackTipLocator, CrackTipPartitioner, block_units
    from hybrid.system import AtomicSystem

    low, high = levels()
    slab, y0 = silicon_crack_slab((4, 3, 3))
    centre = slab.positions.mean(axis=0)
    crack = silicon_crack(166 * GPA, 64 * GPA, 80 * GPA)
    print(f"{len(slab)} atoms, {args.steps} steps of {args.dt} fs; tip region 4 + 1.5 Å\n")
    print("| K (MPa√m) | model | max abs(E − E0) (meV) | drift (meV) | tip moved (Å) | s/step |")
    print("|---|---|---|---|---|---|")
    for K in args.K:
        a = slab.copy()
        a.positions = k_field_positions(slab, crack, K * MPA_SQRT_M, (centre[0], y0))
        system = AtomicSystem.from_ase(a)
        window = ((-10, 10), (y0 - centre[1] - 7, y0 - centre[1] + 7))
        part = CrackTipPartitioner(CrackTipLocator(window), 4.0, 1.5)
        model = blended(low, high, part, scheme="sorted", bonds=np.zeros((0, 2), int))
        units = block_units(slab.positions, (4.4, 4.7, 3.84))
        blocks = CrackTipPartitioner(CrackTipLocator(window), 4.0, 1.5, units=units)
        grouped = blended(low, high, blocks, scheme="product", max_buffer=8, bonds=np.zeros((0, 2), int))
        for name, pot, tip in (("SW alone", low, None), ("SW + Kumagai, atoms, sorted", model, part),
                               ("SW + Kumagai, 4-atom blocks, product", grouped, blocks)):
            emax, drift, moved, cost = run(pot, system, args.steps, args.dt, tip)
            moved_text = "—" if np.isnan(moved) else f"{moved:.2f}"
            print(f"| {K:g} | {name} | {emax * 1e3:.1f} | {drift * 1e3:+.1f} | {moved_text} | {cost:.3f} |")


if __name__ == "__main__":
    main()
