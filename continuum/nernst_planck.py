"""1D Nernst–Planck and Poisson–Nernst–Planck solvers (SI units throughout).

Each species k (valence z_k, diffusivity D_k(x), optional potential of mean
force W_k(x) in J per particle) obeys

    ∂c_k/∂t = −∂J_k/∂x,   J_k = −D_k (∂c_k/∂x + c_k ∂u_k/∂x),
    u_k(x) = z_k φ(x) / V_T + W_k(x) / (k_B T),   V_T = R T / F,

with c in mol/m³, J in mol m⁻² s⁻¹, D in m²/s, φ in V, x in m.  In the
Poisson–Nernst–Planck (PNP) problem φ follows from

    −∂/∂x (ε_r ε0 ∂φ/∂x) = F Σ_k z_k c_k + ρ_fixed(x)        (ρ in C/m³)

Discretisation: cell-centred finite volumes on a :class:`continuum.grid.Grid`.
The flux through face f, joining nodes f and f+1 a distance d_f apart, is the
Scharfetter–Gummel flux

    J_f = (D_f / d_f) [B(Δu_f) c_f − B(−Δu_f) c_{f+1}],   B(x) = x / (eˣ − 1),

exact for a potential that is linear between the nodes, so a steady flux
under a linear potential reproduces the Goldman–Hodgkin–Katz flux on any
grid.  Nonlinear systems are solved by damped Newton iterations with the
analytic Jacobian assembled as a sparse matrix; unknowns are interleaved per
cell ([φ, c_1..c_M] in PNP, [c_1..c_M] in NP), so the Jacobian is banded
with half-bandwidth 2·(M+1) − 1.  Time stepping is the θ-method (θ = 1
backward Euler, θ = 1/2 Crank–Nicolson) with Newton at every step; the
Poisson equation is imposed implicitly at every step.

Boundary conditions, one per end and per species: :class:`Dirichlet`
(c in mol/m³), :class:`Neumann` (∂c/∂x in mol/m⁴) and :class:`Flux`
(J in mol m⁻² s⁻¹, positive along +x).  For φ: :class:`Dirichlet` (V),
:class:`Neumann` (∂φ/∂x in V/m) and :class:`SurfaceCharge` (σ in C/m² on
that wall, the electrolyte inside the domain).

D(x), φ(x), W(x), ε_r(x) and ρ_fixed(x) may be numbers, arrays on the points
where they are needed, or callables f(x) — in particular the profiles of
:mod:`continuum.profiles` and :mod:`continuum.diffusion`, which interpolate
themselves onto the solver grid.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from hybrid.units import EPS0, FARADAY, GAS_CONSTANT, K_B

from .grid import Grid, sample


# --------------------------------------------------------------------------
# Bernoulli function

def bernoulli(x):
    """B(x) = x / (eˣ − 1), with B(0) = 1; stable for all real x."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-5
    xs = np.where(small, 1.0, x)
    with np.errstate(over="ignore"):
        out = xs / np.expm1(xs)
    return np.where(small, 1.0 - x / 2 + x**2 / 12, out)


def bernoulli_derivative(x):
    """B'(x) = B(x) [1/x − 1/(1 − e^{−x})], with B'(0) = −1/2."""
    x = np.asarray(x, dtype=float)
    small = np.abs(x) < 1e-3
    xs = np.where(small, 1.0, x)
    with np.errstate(over="ignore"):
        out = bernoulli(xs) * (1.0 / xs + 1.0 / np.expm1(-xs))
    return np.where(small, -0.5 + x / 6 - x**3 / 180, out)


def scharfetter_gummel_flux(c_left, c_right, du, diffusivity, spacing):
    """Scharfetter–Gummel flux between two nodes, positive from left to right.

    J = (D/d) [B(Δu) c_left − B(−Δu) c_right], Δu = u_right − u_left
    (dimensionless energy, z φ/V_T + W/k_B T).  Units: those of D·c/d.
    """
    return diffusivity / spacing * (bernoulli(du) * c_left - bernoulli(-du) * c_right)


