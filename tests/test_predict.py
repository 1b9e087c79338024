"""``soundsweep predict``: stored models label real audio through Ray Data exactly as they were tested.

The end-to-end tests reuse the session's tiny tune run (``tiny_run``): its registered model, fed
its own test clips from a manifest, must reproduce the test clip accuracy the store recorded,
to the last digit. Derived models (stacked and mean ensembles, int8, two-stage) are built in a
copy of that store, so the shared one is left as other tests expect it.
"""
import json
import sqlite3
from dataclasses import fields

import numpy as np
import pandas as pd
import pytest
import soundfile

from soundsweep.cli import main
from soundsweep.derived.stored import find_model
from soundsweep.experiment.config import ExperimentConfig
from soundsweep.predict import ClipCollector, Predictor, read_inputs, resolve
from soundsweep.results import ResultsStore
from tests.test_cli import light_help
from trainables.audio import DecodeSpec
from trainables.evaluate import TTA
from trainables.model_io import save_checkpoint
from trainables.models import create_model

HIERARCHY = {"ambient": "calm", "folk": "calm", "techno": "beat", "hiphop": "beat", "rock": "band", "jazz": "band"}


def tone(path, seconds: float, rate: int = 16000, channels: int = 1, amplitude: float = 0.3) -> str:
    """A real audio file: a 440 Hz tone (``amplitude`` 0: digital silence)."""
    t = np.arange(int(seconds * rate)) / rate
    x = amplitude * np.sin(2 * np.pi * 440 * t)
    soundfile.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, rate)
    return str(path)


def rows_of(path) -> list[dict]:
    return [json.loads(line) for line in open(path)]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("soundsweep: error:"), err
    return err


# Inputs and aggregation, no Ray ---------------------------------------------------------------------

def test_inputs_from_folders_manifests_and_files(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    first = tone(tmp_path / "a" / "x.wav", 0.5)
    second = tone(tmp_path / "a" / "deep" / "x.flac", 0.5)  # the same file name: ids become path hashes
    (tmp_path / "a" / "notes.txt").write_text("not audio, not listed")
    clips = read_inputs([str(tmp_path / "a")])
    assert clips["path"].tolist() == sorted([first, second]) and clips["label"].isna().all()
    assert clips["clip_id"].nunique() == 2 and "x" not in clips["clip_id"].tolist()

    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a/x.wav", "a/deep/x.flac"], "label": ["up", "down"], "split": ["test", "train"],
                  "clip_id": ["c1", "c2"]}).to_csv(manifest, index=False)
    test = read_inputs([str(manifest)], split="test")
    assert test.to_dict("records") == [{"path": first, "clip_id": "c1", "label": "up"}]  # relative to the CSV
    both = read_inputs([str(manifest), first])  # the same file twice is labelled once
    assert len(both) == 2 and both["clip_id"].tolist() == ["c1", "c2"]
    partial = tmp_path / "partial.csv"  # a clip without an id gets its file name, as in training
    partial.write_text(f"path,clip_id\n{first},\n{second},c2\n")
    assert read_inputs([str(partial)])["clip_id"].tolist() == ["x", "c2"]
    missing = read_inputs([str(tmp_path / "gone.wav")])  # decoded (and skipped) like a training file
    assert missing["path"].tolist() == [str(tmp_path / "gone.wav")]

    for inputs, split, words in (([str(tmp_path / "empty")], None, "no audio files"),
                                 ([first], "test", "only a manifest CSV has splits"),
                                 ([str(tmp_path / "nope.csv")], None, "no such manifest file")):
        (tmp_path / "empty").mkdir(exist_ok=True)
        with pytest.raises(Exception, match=words):
            read_inputs(inputs, split)


