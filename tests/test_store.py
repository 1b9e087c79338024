"""The results store on SQLite and PostgreSQL: idempotent writes, best-epoch choice, schema
version check, concurrent writers, and the Optuna study in the same database."""
import json
import subprocess
import sys
import time

import optuna
import pytest
from sqlalchemy import inspect, text

from soundsweep.errors import UsageError
from soundsweep.report.views import load_experiment
from soundsweep.results import ResultsStore
from tests.conftest import REPO
from trainables.objective import representative


def test_recording_twice_updates_instead_of_duplicating(store_url, tmp_path):
    store = ResultsStore(store_url)
    exp = store.start_experiment("e1", "augmentation", "synthetic", {"seed": 0}, str(tmp_path))
    assert store.start_experiment("e1", "augmentation", "synthetic", {}, str(tmp_path)) == exp
    for _ in range(2):  # a resumed run replays its last result
        store.record_trial(exp, "t1", status="RUNNING", params={"lr": 0.001})
        store.record_epoch(exp, "t1", 0, {"val_clip_acc": 0.5, "val_loss": 1.0, "num_params": 10})
        store.record_epoch(exp, "t1", 0, checkpoint_uri="/ckpt/0")
    store.record_epoch(exp, "t1", 1, {"val_clip_acc": 0.4, "val_loss": 0.9, "num_params": 10}, "/ckpt/1")
    (trial,) = store.trials(exp)
    assert trial.epochs == 2 and trial.best_val_clip_acc == 0.5 and trial.num_params == 10
    assert len(store.epochs(exp)) == store.epoch_count(exp) == 2
    assert store.epoch_count(store.start_experiment("e2", "augmentation", "synthetic", {}, str(tmp_path))) == 0
    store.record_epoch(exp, "t2", 0, {"val_clip_acc": 0.45, "val_loss": 1.0, "num_params": 10}, "/ckpt/t2")
    (best_trial, best_epoch), (second, _) = store.best_epochs(exp, 2)  # one epoch per trial, best trial first
    assert best_trial.trial_id == "t1" and best_epoch.epoch == 0 and best_epoch.checkpoint_uri == "/ckpt/0"
    assert second.trial_id == "t2" and [t.trial_id for t, _ in store.best_epochs(exp, 1)] == ["t1"]
    # Tune deleted epoch 0's checkpoint (it keeps its own top checkpoints): t1's next best one is used
    kept = store.best_epochs(exp, 2, usable=lambda uri: uri != "/ckpt/0")
    assert [(t.trial_id, e.epoch, e.checkpoint_uri) for t, e in kept] == [("t2", 0, "/ckpt/t2"), ("t1", 1, "/ckpt/1")]
    assert store.best_epochs(exp, 2, usable=lambda uri: False) == []


