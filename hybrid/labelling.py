"""Labelling: energies and forces (and dipoles, charges) of many configurations, in parallel.

For configurations R_k (k an id) and any potential V, a job computes
E_k = V.E(R_k) in eV and F_k = -∇E(R_k) in eV/Å (plus, where asked and
where the potential can, the dipole μ_k in e·Å, atomic charges q_k,i in e,
and the stress σ_k = -W_k / Ω in eV/Å³ for periodic cells), and writes one
record per configuration as soon as it finishes.

Where the work runs is set by ``scheduler``, as everywhere in :mod:`hybrid.cluster`: a local Dask
cluster by default, ``"synchronous"`` for this process, or a scheduler address, a Client or a
dask-jobqueue cluster (:func:`~hybrid.cluster.jobqueue_cluster`).

The potential travels to the workers pickled (cloudpickle, which comes with dask). A potential
that cannot be pickled (e.g. an ``XTBPotential`` after its first call holds
a C handle) is refused with a clear error: pass a factory instead, a
zero-argument callable returning the potential
(``functools.partial(XTBPotential, "GFN2-xTB")``). By default every
configuration is computed by a fresh copy of the potential, so results do
not depend on which worker ran what or in which order; ``warm_start=True``
keeps one copy per worker process (faster for PySCF along a trajectory, but
a warm-started SCF can land on a slightly different, equally converged
solution).

Files (``output`` names the label file):

* ``.xyz``/``.extxyz``: extended XYZ, records in completion order, each
  with ``config_id`` in its info line. Beside it ``<output>.ledger.jsonl``,
  one JSON line per event: a header (level of theory, properties), ``done``
  (id, configuration hash, byte offset, length and CRC-32 of its record),
  ``failed`` (id, attempt, error and traceback). A record is appended,
  flushed and fsync'ed, and only then is its ``done`` line written and
  fsync'ed: a kill -9 at any moment leaves at most a torn record or ledger
  line at the end, which the next run cuts off. Only ledgered records count
  as done; :func:`load_labels` reads exactly those.
* ``.db``: an ASE (SQLite) database; every row is written in its own
  transaction, so a row is either there whole or not at all. The ledger
  beside it holds the header and the failures.

A restarted job skips configurations already done (their configuration
hash must match: a different geometry under the same id is an error), and
runs the rest. A configuration that raises is recorded with its error and
retried once (``max_attempts=2`` in all, counted across restarts; pass
``retry_failed=True`` to give exhausted ones a new set of attempts). An
exclusive lock (``<output>.label-lock``) keeps two jobs from writing one file.
"""
from __future__ import annotations

import json
import os
import time
import traceback
import zlib
from dataclasses import dataclass, field

import numpy as np

from . import cluster
from .cluster import jobqueue_cluster  # noqa: F401  (public here since the labelling job came first)
from .errors import InputError
from .files import FileLock, fsync_dir
from .potential import Potential
from .system import AtomicSystem

PROPERTIES = ("energy", "forces", "dipole", "charges", "stress")
LEDGER_FORMAT = "qmml-hybrid.labels"
LEDGER_VERSION = 1


# -- public API ----------------------------------------------------------------
@dataclass
class LabelSummary:
    """What a labelling run did.

    output : the label file
    n_total : configurations in the job
    done : ids labelled (before and in this run), in job order
    computed : ids computed and committed in this run, in completion order
    resumed : ids found already done when the run started
    failed : id -> last error, for ids whose attempts are used up
    attempts : id -> attempts used so far (failed ones and the successful one)
    repaired_bytes : bytes cut from a torn record/ledger tail at start-up
    wall_time : s
    """

    output: str
    n_total: int
    done: list = field(default_factory=list)
    computed: list = field(default_factory=list)
    resumed: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    attempts: dict = field(default_factory=dict)
    repaired_bytes: int = 0
    wall_time: float = 0.0


