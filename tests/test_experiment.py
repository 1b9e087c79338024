"""The experiment package's pure parts, without a Ray run: flags from the config, the search's
shape, the resume check, the Pareto front and the one ranking of epochs."""
import argparse
from dataclasses import MISSING, fields

import pytest

from search_spaces import get_space
from soundsweep.cli import build_parser, command_parser
from soundsweep.errors import UsageError
from soundsweep.experiment import ExperimentConfig
from soundsweep.experiment.config import GROUPS, check_same_spec
from soundsweep.experiment.evaluation import pareto_front
from soundsweep.experiment.search import search_shape
from soundsweep.options import flag
from soundsweep.probe import ProbeConfig
from soundsweep.results import ResultsStore
from trainables.objective import rank_key


def subparser(name: str) -> argparse.ArgumentParser:
    return command_parser(name)


@pytest.mark.parametrize("command, config_type", [("tune", ExperimentConfig), ("probe", ProbeConfig)])
def test_every_config_field_is_a_flag_with_the_fields_default(command, config_type):
    parser = subparser(command)
    by_dest = {a.dest: a for a in parser._actions}
    for f in fields(config_type):
        if f.name == "overrides":  # filled from the TrainingConfig flags, checked below
            continue
        action = by_dest[f.name]
        assert flag(f.name) in action.option_strings
        assert action.help, f"{f.name} has no help text"
        expected = False if action.nargs == 0 else (None if f.default is MISSING else f.default)
        assert action.default == expected, f.name


def test_training_flags_override_only_what_is_given():
    from soundsweep.options import from_args, given
    from trainables.recipes import TrainingConfig

    parser = subparser("tune")
    for f in fields(TrainingConfig):
        if f.metadata.get("help"):
            assert {a.dest: a for a in parser._actions}[f.name].default is None
    args = build_parser().parse_args(["tune", "--recipe", "ecapa", "--lr", "0.01", "--mixup-alpha", "0.2"])
    cfg = from_args(ExperimentConfig, args, overrides=given(TrainingConfig, args))
    assert cfg.overrides == {"lr": 0.01, "mixup_alpha": 0.2}
    assert cfg.training_settings()["lr"] == 0.01 and cfg.training_settings()["weight_decay"] == 1e-5


def test_tune_help_keeps_its_sections_in_order():
    titles = [g.title for g in subparser("tune")._action_groups]
    assert [t for t in titles if t in GROUPS] == list(GROUPS)


def test_parsed_flags_build_the_config():
    from soundsweep.options import from_args

    args = build_parser().parse_args(["tune", "--max-epochs", "7", "--coarse", "--width", "32"])
    cfg = from_args(ExperimentConfig, args)
    assert (cfg.max_epochs, cfg.coarse, cfg.width, cfg.space) == (7, True, 32, "augmentation")


def test_search_shape():
    space = get_space("augmentation")
    plain = search_shape(ExperimentConfig(num_samples=5, max_epochs=4), space)
    assert (plain.trials, plain.scheduler, plain.grid, plain.max_epochs) == (5, "asha", False, 4)
    grid = search_shape(ExperimentConfig(search="grid", num_samples=10_000), space)
    assert grid.grid and grid.configurations == space.grid_size()
    folds = search_shape(ExperimentConfig(num_samples=3, folds=3, repeats=2), space)
    assert (folds.trials, folds.runs, folds.scheduler) == (18, 6, "fifo")  # no early stopping across folds
    runs = search_shape(ExperimentConfig(num_samples=3, folds=3, fidelity="runs", max_epochs=2), space)
    assert (runs.trials, runs.max_epochs, runs.scheduler, runs.fidelity) == (3, 6, "asha", "runs")
    multi = search_shape(ExperimentConfig(num_samples=3, objective="accuracy,size"), space)
    assert multi.scheduler == "fifo"
    screening = search_shape(ExperimentConfig(space="random-cnn", num_samples=10_000), get_space("random-cnn"))
    assert (screening.protocol, screening.scheduler, screening.max_epochs) == ("screening", "fifo", 1)
    # TPE cannot sample more distinct configurations than a space holds: a repeat would train the same.
    assert search_shape(ExperimentConfig(space="fixed", num_samples=12), get_space("fixed")).trials == 1
    assert search_shape(ExperimentConfig(space="ccs", num_samples=12), get_space("ccs")).trials == 8
    composed = get_space("augmentation+recipe")
    assert composed.grid_size(limit=50) == 50 and search_shape(ExperimentConfig(num_samples=40), composed).trials == 40


def test_resume_refuses_a_changed_search():
    cfg = ExperimentConfig(max_epochs=4, seed=1)
    check_same_spec("x", {"max_epochs": 4, "seed": 1, "address": "elsewhere"}, cfg)  # address may change
    with pytest.raises(UsageError, match="--max-epochs 3"):
        check_same_spec("x", {"max_epochs": 3, "seed": 1}, cfg)


def test_pareto_front_keeps_the_undominated_trials(tmp_path):
    store = ResultsStore(f"sqlite:///{tmp_path}/r.db")
    exp = store.start_experiment("p", "augmentation", "synthetic", {}, str(tmp_path))
    last = {"a": (0.9, 100.0), "b": (0.8, 10.0), "c": (0.7, 50.0), "d": (0.9, 100.0)}
    for trial, (acc, kb) in last.items():
        store.record_trial(exp, trial, status="COMPLETED")
        store.record_epoch(exp, trial, 0, {"val_clip_acc": 0.1, "int8_kb": 1.0})  # earlier epochs do not count
        store.record_epoch(exp, trial, 1, {"val_clip_acc": acc, "int8_kb": kb})
    front = pareto_front(store, exp, ["accuracy", "size"])
    assert {row["trial_id"] for row in front} == {"a", "b", "d"}  # c is beaten by b on both
    assert front[0]["val_clip_acc"] == 0.9
    assert pareto_front(store, exp, ["accuracy"]) == []


def test_rank_key_breaks_accuracy_ties_by_validation_loss():
    epochs = [{"val_clip_acc": 0.5, "val_loss": 1.0}, {"val_clip_acc": 0.5, "val_loss": 0.7},
              {"val_clip_acc": 0.4, "val_loss": 0.1}]
    assert max(epochs, key=rank_key) == epochs[1]


def _val(score: float) -> dict:
    return {"val_clip_acc": round(score, 2), "val_score": score, "val_loss": 1.0}


@pytest.mark.parametrize("ensemble_score, kept", [
    (0.90, "ensemble"),  # above every member
    (0.80, "ensemble"),  # below its best member (0.85, a maximum of noisy scores) but above their mean
    (0.75, "ensemble"),  # equal to their mean: averaging did not hurt
    (0.74, "single"),  # below their mean: averaging hurt
])
def test_ensemble_top_keeps_the_ensemble_unless_averaging_hurt_on_validation(ensemble_score, kept, capsys):
    from soundsweep.experiment.run import preferred

    members = {"1": _val(0.85), "2": _val(0.75), "3": _val(0.65)}  # mean 0.75
    single = {"model_id": 1, "kind": "single"}
    ens = {"model_id": 9, "kind": "ensemble", "metrics": {**_val(ensemble_score), "members_val": members}}
    assert preferred(single, ens) is (ens if kept == "ensemble" else single)
    line = capsys.readouterr().out.strip()
    assert line.startswith("--ensemble-top: ") and ("model 9, the ensemble, is" in line) == (kept == "ensemble")
    assert "members' mean 0.750, best 0.850" in line
    assert preferred(single, None) is single and preferred(None, None) is None
