"""Make water30.xyz, the start of the main job, from models/water30_start.xyz.

The shipped start structure is a frame of a GFN2-xTB Langevin run. On the
HF/6-31G* surface its O–H bonds and angles are strained (HF bonds are
shorter), so NVE dynamics from it heats up by ~150 K in the first 20 fs.
Here it is equilibrated by 1 ps of Langevin dynamics at 300 K (0.5 fs
steps, friction 0.02/fs, seed 0) on the main job's outer level, the
HF/6-31G* water MLIP (models/water_hf631gs.pt). Positions
and momenta (total and angular momentum removed) are written as extxyz,
waters reordered by the distance of their centre of mass from the
cluster's, so that molecule 0 is the central water.

    python examples/main/make_structure.py          (about a minute on 2 cores)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def main(seed: int = 0, temperature_K: float = 300.0, steps: int = 2000) -> None:
    import ase.io
    import torch
    from ase import Atoms, units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.potential import MLPotential

    torch.set_num_threads(1)
    surrogate = MLPotential.load(ROOT / "models" / "water_hf631gs.pt")
    atoms = ase.io.read(ROOT / "models" / "water30_start.xyz")
    atoms.calc = HybridCalculator(surrogate)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    Stationary(atoms)
    ZeroRotation(atoms)
    md = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature_K, friction=0.02 / units.fs, rng=rng)
    md.run(steps)
    Stationary(atoms)
    ZeroRotation(atoms)
    n = len(atoms) // 3
    pos = atoms.positions.reshape(n, 3, 3)
    m = atoms.get_masses().reshape(n, 3)
    com = (pos * m[..., None]).sum(1) / m.sum(1)[:, None]
    order = np.argsort(np.linalg.norm(com - atoms.get_center_of_mass(), axis=1), kind="stable")
    idx = np.concatenate([np.arange(3 * k, 3 * k + 3) for k in order])
    out = Atoms(atoms.numbers[idx], atoms.positions[idx], momenta=atoms.get_momenta()[idx])
    out.info.update(charge=0, multiplicity=1,
                    comment=f"30 waters equilibrated {steps * 0.5 / 1000:g} ps at {temperature_K:g} K on "
                            "the HF/6-31G* water MLIP (models/water_hf631gs.pt); central water first "
                            "(examples/main/make_structure.py)")
    ase.io.write(HERE / "water30.xyz", out, format="extxyz")
    print(f"wrote {HERE / 'water30.xyz'}: T = {out.get_temperature():.0f} K")


if __name__ == "__main__":
    main()
