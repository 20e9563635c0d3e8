"""QM/ML/MM from an OpenMM System: MM everywhere, ML and QM where asked.

Given a Topology and a System (e.g. amber14-all.xml + amber14/tip3p.xml),
a QM region Q and an ML region L (disjoint atom sets, I = Q ∪ L the inner
atoms), :func:`create_mixed_system` builds a new System with the energy

    E = E_MM'(all) + E_ML(I) − E_ML(Q) + E_QM(Q)                          (mechanical)
    E = E_MM'(all) + E_ML(I) − E_ML(Q) + E_QM(Q; {q_J, R_J}_{J ∈ MM})      (electrostatic)

— n-layer ONIOM with the MLIP as the low level of the inner region, the QM
method as its correction over Q, and MM for the rest (DESIGN.md §3, §5).
E_MM' is the original force field without the terms that the models
already hold (as openmm-ml's ``createMixedSystem`` does):

* bonded terms (HarmonicBond/Angle, Periodic/RB/CMAP torsions, Custom
  bond/angle/torsion/compound-bond forces) whose atoms all lie in I;
* nonbonded pairs inside I: a zero exception (charge product 0, ε 0) for
  every pair in NonbondedForce; in CustomNonbondedForce the interaction
  groups are rewritten so that they hold every original pair except I×I,
  each pair once;
* electrostatic embedding only: the charges of the QM atoms in the
  NonbondedForce (and in exceptions involving them) are set to zero, their
  Lennard-Jones parameters kept, so the QM–MM Coulomb term is counted once,
  by the QM calculation, and QM–MM van der Waals stays MM.

Everything else stays MM, including the MM–QM and MM–ML cross terms
(Lennard-Jones always, Coulomb in mechanical embedding). Constraints are
kept. With PME the reciprocal-space interaction of inner atoms with the
periodic images of inner atoms remains (as in openmm-ml), and so does the
long-range dispersion correction (a property of the whole box, E ∝ ΣΣ c6/V,
not a sum of pair terms; MLIPs with a finite cutoff have none of their own).

Electrostatic embedding passes the MM charges q_J (e, from the
NonbondedForce) of the MM atoms J ∉ I to the QM potential; the ML atoms are
not embedded, because their interaction with Q is already in
E_ML(I) − E_ML(Q). The forces on the MM atoms, −∂E_QM/∂R_J, come back as
``Result.ext_forces`` and are applied by the OpenMM bridge.

Charges next to the QM region (``charge_model``). Point charges within a few
Å of the QM density over-polarise it (electron spill-out onto positive MM
sites, worst in flexible or diffuse basis sets). The default scheme is the
Gaussian-smeared MM charge of Laio, VandeVondele & Röthlisberger (J. Chem.
Phys. 116, 6941 (2002)), as PySCF's ``qmmm`` implements it:

    ρ_J(r) = q_J (√π σ_J)⁻³ exp(−|r − R_J|² / σ_J²),
    v_J(r) = q_J erf(|r − R_J| / σ_J) / |r − R_J|

with σ_J the covalent radius of atom J's element (ase.data.covalent_radii:
H 0.31 Å, C 0.76 Å, O 0.66 Å; ``mm_radii`` overrides). Beyond ≈ 3σ_J the
potential is the point charge's; close to the QM atoms it is finite. The
scheme is smooth, no charge is dropped or moved, and the total MM charge is
unchanged; forces include the smearing. ``charge_model="point"`` uses bare
point charges (for comparison, and for QM potentials other than PySCF).

Periodic systems: the QM method sees a cluster. The QM atoms are made whole
by the minimum image relative to the first QM atom; each MM residue is made
whole relative to its first atom and translated to the image nearest the
QM centroid (the minimum-image convention by residue). This is the standard
choice but is not smooth: when a residue crosses the surface half a box
away, the energy changes by a dipole–dipole term. ``embedding_cutoff`` (Å)
keeps only residues with an atom within that distance of a QM atom (whole
residues, so no partial charges), with the same kind of jump at the cutoff.
Non-periodic systems embed every MM charge and are smooth.

Covalent QM/MM boundaries are refused: a bond with one atom in Q and the
other outside raises :class:`~hybrid.errors.InputError` naming both atoms;
QM regions must be whole molecules here (link atoms: :mod:`couplers.link_atoms`).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

import numpy as np

from hybrid.errors import InputError
from hybrid.potential import LinearCombination, Potential, Result, Subset
from hybrid.qm.pyscf_layer import PySCFPotential
from hybrid.system import AtomicSystem

from .openmm_force import PotentialForce, _indices, atomic_numbers, group_energies

#: Force types whose terms are removed when all their atoms are inner.
BONDED_FORCES = ("HarmonicBondForce", "HarmonicAngleForce", "PeriodicTorsionForce", "RBTorsionForce",
                 "CMAPTorsionForce", "CustomBondForce", "CustomAngleForce", "CustomTorsionForce",
                 "CustomCompoundBondForce")
#: Force types left as they are (no pair or bonded interactions between atoms).
PASSIVE_FORCES = ("CMMotionRemover", "MonteCarloBarostat", "MonteCarloAnisotropicBarostat",
                  "MonteCarloMembraneBarostat", "MonteCarloFlexibleBarostat", "AndersenThermostat",
                  "CustomExternalForce", "PythonForce", "RMSDForce")
NONBONDED_FORCES = ("NonbondedForce", "CustomNonbondedForce")


# ---------------------------------------------------------------------------------------------
# The QM region's view: a cluster, with embedded (optionally Gaussian) charges
# ---------------------------------------------------------------------------------------------
class ClusterRegion(Potential):
    """A non-periodic potential on a region of a (possibly periodic) system.

    E(R) = E_p(cluster(R)); the atoms of ``system`` are the region, its
    external charges (M,) the embedding. In a periodic system the region is
    made whole by the minimum image relative to its first atom, and each
    embedded group (residue, ``ext_groups`` (M,) int) is made whole and
    moved to the image nearest the region's centroid (see module docstring).
    Imaging only translates atoms, so forces (eV/Å) carry over unchanged.

    ext_radii : (M,) Å, Gaussian widths σ_J of the embedded charges, passed on
        as ``AtomicSystem.ext_radii`` (the PySCF layer smears them). None: point charges.
    cutoff : Å; embed only groups with an atom closer than this to a region
        atom (None: all).

    ``Result.ext_forces`` (M, 3) is full length (zeros for groups left out);
    ``info["n_embedded"]`` counts the charges used.
    """

    def __init__(self, potential: Potential, ext_groups=None, ext_radii=None, cutoff: float | None = None,
                 name: str | None = None):
        self.potential = potential
        self.ext_groups = None if ext_groups is None else np.asarray(ext_groups, int).reshape(-1)
        self.ext_radii = None if ext_radii is None else np.asarray(ext_radii, float).reshape(-1)
        if self.ext_radii is not None:
            if np.any(self.ext_radii <= 0):
                raise InputError(f"Gaussian charge radius {float(self.ext_radii.min())} Å must be positive")
        if cutoff is not None and cutoff <= 0:
            raise InputError(f"embedding cutoff must be positive, got {cutoff} Å")
        self.cutoff = cutoff
        self.name = name or potential.name
        self.species = potential.species
        self.min_distance = potential.min_distance

    def cluster(self, system: AtomicSystem) -> tuple[AtomicSystem, np.ndarray]:
        """The non-periodic region system and the indices (into the M charges) embedded in it."""
        pos = system.positions
        if system.periodic:
            pos = pos[0] + _mic(pos - pos[0], system)
        m = system.n_ext
        sel = np.arange(m)
        ext_q = ext_r = ext_s = None
        if m:
            groups = self.ext_groups if self.ext_groups is not None else np.arange(m)
            if len(groups) != m:
                raise InputError(f"{self.name}: {m} embedded charges but {len(groups)} group labels")
            _, first, inv = np.unique(groups, return_index=True, return_inverse=True)
            ep = system.ext_positions
            if system.periodic:
                centre = pos.mean(axis=0)
                anchor = centre + _mic(ep[first] - centre, system)
                ep = anchor[inv] + _mic(ep - ep[first][inv], system)
            if self.cutoff is not None:
                from scipy.spatial import cKDTree
                d, _ = cKDTree(pos).query(ep)
                gmin = np.full(len(first), np.inf)
                np.minimum.at(gmin, inv, d)
                sel = np.flatnonzero(gmin[inv] < self.cutoff)
            ext_q, ext_r = system.ext_charges[sel], ep[sel]
            if self.ext_radii is not None:
                if len(self.ext_radii) != m:
                    raise InputError(f"{self.name}: {m} embedded charges but {len(self.ext_radii)} radii")
                ext_s = self.ext_radii[sel]
        sub = AtomicSystem(system.numbers, pos, charge=system.charge, multiplicity=system.multiplicity,
                           ext_charges=ext_q, ext_positions=ext_r, ext_radii=ext_s)
        return sub, sel

    def _compute(self, system: AtomicSystem) -> Result:
        sub, sel = self.cluster(system)
        r = self.potential.compute(sub)
        ext = None
        if system.n_ext:
            if r.ext_forces is None:
                raise InputError(f"{self.potential.name} returned no forces on its {len(sel)} embedded charges "
                                 "(it does not implement electrostatic embedding)")
            ext = np.zeros((system.n_ext, 3))
            ext[sel] = r.ext_forces
        info = dict(r.info)
        info["n_embedded"] = int(len(sel)) if system.n_ext else 0
        return Result(r.energy, r.forces, ext_forces=ext, energies=r.energies, energy_std=r.energy_std,
                      force_std=r.force_std, contributions=r.contributions, info=info)


def _mic(d: np.ndarray, system: AtomicSystem) -> np.ndarray:
    from ase.geometry import find_mic
    v, _ = find_mic(d, system.cell, system.pbc)
    return v


# ---------------------------------------------------------------------------------------------
# The mixed system
# ---------------------------------------------------------------------------------------------
@dataclass
class MixedSystem:
    """The result of :func:`create_mixed_system`.

    system : the new ``openmm.System`` (MM' + hybrid forces)
    qm_atoms, ml_atoms : sorted atom indices of the regions
    forces : {"ml": PotentialForce, "qm": PotentialForce} for the regions present
    groups : {"mm": set of groups, "ml": {g}, "qm": {g}} force groups by layer
    embedding : "mechanical" or "electrostatic"
    embedded_atoms : (M,) MM atoms whose charges the QM region sees
    embedded_charges, embedded_radii : (M,) e and Å (radii None for point charges)
    qm_potential : the QM potential in use (a
        PySCFPotential for Gaussian charges), ml_potential likewise
    removed : {force name: number of terms removed}, plus "nonbonded exceptions"
    """

    system: object
    qm_atoms: np.ndarray
    ml_atoms: np.ndarray
    forces: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)
    embedding: str = "mechanical"
    embedded_atoms: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    embedded_charges: np.ndarray | None = None
    embedded_radii: np.ndarray | None = None
    qm_potential: Potential | None = None
    ml_potential: Potential | None = None
    removed: dict = field(default_factory=dict)

    def energies(self, context) -> dict:
        """Potential energy (eV) by layer {"mm", "ml", "qm", "total"} of an OpenMM Context of ``system``."""
        out = group_energies(context, self.groups)
        from openmm.unit import kilojoule_per_mole
        from hybrid import units
        tot = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(kilojoule_per_mole)
        out["total"] = tot * units.KJ_PER_MOL
        return out


def create_mixed_system(topology, system, *, qm_atoms=(), ml_atoms=(), qm_potential: Potential | None = None,
                        ml_potential: Potential | None = None, embedding: str = "mechanical",
                        charge_model: str = "gaussian", mm_radii=None, embedding_cutoff: float | None = None,
                        qm_charge: int | None = None, qm_multiplicity: int = 1, ml_group: int | None = None,
                        qm_group: int | None = None, reuse: bool = False) -> MixedSystem:
    """A QM/ML/MM System from an MM ``system`` (see the module docstring for E).

    topology : ``openmm.app.Topology`` of ``system`` (elements, residues, bonds)
    qm_atoms, ml_atoms : disjoint atom indices; either may be empty
    qm_potential, ml_potential : Potentials (eV, Å) for the regions; the ML
        potential acts on Q ∪ L (and, subtracted, on Q), the QM one on Q
    embedding : "mechanical" or "electrostatic"
    charge_model : "gaussian" (default; needs a PySCF QM potential) or "point"
    mm_radii : Gaussian widths σ (Å): a float for all, {element symbol: Å},
        or an array over all atoms; default covalent radii
    embedding_cutoff : Å, embed only residues within it (None: all)
    qm_charge : default: the rounded sum of the QM atoms' MM charges
    qm_multiplicity : spin multiplicity of the QM region
    ml_group, qm_group : force groups of the layers (default: the next free
        groups after the MM forces')
    reuse : passed to :class:`~couplers.openmm_force.PotentialForce`
    """
    from openmm import XmlSerializer

    n = system.getNumParticles()
    if topology.getNumAtoms() != n:
        raise InputError(f"the Topology has {topology.getNumAtoms()} atoms but the System {n} particles")
    if embedding not in ("mechanical", "electrostatic"):
        raise InputError(f"embedding must be 'mechanical' or 'electrostatic', got {embedding!r}")
    if charge_model not in ("gaussian", "point"):
        raise InputError(f"charge_model must be 'gaussian' or 'point', got {charge_model!r}")
    qm = np.unique(_indices("qm_atoms", qm_atoms))
    ml = np.unique(_indices("ml_atoms", ml_atoms))
    for label, idx in (("qm_atoms", qm), ("ml_atoms", ml)):
        if idx.size and idx.max() >= n:
            raise InputError(f"{label}: atom {int(idx.max())} outside a System of {n} particles")
    both = np.intersect1d(qm, ml)
    if both.size:
        raise InputError(f"atom {_describe(topology, both[0])} is in both the QM and the ML region")
    if qm.size and qm_potential is None:
        raise InputError(f"a QM region of {qm.size} atoms needs a qm_potential")
    if ml.size and ml_potential is None:
        raise InputError(f"an ML region of {ml.size} atoms needs an ml_potential")
    inner = np.union1d(qm, ml)
    is_qm = np.zeros(n, bool)
    is_qm[qm] = True
    is_inner = np.zeros(n, bool)
    is_inner[inner] = True

    if inner.size == 0:
        return MixedSystem(XmlSerializer.clone(system), qm, ml, groups={"mm": _groups(system)},
                           embedding=embedding)

    _check_boundary(topology, is_qm)
    _check_virtual_sites(system, topology, is_inner)
    nb_charges = _nonbonded_charges(system)
    if embedding == "electrostatic" and qm.size and nb_charges is None:
        raise InputError("electrostatic embedding takes the MM charges from a NonbondedForce; the System has none")

    try:
        xml = XmlSerializer.serialize(system)
    except Exception as exc:  # PythonForce with an unpicklable function, ...
        raise InputError(f"the System cannot be serialised for editing: {exc}") from None
    root = ET.fromstring(xml)
    removed = _remove_inner_terms(root, is_inner, is_qm, topology)
    new = XmlSerializer.deserialize(ET.tostring(root, encoding="unicode"))
    removed["nonbonded exceptions"] = _exclude_inner_pairs(new, inner)
    if embedding == "electrostatic" and qm.size:
        _zero_qm_charges(new, qm, topology)

    mm_groups = _groups(new)
    free = [g for g in range(32) if g not in mm_groups and g > max(mm_groups, default=-1)]
    free += [g for g in range(32) if g not in mm_groups and g not in free]
    free = [g for g in free if g not in (ml_group, qm_group)]
    if ml.size and ml_group is None:
        if not free:
            raise InputError("no free force group for the ML layer; pass ml_group")
        ml_group = free.pop(0)
    if qm.size and qm_group is None:
        if not free:
            raise InputError("no free force group for the QM layer; pass qm_group")
        qm_group = free.pop(0)
    for label, g in (("ml_group", ml_group if ml.size else None), ("qm_group", qm_group if qm.size else None)):
        if g is not None and (g in mm_groups or not 0 <= int(g) <= 31):
            raise InputError(f"{label}={g} is used by an MM force or outside 0..31; layers need their own groups")
    if ml.size and qm.size and ml_group == qm_group:
        raise InputError(f"ml_group and qm_group are both {ml_group}; layers need their own groups")

    out = MixedSystem(new, qm, ml, groups={"mm": mm_groups}, embedding=embedding, removed=removed)
    periodic = bool(system.usesPeriodicBoundaryConditions())

    if qm.size:
        if qm_charge is None:
            qm_charge = _region_charge(nb_charges, qm, topology)
        pot = qm_potential
        ext_atoms, ext_q, radii = np.zeros(0, int), None, None
        if embedding == "electrostatic":
            ext_atoms = np.flatnonzero(~is_inner & (nb_charges != 0))
            ext_q = nb_charges[ext_atoms]
            if charge_model == "gaussian":
                radii = _radii(mm_radii, topology, ext_atoms, n)
                if not isinstance(pot, PySCFPotential):
                    raise InputError(f"charge_model='gaussian' needs a PySCF QM potential; {pot.name} "
                                     "cannot smear charges, use charge_model='point'")
        residues = np.array([a.residue.index for a in topology.atoms()])
        region = ClusterRegion(pot, ext_groups=residues[ext_atoms] if ext_atoms.size else None,
                               ext_radii=radii, cutoff=embedding_cutoff, name=f"QM {pot.name}")
        f = PotentialForce(region, qm, atomic_numbers(topology, qm), ext_atoms=ext_atoms, ext_charges=ext_q,
                           charge=int(qm_charge), multiplicity=int(qm_multiplicity), force_group=qm_group,
                           name=f"QM: {pot.name}", periodic=periodic, reuse=reuse)
        f.add_to(new)
        out.forces["qm"], out.groups["qm"] = f, {qm_group}
        out.qm_potential = pot
        out.embedded_atoms, out.embedded_charges, out.embedded_radii = ext_atoms, ext_q, radii

    if ml.size:
        local_qm = np.searchsorted(inner, qm)
        layer = ml_potential
        if qm.size:
            qm_c = int(qm_charge)
            layer = LinearCombination([(1.0, ml_potential),
                                       (-1.0, Subset(ml_potential, local_qm, charge=qm_c,
                                                     name=f"{ml_potential.name}[QM]"))],
                                      name=f"ML {ml_potential.name}")
        ml_charge = 0 if nb_charges is None else int(round(float(nb_charges[inner].sum())))
        f = PotentialForce(layer, inner, atomic_numbers(topology, inner), charge=int(ml_charge), force_group=ml_group,
                           name=f"ML: {ml_potential.name}", periodic=periodic, reuse=reuse)
        f.add_to(new)
        out.forces["ml"], out.groups["ml"] = f, {ml_group}
        out.ml_potential = ml_potential
    return out


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _describe(topology, i) -> str:
    a = list(topology.atoms())[int(i)]
    return f"{int(i)} ({a.name} in {a.residue.name} {a.residue.id})"


def _groups(system) -> set:
    return {f.getForceGroup() for f in system.getForces()}


def _check_boundary(topology, is_qm) -> None:
    for bond in topology.bonds():
        a, b = bond[0].index, bond[1].index
        if is_qm[a] != is_qm[b]:
            q, m = (a, b) if is_qm[a] else (b, a)
            raise InputError(
                f"bond between QM atom {_describe(topology, q)} and non-QM atom {_describe(topology, m)} "
                "crosses the QM boundary; create_mixed_system takes QM regions of whole molecules only "
                "(covalent boundaries need link atoms, couplers.link_atoms)")


def _check_virtual_sites(system, topology, is_inner) -> None:
    for p in range(system.getNumParticles()):
        if not system.isVirtualSite(p):
            continue
        vs = system.getVirtualSite(p)
        parents = [vs.getParticle(k) for k in range(vs.getNumParticles())]
        if is_inner[p] or any(is_inner[q] for q in parents):
            raise InputError(f"virtual site {_describe(topology, p)} belongs to the QM/ML region; the models "
                             "see atoms only (use a water model without virtual sites, e.g. TIP3P)")


def _nonbonded_charges(system) -> np.ndarray | None:
    import openmm
    nbs = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)]
    if not nbs:
        return None
    if len(nbs) > 1:
        raise InputError(f"the System has {len(nbs)} NonbondedForces; expected one")
    nb = nbs[0]
    from openmm.unit import elementary_charge
    return np.array([nb.getParticleParameters(i)[0].value_in_unit(elementary_charge)
                     for i in range(nb.getNumParticles())])


def _region_charge(charges, atoms, topology) -> int:
    if charges is None or len(atoms) == 0:
        return 0
    q = float(charges[atoms].sum())
    if abs(q - round(q)) > 1e-3:
        raise InputError(f"the MM charges of the region (atoms {int(atoms[0])}..{int(atoms[-1])}, "
                         f"{len(atoms)} atoms) sum to {q:.4f} e, not an integer; pass qm_charge")
    return int(round(q))


_TERM_CONTAINERS = ("Bonds", "Angles", "Torsions")


def _term_atoms(el) -> list[int]:
    keys = [k for k in el.attrib if (k[0] in "pab" and k[1:].isdigit())]
    return [int(el.attrib[k]) for k in keys]


def _remove_inner_terms(root, is_inner, is_qm, topology) -> dict:
    """Drop bonded terms with all atoms inner from the serialised System (in place)."""
    removed = {}
    forces = root.find("Forces")
    for k, fel in enumerate(forces if forces is not None else []):
        ftype, fname = fel.attrib.get("type"), fel.attrib.get("name", fel.attrib.get("type"))
        if ftype in BONDED_FORCES:
            count = 0
            for cname in _TERM_CONTAINERS:
                cont = fel.find(cname)
                if cont is None:
                    continue
                for term in list(cont):
                    atoms = _term_atoms(term)
                    if not atoms:
                        continue
                    flags = is_inner[atoms]
                    if flags.all():
                        cont.remove(term)
                        count += 1
                    elif ftype == "HarmonicBondForce" and is_qm[atoms].any():
                        q = [a for a in atoms if is_qm[a]][0]
                        m = [a for a in atoms if not is_qm[a]][0]
                        raise InputError(f"force '{fname}' (index {k}) bonds QM atom {_describe(topology, q)} "
                                         f"to atom {_describe(topology, m)} outside the QM region; covalent "
                                         "QM boundaries need link atoms (couplers.link_atoms)")
            removed[fname] = removed.get(fname, 0) + count
        elif ftype in NONBONDED_FORCES or ftype in PASSIVE_FORCES:
            continue
        else:
            raise InputError(f"force '{fname}' (index {k}, {ftype}) couples atoms in a way create_mixed_system "
                             "cannot split between MM and the QM/ML regions; remove it or leave the regions empty")
    return removed


def _exclude_inner_pairs(system, inner) -> int:
    """Zero every inner–inner pair in NonbondedForce; rewrite CustomNonbondedForce interaction groups."""
    import openmm
    count = 0
    inner_list = [int(i) for i in inner]
    inner_set = set(inner_list)
    for f in system.getForces():
        if isinstance(f, openmm.NonbondedForce):
            for a in range(len(inner_list)):
                for b in range(a):
                    f.addException(inner_list[a], inner_list[b], 0.0, 1.0, 0.0, True)
                    count += 1
        elif isinstance(f, openmm.CustomNonbondedForce):
            n = f.getNumParticles()
            old = [tuple(map(set, f.getInteractionGroupParameters(g))) for g in range(f.getNumInteractionGroups())]
            if not old:
                old = [(set(range(n)), set(range(n)))]
            new = split_interaction_groups(old, inner_set)
            if not new:
                new = [(set(), set())]   # zero groups would mean "all pairs"
            ng = f.getNumInteractionGroups()
            for g, (s1, s2) in enumerate(new):
                if g < ng:
                    f.setInteractionGroupParameters(g, sorted(s1), sorted(s2))
                else:
                    f.addInteractionGroup(sorted(s1), sorted(s2))
            for g in range(len(new), ng):
                f.setInteractionGroupParameters(g, [], [])
    return count


def split_interaction_groups(groups, inner: set) -> list[tuple[set, set]]:
    """Interaction groups holding the pairs of ``groups`` except inner×inner, each pair once.

    groups : [(A, B), ...] sets of particle indices; OpenMM counts the
    unordered pairs {i ≠ j : i ∈ A, j ∈ B} of one group once, and a pair in
    two groups twice. Each (A, B) is split into the disjoint parts a = A∖B,
    b = B∖A, c = A∩B: pairs a×b, a×c, c×b (disjoint sets) and c×c; for
    disjoint X, Y,  X×Y ∖ I×I = (X∖I)×Y ∪ (X∩I)×(Y∖I), and
    c×c ∖ I×I = (c∖I)×(c∖I) ∪ (c∖I)×(c∩I). Empty groups are dropped.
    """
    out = []

    def add(x, y):
        if x and y:
            out.append((set(x), set(y)))

    for A, B in groups:
        A, B = set(A), set(B)
        a, b, c = A - B, B - A, A & B
        for X, Y in ((a, b), (a, c), (c, b)):
            add(X - inner, Y)
            add(X & inner, Y - inner)
        c_out = c - inner
        if len(c_out) > 1:
            out.append((c_out, set(c_out)))
        add(c_out, c & inner)
    return out


def _zero_qm_charges(system, qm, topology) -> None:
    import openmm
    qm_set = set(int(i) for i in qm)
    for f in system.getForces():
        if not isinstance(f, openmm.NonbondedForce):
            continue
        for k in range(f.getNumParticleParameterOffsets()):
            _, p, *_ = f.getParticleParameterOffset(k)
            if p in qm_set:
                raise InputError(f"NonbondedForce has a parameter offset on QM atom {_describe(topology, p)}; "
                                 "its charge cannot be handed to the QM region")
        for i in qm_set:
            _, sigma, eps = f.getParticleParameters(i)
            f.setParticleParameters(i, 0.0, sigma, eps)
        for k in range(f.getNumExceptions()):
            p1, p2, qq, sigma, eps = f.getExceptionParameters(k)
            if p1 in qm_set or p2 in qm_set:
                f.setExceptionParameters(k, p1, p2, 0.0, sigma, eps)


def _radii(mm_radii, topology, atoms, n) -> np.ndarray:
    """Gaussian widths σ (Å) of ``atoms``: covalent radii by default."""
    from ase.data import covalent_radii
    topo = list(topology.atoms())
    if mm_radii is None or isinstance(mm_radii, dict):
        table = dict(mm_radii or {})
        out = np.empty(len(atoms))
        for k, i in enumerate(atoms):
            a = topo[int(i)]
            if a.element is None:
                raise InputError(f"embedded charge on {_describe(topology, i)} has no element, so no default "
                                 "Gaussian radius; pass mm_radii as a float or an array")
            sym = a.element.symbol
            out[k] = table.get(sym, covalent_radii[a.element.atomic_number])
        return out
    arr = np.asarray(mm_radii, float)
    if arr.ndim == 0:
        return np.full(len(atoms), float(arr))
    if arr.shape != (n,):
        raise InputError(f"mm_radii must be a float, a dict by element or an array of {n} radii, got shape "
                         f"{arr.shape}")
    return arr[atoms]