# --------------------------------------------------------------------------
# boundary conditions and species

@dataclass(frozen=True)
class Dirichlet:
    """Fixed value at the boundary (c in mol/m³, or φ in V)."""
    value: float


@dataclass(frozen=True)
class Neumann:
    """Fixed gradient ∂/∂x at the boundary (mol/m⁴ for c, V/m for φ)."""
    gradient: float


@dataclass(frozen=True)
class Flux:
    """Fixed species flux through the boundary face, mol m⁻² s⁻¹, positive
    along +x (so a positive value at the left end feeds the domain)."""
    value: float


@dataclass(frozen=True)
class SurfaceCharge:
    """Wall charge σ (C/m²) at a boundary for the Poisson equation: the field
    points into the electrolyte, ∂φ/∂x = −σ/ε on the left, +σ/ε on the right."""
    sigma: float


@dataclass
class Species:
    """One mobile species.

    valence: z; diffusivity: D in m²/s (number, (n+1,) array on faces, or
    callable of x); left/right: boundary conditions; pmf: potential of mean
    force W(x) in J per particle (number, (n+2,) array on the extended nodes,
    or callable), added to z e φ as the energy that drives drift.
    """
    name: str
    valence: float
    diffusivity: object
    left: object = field(default_factory=lambda: Flux(0.0))
    right: object = field(default_factory=lambda: Flux(0.0))
    pmf: object = 0.0

    def __post_init__(self):
        for side in ("left", "right"):
            bc = getattr(self, side)
            if not isinstance(bc, (Dirichlet, Neumann, Flux)):
                raise TypeError(f"species {self.name!r}: {side} boundary must be Dirichlet, "
                                f"Neumann or Flux, got {bc!r}")
            if isinstance(bc, Dirichlet) and bc.value < 0:
                raise ValueError(f"species {self.name!r}: negative {side} concentration {bc.value}")


@dataclass
class Solution:
    """Result of a solve.

    grid: the grid; concentrations: (M, n) mol/m³ at cell centres;
    potential: (n+2,) V on the extended nodes (boundary faces and centres);
    fluxes: (M, n+1) mol m⁻² s⁻¹ on the faces; iterations: Newton iterations
    of the last solve; time: s (transient solves) or None.
    """
    grid: Grid
    species: Sequence[Species]
    concentrations: np.ndarray
    potential: np.ndarray
    fluxes: np.ndarray
    iterations: int
    time: float | None = None

    @property
    def charge_density(self) -> np.ndarray:
        """(n,) ionic charge density F Σ z_k c_k in C/m³ at cell centres."""
        z = np.array([s.valence for s in self.species])
        return FARADAY * z @ self.concentrations


# --------------------------------------------------------------------------
# solvers

