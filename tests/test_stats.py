"""Statistics of repeated scores against SciPy and a published table (Student's sleep data); the
per-configuration table and ``compare`` on a results store; cross-validation folds and views."""
import math
import os

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from soundsweep.catalog import cv_folds
from soundsweep.configurations import compare, configuration_table, configurations, format_table
from soundsweep.errors import UsageError
from soundsweep.prepare import PreparedData, fold_view
from soundsweep.results import ResultsStore
from soundsweep.stats import paired_tests, summarize
from trainables.segments import VIEW_FILE, segment_files

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


def test_configurations_are_summarized_and_compared_from_the_store(tmp_path):
    """Two configurations scored on the same 5 folds: the table and the paired tests match SciPy."""
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    exp = store.start_experiment("cv", "random-cnn", "synthetic", {}, str(tmp_path))
    scores = {"mfcc": [0.60, 0.55, 0.62, 0.58, 0.50], "random_7x86": [0.66, 0.61, 0.63, 0.64, 0.59]}
    val = {"mfcc": 0.7, "random_7x86": 0.6}  # validation prefers the one that tests worse
    for arch, values in scores.items():
        for fold, value in enumerate(values):
            store.record_trial(exp, f"{arch}-{fold}", status="COMPLETED", params={"arch": arch, "classifier": "svm"},
                               metrics={"test_clip_acc": value, "fold": fold, "repeat": 0}, best_val_clip_acc=val[arch])
    rows = configuration_table(configurations(store, "cv"))
    assert [r["configuration"] for r in rows] == ["cv/random_7x86-0", "cv/mfcc-0"]  # best mean first
    assert rows[0]["setting"] == "arch=random_7x86" and rows[0]["score"]["n"] == 5
    low, high = stats.t.interval(0.95, 4, loc=np.mean(scores["mfcc"]), scale=stats.sem(scores["mfcc"]))
    assert (rows[1]["score"]["ci_low"], rows[1]["score"]["ci_high"]) == (pytest.approx(low), pytest.approx(high))
    assert "cv/mfcc-0" in format_table(rows)

    result = compare(store, "cv/random_7x86-3", "cv/mfcc-1")  # any trial names its configuration
    assert result["a"] == "cv/random_7x86-0" and result["n"] == 5
    assert result["t"] == pytest.approx(stats.ttest_rel(scores["random_7x86"], scores["mfcc"]).statistic)
    assert result["wilcoxon_p"] == pytest.approx(stats.wilcoxon(scores["random_7x86"], scores["mfcc"]).pvalue)
    (stored,) = store.comparisons()
    assert stored.a == "cv/random_7x86-0" and stored.result["t_p"] == pytest.approx(result["t_p"])
    assert compare(store, "cv", "cv/random_7x86-0")["a"] == "cv/mfcc-0"  # an experiment: its best on validation
    with pytest.raises(UsageError, match="no experiment named"):
        compare(store, "missing", "cv")


def test_cross_validation_folds_official_or_stratified():
    official = pd.DataFrame({"label": list("aabbcc") * 2, "group": [str(i) for i in range(12)],
                             "fold": [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4]})
    fold, pairs = cv_folds(official, 3, seed=0, source="test")
    assert fold.tolist() == official["fold"].tolist() and pairs == [(1, 2), (2, 3), (3, 4)]
    with pytest.raises(UsageError, match="has 4 folds"):
        cv_folds(official, 5, seed=0, source="test")
    unfolded = official.assign(fold=-1, label=list("ab") * 6)
    fold, pairs = cv_folds(unfolded, 3, seed=0, source="test")
    assert sorted(set(fold.tolist())) == [0, 1, 2] and pairs == [(0, 1), (1, 2), (2, 0)]
    for k in range(3):  # stratified: every fold holds both classes
        assert set(unfolded["label"][fold == k]) == {"a", "b"}


def test_fold_view_lists_partitions_as_splits(tmp_path):
    for part in ("fold0", "fold1", "fold2"):
        os.makedirs(tmp_path / f"split={part}")
        (tmp_path / f"split={part}" / "part-000000.parquet").write_bytes(part.encode())
    data = PreparedData(str(tmp_path), ["a"], {}, {"fold0": 3, "fold1": 4, "fold2": 5}, {"fold0": 1, "fold1": 1, "fold2": 2})
    view = fold_view(data, "fold1", "fold2")
    assert view.segments == {"train": 3, "val": 5, "test": 4} and view.clips == {"train": 1, "val": 2, "test": 1}
    assert segment_files(view.path, "test") == [f"{tmp_path}/split=fold1/part-000000.parquet"]
    assert segment_files(view.path, "train") == [f"{tmp_path}/split=fold0/part-000000.parquet"]
    assert os.listdir(view.path) == [VIEW_FILE]  # a list of the partitions' files: nothing copied
    written = os.stat(os.path.join(view.path, VIEW_FILE)).st_mtime_ns
    assert fold_view(data, "fold1", "fold2").path == view.path  # built once
    assert os.stat(os.path.join(view.path, VIEW_FILE)).st_mtime_ns == written
