"""Statistics over seeds and paired comparisons (scipy underneath)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

# Below this many seeds no interval over seeds is reported. With two values the t-interval
# has one degree of freedom (t = 12.7 at 95%): it is ±9 standard deviations wide, says nothing
# a reader can use, and mostly measures the clipping to the feasible range.
MIN_SEEDS_FOR_INTERVAL = 3


def mean_ci(
    values: Sequence[float],
    confidence: float = 0.95,
    bounds: tuple[float, float] = (0.0, 1.0),
    min_n: int = MIN_SEEDS_FOR_INTERVAL,
) -> dict[str, Any]:
    """Mean, sample standard deviation and a Student-t confidence interval over seeds.

    ``values`` is a 1-d sequence of per-seed results (accuracies as fractions by default).
    Returns ``{"mean", "std", "ci95", "n"}``: ``std`` uses ``ddof=1`` (0 for one value);
    ``ci95`` is ``[low, high]`` at level ``confidence`` (the key keeps its name for any level),
    or ``None`` when there are fewer than ``min_n`` values: no interval is better than a
    meaningless one (see :data:`MIN_SEEDS_FOR_INTERVAL`).

    The interval is the t-interval ``mean ± t(1 - (1 - c)/2, n - 1) · s / sqrt(n)`` intersected
    with ``bounds``, the range the statistic can take ((0, 1) for an accuracy). The true mean
    lies in that range, so the intersection covers it whenever the t-interval does: clipping
    keeps the coverage and only removes impossible values (Mandelkern 2002, "Setting confidence
    intervals for bounded parameters", Statistical Science 17(2):149-172). Raises ``ValueError``
    for an empty input or ``bounds`` with ``low > high``.
    """
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"need a non-empty 1-d sequence of values, got shape {x.shape}")
    low_bound, high_bound = bounds
    if low_bound > high_bound:
        raise ValueError(f"bounds must be (low, high) with low <= high, got {bounds}")
    n = len(x)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else 0.0
    if n < max(2, min_n):
        return {"mean": mean, "std": std, "ci95": None, "n": n}
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * std / np.sqrt(n))
    ci = [float(np.clip(mean - half, low_bound, high_bound)), float(np.clip(mean + half, low_bound, high_bound))]
    return {"mean": mean, "std": std, "ci95": ci, "n": n}


def paired_gain(treatment: Sequence[float], control: Sequence[float], scale: float = 100.0,
                confidence: float = 0.95, min_n: int = MIN_SEEDS_FOR_INTERVAL) -> dict[str, Any]:
    """Mean and t-interval of the per-seed differences ``treatment[k] - control[k]``.

    Seeds pair the runs (same initialisation and data order), so the interval is on
    the differences, not on the two means. ``scale = 100`` turns fractions into points;
    the interval is clipped to ``[-scale, scale]``, the range a difference of two fractions
    can take, and is ``None`` below ``min_n`` seeds (see :func:`mean_ci`).
    """
    a = np.asarray(treatment, dtype=float)
    b = np.asarray(control, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"need two equal-length 1-d sequences, got shapes {a.shape} and {b.shape}")
    out = mean_ci((a - b) * scale, confidence, bounds=(-scale, scale), min_n=min_n)
    out["per_seed"] = ((a - b) * scale).tolist()
    return out


def _correct_matrix(correct: np.ndarray | Sequence[Sequence[bool]]) -> np.ndarray:
    m = np.asarray(correct, dtype=float)
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[1] == 0:
        raise ValueError(f"expected a [seeds, sentences] matrix of 0/1, got shape {m.shape}")
    return m


def paired_bootstrap(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    n_resamples: int = 2000,
    seed: int = 0,
    alternative: str = "greater",
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Paired bootstrap over test sentences for "system A is more accurate than system B".

    ``correct_a`` and ``correct_b`` are ``[seeds, sentences]`` 0/1 matrices (or one row
    each) over the SAME test sentences. Each resample draws sentences with replacement
    and compares the mean accuracy over seeds of A with that of B, so the test asks
    whether the gain holds for new sentences, with seed variation averaged in.

    The p-value follows Berg-Kirkpatrick et al. (2012): the bootstrap distribution of
    the difference, shifted to the null (mean zero), is compared with the observed
    difference ``delta``. ``alternative="greater"`` (one-sided, A better) counts
    resamples with ``d* - delta >= delta``; ``"two-sided"`` counts ``|d* - delta| >= |delta|``.
    The +1 in numerator and denominator keeps p above zero for a finite number of resamples.
    """
    if alternative not in ("greater", "two-sided"):
        raise ValueError(f"alternative must be 'greater' or 'two-sided', got {alternative!r}")
    a = _correct_matrix(correct_a)
    b = _correct_matrix(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"A and B were scored on different numbers of sentences: {a.shape[1]} vs {b.shape[1]}")
    # Mean over seeds first: the statistic is linear, so resampling the per-sentence
    # differences gives exactly the difference of seed-averaged accuracies.
    diff = a.mean(axis=0) - b.mean(axis=0)
    n = len(diff)
    delta = float(diff.mean())
    rng = np.random.default_rng(seed)
    boot = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        boot[start : start + size] = diff[idx].mean(axis=1)
    centred = boot - delta
    if alternative == "greater":
        extreme = int((centred >= delta).sum())
    else:
        extreme = int((np.abs(centred) >= abs(delta)).sum())
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return {
        "delta": delta,
        "ci95": [float(lo), float(hi)],
        "p_value": (extreme + 1) / (n_resamples + 1),
        "alternative": alternative,
        "n_resamples": n_resamples,
        "n_sentences": n,
        "n_seeds": [a.shape[0], b.shape[0]],
    }


def mcnemar_exact(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> dict[str, Any]:
    """Exact McNemar test of two classifiers on the same sentences (two-sided).

    Only discordant sentences matter: ``b`` where A is right and B wrong, ``c`` the
    reverse. Under the null each discordant sentence goes either way with probability
    1/2, so ``b ~ Binomial(b + c, 1/2)`` (scipy's exact binomial test).
    """
    a = np.asarray(correct_a, dtype=bool)
    b_ = np.asarray(correct_b, dtype=bool)
    if a.shape != b_.shape or a.ndim != 1:
        raise ValueError(f"need two equal-length 1-d 0/1 vectors, got shapes {a.shape} and {b_.shape}")
    only_a = int((a & ~b_).sum())
    only_b = int((~a & b_).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(sps.binomtest(only_a, discordant, 0.5, alternative="two-sided").pvalue)
    return {"a_only_correct": only_a, "b_only_correct": only_b, "discordant": discordant, "p_value": p}


def gap_closed(teacher: float, baseline: float, distilled: float) -> float | None:
    """Share of the teacher-baseline gap the distilled student closes:
    ``(distilled - baseline) / (teacher - baseline)`` (accuracy fractions in, a fraction out;
    negative when distillation hurts). ``None`` when the teacher is not above the baseline.
    Tang et al. (2019) close about half of it on SST-2."""
    gap = teacher - baseline
    return (distilled - baseline) / gap if gap > 0 else None
