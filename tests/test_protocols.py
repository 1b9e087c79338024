"""Evaluation protocols and derived models: aggregation and TTA, two-stage fusion, ensembles, int8 quantization, size budget.

Hand-made tables check each rule exactly; one tiny fine and one tiny coarse tune (simple_cnn, one
epoch, the synthetic set's 6 genres grouped into 3 super-classes by a user hierarchy file) are
shared by the end-to-end tests of the commands. Their storage is a ``file://`` URI, so the commands
read and write it through the storage layer as they would ``s3://`` (and each runs in an empty
working directory that must stay empty: no local folder named ``file:``).
"""
import os

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from torch import nn

from soundsweep.catalog import hierarchy_for, scene_hierarchy
from soundsweep.cli import main
from soundsweep.derived.ensemble import combine
from soundsweep.derived.stored import find_model
from soundsweep.derived.two_stage import fuse, fused_predictions, parent_index
from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore
from soundsweep.storage import join
from trainables.config import TrialConfig
from trainables.evaluate import AGGREGATIONS, TTA, Predictions, predict
from trainables.model_io import build, model_cost
from trainables.models import create_model, num_parameters, parameter_count
from trainables.quantize import Int8Weight, quantize, size_kb
from trainables.trial import oversize

HIERARCHY = {"ambient": "calm", "folk": "calm", "techno": "beat", "hiphop": "beat", "rock": "band", "jazz": "band"}
TINY = ["--arch", "simple_cnn", "--num-samples", "2", "--max-epochs", "1", "--synthetic-clips", "10", "--seed", "3",
        "--scheduler", "fifo", "--tta-views", "2"]


def table(clip_ids, labels, probs, keys=None) -> Predictions:
    return Predictions(np.array(clip_ids, dtype=object), np.array(labels), np.array(probs, dtype=float),
                       None if keys is None else np.array(keys, dtype=object))


# Aggregation and test-time augmentation ------------------------------------------------------------

def test_mean_probability_and_majority_vote_disagree_where_they_should():
    # clip a: two weak votes for class 1 against one confident segment for class 0.
    # clip b: all segments agree on class 2.
    pred = table(["a", "a", "a", "b", "b"], [0, 0, 0, 2, 2], [
        [0.40, 0.60, 0.00],
        [0.45, 0.55, 0.00],
        [0.98, 0.02, 0.00],
        [0.10, 0.20, 0.70],
        [0.20, 0.10, 0.70],
    ])
    _, labels, majority = pred.clips("majority_vote")
    _, _, mean = pred.clips("mean_probability")
    assert list(labels) == [0, 2] and list(majority) == [1, 2] and list(mean) == [0, 2]
    assert pred.clip_accuracy("majority_vote") == 0.5 and pred.clip_accuracy("mean_probability") == 1.0
    metrics = pred.metrics("test")
    assert metrics["test_clip_acc"] == 0.5 and metrics["test_clip_acc_mean"] == 1.0
    assert pred.confusion(3, "mean_probability").tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="unknown aggregation"):
        pred.clips("median")


def test_tta_averages_seeded_views():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 40, 3))
    x = torch.randn(4, 2, 40)
    batch = {"waveform": x, "label": torch.tensor([0, 1, 2, 0]), "clip_id": ["a", "a", "b", "b"],
             "keys": ["a#0", "a#1", "b#0", "b#1"]}
    tta = TTA(views=3, snr_db=20.0, seed=7)
    assert torch.equal(tta.view(x, batch["keys"], 0), x)
    assert torch.equal(tta.view(x, batch["keys"], 2), TTA(3, 20.0, 7).view(x, batch["keys"], 2))  # seeded
    assert not torch.equal(tta.view(x, batch["keys"], 1), TTA(3, 20.0, 8).view(x, batch["keys"], 1))
    with torch.no_grad():
        expected = torch.stack([torch.softmax(model(tta.view(x, batch["keys"], v)), 1) for v in range(3)]).mean(0)
    got = predict(model, nn.Identity(), [batch], torch.device("cpu"), tta)
    assert np.allclose(got.probs, expected.numpy(), atol=1e-6)
    assert list(got.keys) == batch["keys"]


