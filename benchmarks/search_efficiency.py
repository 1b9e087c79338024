"""Search efficiency: does TPE + ASHA find what the whole augmentation grid finds, for far fewer epochs?

    python -m benchmarks.search_efficiency --out search.json [--quick] [--seeds 0 1 2] [--layouts synthetic esc50]

Run it with ``-m`` from the repository root, so the checkout's packages are the ones imported (the
Ray workers it starts import them too). Target: on every seed (at least 3) and every dataset
layout, the search's best validation clip accuracy is within 1 point (0.01) of the grid's best
while it spends at most 25 % of the grid's epochs.

What runs, per dataset layout and seed, one after the other in one local Ray instance of this
process's own (never one someone else started), each through :func:`soundsweep.experiment.run_experiment`:

- grid: ``--search grid --scheduler fifo``, every configuration of the space once, ``max_epochs``
  epochs each;
- search: the platform's default, Optuna TPE (seeded with the same seed) + ASHA (reduction factor
  2, ranked on ``val_score``; its grace period is the platform's :func:`first_rung` of
  ``max_epochs`` and the default recipe's warm-up: epoch 3 of 12 with ``--quick``, then 6 and
  12), under ``--epoch-budget``: ``floor(0.25 * grid epochs)`` minus one epoch per other
  concurrent trial (what the budget can overshoot by, see
  :class:`soundsweep.callbacks.EpochBudget`), with ``num_samples`` = the grid size as a mere
  upper bound. The search ends when its trials have trained that many epochs, so every epoch
  ASHA saves by stopping a weak trial buys another configuration. Repeated configurations are
  never trained twice (:class:`soundsweep.experiment.search.ResumableOptunaSearch`).

Both sides use the same seed, model, data and decode settings, so a configuration the search
samples trains exactly as the grid's run of it does (a trial's seed derives from the experiment
seed and its configuration) for as long as ASHA lets it run.

Settings. Default (the full question): the ``augmentation`` space (972 configurations),
the default model (resnet2d, width 16), 4 epochs, a 971-epoch search budget (25 % of 3,888, less 1); about 20 hours on this
2-core machine (estimated from 4-configuration runs of these settings: about 12 s per grid trial
on the synthetic set and 8 s on the ESC-50 folder, 2 at a time), more when the machine is
shared. ``--quick`` (25 minutes here, ``benchmarks/results/search_efficiency_quick.json``):
the space ``augmentation-quick`` registered here, the 16 configurations that put
``noise_std``, ``gain_db``, ``specaug_p`` and ``specaug_max_pct`` each at the lowest or highest
value of the full grid, with 2 frequency + 2 time masks (SoundFusion's best); a small model
(simple_cnn, width 8), 12 epochs (the default recipe's run length), a 47-epoch search budget
(48 minus 1 for the second concurrent trial). Test-time augmentation is off (one view). Why 12
epochs and not 4: at 4 epochs a trial takes at most 12 optimizer steps (at most 72 training
segments, batch 32), the first epoch's a warm-up, and every model of the grid ended near chance
(best validation clip accuracy 0.22-0.42, chance 0.17:
``benchmarks/results/search_efficiency_quick_4epochs.json``), so the comparison measured noise;
and ASHA's first rung (epoch 3 of 4) left the budget 4 to 7 trials.

Layouts:

- ``synthetic``: the embedded default (``data=None``): the platform renders a synthetic set
  from the experiment seed (``synthetic_clips`` per class, 6 classes, 13 s FLAC at 22.05 kHz),
  so each seed also draws another data set; 24 clips per class (``--quick``: 10).
- ``esc50``: an ESC-50 folder (``meta/esc50.csv``: filename,fold,target,category,esc10,
  src_file,take; ``audio/{fold}-{src_file}-{take}-{target}.wav``) rendered once by
  :func:`soundsweep.catalog.synthetic.generate` with generator seed 1000 (not the default set's
  audio): 40 clips per class as ESC-50 has (``--quick``: 24), 6 classes, 5 s WAV at 44.1 kHz
  (resampled to 22.05 kHz by the decode), fold = the generator's fold + 1 (5 folds; a source
  recording, the generator's group, stays in one fold). The reader's default split: fold 1
  test, fold 2 val. The same data for every seed.

Everything goes to ``--work`` (default: a new temporary folder, kept and printed): the
results store ``results.db`` (SQLite), the rendered data, the decoded segment cache of each
layout (``runs-<layout>/cache``). An experiment's Tune folder (trial checkpoints) is removed once
its figures are read, so that the full run's ~5,800 trials do not fill the disk (one full grid
holds about 12 GB of checkpoints until then).

Figures written (JSON), each per layout with one value per seed in the order of ``seeds``:

``grid_best``, ``search_best``
    The highest ``val_clip_acc`` (validation clip accuracy by majority vote, what both sides
    optimise) over every epoch of every trial of the experiment, read from the results store
    (``ResultsStore.epochs``).
``grid_epochs``, ``search_epochs``
    Epochs actually trained: the number of epoch rows the experiment stored (ASHA stops
    trials early; a grid trial always runs ``max_epochs``).
``grid_test_clip_acc``, ``search_test_clip_acc``
    ``test_clip_acc`` of the model the experiment registered (``ResultsStore.models``): the
    best checkpointed epoch of its best trial, evaluated on the test split.
``summary[layout]``
    ``gap_points`` = 100 * (grid best - search best) per seed and ``mean_gap_points``;
    ``epoch_fraction`` = search epochs / grid epochs per seed and ``mean_epoch_fraction``;
    ``holds`` per seed = gap <= 1 point and fraction <= 0.25; ``target_met`` = it holds for
    every seed and there are at least 3 seeds. Top-level ``target_met``: for every layout.
``throughput[layout][side]``
    ``trials_per_min`` = trials / experiment wall minutes and ``epochs_per_min`` = epochs / wall
    minutes, summed over the seeds, where an experiment's wall time is ``ExperimentSummary.wall_s``
    (the whole of ``run_experiment``: planning, data, the Tune run, the best model's test
    evaluation, the report). The grid's figure is what the platform sustains with full-length
    trials; the search's trials are shorter (ASHA). ``throughput.all``: every experiment together.
``time_breakdown[layout][side]``
    Where the trial slots' time goes, summed over the seeds, in seconds and as shares of
    ``slot_s`` = ``plan.max_concurrent`` * wall_s (the time the concurrent trial slots were
    available). ``data_prep_s`` = max_concurrent * ``PreparedData.seconds`` (decoding on a cache
    miss; 0 on a hit; every slot waits for it); ``train_s`` = sum of every epoch's ``train_s``
    (the training pass: streaming, augmentation, features, forward, backward, step);
    ``validation_s`` = sum of every epoch's ``epoch_s - train_s`` (the validation prediction);
    ``trial_other_s`` = sum of the trials' ``wall_time_s`` (Tune's ``time_total_s`` at the last
    report) minus their epochs' ``epoch_s`` (inside a trial, outside its epochs: model build,
    dataset set-up, checkpoint save, report); ``ray_tune_driver_s`` = the rest: slot time outside
    any trial, i.e. Ray/Tune's trial start-up and scheduling, slots left idle, and the driver's
    own steps before and after the Tune run (planning, best-model test evaluation, report).
``data_preparation[layout]``
    ``render_s``: this benchmark rendering the layout's audio (not the platform's work);
    ``decode_s``: ``PreparedData.seconds`` of each experiment that decoded (a cache miss: the
    first one of each data set); ``cache_hits``: how many experiments found the segments decoded.

Also written: ``command``, ``machine`` (CPU count, load averages at start and end: the machine
is shared, versions of Python, torch, Ray, Optuna), ``settings``, ``ray_start_s``, every
experiment's own record (``experiments``: the figures above before summing, trial statuses,
``distinct_configurations`` = how many different configurations its trials ran, the best
trial's parameters), ``work_dir`` and ``wall_s`` (the whole benchmark).
"""
import argparse
import json
import math
import os
import platform as stdlib_platform  # the stdlib module, not the repository's façade
import shutil
import sys
import tempfile
import time

