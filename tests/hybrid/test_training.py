"""Force-matching training with a trainable offset, on EMT copper labels."""
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from hybrid.errors import InputError
from hybrid.ml.committee import Committee
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.ml.training import Frame, errors, train
from hybrid.system import AtomicSystem
from fdtools import fd_forces


def emt_frames(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat([(1, 1, 2), (2, 1, 2), (2, 2, 2)][k % 3])
        for _ in range(k % 2):                      # cell size and vacancies: N varies 7-32
            del atoms[int(rng.integers(len(atoms)))]
        atoms.rattle(0.08, seed=int(rng.integers(1 << 30)))
        atoms.calc = EMT()
        out.append(Frame(AtomicSystem.from_ase(atoms), atoms.get_potential_energy() + shift, atoms.get_forces()))
    return out


@pytest.fixture(scope="module")
def data():
    return emt_frames(30, 0, shift=5.0), emt_frames(8, 1, shift=5.0)


def test_training_cuts_force_error_and_learns_offset(data):
    frames, held_out = data
    torch.manual_seed(0)
    model = AtomicMLP((29,), cutoff=4.0, n_radial=6, hidden=(16, 16))
    before = errors(model, held_out)
    report = train(model, frames, epochs=80, lr=5e-3, batch_size=8, w_forces=10.0, seed=0)
    after = errors(model, held_out)
    assert after["force_rmse"] < 0.3 * before["force_rmse"]
    assert after["energy_per_atom_rmse"] < 0.03
    # a non-extensive constant in the labels goes into b, not into the network
    assert float(model.energy_offset) == pytest.approx(-5.0, abs=0.5)
    pot = MLPotential(model)
    assert pot.compute(held_out[0].system).energy == pytest.approx(held_out[0].energy, abs=0.3)
    assert report.best_epoch <= report.epochs and "val" in report.metrics
    assert len(report.history) == report.epochs


def test_committee_mean_spread_and_forces(data):
    frames, held_out = data
    members = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        m = AtomicMLP((29,), cutoff=4.0, n_radial=4, hidden=(8,))
        train(m, frames[:12], epochs=5, seed=seed)
        members.append(MLPotential(m))
    com = Committee(members)
    s = held_out[1].system
    r = com.compute(s)
    parts = [m.compute(s) for m in members]
    assert r.energy == pytest.approx(np.mean([p.energy for p in parts]))
    assert r.energy_std == pytest.approx(np.std([p.energy for p in parts]))
    df = parts[0].forces - parts[1].forces
    assert np.allclose(r.force_std, 0.5 * np.linalg.norm(df, axis=1))
    assert np.abs(fd_forces(com, s, h=1e-4, atoms=[0, 5]) - r.forces)[[0, 5]].max() < 1e-5


def test_training_rejects_bad_labels(data):
    frames, _ = data
    model = AtomicMLP((29,), cutoff=4.0)
    bad = Frame(frames[0].system, frames[0].energy, frames[0].forces[:-1])
    with pytest.raises(InputError, match="training frame 0: forces have shape"):
        train(model, [bad])
    with pytest.raises(InputError, match="atom 0: element O is not among"):
        train(model, [Frame(AtomicSystem([8], [[0, 0, 0]]), 0.0, np.zeros((1, 3)))])