# Two-stage fusion ----------------------------------------------------------------------------------

def test_two_stage_scores_are_the_product_rule():
    fine_classes, coarse_classes = ["ambient", "folk", "rock", "techno"], ["band", "beat", "calm"]
    parent = parent_index(fine_classes, coarse_classes, HIERARCHY)
    assert parent.tolist() == [2, 2, 0, 1]
    fine_probs = np.array([[0.40, 0.10, 0.30, 0.20],
                           [0.25, 0.25, 0.20, 0.30]])
    coarse_probs = np.array([[0.10, 0.10, 0.80],
                             [0.70, 0.20, 0.10]])
    scores = fuse(fine_probs, coarse_probs, parent)
    by_hand = np.array([[0.40 * 0.80, 0.10 * 0.80, 0.30 * 0.10, 0.20 * 0.10],
                        [0.25 * 0.10, 0.25 * 0.10, 0.20 * 0.70, 0.30 * 0.20]])
    assert np.array_equal(scores, by_hand)
    keys = ["x#0", "y#0"]
    fine = table(["x", "y"], [0, 2], fine_probs, keys)
    coarse = table(["y", "x"], [0, 2], coarse_probs[::-1], keys[::-1])  # another order: aligned by key
    fused = fused_predictions(fine, coarse, parent)
    assert np.allclose(fused.probs, by_hand / by_hand.sum(1, keepdims=True))
    assert fused.probs.argmax(1).tolist() == [0, 2]  # the coarse model overturns the fine model's 3 in row 2
    assert fine.probs.argmax(1).tolist() == [0, 3]
    with pytest.raises(UsageError, match="super-classes of the fine labels"):
        fused_predictions(fine, table(["x", "y"], [2, 1], coarse_probs, keys), parent)


def test_hierarchy_from_the_dataset_or_a_file(tmp_path):
    scenes = scene_hierarchy()
    dcase = pd.DataFrame({"label": list(scenes), "coarse_label": list(scenes.values())})
    assert hierarchy_for(dcase, None) == scenes
    path = tmp_path / "h.csv"
    path.write_text("fine,coarse\n" + "".join(f"{f},{c}\n" for f, c in HIERARCHY.items()))
    genres = pd.DataFrame({"label": list(HIERARCHY)})
    assert hierarchy_for(genres, str(path)) == HIERARCHY
    with pytest.raises(UsageError, match="no super-classes"):
        hierarchy_for(genres, None)
    path.write_text("fine,coarse\nambient,calm\n")
    with pytest.raises(UsageError, match="no super-class for folk"):
        hierarchy_for(genres, str(path))


# Stacking ------------------------------------------------------------------------------------------

def test_stacking_is_fit_on_the_validation_split_only():
    rng = np.random.default_rng(0)

    def members(labels):
        """Member 0 is noise, member 1 knows the label: the stacker must learn to trust member 1."""
        n = len(labels)
        noise = rng.dirichlet(np.ones(3), n)
        good = np.full((n, 3), 0.1)
        good[np.arange(n), labels] = 0.8
        keys = [f"c{i}#0" for i in range(n)]
        return [table([f"c{i}" for i in range(n)], labels, p, keys) for p in (noise, good)]

    val, test = members(rng.integers(0, 3, 60)), members(rng.integers(0, 3, 30))
    _, stacked, fitted = combine("stack", val, test)
    assert fitted["fit_split"] == "val" and fitted["fit_segments"] == 60
    assert stacked.segment_accuracy() == 1.0
    # The test labels never reach the fit: other test labels leave the stacked probabilities as they were ...
    relabelled = [table(m.clip_ids, (m.labels + 1) % 3, m.probs, m.keys) for m in test]
    assert np.array_equal(combine("stack", val, relabelled)[1].probs, stacked.probs)
    # ... while other validation labels change them.
    shuffled = [table(m.clip_ids, rng.permutation(m.labels), m.probs, m.keys) for m in val]
    assert not np.allclose(combine("stack", shuffled, test)[1].probs, stacked.probs)
    _, mean, _ = combine("mean", val, test)
    assert np.allclose(mean.probs, (test[0].probs + test[1].probs) / 2)


