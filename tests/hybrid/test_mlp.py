"""Built-in MLIP: exact forces and virial, invariances, cutoff smoothness, files."""
import numpy as np
import pytest
import torch

from fdtools import WATER, fd_forces, fd_jacobian, water_box
from hybrid.errors import ModelFileError, UnknownElementError
from hybrid.ml.model import AtomicMLP, cutoff_function, load_model, save_model
from hybrid.ml.potential import MLPotential
from hybrid.neighbors import neighbor_pairs
from hybrid.system import AtomicSystem


@pytest.fixture
def model():
    torch.manual_seed(0)
    return AtomicMLP((1, 8), cutoff=3.5, n_radial=5, hidden=(16, 16))


def test_forces_match_fd_periodic_and_cluster(model):
    pot = MLPotential(model)
    box = water_box(2, spacing=2.9)
    r = pot.compute(box)
    assert np.abs(fd_forces(pot, box, h=1e-4) - r.forces).max() < 1e-5
    cluster = AtomicSystem(box.numbers[:9], box.positions[:9])
    rc = pot.compute(cluster)
    assert np.abs(fd_forces(pot, cluster, h=1e-4) - rc.forces).max() < 1e-5
    assert np.abs(rc.forces.sum(0)).max() < 1e-10
    assert rc.virial is None and r.virial is not None
    assert r.energies.sum() == pytest.approx(r.energy)


def test_atom_virials_sum_to_the_virial_and_are_local(model):
    """Σ_a W_a is the strain-derivative virial (periodic) and Σ_a F_a ⊗ r_a (cluster); W_a of an atom
    far from a displaced one does not change (each pair's virial goes to its own two atoms)."""
    pot = MLPotential(model)
    box = water_box(2, spacing=2.9)
    w = pot.atom_virials(box)
    assert w.shape == (len(box), 3, 3)
    assert np.abs(w.sum(0) - pot.compute(box).virial).max() < 1e-10
    cluster = AtomicSystem(box.numbers[:9], box.positions[:9])
    assert np.abs(pot.atom_virials(cluster).sum(0) - pot.compute(cluster).forces.T @ cluster.positions).max() < 1e-10
    cluster = water_box(3, spacing=2.9)
    cluster = AtomicSystem(cluster.numbers, cluster.positions)
    moved = cluster.positions.copy()
    moved[0] += 0.05
    far = np.linalg.norm(cluster.positions - cluster.positions[0], axis=1) > 2 * model.cutoff
    w0, w1 = pot.atom_virials(cluster), pot.atom_virials(cluster.with_positions(moved))
    assert far.any() and np.abs(w1[far] - w0[far]).max() < 1e-14
    assert np.abs(w1[0] - w0[0]).max() > 1e-4


def test_atom_virials_about_a_reference_sum_to_the_deformation_gradient_derivative(model):
    """With a reference state, Σ_a W_a = −∂E/∂F of the homogeneous deformation r = F R (central differences
    in each F_iJ about a finite, non-symmetric F; h = 1e-5 gives O(h²) ≈ 1e-10 truncation, 1e-7 allows for
    the rounding of E ~ 1e2 eV over 2h), and the deformed state's own W_a (no reference) differs from it."""
    pot = MLPotential(model)
    ref = water_box(2, spacing=2.9)
    F = np.eye(3) + np.array([[0.03, -0.02, 0.01], [0.015, -0.01, 0.0], [-0.02, 0.01, 0.02]])

    def deformed(G):
        return AtomicSystem(ref.numbers, ref.positions @ G.T, ref.cell @ G.T, ref.pbc)

    w = pot.atom_virials(deformed(F), reference=ref).sum(0)
    dEdF = fd_jacobian(lambda G: pot.compute(deformed(G)).energy, F, 1e-5)
    assert np.abs(w + dEdF).max() < 1e-7
    assert np.abs(pot.atom_virials(deformed(F)).sum(0) - w).max() > 1e-3
    with pytest.raises(ValueError, match="reference holds"):
        pot.atom_virials(deformed(F), reference=AtomicSystem(ref.numbers[:3], ref.positions[:3]))


