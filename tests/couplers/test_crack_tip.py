"""The tip-following region (issue #14 item 3): the tip located from the structure follows the crack, its
Jacobian and strain derivative are exact, the weights' gradients are exact, and a blend whose region
follows the tip has exact forces (finite differences to 1e-4 eV/Å with two cheap pair potentials standing
in for QM and MLIP, so the test is about the region, not the levels) at tips in two places. The blend
uses the ``sorted`` scheme: per-atom units in a ball put 10-30 atoms in the buffer, beyond the product
scheme's 2^n partitions, and sorted forces are exact except where two buffer weights cross."""
import numpy as np
import pytest
from ase.calculators.morse import MorsePotential

from continuum.crack_slab import GPA, MPA_SQRT_M, k_field_positions, silicon_crack, silicon_crack_slab
from couplers.blend import blended
from couplers.crack_tip import CrackTipLocator, CrackTipPartitioner, block_units
from hybrid.errors import InputError
from hybrid.ml.adapters import ASECalculatorPotential
from hybrid.system import AtomicSystem
from fdtools import fd_forces

SI = silicon_crack(166 * GPA, 64 * GPA, 80 * GPA)          # Si, GPa -> eV/Å³


@pytest.fixture(scope="module")
def slab():
    atoms, y0 = silicon_crack_slab((4, 3, 3))               # 432 atoms, front 11.5 Å thick
    return atoms, y0, float(atoms.positions[:, 0].mean())


def cracked(slab, K_mpa, shift=0.0):
    atoms, y0, xm = slab
    a = atoms.copy()
    a.positions = k_field_positions(atoms, SI, K_mpa * MPA_SQRT_M, (xm + shift, y0))
    return AtomicSystem.from_ase(a)


def locator(slab):
    atoms, y0, xm = slab
    yc = y0 - float(atoms.positions[:, 1].mean())               # the crack plane from the centroid
    return CrackTipLocator(((-10, 10), (yc - 7, yc + 7)))


def test_the_tip_follows_the_crack_and_its_derivatives_are_exact(slab):
    loc = locator(slab)
    t0, t1 = loc(cracked(slab, 2.0)), loc(cracked(slab, 2.0, shift=3.0))
    # the located tip moves with the K-field's tip (by 3.0 Å; within half a lattice row)
    assert t1.position[0] - t0.position[0] == pytest.approx(3.0, abs=1.2)
    assert abs(t0.position[1] - slab[1]) < 1.5                   # on the crack plane
    s = cracked(slab, 2.0)
    tip = loc(s)
    h = 1e-5
    for k in np.argsort(-np.abs(tip.jacobian).sum(axis=(1, 2)))[:5]:
        for a in range(3):
            x = s.positions.copy()
            x[k, a] += h
            cp = loc(s.with_positions(x)).position
            x[k, a] -= 2 * h
            cm = loc(s.with_positions(x)).position
            assert np.allclose((cp - cm) / (2 * h), tip.jacobian[k, :, a], atol=1e-5 * np.abs(tip.jacobian).max())
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] = h
            sp = AtomicSystem(s.numbers, s.positions @ (np.eye(3) + e), s.cell @ (np.eye(3) + e), s.pbc)
            sm = AtomicSystem(s.numbers, s.positions @ (np.eye(3) - e), s.cell @ (np.eye(3) - e), s.pbc)
            fd = (loc(sp).position - loc(sm).position) / (2 * h)
            assert np.allclose(fd, tip.strain[a, b], atol=1e-5 * np.abs(tip.strain).max())
    assert np.allclose(tip.jacobian.sum(axis=0), np.eye(3), atol=1e-10)     # translating all atoms moves it


def check_weight_gradient(part, s, W, u, atoms, h=1e-5):
    """Central differences of unit u's weight against W.grad[u] on ``atoms`` (1e-4 per Å)."""
    for k in atoms:
        for a in range(3):
            x = s.positions.copy()
            x[k, a] += h
            wp = part.weights(s.with_positions(x)).w[u]
            x[k, a] -= 2 * h
            wm = part.weights(s.with_positions(x)).w[u]
            assert (wp - wm) / (2 * h) == pytest.approx(W.grad[u][k, a], abs=1e-4)


def test_weights_gradients_are_exact(slab):
    s = cracked(slab, 2.0)
    part = CrackTipPartitioner(locator(slab), 4.0, 1.5)
    W = part.weights(s)
    assert len(W.buffer) >= 5 and len(W.inner) >= 4
    h = 1e-5
    top = np.argsort(-part.last_tip.weights)[:2]
    for u in W.buffer[:4]:
        check_weight_gradient(part, s, W, u, list(top) + [u])
        for a in range(3):
            for b in range(3):
                e = np.zeros((3, 3))
                e[a, b] = h
                wp = part.weights(AtomicSystem(s.numbers, s.positions @ (np.eye(3) + e), s.cell @ (np.eye(3) + e),
                                               s.pbc)).w[u]
                wm = part.weights(AtomicSystem(s.numbers, s.positions @ (np.eye(3) - e), s.cell @ (np.eye(3) - e),
                                               s.pbc)).w[u]
                assert (wp - wm) / (2 * h) == pytest.approx(W.strain[u][a, b], abs=1e-4)


