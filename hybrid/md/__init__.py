"""Hybrid molecular dynamics from a configuration file (``hybrid run CONFIG.toml``).

* :mod:`hybrid.md.structure`  - the atoms, their molecules and an OpenMM Topology;
* :mod:`hybrid.md.levels`     - levels of theory and the blended multilayer model;
* :mod:`hybrid.md.preflight`  - everything before step 0, checked (shared by `hybrid check` and `hybrid run`);
* :mod:`hybrid.md.outputs`    - CSV logs and trajectories that can be cut back to a checkpoint;
* :mod:`hybrid.md.checkpoint` - atomic checkpoints of the OpenMM state;
* :mod:`hybrid.md.plot`       - the summary plot;
* :mod:`hybrid.md.runner`     - the run loop, resume and clean failure.
"""
