"""State-specific blends: per-state forces are exact gradients through the switching weights, and the
couplings of a capped region carried to the real atoms are ⟨k|∇l⟩ of the region's states."""
import numpy as np
import pytest
import torch

from fdtools import fd_jacobian as fd_grad
from couplers.partition import DistancePartitioner, FixedPartitioner
from couplers.state_blend import StateBlend
from hybrid.errors import InputError
from hybrid.ml.model import AtomicMLP
from hybrid.ml.potential import MLPotential
from hybrid.states import DiabaticModel
from hybrid.system import AtomicSystem
from test_blend import cluster


class ToyStates(DiabaticModel):
    """Two states of any cluster: s = Σ_{i<j} exp(−r_ij²/4 Å²); H11 = 0.1 s, H22 = 1 + 0.05 s,
    H12 = 0.3 exp(−0.2 s) (eV)."""
    n_states = 2
    name = "toy"

    def diabatic(self, positions):
        T, n = positions.shape[:2]
        d = positions[:, :, None, :] - positions[:, None, :, :]          # R_i − R_j
        e = np.exp(-(d**2).sum(-1) / 4) * (1 - np.eye(n))
        s = 0.5 * e.sum((1, 2))
        ds = -0.5 * (e[..., None] * d).sum(2)                            # ∂s/∂R_i = −½ Σ_j e_ij (R_i − R_j)
        h12 = 0.3 * np.exp(-0.2 * s)
        H = np.stack([np.stack([0.1 * s, h12], -1), np.stack([h12, 1.0 + 0.05 * s], -1)], -2)
        dH = np.zeros((T, 2, 2, n, 3))
        dH[:, 0, 0] = 0.1 * ds
        dH[:, 1, 1] = 0.05 * ds
        dH[:, 0, 1] = dH[:, 1, 0] = -0.2 * h12[:, None, None] * ds
        return H, dH


def low(species):
    torch.manual_seed(0)
    return MLPotential(AtomicMLP(species, cutoff=4.0, n_radial=4, hidden=(8,)))



def test_toy_states_are_consistent():
    x = np.random.default_rng(0).normal(size=(1, 4, 3))
    _, dH = ToyStates().diabatic(x)
    fd = fd_grad(lambda y: ToyStates().diabatic(y[None])[0][0], x[0])
    assert np.abs(fd - dH[0]).max() < 1e-8


def test_per_state_forces_are_exact_through_the_switch():
    s = cluster([3.4, 5.5, 6.0])                            # one water in the buffer
    part = DistancePartitioner(("atom", 0), 2.5, 2.0)
    blend = StateBlend(low((1, 8)), ToyStates(), part, s, scheme="product")
    r = blend.states(s.positions[None])
    w = blend._energy[0].last_weights
    assert len(w.buffer) == 1 and 0 < w.w[w.buffer[0]] < 1
    for k in range(2):
        fd = -fd_grad(lambda y: blend.states(y[None]).energies[0, k], s.positions)
        assert np.abs(fd - r.forces[0, k]).max() < 1e-5
    assert r.energies[0, 1] > r.energies[0, 0]
    # zero net force and coupling: every term moves with the atoms
    assert np.abs(r.forces[0].sum(1)).max() < 1e-8 and np.abs(r.couplings[0].sum(-2)).max() < 1e-8


def test_couplings_of_a_capped_region_are_those_of_its_states():
    # ethane; the region is one methyl group, capped with a link atom on the cut C–C bond
    pos = np.array([[0.0, 0, 0], [1.53, 0, 0], [-0.36, 1.03, 0.05], [-0.38, -0.5, 0.88], [-0.37, -0.52, -0.9],
                    [1.9, 0.5, 0.87], [1.89, 0.52, -0.88], [1.91, -1.02, 0.02]])
    s = AtomicSystem([6, 6, 1, 1, 1, 1, 1, 1], pos)
    region = np.array([0, 2, 3, 4])
    blend = StateBlend(low((1, 6)), ToyStates(), FixedPartitioner(region), s)
    r = blend.states(pos[None])
    toy = ToyStates()
    corr = blend._energy[0]
    sub = corr.region_system(s, region)
    assert len(sub) == 5                                    # four atoms and one link hydrogen
    U0 = toy.states(sub.positions[None]).vectors

    def vectors(y):
        return toy.states(corr.region_system(AtomicSystem(s.numbers, y), region).positions[None],
                          previous=U0).vectors[0]
    dU = fd_grad(vectors, pos)                                # (2, 2, N, 3)
    d_fd = np.einsum("ik,ilna->klna", U0[0], dU)
    assert np.abs(r.couplings[0]).max() > 1e-3
    assert np.abs(d_fd[0, 1] - r.couplings[0, 0, 1]).max() < 1e-6
    # the link atom's share reaches the carbon it replaces; the other methyl's hydrogens get none
    assert np.abs(r.couplings[0, 0, 1, 1]).max() > 1e-4 and np.abs(r.couplings[0, :, :, 5:]).max() == 0.0
    for k in range(2):
        fd = -fd_grad(lambda y: blend.states(y[None]).energies[0, k], pos)
        assert np.abs(fd - r.forces[0, k]).max() < 1e-5


def test_bad_input_is_refused():
    s = cluster([5.5])
    with pytest.raises(InputError, match="force_mixing"):
        StateBlend(low((1, 8)), ToyStates(), FixedPartitioner([0, 1, 2]), s, scheme="force_mixing")
    blend = StateBlend(low((1, 8)), ToyStates(), FixedPartitioner([0, 1, 2]), s)
    with pytest.raises(InputError, match="positions must be"):
        blend.states(np.zeros((1, 2, 3)))


def test_each_region_costs_one_call_of_each_level():
    s = cluster([3.4, 5.5, 6.0])
    calls = {"low": 0, "high": 0}

    class Counting(MLPotential):
        def _compute(self, system):
            calls["low"] += 1
            return super()._compute(system)

    class CountingToy(ToyStates):
        def states(self, positions, previous=None):
            calls["high"] += 1
            return super().states(positions, previous)

    torch.manual_seed(0)
    lo = Counting(AtomicMLP((1, 8), cutoff=4.0, n_radial=4, hidden=(8,)))
    blend = StateBlend(lo, CountingToy(), DistancePartitioner(("atom", 0), 2.5, 2.0), s, scheme="product")
    blend.states(s.positions[None])
    # one buffer water: two partitions, each one call per level, plus the low level on the whole system
    assert calls == {"low": 3, "high": 2}
