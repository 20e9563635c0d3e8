"""Charge and spin of region clusters cut from a larger system.

A region of a blend is computed as an isolated cluster, so it needs its own
charge and multiplicity; the whole system's are wrong for it (a water next to
Mg²⁺ in a system of charge +2 is not a dication). One mechanism: per-atom
formal charges q_a (e), and a region's charge is Σ_{a∈region} q_a (hydrogen
link atoms are neutral caps).

Where q comes from, first match wins:

* given by the caller: an (N,) array, or a mapping {atom index: charge} (atoms
  not named take 0); e.g. a PDB's formal charges, a topology's residue charges
  spread onto one atom each, or a user's mapping; Σ q must equal the system's
  charge;
* otherwise inferred: a unit (molecule) made of one atom of an element in
  :data:`ION_CHARGES` is that ion (Na⁺, Mg²⁺, Cl⁻, ...); every other atom
  takes 0, *known* only if the recognised ions account for the system's
  charge. A region containing an atom whose charge is not known is an error
  that names the region.

Multiplicity: a region of a closed-shell system (multiplicity 1) with an even
electron count is a singlet; an odd count, or any region of an open-shell
system, is an error naming the region unless a callable
``charges(atoms) -> (charge, multiplicity)`` says otherwise, or
``open_shell="lowest"`` asks for the lowest multiplicity of the count, in a
closed- or open-shell system alike (a doublet for an odd one: a region that
cuts through dangling bonds, e.g. the faces of a crack in silicon).
"""
from __future__ import annotations

import numpy as np

from hybrid.errors import InputError
from hybrid.system import symbol

#: formal charges (e) of monatomic ions recognised when they form their own unit
ION_CHARGES = {3: 1, 11: 1, 19: 1, 37: 1, 55: 1,          # Li⁺ Na⁺ K⁺ Rb⁺ Cs⁺
               12: 2, 20: 2, 38: 2, 56: 2, 30: 2, 48: 2,  # Mg²⁺ Ca²⁺ Sr²⁺ Ba²⁺ Zn²⁺ Cd²⁺
               9: -1, 17: -1, 35: -1, 53: -1}             # F⁻ Cl⁻ Br⁻ I⁻


class RegionCharges:
    """Per-atom formal charges of one system and the state (charge, multiplicity) of its regions.

    system : the AtomicSystem; units : its molecules (list of index arrays);
    given : None, (N,) formal charges, {atom: charge}, or callable(atoms) -> charge
    or (charge, multiplicity) (then used as is, atoms a sorted (n,) int array);
    open_shell : "error" (an odd electron count in a region is an error) or "lowest" (it is a doublet).
    """

    def __init__(self, system, units, given=None, open_shell: str = "error"):
        if open_shell not in ("error", "lowest"):
            raise InputError(f"open_shell must be 'error' or 'lowest', got {open_shell!r}")
        self.open_shell = open_shell
        n = len(system)
        self.callable = given if callable(given) else None
        self.closed_shell = int(system.multiplicity) == 1
        self.numbers = system.numbers
        self.q = np.zeros(n, int)
        self.known = np.ones(n, bool)
        self.note = ""
        if self.callable is not None:
            return
        if given is not None:
            if isinstance(given, dict):
                for a, c in given.items():
                    if not 0 <= int(a) < n:
                        raise InputError(f"formal charges: atom {a} is outside a system of {n} atoms")
                    self.q[int(a)] = int(c)
            else:
                q = np.asarray(given, float).reshape(-1)
                if q.shape != (n,) or np.any(q != np.round(q)):
                    raise InputError(f"formal charges must be {n} integers (one per atom), got shape {q.shape}")
                self.q = q.astype(int)
            if self.q.sum() != int(system.charge):
                raise InputError(f"formal charges sum to {int(self.q.sum())}, the system's charge is "
                                 f"{int(system.charge)}")
            return
        ions = []
        for u in units:
            if len(u) == 1 and int(system.numbers[u[0]]) in ION_CHARGES:
                self.q[u[0]] = ION_CHARGES[int(system.numbers[u[0]])]
                ions.append(int(u[0]))
        if self.q.sum() != int(system.charge):
            self.known[:] = False
            self.known[ions] = True
            self.note = (f"the system's charge {int(system.charge)} is not accounted for by the recognised "
                         f"ions (sum {int(self.q.sum())})")

    def state(self, atoms, n_links: int = 0) -> tuple[int, int]:
        """(charge, multiplicity) of the region of real atoms ``atoms`` capped with ``n_links``
        hydrogen link atoms (neutral; one electron each)."""
        atoms = np.asarray(atoms, int)
        if self.callable is not None:
            out = self.callable(atoms)
            charge, mult = (out if isinstance(out, tuple) else (out, None))
            if mult is not None:
                return int(charge), int(mult)
        else:
            if not self.known[atoms].all():
                raise InputError(f"region {_name(atoms, self.numbers)}: charge unknown: {self.note}; give formal "
                                 "charges (charges=(N,) array or {atom: charge}, or a PDB with formal charges)")
            charge = int(self.q[atoms].sum())
        electrons = int(self.numbers[atoms].sum()) + int(n_links) - int(charge)
        if self.open_shell == "lowest":
            return int(charge), 1 + electrons % 2
        if not self.closed_shell:
            raise InputError(f"region {_name(atoms, self.numbers)}: the system is open-shell; give the region's "
                             "multiplicity (charges=callable(atoms) -> (charge, multiplicity))")
        if electrons % 2:
            raise InputError(f"region {_name(atoms, self.numbers)} with charge {charge} has {electrons} electrons, "
                             "an odd count: not a closed-shell singlet; give charges or the region's multiplicity "
                             "(charges=callable(atoms) -> (charge, multiplicity)), or open_shell='lowest'")
        return int(charge), 1


def _name(atoms, numbers, limit: int = 12) -> str:
    """'of 6 atoms [3 O, 4 H, ...]' for messages."""
    shown = ", ".join(f"{int(a)} {symbol(numbers[a])}" for a in atoms[:limit])
    return f"of {len(atoms)} atoms [{shown}{', ...' if len(atoms) > limit else ''}]"
