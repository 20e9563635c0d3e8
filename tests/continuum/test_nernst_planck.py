"""Nernst–Planck / PNP solver against closed forms (GHK, Nernst, Gouy–Chapman,
Grahame, diffusion eigenmodes)."""
import numpy as np
import pytest

from hybrid.units import FARADAY, K_B

from continuum.electrolyte import (debye_length, thermal_voltage, ghk_flux, gouy_chapman_concentrations,
                                   gouy_chapman_potential, grahame_surface_charge,
                                   nernst_potential)
from continuum.grid import Grid
from continuum.nernst_planck import (Dirichlet, Flux, Neumann, NernstPlanck, PoissonNernstPlanck,
                                     Species, SurfaceCharge, bernoulli, bernoulli_derivative,
                                     poisson_boltzmann)

T = 298.15
D, L = 1e-9, 10e-9


def linear_potential(drop):
    """φ(x) falling linearly by ``drop`` volts from x = 0 to x = L."""
    return lambda x: drop * (1 - x / L)


def test_ghk_number_from_the_issue():
    assert ghk_flux(D, L, 100.0, 10.0, 1, 0.05, T) == pytest.approx(22.3794, abs=5e-5)


def test_sg_steady_flux_equals_ghk_on_four_cells():
    sp = Species("K+", 1, D, Dirichlet(100.0), Dirichlet(10.0))
    sol = NernstPlanck(Grid.uniform(L, 4), [sp], T, linear_potential(0.05)).steady()
    ref = ghk_flux(D, L, 100.0, 10.0, 1, 0.05, T)
    assert np.max(np.abs(sol.fluxes[0] / ref - 1)) < 1e-10


@pytest.mark.parametrize("faces", [np.array([0, 1, 3, 6, 10]) * 1e-9, None])
def test_sg_flux_ghk_any_grid_and_valence(faces):
    grid = Grid(faces) if faces is not None else Grid.graded(L, 7, 0.3e-9)
    sp = Species("Ca2+", 2, D, Dirichlet(3.0), Dirichlet(40.0))
    sol = NernstPlanck(grid, [sp], T, linear_potential(-0.03)).steady()
    ref = ghk_flux(D, L, 3.0, 40.0, 2, -0.03, T)
    assert np.max(np.abs(sol.fluxes[0] / ref - 1)) < 1e-10


def test_flux_vanishes_at_nernst_potential():
    drop = nernst_potential(100.0, 10.0, 1, T)
    sp = Species("K+", 1, D, Dirichlet(100.0), Dirichlet(10.0))
    sol = NernstPlanck(Grid.uniform(L, 4), [sp], T, linear_potential(drop)).steady()
    scale = D / L * 100.0
    assert np.max(np.abs(sol.fluxes)) < 1e-12 * scale
    # and the profile is the Boltzmann one, c = c_L exp(-(φ - φ_L)/V_T)
    vt = thermal_voltage(T)
    x = sol.grid.centers
    assert np.allclose(sol.concentrations[0], 100 * np.exp(-(linear_potential(drop)(x) - drop) / vt),
                       rtol=1e-10)


def test_bernoulli_and_derivative_are_smooth_and_consistent():
    x = np.concatenate([np.linspace(-40, 40, 801), np.logspace(-9, -2, 20), -np.logspace(-9, -2, 20),
                        [0.0, 800.0, -800.0]])
    B = bernoulli(x)
    assert np.all(np.isfinite(B)) and bernoulli(0.0) == 1.0
    assert np.allclose(B - bernoulli(-x), -x, atol=1e-12)        # B(x) − B(−x) = −x
    h = 1e-6
    fd = (bernoulli(x + h) - bernoulli(x - h)) / (2 * h)
    assert np.allclose(bernoulli_derivative(x), fd, atol=1e-8)


def test_flux_and_neumann_boundaries():
    """Pure diffusion: a prescribed inflow J on the left and c = 0 on the right
    give the linear profile c = J (L − x)/D; the same profile with a Neumann
    gradient −J/D on the left returns flux J."""
    grid = Grid.uniform(L, 6)
    J = 0.7
    sol = NernstPlanck(grid, [Species("a", 0, D, Flux(J), Dirichlet(0.0))], T).steady()
    assert np.allclose(sol.fluxes, J, rtol=1e-12)
    assert np.allclose(sol.concentrations[0], J * (L - grid.centers) / D, rtol=1e-12)
    sol = NernstPlanck(grid, [Species("a", 0, D, Neumann(-J / D), Dirichlet(0.0))], T).steady()
    assert np.allclose(sol.fluxes, J, rtol=1e-12)


