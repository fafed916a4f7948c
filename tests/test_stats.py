"""Seed statistics and paired tests: against scipy, hand counts and known cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from kdutils.stats import (
    MIN_SEEDS_FOR_INTERVAL,
    mcnemar_exact,
    mean_ci,
    paired_bootstrap,
    paired_gain,
)


def test_mean_ci_matches_scipy_t_interval() -> None:
    x = [0.78, 0.80, 0.79, 0.82, 0.77]
    out = mean_ci(x)
    lo, hi = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert out["ci95"] == pytest.approx([lo, hi])
    assert out["n"] == 5


def test_no_interval_below_the_minimum_number_of_seeds() -> None:
    # Two accuracies 46.7% apart on average gave [-80.4%, 173.7%] before: now no interval at all.
    assert MIN_SEEDS_FOR_INTERVAL == 3
    for values in ([0.5], [0.2, 0.733]):
        out = mean_ci(values)
        assert out["ci95"] is None and out["n"] == len(values)
        assert out["mean"] == pytest.approx(np.mean(values))
    assert mean_ci([0.5])["std"] == 0.0
    assert paired_gain([0.8, 0.9], [0.7, 0.95])["ci95"] is None
    assert mean_ci([0.2, 0.7], min_n=2)["ci95"] is not None
    with pytest.raises(ValueError, match="non-empty"):
        mean_ci([])
    with pytest.raises(ValueError, match="bounds"):
        mean_ci([0.1, 0.2, 0.3], bounds=(1.0, 0.0))


def test_intervals_never_leave_the_feasible_range() -> None:
    """Over many random seed sets, near the edges and widely spread: every bound is possible."""
    rng = np.random.default_rng(0)
    clipped = 0
    for _ in range(3000):
        n = int(rng.integers(1, 9))
        centre = rng.choice([0.02, 0.5, 0.98, rng.random()])
        acc = np.clip(centre + rng.normal(0, rng.choice([0.01, 0.2, 0.6]), n), 0, 1)
        out = mean_ci(acc)
        if n < MIN_SEEDS_FOR_INTERVAL:
            assert out["ci95"] is None
            continue
        lo, hi = out["ci95"]
        assert 0.0 <= lo <= out["mean"] <= hi <= 1.0
        other = np.clip(rng.random() + rng.normal(0, 0.3, n), 0, 1)
        g_lo, g_hi = paired_gain(acc, other)["ci95"]
        assert -100.0 <= g_lo <= g_hi <= 100.0
        # Where clipping did nothing, the interval is scipy's t-interval.
        t_lo, t_hi = sps.t.interval(0.95, n - 1, loc=acc.mean(), scale=sps.sem(acc)) if acc.std() > 0 else (
            acc.mean(), acc.mean())
        if 0 <= t_lo and t_hi <= 1:
            assert [lo, hi] == pytest.approx([t_lo, t_hi])
        else:
            clipped += 1
    assert clipped > 100  # the edge cases were really exercised


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
