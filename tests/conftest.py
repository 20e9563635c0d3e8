import os
import sys

import pytest

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
sys.path.insert(0, os.path.dirname(__file__))

from fdtools import WATER  # noqa: E402
from hybrid.system import AtomicSystem  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """PySCF, torch and BLAS on one thread, as on each Dask worker and in a ProcessPotential child: small
    SCFs and models on a shared 2-core machine are faster without OpenMP spin-waiting."""
    from hybrid import threads
    saved = threads.current(blas=True)
    threads.apply({"pyscf": 1, "torch": 1, "blas": 1})
    yield
    threads.apply(saved)


@pytest.fixture
def water():
    return AtomicSystem([8, 1, 1], WATER)
