"""Trajectory readers (extxyz, ASE traj, MDAnalysis DCD/XTC, OpenMM DCD) and
density profiles with block-average errors."""
import numpy as np
import pytest
from ase import Atoms

from hybrid.units import E_CHARGE

from continuum.profiles import Profile, block_average, blocking_curve, density_profile
from continuum.trajectories import (Trajectory, from_mdanalysis, read_ase, read_openmm,
                                    read_trajectory)

N_FRAMES, N_IONS, BOX = 40, 30, np.array([12.0, 14.0, 30.0])


def make_frames(seed=0):
    """Ions with charges ±1 spread along z with an exponential excess of
    cations near z = 0 (a cheap stand-in for a double layer)."""
    rng = np.random.default_rng(seed)
    charges = np.tile([1.0, -1.0], N_IONS // 2)
    frames = []
    for f in range(N_FRAMES):
        pos = rng.uniform(0, 1, (N_IONS, 3)) * BOX
        pos[charges > 0, 2] = rng.exponential(6.0, N_IONS // 2) % BOX[2]
        atoms = Atoms(["Na", "Cl"] * (N_IONS // 2), positions=pos, cell=BOX, pbc=True)
        atoms.set_initial_charges(charges)
        atoms.info["time"] = 2.0 * f
        frames.append(atoms)
    return frames, charges


def direct_histogram(frames, charges, edges, weights):
    h = np.zeros(edges.size - 1)
    for a in frames:
        z = a.positions[:, 2] % BOX[2]
        h += np.histogram(z, edges, weights=charges if weights == "charge" else None)[0]
    return h / len(frames) / (BOX[0] * BOX[1] * np.diff(edges)) * 1e30


def test_density_profiles_match_direct_histogram_in_si():
    frames, charges = make_frames()
    traj = read_ase(frames)
    edges = np.linspace(0, BOX[2], 16)
    for weights, factor in (("number", 1.0), ("charge", E_CHARGE)):
        prof = density_profile(traj, 2, edges, weights=weights, n_blocks=4)
        assert np.allclose(prof.values, direct_histogram(frames, charges, edges, weights) * factor)
        assert prof.edges[-1] == pytest.approx(30e-10) and prof.errors.shape == (15,)
    assert traj.timestep == 2.0
    # neutral system: the charge density integrates to zero
    rho = density_profile(traj, 2, edges, weights="charge").values
    assert abs(np.sum(rho * np.diff(edges) * 1e-10)) < 1e-12 * np.abs(rho).max() * 1e-10


def test_block_error_matches_poisson_statistics_for_independent_frames():
    """Uniform independent ideal gas: the count in a bin is Poisson, so the
    standard error of the mean density is sqrt(λ/F)/(A Δz)."""
    rng = np.random.default_rng(1)
    F, N = 400, 200
    pos = rng.uniform(0, 1, (F, N, 3)) * BOX
    traj = Trajectory(pos, np.tile(np.diag(BOX), (F, 1, 1)), True)
    prof = density_profile(traj, 2, 10, n_blocks=20)
    lam = N / 10
    expected = np.sqrt(lam / F) / (BOX[0] * BOX[1] * BOX[2] / 10) * 1e30
    assert np.median(prof.errors) == pytest.approx(expected, rel=0.25)
    lengths, sems = blocking_curve(np.arange(64.0)[:, None] % 2)
    assert list(lengths) == [1, 2, 4, 8, 16] and sems.shape == (5, 1)
    assert sems[-1, 0] == 0.0    # blocks of even length average the alternation away


def test_block_average_formula():
    x = np.arange(12.0)
    mean, sem, blocks = block_average(x, 3)
    assert mean == 5.5 and np.allclose(blocks, [1.5, 5.5, 9.5])
    assert sem == pytest.approx(np.std([1.5, 5.5, 9.5], ddof=1) / np.sqrt(3))
    with pytest.raises(ValueError, match="n_blocks"):
        block_average(x, 1)


def test_extxyz_and_ase_traj_round_trip(tmp_path):
    from ase.io import write

    frames, charges = make_frames()
    for name in ("ions.extxyz", "ions.traj"):
        write(tmp_path / name, frames)
        traj = read_trajectory(tmp_path / name)
        assert traj.n_frames == N_FRAMES and traj.n_atoms == N_IONS
        assert np.allclose(traj.positions, [a.positions for a in frames], atol=1e-6)
        assert np.allclose(traj.charges, charges)
        assert np.allclose(traj.cells[0], np.diag(BOX))


def mda_universe(frames, charges):
    import MDAnalysis as mda
    from MDAnalysis.coordinates.memory import MemoryReader

    u = mda.Universe.empty(N_IONS, trajectory=True, atom_resindex=np.arange(N_IONS),
                           residue_segindex=np.zeros(N_IONS, int), n_residues=N_IONS)
    u.add_TopologyAttr("names", ["NA", "CL"] * (N_IONS // 2))
    u.add_TopologyAttr("resnames", ["ION"] * N_IONS)
    u.add_TopologyAttr("charges", charges)
    dims = np.tile(np.concatenate([BOX, [90.0, 90.0, 90.0]]), (N_FRAMES, 1))
    u.load_new(np.array([a.positions for a in frames], dtype=np.float32), format=MemoryReader,
               dimensions=dims, dt=0.002)
    return u


@pytest.mark.parametrize("suffix", ["dcd", "xtc"])
def test_mdanalysis_dcd_and_xtc(tmp_path, suffix):
    pytest.importorskip("MDAnalysis")
    import MDAnalysis as mda

    frames, charges = make_frames()
    u = mda_universe(frames, charges)
    ref = density_profile(from_mdanalysis(u), 2, 12, weights="charge")
    u.atoms.write(tmp_path / "top.pdb")
    with mda.Writer(str(tmp_path / f"ions.{suffix}"), N_IONS, dt=0.002) as w:
        for _ in u.trajectory:
            w.write(u.atoms)
    traj = read_trajectory(tmp_path / f"ions.{suffix}", topology=tmp_path / "top.pdb", charges=charges)
    assert traj.n_frames == N_FRAMES
    assert np.allclose(traj.positions, [a.positions for a in frames], atol=6e-3)  # XTC: 0.01 Å
    assert np.allclose(np.diff(traj.times), 2.0)                   # 0.002 ps = 2 fs
    prof = density_profile(traj, 2, 12, weights="charge")
    # XTC keeps 3 decimals (1e-3 nm): an ion or two may change bins
    assert np.abs(prof.values - ref.values).sum() <= 4 * E_CHARGE / (BOX[0] * BOX[1] * 2.5e-30) / N_FRAMES
    with pytest.raises(ValueError, match="needs a topology"):
        read_trajectory(tmp_path / f"ions.{suffix}")


def test_openmm_dcd_with_topology(tmp_path):
    pytest.importorskip("MDAnalysis")
    app = pytest.importorskip("openmm.app")
    import openmm
    from openmm import unit

    frames, charges = make_frames()
    top = app.Topology()
    chain = top.addChain()
    for sym in ["Na", "Cl"] * (N_IONS // 2):
        res = top.addResidue(sym.upper(), chain)
        top.addAtom(sym.upper(), app.Element.getBySymbol(sym), res)
    top.setPeriodicBoxVectors(np.diag(BOX) * 0.1 * unit.nanometer)
    with open(tmp_path / "top.pdb", "w") as fh:
        app.PDBFile.writeFile(top, frames[0].positions * unit.angstrom, fh)
    with open(tmp_path / "run.dcd", "wb") as fh:
        dcd = app.DCDFile(fh, top, 0.002 * unit.picoseconds, interval=1)
        for a in frames:
            dcd.writeModel(a.positions * unit.angstrom, periodicBoxVectors=np.diag(BOX) * unit.angstrom)
    system = openmm.System()
    nb = openmm.NonbondedForce()
    for q in charges:
        system.addParticle(23.0)
        nb.addParticle(q, 0.3, 0.1)
    system.addForce(nb)
    from continuum.trajectories import charges_from_openmm_system

    q = charges_from_openmm_system(system)
    for topology in (tmp_path / "top.pdb", app.PDBFile(str(tmp_path / "top.pdb"))):
        traj = read_openmm(topology, tmp_path / "run.dcd", charges=q)
        assert np.allclose(traj.positions, [a.positions for a in frames], atol=1e-3)
        assert np.allclose(traj.cells[0], np.diag(BOX), atol=1e-4)
    sel = read_openmm(tmp_path / "top.pdb", tmp_path / "run.dcd", select="name NA")
    assert sel.n_atoms == N_IONS // 2


def test_triclinic_cell_coordinate_and_area():
    cell = np.array([[10.0, 0, 0], [4.0, 9.0, 0], [1.0, 2.0, 20.0]])
    pos = np.array([[[0.5, 0.5, 0.0], [1.0, 2.0, 5.0], [3.0, 4.0, 19.0]]])
    traj = Trajectory(pos, cell[None], True)
    assert traj.area(2)[0] == pytest.approx(90.0)
    assert traj.height(2)[0] == pytest.approx(20.0)
    # the distance from the a-b plane is the Cartesian z for this cell
    assert np.allclose(traj.coordinate(2)[0], [0.0, 5.0, 19.0])


def test_profile_interpolation_and_domain_errors():
    p = Profile(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 5.0]), quantity="D", domain=(0.5, 3.5))
    assert p(2.5) == 4.0 and p(0.5) == 1.0
    with pytest.raises(ValueError, match="'D' is defined on"):
        p(4.0)
    with pytest.raises(ValueError, match="strictly increasing"):
        Profile(np.array([1.0, 1.0]), np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="charges"):
        density_profile(Trajectory(np.zeros((2, 1, 3)), np.tile(np.eye(3), (2, 1, 1)), True), weights="charge")


def test_bare_mdanalysis_universe_without_names_charges_or_cell():
    mda = pytest.importorskip("MDAnalysis")
    u = mda.Universe.empty(3, trajectory=True)
    u.atoms.positions = np.arange(9.0).reshape(3, 3)
    traj = from_mdanalysis(u)
    assert traj.charges is None and traj.names is None and not traj.pbc.any()
    assert np.allclose(traj.coordinate(2)[0], [2.0, 5.0, 8.0])
    with pytest.raises(ValueError, match="area"):
        density_profile(traj, 2, 4, range_=(0.0, 9.0))
