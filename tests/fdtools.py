"""Shared test helpers: finite-difference forces and small systems."""
import numpy as np

from hybrid.system import AtomicSystem

WATER = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]


def fd_forces(potential, system, h=1e-3, atoms=None):
    """Central-difference forces -dE/dR (eV/Å) on ``atoms`` (default: all)."""
    atoms = range(len(system)) if atoms is None else atoms
    out = np.zeros((len(system), 3))
    for a in atoms:
        for k in range(3):
            x = system.positions.copy()
            x[a, k] += h
            ep = potential.compute(system.with_positions(x)).energy
            x[a, k] -= 2 * h
            em = potential.compute(system.with_positions(x)).energy
            out[a, k] = -(ep - em) / (2 * h)
    return out


def water_box(n_side=2, spacing=3.1, seed=0, jitter=0.1):
    """n_side³ waters on a cubic lattice in a periodic box (Å)."""
    rng = np.random.default_rng(seed)
    pos, num = [], []
    base = np.array(WATER)
    for i in range(n_side):
        for j in range(n_side):
            for k in range(n_side):
                rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
                pos += list(base @ rot.T + spacing * np.array([i, j, k]) + rng.normal(scale=jitter, size=3))
                num += [8, 1, 1]
    L = spacing * n_side
    return AtomicSystem(num, np.array(pos), cell=np.eye(3) * L, pbc=True)


def fd_jacobian(f, x, h=1e-5):
    """Central differences of an array-valued f with respect to every element of x (N, 3): shape
    f(x).shape + (N, 3)."""
    out = []
    for idx in np.ndindex(*x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        out.append((np.asarray(f(xp)) - np.asarray(f(xm))) / (2 * h))
    out = np.array(out)
    return np.moveaxis(out, 0, -1).reshape(out.shape[1:] + x.shape)
