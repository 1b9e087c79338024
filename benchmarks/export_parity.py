"""Exported models against the eager PyTorch model: file size, parity, test accuracy, throughput.

    python -m benchmarks.export_parity                       # the tests' tiny run first: a few minutes here
    python -m benchmarks.export_parity --results URL --model REF [--out FILE] [--repeats 30]

Model: ``--model REF`` of ``--results URL`` (what ``soundsweep export --model`` takes), else the
registered best model of the tests' tiny run (``tests/conftest.py``: ``soundsweep tune --space
augmentation`` with ``TINY``'s flags, experiment ``tiny``), run first into ``--work`` (default: a
new temporary folder) with its own local Ray, which is shut down before anything is measured.

The model is exported with ``soundsweep export``'s code (:func:`soundsweep.export.export`, which
also runs its own noise check) in both formats into a temporary folder; the three sides are then:
``eager``, the PyTorch model and its front-end as the export traces them
(:class:`trainables.exportable.Classifier`); ``torchscript``, ``model.pt`` through
``torch.jit.load``; ``onnx``, ``model.onnx`` in an onnxruntime CPU session.

Every side scores the same segments: the model's own test clips, decoded and cut as training cut
them (``tests/test_export.py``'s ``segments``), in batches of ``--batch`` segments, each batch a
float32 tensor in, probabilities out as numpy. Figures per side:

``kb``
    The file's size (``eager``: the classifier's ``state_dict`` saved with ``torch.save``, weights
    only: running it needs SoundSweep's code).
``max_abs_prob_diff``
    The largest absolute difference of any segment's probability from the eager model's.
``test_clip_acc``, ``test_segment_acc``
    Test clip accuracy with the registered clip aggregation and no TTA (and segment accuracy);
    the store's recorded no-TTA figures (``metrics["plain"]``) are written beside them.
``segments_per_s``, ``ratio_vs_eager``
    Segments over the seconds of one pass over all of them (the first pass, which gives the
    probabilities above, is a warm-up and not timed), the median of ``--repeats`` timed passes;
    the passes of the three sides are interleaved (the order rotates), so a change in the shared
    machine's load hits every side alike; ratio: the side's median over eager's, same run.
    Torch and onnxruntime both get ``--threads`` intra-op threads (default 1: on a shared 2-core
    machine spinning OpenMP threads distort a second one's figure).

Also written: ``command``, ``commit``, ``machine`` (CPUs, versions, load averages at start and
end), ``settings`` and the model's description.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import ray
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.cli_startup import commit  # noqa: E402
from benchmarks.search_efficiency import machine  # noqa: E402
from soundsweep.experiment.data import experiment_manifest  # noqa: E402
from soundsweep.export import ARTIFACTS, export  # noqa: E402
from soundsweep.predict import resolve  # noqa: E402
from soundsweep.results import ResultsStore  # noqa: E402
from tests.conftest import TINY, run_tiny_experiment  # noqa: E402
from tests.test_export import segments  # noqa: E402
from trainables.evaluate import Predictions  # noqa: E402
from trainables.exportable import Classifier  # noqa: E402
from trainables.model_io import EVAL_BATCH  # noqa: E402

SIDES = ("eager", "torchscript", "onnx")
PLAIN_KEY = {"majority_vote": "test_clip_acc", "mean_probability": "test_clip_acc_mean"}
"""The store's no-TTA test clip accuracy (``metrics["plain"]``) of each clip aggregation."""


def tiny_model(work: str) -> tuple[str, str]:
    """``(results URL, "tiny")``: the tests' tiny run, in a local Ray of its own, into ``work``."""
    os.environ.setdefault("SOUNDSWEEP_CACHE", os.path.join(work, "cache"))
    ray.init(address="local", num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False,
             logging_level="WARNING", log_to_driver=False)
    code, url = run_tiny_experiment(Path(work))
    ray.shutdown()  # our own instance only; nothing of Ray runs while the sides are timed
    if code != 0:
        raise SystemExit(f"the tiny tune run exited {code}")
    return url, "tiny"


def model_test_segments(predictor) -> tuple[torch.Tensor, Predictions]:
    """The model's test clips decoded and cut as training cut them, and their labels (probabilities to fill)."""
    (member,) = predictor.members
    manifest = experiment_manifest(member.experiment.cfg)
    test = segments(manifest, predictor.spec, "test")
    label = {str(c): lab for c, lab in zip(manifest["clip_id"], manifest["label"])}
    labels = np.array([predictor.classes.index(str(label[c])) for c in test["clip_id"]])
    return torch.from_numpy(test["waveform"]), Predictions(test["clip_id"].astype(object), labels, None)


def sides(predictor, ref: str, folder: str, threads: int) -> tuple[dict, dict, dict]:
    """``(runners, files, export cards)``: each side as a function from a batch to probabilities."""
    model, frontend = predictor.networks[0].load()
    classifier = Classifier(frontend, model).eval()
    files = {"eager": os.path.join(folder, "state_dict.pt")}
    torch.save(classifier.state_dict(), files["eager"])
    cards = {}
    for fmt in ARTIFACTS:
        cards[fmt] = export(predictor, ref, fmt, os.path.join(folder, fmt))
        files[fmt] = os.path.join(folder, fmt, ARTIFACTS[fmt])
    scripted = torch.jit.load(files["torchscript"])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(files["onnx"], options, providers=["CPUExecutionProvider"])
    runners = {"eager": lambda x: classifier(x).numpy(), "torchscript": lambda x: scripted(x).numpy(),
               "onnx": lambda x: session.run(None, {"waveform": x.numpy()})[0]}
    return runners, files, cards


