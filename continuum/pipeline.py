"""From a trajectory to a transport prediction in one call.

    report = transport("ions.traj", {"Na+": "Na", "Cl-": "Cl"}, axis="z", bins=30, extent=(0, 60e-10))
    report.flux["Na+"]                     # mol m⁻² s⁻¹, steady Nernst–Planck
    report.write("transport/")             # profiles.csv, fluxes.csv, report.md, transport.png

Steps, per species: the number density (block errors); D(x) and F(x) from the propagator estimator at the
lag a lag scan recommends (:mod:`continuum.diffusion`, which warns when no lag can be trusted); the steady
Nernst–Planck flux through the extent with those D(x), F(x), the given boundary concentrations and an
applied voltage. For all charges together: the charge density and φ(x) from Poisson's equation.

How φ and F combine (the one place this is decided): F(x) estimated from a trajectory is the full
potential of mean force, so it already contains z e φ(x) of the field in that trajectory. φ(x) is
therefore *reported*, never added to F; the only field added in the flux calculation is the applied
voltage V, as a linear drop from V at the left end to 0 at the right end (the constant-field
approximation). :class:`continuum.nernst_planck.NernstPlanck` refuses a trajectory's own φ together with
a charged species whose PMF was estimated from a trajectory.

Units: SI at this interface, in and out: positions and ranges in m, times in s, D in m²/s, F in J (also
given in k_BT), concentrations in mol/m³ (= mM), potentials in V, fluxes in mol m⁻² s⁻¹, current density
in A/m². The trajectory's own units (Å, fs for ASE files) are converted by the readers.
"""
from __future__ import annotations

import csv
import io
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hybrid.units import FARADAY, K_B, N_A

from .diffusion import (DiffusionEstimate, DiffusionWarning, coordinates, equal_mixing_edges,
                        estimate_diffusion_profile, lag_scan)
from .grid import Grid
from .nernst_planck import Dirichlet, NernstPlanck, Species
from .poisson import potential_from_profile
from .profiles import ANGSTROM_M, Profile, density_profile
from .trajectories import Trajectory, from_mdanalysis, read_ase, read_trajectory

AXES = {"x": 0, "y": 1, "z": 2, 0: 0, 1: 1, 2: 2}


@dataclass
class SpeciesTransport:
    """One species' results. atoms: indices into the trajectory; valence: z (e); density: number density
    Profile (m⁻³); concentration: the same in mol/m³ (n, bin centres); estimate: the D(x), F(x) estimate at
    ``lag`` frames; warnings: the diagnostics' messages; c_left, c_right: boundary concentrations (mol/m³);
    flux: steady NP flux (mol m⁻² s⁻¹, positive towards +x); grid_x, grid_c: the steady NP concentration
    (m, mol/m³)."""
    name: str
    atoms: np.ndarray
    valence: float
    density: Profile
    estimate: DiffusionEstimate
    lag: int
    c_left: float
    c_right: float
    flux: float
    grid_x: np.ndarray
    grid_c: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def concentration(self) -> np.ndarray:
        return self.density.values / N_A


