"""Make the shipped ground-state MLIP of methaniminium (CH₂NH₂⁺) in a water cluster, trained on GFN2-xTB.

It is the low level of the state-specific blend in which the SA-CASSCF chromophore
(models/make_methaniminium_sacasscf.py) is excited inside water: E_k = E_MLIP(all) + E_k(chromophore) −
E_MLIP(chromophore) (couplers.state_blend). So it must describe water–water and chromophore–water
contacts, and the chromophore alone, twisted as its excited state twists.

Pipeline (hybrid.labelling on a local Dask cluster, hybrid.ml.training):

1. Start: the chromophore at ``START`` of the SA-CASSCF script with ``N_WATER`` waters placed at random
   in a shell 3.2–5.5 Å about its centre (no two atoms of different molecules closer than 2.4 Å), then
   GFN2-xTB Langevin dynamics at 300 K (0.5 fs, 600 steps) → methaniminium_water_start.xyz.
2. Configurations: 1500 more Langevin steps; every 10th frame (the whole cluster); the same frame with the
   chromophore's NH₂ turned about C–N by τ ~ U(0°, 90°) and the bond stretched by U(0, 0.9) Å (on S1 the
   bond reaches 1.9 Å within 12 fs); and a
   sub-cluster of the chromophore (twisted or not) with its k nearest waters (k = 0..4)
   → labels/methaniminium_water_configs.extxyz (stored once: tblite is not bitwise reproducible and
   labels are keyed by geometry).
3. Labels: GFN2-xTB energies and forces (charge +1) through hybrid.labelling.label
   → labels/methaniminium_water_gfn2xtb.extxyz with its ledger.
4. An AtomicMLP (H, C, N, O) fitted by force matching; held-out errors with it
   → methaniminium_water_gfn2xtb.pt, .json.

    python models/make_methaniminium_water_gfn2xtb.py
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
START = HERE / "methaniminium_water_start.xyz"
MODEL = HERE / "methaniminium_water_gfn2xtb.pt"
REPORT = HERE / "methaniminium_water_gfn2xtb.json"
CONFIGS = HERE / "labels" / "methaniminium_water_configs.extxyz"
LABELS = HERE / "labels" / "methaniminium_water_gfn2xtb.extxyz"
LEVEL = "GFN2-xTB (tblite, accuracy 0.01)"
N_WATER = 10
EQUILIBRATION, STEPS, EVERY = 600, 1500, 10        # Langevin steps of 0.5 fs; every EVERY-th frame is used
EPOCHS = 300
SEED = 0


def _xtb():
    from hybrid.ml.adapters import XTBPotential
    return XTBPotential("GFN2-xTB", accuracy=0.01)


def solvated(n_water: int, seed: int):
    """The chromophore (6 atoms, first) and ``n_water`` waters (O, H, H) in a shell about it, charge +1."""
    from hybrid.build import _rotated_water
    from hybrid.system import AtomicSystem
    from make_methaniminium_sacasscf import NUMBERS, START as CHROMOPHORE
    rng = np.random.default_rng(seed)
    pos = [np.array(CHROMOPHORE, float)]
    centre = pos[0].mean(0)
    while len(pos) < n_water + 1:
        u = rng.normal(size=3)
        w = _rotated_water(rng) + centre + u / np.linalg.norm(u) * rng.uniform(3.2, 5.5)
        if np.linalg.norm(np.vstack(pos)[:, None] - w[None], axis=-1).min() > 2.4:
            pos.append(w)
    return AtomicSystem(list(NUMBERS) + [8, 1, 1] * n_water, np.vstack(pos), charge=1)


def start_structure():
    from ase.io import read, write

    from hybrid.system import AtomicSystem
    if not START.exists():
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        from couplers.ase_calculator import HybridCalculator
        from make_water_gfn2xtb import _langevin
        atoms = solvated(N_WATER, SEED).to_ase()
        atoms.calc = HybridCalculator(_xtb())
        rng = np.random.default_rng(SEED)
        MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
        _langevin(atoms, EQUILIBRATION, rng)
        atoms.calc = None
        write(START, atoms)
    s = AtomicSystem.from_ase(read(START))
    return AtomicSystem(s.numbers, s.positions, charge=1)


def configurations():
    from ase.io import read, write

    from hybrid.system import AtomicSystem
    from make_methaniminium_sacasscf import twist
    if CONFIGS.exists():
        return [AtomicSystem(a.numbers, a.positions, charge=1) for a in read(CONFIGS, ":")]
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from couplers.ase_calculator import HybridCalculator
    from make_water_gfn2xtb import _langevin
    start = start_structure()
    atoms = start.to_ase()
    atoms.calc = HybridCalculator(_xtb())
    rng = np.random.default_rng(SEED + 1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    traj = _langevin(atoms, STEPS, rng, record_every=EVERY)
    out = []
    for pos in traj:
        s = start.with_positions(pos)
        tw = pos.copy()
        tw[:6] = twist(pos[:6], rng.uniform(0, np.pi / 2), rng.uniform(0, 0.9))
        out += [s, s.with_positions(tw)]
        base = tw if rng.random() < 0.5 else pos
        com = base[6:].reshape(-1, 3, 3).mean(1)
        order = np.argsort(np.linalg.norm(com - base[:6].mean(0), axis=1))
        k = int(rng.integers(0, 5))
        keep = np.concatenate([np.arange(6)] + [6 + np.arange(3 * m, 3 * m + 3) for m in order[:k]])
        out.append(AtomicSystem(start.numbers[keep], base[keep], charge=1))
    CONFIGS.parent.mkdir(exist_ok=True)
    write(CONFIGS, [c.to_ase() for c in out])
    return out


def main():
    import torch

    from hybrid.labelling import label, load_labels
    from hybrid.ml.model import AtomicMLP, save_model
    from hybrid.ml.training import errors, held_out_split, train
    torch.set_num_threads(1)
    label(configurations(), partial(_xtb), LABELS, level_of_theory=LEVEL)
    frames = load_labels(LABELS)
    test_idx, rest_idx = held_out_split(len(frames), 0.1, SEED)
    test = [frames[k] for k in test_idx]
    trainval = [frames[k] for k in rest_idx]
    torch.manual_seed(SEED)
    model = AtomicMLP((1, 6, 7, 8), cutoff=4.5, n_radial=6, hidden=(32, 32))
    report = train(model, trainval, epochs=EPOCHS, lr=5e-3, batch_size=16, w_forces=10.0, patience=40,
                   seed=SEED, progress=True)
    test_err = errors(model, test)
    meta = {"level_of_theory": LEVEL, "n_frames": len(trainval), "data": "labels/" + LABELS.name,
            "n_test": len(test), "test_errors": test_err, "training_script": "models/" + Path(__file__).name}
    save_model(model, MODEL, **meta)
    REPORT.write_text(json.dumps({**meta, "val_errors": report.metrics.get("val"), "epochs": report.epochs},
                                 indent=2))
    print(json.dumps(test_err, indent=2))


if __name__ == "__main__":
    import sys
    sys.path.insert(0, str(HERE))
    main()
