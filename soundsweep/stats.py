"""Statistics over repeated scores: per-configuration summaries and paired two-configuration tests.

A configuration run on k folds and/or r seeds has k x r scores. :func:`summarize` gives their
mean, sample standard deviation and t-based 95% confidence interval of the mean; two
configurations scored on the same folds and seeds are compared with :func:`paired_tests`: the
paired t-test (Pons and Serra) and the Wilcoxon signed-rank test (Cramer et al.).

>>> round(summarize([0.61, 0.64, 0.58, 0.66, 0.63]).mean, 3)
0.624
"""
import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof 1) and the ``confidence`` interval of the mean
    (Student t with n - 1 degrees of freedom); std and interval are NaN for a single score."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    def as_dict(self) -> dict:
        return asdict(self)


def summarize(scores, confidence: float = 0.95) -> Summary:
    """Summarize one configuration's scores (one per fold and seed)."""
    x = np.asarray(scores, dtype=float)
    if x.size == 0:
        raise ValueError("no scores to summarize")
    mean = float(x.mean())
    if x.size < 2:
        return Summary(1, mean, math.nan, math.nan, math.nan, confidence)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * std / math.sqrt(x.size)
    return Summary(int(x.size), mean, std, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class PairedTests:
    """Two configurations' paired scores: the difference a - b summarized, the paired t-test
    (statistic, degrees of freedom, two-sided p) and the Wilcoxon signed-rank test (statistic =
    the smaller signed-rank sum, two-sided p; zero differences dropped, SciPy's default
    exact/normal choice)."""

    n: int
    difference: Summary
    t: float
    df: int
    t_p: float
    wilcoxon: float
    wilcoxon_p: float

    def as_dict(self) -> dict:
        return {**asdict(self), "difference": self.difference.as_dict()}


def paired_tests(a, b, confidence: float = 0.95) -> PairedTests:
    """Compare scores ``a[i]`` and ``b[i]`` obtained on the same fold and seed ``i``.

    Identical differences have no spread: the t statistic is then infinite (p = 0) when they
    are not zero, and undefined (NaN, p = 1) when every pair is tied, as is the Wilcoxon test.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need two equal-length lists; got {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"a paired test needs at least 2 pairs; got {a.size}")
    d = a - b
    difference = summarize(d, confidence)
    if difference.std > 0:
        t = difference.mean / (difference.std / math.sqrt(d.size))
        t_p = float(2 * stats.t.sf(abs(t), d.size - 1))
    else:
        t = math.copysign(math.inf, difference.mean) if difference.mean else math.nan
        t_p = 0.0 if difference.mean else 1.0
    if np.any(d != 0):
        result = stats.wilcoxon(d)
        w, w_p = float(result.statistic), float(result.pvalue)
    else:
        w, w_p = math.nan, 1.0
    return PairedTests(int(d.size), difference, float(t), int(d.size - 1), t_p, w, w_p)