@dataclass
class TransportReport:
    """The pipeline's result: species (name → :class:`SpeciesTransport`), charge density (C/m³) and φ
    (V) Profiles (None without charges), the applied voltage (V), temperature (K), extent (m), the
    frame spacing (s) and the current density F Σ z J (A/m²)."""
    species: dict[str, SpeciesTransport]
    charge: Profile | None
    potential: Profile | None
    voltage: float
    temperature: float
    extent: tuple[float, float]
    timestep: float
    source: str

    @property
    def flux(self) -> dict[str, float]:
        """Steady NP flux per species, mol m⁻² s⁻¹ (positive towards +x)."""
        return {k: s.flux for k, s in self.species.items()}

    @property
    def current(self) -> float:
        """Current density F Σ_k z_k J_k in A/m²."""
        return float(sum(FARADAY * s.valence * s.flux for s in self.species.values()))

    def profiles_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["species", "quantity", "x_m", "value", "error", "unit"])
        for name, s in self.species.items():
            kT = K_B * self.temperature
            rows = [("concentration", s.density.x, s.concentration, _err(s.density, 1 / N_A), "mol/m^3"),
                    ("diffusivity", s.estimate.diffusivity.x, s.estimate.diffusivity.values,
                     _err(s.estimate.diffusivity), "m^2/s"),
                    ("free_energy", s.estimate.free_energy.x, s.estimate.free_energy.values / kT,
                     _err(s.estimate.free_energy, 1 / kT), "kT"),
                    ("np_concentration", s.grid_x, s.grid_c, np.full(s.grid_x.shape, np.nan), "mol/m^3")]
            for quantity, x, v, e, unit in rows:
                for xi, vi, ei in zip(x, v, e):
                    w.writerow([name, quantity, f"{xi:.6e}", f"{vi:.6e}", f"{ei:.3e}", unit])
        for prof, quantity in ((self.charge, "charge_density"), (self.potential, "potential")):
            if prof is not None:
                for xi, vi, ei in zip(prof.x, prof.values, _err(prof)):
                    w.writerow(["all", quantity, f"{xi:.6e}", f"{vi:.6e}", f"{ei:.3e}", prof.unit])
        return out.getvalue()

    def fluxes_csv(self) -> str:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["species", "valence", "lag_frames", "lag_s", "min_D_tau_over_dx2", "memory_time_s",
                    "c_left_mol_m3", "c_right_mol_m3", "flux_mol_m2_s", "current_A_m2"])
        for name, s in self.species.items():
            w.writerow([name, s.valence, s.lag, f"{s.estimate.lag_time:.6e}", f"{s.estimate.resolution:.3f}",
                        f"{s.estimate.memory_time:.3e}", f"{s.c_left:.6e}", f"{s.c_right:.6e}",
                        f"{s.flux:.6e}", f"{FARADAY * s.valence * s.flux:.6e}"])
        return out.getvalue()

    def markdown(self) -> str:
        lo, hi = self.extent
        lines = [f"# Transport from {self.source}", "",
                 f"Range {lo * 1e10:.2f}–{hi * 1e10:.2f} Å, {self.temperature:g} K, frames "
                 f"{self.timestep:.4g} s apart, applied voltage {self.voltage:g} V (left end; right end 0). "
                 "F(x) is the trajectory's full potential of mean force (its own field included); φ(x) is "
                 "reported, not added to it.", "",
                 "| species | z | atoms | lag (frames) | min Dτ/Δx² | τ_m (s) | c_left (mol/m³) | c_right (mol/m³) "
                 "| J (mol m⁻² s⁻¹) |", "|---|---|---|---|---|---|---|---|---|"]
        for name, s in self.species.items():
            lines.append(f"| {name} | {s.valence:+g} | {s.atoms.size} | {s.lag} | {s.estimate.resolution:.2f} | "
                         f"{s.estimate.memory_time:.2e} | {s.c_left:.4g} | {s.c_right:.4g} | {s.flux:.4g} |")
        lines += ["", f"Current density F Σ z J = {self.current:.4g} A/m².", ""]
        notes = [f"- {name}: {m}" for name, s in self.species.items() for m in s.warnings]
        if notes:
            lines += ["Diagnostics:", ""] + notes + [""]
        return "\n".join(lines)

    def write(self, directory) -> Path:
        """profiles.csv, fluxes.csv, report.md and transport.png in ``directory`` (created), each written
        atomically."""
        from hybrid.files import atomic_write_bytes
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(d / "profiles.csv", self.profiles_csv().encode())
        atomic_write_bytes(d / "fluxes.csv", self.fluxes_csv().encode())
        atomic_write_bytes(d / "report.md", self.markdown().encode())
        atomic_write_bytes(d / "transport.png", self._plot())
        return d

    def _plot(self) -> bytes:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(2, 2, figsize=(11, 8))
        kT = K_B * self.temperature
        for k, (name, s) in enumerate(self.species.items()):
            col = f"C{k}"
            ax[0, 0].errorbar(s.density.x * 1e10, s.concentration, _err(s.density, 1 / N_A), fmt=".",
                              color=col, label=f"{name}, trajectory")
            ax[0, 0].plot(s.grid_x * 1e10, s.grid_c, "-", color=col, lw=1, label=f"{name}, steady NP")
            D = s.estimate.diffusivity
            ax[1, 0].errorbar(D.x * 1e10, D.values, _err(D), fmt="o-", ms=3, color=col,
                              label=f"{name} (lag {s.lag})")
            F = s.estimate.free_energy
            ax[1, 1].errorbar(F.x * 1e10, F.values / kT, _err(F, 1 / kT), fmt="s-", ms=3, color=col, label=name)
        ax[0, 0].set(xlabel="x (Å)", ylabel="concentration (mol/m³)", title="densities")
        ax[0, 0].legend(fontsize=8)
        if self.potential is not None:
            p = self.potential
            ax[0, 1].fill_between(p.x * 1e10, p.values - 2 * _err(p), p.values + 2 * _err(p), alpha=0.3)
            ax[0, 1].plot(p.x * 1e10, p.values, "C0-")
        ax[0, 1].set(xlabel="x (Å)", ylabel="φ (V)", title="potential from the charge density (±2σ)")
        ax[1, 0].set(xlabel="x (Å)", ylabel="D (m²/s)", title="D(x)")
        ax[1, 0].legend(fontsize=8)
        ax[1, 1].set(xlabel="x (Å)", ylabel="F / k_BT", title="free energy F(x)")
        ax[1, 1].legend(fontsize=8)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        return buf.getvalue()


