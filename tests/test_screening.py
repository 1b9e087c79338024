"""Random-weight CNN screening (Pons and Serra): the paper's classifier grids, the ELM, the MFCC
baseline, and ``--space random-cnn`` end to end with folds (real Ray, FLAC, SQLite, Optuna); the
OpenL3 probe's windows and a tiny probe run."""
import os

import numpy as np
import optuna
import pytest
import soundfile
import torch

from soundsweep.cli import main
from soundsweep.results import ResultsStore
from trainables.baselines import mfcc_statistics
from trainables.config import resolve_repeat
from trainables.probe import GRID, FrontEnd, WindowEmbedder, Windows, train_mlp
from trainables.screening import ELM, ELM_HIDDEN, classifier_grid, svm_grid
from trainables.seeding import derive_seed


def test_svm_grid_is_the_papers():
    c = [0.1, 2, 8, 32]
    gammas = [2**-3, 2**-5, 2**-7, 2**-9, 2**-11, 2**-13, "auto"]  # "auto": 1 / #features
    assert svm_grid() == ([{"kernel": "linear", "C": v} for v in c]
                          + [{"kernel": "rbf", "gamma": g, "C": v} for g in gammas for v in c])
    assert ELM_HIDDEN == (100, 250, 500, 1200, 1800, 2500)
    assert [name for name, _ in classifier_grid("elm", 0)] == [f"hidden={h}" for h in ELM_HIDDEN]


def test_elm_fits_a_separable_toy_problem():
    rng = np.random.default_rng(0)
    centres = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    y = np.repeat([0, 1, 2], 40)
    x = centres[y] + rng.normal(0, 0.5, (120, 3))
    held_out = centres[y] + rng.normal(0, 0.5, (120, 3))
    elm = ELM(100, seed=1).fit(x, y)
    assert (elm.predict(x) == y).mean() == 1.0 and (elm.predict(held_out) == y).mean() > 0.95
    assert elm.w2.shape == (100, 3) and np.array_equal(ELM(100, seed=1).fit(x, y).w1, elm.w1)


def test_mfcc_baseline_has_120_values():
    audio = np.random.default_rng(0).standard_normal((1, 12000)).astype(np.float32)
    assert mfcc_statistics(audio, 12000).shape == (120,)


def test_repeat_index_picks_fold_and_seed():
    config = {"arch": "mfcc", "runtime": {"data_dir": "d", "seed": 5, "folds": ["f0", "f1", "f2"], "repeats": 2},
              "__trial_index__": 5}
    runtime = resolve_repeat(config)["runtime"]
    assert (runtime["data_dir"], runtime["fold"], runtime["repeat"]) == ("f2", 2, 1)
    assert runtime["seed"] == derive_seed(5, "repeat", 1)
    first = resolve_repeat({**config, "__trial_index__": 0})["runtime"]
    assert (first["data_dir"], first["seed"]) == ("f0", 5)  # repeat 0 is the run without repeats
    assert resolve_repeat({"runtime": {"seed": 5}}) == {"runtime": {"seed": 5}}


