"""Fewest-switches surface hopping (Tully, J. Chem. Phys. 93, 1061 (1990)), batched over trajectories.

A swarm of T independent trajectories of N atoms on S adiabatic states moves together, so that a model
evaluates all T geometries in one call (``model.states(positions (T, N, 3), previous) ->``
:class:`hybrid.states.StatesResult`). Units: eV, Å, fs, amu; ħ = :data:`hybrid.units.HBAR` (eV fs).

* **Nuclei**: velocity Verlet on the active adiabatic surface a, M R̈ = F_a.
* **Electrons**: iħ ċ_k = E_k c_k − iħ Σ_l T_kl c_l with T_kl = Σ_i v_i · d_kl,i (real, antisymmetric), in
  ``n_substeps`` pieces per nuclear step with E and T linear in time between the step's ends. Each piece
  is the exact propagator of the frozen Hermitian H_eff = diag(E) − iħT, so Σ_k |c_k|² stays 1.
* **Hops**: the probability of a → b in a piece of length δ is max(0, 2 T_ab Re(c_a* c_b) δ / |c_a|²),
  summed over the step's pieces; one uniform number per step picks at most one target.
* **Energy**: a hop a → b is made when the kinetic energy along d_ab can pay ΔE = E_b − E_a; velocities
  are then rescaled along d_ab: v_i ← v_i − γ d_ab,i / M_i, γ the root of smaller magnitude of
  Σ_i |d_i|²/(2M_i) γ² − (Σ_i v_i·d_i) γ + κΔE = 0 (κ = :data:`hybrid.units.ACCEL`; ½Mv²/κ is in eV).
  Otherwise the hop is *frustrated*: the velocities are kept (``frustrated="keep"``, Tully 1990) or their
  component along d_ab is reversed (``"reverse"``).
* **Decoherence** (``decoherence="edc"``, Granucci & Persico, J. Chem. Phys. 126, 134114 (2007)): after
  each step c_k ← c_k exp(−Δt/τ_ka) for k ≠ a with τ_ka = ħ/|E_k − E_a| · (1 + C/E_kin), C = 0.1 Hartree,
  and c_a is rescaled so that Σ|c|² = 1. ``None`` is Tully's original scheme.

Between hops E_kin + E_a is conserved to O(Δt²) by Verlet; across a hop exactly. Each trajectory's largest
|E(t) − E(0)| is returned. The eigenvectors' signs (or, for a model without them, the couplings' signs)
are kept continuous from step to step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import units
from .errors import InputError

EDC_C = 0.1 * units.HARTREE          # eV, the Granucci–Persico constant


@dataclass
class HoppingResult:
    """Final state of the swarm and its statistics.

    positions, velocities: (T, N, 3) Å, Å/fs; amplitudes: (T, S) complex; active: (T,) int;
    steps: (T,) steps each trajectory ran; hops, frustrated: (T,) counts; energy_error: (T,) eV, max
    |E(t) − E(0)|; kinetic0: (T,) eV, the initial kinetic energy (the scale of energy_error);
    times: (K,) fs; populations: (K, S) swarm mean of |c_k|²; active_fraction: (K, S); observed: (K, T, Q)
    what ``observe`` returned at each recorded time (Q = 0 without it).
    """
    positions: np.ndarray
    velocities: np.ndarray
    amplitudes: np.ndarray
    active: np.ndarray
    steps: np.ndarray
    hops: np.ndarray
    frustrated: np.ndarray
    energy_error: np.ndarray
    kinetic0: np.ndarray
    times: np.ndarray
    populations: np.ndarray
    active_fraction: np.ndarray
    observed: np.ndarray

    def save(self, path) -> None:
        """Write every field to ``path`` (.npz), atomically (a temporary file renamed over the name)."""
        import io

        from .files import atomic_write_bytes
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k) for k in self.__dataclass_fields__})
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path) -> "HoppingResult":
        with np.load(path) as f:
            return cls(**{k: f[k] for k in cls.__dataclass_fields__})


def kinetic_energy(v, masses):
    """(T,) eV from v (T, N, 3) Å/fs and masses (N,) amu."""
    return 0.5 * np.einsum("n,tna,tna->t", masses, v, v) / units.ACCEL


def _align_couplings(d, previous):
    """Flip each d_kl (k < l, and d_lk with it) to overlap positively with the previous step's."""
    s = np.sign(np.einsum("tklna,tklna->tkl", d, previous))
    s[s == 0] = 1.0
    return d * s[..., None, None]


