"""Foundation demo: label a water dimer with PySCF, train the built-in MLIP,
run NVE dynamics in ASE on it, and check it against PySCF at the end.

    python examples/demo_ase.py          (about a minute on 2 cores)
"""
from __future__ import annotations

import numpy as np
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
from ase.md.verlet import VelocityVerlet

from couplers.ase_calculator import HybridCalculator
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.ml.training import Frame, train
from hybrid.qm import PySCFPotential
from hybrid.system import AtomicSystem

DIMER = np.array([[0.000, 0.000, 0.000], [0.757, 0.586, 0.000], [-0.757, 0.586, 0.000],
                  [0.000, -0.300, 2.900], [0.000, 0.480, 3.450], [0.000, -1.050, 3.480]])


def main(n_frames: int = 150, seed: int = 0):
    rng = np.random.default_rng(seed)
    qm = PySCFPotential("HF", "sto-3g")
    base = AtomicSystem([8, 1, 1, 8, 1, 1], DIMER)
    frames = []
    for _ in range(n_frames):
        s = base.with_positions(DIMER + rng.normal(scale=0.1, size=DIMER.shape))
        r = qm.compute(s)
        frames.append(Frame(s, r.energy, r.forces))
    print(f"labelled {n_frames} dimers at {qm.name}: mean {np.mean([l['wall_time'] for l in qm.log]):.2f} s/call")
    torch.manual_seed(seed)
    model = AtomicMLP((1, 8), cutoff=4.5, n_radial=6, hidden=(24, 24))
    report = train(model, frames, epochs=150, lr=5e-3, batch_size=8, seed=seed)
    val = report.metrics["val"]
    print(f"trained {report.epochs} epochs: validation force RMSE {val['force_rmse']:.3f} eV/Å, "
          f"energy RMSE {val['energy_rmse']:.4f} eV")

    atoms = base.to_ase()
    atoms.calc = HybridCalculator(MLPotential(model))
    MaxwellBoltzmannDistribution(atoms, temperature_K=200, rng=rng)
    md = VelocityVerlet(atoms, timestep=0.25 * units.fs)
    etot = []
    for _ in range(200):
        md.run(1)
        etot.append(atoms.get_total_energy())
    end = AtomicSystem.from_ase(atoms)
    print(np.round(atoms.get_all_distances()[[0,0,3,3],[1,2,4,5]],3), np.round(etot[::20],3))
    e_ml, e_qm = MLPotential(model).compute(end).energy, qm.compute(end).energy
    print(f"NVE 50 fs with the MLIP: total-energy spread {np.ptp(etot) * 1e3:.2f} meV; "
          f"final frame MLIP - {qm.name} = {(e_ml - e_qm) * 1e3:.1f} meV")


if __name__ == "__main__":
    main()
