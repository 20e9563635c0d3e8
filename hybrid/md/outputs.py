"""Outputs that can be cut back to a checkpoint: CSV logs and trajectories.

Each writer appends (CSV rows are flushed row by row, so the log can be
followed live), and :meth:`sync` flushes and fsyncs it and returns its
size in bytes. A checkpoint stores these sizes after syncing, so on resume
every file is truncated to exactly what it held when the checkpoint was
written: rows and frames of steps after the checkpoint (which the resumed
run will write again) are removed, and a row or frame half-written by a
killed process goes with them. No step is duplicated or lost.

Trajectories: DCD (``openmm.app.DCDFile``: float32 Å, CHARMM layout,
little-endian; its header's frame count and last step are rewritten after
truncation) or XTC (``openmm.app.XTCFile``: compressed, 10⁻³ nm precision).
"""
from __future__ import annotations

import csv
import io
import os
import struct
from pathlib import Path

from ..errors import InputError


def _fsync(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def truncate(path: Path, size: int, what: str) -> None:
    """Cut ``path`` to ``size`` bytes; refuse if it is shorter (data written before the checkpoint is lost)."""
    have = path.stat().st_size if path.exists() else -1
    if have < size:
        raise InputError(f"{path}: {what} holds {max(have, 0)} bytes but held {size} at the checkpoint; it was "
                         "truncated or replaced after the checkpoint, so the run cannot resume consistently")
    if have > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)
            _fsync(fh)


class CSVLog:
    """A CSV file, one row per reported step; values written with repr (round-trip exact)."""

    def __init__(self, path, columns, resume_size: int | None = None):
        self.path, self.columns = Path(path), list(columns)
        if resume_size is None:
            self.fh = open(self.path, "w", newline="")
            csv.writer(self.fh).writerow(self.columns)
        else:
            truncate(self.path, resume_size, "the CSV log")
            with open(self.path, newline="") as fh:
                header = next(csv.reader(fh), None)
            if header != self.columns:
                raise InputError(f"{self.path}: its columns {header} are not those of this run {self.columns}")
            self.fh = open(self.path, "a", newline="")
        self.writer = csv.writer(self.fh)

    def write(self, row: dict) -> None:
        """Append one row and flush it to the OS (not fsync), so the log can be followed while it runs."""
        self.writer.writerow([_cell(row[c]) for c in self.columns])
        self.fh.flush()

    def sync(self) -> int:
        _fsync(self.fh)
        return self.fh.tell()

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.flush()
            self.fh.close()


def _cell(v):
    if isinstance(v, float):
        return repr(v)
    return v


def read_csv(path) -> dict:
    """{column: list of floats} of a CSV log."""
    import numpy as np
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return {}
    head, body = rows[0], [r for r in rows[1:] if len(r) == len(rows[0])]
    return {h: np.array([float(r[k]) for r in body]) for k, h in enumerate(head)}


class Trajectory:
    """Frames (positions in nm) to a DCD or XTC file; ``frames`` counts them."""

    def __init__(self, path, topology, dt_ps: float, interval: int, resume: tuple | None = None):
        """resume : (size in bytes, number of frames) at the checkpoint, or None for a new file."""
        self.path, self.topology = Path(path), topology
        self.format = self.path.suffix.lower().lstrip(".")
        if self.format not in ("dcd", "xtc"):
            raise InputError(f"{self.path}: trajectory format must be .dcd or .xtc")
        from openmm.app import DCDFile, XTCFile
        if resume is None:
            if self.format == "dcd":
                self.fh = open(self.path, "w+b")
                self.file = DCDFile(self.fh, topology, dt_ps, firstStep=0, interval=interval)
            else:
                if self.path.exists():
                    self.path.unlink()
                self.file = XTCFile(str(self.path), topology, dt_ps, firstStep=0, interval=interval)
            self.frames = 0
        else:
            size, frames = resume
            truncate(self.path, size, "the trajectory")
            if self.format == "dcd":
                self._fix_dcd_header(frames, interval)
                self.fh = open(self.path, "r+b")
                self.file = DCDFile(self.fh, topology, dt_ps, firstStep=0, interval=interval, append=True)
            else:
                self.file = XTCFile(str(self.path), topology, dt_ps, firstStep=0, interval=interval, append=True)
            if self.file._modelCount != frames:
                raise InputError(f"{self.path}: holds {self.file._modelCount} frames after truncation, the "
                                 f"checkpoint expects {frames}")
            self.frames = frames

    def _fix_dcd_header(self, frames: int, interval: int) -> None:
        """DCDFile updates the frame count (offset 8) and last step (offset 20) per frame."""
        with open(self.path, "r+b") as fh:
            fh.seek(8)
            fh.write(struct.pack("<i", frames))
            fh.seek(20)
            fh.write(struct.pack("<i", max(frames - 1, 0) * interval))
            _fsync(fh)

    def write(self, positions_nm, box=None) -> None:
        self.file.writeModel(positions_nm, periodicBoxVectors=box)
        self.frames += 1

    def sync(self) -> int:
        if self.format == "dcd":
            _fsync(self.fh)
            self.fh.seek(0, io.SEEK_END)
            return self.fh.tell()
        fd = os.open(self.path, os.O_RDONLY)      # XTCFile appends through C and closes each frame
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return self.path.stat().st_size

    def close(self) -> None:
        if self.format == "dcd" and not self.fh.closed:
            self.fh.flush()
            self.fh.close()


def dcd_frames(path) -> tuple:
    """(header bytes, list of frame payloads) of a DCD file, for comparing trajectories frame by frame."""
    data = Path(path).read_bytes()
    comments = struct.unpack("<i", data[92:96])[0]
    head = 92 + 4 + comments + 4 + 12
    natoms = struct.unpack("<i", data[head - 8:head - 4])[0]
    box = struct.unpack("<i", data[48:52])[0]
    frame = 3 * (8 + 4 * natoms) + (56 if box else 0)
    n = (len(data) - head) // frame
    return data[:head], [data[head + k * frame: head + (k + 1) * frame] for k in range(n)]


def write_topology_pdb(path, topology, positions_nm) -> None:
    """The topology and first positions as a PDB beside the trajectory (for VMD, MDAnalysis, mdtraj)."""
    from openmm.app import PDBFile
    from openmm.unit import nanometer
    with open(path, "w") as fh:
        PDBFile.writeFile(topology, positions_nm * nanometer, fh, keepIds=True)