FOLDS = ["--folds", "2", "--synthetic-clips", "10", "--sample-rate", "12000", "--seed", "1"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Results store and storage of this module's runs: the folds are decoded once, for all of them."""
    return tmp_path_factory.mktemp("screening")


@pytest.fixture(scope="module")
def screening(ray_session, root):
    """One tiny screening: MFCC and the random 7x86 front-end, SVM, 2 folds of the synthetic set."""
    url = f"sqlite:///{root}/results.db"
    code = main(["tune", "--space", "random-cnn", "--num-samples", "2", *FOLDS, "--results", url,
                 "--storage-path", str(root / "runs"), "--name", "screen"])
    return code, url


def test_random_cnn_space_runs_end_to_end(screening):
    code, url = screening
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("screen")
    assert experiment.status == "FINISHED"
    trials = store.trials(experiment.id)
    assert len(trials) == 4 and all(t.status == "COMPLETED" for t in trials)
    svm_settings = {name for name, _ in classifier_grid("svm", 0)}
    assert {t.params["arch"] for t in trials} == {"mfcc", "random_7x86"}
    assert {(t.params["arch"], t.metrics["fold"]) for t in trials} == {(a, f) for a in ("mfcc", "random_7x86") for f in (0, 1)}
    for t in trials:
        assert t.params["protocol"] == "screening" and t.params["classifier"] == "svm"
        assert t.metrics["selected"] in svm_settings
        # a share of the fold's 12 test clips (2 per class), not a segment-level figure
        assert t.metrics["test_clip_acc"] * 12 == pytest.approx(round(t.metrics["test_clip_acc"] * 12))
        assert t.metrics["feature_dim"] == (120 if t.params["arch"] == "mfcc" else 160)
    rows = experiment.summary["configurations"]
    assert len(rows) == 2 and all(r["score"]["n"] == 2 for r in rows)
    for row in rows:
        arch = "mfcc" if "arch=mfcc" in row["setting"] else "random_7x86"
        scores = [t.metrics["test_clip_acc"] for t in trials if t.params["arch"] == arch]
        assert row["score"]["mean"] == pytest.approx(np.mean(scores))
    study = optuna.load_study(study_name="screen", storage=url)
    assert len(study.trials) == 2  # Optuna sees each configuration once, with its mean over folds


def test_compare_two_screened_configurations(screening, capsys):
    _, url = screening
    store = ResultsStore(url)
    trial_of = {t.params["arch"]: t.trial_id for t in store.trials(store.experiment("screen").id)}
    capsys.readouterr()
    assert main(["compare", f"screen/{trial_of['random_7x86']}", f"screen/{trial_of['mfcc']}", "--results", url]) == 0
    out = capsys.readouterr().out
    assert "paired t-test" in out and "Wilcoxon" in out
    (comparison,) = store.comparisons()
    assert comparison.result["n"] == 2 and comparison.result["pairs"] == [[0, 0], [1, 0]]
    assert main(["compare", "screen", "nothing", "--results", url]) == 2


def test_training_runs_every_fold_and_is_scored_on_its_own_test_fold(screening, root):
    """The train protocol with --folds: one trial per fold, each scored on its fold's test split."""
    _, url = screening
    assert main(["tune", "--space", "augmentation", "--num-samples", "1", "--max-epochs", "1", *FOLDS,
                 "--results", url, "--storage-path", str(root / "runs"), "--name", "cv"]) == 0
    store = ResultsStore(url)
    experiment = store.experiment("cv")
    trials = store.trials(experiment.id)
    assert sorted(t.metrics["fold"] for t in trials) == [0, 1] and len({str(t.params) for t in trials}) == 1
    (row,) = experiment.summary["configurations"]
    assert row["score"]["n"] == 2
    assert row["score"]["mean"] == pytest.approx(np.mean([t.metrics["test_clip_acc"] for t in trials]))
    assert experiment.summary["cache_hit"]  # the screening decoded these folds already
    (model,) = store.models(experiment.id)
    assert sum(map(sum, model.confusion)) == 12  # its own fold's test split: 2 clips per class
    # the trial's score (score_trials) and its registered model's plain test (register_top) agree
    scored = {t.trial_id: t.metrics["test_clip_acc"] for t in trials}
    assert model.metrics["plain"]["test_clip_acc"] == pytest.approx(scored[model.trial_id])


def test_window_embedder_cuts_1s_windows_every_100ms_and_reads_the_classifier_input(tmp_path):
    """The probe's embedder without Ray: a 1.35 s file -> 4 windows of the L3 embedding (8 x width values)."""
    path = tmp_path / "clip.flac"
    soundfile.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 64800).astype(np.float32), 48000)
    embedder = WindowEmbedder(FrontEnd("l3_mel128_512", 16, "", 48000, num_classes=3))
    out = embedder({"path": [str(path), str(tmp_path / "missing.wav")], "clip_id": ["a", "b"],
                    "label_index": [2, 1], "split": ["train", "val"]})
    assert out["embedding"].shape == (5, 8 * 16) and out["clip_id"].tolist() == ["a"] * 4 + ["b"]
    assert out["split"].tolist() == ["train"] * 4 + ["failed"] and out["error"][-1].startswith("cannot decode")
    assert not np.allclose(out["embedding"][0], out["embedding"][3])  # the windows differ


def test_probe_mlp_stops_early_and_keeps_its_best_epoch():
    """Random labels: the validation loss bottoms out early, so patience 3 stops the MLP there."""
    rng = np.random.default_rng(0)

    def windows(n):
        return Windows(rng.standard_normal((n, 8)).astype(np.float32), rng.integers(0, 2, n), np.arange(n).astype(str))

    result = train_mlp(windows(256), windows(64), 2, lr=1e-2, weight_decay=0.0, seed=0, max_epochs=50, patience=3)
    assert result["epochs"] == result["best_epoch"] + 4 < 50
    assert set(result["state"]) == {f"{i}.{p}" for i in (0, 2, 4) for p in ("weight", "bias")}


PROBE = ["--frontend", "random_temporal", "--width", "8", "--synthetic-clips", "10", "--sample-rate", "12000",
         "--max-epochs", "3", "--patience", "2", "--seed", "1"]


def test_probe_runs_on_a_tiny_set(ray_session, tmp_path, clean_cwd):
    """The probe end to end, its MLP saved under a ``file://`` storage URI through the storage layer."""
    url = f"sqlite:///{tmp_path}/results.db"
    storage = (tmp_path / "runs").as_uri()
    assert main(["probe", *PROBE, "--results", url, "--storage-path", storage, "--name", "probe"]) == 0
    store = ResultsStore(url)
    experiment = store.experiment("probe")
    assert experiment.status == "FINISHED" and experiment.space == "probe"
    trials = store.trials(experiment.id)
    assert len(trials) == 9 and {(t.params["lr"], t.params["weight_decay"]) for t in trials} == set(GRID)
    assert all(1 <= t.epochs <= 3 for t in trials)
    (model,) = store.models(experiment.id)
    assert model.kind == "probe" and model.aggregation == "mean_probability" and len(model.confusion) == 6
    assert sum(map(sum, model.confusion)) == 12  # 2 test clips per class
    assert model.val_clip_acc == max(t.best_val_clip_acc for t in trials)
    assert experiment.storage_path == storage and model.checkpoint_uri == f"{storage}/probe/probe.pt"
    assert os.listdir(clean_cwd) == []  # no local folder named "file:"
    saved = torch.load(tmp_path / "runs" / "probe" / "probe.pt", map_location="cpu", weights_only=True)
    assert saved["mlp"]["0.weight"].shape == (512, 112) and saved["classes"] == model.classes
    assert experiment.summary["embedding_dim"] == 112 and experiment.summary["windows"]["test"] == 12 * 121
    (entry,) = experiment.provenance  # a probe records where it ran, as a tune run does
    assert entry["versions"]["torch"] == torch.__version__
