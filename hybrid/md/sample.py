"""``hybrid sample CONFIG.toml``: the run file's ``[sampling]`` section on its levels.

The levels of the run file give two Hamiltonians: the *first level* alone (cheap, on every atom) and the
*whole model* (first level + the blended corrections above it). ``[md]`` gives the temperature, time step
and seed; ``[sampling] method`` says what to do with them:

* ``pimd``: ring-polymer MD (:func:`couplers.openmm_rpmd.run_rpmd`), the first level on all P beads, the
  corrections above it on ``contracted_beads``; quantum kinetic energy per element (centroid-virial and
  primitive), ``replicas`` independent ring polymers; isotopologues through ``isotopes``;
* ``hmc``: hybrid Monte Carlo (:class:`hybrid.sampling.hmc.SurrogateHMC`), trajectories on the first level,
  Metropolis test with the whole model: the whole model's ensemble exactly; acceptance, statistical
  inefficiency and model calls per effective sample, ``replicas`` chains;
* ``free-energy``: ΔA = A_model - A_first by hybrid MC in each λ window of E_λ = (1-λ) E_first + λ E_model
  (:class:`hybrid.sampling.coupling.LambdaCoupled`); EXP both ways, BAR, MBAR and TI;
* ``umbrella``: F(ξ) along ``cv`` from restrained windows on the first level (plain HMC), unbiased with MBAR,
  and reweighted to the whole model (one model energy per sample) when there are several levels.

Every replica, chain or window is one task of :func:`hybrid.tasks.run_tasks` (``workers`` Dask processes,
or a ``scheduler`` address), stored in ``<output>/sampling/tasks/`` as it finishes: a rerun after a kill or
SIGTERM continues from the stored tasks. Each task builds the levels from the run file in its own process.
Outputs in ``<output directory>/sampling/``: ``report.md`` (tables), ``samples.csv`` and ``plot.png``.
Units: Å, fs, eV, K, amu; kinetic energies in the report in meV per atom.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import ConfigError, load_config
from ..units import KB_EV


class TaskFailed(RuntimeError):
    """A replica, chain or window failed twice; the others are stored (``hybrid sample`` exits 1)."""


@dataclass
class Setup:
    """What a task needs: the model system, the first level, the whole model, their difference, masses."""

    system: object
    first: object
    model: object
    correction: object
    masses: np.ndarray
    n_levels: int


_SETUPS: dict = {}


def setup(config_path) -> Setup:
    """The levels of ``config_path`` built once per process (checked as ``hybrid check`` does)."""
    cfg = load_config(config_path)
    key = (str(cfg["path"]), cfg["hash"], repr(sorted(cfg["sampling"]["isotopes"].items())))
    if key not in _SETUPS:               # the file, its levels' settings and inputs, and the masses
        from ..potential import LinearCombination
        from ..sampling.hmc import default_masses
        from .preflight import preflight
        pre = preflight(cfg, stream=io.StringIO())
        terms = pre.model.potential.terms
        first = terms[0][1]
        correction = LinearCombination(terms[1:], name="corrections") if len(terms) > 1 else None
        masses = default_masses(pre.system)
        from ase.data import atomic_numbers
        for el, m in cfg["sampling"]["isotopes"].items():
            masses[pre.system.numbers == atomic_numbers[el]] = float(m)
        _SETUPS[key] = Setup(pre.system, first, pre.model.potential, correction, masses, len(terms))
    return _SETUPS[key]


def task(config_path, method: str, index: int):
    """One replica, chain or window of ``method`` (its index); runs on a worker."""
    cfg = load_config(config_path)
    sp, md = cfg["sampling"], cfg["md"]
    s = setup(config_path)
    temperature, dt, seed = md["temperature_K"], md["timestep_fs"], md["seed"] + index
    if method == "pimd":
        from couplers.openmm_rpmd import run_rpmd
        contracted = None if s.correction is None else (sp["contracted_beads"] or sp["beads"])
        return run_rpmd(s.first, s.system, sp["beads"], temperature, dt, md["steps"], correction=s.correction,
                        contracted_beads=contracted, friction=sp["friction_per_ps"], masses=s.masses,
                        sample_every=sp["sample_every"], equilibration=sp["equilibration"], seed=seed)
    from ..sampling.hmc import SurrogateHMC
    n, eq = sp["iterations"], sp["equilibration"]
    if method == "hmc":
        return _chain(SurrogateHMC(s.model, s.first, temperature, dt, sp["proposal_steps"], masses=s.masses,
                                   seed=seed), s.system, n, eq)
    if method == "free-energy":
        from ..sampling.coupling import LambdaCoupled
        lam = sp["lambdas"][index]
        ref = LambdaCoupled(s.first, s.model, lam)

        @_same_positions_once
        def ends(x):                 # (E_first, E_model) at the sample: the model's from E_λ unless λ = 0
            e0 = s.first.energy(x)
            return [e0, e0 + s.correction.energy(x) if lam == 0.0 else np.nan]
        run = _chain(SurrogateHMC(ref, s.first, temperature, dt, sp["proposal_steps"], masses=s.masses,
                                  seed=seed), s.system, n, eq, ends)
        e0 = run.observables[:, 0]
        e1 = run.observables[:, 1] if lam == 0.0 else (run.energies - (1 - lam) * e0) / lam
        run.observables = np.c_[e0, e1]
        return run
    if method == "umbrella":
        from ..sampling.umbrella import HarmonicRestraint
        cv = _cv(sp["cv"])
        pot = s.first + HarmonicRestraint(cv, sp["centres"][index], sp["kappa"])

        @_same_positions_once
        def observe(x):              # ξ, and E_model - E_first (the corrections) for the reweighting
            return [cv(x)[0], s.correction.energy(x) if s.correction is not None else 0.0]
        return _chain(SurrogateHMC(pot, pot, temperature, dt, sp["proposal_steps"], masses=s.masses, seed=seed),
                      s.system, n, eq, observe)
    raise ConfigError([f"[sampling] method = {method!r}: unknown"])


def _chain(hmc, system, n: int, equilibration: int, observe=None):
    """``equilibration`` iterations (nothing observed), then ``n`` observed ones from where they ended; the
    returned run counts the calls of both."""
    if not equilibration:
        return hmc.run(system, n, observe=observe)
    warm = hmc.run(system, equilibration)
    run = hmc.run(warm.final, n, observe=observe)
    run.reference_calls += warm.reference_calls
    run.surrogate_calls += warm.surrogate_calls
    run.info["equilibration"] = equilibration
    return run


def _same_positions_once(fn):
    """``fn(system)`` recomputed only when the positions changed (a rejected move keeps them)."""
    last = {}

    def wrapped(system):
        if "x" not in last or not np.array_equal(last["x"], system.positions):
            last["x"], last["v"] = system.positions.copy(), fn(system)
        return last["v"]
    return wrapped


def _cv(spec):
    from ..sampling.umbrella import Coordinate, Distance
    if "distance" in spec:
        return Distance(*spec["distance"])
    return Coordinate(*spec["coordinate"])


def n_tasks(cfg) -> int:
    sp = cfg["sampling"]
    return {"pimd": sp["replicas"], "hmc": sp["replicas"], "free-energy": len(sp["lambdas"] or ()),
            "umbrella": len(sp["centres"] or ())}[sp["method"]]


def run(config_path, progress: bool = False) -> Path:
    """Run (or resume) the ``[sampling]`` section of ``config_path``; returns the report's path."""
    from ..tasks import Task, run_tasks
    cfg = load_config(config_path)
    sp = cfg.get("sampling")
    if sp is None:
        raise ConfigError([f"{Path(config_path).name}: no [sampling] table: nothing to sample "
                           "(hybrid run runs the [md] section)"])
    setup(config_path)                        # the checks of hybrid check, before anything is written
    method = sp["method"]
    out = Path(cfg["output"]["directory"]) / "sampling"
    names = [f"{method}_{k}" for k in range(n_tasks(cfg))]
    # what defines a task's result: the levels, structure and [md] (config hash), the steps, and the
    # [sampling] keys other than where tasks run and how the report bins them
    inputs = {"config_hash": cfg["hash"], "steps": cfg["md"]["steps"],
              "sampling": {k: v for k, v in sp.items() if k not in ("workers", "scheduler", "bins")}}
    tasks = {name: Task(task, (str(cfg["path"]), method, k), inputs={**inputs, "index": k})
             for k, name in enumerate(names)}
    workers = sp["workers"]
    scheduler = sp["scheduler"] or ("synchronous" if workers == 1 else None)
    res = run_tasks(tasks, out / "tasks", scheduler=scheduler, n_workers=workers, progress=progress)
    if res.failed:
        raise TaskFailed("; ".join(f"{n}: {e}" for n, e in res.failed.items()) +
                          f" (see {out / 'tasks' / 'failures.jsonl'}; rerun to retry)")
    values = [res.values[n] for n in names]
    report = {"pimd": _report_pimd, "hmc": _report_hmc, "free-energy": _report_free_energy,
              "umbrella": _report_umbrella}[method](cfg, values, out)
    path = out / "report.md"
    path.write_text("\n".join([f"# {cfg.get('title') or Path(config_path).name}: {method}", "", *report, ""]))
    return path