import optuna
import pandas as pd
import ray
import soundfile
import torch

from search_spaces import SearchSpace, get_space, register_space
from soundsweep.catalog.synthetic import GENRES, generate, synthetic_default
from soundsweep.experiment import ExperimentConfig, run_experiment
from soundsweep.experiment.preflight import connect_ray
from soundsweep.experiment.search import first_rung
from soundsweep.results import ResultsStore
from trainables.recipes import get_recipe

BUDGET = 0.25  # the search may spend at most this fraction of the grid's epochs
TOLERANCE_POINTS = 1.0  # the search's best may trail the grid's by at most this many points
MIN_SEEDS = 3
LAYOUTS = ("synthetic", "esc50")
ESC50_SEED = 1000  # generator seed of the ESC-50 folder's audio
PAPER_BEST = {"noise_std": 0.02, "gain_db": 12.0, "specaug_p": 1.0, "specaug_max_pct": 0.3,
              "specaug_freq_masks": 2, "specaug_time_masks": 2}  # SoundFusion's best augmentation
QUICK_VARIED = ("noise_std", "gain_db", "specaug_p", "specaug_max_pct")
MODES = {
    "full": {"space": "augmentation", "arch": "resnet2d", "width": None, "max_epochs": 4,
             "synthetic_clips": 24, "esc50_clips": 40},
    "quick": {"space": "augmentation-quick", "arch": "simple_cnn", "width": 8, "max_epochs": 12,
              "synthetic_clips": 10, "esc50_clips": 24},
}


