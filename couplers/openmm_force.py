"""OpenMM bridge: any :class:`~hybrid.potential.Potential` as an OpenMM force.

The potential acts on the atoms ``atoms`` (indices into the OpenMM System);
every other particle is untouched. OpenMM calls the force through
``openmm.PythonForce`` with the positions of those atoms only, and

    E_OpenMM = E / KJ_PER_MOL                        (eV -> kJ/mol)
    F_OpenMM = F · NM / KJ_PER_MOL                   (eV/Å -> kJ/mol/nm)
    R        = R_OpenMM · NM,   cell = box · NM      (nm -> Å)

are the only unit conversions (factors from :mod:`hybrid.units`). When the
OpenMM System is periodic, the box vectors become the AtomicSystem ``cell``
(rows a, b, c, Å) with ``pbc`` all True; OpenMM may hand over positions
wrapped atom by atom, so a potential on a periodic system must use the
minimum image (the built-in MLIP does; cluster models are wrapped by
:class:`couplers.mixed_system.ClusterRegion`).

Electrostatic embedding: with ``ext_atoms`` and ``ext_charges`` the force
also sees those particles, as external point charges q_J (e) at R_J of the
AtomicSystem; the potential's ``Result.ext_forces`` (M, 3) are applied to
those particles, so the MM atoms feel the QM density.

Every OpenMM force evaluation re-evaluates the potential (``reuse=False``,
the default), so a stateful potential — an adaptive blend whose partition
moves, a QM layer with warm-started SCF — is never answered from a stale
cache; ``before_compute`` is called first on every evaluation (the hook an
adaptive partition uses to update itself). The last :class:`Result` is kept
(``.result``: contributions, info, timings) and the force has its own force
group, so energies split by layer (:func:`group_energies`).
"""
from __future__ import annotations

import time

import numpy as np

from hybrid import units
from hybrid.errors import InputError
from hybrid.potential import Potential, Result
from hybrid.sampling.coupling import check_lambda
from hybrid.system import AtomicSystem


class _Evaluator:
    """The callable OpenMM runs: State (nm) -> (kJ/mol, kJ/mol/nm).

    A module-level class (not a closure) so that OpenMM can pickle it when
    the potential itself can be pickled (System copies, XML serialisation).
    Particle order is ``atoms`` then ``ext_atoms``.
    """

    def __init__(self, potential, numbers, n_ext, ext_charges, charge, multiplicity, reuse, before_compute,
                 lambda_parameter=None):
        self.potential = potential
        self.lambda_parameter = lambda_parameter
        self.numbers = numbers
        self.n_atoms = len(numbers)
        self.n_ext = n_ext
        self.ext_charges = ext_charges
        self.charge, self.multiplicity = charge, multiplicity
        self.periodic = False
        self.reuse = reuse
        self.before_compute = before_compute
        self.result: Result | None = None
        self.system: AtomicSystem | None = None
        self.last_error: BaseException | None = None
        self.n_evaluations = 0
        self.n_reused = 0
        self.wall_time = 0.0
        self._key = None

    def invalidate(self):
        self._key = None

    def system_at(self, positions, cell=None) -> AtomicSystem:
        """The AtomicSystem handed to the potential for particle ``positions`` (Å; atoms, then any
        external charges) and ``cell`` (Å, None: not periodic)."""
        n = self.n_atoms
        pbc = cell is not None
        return AtomicSystem(self.numbers, positions[:n], cell if pbc else np.zeros((3, 3)), pbc,
                            charge=self.charge, multiplicity=self.multiplicity,
                            ext_charges=self.ext_charges if self.n_ext else None,
                            ext_positions=positions[n:] if self.n_ext else None)

    def __call__(self, state):
        t0 = time.perf_counter()
        from openmm.unit import nanometer
        pos = np.asarray(state.getPositions(asNumpy=True).value_in_unit(nanometer), float) * units.NM
        if self.periodic:
            cell = np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(nanometer), float) * units.NM
            pbc = True
        else:
            cell, pbc = np.zeros((3, 3)), False
        try:
            if self.lambda_parameter is not None:       # one System, every window: λ is a Context parameter
                self.potential.lam = check_lambda(state.getParameters()[self.lambda_parameter])
            system = self.system_at(pos, cell if pbc else None)
            if self.before_compute is not None:
                self.before_compute(system)
            key = None
            if self.reuse:
                token = self.potential.state_key() if hasattr(self.potential, "state_key") else None
                key = (pos.tobytes(), cell.tobytes(), token, getattr(self.potential, "lam", None))
                if key == self._key and self.result is not None:
                    self.n_reused += 1
                    return self._openmm_units(self.result)
            res = self.potential.compute(system)
            if self.n_ext and res.ext_forces is None:
                raise InputError(f"{self.potential.name}: {self.n_ext} external charges were embedded but the "
                                 "potential returned no ext_forces; their forces would be lost")
        except BaseException as exc:  # keep the original exception; OpenMM re-raises it as OpenMMException
            self.last_error = exc
            raise
        self.result, self.system, self._key = res, system, key
        self.n_evaluations += 1
        out = self._openmm_units(res)
        self.wall_time += time.perf_counter() - t0
        return out

    def _openmm_units(self, res: Result):
        f = np.empty((self.n_atoms + self.n_ext, 3))
        f[:self.n_atoms] = res.forces
        if self.n_ext:
            f[self.n_atoms:] = res.ext_forces
        return float(res.energy) / units.KJ_PER_MOL, f * (units.NM / units.KJ_PER_MOL)


