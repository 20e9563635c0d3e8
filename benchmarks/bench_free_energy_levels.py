"""ΔA from the shipped HF/6-31G* water MLIP to HF/6-31G* itself, for a water trimer at 300 K, by exponential
averaging (both directions), BAR, TI and MBAR, with the number of HF calls each needs for a 0.1 kcal/mol
statistical error.

ΔA = A_HF - A_MLIP (configurational, classical nuclei). Every ensemble is sampled by hybrid Monte Carlo
(:class:`hybrid.sampling.hmc.SurrogateHMC`) with MLIP trajectories, so
each ensemble is exact for its own level and an HF ensemble costs one HF energy (no gradient) per
iteration (``--steps`` steps of 0.5 fs per proposal). Every run starts from the equilibrated MLIP
structure; each λ > 0 window discards its first ``--equilibration`` iterations:

* λ = 0 (MLIP): MLIP as reference and proposal, after ``--mlip``/10 iterations of equilibration;
  ``--labels`` evenly spaced samples of ``--mlip`` iterations get an HF energy;
* λ = 1 (HF): HF as reference, MLIP as proposal, ``--hf`` iterations, one HF energy each;
* 0 < λ < 1: E_λ = (1 - λ) E_MLIP + λ E_HF as reference (:class:`hybrid.sampling.coupling.LambdaCoupled`),
  ``--window`` iterations each; U_HF - U_MLIP at each sample is (E_λ - E_MLIP)/λ, so no extra HF call.

Estimators (:mod:`hybrid.sampling.estimators`, pymbar inside): forward EXP uses the λ = 0 samples, reverse
EXP the λ = 1 samples, BAR both, TI and MBAR all windows. "HF calls for 0.1 kcal/mol" is the HF calls the
estimator used × (its error / 0.1 kcal/mol)² (errors fall as 1/√N).

    python benchmarks/bench_free_energy_levels.py            # ~8 min on 2 cores
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
T = 300.0
TARGET_KCAL = 0.1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlip", type=int, default=2000, help="MLIP-ensemble iterations after equilibration")
    ap.add_argument("--labels", type=int, default=150, help="HF energies on evenly spaced MLIP samples")
    ap.add_argument("--steps", type=int, default=20, help="velocity-Verlet steps of 0.5 fs per proposal")
    ap.add_argument("--hf", type=int, default=300, help="HF-ensemble iterations")
    ap.add_argument("--window", type=int, default=250, help="iterations per intermediate λ window")
    ap.add_argument("--equilibration", type=int, default=50,
                    help="iterations discarded at the start of each λ > 0 window (their HF calls are counted)")
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)

    from hybrid.build import water_cluster
    from hybrid.ml.potential import MLPotential
    from hybrid.qm import PySCFPotential
    from hybrid.sampling.coupling import LambdaCoupled, energies_at
    from hybrid.sampling.estimators import bar, exponential_averaging, mbar, thermodynamic_integration
    from hybrid.sampling.hmc import SurrogateHMC
    from hybrid.units import KB_EV, KCAL_PER_MOL

    system = water_cluster(3, seed=0)
    mlip = MLPotential.load(ROOT / "models" / "water_hf631gs.pt")
    hf = PySCFPotential("HF", "6-31g*", conv_tol=1e-9)
    lams = sorted(args.lambdas)
    if lams[0] != 0.0 or lams[-1] != 1.0:
        raise SystemExit("--lambdas must start at 0 and end at 1")
    t0 = time.perf_counter()

    def hmc(reference, start, n, seed):
        return SurrogateHMC(reference, mlip, T, 0.5, args.steps, seed=seed).run(start, n, keep_positions=True)

    # λ = 0: the MLIP ensemble (equilibrated for 10 % more iterations), HF energies on evenly spaced samples
    from hybrid.sampling.estimators import statistical_inefficiency
    warm = hmc(mlip, system, args.mlip // 10, args.seed + 100)
    start = warm.final
    run0 = hmc(mlip, start, args.mlip, args.seed)
    stride = max(1, args.mlip // args.labels)
    x0 = run0.positions[::stride]
    g_mlip = statistical_inefficiency(run0.energies)
    ends0 = np.array([[mlip.energy(system.with_positions(x)), hf.energy(system.with_positions(x))] for x in x0])
    calls = {0.0: len(x0)}
    print(f"λ=0: every {stride}th sample (g(U_MLIP) = {g_mlip:.0f}), {len(x0)} HF calls, acceptance {run0.acceptance_rate:.2f}, {time.perf_counter() - t0:.0f} s",
          flush=True)
    ends = {0.0: ends0}
    acc = {0.0: run0.acceptance_rate}
    for k, lam in enumerate(lams[1:], 1):
        ref = hf if lam == 1.0 else LambdaCoupled(mlip, hf, lam)
        n = (args.hf if lam == 1.0 else args.window) + args.equilibration
        run = hmc(ref, start, n, args.seed + k)
        x, e_ref = run.positions[args.equilibration:], run.energies[args.equilibration:]
        e_ml = np.array([mlip.energy(system.with_positions(p)) for p in x])
        e_hf = e_ml + (e_ref - e_ml) / lam                              # E_λ = E_ml + λ (E_hf - E_ml)
        ends[lam] = np.c_[e_ml, e_hf]
        calls[lam] = run.reference_calls
        acc[lam] = run.acceptance_rate
        print(f"λ={lam:g}: {run.reference_calls} HF calls, acceptance {run.acceptance_rate:.2f}, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)

    du = {lam: e[:, 1] - e[:, 0] for lam, e in ends.items()}
    rows = []
    fwd = exponential_averaging(du[0.0], T)
    rows.append(("EXP forward (MLIP samples)", fwd, calls[0.0]))
    rev = exponential_averaging(du[1.0], T, direction="reverse")
    rows.append(("EXP reverse (HF samples)", rev, calls[1.0]))
    rows.append(("BAR", bar(du[0.0], du[1.0], T), calls[0.0] + calls[1.0]))
    rows.append((f"TI ({len(lams)} windows, trapezoid)", thermodynamic_integration(lams, [du[l] for l in lams], T),
                 sum(calls.values())))
    m = mbar(np.hstack([energies_at(ends[l], lams) for l in lams]), [len(ends[l]) for l in lams], T)
    rows.append((f"MBAR ({len(lams)} states)", m.between(0, -1), sum(calls.values())))
    target = TARGET_KCAL * KCAL_PER_MOL
    lines = ["### ΔA = A(HF/6-31G*) - A(MLIP), water trimer, 300 K", "",
             f"Hybrid MC on every ensemble (MLIP proposals, {args.steps} × 0.5 fs); HF energies on every "
             f"{stride}th MLIP sample (g(U_MLIP) = {g_mlip:.0f} iterations); every run starts from an MLIP-equilibrated "
             f"structure, λ > 0 windows discard {args.equilibration} iterations (their HF calls counted); "
             "acceptance by window: "
             + ", ".join(f"λ={l:g}: {a:.2f}" for l, a in acc.items())
             + f". U_HF - U_MLIP on the MLIP ensemble: mean {du[0.0].mean():.4f} eV, s.d. {du[0.0].std():.4f} eV "
             f"({du[0.0].std() / (KB_EV * T):.2f} kT).", "",
             "| estimator | ΔA (kcal/mol) | error (kcal/mol) | HF calls used | HF calls for 0.1 kcal/mol | "
             "diagnostics |", "|---|---|---|---|---|---|"]
    for name, est, n in rows:
        need = n * (est.error / target) ** 2
        diag = ", ".join(f"{k} {v:.3g}" for k, v in est.diagnostics.items() if isinstance(v, float))
        flag = "" if est.trusted else " **untrusted**: " + "; ".join(est.warnings)
        lines.append(f"| {name} | {est.delta / KCAL_PER_MOL:.3f} | {est.error / KCAL_PER_MOL:.3f} | {n} | "
                     f"{max(need, 1):.0f} | {diag}{flag} |")
    vals = [(name, est) for name, est, _ in rows]
    worst = max(abs(a.delta - b.delta) / np.hypot(a.error, b.error) for i, (_, a) in enumerate(vals)
                for _, b in vals[i + 1:])
    lines += ["", f"Largest pairwise difference between estimators: {worst:.2f} combined standard errors.",
              f"Total {time.perf_counter() - t0:.0f} s."]
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "free_energy_levels.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
