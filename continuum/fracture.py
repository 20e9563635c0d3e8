"""Linear-elastic fracture mechanics: K-fields, energy release rate, Griffith,
J-integral, surface energy, thin-strip loading and fitting K.

Frame: the crack lies along −x behind a tip at the origin, the crack plane is
y = 0, the front runs along z.  Stresses are Voigt triples (σ_xx, σ_yy,
σ_xy); displacement gradients H_ij = ∂u_i/∂x_j have shape (..., 2, 2).
Units are the caller's, used consistently (e.g. GPa, Å, GPa·√Å for K and
GPa·Å = 0.1 J/m² for G; or k, a, k·a^{-1/2} for a 2D lattice, where stresses
are forces per length).

Formulas (Anderson, *Fracture Mechanics*; Sih, Paris & Irwin 1965):

* isotropic mode I/II fields with Kolosov's κ = 3 − 4ν (plane strain) or
  (3 − ν)/(1 + ν) (plane stress, and 2D sheets with their 2D E, ν);
* G = (K_I² + K_II²)/E', E' = E/(1 − ν²) (plane strain) or E (plane stress),
  so the Griffith load is k_G = sqrt(2γ E') — sqrt(2γE/(1 − ν²)) in plane strain;
* anisotropic mode I: roots μ₁, μ₂ (Im μ > 0) of
  b₁₁μ⁴ − 2b₁₆μ³ + (2b₁₂ + b₆₆)μ² − 2b₂₆μ + b₂₂ = 0 with b the plane-strain
  reduced compliance in the crack frame, and G = −(K_I²/2) b₂₂ Im[(μ₁ + μ₂)/(μ₁μ₂)];
* J = ∮_Γ (W n_x − t_i ∂u_i/∂x) ds, and its domain form
  J = ∫_A (σ_ij ∂u_i/∂x − W δ_1j) ∂q/∂x_j dA with q = 1 near the tip, 0 outside;
* surface energy γ = (E_slab − N E_bulk) / 2A; thin strip of height h under
  uniaxial strain ε: G = ½ M ε² h with M the uniaxial-strain modulus.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


# ---------------------------------------------------------------------------
# isotropic crack

def plane_modulus(E: float, nu: float, plane: str = "strain") -> float:
    """E' = E/(1 − ν²) in plane strain, E in plane stress (and in 2D sheets)."""
    _check_elastic(E, nu)
    if plane == "strain":
        return E / (1 - nu**2)
    if plane == "stress":
        return E
    raise ValueError(f"plane must be 'strain' or 'stress', got {plane!r}")


def uniaxial_strain_modulus(E: float, nu: float, plane: str = "strain") -> float:
    """M = σ_yy/ε_yy with ε_xx = 0 (and ε_zz = 0 in plane strain):
    E(1 − ν)/((1 + ν)(1 − 2ν)) in plane strain, E/(1 − ν²) in plane stress / 2D."""
    _check_elastic(E, nu)
    if plane == "strain":
        return E * (1 - nu) / ((1 + nu) * (1 - 2 * nu))
    if plane == "stress":
        return E / (1 - nu**2)
    raise ValueError(f"plane must be 'strain' or 'stress', got {plane!r}")


def _check_elastic(E, nu):
    if E <= 0:
        raise ValueError(f"Young's modulus must be positive, got {E}")
    if not -1 < nu < 0.5:
        raise ValueError(f"Poisson's ratio must lie in (-1, 0.5), got {nu}")


def energy_release_rate(K_I: float, E: float, nu: float, plane: str = "strain", K_II: float = 0.0):
    """G = (K_I² + K_II²) / E' (isotropic)."""
    return (np.asarray(K_I) ** 2 + np.asarray(K_II) ** 2) / plane_modulus(E, nu, plane)


def griffith_k(gamma: float, E: float, nu: float, plane: str = "strain") -> float:
    """k_G = sqrt(2γ E'), the mode-I load at which G = 2γ."""
    if gamma <= 0:
        raise ValueError(f"surface energy must be positive, got {gamma}")
    return float(np.sqrt(2 * gamma * plane_modulus(E, nu, plane)))


def griffith_criterion(G, gamma: float):
    """True where the crack may advance: G ≥ 2γ (Griffith)."""
    return np.asarray(G) >= 2 * gamma


def _polar(x, y):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return np.hypot(x, y), np.arctan2(y, x)


