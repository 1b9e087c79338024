"""Training recipes: the registry, every knob's range check, the schedules, mixup's seeded draws,
the recipe space and its composition, and the ranking score (no Ray run)."""
import math
from dataclasses import asdict

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from search_spaces import get_space
from soundsweep.cli import main
from soundsweep.experiment import ExperimentConfig
from soundsweep.experiment.search import first_rung, search_shape
from trainables.config import TrialConfig
from trainables.evaluate import Predictions
from trainables.mixup import Mixup
from trainables.model_io import build
from trainables.recipes import RECIPES, TrainingConfig, get_recipe, list_recipes

RUNTIME = {"data_dir": "unused", "num_classes": 4, "in_channels": 1, "sample_rate": 16000}


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_builds_a_trial_and_trains_for_its_epochs(name):
    recipe = get_recipe(name)
    cfg = TrialConfig.from_dict({"runtime": RUNTIME, **recipe.settings})
    cfg.training.check(recipe.epochs)
    assert recipe.description and recipe.epochs >= 1
    for key, value in recipe.settings.items():
        assert cfg.params()[key] == value
    # The schedule stays within [0, lr] over the whole run and ends no higher than half-way.
    rates = [cfg.training.lr_at(e / 10, recipe.epochs) for e in range(10 * recipe.epochs)]
    assert all(0 <= r <= cfg.training.lr * (1 + 1e-9) for r in rates) and rates[-1] <= rates[len(rates) // 2]


def test_papers_recipes_carry_their_values():
    assert {"default", "soundfusion", "dcase2020", "ecapa"} <= set(RECIPES)
    dcase = get_recipe("dcase2020").settings
    assert (dcase["optimizer"], dcase["lr"], dcase["min_lr"], dcase["mixup_alpha"], dcase["weight_decay"]) == (
        "sgd", 0.1, 1e-5, 0.4, 1e-3)
    ecapa = get_recipe("ecapa")
    assert (ecapa.settings["lr"], ecapa.settings["min_lr"], ecapa.settings["weight_decay"], ecapa.epochs) == (
        1e-3, 1e-6, 1e-5, 80)
    assert get_recipe("soundfusion").settings["lr"] == 1e-4
    with pytest.raises(KeyError, match="unknown recipe 'nope'"):
        get_recipe("nope")


def test_schedules():
    total = 10
    cosine = TrainingConfig(lr=1.0, min_lr=0.01, schedule="cosine", warmup_epochs=2)
    assert cosine.lr_at(0, total) == pytest.approx(0.1)  # warm-up starts at lr / 10
    assert cosine.lr_at(1, total) == pytest.approx(0.55)
    assert cosine.lr_at(2, total) == pytest.approx(1.0)
    assert cosine.lr_at(6, total) == pytest.approx(0.505)  # half-way down the cosine
    assert cosine.lr_at(total, total) == pytest.approx(0.01)
    # SGDR: cycles of 2, 4, 8 epochs; the rate jumps back up at 2 and 6.
    sgdr = TrainingConfig(lr=1.0, min_lr=0.0, schedule="cosine_restarts", warmup_epochs=0, restart_epochs=2,
                          restart_mult=2)
    assert sgdr.lr_at(1.999, 14) < 0.01 and sgdr.lr_at(2, 14) == pytest.approx(1.0)
    assert sgdr.lr_at(5.999, 14) < 0.01 and sgdr.lr_at(6, 14) == pytest.approx(1.0)
    onecycle = TrainingConfig(lr=1.0, schedule="onecycle")
    assert onecycle.lr_at(0, total) == pytest.approx(0.04) and onecycle.lr_at(3, total) == pytest.approx(1.0)
    assert onecycle.lr_at(total, total) == pytest.approx(0.0)
    assert TrainingConfig(lr=0.3, schedule="constant", warmup_epochs=0).lr_at(7, total) == 0.3
    # A warm-up longer than half the run is cut to half of it.
    short = TrainingConfig(lr=1.0, schedule="cosine", warmup_epochs=1)
    assert short.lr_at(0.5, 1) == pytest.approx(1.0)


@pytest.mark.parametrize("overrides, words", [
    ({"lr": -1.0}, "--lr -1.0: must be > 0"),
    ({"mixup_alpha": -0.1}, "--mixup-alpha -0.1: must be >= 0"),
    ({"warmup_epochs": 9.0}, "--warmup-epochs 9: longer than the run's 4 epoch(s)"),
    ({"label_smoothing": 1.0}, "--label-smoothing 1.0: must be below 1"),
    ({"optimizer": "lion"}, "--optimizer lion: choose one of adam, adamw, sgd"),
    ({"schedule": "step"}, "--schedule step: choose one of"),
    ({"batch_size": 0}, "--batch-size 0: must be at least 1"),
    ({"min_lr": 1.0, "lr": 0.1}, "--min-lr 1.0: must be below --lr 0.1"),
    ({"logmel_scale": "max"}, "--logmel-scale max: choose one of standardize, peak"),
    ({"select_epoch": "first"}, "--select-epoch first: choose one of best, last"),
])
def test_out_of_range_values_are_refused(overrides, words):
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)")):
        TrainingConfig(**overrides).check(max_epochs=4)


