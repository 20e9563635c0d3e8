"""Physical constants and unit conversions: the only place they live.

Internal convention (ASE's): energy in eV, length in Å, charge in e, mass in
amu, time in fs. Engine edges convert once with the factors below:

* PySCF: Hartree, Bohr      -> ``HARTREE``, ``BOHR``
* OpenMM: kJ/mol, nm, ps    -> ``KJ_PER_MOL``, ``NM``, ``PS``
* SI (continuum module)     -> ``E_CHARGE``, ``K_B``, ``EPS0``, ...

Values are CODATA 2018 (``scipy.constants``), the set PySCF also uses.
"""
from __future__ import annotations

from scipy import constants as _c

# --- SI constants -----------------------------------------------------------
E_CHARGE = _c.e                    # C
K_B = _c.k                         # J/K
N_A = _c.N_A                       # 1/mol
EPS0 = _c.epsilon_0                # F/m
FARADAY = _c.physical_constants["Faraday constant"][0]   # C/mol
GAS_CONSTANT = _c.R                # J/(mol K)
AMU_KG = _c.atomic_mass            # kg

# --- internal units expressed in engine units --------------------------------
EV = 1.0                                           # internal energy unit
ANGSTROM = 1.0                                     # internal length unit
HARTREE = _c.physical_constants["Hartree energy in eV"][0]  # eV per Hartree
BOHR = _c.physical_constants["Bohr radius"][0] * 1e10       # Å per Bohr
KJ_PER_MOL = 1e3 / (N_A * E_CHARGE)               # eV per (kJ/mol)
KCAL_PER_MOL = 4.184 * KJ_PER_MOL                 # eV per (kcal/mol)
NM = 10.0                                          # Å per nm
FS = 1.0                                           # internal time unit
PS = 1000.0                                        # fs per ps
KB_EV = K_B / E_CHARGE                             # eV/K

# Coulomb constant e^2/(4 pi eps0) in eV Å.
COULOMB = E_CHARGE / (4 * _c.pi * EPS0) * 1e10

#: Forces in eV/Å, masses in amu, time in fs: a = F/m in Å/fs^2 needs this
#: factor (1 eV/(Å amu) = 1/ (amu Å^2 / fs^2 / eV) Å/fs^2).
ACCEL = E_CHARGE / AMU_KG * 1e-10      # (eV/Å/amu) -> Å/fs^2