def quick_space() -> SearchSpace:
    """The ``--quick`` sub-grid: each of :data:`QUICK_VARIED` at the full grid's lowest and highest
    value, the other augmentation settings at SoundFusion's best."""
    full = get_space("augmentation")
    return SearchSpace(
        name=MODES["quick"]["space"],
        description="16 corners of the augmentation grid, masks at SoundFusion's best (search_efficiency --quick)",
        choices={name: (full.choices[name][0], full.choices[name][-1]) for name in QUICK_VARIED},
        constants={name: value for name, value in PAPER_BEST.items() if name not in QUICK_VARIED},
    )


class Progress:
    """Prints one progress line, prefixed with the time since the benchmark started."""

    def __init__(self):
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the benchmark started."""
        return time.perf_counter() - self.started

    def __call__(self, message: str) -> None:
        seconds = int(self.elapsed())
        print(f"[search_efficiency {seconds // 60:3d}m{seconds % 60:02d}s] {message}", flush=True)


def render_esc50(root: str, seed: int, clips_per_class: int) -> None:
    """Write an ESC-50 folder at ``root`` from synthetic audio (5 s, 44.1 kHz, WAV).

    ``fold`` is the generator's fold + 1, ``src_file`` numbers the generator's groups, ``take``
    counts the clips of a group (A, B, ...) and ``target`` is the class's index in
    :data:`~soundsweep.catalog.synthetic.GENRES`."""
    audio_dir = os.path.join(root, "audio")
    os.makedirs(audio_dir)
    os.makedirs(os.path.join(root, "meta"))
    with tempfile.TemporaryDirectory(dir=root) as rendered:
        clips = generate(rendered, seed=seed, clips_per_class=clips_per_class, clip_seconds=5.0, sample_rate=44100)
        sources = {group: 100000 + i for i, group in enumerate(dict.fromkeys(clips["group"]))}
        takes = clips.groupby("group").cumcount()
        names = [genre.name for genre in GENRES]
        rows = []
        for clip, take in zip(clips.itertuples(index=False), takes):
            fold, target, src_file = int(clip.fold) + 1, names.index(clip.label), sources[clip.group]
            letter = chr(ord("A") + take)
            filename = f"{fold}-{src_file}-{letter}-{target}.wav"
            audio, rate = soundfile.read(clip.path, dtype="float32")
            soundfile.write(os.path.join(audio_dir, filename), audio, rate, subtype="PCM_16")
            rows.append((filename, fold, target, clip.label, False, src_file, letter))
    table = pd.DataFrame(rows, columns=["filename", "fold", "target", "category", "esc10", "src_file", "take"])
    table.to_csv(os.path.join(root, "meta", "esc50.csv"), index=False)


def prepare_layouts(layouts: list[str], seeds: list[int], work: str, mode: dict, progress: Progress) -> dict[str, dict]:
    """Render each layout's audio; per layout its ``ExperimentConfig`` data fields and ``render_s``.

    The synthetic sets go to ``<work>/synthetic`` (``$SOUNDSWEEP_CACHE`` is pointed at ``work``),
    one per seed, where ``run_experiment`` then finds them already rendered."""
    os.environ["SOUNDSWEEP_CACHE"] = work
    data = {}
    for layout in layouts:
        started = time.perf_counter()
        if layout == "synthetic":
            for seed in seeds:
                synthetic_default(seed, mode["synthetic_clips"])
            data[layout] = {"fields": {"synthetic_clips": mode["synthetic_clips"]}}
        else:
            root = os.path.join(work, f"esc50-seed{ESC50_SEED}")
            render_esc50(root, ESC50_SEED, mode["esc50_clips"])
            data[layout] = {"fields": {"data": root, "dataset": "esc50"}}
        data[layout]["render_s"] = time.perf_counter() - started
        progress(f"rendered the {layout} audio in {data[layout]['render_s']:.1f} s")
    return data


def experiment_figures(store: ResultsStore, experiment_id: int) -> dict:
    """What one finished experiment spent and found, read from the results store."""
    epochs = [epoch.metrics for _, epoch in store.epochs(experiment_id)]
    models = store.models(experiment_id)
    if not epochs or not models:
        raise RuntimeError(f"experiment {experiment_id} stored no epoch or no model: see the Tune output above")
    trials = store.trials(experiment_id)
    best_trial = max(trials, key=lambda t: t.best_val_clip_acc if t.best_val_clip_acc is not None else -1.0)
    statuses: dict[str, int] = {}
    for trial in trials:
        statuses[trial.status] = statuses.get(trial.status, 0) + 1
    return {
        "trials": len(trials),
        "distinct_configurations": len({json.dumps(t.params, sort_keys=True) for t in trials}),
        "trial_status": statuses,
        "epochs": len(epochs),
        "best_val_clip_acc": max(m["val_clip_acc"] for m in epochs),
        "best_params": best_trial.params,
        "test_clip_acc": models[0].test_clip_acc,
        "epoch_s": sum(m["epoch_s"] for m in epochs),
        "train_s": sum(m["train_s"] for m in epochs),
        "trial_s": sum(t.wall_time_s or 0.0 for t in trials),
    }


def search_budget(grid: dict) -> int:
    """The search's ``--epoch-budget`` against a grid experiment's record: :data:`BUDGET` of its
    epochs, less one epoch per other concurrent trial (the most the budget can overshoot by)."""
    return math.floor(BUDGET * grid["epochs"]) - (grid["max_concurrent"] - 1)


def run_side(side: str, layout: str, seed: int, settings: dict, data_fields: dict, work: str,
             store: ResultsStore, progress: Progress, epoch_budget: int | None = None) -> dict:
    """Run one experiment (``side`` grid, or search under ``epoch_budget``) and return its record;
    its Tune folder is removed."""
    name = f"{layout}-seed{seed}-{side}"
    grid = side == "grid"
    samples = settings["grid_size"]
    storage = os.path.join(work, f"runs-{layout}")
    progress(f"start {name}: up to {samples} configurations x {settings['max_epochs']} epochs"
             + ("" if grid else f", at most {epoch_budget} epochs in all"))
    summary = run_experiment(ExperimentConfig(
        space=settings["space"], arch=settings["arch"], width=settings["width"],
        search="grid" if grid else "tpe", scheduler="fifo" if grid else "asha", epoch_budget=epoch_budget,
        num_samples=samples, max_epochs=settings["max_epochs"], seed=seed, tta_views=1,
        results=store.url, storage_path=storage, name=name, **data_fields))
    shutil.rmtree(os.path.join(storage, name), ignore_errors=True)
    record = {"name": name, "layout": layout, "seed": seed, "side": side, "epoch_budget": epoch_budget,
              "wall_s": summary.wall_s, "max_concurrent": summary.plan.max_concurrent,
              "data_prep_s": summary.data.seconds, "cache_hit": summary.data.cache_hit,
              **experiment_figures(store, summary.experiment_id)}
    progress(f"end {name} in {summary.wall_s:.0f} s: {record['trials']} trials, {record['epochs']} epochs, "
             f"best val_clip_acc {record['best_val_clip_acc']:.3f}, test_clip_acc {record['test_clip_acc']:.3f}")
    return record


def slot_breakdown(records: list[dict]) -> dict:
    """Where the trial slots' time went over ``records`` (seconds and shares; see the module doc)."""
    slot = sum(r["max_concurrent"] * r["wall_s"] for r in records)
    parts = {
        "data_prep_s": sum(r["max_concurrent"] * r["data_prep_s"] for r in records),
        "train_s": sum(r["train_s"] for r in records),
        "validation_s": sum(r["epoch_s"] - r["train_s"] for r in records),
        "trial_other_s": sum(r["trial_s"] - r["epoch_s"] for r in records),
    }
    parts["ray_tune_driver_s"] = slot - sum(parts.values())
    return {"slot_s": slot, **parts, "shares": {k.removesuffix("_s"): v / slot for k, v in parts.items()}}