def _err(profile: Profile, scale: float = 1.0) -> np.ndarray:
    return (np.zeros_like(profile.values) if profile.errors is None else profile.errors) * scale


def load(source, topology=None, timestep: float | None = None, charges=None) -> Trajectory:
    """A :class:`Trajectory` from a path (ASE formats, or DCD/XTC/... with ``topology``), a list of
    ``ase.Atoms``, an ``MDAnalysis.Universe`` or a Trajectory. timestep: s between frames (default: the
    file's frame times); charges: (N,) e (default: the file's)."""
    if timestep is not None and not (np.isfinite(timestep) and timestep > 0):
        raise ValueError(f"timestep must be the positive time between frames in s, got {timestep}")
    if isinstance(source, Trajectory):
        traj = source
    elif isinstance(source, (str, Path)):
        traj = read_trajectory(source, topology, **({} if charges is None else {"charges": charges}))
    elif type(source).__name__ == "Universe":
        traj = from_mdanalysis(source, charges=charges)
    else:
        traj = read_ase(source, charges=charges)
    if timestep is not None:
        traj = replace(traj, times=np.arange(traj.n_frames) * float(timestep) / 1e-15)    # fs inside
    return traj


def select(trajectory: Trajectory, name: str, selection) -> np.ndarray:
    """Atom indices of a species: a string matches the trajectory's atom names (element symbols for ASE
    files, atom names for topologies); else indices or a boolean mask. Raises naming the species when
    nothing matches."""
    if isinstance(selection, str):
        if trajectory.names is None:
            raise ValueError(f"species {name!r}: the trajectory has no atom names to match {selection!r}; "
                             "give atom indices")
        idx = np.flatnonzero(trajectory.names == selection)
        if idx.size == 0:
            raise ValueError(f"species {name!r}: no atom is named {selection!r} (names in the trajectory: "
                             f"{sorted(set(trajectory.names.tolist()))[:20]})")
        return idx
    idx = np.asarray(selection)
    if idx.dtype == bool:
        if idx.shape != (trajectory.n_atoms,):
            raise ValueError(f"species {name!r}: mask has shape {idx.shape}, the trajectory {trajectory.n_atoms} atoms")
        idx = np.flatnonzero(idx)
    idx = idx.astype(int).ravel()
    if idx.size == 0:
        raise ValueError(f"species {name!r}: the selection is empty")
    if idx.min() < 0 or idx.max() >= trajectory.n_atoms:
        raise ValueError(f"species {name!r}: atom indices must lie in [0, {trajectory.n_atoms}), "
                         f"got {idx.min()}..{idx.max()}")
    return idx


