"""PySCF as a potential: HF, any DFT functional, MP2 and CCSD, built for MD.

E(R) is the method's total energy (Hartree, converted here to eV); forces
are -∇E from PySCF's analytic gradients (Hartree/Bohr → eV/Å). With external
point charges q_J at R_J (electrostatic embedding, PySCF ``qmmm``) the energy
also holds the charges' interaction with the electrons and nuclei,

    E = E_QM[ρ; h + Σ_J -q_J/|r - R_J|] + Σ_A Σ_J Z_A q_J / |R_A - R_J|,

(with ``system.ext_radii`` the charges are Gaussians of width σ_J and 1/r
becomes erf(r/σ_J)/r, PySCF's Gaussian charge model),

and the forces on the charges, -∂E/∂R_J, are returned as ``ext_forces``.

For MD each call starts the SCF from a density extrapolated from the
previous steps (:mod:`hybrid.qm.density_guess`), and the SCF, gradient and
grid objects persist across calls (reset, not rebuilt, when atoms move).
DFT gradients include the grid response by default, so that forces are the
true gradient of the reported energy on the moving grid.

SCF rescue ladder, tried in order until the SCF converges:
  1. DIIS from the extrapolated (or previous, or MINAO) guess;
  2. damping 0.5 with a 0.5 Eh level shift, from the last density of rung 1;
  3. second-order SCF (``mf.newton()``, no damping or level shift) from the
     last density of rung 2.
Each rung runs at most ``max_cycle`` cycles to ``conv_tol``. If all three
fail, :class:`~hybrid.errors.SCFConvergenceError` names the method, basis,
the tolerances and rungs as they ran (read back from the PySCF objects, not
from the potential's current attributes) and the geometry. An unconverged
energy is never returned.

Settings changed on an existing potential take effect at the next call
(see :class:`PySCFPotential`): those that define the calculation rebuild the
PySCF objects and drop the warm-start history; the others are applied to the
live objects. Attributes derived from ``method`` and unknown public names
are refused with :class:`~hybrid.errors.InputError`.

Guards before any SCF: NaN or inf in positions or external charges (e.g.
written into the arrays after the system was built), and an external charge
closer than ``min_charge_distance`` (Å) to a QM nucleus.

Units at this edge: positions go to PySCF in Bohr, converted with
:data:`hybrid.units.BOHR`; energies (Hartree) and gradients (Hartree/Bohr)
come back through :data:`hybrid.units.HARTREE` and the same ``BOHR``. PySCF's
own constants (``pyscf.data.nist``, older CODATA sets) never enter, so
``Result.energy / units.HARTREE`` is PySCF's ``e_tot`` to round-off.
"""
from __future__ import annotations

import time

import numpy as np

from .. import units
from ..errors import InputError, SCFConvergenceError
from ..potential import Potential, Result
from ..system import AtomicSystem
from .density_guess import DensityExtrapolator

_POST_HF = ("MP2", "CCSD")
_MISSING = object()

# Settings that define the calculation: a change rebuilds the PySCF objects at the next
# call and drops the warm-start history. The others are applied to the live objects.
_REBUILD = ("method", "basis", "density_fit", "auxbasis", "grids_level")
_LIVE = ("conv_tol", "max_cycle", "conv_check", "max_memory", "verbose", "grid_response",
         "charge", "multiplicity", "min_charge_distance")
# Public attributes that are state, not settings.
_STATE = ("log", "extrapolator", "unrestricted")


class _Setting:
    """A validated setting of :class:`PySCFPotential`; see its docstring for what a change does."""

    def __init__(self, check=None):
        self.check = check

    def __set_name__(self, owner, name):
        self.attr = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return obj.__dict__["_settings"][self.attr]

    def __set__(self, obj, value):
        if self.check is not None:
            try:
                value = self.check(obj, value)
            except InputError as exc:       # named by the potential once it has a method to be named by
                msg = str(exc)
                named = "method" in obj.__dict__.get("_settings", {}) and not msg.startswith(f"{obj.name}:")
                raise InputError(f"{obj.name}: {msg}" if named else msg) from None
        settings = obj.__dict__.setdefault("_settings", {})
        old = settings.get(self.attr, _MISSING)
        settings[self.attr] = value
        if self.attr in _REBUILD and not _same(old, value):
            obj.__dict__["_key"] = None       # rebuild (and cold start) at the next call