def test_collector_waits_for_whole_clips_and_counts_what_it_skips():
    spec = DecodeSpec(sample_rate=10, segment_s=1.0)
    predictor = Predictor("hand-made", spec, ["a", "b"], [None], lambda members: members[0], "majority_vote", 1)
    clips = pd.DataFrame({"path": ["/p/x", "/p/y", "/p/z"], "clip_id": ["x", "y", "z"], "label": ["a", None, "b"]})
    reported = []
    collector = ClipCollector(predictor, clips, top_k=5, segments=True, report=lambda kind, text: reported.append(kind))

    def batch(ids, segments, counts, probs, errors=None, seconds=None):
        n = len(ids)
        return {"clip_id": np.array(ids, dtype=object), "segment": np.array(segments), "segments": np.array(counts),
                "label": np.array([{"x": 0, "y": -1, "z": 1}[c] for c in ids]), "probs0": np.array(probs, np.float32),
                "error": np.array(errors or [""] * n, dtype=object), "seconds": np.array(seconds or [3.0] * n)}

    # x has 3 segments, split over two batches; z failed to decode.
    first = collector.add(batch(["x", "x", "z"], [0, 1, 0], [3, 3, 1], [[0.9, 0.1], [0.2, 0.8], [0, 0]],
                                errors=["", "", "cannot decode: no"]))
    assert first == [] and reported == ["skipped"]
    second = collector.add(batch(["y", "x"], [0, 2], [1, 3], [[0.3, 0.7], [0.6, 0.4]], seconds=[0.4, 3.0]))
    clip_rows = [r for r in second if r["segment"] is None]
    assert [r["path"] for r in clip_rows] == ["/p/x", "/p/y"]
    x = clip_rows[0]
    assert x["label"] == "a" and x["true_label"] == "a"  # majority vote: 2 of 3 segments say a
    assert x["probability"] == pytest.approx((0.9 + 0.2 + 0.6) / 3)  # the clip's mean probability of its label
    assert x["top"][0][0] == "a" and len(x["top"]) == 2  # top-k is capped by the class count
    assert [r["segment"] for r in second if r["path"] == "/p/x"] == [None, 0, 1, 2]
    assert "true_label" not in clip_rows[1]
    o = collector.outcome
    assert (o.labelled, o.known, o.correct, o.padded) == (2, 1, 1, 1) and o.skipped == [("/p/z", "cannot decode: no")]
    assert o.confusion.tolist() == [[1, 0], [0, 0]] and reported == ["skipped", "note"]


# End to end on the tiny run's model -----------------------------------------------------------------

def test_a_model_reproduces_its_recorded_test_accuracy_exactly(tiny, tmp_path, capsys):
    store, url, model, manifest = tiny
    out = tmp_path / "rows.jsonl"
    assert main(["predict", "--model", str(model.id), manifest, "--split", "test", "--segments", "--out", str(out),
                 "--results", url]) == 0
    err = capsys.readouterr().err
    rows = rows_of(out)
    clips = [r for r in rows if r["segment"] is None]
    accuracy = np.mean([r["label"] == r["true_label"] for r in clips])
    assert len(clips) == 12 and accuracy == model.test_clip_acc  # exactly what the store recorded
    assert f"accuracy: {model.test_clip_acc:.4f}" in err and "confusion matrix" in err and "clips/s" in err
    # Segment by segment, the same probabilities as the evaluation that registered the model.
    views = model.metrics["evaluation"]["views"]
    stored = find_model(store, model.id)
    test = stored.predict("test", TTA(views, seed=stored.experiment.cfg.seed) if views > 1 else None)
    expected = {key: p.max() for key, p in zip(test.keys, test.probs)}
    test_clips = read_inputs([manifest], "test")
    by_path = dict(zip(test_clips["path"], test_clips["clip_id"]))
    got = {f"{by_path[r['path']]}#{r['segment']}": r["probability"] for r in rows if r["segment"] is not None}
    assert got.keys() == expected.keys()
    assert np.allclose([got[k] for k in expected], list(expected.values()), atol=2e-6)


