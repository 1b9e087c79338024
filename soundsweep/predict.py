"""``soundsweep predict --model REF INPUT...``: label audio with a stored model, at any scale.

The model (REF) is a model id of the results store, an experiment name (its registered best
model) or a checkpoint folder / URI (the trial epoch that saved it, found in the store; or, with
``--experiment NAME``, a checkpoint from elsewhere read with that experiment's data settings).
Trained, quantized (int8), ensemble and two-stage models are supported; a probe's MLP is not (it
classifies a front-end's 1 s embeddings, not segments) and is refused in one line.

Each clip goes through what the model's own test clips went through: decoded, mixed and
resampled, cut into segments and padded exactly as training did
(:func:`~trainables.inference.decode_clips`), scored with the same test-time augmentation and
aggregated per clip the way the registered model was evaluated (``metrics["evaluation"]``:
chosen on validation). On its own test clips a model therefore reproduces the test clip
accuracy the store recorded. INPUT is audio files, folders (searched recursively) or manifest
CSVs (``path[,label][,split][,clip_id]``).

The clips run through Ray Data: decode tasks, then a pool of actors that each load the model
once (``--workers``, ``--gpus-per-worker``), so the same command labels a million clips on a
cluster. Rows stream out as clips finish (CSV or JSON lines); a file that cannot be used is
listed and skipped. Progress, notes, throughput and, for labelled input, accuracy and the
confusion matrix go to stderr.
"""
import contextlib
import csv
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from soundsweep.catalog._manifest import AUDIO_EXTENSIONS, clip_ids
from soundsweep.catalog.generic import read_manifest_csv
from soundsweep.derived.ensemble import Stacker, average
from soundsweep.derived.stored import StoredExperiment, StoredModel, best_model, find_experiment, find_model
from soundsweep.derived.two_stage import fused_probabilities, parent_index
from soundsweep.errors import UsageError
from soundsweep.progress import Progress
from soundsweep.results import ResultsStore
from soundsweep.results.store import Model
from trainables.audio import DecodeSpec
from trainables.evaluate import TTA, Predictions
from trainables.inference import Network

CLIPS_PER_BLOCK = 32
"""Clips one decode task takes at a time: enough work per task, small blocks, steady progress."""
MAX_NOTES = 20
"""Padding notes printed one by one; further ones are counted."""


@dataclass
class Predictor:
    """A stored model ready to label audio: how clips are decoded (``spec``), the networks a
    worker loads, how their per-segment outputs become the model's (``combine``: identity, mean,
    stacking or two-stage fusion) and how segments become a clip (``aggregation``); ``row`` is
    the model's row of the store (``id`` None for an unregistered checkpoint) and ``members``
    the stored models whose networks it loads (``soundsweep export`` describes them)."""

    description: str
    spec: DecodeSpec
    classes: list[str]
    networks: list[Network]
    combine: Callable[[list[Predictions]], Predictions]
    aggregation: str
    views: int
    row: Model | None = None
    members: list[StoredModel] = field(default_factory=list)


def _single(members: list[Predictions]) -> Predictions:
    return members[0]


def resolve(store: ResultsStore, ref: str, experiment: str | None = None, tta: int | None = None) -> Predictor:
    """The :class:`Predictor` of ``--model REF``: a model id, an experiment name or a checkpoint.

    ``tta`` overrides the number of TTA views of every network (1: none). Every network is loaded
    once here, so weights that do not fit their model fail now, in one line, before any work.
    """
    checkpoint = not ref.isdigit() and store.experiment(ref) is None and ("://" in ref or os.path.exists(ref))
    if experiment is not None and not checkpoint:
        raise UsageError(f"--experiment {experiment}: it only names the data of a checkpoint folder; --model {ref} "
                         "is not one, drop --experiment")
    if ref.isdigit():
        row = store.model(int(ref))
        if row is None:
            raise UsageError(f"--model {ref}: no model {ref} in {store.url}; give a model id from the tune summary, "
                             "an experiment name or a checkpoint folder (and the --results that holds it)")
        predictor = _from_row(store, row, tta)
    elif store.experiment(ref) is not None:
        experiment = find_experiment(store, ref, "--model")
        if experiment.row.kept_ensemble is not None:
            predictor = _from_row(store, store.model(experiment.row.kept_ensemble), tta)
        else:
            best = best_model(store, experiment, "--model")
            predictor = _from_row(store, best.row, tta, experiment=best.experiment)
    elif checkpoint:
        predictor = _from_checkpoint(store, ref, experiment, tta)
    else:
        raise UsageError(f"--model {ref}: not a model id, an experiment of {store.url} or a checkpoint folder; "
                         "give one of those (and the --results that holds it)")
    for network in predictor.networks:
        try:
            network.load()
        except Exception as exc:  # ModelConfigError, a missing or unreadable file
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise UsageError(f"--model {ref}: cannot load {network.weights}: {reason}; give the model id or the "
                             "experiment it was trained in") from exc
    return predictor


