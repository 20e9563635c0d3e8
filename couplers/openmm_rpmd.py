"""Ring-polymer (path-integral) MD of any Potential through OpenMM's ``RPMDIntegrator``.

The potential enters the OpenMM System as a :class:`~couplers.openmm_force.PotentialForce` (force group 0),
which OpenMM evaluates on every bead. With ``correction`` (e.g. QM - MLIP, or a blend's correction) a second
PotentialForce in force group 1 is *contracted* to ``contracted_beads`` m (OpenMM's per-group contraction):
the expensive term is evaluated m times per step instead of P, and OpenMM's forces are those of the
contracted Hamiltonian (1/P) Σ_k V(r_k) + (1/m) Σ_j ΔV(r̃_j) (:mod:`hybrid.sampling.path_integral`).
The thermostat is OpenMM's PILE: the internal modes critically damped, the centroid with ``friction``.

Every ``sample_every`` steps the beads are read and the estimators recorded: per-atom primitive and
centroid-virial kinetic energies, and the contracted Hamiltonian's potential energy. Reading costs P more
evaluations of ``potential`` (OpenMM's per-copy state re-evaluates the force) and m of ``correction``.

Units at this seam: Å, fs, eV, amu, K (OpenMM's nm, ps, kJ/mol stay inside).
"""
from __future__ import annotations

import time

import numpy as np

from hybrid import units
from hybrid.errors import InputError
from hybrid.potential import Potential
from hybrid.sampling.hmc import default_masses
from hybrid.sampling.path_integral import PIMDRun, centroid_virial_kinetic, contract, primitive_kinetic
from hybrid.system import AtomicSystem

from .openmm_force import PotentialForce

EV_PER_KJ_NM = units.KJ_PER_MOL / units.NM        # kJ/mol/nm -> eV/Å


def _to_vec3(x_ang):
    import openmm as mm
    return [mm.Vec3(*row) for row in np.asarray(x_ang) / units.NM]