class _FiniteVolumeSystem:
    """Shared machinery: species data on the grid, flux assembly, Newton and
    θ-method time stepping.  Subclasses define the unknowns."""

    def __init__(self, grid: Grid, species: Sequence[Species], temperature: float):
        if not isinstance(grid, Grid):
            raise TypeError(f"grid must be a continuum.grid.Grid, got {type(grid).__name__}")
        if len(species) == 0:
            raise ValueError("at least one species is needed")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature} K")
        self.grid = grid
        self.species = list(species)
        self.temperature = float(temperature)
        self.vt = GAS_CONSTANT * temperature / FARADAY
        n = grid.n_cells
        faces, nodes = grid.faces, grid.nodes
        self._d = grid.node_spacing
        self._h = grid.widths
        self._D = np.array([sample(s.diffusivity, faces, f"{s.name} diffusivity") for s in species])
        if np.any(self._D <= 0):
            raise ValueError("diffusivities must be positive on every face")
        self._w = np.array([sample(s.pmf, nodes, f"{s.name} pmf") for s in species]) / (K_B * temperature)
        self._z = np.array([float(s.valence) for s in species])
        self._cells = np.clip(np.arange(n + 2) - 1, 0, n - 1)   # cell behind each node
        self._nv = len(species) + self._n_potential

    _n_potential = 0  # number of potential unknowns per cell (0 or 1)

    # -- node values as affine functions of cell unknowns ---------------------
    def _node_affine(self, bc_left, bc_right, kind: str):
        """Coefficients (a, b) with node value = a + b * cell value, (n+2,) each."""
        n = self.grid.n_cells
        a = np.zeros(n + 2)
        b = np.ones(n + 2)
        for end, bc, sign in ((0, bc_left, -1.0), (n + 1, bc_right, 1.0)):
            spacing = self._d[0] if end == 0 else self._d[-1]
            if isinstance(bc, Dirichlet):
                a[end], b[end] = bc.value, 0.0
            elif isinstance(bc, Neumann):
                a[end] = sign * bc.gradient * spacing
            elif isinstance(bc, SurfaceCharge) and kind == "potential":
                eps = self._eps_faces[0] if end == 0 else self._eps_faces[-1]
                a[end] = bc.sigma / eps * spacing     # ∂φ/∂x = ∓σ/ε at the left/right wall
            elif isinstance(bc, Flux) and kind == "concentration":
                a[end], b[end] = 0.0, 0.0     # face flux is prescribed instead
            else:
                raise TypeError(f"unsupported {kind} boundary condition {bc!r}")
        return a, b

    def _potential_nodes(self, x):
        """(n+2,) φ on the extended nodes and (n+2,) ∂φ_node/∂φ_cell."""
        raise NotImplementedError

    def _species_fluxes(self, x):
        """Fluxes (M, n+1) and their derivatives for the Jacobian.

        Returns J, dJ/dc_left-node, dJ/dc_right-node, dJ/dφ_left-node,
        dJ/dφ_right-node (each (M, n+1), derivatives w.r.t. the *cell*
        unknowns behind the nodes, zero where a node is fixed).
        """
        n = self.grid.n_cells
        phi, dphi = self._potential_nodes(x)
        M = len(self.species)
        J = np.empty((M, n + 1))
        dcl, dcr, dpl, dpr = (np.zeros((M, n + 1)) for _ in range(4))
        for k, s in enumerate(self.species):
            c = x[self._offset(k)::self._nv]
            a, b = self._c_affine[k]
            cn = a + b * c[self._cells]
            u = self._z[k] * phi / self.vt + self._w[k]
            du = np.diff(u)
            g = self._D[k] / self._d
            Bp, Bm = bernoulli(du), bernoulli(-du)
            J[k] = g * (Bp * cn[:-1] - Bm * cn[1:])
            dcl[k] = g * Bp * b[:-1]
            dcr[k] = -g * Bm * b[1:]
            dJ_ddu = g * (bernoulli_derivative(du) * cn[:-1] + bernoulli_derivative(-du) * cn[1:])
            dpl[k] = -dJ_ddu * self._z[k] / self.vt * dphi[:-1]
            dpr[k] = dJ_ddu * self._z[k] / self.vt * dphi[1:]
            for face, bc in ((0, s.left), (n, s.right)):
                if isinstance(bc, Flux):
                    J[k, face] = bc.value
                    dcl[k, face] = dcr[k, face] = dpl[k, face] = dpr[k, face] = 0.0
        return J, dcl, dcr, dpl, dpr

    def _offset(self, k: int) -> int:
        return self._n_potential + k

    # -- residual and Jacobian -------------------------------------------------
    def _assemble(self, x, x_old=None, dt=None, theta=1.0, flux_old=None):
        """Residual (N,) and sparse Jacobian (N, N) of the discrete system.

        Steady: R_{k,i} = J_{k,i+1} − J_{k,i}.  Transient (θ-method):
        R_{k,i} = h_i (c − c_old)/dt + θ (J_{i+1} − J_i) + (1 − θ)(J_old_{i+1} − J_old_i).
        """
        n, nv = self.grid.n_cells, self._nv
        J, dcl, dcr, dpl, dpr = self._species_fluxes(x)
        R = np.zeros(n * nv)
        rows, cols, vals = [], [], []
        faces = np.arange(n + 1)
        cl, cr = self._cells[faces], self._cells[faces + 1]
        for k in range(len(self.species)):
            off = self._offset(k)
            div = J[k, 1:] - J[k, :-1]
            if dt is not None:
                div = theta * div + (1 - theta) * (flux_old[k, 1:] - flux_old[k, :-1])
                R[off::nv] = self._h * (x[off::nv] - x_old[off::nv]) / dt + div
                rows.append(np.arange(n) * nv + off)
                cols.append(np.arange(n) * nv + off)
                vals.append(self._h / dt)
            else:
                R[off::nv] = div
            scale = theta if dt is not None else 1.0
            # face f adds +J_f to cell f-1 and -J_f to cell f
            for sign, mask_cell in ((1.0, faces - 1), (-1.0, faces)):
                ok = (mask_cell >= 0) & (mask_cell < n)
                row = mask_cell[ok] * nv + off
                for deriv, cell, var in ((dcl, cl, off), (dcr, cr, off)):
                    rows.append(row); cols.append(cell[ok] * nv + var); vals.append(sign * scale * deriv[k, ok])
                if self._n_potential:
                    for deriv, cell in ((dpl, cl), (dpr, cr)):
                        rows.append(row); cols.append(cell[ok] * nv); vals.append(sign * scale * deriv[k, ok])
        self._add_potential_rows(x, R, rows, cols, vals)
        jac = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                            shape=(n * nv, n * nv))
        return R, jac, J

    def _add_potential_rows(self, x, R, rows, cols, vals):
        """Poisson rows (PNP only)."""

    def _newton(self, x, tol, max_iter, **step):
        """Damped Newton: backtracking on the row-equilibrated residual norm,
        concentrations kept non-negative.  Returns (x, fluxes, iterations)."""
        for it in range(1, max_iter + 1):
            R, jac, _ = self._assemble(x, **step)
            scale = 1.0 / np.maximum(abs(jac).max(axis=1).toarray().ravel(), 1e-300)
            Rs = scale * R
            dx = spla.spsolve(sp.diags(scale) @ jac, -Rs)
            if not np.all(np.isfinite(dx)):
                raise np.linalg.LinAlgError("singular Jacobian: check that the boundary "
                                            "conditions determine the solution")
            if self._converged(dx, x, tol):
                x = x + dx
                return x, self._assemble(x, **step)[2], it
            norm0 = np.linalg.norm(Rs)
            lam = 1.0
            while True:
                trial = x + lam * dx
                if np.all(self._concentration_view(trial) >= 0):
                    Rt = scale * self._assemble(trial, **step)[0]
                    if np.linalg.norm(Rt) <= (1 - 1e-4 * lam) * norm0 or lam < 1e-3:
                        break
                lam *= 0.5
                if lam < 1e-6:
                    raise RuntimeError("Newton line search failed: no step keeps the "
                                       "concentrations non-negative")
            x = trial
        raise RuntimeError(f"Newton did not converge in {max_iter} iterations "
                           f"(last scaled residual {np.linalg.norm(Rs):.3e})")

    def _concentration_view(self, x):
        return np.stack([x[self._offset(k)::self._nv] for k in range(len(self.species))])

    def _converged(self, step, x, tol):
        c = self._concentration_view(x)
        dc = self._concentration_view(step)
        cscale = max(np.abs(c).max(), 1e-300)
        ok = np.abs(dc).max() <= tol * cscale
        if self._n_potential:
            ok &= np.abs(step[0::self._nv]).max() <= tol * self.vt
        return bool(ok)

    def _solution(self, x, J, iterations, time=None):
        phi, _ = self._potential_nodes(x)
        return Solution(self.grid, self.species, self._concentration_view(x), phi, J, iterations, time)

    def _initial_vector(self, initial):
        raise NotImplementedError

    def steady(self, initial=None, tol: float = 1e-10, max_iter: int = 100) -> Solution:
        """Steady state.  ``initial``: a :class:`Solution` or an (M, n)
        concentration array (mol/m³) to start Newton from."""
        x, J, it = self._newton(self._initial_vector(initial), tol, max_iter)
        return self._solution(x, J, it)

    def transient(self, initial, times, dt_max: float, theta: float = 1.0,
                  tol: float = 1e-10, max_iter: int = 50) -> list[Solution]:
        """Integrate from t = 0 and return solutions at ``times`` (s, increasing).

        initial: (M, n) concentrations in mol/m³ or a :class:`Solution`;
        dt_max: largest internal step (s); theta: 1 backward Euler, 0.5
        Crank–Nicolson.
        """
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if np.any(np.diff(times) <= 0) or times[0] < 0:
            raise ValueError("times must be non-negative and strictly increasing")
        if dt_max <= 0 or not 0.5 <= theta <= 1.0:
            raise ValueError(f"need dt_max > 0 and 0.5 <= theta <= 1, got {dt_max}, {theta}")
        x = self._initial_vector(initial)
        if self._n_potential:   # make φ consistent with the initial concentrations
            x = self._equilibrate_potential(x)
        t, out, it = 0.0, [], 0
        _, _, J = self._assemble(x)
        for t_out in times:
            while t < t_out - 1e-12 * max(t_out, 1.0):
                dt = min(dt_max, t_out - t)
                x, J, it = self._newton(x.copy(), tol, max_iter, x_old=x, dt=dt, theta=theta, flux_old=J)
                t += dt
            out.append(self._solution(x, J, it, t))
        return out


