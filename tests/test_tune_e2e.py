"""The main job end to end on a tiny budget: real Ray, real FLAC files, real SQLite, real Optuna.

The tiny run keeps checkpoints and the decode cache under a ``file://`` URI: pyarrow opens it
through the same code path as ``s3://`` or ``gs://`` (soundsweep.storage), so this is the test
of shared cluster storage that runs on any machine.
"""
import glob
import json
import os
import sqlite3

import optuna
import pyarrow.parquet as pq
import pytest
import ray
from ray import tune
from sqlalchemy import inspect

from search_spaces import get_space
from soundsweep.catalog import load_manifest
from soundsweep.cli import main
from soundsweep.derived.ensemble import average
from soundsweep.derived.stored import find_model
from soundsweep.experiment import ExperimentConfig
from soundsweep.experiment.data import param_space, trial_config
from soundsweep.experiment.search import search_shape
from soundsweep.plan import make_plan
from soundsweep.predict import resolve
from soundsweep.prepare import prepare
from soundsweep.results import ResultsStore
from tests.helpers import ddp_probe
from tests.helpers.catalog_fixtures import write_esc50
from trainables.config import TrialConfig
from trainables.model_io import build, load_checkpoint, load_trained, predict_split
from trainables.trial import torch_trainer


def test_cli_run_fills_the_store(tiny_run, capsys):
    code, url, root = tiny_run
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    assert experiment.status == "FINISHED" and experiment.summary["executor"] == "local"
    trials = store.trials(experiment.id)
    # ASHA's first rung is the last epoch here (a 2-epoch run after the default recipe's 1-epoch warm-up,
    # search.first_rung), so it stops nobody early: both trials ran every epoch, each stored once.
    assert search_shape(ExperimentConfig.from_record(experiment.config), get_space("augmentation")).grace_period == 2
    assert "max_epochs: 2\nepoch_budget: null\n" in experiment.config["config_yaml"]  # the run's settings as a --config file
    assert [(t.status, t.epochs) for t in trials] == [("COMPLETED", 2)] * 2
    assert sorted((t.trial_id, e.epoch) for t, e in store.epochs(experiment.id)) == sorted(
        (t.trial_id, epoch) for t in trials for epoch in (0, 1))
    assert all(set(t.params) >= {"noise_std", "specaug_p", "arch", "width"} for t in trials)
    for t in trials:  # --record-augmentation: one record per epoch run, in the trial's folder in storage
        records = root / "runs" / "tiny" / f"trial_{t.trial_id}" / "augmentation"
        assert len(list(records.glob("epoch*-rank0.jsonl"))) == t.epochs
    (model,) = store.models(experiment.id)
    assert len(model.confusion) == 6 and sum(map(sum, model.confusion)) == 12  # 2 test clips per class x 6 classes
    assert model.test_clip_acc == pytest.approx(sum(model.confusion[i][i] for i in range(6)) / 12)  # its diagonal
    study = optuna.load_study(study_name="tiny", storage=url)
    assert len(study.trials) == 2
    index, *figures = experiment.summary["report"]  # the report, written beside the checkpoints
    assert index == f"{(root / 'runs').as_uri()}/tiny/report/index.html" and (root / "runs/tiny/report/index.html").stat().st_size
    pngs = {os.path.basename(f) for f in figures}
    assert {"confusion.png", *(f"curves-{t.trial_id}.png" for t in trials)} <= pngs
    assert all((root / "runs/tiny/report" / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)


def test_uri_storage_keeps_checkpoints_that_load(tiny_run):
    _, url, root = tiny_run
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    assert experiment.storage_path == (root / "runs").as_uri()
    epochs = store.epochs(experiment.id)
    kept = [e.checkpoint_uri for _, e in epochs if e.checkpoint_uri]
    assert len(kept) == len(epochs) >= 2  # every epoch checkpointed (num_to_keep=2, at most 2 epochs)
    for uri in kept:
        assert uri.startswith(str(root / "runs" / "tiny"))
        with tune.Checkpoint(uri).as_directory() as directory:
            assert set(load_checkpoint(directory)) >= {"model", "optimizer", "epoch", "params"}
    (_, epoch), *_ = epochs
    assert {"node_id", "node_ip", "hostname"} <= set(epoch.metrics)
    assert (epoch.metrics["device"], epoch.metrics["precision"]) == ("cpu", "fp32")  # no mixed precision on CPU


def test_tune_writes_tensorboard_logs_beside_each_trial(tiny_run):
    """Tune's default TensorBoardX logger: one event file per trial folder (README, Dashboard and reports)."""
    _, url, root = tiny_run
    store = ResultsStore(url)
    trials = store.trials(store.experiment("tiny").id)
    for trial in trials:
        assert glob.glob(str(root / "runs" / "tiny" / f"trial_{trial.trial_id}" / "events.out.tfevents.*"))


def test_best_checkpoint_reproduces_its_validation_accuracy(tiny_run):
    _, url, root = tiny_run
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    (model,) = store.models(experiment.id)
    cfg = ExperimentConfig.from_record(experiment.config)
    data = prepare(load_manifest(None, cfg.seed, cfg.synthetic_clips), cfg.decode_spec(),
                   f"{experiment.storage_path}/cache")
    assert data.cache_hit  # decoded once by the run, reused here
    assert data.path.startswith(f"{experiment.storage_path}/cache/segments/")
    plan = make_plan({"CPU": 2.0})
    tcfg = trial_config(model.params, data, cfg, plan, experiment.storage_path)
    val = predict_split(*load_trained(model.checkpoint_uri, tcfg), data.path, "val")
    assert val.clip_accuracy() == pytest.approx(model.val_clip_acc)


def test_torch_trainer_path_runs_one_trial(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path}/results.db"
    code = main(["tune", "--space", "augmentation", "--num-samples", "1", "--max-epochs", "1", "--synthetic-clips",
                 "10", "--executor", "train", "--results", url, "--storage-path", str(tmp_path / "runs"),
                 "--name", "trainer", "--record-augmentation"])
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("trainer")
    assert experiment.summary["executor"] == "train"
    # the TorchTrainer's worker placement group was removed with its trial (CPUs back for later trials)
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
    (trial,) = store.trials(experiment.id)
    assert trial.status == "COMPLETED" and trial.epochs == 1
    (model,) = store.models(experiment.id)
    assert "train_runs" in model.checkpoint_uri  # written by the TorchTrainer, forwarded to Tune
    assert glob.glob(str(tmp_path / "runs" / "trainer" / f"trial_{trial.trial_id}" / "events.out.tfevents.*"))
    assert (tmp_path / "runs" / "trainer" / f"trial_{trial.trial_id}" / "augmentation" / "epoch0000-rank0.jsonl").stat().st_size


def test_two_train_workers_shard_the_train_split_and_checkpoint_once_per_epoch(ray_session, tmp_path):
    """--executor train --train-workers 2 on 2 CPUs (2 x 0.45 CPU per worker + 0.1 for the trial leaves 1 to Ray
    Data): every epoch, rank 0 and rank 1 each train on their own half of the train split (the augmentation
    records name every example each rank saw), the store holds rank 0's share, and each epoch has one Train
    checkpoint."""
    url = tiny_tune(tmp_path, "ddp", "--arch", "simple_cnn", "--num-samples", "1", "--max-epochs", "2", "--executor",
                    "train", "--train-workers", "2", "--cpus-per-worker", "0.45", "--record-augmentation", "--tta-views", "1")
    store = ResultsStore(url)
    experiment = store.experiment("ddp")
    assert "TorchTrainer x2 workers, 0.45 CPU per worker" in experiment.summary["plan"]
    (trial,) = store.trials(experiment.id)
    assert (trial.status, trial.epochs) == ("COMPLETED", 2)
    (published,) = (tmp_path / "runs" / "cache" / "segments").glob("*/_prepared.json")
    table = pq.read_table(os.path.join(json.loads(published.read_text())["path"], "split=train"),
                          columns=["clip_id", "segment"]).to_pydict()
    train = {f"{clip}#{segment}" for clip, segment in zip(table["clip_id"], table["segment"])}
    records = tmp_path / "runs" / "ddp" / f"trial_{trial.trial_id}" / "augmentation"
    assert len(list(records.glob("*.jsonl"))) == 4  # 2 epochs x ranks 0 and 1
    epochs = store.epochs(experiment.id)
    assert sorted(e.epoch for _, e in epochs) == [0, 1]
    for _, epoch in epochs:
        seen = [[json.loads(line)["key"] for line in
                 (records / f"epoch{epoch.epoch:04d}-rank{rank}.jsonl").read_text().splitlines()] for rank in (0, 1)]
        assert len(seen[0]) == len(seen[1]) == len(train) // 2  # an equal half each (108 segments)
        assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == train
        assert epoch.metrics["train_segments"] == len(seen[0])  # Tune and the store get rank 0's report
        with tune.Checkpoint(epoch.checkpoint_uri).as_directory() as directory:
            assert os.listdir(directory) == ["checkpoint.pt"] and load_checkpoint(directory)["epoch"] == epoch.epoch
    run_dir = tmp_path / "runs" / "train_runs" / trial.trial_id
    assert sorted(os.path.join(run_dir, c.name) for c in run_dir.glob("checkpoint_*") if c.is_dir()) == sorted(
        e.checkpoint_uri for _, e in epochs)  # one Train checkpoint per epoch, both kept (num_to_keep=2)
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]