def test_virial_matches_strain_derivative(model):
    pot = MLPotential(model)
    box = water_box(2, spacing=2.9)
    w = pot.compute(box).virial
    h = 1e-5
    # symmetric strain check on the full tensor
    for a, b in [(0, 1), (0, 2)]:
        eps = np.zeros((3, 3))
        eps[a, b] = eps[b, a] = h
        e = [pot.compute(AtomicSystem(box.numbers, box.positions @ (np.eye(3) + s * eps),
                                      cell=box.cell @ (np.eye(3) + s * eps), pbc=True)).energy for s in (1, -1)]
        assert -(e[0] - e[1]) / (2 * h) == pytest.approx(w[a, b] + w[b, a], abs=1e-6)
    eps = np.eye(3) * h
    e = [pot.compute(AtomicSystem(box.numbers, box.positions @ (np.eye(3) + s * eps),
                                  cell=box.cell @ (np.eye(3) + s * eps), pbc=True)).energy for s in (1, -1)]
    assert -(e[0] - e[1]) / (2 * h) == pytest.approx(np.trace(w), abs=1e-6)


def test_invariances(model):
    pot = MLPotential(model)
    rng = np.random.default_rng(1)
    s = AtomicSystem([8, 1, 1, 8, 1, 1], np.vstack([WATER, np.array(WATER) + [2.8, 0.3, 0.1]]))
    e0 = pot.compute(s).energy
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    assert pot.compute(s.with_positions(s.positions @ rot.T + 1.7)).energy == pytest.approx(e0, abs=1e-10)
    perm = [3, 4, 5, 0, 2, 1]
    assert pot.compute(AtomicSystem(s.numbers[perm], s.positions[perm])).energy == pytest.approx(e0, abs=1e-10)


def test_cutoff_is_c2_and_energy_smooth_across_it(model):
    r = torch.linspace(3.4, 3.5, 5, dtype=torch.float64, requires_grad=True)
    f = cutoff_function(r, 3.5)
    (d1,) = torch.autograd.grad(f.sum(), r, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), r)
    f = f.detach()
    assert abs(float(f[-1])) < 1e-15 and abs(float(d1[-1])) < 1e-12 and abs(float(d2[-1])) < 1e-9
    pot = MLPotential(model)
    es = [pot.compute(AtomicSystem([8, 8], [[0, 0, 0], [d, 0, 0]])).energy for d in (3.499999, 3.5, 3.500001)]
    assert abs(es[0] - es[2]) < 1e-9


def test_neighbor_list_matches_brute_force():
    box = water_box(2, spacing=2.6, jitter=0.3)
    i, j, s = neighbor_pairs(box.positions, box.cell, box.pbc, 4.0)
    got = sorted(zip(i.tolist(), j.tolist(), map(tuple, s.tolist())))
    want = []
    rng = range(-2, 3)
    for a in range(len(box)):
        for b in range(len(box)):
            for sh in [(x, y, z) for x in rng for y in rng for z in rng]:
                if a == b and sh == (0, 0, 0):
                    continue
                if np.linalg.norm(box.positions[b] + np.array(sh) @ box.cell - box.positions[a]) < 4.0:
                    want.append((a, b, sh))
    assert got == sorted(want)


def test_float32_close_to_float64(model):
    box = water_box(2, spacing=2.9)
    r64 = MLPotential(model, dtype=torch.float64).compute(box)
    r32 = MLPotential(AtomicMLP((1, 8), 3.5, 5, (16, 16)), dtype=torch.float32)
    r32.model.load_state_dict(model.state_dict())
    r32 = r32.compute(box)
    assert abs(r32.energy - r64.energy) < 1e-4 and np.abs(r32.forces - r64.forces).max() < 1e-4


def test_save_load_round_trip_and_metadata(model, tmp_path):
    path = tmp_path / "m.pt"
    save_model(model, path, level_of_theory="HF/STO-3G", n_train=12)
    pot = MLPotential.load(path)
    assert pot.metadata["level_of_theory"] == "HF/STO-3G" and pot.metadata["species"] == [1, 8]
    assert pot.metadata["cutoff_angstrom"] == 3.5 and pot.metadata["units"]["energy"] == "eV"
    box = water_box(2, spacing=2.9)
    assert pot.compute(box).energy == pytest.approx(MLPotential(model).compute(box).energy, abs=1e-12)
    assert not list(tmp_path.glob(".tmp-*"))


def test_wrong_model_files(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="notes.pt: not a readable qmml-hybrid model file"):
        load_model(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(ModelFileError, match="other.pt: a torch file of another kind, not a 'qmml-hybrid.atomic-mlp'"):
        load_model(other)
    with pytest.raises(ModelFileError, match="missing.pt: no such model file"):
        load_model(tmp_path / "missing.pt")


def test_unknown_element_named(model):
    with pytest.raises(UnknownElementError, match="atom 1 is N, an element this model does not know"):
        MLPotential(model).compute(AtomicSystem([8, 7], [[0, 0, 0], [1.2, 0, 0]]))
