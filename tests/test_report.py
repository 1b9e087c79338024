"""``python -m platform.report`` writes a static page with PNG figures, to a folder or a URI; the
numbers it shows, and the provenance the run recorded."""
import os
import re
import subprocess
import sys

import pytest
import ray
import torch

from soundsweep.cli import main
from soundsweep.report import write_report
from soundsweep.report.views import load_experiment, per_class
from soundsweep.results import ResultsStore
from tests.conftest import REPO
from tests.helpers.browser import PNG_MAGIC, Page


def test_report_writes_index_and_pngs(tiny_run, tmp_path):
    _, url, _ = tiny_run
    out = tmp_path / "report"
    done = subprocess.run([sys.executable, "-m", "platform.report", "--experiment", "tiny", "--results", url,
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"report: {out / 'index.html'}"
    page = Page((out / "index.html").read_text())
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    trials = [t.trial_id for t in store.trials(experiment.id)]
    (model,) = store.models(experiment.id)
    assert sorted(row[1] for row in page.tables["leaderboard"]) == sorted(trials)
    assert model.checkpoint_uri in page.tables["models"][0]
    assert [row[0] for row in page.tables["per-class"]] == model.classes
    assert {f"curves-{t}" for t in trials} | {"heatmap", "tradeoff", "confusion"} <= set(page.images)
    for src in page.images.values():  # every figure is a file beside index.html
        assert "/" not in src and (out / src).read_bytes()[:8] == PNG_MAGIC
    assert sorted(os.listdir(out)) == sorted(["index.html", *page.images.values()])
    assert all(f'id="trial-{t}"' in page.dom and f'href="#trial-{t}"' in page.dom for t in trials)


def test_a_tune_run_records_its_provenance_and_its_report_shows_it(tiny_run):
    _, url, root = tiny_run
    (entry,) = ResultsStore(url).experiment("tiny").provenance  # one start
    assert (entry["versions"]["torch"], entry["versions"]["ray"]) == (torch.__version__, ray.__version__)
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert entry["code"]["commit"] == head.stdout.strip() and entry["code"]["dirty"] in (True, False)
    assert entry["machine"]["cpu_count"] == os.cpu_count()
    page = Page((root / "runs" / "tiny" / "report" / "index.html").read_text())  # the report the run wrote
    shown = dict(page.tables["provenance"])
    assert shown["code"].startswith(entry["code"]["commit"]) and shown["torch"] == torch.__version__
    assert shown["ray"] == ray.__version__ and shown["host"] == entry["machine"]["hostname"]


def test_report_command_writes_to_a_file_uri(tiny_run, tmp_path, clean_cwd, capsys):
    """``--out file:///...`` goes through the storage layer: the files land in that folder, none in
    the working directory (no folder named ``file:``)."""
    _, url, _ = tiny_run
    out = (tmp_path / "report").as_uri()
    assert main(["report", "--experiment", "tiny", "--results", url, "--out", out]) == 0
    assert capsys.readouterr().out.strip() == f"report: {out}/index.html"
    page = Page((tmp_path / "report" / "index.html").read_text())
    assert sorted(os.listdir(tmp_path / "report")) == sorted(["index.html", *page.images.values()])
    assert os.listdir(clean_cwd) == []
    assert dict(page.tables["provenance"])["torch"] == torch.__version__


def test_unknown_experiment_is_one_line_exit_2(tiny_run, tmp_path, capsys):
    assert main(["report", "--experiment", "nope", "--results", tiny_run[1], "--out", str(tmp_path / "r")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(r"no experiment 'nope' .*known: tiny", line)
    assert not (tmp_path / "r").exists()


def test_grid_means_and_per_class_accuracy(tmp_path):
    """The heatmap averages each cell's best validation clip accuracy over the other parameters."""
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    exp = store.start_experiment("grid", "augmentation", "synthetic", {}, str(tmp_path))
    for trial, noise, gain, accs in (("a", 0.0, 0.0, [0.2, 0.6]), ("b", 0.0, 0.0, [0.4]), ("c", 0.02, 12.0, [0.9])):
        store.record_trial(exp, trial, params={"noise_std": noise, "gain_db": gain, "specaug_p": 1.0, "arch": "resnet2d"})
        for epoch, acc in enumerate(accs):
            store.record_epoch(exp, trial, epoch, {"val_clip_acc": acc, "epoch_s": 2.0 + epoch, "num_params": 10})
    store.add_model(exp, trial_id="c", epoch=0, checkpoint_uri="/c", params={}, num_params=10, val_clip_acc=0.9,
                    test_segment_acc=0.5, test_clip_acc=0.6, classes=["x", "y"], confusion=[[3, 1], [2, 0]])
    view = load_experiment(store, "grid")
    xs, ys, means, counts = view.grid("noise_std", "gain_db")
    assert xs == [0.0, 0.01, 0.02] and ys == [0.0, 6.0, 12.0]  # the space's whole grid
    assert means[0][0] == pytest.approx(0.5) and counts[0][0] == 2  # mean of best epochs 0.6 and 0.4
    assert means[2][2] == pytest.approx(0.9) and means[1][1] is None
    assert view.default_axes() == ("noise_std", "gain_db")  # the two parameters that were varied
    a = next(t for t in view.trials if t.trial_id == "a")
    assert a.best["epoch"] == 1 and a.epoch_s == pytest.approx(2.5)
    assert per_class(view.best_model) == [
        {"class": "x", "clips": 4, "correct": 3, "accuracy": 0.75, "confused_with": "y"},
        {"class": "y", "clips": 2, "correct": 0, "accuracy": 0.0, "confused_with": "x"},
    ]


def test_the_report_shows_the_ensemble_a_run_kept_as_its_best_model(tmp_path):
    """With --ensemble-top, the model the run's summary keeps is the report's best model, shown with
    its members (not a trial link), and its margin over the reference is the ensemble's."""
    url = f"sqlite:///{tmp_path}/r.db"
    store = ResultsStore(url)
    exp = store.start_experiment("ens", "augmentation", "synthetic", {}, str(tmp_path))
    store.record_trial(exp, "a", params={"arch": "simple_cnn"})
    store.record_epoch(exp, "a", 0, {"val_clip_acc": 0.8, "num_params": 10})
    common = {"params": {}, "num_params": 10, "test_segment_acc": 0.5, "classes": ["x", "y"]}
    single = store.add_model(exp, trial_id="a", epoch=0, checkpoint_uri="/a", val_clip_acc=0.8, test_clip_acc=0.5,
                             confusion=[[1, 1], [1, 1]], **common)
    ens = store.add_model(exp, trial_id=f"ensemble-mean-{single}", epoch=-1, checkpoint_uri="", kind="ensemble",
                          sources=[single], val_clip_acc=0.85, test_clip_acc=0.75, confusion=[[2, 0], [1, 1]], **common)
    reference = {"method": "MFCC+SVM", "C": 1.0, "val_clip_acc": 0.7, "test_clip_acc": 0.7}
    store.finish_experiment(exp, "FINISHED", {"best_model": {"model_id": ens, "kind": "ensemble"},
                                              "reference": reference})
    assert load_experiment(store, "ens").best_model.id == ens
    page = Page(open(write_report(url, "ens", str(tmp_path / "report"))[0]).read())
    assert f"Model {ens}, the mean probability of models {single}" in page.dom
    assert "5.0 points above the reference" in page.dom  # 0.75 against 0.70, not the single model's 0.50
    assert [row[2] for row in page.tables["per-class"]] == ["2", "1"]  # the ensemble's confusion


def test_a_run_recorded_before_provenance_says_so(tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    ResultsStore(url).start_experiment("old", "augmentation", "synthetic", {}, str(tmp_path))  # no provenance
    index = write_report(url, "old", str(tmp_path / "report"))[0]
    page = Page(open(index).read())
    assert "provenance" not in page.tables and "Not recorded: the run predates provenance records." in page.dom