def label(configurations, potential, output, *, ids=None, properties=("energy", "forces"),
          scheduler=None, n_workers: int = 2, max_attempts: int = 2, retry_failed: bool = False,
          warm_start: bool = False, level_of_theory: str | None = None, overwrite: bool = False,
          progress: bool = True, window: int | None = None) -> LabelSummary:
    """Label ``configurations`` with ``potential`` into ``output`` (see module docstring).

    configurations : list of AtomicSystem or ase.Atoms, or a path to any file
        ``ase.io.read`` understands (all images are taken)
    potential : a Potential, or a zero-argument callable returning one
    ids : one unique id per configuration (int or str); default 0..K-1
    properties : subset of ``PROPERTIES``; energy and forces are always stored
    scheduler : None (local cluster), "synchronous", an address, a Client or a cluster
    n_workers : worker processes of the default local cluster (1 thread each)
    max_attempts : tries per configuration in all (2: one retry)
    level_of_theory : stored in every record; default ``potential.name``. A
        restart with another level on the same output is refused.
    window : tasks in flight on a Dask cluster (default 4 per worker, at least 8)

    Returns a :class:`LabelSummary`.
    """
    job = LabelJob(configurations, potential, output, ids=ids, properties=properties,
                   max_attempts=max_attempts, warm_start=warm_start, level_of_theory=level_of_theory)
    return job.run(scheduler=scheduler, n_workers=n_workers, retry_failed=retry_failed,
                   overwrite=overwrite, progress=progress, window=window)


class LabelJob:
    """A labelling job: configurations, a potential and an output file (see :func:`label`)."""

    def __init__(self, configurations, potential, output, *, ids=None, properties=("energy", "forces"),
                 max_attempts: int = 2, warm_start: bool = False, level_of_theory: str | None = None):
        self.systems = _as_systems(configurations)
        self.ids = _check_ids(ids, len(self.systems))
        self.hashes = [configuration_hash(s) for s in self.systems]
        self.properties = _check_properties(properties)
        if int(max_attempts) < 1:
            raise InputError(f"max_attempts must be >= 1, got {max_attempts}")
        self.max_attempts = int(max_attempts)
        self.warm_start = bool(warm_start)
        self.blob = _pickle_potential(potential)
        probe = _load_potential(self.blob)
        _static_property_check(probe, self.properties)
        self.level_of_theory = level_of_theory or probe.name
        self.output = os.fspath(output)
        self.store = _open_store(self.output)
        import hashlib
        self.token = hashlib.sha1(self.blob).hexdigest()

    # -- running ------------------------------------------------------------
    def run(self, scheduler=None, n_workers: int = 2, retry_failed: bool = False, overwrite: bool = False,
            progress: bool = True, window: int | None = None) -> LabelSummary:
        t0 = time.perf_counter()
        summary = LabelSummary(self.output, len(self.systems))
        header = {"event": "header", "format": LEDGER_FORMAT, "version": LEDGER_VERSION,
                  "level_of_theory": self.level_of_theory, "properties": list(self.properties)}
        with self.store.locked():
            try:
                return self._run_locked(summary, header, scheduler, n_workers, retry_failed, overwrite,
                                        progress, window, t0)
            finally:
                self.store.close()

    def _run_locked(self, summary, header, scheduler, n_workers, retry_failed, overwrite, progress, window, t0):
        if overwrite:
            self.store.remove()
        state = self.store.open(header)
        summary.repaired_bytes = state.repaired_bytes
        index = {cid: k for k, cid in enumerate(self.ids)}
        for cid, h in state.done.items():
            k = index.get(cid)
            if k is not None and h != self.hashes[k]:
                raise InputError(
                    f"{self.output}: configuration id {cid!r} (input index {k}) is not the geometry "
                    f"that was labelled under this id (hash {h[:12]} in the ledger, {self.hashes[k][:12]} "
                    "now): a different input set written to the same output?")
        summary.resumed = [cid for cid in self.ids if cid in state.done]
        attempts = {cid: len(state.failures.get(cid, [])) for cid in self.ids}
        allowance = {cid: attempts[cid] + self.max_attempts if retry_failed else self.max_attempts
                     for cid in self.ids}
        pending = [cid for cid in self.ids if cid not in state.done and attempts[cid] < allowance[cid]]
        final_failed = {cid: state.failures[cid][-1] for cid in self.ids
                        if cid not in state.done and attempts[cid] >= allowance[cid]}
        bar = _progress(progress, len(self.systems), len(summary.resumed))

        def post():
            if bar is not None:
                n_done = len(summary.resumed) + len(summary.computed)
                bar.set_postfix(done=n_done, failed=len(final_failed),
                                remaining=len(self.systems) - n_done - len(final_failed), refresh=False)

        post()
        runner = None
        try:
            runner = cluster.runner(scheduler, n_workers, window)
            blob = runner.share(self.blob)

            def submit(cid, attempt):
                runner.submit((cid, attempt), _label_task, blob, self.token, cid, attempt,
                              self.systems[index[cid]], self.properties, self.warm_start)

            for cid in pending:
                submit(cid, attempts[cid] + 1)
            for (cid, attempt), outcome in runner.results():
                out = outcome.value if outcome.ok else {          # the worker itself died on it
                    "id": cid, "attempt": attempt, "ok": False, "error": outcome.error, "worker": ""}
                attempts[cid] = out["attempt"]
                if out["ok"]:
                    self._commit(out, index[cid])
                    summary.computed.append(cid)
                else:
                    self.store.ledger.append({
                        "event": "failed", "id": cid, "hash": self.hashes[index[cid]],
                        "attempt": out["attempt"], "error": out["error"],
                        "traceback": out.get("traceback", ""), "worker": out.get("worker", "")})
                    if attempts[cid] < allowance[cid]:
                        submit(cid, attempts[cid] + 1)
                    else:
                        final_failed[cid] = out["error"]
                post()
                if bar is not None and out["ok"]:
                    bar.update(1)
        finally:
            if runner is not None:
                runner.close()
            _WORKER_POTENTIALS.pop(self.token, None)      # a synchronous run's warm-started copy
            if bar is not None:
                bar.close()
        done = set(summary.resumed) | set(summary.computed)
        summary.done = [cid for cid in self.ids if cid in done]
        summary.failed = final_failed
        summary.attempts = {cid: n for cid, n in attempts.items() if n}
        summary.wall_time = time.perf_counter() - t0
        return summary

    def _commit(self, out: dict, k: int) -> None:
        from .ml.training import Frame
        labels = out["labels"]
        info = {"config_id": out["id"], "config_hash": self.hashes[k], "level_of_theory": self.level_of_theory}
        if "charge_model" in labels:
            info["charge_model"] = labels["charge_model"]
        if "stress" in labels:
            info["stress"] = labels["stress"]
        frame = Frame(self.systems[k], labels["energy"], labels["forces"], dipole=labels.get("dipole"),
                      charges=labels.get("charges"), info=info)
        self.store.commit(frame, {"id": out["id"], "hash": self.hashes[k], "attempt": out["attempt"],
                                  "wall_time": out["wall_time"], "worker": out["worker"]})


