"""Fewest-switches surface hopping on Tully's models: energy and norm conservation, the electronic
propagator against the time-dependent Schrödinger equation, fewest-switches consistency, frustrated hops,
decoherence, bad input."""
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from hybrid import units
from hybrid.errors import InputError
from hybrid.surface_hopping import surface_hopping
from hybrid.tully import MASS_AMU, SimpleAvoidedCrossing, momentum_au_to_velocity

X_END = 8 * units.BOHR
X_NEAR = 5 * units.BOHR          # SAC's coupling is below 1e-10 Hartree there; its diabats within 3e-4 A


def swarm(k, T, x0=-X_END):
    x = np.zeros((T, 1, 3))
    x[:, 0, 0] = x0
    v = np.zeros((T, 1, 3))
    v[:, 0, 0] = momentum_au_to_velocity(k)
    return x, v


def left(x, v):
    return np.abs(x[:, 0, 0]) > X_END


def left_near(x, v):
    return np.abs(x[:, 0, 0]) > X_NEAR


def test_energy_is_conserved_per_trajectory_and_the_norm_exactly():
    x, v = swarm(15.0, 24, x0=-X_NEAR)
    dt = 0.4 * units.AU_TIME
    r = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, dt, 20000, seed=3, stop=left_near,
                        n_substeps=2)
    assert left_near(r.positions, r.velocities).all()
    assert r.hops.sum() > 0                                   # hops happened, and rescaled the velocity
    assert (r.energy_error / r.kinetic0).max() < 1e-6
    assert np.abs((np.abs(r.amplitudes) ** 2).sum(1) - 1).max() < 1e-10
    # Verlet's error is second order: twice the step gives four times the error (±30 %)
    r2 = surface_hopping(SimpleAvoidedCrossing(), x[:8], v[:8], [MASS_AMU], 0, 2 * dt, 10000, seed=3,
                         stop=left_near, n_substeps=2)
    ratio = np.median(r2.energy_error / r.energy_error[:8])
    assert 2.8 < ratio < 5.2


def test_amplitudes_follow_the_schroedinger_equation_along_a_straight_path():
    # a particle so heavy that its path is x0 + v t: |c_k(t)|² must be the TDSE's in the diabatic basis
    model = SimpleAvoidedCrossing()
    x, v = swarm(20.0, 1, x0=-4 * units.BOHR)
    vel = v[0, 0, 0]
    t_end = 8 * units.BOHR / vel
    dt = 0.5 * units.AU_TIME
    n = int(round(t_end / dt))
    r = surface_hopping(model, x, v, [1e12], 0, dt, n, seed=1, n_substeps=2, record_every=n)

    def rhs(t, y):
        c = y[:2] + 1j * y[2:]
        H, _ = model.diabatic(np.array([[[x[0, 0, 0] + vel * t, 0, 0]]]))
        dc = -1j / units.HBAR * H[0] @ c
        return np.concatenate([dc.real, dc.imag])

    U0 = model.states(x).vectors[0]
    c0 = U0[:, 0].astype(complex)                             # the lower adiabatic state
    sol = solve_ivp(rhs, (0, n * dt), np.concatenate([c0.real, c0.imag]), rtol=1e-10, atol=1e-12)
    c_end = sol.y[:2, -1] + 1j * sol.y[2:, -1]
    Uf = model.states(r.positions).vectors[0]
    p_tdse = np.abs(Uf.T @ c_end) ** 2
    p_fssh = np.abs(r.amplitudes[0]) ** 2
    assert 0.05 < p_tdse[1] < 0.95                            # a real transition, not a trivial one
    assert np.abs(p_fssh - p_tdse).max() < 2e-4


def test_the_active_state_fractions_follow_the_amplitudes():
    # fewest switches: without frustrated hops, the fraction of trajectories on each surface equals the
    # swarm's mean |c_k|² (to statistical error, 3σ)
    T = 300
    x, v = swarm(20.0, T)
    r = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, 2 * units.AU_TIME, 5000, seed=7,
                        stop=left, n_substeps=4)
    assert r.frustrated.sum() == 0
    p = r.populations[-1, 1]
    sigma = np.sqrt(p * (1 - p) / T)
    assert 0.2 < p < 0.8
    assert abs(r.active_fraction[-1, 1] - p) < 3 * sigma


def test_hops_that_the_kinetic_energy_cannot_pay_are_frustrated():
    # k = 5: E_kin = 25/4000 Hartree, less than the smallest gap (2C = 0.01 Hartree)
    x, v = swarm(5.0, 40, x0=-X_NEAR)
    for mode in ("keep", "reverse"):
        r = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, 2 * units.AU_TIME, 20000, seed=2,
                            stop=left_near, frustrated=mode, n_substeps=2)
        assert r.hops.sum() == 0 and r.frustrated.sum() > 0
        assert (r.active == 0).all() and (r.energy_error / r.kinetic0).max() < 1e-5
        back = r.positions[:, 0, 0] < 0
        if mode == "keep":
            assert not back.any()                             # the lower surface lets them all through
        else:
            # reversed at a frustrated hop (a later one in the coupling region can turn them again)
            assert back.any()


