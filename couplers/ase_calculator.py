"""ASE bridge: any Potential as an ASE calculator (energy, forces, stress).

So ASE's optimisers, MD integrators and NEB run on qmml-hybrid models.
Units pass through unchanged (both use eV and Å). The last Result is kept
as ``calc.result`` (contributions, uncertainty, timings).
"""
from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from hybrid.potential import Potential
from hybrid.system import AtomicSystem


class HybridCalculator(Calculator):
    """ASE calculator over a :class:`~hybrid.potential.Potential`.

    charge, multiplicity : electronic state of the atoms (default: from
    ``atoms.info`` keys "charge" and "multiplicity", else 0 and 1).
    """

    implemented_properties = ["energy", "free_energy", "forces", "energies", "stress"]

    def __init__(self, potential: Potential, charge: int | None = None, multiplicity: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.potential = potential
        self.charge, self.multiplicity = charge, multiplicity
        self.result = None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        system = AtomicSystem.from_ase(self.atoms, self.charge, self.multiplicity)
        res = self.potential.compute(system)
        self.result = res
        self.results["energy"] = self.results["free_energy"] = res.energy
        self.results["forces"] = res.forces
        if res.energies is not None:
            self.results["energies"] = res.energies
        if res.virial is not None and self.atoms.pbc.any():
            from ase.stress import full_3x3_to_voigt_6_stress
            self.results["stress"] = full_3x3_to_voigt_6_stress(res.stress(np.array(self.atoms.cell[:])))
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError
            raise PropertyNotImplementedError(f"{self.potential.name} gives no virial for this system")