def load_labels(output, require=("energy", "forces")) -> list:
    """The labelled frames in ``output``, sorted by configuration id.

    For extended XYZ only records the ledger counts as done are read (each
    by its byte range and CRC); every frame's ``info`` holds ``config_id``
    (with the id's type from the ledger), ``config_hash`` and ``level_of_theory``.
    """
    output = os.fspath(output)
    store = _open_store(output)
    frames = store.read_done(require)
    return sorted(frames, key=lambda f: _id_sort_key(f.info["config_id"]))


def label_status(output) -> dict:
    """{"level_of_theory", "properties", "done": [ids], "failed": {id: [errors per attempt]}} of a label file."""
    output = os.fspath(output)
    store = _open_store(output)
    entries = store.ledger.read(repair=False)
    header = entries[0] if entries else {}
    done = set(store.done_ids(entries))
    failures: dict = {}
    for e in entries:
        if e.get("event") == "failed" and e["id"] not in done:
            failures.setdefault(e["id"], []).append(e["error"])
    return {"level_of_theory": header.get("level_of_theory"), "properties": header.get("properties"),
            "done": sorted(done, key=_id_sort_key), "failed": failures}


def configuration_hash(system: AtomicSystem) -> str:
    """SHA-1 of numbers, positions and cell (rounded to 1e-8 Å), pbc, charge and multiplicity."""
    import hashlib
    h = hashlib.sha1()
    h.update(np.asarray(system.numbers, np.int64).tobytes())
    for arr in (system.positions, system.cell):
        h.update((np.round(np.asarray(arr, float), 8) + 0.0).tobytes())   # + 0.0 folds -0.0 into 0.0
    h.update(np.asarray(system.pbc, bool).tobytes())
    h.update(f"{int(system.charge)} {int(system.multiplicity)}".encode())
    return h.hexdigest()


