"""A committee of potentials: mean prediction and its disagreement.

    E = (1/M) Σ_m E_m,   F_i = (1/M) Σ_m F_m,i
    σ_E = std_m E_m,     σ_F,i = sqrt((1/M) Σ_m ‖F_m,i - F_i‖²)   (eV/Å)

max_i σ_F,i is the usual active-learning trigger (DP-GEN's model deviation).
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..potential import Potential, Result


class Committee(Potential):
    def __init__(self, members, name: str = "committee"):
        members = list(members)
        if len(members) < 2:
            raise InputError(f"{name}: a committee needs at least 2 members, got {len(members)}")
        self.members = members
        self.name = name
        sp = [set(m.species) for m in members if m.species is not None]
        self.species = tuple(sorted(set.intersection(*sp))) if sp else None
        self.min_distance = max(m.min_distance or 0.0 for m in members)

    def _compute(self, system):
        res = [m._compute(system) for m in self.members]
        e = np.array([r.energy for r in res])
        f = np.stack([r.forces for r in res])
        fmean = f.mean(0)
        virials = [r.virial for r in res]
        energies = [r.energies for r in res]
        return Result(energy=float(e.mean()), forces=fmean,
                      energies=None if any(x is None for x in energies) else np.mean(energies, 0),
                      virial=None if any(v is None for v in virials) else np.mean(virials, 0),
                      energy_std=float(e.std()), force_std=np.sqrt(((f - fmean) ** 2).sum(-1).mean(0)),
                      contributions={self.name: float(e.mean())},
                      info={"member_energies": e.tolist()})