def levels():
    low = ASECalculatorPotential(MorsePotential(epsilon=2.3, r0=2.35, rho0=6.0, rcut1=3.0, rcut2=3.6), "low")
    high = ASECalculatorPotential(MorsePotential(epsilon=2.0, r0=2.4, rho0=5.0, rcut1=3.0, rcut2=3.6), "high")
    return low, high


@pytest.fixture(scope="module")
def model(slab):
    part = CrackTipPartitioner(locator(slab), 4.0, 1.5)
    return blended(*levels(), part, scheme="sorted", bonds=np.zeros((0, 2), int)), part


@pytest.mark.parametrize("shift", [0.0, 2.0])
def test_blend_forces_are_exact_while_the_tip_moves(slab, model, shift):
    blend, part = model
    s = cracked(slab, 2.0, shift)
    F = blend.compute(s).forces
    W = part.weights(s)
    atoms = list(np.argsort(-part.last_tip.weights)[:2]) + [W.buffer[0]]
    fd = fd_forces(blend, s, h=1e-4, atoms=atoms)
    assert np.abs(fd[atoms] - F[atoms]).max() < 1e-4
    assert np.abs(F.sum(axis=0)).max() < 1e-8                    # no net force: the region moves with the atoms


def test_blocks_of_atoms_as_units_keep_the_weights_exact_and_the_product_scheme_affordable(slab):
    """Fixed blocks of ~4 atoms (block_units) instead of single atoms: 3-4 units in the buffer, so the
    smooth product scheme applies; its forces are exact (FD, 1e-4 eV/Å) with the tip moved by 1 Å."""
    atoms = slab[0]
    units = block_units(atoms.positions, (4.4, 4.7, 3.84))
    assert np.array_equal(np.sort(np.concatenate(units)), np.arange(len(atoms)))
    s = cracked(slab, 2.0, 1.0)
    part = CrackTipPartitioner(locator(slab), 4.0, 1.5, units=units)
    W = part.weights(s)
    assert 1 <= len(W.buffer) <= 6
    u = W.buffer[0]
    check_weight_gradient(part, s, W, u, list(np.argsort(-part.last_tip.weights)[:2]) + [int(units[u][0])])
    blend = blended(*levels(), part, scheme="product", bonds=np.zeros((0, 2), int))
    F = blend.compute(s).forces
    check = list(np.argsort(-part.last_tip.weights)[:2]) + [int(units[u][0])]
    assert np.abs(fd_forces(blend, s, h=1e-4, atoms=check)[check] - F[check]).max() < 1e-4
    with pytest.raises(InputError, match="cover each"):
        CrackTipPartitioner(locator(slab), 4.0, 1.5, units=units[1:]).weights(s)


def test_bad_crack_geometry_is_named(slab):
    atoms, y0, xm = slab
    s = cracked(slab, 2.0)
    with pytest.raises(InputError, match="open along x"):
        locator(slab)(AtomicSystem(s.numbers, s.positions, s.cell, [True, False, True]))
    with pytest.raises(InputError, match="thick"):
        CrackTipPartitioner(locator(slab), 5.0, 1.0).weights(s)
    intact = AtomicSystem.from_ase(atoms)
    far = CrackTipLocator(((-5, 5), (-5, 5)))
    with pytest.raises(InputError, match="no under-coordinated atom"):
        far(intact)
    with pytest.raises(InputError, match="wider than twice"):
        CrackTipLocator(((0, 3), (0, 10)), window_width=2.0)


def test_capped_blend_with_link_atoms_has_exact_forces_while_the_tip_moves(slab):
    """The crack example's set-up with cheap levels: two different random MLIPs that know H and Si stand in
    for the Si MLIP and GFN1-xTB; the region's cut Si–Si bonds get hydrogen link atoms (default bonds),
    4-atom blocks, product partitions, odd regions as doublets. FD forces to 1e-4 eV/Å on the atoms that
    define the tip, a buffer atom and an atom outside the region bonded to it (link-atom chain rule)."""
    import torch

    from couplers.link_atoms import cut_bonds
    from couplers.partition import find_bonds
    from hybrid.ml.model import AtomicMLP
    from hybrid.ml.potential import MLPotential
    pots = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        pots.append(MLPotential(AtomicMLP((1, 14), cutoff=3.0, n_radial=3, hidden=(8,)), name=f"m{seed}"))
    atoms = slab[0]
    units = block_units(atoms.positions, (4.4, 4.7, 3.84))
    for shift in (0.0, 1.0):
        s = cracked(slab, 2.0, shift)
        part = CrackTipPartitioner(locator(slab), 4.0, 1.5, units=units)
        blend = blended(pots[0], pots[1], part, scheme="product", open_shell="lowest")   # bonds of this crack
        res = blend.compute(s)
        W = part.weights(s)
        region = np.concatenate([units[u] for u in list(W.inner) + list(W.buffer)])
        cuts = cut_bonds(find_bonds(s), region)
        assert len(cuts) > 0
        check = list(np.argsort(-part.last_tip.weights)[:2]) + [int(units[W.buffer[0]][0]), int(cuts[0][1])]
        fd = fd_forces(blend, s, h=1e-4, atoms=check)
        assert np.abs(fd[check] - res.forces[check]).max() < 1e-4
        assert np.abs(res.forces.sum(axis=0)).max() < 1e-8