def transport(source, species: dict, axis="z", bins: int = 30, extent: tuple[float, float] | None = None,
              temperature: float = 298.15, voltage: float = 0.0, concentrations: dict | None = None,
              lags=None, equal_mixing: bool = False, valences: dict | None = None, eps_r: float = 1.0,
              n_blocks: int = 5, topology=None, timestep: float | None = None, charges=None,
              n_cells: int = 200) -> TransportReport:
    """Profiles, φ(x), D(x), F(x) and steady Nernst–Planck fluxes from one trajectory (SI throughout).

    source: a trajectory file (with ``topology`` for DCD/XTC/...), a list of ``ase.Atoms``, an MDAnalysis
    Universe or a :class:`Trajectory`; species: name → atom name (str), indices or mask; axis: "x", "y",
    "z" or 0–2; bins: number of bins over ``extent`` = (lo, hi) in m (default the box along the axis); lags: frames to
    scan (default powers of two up to a quarter of the frames); equal_mixing: re-bin each species with
    widths ∝ √D from a first estimate (for D varying by decades); valences: name → z (default: the mean
    charge of the species' atoms in the trajectory); concentrations: name → (c_left, c_right) in mol/m³
    for the flux (default: the trajectory's own concentrations in the end bins, so that at zero voltage
    the predicted flux is the equilibrium's zero); voltage: applied V at the left end (0 at the right);
    eps_r: for Poisson (1 when the trajectory holds every charge); n_blocks: block errors of the profiles;
    timestep: s between frames (default: from the file); n_cells: NP grid cells.
    """
    traj = load(source, topology, timestep, charges)
    if axis not in AXES:
        raise ValueError(f"axis must be 'x', 'y', 'z' or 0, 1, 2, got {axis!r}")
    ax = AXES[axis]
    if not species:
        raise ValueError("species: give at least one, e.g. {'Na+': 'Na'}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive (K), got {temperature}")
    dt = traj.timestep * 1e-15
    has_cell = bool(np.all(np.abs(np.linalg.det(traj.cells)) > 0))
    if extent is None:
        if not has_cell:
            raise ValueError("extent: the trajectory has no cell; give extent=(lo, hi) in m")
        extent = (0.0, float(np.mean(traj.height(ax))) * ANGSTROM_M)
    lo, hi = (float(r) for r in extent)
    if not hi > lo:
        raise ValueError(f"extent must be (lo, hi) in m with hi > lo, got {extent}")
    if hi - lo > 1e-6:
        warnings.warn(f"extent spans {hi - lo:.3g} m: is it in m (not Å)?", stacklevel=2)
    if int(bins) != bins or bins < 3:
        raise ValueError(f"bins must be an integer >= 3, got {bins}")
    concentrations = concentrations or {}
    valences = valences or {}
    for key, table in (("concentrations", concentrations), ("valences", valences)):
        unknown = set(table) - set(species)
        if unknown:
            raise ValueError(f"{key}: {sorted(unknown)} are not among the species {sorted(species)}")
    selected = {name: select(traj, name, sel) for name, sel in species.items()}
    for name in species:
        if name not in valences and traj.charges is None:
            raise ValueError(f"species {name!r}: no valence given and the trajectory has no charges; "
                             f"pass valences={{{name!r}: z}}")
        c = concentrations.get(name)
        if c is not None and (len(c) != 2 or min(c) < 0):
            raise ValueError(f"concentrations[{name!r}] must be (c_left, c_right) >= 0 in mol/m³, got {c}")

    edges_a = np.linspace(lo, hi, int(bins) + 1) / ANGSTROM_M          # density_profile takes Å
    periodic = bool(traj.pbc[ax] and has_cell and lo <= 1e-12 * hi
                    and abs(hi - float(np.mean(traj.height(ax))) * ANGSTROM_M) < 1e-6 * hi)
    if lags is None:
        top = max(traj.n_frames // 4, 2)
        lags = [2**k for k in np.arange(int(np.log2(top)) + 1)]

    charge = potential = None
    if traj.charges is not None:
        charge = density_profile(traj, ax, edges_a, weights="charge", n_blocks=n_blocks)
        potential = potential_from_profile(charge, "periodic" if periodic else "vacuum", eps_r)[0]

    grid = Grid.uniform(hi - lo, int(n_cells), start=lo)

    def applied(xx):                                     # the applied field only: V at lo, 0 at hi
        return voltage * (hi - np.asarray(xx)) / (hi - lo)

    results = {}
    for name, idx in selected.items():
        z = float(valences[name]) if name in valences else float(np.mean(traj.charges[idx]))
        density = density_profile(traj, ax, edges_a, atoms=idx, n_blocks=n_blocks)
        # the whole periodic box: unwrapped (the estimator wraps into its bins); a slab of it: wrapped
        x = coordinates(traj, ax, atoms=idx) if periodic else traj.select(idx).coordinate(ax) * ANGSTROM_M
        edges = edges_a * ANGSTROM_M
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DiffusionWarning)
            scan = lag_scan(x, edges, dt, lags, temperature, periodic)
            lag = scan.recommended_lag()
            if equal_mixing:
                pilot = estimate_diffusion_profile(x, edges, dt, lag, temperature, periodic, errors=False,
                                                   warn=False, memory_time=scan.memory_time)
                edges = equal_mixing_edges(pilot.diffusivity, lo, hi, int(bins))
                scan = lag_scan(x, edges, dt, lags, temperature, periodic)
                lag = scan.recommended_lag()
            est = estimate_diffusion_profile(x, edges, dt, lag, temperature, periodic,
                                             memory_time=scan.memory_time)
        messages = [str(w.message) for w in caught if issubclass(w.category, DiffusionWarning)]
        for m in messages:
            warnings.warn(f"species {name!r}: {m}", DiffusionWarning, stacklevel=2)
        c_mol = density.values / N_A
        c_left, c_right = concentrations.get(name, (float(c_mol[0]), float(c_mol[-1])))
        F = est.free_energy
        sp = Species(name, z, est.diffusivity, Dirichlet(float(c_left)), Dirichlet(float(c_right)), pmf=F)
        sol = NernstPlanck(grid, [sp], temperature, potential=applied).steady()
        results[name] = SpeciesTransport(name, idx, z, density, est, lag, float(c_left), float(c_right),
                                         float(np.mean(sol.fluxes[0])), grid.centers.copy(),
                                         sol.concentrations[0].copy(), messages)
    return TransportReport(results, charge, potential, float(voltage), float(temperature), (lo, hi), dt,
                           str(source) if isinstance(source, (str, Path)) else type(source).__name__)