def test_decoherence_collapses_the_amplitudes_onto_the_active_state():
    x, v = swarm(20.0, 40)
    kw = dict(seed=5, stop=left, n_substeps=4)
    bare = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, 2 * units.AU_TIME, 5000, **kw)
    edc = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, 2 * units.AU_TIME, 5000,
                          decoherence="edc", **kw)
    p_active = lambda r: np.abs(r.amplitudes[np.arange(len(r.active)), r.active]) ** 2   # noqa: E731
    assert p_active(bare).min() < 0.9
    assert p_active(edc).min() > 0.999
    assert np.abs((np.abs(edc.amplitudes) ** 2).sum(1) - 1).max() < 1e-10


def test_bad_input_is_refused():
    x, v = swarm(10.0, 2)
    m = SimpleAvoidedCrossing()
    with pytest.raises(InputError, match="masses"):
        surface_hopping(m, x, v, [MASS_AMU, 1.0], 0, 1.0, 1, seed=0)
    with pytest.raises(InputError, match="frustrated"):
        surface_hopping(m, x, v, [MASS_AMU], 0, 1.0, 1, seed=0, frustrated="bounce")
    with pytest.raises(InputError, match="initial states"):
        surface_hopping(m, x, v, [MASS_AMU], 2, 1.0, 1, seed=0)
    with pytest.raises(InputError, match="decoherence"):
        surface_hopping(m, x, v, [MASS_AMU], 0, 1.0, 1, seed=0, decoherence="afssh")


def test_two_state_propagator_equals_the_matrix_exponential():
    from scipy.linalg import expm

    from hybrid.surface_hopping import _propagate
    rng = np.random.default_rng(0)
    E = rng.normal(size=(5, 2))
    t = rng.normal(size=5) * 3
    Tm = np.zeros((5, 2, 2))
    Tm[:, 0, 1], Tm[:, 1, 0] = t, -t
    c = rng.normal(size=(5, 2)) + 1j * rng.normal(size=(5, 2))
    delta = 0.7
    ref = np.array([expm(-1j * (np.diag(E[i]) - 1j * units.HBAR * Tm[i]) * delta / units.HBAR) @ c[i]
                    for i in range(5)])
    assert np.abs(_propagate(E, Tm, c, delta) - ref).max() < 1e-12
    # three states take the general path
    E3, T3 = rng.normal(size=(2, 3)), rng.normal(size=(2, 3, 3))
    T3 = T3 - T3.transpose(0, 2, 1)
    c3 = rng.normal(size=(2, 3)) + 0j
    ref3 = np.array([expm(-1j * (np.diag(E3[i]) - 1j * units.HBAR * T3[i]) * delta / units.HBAR) @ c3[i]
                     for i in range(2)])
    assert np.abs(_propagate(E3, T3, c3, delta) - ref3).max() < 1e-12


def test_scattering_channels_account_for_every_trajectory():
    from hybrid.tully import CHANNELS, scatter
    r = scatter("sac", 25.0, 24, seed=1, dt_au=2.0, x0_bohr=-6.0, bound_bohr=6.0)
    assert sum(r[c] for c in CHANNELS) == r["n"] == 24 and r["unfinished"] == 0
    assert r["reflected_0"] == r["reflected_1"] == 0          # far above every barrier: all pass
    assert r["transmitted_1"] > 0 and r["hops"] > 0
    with pytest.raises(InputError, match="model must be one of"):
        scatter("tully4", 10.0, 2, seed=0)


def test_results_are_written_and_read_back(tmp_path):
    from hybrid.surface_hopping import HoppingResult
    x, v = swarm(20.0, 4, x0=-X_NEAR)
    r = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, 2 * units.AU_TIME, 3000, seed=1,
                        stop=left_near, record_every=50)
    r.save(tmp_path / "fssh.npz")
    back = HoppingResult.load(tmp_path / "fssh.npz")
    for name in HoppingResult.__dataclass_fields__:
        assert np.array_equal(getattr(back, name), getattr(r, name)), name
    assert back.populations.shape == (len(back.times), 2) and back.amplitudes.dtype == complex


def test_observed_quantities_are_recorded_with_the_populations():
    """``observe`` sees the swarm at each recorded time: its mean of (active == 1) is the active fraction,
    its mean |c₁|² the population (the same numbers averaged alike: 1e-12), and positions move with time."""
    x, v = swarm(20.0, 30, x0=-X_NEAR)

    def observe(x, v, active, energies, amplitudes):
        return np.stack([x[:, 0, 0], active == 1, np.abs(amplitudes[:, 1]) ** 2, energies[:, 1] - energies[:, 0]], 1)
    r = surface_hopping(SimpleAvoidedCrossing(), x, v, [MASS_AMU], 0, 2 * units.AU_TIME, 2000, seed=3,
                        stop=left_near, record_every=100, observe=observe)
    assert r.observed.shape == (len(r.times), 30, 4)
    assert np.abs(r.observed[:, :, 1].mean(1) - r.active_fraction[:, 1]).max() < 1e-12
    assert np.abs(r.observed[:, :, 2].mean(1) - r.populations[:, 1]).max() < 1e-12
    assert np.all(np.diff(r.observed[:, :, 0].mean(1)) > 0)
    assert np.all(r.observed[:, :, 3] > 0)
