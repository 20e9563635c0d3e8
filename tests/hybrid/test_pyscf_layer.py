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


# -- guards: inputs that would reach PySCF broken -------------------------------------------------
def test_nonfinite_positions_and_charges_refused_before_any_scf(water):
    """NaN/inf written into the arrays after the system was built: an InputError naming the atom or
    charge, on the compute path and on the _compute path blends and Subset use; no SCF is run."""
    p = PySCFPotential("HF", "sto-3g")
    s = AtomicSystem(water.numbers, water.positions, ext_charges=[0.417], ext_positions=[[2.6, 0.3, 0.0]])
    p.compute(s)
    n_calls = len(p.log)
    s.positions[2, 1] = np.nan
    for call in (p.compute, p._compute):
        with pytest.raises(InputError, match=r"HF/sto-3g: positions of atom 2 \(H\) are not finite"):
            call(s)
    s.positions[2, 1] = water.positions[2, 1]
    s.ext_charges[0] = np.inf
    with pytest.raises(InputError, match=r"HF/sto-3g: ext_charges of external charge 0 are not finite"):
        p._compute(s)
    s.ext_charges[0] = 0.417
    s.ext_positions[0, 0] = np.nan
    with pytest.raises(InputError, match=r"HF/sto-3g: ext_positions of external charge 0 are not finite"):
        p._compute(s)
    assert len(p.log) == n_calls


def test_charge_closer_than_threshold_to_a_nucleus_refused(water):
    """Before: +0.417 e 0.05 Å from O gave |F| = 1.8e4 eV/Å silently, and at 0 Å an SCFConvergenceError."""
    o = water.positions[0]

    def with_charge(d, q=0.417, at=o):
        return AtomicSystem(water.numbers, water.positions, ext_charges=[-0.8, q],
                            ext_positions=[[3.0, 0.0, 0.0], at + [0.0, 0.0, d]])

    p = PySCFPotential("HF", "sto-3g")
    for d in (0.05, 0.0):
        with pytest.raises(InputError, match=rf"HF/sto-3g: external charge 1 \(\+0.417 e at \[0.000, 0.000, "
                                             rf"[0-9.]+\] Å\) is {d:.3f} Å from atom 0 \(O\), closer than "
                                             r"min_charge_distance = 0.5 Å"):
            p.compute(with_charge(d))
    assert not p.log
    with pytest.raises(InputError, match=r"is 0.100 Å from atom 1 \(H\), closer than min_charge_distance = 0.2 Å"):
        PySCFPotential("HF", "sto-3g", min_charge_distance=0.2).compute(with_charge(0.1, at=water.positions[1]))
    # a charge of exactly zero has no field: not refused; a lowered threshold lets a charge through
    assert np.isfinite(PySCFPotential("HF", "sto-3g").compute(with_charge(0.05, q=0.0)).energy)
    loose = PySCFPotential("HF", "sto-3g", min_charge_distance=0.3)
    assert np.isfinite(loose.compute(with_charge(0.4)).energy)
    loose.min_charge_distance = 0.45       # a changed threshold applies at the next call
    with pytest.raises(InputError, match="is 0.400 Å from atom 0"):
        loose.compute(with_charge(0.4))


# -- settings changed on an existing potential ----------------------------------------------------
# Both sides below start cold (a changed setting drops the warm-start history) and converge to
# conv_tol = 1e-11 Eh, so their energies agree to ~1e-11 Eh; 1e-9 Eh leaves margin and is 1e-7 of the
# smallest effect tested (density fitting, ~1e-4 Eh). Forces: within QM_TOL, far below the
# differences the settings make (> 1e-2 eV/Å).
E_SAME = 1e-9 * 27.2114   # eV


@pytest.mark.parametrize("start, change", [
    (("HF", "sto-3g", {}), {"basis": "6-31g"}),
    (("HF", "sto-3g", {}), {"method": "PBE", "grids_level": 1}),
    (("HF", "sto-3g", {}), {"density_fit": True}),
    (("PBE", "sto-3g", {"grids_level": 0}), {"grids_level": 2}),
])
def test_changed_setting_takes_effect_like_a_fresh_potential(water, start, change):
    method, basis, opts = start
    p = PySCFPotential(method, basis, conv_tol=1e-11, **opts)
    before = p.compute(water)
    p.compute(water.with_positions(water.positions * 1.01))      # warm-start history exists
    for k, v in change.items():
        setattr(p, k, v)
    args = {"method": method, "basis": basis, **opts, **change}
    fresh = PySCFPotential(args.pop("method"), args.pop("basis"), conv_tol=1e-11, **args)
    r, ref = p.compute(water), fresh.compute(water)
    assert abs(r.energy - ref.energy) < E_SAME
    assert abs(r.energy - before.energy) > 1e3 * E_SAME          # the change mattered
    assert np.abs(r.forces - ref.forces).max() < QM_TOL
    assert p.name == fresh.name and list(r.contributions) == [fresh.name]
    assert p.log[-1]["scf_cycles"] == fresh.log[-1]["scf_cycles"]   # a cold start, like the fresh one


