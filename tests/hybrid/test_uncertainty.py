"""Uncertainty: committee trigger levels, descriptor-space (Mahalanobis) OOD distance, calibration report."""
import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from hybrid.errors import InputError, UnknownElementError
from hybrid.ml.model import AtomicMLP
from hybrid.ml.training import Frame, train_committee
from hybrid.ml.uncertainty import (DescriptorDistance, TrustLevels, atomic_descriptors, calibration,
                                   calibration_report, committee_deviation, max_force_deviation, select)
from hybrid.potential import Result
from hybrid.system import AtomicSystem
from fdtools import WATER


def copper(n, seed, a=3.61, rattle=0.08):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat([(1, 1, 2), (2, 1, 2), (2, 2, 2)][k % 3])
        atoms.rattle(rattle, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        out.append(Frame(AtomicSystem.from_ase(atoms), atoms.get_potential_energy(), atoms.get_forces()))
    return out


@pytest.fixture(scope="module")
def data():
    # training-like held-out frames, and compressed, strongly rattled ones
    return copper(16, 0), copper(6, 1), copper(6, 2, a=3.40, rattle=0.25)


@pytest.fixture(scope="module")
def committee(data):
    train, _, _ = data
    com, _ = train_committee(AtomicMLP((29,), cutoff=4.0, n_radial=4, hidden=(8,)), train, 3, seed=0,
                             epochs=20, lr=5e-3, batch_size=8)
    return com


def test_trust_levels_classify_at_the_boundaries():
    lv = TrustLevels()
    assert (lv.lower, lv.upper) == (0.05, 0.15)
    assert [lv.classify(x) for x in (0.0, 0.0499, 0.05, 0.1499, 0.15, 3.0, np.nan)] == \
        ["accurate", "accurate", "candidate", "candidate", "failed", "failed", "failed"]
    n = 4
    results = [Result(0.0, np.zeros((n, 3)), force_std=np.array([0.01, s, 0.02, 0.0])) for s in (0.03, 0.07, 0.2)]
    sel = select(results)
    assert np.allclose(sel.deviation, [0.03, 0.07, 0.2])
    assert (sel.accurate, sel.candidate, sel.failed) == ([0], [1], [2])
    assert sel.counts() == {"accurate": 1, "candidate": 1, "failed": 1}
    wide = select(results, TrustLevels(0.1, 0.3))                       # configurable levels
    assert (wide.accurate, wide.candidate, wide.failed) == ([0, 1], [2], [])
    only_first = select(results, atoms=[0, 2])                          # deviation over a region only
    assert np.allclose(only_first.deviation, 0.02) and only_first.accurate == [0, 1, 2]
    # relative deviation: σ_i / (|F_i| + f0)
    r = Result(0.0, np.array([[3.0, 0, 0], [0, 0, 0]]), force_std=np.array([0.4, 0.05]))
    assert max_force_deviation(r, relative=1.0) == pytest.approx(max(0.4 / 4.0, 0.05 / 1.0))
    with pytest.raises(InputError, match="lower < upper"):
        TrustLevels(0.2, 0.1)
    with pytest.raises(InputError, match="no force_std; it is not from a committee"):
        max_force_deviation(Result(0.0, np.zeros((2, 3))))


def test_committee_trigger_flags_distorted_structures(data, committee):
    _, held, distorted = data
    sel_h = committee_deviation(committee, [f.system for f in held])
    sel_d = committee_deviation(committee, [f.system for f in distorted])
    assert sel_d.deviation.min() > 5 * np.median(sel_h.deviation)
    assert sel_d.counts()["failed"] == 6
    r = committee.compute(held[0].system)
    assert max_force_deviation(r) == pytest.approx(r.force_std.max())
    # levels placed between the two populations split them
    levels = TrustLevels(sel_h.deviation.max() * 1.01, sel_d.deviation.min() * 0.99)
    both = committee_deviation(committee, [f.system for f in held + distorted], levels)
    assert both.accurate == list(range(6)) and both.failed == list(range(6, 12))


def test_mahalanobis_distance_is_the_formula_and_grows_off_the_training_data(data, tmp_path):
    train, held, distorted = data
    model = AtomicMLP((29,), cutoff=4.0, n_radial=3)                    # 15 features, ~300 training atoms
    dd = DescriptorDistance(model, shrinkage=0.0).fit(train)
    # textbook Mahalanobis distance from the raw descriptors (no shrinkage: invariant to scaling)
    x_train = np.concatenate([atomic_descriptors(model, f.system) for f in train])
    mu, cov = x_train.mean(0), np.cov(x_train.T, bias=True)
    x = atomic_descriptors(model, distorted[0].system)
    ref = np.sqrt(np.einsum("ij,jk,ik->i", x - mu, np.linalg.inv(cov), x - mu))
    assert np.allclose(dd.distances(distorted[0].system), ref, rtol=1e-6)
    # the training atoms' 99 % quantile defines r = 1
    d_train = np.concatenate([dd.distances(f.system) for f in train])
    assert np.mean(d_train / dd.scale[29] <= 1.0) == pytest.approx(0.99, abs=0.005)

    lw = DescriptorDistance(model).fit(train)                           # Ledoit–Wolf shrinkage
    assert 0.0 < lw.alpha[29] < 1.0
    near = [lw.score(f.system) for f in held]
    far = [lw.score(f.system) for f in distorted]
    assert max(near) < 3.0 and min(far) > 3 * max(near)
    assert not lw.is_outlier(held[0].system, threshold=3.0) and lw.is_outlier(distorted[0].system, threshold=3.0)
    lw.save(tmp_path / "dd.npz")
    again = DescriptorDistance.load(model, tmp_path / "dd.npz")
    assert np.allclose(again.relative(distorted[1].system), lw.relative(distorted[1].system))
    with pytest.raises(InputError, match="fitted on 15 descriptor features, the model has"):
        DescriptorDistance.load(AtomicMLP((29,), cutoff=4.0, n_radial=4), tmp_path / "dd.npz")
    with pytest.raises(UnknownElementError, match="atom 0 is O"):
        lw.distances(AtomicSystem([8], [[0, 0, 0]]))
    with pytest.raises(InputError, match="training data have no H atoms"):
        DescriptorDistance(AtomicMLP((1, 29), cutoff=4.0, n_radial=3)).fit(train)


def test_mahalanobis_per_species_with_fewer_atoms_than_features():
    """Water: 168 features, 30 O and 60 H atoms; shrinkage keeps it finite and a stretched O-H stands out."""
    rng = np.random.default_rng(4)
    base = np.array(WATER)
    train = [AtomicSystem([8, 1, 1], base + rng.normal(scale=0.03, size=(3, 3))) for _ in range(30)]
    held = [AtomicSystem([8, 1, 1], base + rng.normal(scale=0.03, size=(3, 3))) for _ in range(5)]
    model = AtomicMLP((1, 8), cutoff=4.0)
    assert model.n_features == 168
    dd = DescriptorDistance(model).fit(train)
    assert set(dd.scale) == {1, 8} and dd.n_atoms == {1: 60, 8: 30}
    stretched = base.copy()
    stretched[1] = stretched[0] + 1.45 * (base[1] - base[0]) / np.linalg.norm(base[1] - base[0])
    r = dd.relative(AtomicSystem([8, 1, 1], stretched))
    assert np.all(np.isfinite(r)) and r[1] > 3.0 and r[1] > r[2]
    assert max(dd.score(s) for s in held) < r[1] / 2


def test_calibration_numbers_on_synthetic_gaussian_errors(tmp_path):
    rng = np.random.default_rng(0)
    sigma = np.exp(rng.normal(-2.0, 0.7, 4000))
    err = rng.normal(size=(4000, 3)) * sigma[:, None] / np.sqrt(3.0)      # exactly the model's assumption
    good = calibration(sigma, err, frame=np.arange(4000) // 40, path=tmp_path / "good.png")
    assert good.miscalibration_area < 0.02 and good.ence < 0.1
    assert good.calibration_factor == pytest.approx(1.0, abs=0.05) and good.spearman_atom > 0.6
    assert good.n_frames == 100 and good.spearman_frame > 0.3
    assert sum(b["count"] for b in good.bins) == 4000 and len(good.bins) == 10
    assert all(abs(b["rmse"] / b["rmv"] - 1) < 0.15 for b in good.bins)
    over = calibration(sigma / 4, err)                                  # overconfident: σ four times too small
    assert over.calibration_factor == pytest.approx(4.0, rel=0.05) and over.miscalibration_area > 0.4
    assert over.ence > 2.5 and over.nll > good.nll
    blind = calibration(rng.permutation(sigma), err)                    # σ unrelated to the error
    assert abs(blind.spearman_atom) < 0.1 and blind.ence > 0.5
    assert (tmp_path / "good.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(InputError, match="errors must have shape"):
        calibration(sigma, err[:, :2])
    with pytest.raises(InputError, match="too few for 10 bins"):
        calibration(sigma[:5], err[:5])


def test_calibration_report_on_held_out_frames(data, committee, tmp_path):
    import matplotlib.image
    _, held, distorted = data
    rep = calibration_report(committee, held + distorted, n_bins=8, path=tmp_path / "cal.png", title="Cu")
    d = rep.to_dict()
    assert set(d) >= {"n_frames", "n_atoms", "bins", "spearman_atom", "spearman_frame", "ence",
                      "miscalibration_area", "calibration_factor", "nll", "png"}
    n_atoms = sum(len(f.system) for f in held + distorted)
    assert rep.n_frames == 12 and rep.n_atoms == n_atoms and sum(b["count"] for b in rep.bins) == n_atoms
    assert all(b1["sigma_max"] <= b2["sigma_min"] for b1, b2 in zip(rep.bins, rep.bins[1:]))
    assert rep.spearman_atom > 0.3 and rep.spearman_frame > 0.5          # larger σ, larger error
    assert 0.0 <= rep.miscalibration_area <= 0.5 and rep.calibration_factor > 0
    assert matplotlib.image.imread(rep.png).shape[0] > 300
    with pytest.raises(InputError, match="returned no force_std"):
        calibration_report(committee.members[0], held)


def test_contact_domain_ratios_and_pairs_never_seen_in_training():
    from hybrid.ml.uncertainty import ContactDomain
    w = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    monomer = AtomicSystem([8, 1, 1], w)
    dom = ContactDomain(cutoff=4.0).fit([monomer])
    assert dom.d_min[(1, 8)] == pytest.approx(0.96, rel=1e-12) and dom.d_min[(1, 1)] == pytest.approx(
        np.linalg.norm(w[2] - w[1]), rel=1e-12)
    assert dom.ratios(monomer) == pytest.approx([1.0, 1.0, 1.0], rel=1e-12)   # each atom has a shortest contact
    squeezed = AtomicSystem([8, 1, 1], w * 0.8)               # every contact 20 % shorter: ratio 1.25
    assert dom.ratios(squeezed) == pytest.approx([1.25] * 3, rel=1e-9)
    assert dom.outside(squeezed, 0.1).tolist() == [0, 1, 2] and dom.outside(squeezed, 0.25).tolist() == []
    dimer = AtomicSystem([8, 1, 1, 8, 1, 1], np.vstack([w, w + [3.0, 0.0, 0.0]]))
    r = dom.ratios(dimer)                                     # O···O within 4 Å was never seen in training
    assert np.isinf(r[0]) and np.isinf(r[3])
    with pytest.raises(InputError, match="tolerance must be in"):
        dom.outside(dimer, 1.0)
    with pytest.raises(InputError, match="call fit"):
        ContactDomain().ratios(monomer)
