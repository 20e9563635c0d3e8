"""The learned fracture potential: trained on K-field loads of the triangular
lattice, it must call advance / no advance right on held-out loads."""
import numpy as np
import pytest

pytest.importorskip("torch")

from continuum.brittle_lattice import BrittleLattice
from continuum.fracture import IsotropicCrack
from continuum.fracture_potential import (FracturePotential, k_field_load_cases, tip_descriptors,
                                          train_fracture_potential)

B = np.sqrt(3) / 2


def lattice_samples(K_I, K_II, tip_offsets=(0.25, 0.75)):
    """Descriptors and G for loads (K_I, K_II) on cracks whose tips sit at
    two different places relative to the lattice."""
    X, G = [], []
    for off in tip_offsets:
        lat = BrittleLattice.build(44, 50)
        tip = np.array([22.0 + off, 24.5 * B])
        lat.cut(tip[1], tip[0])
        crack = IsotropicCrack(lat.youngs_modulus, lat.poisson_ratio, "stress")
        d = lat.positions - tip
        fixed = np.hypot(d[:, 0], d[:, 1]) > 18.0
        stress, g = k_field_load_cases(lat, crack, tip, fixed, K_I, K_II)
        X.append(tip_descriptors(lat.positions, stress, tip, radii=(2.5, 5.0, 8.0), n_sectors=8,
                                 stress_unit=lat.k))
        G.append(g)
    return np.concatenate(X), np.concatenate(G), lat.griffith_G


def loads(G_over_Gc, phase, G_c, E):
    """Mixed-mode loads with G = G_over_Gc·G_c and K_II/K_I = tan(phase)."""
    K = np.sqrt(np.asarray(G_over_Gc) * G_c * E)
    return K * np.cos(phase), K * np.sin(phase)


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(3)
    E = BrittleLattice.build(3, 2).youngs_modulus
    G_c = BrittleLattice.build(3, 2).griffith_G
    K_I, K_II = loads(rng.uniform(0.3, 2.0, 150), rng.uniform(-0.7, 0.7, 150), G_c, E)
    X, G, G_c = lattice_samples(K_I, K_II)
    model, history = train_fracture_potential(X, G, G_c, hidden=(32, 32), epochs=600, lr=1e-2, seed=0)
    return model, history, E, G_c


def test_predicts_advance_on_held_out_loads(trained):
    model, history, E, G_c = trained
    ratios = np.array([0.5, 0.8, 0.9, 0.95, 1.05, 1.1, 1.25, 1.6])
    phases = np.array([0.0, 0.35, -0.6])
    r, p = np.meshgrid(ratios, phases)
    K_I, K_II = loads(r.ravel(), p.ravel(), G_c, E)
    X, G, _ = lattice_samples(K_I, K_II)
    truth = G >= G_c                                           # Griffith
    assert np.array_equal(model.advances(X), truth)
    assert np.max(np.abs(model.predict_G(X) / G - 1)) < 0.05
    # the validation loss was tracked and the kept weights are the best ones
    assert history.validation[history.best_epoch] == history.validation.min()
    assert history.validation.min() < 1e-3 and history.train[-1] < history.train[0]


def test_state_dict_round_trip_and_threshold(trained):
    model, _, E, G_c = trained
    clone = FracturePotential.from_state_dict(model.state_dict())
    X, G, _ = lattice_samples(*loads(np.array([0.7, 1.3]), np.zeros(2), G_c, E), tip_offsets=(0.25,))
    assert np.allclose(clone.predict_G(X), model.predict_G(X))
    clone.threshold = 1.5 * G_c                  # e.g. a lattice-trapping load G₊
    assert list(clone.advances(X)) == [False, False]
    with pytest.raises(ValueError, match="features"):
        model.predict_G(X[:, :5])


def test_descriptors_scale_with_load_and_reject_empty_sectors():
    lat = BrittleLattice.build(30, 34)
    tip = np.array([15.25, 16.5 * B])
    lat.cut(tip[1], tip[0])
    crack = IsotropicCrack(lat.youngs_modulus, lat.poisson_ratio, "stress")
    d = lat.positions - tip
    fixed = np.hypot(d[:, 0], d[:, 1]) > 12.0
    stress, G = k_field_load_cases(lat, crack, tip, fixed, np.array([0.1, 0.2]), np.zeros(2))
    D = tip_descriptors(lat.positions, stress, tip)
    assert np.allclose(D[1], 2 * D[0]) and G[1] == pytest.approx(4 * G[0])
    with pytest.raises(ValueError, match="no points"):
        tip_descriptors(lat.positions, stress[0], tip, radii=(0.3,), n_sectors=16)
