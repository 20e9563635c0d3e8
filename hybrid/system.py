"""The atomic system: what every potential takes in.

Units: positions and cell in Å, charges in e. ``cell`` rows are the lattice
vectors a, b, c (shape (3, 3)); ``pbc`` has one flag per lattice vector.
"""
from __future__ import annotations

import copy

from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

_SYMBOLS = None


def chemical_symbols() -> list[str]:
    global _SYMBOLS
    if _SYMBOLS is None:
        from ase.data import chemical_symbols as s
        _SYMBOLS = list(s)
    return _SYMBOLS


def symbol(z: int) -> str:
    return chemical_symbols()[int(z)]


def atomic_number(sym: str) -> int:
    try:
        return chemical_symbols().index(sym.capitalize() if len(sym) > 1 else sym.upper())
    except ValueError:
        raise InputError(f"unknown element symbol {sym!r}") from None


@dataclass
class AtomicSystem:
    """Atoms and the electronic state asked of them.

    numbers : (N,) int, atomic numbers
    positions : (N, 3) float, Å
    cell : (3, 3) float, Å, rows are lattice vectors (zeros if not periodic)
    pbc : (3,) bool
    charge : total charge in e
    multiplicity : 2S+1
    ext_charges : (M,) float, e, external point charges (electrostatic embedding)
    ext_positions : (M, 3) float, Å, their positions
    ext_radii : (M,) float, Å, Gaussian widths σ_J of the charges
        (ρ_J ∝ exp(-|r - R_J|²/σ_J²)), or None for point charges
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray = field(default_factory=lambda: np.zeros((3, 3)))
    pbc: np.ndarray = field(default_factory=lambda: np.zeros(3, bool))
    charge: int = 0
    multiplicity: int = 1
    ext_charges: np.ndarray | None = None
    ext_positions: np.ndarray | None = None
    ext_radii: np.ndarray | None = None

    def __post_init__(self):
        self.numbers = np.asarray(self.numbers, dtype=int).reshape(-1)
        n = len(self.numbers)
        self.positions = _array("positions", self.positions, (n, 3))
        self.cell = _array("cell", self.cell, (3, 3))
        pbc = np.asarray(self.pbc, dtype=bool)
        self.pbc = np.repeat(pbc, 3) if pbc.ndim == 0 else pbc
        if self.pbc.shape != (3,):
            raise InputError(f"pbc must have 3 flags, got shape {self.pbc.shape}")
        for k, flag in enumerate(self.pbc):
            if flag and np.linalg.norm(self.cell[k]) == 0:
                raise InputError(f"pbc[{k}] is set but cell vector {k} is zero")
        if np.any(self.numbers < 1) or np.any(self.numbers > 118):
            bad = int(np.flatnonzero((self.numbers < 1) | (self.numbers > 118))[0])
            raise InputError(f"atom {bad}: atomic number {self.numbers[bad]} is not an element")
        if int(self.multiplicity) < 1:
            raise InputError(f"multiplicity must be >= 1, got {self.multiplicity}")
        if (self.ext_charges is None) != (self.ext_positions is None):
            raise InputError("ext_charges and ext_positions must be given together")
        if self.ext_charges is not None:
            self.ext_charges = np.asarray(self.ext_charges, float).reshape(-1)
            m = len(self.ext_charges)
            self.ext_positions = _array("ext_positions", self.ext_positions, (m, 3))
            if not np.all(np.isfinite(self.ext_charges)):
                raise InputError("ext_charges contain NaN or inf")
            if self.ext_radii is not None:
                self.ext_radii = _array("ext_radii", np.broadcast_to(np.asarray(self.ext_radii, float), (m,)), (m,))
                if np.any(self.ext_radii <= 0):
                    raise InputError(f"ext_radii must be positive (Å), got {float(self.ext_radii.min())}")
        elif self.ext_radii is not None:
            raise InputError("ext_radii given without ext_charges")

    # -- conveniences -------------------------------------------------------
    def __len__(self) -> int:
        return len(self.numbers)

    @property
    def symbols(self) -> list[str]:
        return [symbol(z) for z in self.numbers]

    @property
    def n_ext(self) -> int:
        return 0 if self.ext_charges is None else len(self.ext_charges)

    @property
    def periodic(self) -> bool:
        return bool(self.pbc.any())

    def n_electrons(self) -> int:
        return int(self.numbers.sum()) - int(self.charge)

    def check_spin(self) -> None:
        """Raise if the electron count cannot have the multiplicity asked."""
        ne, mult = self.n_electrons(), int(self.multiplicity)
        if ne < 0:
            raise InputError(f"charge {self.charge} leaves {ne} electrons")
        if (ne - (mult - 1)) % 2 != 0 or mult - 1 > ne:
            raise InputError(
                f"{ne} electrons (sum Z={self.numbers.sum()}, charge {self.charge}) "
                f"cannot have multiplicity {mult}: 2S = {mult - 1} must have the "
                f"parity of the electron count and not exceed it")

    def check_finite(self, who: str = "") -> None:
        """Raise :class:`InputError` if positions or external charges are NaN or inf.

        The constructor validates its arrays, but they are plain numpy arrays
        that can be written to afterwards (``system.positions[0, 0] = nan``);
        potentials call this before any engine runs. Checks the positions
        (Å), the cell (Å, periodic systems), and the external charges (e),
        their positions (Å) and Gaussian widths (Å, finite and > 0). The
        fast path is one ``np.isfinite`` pass per array. ``who`` prefixes the
        message (a potential's name).
        """
        pre = f"{who}: " if who else ""
        syms = lambda idx: ", ".join(symbol(self.numbers[i]) for i in idx)   # noqa: E731
        _finite_rows(self.positions, "positions", "atom", pre, syms)
        if self.periodic:
            _finite_rows(self.cell, "cell", "lattice vector", pre)
        if self.ext_charges is not None:
            _finite_rows(self.ext_charges, "ext_charges", "external charge", pre)
            if self.ext_positions is not None:
                _finite_rows(self.ext_positions, "ext_positions", "external charge", pre)
            if self.ext_radii is not None:
                _finite_rows(self.ext_radii, "ext_radii", "external charge", pre)
                if not np.all(self.ext_radii > 0):
                    bad = np.flatnonzero(~(self.ext_radii > 0))
                    raise InputError(f"{pre}ext_radii must be > 0 Å; external charge(s) {_index_list(bad)} "
                                     f"have {_value_list(self.ext_radii[bad])}")

    def check_distances(self, min_distance: float = 0.5) -> None:
        """Raise if two atoms are closer than ``min_distance`` Å (minimum image)."""
        n = len(self)
        if n < 2:
            return
        from scipy.spatial import cKDTree
        pos = self.positions
        if self.periodic:
            from ase.geometry import get_distances
            _, d = get_distances(pos, cell=self.cell, pbc=self.pbc)
            d[np.diag_indices(n)] = np.inf
            i, j = np.unravel_index(np.argmin(d), d.shape)
            dmin = d[i, j]
        else:
            dmin, idx = cKDTree(pos).query(pos, k=2)
            k = int(np.argmin(dmin[:, 1]))
            i, j, dmin = k, int(idx[k, 1]), dmin[k, 1]
        if dmin < min_distance:
            i, j = sorted((int(i), int(j)))
            raise InputError(
                f"atoms {i} ({symbol(self.numbers[i])}) and {j} ({symbol(self.numbers[j])}) "
                f"are {dmin:.3f} Å apart, closer than {min_distance} Å")

    def with_positions(self, positions: np.ndarray) -> "AtomicSystem":
        """The same system at ``positions`` (N, 3) Å (checked for shape and finiteness; the rest was checked
        when this system was made, and is copied, not re-validated: this runs at every MD or MC step)."""
        out = copy.copy(self)
        out.positions = _array("positions", positions, (len(self.numbers), 3))
        out.cell, out.pbc = self.cell.copy(), self.pbc.copy()
        if self.ext_positions is not None:
            out.ext_positions = self.ext_positions.copy()
        return out

    def subset(self, indices, charge: int | None = None, multiplicity: int | None = None) -> "AtomicSystem":
        """The atoms ``indices`` as a new system (no external charges)."""
        idx = np.asarray(indices, int)
        return AtomicSystem(self.numbers[idx], self.positions[idx], self.cell.copy(), self.pbc.copy(),
                            charge=self.charge if charge is None else charge,
                            multiplicity=self.multiplicity if multiplicity is None else multiplicity)

    # -- ASE edge -------------------------------------------------------------
    @classmethod
    def from_ase(cls, atoms, charge: int | None = None, multiplicity: int | None = None) -> "AtomicSystem":
        info = getattr(atoms, "info", {}) or {}
        return cls(atoms.numbers.copy(), atoms.positions.copy(), np.array(atoms.cell[:]),
                   np.array(atoms.pbc),
                   charge=int(info.get("charge", 0) if charge is None else charge),
                   multiplicity=int(info.get("multiplicity", info.get("spin_multiplicity", 1))
                                    if multiplicity is None else multiplicity))

    def to_ase(self):
        from ase import Atoms
        atoms = Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)
        atoms.info.update(charge=int(self.charge), multiplicity=int(self.multiplicity))
        return atoms


def _array(name: str, value, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.array(value, dtype=float)
    if arr.shape != shape:
        raise InputError(f"{name} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise InputError(f"{name} contains NaN or inf (first at index {tuple(int(b) for b in bad)})")
    return arr


def _index_list(idx, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in idx[:limit])
    return shown + (f" and {len(idx) - limit} more" if len(idx) > limit else "")


def _value_list(vals, limit: int = 5) -> str:
    shown = ", ".join(f"{float(v):g}" for v in np.asarray(vals).reshape(-1)[:limit])
    return shown + (" ..." if np.size(vals) > limit else "")


def _finite_rows(arr, name: str, what: str, pre: str, syms=None) -> None:
    """Raise naming the rows (atoms, charges) of ``arr`` that hold NaN or inf."""
    arr = np.asarray(arr)
    if np.isfinite(arr).all():
        return
    bad_rows = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
    first = bad_rows[0]
    row = np.atleast_1d(arr[first])
    elems = f" ({syms(bad_rows[:5])})" if syms is not None else ""
    plural = "s" if len(bad_rows) > 1 else ""
    raise InputError(
        f"{pre}{name} of {what}{plural} {_index_list(bad_rows)}{elems} are not finite (NaN or inf): "
        f"{what} {int(first)} has [{', '.join(f'{float(v):g}' for v in row)}]; the array was changed "
        "after the system was built, or a previous step produced it")
