"""qmml-hybrid: QM / Δ-ML / MLIP multiscale potentials."""
