"""``soundsweep export --model REF --format torchscript|onnx --out DIR``: a stored model as one file
that runs without SoundSweep, plus its model card.

REF is what ``soundsweep predict --model`` takes (a model id, an experiment name for its
registered best model, or a checkpoint folder / URI), resolved by the same function
(:func:`soundsweep.predict.resolve`). DIR receives:

- ``model.pt`` (TorchScript, ``torch.jit.load``) or ``model.onnx`` (ONNX opset 17, onnxruntime):
  one graph from a ``(batch, channels, samples)`` float32 waveform batch, ``samples`` one segment
  at the model's sample rate, to ``(batch, classes)`` softmax probabilities. The front-end
  (log-mel, STFT, ...) is inside the graph; for ONNX its STFT and adaptive pools are export-only
  equivalents (:mod:`trainables.exportable`). Test-time augmentation is not in the graph: the
  artifact scores one view, as ``predict --tta 1`` does.
- ``model_card.json`` and ``model_card.md``: classes, decoding and segmenting, the registered clip
  aggregation, data and splits, metrics, size, the search and recipe that made the model, the
  versions and code of training and of the export, and how to call the artifact.

Before anything is written the artifact is run on a check batch of another batch size than the
one it was traced with, and its probabilities are compared with the eager model's; the card
records the largest difference. Trained and int8-quantized models export; an ensemble or a
two-stage model (several networks) and a model whose graph cannot be traced or differs from the
eager model are refused in one line (exit 2).
"""
import importlib.util
import json
import os
import re
import warnings

import numpy as np
import torch

from soundsweep.errors import UsageError
from soundsweep.predict import Predictor, resolve
from soundsweep.provenance import collect
from soundsweep.results import ResultsStore
from trainables.exportable import Classifier, onnx_ready
from trainables.model_io import model_cost

ARTIFACTS = {"torchscript": "model.pt", "onnx": "model.onnx"}
"""The artifact's file name per ``--format``."""
TOLERANCE = 1e-4
"""Largest difference allowed between the artifact's and the eager model's probabilities."""
TRACE_BATCH, CHECK_BATCH = 2, 3
"""Segments traced with and segments checked with: unequal, so a batch size baked into the graph fails the check."""
OPSET = 17


def check_batch(predictor: Predictor, batch: int) -> torch.Tensor:
    """``batch`` segments of seeded noise in the artifact's input shape (what is traced and checked)."""
    spec = predictor.spec
    generator = torch.Generator().manual_seed(batch)
    return 0.1 * torch.randn(batch, spec.channels, spec.segment_samples, generator=generator)


def write_torchscript(classifier: Classifier, example: torch.Tensor, path: str):
    """Trace ``classifier`` to ``path``; return a function running the saved file."""
    traced = torch.jit.trace(classifier, example, check_trace=False)
    torch.jit.save(traced, path)
    loaded = torch.jit.load(path)
    return lambda x: loaded(x).numpy()


def write_onnx(classifier: Classifier, example: torch.Tensor, path: str):
    """Export ``classifier`` (its complex STFT and adaptive pools replaced) to ``path`` with a
    variable batch size; return a function running the saved file in onnxruntime."""
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"--format onnx needs {' and '.join(missing)}: pip install 'soundsweep[export]'")
    import onnxruntime

    torch.onnx.export(onnx_ready(classifier), (example,), path, dynamo=False, opset_version=OPSET,
                      input_names=["waveform"], output_names=["probabilities"],
                      dynamic_axes={"waveform": {0: "batch"}, "probabilities": {0: "batch"}})
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"waveform": x.numpy()})[0]


WRITERS = {"torchscript": write_torchscript, "onnx": write_onnx}


