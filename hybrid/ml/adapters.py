"""Adapters: external models and calculators as potentials.

* :class:`ASECalculatorPotential` - any ASE calculator (energy, forces, stress).
* :class:`XTBPotential` - GFN2-xTB / GFN1-xTB through ``tblite``'s ASE calculator.
* :func:`mace_potential` - a MACE model file (mace-torch), through MACE's own calculator.
* :class:`TorchANIPotential` - a TorchANI model file (a pickled or TorchScript module).

Nothing here downloads weights: every loader reads a file the user gives.
"""
from __future__ import annotations

import os

import numpy as np

from .. import units
from ..errors import InputError, ModelFileError, SCFConvergenceError
from ..potential import Potential, Result
from ..system import AtomicSystem, atomic_number


class ASECalculatorPotential(Potential):
    """E, F (and the virial, for periodic systems with stress) from an ASE calculator."""

    def __init__(self, calculator, name: str | None = None, species=None):
        self.calc = calculator
        self.name = name or type(calculator).__name__
        self.species = None if species is None else tuple(int(z) for z in species)

    def check(self, system: AtomicSystem) -> None:
        super().check(system)
        if system.n_ext:
            raise InputError(f"{self.name}: this ASE calculator cannot take external point charges; "
                             "use a PySCF layer for electrostatic embedding")

    def _prepare(self, system: AtomicSystem) -> None:
        """Hook: pass the electronic state to the calculator (see XTBPotential)."""

    def _compute(self, system: AtomicSystem) -> Result:
        self._prepare(system)
        atoms = system.to_ase()
        atoms.calc = self.calc
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces(), float)
        virial = None
        if system.periodic and "stress" in getattr(self.calc, "implemented_properties", ()):
            from ase.stress import voigt_6_to_full_3x3_stress
            virial = -voigt_6_to_full_3x3_stress(atoms.get_stress()) * atoms.get_volume()
        return Result(energy, forces, virial=virial, contributions={self.name: energy})


class XTBPotential(ASECalculatorPotential):
    """Extended tight binding (``tblite``): method "GFN2-xTB" or "GFN1-xTB".

    Copies and pickles carry the settings, not tblite's C handle: a copy
    starts with a fresh calculator (and so a fresh SCC guess).

    An SCC that does not converge raises :class:`~hybrid.errors.SCFConvergenceError`
    naming the method, electronic temperature, charge, multiplicity, formula
    and geometry. Clusters cut through a crack face (dangling bonds at the
    Fermi level) can have no reachable SCC solution below some electronic
    temperature: a measured Si₁₄H₁₂ converges at ≥ 3150 K and at no lower
    temperature, from any guess, damping or mixer memory tried.
    """

    stateful = True   # tblite restarts from its last wavefunction: one copy per region in blends

    def __init__(self, method: str = "GFN2-xTB", accuracy: float = 1.0, name: str | None = None, **kwargs):
        try:
            from tblite.ase import TBLite
        except ImportError as exc:
            raise InputError("XTBPotential needs the tblite package: pip install 'qmml-hybrid[xtb]'") from exc
        self._args = (method, accuracy, name, kwargs)
        super().__init__(TBLite(method=method, accuracy=accuracy, verbosity=0, **kwargs), name or method)

    def __getstate__(self):
        return {"_args": self._args}

    def __setstate__(self, state):
        method, accuracy, name, kwargs = state["_args"]
        self.__init__(method, accuracy, name, **kwargs)

    def _prepare(self, system: AtomicSystem) -> None:
        system.check_spin()
        self.calc.set(charge=int(system.charge), multiplicity=int(system.multiplicity))

    def _compute(self, system: AtomicSystem) -> Result:
        from ase.calculators.calculator import CalculationFailed
        try:
            return super()._compute(system)
        except CalculationFailed as exc:
            p = self.calc.parameters
            geom = "; ".join(f"{sym} {x:.6f} {y:.6f} {z:.6f}"
                             for sym, (x, y, z) in zip(system.symbols, system.positions))
            raise SCFConvergenceError(
                f"{self.name}: {str(exc).splitlines()[0]} ({p.method}, electronic temperature "
                f"{p.electronic_temperature:g} K, charge {int(system.charge)}, multiplicity "
                f"{int(system.multiplicity)}, {system.to_ase().get_chemical_formula()}, {len(system.numbers)} atoms); "
                f"geometry (Å): {geom}") from exc