# -- what runs on a worker -------------------------------------------------------
_WORKER_POTENTIALS: dict = {}


def _label_task(blob: bytes, token: str, cid, attempt: int, system: AtomicSystem, properties, warm_start):
    """Label one configuration; never raises (errors come back as a record)."""
    import socket
    t0 = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        if warm_start:
            pot = _WORKER_POTENTIALS.get(token)
            if pot is None:
                pot = _WORKER_POTENTIALS[token] = _load_potential(blob)
        else:
            pot = _load_potential(blob)
        res = pot.compute(system)
        labels = {"energy": float(res.energy), "forces": np.asarray(res.forces, float)}
        labels.update(extra_properties(pot, system, res, properties))
        return {"id": cid, "attempt": attempt, "ok": True, "labels": labels,
                "wall_time": time.perf_counter() - t0, "worker": worker}
    except Exception as exc:  # recorded in the ledger, retried by the job
        return {"id": cid, "attempt": attempt, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:], "wall_time": time.perf_counter() - t0,
                "worker": worker}


def extra_properties(potential: Potential, system: AtomicSystem, result, properties) -> dict:
    """Dipole (3,) e·Å, charges (N,) e and stress (6,) eV/Å³ (Voigt) for one computed result.

    Taken from ``result.info["dipole"]``/``["charges"]`` when the potential
    puts them there; otherwise, for a PySCF layer, from its converged SCF
    (dipole of the SCF density about the origin, Mulliken charges); for an
    ASE-calculator adapter (e.g. GFN2-xTB), from the calculator's results.
    The stress is -W/Ω from the result's virial (periodic systems only).
    """
    out = {}
    want = [p for p in ("dipole", "charges") if p in properties]
    for p in want:
        if p in result.info:
            out[p] = np.asarray(result.info[p], float)
            out.setdefault("charge_model", str(result.info.get("charge_model", potential.name)))
    missing = [p for p in want if p not in out]
    if missing:
        kind = _engine_kind(potential)
        if kind == "pyscf":
            from . import units
            mf = potential._mf
            if "dipole" in missing:
                out["dipole"] = np.asarray(mf.dip_moment(unit="AU", verbose=0), float) * units.BOHR
            if "charges" in missing:
                out["charges"] = np.asarray(mf.mulliken_pop(verbose=0)[1], float)
                out["charge_model"] = "mulliken"
        elif kind == "ase":
            res = potential.calc.results
            for p in missing:
                if p not in res:
                    raise InputError(f"{potential.name}: the calculator returned no {p!r} "
                                     f"(it returned {', '.join(sorted(res))})")
                out[p] = np.asarray(res[p], float)
            if "charges" in missing:
                out["charge_model"] = potential.name
        else:
            raise InputError(f"{potential.name} ({type(potential).__name__}) cannot provide "
                             f"{', '.join(missing)}: it is neither a PySCF layer nor an ASE calculator "
                             "and its results carry no such info")
    if "stress" in properties:
        if result.virial is None or not system.periodic:
            raise InputError(f"{potential.name}: no stress for a {'periodic' if system.periodic else 'non-periodic'} "
                             "system (stress needs a periodic cell and a potential that returns the virial)")
        from ase.stress import full_3x3_to_voigt_6_stress
        out["stress"] = full_3x3_to_voigt_6_stress(-result.virial / abs(np.linalg.det(system.cell)))
    if "dipole" in out and out["dipole"].shape != (3,):
        raise InputError(f"{potential.name}: dipole has shape {out['dipole'].shape}, expected (3,)")
    if "charges" in out and out["charges"].shape != (len(system),):
        raise InputError(f"{potential.name}: charges have shape {out['charges'].shape}, "
                         f"expected ({len(system)},)")
    return out


def _engine_kind(potential) -> str:
    import sys
    mod = sys.modules.get("hybrid.qm.pyscf_layer")
    if mod is not None and isinstance(potential, mod.PySCFPotential):
        return "pyscf"
    from .ml.adapters import ASECalculatorPotential
    if isinstance(potential, ASECalculatorPotential):
        return "ase"
    return "other"


