import os
import sys

import pytest

os.environ.setdefault("TORCHANI_NO_WARN_EXTENSIONS", "1")
sys.path.insert(0, os.path.dirname(__file__))

from fdtools import WATER  # noqa: E402
from hybrid.system import AtomicSystem  # noqa: E402


@pytest.fixture
def water():
    return AtomicSystem([8, 1, 1], WATER)