def mace_potential(path, dtype: str = "float64", name: str | None = None) -> ASECalculatorPotential:
    """A MACE model file (``torch.save`` of a MACE module) as a potential.

    MACE model files are pickles: load only files you trust. The module is
    read here and handed to MACE's own ASE calculator.
    """
    import torch

    path = os.fspath(path)
    # e3nn (a MACE dependency) torch.loads a constants file holding ``slice``
    # objects, which torch >= 2.6 refuses by default.
    torch.serialization.add_safe_globals([slice])
    try:
        from mace.calculators import MACECalculator
    except ImportError as exc:
        raise InputError("mace_potential needs mace-torch: pip install 'qmml-hybrid[mace]'") from exc
    module = _load_torch_module(path, "MACE")
    if not hasattr(module, "atomic_numbers") or not hasattr(module, "r_max"):
        raise ModelFileError(f"{path}: a {type(module).__name__}, not a MACE model")
    try:
        calc = MACECalculator(models=[module], device="cpu", default_dtype=dtype)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a loadable MACE model ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    z = [int(x) for x in calc.models[0].atomic_numbers]
    return ASECalculatorPotential(calc, name or f"mace[{os.path.basename(path)}]", species=z)


class TorchANIPotential(Potential):
    """A TorchANI model (``torch.save``-d module or TorchScript file) as a potential.

    The model maps (species, coordinates/Å) to energies in Hartree; forces by
    autograd. Models built with ``periodic_table_index=True`` take atomic numbers.
    """

    def __init__(self, model, name: str | None = None):
        if isinstance(model, (str, os.PathLike)):
            model = _load_torch_module(os.fspath(model), "TorchANI")
        import torch
        if not callable(model) or not hasattr(model, "forward"):
            raise ModelFileError(f"{name or 'TorchANI'}: not a torch module")
        self.model = model.double().eval()
        self.torch = torch
        symbols = getattr(model, "symbols", None) or getattr(model, "species", None)
        if symbols is None:
            raise ModelFileError("TorchANI model has no 'symbols': cannot tell which elements it knows")
        self.species = tuple(atomic_number(s) for s in symbols)
        self.uses_z = bool(getattr(model, "periodic_table_index", True))
        self.symbols = list(symbols)
        self.name = name or "torchani"

    def _compute(self, system: AtomicSystem) -> Result:
        torch = self.torch
        z = system.numbers if self.uses_z else [self.species.index(int(a)) for a in system.numbers]
        species = torch.tensor(np.asarray(z)[None], dtype=torch.long)
        pos = torch.tensor(system.positions[None], dtype=torch.float64, requires_grad=True)
        kw = {}
        if system.periodic:
            kw = {"cell": torch.tensor(system.cell, dtype=torch.float64),
                  "pbc": torch.tensor(system.pbc, dtype=torch.bool)}
        e_h = self.model((species, pos), **kw).energies.sum()
        (g,) = torch.autograd.grad(e_h, pos)
        energy = float(e_h.detach()) * units.HARTREE
        return Result(energy, -g[0].numpy() * units.HARTREE, contributions={self.name: energy})


def _load_torch_module(path: str, kind: str):
    import torch
    if not os.path.isfile(path):
        raise ModelFileError(f"{path}: no such {kind} model file")
    try:
        return torch.jit.load(path, map_location="cpu")
    except Exception:
        pass
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a torch file ({type(exc).__name__})") from None
    if not isinstance(obj, torch.nn.Module):
        raise ModelFileError(f"{path}: holds a {type(obj).__name__}, not a {kind} model module")
    return obj
