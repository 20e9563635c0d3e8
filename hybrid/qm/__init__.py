"""Quantum-chemistry layers."""
from .pyscf_layer import PySCFPotential

__all__ = ["PySCFPotential"]
