"""``soundsweep export``: one file per model, front-end included, that computes what the model computes.

Parity is checked on real audio (clips of the embedded synthetic set, decoded and cut as training
cuts them): for one untrained model of every zoo family in both formats (parity needs no
training), and through the command line for the tiny run's registered model, whose artifact,
loaded where SoundSweep cannot be imported, reproduces the model's recorded test accuracy
without test-time augmentation.
"""
import json
import sqlite3

import numpy as np
import pandas as pd
import pytest
import torch

from soundsweep.catalog.synthetic import generate
from soundsweep.cli import main
from soundsweep.export import TOLERANCE, WRITERS
from soundsweep.results import ResultsStore
from tests.test_cli import command_help, python
from tests.test_predict import one_line_error
from trainables.audio import DecodeSpec, decode_segments
from trainables.evaluate import Predictions
from trainables.exportable import Classifier, DFTSpectrogram, SlicedAdaptivePool2d, onnx_ready
from trainables.features import create_frontend
from trainables.models import create_model, model_info

FAMILIES = {  # one model per family, covering every front-end kind
    "soundfusion": ["resnet2d", "nnet1", "resnet1d", "soundfusion1"],
    "dcase2020": ["mobnet"],
    "ecapa": ["ecapa_tdnn"],
    "openl3": ["l3_mel128_512", "l3_linear_6144"],
    "random_cnn": ["random_timbral"],
}


def segments(manifest, spec: DecodeSpec, split: str | None = None) -> dict:
    """The manifest's clips (one ``split``, or all) decoded and cut exactly as training cuts them."""
    rows = manifest if split is None else manifest[manifest["split"] == split]
    return decode_segments({"path": rows["path"].tolist(), "clip_id": rows["clip_id"].tolist(),
                            "label_index": list(range(len(rows))), "split": ["test"] * len(rows)}, spec)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Segments of real audio: 6 synthetic clips of 2 s, 1 s windows at 16 kHz."""
    manifest = generate(str(tmp_path_factory.mktemp("synthetic")), clips_per_class=1, clip_seconds=2.0,
                        sample_rate=16000)
    return torch.from_numpy(segments(manifest, DecodeSpec(sample_rate=16000, segment_s=1.0))["waveform"])


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("arch", [a for archs in FAMILIES.values() for a in archs])
def test_every_family_exports_with_its_front_end_and_matches_the_model(arch, fmt, clips, tmp_path):
    info = model_info(arch)
    options = {"width": min(info.widths)} if info.widths else {}
    if info.input == "waveform+logmel":
        options["sample_rate"] = 16000
    torch.manual_seed(0)
    classifier = Classifier(create_frontend(info.input, 16000), create_model(arch, num_classes=4, in_channels=1,
                                                                             **options))
    with torch.no_grad():
        expected = classifier(clips).numpy()
        run = WRITERS[fmt](classifier, clips[:2], str(tmp_path / "model"))  # traced on 2, run on all
        got = run(clips)
    assert got.shape == expected.shape == (len(clips), 4)
    assert np.abs(got - expected).max() < TOLERANCE


def test_the_export_only_layers_compute_what_they_replace(clips):
    """The DFT-convolution STFT and the sliced adaptive pools against torchaudio's and PyTorch's."""
    spectrograms = [create_frontend(kind, 16000) for kind in ("logmel", "stft", "logmel_deltas", "mel96",
                                                              "l3_linear", "l3_mel128", "logmel48")]
    for frontend in spectrograms:
        ready = onnx_ready(frontend)
        assert any(isinstance(m, DFTSpectrogram) for m in ready.modules())
        with torch.no_grad():
            expected, got = frontend(clips), ready(clips)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=1e-3, atol=1e-3 * expected.abs().max().item())
    x = torch.randn(2, 3, 11, 5)
    for pool in (torch.nn.AdaptiveAvgPool2d(7), torch.nn.AdaptiveMaxPool2d((4, 3)), torch.nn.AdaptiveAvgPool2d((1, 2))):
        assert torch.allclose(SlicedAdaptivePool2d(pool)(x), pool(x), atol=1e-6)


# The command line on the tiny run's model -----------------------------------------------------------

LOAD_WITHOUT_SOUNDSWEEP = """
import json, sys
for name in ("soundsweep", "trainables", "torchaudio"):
    sys.modules[name] = None  # importing any of them now fails: the artifact must not need them
import numpy as np
fmt, path, inputs, out = sys.argv[1:]
x = np.load(inputs)
if fmt == "torchscript":
    import torch
    probs = torch.jit.load(path)(torch.from_numpy(x)).numpy()