# Quantization --------------------------------------------------------------------------------------

def test_int8_quantization_covers_convolutions_and_linear_layers():
    torch.manual_seed(0)
    model = create_model("simple_cnn", num_classes=6, in_channels=1)
    x = torch.randn(8, 1, 64, 200)
    model.train()(x)  # batch-norm statistics that are not the identity
    model.eval()
    small = quantize(model)
    wrapped = [m for m in small.modules() if isinstance(m, Int8Weight)]
    assert len(wrapped) == 5 and {type(m.layer) for m in wrapped} == {nn.Conv2d, nn.Linear}
    assert not any(isinstance(m, nn.BatchNorm2d) for m in small.modules())  # folded into the convolutions
    assert all(m.weight_int8.dtype == torch.int8 and m.scale.shape == (m.weight_int8.shape[0],) for m in wrapped)
    float_kb = size_kb(model)
    assert float_kb == pytest.approx(sum(t.numel() * 4 for k, t in model.state_dict().items()
                                         if not k.endswith("num_batches_tracked")) / 1024)
    assert 3.5 < float_kb / size_kb(small) < 4.2
    with torch.no_grad():
        before, after = model(x), small(x)
    assert torch.allclose(before, after, atol=0.05 * before.abs().max().item())
    assert (before.argmax(1) == after.argmax(1)).float().mean() >= 0.75
    assert isinstance(model.classifier, nn.Linear)  # the float model is left as it was


def test_size_budget_names_the_oversize_configuration():
    runtime = {"data_dir": "-", "num_classes": 10, "in_channels": 2, "sample_rate": 48000}

    def budget(arch: str, **limits) -> str | None:
        cfg = TrialConfig.from_dict({"arch": arch, "width": None, "runtime": {**runtime, **limits}})
        return oversize(cfg, model_cost(cfg))

    assert budget("small_fcnn", max_model_kb=500) is None
    reason = budget("fcnn", max_model_kb=500)
    assert reason.startswith("int8 model size") and reason.endswith("exceeds --max-model-kb 500")
    assert budget("fcnn") is None  # no budget
    count = parameter_count("fcnn", num_classes=10, in_channels=2)
    assert budget("fcnn", max_params=count) is None  # exactly at the budget
    assert budget("fcnn", max_params=count - 1) == f"{count:,} parameters exceed --max-params {count - 1:,}"


def test_model_cost_is_the_built_models_count_and_int8_size():
    cfg = TrialConfig.from_dict({"arch": "small_fcnn", "width": None,
                                 "runtime": {"data_dir": "-", "num_classes": 10, "in_channels": 2, "sample_rate": 48000}})
    model = build(cfg)[0]
    assert model_cost(cfg) == {"num_params": num_parameters(model), "int8_kb": size_kb(quantize(model))}
    assert model_cost(cfg)["int8_kb"] < 500  # DCASE2020 1b's small model fits its budget


# End to end ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def runs(ray_session, tmp_path_factory):
    """A fine experiment (2 trials) and a coarse one (1 trial) on the synthetic genres, stored
    under the ``file://`` URI of ``<tmp>/runs``."""
    root = tmp_path_factory.mktemp("protocols")
    url = f"sqlite:///{root}/results.db"
    hierarchy = root / "hierarchy.csv"
    hierarchy.write_text("fine,coarse\n" + "".join(f"{f},{c}\n" for f, c in HIERARCHY.items()))
    common = ["--results", url, "--storage-path", (root / "runs").as_uri()]
    assert main(["tune", "--space", "augmentation", *TINY, *common, "--name", "fine"]) == 0
    coarse = [*TINY[:2], "--num-samples", "1", *TINY[4:]]
    assert main(["tune", "--space", "augmentation", *coarse, *common, "--name", "coarse", "--coarse",
                 "--hierarchy", str(hierarchy)]) == 0
    return ResultsStore(url), url


