"""Learning curves: held-out force RMSE against the number of labels, for frames chosen by the ActiveLearner
(committee uncertainty with diversity, ``ActiveLearner.select_and_label``), at random, and evenly spaced,
from the same exploration run, on two systems, over several seeds.

Reference: GFN2-xTB (tblite). Systems (12 atoms each): a water tetramer (``water_cluster(4)``) and methanol
with two waters. For each system and seed:

* pool (what an exploration run visits): one GFN2-xTB Langevin run (0.5 fs, friction 0.02 in ASE time units: 0.002 fs⁻¹) of 400
  steps at 300 K, then 80 steps at 800 K, a frame every 4 steps: 100 frames at 300 K and 20 hot ones;
* test set: 30 frames at 300 K and 30 at 800 K from two independent runs (another seed), weighed equally:
  the model should describe every condition the run visited;
* validation (early stopping, the same for every strategy): 3 + 3 frames of those independent runs, not
  in the test set;
* training recipe, the same for every strategy: a committee of 3 ``AtomicMLP(species, cutoff 4 Å, 4 radial
  functions, hidden (16,))``, fresh weights, ``epochs`` 50, lr 5e-3, batch 8;
* start: 4 pool frames drawn at random (the same for every strategy of this seed);
* active: ``ActiveLearner(retrain="train", validation_frames=...)``, then ``select_and_label(pool, 4)``
  until 32 labels: 4 frames per round by max σ_F with diversity 0.5, retrained from fresh weights on all
  labels, each retrain kept only if the validation error does not rise by more than 2 %;
* oracle (an upper bound on any uncertainty rule): the same rounds of 4 with diversity 0.5, but each
  candidate scored by the committee's *true* force RMSE on it (from the pool's labels, which a real run
  does not have), retrained from fresh weights on all labels each round;
* random: n pool frames drawn at random (including the 4 start frames), n = 8, 16, 32, 64;
* evenly spaced: the 4 start frames plus n - 4 pool frames evenly spaced over the run.

The table gives mean [min–max] over seeds of the test force RMSE (eV/Å); "labels to reach" is the
smallest label count at which the active learner's mean error is at or below the random baseline's at
32 and at 64 labels.

    python benchmarks/bench_learning_curve.py                 # 3 seeds, ~30 min on 2 cores
    python benchmarks/bench_learning_curve.py --seeds 1 --systems water
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
COUNTS = (8, 16, 32, 64)
AL_MAX = 32
BATCH = 4
RECIPE = dict(epochs=50, lr=5e-3, batch_size=8)
STRATEGIES = ("active", "oracle", "random", "evenly spaced")


def methanol_and_waters(seed: int = 0):
    """Methanol with two waters, 3.0 Å from its O and C sides, randomly oriented (12 atoms, C H4 O + 2 H2O)."""
    from ase.build import molecule

    from hybrid.system import AtomicSystem
    rng = np.random.default_rng(seed)
    meoh = molecule("CH3OH")
    pos = [meoh.positions - meoh.positions.mean(0)]
    numbers = list(meoh.numbers)
    water = molecule("H2O")
    for centre in ([2.9, 0.5, 0.0], [-3.1, -0.4, 0.3]):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        pos.append((water.positions - water.positions.mean(0)) @ rot.T + centre)
        numbers += list(water.numbers)
    return AtomicSystem(numbers, np.vstack(pos))


def systems():
    from hybrid.build import water_cluster
    return {"water": (water_cluster(4, seed=0), (1, 8)),
            "methanol": (methanol_and_waters(0), (1, 6, 8))}


def run_frames(system, seed: int, segments, every: int = 4) -> list:
    """GFN2-xTB Langevin frames: ``segments`` [(steps, T K)] run one after the other, a frame every ``every``
    steps; each Frame carries info["T"]."""
    from ase import units
    from ase.md.langevin import Langevin
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:                        # ASE < 3.27
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

    from couplers.ase_calculator import HybridCalculator
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.training import Frame
    atoms = system.to_ase()
    atoms.calc = HybridCalculator(XTBPotential())
    rng = np.random.default_rng(seed)
    thermalize_momenta(atoms, temperature_K=segments[0][1], rng=rng)
    out = []
    for steps, temperature in segments:
        md = Langevin(atoms, 0.5 * units.fs, temperature_K=temperature, friction=0.02, fixcm=False, rng=rng)
        for k in range(steps):
            md.run(1)
            if k % every == every - 1:
                r = atoms.calc.result
                out.append(Frame(system.with_positions(atoms.positions), r.energy, r.forces.copy(),
                                 info={"T": temperature}))
    return out


def test_rmse(committee, frames) -> float:
    """Force RMSE (eV/Å) of the committee's mean over the test frames, 300 K and 800 K halves weighed equally."""
    from hybrid.ml.active import committee_errors
    by_t = {}
    for f in frames:
        by_t.setdefault(f.info["T"], []).append(f)
    return float(np.sqrt(np.mean([committee_errors(committee, fs)["force_rmse"] ** 2 for fs in by_t.values()])))


def train(species, frames, val, seed):
    from hybrid.ml.model import AtomicMLP
    from hybrid.ml.training import train_committee
    com, _ = train_committee(AtomicMLP(species, cutoff=4.0, n_radial=4, hidden=(16,)), frames, 3, seed=seed,
                             val_frames=val, **RECIPE)
    return com