class PotentialForce:
    """A Potential as an ``openmm.PythonForce`` acting on some atoms.

    potential : the :class:`Potential` (energy eV, forces eV/Å).
    atoms : (N,) int, indices of the System's particles it acts on, in the
        order the potential sees them (AtomicSystem atom k = particle atoms[k]).
    numbers : (N,) int, their atomic numbers (see :meth:`from_topology`).
    ext_atoms : (M,) int, particles embedded as external point charges
        (electrostatic embedding); disjoint from ``atoms``.
    ext_charges : (M,) float, their charges in e.
    charge, multiplicity : electronic state of the atoms' AtomicSystem.
    force_group : OpenMM force group 0-31 (settable until a Context exists).
    name : the OpenMM force name (default: the potential's name).
    periodic : None (default) decides in :meth:`add_to` from the System
        (``usesPeriodicBoundaryConditions()`` of its forces: a System without
        other forces counts as non-periodic even with a default box, so pass
        True there); True passes the box as a periodic cell.
    reuse : False (default) evaluates on every OpenMM call. True returns the
        last result when positions and box are bit-identical and
        ``potential.state_key()`` (if the potential has it) is unchanged —
        e.g. the energy query right after a step; never use it with a
        stateful potential that lacks ``state_key``.
    before_compute : callable(AtomicSystem) called before every evaluation.
    lambda_parameter : with a :class:`~hybrid.sampling.coupling.LambdaCoupled` potential, the name of an
        OpenMM global parameter (default value: the potential's λ) that sets λ at every evaluation, so one
        System serves every window: ``context.setParameter(name, λ)``.

    After each evaluation ``result`` holds the potential's Result, ``system``
    the AtomicSystem it saw, and ``n_evaluations``/``wall_time`` the cost.
    """

    def __init__(self, potential: Potential, atoms, numbers, *, ext_atoms=(), ext_charges=None,
                 charge: int = 0, multiplicity: int = 1, force_group: int = 0, name: str | None = None,
                 periodic: bool | None = None, reuse: bool = False, before_compute=None,
                 lambda_parameter: str | None = None):
        import openmm
        if not hasattr(openmm, "PythonForce"):
            raise ImportError(f"PotentialForce needs openmm.PythonForce (OpenMM >= 8.6 tested); this is OpenMM "
                              f"{openmm.__version__}")
        if not isinstance(potential, Potential):
            raise InputError(f"PotentialForce: {potential!r} is not a Potential")
        self.potential = potential
        self.atoms = _indices("atoms", atoms)
        self.ext_atoms = _indices("ext_atoms", ext_atoms)
        numbers = np.asarray(numbers, int).reshape(-1)
        if len(numbers) != len(self.atoms):
            raise InputError(f"PotentialForce({potential.name}): {len(self.atoms)} atoms but "
                             f"{len(numbers)} atomic numbers")
        if len(self.atoms) == 0:
            raise InputError(f"PotentialForce({potential.name}): no atoms to act on")
        both = np.intersect1d(self.atoms, self.ext_atoms)
        if both.size:
            raise InputError(f"PotentialForce({potential.name}): particle {int(both[0])} is both an atom of the "
                             "potential and an embedded external charge")
        m = len(self.ext_atoms)
        if m:
            if ext_charges is None:
                raise InputError(f"PotentialForce({potential.name}): ext_atoms given without ext_charges")
            ext_charges = np.asarray(ext_charges, float).reshape(-1)
            if len(ext_charges) != m:
                raise InputError(f"PotentialForce({potential.name}): {m} ext_atoms but {len(ext_charges)} "
                                 "ext_charges")
        elif ext_charges is not None and len(np.atleast_1d(ext_charges)):
            raise InputError(f"PotentialForce({potential.name}): ext_charges given without ext_atoms")
        params = {}
        if lambda_parameter is not None:
            from hybrid.sampling.coupling import LambdaCoupled
            if not isinstance(potential, LambdaCoupled):
                raise InputError(f"PotentialForce({potential.name}): lambda_parameter needs a LambdaCoupled "
                                 f"potential, got a {type(potential).__name__}")
            if not (isinstance(lambda_parameter, str) and lambda_parameter.isidentifier()):
                raise InputError(f"PotentialForce({potential.name}): lambda_parameter must be a name, got "
                                 f"{lambda_parameter!r}")
            params = {lambda_parameter: potential.lam}
        self.numbers = numbers
        self._eval = _Evaluator(potential, numbers, m, ext_charges if m else None, int(charge),
                                int(multiplicity), bool(reuse), before_compute, lambda_parameter)
        self.force = openmm.PythonForce(self._eval, params)
        self.force.setParticles([int(i) for i in np.concatenate([self.atoms, self.ext_atoms])])
        self.force.setName(name or potential.name)
        self.force_group = force_group
        self.periodic = periodic

    @classmethod
    def from_topology(cls, potential: Potential, topology, atoms=None, **kwargs) -> "PotentialForce":
        """Atomic numbers from an ``openmm.app.Topology`` (``atoms`` default: all)."""
        topo_atoms = list(topology.atoms())
        atoms = np.arange(len(topo_atoms)) if atoms is None else _indices("atoms", atoms)
        return cls(potential, atoms, atomic_numbers(topology, atoms), **kwargs)

    # -- settings ---------------------------------------------------------------
    @property
    def force_group(self) -> int:
        return self.force.getForceGroup()

    @force_group.setter
    def force_group(self, group: int) -> None:
        if not 0 <= int(group) <= 31:
            raise InputError(f"PotentialForce({self.potential.name}): force group {group} outside 0..31")
        self.force.setForceGroup(int(group))

    @property
    def periodic(self) -> bool | None:
        return self._periodic

    @periodic.setter
    def periodic(self, flag: bool | None) -> None:
        self._periodic = flag
        if flag is not None:
            self.force.setUsesPeriodicBoundaryConditions(bool(flag))
            self._eval.periodic = bool(flag)

    def add_to(self, system) -> int:
        """Check the indices against ``system``, add the force, return its index.

        With ``periodic=None`` the force is periodic iff the System is
        (judged before this force is added).
        """
        n = system.getNumParticles()
        for label, idx in (("atom", self.atoms), ("ext_atom", self.ext_atoms)):
            if idx.size and idx.max() >= n:
                raise InputError(f"PotentialForce({self.potential.name}): {label} index {int(idx.max())} outside "
                                 f"a System of {n} particles")
        for i in self.atoms:
            if system.isVirtualSite(int(i)):
                raise InputError(f"PotentialForce({self.potential.name}): particle {int(i)} is a virtual site, "
                                 "not an atom")
        if self._periodic is None:
            self.periodic = bool(system.usesPeriodicBoundaryConditions())
        return system.addForce(self.force)

    def invalidate(self) -> None:
        """Forget the cached result (only relevant with ``reuse=True``)."""
        self._eval.invalidate()

    # -- reporting ----------------------------------------------------------------
    def system_at(self, positions, cell=None) -> AtomicSystem:
        """The AtomicSystem this force hands its potential for particle ``positions`` (Å, (n + n_ext, 3))
        and ``cell`` (Å; used only when the force is periodic); e.g. to check a model before step 0."""
        return self._eval.system_at(np.asarray(positions, float), cell if self._eval.periodic else None)

    @property
    def result(self) -> Result | None:
        """The last Result (eV, eV/Å) the potential returned."""
        return self._eval.result

    @property
    def system(self) -> AtomicSystem | None:
        """The AtomicSystem of the last evaluation (Å)."""
        return self._eval.system

    @property
    def n_evaluations(self) -> int:
        return self._eval.n_evaluations

    @property
    def n_reused(self) -> int:
        return self._eval.n_reused

    @property
    def wall_time(self) -> float:
        """Total seconds spent in evaluations (conversion included)."""
        return self._eval.wall_time

    @property
    def last_error(self) -> BaseException | None:
        """The Python exception behind the last OpenMMException raised by this force."""
        return self._eval.last_error

    def __repr__(self) -> str:
        return (f"<PotentialForce {self.force.getName()}: {len(self.atoms)} atoms, {len(self.ext_atoms)} "
                f"embedded charges, group {self.force_group}>")


