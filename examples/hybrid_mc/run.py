"""Hybrid Monte Carlo at HF/6-31G* accuracy with MLIP proposals, against Langevin MD on HF/6-31G* itself,
side by side in one run, for a water trimer at 300 K.

* hybrid MC (:class:`hybrid.sampling.hmc.SurrogateHMC`): ``--steps`` (20) velocity-Verlet steps of 0.5 fs on the shipped
  HF/6-31G* water MLIP (``models/water_hf631gs.pt``), accepted with the HF/6-31G* energy (no gradient):
  the samples follow HF's Boltzmann distribution exactly;
* reference MD: Langevin (ASE, 0.5 fs, friction 0.01 fs⁻¹) with HF/6-31G* forces, one HF energy and
  gradient per step.

For each the table gives the reference calls and their wall time per effective sample of two observables
(the HF potential energy and the trimer's radius of gyration): calls × g / n, with g the statistical
inefficiency (pymbar). Writes ``output/table.md`` and ``output/hybrid_mc.png``.

    python examples/hybrid_mc/run.py                  # ~25 min on 2 cores, most of it the HF MD
    python examples/hybrid_mc/run.py --samples 100    # a quick look (~3 min)
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
T = 300.0


def radius_of_gyration(positions, masses) -> float:
    c = masses @ positions / masses.sum()
    return float(np.sqrt(masses @ np.sum((positions - c) ** 2, axis=1) / masses.sum()))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=600, help="hybrid-MC iterations")
    ap.add_argument("--md-steps", type=int, default=1200, help="reference MD steps")
    ap.add_argument("--steps", type=int, default=20, help="MLIP velocity-Verlet steps of 0.5 fs per proposal")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(HERE / "output"))
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from ase import units
    from ase.md.langevin import Langevin

    from couplers.ase_calculator import HybridCalculator
    from hybrid.build import water_cluster
    from hybrid.ml.potential import MLPotential
    from hybrid.qm import PySCFPotential
    from hybrid.sampling.estimators import statistical_inefficiency
    from hybrid.sampling.hmc import SurrogateHMC, default_masses

    system = water_cluster(3, seed=0)
    masses = default_masses(system)
    mlip = MLPotential.load(ROOT / "models" / "water_hf631gs.pt")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    e_start = PySCFPotential("HF", "6-31g*", conv_tol=1e-9).energy(system)     # energies are shown from here
    hf = PySCFPotential("HF", "6-31g*", conv_tol=1e-9)
    t0 = time.perf_counter()
    hmc = SurrogateHMC(hf, mlip, T, 0.5, args.steps, seed=args.seed)
    run = hmc.run(system, args.samples, observe=lambda s: radius_of_gyration(s.positions, masses), progress=True)
    hmc_wall = time.perf_counter() - t0
    hmc_hf_wall = sum(r["wall_time"] for r in hf.log)

    hf_md = PySCFPotential("HF", "6-31g*", conv_tol=1e-9)
    atoms = system.to_ase()
    atoms.calc = HybridCalculator(hf_md)
    try:
        from ase.md.velocitydistribution import thermalize_momenta
    except ImportError:                        # ASE < 3.27
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta
    thermalize_momenta(atoms, temperature_K=T, rng=np.random.default_rng(args.seed))
    md = Langevin(atoms, 0.5 * units.fs, temperature_K=T, friction=0.01 / units.fs, fixcm=False,
                  rng=np.random.default_rng(args.seed + 1))
    u_md, rg_md = [], []
    t0 = time.perf_counter()
    for _ in range(args.md_steps):
        md.run(1)
        u_md.append(atoms.get_potential_energy())
        rg_md.append(radius_of_gyration(atoms.positions, masses))
    md_wall = time.perf_counter() - t0
    md_hf_wall = sum(r["wall_time"] for r in hf_md.log)

    rows = []
    for name, u, rg, calls, wall, n in (
            ("hybrid MC (MLIP proposals, HF accept)", run.energies, run.observables, run.reference_calls,
             hmc_hf_wall, len(run.energies)),
            ("Langevin MD on HF", np.array(u_md), np.array(rg_md), len(hf_md.log), md_hf_wall, len(u_md))):
        g_u, g_rg = statistical_inefficiency(u), statistical_inefficiency(rg)
        rows.append((name, n, calls, wall, g_u, g_rg, calls * g_u / n, calls * g_rg / n,
                     wall * g_u / n, wall * g_rg / n, float(np.mean(u)), float(np.mean(rg))))
    lines = ["### Hybrid MC against reference MD, water trimer, HF/6-31G*, 300 K", "",
             f"hybrid MC: {args.steps} × 0.5 fs MLIP proposals, acceptance {run.acceptance_rate:.2f}; "
             f"{run.surrogate_calls} MLIP calls. MD: Langevin, friction 0.01 fs⁻¹.", "",
             "| sampler | samples | HF calls | HF wall (s) | g(U) | g(Rg) | HF calls per eff. sample (U) | (Rg) | "
             "HF seconds per eff. sample (U) | (Rg) | ⟨U⟩ - U(start) (eV) | ⟨Rg⟩ (Å) |",
             "|---" * 12 + "|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.0f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.1f} | {r[7]:.1f} | "
                     f"{r[8]:.2f} | {r[9]:.2f} | {r[10] - e_start:.3f} | {r[11]:.3f} |")
    ratio_u, ratio_rg = rows[1][6] / rows[0][6], rows[1][7] / rows[0][7]
    lines += ["", f"Reference MD needs {ratio_u:.1f}× (U) and {ratio_rg:.1f}× (Rg) the HF calls per effective "
              f"sample; in HF wall time {rows[1][8] / rows[0][8]:.1f}× and {rows[1][9] / rows[0][9]:.1f}× "
              "(an MD call includes the gradient).", f"Wall: hybrid MC {hmc_wall:.0f} s, MD {md_wall:.0f} s."]
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    print(text)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 2, figsize=(10, 4))
    for (name, *_), u, rg in ((rows[0], run.energies, run.observables), (rows[1], np.array(u_md), np.array(rg_md))):
        ax[0].plot(np.arange(len(rg)) / len(rg), rg, lw=0.8, label=name)
        ax[1].hist(u - u.mean(), bins=30, alpha=0.5, density=True, label=name)
    ax[0].set_xlabel("fraction of the run")
    ax[0].set_ylabel("radius of gyration (Å)")
    ax[1].set_xlabel("U_HF - ⟨U_HF⟩ (eV)")
    ax[1].set_ylabel("density")
    ax[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "hybrid_mc.png", dpi=120)


if __name__ == "__main__":
    main()