def test_tune_stores_both_clip_aggregations_and_tta(runs):
    store, _ = runs
    (model,) = store.models(store.experiment("fine").id)
    m = model.metrics
    chosen = m["evaluation"]  # TTA views and aggregation chosen on validation
    assert model.kind == "single" and model.aggregation == chosen["aggregation"] in AGGREGATIONS
    assert {(c["views"], c["aggregation"]) for c in chosen["val"]} == {(v, a) for v in (1, 2) for a in AGGREGATIONS}
    winner = max(c["val_clip_acc"] for c in chosen["val"])
    assert next(c for c in chosen["val"] if (c["views"], c["aggregation"]) == (chosen["views"], model.aggregation)
                )["val_clip_acc"] == winner
    by_aggregation = {"majority_vote": "test_clip_acc", "mean_probability": "test_clip_acc_mean"}
    assert m[by_aggregation[model.aggregation]] == model.test_clip_acc  # figures of the chosen views
    assert m["test_clip_acc_mean"] == model.test_clip_acc_mean
    assert m["tta"]["views"] == 2
    stored = find_model(store, model.id)  # its TTA figures, recomputed from the checkpoint
    tta = stored.predict("test", stored.experiment.cfg.tta())
    assert m["tta"]["test_clip_acc_mean"] == pytest.approx(tta.clip_accuracy("mean_probability"))
    assert m["tta"]["test_segment_acc"] == pytest.approx(tta.segment_accuracy())
    assert set(m["plain"]) >= {"test_clip_acc", "test_clip_acc_mean", "test_segment_acc"}
    assert "val_clip_acc_mean" in m
    coarse = store.experiment("coarse")
    (coarse_model,) = store.models(coarse.id)
    assert coarse_model.classes == ["band", "beat", "calm"] and sum(map(sum, coarse_model.confusion)) == 12


def test_two_stage_command_fuses_the_best_models(runs, capsys, clean_cwd):
    store, url = runs
    assert main(["two-stage", "--fine-experiment", "fine", "--coarse-experiment", "coarse", "--results", url]) == 0
    out = capsys.readouterr().out
    assert "coarse model" in out and "fine model" in out and "two-stage model" in out
    fused = next(m for m in store.models(store.experiment("fine").id) if m.kind == "two_stage")
    fine_id, coarse_id = fused.sources
    assert fused.params["hierarchy"] == HIERARCHY  # the coarse experiment's file
    # Recompute from the two members: the stored fused accuracy is the product rule's.
    opened = {}
    fine, coarse = find_model(store, fine_id, opened), find_model(store, coarse_id, opened)
    parent = parent_index(fine.experiment.data.classes, coarse.experiment.data.classes, HIERARCHY)
    test = fused_predictions(fine.predict("test"), coarse.predict("test"), parent)
    assert fused.test_segment_acc == pytest.approx(test.segment_accuracy())
    assert fused.test_clip_acc_mean == pytest.approx(test.clip_accuracy("mean_probability"))
    assert set(fused.metrics["coarse"]) >= {"test_segment_acc", "test_clip_acc", "test_clip_acc_mean"}
    assert os.listdir(clean_cwd) == []


