"""Surface hopping of methaniminium (CH₂NH₂⁺) from its ππ* state: the trained two-state model against
direct SA-CASSCF over a short window, and the same chromophore excited inside an MLIP water cluster.

Models (made by the scripts in models/): ``methaniminium_sacasscf.pt``, a diabatic network fitted to
S0 and S1 of SA3-CASSCF(2,2)/6-31G (energies, forces and couplings), with the RHF/6-31G normal modes it was sampled
from (``labels/methaniminium_modes.npz``); ``methaniminium_water_gfn2xtb.pt``, the ground-state MLIP of
the chromophore in water, and its start structure.

Initial conditions: Wigner samples at 0 K (hybrid.sampling.wigner), on S1 with amplitude 1. FSSH
(hybrid.surface_hopping): dt 0.5 fs, ``--window`` fs, velocity rescaling along d₀₁, frustrated hops
kept, energy-based decoherence. Recorded every step: the active state, |c₁|², the C–N length, the
twist (angle between the H–C–H and H–N–H planes) and the S1−S0 gap.

1. Direct: ``--n-qm`` trajectories with SA-CASSCF at every step (hybrid.qm.casscf_states), one Dask task
   each, stored as it finishes (benchmarks/output/methaniminium_fssh/; a rerun computes what is missing).
2. The model from the same initial conditions, trajectory by trajectory, and from ``--n-ml`` in all.
3. In water: the model as the high level of a state-specific blend (couplers.state_blend) whose low level
   is the water MLIP, the chromophore the region; ``--n-water`` trajectories, the waters' velocities
   from 300 K.

Writes benchmarks/results/methaniminium_fssh.md (populations, geometry and gap against time; the
trajectory-by-trajectory differences before the first hop; energy conservation; the cost per
trajectory step of each and their ratio) and methaniminium_fssh.png.

    python benchmarks/bench_methaniminium_fssh.py [--n-qm 10] [--window 20] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "models"))
OUT = ROOT / "benchmarks" / "output" / "methaniminium_fssh"
DT = 0.5            # fs
SEED = 7
CONSERVED = 0.1     # eV: a trajectory whose |E(t) − E(0)| stays below this conserves its energy


def twist_and_cn(x):
    """(T, 2): the twist (degrees between the H–C–H and H–N–H plane normals, 0 planar, 90 perpendicular) and
    the C–N length (Å) of chromophores whose atoms 0–5 are C, N, H, H (on C), H, H (on N)."""
    n_c = np.cross(x[:, 2] - x[:, 0], x[:, 3] - x[:, 0])
    n_n = np.cross(x[:, 4] - x[:, 1], x[:, 5] - x[:, 1])
    cos = np.abs((n_c * n_n).sum(1)) / (np.linalg.norm(n_c, axis=1) * np.linalg.norm(n_n, axis=1))
    return np.stack([np.degrees(np.arccos(np.clip(cos, 0, 1))), np.linalg.norm(x[:, 1] - x[:, 0], axis=1)], 1)


def observer(masses):
    """observe(...) -> active, |c₁|², twist (°), C–N (Å), gap (eV), total energy (eV) per trajectory."""
    from hybrid.surface_hopping import kinetic_energy

    def observe(x, v, active, energies, amplitudes):
        kinetic = kinetic_energy(v, masses)
        return np.column_stack([active, np.abs(amplitudes[:, 1]) ** 2, twist_and_cn(x[:, :6]),
                                energies[:, 1] - energies[:, 0], energies[np.arange(len(x)), active] + kinetic])
    return observe


COLUMNS = ("active", "c1", "twist", "r_cn", "gap", "energy")


def fssh(model, x, v, masses, n_steps, seed):
    from hybrid.surface_hopping import surface_hopping
    t0 = time.perf_counter()
    r = surface_hopping(model, x, v, masses, 1, DT, n_steps, seed=seed, n_substeps=20, decoherence="edc",
                        record_every=1, observe=observer(np.asarray(masses, float)))
    return {"times": r.times, "observed": r.observed, "energy_error": r.energy_error, "hops": r.hops,
            "frustrated": r.frustrated, "wall_s": time.perf_counter() - t0, "n_traj": len(x)}


def kabsch(mobile, target):
    """Rotation R and translation t with mobile @ R.T + t closest to target (both (n, 3))."""
    a, b = mobile - mobile.mean(0), target - target.mean(0)
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt))
    R = (u @ np.diag([1, 1, d]) @ vt).T
    return R, target.mean(0) - mobile.mean(0) @ R.T


def in_water(model, x, v, n_steps, seed):
    """The chromophore samples (T, 6, 3) placed in the water cluster by rigid alignment, the waters at 300 K."""
    from ase import units as ase_units
    from ase.data import atomic_masses
    from ase.io import read
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    from couplers.partition import FixedPartitioner
    from couplers.state_blend import StateBlend
    from hybrid.ml.potential import MLPotential
    from hybrid.system import AtomicSystem
    from make_methaniminium_water_gfn2xtb import MODEL, START
    start = read(START)
    n = len(start)
    template = AtomicSystem(start.numbers, start.positions, charge=1)
    charges = np.zeros(n)
    charges[0] = 1.0                                          # the chromophore carries the +1
    blend = StateBlend(MLPotential.load(MODEL), model, FixedPartitioner(np.arange(6)), template, charges=charges)
    rng = np.random.default_rng(seed)
    X = np.repeat(start.positions[None], len(x), 0)
    V = np.zeros_like(X)
    for t in range(len(x)):
        R, shift = kabsch(x[t], start.positions[:6])
        X[t, :6] = x[t] @ R.T + shift
        V[t, :6] = v[t] @ R.T
        MaxwellBoltzmannDistribution(start, temperature_K=300, rng=rng)
        V[t, 6:] = start.get_velocities()[6:] * ase_units.fs          # ASE velocity units → Å/fs
    return fssh(blend, X, V, atomic_masses[start.numbers], n_steps, seed)


def summary(res, every_fs=5.0):
    """rows (time, S1 fraction, its σ, mean |c1|², ⟨twist⟩, ⟨r_CN⟩, ⟨gap⟩) every ``every_fs`` fs."""
    t, q = res["times"], res["observed"]
    rows = []
    for k in range(0, len(t), int(round(every_fs / DT))):
        f = q[k, :, 0].mean()
        rows.append((t[k], f, np.sqrt(f * (1 - f) / q.shape[1]), q[k, :, 1].mean(), q[k, :, 2].mean(),
                     q[k, :, 3].mean(), q[k, :, 4].mean()))
    return rows


def main(argv=None):
    import torch
    from ase.data import atomic_masses

    from hybrid.ml.diabatic import LearnedDiabatic
    from hybrid.sampling.wigner import NormalModes, wigner_sample
    from hybrid.tasks import Task, run_tasks
    from make_methaniminium_sacasscf import MODEL, MODES, NUMBERS, level
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-qm", type=int, default=10)
    ap.add_argument("--n-ml", type=int, default=500)
    ap.add_argument("--n-water", type=int, default=100)
    ap.add_argument("--window", type=float, default=20.0, help="fs")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    n_steps = int(round(args.window / DT))
    with np.load(MODES) as f:
        modes = NormalModes(*(f[k] for k in ("positions", "masses", "omega", "vectors")))
    x, v = wigner_sample(modes, max(args.n_ml, args.n_qm, args.n_water), seed=SEED)
    masses = atomic_masses[NUMBERS]
    tasks = {f"qm_{i:03d}": Task(fssh, args=(level(), x[i:i + 1], v[i:i + 1], masses, n_steps, SEED + i),
                                 inputs={"i": i, "steps": n_steps, "dt": DT, "seed": SEED + i})
             for i in range(args.n_qm)}
    res = run_tasks(tasks, Path(args.out), n_workers=args.workers, progress=True)
    if res.failed:
        raise SystemExit(f"direct trajectories failed (rerun to retry): {sorted(res.failed)}")
    parts = [res[k] for k in sorted(tasks)]
    direct = {"times": parts[0]["times"], "observed": np.concatenate([p["observed"] for p in parts], 1),
              "energy_error": np.concatenate([p["energy_error"] for p in parts]),
              "hops": np.concatenate([p["hops"] for p in parts]), "n_traj": len(parts),
              "wall_s": sum(p["wall_s"] for p in parts)}
    model, meta = LearnedDiabatic.load(MODEL)                  # after the direct runs, which do not need it
    same = fssh(model, x[:args.n_qm], v[:args.n_qm], masses, n_steps, SEED)
    swarm = fssh(model, x[:args.n_ml], v[:args.n_ml], masses, n_steps, SEED + 1)
    water = in_water(model, x[:args.n_water], v[:args.n_water], n_steps, SEED + 2)
    report(args, meta, direct, same, swarm, water, n_steps)


def report(args, meta, direct, same, swarm, water, n_steps):
    runs = {"SA-CASSCF (direct)": direct, "model, same starts": same, "model": swarm, "model in water": water}
    cost = {k: r["wall_s"] / (r["n_traj"] * n_steps) for k, r in runs.items()}
    lines = ["# Methaniminium from S1 (ππ*): trained two-state model against direct SA-CASSCF", "",
             f"Model: {meta.get('level_of_theory')}; Wigner starts (0 K) on S1, dt {DT} fs, {args.window:g} fs, "
             "decoherence (EDC), frustrated hops kept.", "",
             "Energy: each trajectory's largest |E(t) − E(0)| over the window (median and largest over the run), and "
             f"the fraction of trajectories whose error stays below {CONSERVED * 1e3:g} meV, and how many change "
             f"their energy by more than {CONSERVED * 1e3:g} meV in one step of {DT} fs (a jump of the surface, "
             "not Verlet's error).", "",
             "| run | trajectories | hops per trajectory | max abs ΔE, median (meV) | largest (meV) | "
             f"within {CONSERVED * 1e3:g} meV | one-step jumps | s per trajectory step | cost / direct |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k, r in runs.items():
        err = np.asarray(r["energy_error"])
        jumps = int((np.abs(np.diff(r["observed"][:, :, COLUMNS.index("energy")], axis=0)).max(0) > CONSERVED).sum())
        lines.append(f"| {k} | {r['n_traj']} | {np.mean(r['hops']):.2f} | {1e3 * np.median(err):.1f} | "
                     f"{1e3 * err.max():.1f} | {np.mean(err < CONSERVED):.2f} | {jumps} | {cost[k]:.3g} | "
                     f"{cost[k] / cost['SA-CASSCF (direct)']:.2g} |")
    lines += ["", "S1 fraction (± binomial σ), ⟨twist⟩ (°), ⟨C–N⟩ (Å), ⟨gap⟩ (eV) against time:", "",
              "| t (fs) | " + " | ".join(f"{k}: S1, twist, C–N, gap" for k in runs) + " |",
              "|---" * (len(runs) + 1) + "|"]
    tables = {k: summary(r) for k, r in runs.items()}
    for i, row in enumerate(tables["model"]):
        cells = []
        for k in runs:
            t, f, s, c1, tw, cn, gap = tables[k][i]
            cells.append(f"{f:.2f} ± {s:.2f}, {tw:.1f}, {cn:.3f}, {gap:.2f}")
        lines.append(f"| {row[0]:g} | " + " | ".join(cells) + " |")
    # trajectory by trajectory, while both are still on S1 (before either hops)
    qd, qs = direct["observed"], same["observed"]
    both = np.cumprod((qd[:, :, 0] == 1) & (qs[:, :, 0] == 1), axis=0).astype(bool)
    lines += ["", "Same starts, trajectory by trajectory, while both are on S1: RMS difference", "",
              "| t (fs) | trajectories | twist (°) | C–N (Å) | gap (eV) |", "|---|---|---|---|---|"]
    for k in range(0, n_steps + 1, int(round(5.0 / DT))):
        m = both[k]
        if not m.any():
            break
        d = qd[k, m] - qs[k, m]
        rms = np.sqrt((d[:, 2:] ** 2).mean(0))
        lines.append(f"| {direct['times'][k]:g} | {int(m.sum())} | {rms[0]:.2f} | {rms[1]:.4f} | {rms[2]:.3f} |")
    out = ROOT / "benchmarks" / "results"
    (out / "methaniminium_fssh.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _plot(runs, out / "methaniminium_fssh.png")


def _plot(runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for k, r in runs.items():
        t, q = r["times"], r["observed"]
        f = q[:, :, 0].mean(1)
        axes[0].plot(t, f, label=k)
        axes[0].fill_between(t, f - np.sqrt(f * (1 - f) / q.shape[1]), f + np.sqrt(f * (1 - f) / q.shape[1]),
                             alpha=0.2)
        axes[1].plot(t, q[:, :, 2].mean(1))
        axes[2].plot(t, q[:, :, 4].mean(1))
    for ax, lab in zip(axes, ("fraction on S1", "twist (°)", "S1 − S0 gap (eV)")):
        ax.set_xlabel("t (fs)")
        ax.set_ylabel(lab)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