def test_a_checkpoint_folder_with_more_tta_views_matches_the_stored_tta_figures(tiny, tmp_path, capsys):
    store, url, model, manifest = tiny
    out = tmp_path / "rows.csv"
    views = model.metrics["tta"]["views"]  # the run's --tta-views: test figures recorded beside the chosen ones
    assert main(["predict", "--model", model.checkpoint_uri, manifest, "--split", "test", "--tta", str(views),
                 "--out", str(out), "--results", url]) == 0
    assert f"model {model.id} (single" in capsys.readouterr().err  # the folder is the registered model's
    rows = pd.read_csv(out)
    assert list(rows.columns) == ["path", "label", "probability", "top1", "p1", "top2", "p2", "top3", "p3",
                                  "true_label"]
    key = {"majority_vote": "test_clip_acc", "mean_probability": "test_clip_acc_mean"}[model.aggregation]
    assert (rows["label"] == rows["true_label"]).mean() == model.metrics["tta"][key]


def test_an_experiment_name_means_its_best_model_and_its_evaluation(tiny):
    store, _, model, _ = tiny
    predictor = resolve(store, "tiny")
    assert predictor.description.startswith(f"model {model.id} (single")
    assert predictor.views == model.metrics["evaluation"]["views"] and predictor.aggregation == model.aggregation
    assert predictor.spec == ExperimentConfig(**{k: v for k, v in store.experiment("tiny").config.items()
                                                 if k in {f.name for f in fields(ExperimentConfig)}}).decode_spec()
    assert resolve(store, "tiny", tta=1).networks[0].tta is None


@pytest.fixture(scope="module")
def derived(tiny, tmp_path_factory):
    """A copy of the tiny store with a stacked and a mean ensemble, an int8 model and a two-stage
    model (a one-trial coarse run on the same clips, super-classes from a hierarchy file)."""
    _, url, best, manifest = tiny
    root = tmp_path_factory.mktemp("derived")
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(root / "results.db") as target:
        source.backup(target)  # the store is in WAL mode: a file copy could miss its latest writes
    copy = f"sqlite:///{root}/results.db"
    hierarchy = root / "hierarchy.csv"
    hierarchy.write_text("fine,coarse\n" + "".join(f"{f},{c}\n" for f, c in HIERARCHY.items()))
    assert main(["ensemble", "--experiment", "tiny", "--top-k", "2", "--method", "stack", "--results", copy]) == 0
    singles = [m.id for m in ResultsStore(copy).models(best.experiment_id) if m.kind == "single"]
    assert main(["ensemble", "--models", ",".join(map(str, singles)), "--method", "mean", "--results", copy]) == 0
    assert main(["quantize", "--model", str(best.id), "--results", copy]) == 0
    assert main(["tune", "--space", "augmentation", "--arch", "simple_cnn", "--num-samples", "1", "--max-epochs", "1",
                 "--synthetic-clips", "10", "--seed", "3", "--scheduler", "fifo", "--coarse", "--hierarchy",
                 str(hierarchy), "--results", copy, "--storage-path", str(root / "runs"), "--name", "coarse"]) == 0
    assert main(["two-stage", "--fine-experiment", "tiny", "--coarse-experiment", "coarse", "--results", copy]) == 0
    store = ResultsStore(copy)
    models = {m.kind if m.kind != "ensemble" else m.params["method"]: m for m in store.models(best.experiment_id)
              if m.kind != "single"}
    assert set(models) == {"stack", "mean", "quantized", "two_stage"}
    return copy, models, manifest


@pytest.mark.parametrize("kind", ["stack", "mean", "quantized", "two_stage"])
def test_derived_models_reproduce_their_recorded_test_accuracy(derived, kind, tmp_path, capsys):
    url, models, manifest = derived
    model = models[kind]
    out = tmp_path / "rows.jsonl"
    assert main(["predict", "--model", str(model.id), manifest, "--split", "test", "--out", str(out),
                 "--results", url]) == 0
    assert f"model {model.id} (" in capsys.readouterr().err
    rows = rows_of(out)
    assert len(rows) == 12 and all(r["label"] in model.classes for r in rows)
    assert np.mean([r["label"] == r["true_label"] for r in rows]) == model.test_clip_acc