def throughput(records: list[dict]) -> dict:
    """Trials and epochs per wall-clock minute over ``records``."""
    minutes = sum(r["wall_s"] for r in records) / 60
    return {"trials": sum(r["trials"] for r in records), "epochs": sum(r["epochs"] for r in records),
            "wall_s": 60 * minutes, "trials_per_min": sum(r["trials"] for r in records) / minutes,
            "epochs_per_min": sum(r["epochs"] for r in records) / minutes}


def layout_summary(grid: list[dict], search: list[dict], seeds: list[int]) -> dict:
    """Gap, epoch fraction and whether the target holds, per seed and over the seeds of one layout."""
    gaps = [100 * (g["best_val_clip_acc"] - s["best_val_clip_acc"]) for g, s in zip(grid, search)]
    fractions = [s["epochs"] / g["epochs"] for g, s in zip(grid, search)]
    holds = [gap <= TOLERANCE_POINTS + 1e-9 and fraction <= BUDGET for gap, fraction in zip(gaps, fractions)]
    return {"gap_points": gaps, "mean_gap_points": sum(gaps) / len(gaps), "epoch_fraction": fractions,
            "mean_epoch_fraction": sum(fractions) / len(fractions), "holds": holds,
            "target_met": all(holds) and len(seeds) >= MIN_SEEDS}


