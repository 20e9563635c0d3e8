"""Checkpoints of a hybrid MD run, written atomically.

A checkpoint is one JSON file:

* ``openmm``: ``Context.createCheckpoint()`` (base64): positions, velocities,
  step count, time, box and the integrator's random-number state on the
  Reference and CPU platforms, so a resumed Langevin run draws the same
  noise as an uninterrupted one (bit-identical on the same platform);
* ``state_xml``: the same positions/velocities/time as a portable
  ``XmlSerializer`` State, for inspection;
* ``step``, ``time_fs``, ``seed``, ``platform``, ``integrator``, the
  configuration hash (:func:`hybrid.config.config_hash`) and the byte size
  of every output file at the moment the checkpoint was written (outputs
  are fsynced first), so resume can cut them back (:mod:`hybrid.md.outputs`);
* run statistics (wall time, QM time, steps) to carry across restarts.

Not stored: the warm-start history of stateful levels (PySCF density
extrapolation, tblite's last wavefunction). After a resume their first SCF
starts cold: SCF iteration counts change, energies and forces only within
the SCF convergence tolerance. Runs whose levels are all stateless (MLIPs)
resume bit-identically with Verlet and Langevin.

Writing: a temporary file in the same directory, flushed and fsynced, then
``os.replace`` over the old checkpoint and an fsync of the directory, so a
crash at any moment leaves either the old or the new checkpoint, complete.
"""
from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

from ..errors import InputError

FORMAT = "qmml-hybrid.md-checkpoint"
VERSION = 1


def atomic_write(path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably (tempfile + fsync + os.replace)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(path, context, meta: dict) -> None:
    """Checkpoint ``context`` with ``meta`` (JSON-serialisable) to ``path``."""
    import openmm
    state = context.getState(getPositions=True, getVelocities=True)
    payload = dict(meta)
    payload.update(format=FORMAT, version=VERSION,
                   openmm=base64.b64encode(context.createCheckpoint()).decode("ascii"),
                   openmm_version=openmm.__version__,
                   state_xml=openmm.XmlSerializer.serialize(state),
                   warm_start="not stored: the first SCF of stateful levels after a resume starts cold")
    atomic_write(path, json.dumps(payload, indent=1).encode())


def load(path) -> dict:
    """The checkpoint's metadata, with ``openmm`` decoded to bytes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no checkpoint to resume from (run without --resume to start)")
    try:
        payload = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(f"{path}: not a {FORMAT} file")
    if payload.get("version", 0) > VERSION:
        raise InputError(f"{path}: checkpoint version {payload['version']} is newer than this code reads ({VERSION})")
    payload["openmm"] = base64.b64decode(payload["openmm"])
    return payload


def restore(context, payload: dict) -> None:
    """Load the OpenMM checkpoint into ``context`` (same System, integrator and platform)."""
    platform = context.getPlatform().getName()
    if payload["platform"] != platform:
        raise InputError(f"checkpoint was written on the OpenMM {payload['platform']} platform, this run uses "
                         f"{platform}; OpenMM checkpoints are platform-specific")
    context.loadCheckpoint(payload["openmm"])
    if context.getStepCount() != payload["step"]:
        raise InputError(f"checkpoint inconsistent: OpenMM state at step {context.getStepCount()}, "
                         f"metadata says {payload['step']}")