def export(predictor: Predictor, ref: str, fmt: str, out: str) -> dict:
    """Write ``predictor``'s single network as a ``fmt`` artifact and its card into ``out``; return the card."""
    row = predictor.row
    if len(predictor.members) != 1:
        members = ", ".join(str(m.row.id) for m in predictor.members)
        raise UsageError(f"--model {ref}: model {row.id} ({row.kind.replace('_', '-')} of models {members}) combines "
                         "several networks, which one artifact does not hold; export each member (--model ID) and "
                         "combine their probabilities as that model does")
    model, frontend = predictor.networks[0].load()
    classifier = Classifier(frontend, model)
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, ARTIFACTS[fmt])
    example, check = check_batch(predictor, TRACE_BATCH), check_batch(predictor, CHECK_BATCH)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on Python values it freezes into the graph
            expected = classifier(check).numpy()
            run_artifact = WRITERS[fmt](classifier, example, path)
            difference = float(np.abs(run_artifact(check) - expected).max())
    except UsageError:
        raise
    except Exception as exc:  # tracing or exporting failed: the model's code has no graph in this format
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(f"--model {ref}: {predictor.description} cannot be exported to {fmt}: {reason}") from exc
    if not difference <= TOLERANCE:
        raise UsageError(f"--model {ref}: the {fmt} graph's probabilities differ from the model's by {difference:.2g} "
                         f"(over {TOLERANCE:g}); this model cannot be exported to {fmt}")
    card = model_card(predictor, fmt, path, difference)
    with open(os.path.join(out, "model_card.json"), "w", encoding="utf-8") as f:
        json.dump(card, f, indent=1)
        f.write("\n")
    with open(os.path.join(out, "model_card.md"), "w", encoding="utf-8") as f:
        f.write(card_markdown(card))
    return card


# The card -------------------------------------------------------------------------------------------

def split_counts(data_line: str) -> dict:
    """``{split: {"clips": n, "segments": n}}`` from the data line an experiment's summary records
    (:meth:`~soundsweep.prepare.PreparedData.describe`)."""
    return {split: {"clips": int(clips), "segments": int(segments)}
            for split, clips, segments in re.findall(r"(\w+) (\d+) clips / (\d+) segments", data_line)}


def per_class(classes: list[str], confusion: list[list[int]]) -> dict:
    """Test clips, recall and precision per class from a clip confusion matrix (rows: true class)."""
    matrix = np.asarray(confusion, dtype=np.int64)
    if matrix.shape != (len(classes), len(classes)):
        return {}
    out = {}
    for i, name in enumerate(classes):
        clips, predicted, correct = int(matrix[i].sum()), int(matrix[:, i].sum()), int(matrix[i, i])
        out[name] = {"clips": clips, "recall": correct / clips if clips else None,
                     "precision": correct / predicted if predicted else None}
    return out


