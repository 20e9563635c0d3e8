"""Electrostatic embedding of a blend's high-level regions in fixed charges of the other atoms.

For a region P (a partition of :class:`couplers.blend.BlendedCorrection`) with
per-atom charges q (e) on every atom of the system:

    ΔE_P = E_high(P; {q_b, R_b}_{b∉P}) − [E_low(P) + E_C(P)]
    E_C(P) = Σ_{a∈P} Σ_{b∉P} k q_a q_b φ(r_ab),   φ(r) = erf(r/σ)/r  (σ > 0),  1/r  (σ = 0)

k = e²/4πε₀ = 14.3996 eV Å. The high level (a QM method) is polarised by the
charges of every atom outside P; the low level's region energy gets the same
charges' classical Coulomb term with the region's own charges q_a (ONIOM-EE).
With a fixed-charge low level that uses these charges, E_C(P) is exactly its
region–environment electrostatics, which the high level's then replaces,
counted once. With an ML low level, E_C(P) stands in for the electrostatic
part of E_low(all) − E_low(P) that the high level replaces; whether that pays
is measured in ``benchmarks/bench_accuracy.py`` (for a Δ-ML environment on
GFN2-xTB, which is itself polarisable, it does not). σ > 0 smears each
charge into a normalised Gaussian ρ_b ∝ exp(−|r − R_b|²/σ²) on both sides
(the QM calculation's ``ext_radii`` and φ above), so that a charge next to the
QM density does not over-polarise it.

A molecule outside P is a full set of charges in every partition it is not
part of; the partition weights σ_P of the blend switch it from charge to QM
atoms, so energy and forces stay as smooth as the switch and exact. The
forces of ΔE_P act on the region's atoms and, through the charges, on every
other atom (the QM level's ``ext_forces`` minus the Coulomb term's).

Limits (errors, not silent approximations): the system must not be periodic
(no Ewald sum of the embedding charges), and a region must not cut covalent
bonds (a link atom next to a point charge needs charge redistribution).
Charges are given per element, ``{"O": -0.834, "H": 0.417}`` (TIP3P), or
per atom; every molecule's charges must add up to its formal charge, so that
the embedding field is that of the molecules the blend knows.
"""
from __future__ import annotations

import numpy as np
from scipy.special import erf

from hybrid.errors import InputError
from hybrid.system import atomic_number, symbol

#: e²/(4πε₀) in eV Å (CODATA 2018)
COULOMB_EV_ANGSTROM = 14.399645478425668


class Embedding:
    """Fixed embedding charges of one system (see module docstring).

    charges : {element symbol or atomic number: charge (e)} or an (N,) array (e)
    sigma : Gaussian width σ (Å) of every charge; 0 for point charges
    """

    def __init__(self, charges, sigma: float = 0.0):
        self.sigma = float(sigma)
        if not np.isfinite(self.sigma) or self.sigma < 0:
            raise InputError(f"embedding: sigma must be a width >= 0 Å, got {sigma!r}")
        if isinstance(charges, dict):
            table = {}
            for key, q in charges.items():
                try:
                    z = int(key) if isinstance(key, (int, np.integer)) else atomic_number(str(key))
                except (InputError, ValueError, KeyError):
                    raise InputError(f"embedding: {key!r} is not an element") from None
                try:
                    q = float(q)
                except (TypeError, ValueError):
                    raise InputError(f"embedding: the charge of {key} must be a number, got {q!r}") from None
                if not np.isfinite(q):
                    raise InputError(f"embedding: the charge of {key} is not finite ({q!r})")
                table[z] = q
            self.by_element, self.per_atom = table, None
        else:
            self.by_element, self.per_atom = None, np.asarray(charges, float).reshape(-1)
        self.q: np.ndarray | None = None

    def setup(self, system, units, formal) -> np.ndarray:
        """The (N,) charges of ``system``, checked: non-periodic, every element given, every unit (molecule,
        an index array) adding up to its formal charge (``formal``: (N,) e) within 1e-6 e."""
        if system.periodic:
            raise InputError("electrostatic embedding of a region needs a non-periodic system (the embedding "
                             "charges are not Ewald-summed)")
        n = len(system)
        if self.per_atom is not None:
            if len(self.per_atom) != n:
                raise InputError(f"embedding: {len(self.per_atom)} charges for a system of {n} atoms")
            q = self.per_atom.copy()
        else:
            missing = sorted(set(int(z) for z in system.numbers) - set(self.by_element))
            if missing:
                raise InputError(f"embedding: no charge for element{'s' if len(missing) > 1 else ''} "
                                 f"{', '.join(symbol(z) for z in missing)} (give one for every element)")
            q = np.array([self.by_element[int(z)] for z in system.numbers])
        for u in units:
            total, want = float(q[u].sum()), float(np.asarray(formal)[u].sum())
            if abs(total - want) > 1e-6:
                raise InputError(f"embedding: the charges of the molecule of atoms {np.asarray(u)[:6].tolist()}"
                                 f"{'...' if len(u) > 6 else ''} add up to {total:+.6g} e, not to its formal "
                                 f"charge {want:+.6g} e")
        self.q = q
        return q

    def environment(self, system, atoms: np.ndarray) -> tuple[np.ndarray, dict]:
        """(indices of the atoms outside the region ``atoms``, AtomicSystem keywords that embed their charges)."""
        env = np.setdiff1d(np.arange(len(system)), atoms)
        kw = dict(ext_charges=self.q[env], ext_positions=system.positions[env].copy(),
                  ext_radii=np.full(len(env), self.sigma) if self.sigma > 0 else None)
        return env, kw

    def coulomb(self, system, atoms: np.ndarray, env: np.ndarray) -> tuple[float, np.ndarray]:
        """E_C (eV) between the region ``atoms`` and ``env``, and its forces (N, 3) in eV/Å."""
        q, pos = self.q, system.positions
        d = pos[atoms][:, None, :] - pos[env][None, :, :]              # (n_a, n_b, 3)
        r = np.linalg.norm(d, axis=2)
        qq = COULOMB_EV_ANGSTROM * q[atoms][:, None] * q[env][None, :]
        if self.sigma > 0:
            x = r / self.sigma
            phi = erf(x) / r
            dphi = (2.0 / np.sqrt(np.pi)) * np.exp(-x * x) / (self.sigma * r) - phi / r
        else:
            phi, dphi = 1.0 / r, -1.0 / r ** 2
        f_pair = -(qq * dphi / r)[:, :, None] * d                      # force on a from b
        forces = np.zeros((len(system), 3))
        forces[atoms] = f_pair.sum(1)
        forces[env] = -f_pair.sum(0)
        return float((qq * phi).sum()), forces
