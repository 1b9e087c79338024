"""The results store: idempotent writes, best-epoch choice, schema version check."""
import pytest
from sqlalchemy import text

from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore


def test_recording_twice_updates_instead_of_duplicating(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    exp = store.start_experiment("e1", "augmentation", "synthetic", {"seed": 0}, str(tmp_path))
    assert store.start_experiment("e1", "augmentation", "synthetic", {}, str(tmp_path)) == exp
    for _ in range(2):  # a resumed run replays its last result
        store.record_trial(exp, "t1", status="RUNNING", params={"lr": 0.001})
        store.record_epoch(exp, "t1", 0, {"val_clip_acc": 0.5, "val_loss": 1.0, "num_params": 10})
        store.record_epoch(exp, "t1", 0, checkpoint_uri="/ckpt/0")
    store.record_epoch(exp, "t1", 1, {"val_clip_acc": 0.4, "val_loss": 0.9, "num_params": 10}, "/ckpt/1")
    (trial,) = store.trials(exp)
    assert trial.epochs == 2 and trial.best_val_clip_acc == 0.5 and trial.num_params == 10
    assert len(store.epochs(exp)) == 2
    store.record_epoch(exp, "t2", 0, {"val_clip_acc": 0.45, "val_loss": 1.0, "num_params": 10}, "/ckpt/t2")
    (best_trial, best_epoch), (second, _) = store.best_epochs(exp, 2)  # one epoch per trial, best trial first
    assert best_trial.trial_id == "t1" and best_epoch.epoch == 0 and best_epoch.checkpoint_uri == "/ckpt/0"
    assert second.trial_id == "t2" and [t.trial_id for t, _ in store.best_epochs(exp, 1)] == ["t1"]


def test_older_schema_gets_a_clear_message(tmp_path):
    url = f"sqlite:///{tmp_path}/old.db"
    store = ResultsStore(url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE ss_meta SET value='0' WHERE key='schema_version'"))
    with pytest.raises(UsageError, match="schema version 0"):
        ResultsStore(url)


def test_bad_url_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--results"):
        ResultsStore("not a url")