def _static_property_check(potential: Potential, properties) -> None:
    """Refuse, before any work, properties the potential certainly cannot give."""
    want = [p for p in ("dipole", "charges") if p in properties]
    if not want:
        return
    kind = _engine_kind(potential)
    if kind == "pyscf" and potential.kind == "post":
        raise InputError(f"{potential.name}: {', '.join(want)} from {potential.post} need its relaxed "
                         "density, which this layer does not compute; label them at HF or DFT")
    if kind == "ase":
        have = set(getattr(potential.calc, "implemented_properties", ()))
        lacking = [p for p in want if p not in have]
        if lacking:
            raise InputError(f"{potential.name}: its calculator does not implement {', '.join(lacking)} "
                             f"(it implements {', '.join(sorted(have))})")
    from .ml.potential import MLPotential
    if isinstance(potential, MLPotential):
        raise InputError(f"{potential.name}: the built-in MLIP predicts no {', '.join(want)}")


# -- stores --------------------------------------------------------------------------
@dataclass
class _State:
    done: dict            # id -> configuration hash
    failures: dict        # id -> [error, ...] for ids not done
    repaired_bytes: int = 0


class _Ledger:
    """JSON lines, each appended with flush + fsync; a torn last line is cut on open."""

    def __init__(self, path: str):
        self.path = path
        self.fh = None

    def read(self, repair: bool) -> list:
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as fh:
            data = fh.read()
        entries, pos = [], 0
        lines = data.split(b"\n")
        for n, line in enumerate(lines):
            last = n == len(lines) - 1
            if not line:
                pos += 1
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                if last:      # torn by a kill while it was written
                    if repair:
                        self.repaired = len(data) - pos
                        with open(self.path, "r+b") as fh:
                            fh.truncate(pos)
                            fh.flush()
                            os.fsync(fh.fileno())
                    break
                raise InputError(f"{self.path}: line {n + 1} is not JSON; the ledger is damaged") from None
            pos += len(line) + 1
            if last and repair:   # complete object without its newline
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
                    fh.flush()
                    os.fsync(fh.fileno())
        return entries

    def append(self, entry: dict) -> None:
        if self.fh is None:
            self.fh = open(self.path, "ab")
        self.fh.write((json.dumps(entry, default=_json_default) + "\n").encode())
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class _Store:
    def __init__(self, path: str):
        self.path = path
        self.ledger = _Ledger(path + ".ledger.jsonl")
        self.lock_path = path + ".label-lock"

    def locked(self):
        return FileLock(self.lock_path, self.path)

    def _open_ledger(self, header: dict) -> list:
        self.ledger.repaired = 0
        entries = self.ledger.read(repair=True)
        if not entries:
            if self._has_data():
                raise InputError(f"{self.path} exists but {self.ledger.path} does not: not a label file this "
                                 "job can resume; move it away or pass overwrite=True")
            self.ledger.append(header)
            fsync_dir(self.path)
            return [header]
        first = entries[0]
        if first.get("event") != "header" or first.get("format") != LEDGER_FORMAT:
            raise InputError(f"{self.ledger.path}: first line is not a {LEDGER_FORMAT} header")
        if first.get("version", 0) > LEDGER_VERSION:
            raise InputError(f"{self.ledger.path}: ledger version {first['version']} is newer than this "
                             f"qmml-hybrid reads ({LEDGER_VERSION})")
        if first.get("level_of_theory") != header["level_of_theory"]:
            raise InputError(f"{self.path} holds labels at {first.get('level_of_theory')!r}, not "
                             f"{header['level_of_theory']!r}: one file, one level of theory")
        lacking = set(header["properties"]) - set(first.get("properties", []))
        if lacking:
            raise InputError(f"{self.path} was labelled without {', '.join(sorted(lacking))}; "
                             "use a new output for the extra properties")
        return entries

    @staticmethod
    def _failures(entries, done) -> dict:
        out: dict = {}
        for e in entries:
            if e.get("event") == "failed" and e["id"] not in done:
                out.setdefault(e["id"], []).append(e["error"])
        return out

    def remove(self):
        for p in (self.path, self.ledger.path):
            if os.path.exists(p):
                os.remove(p)

    def close(self):
        self.ledger.close()


