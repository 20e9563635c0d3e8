"""Uncertainty-driven regions that stay Hamiltonian: weights from a smooth committee score.

:class:`UncertaintyPartitioner` gives each unit u (a molecule, or a united
atom of a large one) a weight w_u ∈ [0, 1] (1: the unit is in the reference
region) that is a smooth function of the positions R, together with its
exact gradient, so that a blend over these weights
(:class:`couplers.blend.BlendedCorrection`) is one potential energy and its
forces are -∇E, switching term included.

Score of atom i: the committee's force disagreement, the quantity the trust
levels are set on (eV/Å; M members, F_m = -∇E_m by autograd)

    σ_i(R) = sqrt((1/M) Σ_m ‖F_m,i(R) - F̄_i(R)‖²),     F̄_i = (1/M) Σ_m F_m,i

Score of a unit: a smooth maximum over its atoms (log-sum-exp, softness τ eV/Å)

    s_u = τ ln Σ_{i∈u} exp(σ_i/τ),     max_{i∈u} σ_i <= s_u <= max_{i∈u} σ_i + τ ln n_u

(never below the largest atomic σ, so a unit with an atom at or above the
upper level is wholly promoted, as with the plain maximum). Weight, with the
C² switch S of :mod:`couplers.switching` (quintic by default):

    w_u = S(t_u),   t_u = (hi - s_u)/(hi - lo)      (1 at s_u >= hi, 0 at s_u <= lo)

Gradient (units in the buffer only, 0 < w_u < 1), p_i = exp(σ_i/τ)/Σ_{j∈u} exp(σ_j/τ):

    ∂w_u/∂R = -S'(t_u)/(hi - lo) Σ_{i∈u} p_i ∂σ_i/∂R,
    ∂σ_i/∂R = (1/(M σ_i)) Σ_m (F_m,i - F̄_i)·∂F_m,i/∂R        (1/Å)

∂F_m,i/∂R holds second derivatives of the members' energies: the forces are
built with ``create_graph=True`` and each buffer unit's score is
differentiated once more (one extra backward pass per buffer unit; steps
without a buffer unit cost nothing extra). The strain derivative ∂w_u/∂ε
(positions and cell -> R (1 + ε), rows) comes from the same pass, so the
blend's virial is exact too. An atom with σ_i = 0 contributes no gradient
(σ is not differentiable there; its softmax weight is then negligible).

:func:`check_molecules` guards the units found from one geometry's bonds:
a molecule with an odd electron count in a closed-shell system means the
bonds of that geometry split a molecule (a stretched O-H), and is refused
with an error naming the atoms and the nearest partner.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..system import AtomicSystem, symbol

#: default softness τ of the unit score as a fraction of (hi - lo): τ ln 3 = 5.5 % of the band for a water
SOFTNESS_FRACTION = 0.05
#: covalent-radius factor of the bonds that define a learner's molecules (and link atoms): i-j bonded when
#: d_ij < 1.3 (r_cov,i + r_cov,j) at the first step, so an O-H stretched up to 1.26 Å at step 0 (1.16 Å with
#: the couplers' 1.2) does not split its water, while an O···H hydrogen bond (>= 1.5 Å) stays a contact
MOLECULE_BOND_SCALE = 1.3


def smooth_max(sigma: np.ndarray, units, tau: float) -> np.ndarray:
    """s_u = τ ln Σ_{i∈u} exp(σ_i/τ) for each unit (array of len(units)), in the units of σ."""
    out = np.empty(len(units))
    for k, u in enumerate(units):
        x = np.asarray(sigma, float)[u] / tau
        m = x.max()
        out[k] = tau * (m + np.log(np.exp(x - m).sum()))
    return out


def deviation_graph(committee, system: AtomicSystem):
    """σ (N,) as a torch float64 graph of (positions (N, 3), strain ε (3, 3)) leaves, and those leaves.

    Members are evaluated in their own dtype; their forces are -∂E_m/∂R' at R' = R (1 + ε),
    cell' = cell (1 + ε), kept differentiable (``create_graph=True``).
    """
    import torch

    pos = torch.tensor(system.positions, dtype=torch.float64, requires_grad=True)
    eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    strain = torch.eye(3, dtype=torch.float64) + eps
    cell = torch.tensor(system.cell, dtype=torch.float64)
    forces = []
    for member in committee.members:
        p = (pos @ strain).to(member.dtype)
        c = (cell @ strain).to(member.dtype)
        energy = member.atom_energies(system, p, c).sum()
        (g,) = torch.autograd.grad(energy, p, create_graph=True)
        forces.append(-g.to(torch.float64))
    f = torch.stack(forces)
    var = ((f - f.mean(0)) ** 2).sum(-1).mean(0)
    # σ = sqrt(var); clamping keeps ∂σ finite (zero) where every member agrees exactly
    return torch.sqrt(var.clamp(min=1e-30)), pos, eps


class UncertaintyPartitioner:
    """Conservative uncertainty-driven region weights (module docstring).

    committee : a :class:`~hybrid.ml.committee.Committee` of
        :class:`~hybrid.ml.potential.MLPotential` members (read at each call,
        so members retrained in place are used)
    lo, hi : the band of unit scores over which w goes from 0 to 1 (eV/Å; the trust levels)
    units : list of index arrays covering the system once (molecules, residues, united atoms)
    switch : "quintic" (C², default), "septic" or "cubic" (:mod:`couplers.switching`)
    softness : τ in eV/Å (default ``SOFTNESS_FRACTION`` · (hi - lo))

    ``weights(system)`` returns :class:`couplers.partition.Weights` with ∂w_u/∂R (N, 3) and
    ∂w_u/∂ε (3, 3) for buffer units. :meth:`set_deviation` hands over σ the caller already
    has for this geometry (the committee's ``force_std``), which saves the first evaluation.
    """

    def __init__(self, committee, lo: float, hi: float, units, switch: str = "quintic",
                 softness: float | None = None):
        from couplers.switching import Switch

        if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
            raise InputError(f"UncertaintyPartitioner: need finite hi > lo (eV/Å), got lo={lo}, hi={hi}")
        self.committee = committee
        self.lo, self.hi = float(lo), float(hi)
        self.units = [np.asarray(u, int).reshape(-1) for u in units]
        if any(u.size == 0 for u in self.units):
            raise InputError("UncertaintyPartitioner: a unit holds no atoms")
        self.switch = switch if isinstance(switch, Switch) else Switch(switch)
        if self.switch.kind == "step":
            raise InputError("UncertaintyPartitioner: the step switch has no buffer and no gradient; use "
                             "'quintic' (C²), 'septic' or 'cubic'")
        tau = SOFTNESS_FRACTION * (self.hi - self.lo) if softness is None else softness
        if not (np.isfinite(tau) and tau > 0):
            raise InputError(f"UncertaintyPartitioner: softness must be a positive score in eV/Å, got {softness}")
        self.tau = float(tau)
        self._given = None
        self.last_scores: np.ndarray | None = None

    def set_deviation(self, system: AtomicSystem, sigma) -> None:
        """Use σ (N,) eV/Å for the next ``weights`` call at exactly these positions."""
        self._given = (system.positions.copy(), np.asarray(sigma, float).copy())

    def _sigma(self, system: AtomicSystem) -> np.ndarray:
        given, self._given = self._given, None
        if given is not None and given[0].shape == system.positions.shape \
                and np.array_equal(given[0], system.positions):
            return given[1]
        return self.committee._compute(system).force_std

    def weights(self, system: AtomicSystem):
        from couplers.partition import Weights

        n = len(system)
        covered = np.zeros(n, int)
        for k, u in enumerate(self.units):
            if u.min() < 0 or u.max() >= n:
                raise InputError(f"UncertaintyPartitioner: unit {k} holds atom {int(u.max())}, outside a system "
                                 f"of {n} atoms")
            np.add.at(covered, u, 1)
        if np.any(covered != 1):
            a = int(np.flatnonzero(covered != 1)[0])
            raise InputError(f"UncertaintyPartitioner: the units cover atom {a} {covered[a]} times; they must "
                             f"cover each of the {n} atoms exactly once")
        sigma = np.asarray(self._sigma(system), float)
        if not np.all(np.isfinite(sigma)):
            a = int(np.flatnonzero(~np.isfinite(sigma))[0])
            raise InputError(f"UncertaintyPartitioner: the committee's force disagreement on atom {a} "
                             f"({symbol(system.numbers[a])}) is {sigma[a]}")
        scores = smooth_max(sigma, self.units, self.tau)
        self.last_scores = scores
        t = (self.hi - scores) / (self.hi - self.lo)
        w, dw_dt, _ = self.switch(t)
        w = np.asarray(w, float)
        buffer = [k for k in range(len(w)) if 0.0 < w[k] < 1.0]
        grads, strain = {}, {}
        if buffer:
            import torch

            sig_t, pos, eps = deviation_graph(self.committee, system)
            for k in buffer:
                u = torch.from_numpy(self.units[k])
                s_u = self.tau * torch.logsumexp(sig_t[u] / self.tau, 0)
                g_pos, g_eps = torch.autograd.grad(s_u, (pos, eps), retain_graph=True)
                factor = -float(dw_dt[k]) / (self.hi - self.lo)          # ∂w/∂s
                grads[k] = factor * g_pos.detach().numpy()
                strain[k] = factor * g_eps.detach().numpy()
        return Weights(self.units, w, grads, strain)


def check_molecules(system: AtomicSystem, molecules, charge=None, how: str = "") -> None:
    """Refuse molecules with an odd electron count in a closed-shell system (InputError naming the atoms).

    The charge of a molecule is ``charge(atoms)`` (an int, or (charge, multiplicity): then it is
    not checked) when given, else that of a recognised monatomic ion
    (:data:`couplers.charges.ION_CHARGES`) or 0, as :class:`couplers.charges.RegionCharges`
    infers them. Not checked: an open-shell system (multiplicity > 1), and, without ``charge``,
    a system whose charge the recognised ions do not account for (the molecules' charges are
    unknown; the regions then need them given anyway). ``how`` says where the molecules came
    from, for the message.
    """
    from couplers.charges import ION_CHARGES

    if int(system.multiplicity) != 1:
        return
    molecules = [np.asarray(m, int) for m in molecules]
    if charge is None:
        qs = [ION_CHARGES.get(int(system.numbers[m[0]]), 0) if len(m) == 1 else 0 for m in molecules]
        if sum(qs) != int(system.charge):
            return
    odd = []
    for k, mol in enumerate(molecules):
        if charge is not None:
            out = charge(mol)
            if isinstance(out, tuple):
                continue
            q = int(out)
        else:
            q = qs[k]
        if (int(system.numbers[mol].sum()) - q) % 2:
            odd.append((mol, q))
    if not odd:
        return
    mol, q = odd[0]
    names = ", ".join(f"{int(a)} {symbol(system.numbers[a])}" for a in mol[:12]) + (" ..." if len(mol) > 12 else "")
    hint = ""
    # the nearest atom of another odd molecule (the other half of a split one), else of any other molecule
    others = (np.concatenate([m for m, _ in odd[1:]]) if len(odd) > 1
              else np.setdiff1d(np.arange(len(system)), mol))
    if others.size:
        d = np.linalg.norm(system.positions[mol][:, None] - system.positions[others][None], axis=-1)
        if system.periodic:
            from ase.geometry import find_mic
            v, _ = find_mic((system.positions[others][None] - system.positions[mol][:, None]).reshape(-1, 3),
                            system.cell, system.pbc)
            d = np.linalg.norm(v, axis=1).reshape(len(mol), len(others))
        a, b = np.unravel_index(np.argmin(d), d.shape)
        a, b = int(mol[a]), int(others[b])
        hint = (f"; its atom {a} ({symbol(system.numbers[a])}) is {d.min():.3f} Å from atom {b} "
                f"({symbol(system.numbers[b])}), a bond stretched beyond the criterion in this geometry?")
    raise InputError(
        f"the molecule of atoms [{names}] {how}has {int(system.numbers[mol].sum()) - q} electrons at charge {q}: "
        f"an odd count in a closed-shell system ({len(odd)} such molecule(s)), so this geometry's bonds split a "
        f"molecule{hint}. Give the molecules explicitly (units=, e.g. the topology's molecules or residues), "
        "start from a geometry with intact bonds, or give cluster_charge=callable(atoms) -> (charge, multiplicity)")