def test_transient_diffusion_mode_decays_at_rate_dk2():
    """Closed box, c = 1 + 0.1 cos(πx/L): the mode decays as exp(−D π² t/L²)
    (second-order accurate in space, Crank–Nicolson in time), mass conserved."""
    grid = Grid.uniform(L, 200)
    c0 = (1 + 0.1 * np.cos(np.pi * grid.centers / L))[None]
    tau = L**2 / (D * np.pi**2)
    sols = NernstPlanck(grid, [Species("a", 0, D)], T).transient(c0, [0.5 * tau, tau], tau / 200, theta=0.5)
    for s in sols:
        amp = 2 * np.sum((s.concentrations[0] - 1) * np.cos(np.pi * grid.centers / L) * grid.widths) / L
        assert amp == pytest.approx(0.1 * np.exp(-s.time / tau), rel=1e-4)
        assert np.sum(s.concentrations[0] * grid.widths) == pytest.approx(L, rel=1e-12)
        assert np.abs(s.fluxes[0, [0, -1]]).max() == 0.0


def _moments(grid, c):
    """Mass, mean (m) and variance (m²) of a concentration profile on the grid."""
    x, h = grid.centers, grid.widths
    mass = np.sum(c * h)
    mean = np.sum(x * c * h) / mass
    return mass, mean, np.sum((x - mean) ** 2 * c * h) / mass


@pytest.mark.parametrize("theta", [1.0, 0.5])
def test_transient_free_diffusion_spreads_a_gaussian_at_2Dt(theta):
    """A Gaussian far from the walls of a closed box: mass and mean stay, the variance grows as σ0² + 2Dt
    (1e-3 relative in the first moments; the finite-volume scheme makes d⟨x²⟩/dt = 2D exactly, so both
    time steppers meet it)."""
    grid = Grid.uniform(40e-9, 400, start=-20e-9)
    c0 = np.exp(-(grid.centers - 1e-9) ** 2 / (2 * (1e-9) ** 2))[None]
    tau = (1e-9) ** 2 / D
    mass0, mean0, var0 = _moments(grid, c0[0])
    for s in NernstPlanck(grid, [Species("a", 0, D)], T).transient(c0, [0.5 * tau, 4 * tau], tau / 50, theta=theta):
        mass, mean, var = _moments(grid, s.concentrations[0])
        assert mass == pytest.approx(mass0, rel=1e-12)
        assert mean == pytest.approx(mean0, rel=1e-3)
        assert var - var0 == pytest.approx(2 * D * s.time, rel=1e-3)


def test_transient_relaxation_into_a_harmonic_well_is_ornstein_uhlenbeck():
    """W(x) = κx²/2 with k_BT/κ = (1 nm)²: from a displaced narrow Gaussian the mean decays as
    m0 exp(−t/τ) and the variance as v_eq + (v0 − v_eq) exp(−2t/τ), τ = k_BT/(Dκ), to 1e-3 relative
    over three relaxation times (400 cells, Crank–Nicolson; the error is second order in the cell width:
    3e-3 with 200 cells)."""
    var_eq = (1e-9) ** 2
    kappa = K_B * T / var_eq
    grid = Grid.uniform(16e-9, 400, start=-8e-9)
    c0 = np.exp(-(grid.centers - 2e-9) ** 2 / (2 * (0.5e-9) ** 2))[None]
    tau = var_eq / D
    _, mean0, var0 = _moments(grid, c0[0])
    species = Species("a", 0, D, pmf=lambda x: 0.5 * kappa * x**2)
    for s in NernstPlanck(grid, [species], T).transient(c0, [0.25 * tau, tau, 3 * tau], tau / 400, theta=0.5):
        _, mean, var = _moments(grid, s.concentrations[0])
        k = s.time / tau
        assert mean == pytest.approx(mean0 * np.exp(-k), rel=1e-3)
        assert var == pytest.approx(var_eq + (var0 - var_eq) * np.exp(-2 * k), rel=1e-3)


def gouy_chapman_setup(c0=100.0, phi0=0.05, eps_r=79.0, n_debye=12):
    lam = debye_length([c0, c0], [1, -1], eps_r, T)
    grid = Grid.graded(n_debye * lam, 160, lam / 60)
    return lam, grid