def _from_row(store: ResultsStore, row: Model, tta: int | None, experiment: StoredExperiment | None = None) -> Predictor:
    """A registered model of any kind: its networks, how they combine, its evaluation."""
    if row.kind in ("single", "quantized"):
        model = StoredModel(row, experiment) if experiment else find_model(store, row.id)
        return _predictor(f"model {row.id} ({row.kind}, {row.params.get('arch', '?')}, trial {row.trial_id} epoch "
                          f"{row.epoch})", [model], _single, row, tta)
    opened: dict[int, StoredExperiment] = {}
    members = [find_model(store, i, opened) for i in row.sources]
    if row.kind == "ensemble":
        method = row.params.get("method")
        if method == "stack":
            stacker = Stacker.from_info(row.metrics["stack"], len(row.classes))
            combine = stacker.predict
        else:
            combine = average
        return _predictor(f"model {row.id} (ensemble, {method} of models {', '.join(map(str, row.sources))})",
                          members, combine, row, tta)
    if row.kind == "two_stage":
        fine, coarse = members
        parent = parent_index(fine.classes, coarse.classes, row.params["hierarchy"])

        def fused(pair: list[Predictions]) -> Predictions:
            first = pair[0]
            return Predictions(first.clip_ids, first.labels, fused_probabilities(first.probs, pair[1].probs, parent),
                               first.keys)

        return _predictor(f"model {row.id} (two-stage: fine model {fine.row.id} x coarse model {coarse.row.id})",
                          members, fused, row, tta)
    raise UsageError(f"--model {row.id} is a {row.kind} model, which classifies a front-end's embeddings, not audio "
                     "segments; give a trained, quantized, ensemble or two-stage model")


def _predictor(description: str, members: list[StoredModel], combine, row: Model, tta: int | None) -> Predictor:
    """The members' networks, with the TTA the row was evaluated with (or ``tta`` views)."""
    views = tta or (row.metrics or {}).get("evaluation", {}).get("views", 1)
    specs = {m.experiment.cfg.decode_spec() for m in members}
    if len(specs) > 1:
        raise UsageError(f"{description}: its members decode audio differently ({len(specs)} settings); "
                         "predict with one member at a time")
    networks = [m.network(TTA(views, seed=m.experiment.cfg.seed) if views > 1 else None) for m in members]
    return Predictor(description, specs.pop(), list(row.classes or members[0].classes), networks, combine,
                     row.aggregation or "majority_vote", views, row, members)


def _spellings(ref: str) -> list[str]:
    """The ways a checkpoint location may be stored: a local path and its ``file://`` URI."""
    if ref.startswith("file://"):
        path = ref[len("file://"):]
        return [ref, path]
    if "://" in ref:
        return [ref]
    path = os.path.abspath(ref).rstrip("/")
    return [path, "file://" + path]


