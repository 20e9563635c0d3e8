"""Physical constants and unit conversions: the only place they live.

Internal convention (ASE's): energy in eV, length in Å, charge in e, mass in
amu, time in fs. Engine edges convert once with the factors below:

* PySCF: Hartree, Bohr      -> ``HARTREE``, ``BOHR``
* OpenMM: kJ/mol, nm, ps    -> ``KJ_PER_MOL``, ``NM``, ``PS``
* SI (continuum module)     -> ``E_CHARGE``, ``K_B``, ``EPS0``, ...

Values come from ``scipy.constants``: CODATA 2022 with SciPy >= 1.15 (the
set this project is developed and tested with), CODATA 2018 with SciPy
1.10-1.14; :data:`CODATA` says which one was loaded. The two sets differ by
3e-13 (relative) in ``HARTREE`` and 7e-10 in ``BOHR``: far below any
tolerance in this project, but not bit-identical.

Other libraries use other sets, and their constants must never be mixed with
these in one round trip:

* PySCF (``pyscf.data.nist``): ``HARTREE2EV = 27.21138602`` (CODATA 2014) and
  ``BOHR = 0.52917721092`` Å (CODATA 2010). Against ours (CODATA 2022:
  27.211386245981 eV, 0.529177210544 Å) that is 8.3e-9 relative in the
  Hartree and 7.1e-10 in the Bohr. The trap: an energy converted to eV here
  and back to Hartree with PySCF's constant is off by 8.3e-9·|E|, e.g.
  6.3e-7 Eh (1.7e-5 eV) for one HF water (-76 Eh) and 1.9e-6 Eh (5.2e-5 eV)
  for a water trimer (-228 Eh): 10^4 times a tight SCF's ``conv_tol``, so a
  comparison with PySCF's own ``e_tot`` fails for no physical reason.
* ASE (``ase.units``, CODATA 2014 by default): Hartree 27.211386024 eV,
  Bohr 0.52917721056 Å (8.1e-9 and 3.7e-11 relative to ours).

The PySCF layer (:mod:`hybrid.qm.pyscf_layer`) therefore hands PySCF its
geometry in Bohr converted with :data:`BOHR` and converts energies and
gradients back with :data:`HARTREE` and the same :data:`BOHR`, so PySCF's
constants never enter: ``energy_eV / HARTREE`` is PySCF's ``e_tot`` to
round-off. Convert PySCF numbers with these constants, not with
``pyscf.data.nist`` or ``ase.units``.
"""
from __future__ import annotations

from scipy import constants as _c

#: Which CODATA set ``scipy.constants`` provided ("2022", "2018" or "unknown"), told apart by the
#: Hartree energy in eV (2018: 27.211386245988, 2022: 27.211386245981).
CODATA = {27.211386245981: "2022", 27.211386245988: "2018"}.get(
    _c.physical_constants["Hartree energy in eV"][0], "unknown")

# --- SI constants -----------------------------------------------------------
E_CHARGE = _c.e                    # C
K_B = _c.k                         # J/K
N_A = _c.N_A                       # 1/mol
EPS0 = _c.epsilon_0                # F/m
FARADAY = _c.physical_constants["Faraday constant"][0]   # C/mol
GAS_CONSTANT = _c.R                # J/(mol K)
AMU_KG = _c.atomic_mass            # kg
ELECTRON_MASS_AMU = _c.m_e / _c.atomic_mass   # amu per electron mass (atomic unit of mass)

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
HBAR = _c.hbar / E_CHARGE * 1e15                   # eV fs
AU_TIME = _c.hbar / _c.physical_constants["Hartree energy"][0] * 1e15   # fs per atomic unit of time

# Coulomb constant e^2/(4 pi eps0) in eV Å.
COULOMB = E_CHARGE / (4 * _c.pi * EPS0) * 1e10

#: Forces in eV/Å, masses in amu, time in fs: a = F/m in Å/fs^2 needs this
#: factor (1 eV/(Å amu) = 1/ (amu Å^2 / fs^2 / eV) Å/fs^2).
ACCEL = E_CHARGE / AMU_KG * 1e-10      # (eV/Å/amu) -> Å/fs^2
