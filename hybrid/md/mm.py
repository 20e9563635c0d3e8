"""The MM far field of ``hybrid run`` (the ``[mm]`` table): levels on a model region, MM elsewhere.

    E = E_MM'(all) + E_model(I)

I, the model region, holds the whole molecules whose centre of mass lies
within ``radius`` of ``center`` in the starting structure; it is fixed for
the run (molecules that diffuse out stay in it: choose the radius with
room, or use the all-model run without ``[mm]`` for adaptive regions).
E_model is the multilayer potential of ``[[levels]]`` evaluated on I alone;
E_MM' is the force field (OpenMM ``ForceField.createSystem`` on the PDB's
topology, no constraints, flexible water) without the bonded and nonbonded
terms inside I (:func:`couplers.mixed_system.create_mixed_system`). The
coupling is mechanical: the interactions between I and the MM atoms,
Lennard-Jones and Coulomb with the force field's charges on both sides,
stay MM. Level regions use the structure's atom and molecule indices and
are remapped to I here; a centre outside I is an error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import ConfigError, Section
from .levels import partitioner
from .structure import Structure


def model_region(mm: Section, structure: Structure, source: str) -> np.ndarray:
    """Sorted atom indices of I (whole molecules), from the starting positions."""
    region = Section(center=mm["center"], r_inner=mm["radius"], width=0.0, switch="step")
    part = partitioner(region, 0, structure, source, where="[mm] ")
    w = part.weights(structure.system)
    inner = w.atoms(w.inner)
    if inner.size == 0:
        raise ConfigError([f"{source}: [mm] radius = {mm['radius']:g}: no molecule has its centre of mass "
                           "that close to the centre; the model region would be empty"])
    return inner


def sub_structure(structure: Structure, inner: np.ndarray) -> Structure:
    """The Structure of the atoms ``inner`` (molecules and bonds renumbered)."""
    keep = set(int(i) for i in inner)
    mols = [np.searchsorted(inner, m) for m in structure.molecules if int(m[0]) in keep]
    bonds = np.array([[np.searchsorted(inner, i), np.searchsorted(inner, j)] for i, j in structure.bonds
                      if int(i) in keep and int(j) in keep], int).reshape(-1, 2)
    charges = None if structure.charges is None else structure.charges[inner]
    system = structure.system.subset(inner, None if charges is None else int(charges.sum()))
    return Structure(system, structure.masses[inner], mols, bonds, None, None, charges)


def remap_levels(cfg: Section, structure: Structure, inner: np.ndarray, source: str) -> Section:
    """A copy of ``cfg`` whose level-region centres index the model region's atoms and molecules."""
    pos = {int(a): k for k, a in enumerate(inner)}
    inner_mols = [k for k, m in enumerate(structure.molecules) if int(m[0]) in pos]
    out = Section(cfg)
    out["levels"] = []
    for i, lv in enumerate(cfg["levels"], start=1):
        lv = Section(lv)
        region = lv.get("region")
        if region is not None and region["center"]["kind"] != "point":
            kind, value = region["center"]["kind"], region["center"]["value"]
            atoms = [value] if kind == "atom" else value if kind == "group" else None
            outside = [a for a in atoms if a not in pos] if atoms is not None else \
                [] if value in inner_mols else [value]
            if outside:
                what = "molecule" if kind == "molecule" else "atom"
                raise ConfigError([f"{source}: [[levels]] #{i} region.center.{kind} = {value}: {what} "
                                   f"{outside[0]} lies outside the [mm] model region (radius {cfg['mm']['radius']:g} Å)"])
            new = (pos[value] if kind == "atom" else [pos[a] for a in value] if kind == "group"
                   else inner_mols.index(value))
            lv["region"] = Section(region, center=Section(kind=kind, value=new))
        out["levels"].append(lv)
    return out


def mm_system(mm: Section, structure: Structure, base: Path, source: str):
    """The force field's openmm.System for the whole structure (no constraints, flexible water)."""
    from openmm import app, unit
    files = [str(base / f) if (base / f).is_file() else f for f in mm["forcefield"]]
    try:
        ff = app.ForceField(*files)
    except Exception as exc:  # OpenMM raises ValueError/OSError for unknown or malformed files
        raise ConfigError([f"{source}: [mm] forcefield = {mm['forcefield']}: OpenMM could not read it "
                           f"({type(exc).__name__}: {exc})"]) from None
    method = getattr(app, mm["nonbonded_method"])
    try:
        return ff.createSystem(structure.topology, nonbondedMethod=method,
                               nonbondedCutoff=mm["cutoff_nm"] * unit.nanometer, constraints=None,
                               rigidWater=False, removeCMMotion=False)
    except Exception as exc:  # e.g. a residue the force field has no template for
        raise ConfigError([f"{source}: [mm] forcefield = {mm['forcefield']}: cannot parameterise "
                           f"{structure.topology.getNumAtoms()} atoms of the structure: {exc}"]) from None