def test_ensemble_commands_stack_on_val_and_average(runs, capsys, clean_cwd):
    store, url = runs
    assert main(["ensemble", "--experiment", "fine", "--top-k", "3", "--method", "stack", "--results", url]) == 0
    assert "stacking fit on the validation split" in capsys.readouterr().out
    exp = store.experiment("fine")
    singles = [m for m in store.models(exp.id) if m.kind == "single"]
    assert len(singles) == 2  # the top 3 of 2 trials: both, the best one registered once
    stacked = next(m for m in store.models(exp.id) if m.kind == "ensemble")
    assert sorted(stacked.sources) == sorted(m.id for m in singles)
    assert stacked.metrics["stack"]["fit_split"] == "val"
    assert stacked.metrics["stack"]["fit_segments"] == find_model(store, singles[0].id).experiment.data.segments["val"]
    ids = ",".join(str(m.id) for m in singles)
    assert main(["ensemble", "--models", ids, "--method", "mean", "--results", url]) == 0
    mean = next(m for m in store.models(exp.id) if m.params.get("method") == "mean")
    assert mean.sources == [singles[0].id, singles[1].id]
    first, second = (find_model(store, m.id).predict("test") for m in singles)  # the mean, recomputed
    averaged = Predictions(first.clip_ids, first.labels, (first.probs + second.aligned_to(first.keys).probs) / 2)
    assert mean.test_clip_acc_mean == pytest.approx(averaged.clip_accuracy("mean_probability"))
    assert mean.test_segment_acc == pytest.approx(averaged.segment_accuracy())
    assert os.listdir(clean_cwd) == []


def test_quantize_command_is_4x_smaller_and_agrees(runs, capsys, clean_cwd):
    store, url = runs
    storage = store.experiment("coarse").storage_path
    assert storage.startswith("file:///")
    (best,) = [m for m in store.models(store.experiment("coarse").id) if m.kind == "single"]
    assert main(["quantize", "--model", str(best.id), "--results", url]) == 0
    assert "KB" in capsys.readouterr().out
    small = next(m for m in store.models(best.experiment_id) if m.kind == "quantized")
    m = small.metrics
    assert 3.5 < m["size_ratio"] < 4.2 and small.size_kb == pytest.approx(m["int8_kb"])
    assert m["clip_agreement"] >= 0.75
    assert m["float"]["test_clip_acc"] == pytest.approx(best.metrics["plain"]["test_clip_acc"])  # no TTA, majority vote
    # The int8 state is saved beside the checkpoints, a URI in the store and a file on this disk ...
    assert small.checkpoint_uri == join(storage, "quantized", f"model-{best.id}.pt")
    assert os.path.getsize(os.path.join(storage.removeprefix("file://"), "quantized", f"model-{best.id}.pt")) > 0
    assert os.listdir(clean_cwd) == []
    # ... loads back and predicts what was stored.
    reloaded = find_model(store, small.id).predict("test")
    assert reloaded.clip_accuracy() == pytest.approx(small.test_clip_acc)
    assert main(["quantize", "--model", str(small.id), "--results", url]) == 2
    assert "already quantized" in capsys.readouterr().err


def test_protocol_commands_reject_unknown_names_in_one_line(runs, capsys):
    _, url = runs
    for argv in (["two-stage", "--fine-experiment", "nope", "--coarse-experiment", "coarse"],
                 ["two-stage", "--fine-experiment", "coarse", "--coarse-experiment", "fine"],
                 ["ensemble", "--models", "1,x"], ["quantize", "--model", "999"]):
        assert main([*argv, "--results", url]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("soundsweep: error:"), err


def test_size_budget_prunes_before_training(ray_session, tmp_path):
    url = f"sqlite:///{tmp_path}/results.db"
    assert main(["tune", "--space", "augmentation", "--arch", "simple_cnn", "--num-samples", "1", "--max-epochs", "1",
                 "--synthetic-clips", "10", "--seed", "3", "--max-model-kb", "5", "--results", url,
                 "--storage-path", str(tmp_path / "runs"), "--name", "budget"]) == 0
    store = ResultsStore(url)
    exp = store.experiment("budget")
    (trial,) = store.trials(exp.id)
    assert trial.status == "PRUNED" and trial.epochs == 0 and store.epochs(exp.id) == []
    assert "exceeds --max-model-kb 5" in trial.error
    assert store.models(exp.id) == []
    (study_trial,) = optuna.load_study(study_name="budget", storage=url).trials
    assert study_trial.value == 0.0  # TPE is told the constraint's verdict
