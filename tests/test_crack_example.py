"""examples/crack/run.py --resume: rows of an earlier results.json are kept only when they were made with
the same model constants, region shape and settings."""
import importlib.util
import json
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "examples" / "crack" / "run.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("crack_run", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_resume_keeps_rows_of_the_same_settings_and_refuses_others(run, tmp_path):
    results = {"model": "/somewhere/si.pt", "qm_shape": "cylinder", "properties": {"mlip": {"C11_GPa": 97.2}},
               "settings": {"hybrid_radius": 20.0, "nve_dt": 0.5}, "mlip": {}, "hybrid": {}}
    path = tmp_path / "results.json"
    assert run._resumable(path, results) == {"mlip": {}, "hybrid": {}}        # nothing yet
    earlier = {**results, "model": "/elsewhere/si.pt", "mlip": {"R=20": {"K_plus": [1.9, 2.0]}},
               "hybrid": {"mlip_same_disc": {"K_plus": [1.9, 2.0]}, "r_qm=3": {"K_plus": [1.4, 1.5]}}}
    path.write_text(json.dumps(earlier))
    done = run._resumable(path, results)                 # another path to the same model: its constants decide
    assert done["mlip"] == earlier["mlip"]
    assert done["hybrid"] == {"r_qm=3": {"K_plus": [1.4, 1.5]}}   # the MLIP's own ramp is redone (its positions)
    with pytest.raises(SystemExit, match="settings"):
        run._resumable(path, {**results, "settings": {"hybrid_radius": 20.0, "nve_dt": 0.25}})
    with pytest.raises(SystemExit, match="other model constants"):
        run._resumable(path, {**results, "properties": {"mlip": {"C11_GPa": 95.5}}})