class _ExtxyzStore(_Store):
    def __init__(self, path):
        super().__init__(path)
        self.fh = None
        self.size = 0

    def _has_data(self):
        return os.path.exists(self.path) and os.path.getsize(self.path) > 0

    def _done_entries(self, entries) -> dict:
        done = {}
        for e in entries:
            if e.get("event") == "done":
                if e["id"] in done:
                    raise InputError(f"{self.ledger.path}: configuration id {e['id']!r} is marked done twice")
                done[e["id"]] = e
        return done

    def done_ids(self, entries):
        return list(self._done_entries(entries))

    def _check_records(self, done: dict) -> tuple[int, int]:
        """(end of the last done record, file size); checks every done record's range and CRC."""
        size = os.path.getsize(self.path) if os.path.exists(self.path) else 0
        end = 0
        with open(self.path, "rb") if size else _null() as fh:
            for cid, e in done.items():
                stop = e["offset"] + e["length"]
                if stop > size:
                    raise InputError(f"{self.path}: the ledger puts configuration id {cid!r} at bytes "
                                     f"{e['offset']}-{stop}, but the file has {size} bytes (was it cut or replaced?)")
                fh.seek(e["offset"])
                if zlib.crc32(fh.read(e["length"])) != e["crc32"]:
                    raise InputError(f"{self.path}: the record of configuration id {cid!r} at byte {e['offset']} "
                                     "does not match its checksum in the ledger (was the file edited?)")
                end = max(end, stop)
        return end, size

    def open(self, header) -> _State:
        entries = self._open_ledger(header)
        done = self._done_entries(entries)
        end, size = self._check_records(done)
        repaired = getattr(self.ledger, "repaired", 0)
        if size > end:       # a record written, then killed before its ledger line: not done, cut it
            with open(self.path, "r+b") as fh:
                fh.truncate(end)
                fh.flush()
                os.fsync(fh.fileno())
            repaired += size - end
        self.fh = open(self.path, "ab")
        fsync_dir(self.path)
        self.size = end
        return _State({cid: e["hash"] for cid, e in done.items()}, self._failures(entries, done), repaired)

    def commit(self, frame, entry: dict) -> None:
        from .ml.datasets import extxyz_record
        data = extxyz_record(frame).encode()
        offset = self.size
        self.fh.write(data)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.size += len(data)
        self.ledger.append(dict({"event": "done"}, **entry, offset=offset, length=len(data),
                                crc32=zlib.crc32(data)))

    def read_done(self, require):
        from .ml.datasets import parse_extxyz
        entries = self.ledger.read(repair=False)
        done = self._done_entries(entries)
        if not done:
            return []
        self._check_records(done)
        frames = []
        with open(self.path, "rb") as fh:
            for cid, e in done.items():
                fh.seek(e["offset"])
                (fr,) = parse_extxyz(fh.read(e["length"]).decode(), f"{self.path} record of id {cid!r}", require)
                fr.info["config_id"] = cid
                fr.info["config_hash"] = e["hash"]
                frames.append(fr)
        return frames

    def close(self):
        if self.fh is not None:
            self.fh.close()
            self.fh = None
        super().close()


class _DbStore(_Store):
    def __init__(self, path):
        super().__init__(path)
        self.db = None

    def _has_data(self):
        if not os.path.exists(self.path):
            return False
        from ase.db import connect
        return connect(self.path, use_lock_file=False).count() > 0

    def _rows(self):
        from ase.db import connect
        return connect(self.path, use_lock_file=False).select()

    def done_ids(self, entries=None):
        return [row.key_value_pairs["config_id"] for row in self._rows()] if os.path.exists(self.path) else []

    def open(self, header) -> _State:
        from ase.db import connect
        entries = self._open_ledger(header)
        done = {}
        if os.path.exists(self.path):
            for row in self._rows():
                kvp = row.key_value_pairs
                if "config_id" not in kvp or "config_hash" not in kvp:
                    raise InputError(f"{self.path}: row {row.id} has no config_id/config_hash; not a label database")
                done[kvp["config_id"]] = kvp["config_hash"]
        # our flock guards the file; ASE's own lock file would outlive a kill -9 and block the restart
        self.db = connect(self.path, append=True, use_lock_file=False)
        return _State(done, self._failures(entries, done), getattr(self.ledger, "repaired", 0))

    def commit(self, frame, entry: dict) -> None:
        from .ml.datasets import db_key_value_pairs, frame_to_atoms
        atoms = frame_to_atoms(frame)
        self.db.write(atoms, **db_key_value_pairs(atoms))   # one SQLite transaction
        self.ledger.append(dict({"event": "done"}, **entry))

    def read_done(self, require):
        from .ml.datasets import atoms_from_db_row, atoms_to_frame
        if not os.path.exists(self.path):
            return []
        return [atoms_to_frame(atoms_from_db_row(row), f"{self.path} row {row.id}", require)
                for row in self._rows()]

    def close(self):
        self.db = None
        super().close()


