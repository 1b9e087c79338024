"""Training that finds models, end to end: a short run learns, the reference baseline is in
every run, and ASHA stops clearly bad configurations, never before its first rung."""
import math

import optuna
import pytest

from search_spaces import SPACES, SearchSpace, register_space
from soundsweep.cli import main
from soundsweep.results import ResultsStore
from trainables.reference import METHOD


def run_tune(tmp_path, name: str, *flags: str) -> ResultsStore:
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["tune", "--synthetic-clips", "10", *flags, "--results", url, "--storage-path",
                 str(tmp_path / "runs"), "--name", name]) == 0
    return ResultsStore(url)


def test_a_short_run_learns_and_is_measured_against_the_reference(ray_session, tmp_path, capsys):
    store = run_tune(tmp_path, "learns", "--space", "fixed", "--num-samples", "1", "--max-epochs", "4", "--seed", "1")
    out = capsys.readouterr().out
    experiment = store.experiment("learns")
    epochs = [e.metrics for _, e in store.epochs(experiment.id)]
    assert len(epochs) == 4
    # A sane start: the first epoch's loss (mixup and label noise included) is near ln K, not several times it.
    assert epochs[0]["train_loss"] < 1.3 * math.log(6)
    assert epochs[-1]["train_loss"] < 0.8 * epochs[0]["train_loss"]
    assert max(m["val_clip_acc"] for m in epochs) >= 0.5  # chance is 1/6
    # The recipe's schedule ran: warm-up then cosine decay to (nearly) zero.
    rates = [m["lr"] for m in epochs]
    assert rates[-1] < rates[1] and max(rates) <= 2e-3
    reference = experiment.summary["reference"]
    assert reference["method"] == METHOD and reference["test_clip_acc"] > 1 / 6  # a real baseline: above chance
    best = max(point["val_clip_acc"] for point in reference["grid"])  # C chosen on val, the smallest on ties
    assert reference["C"] == min(p["C"] for p in reference["grid"] if p["val_clip_acc"] == best)
    assert reference["val_clip_acc"] == best
    assert {"val_clip_acc", "test_clip_acc", "grid"} <= set(reference)
    board = out[out.index("leaderboard"):].splitlines()
    assert board[2].split()[0] == "reference"  # the leaderboard's first row
    assert "vs reference (mfcc+svm)" in out
    html = (tmp_path / "runs" / "learns" / "report" / "index.html").read_text()
    assert "reference" in html and "points" in html

    # A second run on the same prepared data reuses the cached reference.
    run_tune(tmp_path, "again", "--space", "fixed", "--num-samples", "1", "--max-epochs", "1", "--seed", "1")
    again = store.experiment("again").summary["reference"]
    assert again["cached"] and again["test_clip_acc"] == reference["test_clip_acc"]


@pytest.fixture
def bad_lr_space():
    """A space whose last two configurations are hopeless (learning rates of 10 and 30)."""
    space = register_space(SearchSpace("test-bad-lr", "two good and two hopeless learning rates",
                                       choices={"lr": (2e-3, 3e-3, 10.0, 30.0)}))
    yield space
    del SPACES[space.name]


def test_asha_stops_hopeless_configurations_and_none_before_its_first_rung(ray_session, tmp_path, bad_lr_space):
    store = run_tune(tmp_path, "asha", "--space", "test-bad-lr", "--search", "grid", "--num-samples", "4",
                     "--max-epochs", "8", "--max-concurrent", "2", "--seed", "2")
    experiment = store.experiment("asha")
    trials = {t.params["lr"]: t for t in store.trials(experiment.id)}
    first_rung = 2  # the default recipe's 1-epoch warm-up, a quarter of 8 epochs
    assert all(t.epochs >= first_rung for t in trials.values())  # nobody stopped inside the warm-up
    hopeless = [trials[10.0], trials[30.0]]
    assert any(t.epochs < 8 for t in hopeless), [(t.params["lr"], t.epochs) for t in hopeless]
    assert max(trials[lr].epochs for lr in (2e-3, 3e-3)) == 8  # the first at each rung always continues
    study = optuna.load_study(study_name="asha", storage=store.url)
    assert len(study.trials) == 4
