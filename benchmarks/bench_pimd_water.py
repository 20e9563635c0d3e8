"""Quantum kinetic energy of H (and D) in the main job's 30-water cluster by ring-polymer MD, with the shipped
HF/6-31G* water MLIP alone and with the HF/6-31G* correction on the central water, the correction on
every bead against contracted to 1 or 2 beads, and the MLIP run reweighted to the corrected Hamiltonian.

Hamiltonians (:func:`couplers.openmm_rpmd.run_rpmd`, OpenMM's RPMDIntegrator with PILE):

* MLIP:         V = V_MLIP(all 90 atoms), models/water_hf631gs.pt;
* MLIP + ΔHF:   V + ΔV, ΔV = E_HF(central water) - E_MLIP(central water), both on the central water's three
  atoms alone (:class:`hybrid.potential.Subset`): the central water's own PES at HF/6-31G*.

P beads (``--beads``, default 16), 300 K, 0.5 fs, centroid friction 10/ps, ``--equilibration`` steps from the
equilibrated classical structure (examples/main/water30.xyz), then ``--steps`` steps (``--steps-full`` for the
run with the correction on every bead), sampled every 10 steps. D₂O changes the masses alone. Each run is
stored in ``--out`` as it finishes and is not run again (delete the file to rerun). Kinetic energies are
centroid-virial (primitive beside them), per atom, in meV, with one-standard-error bars from the
statistical inefficiency. The cost ratio is wall seconds per step, one process, one thread, side by side.

The time step's own bias is measured beside them: 16 three-dimensional harmonic oscillators of H mass at the
O–H stretch frequency (3700 cm⁻¹), P beads, 300 K, the same integrator at 0.5 and 0.25 fs, against the
exact P-bead value (:func:`hybrid.sampling.path_integral.harmonic_ring_energy`, K = E/2).

    OMP_NUM_THREADS=1 python benchmarks/bench_pimd_water.py     # ~80 min on one core
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
T = 300.0
CENTRAL = [0, 1, 2]
D_MASS = 2.014102


def load_run(path: Path):
    from hybrid.sampling.path_integral import PIMDRun
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z["meta"]))
    arrays = {k: (z[k] if k in z.files else None)
              for k in ("masses", "kinetic_primitive", "kinetic_virial", "potential", "correction", "centroids",
                        "beads", "weights")}
    return PIMDRun(meta["temperature"], meta["n_beads"], meta["contracted_beads"], arrays["masses"],
                   arrays["kinetic_primitive"], arrays["kinetic_virial"], arrays["potential"],
                   arrays["correction"], arrays["centroids"], meta["evaluations"], meta["wall"], meta["info"],
                   beads=arrays["beads"], weights=arrays["weights"])


def save_run(run, path: Path) -> None:
    meta = {"temperature": run.temperature, "n_beads": run.n_beads, "contracted_beads": run.contracted_beads,
            "evaluations": run.evaluations, "wall": run.wall, "info": run.info}
    arrays = {k: getattr(run, k) for k in ("masses", "kinetic_primitive", "kinetic_virial", "potential",
                                           "correction", "centroids", "beads", "weights")}
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, meta=json.dumps(meta), **{k: v for k, v in arrays.items() if v is not None})
    tmp.replace(path)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--beads", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--steps-full", type=int, default=1000, help="steps of the run with ΔV on every bead")
    ap.add_argument("--equilibration", type=int, default=200)
    ap.add_argument("--out", type=Path, default=HERE / "output" / "pimd_water")
    ap.add_argument("--only", nargs="*", help="run only these runs (names as in the table)")
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)

    from ase.io import read

    from couplers.openmm_rpmd import run_rpmd
    from hybrid.ml.potential import MLPotential
    from hybrid.potential import Subset
    from hybrid.qm import PySCFPotential
    from hybrid.sampling.hmc import default_masses
    from hybrid.sampling.path_integral import reweight
    from hybrid.system import AtomicSystem

    atoms = read(ROOT / "examples" / "main" / "water30.xyz")
    system = AtomicSystem(atoms.numbers, atoms.positions)
    mlip = MLPotential.load(ROOT / "models" / "water_hf631gs.pt")
    hf = PySCFPotential("HF", "6-31g*", conv_tol=1e-9)
    correction = Subset(hf - mlip, CENTRAL, name="HF-MLIP[central water]")
    m_h = default_masses(system)
    m_d = np.where(system.numbers == 1, D_MASS, m_h)
    p = args.beads
    runs = [  # name, masses, contracted beads (None: no correction; P: every bead), steps
        ("MLIP, H2O", m_h, None, args.steps),
        ("MLIP+dHF m=1, H2O", m_h, 1, args.steps),
        (f"MLIP+dHF m={p}, H2O", m_h, p, args.steps_full),
        ("MLIP, D2O", m_d, None, args.steps),
        ("MLIP+dHF m=1, D2O", m_d, 1, args.steps),
        ("MLIP+dHF m=2, H2O", m_h, 2, args.steps),
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, masses, m, steps in runs:
        path = args.out / (name.replace(" ", "").replace(",", "_").replace("+", "_").replace("=", "") + ".npz")
        if path.exists():
            results[name] = load_run(path)
            continue
        if args.only is not None and name not in args.only:
            continue
        t0 = time.perf_counter()
        run = run_rpmd(mlip, system, p, T, 0.5, steps, correction=None if m is None else correction,
                       contracted_beads=m, friction=10.0, masses=masses, sample_every=10,
                       equilibration=args.equilibration, seed=1, keep_beads=(name == "MLIP, H2O"))
        run.info["steps_per_second"] = (steps + args.equilibration) / (time.perf_counter() - t0)
        save_run(run, path)
        results[name] = run
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    rw_name = "MLIP reweighted to +dHF, H2O"
    rw_path = args.out / "reweighted.npz"
    if rw_path.exists():
        results[rw_name] = load_run(rw_path)
    elif "MLIP, H2O" in results and (args.only is None or rw_name in args.only):
        t0 = time.perf_counter()
        rw = reweight(results["MLIP, H2O"], correction, system)
        steps = rw.info["n_steps"] + rw.info["equilibration"]      # the MLIP run's cost plus the reweighting's
        rw.info["steps_per_second"] = steps / (steps / rw.info["steps_per_second"] + time.perf_counter() - t0)
        rw.beads = None
        save_run(rw, rw_path)
        results[rw_name] = rw
    check_path = args.out / "timestep_check.json"
    if not check_path.exists() and args.only is None:
        check_path.write_text(json.dumps(timestep_check(p)))
    checks = json.loads(check_path.read_text()) if check_path.exists() else []
    write_table(results, system, p, args, checks)


def timestep_check(p: int) -> list:
    """[(dt fs, K virial, error, K primitive, error, exact), ...] per atom in meV, O–H-like oscillators."""
    from couplers.openmm_rpmd import run_rpmd
    from hybrid.analytic import Harmonic
    from hybrid.sampling.path_integral import harmonic_ring_energy
    from hybrid.system import AtomicSystem
    from hybrid.units import ACCEL
    omega = 3700 * 2.99792458e-5 * 2 * np.pi          # cm⁻¹ -> rad/fs
    n = 16
    centres = np.c_[np.arange(n) * 3.0, np.zeros((n, 2))]
    pot = Harmonic(1.008 * omega**2 / ACCEL, centres=centres)
    rows = []
    for dt in (0.5, 0.25):
        run = run_rpmd(pot, AtomicSystem([1] * n, centres), p, T, dt, int(1500 / dt), friction=10.0,
                       sample_every=10, equilibration=int(100 / dt), seed=1)
        kv, kp = run.kinetic(), run.kinetic(estimator="primitive")
        rows.append([dt, kv[0] / n * 1e3, kv[1] / n * 1e3, kp[0] / n * 1e3, kp[1] / n * 1e3,
                     harmonic_ring_energy(omega, T, p) / 2 * 1e3])
    return rows


def paired_effect(plain, reweighted, light, central) -> list:
    """The correction's effect on K, from the same paths: Σ w K_rw - mean K (error from the paired series)."""
    from hybrid.sampling.estimators import statistical_inefficiency
    n = len(reweighted.weights)
    rows = []
    for label, idx in (("all 60 H", light), ("central-water H", central)):
        ka = plain.kinetic_virial[:, idx].sum(1) / len(idx) * 1e3
        kb = reweighted.kinetic_virial[:, idx].sum(1) / len(idx) * 1e3
        m = float(np.sum(reweighted.weights * kb))
        x = n * reweighted.weights * (kb - m) - (ka - ka.mean())
        err = float(x.std(ddof=1) * np.sqrt(statistical_inefficiency(x) / n))
        rows.append(f"| {label} | {m - ka.mean():+.2f} ± {err:.2f} meV ({100 * (m / ka.mean() - 1):+.1f} %) |")
    return ["Effect of ΔHF on K(H), paired on the same MLIP paths (reweighted minus plain; the correction on "
            "every bead, exactly):", "", "| atoms | ΔK per atom |", "|---|---|", *rows, ""]


