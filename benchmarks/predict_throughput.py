"""Batch inference: ``soundsweep predict``'s Ray Data pipeline against a bare single-process loop.

    python -m benchmarks.predict_throughput --out predict.json [--clips 200] [--clip-seconds 6] [--cpus 2]
                                            [--results URL --model REF]

Both sides do the same work for every clip, with the same functions: decode, mix and resample
it and cut its segments (:func:`trainables.inference.decode_clips`), score the segments with the
model (:class:`trainables.inference.SegmentScorer`, which loads the model; the bare loop calls
both through :class:`trainables.inference.ClipScorer`), aggregate the clip and write its row
(:class:`soundsweep.predict.ClipCollector`, :class:`soundsweep.predict.RowWriter`, to /dev/null).
The bare loop does it clip after clip in this process; the pipeline is
:func:`soundsweep.predict.label_clips` (decode tasks, then ``--workers`` model actors, default
``--cpus // 2``) in a local Ray of ``--cpus`` CPUs started beforehand. Both spans start before
the model is loaded and end when the last row is written; the labels of the two runs are compared.
Ray runs each model actor with one torch thread (``OMP_NUM_THREADS`` = its one CPU); the bare loop
gets ``--bare-threads`` (default 1, the same): on this shared 2-core machine two threads made
the loop's CPU time per clip 13x larger (OpenMP threads spinning while other work held a core).

Corpus: ``--clips`` clips of ``--clip-seconds`` seconds, half FLAC at 44.1 kHz stereo, half WAV at
16 kHz mono (a few tones plus noise), generated into ``<cache>/bench/predict-<clips>-<seconds>s``.
Model: ``--model REF`` of ``--results URL``, else the best model of a one-trial, one-epoch tune on
the embedded synthetic set (the default architecture, resnet2d), run first into a temporary store.

Figures written (JSON): ``bare_clips_per_s`` and ``ray_clips_per_s`` over the whole span and
``ratio`` (Ray / bare); ``*_first_row_s``, when the first row was written (start-up: for Ray, worker
processes, imports and model loading in the actor); ``*_cpu_ms_per_clip``, CPU of this process and
all its descendants, Ray's included (``benchmarks.data_pipeline.Measure``): what the machine's
other load does not change; ``same_labels``, whether both runs gave every clip the same label.
"""
import argparse
import json
import os
import platform as stdlib_platform  # run from the repo root: the stdlib module either way
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import ray
import soundfile
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.data_pipeline import Measure  # noqa: E402
from soundsweep.catalog import cache_root  # noqa: E402
from soundsweep.cli import main as soundsweep  # noqa: E402
from soundsweep.predict import ClipCollector, RowWriter, label_clips, read_inputs, resolve  # noqa: E402
from soundsweep.results import ResultsStore  # noqa: E402
from trainables.inference import ClipScorer  # noqa: E402


def corpus(clips: int, seconds: float) -> str:
    """The folder of the benchmark's clips, generated on first use (files appear whole)."""
    root = os.path.join(cache_root(), "bench", f"predict-{clips}-{seconds:g}s")
    os.makedirs(root, exist_ok=True)
    for i in range(clips):
        stereo = i % 2 == 0
        rate, ext = (44100, "flac") if stereo else (16000, "wav")
        path = os.path.join(root, f"clip{i:05d}.{ext}")
        if os.path.exists(path):
            continue
        rng = np.random.default_rng(i)
        t = np.arange(int(seconds * rate)) / rate
        base = 110.0 * 2 ** (rng.integers(0, 12) / 12)
        x = sum(np.sin(2 * np.pi * base * k * t) / k for k in (1, 2, 3)) * 0.2 + 0.02 * rng.standard_normal(len(t))
        soundfile.write(f"{path}.tmp.{ext}", np.stack([x, np.roll(x, 441)], 1) if stereo else x, rate)
        os.rename(f"{path}.tmp.{ext}", path)
    return root


