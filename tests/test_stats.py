"""Statistics of repeated scores against SciPy and a published table (Student's sleep data)."""
import math

import numpy as np
import pytest
from scipy import stats

from soundsweep.stats import paired_tests, summarize

# Cushny and Peebles' sleep data (Student 1908): extra hours of sleep under two drugs, 10 patients.
DRUG_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
DRUG_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def test_summary_matches_scipy_and_the_published_interval():
    d = np.subtract(DRUG_2, DRUG_1)
    s = summarize(d)
    assert s.n == 10 and s.mean == pytest.approx(1.58)
    assert s.std == pytest.approx(np.std(d, ddof=1)) and s.std == pytest.approx(1.229995, abs=1e-6)
    low, high = stats.t.interval(0.95, 9, loc=d.mean(), scale=stats.sem(d))
    assert (s.ci_low, s.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert (s.ci_low, s.ci_high) == (pytest.approx(0.7001142, abs=1e-6), pytest.approx(2.4598858, abs=1e-6))


def test_paired_tests_match_scipy_and_the_published_t():
    result = paired_tests(DRUG_2, DRUG_1)
    reference_t = stats.ttest_rel(DRUG_2, DRUG_1)
    assert result.t == pytest.approx(reference_t.statistic) and result.t == pytest.approx(4.062128, abs=1e-6)
    assert result.t_p == pytest.approx(reference_t.pvalue) and result.t_p == pytest.approx(0.002833, abs=1e-6)
    assert result.df == 9
    reference_w = stats.wilcoxon(DRUG_2, DRUG_1)
    assert result.wilcoxon == reference_w.statistic == 0.0
    assert result.wilcoxon_p == pytest.approx(reference_w.pvalue)
    assert paired_tests(DRUG_1, DRUG_2).t == pytest.approx(-result.t)


def test_degenerate_scores():
    single = summarize([0.5])
    assert single.n == 1 and single.mean == 0.5 and math.isnan(single.std) and math.isnan(single.ci_low)
    tied = paired_tests([0.5, 0.6, 0.7], [0.5, 0.6, 0.7])
    assert math.isnan(tied.t) and tied.t_p == 1.0 and tied.wilcoxon_p == 1.0
    shifted = paired_tests([1.5, 2.5, 3.5], [1.0, 2.0, 3.0])
    assert shifted.t == math.inf and shifted.t_p == 0.0
    with pytest.raises(ValueError, match="at least 2 pairs"):
        paired_tests([0.5], [0.4])
    with pytest.raises(ValueError, match="equal-length"):
        paired_tests([0.5, 0.6], [0.4])