def test_weight_decay_skips_biases_and_norms():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 1, 5, 5))
    for name in ("adam", "adamw", "sgd"):
        optimizer = TrainingConfig(optimizer=name, weight_decay=0.1).optimizer_for(model)
        decayed, plain = optimizer.param_groups
        assert decayed["weight_decay"] == 0.1 and all(p.dim() > 1 for p in decayed["params"])
        assert plain["weight_decay"] == 0.0 and all(p.dim() == 1 for p in plain["params"])
        assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert isinstance(TrainingConfig(optimizer="sgd").optimizer_for(model), torch.optim.SGD)


def test_mixup_is_seeded_and_mixes_inputs_with_their_weights():
    mixup = Mixup(0.4, seed=5)
    lam, perm = mixup.draw(8, epoch=2, rank=0, batch=3)
    again_lam, again_perm = mixup.draw(8, epoch=2, rank=0, batch=3)
    assert torch.equal(lam, again_lam) and torch.equal(perm, again_perm)  # a resumed epoch mixes the same
    other, _ = mixup.draw(8, epoch=2, rank=0, batch=4)
    assert not torch.equal(lam, other)
    assert ((lam >= 0) & (lam <= 1)).all() and sorted(perm.tolist()) == list(range(8))
    x = torch.randn(8, 1, 4, 5)
    mixed = Mixup.mix(x, lam, perm)
    assert torch.allclose(mixed[0], lam[0] * x[0] + (1 - lam[0]) * x[perm[0]])
    # Beta(0.4, 0.4) puts most weight near 0 and 1.
    many, _ = Mixup(0.4, seed=1).draw(4000, 0, 0, 0)
    assert ((many < 0.1) | (many > 0.9)).float().mean() > 0.4


def test_recipe_flags_override_the_recipe(capsys, tmp_path):
    cfg = ExperimentConfig(recipe="dcase2020", overrides={"lr": 0.05}, max_epochs=6)
    settings = cfg.training_settings()
    assert settings["lr"] == 0.05 and settings["optimizer"] == "sgd" and settings["pitch_shift"] == 4.0
    assert ExperimentConfig(recipe="ecapa").max_epochs == 80  # the recipe's epochs unless --max-epochs
    assert ExperimentConfig().max_epochs == get_recipe("default").epochs
    assert set(asdict(TrainingConfig())) <= set(ExperimentConfig().training_settings())