def _from_checkpoint(store: ResultsStore, ref: str, experiment: str | None, tta: int | None) -> Predictor:
    """A checkpoint folder or URI: the registered model or trial epoch that saved it, or, with
    ``experiment``, a checkpoint from elsewhere built with its own settings and that experiment's data."""
    import ray.tune

    from trainables.model_io import load_checkpoint

    try:
        with ray.tune.Checkpoint(ref).as_directory() as directory:
            saved = load_checkpoint(directory)
    except Exception as exc:
        raise UsageError(f"--model {ref}: not a checkpoint folder (no readable checkpoint.pt: "
                         f"{type(exc).__name__}); give a checkpoint, a model id or an experiment name") from exc
    owner = store.checkpoint_owner(_spellings(ref))
    if owner is not None:
        trial, epoch = owner
        registered = [m for m in store.models(trial.experiment_id)
                      if m.kind == "single" and (m.trial_id, m.epoch) == (trial.trial_id, epoch.epoch)]
        if registered:
            return _from_row(store, registered[0], tta)
        exp = StoredExperiment.open(store.experiment_by_id(trial.experiment_id))
        row = Model(id=None, kind="single", params=trial.params, checkpoint_uri=epoch.checkpoint_uri,
                    metrics=epoch.metrics, classes=[], aggregation="majority_vote", trial_id=trial.trial_id,
                    epoch=epoch.epoch)
        where = f"trial {trial.trial_id} epoch {epoch.epoch} of experiment {exp.row.name}"
    elif experiment is not None:
        exp = find_experiment(store, experiment, "--experiment")
        params = saved.get("params") or {"arch": exp.cfg.arch, "width": exp.cfg.width}
        row = Model(id=None, kind="single", params=params, checkpoint_uri=ref, metrics={}, classes=[],
                    aggregation="majority_vote", trial_id="?", epoch=saved.get("epoch", -1))
        where = f"data settings and classes of experiment {exp.row.name}"
    else:
        raise UsageError(f"--model {ref}: no trial of {store.url} saved this checkpoint; give the --results of the "
                         "run that wrote it, or --experiment NAME whose data it was trained on")
    model = StoredModel(row, exp)
    return _predictor(f"checkpoint {ref} ({params_name(row.params)}, {where}; not a registered model: "
                      "majority vote)", [model], _single, row, tta)


def params_name(params: dict) -> str:
    return f"{params.get('arch', '?')}" + (f" w{params['width']}" if params.get("width") else "")


# Inputs ---------------------------------------------------------------------------------------------

def known_labels(clips: pd.DataFrame) -> dict[str, str | None]:
    """Each clip's label (``None`` where the input gives none; pandas may hold those as NaN)."""
    return {c: None if pd.isna(v) else str(v) for c, v in zip(clips["clip_id"], clips["label"])}


def read_inputs(inputs: list[str], split: str | None = None) -> pd.DataFrame:
    """The clips to label, one row each: ``path``, ``clip_id`` and ``label`` (None when unknown).

    A folder gives every audio file below it (:data:`~soundsweep.catalog._manifest.AUDIO_EXTENSIONS`),
    sorted; a ``.csv`` file is a manifest (``path`` column, optionally ``label``, ``split``,
    ``clip_id``; relative paths from its folder), of which ``split`` keeps one split; anything else
    is a file to decode (a missing or broken one is listed and skipped, as training skips it).
    Clip ids follow the training manifest's rule (:func:`~soundsweep.catalog._manifest.clip_ids`),
    so a test clip gets its test-time augmentation back.
    """
    tables = []
    for item in inputs:
        if item.lower().endswith(".csv") and os.path.isfile(item):
            table = read_manifest_csv(item, required=("path",), flag="INPUT")
            if split is not None:
                if "split" not in table:
                    raise UsageError(f"--split {split}: manifest {item} has no split column; drop --split")
                table = table[table["split"].astype(str) == split]
        elif os.path.isdir(item):
            paths = sorted(os.path.join(folder, name) for folder, _, names in os.walk(item) for name in names
                           if name.lower().endswith(AUDIO_EXTENSIONS))
            if not paths:
                raise UsageError(f"INPUT {item}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder or "
                                 "below; give audio files, a folder of them or a manifest CSV")
            table = pd.DataFrame({"path": paths})
        elif item.lower().endswith(".csv"):
            raise UsageError(f"INPUT {item}: no such manifest file; check the path")
        else:
            table = pd.DataFrame({"path": [os.path.abspath(item) if "://" not in item else item]})
        tables.append(table)
    if split is not None and not any(item.lower().endswith(".csv") for item in inputs):
        raise UsageError(f"--split {split}: only a manifest CSV has splits; give one or drop --split")
    clips = pd.concat(tables, ignore_index=True).drop_duplicates("path", ignore_index=True)
    if clips.empty:
        raise UsageError(f"INPUT: no clips to label{f' in split {split}' if split else ''}")
    clips["label"] = [None if pd.isna(v) else str(v) for v in clips["label"]] if "label" in clips else None
    clips["clip_id"] = [str(c) for c in clip_ids(clips)]
    return clips[["path", "clip_id", "label"]]


