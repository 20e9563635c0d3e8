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
  2. damping 0.5 with a 0.5 Eh level shift, from the same guess;
  3. second-order SCF (``mf.newton()``) from the best density so far.
If all three fail, :class:`~hybrid.errors.SCFConvergenceError` names the
method and the geometry. An unconverged energy is never returned.
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
    max_cycle : SCF iterations per step of the rescue ladder.
    extrapolation : order of the density extrapolation (0: previous density;
        default 3, cubic: on a water trimer at 0.5 fs it needs ~0.8 fewer SCF
        cycles per step than quadratic; the SCF always converges to conv_tol
        from whatever guess, so the order changes cost, never the result).
    conv_check : run PySCF's extra SCF cycle after convergence (default off:
        convergence is already judged by |ΔE| < conv_tol and the orbital
        gradient < sqrt(conv_tol); the check costs one more Fock build per call).
    max_memory : PySCF's memory limit (MB).
    verbose : PySCF's log level (0: silent).
    """

    stateful = True   # warm starts: blends give each region its own copy

    def __init__(self, method: str = "B3LYP", basis="def2-svp", *, charge: int | None = None,
                 multiplicity: int | None = None, density_fit: bool = False, auxbasis=None,
                 grids_level: int = 3, grid_response: bool = True, conv_tol: float = 1e-10,
                 max_cycle: int = 100, extrapolation: int = 3, max_memory: int = 4000,
                 conv_check: bool = False, name: str | None = None, verbose: int = 0):
        self.kind, self.unrestricted_forced, self.xc, self.post = _parse_method(method)
        if self.kind == "post" and density_fit:
            raise InputError(f"density_fit is supported for HF and DFT, not for {method}")
        self.method = method
        self.basis = basis
        self.charge, self.multiplicity = charge, multiplicity
        self.density_fit, self.auxbasis = density_fit, auxbasis
        self.grids_level, self.grid_response = grids_level, grid_response
        self.conv_tol, self.max_cycle, self.max_memory = conv_tol, max_cycle, max_memory
        self.conv_check = conv_check
        self.verbose = verbose
        self.name = name or f"{method}/{basis if isinstance(basis, str) else 'custom'}"
        self.extrapolator = DensityExtrapolator(extrapolation)
        self.log: list[dict] = []          # one record per call
        self._key = None
        self._mol = self._mf = self._grad = None

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
            mol = gto.M(atom=[(int(z), tuple(r)) for z, r in zip(system.numbers, system.positions)],
                        unit="Angstrom", basis=self.basis, charge=int(state.charge),
                        spin=int(state.multiplicity) - 1, verbose=self.verbose, max_memory=self.max_memory)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise InputError(f"{self.name}: PySCF could not build the molecule "
                             f"({', '.join(sorted(set(system.symbols)))}): {exc}") from None
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
            mf = qmmm.mm_charge(mf, system.ext_positions, system.ext_charges, radii=_radii(system),
                                unit="Angstrom")
        mf.conv_tol = self.conv_tol
        mf.conv_check = self.conv_check
        mf.max_cycle = self.max_cycle
        mf.verbose = self.verbose
        self._mol, self._mf, self.unrestricted = mol, mf, unrestricted
        self._grad = mf.nuc_grad_method() if self.kind != "post" else None
        if self._grad is not None and self.kind == "dft":
            self._grad.grid_response = self.grid_response
        self.extrapolator.clear()

    def _prepare(self, system: AtomicSystem):
        state = self._electronic_state(system)
        key = (tuple(system.numbers), int(state.charge), int(state.multiplicity), system.n_ext,
               system.ext_radii is None)
        if key != self._key:
            self._build(system, state)
            self._key = key
        else:
            self._mol.set_geom_(system.positions, unit="Angstrom")
            self._mf.reset(self._mol)
            if system.n_ext:
                from pyscf.qmmm import mm_mole
                self._mf.mm_mol = mm_mole.create_mm_mol(system.ext_positions, system.ext_charges,
                                                        radii=_radii(system), unit="Angstrom")
            if self._grad is not None:
                self._grad.reset(self._mol)
        return self._mol, self._mf

    # -- SCF with a rescue ladder ---------------------------------------------
    def _run_scf(self, mol, mf, system):
        s = mf.get_ovlp()
        nocc = mol.nelec if self.unrestricted else mol.nelectron // 2
        dm0 = self.extrapolator.guess(s, nocc, restricted=not self.unrestricted)
        ladder = [("diis", {}), ("damped", {"damp": 0.5, "level_shift": 0.5}), ("newton", None)]
        cycles = 0
        for step, opts in ladder:
            if step == "newton":
                solver = mf.newton()
            else:
                solver = mf
                solver.damp = opts.get("damp", 0.0)
                solver.level_shift = opts.get("level_shift", 0.0)
            solver.kernel(dm0=dm0)
            cycles += int(getattr(solver, "cycles", 0))
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
        geom = "; ".join(f"{sym} {x:.6f} {y:.6f} {z:.6f}" for sym, (x, y, z) in zip(system.symbols, system.positions))
        raise SCFConvergenceError(
            f"{self.name}: SCF did not converge (conv_tol {self.conv_tol:g}, max_cycle {self.max_cycle}) "
            f"after DIIS, damping + level shift and second-order SCF; geometry (Å): {geom}")

    # -- the potential ---------------------------------------------------------
    def _compute(self, system: AtomicSystem) -> Result:
        t0 = time.perf_counter()
        mol, mf = self._prepare(system)
        ladder_step, cycles = self._run_scf(mol, mf, system)
        t_scf = time.perf_counter() - t0
        dm = mf.make_rdm1()
        if self.kind == "post":
            e_h, grad = self._post_hf(mf)
        else:
            e_h = float(mf.e_tot)
            grad = self._grad.kernel()
        self.extrapolator.push(dm, mf.get_ovlp())
        ext_forces = None
        if system.n_ext:
            dm_tot = dm[0] + dm[1] if self.unrestricted else dm
            g_mm = self._grad.grad_hcore_mm(dm_tot) + self._grad.grad_nuc_mm()
            ext_forces = -np.asarray(g_mm) * units.HARTREE / units.BOHR
        wall = time.perf_counter() - t0
        record = {"wall_time": wall, "scf_time": t_scf, "grad_time": wall - t_scf, "scf_cycles": cycles,
                  "scf_ladder": ladder_step, "energy_hartree": e_h}
        self.log.append(record)
        return Result(energy=e_h * units.HARTREE, forces=-np.asarray(grad) * units.HARTREE / units.BOHR,
                      ext_forces=ext_forces, contributions={self.name: e_h * units.HARTREE}, info=dict(record))

    def _post_hf(self, mf):
        from pyscf import cc, mp
        solver = mp.MP2(mf) if self.post == "MP2" else cc.CCSD(mf)
        solver.verbose = self.verbose
        solver.kernel()
        if self.post == "CCSD" and not solver.converged:
            raise SCFConvergenceError(f"{self.name}: CCSD amplitudes did not converge")
        grad = solver.nuc_grad_method().kernel()
        return float(solver.e_tot), grad

    def check(self, system: AtomicSystem) -> None:
        super().check(system)
        if system.n_ext and self.kind == "post":
            raise InputError(f"{self.name}: electrostatic embedding is available for HF and DFT "
                             "(PySCF qmmm gradients), not for post-HF methods")
        self._electronic_state(system)


def _radii(system: AtomicSystem):
    """Gaussian widths of the external charges in Å (PySCF converts them with unit="Angstrom")."""
    return system.ext_radii


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