def test_refused_settings_name_the_problem(water):
    p = PySCFPotential("HF", "sto-3g")
    with pytest.raises(InputError, match=r"HF/sto-3g: 'conv_tl' is not a setting of PySCFPotential; "
                                         r"did you mean 'conv_tol'\?"):
        p.conv_tl = 1e-8
    with pytest.raises(InputError, match=r"HF/sto-3g: xc follows from method \('HF'\); set method instead"):
        p.xc = "PBE"
    with pytest.raises(InputError, match="does not know the method or functional 'B3LPY'"):
        p.method = "B3LPY"
    with pytest.raises(InputError, match="HF/sto-3g: max_cycle must be an integer > 0, got 0"):
        p.max_cycle = 0
    with pytest.raises(InputError, match=r"extrapolation order must be one of \[0, 1, 2, 3\], got 5"):
        p.extrapolation = 5
    mp2 = PySCFPotential("MP2", "sto-3g")
    with pytest.raises(InputError, match="MP2/sto-3g: density_fit is supported for HF and DFT, not for MP2"):
        mp2.density_fit = True
    # a refused value leaves the potential as it was
    assert (p.method, p.kind, p.max_cycle, p.extrapolation, mp2.density_fit) == ("HF", "hf", 100, 3, False)
    p.extrapolation = 1
    assert p.extrapolator.order == 1 and np.isfinite(p.compute(water).energy)


def test_scf_error_reports_the_settings_that_ran(water):
    """The message is read back from the PySCF objects that ran: a changed max_cycle/conv_tol/basis is
    what it reports (before: the cached objects kept the old settings, so the first change went
    unnoticed and the message printed the potential's attributes, never the basis)."""
    p = PySCFPotential("HF", "6-31g", conv_tol=1e-11, name="qm")
    p.compute(water)
    p.max_cycle, p.conv_tol = 1, 1e-14
    moved = water.with_positions(water.positions * 1.05)
    with pytest.raises(SCFConvergenceError) as err:
        p.compute(moved)
    msg = str(err.value)
    assert msg.startswith("qm: SCF did not converge: HF/6-31g, restricted, charge 0, multiplicity 1; ")
    assert ("tried DIIS (1/1 cycles, conv_tol 1e-14 Eh); then damping 0.5 + level shift 0.5 Eh "
            "(1/1 cycles, conv_tol 1e-14 Eh); then second-order SCF (1/1 cycles, conv_tol 1e-14 Eh)") in msg
    p.basis = "sto-3g"
    with pytest.raises(SCFConvergenceError, match=r"^qm: SCF did not converge: HF/sto-3g, ") as err:
        p.compute(moved)
    assert "6-31g" not in str(err.value)
    dft = PySCFPotential("PBE", "sto-3g", grids_level=0, density_fit=True, max_cycle=1, conv_tol=1e-14)
    with pytest.raises(SCFConvergenceError, match=r"PBE/sto-3g, restricted, charge 0, multiplicity 1, "
                                                  r"density fitted \(default auxbasis\), grid level 0; tried"):
        dft.compute(water)


# -- units at the PySCF edge ---------------------------------------------------------------------
def test_pyscf_edge_uses_the_project_constants_only(water):
    """Geometry in Bohr by hybrid.units.BOHR (not PySCF's CODATA-2010 Bohr, 7.1e-10 apart), energy back
    by hybrid.units.HARTREE: E_eV / HARTREE is PySCF's e_tot to round-off (a few ulp of 76 Eh, 1e-12 Eh
    bound), whereas PySCF's HARTREE2EV (CODATA 2014) would be 6.3e-7 Eh off."""
    import scipy.constants._codata as codata
    from pyscf.data import nist

    from hybrid import units
    table = getattr(codata, f"_physical_constants_{units.CODATA}")
    assert units.HARTREE == table["Hartree energy in eV"][0]          # same parsed literal
    assert abs(units.BOHR / (table["Bohr radius"][0] * 1e10) - 1) < 1e-15
    s = AtomicSystem(water.numbers, water.positions, ext_charges=[0.417, -0.834],
                     ext_positions=[[2.6, 0.3, 0.0], [3.1, -0.2, 0.4]], ext_radii=[0.3, 0.5])
    p = PySCFPotential("HF", "sto-3g", conv_tol=1e-11)
    for x in (s, s.with_positions(s.positions + 0.01)):              # built, then moved (set_geom_)
        r = p.compute(x)
        mol, mm = p._mf.mol, p._mf.mm_mol
        assert np.allclose(mol.atom_coords(), x.positions / units.BOHR, rtol=1e-15, atol=1e-15)
        assert np.allclose(mm.atom_coords(), x.ext_positions / units.BOHR, rtol=1e-15, atol=1e-15)
        assert np.allclose(mm.get_zetas(), (units.BOHR / x.ext_radii) ** 2, rtol=1e-14, atol=0)
        e_tot = float(p._mf.e_tot)
        assert abs(r.energy / units.HARTREE - e_tot) < 1e-12
        assert abs(r.energy / nist.HARTREE2EV - e_tot) > 5e-7          # the trap this avoids


@pytest.mark.parametrize("method", ["HF", "MP2"])
def test_energy_alone_skips_the_gradient_and_agrees(method):
    """Potential.energy (what a Metropolis test or an exponential average needs) is compute().energy without
    the gradient: the same number to the SCF's convergence. HF is variational (error ~ conv_tol = 1e-11 Eh);
    MP2 is not variational in the orbitals, so it inherits the density's error to first order
    (~√conv_tol in the density, 1.5e-9 Eh measured): 1e-6 eV bounds both."""
    p = PySCFPotential(method, "sto-3g", conv_tol=1e-11)
    s = AtomicSystem([8, 1, 1], np.array(WATER) + [[0.0, 0.05, 0.0], [0, 0, 0], [0, 0, 0]])
    e = p.energy(s)
    assert p.log[-1]["grad_time"] == 0.0
    assert e == pytest.approx(p.compute(s).energy, abs=1e-6)