def run_rpmd(potential: Potential, system: AtomicSystem, n_beads: int, temperature: float, timestep: float,
             n_steps: int, *, correction: Potential | None = None, contracted_beads: int | None = None,
             friction: float = 1.0, masses=None, sample_every: int = 10, equilibration: int = 0,
             seed: int | None = None, platform: str = "Reference", keep_beads: bool = False) -> PIMDRun:
    """Ring-polymer MD of ``potential`` (+ ``correction``, contracted to ``contracted_beads``) on ``system``.

    n_beads P; temperature K; timestep fs; friction 1/ps (the centroid's PILE friction);
    ``equilibration`` steps are run before the first sample. Beads start at the system's positions.
    ``keep_beads`` stores every sample's beads in the run (for :func:`hybrid.sampling.path_integral.reweight`).
    """
    import openmm as mm
    from openmm import unit as u
    for name, v in (("n_beads", n_beads), ("n_steps", n_steps), ("sample_every", sample_every)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise InputError(f"run_rpmd: {name} must be an integer >= 1, got {v!r}")
    if isinstance(equilibration, bool) or int(equilibration) != equilibration or equilibration < 0:
        raise InputError(f"run_rpmd: equilibration must be an integer >= 0, got {equilibration!r}")
    for name, v in (("temperature", temperature), ("timestep", timestep), ("friction", friction)):
        if not (np.isfinite(float(v)) and float(v) > 0):
            raise InputError(f"run_rpmd: {name} must be positive, got {v!r}")
    p = int(n_beads)
    m_c = None
    if correction is not None:
        m_c = p if contracted_beads is None else contracted_beads
        if isinstance(m_c, bool) or int(m_c) != m_c or not 1 <= m_c <= p:
            raise InputError(f"run_rpmd: contracted_beads must be an integer in 1..{p}, got {contracted_beads!r}")
        m_c = int(m_c)
    elif contracted_beads is not None:
        raise InputError("run_rpmd: contracted_beads given without a correction to contract")
    mass = default_masses(system) if masses is None else np.asarray(masses, float)
    if mass.shape != (len(system),) or np.any(~(mass > 0)):
        raise InputError(f"run_rpmd: masses must be {len(system)} positive numbers (amu)")

    omm = mm.System()
    for mi in mass:
        omm.addParticle(float(mi))
    atoms = np.arange(len(system))
    kw = dict(charge=int(system.charge), multiplicity=int(system.multiplicity))
    main = PotentialForce(potential, atoms, system.numbers, **kw)
    main.force_group = 0
    main.add_to(omm)
    corr = None
    if correction is not None:
        corr = PotentialForce(correction, atoms, system.numbers, **kw)
        corr.force_group = 1
        corr.add_to(omm)
    if system.periodic:
        omm.setDefaultPeriodicBoxVectors(*[mm.Vec3(*row / units.NM) for row in system.cell])
    contractions = {1: m_c} if corr is not None and m_c < p else {}
    integ = mm.RPMDIntegrator(p, temperature * u.kelvin, friction / u.picosecond,
                              timestep * 1e-3 * u.picosecond, contractions)
    if seed is not None:
        integ.setRandomNumberSeed(int(seed) % 2**31)
    # the Context must stay alive while the integrator steps
    context = mm.Context(omm, integ, mm.Platform.getPlatformByName(platform))  # noqa: F841
    for k in range(p):
        integ.setPositions(k, _to_vec3(system.positions))
    rng = np.random.default_rng(seed)
    for k in range(p):
        v = rng.normal(size=(len(system), 3)) * np.sqrt(units.KB_EV * temperature * units.ACCEL / mass[:, None])
        integ.setVelocities(k, [mm.Vec3(*row) for row in v * 1e3 / units.NM])      # Å/fs -> nm/ps

    t0 = time.perf_counter()
    if equilibration:
        integ.step(int(equilibration))
    kp, kv, pot, cor, cen, kept = [], [], [], [], [], []
    n_samples = int(n_steps) // int(sample_every)
    for _ in range(n_samples):
        integ.step(int(sample_every))
        r = np.empty((p, len(system), 3))
        f = np.empty_like(r)
        v0 = 0.0
        for k in range(p):
            st = integ.getState(k, getPositions=True, getForces=True, getEnergy=True, groups={0})
            r[k] = st.getPositions(asNumpy=True).value_in_unit(u.nanometer) * units.NM
            f[k] = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer) * EV_PER_KJ_NM
            v0 += st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) * units.KJ_PER_MOL
        kin_p = primitive_kinetic(r, mass, temperature)
        kin_v = centroid_virial_kinetic(r, f, temperature)
        dv = 0.0
        if correction is not None:              # the contracted term: -(1/2m) Σ_j (r̃_j - r̄)·ΔF(r̃_j) per atom
            rc, centroid = contract(r, m_c), r.mean(0)
            for j in range(m_c):
                res = correction.compute(system.with_positions(rc[j]))
                dv += res.energy / m_c
                kin_v = kin_v - 0.5 / m_c * np.sum((rc[j] - centroid) * res.forces, axis=1)
            cor.append(dv)
        kp.append(kin_p)
        kv.append(kin_v)
        pot.append(v0 / p + dv)
        cen.append(r.mean(0))
        if keep_beads:
            kept.append(r)
    wall = time.perf_counter() - t0
    evals = {"potential": main.n_evaluations}
    if corr is not None:
        evals["correction"] = corr.n_evaluations + n_samples * m_c
    return PIMDRun(float(temperature), p, m_c, mass, np.array(kp), np.array(kv), np.array(pot),
                   np.array(cor) if correction is not None else None, np.array(cen), evals, wall,
                   {"timestep": timestep, "n_steps": int(n_steps), "sample_every": int(sample_every),
                    "friction": friction, "equilibration": int(equilibration)},
                   beads=np.array(kept) if keep_beads else None)