def _propagate(E, Tm, c, delta):
    """exp(−i H δ/ħ) c for H = diag(E) − iħT (T, S, S) Hermitian: closed form for two states (the 2 × 2
    case of the Pauli decomposition, exp(−iHδ/ħ) = e^{−ih₀δ/ħ}[cos(|h|δ/ħ) − i sin(|h|δ/ħ)(H − h₀)/|h|]),
    eigendecomposition otherwise. Both are unitary to rounding."""
    S = E.shape[1]
    if S != 2:
        H = np.einsum("tk,kl->tkl", E, np.eye(S)) - 1j * units.HBAR * Tm
        w, V = np.linalg.eigh(H)
        return np.einsum("tkm,tm->tk", V, np.exp(-1j * w * delta / units.HBAR) * np.einsum("tkm,tk->tm", V.conj(), c))
    h0 = 0.5 * (E[:, 0] + E[:, 1])
    hz = 0.5 * (E[:, 0] - E[:, 1])
    b = -1j * units.HBAR * Tm[:, 0, 1]                      # H_01; H_10 = conj(b) as T_10 = −T_01
    h = np.sqrt(hz**2 + np.abs(b) ** 2)
    phi = h * delta / units.HBAR
    cos, sinc = np.cos(phi), np.sinc(phi / np.pi) * delta / units.HBAR   # sin(φ)/|h|
    c0, c1 = c[:, 0], c[:, 1]
    out = np.empty_like(c)
    out[:, 0] = cos * c0 - 1j * sinc * (hz * c0 + b * c1)
    out[:, 1] = cos * c1 - 1j * sinc * (np.conj(b) * c0 - hz * c1)
    return out * np.exp(-1j * h0 * delta / units.HBAR)[:, None]


