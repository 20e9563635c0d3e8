"""Labelled frames on disk: extended XYZ and ASE databases.

A :class:`~hybrid.ml.training.Frame` maps to an ``ase.Atoms`` with a
``SinglePointCalculator`` holding the labels, so that files written here are
read by ASE, MACE and the other tools that use the same keys:

* ``energy`` (eV), ``forces`` (N, 3, eV/Å)
* ``dipole`` (3,) e·Å and ``charges`` (N,) e when the frame has them
* ``stress`` (6,) eV/Å³ (Voigt, ASE sign) when a virial was labelled
* ``info``: total ``charge`` and ``multiplicity`` of the system, and the
  frame's provenance (``config_id``, ``level_of_theory``, ...)

The format follows the file name: ``.xyz``/``.extxyz`` (extended XYZ) or
``.db``/``.json`` (ASE database).
"""
from __future__ import annotations

import io
import os

import numpy as np

from ..errors import InputError
from ..system import AtomicSystem

_EXTXYZ = (".xyz", ".extxyz")
_DB = (".db", ".json")
_RESERVED = {"charge", "multiplicity", "spin_multiplicity"}


def file_kind(path) -> str:
    """"extxyz" or "db" from the file name; InputError naming the file otherwise."""
    name = os.fspath(path).lower()
    if name.endswith(_EXTXYZ):
        return "extxyz"
    if name.endswith(_DB):
        return "db"
    raise InputError(f"{os.fspath(path)}: cannot tell the format from the name; use .xyz/.extxyz "
                     "(extended XYZ) or .db/.json (ASE database)")


def frame_to_atoms(frame, **info):
    """An ``ase.Atoms`` holding ``frame``'s geometry and labels (see module docstring).

    ``info`` entries are added to ``atoms.info`` after the frame's own
    ``frame.info``; values must be str, int, float or bool (extended XYZ and
    ASE databases store nothing else as key-value pairs).
    """
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = frame.system.to_ase()
    results = {"energy": float(frame.energy), "forces": np.asarray(frame.forces, float)}
    if frame.dipole is not None:
        results["dipole"] = np.asarray(frame.dipole, float).reshape(3)
    if frame.charges is not None:
        results["charges"] = np.asarray(frame.charges, float).reshape(len(atoms))
    stress = frame.info.get("stress") if isinstance(frame.info, dict) else None
    extra = {k: v for k, v in dict(frame.info, **info).items() if k != "stress"}
    for k, v in extra.items():
        if k in _RESERVED:
            raise InputError(f"frame info key {k!r} is reserved for the system's electronic state")
        if isinstance(v, (np.integer, np.floating, np.bool_)):
            v = v.item()
        if not isinstance(v, (str, int, float, bool)):
            raise InputError(f"frame info {k!r} = {v!r}: only str, int, float and bool values can be stored")
        atoms.info[k] = v
    if stress is not None:
        results["stress"] = np.asarray(stress, float)
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


def atoms_to_frame(atoms, where: str = "atoms", require=("energy", "forces")):
    """A :class:`Frame` from an ``ase.Atoms`` with labels; ``where`` names it in errors."""
    from .training import Frame

    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    for key in require:
        if key not in results:
            have = ", ".join(sorted(results)) or "no labels"
            raise InputError(f"{where}: no {key!r} label (it has {have})")
    system = AtomicSystem.from_ase(atoms)
    info = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in atoms.info.items()
            if k not in _RESERVED}
    if "stress" in results:
        info["stress"] = np.asarray(results["stress"], float)
    n = len(atoms)
    forces = np.asarray(results.get("forces", np.zeros((n, 3))), float)
    if forces.shape != (n, 3):
        raise InputError(f"{where}: forces have shape {forces.shape}, expected {(n, 3)}")
    charges = results.get("charges")
    dipole = results.get("dipole")
    return Frame(system, float(results.get("energy", np.nan)), forces,
                 dipole=None if dipole is None else np.asarray(dipole, float),
                 charges=None if charges is None else np.asarray(charges, float), info=info)


def extxyz_record(frame, **info) -> str:
    """One frame as extended-XYZ text (a complete record, ending in a newline)."""
    from ase.io import write

    buf = io.StringIO()
    write(buf, frame_to_atoms(frame, **info), format="extxyz")
    return buf.getvalue()


def parse_extxyz(text: str, where: str = "extxyz text", require=("energy", "forces")) -> list:
    """Frames from extended-XYZ text (one or more records)."""
    from ase.io import read

    try:
        images = read(io.StringIO(text), index=":", format="extxyz")
    except Exception as exc:  # ASE raises several types for malformed text
        raise InputError(f"{where}: not readable extended XYZ ({type(exc).__name__}: {exc})") from None
    return [atoms_to_frame(a, f"{where} frame {k}", require) for k, a in enumerate(images)]


def write_frames(path, frames, append: bool = False) -> None:
    """Write ``frames`` to an extended XYZ file or an ASE database (by suffix).

    Extended XYZ is written to a temporary file and renamed (``append``
    rewrites nothing: it adds records at the end, flushed and fsync'ed).
    """
    path = os.fspath(path)
    kind = file_kind(path)
    frames = list(frames)
    if kind == "db":
        from ase.db import connect
        if not append and os.path.exists(path):
            os.remove(path)
        with connect(path, append=True) as db:
            for fr in frames:
                atoms = frame_to_atoms(fr)
                db.write(atoms, **db_key_value_pairs(atoms))
        return
    text = "".join(extxyz_record(fr) for fr in frames)
    if append:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        return
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_frames(path, require=("energy", "forces")) -> list:
    """All frames in an extended XYZ file or ASE database, in file order.

    ``require`` lists the labels every frame must have; a missing one raises
    :class:`InputError` naming the file and the frame's index.
    """
    path = os.fspath(path)
    kind = file_kind(path)
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if kind == "db":
        from ase.db import connect
        out = []
        with connect(path) as db:
            for k, row in enumerate(db.select()):
                atoms = atoms_from_db_row(row)
                out.append(atoms_to_frame(atoms, f"{path} row {row.id} (frame {k})", require))
        return out
    with open(path, encoding="utf-8") as fh:
        return parse_extxyz(fh.read(), path, require)


def db_key_value_pairs(atoms) -> dict:
    """``atoms.info`` as ASE-database key-value pairs.

    The total charge is stored as ``total_charge``; keys the database
    reserves (its columns and element symbols) raise an InputError naming the key.
    """
    from ase.db.core import reserved_keys

    kvp = {}
    for k, v in atoms.info.items():
        if k == "charge":
            kvp["total_charge"] = int(v)
            continue
        if k in reserved_keys:
            raise InputError(f"info key {k!r} is reserved by ASE databases; rename it")
        kvp[k] = v
    return kvp


def atoms_from_db_row(row):
    """An ``ase.Atoms`` with labels and info from an ASE database row (inverse of the above)."""
    atoms = row.toatoms(add_additional_information=False)
    kvp = dict(row.key_value_pairs)
    if "total_charge" in kvp:
        kvp["charge"] = kvp.pop("total_charge")
    atoms.info.update(kvp)
    return atoms
