import os
import sys

import pytest

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
sys.path.insert(0, os.path.dirname(__file__))

from fdtools import WATER  # noqa: E402
from hybrid.system import AtomicSystem  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Small torch models on a shared 2-core machine: one thread avoids OpenMP spin-waiting."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def water():
    return AtomicSystem([8, 1, 1], WATER)