@dataclass(frozen=True)
class IsotropicCrack:
    """Williams near-tip fields of an isotropic solid (E, ν; plane strain or
    stress).  K_I, K_II in stress·√length."""
    E: float
    nu: float
    plane: str = "strain"

    def __post_init__(self):
        plane_modulus(self.E, self.nu, self.plane)    # validates

    @property
    def shear_modulus(self) -> float:
        return self.E / (2 * (1 + self.nu))

    @property
    def kappa(self) -> float:
        return 3 - 4 * self.nu if self.plane == "strain" else (3 - self.nu) / (1 + self.nu)

    def displacement(self, x, y, K_I: float = 1.0, K_II: float = 0.0) -> np.ndarray:
        """u (..., 2) at points (x, y) relative to the tip."""
        r, t = _polar(x, y)
        k, mu = self.kappa, self.shear_modulus
        f = np.sqrt(r / (2 * np.pi)) / (2 * mu)
        c, s = np.cos(t / 2), np.sin(t / 2)
        ux = K_I * f * c * (k - 1 + 2 * s**2) + K_II * f * s * (k + 1 + 2 * c**2)
        uy = K_I * f * s * (k + 1 - 2 * c**2) - K_II * f * c * (k - 1 - 2 * s**2)
        return np.stack([ux, uy], axis=-1)

    def stress(self, x, y, K_I: float = 1.0, K_II: float = 0.0) -> np.ndarray:
        """(σ_xx, σ_yy, σ_xy) (..., 3) at points (x, y) relative to the tip."""
        r, t = _polar(x, y)
        f = 1 / np.sqrt(2 * np.pi * r)
        c, s, c3, s3 = np.cos(t / 2), np.sin(t / 2), np.cos(3 * t / 2), np.sin(3 * t / 2)
        sxx = K_I * f * c * (1 - s * s3) - K_II * f * s * (2 + c * c3)
        syy = K_I * f * c * (1 + s * s3) + K_II * f * s * c * c3
        sxy = K_I * f * c * s * c3 + K_II * f * c * (1 - s * s3)
        return np.stack([sxx, syy, sxy], axis=-1)

    @property
    def compliance(self) -> np.ndarray:
        """(3, 3) in-plane compliance: (ε_xx, ε_yy, 2ε_xy) = b (σ_xx, σ_yy, σ_xy)."""
        E, nu = self.E, self.nu
        if self.plane == "strain":
            a11, a12 = (1 - nu**2) / E, -nu * (1 + nu) / E
        else:
            a11, a12 = 1 / E, -nu / E
        return np.array([[a11, a12, 0], [a12, a11, 0], [0, 0, 2 * (1 + nu) / E]])

    def energy_release_rate(self, K_I, K_II=0.0):
        return energy_release_rate(K_I, self.E, self.nu, self.plane, K_II)

    def griffith_k(self, gamma: float) -> float:
        return griffith_k(gamma, self.E, self.nu, self.plane)


# ---------------------------------------------------------------------------
# anisotropic (cubic) crack

def cubic_stiffness(C11: float, C12: float, C44: float) -> np.ndarray:
    """(6, 6) Voigt stiffness of a cubic crystal in its cube axes."""
    C = np.zeros((6, 6))
    C[:3, :3] = C12
    C[np.arange(3), np.arange(3)] = C11
    C[np.arange(3, 6), np.arange(3, 6)] = C44
    return C


_VOIGT = np.array([[0, 5, 4], [5, 1, 3], [4, 3, 2]])