else:
    import onnxruntime
    (probs,) = onnxruntime.InferenceSession(path).run(None, {"waveform": x})
np.save(out, probs)
"""


@pytest.mark.parametrize("fmt", sorted(WRITERS))
def test_an_exported_model_reproduces_its_test_accuracy_without_soundsweep(fmt, tiny, tmp_path, capsys):
    store, url, model, manifest = tiny
    out = tmp_path / "export"
    assert main(["export", "--model", "tiny", "--format", fmt, "--out", str(out), "--results", url]) == 0
    printed = capsys.readouterr().out
    assert f"model {model.id} (single" in printed and "model_card.md" in printed
    card = json.loads((out / "model_card.json").read_text())
    audio = card["audio"]
    spec = DecodeSpec(audio["sample_rate"], audio["channels"], audio["segment_s"], audio["overlap"], audio["min_fill"],
                      audio["full_clip"], repeat_pad=audio["pad"] == "repeat")
    test = segments(pd.read_csv(manifest), spec, "test")
    np.save(tmp_path / "x.npy", test["waveform"])
    artifact = out / card["artifact"]["file"]
    loaded = python("-c", LOAD_WITHOUT_SOUNDSWEEP, fmt, str(artifact), str(tmp_path / "x.npy"),
                    str(tmp_path / "p.npy"))
    assert loaded.returncode == 0, loaded.stderr
    probs = np.load(tmp_path / "p.npy")
    assert probs.shape == (len(test["waveform"]), len(model.classes))
    # Segments aggregated to clips as the card says: the recorded test accuracy without TTA.
    labels = np.array([model.classes.index(c) for c in pd.read_csv(manifest).set_index("clip_id").loc[
        test["clip_id"], "label"]])
    predictions = Predictions(test["clip_id"].astype(object), labels, probs)
    aggregation = card["clip_aggregation"]["aggregation"]
    key = {"majority_vote": "test_clip_acc", "mean_probability": "test_clip_acc_mean"}[aggregation]
    assert predictions.clip_accuracy(aggregation) == model.metrics["plain"][key]
    assert predictions.segment_accuracy() == pytest.approx(model.metrics["plain"]["test_segment_acc"])
    # The card: what it runs on and how, where it comes from.
    assert card["classes"] == model.classes and card["model"]["id"] == model.id
    assert card["model"]["parameters"] == model.num_params and card["model"]["int8_kb"] > 0
    assert card["artifact"]["input"]["shape"] == ["batch", spec.channels, spec.segment_samples]
    assert card["artifact"]["parity_max_abs_diff"] < TOLERANCE
    assert card["metrics"]["test"]["test_clip_acc"] == model.test_clip_acc
    assert card["metrics"]["per_device_test"] == model.metrics["per_device"]
    assert card["data"]["splits"]["test"]["clips"] == 12
    assert card["training"]["trial_params"] == model.params and card["training"]["search"]["space"] == "augmentation"
    assert card["provenance"]["training"]["code"]["commit"] and card["provenance"]["export"]["versions"]["torch"]
    text = (out / "model_card.md").read_text()
    assert aggregation.replace("_", " ") in text and ", ".join(model.classes) in text


def test_bad_references_formats_and_ensembles_exit_2_in_one_line(tiny, tmp_path, capsys):
    _, url, model, _ = tiny
    copy = tmp_path / "results.db"
    with sqlite3.connect(url.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)  # an ensemble row in a copy: the shared store stays as other tests expect it
    store = ResultsStore(f"sqlite:///{copy}")
    ensemble = store.add_model(model.experiment_id, "ensemble-test", 0, kind="ensemble", sources=[model.id, model.id],
                               params={"method": "mean"}, checkpoint_uri="", num_params=0, val_clip_acc=0.0,
                               test_segment_acc=0.0, test_clip_acc=0.0, classes=model.classes)
    out = str(tmp_path / "out")
    cases = [
        (["--model", "999", "--format", "onnx", "--results", url], "--model 999: no model 999"),
        (["--model", "nope", "--format", "torchscript", "--results", url], "--model nope: not a model id"),
        (["--model", str(model.id), "--format", "tflite", "--results", url], "--format tflite: invalid choice"),
        (["--model", str(ensemble), "--format", "onnx", "--results", f"sqlite:///{copy}"],
         f"model {ensemble} (ensemble of models {model.id}, {model.id}) combines several networks"),
    ]
    for argv, words in cases:
        assert main(["export", *argv, "--out", out]) == 2, argv
        assert words in one_line_error(capsys)


def test_export_help_imports_no_heavy_library():
    text = command_help("export")
    assert "--format {torchscript,onnx}" in text and "model_card.json" in text
