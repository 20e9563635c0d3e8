"""PySCF layer: exact forces (FD), embedding, warm starts, rescue ladder, errors."""
from dataclasses import replace

import numpy as np
import pytest

from hybrid.errors import InputError, SCFConvergenceError
from hybrid.qm import PySCFPotential
from hybrid.system import AtomicSystem
from fdtools import WATER, fd_forces

QM_TOL = 2e-4   # eV/Å at tight SCF convergence


def test_hf_forces_match_finite_differences(water):
    p = PySCFPotential("HF", "sto-3g", conv_tol=1e-11)
    r = p.compute(water)
    assert np.abs(fd_forces(p, water) - r.forces).max() < QM_TOL
    assert np.abs(r.forces.sum(0)).max() < 1e-6
    assert {"wall_time", "scf_cycles", "scf_ladder"} <= set(p.log[0])


def test_dft_forces_include_grid_response(water):
    """B3LYP on a coarse grid: with grid response the forces are the energy's gradient."""
    p = PySCFPotential("B3LYP", "sto-3g", grids_level=0, conv_tol=1e-11)
    r = p.compute(water)
    err = np.abs(fd_forces(p, water) - r.forces).max()
    assert err < QM_TOL
    no_resp = PySCFPotential("B3LYP", "sto-3g", grids_level=0, grid_response=False, conv_tol=1e-11)
    err_no = np.abs(no_resp.compute(water).forces - r.forces).max()
    assert err_no > 5 * err   # on this grid the response term matters; the layer includes it


def test_unrestricted_dft_with_density_fitting():
    oh = AtomicSystem([8, 1], WATER[:2], multiplicity=2)
    p = PySCFPotential("PBE", "6-31g", density_fit=True, grids_level=2, conv_tol=1e-11)
    r = p.compute(oh)
    assert p.unrestricted
    assert np.abs(fd_forces(p, oh) - r.forces).max() < QM_TOL


@pytest.mark.parametrize("method", ["MP2", "CCSD"])
def test_post_hf_forces(water, method):
    p = PySCFPotential(method, "sto-3g", conv_tol=1e-11)
    r = p.compute(water)
    fd = fd_forces(p, water, atoms=[1])
    assert np.abs(fd[1] - r.forces[1]).max() < QM_TOL
    assert r.energy < PySCFPotential("HF", "sto-3g").compute(water).energy


def test_embedding_forces_on_atoms_and_charges(water):
    s = AtomicSystem(water.numbers, water.positions, ext_charges=[0.417, -0.834, 0.417],
                     ext_positions=[[2.6, 0.3, 0.0], [3.1, -0.2, 0.4], [3.6, 0.5, -0.1]])
    p = PySCFPotential("HF", "sto-3g", conv_tol=1e-11)
    r = p.compute(s)
    assert np.abs(fd_forces(p, s) - r.forces).max() < QM_TOL
    fd_q = np.zeros((3, 3))
    h = 1e-3
    for a in range(3):
        for k in range(3):
            x = s.ext_positions.copy()
            x[a, k] += h
            ep = p.compute(replace(s, ext_positions=x)).energy
            x[a, k] -= 2 * h
            em = p.compute(replace(s, ext_positions=x)).energy
            fd_q[a, k] = -(ep - em) / (2 * h)
    assert np.abs(fd_q - r.ext_forces).max() < QM_TOL
    # isolated QM + charges: total force (atoms + charges) vanishes
    assert np.abs(r.forces.sum(0) + r.ext_forces.sum(0)).max() < 1e-6


def test_warm_start_same_energy_fewer_cycles(water):
    rng = np.random.default_rng(3)
    v = rng.normal(scale=0.01, size=(3, 3))
    path = [water.positions + k * v for k in range(6)]
    warm = PySCFPotential("HF", "6-31g", conv_tol=1e-10)
    cycles_cold, cycles_warm = [], []
    for x in path:
        s = water.with_positions(x)
        cold = PySCFPotential("HF", "6-31g", conv_tol=1e-10)
        ec = cold.compute(s).energy
        ew = warm.compute(s).energy
        assert abs(ec - ew) < 1e-8 * 27.2114
        cycles_cold.append(cold.log[-1]["scf_cycles"])
        cycles_warm.append(warm.log[-1]["scf_cycles"])
    assert np.mean(cycles_warm[3:]) < np.mean(cycles_cold[3:]) - 2


def test_rescue_ladder_and_failure(water):
    stubborn = PySCFPotential("HF", "6-31g", max_cycle=4, conv_tol=1e-11)
    ref = PySCFPotential("HF", "6-31g", conv_tol=1e-11).compute(water).energy
    r = stubborn.compute(water)
    assert r.info["scf_ladder"] in ("damped", "newton")
    assert r.energy == pytest.approx(ref, abs=1e-7)
    hopeless = PySCFPotential("HF", "6-31g", max_cycle=1, conv_tol=1e-14)
    with pytest.raises(SCFConvergenceError, match=r"HF/6-31g: SCF did not converge.*geometry \(Å\): O 0.000000"):
        hopeless.compute(water)


def test_bad_input_errors(water):
    with pytest.raises(InputError, match="10 electrons .* multiplicity 2"):
        PySCFPotential("HF", "sto-3g").compute(replace(water, multiplicity=2))
    with pytest.raises(InputError, match="does not know the method or functional 'B3LPY'"):
        PySCFPotential("B3LPY")
    with pytest.raises(InputError, match="density_fit"):
        PySCFPotential("MP2", density_fit=True)
    with pytest.raises(InputError, match="could not build the molecule"):
        PySCFPotential("HF", "no-such-basis").compute(water)


def test_cached_numint_matches_pyscf_across_geometries():
    """The AO cache replays the first pass within a geometry and refills its arrays when atoms move."""
    from pyscf import dft, gto
    from pyscf.dft import numint

    from hybrid.qm.ao_cache import CachedNumInt
    vxc = []
    for shift in (0.0, 0.0, 0.01, 0.02):
        pos = WATER + np.array([[0.0, 0.0, 0.0], [shift, 0.0, 0.0], [0.0, -shift, 0.0]])
        mol = gto.M(atom=[(z, tuple(r)) for z, r in zip((8, 1, 1), pos)], unit="Angstrom", basis="6-31g", verbose=0)
        mf = dft.RKS(mol, xc="PBE")
        mf.grids.level = 1
        mf.grids.build()
        if not vxc:
            cached = CachedNumInt(mf.grids)
        cached.cached_grids = mf.grids
        dm = mf.get_init_guess()
        n, e, v = cached.nr_rks(mol, mf.grids, "PBE", dm)
        n0, e0, v0 = numint.NumInt().nr_rks(mol, mf.grids, "PBE", dm)
        assert abs(e - e0) < 1e-12 and np.abs(v - v0).max() < 1e-12
        vxc.append([id(b[0]) for b in cached._blocks])
    assert vxc[1] == vxc[0]     # same geometry: the stored blocks were replayed
    assert vxc[2] == vxc[1]     # new geometry, same block shapes: the same arrays, refilled