def oracle_curve(pool, start, species, val, test, seed) -> dict:
    """{labels: test RMSE} when each round's 4 frames are chosen by the committee's true force RMSE on each
    candidate (with the active learner's diversity 0.5): what a perfect uncertainty estimate would pick."""
    from hybrid.ml.selection import diverse_batch, fingerprints
    labelled, out = list(start), {}
    while True:
        com = train(species, [pool[i] for i in labelled], val, seed)
        out[len(labelled)] = test_rmse(com, test)
        if len(labelled) >= AL_MAX:
            return out
        cand = [i for i in range(len(pool)) if i not in labelled]
        err = [float(np.sqrt(np.mean((com._compute(pool[i].system).forces - pool[i].forces) ** 2))) for i in cand]
        model = com.members[0].model
        chosen = diverse_batch(err, fingerprints(model, [pool[i] for i in cand]), BATCH,
                               fingerprints(model, [pool[i] for i in labelled]), 0.5)
        labelled += [cand[c] for c in chosen]


def one_seed(name, system, species, seed) -> dict:
    """{strategy: {labels: test RMSE}} for one system and seed."""
    from hybrid.ml.active import ActiveLearner
    from hybrid.ml.adapters import XTBPotential
    from hybrid.ml.uncertainty import TrustLevels
    pool = run_frames(system, 100 + seed, [(400, 300.0), (80, 800.0)])
    cold = run_frames(system, 200 + seed, [(140, 300.0)])
    hot = run_frames(system, 300 + seed, [(40, 300.0), (140, 800.0)])[10:]
    val = cold[:3] + hot[:3]
    test = cold[3:33] + hot[3:33]
    rng = np.random.default_rng(seed)
    start = sorted(rng.choice(len(pool), 4, replace=False).tolist())
    out = {"active": {}, "random": {}, "evenly spaced": {}, "oracle": {}}

    com = train(species, [pool[i] for i in start], val, seed)
    out["active"][4] = test_rmse(com, test)
    al = ActiveLearner(com, XTBPotential(), train_frames=[pool[i] for i in start], validation_frames=val,
                       levels=TrustLevels(0.0, 1e6), retrain="train", retrain_every=BATCH, min_new_labels=1,
                       retrain_kwargs=RECIPE, seed=seed)
    n = 4
    candidates = [i for i in range(len(pool)) if i not in start]
    hot_picked = 0
    while n < AL_MAX:
        got = al.select_and_label([pool[i] for i in candidates], BATCH)
        picked = [candidates[c] for c in got["chosen"]]
        hot_picked += sum(pool[i].info["T"] > 500 for i in picked)
        candidates = [i for i in candidates if i not in picked]
        n += len(picked)
        out["active"][n] = test_rmse(al.committee, test)
        if not picked:
            break
    out["active_hot_fraction"] = hot_picked / max(n - 4, 1)
    out["oracle"] = oracle_curve(pool, start, species, val, test, seed)
    rest = [i for i in range(len(pool)) if i not in start]
    for count in COUNTS:
        extra = rng.choice(rest, count - 4, replace=False).tolist()
        out["random"][count] = test_rmse(train(species, [pool[i] for i in start + extra], val, seed), test)
        even = np.linspace(0, len(rest) - 1, count - 4).round().astype(int)
        out["evenly spaced"][count] = test_rmse(train(species, [pool[i] for i in start] +
                                                      [pool[rest[j]] for j in even], val, seed), test)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--systems", nargs="+", default=["water", "methanol"], choices=["water", "methanol"])
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    lines = ["### Learning curves: test force RMSE (eV/Å) against labels, GFN2-xTB reference", "",
             f"Mean [min–max] over {args.seeds} seeds; test set: 30 frames at 300 K and 30 at 800 K, weighed "
             "equally; pool: 100 frames at 300 K then 20 at 800 K of one run (see the script's docstring).", ""]
    for name in args.systems:
        system, species = systems()[name]
        runs = []
        for seed in range(args.seeds):
            runs.append(one_seed(name, system, species, seed))
            print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s {runs[-1]}", flush=True)
        counts = sorted({c for r in runs for s in STRATEGIES for c in r[s]})
        lines += [f"**{name}** ({len(system)} atoms); hot frames among the active learner's picks: "
                  f"{np.mean([r['active_hot_fraction'] for r in runs]):.0%} (pool: 17 %)", "",
                  "| labels | " + " | ".join(STRATEGIES) + " |", "|---" * (len(STRATEGIES) + 1) + "|"]
        mean = {}
        for c in counts:
            cells = []
            for s in STRATEGIES:
                v = [r[s][c] for r in runs if c in r[s]]
                if len(v) == len(runs):
                    mean[(s, c)] = float(np.mean(v))
                    cells.append(f"{np.mean(v):.3f} [{min(v):.3f}–{max(v):.3f}]")
                else:
                    cells.append("—")
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
        for who in ("active", "oracle"):
            for ref in (32, 64):
                target = mean.get(("random", ref))
                reach = [c for c in counts if (who, c) in mean and mean[(who, c)] <= target]
                lines.append("")
                lines.append(f"Labels for the {who} selection to reach random's mean error at {ref} labels "
                             f"({target:.3f}): {min(reach) if reach else f'not within {AL_MAX}'}"
                             + (f" ({min(reach) / ref:.2f} of {ref})" if reach else ""))
        lines.append("")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learning_curve.md").write_text(text)
    print(text)
    print(f"total {time.perf_counter() - t0:.0f} s; wrote benchmarks/results/learning_curve.md")


if __name__ == "__main__":
    main()
