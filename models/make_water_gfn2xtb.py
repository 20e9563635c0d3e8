"""Make the shipped water MLIP trained on GFN2-xTB (tblite), and its start structure.

Pipeline (hybrid.labelling on a local Dask cluster, hybrid.ml.training):

1. A 30-water cluster (hybrid.build.water_cluster) is equilibrated with
   GFN2-xTB Langevin dynamics at 300 K (0.5 fs, 600 steps) -> water30_start.xyz.
2. Configurations: 1500 more Langevin steps; every 10th frame (the whole
   cluster) together with a sub-cluster made of a random water and its k
   nearest neighbours (k = 0..6), the shapes that a blended region
   evaluates -> labels/water_xtb_configs.extxyz (the geometries are stored
   once: tblite's threaded SCF is not bitwise reproducible, and labels are
   keyed by geometry).
3. Labels: GFN2-xTB energies and forces through hybrid.labelling.label
   (2 Dask workers) -> labels/water_gfn2xtb.extxyz with its ledger (a killed
   run resumes without recomputing finished labels).
4. The built-in AtomicMLP is fitted by force matching (hybrid.ml.training.train)
   and saved with its metadata -> water_gfn2xtb.pt; the held-out errors go to
   water_gfn2xtb.json.

    python models/make_water_gfn2xtb.py        (a few minutes on 2 cores)
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
START = HERE / "water30_start.xyz"
MODEL = HERE / "water_gfn2xtb.pt"
CONFIGS = HERE / "labels" / "water_xtb_configs.extxyz"
LABELS = HERE / "labels" / "water_gfn2xtb.extxyz"
LEVEL = "GFN2-xTB (tblite, accuracy 0.01)"
SEED = 0


def _langevin(atoms, steps, rng, record_every=0):
    from ase import units
    from ase.md.langevin import Langevin
    md = Langevin(atoms, 0.5 * units.fs, temperature_K=300, friction=0.02, rng=rng)
    frames = []
    for k in range(steps):
        md.run(1)
        if record_every and k % record_every == 0:
            frames.append(atoms.positions.copy())
    return frames


def start_structure():
    """The equilibrated 30-water cluster (AtomicSystem), made on first use."""
    from ase.io import read, write

    from hybrid.system import AtomicSystem
    if not START.exists():
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        from couplers.ase_calculator import HybridCalculator
        from hybrid.build import water_cluster
        from hybrid.ml.adapters import XTBPotential
        atoms = water_cluster(30, seed=SEED).to_ase()
        atoms.calc = HybridCalculator(XTBPotential("GFN2-xTB", accuracy=0.01))
        rng = np.random.default_rng(SEED)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
        _langevin(atoms, 600, rng)
        atoms.calc = None
        write(START, atoms)
    return AtomicSystem.from_ase(read(START))


def configurations(n_steps=1500, every=10):
    """The geometries to label: read from CONFIGS, or made and written there once."""
    from ase.io import read, write

    from hybrid.system import AtomicSystem
    if CONFIGS.exists():
        return [AtomicSystem.from_ase(a) for a in read(CONFIGS, ":")]
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.adapters import XTBPotential
    start = start_structure()
    atoms = start.to_ase()
    atoms.calc = HybridCalculator(XTBPotential("GFN2-xTB", accuracy=0.01))
    rng = np.random.default_rng(SEED + 1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    traj = _langevin(atoms, n_steps, rng, record_every=every)
    out = []
    n_mol = len(start) // 3
    for pos in traj:
        s = start.with_positions(pos)
        out.append(s)
        com = pos.reshape(n_mol, 3, 3).mean(1)
        centre = int(rng.integers(n_mol))
        order = np.argsort(np.linalg.norm(com - com[centre], axis=1))
        k = int(rng.integers(0, 7))
        out.append(s.subset(np.concatenate([np.arange(3 * m, 3 * m + 3) for m in order[: k + 1]])))
    CONFIGS.parent.mkdir(exist_ok=True)
    write(CONFIGS, [c.to_ase() for c in out])
    return out


def main():
    import torch

    from hybrid.labelling import label, load_labels
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.model import AtomicMLP, save_model
    from hybrid.ml.training import errors, held_out_split, train
    torch.set_num_threads(1)
    label(configurations(), partial(XTBPotential, "GFN2-xTB", accuracy=0.01), LABELS, level_of_theory=LEVEL)
    frames = load_labels(LABELS)
    test_idx, rest_idx = held_out_split(len(frames), 0.1, SEED)
    test = [frames[k] for k in test_idx]
    trainval = [frames[k] for k in rest_idx]
    torch.manual_seed(SEED)
    model = AtomicMLP((1, 8), cutoff=4.5, n_radial=6, hidden=(32, 32))
    report = train(model, trainval, epochs=300, lr=5e-3, batch_size=16, w_forces=10.0, patience=40,
                   seed=SEED, progress=True)
    test_err = errors(model, test)
    meta = {"level_of_theory": LEVEL, "n_frames": len(trainval), "data": "labels/water_gfn2xtb.extxyz",
            "n_test": len(test), "test_errors": test_err, "training_script": "models/make_water_gfn2xtb.py"}
    save_model(model, MODEL, **meta)
    (HERE / "water_gfn2xtb.json").write_text(json.dumps({**meta, "val_errors": report.metrics.get("val"),
                                                         "epochs": report.epochs}, indent=2))
    print(json.dumps(test_err, indent=2))


if __name__ == "__main__":
    main()