class NernstPlanck(_FiniteVolumeSystem):
    """Nernst–Planck transport in a *given* potential φ(x) (V).

    potential: number, (n+2,) array on the extended nodes, or callable φ(x).
    Species see u_k = z_k φ/V_T + W_k/k_B T.  The problem is linear, so
    :meth:`steady` converges in one Newton step.
    """

    def __init__(self, grid: Grid, species: Sequence[Species], temperature: float = 298.15,
                 potential=0.0):
        super().__init__(grid, species, temperature)
        if getattr(potential, "quantity", None) == "electrostatic potential":
            for s in self.species:
                if s.valence != 0 and getattr(s.pmf, "quantity", None) == "free energy":
                    raise ValueError(
                        f"species {s.name!r}: its pmf is a free energy estimated from a trajectory, which already "
                        "contains z e φ of that trajectory's field, and the potential is φ(x) from a charge "
                        "density: together they count the field twice. Use the pmf alone, plus only an applied "
                        "potential (see continuum.pipeline)")
        self._phi = sample(potential, grid.nodes, "potential")
        self._c_affine = [self._node_affine(s.left, s.right, "concentration") for s in self.species]

    def _potential_nodes(self, x):
        return self._phi, np.zeros_like(self._phi)

    def _initial_vector(self, initial):
        M, n = len(self.species), self.grid.n_cells
        if initial is None:
            c = np.ones((M, n))
        else:
            c = np.asarray(getattr(initial, "concentrations", initial), dtype=float)
        if c.shape != (M, n):
            raise ValueError(f"initial concentrations must have shape {(M, n)}, got {c.shape}")
        return c.T.ravel().copy()