def _same(a, b) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:       # e.g. arrays in a basis dict
        return a is b


def _check_method(obj, value):
    parsed = _parse_method(value)
    if parsed[0] == "post" and obj.__dict__.get("_settings", {}).get("density_fit"):
        raise InputError(f"{obj.name}: method {value!r}: density_fit is supported for HF and DFT, not for "
                         f"{value}; set density_fit = False first")
    obj.__dict__["_parsed"] = parsed
    return value


def _check_density_fit(obj, value):
    value = _check_bool("density_fit", value)
    if value and obj.__dict__.get("_parsed", ("",))[0] == "post":
        raise InputError(f"{obj.name}: density_fit is supported for HF and DFT, not for {obj.method}")
    return value


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _positive(name, integer=False, allow_zero=False):
    def check(obj, value):
        ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
        if isinstance(value, bool) or not ok_type or not np.isfinite(value) or value < 0 or \
                (value == 0 and not allow_zero):
            kind = "an integer" if integer else "a number"
            raise InputError(f"{name} must be {kind} {'>=' if allow_zero else '>'} 0, got {value!r}")
        return int(value) if integer else float(value)
    return check


def _optional_int(name, minimum):
    def check(obj, value):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
                (minimum is not None and value < minimum):
            bound = "" if minimum is None else f" >= {minimum}"
            raise InputError(f"{name} must be None (take the system's) or an integer{bound}, got {value!r}")
        return int(value)
    return check