@pytest.mark.parametrize("argv, words", [
    (["--recipe", "nope"], ["--recipe nope", "invalid choice"]),
    (["--lr", "-1"], ["--lr -1.0: must be > 0"]),
    (["--mixup-alpha", "-0.5"], ["--mixup-alpha -0.5"]),
    (["--warmup-epochs", "30", "--max-epochs", "4"], ["--warmup-epochs 30", "longer than the run"]),
    (["--schedule", "step"], ["--schedule step", "invalid choice"]),
    (["--recipe", "dcase2020-1b"], ["channel_swap_p", "--channels 2"]),
])
def test_bad_recipe_input_is_one_line_exit_2(capsys, tmp_path, argv, words):
    code = main(["tune", *argv, "--results", f"sqlite:///{tmp_path}/r.db", "--storage-path", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("soundsweep: error:")
    for word in words:
        assert word in err


def test_recipe_space_is_conditional_and_composes():
    space = get_space("recipe")
    for params in space.grid():
        assert ("warmup_epochs" in params) == (params["schedule"] in ("cosine", "cosine_restarts"))
        assert ("restart_epochs" in params) == (params["schedule"] == "cosine_restarts")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    both = get_space("augmentation+recipe")
    sampled = both.sample(study.ask())
    assert {"noise_std", "specaug_p", "lr", "weight_decay", "schedule"} <= set(sampled)
    TrialConfig.from_dict({"runtime": RUNTIME, **sampled})  # every sampled key is a trial setting
    assert both.max_warmup_epochs == space.max_warmup_epochs == 2.0
    assert get_space("width+recipe").sample(study.ask())["arch"]
    with pytest.raises(KeyError, match="both set 'lr'"):
        get_space("recipe+recipe")
    with pytest.raises(KeyError, match="unknown search space 'nope'"):
        get_space("augmentation+nope")
    assert get_space("fixed").grid() == [{}]


def test_first_rung_falls_after_the_warmup_and_a_quarter_of_the_run():
    assert first_rung(20, 2.0) == 5 and first_rung(20, 6.0) == 7 and first_rung(12, 1.0) == 3
    assert first_rung(4, 1.0) == 2 and first_rung(1, 1.0) == 1 and first_rung(3, 0.0) == 1
    shape = search_shape(ExperimentConfig(space="recipe", max_epochs=8, overrides={"warmup_epochs": 0.0}),
                         get_space("recipe"))
    assert shape.grace_period == 3  # the space may sample a 2-epoch warm-up


def test_score_keeps_accuracy_order_and_breaks_ties_by_confidence():
    ids = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    labels = np.array([0, 0, 1, 1, 0, 0])

    def predictions(p_true_a: float, wrong_c: bool) -> Predictions:
        probs = np.array([[p_true_a, 1 - p_true_a]] * 2 + [[0.4, 0.6]] * 2 + [[0.3, 0.7] if wrong_c else [0.7, 0.3]] * 2)
        return Predictions(ids, labels, probs)

    sure, unsure, better = predictions(0.9, True), predictions(0.6, True), predictions(0.6, False)
    assert sure.clip_accuracy() == unsure.clip_accuracy() == pytest.approx(2 / 3)
    assert sure.score() > unsure.score()  # same accuracy: the more confident wins
    assert better.score() > sure.score()  # one more clip right beats any confidence
    assert math.floor(sure.score() * 3) == 2  # the tie-break stays below one clip's step
    assert sure.metrics("val")["val_score"] == sure.score()


def test_a_recipe_sets_the_input_policy_unless_flags_do():
    from trainables.audio import fit_length

    pons = ExperimentConfig(recipe="pons")
    assert (pons.sample_rate, pons.segment_mode, pons.pad) == (12000, "full", "repeat")
    assert pons.decode_spec().segment_samples == 350000 and pons.decode_spec().repeat_pad
    assert ExperimentConfig(recipe="pons", sample_rate=16000).sample_rate == 16000
    plain = ExperimentConfig()
    assert (plain.sample_rate, plain.segment_seconds, plain.segment_mode, plain.pad) == (22050, 5.0, "window", "zero")
    clip = np.arange(1, 4, dtype=np.float32)[None]
    assert fit_length(clip, 7, repeat=True).tolist() == [[1, 2, 3, 1, 2, 3, 1]]
    assert fit_length(clip, 5).tolist() == [[1, 2, 3, 0, 0]]


def test_a_tpe_search_starts_from_the_recipe_where_the_space_can_express_it():
    from dataclasses import asdict as as_dict

    from soundsweep.experiment.search import recipe_point
    from trainables.augment import AugmentConfig

    default = ExperimentConfig(space="augmentation+recipe")
    (point,) = recipe_point(default, get_space(default.space))
    settings = {**as_dict(AugmentConfig()), **default.training_settings()}
    assert point == {k: settings[k] for k in point}
    assert point["schedule"] == "cosine" and point["warmup_epochs"] == 1.0  # the conditional parameter too
    assert "restart_epochs" not in point
    # A recipe value the space cannot hold, or a space that samples what no recipe sets: no start point.
    assert recipe_point(ExperimentConfig(space="recipe", recipe="ecapa"), get_space("recipe")) == []
    assert recipe_point(ExperimentConfig(space="width"), get_space("width")) == []
    assert get_space("recipe").point_for({"lr": 1e-3}) is None


def test_the_trial_builds_the_logmel_scale_its_recipe_asks_for():
    for recipe, scale in (("default", "standardize"), ("oneshot", "peak")):
        cfg = TrialConfig.from_dict({"runtime": RUNTIME, "arch": "simple_cnn", **get_recipe(recipe).settings})
        assert build(cfg)[1].scale == scale
    # Other input kinds keep their paper's scaling: the setting does not reach them.
    cfg = TrialConfig.from_dict({"runtime": RUNTIME, "arch": "small_fcnn", "width": None, "logmel_scale": "peak"})
    assert not hasattr(build(cfg)[1], "scale")