# -- reports ----------------------------------------------------------------------------------------
def _mean_err(x):
    from ..sampling.estimators import statistical_inefficiency
    x = np.asarray(x, float)
    g = statistical_inefficiency(x) if len(x) > 3 and np.ptp(x) > 0 else 1.0
    return float(x.mean()), float(x.std(ddof=1) * np.sqrt(g / len(x))) if len(x) > 1 else float("nan")


def _combine(pairs):
    """Mean of replica means and its error (independent replicas): (Σ m_r / R, √Σ e_r² / R)."""
    m = np.array([p[0] for p in pairs])
    e = np.array([p[1] for p in pairs])
    return float(m.mean()), float(np.sqrt(np.sum(e**2)) / len(e))


def _report_pimd(cfg, runs, out: Path) -> list:
    from ase.data import chemical_symbols
    s = setup(cfg["path"])
    numbers = s.system.numbers
    sp = cfg["sampling"]
    lines = [f"Ring-polymer MD, {sp['beads']} beads, {cfg['md']['temperature_K']:g} K, "
             f"{cfg['md']['steps']} steps of {cfg['md']['timestep_fs']:g} fs after {sp['equilibration']}; "
             f"{len(runs)} replica(s). Corrections above the first level on "
             f"{runs[0].contracted_beads or '—'} bead(s). Quantum kinetic energy per atom (meV), "
             f"classical 3/2 kT = {1.5e3 * KB_EV * cfg['md']['temperature_K']:.1f} meV.", "",
             "| element | mass (amu) | K centroid-virial | K primitive |", "|---|---|---|---|"]
    rows = {"replica": [], "sample": []}
    fig, ax = _axes()
    for z in sorted(set(int(v) for v in numbers)):
        idx = np.flatnonzero(numbers == z)
        kv = _combine([r.kinetic(idx) for r in runs])
        kp = _combine([r.kinetic(idx, "primitive") for r in runs])
        per = 1e3 / len(idx)
        lines.append(f"| {chemical_symbols[z]} | {s.masses[idx[0]]:.3f} | {kv[0] * per:.1f} ± {kv[1] * per:.1f} | "
                     f"{kp[0] * per:.1f} ± {kp[1] * per:.1f} |")
        col = f"K_{chemical_symbols[z]}_meV"
        rows[col] = []
        for r in runs:
            series = r.kinetic_virial[:, idx].sum(1) * per
            rows[col] += list(series)
            t = np.arange(1, len(series) + 1) * r.info["sample_every"] * r.info["timestep"] / 1000
            running = np.cumsum(series) / np.arange(1, len(series) + 1)
            ax.plot(t, running, label=f"{chemical_symbols[z]}, centroid virial")
    for k, r in enumerate(runs):
        rows["replica"] += [k] * len(r.potential)
        rows["sample"] += list(range(len(r.potential)))
    evals = runs[0].evaluations
    wall = sum(r.wall for r in runs)
    lines += ["", f"Evaluations per replica: {evals}; wall {wall:.0f} s in all."]
    _save(fig, ax, out / "plot.png", "time (ps)", "running mean of K per atom (meV)")
    _csv(out / "samples.csv", rows)
    return lines


