"""Make the project's default water models at the default QM level, HF/6-31G*.

Pipeline (hybrid.labelling on a local Dask cluster, hybrid.ml.training):

1. Configurations: frames of a GFN2-xTB Langevin run of the 30-water start
   structure (models/water30_start.xyz, 300 K), cut into clusters of a random
   water and its k nearest neighbours: 160 with k = 0..5
   (labels/water_clusters.extxyz), 60 larger ones with k = 7..11 cut from
   the 30-water frames of make_water_gfn2xtb.py, so that a water's whole
   first and second shell within the 4.5 Å cutoff is seen, and 40 of those
   small clusters with the molecules moved rigidly towards their centre
   (factor 0.86-0.95): the short O-O contacts that a model without them
   lets atoms fall into in dynamics.
2. Labels: HF/6-31G* energies and forces (labels/water_hf631gs.extxyz, with
   its ledger: a killed run resumes) and GFN2-xTB at the same geometries.
3. Models, each trained by force matching on the same training split:
   * water_hf631gs.pt - the MLIP at HF/6-31G*;
   * water_delta_xtb_hf631gs.pt - the Δ-ML correction: HF/6-31G* − GFN2-xTB.
4. The held-out table (force RMSE against HF/6-31G* and time per force
   call: GFN2-xTB alone, Δ-ML = xTB + correction, the MLIP, HF itself) is
   printed and written to water_hf631gs.json.

    python models/make_water_hf.py          (about 45 minutes on 2 cores)
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels" / "water_hf631gs.extxyz"
CONFIGS = HERE / "labels" / "water_clusters.extxyz"     # the geometries, fixed once made
SOLVATED = HERE / "labels" / "water_solvated.extxyz"    # likewise, the solvated clusters
MLIP = HERE / "water_hf631gs.pt"
DELTA = HERE / "water_delta_xtb_hf631gs.pt"
LEVEL = ("HF", "6-31g*")
SEED = 0


def configurations(n: int = 160):
    """The cluster geometries: read from CONFIGS, or made and written there once.

    (tblite's threaded SCF is not bitwise reproducible, so the trajectory is
    stored rather than re-run: labels are keyed by geometry.)"""
    from ase.io import read, write

    from hybrid.system import AtomicSystem
    if CONFIGS.exists():
        return [AtomicSystem.from_ase(a) for a in read(CONFIGS, ":")][:n]
    import make_water_gfn2xtb as base
    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.adapters import XTBPotential
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    start = base.start_structure()
    atoms = start.to_ase()
    atoms.calc = HybridCalculator(XTBPotential("GFN2-xTB", accuracy=0.01))
    rng = np.random.default_rng(SEED + 7)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    traj = base._langevin(atoms, n * 4, rng, record_every=4)
    n_mol = len(start) // 3
    out = []
    for pos in traj[:n]:
        com = pos.reshape(n_mol, 3, 3).mean(1)
        centre = int(rng.integers(n_mol))
        order = np.argsort(np.linalg.norm(com - com[centre], axis=1))
        k = int(rng.integers(0, 6))
        idx = np.concatenate([np.arange(3 * m, 3 * m + 3) for m in order[: k + 1]])
        out.append(start.with_positions(pos).subset(idx))
    CONFIGS.parent.mkdir(exist_ok=True)
    write(CONFIGS, [s.to_ase() for s in out])
    return out


def larger_configurations(n_large: int = 60, n_close: int = 40):
    """Bigger clusters and compressed small ones, derived (deterministically) from stored geometries."""
    from ase.io import read

    from hybrid.system import AtomicSystem
    import make_water_gfn2xtb as base
    frames = [AtomicSystem.from_ase(a) for a in read(base.CONFIGS, ":")]
    frames = [f for f in frames if len(f) == 90]           # the whole 30-water cluster frames
    rng = np.random.default_rng(SEED + 11)
    out = []
    for k in range(n_large):
        s = frames[k % len(frames)]
        n_mol = len(s) // 3
        com = s.positions.reshape(n_mol, 3, 3).mean(1)
        order = np.argsort(np.linalg.norm(com - com[int(rng.integers(n_mol))], axis=1))
        size = int(rng.integers(8, 13))
        out.append(s.subset(np.concatenate([np.arange(3 * m, 3 * m + 3) for m in order[:size]])))
    small = [c for c in configurations() if len(c) >= 9]
    for k in range(n_close):
        c = small[int(rng.integers(len(small)))]
        mol = c.positions.reshape(-1, 3, 3)
        com = mol.mean(1)
        centre = com.mean(0)
        shift = (centre + rng.uniform(0.86, 0.95) * (com - centre)) - com
        out.append(c.with_positions((mol + shift[:, None, :]).reshape(-1, 3)))
    return out


def solvated_configurations(n: int = 80, equilibrate: int = 600, every: int = 15):
    """Fully solvated waters: clusters of every water within R = 3.8-4.6 Å (centre of mass) of an interior
    water of the 30-water cluster (9-15 waters), cut from a Langevin run on the previous Δ-ML model.

    A QM region's environment in the main job is a fully solvated water at HF-like geometry; the
    k-nearest clusters above are mostly surface waters at GFN2-xTB geometry (O-H bonds ~0.03 Å longer).
    Langevin dynamics (300 K, 0.5 fs, friction 0.02/fs, seed SEED + 13) of models/water30_start.xyz on
    xTB + water_delta_xtb_hf631gs.pt as it was before this data set existed (stored in git history;
    the geometries are written to SOLVATED once and read from there afterwards): ``equilibrate``
    steps, then a frame every ``every`` steps; centre: a random water whose centre of mass lies within
    3 Å of the cluster's."""
    from ase.io import read, write

    from hybrid.system import AtomicSystem
    if SOLVATED.exists():
        return [AtomicSystem.from_ase(a) for a in read(SOLVATED, ":")][:n]
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    import make_water_gfn2xtb as base
    from couplers.ase_calculator import HybridCalculator
    from hybrid.delta import DeltaMLPotential
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.potential import MLPotential
    start = base.start_structure()
    atoms = start.to_ase()
    atoms.calc = HybridCalculator(DeltaMLPotential(XTBPotential("GFN2-xTB", accuracy=0.01),
                                                   MLPotential.load(DELTA)))
    rng = np.random.default_rng(SEED + 13)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=rng)
    base._langevin(atoms, equilibrate, rng)
    traj = base._langevin(atoms, n * every, rng, record_every=every)
    n_mol = len(start) // 3
    out = []
    for pos in traj:
        com = pos.reshape(n_mol, 3, 3).mean(1)
        interior = np.flatnonzero(np.linalg.norm(com - com.mean(0), axis=1) < 3.0)
        centre = int(interior[rng.integers(len(interior))])
        d = np.linalg.norm(com - com[centre], axis=1)
        order = np.argsort(d)
        keep = order[d[order] < rng.uniform(3.8, 4.6)]
        out.append(start.with_positions(pos).subset(np.concatenate([np.arange(3 * m, 3 * m + 3) for m in keep])))
    write(SOLVATED, [s.to_ase() for s in out])
    return out