def surface_hopping(model, positions, velocities, masses, state, dt: float, n_steps: int, *, seed,
                    n_substeps: int = 20, frustrated: str = "keep", decoherence: str | None = None, stop=None,
                    record_every: int = 10, observe=None) -> HoppingResult:
    """Run T trajectories of FSSH (module docstring) for at most ``n_steps`` steps of ``dt`` fs.

    positions, velocities: (T, N, 3) Å, Å/fs; masses: (N,) amu; state: int or (T,) initial active state
    (its amplitude starts at 1); seed: of the hop random numbers; stop: optional callable(positions,
    velocities) -> (T,) bool, after which a trajectory is frozen (e.g. a scattering particle that left);
    observe: optional callable(positions (T, N, 3), velocities, active (T,), energies (T, S), amplitudes
    (T, S)) -> (T, Q), recorded with the populations every ``record_every`` steps (e.g. a torsion angle).
    """
    x = np.array(positions, float)
    v = np.array(velocities, float)
    masses = np.asarray(masses, float)
    if x.ndim != 3 or x.shape[2] != 3 or v.shape != x.shape:
        raise InputError(f"surface_hopping: positions and velocities must be (T, N, 3), got {x.shape}, {v.shape}")
    if masses.shape != (x.shape[1],) or np.any(masses <= 0):
        raise InputError(f"surface_hopping: masses must be ({x.shape[1]},) positive amu, got {masses}")
    if frustrated not in ("keep", "reverse"):
        raise InputError(f"surface_hopping: frustrated must be 'keep' or 'reverse', got {frustrated!r}")
    if decoherence not in (None, "edc"):
        raise InputError(f"surface_hopping: decoherence must be None or 'edc', got {decoherence!r}")
    if not (dt > 0 and n_steps >= 0 and n_substeps >= 1):
        raise InputError(f"surface_hopping: need dt > 0, n_steps >= 0, n_substeps >= 1 (got {dt}, {n_steps}, "
                         f"{n_substeps})")
    T, N = x.shape[:2]
    rng = np.random.default_rng(seed)
    r = model.states(x)
    S = r.n_states
    active = np.broadcast_to(np.asarray(state, int), (T,)).copy()
    if np.any((active < 0) | (active >= S)):
        raise InputError(f"surface_hopping: initial states must lie in 0..{S - 1}")
    c = np.zeros((T, S), complex)
    c[np.arange(T), active] = 1.0
    E, F, d, U = r.energies, r.forces, r.couplings, r.vectors
    if d is None:
        raise InputError("surface_hopping: the model returns no couplings")
    inv_m = (units.ACCEL / masses)[None, :, None]
    e0 = kinetic_energy(v, masses) + E[np.arange(T), active]
    kinetic0 = kinetic_energy(v, masses)
    err = np.zeros(T)
    steps = np.zeros(T, int)
    hops = np.zeros(T, int)
    n_frustrated = np.zeros(T, int)
    done = np.zeros(T, bool) if stop is None else np.asarray(stop(x, v), bool).copy()
    times, pops, fracs, obs = [], [], [], []
    recorded = [0]

    def record(step):
        recorded[0] = step
        times.append(step * dt)
        pops.append((np.abs(c) ** 2).mean(0))
        fracs.append(np.bincount(active, minlength=S) / T)
        q = np.zeros((T, 0)) if observe is None else np.asarray(observe(x, v, active, E, c), float).reshape(T, -1)
        obs.append(q)

    record(0)
    for step in range(1, n_steps + 1):
        run = np.flatnonzero(~done)
        if not len(run):
            break
        xr, vr, cr, ar = x[run], v[run], c[run], active[run]
        Er, dr = E[run], d[run]
        Tm0 = np.einsum("tna,tklna->tkl", vr, dr)
        # nuclei: velocity Verlet on the active surface
        v_half = vr + 0.5 * dt * F[run, ar] * inv_m
        x_new = xr + dt * v_half
        rn = model.states(x_new, previous=None if U is None else U[run])
        d_new = rn.couplings if U is not None else _align_couplings(rn.couplings, dr)
        v_new = v_half + 0.5 * dt * rn.forces[np.arange(len(run)), ar] * inv_m
        Tm1 = np.einsum("tna,tklna->tkl", v_new, d_new)
        # electrons, and the fewest-switches probabilities of leaving the active state
        g = np.zeros((len(run), S))
        delta = dt / n_substeps
        idx = np.arange(len(run))
        for j in range(n_substeps):
            tau = (j + 0.5) / n_substeps
            Ej = Er + tau * (rn.energies - Er)
            Tj = Tm0 + tau * (Tm1 - Tm0)
            ca = cr[idx, ar]
            flux = 2 * Tj[idx, ar, :] * np.real(np.conj(ca)[:, None] * cr)        # (t, S), a → b
            pa = np.abs(ca) ** 2
            g += np.where(pa[:, None] > 1e-300, np.maximum(flux, 0.0) * delta / np.maximum(pa, 1e-300)[:, None], 0)
            cr = _propagate(Ej, Tj, cr, delta)
        g[idx, ar] = 0.0
        # one hop at most per step
        xi = rng.random(len(run))
        cum = np.cumsum(g, axis=1)
        target = np.where(xi < cum[:, -1], np.argmax(xi[:, None] < cum, axis=1), ar)
        for t in np.flatnonzero(target != ar):
            a, b = ar[t], target[t]
            u = d_new[t, a, b]
            dE = rn.energies[t, b] - rn.energies[t, a]
            A = 0.5 * np.sum(u * u / masses[:, None])
            B = np.sum(v_new[t] * u)
            disc = B * B - 4 * A * dE * units.ACCEL
            if A > 0 and disc >= 0:
                root = np.sqrt(disc)
                gamma = (B - root) / (2 * A) if B >= 0 else (B + root) / (2 * A)
                v_new[t] = v_new[t] - gamma * u / masses[:, None]
                ar[t] = b
                hops[run[t]] += 1
            else:
                n_frustrated[run[t]] += 1
                if frustrated == "reverse" and A > 0:
                    p = B / (2 * A)
                    v_new[t] = v_new[t] - 2 * p * u / masses[:, None]
        if decoherence == "edc":
            ekin = np.maximum(kinetic_energy(v_new, masses), 1e-12)
            Ea = rn.energies[idx, ar]
            gap = np.abs(rn.energies - Ea[:, None])
            damp = np.exp(-dt * gap / units.HBAR / (1 + EDC_C / ekin)[:, None])
            damp[idx, ar] = 1.0
            cr = cr * damp
            rest = (np.abs(cr) ** 2).sum(1) - np.abs(cr[idx, ar]) ** 2
            cr[idx, ar] *= np.sqrt(np.maximum(1 - rest, 0.0)) / np.maximum(np.abs(cr[idx, ar]), 1e-300)
        # write back
        x[run], v[run], c[run], active[run] = x_new, v_new, cr, ar
        E[run], F[run], d[run] = rn.energies, rn.forces, d_new
        if U is not None:
            U[run] = rn.vectors
        steps[run] += 1
        err[run] = np.maximum(err[run], np.abs(kinetic_energy(v_new, masses) + rn.energies[idx, ar] - e0[run]))
        if stop is not None:
            done[run] = np.asarray(stop(x_new, v_new), bool)
        if step % record_every == 0:
            record(step)
    if recorded[0] != int(steps.max()):
        record(int(steps.max()))
    return HoppingResult(x, v, c, active, steps, hops, n_frustrated, err, kinetic0, np.array(times),
                         np.array(pops), np.array(fracs), np.array(obs))