def atomic_numbers(topology, atoms) -> np.ndarray:
    """Atomic numbers (N,) of the Topology atoms ``atoms``; clear error for particles without element."""
    topo_atoms = list(topology.atoms())
    out = np.empty(len(atoms), int)
    for k, i in enumerate(atoms):
        i = int(i)
        if not 0 <= i < len(topo_atoms):
            raise InputError(f"atom index {i} outside a Topology of {len(topo_atoms)} atoms")
        a = topo_atoms[i]
        if a.element is None:
            raise InputError(f"atom {i} ({a.name} in residue {a.residue.name} {a.residue.id}) has no element "
                             "(a virtual site or extra particle?) and cannot be given to a potential")
        out[k] = a.element.atomic_number
    return out


def group_energies(context, groups: dict) -> dict:
    """Potential energy (eV) of each named force group: {name: group or set of groups} -> {name: eV}."""
    from openmm.unit import kilojoule_per_mole
    out = {}
    for name, g in groups.items():
        gs = {int(g)} if np.isscalar(g) else {int(x) for x in g}
        if not gs:
            out[name] = 0.0
            continue
        e = context.getState(getEnergy=True, groups=gs).getPotentialEnergy()
        out[name] = e.value_in_unit(kilojoule_per_mole) * units.KJ_PER_MOL
    return out


def _indices(label: str, idx) -> np.ndarray:
    arr = np.asarray(idx if idx is not None else [], dtype=float).reshape(-1)
    if arr.size and (np.any(arr != np.round(arr)) or np.any(arr < 0)):
        bad = arr[(arr != np.round(arr)) | (arr < 0)][0]
        raise InputError(f"{label}: {bad} is not a particle index")
    out = arr.astype(int)
    if len(np.unique(out)) != len(out):
        vals, counts = np.unique(out, return_counts=True)
        raise InputError(f"{label}: particle {int(vals[counts > 1][0])} listed twice")
    return out
