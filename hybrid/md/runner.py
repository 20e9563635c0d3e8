"""The run loop of ``hybrid run``: OpenMM dynamics on a blended multilayer potential.

The OpenMM System holds one particle per atom (masses in amu) and one
force, :class:`couplers.openmm_force.PotentialForce`, wrapping the
multilayer potential (:mod:`hybrid.md.levels`) with ``reuse=True``: each
step evaluates the potential once (the energy query after a step and the
force call of the next step share the positions, so the second is answered
from the first). With an ``[mm]`` table the System is the force field's,
the multilayer potential acts on the model region and MM on the rest
(:mod:`hybrid.md.mm`); E_pot then includes E_MM, reported as ``E_MM_eV``.

Integrators: ``verlet`` (``openmm.VerletIntegrator``, leapfrog; NVE) and
``langevin`` (``openmm.LangevinMiddleIntegrator`` at ``temperature_K`` with
``friction_per_ps``; NVT), with time step ``timestep_fs``.

Initial velocities (Å/fs internally, nm/ps for OpenMM: × PS/NM = 100):
"maxwell-boltzmann" draws v_ia ~ N(0, k_B T/m_i) from numpy's PCG64 with
``seed``, removes the centre-of-mass velocity and rescales to exactly T
with f = 3N − 3 degrees of freedom; "structure" takes the file's momenta
(centre-of-mass velocity removed); "zero" starts at rest. OpenMM's leapfrog
integrators take them as the half-step velocities v(−Δt/2), so the kinetic
energy reported at step 0 (at t = 0) is half a force kick away from them.

Reported per step (CSV, eV/fs/K): E_pot = E(R) (the model's energy), E_kin
from OpenMM (for leapfrog Verlet OpenMM reports the kinetic energy at the
full step), E_total = E_pot + E_kin, T = 2 E_kin/(f k_B) with f = 3N − 3
for Verlet (total momentum removed and conserved by the translation
invariant models) and 3N for Langevin; E_<lowest level> on all atoms and
dE_<level> = Σ_P σ_P [E_k(P) − E_{k−1}(P)] of each boundary; atoms in the
inner region and buffer of each boundary and its high-level region calls;
and, when the lowest level flags its steps (``reports_conservative``, e.g. a
python level returning :class:`hybrid.ml.active.ActiveLearner`),
``conservative``: 1 if every evaluation since the previous row had forces
-∇ of the previous one's energy function, 0 if any did not (a retrain, a
step answered from the reference, fixed-field promotion); drift over rows
with 0 is not a test of the integrator. Wall times (s per reported step: ``wall_s``, ``pyscf_s`` in every PySCF
evaluation, ``level_<name>_s`` in each level including its region calls)
go to a separate CSV (``timings``), so
that the physics log of a resumed run is byte-identical to an
uninterrupted one.

Before step 0, :func:`hybrid.md.preflight.preflight` builds the model and the
OpenMM System and checks them against the structure (elements, basis,
electron counts, energy zeros, a writable output directory), raising
:class:`hybrid.config.ConfigError`; step 0 is then evaluated, and only then
are the output directory and files created, so a run that cannot start leaves
nothing behind. Langevin runs report no total-energy drift (the bath exchanges
energy): the summary gives the mean temperature instead.

Checkpoints (:mod:`hybrid.md.checkpoint`) every ``checkpoint_interval``
steps, at step 0 and at the last step; outputs are fsynced first and their
sizes recorded, and ``resume=True`` cuts them back to those sizes
(:mod:`hybrid.md.outputs`). An SCF failure, a NaN/inf energy or force, or
any other error of the potential stops the run with
:class:`RunFailed` naming the step; outputs keep every completed step
before it and the last checkpoint is untouched.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .. import units
from ..config import ConfigError, Section, changed_settings, config_fingerprint
from ..errors import HybridError, InputError
from . import checkpoint
from .interrupts import StopRequests
from .outputs import CSVLog, Trajectory, read_csv, write_topology_pdb
from .plot import plot_summary


class RunFailed(HybridError, RuntimeError):
    """The dynamics stopped at ``step``; outputs and the checkpoint of ``checkpoint_step`` are intact."""

    def __init__(self, message: str, step: int, checkpoint_step: int, cause: BaseException | None = None):
        super().__init__(message)
        self.step, self.checkpoint_step, self.cause = step, checkpoint_step, cause


class RunInterrupted(RunFailed):
    """SIGTERM or Ctrl-C: the run stopped after ``step`` with a checkpoint there (``checkpoint_step == step``)."""


@dataclass
class RunSummary:
    """What a run did. Times in s; ``ns_per_day`` and ``qm_share`` refer to this session."""

    first_step: int
    last_step: int
    steps: int
    wall_s: float
    ns_per_day: float
    qm_share: float
    level_s: dict
    drift_meV: float | None
    drift_meV_per_ps: float | None
    files: dict = field(default_factory=dict)
    resumed: bool = False
    integrator: str = "verlet"
    mean_T_K: float | None = None
    bath_K: float | None = None
    nonconservative_rows: int | None = None

    def text(self) -> str:
        lines = [f"steps {self.first_step} -> {self.last_step} ({self.steps} this session"
                 f"{', resumed' if self.resumed else ''}) in {self.wall_s:.1f} s: {self.ns_per_day:.4g} ns/day, "
                 f"QM (PySCF) {100 * self.qm_share:.1f}% of wall time"]
        if self.level_s:
            lines.append("time in levels (s, incl. region calls): " +
                         ", ".join(f"{k} {v:.1f}" for k, v in self.level_s.items()))
        if self.integrator == "langevin":
            lines.append("NVT (Langevin): the thermostat exchanges energy with the bath, so no total-energy drift "
                         "is reported" + (f"; mean T {self.mean_T_K:.1f} K (bath {self.bath_K:g} K)"
                                          if self.mean_T_K is not None else ""))
        elif self.drift_meV is not None:
            lines.append(f"total-energy drift: max |E_tot - E_tot(0)| = {self.drift_meV:.3g} meV"
                         + (f", slope {self.drift_meV_per_ps:+.3g} meV/ps" if self.drift_meV_per_ps is not None
                            else ""))
        if self.nonconservative_rows:
            lines.append(f"{self.nonconservative_rows} CSV rows with conservative = 0: the potential was not one "
                         "energy function there (retrains, reference steps, fixed-field promotion)")
        lines += [f"{k}: {v}" for k, v in self.files.items()]
        return "\n".join(lines)


class Runner:
    """One run of a validated configuration (:func:`hybrid.config.load_config`).

    resume : continue from the checkpoint in the output directory;
    overwrite : start afresh even if the output directory holds a checkpoint;
    progress : show a progress bar (default: the config's ``output.progress``);
    stream : where the bar and notices go.
    """

    def __init__(self, cfg: Section, *, resume: bool = False, overwrite: bool = False,
                 progress: bool | None = None, stream=None):
        self.cfg, self.resume, self.overwrite = cfg, resume, overwrite
        self.progress = cfg["output"]["progress"] if progress is None else progress
        self.stream = stream or sys.stderr
        self.source = cfg["path"].name if cfg.get("path") else "config.toml"

    # -- setup ------------------------------------------------------------------------
    def _build(self) -> None:
        """Everything before step 0, checked (:func:`hybrid.md.preflight.preflight`), and the Context."""
        import openmm

        from .preflight import preflight
        md = self.cfg["md"]
        pre = preflight(self.cfg, stream=self.stream)
        self.preflight = pre
        self.structure, self.model_structure, self.model = pre.structure, pre.model_structure, pre.model
        self.offsets = pre.offsets
        omm, self.force = pre.omm, pre.force
        self.n = len(self.structure.system)
        dt_ps = md["timestep_fs"] / units.PS
        if md["integrator"] == "verlet":
            integ = openmm.VerletIntegrator(dt_ps)
            self.dof = 3 * self.n - 3 if self.n > 1 else 3 * self.n
        else:
            integ = openmm.LangevinMiddleIntegrator(md["temperature_K"], md["friction_per_ps"], dt_ps)
            integ.setRandomNumberSeed(md["seed"])
            self.dof = 3 * self.n
        platform = openmm.Platform.getPlatformByName(md["platform"])
        props = {"Threads": str(md["threads"])} if md["platform"] == "CPU" else {}
        self.omm, self.integrator = omm, integ
        self.context = openmm.Context(omm, integ, platform, props)
        self.dt_ps = dt_ps

    def _initial_velocities(self) -> np.ndarray:
        """(N, 3) nm/ps."""
        md, m = self.cfg["md"], self.structure.masses
        kind = md["initial_velocities"]
        if kind == "zero" or (kind == "maxwell-boltzmann" and md["temperature_K"] == 0):
            return np.zeros((self.n, 3))
        if kind == "structure":
            if self.structure.velocities is None:
                raise ConfigError([f"{self.source}: [md] initial_velocities = \"structure\": "
                                   f"{self.cfg['structure']['file'].name} holds no velocities (momenta)"])
            v = np.array(self.structure.velocities, float)
        else:
            rng = np.random.default_rng(md["seed"])
            kt = units.KB_EV * md["temperature_K"]
            v = rng.normal(size=(self.n, 3)) * np.sqrt(kt / m * units.ACCEL)[:, None]    # Å/fs
        if self.n > 1:
            v -= (m[:, None] * v).sum(0) / m.sum()
        if kind == "maxwell-boltzmann":
            ke = 0.5 * np.sum(m[:, None] * v**2) / units.ACCEL                          # eV
            target = 0.5 * (3 * self.n - 3 if self.n > 1 else 3) * units.KB_EV * md["temperature_K"]
            v *= np.sqrt(target / ke) if ke > 0 else 0.0
        return v * units.PS / units.NM

    # -- reporting ------------------------------------------------------------------------
    def _columns(self):
        names, regions = self.model.names, self.model.regions
        cols = ["step", "time_fs", "E_total_eV", "E_pot_eV", "E_kin_eV", "T_K", f"E_{names[0]}_eV"]
        if self.cfg.get("mm"):
            cols.append("E_MM_eV")
        cols += [f"dE_{r}_eV" for r in regions]
        for r in regions:
            cols += [f"n_inner_{r}", f"n_buffer_{r}", f"high_calls_{r}"]
        if self._reports_conservative():
            cols.append("conservative")
        tcols = ["step", "wall_s", "pyscf_s"] + [f"level_{k}_s" for k in self.model.names]
        return cols, tcols

    def _row(self, step: int, state) -> dict:
        from openmm.unit import kilojoule_per_mole
        res = self.force.result
        ekin = state.getKineticEnergy().value_in_unit(kilojoule_per_mole) * units.KJ_PER_MOL
        epot = float(res.energy)
        if self.cfg.get("mm"):      # the state's energy: MM' + the model (answered from the model's last result)
            epot = state.getPotentialEnergy().value_in_unit(kilojoule_per_mole) * units.KJ_PER_MOL
        labels = self.model.labels
        row = {"step": step, "time_fs": step * self.cfg["md"]["timestep_fs"], "E_total_eV": epot + ekin,
               "E_pot_eV": epot, "E_kin_eV": ekin, "T_K": 2 * ekin / (self.dof * units.KB_EV),
               f"E_{self.model.names[0]}_eV": float(res.contributions[labels[0]])}
        if self.cfg.get("mm"):
            row["E_MM_eV"] = epot - float(res.energy)
        for k, r in enumerate(self.model.regions, start=1):
            info = res.info[labels[k]]
            row[f"dE_{r}_eV"] = float(res.contributions[labels[k]])
            row[f"n_inner_{r}"] = len(info["inner_atoms"])
            row[f"n_buffer_{r}"] = len(info["buffer_atoms"])
            row[f"high_calls_{r}"] = int(info["n_high_calls"])
        if "conservative" in self.csv.columns:
            row["conservative"] = self._conservative_since_last_row(res.info[labels[0]])
        return row

    def _reports_conservative(self) -> bool:
        """Whether the lowest level flags its steps (``reports_conservative``, e.g. an ActiveLearner)."""
        from .levels import bare
        return bool(getattr(bare(self.model.potential.terms[0][1]), "reports_conservative", False))

    def _conservative_since_last_row(self, info: dict) -> int:
        """1 if every evaluation since the previous row was conservative (by the level's count
        ``n_nonconservative``; the first row of a session: this evaluation's flag), else 0."""
        n = int(info.get("n_nonconservative", 0))
        ok = bool(info.get("conservative", True)) and (self._nc_seen is None or n == self._nc_seen)
        self._nc_seen = n
        return int(ok)

    def _timing_row(self, step: int, wall: float) -> dict:
        clocks = self.model.clocks
        row = {"step": step, "wall_s": wall, "pyscf_s": self.model.qm.total - self._last_qm}
        for k, c in clocks.items():
            row[f"level_{k}_s"] = c.total - self._last_level[k]
        self._last_qm = self.model.qm.total
        self._last_level = {k: c.total for k, c in clocks.items()}
        return row

    def _sync_and_checkpoint(self, step: int) -> None:
        sizes = {"csv": self.csv.sync(), "timings": self.timings.sync(), "trajectory": self.traj.sync()}
        stats = dict(self.stats)
        stats["wall_s"] += time.perf_counter() - self.t_start
        stats["qm_s"] += self.model.qm.total
        meta = {"step": step, "time_fs": step * self.cfg["md"]["timestep_fs"], "config_hash": self.cfg["hash"],
                "platform": self.context.getPlatform().getName(), "integrator": self.cfg["md"]["integrator"],
                "seed": self.cfg["md"]["seed"], "outputs": sizes, "trajectory_frames": self.traj.frames,
                "stats": stats, "settings": self._fingerprint}
        checkpoint.save(self.cfg["output"]["checkpoint"], self.context, meta)
        self.checkpoint_step = step

    # -- the run --------------------------------------------------------------------------
    def run(self) -> RunSummary:
        cfg, md, out = self.cfg, self.cfg["md"], self.cfg["output"]
        if not self.resume and out["checkpoint"].exists() and not self.overwrite:
            raise InputError(f"{out['checkpoint']} exists: a run already writes to {out['directory']}; "
                             "continue it with --resume or start again with --overwrite")
        self._build()
        cols, tcols = self._columns()
        self._nc_seen = None
        ti, ri, ci = out["trajectory_interval"], out["report_interval"], out["checkpoint_interval"]
        self.stats = {"wall_s": 0.0, "qm_s": 0.0}
        self.t_start = time.perf_counter()
        self._last_qm, self._last_level = 0.0, {k: 0.0 for k in self.model.clocks}
        self._fingerprint = config_fingerprint(cfg)
        t_session = time.perf_counter()       # the session's wall time includes step 0's evaluation
        if self.resume:
            payload = checkpoint.load(out["checkpoint"])
            self._check_resume(payload)
            checkpoint.restore(self.context, payload)
            start = int(payload["step"])
            self.stats.update(payload.get("stats", {}))
            sizes = payload["outputs"]
            self.csv = CSVLog(out["csv"], cols, resume_size=sizes["csv"])
            self.timings = CSVLog(out["timings"], tcols, resume_size=sizes["timings"])
            self.traj = Trajectory(out["trajectory"], self.structure.topology, self.dt_ps, ti,
                                   resume=(sizes["trajectory"], payload["trajectory_frames"]))
            self.checkpoint_step = start
        else:
            start = 0
            pos_nm = self.structure.system.positions / units.NM
            self.context.setPositions(pos_nm)
            self.context.setVelocities(self._initial_velocities())
            self.context.setTime(0.0)
            self.context.setStepCount(0)
            self.checkpoint_step = -1
            t0 = time.perf_counter()
            state0 = self._state(0, positions=True)        # step 0 is evaluated before any output exists
            wall0 = time.perf_counter() - t0
            out["directory"].mkdir(parents=True, exist_ok=True)
            write_topology_pdb(out["topology"], self.structure.topology, pos_nm)
            self.csv = CSVLog(out["csv"], cols)
            self.timings = CSVLog(out["timings"], tcols)
            self.traj = Trajectory(out["trajectory"], self.structure.topology, self.dt_ps, ti)
        n_steps = md["steps"]
        step = start
        last_reported = start
        stop = StopRequests()
        try:
            bar = self._bar(start, n_steps)
            try:
                stop.install()
                if not self.resume:
                    state = state0
                    self.csv.write(self._row(0, state))
                    self.timings.write(self._timing_row(0, wall0))
                    self.traj.write(state.getPositions(asNumpy=True))
                    self._sync_and_checkpoint(0)
                t_prev = time.perf_counter()
                while step < n_steps and stop.signal is None:
                    self._step(step)
                    step += 1
                    frame = step % ti == 0
                    report = step % ri == 0 or step == n_steps
                    state = self._state(step, positions=frame)
                    if report:
                        now = time.perf_counter()
                        self.csv.write(self._row(step, state))
                        self.timings.write(self._timing_row(step, now - t_prev))
                        t_prev = now
                        last_reported = step
                    if frame:
                        self.traj.write(state.getPositions(asNumpy=True))
                    if step % ci == 0 or step == n_steps or stop.signal is not None:
                        self._sync_and_checkpoint(step)
                    self._update_bar(bar, step - start, time.perf_counter() - t_session)
            finally:
                stop.restore()
                if bar is not None:
                    bar.close()
        except RunFailed:
            self._close(plot=True)
            raise
        except KeyboardInterrupt:
            self._close(plot=True)
            raise RunFailed(f"interrupted at step {step}; outputs hold steps up to {last_reported}, the last "
                            f"checkpoint is step {self.checkpoint_step}: continue with `hybrid run --resume`",
                            step, self.checkpoint_step) from None
        except OSError as exc:          # a full disk or a vanished directory: one line, not a traceback
            self._close(plot=False)
            raise RunFailed(f"step {step}: cannot write {exc.filename or 'an output file'}: "
                            f"{exc.strerror or exc}; the last checkpoint is step {self.checkpoint_step}",
                            step, self.checkpoint_step, exc) from None
        wall = time.perf_counter() - t_session
        self._close(plot=True)
        if stop.signal is not None and step < n_steps:
            where = self.cfg.get("path") or "CONFIG.toml"
            raise RunInterrupted(f"{stop.name} received: stopped after step {step} of {n_steps} with a checkpoint "
                                 f"there ({out['checkpoint']}) and every output flushed; continue with "
                                 f"`hybrid run --resume {where}`", step, self.checkpoint_step)
        return self._summary(start, step, wall)

    def _check_resume(self, payload: dict) -> None:
        """Refuse a checkpoint of another configuration (naming what changed) or ``steps`` below it."""
        out, cfg = self.cfg["output"], self.cfg
        if payload["config_hash"] != cfg["hash"]:
            changed = changed_settings(payload.get("settings", {}), self._fingerprint) \
                if "settings" in payload else ["(the checkpoint predates per-key records)"]
            raise InputError(f"{out['checkpoint']}: written by a run with a different configuration or input "
                             f"files; only [md] steps may change on resume. Changed: {'; '.join(changed)}. "
                             "Restore them, or start a new run with --overwrite")
        if cfg["md"]["steps"] < payload["step"]:
            raise InputError(f"{self.source}: [md] steps = {cfg['md']['steps']}: below the checkpoint's step "
                             f"{payload['step']} ({out['checkpoint']}); a resumed run can only go on "
                             f"(steps >= {payload['step']})")

    def _step(self, step: int) -> None:
        prev = self.force.last_error
        try:
            self.integrator.step(1)
        except Exception as exc:  # OpenMMException wraps the potential's error
            raise self._failure(step, exc, prev) from None

    def _state(self, step: int, positions: bool):
        prev = self.force.last_error
        try:
            return self.context.getState(getEnergy=True, getPositions=positions)
        except Exception as exc:
            raise self._failure(step, exc, prev) from None

    def _failure(self, step: int, exc: BaseException, prev) -> RunFailed:
        cause = self.force.last_error if self.force.last_error is not prev else exc
        if isinstance(cause, KeyboardInterrupt):    # a second Ctrl-C inside the force callback: not the potential
            raise KeyboardInterrupt
        kind = type(cause).__name__
        text = str(cause).strip() or repr(cause)
        if len(text) > 2000:
            text = text[:2000] + " ..."
        t = step * self.cfg["md"]["timestep_fs"]
        ck = self.checkpoint_step
        where = (f"the last checkpoint ({self.cfg['output']['checkpoint']}) is step {ck}, from which "
                 "`hybrid run --resume` restarts" if ck >= 0 else "no checkpoint was written")
        kept = (f"{self.cfg['output']['csv'].name} and the trajectory hold every step before {step}; {where}"
                if getattr(self, "csv", None) is not None else
                "nothing was written (step 0 is evaluated before any output exists)")
        msg = f"step {step} (t = {t:.2f} fs): the potential failed: {kind}: {text}\nThe run stopped. {kept}."
        return RunFailed(msg, step, ck, cause)

    def _close(self, plot: bool) -> None:
        for name in ("csv", "timings", "traj"):
            w = getattr(self, name, None)
            if w is not None:
                try:
                    w.sync()
                finally:
                    w.close()
        if plot and self.cfg["output"]["csv"].exists():
            try:
                md = self.cfg["md"]
                plot_summary(self.cfg["output"]["csv"], self.cfg["output"]["plot"], self.cfg.get("title", ""),
                             integrator=md["integrator"], bath_K=md["temperature_K"])
            except Exception as exc:  # a plot must never hide the run's own outcome
                print(f"warning: summary plot not written: {type(exc).__name__}: {exc}", file=self.stream)

    def _bar(self, start, n_steps):
        if not self.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=n_steps, initial=start, unit="step", file=self.stream, dynamic_ncols=True,
                    mininterval=0.5, desc="hybrid MD")

    def _update_bar(self, bar, steps_done: int, wall: float) -> None:
        if bar is None:
            return
        bar.update(1)
        if wall > 0:
            ns_day = steps_done * self.cfg["md"]["timestep_fs"] * 1e-6 / (wall / 86400.0)
            share = f", QM {100 * self.model.qm.total / wall:.0f}%" if self.model.has_qm else ""
            bar.set_postfix_str(f"{ns_day:.3g} ns/day{share}", refresh=False)

    def _summary(self, start: int, stop: int, wall: float) -> RunSummary:
        steps = stop - start
        ns_day = steps * self.cfg["md"]["timestep_fs"] * 1e-6 / (wall / 86400.0) if wall > 0 and steps else 0.0
        d = read_csv(self.cfg["output"]["csv"])
        drift = slope = mean_t = None
        nve = self.cfg["md"]["integrator"] == "verlet"     # Langevin (NVT) does not conserve E_total
        if d and len(d["step"]) and not nve:
            mean_t = float(np.mean(d["T_K"]))
        if d and len(d["step"]) > 1 and nve:
            de = (d["E_total_eV"] - d["E_total_eV"][0]) * 1e3
            drift = float(np.abs(de).max())
            if d["time_fs"][-1] > d["time_fs"][0] and len(de) > 2:
                slope = float(np.polyfit(d["time_fs"] / 1000.0, de, 1)[0])
        out = self.cfg["output"]
        files = {k: str(out[k]) for k in ("csv", "plot", "trajectory", "topology", "timings", "checkpoint")}
        return RunSummary(start, stop, steps, wall, ns_day, self.model.qm.total / wall if wall > 0 else 0.0,
                          {k: c.total for k, c in self.model.clocks.items()}, drift, slope, files, self.resume,
                          self.cfg["md"]["integrator"], mean_t, self.cfg["md"]["temperature_K"],
                          int(np.sum(d["conservative"] == 0)) if d and "conservative" in d else None)


def run(cfg: Section, **kwargs) -> RunSummary:
    """Run a validated configuration; see :class:`Runner` for the keyword arguments."""
    return Runner(cfg, **kwargs).run()
