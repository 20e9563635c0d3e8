"""State-averaged CASSCF (PySCF) as a multi-state model: energies, per-state forces and couplings.

SA-CASSCF(n_electrons, n_orbitals) averaged over the ``n_average`` lowest states of the molecule's spin
(default S) with equal weights, of which the S lowest are returned, for a batch of geometries (positions
(T, N, 3) Å) → :class:`hybrid.states.StatesResult`. Averaging over a state more than the dynamics needs
keeps the active orbitals from switching character where a third state comes close (methaniminium's S1
in SA2-CASSCF(2,2) turns from ππ* to another state between 6° and 20° of twist; in SA3 it stays smooth,
models/make_methaniminium_sacasscf.py):

    E_k   mc.e_states (Hartree → eV)
    F_k   −∇E_k, PySCF's analytic SA-CASSCF gradient of state k (Hartree/bohr → eV/Å)
    d_kl  ⟨k|∇l⟩ from ``pyscf.nac.sacasscf`` (1/bohr → 1/Å), with the CSF term (no electron translation
          factors), d_lk = −d_kl

Each batch index is a trajectory: its SCF and CASSCF start from the orbitals and CI vectors of its own
previous call (orbitals projected onto the new basis). PySCF's CI vectors carry arbitrary signs, so the
couplings' signs are as computed; :func:`hybrid.surface_hopping.surface_hopping` aligns them from step to
step. A CASSCF that does not converge raises :class:`~hybrid.errors.SCFConvergenceError`.

Units at this edge: positions go to PySCF in bohr through :data:`hybrid.units.BOHR`, energies and
gradients come back through :data:`hybrid.units.HARTREE` and the same constant.
"""
from __future__ import annotations

import numpy as np

from .. import units
from ..errors import InputError, SCFConvergenceError
from ..states import StatesResult


class SACASSCFStates:
    """numbers: (N,) atomic numbers; basis: PySCF basis name; n_orbitals, n_electrons: the active space;
    n_states: S, the states returned; n_average: the states averaged over (≥ S, default S); charge, spin
    (2S_z): of the molecule; conv_tol: CASSCF energy tolerance (Hartree); conv_tol_grad: its orbital-gradient
    tolerance."""

    def __init__(self, numbers, basis: str, n_orbitals: int, n_electrons: int, n_states: int, *,
                 n_average: int | None = None, charge: int = 0, spin: int = 0, conv_tol: float = 1e-10,
                 conv_tol_grad: float = 1e-6):
        self.numbers = [int(z) for z in numbers]
        if n_states < 2:
            raise InputError(f"SACASSCFStates: n_states must be >= 2, got {n_states}")
        n_average = n_states if n_average is None else int(n_average)
        if n_average < n_states:
            raise InputError(f"SACASSCFStates: n_average ({n_average}) must be >= n_states ({n_states})")
        self.basis, self.n_orbitals, self.n_electrons = basis, int(n_orbitals), int(n_electrons)
        self.n_states, self.charge, self.spin, self.conv_tol = int(n_states), int(charge), int(spin), conv_tol
        self.n_average = n_average
        self.conv_tol_grad = conv_tol_grad
        self._guess = {}                       # batch index → (mo_coeff, ci, mol)
        self.name = (f"SA{n_average}-CASSCF({n_electrons},{n_orbitals})/{basis}"
                     + (f", lowest {n_states} states" if n_average > n_states else ""))

    def _one(self, t: int, positions: np.ndarray):
        from pyscf import gto, mcscf, scf
        from pyscf.nac.sacasscf import NonAdiabaticCouplings
        mol = gto.M(atom=[(z, tuple(r)) for z, r in zip(self.numbers, positions / units.BOHR)], unit="Bohr",
                    basis=self.basis, charge=self.charge, spin=self.spin, verbose=0)
        mf = scf.RHF(mol) if self.spin == 0 else scf.ROHF(mol)
        mf.conv_tol = 1e-12
        mf.kernel()
        mc = mcscf.CASSCF(mf, self.n_orbitals, self.n_electrons).state_average_([1.0 / self.n_average]
                                                                                 * self.n_average)
        # states of the molecule's own spin only: without this the CI solver also returns M_s = 0
        # components of higher multiplets, which do not couple to the others
        s_ = 0.5 * self.spin
        mc.fix_spin_(ss=s_ * (s_ + 1))
        mc.conv_tol = self.conv_tol
        # the state-averaged energy converges quadratically in the orbital gradient, each state's only
        # linearly: per-state energies and forces need the orbital gradient itself tight
        mc.conv_tol_grad = self.conv_tol_grad
        mc.max_cycle_macro = 200
        mo, ci = None, None
        if t in self._guess:
            mo_prev, ci, mol_prev = self._guess[t]
            mo = mcscf.project_init_guess(mc, mo_prev, prev_mol=mol_prev)
        mc.kernel(mo, ci0=ci)
        if not mc.converged:
            geom = "; ".join(f"{z} {x:.6f} {y:.6f} {w:.6f}" for z, (x, y, w) in zip(self.numbers, positions))
            raise SCFConvergenceError(f"{self.name}: CASSCF did not converge; geometry (Å): {geom}")
        self._guess[t] = (mc.mo_coeff, mc.ci, mol)
        S = self.n_states
        energies = np.asarray(mc.e_states)[:S] * units.HARTREE
        grad = mc.nuc_grad_method()
        forces = np.stack([-np.asarray(grad.kernel(state=k)) for k in range(S)]) * units.HARTREE / units.BOHR
        nac = NonAdiabaticCouplings(mc)
        d = np.zeros((S, S, len(self.numbers), 3))
        for k in range(S):
            for m in range(k + 1, S):
                d[k, m] = np.asarray(nac.kernel(state=(m, k), use_etfs=False)) / units.BOHR   # ⟨k|∇m⟩
                d[m, k] = -d[k, m]
        return energies, forces, d

    def states(self, positions, previous=None) -> StatesResult:
        """:class:`hybrid.states.StatesResult` of a batch (T, N, 3) Å (module docstring)."""
        pos = np.asarray(positions, float)
        if pos.ndim != 3 or pos.shape[1:] != (len(self.numbers), 3):
            raise InputError(f"{self.name}: positions must be (T, {len(self.numbers)}, 3) Å, got {pos.shape}")
        out = [self._one(t, p) for t, p in enumerate(pos)]
        return StatesResult(np.array([o[0] for o in out]), np.array([o[1] for o in out]),
                            np.array([o[2] for o in out]), None, {"level": self.name})
