"""Seed statistics and paired tests: against scipy, hand counts and known cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from kdutils.stats import mcnemar_exact, mean_ci, paired_bootstrap, paired_gain


def test_mean_ci_matches_scipy_t_interval() -> None:
    x = [0.78, 0.80, 0.79, 0.82, 0.77]
    out = mean_ci(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert out["ci95"] == pytest.approx([lo, hi])
    assert out["n"] == 5
    assert mean_ci([0.5])["ci95"] == [0.5, 0.5]


def test_paired_gain_is_on_differences_in_points() -> None:
    distilled = [0.82, 0.83, 0.81, 0.84, 0.82]
    baseline = [0.78, 0.80, 0.77, 0.80, 0.79]
    out = paired_gain(distilled, baseline)
    diffs = (np.array(distilled) - np.array(baseline)) * 100
    assert out["mean"] == pytest.approx(diffs.mean())
    assert out["per_seed"] == pytest.approx(diffs.tolist())
    # Pairing removes the shared seed effect: the paired interval is narrower than
    # the one a difference of independent means would give.
    lo, hi = out["ci95"]
    unpaired = sps.ttest_ind(distilled, baseline).confidence_interval(0.95)
    assert hi - lo < (unpaired.high - unpaired.low) * 100
    assert sps.ttest_rel(diffs, np.zeros(5)).confidence_interval().low == pytest.approx(lo)
    with pytest.raises(ValueError, match="equal-length"):
        paired_gain([0.8, 0.9], [0.8])


def _correct(rng: np.random.Generator, seeds: int, n: int, acc: float) -> np.ndarray:
    return (rng.random((seeds, n)) < acc).astype(int)


def test_bootstrap_finds_a_real_gain_and_not_a_null_one() -> None:
    rng = np.random.default_rng(0)
    n = 1000
    truth_b = _correct(rng, 3, n, 0.78)
    # A fixes 8% of the sentences B gets wrong on every seed: a clear, real gain.
    flip = rng.random(n) < 0.3
    truth_a = np.where(flip[None, :], 1, truth_b)
    gain = paired_bootstrap(truth_a, truth_b, n_resamples=2000, seed=1)
    assert gain["delta"] > 0.05
    assert gain["p_value"] < 0.01
    assert gain["ci95"][0] > 0 and gain["alternative"] == "greater"
    # The same system against itself: no evidence at all.
    same = paired_bootstrap(truth_b, truth_b, n_resamples=500, seed=1)
    assert same["delta"] == 0 and same["p_value"] > 0.5
    # A worse system never looks significantly better (one-sided), but does two-sided.
    worse = paired_bootstrap(truth_b, truth_a, n_resamples=500, seed=1)
    assert worse["p_value"] > 0.5
    assert paired_bootstrap(truth_b, truth_a, n_resamples=500, seed=1, alternative="two-sided")["p_value"] < 0.01


def test_bootstrap_delta_is_difference_of_seed_mean_accuracies_and_is_seeded() -> None:
    rng = np.random.default_rng(3)
    a, b = _correct(rng, 2, 300, 0.8), _correct(rng, 4, 300, 0.75)
    out = paired_bootstrap(a, b, n_resamples=300, seed=5)
    assert out["delta"] == pytest.approx(a.mean(axis=1).mean() - b.mean(axis=1).mean())
    assert out == paired_bootstrap(a, b, n_resamples=300, seed=5)
    assert out["n_seeds"] == [2, 4]
    with pytest.raises(ValueError, match="different numbers of sentences"):
        paired_bootstrap(a, b[:, :200])
    with pytest.raises(ValueError, match="alternative"):
        paired_bootstrap(a, b, alternative="less")


def test_mcnemar_counts_discordant_pairs_and_uses_exact_binomial() -> None:
    a = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0])
    b = np.array([0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0])
    out = mcnemar_exact(a, b)
    assert out["a_only_correct"] == 6 and out["b_only_correct"] == 1 and out["discordant"] == 7
    assert out["p_value"] == pytest.approx(sps.binomtest(6, 7, 0.5).pvalue)
    # Symmetric in the two systems.
    assert mcnemar_exact(b, a)["p_value"] == pytest.approx(out["p_value"])
    # Identical predictions: no discordant pair, no evidence.
    assert mcnemar_exact(a, a)["p_value"] == 1.0
    with pytest.raises(ValueError, match="equal-length"):
        mcnemar_exact(a, b[:5])
