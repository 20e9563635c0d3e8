"""Exceptions that name what is wrong, so users never read a library's traceback."""
from __future__ import annotations


class HybridError(Exception):
    """Base class of all qmml-hybrid errors."""


class InputError(HybridError, ValueError):
    """A system, array, file or setting that cannot be used as given."""


class UnknownElementError(InputError):
    """A model was asked about an element it was not trained on."""


class ModelFileError(InputError):
    """A model file that is missing, unreadable or of the wrong kind."""


class SCFConvergenceError(HybridError, RuntimeError):
    """An SCF that did not converge even after the rescue ladder."""
