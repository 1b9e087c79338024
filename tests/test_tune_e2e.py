"""The main job end to end on a tiny budget: real Ray, real FLAC files, real SQLite, real Optuna."""
import optuna
import pytest

from soundsweep.cli import main
from soundsweep.results import ResultsStore
from soundsweep.tuner import ExperimentConfig, load_trained, predict_split, trial_config
from soundsweep.plan import make_plan
from soundsweep.prepare import prepare
from soundsweep.catalog import load_manifest
from trainables.audio import DecodeSpec

TINY = ["--num-samples", "2", "--max-epochs", "2", "--synthetic-clips", "10", "--seed", "3"]


@pytest.fixture(scope="module")
def tiny_run(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{root}/results.db"
    code = main(["tune", "--space", "augmentation", *TINY, "--results", url,
                 "--storage-path", str(root / "runs"), "--name", "tiny"])
    return code, url, root


def test_cli_run_fills_the_store(tiny_run, capsys):
    code, url, _ = tiny_run
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    assert experiment.status == "FINISHED" and experiment.summary["executor"] == "local"
    trials = store.trials(experiment.id)
    assert len(trials) == 2
    assert all(t.status in ("COMPLETED", "STOPPED") and t.epochs >= 1 for t in trials)
    assert all(set(t.params) >= {"noise_std", "specaug_p", "arch", "width"} for t in trials)
    (model,) = store.models(experiment.id)
    assert 0.0 <= model.test_clip_acc <= 1.0 and len(model.confusion) == 6
    assert sum(map(sum, model.confusion)) == 12  # 2 test clips per class x 6 classes
    study = optuna.load_study(study_name="tiny", storage=url)
    assert len(study.trials) == 2


def test_best_checkpoint_reproduces_its_validation_accuracy(tiny_run):
    _, url, root = tiny_run
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    (model,) = store.models(experiment.id)
    cfg = ExperimentConfig(**{k: v for k, v in experiment.config.items()})
    data = prepare(load_manifest(None, cfg.seed, cfg.synthetic_clips),
                   DecodeSpec(cfg.sample_rate, cfg.channels, cfg.segment_seconds, cfg.overlap),
                   f"{experiment.storage_path}/cache")
    assert data.cache_hit  # decoded once by the run, reused here
    plan = make_plan({"CPU": 2.0})
    tcfg = trial_config(model.params, data, cfg, plan, experiment.storage_path)
    val = predict_split(*load_trained(model.checkpoint_uri, tcfg), data.path, "val")
    assert val.clip_accuracy() == pytest.approx(model.val_clip_acc)


def test_torch_trainer_path_runs_one_trial(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path}/results.db"
    code = main(["tune", "--space", "augmentation", "--num-samples", "1", "--max-epochs", "1", "--synthetic-clips",
                 "10", "--executor", "train", "--results", url, "--storage-path", str(tmp_path / "runs"),
                 "--name", "trainer"])
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("trainer")
    assert experiment.summary["executor"] == "train"
    (trial,) = store.trials(experiment.id)
    assert trial.status == "COMPLETED" and trial.epochs == 1
    (model,) = store.models(experiment.id)
    assert "train_runs" in model.checkpoint_uri  # written by the TorchTrainer, forwarded to Tune


def test_init_from_fine_tunes_a_stored_model_and_rejects_another_architecture(tiny_run, tmp_path, capsys):
    _, url, _ = tiny_run
    store = ResultsStore(url)
    (model,) = store.models(store.experiment("tiny").id)
    new_url = f"sqlite:///{tmp_path}/r.db"
    common = ["--num-samples", "1", "--max-epochs", "1", "--synthetic-clips", "10", "--results", new_url,
              "--storage-path", str(tmp_path / "runs"), "--init-from", model.checkpoint_uri]
    assert main(["tune", "--space", "augmentation", *common, "--name", "fine-tune"]) == 0
    capsys.readouterr()
    assert main(["tune", "--space", "augmentation", "--arch", "resnet1d", *common, "--name", "wrong"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("soundsweep: error: --init-from") and "another architecture" in err
