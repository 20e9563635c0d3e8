"""Ions near a charged wall: trajectory → profiles → φ(z), D(z), F(z) → Nernst–Planck flux.

The trajectory is synthesised, not simulated with a force field: cations
and anions of a 0.1 M 1:1 electrolyte are independent overdamped Langevin
walkers (continuum.langevin) in the Gouy–Chapman mean-field potential of a
wall held at +50 mV (ε_r = 79, 298.15 K), with a diffusion coefficient that
drops near the wall, D(z) = D_b [1 − 0.6 exp(−z / 4 Å)], and reflecting
walls at z = 0 and z = 60 Å.  The frames are written as an ASE trajectory and
then pushed through the same chain a real MD run would take:

1. read the trajectory (continuum.trajectories.read_trajectory);
2. number and charge densities with block-average error bars;
3. φ(z) from Poisson's equation (vacuum convention, the wall's Grahame
   charge at z = 0, ε_r = 79 for the implicit solvent), against Gouy–Chapman;
4. D(z) and F(z) of the cations from the propagator estimator, with the
   MSD-in-bin estimate for comparison, against the input D(z) and e φ_GC(z);
5. the estimated D(z), F(z) in the Nernst–Planck solver: zero flux without
   bias, then the steady cation flux into the wall acting as a sink
   (c = 0 at the wall, bulk at 60 Å), compared with free diffusion.

The recovered φ(z) sits a few mV below Gouy–Chapman: the walkers' bulk
counts fluctuate by ~1–2 %, which the double integral of Poisson's equation
turns into millivolts; consecutive blocks share slowly moving walkers, so
the block error bars are a lower bound here.

Writes ions_near_wall.png next to this script (or to --out).  About 15 s.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hybrid.units import E_CHARGE, K_B, N_A  # noqa: E402

from continuum.diffusion import coordinates, estimate_diffusion_profile, msd_in_bins  # noqa: E402
from continuum.electrolyte import (debye_length, gouy_chapman_potential,  # noqa: E402
                                   grahame_surface_charge)
from continuum.grid import Grid  # noqa: E402
from continuum.langevin import overdamped_langevin, sample_boltzmann  # noqa: E402
from continuum.nernst_planck import Dirichlet, NernstPlanck, Species  # noqa: E402
from continuum.poisson import potential_from_profile  # noqa: E402
from continuum.profiles import density_profile  # noqa: E402
from continuum.trajectories import read_trajectory  # noqa: E402

T, C0, PHI0, EPS_R = 298.15, 100.0, 0.05, 79.0       # K, mol/m³, V
KT_EV = K_B * T / E_CHARGE
D_BULK = 2e-4                                          # Å²/fs  (= 2e-9 m²/s)
Z_MAX = 60.0                                           # Å
DT, STEPS_PER_FRAME, N_FRAMES = 100.0, 100, 160       # fs; frames 10 ps apart
N_WALKERS = 1500                                       # cations


def phi_gc(z_angstrom):
    return gouy_chapman_potential(np.asarray(z_angstrom) * 1e-10, PHI0, C0, 1, EPS_R, T)


def d_model(z):
    return D_BULK * (1 - 0.6 * np.exp(-z / 4.0))


def d_model_gradient(z):
    return D_BULK * 0.6 / 4.0 * np.exp(-z / 4.0)


def synthesise(path: Path, seed: int = 1):
    """Write an ASE trajectory of the ions; return (charges (N,) e, lateral area Å²)."""
    from ase import Atoms
    from ase.io import Trajectory as AseTrajectory

    h = 1e-4
    zz = np.linspace(0, Z_MAX, 4001)
    # walkers per species in proportion to ∫ exp(∓eφ/kT) dz: equal bulk concentrations,
    # and the lateral area that makes that bulk concentration C0 = 0.1 M
    occupied = {z: np.trapezoid(np.exp(-z * phi_gc(zz) / KT_EV), zz) for z in (+1, -1)}   # Å
    counts = {+1: N_WALKERS, -1: int(round(N_WALKERS * occupied[-1] / occupied[+1]))}
    area = N_WALKERS / (C0 * N_A * 1e-30 * occupied[+1])
    zs, charges = [], []
    for k, z in enumerate((+1, -1)):
        beta_u = lambda x, z=z: z * phi_gc(x) / KT_EV
        beta_f = lambda x, z=z: -z * (phi_gc(x + h) - phi_gc(x - h)) / (2 * h) / KT_EV
        z0 = sample_boltzmann(beta_u, (0.0, Z_MAX), counts[z], seed=seed + k)
        zs.append(overdamped_langevin(z0, N_FRAMES, DT, STEPS_PER_FRAME, d_model, d_model_gradient,
                                      beta_f, (0.0, Z_MAX), periodic=False, seed=seed + 10 + k))
        charges += [z] * counts[z]
    zs = np.concatenate(zs, axis=1)
    side = np.sqrt(area)
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, side, (len(charges), 2))
    symbols = ["Na"] * counts[+1] + ["Cl"] * counts[-1]
    with AseTrajectory(str(path), "w") as out:
        for f in range(N_FRAMES):
            atoms = Atoms(symbols, positions=np.column_stack([xy, zs[f]]),
                          cell=[side, side, Z_MAX], pbc=[True, True, False])
            atoms.set_initial_charges(charges)
            atoms.info["time"] = f * DT * STEPS_PER_FRAME
            out.write(atoms)
    return np.array(charges, dtype=float), area


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("ions_near_wall.png"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ions.traj"
        charges, area = synthesise(path, seed=args.seed)
        traj = read_trajectory(path)
    lam = debye_length([C0, C0], [1, -1], EPS_R, T)
    print(f"{traj.n_frames} frames of {traj.n_atoms} ions, frames {traj.timestep / 1e3:.0f} ps apart; "
          f"Debye length {lam * 1e10:.2f} Å  ({time.perf_counter() - t0:.1f} s)")

    # 2. densities ------------------------------------------------------------
    edges = np.linspace(0.0, Z_MAX, 61)
    cat, an = charges > 0, charges < 0
    n_cat = density_profile(traj, 2, edges, atoms=cat, n_blocks=8)
    n_an = density_profile(traj, 2, edges, atoms=an, n_blocks=8)
    rho = density_profile(traj, 2, edges, weights="charge", n_blocks=8)
    to_molar = 1 / (N_A * 1e3)                 # m⁻³ → mol/L

    # 3. φ(z) -------------------------------------------------------------------
    sigma = grahame_surface_charge(PHI0, C0, 1, EPS_R, T)
    phi, field, res = potential_from_profile(rho, "vacuum", EPS_R, surface_charge=sigma, reference="right")
    z_e = res.edges * 1e10
    dphi = np.max(np.abs((phi.values - phi_gc(z_e)) * 1e3))
    print(f"Poisson φ(z) vs Gouy–Chapman: max |Δφ| = {dphi:.2f} mV, wall potential "
          f"{phi.values[0] * 1e3:.1f} ± {phi.errors[0] * 1e3:.1f} mV (target 50 mV); "
          f"residual field at 60 Å {res.field[-1]:.2e} V/m")

    # 4. D(z), F(z) of the cations -------------------------------------------------
    zc = coordinates(traj, 2, atoms=cat)                   # m
    dt = traj.timestep * 1e-15                             # s
    d_edges = np.linspace(0.0, Z_MAX * 1e-10, 31)          # 2 Å bins over the whole box
    est = estimate_diffusion_profile(zc, d_edges, dt, lag=10, temperature=T)
    d_msd, d_msd_err, _ = msd_in_bins(zc, d_edges, dt, 1)
    d_true = d_model(est.diffusivity.x * 1e10) * 1e-5      # m²/s
    rms = np.sqrt(np.mean((est.diffusivity.values / d_true - 1) ** 2))
    Fk = est.free_energy_kT
    Fc = 0.5 * (d_edges[1:] + d_edges[:-1])
    F_ref = phi_gc(Fc * 1e10) / KT_EV
    dF = np.max(np.abs((Fk - Fk[-1]) - (F_ref - F_ref[-1])))
    print(f"cation D(z): RMS error {rms:.1%} vs input; F(z): max error {dF:.2f} kT vs e φ_GC")

    # 5. Nernst–Planck with the estimated D(z), F(z) ---------------------------------------
    grid = Grid.uniform(28e-10, 56, start=1e-10)
    F = est.free_energy
    kT = K_B * T
    c_eq = lambda z: C0 * np.exp(-(F(z) - F(29e-10)) / kT)
    eq = NernstPlanck(grid, [Species("Na+", 0, est.diffusivity, Dirichlet(c_eq(1e-10)),
                                     Dirichlet(c_eq(29e-10)), pmf=F)], T).steady()
    sink = NernstPlanck(grid, [Species("Na+", 0, est.diffusivity, Dirichlet(0.0),
                                       Dirichlet(c_eq(29e-10)), pmf=F)], T).steady()
    free = NernstPlanck(grid, [Species("Na+", 0, D_BULK * 1e-5, Dirichlet(0.0),
                                       Dirichlet(c_eq(29e-10)))], T).steady()
    print(f"NP, no bias: max |J| = {np.abs(eq.fluxes).max():.1e} mol m⁻² s⁻¹ (zero), "
          f"c ∝ exp(−F/kT) to {np.max(np.abs(eq.concentrations[0] / c_eq(grid.centers) - 1)):.1e}")
    print(f"NP, wall as a sink: J = {sink.fluxes[0, 0]:.3g} mol m⁻² s⁻¹ "
          f"(free diffusion {free.fluxes[0, 0]:.3g}; ratio {sink.fluxes[0, 0] / free.fluxes[0, 0]:.3f})")

    # plots --------------------------------------------------------------------------
    fig, ax = plt.subplots(2, 2, figsize=(11, 8))
    zc_bins = n_cat.x * 1e10
    a = ax[0, 0]
    for prof, label, col in ((n_cat, "Na⁺", "C0"), (n_an, "Cl⁻", "C3")):
        a.errorbar(zc_bins, prof.values * to_molar, prof.errors * to_molar, fmt=".", color=col,
                   label=f"{label} (trajectory, block errors)")
    zz = np.linspace(0.05, Z_MAX, 400)
    a.plot(zz, 0.1 * np.exp(-phi_gc(zz) / KT_EV), "C0-", lw=1, label="Gouy–Chapman")
    a.plot(zz, 0.1 * np.exp(phi_gc(zz) / KT_EV), "C3-", lw=1)
    a.set(xlabel="z (Å)", ylabel="concentration (mol/L)", title="densities")
    a.legend(fontsize=8)
    a = ax[0, 1]
    a.fill_between(z_e, (phi.values - 2 * phi.errors) * 1e3, (phi.values + 2 * phi.errors) * 1e3,
                   color="C0", alpha=0.3, label="±2σ (blocks)")
    a.plot(z_e, phi.values * 1e3, "C0-", label="Poisson from ρ(z), vacuum convention")
    a.plot(zz, phi_gc(zz) * 1e3, "k--", lw=1, label="Gouy–Chapman")
    a.set(xlabel="z (Å)", ylabel="φ (mV)", title="potential")
    a.legend(fontsize=8)
    a = ax[1, 0]
    a.errorbar(est.diffusivity.x * 1e10, est.diffusivity.values * 1e9, est.diffusivity.errors * 1e9,
               fmt="o", color="C2", ms=4, label="propagator (ML), edges")
    a.plot(Fc * 1e10, d_msd * 1e9, "s", color="C1", ms=4, mfc="none", label="MSD in bin, 10 ps")
    a.plot(zz, d_model(zz) * 1e-5 * 1e9, "k--", lw=1, label="input D(z)")
    a.set(xlabel="z (Å)", ylabel="D (10⁻⁹ m²/s)", title="cation D(z); F(z) right axis", xlim=(0, 31))
    b = a.twinx()
    b.errorbar(Fc * 1e10, Fk - Fk[-1], est.free_energy.errors / kT, fmt="^", color="C4", ms=4,
               label="F(z) estimate")
    b.plot(zz[zz < 31], phi_gc(zz[zz < 31]) / KT_EV - F_ref[-1], "C4:", label="e φ_GC / kT")
    b.set_ylabel("F / kT")
    h1, l1 = a.get_legend_handles_labels()
    h2, l2 = b.get_legend_handles_labels()
    a.legend(h1 + h2, l1 + l2, fontsize=7, loc="center right")
    a = ax[1, 1]
    zg = grid.centers * 1e10
    a.plot(zg, eq.concentrations[0] / 1e3, "C0-", label="no bias: J = 0, c ∝ exp(−F/kT)")
    a.plot(zg, sink.concentrations[0] / 1e3, "C3-", label=f"wall sink: J = {sink.fluxes[0, 0]:.2g} mol/m²/s")
    a.plot(zg, free.concentrations[0] / 1e3, "k--", lw=1, label=f"free diffusion: J = {free.fluxes[0, 0]:.2g}")
    a.set(xlabel="z (Å)", ylabel="Na⁺ (mol/L)", title="Nernst–Planck with estimated D(z), F(z)")
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}  ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
