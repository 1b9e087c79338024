"""``soundsweep probe``: frozen embeddings of any registered front-end + OpenL3's MLP probe.

>>> from soundsweep.probe import ProbeConfig, run_probe
>>> summary = run_probe(ProbeConfig(frontend="random_timbral", width=8))

Data: the catalog's manifest and train/val/test split (the probe selects on the dataset's val
split, so a clip's windows never straddle train and validation; the paper holds out 10% of the
training windows). Ray Data actors decode each clip once into 1 s / 0.1 s windows and embed them
(:class:`trainables.probe.WindowEmbedder`); the nine learning rate x weight decay points train as
parallel Ray tasks (:func:`trainables.probe.train_mlp`); the point with the best validation clip
accuracy (then the lowest validation loss) is tested. The results store gets an experiment
(space ``probe``) with one trial per grid point and one model row: the selected MLP, whose
weights and standardization are saved to ``<storage-path>/<name>/probe.pt`` (a path or a URI,
:mod:`soundsweep.storage`).
"""
import time
from dataclasses import asdict, dataclass

import numpy as np
import ray
import torch

from soundsweep import provenance
from soundsweep.catalog import DatasetOptions
from soundsweep.errors import UsageError
from soundsweep.experiment.config import OUTPUT, RESULTS_URL
from soundsweep.experiment.preflight import check_segments, check_writable, claim_name, connect_ray
from soundsweep.options import option
from soundsweep.results import ResultsStore
from soundsweep.storage import join as join_storage
from soundsweep.storage import resolve as resolve_storage
from soundsweep.storage import save_torch
from trainables.models import ModelConfigError, list_models, model_info, num_parameters, parameter_count
from trainables.models.openl3 import downstream_mlp
from trainables.objective import rank_key
from trainables.probe import AGGREGATION, GRID, WINDOW_S, FrontEnd, WindowEmbedder, Windows, predict, standardize, train_mlp
from trainables.segments import SPLITS

# The --help sections of ``soundsweep probe``, in order (with "data" and OUTPUT).
WHAT, TRAINING = "what to embed", "training"


@dataclass(kw_only=True)
class ProbeConfig(DatasetOptions):
    """Everything ``soundsweep probe`` takes; each field is its flag (:func:`~soundsweep.options.option`)."""

    frontend: str = option(help="registered model whose classifier input is the embedding (see 'soundsweep tune "
                           "--help')", group=WHAT, choices=list_models, metavar="NAME", required=True)
    checkpoint: str | None = option(None, "checkpoint of a run (its 'checkpoint:' line) to load into --frontend; "
                                    "default: seeded random weights", group=WHAT, metavar="URI")
    width: int | None = option(None, "model width (default: the paper's)", group=WHAT)
    sample_rate: int | None = option(None, "decode at this rate (default: the front-end paper's, e.g. 48000 for L3)",
                                     group=WHAT)
    max_epochs: int = option(50, "epochs per grid point at most (default %(default)s)", group=TRAINING)
    patience: int = option(20, "early-stopping patience (default %(default)s)", group=TRAINING)
    seed: int = option(0, "seed of the front-end and the MLPs", group=TRAINING)
    results: str = option(RESULTS_URL, "SQLAlchemy URL of the results store", group=OUTPUT)
    storage_path: str = option("results/runs", "folder or URI (s3://..., gs://...) where the probe's MLP is saved",
                               group=OUTPUT)
    name: str | None = option(None, "experiment name (default: probe-<frontend>-<time>)", group=OUTPUT)
    address: str | None = option(None, "Ray cluster address (default: $RAY_ADDRESS or a local Ray)", group=OUTPUT)

    def rate(self) -> int:
        """The decoding rate: ``sample_rate``, else the one the front-end's paper uses."""
        return model_info(self.frontend).sample_rate if self.sample_rate is None else self.sample_rate

    def check(self) -> None:
        """Reject impossible values before anything starts (one-line errors)."""
        try:
            info = model_info(self.frontend)
            parameter_count(self.frontend, num_classes=2, in_channels=1,
                            **({"width": self.width} if self.width is not None else {}))
        except ModelConfigError as exc:
            raise UsageError(f"--frontend/--width: {exc}") from exc
        if info.min_seconds > WINDOW_S:
            raise UsageError(f"--frontend {self.frontend} needs {info.min_seconds:.1f} s inputs, more than the "
                             f"probe's {WINDOW_S:g} s windows: pick another front-end")
        for flag, value in (("--max-epochs", self.max_epochs), ("--patience", self.patience),
                            ("--sample-rate", self.rate())):
            if value < 1:
                raise UsageError(f"{flag} {value}: must be at least 1")