def test_older_schema_gets_a_clear_message(store_url):
    url = store_url
    store = ResultsStore(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE ss_meta SET value='0' WHERE key='schema_version'"))
    with pytest.raises(UsageError, match="schema version 0"):
        ResultsStore(url)


def test_bad_url_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--results"):
        ResultsStore("not a url")


def test_full_write_read_cycle_keeps_every_value(store_url):
    store = ResultsStore(store_url)
    exp = store.start_experiment("cycle", "augmentation", "synthetic", {"seed": 1, "lr": 1e-3}, "s3://bucket/runs")
    store.record_trial(exp, "t1", status="RUNNING", params={"noise_std": 0.01, "arch": "resnet2d"})
    metrics = {"epoch": 0, "val_clip_acc": 0.75, "val_loss": 0.5, "num_params": 123456, "node_id": "ab" * 28}
    store.record_epoch(exp, "t1", 0, metrics, "s3://bucket/runs/cycle/trial_t1/checkpoint_000000")
    store.record_trial(exp, "t1", status="COMPLETED", wall_time_s=12.5)
    model_id = store.add_model(exp, trial_id="t1", epoch=0, checkpoint_uri="s3://bucket/runs/x", params={"a": 1},
                               num_params=123456, val_clip_acc=0.75, test_segment_acc=0.6, test_clip_acc=0.7,
                               classes=["a", "b"], confusion=[[3, 1], [0, 4]])
    store.finish_experiment(exp, "FINISHED", {"wall_s": 1.5, "skipped_files": []})

    again = ResultsStore(store_url)  # a second connection reads what the first wrote
    experiment = again.experiment("cycle")
    assert (experiment.status, experiment.config, experiment.summary) == (
        "FINISHED", {"seed": 1, "lr": 1e-3}, {"wall_s": 1.5, "skipped_files": []})
    (trial,) = again.trials(exp)
    assert (trial.status, trial.params["noise_std"], trial.wall_time_s, trial.best_val_clip_acc, trial.metrics) == (
        "COMPLETED", 0.01, 12.5, 0.75, metrics)
    ((_, epoch),) = again.epochs(exp)
    assert epoch.checkpoint_uri.endswith("checkpoint_000000") and epoch.metrics == metrics
    (model,) = again.models(exp)
    assert model.id == model_id and model.confusion == [[3, 1], [0, 4]] and model.classes == ["a", "b"]


def test_two_writers_at_once_lose_no_rows(store_url):
    """Two processes open one new store, share one experiment and write their trials together:
    their writing times overlap, and every row of both is there once."""
    trials, epochs = 4, 15
    start_at = time.time() + 2.0  # both interpreters are up by then
    writers = [subprocess.Popen([sys.executable, "-m", "tests.helpers.store_writer", store_url, w, str(trials), str(epochs),
                                 str(start_at)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for w in ("a", "b")]
    outputs = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err for _, err in outputs]
    reports = [json.loads(out) for out, _ in outputs]
    (exp,) = {r["experiment"] for r in reports}  # both found the same experiment
    # Concurrent for real: each writer opened the store before the other had made its last write.
    assert max(r["started"] for r in reports) < min(r["finished"] for r in reports), reports
    store = ResultsStore(store_url)
    rows = store.trials(exp)
    assert sorted(t.trial_id for t in rows) == [f"{w}-{t}" for w in "ab" for t in range(trials)]
    assert all(t.status == "COMPLETED" and t.epochs == epochs for t in rows)
    assert len(store.epochs(exp)) == 2 * trials * epochs
    assert all(e.checkpoint_uri for _, e in store.epochs(exp))


def test_optuna_study_lives_beside_the_store(store_url):
    store = ResultsStore(store_url)
    storage = optuna.storages.RDBStorage(store_url)
    study = optuna.create_study(study_name="beside", storage=storage, direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(lambda trial: -(trial.suggest_float("x", -1, 1) ** 2), n_trials=5)
    store.start_experiment("beside", "augmentation", "synthetic", {}, "/runs")

    tables = set(inspect(store.engine).get_table_names())
    assert {"ss_experiments", "ss_trials", "ss_epochs", "ss_models", "studies", "trials"} <= tables
    loaded = optuna.load_study(study_name="beside", storage=store_url)
    assert len(loaded.trials) == 5 and loaded.best_value <= 0
    assert ResultsStore(store_url).experiment("beside") is not None


def test_experiments_newest_first_and_readers_do_not_create_stores(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    for name in ("first", "second"):
        store.start_experiment(name, "augmentation", "synthetic", {}, str(tmp_path))
    assert [e.name for e in store.experiments()] == ["second", "first"]
    assert ResultsStore(f"sqlite:///{tmp_path}/r.db", must_exist=True).experiment("first") is not None
    with pytest.raises(UsageError, match="no such database file"):
        ResultsStore(f"sqlite:///{tmp_path}/typo.db", must_exist=True)
    assert not (tmp_path / "typo.db").exists()


def test_an_older_store_gains_the_provenance_column_and_keeps_its_rows(store_url):
    """A store written before ``ss_experiments.provenance`` existed opens, reads its old rows
    (no provenance) and records provenance from then on, one entry per start."""
    store = ResultsStore(store_url)
    store.start_experiment("old", "augmentation", "synthetic", {"seed": 0}, "/runs")
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ss_experiments DROP COLUMN provenance"))
    assert "provenance" not in {c["name"] for c in inspect(store.engine).get_columns("ss_experiments")}
    reopened = ResultsStore(store_url)
    assert "provenance" in {c["name"] for c in inspect(reopened.engine).get_columns("ss_experiments")}
    old = reopened.experiment("old")
    assert (old.config, old.provenance) == ({"seed": 0}, None)
    exp = reopened.start_experiment("old", "augmentation", "synthetic", {}, "/runs", provenance={"code": {"commit": "a"}})
    assert reopened.start_experiment("old", "augmentation", "synthetic", {}, "/runs", {"code": {"commit": "b"}}) == exp
    assert [p["code"]["commit"] for p in ResultsStore(store_url).experiment("old").provenance] == ["a", "b"]


def test_a_trial_that_selects_its_last_epoch_is_ranked_and_registered_by_it(tmp_path):
    """``select_epoch: last`` (the oneshot recipe): the final epoch stands for the trial in the
    store's ranking even where an earlier epoch validated higher; ``best`` trials keep their best."""
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    exp = store.start_experiment("select", "augmentation", "synthetic", {}, str(tmp_path))
    store.record_trial(exp, "last", params={"select_epoch": "last"})
    store.record_trial(exp, "best", params={"select_epoch": "best"})
    for trial, accs in (("last", (0.9, 0.7, 0.6)), ("best", (0.5, 0.65, 0.55))):
        for epoch, acc in enumerate(accs):
            store.record_epoch(exp, trial, epoch, {"epoch": epoch, "val_clip_acc": acc, "val_loss": 1.0},
                               f"/ckpt/{trial}/{epoch}")
    ranked = [(t.trial_id, e.epoch) for t, e in store.best_epochs(exp)]
    assert ranked == [("best", 1), ("last", 2)]
    # The report's view of a trial agrees with the store.
    views = {t.trial_id: t for t in load_experiment(store, "select").trials}
    assert views["last"].best["epoch"] == 2 and views["best"].best["epoch"] == 1
    assert representative([{"epoch": 0}, {"epoch": 3}], None) == [{"epoch": 0}, {"epoch": 3}]
    assert representative([{"epoch": 0}, {"epoch": 3}], "last") == [{"epoch": 3}]
