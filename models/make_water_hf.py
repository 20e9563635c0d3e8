"""Make the project's default water models at the default QM level, HF/6-31G*.

Pipeline (hybrid.labelling on a local Dask cluster, hybrid.ml.training):

1. Configurations: frames of a GFN2-xTB Langevin run of the 30-water start
   structure (models/water30_start.xyz, 300 K), cut into clusters of a random
   water and its k nearest neighbours: 160 with k = 0..5
   (labels/water_clusters.extxyz), 60 larger ones with k = 7..11 cut from
   the 30-water frames of make_water_gfn2xtb.py, so that a water's whole
   first and second shell within the 4.5 Å cutoff is seen, 40 of those
   small clusters with the molecules moved rigidly towards their centre
   (factor 0.86-0.95): the short O-O contacts that a model without them
   lets atoms fall into in dynamics; and 80 fully solvated waters: every
   water within 3.8-4.6 Å of an interior water of the 30-water cluster,
   cut from Δ-ML dynamics at HF-like geometry (labels/water_solvated.extxyz),
   the environment a QM region sees.
2. Labels: HF/6-31G* energies and forces (labels/water_hf631gs.extxyz, with
   its ledger: a killed run resumes) and GFN2-xTB at the same geometries.
3. Models, each trained by force matching on the same training split:
   * water_hf631gs.pt - the MLIP at HF/6-31G*;
   * water_delta_xtb_hf631gs.pt and _1, _2, _3 - the Δ-ML correction
     HF/6-31G* − GFN2-xTB, a committee of four (seeds 0-3); the levels use
     their mean (a list of files in a run configuration), which on the
     30-water cluster is closer to HF than any one member.
4. The held-out table (force RMSE against HF/6-31G* on all held-out clusters
   and on the held-out solvated ones, and time per force call: GFN2-xTB
   alone, Δ-ML = xTB + one correction and + the committee, the MLIP, HF
   itself) is printed and written to water_hf631gs.json.

    python models/make_water_hf.py          (labels: about an hour on 2 cores; training: 10 minutes)
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
DELTAS = [DELTA] + [HERE / f"water_delta_xtb_hf631gs_{k}.pt" for k in (1, 2, 3)]
FIRST_SOLVATED = 260     # config ids of the solvated clusters start here
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
    configs = configurations() + larger_configurations() + solvated_configurations()
    label(configs, PySCFPotential(*LEVEL), LABELS, level_of_theory="HF/6-31G*")
    frames = load_labels(LABELS)
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(frames))
    n_test = len(frames) // 8
    test = [frames[k] for k in order[:n_test]]
    fit = [frames[k] for k in order[n_test:]]
    solvated = [f for f in test if int(f.info["config_id"]) >= FIRST_SOLVATED]
    meta = {"level_of_theory": "HF/6-31G*", "n_train": len(fit), "n_test": n_test,
            "data": "labels/water_hf631gs.extxyz", "training_script": "models/make_water_hf.py"}

    torch.manual_seed(SEED)
    mlip = AtomicMLP((1, 8), cutoff=4.5, n_radial=6, hidden=(32, 32))
    rep_m = train(mlip, fit, epochs=600, lr=5e-3, batch_size=16, patience=50, seed=SEED, progress=True)
    save_model(mlip, MLIP, **meta, val_errors=rep_m.metrics["val"])

    xtb = XTBPotential("GFN2-xTB", accuracy=0.01)
    dfit = delta_frames(fit, xtb)
    rep_d = []
    for k, path in enumerate(DELTAS):
        torch.manual_seed(SEED + 1 + 100 * k)
        corr = AtomicMLP((1, 8), cutoff=4.5, n_radial=6, hidden=(32, 32))
        rep_d.append(train(corr, dfit, epochs=600, lr=5e-3, batch_size=16, patience=50, seed=SEED + k,
                           progress=True))
        save_model(corr, path, **{**meta, "level_of_theory": "HF/6-31G* - GFN2-xTB (Δ-ML correction)"},
                   baseline="GFN2-xTB (tblite, accuracy 0.01)", committee_member=k,
                   val_errors=rep_d[-1].metrics["val"])

    from hybrid.ml.committee import Committee
    rows = {}
    committee = Committee([MLPotential.load(p) for p in DELTAS])
    models = {"GFN2-xTB (baseline)": xtb,
              "Δ-ML (xTB + one correction)": DeltaMLPotential(xtb, MLPotential.load(DELTA)),
              "Δ-ML (xTB + committee of 4)": DeltaMLPotential(xtb, committee),
              "MLIP (HF/6-31G*)": MLPotential.load(MLIP)}
    for name, pot in models.items():
        rows[name] = (*rmse_and_time(pot, test), rmse_and_time(pot, solvated)[0])
    t_cold = []
    for f in test[:12]:                      # a fresh PySCF object per call: cold SCF + gradient
        t0 = time.perf_counter()
        PySCFPotential(*LEVEL).compute(f.system)
        t_cold.append(time.perf_counter() - t0)
    rows["HF/6-31G* (cold, per call)"] = (0.0, float(np.median(t_cold)), 0.0)
    print(f"\nheld-out: {n_test} clusters of 1-13 waters (incl. compressed ones), {len(solvated)} of them solvated; "
          "force RMSE against HF/6-31G*\n")
    print(f"{'layer':>30} {'RMSE all':>9} {'solvated':>9} {'s per call':>11} {'cost / HF':>10}")
    t_qm = rows["HF/6-31G* (cold, per call)"][1]
    for k, (e, t, es) in rows.items():
        print(f"{k:>30} {e:9.4f} {es:9.4f} {t:11.4f} {t / t_qm:10.4f}")
    (HERE / "water_hf631gs.json").write_text(json.dumps(
        {**meta, "n_test_solvated": len(solvated),
         "held_out": {k: {"force_rmse": e, "force_rmse_solvated": es, "seconds_per_call": t}
                      for k, (e, t, es) in rows.items()},
         "mlip_val": rep_m.metrics["val"], "delta_val": [r.metrics["val"] for r in rep_d]}, indent=2))


if __name__ == "__main__":
    main()
