"""A diabatic network trained on Tully's simple avoided crossing, against the analytic model.

1. Labels: the analytic model's adiabatic energies, forces and couplings at 241 points, x = −10.5 … 10.5
   bohr. Two fits of hybrid.ml.diabatic.DiabaticMLP (x → H_d, 2 × 32 SiLU, 20000 Adam epochs): on energies
   and forces only, and with the couplings as sign-free labels.
2. Accuracy on 801 points between the labels: RMS energy error over the gap scale 2A, and the coupling
   |d₁₂| error (relative L2 and largest, over the largest |d₁₂|).
3. FSSH (hybrid.tully.scatter; 2000 trajectories per momentum, two Dask tasks of 1000, independent seeds)
   with the network fitted with couplings and with the analytic model, channel by channel:
   z = |ΔP| / √(σ₁² + σ₂²); agreement within statistical error is z < 3.

Writes benchmarks/results/diabatic_fssh.md and the fitted network to benchmarks/output/diabatic_fssh/.

    python benchmarks/bench_diabatic_fssh.py [--n 2000] [--epochs 20000] [--workers 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
K_GRID = [6, 8, 10, 12, 15, 20, 25, 30]
PART = 1000
SUBSTEPS = 1     # electronic steps per nuclear step (as benchmarks/bench_tully_fssh.py)


def grid(lo, hi, n):
    from hybrid import units
    x = np.zeros((n, 1, 3))
    x[:, 0, 0] = np.linspace(lo, hi, n) * units.BOHR
    return x


def main(argv=None):
    import torch

    from hybrid import units
    from hybrid.ml.diabatic import DiabaticMLP, LearnedDiabatic, fit_adiabatic
    from hybrid.tasks import Task, run_tasks
    from hybrid.tully import CHANNELS, SimpleAvoidedCrossing, scatter, x_feature
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--k", type=float, nargs="+", default=K_GRID, help="momenta (ħ/bohr)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "output" / "diabatic_fssh"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    ref = SimpleAvoidedCrossing()
    train = grid(-10.5, 10.5, 241)
    lab = ref.states(train)
    test = grid(-10.0, 10.0, 801)
    a = ref.states(test)
    gap = 2 * SimpleAvoidedCrossing.A * units.HARTREE
    lines = ["# A diabatic network on Tully's simple avoided crossing", "",
             "| fit | epochs | wall (s) | RMS ΔE / 2A | coupling: relative L2 error | largest error / max abs(d) |",
             "|---|---|---|---|---|---|"]
    nets = {}
    for label, d in (("energies + forces", None), ("energies + forces + couplings", lab.couplings)):
        path = out / f"net_{'ef' if d is None else 'efd'}_{args.epochs}.pt"
        torch.manual_seed(0)
        net = DiabaticMLP(2, 1, hidden=(32, 32), scale=[units.BOHR]).double()
        t0 = time.perf_counter()
        if path.exists():
            net.load_state_dict(torch.load(path))
            wall = "stored"                     # fitted by an earlier run
        else:
            fit_adiabatic(net, x_feature, train, lab.energies, lab.forces, d, epochs=args.epochs, lr=3e-3,
                          w_couplings=10.0)
            wall = f"{time.perf_counter() - t0:.0f}"
            torch.save(net.state_dict(), path)
        b = LearnedDiabatic(net, x_feature).states(test)
        rms = np.sqrt(((a.energies - b.energies) ** 2).mean()) / gap
        dr, dm = np.abs(a.couplings[:, 0, 1, 0, 0]), np.abs(b.couplings[:, 0, 1, 0, 0])
        l2 = np.sqrt(((dm - dr) ** 2).sum() / (dr**2).sum())
        lines.append(f"| {label} | {args.epochs} | {wall} | {rms:.1e} | {l2:.3f} | "
                     f"{np.abs(dm - dr).max() / dr.max():.3f} |")
        nets[label] = net
    learned = LearnedDiabatic(nets["energies + forces + couplings"], x_feature)
    tasks = {}
    for i, k in enumerate(args.k):
        for p in range(args.n // PART):
            for name, model, base in (("learned", learned, 50000), ("analytic", "sac", 60000)):
                kw = dict(k_au=float(k), n_traj=PART, seed=base + 100 * i + p, dt_au=0.5, n_substeps=SUBSTEPS)
                fit = {"epochs": args.epochs} if name == "learned" else {}     # a refit is another task
                tasks[f"{name}_k{k:g}_{p}"] = Task(scatter, args=(model,), kwargs=kw,
                                                   inputs={**kw, "model": name, **fit})
    t0 = time.perf_counter()
    res = run_tasks(tasks, out / "fssh", n_workers=args.workers, progress=True)
    if res.failed:
        raise SystemExit(f"tasks failed: {res.failed}")
    lines += ["", f"FSSH, {args.n} trajectories per momentum and model ({time.perf_counter() - t0:.0f} s, "
              f"{len(res.computed)} of {len(tasks)} tasks computed in this run):", "",
              "| k (a.u.) | " + " | ".join(f"{c} (learned / analytic)" for c in CHANNELS) + " | max z |",
              "|---" * (len(CHANNELS) + 2) + "|"]
    worst = 0.0
    for k in args.k:
        P = {}
        for name in ("learned", "analytic"):
            parts = [res[f"{name}_k{k:g}_{p}"] for p in range(args.n // PART)]
            n = sum(q["n"] for q in parts)
            P[name] = {c: sum(q[c] for q in parts) / n for c in CHANNELS}
        z = max(abs(P["learned"][c] - P["analytic"][c])
                / max(np.sqrt((P["learned"][c] * (1 - P["learned"][c]) + P["analytic"][c]
                               * (1 - P["analytic"][c])) / args.n), 1e-12) for c in CHANNELS)
        worst = max(worst, z)
        lines.append(f"| {k:g} | " + " | ".join(f"{P['learned'][c]:.3f} / {P['analytic'][c]:.3f}" for c in CHANNELS)
                     + f" | {z:.2f} |")
    lines += ["", f"Largest z: {worst:.2f}"]
    (ROOT / "benchmarks" / "results" / "diabatic_fssh.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
