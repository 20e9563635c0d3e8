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
    assert run._resumable(path, results) == {"mlip": {}, "hybrid": {}, "strip": None}        # nothing yet
    earlier = {**results, "model": "/elsewhere/si.pt", "mlip": {"R=20": {"K_plus": [1.9, 2.0]}},
               "strip": {"size": [20, 6, 1], "strain": 0.085, "J_over_G": [1.0, 1.0, 1.0]},
               "hybrid": {"mlip_same_disc": {"K_plus": [1.9, 2.0]}, "r_qm=3": {"K_plus": [1.4, 1.5]}}}
    path.write_text(json.dumps(earlier))
    done = run._resumable(path, results)                 # another path to the same model: its constants decide
    assert done["mlip"] == earlier["mlip"]
    assert done["hybrid"] == {"r_qm=3": {"K_plus": [1.4, 1.5]}}   # the MLIP's own ramp is redone (its positions)
    assert done["strip"] == earlier["strip"]
    with pytest.raises(SystemExit, match="settings"):
        run._resumable(path, {**results, "settings": {"hybrid_radius": 20.0, "nve_dt": 0.25}})
    with pytest.raises(SystemExit, match="other model constants"):
        run._resumable(path, {**results, "properties": {"mlip": {"C11_GPa": 95.5}}})


def test_strip_check_finds_j_equal_to_the_exact_strip_g_on_three_domains(run):
    """The reduced run's strip (20 × 6 cells, ε = 8.5 %, where the shipped Si MLIP's W(ε) is > 10 % below
    linear): the finite-strain J is G = Y W(ε) within 5 % on three domains, the crack trapped where it was put
    (benchmarks/bench_crack_strip_j.py runs the larger strips)."""
    import torch

    from hybrid.ml.potential import MLPotential
    torch.set_num_threads(1)
    mlip = MLPotential.load(run.MODEL)
    row = run.strip_check(mlip, mlip.metadata["properties"]["mlip"], [20, 6, 1], 0.085)
    assert row["relaxed"] and abs(row["tip_moved_A"]) < 3.0          # less than one bond row (3.4 Å)
    assert row["G_lin_over_G"] > 1.1
    assert all(abs(j - 1) < 0.05 for j in row["J_over_G"]), row["J_over_G"]