def model_card(predictor: Predictor, fmt: str, path: str, difference: float) -> dict:
    """The card's facts (``model_card.json``): everything needed to use, judge and trace the artifact."""
    row, (member,) = predictor.row, predictor.members
    experiment, spec = member.experiment.row, predictor.spec
    metrics = row.metrics or {}
    config = {k: v for k, v in experiment.config.items() if k != "config_yaml"}  # the same settings as YAML
    cost = model_cost(member.trial_config())
    evaluation = metrics.get("evaluation", {})
    exported = collect()
    return {
        "model": {"id": row.id, "kind": row.kind, "arch": row.params.get("arch"), "width": row.params.get("width"),
                  "experiment": experiment.name, "trial": row.trial_id, "epoch": row.epoch,
                  "checkpoint": row.checkpoint_uri, "parameters": cost["num_params"],
                  "int8_kb": round(cost["int8_kb"], 1), "description": predictor.description},
        "artifact": {
            "format": fmt, "file": os.path.basename(path), "bytes": os.path.getsize(path),
            "input": {"name": "waveform", "dtype": "float32", "shape": ["batch", spec.channels, spec.segment_samples],
                      "meaning": f"segments of {spec.segment_s:g} s at {spec.sample_rate} Hz, {spec.channels} "
                                 "channel(s), samples in [-1, 1] as decoded"},
            "output": {"name": "probabilities", "dtype": "float32", "shape": ["batch", len(predictor.classes)],
                       "meaning": "softmax probabilities of the classes, in the order of 'classes'"},
            "front_end": "inside the graph" + (" (STFT as a DFT convolution, adaptive pools as slices)"
                                               if fmt == "onnx" else ""),
            "parity_max_abs_diff": difference,
            "parity_check": f"{CHECK_BATCH} segments of seeded noise, traced with {TRACE_BATCH}: the artifact's "
                            "probabilities against the eager PyTorch model's",
        },
        "classes": predictor.classes,
        "audio": {"sample_rate": spec.sample_rate, "channels": spec.channels, "segment_s": spec.segment_s,
                  "segment_samples": spec.segment_samples, "hop_samples": spec.hop_samples,
                  "overlap": spec.overlap, "full_clip": spec.full_clip,
                  "min_fill": spec.min_fill, "pad": "repeat" if spec.repeat_pad else "zero",
                  "how": "decode, mix to the channel count, resample to sample_rate; cut windows of segment_samples "
                         "every hop_samples (a full-clip model: one segment, the clip's start); a clip shorter than one segment "
                         "is padded at its end, a shorter tail is dropped (a clip under min_fill segments is not used)"},
        "clip_aggregation": {
            "aggregation": predictor.aggregation,
            "how": ("the class most segments rank first (argmax), ties broken by the larger summed probability"
                    if predictor.aggregation == "majority_vote" else
                    "the argmax of the mean of the clip's segment probabilities"),
            "clip_probabilities": "the mean of the segment probabilities",
            "registered_tta_views": evaluation.get("views", 1),
            "tta": "not in the graph: the registered test figures used the TTA views named here; one view is what "
                   "soundsweep predict --tta 1 computes",
        },
        "data": {
            "dataset": experiment.dataset, "source": {k: config.get(k) for k in (
                "data", "dataset", "synthetic_clips", "subset", "split_dir", "test_fold", "val_fraction")},
            "splits": split_counts(experiment.summary.get("data", "")), "summary": experiment.summary.get("data"),
            "fold": metrics.get("fold"),
        },
        "metrics": {
            "test": {k: metrics[k] for k in ("test_segment_acc", "test_clip_acc", "test_clip_acc_mean", "test_loss")
                     if k in metrics},
            "validation": {k: metrics[k] for k in ("val_segment_acc", "val_clip_acc", "val_clip_acc_mean")
                           if k in metrics},
            "test_without_tta": metrics.get("plain"),
            "per_class_test": per_class(predictor.classes, row.confusion or []),
            "per_device_test": metrics.get("per_device"),
        },
        "training": {"trial_params": row.params, "search": {k: config.get(k) for k in (
            "space", "search", "num_samples", "max_epochs", "scheduler", "fidelity", "objective", "recipe", "overrides",
            "folds", "repeats", "seed")}, "experiment_config": config},
        "provenance": {"training": (experiment.provenance or [None])[-1],
                       "export": {"versions": exported["versions"], "code": exported["code"],
                                  "collected_at": exported["collected_at"]}},
    }