def rotate_stiffness(C: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Voigt stiffness in a rotated frame: C'_ijkl = R_ia R_jb R_kc R_ld C_abcd;
    rows of R are the new axes in the old frame."""
    C4 = C[_VOIGT[:, :, None, None], _VOIGT[None, None, :, :]]
    C4 = np.einsum("ia,jb,kc,ld,abcd->ijkl", R, R, R, R, C4)
    out = np.empty((6, 6))
    pairs = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
    for I, (i, j) in enumerate(pairs):
        for J, (k, l) in enumerate(pairs):
            out[I, J] = C4[i, j, k, l]
    return out


def crack_frame(propagation, plane_normal, front=None) -> np.ndarray:
    """(3, 3) rotation whose rows are unit vectors along the propagation
    direction (x), the crack-plane normal (y) and the front (z), from Miller
    indices in the crystal frame."""
    x = np.asarray(propagation, dtype=float)
    y = np.asarray(plane_normal, dtype=float)
    z = np.cross(x, y) if front is None else np.asarray(front, dtype=float)
    R = np.array([v / np.linalg.norm(v) for v in (x, y, z)])
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-10) or np.linalg.det(R) < 0:
        raise ValueError(f"propagation {propagation}, normal {plane_normal}, front {front} "
                         f"are not a right-handed orthogonal set")
    return R


class AnisotropicCrack:
    """Mode-I near-tip field of a rectilinearly anisotropic solid in plane
    strain (Sih, Paris & Irwin).

    stiffness: (6, 6) Voigt stiffness in the crystal frame (e.g.
    :func:`cubic_stiffness`); frame: (3, 3) rows = crack x, y, z in the
    crystal frame (:func:`crack_frame`).  The front direction must be normal
    to a mirror plane so in-plane and anti-plane deformation decouple.
    """

    def __init__(self, stiffness, frame=np.eye(3)):
        C = rotate_stiffness(np.asarray(stiffness, dtype=float), np.asarray(frame, dtype=float))
        S = np.linalg.inv(C)
        ip = [0, 1, 5]
        coupling = np.abs(S[np.ix_(ip, [3, 4])]).max()
        if coupling > 1e-8 * np.abs(S).max():
            raise ValueError("this crack frame couples in-plane and anti-plane deformation; choose "
                             "a front along a 2-fold axis (normal to a mirror plane)")
        b = S[np.ix_(ip, ip)] - np.outer(S[ip, 2], S[2, ip]) / S[2, 2]
        self.compliance = b
        b11, b12, b16, b22, b26, b66 = b[0, 0], b[0, 1], b[0, 2], b[1, 1], b[1, 2], b[2, 2]
        roots = np.roots([b11, -2 * b16, 2 * b12 + b66, -2 * b26, b22])
        mu = np.sort_complex(roots[roots.imag > 0])
        if mu.size != 2 or abs(mu[0] - mu[1]) < 1e-6 * abs(mu[0]):
            raise ValueError("the material is (nearly) isotropic in this plane: the roots μ₁, μ₂ "
                             "coincide; use IsotropicCrack")
        self.mu = mu
        self.p = b11 * mu**2 - b16 * mu + b12
        self.q = b12 * mu - b26 + b22 / mu

    def _z(self, x, y):
        r, t = _polar(x, y)
        return r, np.sqrt(np.cos(t)[..., None] + self.mu * np.sin(t)[..., None])

    def displacement(self, x, y, K_I: float = 1.0) -> np.ndarray:
        """u (..., 2) relative to the tip."""
        r, z = self._z(x, y)
        (m1, m2), (p1, p2), (q1, q2) = self.mu, self.p, self.q
        f = K_I * np.sqrt(2 * r / np.pi)
        ux = f * np.real((m1 * p2 * z[..., 1] - m2 * p1 * z[..., 0]) / (m1 - m2))
        uy = f * np.real((m1 * q2 * z[..., 1] - m2 * q1 * z[..., 0]) / (m1 - m2))
        return np.stack([ux, uy], axis=-1)

    def stress(self, x, y, K_I: float = 1.0) -> np.ndarray:
        """(σ_xx, σ_yy, σ_xy) (..., 3) relative to the tip."""
        r, z = self._z(x, y)
        m1, m2 = self.mu
        f = K_I / np.sqrt(2 * np.pi * r)
        sxx = f * np.real(m1 * m2 / (m1 - m2) * (m2 / z[..., 1] - m1 / z[..., 0]))
        syy = f * np.real(1 / (m1 - m2) * (m1 / z[..., 1] - m2 / z[..., 0]))
        sxy = f * np.real(m1 * m2 / (m1 - m2) * (1 / z[..., 0] - 1 / z[..., 1]))
        return np.stack([sxx, syy, sxy], axis=-1)

    def energy_release_rate(self, K_I):
        """G = −(K_I²/2) b₂₂ Im[(μ₁ + μ₂)/(μ₁ μ₂)]."""
        m1, m2 = self.mu
        return -0.5 * np.asarray(K_I) ** 2 * self.compliance[1, 1] * np.imag((m1 + m2) / (m1 * m2))

    def griffith_k(self, gamma: float) -> float:
        """K_I at which G = 2γ."""
        if gamma <= 0:
            raise ValueError(f"surface energy must be positive, got {gamma}")
        return float(np.sqrt(2 * gamma / self.energy_release_rate(1.0)))


# ---------------------------------------------------------------------------
# J-integral

def strain_energy_density(stress, compliance) -> np.ndarray:
    """W = ½ σ·b·σ (linear elasticity) for Voigt stresses (..., 3)."""
    stress = np.asarray(stress, dtype=float)
    return 0.5 * np.einsum("...i,ij,...j->...", stress, compliance, stress)


def _voigt_to_tensor(stress):
    s = np.asarray(stress, dtype=float)
    return np.stack([np.stack([s[..., 0], s[..., 2]], -1), np.stack([s[..., 2], s[..., 1]], -1)], -2)


def circular_contour(radius: float, n: int = 200, center=(0.0, 0.0)):
    """Points (n, 2), outward normals (n, 2) and arc-length weights (n,) of a
    circle around the tip from the lower crack face (θ = −π) to the upper
    (θ = π), Gauss–Legendre in θ."""
    t, w = np.polynomial.legendre.leggauss(n)
    theta = np.pi * t
    normals = np.stack([np.cos(theta), np.sin(theta)], axis=-1)
    return np.asarray(center) + radius * normals, normals, np.pi * w * radius


def j_integral_contour(normals, weights, stress, grad_u, energy_density) -> float:
    """J = Σ_k w_k [W n_x − n_j σ_ij ∂u_i/∂x] on contour points.

    normals: (n, 2) outward unit normals; weights: (n,) arc lengths;
    stress: (n, 3) Voigt; grad_u: (n, 2, 2) with H_ij = ∂u_i/∂x_j;
    energy_density: (n,).
    """
    sig = _voigt_to_tensor(stress)
    traction = np.einsum("nij,nj->ni", sig, normals)
    integrand = energy_density * normals[:, 0] - np.einsum("ni,ni->n", traction, grad_u[:, :, 0])
    return float(np.sum(weights * integrand))


def displacement_gradient(displacement, points, step: float) -> np.ndarray:
    """Central-difference H_ij = ∂u_i/∂x_j (n, 2, 2) of a callable
    displacement(x, y) → (..., 2) at points (n, 2)."""
    x, y = points[:, 0], points[:, 1]
    gx = (displacement(x + step, y) - displacement(x - step, y)) / (2 * step)
    gy = (displacement(x, y + step) - displacement(x, y - step)) / (2 * step)
    return np.stack([gx, gy], axis=-1)


def j_integral_field(crack, K_I: float, radii, n_points: int = 200, **field_kwargs) -> np.ndarray:
    """J on circular contours of the given radii for a closed-form field
    (an :class:`IsotropicCrack` or :class:`AnisotropicCrack` at load K_I;
    ``field_kwargs`` such as K_II go to the field functions).
    Returns (len(radii),) — equal values demonstrate path independence."""
    out = []
    for r in np.atleast_1d(radii):
        pts, nrm, w = circular_contour(r, n_points)
        sig = crack.stress(pts[:, 0], pts[:, 1], K_I, **field_kwargs)
        H = displacement_gradient(lambda x, y: crack.displacement(x, y, K_I, **field_kwargs), pts, 1e-6 * r)
        out.append(j_integral_contour(nrm, w, sig, H, strain_energy_density(sig, crack.compliance)))
    return np.array(out)


def j_integral_domain(positions, volumes, stress, grad_u, energy_density, tip,
                      r_inner: float, r_outer: float) -> float:
    """Domain (equivalent-area) J-integral over scattered points, e.g. atoms.

    J = Σ_a V_a (σ_ij H_i1 − W δ_1j) ∂q/∂x_j with q = 1 for r < r_inner,
    (r_outer − r)/(r_outer − r_inner) in the annulus, 0 outside.
    positions: (N, 2) reference positions; volumes: (N,) areas (2D) or
    volumes per unit thickness; stress: (N, 3) Voigt or (N, 2, 2) σ_ij with
    i the displacement's component and j the reference direction (at finite
    strain the first Piola–Kirchhoff stress, with W per reference volume);
    grad_u: (N, 2, 2); energy_density: (N,); tip: (2,).
    """
    if not 0 <= r_inner < r_outer:
        raise ValueError(f"need 0 <= r_inner < r_outer, got {r_inner}, {r_outer}")
    d = np.asarray(positions, dtype=float) - np.asarray(tip, dtype=float)
    r = np.hypot(d[:, 0], d[:, 1])
    ring = (r > r_inner) & (r < r_outer)
    dq = np.zeros_like(d)
    dq[ring] = -d[ring] / (r[ring, None] * (r_outer - r_inner))
    stress = np.asarray(stress, dtype=float)
    sig = stress if stress.ndim == 3 else _voigt_to_tensor(stress)
    term = np.einsum("nij,ni->nj", sig, grad_u[:, :, 0])
    term[:, 0] -= energy_density
    return float(np.sum(volumes * np.einsum("nj,nj->n", term, dq)))


def path_independence(j_values) -> float:
    """Relative spread (max − min)/|mean| of J over several contours."""
    j = np.asarray(j_values, dtype=float)
    return float(np.ptp(j) / abs(j.mean()))


# ---------------------------------------------------------------------------
# surface energy, thin strip

def surface_energy(e_slab: float, n_atoms: int, e_bulk_per_atom: float, area: float) -> float:
    """γ = (E_slab − N E_bulk) / 2A (two free surfaces of area A each)."""
    if area <= 0:
        raise ValueError(f"surface area must be positive, got {area}")
    return (e_slab - n_atoms * e_bulk_per_atom) / (2 * area)


def slab_surface_energy(slab, bulk, axis: int = 2) -> float:
    """γ from two ``ase.Atoms`` with calculators attached: a slab whose
    surfaces are normal to cell vector ``axis`` and a bulk reference; A is
    the slab cell's cross-section |a_j × a_k|.  Units: those of the
    calculator (eV/Å² with ASE)."""
    j, k = [i for i in range(3) if i != axis]
    area = float(np.linalg.norm(np.cross(slab.cell[j], slab.cell[k])))
    return surface_energy(slab.get_potential_energy(), len(slab),
                          bulk.get_potential_energy() / len(bulk), area)


def thin_strip_energy_release_rate(strain, modulus: float, height: float):
    """G = ½ M ε² h for a long strip of height h clamped at uniaxial strain ε
    (M: uniaxial-strain modulus, :func:`uniaxial_strain_modulus`)."""
    return 0.5 * modulus * np.asarray(strain) ** 2 * height


def thin_strip_critical_strain(G_c: float, modulus: float, height: float) -> float:
    """ε_c = sqrt(2 G_c / (M h)): the strain at which the strip's G reaches G_c."""
    if G_c <= 0 or modulus <= 0 or height <= 0:
        raise ValueError(f"G_c, modulus and height must be positive, got {G_c}, {modulus}, {height}")
    return float(np.sqrt(2 * G_c / (modulus * height)))