def test_pnp_zero_flux_equilibrium_is_gouy_chapman_and_grahame():
    c0, phi0, eps_r = 100.0, 0.05, 79.0     # 0.1 M 1:1 salt, 50 mV wall
    lam, grid = gouy_chapman_setup()
    species = [Species("Na+", 1, 1.33e-9, Flux(0.0), Dirichlet(c0)),
               Species("Cl-", -1, 2.03e-9, Flux(0.0), Dirichlet(c0))]
    sol = PoissonNernstPlanck(grid, species, T, eps_r, Dirichlet(phi0), Dirichlet(0.0)).steady()
    ref = gouy_chapman_potential(sol.grid.nodes, phi0, c0, 1, eps_r, T)
    assert np.max(np.abs(sol.potential - ref)) < 0.2e-3
    assert np.max(np.abs(sol.fluxes)) < 1e-9 * 1.33e-9 * c0 / lam
    cref = gouy_chapman_concentrations(grid.centers, phi0, c0, 1, eps_r, T)
    assert np.allclose(sol.concentrations, cref, rtol=5e-3)
    sigma = -np.sum(sol.charge_density * grid.widths)
    assert sigma == pytest.approx(grahame_surface_charge(phi0, c0, 1, eps_r, T), rel=1e-2)


def test_poisson_boltzmann_gouy_chapman_and_surface_charge_boundary():
    c0, phi0, eps_r = 100.0, 0.05, 79.0
    lam, grid = gouy_chapman_setup()
    phi, conc = poisson_boltzmann(grid, [c0, c0], [1, -1], T, eps_r, Dirichlet(phi0), Dirichlet(0.0))
    ref = gouy_chapman_potential(grid.nodes, phi0, c0, 1, eps_r, T)
    assert np.max(np.abs(phi - ref)) < 0.2e-3
    sigma = grahame_surface_charge(phi0, c0, 1, eps_r, T)
    assert -np.sum(FARADAY * (conc[0] - conc[1]) * grid.widths) == pytest.approx(sigma, rel=1e-2)
    # the converse problem: impose the Grahame charge, recover the wall potential
    phi, _ = poisson_boltzmann(grid, [c0, c0], [1, -1], T, eps_r, SurfaceCharge(sigma), Dirichlet(0.0))
    assert phi[0] == pytest.approx(phi0, abs=0.2e-3)


def test_pnp_transient_relaxes_to_equilibrium():
    """Start from uniform salt next to a charged wall; the transient PNP run
    conserves ions (closed box) and ends at the steady Boltzmann layer."""
    c0, eps_r = 100.0, 79.0
    lam = debye_length([c0, c0], [1, -1], eps_r, T)
    grid = Grid.uniform(8 * lam, 60)
    species = [Species("+", 1, 1e-9), Species("-", -1, 1e-9)]
    system = PoissonNernstPlanck(grid, species, T, eps_r, SurfaceCharge(0.01), Dirichlet(0.0))
    c_init = np.full((2, grid.n_cells), c0)
    tau = lam**2 / 1e-9
    end = system.transient(c_init, [50 * tau], dt_max=2 * tau)[-1]
    steady = system.steady(initial=end)
    assert np.allclose(end.concentrations, steady.concentrations, rtol=1e-4)
    assert np.allclose((end.concentrations * grid.widths).sum(axis=1), c0 * grid.length, rtol=1e-10)