def one_pass(run, batches: list[torch.Tensor]) -> tuple[np.ndarray, float]:
    """Every batch through ``run``: ``(probabilities, seconds)``."""
    started = time.perf_counter()
    with torch.no_grad():
        probs = np.concatenate([run(batch) for batch in batches])
    return probs, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "export_parity.json"),
                        help="JSON file to write (default %(default)s)")
    parser.add_argument("--results", default=None, help="results store holding --model (default: the tiny run's)")
    parser.add_argument("--model", default=None, help="model id, experiment or checkpoint (with --results)")
    parser.add_argument("--work", default=None, help="folder for the tiny run (default: a new temporary folder)")
    parser.add_argument("--batch", type=int, default=EVAL_BATCH, help="segments per batch (default %(default)s, "
                                                                      "evaluation's)")
    parser.add_argument("--repeats", type=int, default=30, help="timed passes per side (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of torch and onnxruntime "
                                                               "(default %(default)s)")
    args = parser.parse_args(argv)
    if (args.model is None) != (args.results is None):
        parser.error("--model and --results go together (neither: the tiny run's model)")
    if args.batch < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--batch, --repeats and --threads must be at least 1")
    started = time.perf_counter()
    out = {"command": " ".join(["python -m benchmarks.export_parity", *(argv if argv is not None else sys.argv[1:])]),
           "commit": commit("HEAD"), "machine": machine()}
    if args.model:
        url, ref, tune = args.results, args.model, None
    else:
        work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="soundsweep-export-parity-"))
        os.makedirs(work, exist_ok=True)
        print(f"tiny run into {work} ...", flush=True)
        url, ref = tiny_model(work)
        tune = ["soundsweep", "tune", "--space", "augmentation", *TINY, "--name", "tiny"]
    predictor = resolve(ResultsStore(url, must_exist=True), ref, tta=1)
    torch.set_num_threads(args.threads)
    waveform, truth = model_test_segments(predictor)
    batches = list(torch.split(waveform, args.batch))
    row = predictor.row
    plain = (row.metrics or {}).get("plain", {})
    out["settings"] = {"model": ref, "results": url, "tune": tune, "batch": args.batch, "repeats": args.repeats,
                       "threads": args.threads, "segments": len(waveform), "test_clips": len(set(truth.clip_ids)),
                       "aggregation": predictor.aggregation, "tta_views": 1,
                       "segment": {"samples": predictor.spec.segment_samples, "seconds": predictor.spec.segment_s,
                                   "sample_rate": predictor.spec.sample_rate, "channels": predictor.spec.channels}}
    out["model"] = {"id": row.id, "description": predictor.description, "arch": row.params.get("arch"),
                    "parameters": row.num_params, "classes": predictor.classes}
    out["store_no_tta"] = {"test_clip_acc": plain.get(PLAIN_KEY[predictor.aggregation]),
                           "test_segment_acc": plain.get("test_segment_acc")}

    with tempfile.TemporaryDirectory(prefix="export-parity-") as folder:
        runners, files, cards = sides(predictor, ref, folder, args.threads)
        probs = {side: one_pass(runners[side], batches)[0] for side in SIDES}  # warm-up, and the figures' outputs
        seconds: dict[str, list[float]] = {side: [] for side in SIDES}
        for r in range(args.repeats):
            for side in SIDES[r % 3:] + SIDES[:r % 3]:
                seconds[side].append(one_pass(runners[side], batches)[1])
        figures = {}
        for side in SIDES:
            scored = Predictions(truth.clip_ids, truth.labels, probs[side])
            rates = [len(waveform) / s for s in seconds[side]]
            figures[side] = {
                "file": os.path.basename(files[side]), "kb": os.path.getsize(files[side]) / 1024,
                "max_abs_prob_diff": float(np.abs(probs[side] - probs["eager"]).max()),
                "test_clip_acc": scored.clip_accuracy(predictor.aggregation),
                "test_segment_acc": scored.segment_accuracy(),
                "segments_per_s": statistics.median(rates), "runs_segments_per_s": rates,
                **({"export_check_diff": cards[side]["artifact"]["parity_max_abs_diff"]} if side in cards else {}),
            }
        for side in SIDES:
            figures[side]["ratio_vs_eager"] = figures[side]["segments_per_s"] / figures["eager"]["segments_per_s"]
    out["sides"] = figures
    out["machine"]["load_average_at_end"] = os.getloadavg()
    out["wall_s"] = time.perf_counter() - started
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    for side, f in figures.items():
        print(f"{side:<12} {f['kb']:>9,.0f} KB  diff {f['max_abs_prob_diff']:.2g}  clip acc {f['test_clip_acc']:.3f}  "
              f"{f['segments_per_s']:.1f} segments/s ({f['ratio_vs_eager']:.2f}x eager)")
    print(f"store's no-TTA test clip accuracy {out['store_no_tta']['test_clip_acc']}; wrote {args.out}")


if __name__ == "__main__":
    main()