def embed(manifest, frontend: FrontEnd) -> tuple[dict[str, Windows], list[dict]]:
    """Every clip's window embeddings by split, and the files that could not be used."""
    workers = max(1, min(int(ray.cluster_resources().get("CPU", 1)) - 1, len(manifest)))
    rows = manifest[["path", "clip_id", "label_index", "split"]].astype({"path": str, "clip_id": str, "split": str})
    dataset = ray.data.from_items(rows.to_dict("records"), override_num_blocks=min(len(rows), 4 * workers)).map_batches(
        WindowEmbedder, fn_constructor_kwargs={"frontend": frontend}, batch_size=4, batch_format="numpy",
        concurrency=workers, num_cpus=1)
    parts = {k: [] for k in ("clip_id", "split", "label", "embedding", "error")}
    for batch in dataset.iter_batches(batch_size=4096, batch_format="numpy"):
        for key in parts:
            parts[key].append(np.asarray(batch[key]))
    columns = {k: np.concatenate(v) for k, v in parts.items()}
    split = columns["split"].astype(str)
    failed = split == "failed"
    paths = dict(zip(manifest["clip_id"].astype(str), manifest["path"].astype(str)))
    failures = [{"clip_id": c, "path": paths.get(c, ""), "error": e}
                for c, e in zip(columns["clip_id"][failed], columns["error"][failed])]
    windows = {s: Windows(columns["embedding"][split == s], columns["label"][split == s],
                          columns["clip_id"][split == s].astype(str)) for s in SPLITS}
    return windows, failures


def run_probe(cfg: ProbeConfig) -> dict:
    """Embed, train the grid, test the selected MLP, record everything; returns the summary."""
    cfg.check()
    started = time.perf_counter()
    name = cfg.name or f"probe-{cfg.frontend}-{time.strftime('%Y%m%d-%H%M%S')}"
    storage = resolve_storage(cfg.storage_path)
    check_writable(storage)
    store = ResultsStore(cfg.results)
    claim_name(store, name, resumable=False)
    manifest = cfg.manifest(cfg.seed)
    classes = sorted(manifest["label"].astype(str).unique())
    frontend = FrontEnd(cfg.frontend, cfg.width, cfg.checkpoint or "", cfg.rate(), len(classes), cfg.seed)
    if cfg.checkpoint:  # load once on the driver, so a mismatch fails now with one line
        try:
            skipped = frontend.build()[2]
        except (ModelConfigError, FileNotFoundError, OSError) as exc:
            raise UsageError(f"--checkpoint {cfg.checkpoint}: {exc}".splitlines()[0]) from exc
        if skipped:
            print(f"checkpoint: its classifier ({len(skipped)} entries) is not used: the probe replaces it", flush=True)
    experiment_id = store.start_experiment(name, "probe", cfg.data or "synthetic", asdict(cfg), storage,
                                           provenance.collect())

    connect_ray(cfg.address)
    windows, failures = embed(manifest, frontend)
    check_segments([{split: len(w.y) for split, w in windows.items()}])
    dim = windows["train"].x.shape[1]
    print(f"probe: {cfg.frontend} embeddings of {dim} values; windows " +
          ", ".join(f"{s} {len(w.y)}" for s, w in windows.items()) + f"; {len(failures)} file(s) skipped", flush=True)
    for failure in failures:
        print(f"  skipped {failure['path']}: {failure['error']}", flush=True)
    scaled, mean, std = standardize(windows)
    train, val = ray.put(scaled["train"]), ray.put(scaled["val"])
    task = ray.remote(num_cpus=1)(train_mlp)
    futures = [task.remote(train, val, len(classes), lr, wd, cfg.seed, cfg.max_epochs, cfg.patience) for lr, wd in GRID]
    results = ray.get(futures)
    points = [f"lr={lr:g},wd={wd:g}" for lr, wd in GRID]  # a grid point's trial id
    for point, (lr, wd), result in zip(points, GRID, results):
        store.record_trial(experiment_id, point, status="COMPLETED", epochs=result["epochs"],
                           params={"lr": lr, "weight_decay": wd},
                           metrics={k: v for k, v in result.items() if k != "state"},
                           best_val_clip_acc=result["val_clip_acc"])
    index = max(range(len(GRID)), key=lambda i: rank_key(results[i]))
    (lr, wd), best = GRID[index], results[index]
    mlp = downstream_mlp(dim, len(classes))
    mlp.load_state_dict(best["state"])
    test = predict(mlp, scaled["test"])

    checkpoint = join_storage(storage, name, "probe.pt")
    save_torch(checkpoint, {"mlp": best["state"], "mean": torch.from_numpy(mean), "std": torch.from_numpy(std),
                            "frontend": asdict(frontend), "classes": classes, "lr": lr, "weight_decay": wd})
    model = {
        "trial_id": points[index], "epoch": best["best_epoch"], "checkpoint_uri": checkpoint,
        "params": {"frontend": cfg.frontend, "width": cfg.width, "checkpoint": cfg.checkpoint, "lr": lr,
                   "weight_decay": wd},
        "num_params": num_parameters(mlp), "val_clip_acc": best["val_clip_acc"], "kind": "probe",
        "test_segment_acc": test.segment_accuracy(), "test_clip_acc": test.clip_accuracy(AGGREGATION),
        "test_clip_acc_mean": test.clip_accuracy("mean_probability"), "metrics": test.metrics("test"),
        "aggregation": AGGREGATION, "classes": classes, "confusion": test.confusion(len(classes), AGGREGATION).tolist(),
    }
    model["model_id"] = store.add_model(experiment_id, **model)
    summary = {"name": name, "experiment_id": experiment_id, "embedding_dim": dim, "model": model,
               "windows": {s: len(w.y) for s, w in windows.items()}, "skipped_files": failures,
               "grid": [{"lr": lr, "weight_decay": wd, **{k: v for k, v in r.items() if k != "state"}}
                        for (lr, wd), r in zip(GRID, results)],
               "wall_s": time.perf_counter() - started}
    store.finish_experiment(experiment_id, "FINISHED", summary)
    return summary