def trained_model(root: str) -> tuple[str, str]:
    """``(results URL, model id)`` of a one-trial, one-epoch tune on the synthetic set."""
    url = f"sqlite:///{root}/results.db"
    code = soundsweep(["tune", "--num-samples", "1", "--max-epochs", "1", "--synthetic-clips", "10",
                       "--scheduler", "fifo", "--tta-views", "1", "--results", url,
                       "--storage-path", os.path.join(root, "runs"), "--name", "bench"])
    assert code == 0, "the benchmark's tune run failed"
    return url, "bench"


class Timed:
    """Writes rows to /dev/null, keeps each clip's label and notes when the first row came."""

    def __init__(self, predictor, top_k: int = 3):
        self.stream = open(os.devnull, "w")
        self.writer = RowWriter(self.stream, "csv", top_k, False, False)
        self.started, self.first = time.perf_counter(), None
        self.labels: dict[str, str] = {}

    def write(self, row: dict) -> None:
        self.writer.write(row)
        self.labels[row["path"]] = row["label"]
        self.first = self.first or time.perf_counter()


def bare(predictor, clips: pd.DataFrame) -> tuple[Measure, Timed, ClipCollector]:
    """The single-process loop: load the model, then decode, score, aggregate and write clip by clip."""
    timed = Timed(predictor)
    with Measure() as measured:
        scorer = ClipScorer(predictor.networks, predictor.spec)
        collector = ClipCollector(predictor, clips)
        for path, clip_id in zip(clips["path"], clips["clip_id"]):
            for row in collector.add(scorer(path, clip_id)):
                timed.write(row)
    return measured, timed, collector


def pipeline(predictor, clips: pd.DataFrame, workers: int) -> tuple[Measure, Timed, ClipCollector]:
    """``soundsweep predict``'s pipeline (:func:`~soundsweep.predict.label_clips`)."""
    timed = Timed(predictor)
    with Measure() as measured:
        collector = ClipCollector(predictor, clips)
        for row in label_clips(predictor, clips, collector, workers):
            timed.write(row)
    return measured, timed, collector


def figures(name: str, measured: Measure, timed: Timed, collector: ClipCollector, clips: int) -> dict:
    assert collector.outcome.labelled == clips and not collector.outcome.skipped, collector.outcome.skipped[:3]
    return {f"{name}_s": measured.wall, f"{name}_clips_per_s": clips / measured.wall,
            f"{name}_first_row_s": timed.first - timed.started, f"{name}_cpu_ms_per_clip": 1000 * measured.cpu / clips}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--clip-seconds", type=float, default=6.0)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--workers", type=int, default=None, help="model actors (default --cpus // 2)")
    parser.add_argument("--bare-threads", type=int, default=1, help="torch threads of the bare loop (default 1)")
    parser.add_argument("--results", default=None, help="results store holding --model (default: train one)")
    parser.add_argument("--model", default=None, help="model id, experiment or checkpoint (with --results)")
    args = parser.parse_args()
    workers = args.workers or max(1, args.cpus // 2)
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "WARNING")
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING",
             runtime_env={"env_vars": {"RAY_DATA_LOG_LEVEL": "WARNING"}})
    ray.data.DataContext.get_current().enable_progress_bars = False
    url, ref = (args.results, args.model) if args.model else trained_model(tempfile.mkdtemp(prefix="predict-bench-"))
    predictor = resolve(ResultsStore(url, must_exist=True), ref)
    clips = read_inputs([corpus(args.clips, args.clip_seconds)])

    threads = torch.get_num_threads()
    torch.set_num_threads(args.bare_threads)
    bare_run = bare(predictor, clips)
    torch.set_num_threads(threads)
    ray_run = pipeline(predictor, clips, workers)
    result = {
        "machine": f"{stdlib_platform.machine()}, {os.cpu_count()} cores", "ray_cpus": args.cpus, "workers": workers,
        "bare_threads": args.bare_threads, "clips": args.clips, "clip_seconds": args.clip_seconds,
        "model": predictor.description,
        "tta_views": predictor.views, "aggregation": predictor.aggregation,
        "segment_s": predictor.spec.segment_s, "sample_rate": predictor.spec.sample_rate,
        **figures("bare", *bare_run, args.clips), **figures("ray", *ray_run, args.clips),
        "same_labels": bare_run[1].labels == ray_run[1].labels,
    }
    result["ratio"] = result["ray_clips_per_s"] / result["bare_clips_per_s"]
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
