"""Batch selection by committee uncertainty with diversity, and the ActiveLearner's pool iteration."""
import numpy as np
import pytest

from hybrid.build import water_cluster
from hybrid.errors import InputError
from hybrid.ml.active import ActiveLearner
from hybrid.ml.adapters import XTBPotential
from hybrid.ml.selection import diverse_batch, fingerprints
from hybrid.ml.uncertainty import TrustLevels

from test_active import random_committee


def two_clusters():
    """Five near-duplicates at the origin with the top scores, three far points with lower ones."""
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(scale=0.01, size=(5, 4)), 10 + rng.normal(scale=0.01, size=(3, 4))])
    s = np.array([1.0, 0.99, 0.98, 0.97, 0.96, 0.5, 0.45, 0.4])
    return s, x


def test_diversity_skips_near_duplicates_of_chosen_frames():
    s, x = two_clusters()
    assert diverse_batch(s, x, 2, diversity=0.0) == [0, 1]            # by score alone: the same excursion twice
    assert diverse_batch(s, x, 2) == [0, 5]                           # diverse: the best of the other cluster
    assert diverse_batch(s, x, 3)[:2] == [0, 5]
    # frames labelled before count as chosen: near the origin, the far cluster comes first
    assert diverse_batch(s, x, 1, known=x[:1]) == [5]
    # below the lower trust level nothing is chosen; a batch can be smaller than k
    assert diverse_batch(s, x, 8, min_score=0.9, diversity=0.0) == [0, 1, 2, 3, 4]
    assert diverse_batch(s, x, 3, min_score=2.0) == []
    assert diverse_batch(np.where(np.arange(8) == 0, np.nan, s), x, 1, diversity=0.0) == [1]   # NaN: never


def test_selection_inputs_are_checked():
    s, x = two_clusters()
    with pytest.raises(InputError, match="k must be an integer >= 1, got 0"):
        diverse_batch(s, x, 0)
    with pytest.raises(InputError, match=r"features must have shape \(8, D\)"):
        diverse_batch(s, x[:3], 2)
    with pytest.raises(InputError, match="diversity must be >= 0"):
        diverse_batch(s, x, 2, diversity=-1.0)


def test_select_and_label_labels_the_chosen_frames_and_retrains():
    s = water_cluster(3, seed=0)
    rng = np.random.default_rng(1)
    pool = [s.with_positions(s.positions + rng.normal(scale=0.05, size=s.positions.shape)) for _ in range(10)]
    com = random_committee()
    x = fingerprints(com.members[0].model, pool)
    assert x.shape == (10, 2 * 2 * com.members[0].model.n_features)
    al = ActiveLearner(com, XTBPotential(), train_frames=[], levels=TrustLevels(0.0, 1e6), validation_fraction=0.0,
                       retrain_every=3, min_new_labels=1, retrain_kwargs=dict(epochs=2, batch_size=2))
    out = al.select_and_label(pool, 3)
    assert len(out["chosen"]) == 3 == len(set(out["chosen"])) and len(out["labels"]) == 3
    ref = XTBPotential()
    for c, frame in zip(out["chosen"], out["labels"]):
        assert np.allclose(frame.system.positions, pool[c].positions)
        assert frame.energy == pytest.approx(ref.compute(pool[c]).energy, abs=1e-8)   # the reference's own label
    triggers = [e for e in al.events if e["event"] == "trigger"]
    assert [e["pool_index"] for e in triggers] == out["chosen"] and all(e["source"] == "pool" for e in triggers)
    assert out["retrain"] is not None and out["retrain"]["n_new"] == 3 and not al.pending
    # chosen frames are known now: a second round never repeats them
    again = al.select_and_label(pool, 3, retrain=False)
    assert len(again["chosen"]) == 3 and not set(again["chosen"]) & set(out["chosen"])
    with pytest.raises(InputError, match="no candidate systems"):
        al.select_and_label([], 2)
    with pytest.raises(InputError, match="score='median' is not 'max' or 'mean'"):
        al.select_and_label(pool, 2, score="median")
    mean = al.select_and_label(pool, 1, score="mean", retrain=False)
    assert mean["scores"][0] == pytest.approx(float(np.mean(com.compute(pool[mean["chosen"][0]]).force_std)))
