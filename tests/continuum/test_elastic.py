"""Elastic constants and the (111) cleavage energy from a potential, against the published values of two
silicon potentials (matscipy's Stillinger–Weber and Kumagai parametrisations)."""
import numpy as np
import pytest

from continuum.crack_slab import GPA
from continuum.elastic import cleavage_energy_111, cubic_elastic_constants, equilibrium_lattice_constant

J_PER_M2 = 16.0218          # eV/Å² -> J/m²


def _calculator(kind):
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms import Kumagai, StillingerWeber
    from matscipy.calculators.manybody.explicit_forms.kumagai import Kumagai_Comp_Mat_Sci_39_Si
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import Stillinger_Weber_PRB_31_5262_Si
    if kind == "SW":
        return Manybody(**StillingerWeber(Stillinger_Weber_PRB_31_5262_Si))
    return Manybody(**Kumagai(Kumagai_Comp_Mat_Sci_39_Si))


@pytest.mark.parametrize("kind, a0, C11, C12, C44", [
    ("SW", 5.431, 151.4, 76.4, 56.4),            # Stillinger & Weber, PRB 31, 5262 (1985) as tabulated since
    ("Kumagai", 5.429, 166.4, 65.3, 77.1),       # Kumagai et al., Comput. Mater. Sci. 39, 457 (2007), Table 3
])
def test_cubic_constants_reproduce_the_published_ones(kind, a0, C11, C12, C44):
    calc = _calculator(kind)
    a = equilibrium_lattice_constant(calc)
    assert a == pytest.approx(a0, abs=2e-3)
    c = cubic_elastic_constants(calc, a)
    assert c.C11 / GPA == pytest.approx(C11, abs=1.0)
    assert c.C12 / GPA == pytest.approx(C12, abs=1.0)
    assert c.C44 / GPA == pytest.approx(C44, abs=1.0)
    assert c.C44_unrelaxed > 1.5 * c.C44            # diamond's internal relaxation softens shear


def test_sw_cleavage_energy_is_the_bond_energy_over_the_area():
    """Unrelaxed SW (111) shuffle cleavage: one bond of ε = 2.1683 eV per surface atom, half of it per
    surface, over the area per atom √3 a²/4: γ = 2ε/(√3 a²) = 1.36 J/m² (SW's three-body term vanishes
    for the bulk-terminated surface)."""
    calc = _calculator("SW")
    a0 = equilibrium_lattice_constant(calc)
    gamma = cleavage_energy_111(calc, a0)
    assert gamma == pytest.approx(2 * 2.1683 / (np.sqrt(3) * a0**2), rel=2e-3)
    assert gamma * J_PER_M2 == pytest.approx(1.36, abs=0.01)
    assert cleavage_energy_111(calc, a0, relax=True) <= gamma + 1e-9