# Bad input ------------------------------------------------------------------------------------------

def test_bad_files_are_listed_and_skipped_and_the_rest_labelled_as_training_decodes_them(tiny, tmp_path, capsys):
    _, url, model, _ = tiny
    folder = tmp_path / "in"
    folder.mkdir()
    good = tone(folder / "good.wav", 6.0)
    silent = tone(folder / "silent.flac", 6.0, amplitude=0.0)
    short = tone(folder / "short.wav", 1.0)  # under one 5 s segment, above the 0.5 s minimum: padded
    odd = tone(folder / "odd.wav", 6.0, rate=44100, channels=3)  # resampled and mixed to mono
    tiny_file = tone(folder / "tiny.wav", 0.1)  # under the minimum: skipped, as training skips it
    (folder / "text.wav").write_bytes(b"these are text bytes, not audio")
    missing = str(tmp_path / "missing.wav")
    out = tmp_path / "rows.csv"
    assert main(["predict", "--model", str(model.id), str(folder), missing, "--out", str(out), "--results", url]) == 0
    err = capsys.readouterr().err
    rows = pd.read_csv(out)
    assert sorted(rows["path"]) == sorted([good, silent, short, odd]) and "true_label" not in rows
    assert rows["label"].isin(model.classes).all() and rows["probability"].between(0, 1).all()
    for path, reason in ((tiny_file, "too short"), (str(folder / "text.wav"), "cannot decode"),
                         (missing, "cannot decode")):
        assert f"skipped {path}: {reason}" in err
    assert "4 clip(s) labelled, 3 skipped" in err
    assert f"note: {short} is 1.00 s, shorter than one 5 s segment: zero-padded at its end, as training pads it" in err
    assert "accuracy" not in err  # no labels, no accuracy


def test_nothing_usable_is_one_line_and_exit_2(tiny, tmp_path, capsys):
    _, url, model, _ = tiny
    (tmp_path / "text.wav").write_text("not audio")
    assert main(["predict", "--model", str(model.id), str(tmp_path / "text.wav"), "--results", url]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("soundsweep: error: INPUT: none of the 1")


def test_unknown_references_and_foreign_checkpoints_exit_2_naming_the_argument(tiny, tmp_path, capsys):
    _, url, model, manifest = tiny
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    save_checkpoint(str(foreign), create_model("simple_cnn", num_classes=6, in_channels=1), 0, {})
    other_classes = tmp_path / "other"
    other_classes.mkdir()
    params = find_model(ResultsStore(url), model.id).row.params
    save_checkpoint(str(other_classes), create_model(params["arch"], num_classes=4, in_channels=1,
                                                     **({"width": params["width"]} if params.get("width") else {})),
                    0, params)
    (tmp_path / "empty").mkdir()
    cases = [
        (["--model", "999"], "--model 999: no model 999"),
        (["--model", "nope"], "--model nope: not a model id, an experiment"),
        (["--model", str(tmp_path / "empty")], "not a checkpoint folder"),
        (["--model", str(foreign)], "no trial of"),  # not in the store and no --experiment
        (["--model", str(foreign), "--experiment", "tiny"], "saved from another architecture"),
        (["--model", str(other_classes), "--experiment", "tiny"], "trained on other classes"),
        (["--model", str(model.id), "--experiment", "tiny"], "--experiment tiny: it only names the data"),
        (["--model", str(model.id), "--top-k", "0"], "--top-k 0"),
        (["--model", str(model.id), "--tta", "0"], "--tta 0"),
    ]
    for argv, words in cases:
        assert main(["predict", *argv, manifest, "--results", url]) == 2, argv
        err = one_line_error(capsys)
        assert words in err and ("--model" in err or argv[-2] in err), err


def test_predict_help_imports_no_heavy_library():
    text = light_help("predict")
    assert "--gpus-per-worker" in text and "INPUT" in text