def test_bad_inputs_are_named():
    grid = Grid.uniform(L, 4)
    with pytest.raises(ValueError, match="diffusivity"):
        NernstPlanck(grid, [Species("a", 1, np.ones(3))], T)
    with pytest.raises(ValueError, match="negative left"):
        Species("a", 1, D, Dirichlet(-1.0))
    with pytest.raises(TypeError, match="right boundary"):
        Species("a", 1, D, Flux(0.0), "open")
    with pytest.raises(ValueError, match="Dirichlet condition on at least one side"):
        PoissonNernstPlanck(grid, [Species("a", 1, D)], T, 79, SurfaceCharge(0.01), Neumann(0.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        Grid(np.array([0.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="use more cells"):
        Grid.graded(100.0, 5, 0.1)


def test_graded_grid():
    g = Grid.graded(20.0, 1600, 0.0025)
    assert g.widths[0] == pytest.approx(0.0025) and g.length == pytest.approx(20.0)
    assert np.all(np.diff(g.widths) > 0) and g.n_cells == 1600


@pytest.mark.parametrize("c0", [1.0, 100.0, 1000.0])               # 1 mM, 0.1 M, 1 M
@pytest.mark.parametrize("n_debye", [1, 12, 200])
def test_steady_pnp_converges_with_defaults_across_concentrations_and_domains(c0, n_debye):
    """A 100 mV blocking wall: Gouy–Chapman with default settings, 1 mM–1 M, 1–200 Debye lengths. From the
    old linear potential guess Newton failed beyond ~50 λ_D (0.1 M over 100 nm needed ~200 iterations)."""
    eps_r, phi0 = 79.0, 0.1
    lam = debye_length([c0, c0], [1, -1], eps_r, T)
    grid = Grid.graded(n_debye * lam, 160, lam / 60) if n_debye > 2 else Grid.uniform(n_debye * lam, 160)
    species = [Species("Na+", 1, 1.33e-9, Flux(0.0), Dirichlet(c0)),
               Species("Cl-", -1, 2.03e-9, Flux(0.0), Dirichlet(c0))]
    system = PoissonNernstPlanck(grid, species, T, eps_r, Dirichlet(phi0), Dirichlet(0.0))
    sol = system.steady()
    assert np.max(np.abs(sol.fluxes)) < 1e-9 * 1.33e-9 * c0 / lam
    if n_debye >= 12:         # a half-space: the closed form applies
        ref = gouy_chapman_potential(sol.grid.nodes, phi0, c0, 1, eps_r, T)
        assert np.max(np.abs(sol.potential - ref)) < 0.5e-3
    # the linear guess alone (the old default) fails on the long domains
    if n_debye == 200:
        with pytest.raises(RuntimeError, match="did not converge"):
            system._newton(system._initial_vector(None), 1e-10, 100)


@pytest.mark.parametrize("phi0", [0.05, 0.1])
def test_pnp_at_0p1_molar_over_100_nm_with_defaults_is_gouy_chapman_within_0p2_mV(phi0):
    """The issue's case: 0.1 M 1:1 salt over 100 nm (104 Debye lengths), a blocking wall at 50 or 100 mV,
    160 graded cells, solver defaults. Measured: 0.003 mV and 0.02 mV from the closed form."""
    c0 = 100.0
    lam = debye_length([c0, c0], [1, -1], 79.0, T)
    grid = Grid.graded(100e-9, 160, lam / 60)
    species = [Species("Na+", 1, 1.33e-9, Flux(0.0), Dirichlet(c0)),
               Species("Cl-", -1, 2.03e-9, Flux(0.0), Dirichlet(c0))]
    sol = PoissonNernstPlanck(grid, species, T, 79.0, Dirichlet(phi0), Dirichlet(0.0)).steady()
    ref = gouy_chapman_potential(sol.grid.nodes, phi0, c0, 1, 79.0, T)
    assert np.max(np.abs(sol.potential - ref)) < 0.2e-3


def test_driven_pnp_converges_and_continuation_agrees():
    """10:1 concentration ratio and 0.2 V across 200 Debye lengths: a conserved flux; the continuation in the
    boundary potentials (the last fallback) reaches the same steady state."""
    c0 = 100.0
    lam = debye_length([c0, c0], [1, -1], 79.0, T)
    grid = Grid.graded(200 * lam, 160, lam / 60)
    species = [Species("Na+", 1, 1.33e-9, Dirichlet(c0), Dirichlet(c0 / 10)),
               Species("Cl-", -1, 2.03e-9, Dirichlet(c0), Dirichlet(c0 / 10))]
    system = PoissonNernstPlanck(grid, species, T, 79.0, Dirichlet(0.2), Dirichlet(0.0))
    sol = system.steady()
    for k in range(2):
        assert np.ptp(sol.fluxes[k]) < 1e-8 * np.abs(sol.fluxes[k]).max()
    cont = system._continuation(1e-10, 100)
    assert np.allclose(cont.potential, sol.potential, atol=1e-9)
    assert np.allclose(cont.concentrations, sol.concentrations, rtol=1e-8)
    with pytest.raises(RuntimeError, match="Poisson–Boltzmann guess.*linear potential guess.*continuation.*"
                                           "Grid.graded"):
        system.steady(max_iter=1)