class PoissonNernstPlanck(_FiniteVolumeSystem):
    """Poisson–Nernst–Planck: species and potential solved together.

    eps_r: relative permittivity (number, (n+1,) array on faces, callable);
    left, right: potential boundary conditions (Dirichlet / Neumann /
    SurfaceCharge); fixed_charge: background charge density in C/m³ at cell
    centres (number, (n,) array, callable).
    """

    _n_potential = 1

    def __init__(self, grid: Grid, species: Sequence[Species], temperature: float = 298.15,
                 eps_r=78.5, left=Dirichlet(0.0), right=Dirichlet(0.0), fixed_charge=0.0):
        self._eps_faces = EPS0 * sample(eps_r, grid.faces, "eps_r")
        super().__init__(grid, species, temperature)
        if np.any(self._eps_faces <= 0):
            raise ValueError("eps_r must be positive")
        self._rho_fixed = sample(fixed_charge, grid.centers, "fixed_charge")
        if not (isinstance(left, Dirichlet) or isinstance(right, Dirichlet)):
            raise ValueError("PNP potential needs a Dirichlet condition on at least one side; "
                             "with two Neumann/SurfaceCharge ends φ is fixed only up to a constant")
        self.left, self.right = left, right
        self._phi_affine = self._node_affine(left, right, "potential")
        self._c_affine = [self._node_affine(s.left, s.right, "concentration") for s in self.species]

    def _potential_nodes(self, x):
        a, b = self._phi_affine
        return a + b * x[0::self._nv][self._cells], b

    def _add_potential_rows(self, x, R, rows, cols, vals):
        """R_i = P_{i+1} − P_i − h_i ρ_i with P_f = −ε_f (φ_{f+1} − φ_f)/d_f."""
        n, nv = self.grid.n_cells, self._nv
        phi, dphi = self._potential_nodes(x)
        g = self._eps_faces / self._d
        P = -g * np.diff(phi)
        conc = self._concentration_view(x)
        rho = FARADAY * self._z @ conc + self._rho_fixed
        R[0::nv] = P[1:] - P[:-1] - self._h * rho
        faces = np.arange(n + 1)
        cl, cr = self._cells[faces], self._cells[faces + 1]
        for sign, cell in ((1.0, faces - 1), (-1.0, faces)):
            ok = (cell >= 0) & (cell < n)
            row = cell[ok] * nv
            rows += [row, row]
            cols += [cl[ok] * nv, cr[ok] * nv]
            vals += [sign * g[ok] * dphi[:-1][ok], -sign * g[ok] * dphi[1:][ok]]
        for k in range(len(self.species)):
            rows.append(np.arange(n) * nv)
            cols.append(np.arange(n) * nv + self._offset(k))
            vals.append(-self._h * FARADAY * self._z[k])

    def _initial_vector(self, initial):
        M, n, nv = len(self.species), self.grid.n_cells, self._nv
        x = np.zeros(n * nv)
        if initial is None:
            conc = np.empty((M, n))
            for k, s in enumerate(self.species):
                ends = [bc.value for bc in (s.left, s.right) if isinstance(bc, Dirichlet)]
                if not ends:
                    raise ValueError(f"species {s.name!r} has no Dirichlet boundary: give "
                                     f"initial concentrations")
                conc[k] = np.mean(ends)
            x[0::nv] = self._linear_potential_guess()
        else:
            conc = np.asarray(getattr(initial, "concentrations", initial), dtype=float)
            if conc.shape != (M, n):
                raise ValueError(f"initial concentrations must have shape {(M, n)}, got {conc.shape}")
            if isinstance(initial, Solution):
                x[0::nv] = initial.potential[1:-1]
            else:
                x[0::nv] = self._linear_potential_guess()
        for k in range(M):
            x[self._offset(k)::nv] = conc[k]
        return x

    def steady(self, initial=None, tol: float = 1e-10, max_iter: int = 100) -> Solution:
        """Steady state.  ``initial``: a :class:`Solution` or an (M, n) concentration array (mol/m³).

        Without ``initial``, Newton starts from the Poisson–Boltzmann solution with the same potential
        boundary conditions (:meth:`boltzmann_guess`), which holds the double layers a linear potential
        guess lacks; if that fails, from the linear guess; if that fails too, by continuation in the
        boundary potentials (0 → the given values, steps of 1/4 halved on failure down to 1/64, each
        solve starting from the last).
        A failure of all three raises RuntimeError saying what was tried and what to change.
        """
        if initial is not None:
            return super().steady(initial, tol, max_iter)
        tried = []
        for name, start in (("a Poisson–Boltzmann guess", self.boltzmann_guess),
                            ("a linear potential guess", lambda: self._initial_vector(None))):
            try:
                x, J, it = self._newton(start(), tol, max_iter)
                return self._solution(x, J, it)
            except (RuntimeError, ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
                tried.append(f"from {name}: {exc}")
        try:
            return self._continuation(tol, max_iter)
        except (RuntimeError, ValueError, np.linalg.LinAlgError, FloatingPointError) as exc:
            tried.append(f"by continuation in the boundary potentials: {exc}")
        raise RuntimeError(
            "steady PNP did not converge (" + "; ".join(tried) + "). Try a grid that resolves the Debye "
            "length at charged walls (Grid.graded with a first cell of about λ_D/50), a larger max_iter, or "
            "continuation by hand: solve an easier problem (lower voltage, closer concentrations) and pass "
            "its Solution as initial")

    def boltzmann_guess(self) -> np.ndarray:
        """Unknown vector of the Poisson–Boltzmann equilibrium with this problem's potential boundary
        conditions: c_k = c_k⁰ exp(−z_k φ/V_T − W_k/k_B T), c_k⁰ fixed by the species' Dirichlet
        concentration at the end whose potential is Dirichlet (the other end if the species has none there).
        Raises ValueError when a species has no Dirichlet concentration at either end."""
        ref = "right" if isinstance(self.right, Dirichlet) else "left"
        other = "left" if ref == "right" else "right"
        c0 = np.empty(len(self.species))
        for k, sp_ in enumerate(self.species):
            side = ref if isinstance(getattr(sp_, ref), Dirichlet) else other
            bc = getattr(sp_, side)
            if not isinstance(bc, Dirichlet):
                raise ValueError(f"species {sp_.name!r} has no Dirichlet concentration for a Boltzmann guess")
            end = -1 if side == "right" else 0
            phi_end = getattr(self, side).value if isinstance(getattr(self, side), Dirichlet) else \
                getattr(self, ref).value
            c0[k] = bc.value * np.exp(self._z[k] * phi_end / self.vt + self._w[k, end])
        kt = K_B * self.temperature
        pmfs = [self._w[k, 1:-1] * kt for k in range(len(self.species))]
        phi_nodes, conc = poisson_boltzmann(self.grid, c0, self._z, self.temperature, self._eps_faces / EPS0,
                                            self.left, self.right, pmfs=pmfs, fixed_charge=self._rho_fixed)
        x = np.zeros(self.grid.n_cells * self._nv)
        x[0::self._nv] = phi_nodes[1:-1]
        for k in range(len(self.species)):
            x[self._offset(k)::self._nv] = conc[k]
        return x

    def _continuation(self, tol, max_iter) -> Solution:
        """Raise the Dirichlet boundary potentials from 0 to their values, halving the step on failure."""
        import copy
        target = (self.left, self.right)

        def at(s):
            sub = copy.copy(self)
            sub.left, sub.right = (Dirichlet(bc.value * s) if isinstance(bc, Dirichlet) else bc for bc in target)
            sub._phi_affine = sub._node_affine(sub.left, sub.right, "potential")
            return sub

        s, ds = 0.0, 0.25
        x, J, it = at(0.0)._newton(at(0.0)._initial_vector(None), tol, max_iter)
        while s < 1.0:
            trial = min(1.0, s + ds)
            try:
                x_new, J, it = at(trial)._newton(x.copy(), tol, max_iter)
            except (RuntimeError, np.linalg.LinAlgError, FloatingPointError):
                ds /= 2
                if ds < 1.0 / 64:
                    raise RuntimeError(f"continuation stalled at {100 * s:.0f} % of the boundary potentials")
                continue
            s, x = trial, x_new
            ds = min(2 * ds, 0.5)
        return self._solution(x, J, it)

    def _linear_potential_guess(self):
        values = [bc.value if isinstance(bc, Dirichlet) else None for bc in (self.left, self.right)]
        known = [v for v in values if v is not None]
        if len(known) == 2:
            s = (self.grid.centers - self.grid.faces[0]) / self.grid.length
            return values[0] + s * (values[1] - values[0])
        return np.full(self.grid.n_cells, known[0] if known else 0.0)

    def _equilibrate_potential(self, x):
        """Solve the (linear) Poisson rows for φ at fixed concentrations."""
        R, jac, _ = self._assemble(x)
        idx = np.arange(0, x.size, self._nv)
        dphi = spla.spsolve(jac[idx][:, idx].tocsc(), -R[idx])
        x = x.copy()
        x[idx] += dphi
        return x


def poisson_boltzmann(grid: Grid, bulk_concentrations, valences, temperature: float = 298.15,
                      eps_r=78.5, left=Dirichlet(0.0), right=Dirichlet(0.0), pmfs=None,
                      fixed_charge=0.0, tol: float = 1e-10, max_iter: int = 100):
    """Equilibrium Poisson–Boltzmann potential.

    −∂/∂x(ε_r ε0 ∂φ/∂x) = F Σ_k z_k c_k⁰ exp(−z_k φ/V_T − W_k/k_B T) + ρ_fixed,

    solved by Newton on the finite-volume grid (steps clipped to one thermal
    voltage, converged when the largest step is below tol·V_T).  bulk_concentrations
    c_k⁰ in mol/m³ and valences z_k: (M,); pmfs: None or a list of M fields
    W_k(x) in J (number, (n,) array, callable) at cell centres.
    Returns (phi (n+2,) V on the extended nodes, concentrations (M, n) mol/m³).
    """
    c0 = np.atleast_1d(np.asarray(bulk_concentrations, dtype=float))
    z = np.atleast_1d(np.asarray(valences, dtype=float))
    if c0.shape != z.shape:
        raise ValueError(f"bulk_concentrations {c0.shape} and valences {z.shape} differ in shape")
    bad = np.flatnonzero(~(c0 >= 0))
    if bad.size:
        raise ValueError(f"bulk_concentrations[{bad[0]}] = {c0[bad[0]]}: concentrations must be >= 0 (mol/m³)")
    vt = GAS_CONSTANT * temperature / FARADAY
    w = np.zeros((z.size, grid.n_cells)) if pmfs is None else np.array(
        [sample(p, grid.centers, "pmf") for p in pmfs]) / (K_B * temperature)
    species = [Species(f"ion{k}", zk, 1.0) for k, zk in enumerate(z)]
    system = PoissonNernstPlanck(grid, species, temperature, eps_r, left, right, fixed_charge)

    def boltzmann(phi):
        return c0[:, None] * np.exp(-z[:, None] * phi / vt - w)

    phi = system._linear_potential_guess()
    x = np.zeros(grid.n_cells * system._nv)
    for it in range(max_iter):
        c = boltzmann(phi)
        x[0::system._nv] = phi
        for k in range(z.size):
            x[system._offset(k)::system._nv] = c[k]
        R, jac, _ = system._assemble(x)
        poisson = jac[0::system._nv][:, 0::system._nv].tocsc()
        # chain rule: ∂R/∂φ_i += Σ_k ∂R/∂c_k,i · ∂c_k,i/∂φ_i
        dc = -(z[:, None] / vt) * c
        drho = sp.diags(-grid.widths * FARADAY * (z @ dc))
        r = R[0::system._nv]
        step = spla.spsolve((poisson + drho).tocsc(), -r)
        step = np.clip(step, -vt, vt)          # at most one thermal voltage per iteration
        phi = phi + step
        if np.abs(step).max() < tol * vt:
            break
    else:
        raise RuntimeError(f"Poisson–Boltzmann Newton did not converge in {max_iter} iterations")
    x[0::system._nv] = phi
    phi_nodes, _ = system._potential_nodes(x)
    return phi_nodes, boltzmann(phi)