def _open_store(output: str) -> _Store:
    from .ml.datasets import file_kind
    kind = file_kind(output)
    if kind == "db":
        if not output.lower().endswith(".db"):
            raise InputError(f"{output}: labels go to an SQLite ASE database (.db), whose rows are "
                             "written atomically; a .json database is rewritten whole on every write")
        return _DbStore(output)
    return _ExtxyzStore(output)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# -- helpers ---------------------------------------------------------------------------
def _as_systems(configurations) -> list:
    if isinstance(configurations, (str, os.PathLike)):
        path = os.fspath(configurations)
        if not os.path.isfile(path):
            raise InputError(f"{path}: no such configuration file")
        from ase.io import read
        try:
            configurations = read(path, index=":")
        except Exception as exc:
            raise InputError(f"{path}: ASE cannot read it ({type(exc).__name__}: {exc})") from None
    out = []
    for k, c in enumerate(configurations):
        if isinstance(c, AtomicSystem):
            s = c
        elif hasattr(c, "get_positions") and hasattr(c, "numbers"):
            s = AtomicSystem.from_ase(c)
        else:
            raise InputError(f"configuration {k}: expected an AtomicSystem or ase.Atoms, got {type(c).__name__}")
        if s.n_ext:
            raise InputError(f"configuration {k}: has external point charges, which label files do not "
                             "store; label the embedded region with its charges folded into the potential")
        out.append(s)
    if not out:
        raise InputError("label: no configurations")
    return out


def _check_ids(ids, n: int) -> list:
    if ids is None:
        return list(range(n))
    ids = list(ids)
    if len(ids) != n:
        raise InputError(f"ids: {len(ids)} ids for {n} configurations")
    seen = set()
    for k, cid in enumerate(ids):
        if isinstance(cid, (np.integer,)):
            cid = ids[k] = int(cid)
        if isinstance(cid, bool) or not isinstance(cid, (int, str)):
            raise InputError(f"ids[{k}] = {cid!r}: ids must be int or str")
        if isinstance(cid, str) and (not cid or any(ch in cid for ch in "\n\r\"'=")):
            raise InputError(f"ids[{k}] = {cid!r}: string ids must be non-empty, without quotes, '=' or newlines")
        if cid in seen:
            raise InputError(f"ids[{k}] = {cid!r} is used twice")
        seen.add(cid)
    return ids


def _check_properties(properties) -> tuple:
    props = tuple(dict.fromkeys(["energy", "forces", *properties]))
    for p in props:
        if p not in PROPERTIES:
            raise InputError(f"property {p!r} is not one of {PROPERTIES}")
    return props


def _pickle_potential(potential) -> bytes:
    if not isinstance(potential, Potential) and not callable(potential):
        raise InputError(f"potential: expected a Potential or a factory returning one, got {type(potential).__name__}")
    try:
        return cluster.pickler().dumps(potential)
    except Exception as exc:
        name = getattr(potential, "name", type(potential).__name__)
        raise InputError(f"{name}: cannot be pickled for the workers ({type(exc).__name__}: {exc}); pass a "
                         "factory instead, e.g. functools.partial(XTBPotential, 'GFN2-xTB')") from None


def _load_potential(blob: bytes) -> Potential:
    obj = cluster.pickler().loads(blob)
    if not isinstance(obj, Potential):
        obj = obj()
        if not isinstance(obj, Potential):
            raise InputError(f"the potential factory returned a {type(obj).__name__}, not a Potential")
    return obj


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc="label", unit="conf")


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _id_sort_key(cid):
    return (0, cid, "") if isinstance(cid, int) else (1, 0, str(cid))