def test_two_train_workers_are_one_ddp_model_and_only_rank_0_checkpoints(ray_session, tmp_path):
    """The 2-worker TorchTrainer that --executor train builds (trainables.trial.torch_trainer), run with the loop
    in a session that reports what each worker holds (tests/helpers/ddp_probe.py; the store only ever sees rank
    0's report): two processes in one placement group, ranks 0 and 1 of a DistributedDataParallel model, each
    on half of the train split and holding the same weights after every epoch; only rank 0 passes a
    checkpoint, and it holds those weights."""
    cfg = ExperimentConfig(space="augmentation", arch="simple_cnn", max_epochs=2, synthetic_clips=10, seed=3,
                           executor="train", train_workers=2, cpus_per_worker=0.45,
                           overrides={"average_last": 0})  # checkpoints hold the trained weights, not an average
    storage = str(tmp_path / "runs")
    data = prepare(load_manifest(None, cfg.seed, cfg.synthetic_clips), cfg.decode_spec(), f"{storage}/cache")
    plan = make_plan({"CPU": 2.0}, executor="train", train_workers=2, cpus_per_worker=0.45)
    config = param_space(cfg, data, plan, storage)
    reports = tmp_path / "reports.jsonl"
    result = torch_trainer(config, "ddp", [ddp_probe.Reports(str(reports))], loop=ddp_probe.loop).fit()
    rounds = [json.loads(line) for line in reports.read_text().splitlines()]
    assert len(rounds) == 2  # one round of reports per epoch
    weights = []
    for epoch, reported in enumerate(rounds):
        workers = sorted(reported["workers"], key=lambda w: w["rank"])
        assert [(w["rank"], w["world_size"], w["ddp"], w["epoch"]) for w in workers] == [(0, 2, True, epoch),
                                                                                         (1, 2, True, epoch)]
        assert workers[0]["pid"] != workers[1]["pid"] and workers[0]["placement_group"] == workers[1]["placement_group"]
        assert [w["train_segments"] for w in workers] == [data.segments["train"] // 2] * 2
        assert workers[0]["weights"] == workers[1]["weights"]  # gradients averaged: one model on both
        assert [w["checkpointed"] for w in workers] == [True, False] and reported["checkpoint"]
        with ray.train.Checkpoint(reported["checkpoint"]).as_directory() as directory:
            state = load_checkpoint(directory)
        model, _ = build(TrialConfig.from_dict(config))
        model.load_state_dict(state["model"])
        assert state["epoch"] == epoch and ddp_probe.digest(model) == workers[0]["weights"]
        weights.append(workers[0]["weights"])
    assert weights[0] != weights[1]  # and it trained
    assert result.checkpoint.path == rounds[-1]["checkpoint"]


def test_a_tune_run_keeps_its_results_and_its_optuna_study_on_postgresql(ray_session, postgres, tmp_path):
    """--results postgresql://...: the Tune callback writes every trial, epoch and checkpoint to the server,
    Optuna's study lives in the same database, and Optuna was told each trial's stored val_score."""
    url = postgres.create_database()
    assert main(["tune", "--space", "augmentation", "--arch", "simple_cnn", "--num-samples", "2", "--max-epochs", "1",
                 "--synthetic-clips", "10", "--scheduler", "fifo", "--tta-views", "1", "--seed", "3", "--results", url,
                 "--storage-path", str(tmp_path / "runs"), "--name", "pg"]) == 0
    store = ResultsStore(url)
    assert store.engine.dialect.name == "postgresql"
    assert {"ss_experiments", "ss_trials", "ss_epochs", "ss_models", "studies", "trials"} <= set(
        inspect(store.engine).get_table_names())
    experiment = store.experiment("pg")
    assert experiment.status == "FINISHED"
    trials = store.trials(experiment.id)
    assert [(t.status, t.epochs) for t in trials] == [("COMPLETED", 1)] * 2
    epochs = store.epochs(experiment.id)
    assert sorted(t.trial_id for t, _ in epochs) == sorted(t.trial_id for t in trials)
    assert all(e.epoch == 0 and e.checkpoint_uri for _, e in epochs)
    (model,) = store.models(experiment.id)
    assert model.trial_id in {t.trial_id for t in trials}
    study = optuna.load_study(study_name="pg", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 2
    for told in study.trials:  # each Optuna trial is one stored trial (its sampled values), valued by its epoch
        (epoch,) = [e for t, e in epochs if all(t.params[k] == v for k, v in told.params.items())]
        assert told.value == pytest.approx(epoch.metrics["val_score"])


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


def test_tune_on_an_esc50_layout_trains_on_its_official_folds(ray_session, tmp_path):
    root = tmp_path / "ESC-50-master"
    table = write_esc50(str(root))
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["tune", "--data", str(root), "--test-fold", "3", "--num-samples", "1", "--max-epochs", "1",
                 "--results", url, "--storage-path", str(tmp_path / "runs"), "--name", "esc50"]) == 0
    store = ResultsStore(url)
    experiment = store.experiment("esc50")
    (published,) = (tmp_path / "runs" / "cache" / "segments").glob("*/_prepared.json")
    data_dir = json.loads(published.read_text())["path"]
    folds = {}  # split -> the official folds its clips come from ("3-100303-A-2" is fold 3)
    for split in ("train", "val", "test"):
        clip_ids = pq.read_table(f"{data_dir}/split={split}", columns=["clip_id"]).column("clip_id").to_pylist()
        folds[split] = {int(c.split("-")[0]) for c in clip_ids}
    assert folds == {"train": {1, 2, 5}, "val": {4}, "test": {3}}  # --test-fold 3, the next fold is val
    (model,) = store.models(experiment.id)
    assert sum(map(sum, model.confusion)) == int((table["fold"] == 3).sum())  # every test-fold clip scored
    assert len(model.confusion) == table["category"].nunique()


def test_warm_start_runs_the_best_configurations_of_an_earlier_experiment_first(tiny_run, tmp_path, capsys):
    _, url, root = tiny_run
    # A copy, so the tiny store stays as the other tests expect it; SQLite's backup includes what
    # is still in the write-ahead log (a file copy would miss it).
    with sqlite3.connect(root / "results.db") as source_db, sqlite3.connect(tmp_path / "r.db") as copy_db:
        source_db.backup(copy_db)
    copy = f"sqlite:///{tmp_path}/r.db"
    source = optuna.load_study(study_name="tiny", storage=copy)
    ranked = [t.params for t in sorted(source.get_trials(states=[optuna.trial.TrialState.COMPLETE]),
                                       key=lambda t: -t.value)]
    assert main(["tune", "--space", "augmentation", "--num-samples", "1", "--max-epochs", "1", "--synthetic-clips", "10",
                 "--seed", "3", "--warm-start", "tiny", "--warm-start-top", "1", "--results", copy,
                 "--storage-path", str(tmp_path / "runs"), "--name", "warm"]) == 0
    (trial,) = optuna.load_study(study_name="warm", storage=copy).trials
    assert trial.params == ranked[0]  # the earlier experiment's best configuration ran first
    store = ResultsStore(copy)
    assert store.experiment("warm").config["warm_start"] == "tiny"
    capsys.readouterr()
    assert main(["tune", "--warm-start", "nope", "--results", copy, "--name", "cold"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("soundsweep: error: --warm-start nope: no such experiment") and "tiny" in line


def tiny_tune(tmp_path, name: str, *flags: str) -> str:
    """Run ``soundsweep tune --space augmentation`` on 10 synthetic clips per class with ``flags``,
    its store and storage under ``tmp_path``; return the results URL (the run must succeed)."""
    url = f"sqlite:///{tmp_path}/r.db"
    assert main(["tune", "--space", "augmentation", "--synthetic-clips", "10", *flags, "--results", url,
                 "--storage-path", str(tmp_path / "runs"), "--name", name]) == 0
    return url


def test_multi_objective_search_stores_optunas_pareto_front(ray_session, tmp_path, capsys):
    url = tiny_tune(tmp_path, "pareto", "--objective", "accuracy,time,size", "--num-samples", "3", "--max-epochs", "1",
                    "--seed", "3")
    study = optuna.load_study(study_name="pareto", storage=url)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    front = ResultsStore(url).experiment("pareto").summary["pareto"]
    assert front and {(row["val_clip_acc"], row["epoch_s"], row["int8_kb"]) for row in front} == {
        tuple(t.values) for t in study.best_trials}
    assert all(row["int8_kb"] > 0 for row in front)
    html = (tmp_path / "runs" / "pareto" / "report" / "index.html").read_text()
    assert 'id="pareto"' in html and all(row["trial_id"] in html for row in front)
    capsys.readouterr()
    assert main(["tune", "--objective", "accuracy,latency", "--results", url, "--name", "bad"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("soundsweep: error: --objective accuracy,latency: give accuracy plus any of params, time, size")


def test_grid_search_runs_the_spaces_grid_in_order(ray_session, tmp_path, capsys):
    url = tiny_tune(tmp_path, "grid", "--search", "grid", "--scheduler", "fifo", "--num-samples", "3", "--max-epochs", "1")
    assert "search: grid of 972 configuration(s), running the first 3 in order" in capsys.readouterr().out
    study = optuna.load_study(study_name="grid", storage=url)
    ran = [t.params for t in sorted(study.trials, key=lambda t: t.number)]
    assert ran == get_space("augmentation").grid()[:3]
    assert len(ResultsStore(url).trials(ResultsStore(url).experiment("grid").id)) == 3


def test_fidelity_runs_counts_asha_rungs_in_folds_and_tests_every_run(ray_session, tmp_path, capsys):
    """--fidelity runs: a configuration is one trial over its 3 folds; what it stores and tells Optuna."""
    url = tiny_tune(tmp_path, "fid", "--folds", "3", "--fidelity", "runs", "--num-samples", "4", "--max-epochs", "1",
                    "--max-concurrent", "1")
    assert "4 configuration(s) x 3 fold(s) x 1 seed(s), train protocol, asha scheduler on runs" in capsys.readouterr().out
    store = ResultsStore(url)
    experiment = store.experiment("fid")
    trials = store.trials(experiment.id)
    study = optuna.load_study(study_name="fid", storage=url)
    assert len(trials) == len(study.trials) == 4  # one trial per configuration, not per fold
    values = {t.number: t.value for t in study.trials}
    by_epoch = {}
    for trial, epoch in store.epochs(experiment.id):
        by_epoch.setdefault(trial.trial_id, []).append(epoch)
    for trial in trials:
        runs = trial.metrics["runs"]
        assert 1 <= len(runs) <= 3 and [r["fold"] for r in runs] == list(range(len(runs)))  # fold 0, then 1, 2
        assert trial.status == ("COMPLETED" if len(runs) == 3 else "STOPPED")  # ASHA stopped it after 1 or 2 folds
        for r in runs:  # tested on its fold's 12 test clips; the score adds a tie-break below one clip's step
            assert r["test_clip_acc"] * 12 == pytest.approx(round(r["test_clip_acc"] * 12))
            assert r["test_clip_acc"] <= r["test_score"] < r["test_clip_acc"] + 1 / 12
        epochs = by_epoch[trial.trial_id]  # one epoch per run, numbered on across runs, each with its fold
        assert [(e.epoch, e.metrics["fold"]) for e in epochs] == [(i, i) for i in range(len(runs))]
        assert [e.metrics["val_clip_acc"] for e in epochs] == [r["val_clip_acc"] for r in runs]
    # Optuna learned each configuration's mean over the folds it ran.
    means = sorted(sum(r["val_clip_acc"] for r in t.metrics["runs"]) / len(t.metrics["runs"]) for t in trials)
    assert sorted(values.values()) == pytest.approx(means)
    table = experiment.summary["configurations"]  # one row per configuration, n = its runs
    assert sorted(row["score"]["n"] for row in table) == sorted(len(t.metrics["runs"]) for t in trials)
    html = (tmp_path / "runs" / "fid" / "report" / "index.html").read_text()  # the report shows both
    assert 'id="configurations"' in html and all(f'id="runs-{t.trial_id}"' in html for t in trials)
    capsys.readouterr()
    assert main(["tune", "--fidelity", "runs", "--results", url, "--name", "one"]) == 2
    assert "--fidelity runs: a configuration has one run; add --folds K" in capsys.readouterr().err
    assert main(["tune", "--folds", "2", "--fidelity", "runs", "--train-workers", "2", "--results", url]) == 2
    assert "--fidelity runs trains a configuration's folds and seeds in one trial" in capsys.readouterr().err


def test_epoch_budget_ends_the_search_when_its_trials_have_trained_that_many_epochs(ray_session, tmp_path, capsys):
    url = tiny_tune(tmp_path, "budget", "--num-samples", "6", "--max-epochs", "2", "--epoch-budget", "3",
                    "--scheduler", "fifo", "--max-concurrent", "1")
    assert "epoch budget spent (3 epochs): stopping the search" in capsys.readouterr().out
    store = ResultsStore(url)
    experiment = store.experiment("budget")
    assert len(store.epochs(experiment.id)) == 3  # one trial at a time: not one epoch over
    assert [(t.status, t.epochs) for t in store.trials(experiment.id)] == [("COMPLETED", 2), ("STOPPED", 1)]
    study = optuna.load_study(study_name="budget", storage=url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]  # the 4 other samples never ran
    assert len(store.models(experiment.id)) == 1


def test_ensemble_top_stores_the_mean_of_the_best_trials_beside_the_best_model(ray_session, tmp_path, capsys):
    url = tiny_tune(tmp_path, "ens", "--num-samples", "3", "--max-epochs", "1", "--scheduler", "fifo",
                    "--tta-views", "1", "--ensemble-top", "3")
    out = capsys.readouterr().out
    store = ResultsStore(url)
    summary = store.experiment("ens").summary
    ens = store.model(summary["ensemble"]["model_id"])
    assert ens.kind == "ensemble" and len(ens.sources) == 3
    assert f"ensemble model {ens.id}: mean probability of models" in out
    # Its test figure is the clip accuracy of the members' averaged test probabilities.
    members = [find_model(store, i) for i in ens.sources]
    averaged = average([m.predict("test") for m in members])
    assert ens.test_clip_acc == pytest.approx(averaged.clip_accuracy())
    single = summary["best_single"]
    assert single["model_id"] in ens.sources  # the best single model stays registered beside it
    # The ensemble is kept as the best model unless its validation score falls below its members'
    # mean, each measured on the same plain validation predictions.
    member_val = [m.predict("val").metrics("val")["val_score"] for m in members]
    ensemble_val = average([m.predict("val") for m in members]).metrics("val")["val_score"]
    kept = ens.id if ensemble_val >= sum(member_val) / len(member_val) else single["model_id"]
    assert summary["best_model"]["model_id"] == kept
    assert resolve(store, "ens").row.id == kept  # predict and serve take the kept model for the experiment's name
    capsys.readouterr()
    assert main(["tune", "--ensemble-top", "1", "--results", url, "--name", "one"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("soundsweep: error: --ensemble-top 1:")
