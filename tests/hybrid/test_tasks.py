"""Independent sampling tasks on the Dask cluster, stored as they finish and resumed after an interruption."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from hybrid.analytic import DoubleWell
from hybrid.errors import InputError
from hybrid.sampling.hmc import SurrogateHMC
from hybrid.system import AtomicSystem
from hybrid.tasks import Task, run_tasks

T = 300.0


def chain(seed: int, n: int = 200):
    """A hybrid-MC chain on a double well with a wrong surrogate: the kind of task a user scales out."""
    ref, sur = DoubleWell(0.08, 0.5), DoubleWell(0.05, 0.5)
    start = AtomicSystem([1], [[0.5, 0.0, 0.0]])
    run = SurrogateHMC(ref, sur, T, 1.0, 10, seed=seed).run(start, n, keep_positions=True)
    return run.positions[:, 0, 0]


def tasks(seeds, n=200):
    return {f"chain_{s}": Task(chain, (s,), {"n": n}, inputs={"seed": s, "n": n}) for s in seeds}


def flaky(path):
    """Fails on its first call (per marker file), succeeds on the second."""
    if not os.path.exists(path):
        open(path, "w").close()
        raise RuntimeError("first attempt fails")
    return "ok"


def always_fails():
    raise ValueError("bad window")


def test_dask_cluster_gives_the_synchronous_results_and_a_rerun_computes_nothing(tmp_path):
    sync = run_tasks(tasks([1, 2, 3]), tmp_path / "sync", scheduler="synchronous")
    assert sorted(sync.computed) == ["chain_1", "chain_2", "chain_3"] and not sync.failed
    dask = run_tasks(tasks([1, 2, 3]), tmp_path / "dask", n_workers=2)
    for name in sync.values:       # seeded chains: the same numbers wherever they ran
        np.testing.assert_array_equal(sync[name], dask[name])
    assert not np.allclose(sync["chain_1"], sync["chain_2"])
    again = run_tasks(tasks([1, 2, 3]), tmp_path / "dask", n_workers=2)
    assert again.computed == [] and sorted(again.resumed) == sorted(sync.values)
    np.testing.assert_array_equal(again["chain_2"], sync["chain_2"])
    # one more chain: only it runs
    more = run_tasks(tasks([1, 2, 3, 4]), tmp_path / "dask", scheduler="synchronous")
    assert more.computed == ["chain_4"]


def test_failures_are_retried_logged_and_reported(tmp_path):
    out = run_tasks({"flaky": Task(flaky, (str(tmp_path / "marker"),)), "bad": Task(always_fails),
                     "good": Task(chain, (5, 20))}, tmp_path / "run", scheduler="synchronous")
    assert out["flaky"] == "ok" and "flaky" not in out.failed
    assert "ValueError: bad window" in out.failed["bad"]
    with pytest.raises(InputError, match="bad window"):
        out["bad"]
    log = [json.loads(line) for line in (tmp_path / "run" / "failures.jsonl").read_text().splitlines()]
    assert [(e["name"], e["attempt"]) for e in log] == [("flaky", 1), ("bad", 1), ("bad", 2)]
    assert "always_fails" in log[1]["traceback"]
    assert not (tmp_path / "run" / "bad.pkl").exists()


def test_changed_inputs_and_bad_tasks_are_refused_before_anything_runs(tmp_path):
    run_tasks(tasks([1], n=20), tmp_path / "run", scheduler="synchronous")
    with pytest.raises(InputError, match=r"chain_1.pkl: stored for other inputs .*\(n: 20 -> 30\)"):
        run_tasks({**tasks([2], n=30), **tasks([1], n=30)}, tmp_path / "run", scheduler="synchronous")
    assert not (tmp_path / "run" / "chain_2.pkl").exists()
    with pytest.raises(InputError, match="task name 'a/b'"):
        run_tasks({"a/b": Task(chain)}, tmp_path / "x")
    with pytest.raises(InputError, match="must be a Task"):
        run_tasks({"a": chain}, tmp_path / "x")
    with pytest.raises(InputError, match="JSON-serialisable"):
        run_tasks({"a": Task(chain, inputs={"x": object()})}, tmp_path / "x")
    with pytest.raises(InputError, match="non-empty"):
        run_tasks({}, tmp_path / "x")


SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_tasks import tasks
    from hybrid.tasks import Task, run_tasks

    def slow(k):
        if k >= 2:
            time.sleep(60)
        return k

    out = run_tasks({{f"w{{k}}": Task(slow, (k,), inputs={{"k": k}}) for k in range(4)}}, {out!r},
                    scheduler="synchronous")
    print("finished", sorted(out.values))
""")


def test_sigterm_keeps_the_finished_tasks_and_a_rerun_resumes(tmp_path):
    """A batch system's SIGTERM mid-run: stored results stay whole, no partial file, the rerun does the rest."""
    out = tmp_path / "run"
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(tests=os.path.dirname(__file__), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 60
    while not (out / "w1.pkl").exists() and time.time() < deadline:
        time.sleep(0.1)
    assert (out / "w1.pkl").exists()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["w0.pkl", "w1.pkl"]
    from hybrid.tasks import run_tasks as again
    done = again({f"w{k}": Task(int, (k,), inputs={"k": k}) for k in range(4)}, out, scheduler="synchronous")
    assert sorted(done.resumed) == ["w0", "w1"] and sorted(done.computed) == ["w2", "w3"]
    assert [done[f"w{k}"] for k in range(4)] == [0, 1, 2, 3]