# ---------------------------------------------------------------------------
# fitting K to a displacement field

@dataclass
class KFit:
    """K (stress·√length), tip (2,), rigid translation (2,) and RMS residual
    of the fitted displacements."""
    K: float
    tip: np.ndarray
    translation: np.ndarray
    rms_residual: float


def fit_k_field(crack, positions, displacements, tip_guess=(0.0, 0.0), fit_tip: bool = True,
                r_min: float = 0.0, r_max: float = np.inf) -> KFit:
    """Least-squares fit of u ≈ K u_K(x − tip) + t to measured displacements.

    crack: an :class:`IsotropicCrack` or :class:`AnisotropicCrack`;
    positions: (N, 2) reference positions; displacements: (N, 2);
    only points with r_min ≤ |x − tip_guess| ≤ r_max are used.  K and t
    enter linearly and are solved for exactly at each trial tip; the tip is
    optimised with scipy's least_squares when ``fit_tip``.
    """
    from scipy.optimize import least_squares

    pos = np.asarray(positions, dtype=float)
    u = np.asarray(displacements, dtype=float)
    if pos.shape != u.shape or pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions {pos.shape} and displacements {u.shape} must both be (N, 2)")
    r = np.hypot(*(pos - np.asarray(tip_guess)).T)
    sel = (r >= r_min) & (r <= r_max)
    if sel.sum() < 4:
        raise ValueError("fewer than 4 points in the fitting annulus")
    pos, u = pos[sel], u[sel]

    def linear(tip):
        basis = crack.displacement(pos[:, 0] - tip[0], pos[:, 1] - tip[1], 1.0)
        A = np.zeros((2 * len(pos), 3))
        A[:, 0] = basis.ravel()
        A[0::2, 1] = 1.0
        A[1::2, 2] = 1.0
        coef, *_ = np.linalg.lstsq(A, u.ravel(), rcond=None)
        return coef, A @ coef - u.ravel()

    tip = np.asarray(tip_guess, dtype=float)
    if fit_tip:
        tip = least_squares(lambda t: linear(t)[1], tip, x_scale=1.0).x
    coef, res = linear(tip)
    return KFit(float(coef[0]), tip, coef[1:], float(np.sqrt(np.mean(res**2))))