def card_markdown(card: dict) -> str:
    """``model_card.md``: the card's facts for a reader, with how to call the artifact."""
    m, a, audio, clip, data, metrics = (card[k] for k in ("model", "artifact", "audio", "clip_aggregation", "data",
                                                          "metrics"))
    shape = ", ".join(map(str, a["input"]["shape"]))
    if a["format"] == "torchscript":
        call = ("import torch\n"
                f"model = torch.jit.load(\"{a['file']}\")\n"
                f"probabilities = model(waveform)  # waveform: torch.float32 [{shape}]")
    else:
        call = ("import onnxruntime\n"
                f"session = onnxruntime.InferenceSession(\"{a['file']}\")\n"
                f"(probabilities,) = session.run(None, {{\"waveform\": waveform}})  # numpy float32 [{shape}]")
    test = metrics["test"]
    which = f"model {m['id']}" if m["id"] is not None else "a checkpoint the store does not register"
    lines = [
        f"# Model card: {m['arch']} ({which}, experiment {m['experiment']})", "",
        f"{m['description']}.", "",
        "## Use", "",
        f"`{a['file']}` ({a['format']}, {a['bytes'] / 1024:.0f} KB) maps a float32 waveform batch "
        f"`[{shape}]` ({a['input']['meaning']}) to softmax probabilities `[batch, {len(card['classes'])}]` over "
        f"the classes below; the front-end is {a['front_end']}.", "",
        "```python", call, "```", "",
        f"Cut a clip as training did: {audio['segment_samples']}-sample ({audio['segment_s']:g} s) segments every "
        f"{audio['hop_samples']} samples at {audio['sample_rate']} Hz, {audio['channels']} channel(s), {audio['pad']}-padded "
        f"({'one segment per clip' if audio['full_clip'] else 'windows'}). Clip label: "
        f"**{clip['aggregation'].replace('_', ' ')}** ({clip['how']}); clip probabilities: "
        f"{clip['clip_probabilities']}. Test-time augmentation ({clip['registered_tta_views']} view(s) registered) "
        "is not in the graph.", "",
        f"Parity: largest difference from the PyTorch model {a['parity_max_abs_diff']:.2g} ({a['parity_check']}).", "",
        "## Classes", "", ", ".join(card["classes"]), "",
        "## Data", "",
        f"Dataset `{data['dataset']}`; {data['summary'] or 'no data summary recorded'}.", "",
        "## Metrics", "",
        "| split | figure | value |", "|---|---|---|",
        *[f"| test | {k} | {v:.4f} |" for k, v in test.items()],
        *[f"| validation | {k} | {v:.4f} |" for k, v in metrics["validation"].items()],
        "",
    ]
    if metrics["per_class_test"]:
        lines += ["| class | test clips | recall | precision |", "|---|---|---|---|",
                  *[f"| {c} | {f['clips']} | {_figure(f['recall'])} | {_figure(f['precision'])} |"
                    for c, f in metrics["per_class_test"].items()], ""]
    if metrics["per_device_test"]:
        lines += ["| device | test clips | correct |", "|---|---|---|",
                  *[f"| {d} | {f['clips']} | {f['correct']} |" for d, f in metrics["per_device_test"].items()], ""]
    search = card["training"]["search"]
    training, exported = card["provenance"]["training"] or {}, card["provenance"]["export"]
    lines += [
        "## Model and training", "",
        f"{m['parameters']:,} parameters, {m['int8_kb']} KB as int8 weights; trial {m['trial']} epoch {m['epoch']}.", "",
        f"Search: space `{search['space']}`, {search['search']} with {search['num_samples']} sample(s), "
        f"{search['scheduler']} scheduler, up to {search['max_epochs']} epochs, recipe `{search['recipe']}`, "
        f"seed {search['seed']}. Trial parameters:", "",
        "```json", json.dumps(card["training"]["trial_params"], indent=1), "```", "",
        "## Provenance", "",
        f"Trained with {_versions(training.get('versions'))} at commit {_commit(training.get('code'))}; exported with "
        f"{_versions(exported['versions'])} at commit {_commit(exported['code'])}. Every fact: `model_card.json`.", "",
    ]
    return "\n".join(lines)


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _versions(versions: dict | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items()) if versions else "unrecorded versions"


def _commit(code: dict | None) -> str:
    if not code:
        return "unknown"
    return f"{code['commit']}" + (" (with uncommitted changes)" if code.get("dirty") is True else "")


def run(args) -> dict:
    """``soundsweep export``: resolve the model as ``predict`` does, write the artifact and its card."""
    store = ResultsStore(args.results, must_exist=True)
    card = export(resolve(store, args.model, args.experiment, tta=1), args.model, args.format, args.out)
    a = card["artifact"]
    print(f"export: {card['model']['description']}")
    print(f"wrote {os.path.join(args.out, a['file'])} ({a['format']}, {a['bytes'] / 1024:.0f} KB): "
          f"[{', '.join(map(str, a['input']['shape']))}] waveform -> [batch, {len(card['classes'])}] probabilities; "
          f"largest difference from the PyTorch model {a['parity_max_abs_diff']:.2g}")
    print(f"card: {os.path.join(args.out, 'model_card.md')} and model_card.json "
          f"(clip aggregation: {card['clip_aggregation']['aggregation'].replace('_', ' ')})")
    return card