def _check_grids_level(obj, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 9:
        raise InputError(f"grids_level must be an integer 0-9 (PySCF's grid levels), got {value!r}")
    return int(value)


class PySCFPotential(Potential):
    """A PySCF method as a potential.

    method : "HF", "MP2", "CCSD" or any DFT functional PySCF knows ("B3LYP",
        "PBE", "wB97X-V", ...). Prefix "U" (e.g. "UHF", "UB3LYP") forces an
        unrestricted reference; open-shell systems are unrestricted anyway.
    basis : any PySCF basis name or dict.
    charge, multiplicity : override the system's (default: take the system's).
    density_fit : RI for J/K (HF and DFT only); ``auxbasis`` picks the basis.
    auxbasis : the auxiliary basis of density fitting (default: PySCF's choice for the basis).
    grids_level : DFT integration grid level (PySCF 0-9).
    grid_response : include the grid-weight derivatives in DFT gradients.
    conv_tol : SCF energy convergence (Hartree).
    max_cycle : SCF cycles per rung of the rescue ladder.
    extrapolation : order of the density extrapolation (0: previous density;
        default 3, cubic: on a water trimer at 0.5 fs it needs ~0.8 fewer SCF
        cycles per step than quadratic; the SCF always converges to conv_tol
        from whatever guess, so the order changes cost, never the result).
    conv_check : run PySCF's extra SCF cycle after convergence (default off:
        convergence is already judged by |ΔE| < conv_tol and the orbital
        gradient < sqrt(conv_tol); the check costs one more Fock build per call).
    max_memory : PySCF's memory limit (MB).
    verbose : PySCF's log level (0: silent).
    min_charge_distance : Å; an external charge (nonzero) closer than this to
        a QM nucleus is refused before any SCF (0 or None: no check).
        Default 0.5 Å: shorter than any non-bonded contact of a sane
        structure (the shortest, a strong H-bond H···O, is ~1.2 Å; an MM atom
        at a bond length from a QM atom is its bonded partner and needs a link
        atom, not a bare charge), and where a bare charge's Coulomb singularity
        already dominates: on HF water, +0.417 e on the O lone-pair axis is
        pulled with 80 eV/Å at 0.5 Å, 1.8e4 eV/Å at 0.05 Å, and at 0 Å the SCF
        fails (reported as a convergence failure). It equals
        :meth:`AtomicSystem.check_distances`' atom-atom default.

    Changing a setting on an existing potential (``pot.basis = "6-31g"``)
    takes effect at the next call, validated as in the constructor:

    * method, basis, density_fit, auxbasis, grids_level define the
      calculation: the PySCF objects are rebuilt and the warm-start history
      dropped (the next SCF starts cold; its energy equals a fresh
      potential's to within ``conv_tol``);
    * conv_tol, max_cycle, conv_check, max_memory, verbose, grid_response,
      min_charge_distance are applied to the live objects; charge and
      multiplicity rebuild when the electronic state they give changes;
    * extrapolation starts a new extrapolator of that order (history dropped);
    * ``kind``, ``xc``, ``post``, ``unrestricted_forced`` follow from
      ``method`` and cannot be set; an unknown public attribute (a typo such
      as ``pot.conv_tl``) is refused rather than silently ignored.

    ``name`` defaults to "method/basis" and follows changes of either.
    """

    stateful = True   # warm starts: blends give each region its own copy

    method = _Setting(_check_method)
    basis = _Setting()
    density_fit = _Setting(_check_density_fit)
    auxbasis = _Setting()
    grids_level = _Setting(_check_grids_level)
    grid_response = _Setting(lambda obj, v: _check_bool("grid_response", v))
    conv_tol = _Setting(_positive("conv_tol"))
    max_cycle = _Setting(_positive("max_cycle", integer=True))
    max_memory = _Setting(_positive("max_memory"))
    conv_check = _Setting(lambda obj, v: _check_bool("conv_check", v))
    verbose = _Setting(lambda obj, v: int(_positive("verbose", integer=True, allow_zero=True)(obj, v)))
    charge = _Setting(_optional_int("charge", None))
    multiplicity = _Setting(_optional_int("multiplicity", 1))
    min_charge_distance = _Setting(lambda obj, v: 0.0 if v is None else
                                   _positive("min_charge_distance", allow_zero=True)(obj, v))

    def __init__(self, method: str = "B3LYP", basis="def2-svp", *, charge: int | None = None,
                 multiplicity: int | None = None, density_fit: bool = False, auxbasis=None,
                 grids_level: int = 3, grid_response: bool = True, conv_tol: float = 1e-10,
                 max_cycle: int = 100, extrapolation: int = 3, max_memory: int = 4000,
                 conv_check: bool = False, min_charge_distance: float | None = 0.5,
                 name: str | None = None, verbose: int = 0):
        self._key = None
        self._mol = self._mf = self._grad = None
        self._built = None                 # the settings the live PySCF objects were built with
        self.method = method
        self.basis = basis
        self.charge, self.multiplicity = charge, multiplicity
        self.density_fit, self.auxbasis = density_fit, auxbasis
        self.grids_level, self.grid_response = grids_level, grid_response
        self.conv_tol, self.max_cycle, self.max_memory = conv_tol, max_cycle, max_memory
        self.conv_check = conv_check
        self.min_charge_distance = min_charge_distance
        self.verbose = verbose
        self.name = name
        self.extrapolation = extrapolation
        self.log: list[dict] = []          # one record per call

    # -- settings ----------------------------------------------------------------
    @property
    def name(self) -> str:
        """The given name, else "method/basis" of the current settings."""
        given = self.__dict__.get("_name")
        if given is not None:
            return given
        st = self.__dict__.get("_settings", {})
        method, basis = st.get("method", "PySCF"), st.get("basis", "?")
        return f"{method}/{basis if isinstance(basis, str) else 'custom'}"

    @name.setter
    def name(self, value) -> None:
        self.__dict__["_name"] = None if value is None else str(value)

    @property
    def settings(self) -> dict:
        """{setting: value} of every validated setting (a copy; change a setting by assigning it)."""
        return dict(self.__dict__.get("_settings", {}))

    @property
    def extrapolation(self) -> int:
        """Order of the density extrapolation; setting it starts a new (empty) history."""
        return self.extrapolator.order

    @extrapolation.setter
    def extrapolation(self, order) -> None:
        try:
            ex = DensityExtrapolator(order)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{self.name}: {exc}") from None
        self.__dict__["extrapolator"] = ex

    def _derived(k, doc):
        def get(self):
            return self._parsed[k]

        def refuse(self, value):
            raise InputError(f"{self.name}: {doc} follows from method ({self.method!r}); set method instead")
        return property(get, refuse, doc=f"{doc} (from ``method``; read-only)")

    kind = _derived(0, "kind")
    unrestricted_forced = _derived(1, "unrestricted_forced")
    xc = _derived(2, "xc")
    post = _derived(3, "post")
    del _derived

    def __setattr__(self, attr, value):
        if not attr.startswith("_") and attr not in _STATE and not hasattr(type(self), attr):
            import difflib
            known = sorted(set(_REBUILD + _LIVE + ("extrapolation", "name")))
            close = difflib.get_close_matches(attr, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; settings: {', '.join(known)}"
            raise InputError(f"{self.name}: {attr!r} is not a setting of PySCFPotential{hint}")
        object.__setattr__(self, attr, value)

    # -- setup ---------------------------------------------------------------
    def _electronic_state(self, system: AtomicSystem) -> AtomicSystem:
        s = system.subset(np.arange(len(system)),
                          charge=system.charge if self.charge is None else self.charge,
                          multiplicity=system.multiplicity if self.multiplicity is None else self.multiplicity)
        s.check_spin()
        return s

    def _build(self, system: AtomicSystem, state: AtomicSystem) -> None:
        from pyscf import dft, gto, scf
        if system.periodic:
            raise InputError(f"{self.name}: periodic systems need PySCF's PBC module, which this layer "
                             "does not drive; use a cluster (pbc all False)")
        try:
            mol = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(system.numbers, system.positions / units.BOHR)],
                        unit="Bohr", basis=self.basis, charge=int(state.charge),
                        spin=int(state.multiplicity) - 1, verbose=self.verbose, max_memory=self.max_memory)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise InputError(f"{self.name}: PySCF could not build the molecule "
                             f"({', '.join(sorted(set(system.symbols)))}) with basis {self.basis!r}: {exc}") from None
        unrestricted = self.unrestricted_forced or state.multiplicity > 1
        if self.kind == "dft":
            mf = (dft.UKS if unrestricted else dft.RKS)(mol, xc=self.xc)
            mf.grids.level = self.grids_level
            from .ao_cache import CachedNumInt
            mf._numint = CachedNumInt(mf.grids)
        else:
            mf = (scf.UHF if unrestricted else scf.RHF)(mol)
        if self.density_fit:
            mf = mf.density_fit(auxbasis=self.auxbasis)
        if system.n_ext:
            from pyscf import qmmm
            pos, q, radii = _mm_args(system)
            mf = qmmm.mm_charge(mf, pos, q, radii=radii, unit="Bohr")
        self._mol, self._mf, self.unrestricted = mol, mf, unrestricted
        self._grad = mf.nuc_grad_method() if self.kind != "post" else None
        self._built = {"method": self.method, "basis": self.basis, "density_fit": self.density_fit,
                       "auxbasis": self.auxbasis, "grids_level": self.grids_level if self.kind == "dft" else None}
        self.extrapolator.clear()

    def _apply_live_settings(self) -> None:
        """Settings that need no rebuild, applied to the live PySCF objects at every call."""
        mol, mf = self._mol, self._mf
        mol.verbose = mf.verbose = self.verbose
        mol.max_memory = mf.max_memory = self.max_memory
        mf.conv_tol, mf.max_cycle, mf.conv_check = self.conv_tol, self.max_cycle, self.conv_check
        if self._grad is not None:
            self._grad.verbose = self.verbose
            if self.kind == "dft":
                self._grad.grid_response = self.grid_response

    def _prepare(self, system: AtomicSystem):
        system.check_finite(self.name)      # also on paths that call _compute directly (blends, Subset)
        self._check_charge_distances(system)
        state = self._electronic_state(system)
        key = (tuple(system.numbers), int(state.charge), int(state.multiplicity), system.n_ext,
               system.ext_radii is None)
        if key != self._key:
            self._build(system, state)
            self._key = key
        else:
            self._mol.set_geom_(system.positions / units.BOHR, unit="Bohr")
            self._mf.reset(self._mol)
            if system.n_ext:
                from pyscf.qmmm import mm_mole
                pos, q, radii = _mm_args(system)
                self._mf.mm_mol = mm_mole.create_mm_mol(pos, q, radii=radii, unit="Bohr")
            if self._grad is not None:
                self._grad.reset(self._mol)
        self._apply_live_settings()
        return self._mol, self._mf

    def _check_charge_distances(self, system: AtomicSystem) -> None:
        """Refuse a nonzero external charge closer than ``min_charge_distance`` Å to a QM nucleus."""
        thr = self.min_charge_distance
        if not system.n_ext or not thr or not len(system):
            return
        sel = np.flatnonzero(system.ext_charges != 0)      # a zero charge has no field and no force
        if not sel.size:
            return
        from scipy.spatial import cKDTree
        tree = cKDTree(system.ext_positions[sel])
        d, j = tree.query(system.positions, k=1)
        i = int(np.argmin(d))
        if d[i] >= thr:
            return
        k = int(sel[j[i]])
        n_pairs = sum(len(x) for x in tree.query_ball_point(system.positions, thr))
        more = f" ({n_pairs - 1} more pair{'s' if n_pairs > 2 else ''} closer than that)" if n_pairs > 1 else ""
        raise InputError(
            f"{self.name}: external charge {k} ({system.ext_charges[k]:+.3f} e at "
            f"[{', '.join(f'{x:.3f}' for x in system.ext_positions[k])}] Å) is {d[i]:.3f} Å from atom {i} "
            f"({system.symbols[i]}), closer than min_charge_distance = {thr:g} Å{more}; a charge that close to "
            "a QM nucleus is a broken structure (overlapping atoms, or a bonded MM atom left in the charges: "
            "use a link atom) and its Coulomb singularity gives forces of 1e2-1e4 eV/Å; lower "
            "min_charge_distance to allow it")

    # -- SCF with a rescue ladder ---------------------------------------------
    def _run_scf(self, mol, mf, system):
        s = mf.get_ovlp()
        nocc = mol.nelec if self.unrestricted else mol.nelectron // 2
        dm0 = self.extrapolator.guess(s, nocc, restricted=not self.unrestricted)
        ladder = [("diis", {}), ("damped", {"damp": 0.5, "level_shift": 0.5}), ("newton", None)]
        cycles, tried = 0, []
        for step, opts in ladder:
            if step == "newton":
                solver = mf.newton()
            else:
                solver = mf
                solver.damp = opts.get("damp", 0.0)
                solver.level_shift = opts.get("level_shift", 0.0)
            solver.kernel(dm0=dm0)
            n = int(getattr(solver, "cycles", 0))
            cycles += n
            # what ran, read back from the solver (never from this potential's attributes)
            tried.append(f"{_rung_label(step, solver)} ({n}/{solver.max_cycle} cycles, "
                         f"conv_tol {solver.conv_tol:g} Eh)")
            if solver.converged:
                if solver is not mf:  # copy the converged state back to the persistent object
                    mf.mo_coeff, mf.mo_occ, mf.mo_energy = solver.mo_coeff, solver.mo_occ, solver.mo_energy
                    mf.e_tot, mf.converged = solver.e_tot, True
                mf.damp, mf.level_shift = 0.0, 0.0
                return step, cycles
            if solver.mo_coeff is not None:
                dm0 = solver.make_rdm1()
        mf.damp, mf.level_shift = 0.0, 0.0
        self.extrapolator.clear()
        b = self._built
        level = [f"{b['method']}/{b['basis'] if isinstance(b['basis'], str) else 'custom basis'}",
                 "unrestricted" if self.unrestricted else "restricted",
                 f"charge {mol.charge}, multiplicity {mol.spin + 1}"]
        if b["density_fit"]:
            level.append(f"density fitted ({b['auxbasis'] or 'default auxbasis'})")
        if b["grids_level"] is not None:
            level.append(f"grid level {b['grids_level']}")
        if system.n_ext:
            level.append(f"{system.n_ext} external charges")
        geom = "; ".join(f"{sym} {x:.6f} {y:.6f} {z:.6f}" for sym, (x, y, z) in zip(system.symbols, system.positions))
        raise SCFConvergenceError(
            f"{self.name}: SCF did not converge: {', '.join(level)}; tried {'; then '.join(tried)}; "
            f"geometry (Å): {geom}")

    # -- the potential ---------------------------------------------------------
    def _compute(self, system: AtomicSystem) -> Result:
        e_h, grad, ext_forces, record = self._solve(system, gradient=True)
        return Result(energy=e_h * units.HARTREE, forces=-np.asarray(grad) * units.HARTREE / units.BOHR,
                      ext_forces=ext_forces, contributions={self.name: e_h * units.HARTREE}, info=dict(record))

    def _energy(self, system: AtomicSystem) -> float:
        """The SCF (or post-HF) energy in eV without its gradient: what a Metropolis test or an
        exponential average needs."""
        return self._solve(system, gradient=False)[0] * units.HARTREE

    def _solve(self, system: AtomicSystem, gradient: bool):
        """(E in Eh, gradient in Eh/Bohr or None, forces on the external charges in eV/Å or None, log record):
        the SCF (warm-started, with the rescue ladder), the post-HF energy if any, and the gradient if asked."""
        t0 = time.perf_counter()
        mol, mf = self._prepare(system)
        ladder_step, cycles = self._run_scf(mol, mf, system)
        t_scf = time.perf_counter() - t0
        dm = mf.make_rdm1()
        if self.kind == "post":
            e_h, grad = self._post_hf(mf, gradient)
        else:
            e_h = float(mf.e_tot)
            grad = self._grad.kernel() if gradient else None
        self.extrapolator.push(dm, mf.get_ovlp())
        ext_forces = None
        if gradient and system.n_ext:
            dm_tot = dm[0] + dm[1] if self.unrestricted else dm
            g_mm = self._grad.grad_hcore_mm(dm_tot) + self._grad.grad_nuc_mm()
            ext_forces = -np.asarray(g_mm) * units.HARTREE / units.BOHR
        wall = time.perf_counter() - t0
        record = {"wall_time": wall, "scf_time": t_scf, "grad_time": wall - t_scf if gradient else 0.0,
                  "scf_cycles": cycles, "scf_ladder": ladder_step, "energy_hartree": e_h}
        self.log.append(record)
        return e_h, grad, ext_forces, record

    def _post_hf(self, mf, gradient: bool = True):
        from pyscf import cc, mp
        solver = mp.MP2(mf) if self.post == "MP2" else cc.CCSD(mf)
        solver.verbose = self.verbose
        solver.kernel()
        if self.post == "CCSD" and not solver.converged:
            raise SCFConvergenceError(f"{self.name}: CCSD amplitudes did not converge")
        if not gradient:
            return float(solver.e_tot), None
        grad = solver.nuc_grad_method().kernel()
        return float(solver.e_tot), grad

    def check(self, system: AtomicSystem) -> None:
        super().check(system)
        if system.n_ext and self.kind == "post":
            raise InputError(f"{self.name}: electrostatic embedding is available for HF and DFT "
                             "(PySCF qmmm gradients), not for post-HF methods")
        self._electronic_state(system)


