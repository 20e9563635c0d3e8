"""The structure of a run: atoms, molecules, masses and an OpenMM Topology.

PDB files are read with OpenMM (positions nm → Å, residues kept); xyz and
extxyz with ASE (charge and multiplicity from the comment line's
``charge=``/``multiplicity=`` if present; velocities from ``momenta``).
Molecules are the PDB's residues or the connected components of the
covalent-radius bond graph (:func:`couplers.partition.find_molecules`).
A PDB's formal charges (columns 79-80, e.g. "2+" on MG) become per-atom
``charges`` (blank: 0), from which each blend region takes its charge
(:mod:`couplers.charges`), and their sum is the default total charge.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import units
from ..errors import InputError
from ..system import AtomicSystem


@dataclass
class Structure:
    """system : AtomicSystem (Å); masses : (N,) amu; molecules : list of (n_k,) int arrays
    (every atom in exactly one); bonds : (B, 2) int; topology : openmm.app.Topology;
    velocities : (N, 3) Å/fs from the file, or None; charges : (N,) int formal charges from the
    file (a PDB with a charge column), or None."""

    system: AtomicSystem
    masses: np.ndarray
    molecules: list
    bonds: np.ndarray
    topology: object
    velocities: np.ndarray | None = None
    charges: np.ndarray | None = None


def load_structure(path, charge=None, multiplicity=None, molecules: str = "auto") -> Structure:
    """Read ``path`` (.pdb, .xyz, .extxyz); ``molecules``: "auto" (residues for PDB,
    covalent otherwise), "covalent" or "residues" (PDB only)."""
    from ase.data import atomic_masses

    from couplers.partition import find_bonds, find_molecules

    path = Path(path)
    suffix = path.suffix.lower()
    velocities = None
    residues = None
    formal = None
    if suffix == ".pdb":
        from openmm import app
        from openmm.unit import nanometer
        try:
            pdb = app.PDBFile(str(path))
        except Exception as exc:  # OpenMM raises plain Exceptions for malformed files
            raise InputError(f"{path}: not a readable PDB file ({type(exc).__name__}: {exc})") from None
        topology = pdb.topology
        numbers = []
        for a in topology.atoms():
            if a.element is None:
                raise InputError(f"{path}: atom {a.index} ({a.name} in {a.residue.name} {a.residue.id}) "
                                 "has no element")
            numbers.append(a.element.atomic_number)
        pos = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(nanometer), float) * units.NM
        box = topology.getPeriodicBoxVectors()
        if box is not None:
            cell = np.asarray([[v.x, v.y, v.z] for v in box.value_in_unit(nanometer)]) * units.NM
            pbc = True
        else:
            cell, pbc = np.zeros((3, 3)), False
        given = [a.formalCharge for a in topology.atoms()]
        if any(q is not None for q in given):
            formal = np.array([q or 0 for q in given], int)
        if charge is None and formal is not None:
            charge = int(formal.sum())
        system = AtomicSystem(numbers, pos, cell, pbc, charge=charge or 0,
                              multiplicity=multiplicity or 1)
        residues = [np.array([a.index for a in r.atoms()], int) for r in topology.residues()]
    else:
        import ase.io
        try:
            atoms = ase.io.read(str(path), format="extxyz")
        except Exception as exc:  # ASE raises many kinds for malformed files
            raise InputError(f"{path}: not a readable xyz/extxyz file ({type(exc).__name__}: {exc})") from None
        system = AtomicSystem.from_ase(atoms, charge=charge, multiplicity=multiplicity)
        if "momenta" in atoms.arrays:
            from ase import units as ase_units
            velocities = atoms.get_velocities() * ase_units.fs        # Å/fs
        topology = None
    if len(system) == 0:
        raise InputError(f"{path}: no atoms")
    system.check_distances(0.5)
    bonds = find_bonds(system)
    if molecules == "residues" and residues is None:
        raise InputError(f"{path}: molecules = \"residues\" needs a PDB file with residues")
    mols = residues if (residues is not None and molecules in ("auto", "residues")) else find_molecules(system)
    if topology is None:
        topology = make_topology(system, mols, bonds)
    masses = atomic_masses[system.numbers].astype(float)
    return Structure(system, masses, mols, bonds, topology, velocities, formal)


def make_topology(system: AtomicSystem, molecules, bonds):
    """An OpenMM Topology whose atoms are in the system's order: one chain, a residue per
    molecule ("HOH" for water, else "MOL"; a molecule whose atoms are not contiguous in
    the file spans several residues), atoms named by element and count within the
    residue, covalent bonds, and the cell if periodic."""
    from openmm import Vec3, app
    from openmm.unit import nanometer
    top = app.Topology()
    chain = top.addChain("A")
    mol_of = np.empty(len(system), int)
    for k, mol in enumerate(molecules):
        mol_of[np.asarray(mol, int)] = k
    atoms, res, current, count = [], None, None, {}
    for i, z in enumerate(system.numbers):
        k = int(mol_of[i])
        if k != current:
            zs = sorted(int(system.numbers[j]) for j in molecules[k])
            res = top.addResidue("HOH" if zs == [1, 1, 8] else "MOL", chain, id=str(top.getNumResidues() + 1))
            current, count = k, {}
        el = app.Element.getByAtomicNumber(int(z))
        count[el.symbol] = count.get(el.symbol, 0) + 1
        n_el = sum(1 for j in molecules[k] if system.numbers[j] == z)
        atoms.append(top.addAtom(el.symbol + (str(count[el.symbol]) if n_el > 1 else ""), el, res))
    for i, j in bonds:
        top.addBond(atoms[int(i)], atoms[int(j)])
    if system.periodic:
        top.setPeriodicBoxVectors([Vec3(*(v / units.NM)) for v in system.cell] * nanometer)
    return top
