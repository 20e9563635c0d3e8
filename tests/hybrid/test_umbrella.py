"""Umbrella sampling along ξ = x: MBAR recovers the double well's exact profile; reweighting samples of a
wrong cheap level recovers the right level's profile; restraint forces; bad input."""
import numpy as np
import pytest

from fdtools import fd_forces
from hybrid.analytic import DoubleWell
from hybrid.errors import InputError
from hybrid.sampling.hmc import SurrogateHMC
from hybrid.sampling.umbrella import Coordinate, Distance, HarmonicRestraint, umbrella_profile
from hybrid.system import AtomicSystem
from hybrid.units import KB_EV

T = 300.0
KT = KB_EV * T
RIGHT = DoubleWell(3.0 * KT, 1.0, k_perp=0.5, name="expensive")       # a 3 kT barrier: rarely crossed unbiased
WRONG = DoubleWell(2.0 * KT, 0.9, k_perp=0.5, name="cheap")
CENTRES = np.linspace(-1.6, 1.6, 9)
KAPPA = 40 * KT                                                        # eV/Å²: windows 0.4 Å apart overlap
EDGES = np.linspace(-1.5, 1.5, 16)


def windows(level, n=1500, seed=0):
    """ξ = x samples of each restrained window, exact for level + restraint (hybrid MC on itself)."""
    out = []
    for k, c in enumerate(CENTRES):
        biased = level + HarmonicRestraint(Coordinate(0, 0), c, KAPPA)
        run = SurrogateHMC(biased, biased, T, 8.0, 5, seed=seed + k).run(
            AtomicSystem([1], [[c, 0.0, 0.0]]), n, keep_positions=True)
        out.append(run.positions[:, 0, 0])
    return out


def exact(level, x):
    f = level.energy_x(x)                       # the x-marginal is exp(-U_x/kT): F(x) = U_x(x) + const
    return f - f.min()


def test_restraint_forces_and_variables():
    rng = np.random.default_rng(0)
    s = AtomicSystem([1, 8, 1], rng.normal(size=(3, 3)))
    for cv in (Coordinate(1, 2), Distance(0, 2)):
        r = HarmonicRestraint(cv, 0.3, 5.0)
        np.testing.assert_allclose(r.compute(s).forces, fd_forces(r, s, h=1e-5), atol=1e-7)
    with pytest.raises(InputError, match="axis"):
        Coordinate(0, 3)
    with pytest.raises(InputError, match="must differ"):
        Distance(1, 1)
    with pytest.raises(InputError, match="atom 5 outside"):
        HarmonicRestraint(Distance(0, 5), 1.0, 1.0).compute(s)


def test_umbrella_profile_recovers_the_double_well_and_reweights_to_another_level(tmp_path):
    xs = windows(WRONG)
    cheap = umbrella_profile(xs, CENTRES, KAPPA, T, EDGES)
    ok = np.isfinite(cheap.free_energy)
    assert ok.all()
    ref = exact(WRONG, cheap.centres)
    # bin averages of a curved profile differ from its value at the bin centre by ~F''Δ²/24 ≈ 0.004 eV here
    assert np.all(np.abs(cheap.free_energy - (ref - ref[np.argmin(cheap.free_energy)])) < 3 * cheap.error + 0.006)
    du = [RIGHT.energy_x(x) - WRONG.energy_x(x) for x in xs]               # U_target - U_cheap at each sample
    right = umbrella_profile(xs, CENTRES, KAPPA, T, EDGES, delta_energy=du, level="reweighted")
    target = exact(RIGHT, right.centres)
    err = np.abs(right.free_energy - (target - target[np.argmin(right.free_energy)]))
    assert np.all(err < 3 * right.error + 0.008), (err, right.error)
    barrier = right.free_energy[len(EDGES) // 2 - 1] - right.free_energy.min()
    assert barrier == pytest.approx(3.0 * KT, abs=0.01)                  # the right barrier, not the cheap 2 kT
    png = right.plot(tmp_path / "profile.png", others=[cheap], xlabel="x (Å)")
    assert (tmp_path / "profile.png").stat().st_size > 10000 and png.endswith("profile.png")


def test_umbrella_bad_input():
    x = [np.linspace(0, 1, 10)] * 2
    with pytest.raises(InputError, match="2 window centres but 1"):
        umbrella_profile(x[:1], [0.0, 1.0], 1.0, T, EDGES)
    with pytest.raises(InputError, match="kappa"):
        umbrella_profile(x, [0.0, 1.0], -1.0, T, EDGES)
    with pytest.raises(InputError, match="bin_edges"):
        umbrella_profile(x, [0.0, 1.0], 1.0, T, [1.0, 0.0])
    with pytest.raises(InputError, match=r"delta_energy\[1\]"):
        umbrella_profile(x, [0.0, 1.0], 1.0, T, EDGES, delta_energy=[np.zeros(10), np.zeros(3)])
