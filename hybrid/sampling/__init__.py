"""Thermodynamics on hybrid Hamiltonians: λ-coupling between levels (:mod:`.coupling`), free-energy
estimators (:mod:`.estimators`), hybrid Monte Carlo with a cheap proposal (:mod:`.hmc`), umbrella sampling
(:mod:`.umbrella`), path-integral estimators (:mod:`.path_integral`; the ring-polymer engine is
:mod:`couplers.openmm_rpmd`) and harmonic Wigner sampling of initial conditions (:mod:`.wigner`)."""