def _mm_args(system: AtomicSystem):
    """(positions, charges, radii=...) of the external charges for PySCF ``qmmm`` with unit="Bohr".

    Positions and Gaussian widths are converted from Å with :data:`hybrid.units.BOHR` here, so
    PySCF's own Bohr constant is never applied to them.
    """
    radii = None if system.ext_radii is None else system.ext_radii / units.BOHR
    return system.ext_positions / units.BOHR, system.ext_charges, radii


def _rung_label(step: str, solver) -> str:
    if step == "newton":
        return "second-order SCF"
    if step == "damped":
        return f"damping {solver.damp:g} + level shift {solver.level_shift:g} Eh"
    return "DIIS"


def _parse_method(method: str):
    """(kind, unrestricted, xc, post) from a method name such as "UB3LYP" or "MP2"."""
    m = method.upper()
    forced = m.startswith("U")
    core = m[1:] if forced else m
    if core in ("HF", "RHF"):
        return "hf", forced, None, None
    if core in _POST_HF:
        return "post", forced, None, core
    if _known_xc(method):
        return "dft", False, method, None
    if forced and _known_xc(method[1:]):
        return "dft", True, method[1:], None
    raise InputError(f"PySCF does not know the method or functional {method!r}")


def _known_xc(xc: str) -> bool:
    from pyscf.dft import libxc
    try:
        libxc.parse_xc(xc)
        return True
    except (KeyError, ValueError, TypeError):
        return False
