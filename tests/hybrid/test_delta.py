"""The Δ-ML layer: HF/STO-3G baseline + a correction trained toward HF/6-31G."""
import numpy as np
import pytest
import torch

from fdtools import WATER, fd_forces
from hybrid.delta import DeltaMLPotential
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.ml.training import Frame, delta_frames, train
from hybrid.qm import PySCFPotential
from hybrid.system import AtomicSystem


@pytest.fixture(scope="module")
def labelled():
    rng = np.random.default_rng(0)
    target = PySCFPotential("HF", "6-31g")
    frames = []
    for _ in range(50):
        s = AtomicSystem([8, 1, 1], np.array(WATER) + rng.normal(scale=0.05, size=(3, 3)))
        r = target.compute(s)
        frames.append(Frame(s, r.energy, r.forces))
    return frames


def test_delta_layer_cuts_baseline_error_and_is_exact(labelled):
    torch.set_num_threads(1)
    baseline = PySCFPotential("HF", "sto-3g")
    train_set, test_set = labelled[:40], labelled[40:]
    torch.manual_seed(0)
    corr = AtomicMLP((1, 8), cutoff=3.0, n_radial=6, hidden=(16, 16))
    train(corr, delta_frames(train_set, baseline), epochs=150, lr=5e-3, batch_size=8, seed=0)
    layer = DeltaMLPotential(baseline, MLPotential(corr, metadata={"level_of_theory": "HF/6-31G - HF/STO-3G"}))
    err_base = np.sqrt(np.mean([(baseline.compute(f.system).forces - f.forces) ** 2 for f in test_set]))
    err_delta = np.sqrt(np.mean([(layer.compute(f.system).forces - f.forces) ** 2 for f in test_set]))
    assert err_delta < 0.2 * err_base, (err_base, err_delta)
    s = test_set[0].system
    r = layer.compute(s)
    assert set(r.contributions) >= {baseline.name, layer.correction.name}
    assert np.abs(fd_forces(layer, s) - r.forces).max() < 2e-4