def rmse_and_time(pot, frames):
    err, t = [], []
    for f in frames:
        t0 = time.perf_counter()
        r = pot.compute(f.system)
        t.append(time.perf_counter() - t0)
        err.append((r.forces - f.forces).ravel())
    return float(np.sqrt(np.mean(np.concatenate(err) ** 2))), float(np.median(t))


def main():
    import sys
    sys.path.insert(0, str(HERE))
    import torch

    from hybrid.delta import DeltaMLPotential
    from hybrid.labelling import label, load_labels
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.model import AtomicMLP, save_model
    from hybrid.ml.potential import MLPotential
    from hybrid.ml.training import delta_frames, train
    from hybrid.qm import PySCFPotential

    torch.set_num_threads(1)
    configs = configurations() + larger_configurations()
    label(configs, PySCFPotential(*LEVEL), LABELS, level_of_theory="HF/6-31G*")
    frames = load_labels(LABELS)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(frames))
    n_test = len(frames) // 8
    test = [frames[k] for k in order[:n_test]]
    fit = [frames[k] for k in order[n_test:]]
    meta = {"level_of_theory": "HF/6-31G*", "n_train": len(fit), "n_test": n_test,
            "data": "labels/water_hf631gs.extxyz", "training_script": "models/make_water_hf.py"}

    torch.manual_seed(SEED)
    mlip = AtomicMLP((1, 8), cutoff=4.5, n_radial=6, hidden=(32, 32))
    rep_m = train(mlip, fit, epochs=400, lr=5e-3, batch_size=16, patience=50, seed=SEED, progress=True)
    save_model(mlip, MLIP, **meta, val_errors=rep_m.metrics["val"])

    xtb = XTBPotential("GFN2-xTB", accuracy=0.01)
    torch.manual_seed(SEED + 1)
    corr = AtomicMLP((1, 8), cutoff=4.5, n_radial=6, hidden=(32, 32))
    rep_d = train(corr, delta_frames(fit, xtb), epochs=400, lr=5e-3, batch_size=16, patience=50, seed=SEED,
                  progress=True)
    save_model(corr, DELTA, **{**meta, "level_of_theory": "HF/6-31G* - GFN2-xTB (Δ-ML correction)"},
               baseline="GFN2-xTB (tblite, accuracy 0.01)", val_errors=rep_d.metrics["val"])

    rows = {}
    rows["GFN2-xTB (baseline)"] = rmse_and_time(xtb, test)
    rows["Δ-ML (xTB + correction)"] = rmse_and_time(DeltaMLPotential(xtb, MLPotential.load(DELTA)), test)
    rows["MLIP (HF/6-31G*)"] = rmse_and_time(MLPotential.load(MLIP), test)
    t_cold = []
    for f in test[:12]:                      # a fresh PySCF object per call: cold SCF + gradient
        t0 = time.perf_counter()
        PySCFPotential(*LEVEL).compute(f.system)
        t_cold.append(time.perf_counter() - t0)
    rows["HF/6-31G* (cold, per call)"] = (0.0, float(np.median(t_cold)))
    print(f"\nheld-out: {n_test} clusters of 1-12 waters (incl. compressed ones); force RMSE against HF/6-31G*\n")
    print(f"{'layer':>28} {'force RMSE eV/Å':>16} {'s per call':>11} {'cost / HF':>10}")
    t_qm = rows["HF/6-31G* (cold, per call)"][1]
    for k, (e, t) in rows.items():
        print(f"{k:>28} {e:16.4f} {t:11.4f} {t / t_qm:10.4f}")
    (HERE / "water_hf631gs.json").write_text(json.dumps(
        {**meta, "held_out": {k: {"force_rmse": e, "seconds_per_call": t} for k, (e, t) in rows.items()},
         "mlip_val": rep_m.metrics["val"], "delta_val": rep_d.metrics["val"]}, indent=2))


if __name__ == "__main__":
    main()