def _report_hmc(cfg, runs, out: Path) -> list:
    lines = [f"Hybrid MC on the whole model, proposals of {cfg['sampling']['proposal_steps']} steps of "
             f"{cfg['md']['timestep_fs']:g} fs on the first level, {cfg['md']['temperature_K']:g} K.", "",
             "| chain | iterations | acceptance | g (U) | model calls per effective sample | ⟨U⟩ (eV) |",
             "|---|---|---|---|---|---|"]
    fig, ax = _axes()
    rows = {"chain": [], "iteration": [], "U_eV": [], "accepted": []}
    for k, r in enumerate(runs):
        m, e = _mean_err(r.energies)
        lines.append(f"| {k} | {len(r.energies)} | {r.acceptance_rate:.2f} | {r.statistical_inefficiency():.1f} | "
                     f"{r.reference_calls_per_effective_sample():.1f} | {m:.5f} ± {e:.5f} |")
        ax.plot(r.energies - runs[0].energies[0], lw=0.8, label=f"chain {k}")
        rows["chain"] += [k] * len(r.energies)
        rows["iteration"] += list(range(len(r.energies)))
        rows["U_eV"] += list(r.energies)
        rows["accepted"] += [int(a) for a in r.accepted]
    _save(fig, ax, out / "plot.png", "iteration", "U_model - U_0 (eV)")
    _csv(out / "samples.csv", rows)
    return lines