# Labelling ------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """What a labelling run did: clips labelled and skipped, time, and the accuracy on the clips
    whose label the model knows (``known``; ``correct`` of them, ``confusion`` rows true class)."""

    labelled: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    padded: int = 0
    seconds: float = 0.0
    known: int = 0
    correct: int = 0
    confusion: np.ndarray | None = None
    unknown_labels: set = field(default_factory=set)

    @property
    def accuracy(self) -> float:
        return self.correct / self.known if self.known else float("nan")


class ClipCollector:
    """Turns scored segment rows (:class:`~trainables.inference.SegmentScorer`'s output, in any
    blocks and any order) into one row per finished clip, and keeps the :class:`Outcome`.

    A clip is finished once all its segments (the ``segments`` column) have arrived; the model's
    probabilities per segment are its networks' combined (``predictor.combine``), the clip's label
    comes from ``predictor.aggregation`` and its probabilities are the mean over its segments.
    ``report(kind, text)`` receives ``skipped`` and ``note`` lines.
    """

    def __init__(self, predictor: Predictor, clips: pd.DataFrame, top_k: int = 3, segments: bool = False,
                 report: Callable[[str, str], None] = lambda kind, text: None):
        self.predictor, self.top_k, self.segments, self.report = predictor, min(top_k, len(predictor.classes)), segments, report
        self.paths = dict(zip(clips["clip_id"], clips["path"]))
        self.labels = known_labels(clips)
        self.pending: dict[str, np.ndarray] | None = None
        k = len(predictor.classes)
        self.outcome = Outcome(confusion=np.zeros((k, k), dtype=np.int64))

    def add(self, batch: dict) -> list[dict]:
        """Take one batch of scored segment rows; return the rows of the clips it finished."""
        columns = [c for c in batch if c in ("clip_id", "segment", "label", "error", "seconds", "segments")
                   or c.startswith("probs")]
        rows = {c: np.asarray(batch[c]) for c in columns}
        if self.pending is not None:
            rows = {c: np.concatenate([self.pending[c], rows[c]]) for c in columns}
        ids, inverse, counts = np.unique(rows["clip_id"], return_inverse=True, return_counts=True)
        done = counts[inverse] == rows["segments"]
        self.pending = {c: v[~done] for c, v in rows.items()} if not done.all() else None
        return self._finish({c: v[done] for c, v in rows.items()})

    def _finish(self, rows: dict) -> list[dict]:
        failed = rows["error"] != ""
        for clip_id, error in zip(rows["clip_id"][failed], rows["error"][failed]):
            self.outcome.skipped.append((self.paths[clip_id], str(error)))
            self.report("skipped", f"skipped {self.paths[clip_id]}: {error}")
        rows = {c: v[~failed] for c, v in rows.items()}
        if not len(rows["clip_id"]):
            return []
        clip_ids = rows["clip_id"].astype(object)
        keys = np.array([f"{c}#{int(s)}" for c, s in zip(clip_ids, rows["segment"])], dtype=object)
        members = [Predictions(clip_ids, rows["label"], rows[f"probs{i}"], keys)
                   for i in range(len(self.predictor.networks))]
        model = self.predictor.combine(members)
        ids, labels, predicted = model.clips(self.predictor.aggregation)
        _, means = model.clip_probabilities()
        self._count(ids, labels, predicted, rows)
        out = []
        for n, clip_id in enumerate(ids):
            label = self.labels[clip_id]
            row = {"path": self.paths[clip_id], "label": self.predictor.classes[predicted[n]],
                   "probability": float(means[n, predicted[n]]), "top": self._top(means[n])}
            if label is not None:
                row["true_label"] = label
            if self.segments:
                row["segment"] = None  # a clip's row; its segments' rows follow
            out.append(row)
            if self.segments:
                mine = np.flatnonzero(model.clip_ids == clip_id)
                for i in mine[np.argsort(rows["segment"][mine])]:
                    probs = model.probs[i]
                    out.append({"path": self.paths[clip_id], "segment": int(rows["segment"][i]),
                                "label": self.predictor.classes[int(probs.argmax())],
                                "probability": float(probs.max()), "top": self._top(probs),
                                **({"true_label": label} if label is not None else {})})
        return out

    def _top(self, probs: np.ndarray) -> list[tuple[str, float]]:
        order = np.argsort(-probs, kind="stable")[:self.top_k]
        return [(self.predictor.classes[i], float(probs[i])) for i in order]

    def _count(self, ids, labels, predicted, rows) -> None:
        o, spec = self.outcome, self.predictor.spec
        o.labelled += len(ids)
        known = labels >= 0
        o.known += int(known.sum())
        o.correct += int((labels[known] == predicted[known]).sum())
        np.add.at(o.confusion, (labels[known], predicted[known]), 1)
        o.unknown_labels.update(self.labels[c] for c in ids[~known] if self.labels[c] is not None)
        short = (rows["segment"] == 0) & (rows["seconds"] < spec.segment_s)
        for clip_id, seconds in zip(rows["clip_id"][short], rows["seconds"][short]):
            o.padded += 1
            if o.padded <= MAX_NOTES:
                how = "looped (--pad repeat)" if spec.repeat_pad else "zero-padded at its end"
                self.report("note", f"note: {self.paths[clip_id]} is {seconds:.2f} s, shorter than one "
                                    f"{spec.segment_s:g} s segment: {how}, as training pads it")


def label_clips(predictor: Predictor, clips: pd.DataFrame, collector: ClipCollector, workers: int = 1,
                gpus_per_worker: float = 0.0, progress: Progress | None = None) -> Iterator[dict]:
    """Label ``clips`` (:func:`read_inputs`) through Ray Data; yield output rows as clips finish.

    Decode tasks (:func:`~trainables.inference.decode_clips`) feed a pool of ``workers``
    :class:`~trainables.inference.SegmentScorer` actors, each with ``gpus_per_worker`` GPUs; the
    driver combines networks and aggregates clips (``collector``). Local files are decoded on this
    node, files at a URI anywhere. ``progress`` counts the clips finished (labelled or skipped).
    The Ray connection must be open.
    """
    import ray

    from trainables.inference import SegmentScorer, decode_clips

    index = {c: i for i, c in enumerate(predictor.classes)}
    labels = known_labels(clips)
    items = [{"path": p, "clip_id": c, "label_index": index.get(labels[c], -1), "split": "predict"}
             for p, c in zip(clips["path"], clips["clip_id"])]
    local = not all("://" in item["path"] for item in items)
    this_node = {"ray.io/node-id": ray.get_runtime_context().get_node_id()} if local else None
    dataset = ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / CLIPS_PER_BLOCK))
    dataset = dataset.map_batches(decode_clips, fn_kwargs={"spec": predictor.spec}, batch_size=None,
                                  label_selector=this_node)
    # The model actors may run on any node (an empty label selector). Saying so also keeps Ray Data
    # from fusing the decode tasks into the actors (it fuses stages whose remote arguments agree), so
    # a GPU actor never waits on decoding and local files are still decoded on this node only.
    dataset = dataset.map_batches(SegmentScorer, fn_constructor_kwargs={"networks": predictor.networks},
                                  batch_size=None, compute=ray.data.ActorPoolStrategy(size=workers),
                                  num_cpus=1, num_gpus=gpus_per_worker or None, label_selector={})
    started, done, o = time.perf_counter(), 0, collector.outcome
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        yield from collector.add(batch)
        if progress is not None:
            progress.update(o.labelled + len(o.skipped) - done)
        done = o.labelled + len(o.skipped)
    o.seconds = time.perf_counter() - started


# Output ---------------------------------------------------------------------------------------------

class RowWriter:
    """Writes output rows as CSV (the top classes flattened: ``top1, p1, top2, p2, ...``) or as
    JSON lines (``top``: a list of ``[class, probability]``)."""

    def __init__(self, stream, fmt: str, top_k: int, segments: bool, labelled: bool):
        self.stream, self.fmt = stream, fmt
        tops = [name for i in range(1, top_k + 1) for name in (f"top{i}", f"p{i}")]
        self.columns = ["path", *(["segment"] if segments else []), "label", "probability", *tops,
                        *(["true_label"] if labelled else [])]
        if fmt == "csv":
            self.csv = csv.DictWriter(stream, self.columns, extrasaction="ignore", lineterminator="\n")
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(json_row(row)) + "\n")
            return
        flat = {**row, "probability": f"{row['probability']:.6f}"}
        for i, (name, p) in enumerate(row["top"], 1):
            flat[f"top{i}"], flat[f"p{i}"] = name, f"{p:.6f}"
        self.csv.writerow(flat)


def json_row(row: dict) -> dict:
    """A row as a JSON line (and ``soundsweep serve``'s answer) holds it: probabilities to 6 decimals,
    ``top`` a list of ``[class, probability]``."""
    return {**row, "probability": round(row["probability"], 6), "top": [[name, round(p, 6)] for name, p in row["top"]]}


def print_summary(predictor: Predictor, outcome: Outcome, workers: int, err=sys.stderr) -> None:
    """Throughput, skipped files and, for labelled clips, accuracy and the confusion matrix."""
    total = outcome.labelled + len(outcome.skipped)
    rate = total / outcome.seconds if outcome.seconds else float("nan")
    print(f"predict: {outcome.labelled} clip(s) labelled, {len(outcome.skipped)} skipped, in {outcome.seconds:.1f} s: "
          f"{rate:.1f} clips/s (decode + model + aggregation, {workers} worker(s))", file=err)
    if outcome.padded > MAX_NOTES:
        print(f"note: {outcome.padded} clip(s) in all were shorter than one segment and padded", file=err)
    if outcome.unknown_labels:
        print(f"note: label(s) {', '.join(sorted(outcome.unknown_labels))} are not classes of the model; those "
              "clips are not counted in the accuracy", file=err)
    if not outcome.known:
        return
    name = predictor.aggregation.replace("_", " ")
    print(f"accuracy: {outcome.accuracy:.4f} ({outcome.correct}/{outcome.known} clips, {name}, "
          f"{predictor.views} TTA view(s))", file=err)
    width = max(len(c) for c in predictor.classes) + 2
    print("confusion matrix (rows: true class, columns: predicted):", file=err)
    print(" " * width + "".join(f"{c:>{width}}" for c in predictor.classes), file=err)
    for c, counts in zip(predictor.classes, outcome.confusion):
        print(f"{c:<{width}}" + "".join(f"{n:>{width}}" for n in counts), file=err)


def run(args) -> Outcome:
    """``soundsweep predict``: resolve the model, label the inputs, write rows, print the summary."""
    from soundsweep.experiment.preflight import connect_ray

    if args.top_k < 1:
        raise UsageError(f"--top-k {args.top_k}: must be at least 1")
    if args.tta is not None and args.tta < 1:
        raise UsageError(f"--tta {args.tta}: must be at least 1 (1 = no test-time augmentation)")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers {args.workers}: must be at least 1")
    if args.gpus_per_worker < 0:
        raise UsageError(f"--gpus-per-worker {args.gpus_per_worker}: must be >= 0")
    fmt = args.format or ("jsonl" if args.out and args.out.lower().endswith((".jsonl", ".json")) else "csv")
    clips = read_inputs(args.inputs, args.split)
    predictor = resolve(ResultsStore(args.results, must_exist=True), args.model, args.experiment, args.tta)
    with contextlib.redirect_stdout(sys.stderr):  # stdout may carry the rows: Ray's notes go to stderr
        connect_ray(args.address, args.verbose)
    import ray

    workers = args.workers or max(1, int(ray.cluster_resources().get("CPU", 2)) // 2)
    err = sys.stderr
    print(f"predict: {predictor.description}; {len(clips)} clip(s); {predictor.views} TTA view(s), "
          f"{predictor.aggregation.replace('_', ' ')}", file=err, flush=True)
    collector = ClipCollector(predictor, clips, args.top_k, args.segments,
                              lambda kind, text: print(text, file=err, flush=True))
    labelled = clips["label"].notna().any()
    stream = open(args.out, "w", newline="") if args.out else sys.stdout
    try:
        writer = RowWriter(stream, fmt, collector.top_k, args.segments, labelled)
        with Progress(len(clips), "predict", "clips", err) as progress:
            for row in label_clips(predictor, clips, collector, workers, args.gpus_per_worker, progress):
                writer.write(row)
    finally:
        if args.out:
            stream.close()
        else:
            stream.flush()
    outcome = collector.outcome
    print_summary(predictor, outcome, workers, err)
    if not outcome.labelled:
        raise UsageError(f"INPUT: none of the {len(clips)} clip(s) could be used (listed above); give audio files")
    return outcome