def collect(records: list[dict], layouts: list[str], seeds: list[int], rendered: dict) -> dict:
    """The JSON's figures from every experiment's record."""
    pick = {(r["layout"], r["seed"], r["side"]): r for r in records}
    side = {(layout, s): [pick[(layout, seed, s)] for seed in seeds] for layout in layouts for s in ("grid", "search")}

    def per_layout(key: str, s: str) -> dict:
        """``{layout: [record[key] of each seed]}`` for side ``s``."""
        return {layout: [r[key] for r in side[(layout, s)]] for layout in layouts}

    summary = {layout: layout_summary(side[(layout, "grid")], side[(layout, "search")], seeds) for layout in layouts}
    return {
        "grid_best": per_layout("best_val_clip_acc", "grid"), "grid_epochs": per_layout("epochs", "grid"),
        "search_best": per_layout("best_val_clip_acc", "search"), "search_epochs": per_layout("epochs", "search"),
        "grid_test_clip_acc": per_layout("test_clip_acc", "grid"),
        "search_test_clip_acc": per_layout("test_clip_acc", "search"),
        "summary": summary,
        "target_met": all(s["target_met"] for s in summary.values()),
        "throughput": {**{layout: {s: throughput(side[(layout, s)]) for s in ("grid", "search")} for layout in layouts},
                       "all": throughput(records)},
        "time_breakdown": {layout: {s: slot_breakdown(side[(layout, s)]) for s in ("grid", "search")}
                           for layout in layouts},
        "data_preparation": {layout: {"render_s": rendered[layout]["render_s"],
                                      "decode_s": [r["data_prep_s"] for r in records
                                                   if r["layout"] == layout and not r["cache_hit"]],
                                      "cache_hits": sum(r["cache_hit"] for r in records if r["layout"] == layout)}
                             for layout in layouts},
    }