def _report_free_energy(cfg, runs, out: Path) -> list:
    import warnings

    from ..sampling.coupling import energies_at
    from ..sampling.estimators import bar, exponential_averaging, mbar, thermodynamic_integration
    T = cfg["md"]["temperature_K"]
    lams = cfg["sampling"]["lambdas"]
    ends = [r.observables for r in runs]
    du = [e[:, 1] - e[:, 0] for e in ends]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # the report lists each estimator's warnings instead
        results = [exponential_averaging(du[0], T, "forward"), exponential_averaging(du[-1], T, "reverse"),
                   bar(du[0], du[-1], T), thermodynamic_integration(lams, du, T)]
        if len(lams) > 2:
            allx = np.concatenate(ends)
            results.append(mbar(energies_at(allx, lams), [len(e) for e in ends], T).between(0, -1))
    lines = [f"ΔA = A_model − A_first at {T:g} K, {len(lams)} λ windows of hybrid MC "
             f"({cfg['sampling']['iterations']} iterations each, one model energy per iteration).", "",
             "| estimator | ΔA (kcal/mol) | ΔA (kT) | independent samples | warnings |", "|---|---|---|---|---|"]
    for r in results:
        d, e = r.in_kcal_per_mol()
        lines.append(f"| {r.method} | {d:.3f} ± {e:.3f} | {r.in_kT()[0]:.3f} ± {r.in_kT()[1]:.3f} | "
                     f"{r.n_independent:.0f} | {'; '.join(r.warnings) or '—'} |")
    lines += ["", "| λ | acceptance | ⟨∂U/∂λ⟩ (eV) |", "|---|---|---|"]
    means = [_mean_err(d) for d in du]
    for lam, r, (m, e) in zip(lams, runs, means):
        lines.append(f"| {lam:g} | {r.acceptance_rate:.2f} | {m:.5f} ± {e:.5f} |")
    fig, ax = _axes()
    ax.errorbar(lams, [m for m, _ in means], yerr=[e for _, e in means], marker="o", capsize=3)
    _save(fig, ax, out / "plot.png", "λ", "⟨U_model − U_first⟩_λ (eV)", legend=False)
    _csv(out / "samples.csv", {"lambda": np.concatenate([[lam] * len(e) for lam, e in zip(lams, ends)]),
                               "U_first_eV": np.concatenate([e[:, 0] for e in ends]),
                               "U_model_eV": np.concatenate([e[:, 1] for e in ends])})
    return lines


def _report_umbrella(cfg, runs, out: Path) -> list:
    from ..sampling.umbrella import umbrella_profile
    sp = cfg["sampling"]
    T = cfg["md"]["temperature_K"]
    xi = [r.observables[:, 0] for r in runs]
    lo, hi = min(x.min() for x in xi), max(x.max() for x in xi)
    edges = np.linspace(lo, hi + 1e-9 * max(1.0, abs(hi)), sp["bins"] + 1)
    profiles = [umbrella_profile(xi, sp["centres"], sp["kappa"], T, edges, level="first level")]
    if setup(cfg["path"]).n_levels > 1:
        profiles.append(umbrella_profile(xi, sp["centres"], sp["kappa"], T, edges,
                                         delta_energy=[r.observables[:, 1] for r in runs], level="whole model"))
    what = "distance (Å)" if "distance" in sp["cv"] else "coordinate (Å)"
    profiles[0].plot(out / "plot.png", others=profiles[1:], xlabel=f"ξ: {what} {sp['cv']}")
    lines = [f"Umbrella sampling along {sp['cv']}, {len(runs)} windows, κ = {sp['kappa']:g} eV/unit², "
             f"{sp['iterations']} HMC iterations each at {T:g} K on the first level.", "",
             "| ξ | samples | " + " | ".join(f"F {p.level} (eV)" for p in profiles) + " |",
             "|---|---|" + "---|" * len(profiles)]
    for b in range(len(edges) - 1):
        cells = " | ".join(f"{p.free_energy[b]:.4f} ± {p.error[b]:.4f}" if np.isfinite(p.free_energy[b]) else "—"
                           for p in profiles)
        lines.append(f"| {profiles[0].centres[b]:.3f} | {profiles[0].counts[b]} | {cells} |")
    rows = {"window": np.concatenate([[k] * len(x) for k, x in enumerate(xi)]), "xi": np.concatenate(xi),
            "U_model_minus_first_eV": np.concatenate([r.observables[:, 1] for r in runs])}
    _csv(out / "samples.csv", rows)
    return lines


def _axes():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=(6, 4))


def _save(fig, ax, path: Path, xlabel: str, ylabel: str, legend: bool = True) -> None:
    import matplotlib.pyplot as plt
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _csv(path: Path, columns: dict) -> None:
    import csv
    keys = list(columns)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(keys)
        for row in zip(*[columns[k] for k in keys]):
            w.writerow([f"{v:.10g}" if isinstance(v, (float, np.floating)) else v for v in row])