def write_table(results: dict, system, p: int, args, checks=()) -> None:
    from hybrid.units import KB_EV
    light = np.flatnonzero(system.numbers == 1)
    central = [i for i in CENTRAL if system.numbers[i] == 1]
    per = 1e3 / len(light)
    lines = [f"# Quantum kinetic energy of H/D in the 30-water cluster, {p}-bead RPMD at {T:.0f} K",
             "", "`benchmarks/bench_pimd_water.py` (its docstring gives the set-up). Kinetic energies per atom "
             f"in meV, centroid-virial unless marked; classical value 3/2 kT = {1.5e3 * KB_EV * T:.1f} meV. "
             "Cost: wall seconds per MD step, measured in this one run, one thread (the reweighted row: the MLIP "
             "run's plus the ΔHF calls on its stored beads, spread over its steps).", "",
             "| run | samples (ESS) | K(H or D), all 60 | K primitive, all 60 | K(H or D), central water | "
             "ΔHF calls/step | s/step |", "|---|---|---|---|---|---|---|"]
    for name, run in results.items():
        k_all = run.kinetic(light)
        k_prim = run.kinetic(light, "primitive")
        k_c = run.kinetic(central)
        steps = run.info["n_steps"] + run.info["equilibration"]
        calls = run.evaluations.get("correction", 0) / steps
        cost = f"{1 / run.info['steps_per_second']:.3f}"
        lines.append(f"| {name} | {len(run.potential)} ({run.effective_samples():.0f}) | "
                     f"{k_all[0] * per:.1f} ± {k_all[1] * per:.1f} | {k_prim[0] * per:.1f} ± {k_prim[1] * per:.1f} | "
                     f"{k_c[0] * 1e3 / len(central):.1f} ± {k_c[1] * 1e3 / len(central):.1f} | {calls:.1f} | {cost} |")
    lines.append("")
    pairs = [("MLIP, H2O", "MLIP, D2O", "MLIP alone"), ("MLIP+dHF m=1, H2O", "MLIP+dHF m=1, D2O", "MLIP + ΔHF, m = 1")]
    rows = []
    for h, d, label in pairs:
        if h in results and d in results:
            kh, kd = results[h].kinetic(light), results[d].kinetic(light)
            ch, cd = results[h].kinetic(central), results[d].kinetic(central)
            rows.append(f"| {label} | {(kh[0] - kd[0]) * per:.1f} ± {np.hypot(kh[1], kd[1]) * per:.1f} | "
                        f"{(ch[0] - cd[0]) * 1e3 / 2:.1f} ± {np.hypot(ch[1], cd[1]) * 1e3 / 2:.1f} |")
    if rows:
        lines += ["Isotope shift K(H in H₂O) − K(D in D₂O), meV per atom:", "",
                  "| Hamiltonian | all 60 | central water |", "|---|---|---|", *rows, ""]
    full = f"MLIP+dHF m={p}, H2O"
    if full in results:
        ref = results[full]
        rows = []
        for name in ("MLIP+dHF m=1, H2O", "MLIP+dHF m=2, H2O", "MLIP reweighted to +dHF, H2O", "MLIP, H2O"):
            if name not in results:
                continue
            out = []
            for idx in (light, central):
                a, b = results[name].kinetic(idx), ref.kinetic(idx)
                out.append(f"{100 * (a[0] / b[0] - 1):+.1f} ± {100 * np.hypot(a[1], b[1]) / b[0]:.1f} %")
            r = results[name]
            ratio = f"{r.info['steps_per_second'] / ref.info['steps_per_second']:.1f}×"
            rows.append(f"| {name} | {out[0]} | {out[1]} | {ratio} |")
        lines += [f"Against ΔHF on every bead (m = {p}): relative difference in K(H), and the cost ratio "
                  "(s/step of every-bead over this run):", "",
                  "| run | all 60 H | central-water H | every-bead cost / this cost |", "|---|---|---|---|", *rows, ""]
    rw_name = "MLIP reweighted to +dHF, H2O"
    if rw_name in results and "MLIP, H2O" in results:
        lines += paired_effect(results["MLIP, H2O"], results[rw_name], light, central)
    if checks:
        lines += [f"Time-step bias of the same integrator: 16 H-mass oscillators at 3700 cm⁻¹, {p} beads, 300 K, "
                  "1.5 ps; K per atom (meV) against the exact P-bead value:", "",
                  "| dt (fs) | K centroid-virial | K primitive | exact |", "|---|---|---|---|"]
        for dt, kv, ev, kp, ep, ex in checks:
            lines.append(f"| {dt:g} | {kv:.1f} ± {ev:.1f} ({100 * (kv / ex - 1):+.1f} %) | "
                         f"{kp:.1f} ± {ep:.1f} ({100 * (kp / ex - 1):+.1f} %) | {ex:.1f} |")
        lines.append("")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pimd_water.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
