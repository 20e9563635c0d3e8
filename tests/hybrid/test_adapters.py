"""Adapters: ASE calculators, GFN2-xTB, MACE and TorchANI files - FD forces and loading."""
import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from fdtools import WATER, fd_forces
from hybrid.errors import InputError, ModelFileError, SCFConvergenceError, UnknownElementError
from hybrid.ml.adapters import ASECalculatorPotential, TorchANIPotential, XTBPotential, mace_potential
from hybrid.system import AtomicSystem


def test_ase_calculator_forces_and_virial():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.rattle(0.05, seed=1)
    s = AtomicSystem.from_ase(atoms)
    p = ASECalculatorPotential(EMT())
    r = p.compute(s)
    assert np.abs(fd_forces(p, s, h=1e-4) - r.forces).max() < 1e-5
    atoms.calc = EMT()
    assert np.allclose(r.virial, -atoms.get_stress(voigt=False) * atoms.get_volume())
    with pytest.raises(InputError, match="cannot take external point charges"):
        p.compute(AtomicSystem([29], [[0, 0, 0]], ext_charges=[1.0], ext_positions=[[3, 0, 0]]))


def test_xtb_forces_and_spin_check(water):
    p = XTBPotential("GFN2-xTB")
    r = p.compute(water)
    assert np.abs(fd_forces(p, water, h=1e-4) - r.forces).max() < 1e-5
    with pytest.raises(InputError, match="cannot have multiplicity 2"):
        p.compute(AtomicSystem([8, 1, 1], WATER, multiplicity=2))


def test_xtb_scf_failure_names_the_level_and_the_system(water):
    p = XTBPotential("GFN1-xTB", electronic_temperature=3000.0, max_iterations=1)
    with pytest.raises(SCFConvergenceError, match=r"GFN1-xTB: SCF not converged in 1 cycles \(GFN1-xTB, "
                       r"electronic temperature 3000 K, charge 0, multiplicity 1, H2O, 3 atoms\); geometry \(Å\): O "):
        p.compute(water)


def _tiny_mace(path):
    torch.serialization.add_safe_globals([slice])   # e3nn's constants file (see mace_potential)
    from e3nn import o3
    from mace import modules
    torch.set_default_dtype(torch.float64)
    try:
        model = modules.MACE(
            r_max=4.0, num_bessel=4, num_polynomial_cutoff=5, max_ell=1,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            num_interactions=1, num_elements=2, hidden_irreps=o3.Irreps("4x0e"), MLP_irreps=o3.Irreps("4x0e"),
            atomic_energies=np.array([-13.6, -2041.0]), avg_num_neighbors=3.0, atomic_numbers=[1, 8],
            correlation=2, gate=torch.nn.functional.silu)
    finally:
        torch.set_default_dtype(torch.float32)
    torch.save(model, path)


def test_mace_model_file_loads_and_gives_exact_forces(water, tmp_path):
    path = tmp_path / "tiny.model"
    _tiny_mace(path)
    p = mace_potential(path)
    assert set(p.species) == {1, 8}
    s = water.with_positions(np.array(WATER) + [[0.02, -0.01, 0.0], [0, 0, 0], [0.01, 0, 0.03]])
    r = p.compute(s)
    assert np.abs(fd_forces(p, s, h=1e-4) - r.forces).max() < 1e-5
    with pytest.raises(UnknownElementError, match="atom 0 is C"):
        p.compute(AtomicSystem([6, 1], WATER[:2]))
    bad = tmp_path / "bad.model"
    bad.write_bytes(b"\x00junk")
    with pytest.raises(ModelFileError, match="bad.model: not a torch file"):
        mace_potential(bad)


def test_torchani_model_file_loads_and_gives_exact_forces(water, tmp_path):
    from torchani.arch import simple_ani
    torch.manual_seed(0)
    model = simple_ani(("H", "O"), lot="hf-sto3g", radial_shifts=4, angular_shifts=2, sections=2,
                       repulsion=False, self_energies="zero")
    path = tmp_path / "ani.pt"
    torch.save(model, path)
    p = TorchANIPotential(path)
    assert set(p.species) == {1, 8}
    s = water.with_positions(np.array(WATER) + [[0.02, -0.01, 0.0], [0, 0, 0], [0.01, 0, 0.03]])
    r = p.compute(s)
    assert np.abs(fd_forces(p, s, h=1e-4) - r.forces).max() < 1e-5
    assert np.abs(r.forces).max() > 1e-4
    notmodel = tmp_path / "dict.pt"
    torch.save({"a": 1}, notmodel)
    with pytest.raises(ModelFileError, match="dict.pt: holds a dict, not a TorchANI model module"):
        TorchANIPotential(notmodel)
