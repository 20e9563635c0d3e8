"""φ(x) from ρ(x): Gaussian charge sheets in both conventions, and the
Gouy–Chapman round trip."""
import numpy as np
import pytest
from scipy.special import erf

from hybrid.units import EPS0, FARADAY

from continuum.electrolyte import (debye_length, gouy_chapman_concentrations,
                                   gouy_chapman_potential, grahame_surface_charge)
from continuum.poisson import potential_from_profile, solve_poisson_1d
from continuum.profiles import Profile

SIGMA, X1, X2, BOX, WIDTH = 0.1, 1.5e-9, 3.5e-9, 5e-9, 0.1e-9


def sheets_bin_averages(edges):
    """Exact bin averages of ρ = σ[g(x − x1) − g(x − x2)], g a unit Gaussian."""
    cdf = lambda a: 0.5 * (1 + erf((edges - a) / (np.sqrt(2) * WIDTH)))
    return SIGMA * (np.diff(cdf(X1)) - np.diff(cdf(X2))) / np.diff(edges)


def sheets_open_potential(x, width=WIDTH):
    """Closed form φ(x) with E = 0 outside and φ(0) = 0."""
    b = np.sqrt(2) * width
    G = lambda x, a: (x - a) * erf((x - a) / b) + b / np.sqrt(np.pi) * np.exp(-((x - a) / b) ** 2)
    return -SIGMA / (2 * EPS0) * (G(x, X1) - G(x, X2) - G(0.0, X1) + G(0.0, X2))


def sheets_periodic_potential(x, width=WIDTH):
    """Closed form with zero-mean field: subtract the linear ramp, φ(L) = φ(0) = 0."""
    return sheets_open_potential(x, width) - x / BOX * sheets_open_potential(BOX, width)


def test_closed_forms_give_the_issue_numbers():
    """Open: the step across the pair is σd/ε0 = 22.59 V for any width.
    Periodic: the drop between thin sheets is σd(1 − d/L)/ε0 = 13.55 V."""
    assert -sheets_open_potential(BOX) == pytest.approx(22.59, abs=0.005)
    x = np.linspace(0, BOX, 20001)
    per = sheets_periodic_potential(x, width=1e-14)
    assert per.max() - per.min() == pytest.approx(13.55, abs=0.005)


@pytest.mark.parametrize("convention, reference, drop", [("vacuum", sheets_open_potential, 22.59),
                                                         ("periodic", sheets_periodic_potential, 13.55)])
def test_gaussian_sheets_both_conventions(convention, reference, drop):
    edges = np.linspace(0, BOX, 201)
    res = solve_poisson_1d(edges, sheets_bin_averages(edges), convention)
    ref = reference(edges)
    assert np.max(np.abs(res.potential - ref)) < 0.005 * drop
    centers = 0.5 * (edges[1:] + edges[:-1])
    assert np.max(np.abs(res.potential_centers - reference(centers))) < 0.005 * drop
    if convention == "periodic":
        assert abs(res.potential[-1] - res.potential[0]) < 1e-6
        assert abs(np.mean(0.5 * (res.field[1:] + res.field[:-1]))) < 1e-6 * SIGMA / EPS0
    else:
        assert abs(res.field[0]) == 0.0 and abs(res.field[-1]) < 1e-6 * SIGMA / EPS0


def test_periodic_removes_net_charge_and_reports_it():
    edges = np.linspace(0, BOX, 101)
    rho = sheets_bin_averages(edges) + 1e6          # uniform excess, C/m³
    res = solve_poisson_1d(edges, rho, "periodic")
    assert res.net_charge == pytest.approx(1e6 * BOX)
    assert abs(res.potential[-1] - res.potential[0]) < 1e-6


def test_gouy_chapman_round_trip():
    """ρ(x) of the Gouy–Chapman layer plus the Grahame wall charge gives back
    the Gouy–Chapman φ(x) within 0.1 mV (gauge: φ = 0 in the bulk)."""
    c0, phi0, eps_r, T = 100.0, 0.05, 79.0, 298.15
    lam = debye_length([c0, c0], [1, -1], eps_r, T)
    edges = np.linspace(0, 15 * lam, 1501)
    centers = 0.5 * (edges[1:] + edges[:-1])
    cp, cm = gouy_chapman_concentrations(centers, phi0, c0, 1, eps_r, T)
    rho = FARADAY * (cp - cm)
    sigma = grahame_surface_charge(phi0, c0, 1, eps_r, T)
    res = solve_poisson_1d(edges, rho, "vacuum", eps_r, surface_charge=sigma, reference="right")
    ref = gouy_chapman_potential(edges, phi0, c0, 1, eps_r, T)
    assert np.max(np.abs(res.potential - ref)) < 0.1e-3
    assert abs(res.net_charge) < 1e-3 * sigma


def test_profile_errors_from_blocks():
    edges = np.linspace(0, BOX, 51)
    rho = sheets_bin_averages(edges)
    rng = np.random.default_rng(0)
    blocks = rho + rng.normal(0, 0.01 * np.abs(rho).max(), (6, rho.size))
    prof = Profile(0.5 * (edges[1:] + edges[:-1]), blocks.mean(0), blocks.std(0, ddof=1) / np.sqrt(6),
                   "charge density", "C/m^3", blocks=blocks, edges=edges)
    phi, field, res = potential_from_profile(prof, "periodic")
    assert phi.errors.shape == (51,) and np.all(phi.errors[1:] > 0) and phi.errors[0] == 0.0
    # the potential is linear in ρ, so the mean of the block potentials is the potential of the mean
    assert np.allclose(phi.blocks.mean(0), phi.values, atol=1e-9)
    assert phi(BOX + 1e-9) == pytest.approx(phi(1e-9))      # periodic profile wraps


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="convention"):
        solve_poisson_1d([0, 1, 2], [0.0, 0.0], "tinfoil")
    with pytest.raises(ValueError, match="shape"):
        solve_poisson_1d([0, 1, 2], [0.0], "vacuum")
    with pytest.raises(ValueError, match="only meaningful"):
        solve_poisson_1d([0, 1, 2], [0.0, 0.0], "periodic", surface_charge=0.1)
