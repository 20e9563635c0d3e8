"""Trajectory readers for the continuum bridge.

A :class:`Trajectory` holds positions in Å, cells in Å, times in fs and
charges in e (the project's internal units).  Readers:

* :func:`read_ase` — anything ``ase.io.read`` reads: extxyz, ASE ``.traj``,
  or a list of ``ase.Atoms``;
* :func:`from_mdanalysis` — an ``MDAnalysis.Universe`` (any format it reads);
* :func:`read_mdanalysis` — topology + trajectory files through MDAnalysis
  (DCD, XTC, TRR, NetCDF with PDB, PSF, GRO, ...);
* :func:`read_openmm` — an OpenMM DCD with its topology (a PDB/PDBx path, an
  ``openmm.app.Topology`` or ``PDBFile``), read through MDAnalysis;
  :func:`charges_from_openmm_system` takes the charges from a ``System``;
* :func:`read_trajectory` — picks one of the above from the file extension.

Heavy packages (ase.io, MDAnalysis, openmm) are imported inside the readers.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hybrid.units import PS


@dataclass
class Trajectory:
    """Frames of one set of atoms.

    positions: (F, N, 3) Å; cells: (F, 3, 3) Å, rows are cell vectors (all
    zero when there is no cell); pbc: (3,) bool; times: (F,) fs or None when
    the source has no time; charges: (N,) e or None; names: (N,) str.
    """
    positions: np.ndarray
    cells: np.ndarray
    pbc: np.ndarray
    times: np.ndarray | None = None
    charges: np.ndarray | None = None
    names: np.ndarray | None = None

    def __post_init__(self):
        self.positions = np.asarray(self.positions, dtype=float)
        if self.positions.ndim != 3 or self.positions.shape[2] != 3:
            raise ValueError(f"positions must have shape (frames, atoms, 3), got {self.positions.shape}")
        F, N, _ = self.positions.shape
        if F == 0 or N == 0:
            raise ValueError(f"the trajectory is empty: {F} frames of {N} atoms")
        self.cells = np.asarray(self.cells, dtype=float)
        if self.cells.shape != (F, 3, 3):
            raise ValueError(f"cells must have shape {(F, 3, 3)}, got {self.cells.shape}")
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=float)
            if self.times.shape != (F,):
                raise ValueError(f"times must have shape ({F},), got {self.times.shape}")
        if self.charges is not None:
            self.charges = np.asarray(self.charges, dtype=float)
            if self.charges.shape != (N,):
                raise ValueError(f"charges must have shape ({N},), got {self.charges.shape}")
        if self.names is not None:
            self.names = np.asarray(self.names, dtype=str)

    @property
    def n_frames(self) -> int:
        return self.positions.shape[0]

    @property
    def n_atoms(self) -> int:
        return self.positions.shape[1]

    @property
    def timestep(self) -> float:
        """Time between frames in fs (uniform spacing required)."""
        if self.times is None or self.n_frames < 2:
            raise ValueError("the trajectory has no frame times: pass timestep= to the reader")
        dt = np.diff(self.times)
        if not np.allclose(dt, dt[0], rtol=1e-6):
            raise ValueError("frames are not evenly spaced in time")
        return float(dt[0])

    def _has_cell(self, axis):
        return np.all(np.linalg.norm(self.cells[:, axis], axis=1) > 0)

    def area(self, axis: int) -> np.ndarray:
        """(F,) cross-section |a_j × a_k| in Å² of the two cell vectors other than ``axis``."""
        j, k = [i for i in range(3) if i != axis]
        return np.linalg.norm(np.cross(self.cells[:, j], self.cells[:, k]), axis=1)

    def height(self, axis: int) -> np.ndarray:
        """(F,) box height along ``axis`` in Å: volume / cross-section."""
        return np.abs(np.linalg.det(self.cells)) / self.area(axis)

    def coordinate(self, axis: int, wrap: bool | None = None) -> np.ndarray:
        """(F, N) position along ``axis`` in Å, measured normal to the plane
        of the other two cell vectors: s_axis · height with s the fractional
        coordinate (equal to the Cartesian coordinate for orthorhombic
        cells).  ``wrap`` (default: the axis is periodic) maps into [0, height).
        Without a cell the Cartesian coordinate is returned."""
        if axis not in (0, 1, 2):
            raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
        if not np.all(np.abs(np.linalg.det(self.cells)) > 0):
            if wrap:
                raise ValueError("cannot wrap: the trajectory has no cell")
            return self.positions[:, :, axis].copy()
        frac = np.einsum("fni,fij->fnj", self.positions, np.linalg.inv(self.cells))[:, :, axis]
        if self.pbc[axis] if wrap is None else wrap:
            frac = frac - np.floor(frac)
        return frac * self.height(axis)[:, None]

    def select(self, atoms) -> "Trajectory":
        """A trajectory of a subset of atoms (indices or boolean mask)."""
        idx = np.asarray(atoms)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return Trajectory(self.positions[:, idx], self.cells, self.pbc, self.times,
                          None if self.charges is None else self.charges[idx],
                          None if self.names is None else self.names[idx])


def _times(n_frames, timestep, found):
    if timestep is not None:
        return np.arange(n_frames) * float(timestep)
    return found


def read_ase(source, index=":", timestep: float | None = None, charges=None) -> Trajectory:
    """Read frames with ASE: a path (extxyz, .traj, anything ase.io reads) or
    a list of ``ase.Atoms``.

    timestep: fs between frames (default: ``atoms.info['time']`` in fs if
    every frame has it); charges: (N,) e (default: the atoms' initial
    charges, or an extxyz ``charges`` column).
    """
    if isinstance(source, (str, Path)):
        from ase.io import read

        frames = read(str(source), index=index)
        if not isinstance(frames, list):
            frames = [frames]
    else:
        frames = list(source)
    if not frames:
        raise ValueError(f"no frames read from {source!r}")
    n = len(frames[0])
    if any(len(a) != n for a in frames):
        raise ValueError("all frames must have the same number of atoms")
    positions = np.array([a.get_positions() for a in frames])
    cells = np.array([a.cell.array for a in frames])
    found = None
    if all("time" in a.info for a in frames):
        found = np.array([float(a.info["time"]) for a in frames])
    if charges is None:
        first = frames[0]
        if "charges" in first.arrays:
            charges = first.arrays["charges"]
        elif "initial_charges" in first.arrays and np.any(first.get_initial_charges()):
            charges = first.get_initial_charges()
        elif first.calc is not None and "charges" in first.calc.results:
            charges = first.calc.results["charges"]
    return Trajectory(positions, cells, frames[0].pbc, _times(len(frames), timestep, found),
                      charges, np.array(frames[0].get_chemical_symbols()))


def from_mdanalysis(universe, select: str = "all", start=None, stop=None, step=None,
                    charges=None) -> Trajectory:
    """Frames of an ``MDAnalysis.Universe`` (positions in Å; times converted
    from ps to fs).  charges: (N_selected,) e, default the topology charges."""
    from MDAnalysis.lib.mdamath import triclinic_vectors

    group = universe.select_atoms(select)
    if group.n_atoms == 0:
        raise ValueError(f"selection {select!r} matches no atoms")
    pos, cells, times = [], [], []
    for ts in universe.trajectory[start:stop:step]:
        pos.append(group.positions.astype(float))
        dims = ts.dimensions
        cells.append(np.zeros((3, 3)) if dims is None else triclinic_vectors(dims).astype(float))
        times.append(ts.time * PS)
    if charges is None and hasattr(group, "charges"):     # False when the topology has none
        charges = np.asarray(group.charges, dtype=float)
    cells = np.array(cells)
    pbc = np.all(np.linalg.norm(cells, axis=2) > 0, axis=0)
    names = np.array(group.names) if hasattr(group, "names") else None
    return Trajectory(np.array(pos), cells, pbc, np.array(times), charges, names)


def read_mdanalysis(topology, trajectory=None, select: str = "all", start=None, stop=None,
                    step=None, charges=None, **universe_kwargs) -> Trajectory:
    """Read topology + trajectory files (DCD, XTC, TRR, ...) through MDAnalysis."""
    import MDAnalysis as mda

    args = (str(topology),) if trajectory is None else (str(topology), str(trajectory))
    return from_mdanalysis(mda.Universe(*args, **universe_kwargs), select, start, stop, step, charges)


def read_openmm(topology, dcd, select: str = "all", start=None, stop=None, step=None,
                charges=None) -> Trajectory:
    """An OpenMM DCD (``openmm.app.DCDReporter`` output, Å) with its topology.

    topology: a PDB/PDBx path, an ``openmm.app.Topology``, ``PDBFile`` or
    ``PDBxFile``.  charges: (N_selected,) e, e.g. from
    :func:`charges_from_openmm_system`.
    """
    import MDAnalysis as mda

    top = str(topology) if isinstance(topology, (str, Path)) else topology
    return from_mdanalysis(mda.Universe(top, str(dcd), format="DCD"), select, start, stop, step, charges)


def charges_from_openmm_system(system) -> np.ndarray:
    """(N,) partial charges in e from the NonbondedForce of an ``openmm.System``."""
    import openmm
    from openmm import unit

    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            return np.array([force.getParticleParameters(i)[0].value_in_unit(unit.elementary_charge)
                             for i in range(force.getNumParticles())])
    raise ValueError("the OpenMM system has no NonbondedForce to take charges from")


_ASE_SUFFIXES = {".xyz", ".extxyz", ".traj", ".pdb", ".cif", ".vasp"}
_MDA_SUFFIXES = {".dcd", ".xtc", ".trr", ".nc", ".ncdf", ".lammpstrj"}


def read_trajectory(path, topology=None, **kwargs) -> Trajectory:
    """Read ``path`` with the reader its extension calls for.

    extxyz / xyz / ASE traj → :func:`read_ase`; DCD, XTC, TRR, NetCDF →
    :func:`read_mdanalysis` (a ``topology`` is required).
    """
    suffix = Path(path).suffix.lower()
    if suffix in _MDA_SUFFIXES:
        if topology is None:
            raise ValueError(f"{path}: a {suffix} trajectory needs a topology (PDB, PSF, GRO, ...)")
        return read_mdanalysis(topology, path, **kwargs)
    if suffix in _ASE_SUFFIXES:
        return read_ase(path, **kwargs)
    raise ValueError(f"{path}: unknown trajectory format {suffix!r}; use read_ase or read_mdanalysis")