def table(out: dict) -> str:
    """The human-readable summary printed at the end."""
    lines = [f"{'layout':<10} {'seed':>4} {'grid best':>9} {'search best':>11} {'gap pts':>7} {'grid ep':>7} "
             f"{'search ep':>9} {'fraction':>8}  holds"]
    for layout, summary in out["summary"].items():
        for i, seed in enumerate(out["seeds"]):
            lines.append(f"{layout:<10} {seed:>4} {out['grid_best'][layout][i]:>9.3f} "
                         f"{out['search_best'][layout][i]:>11.3f} {summary['gap_points'][i]:>7.1f} "
                         f"{out['grid_epochs'][layout][i]:>7} {out['search_epochs'][layout][i]:>9} "
                         f"{summary['epoch_fraction'][i]:>8.2f}  {'yes' if summary['holds'][i] else 'no'}")
        rates = out["throughput"][layout]
        shares = out["time_breakdown"][layout]["grid"]["shares"]
        lines.append(f"{layout}: target {'met' if summary['target_met'] else 'NOT met'} (mean gap "
                     f"{summary['mean_gap_points']:.1f} pts, mean fraction {summary['mean_epoch_fraction']:.2f}); "
                     f"grid {rates['grid']['trials_per_min']:.1f} trials/min, "
                     f"search {rates['search']['trials_per_min']:.1f}; grid slot time: "
                     + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    lines.append(f"overall: target {'met' if out['target_met'] else 'NOT met'}; "
                 f"{out['throughput']['all']['trials_per_min']:.1f} trials/min, "
                 f"{out['throughput']['all']['epochs_per_min']:.1f} epochs/min; wall {out['wall_s'] / 60:.1f} min")
    return "\n".join(lines)


def machine() -> dict:
    """This machine: CPUs, load and the versions that matter."""
    return {"cpus": os.cpu_count(), "platform": stdlib_platform.platform(), "python": stdlib_platform.python_version(),
            "torch": torch.__version__, "ray": ray.__version__, "optuna": optuna.__version__,
            "load_average_at_start": os.getloadavg()}


def parse_args() -> argparse.Namespace:
    """The command line, checked (one-line errors); creates the folders of ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write (its folders are created)")
    parser.add_argument("--quick", action="store_true",
                        help="the 16-configuration sub-grid, simple_cnn w8, 10 synthetic / 24 ESC-50 clips per class: "
                             "about 15 minutes on 2 cores instead of about 20 hours for the full "
                             "972-configuration grid")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help=f"experiment seeds; the target needs at least {MIN_SEEDS} (default %(default)s)")
    parser.add_argument("--layouts", nargs="+", default=list(LAYOUTS), choices=LAYOUTS,
                        help="dataset layouts to run (default: %(default)s)")
    parser.add_argument("--work", help="empty or new folder for the results store, rendered audio and decode caches "
                                       "(default: a new temporary folder, kept)")
    args = parser.parse_args()
    if len(set(args.seeds)) < len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds {' '.join(map(str, args.seeds))}: give distinct seeds >= 0")
    if len(set(args.layouts)) < len(args.layouts):
        parser.error("--layouts: name each layout once")
    if args.work and os.path.exists(args.work) and (not os.path.isdir(args.work) or os.listdir(args.work)):
        parser.error(f"--work {args.work}: not an empty folder; give a new or empty one")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        parser.error(f"--out {args.out}: cannot create {out_dir} ({exc.strerror})")
    if not os.access(out_dir, os.W_OK):
        parser.error(f"--out {args.out}: {out_dir} is not writable")
    return args


def main() -> None:
    args = parse_args()
    progress = Progress()
    mode = MODES["quick" if args.quick else "full"]
    if args.quick:
        register_space(quick_space())
    space = get_space(mode["space"])
    grace = first_rung(mode["max_epochs"], get_recipe("default").settings["warmup_epochs"])
    settings = {**mode, "quick": args.quick, "grid_size": space.grid_size(),
                "search": f"tpe + asha (grace {grace}, reduction 2)", "grid": "grid + fifo", "budget_fraction": BUDGET,
                "tolerance_points": TOLERANCE_POINTS, "space_choices": space.choices,
                "space_constants": space.constants, "tta_views": 1,
                "esc50": {"generator_seed": ESC50_SEED, "clip_s": 5.0, "sample_rate": 44100, "classes": 6,
                          "test_fold": 1, "val_fold": 2}}
    work = os.path.abspath(args.work or tempfile.mkdtemp(prefix="soundsweep-search-"))
    os.makedirs(work, exist_ok=True)
    progress(f"work folder {work}; {settings['grid_size']} grid configurations, {mode['max_epochs']} epochs, "
             f"search budget {BUDGET:.0%} of the grid's epochs, seeds {args.seeds}, layouts {args.layouts}")
    out = {"command": " ".join(["python -m benchmarks.search_efficiency", *sys.argv[1:]]), "machine": machine(),
           "settings": settings, "seeds": args.seeds, "work_dir": work}

    started = time.perf_counter()
    connect_ray("local")  # this process's own Ray; run_experiment then reuses it
    out["ray_start_s"] = time.perf_counter() - started
    rendered = prepare_layouts(args.layouts, args.seeds, work, mode, progress)
    store = ResultsStore(f"sqlite:///{os.path.join(work, 'results.db')}")
    records = []
    for layout in args.layouts:
        for seed in args.seeds:
            grid = run_side("grid", layout, seed, settings, rendered[layout]["fields"], work, store, progress)
            search = run_side("search", layout, seed, settings, rendered[layout]["fields"], work, store, progress,
                              epoch_budget=search_budget(grid))
            records += [grid, search]
    ray.shutdown()

    out.update(collect(records, args.layouts, args.seeds, rendered))
    out["machine"]["load_average_at_end"] = os.getloadavg()
    out["experiments"] = records
    out["wall_s"] = progress.elapsed()
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(table(out), flush=True)
    progress(f"wrote {args.out}")


if __name__ == "__main__":
    main()
