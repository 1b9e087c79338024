"""Are the models a search finds worth keeping? The reference baseline, the default run and a
recipe search, on the embedded set and on real recordings, with several seeds.

    python -m benchmarks.recipes --out recipes.json            # 2 sets x 3 seeds: about 2.5 h here
    python -m benchmarks.recipes --out recipes.json --quick    # 1 seed, smaller budgets: about 20 min
    python -m benchmarks.recipes --out s.json --sets synthetic --kinds search   # one part only

Sets:
- ``synthetic``: the embedded default (6 classes, 24 clips per class; the seed also draws the split).
- ``drumkits``: real drum-kit recordings from Debian's ``hydrogen-drumkits`` (5 instrument
  classes, whole kits per split so the test kits are unseen; :mod:`benchmarks.drumkits` builds it
  into ``--drumkits`` when it is not there yet). Its clips are 2 s at 16 kHz, one window each.

For every set and seed, each run on the same prepared data, so on the same split:
- ``reference``: MFCC+SVM with C chosen on val, majority vote per clip (what every tune prints);
- ``default``: what ``make tune`` runs (``--space augmentation``, the default recipe and budget);
- ``search``: ``--space augmentation+recipe`` under an epoch budget (the learning rate, weight
  decay, schedule, warm-up, batch size, mixup and label smoothing searched with the augmentation),
  with ``--ensemble-top 5`` (the experiment's best model: the mean of its 5 best trials when that
  ranks at least as high on validation as its best member, else the best trial's model;
  ``search_single`` and ``search_ensemble`` give both sides),
  from the recipe a user would pick for the set: ``default`` for the embedded set, trained for 24
  epochs and kept by its last, averaged epoch (``--select-epoch last``), and ``oneshot`` (isolated
  hits: peak-relative log-mel, 24 epochs, last epoch) for the drum kits (``SEARCH``).

The JSON holds, per set, each seed's test clip accuracy of the three and each run's margin over
the reference (``default - reference``, ``search - reference``), their means, the wall time of
every run, and the settings used. Test clip accuracy is the registered best model's, evaluated
the way chosen on validation (TTA views and clip aggregation).
"""
import argparse
import json
import os
import platform as _platform
import statistics
import tempfile
import time
from typing import NamedTuple

from benchmarks import drumkits
from soundsweep.experiment import ExperimentConfig, run_experiment
from soundsweep.experiment.preflight import connect_ray


class ByPlan(NamedTuple):
    """A setting that differs between the full plan and ``--quick``."""

    full: int
    quick: int


SETS = {
    "synthetic": {},
    "drumkits": {"sample_rate": 16000, "segment_seconds": 2.0},
}
SEARCH = {
    # 24 epochs, each trial ranked and kept by its last (averaged) epoch: with 12 epochs and the
    # best validation epoch, the search's winner rode validation noise (one artist per class).
    "synthetic": {"max_epochs": 24, "overrides": {"select_epoch": "last"}, "epoch_budget": ByPlan(240, 120)},
    # Isolated hits: the search starts from the one-shot recipe, which needs 24 epochs.
    "drumkits": {"recipe": "oneshot", "max_epochs": 24, "epoch_budget": ByPlan(480, 240)},
}
KINDS = ("default", "search")
FULL = {"seeds": (0, 1, 2), "default": {},
        "search": {"num_samples": 40, "max_epochs": 12, "epoch_budget": 100, "ensemble_top": 5}}
QUICK = {"seeds": (0,), "default": {"num_samples": 6},
         "search": {"num_samples": 16, "max_epochs": 12, "epoch_budget": 60, "ensemble_top": 5}}


def drumkit_manifest(folder: str) -> str:
    """The drum-kit set's manifest, built into ``folder`` first if it is not there."""
    manifest = os.path.join(folder, "manifest.csv")
    if not os.path.exists(manifest):
        print(f"building the drum-kit set into {folder} ...", flush=True)
        drumkits.build(drumkits.DEFAULT_ROOT, folder)
    return manifest


def search_budget(plan: dict, set_name: str, quick: bool) -> dict:
    """The search's settings on ``set_name``: the plan's, with the set's own on top."""
    own = {k: (v.quick if quick else v.full) if isinstance(v, ByPlan) else v for k, v in SEARCH[set_name].items()}
    return {**plan["search"], **own}


def run(kind: str, data: dict, seed: int, budget: dict, root: str) -> dict:
    """One tune run; its best model's figures, the reference's and the wall time."""
    space = "augmentation" if kind == "default" else "augmentation+recipe"
    name = f"{kind}-{data.get('name', 'synthetic')}-s{seed}"
    started = time.perf_counter()
    settings = {k: v for k, v in data.items() if k != "name"}
    summary = run_experiment(ExperimentConfig(space=space, seed=seed, name=name, results=f"sqlite:///{root}/results.db",
                                              storage_path=os.path.join(root, "runs"), **settings, **budget))
    best, single, ensemble = summary.best or {}, summary.best_single or {}, summary.ensemble or {}
    return {"test_clip_acc": best.get("test_clip_acc"), "val_clip_acc": best.get("val_clip_acc"),
            "best_kind": best.get("kind", "single"),
            "single_test_clip_acc": single.get("test_clip_acc"), "single_val_clip_acc": single.get("val_clip_acc"),
            "ensemble_test_clip_acc": ensemble.get("test_clip_acc"), "ensemble_members": ensemble.get("sources"),
            "evaluation": best.get("metrics", {}).get("evaluation"), "params": best.get("params"),
            "trials": len(summary.trials), "epochs": sum(t["epochs"] for t in summary.trials),
            "wall_s": time.perf_counter() - started, "reference": summary.reference}


def summarize(runs: list[dict], kinds: list[str]) -> dict:
    """Per-seed test clip accuracies, margins over the reference and their means (every run of a
    set and seed fits on the same prepared split, so they share one reference)."""
    out = {"reference": [r[kinds[0]]["reference"]["test_clip_acc"] for r in runs]}
    columns = {kind: [r[kind]["test_clip_acc"] for r in runs] for kind in kinds}
    for side in ("single", "ensemble"):
        if "search" in kinds and all(r["search"].get(f"{side}_test_clip_acc") is not None for r in runs):
            columns[f"search_{side}"] = [r["search"][f"{side}_test_clip_acc"] for r in runs]
    for column, accuracies in columns.items():
        out[column] = accuracies
        out[f"{column}_margin"] = [a - b for a, b in zip(accuracies, out["reference"])]
    means = {k: statistics.fmean(v) for k, v in out.items()}
    return {**out, "mean": means, **{f"{c}_beats_reference": means[f"{c}_margin"] > 0 for c in columns}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--quick", action="store_true", help="one seed and smaller budgets (about 20 minutes)")
    parser.add_argument("--sets", default=",".join(SETS), help="comma-separated subset of %(default)s")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of %(default)s to run")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds instead of the plan's (e.g. 0,1,2 with --quick)")
    parser.add_argument("--drumkits", default=os.path.join(tempfile.gettempdir(), "soundsweep-drumkits"),
                        help="where the drum-kit set is (built there if missing; default %(default)s)")
    parser.add_argument("--work", default=None, help="folder for the runs' store and checkpoints (default: a temp dir)")
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    if args.seeds:
        plan["seeds"] = tuple(int(s) for s in args.seeds.split(","))
    kinds = args.kinds.split(",")
    if not set(kinds) <= set(KINDS):
        parser.error(f"--kinds {args.kinds}: choose from {', '.join(KINDS)}")
    root = args.work or tempfile.mkdtemp(prefix="soundsweep-recipes-")
    connect_ray(None)
    started = time.perf_counter()
    result = {"settings": {"quick": args.quick, "seeds": list(plan["seeds"]), "kinds": kinds, "default": plan["default"],
                           "search": plan["search"], "machine": f"{os.cpu_count()} CPUs, {_platform.machine()}"},
              "sets": {}}
    for set_name in args.sets.split(","):
        data = {"name": set_name, **SETS[set_name]}
        if set_name == "drumkits":
            data["data"] = drumkit_manifest(args.drumkits)
        budgets = {"default": plan["default"], "search": search_budget(plan, set_name, args.quick)}
        result["settings"][f"search_{set_name}"] = budgets["search"]
        runs = []
        for seed in plan["seeds"]:
            runs.append({"seed": seed, **{kind: run(kind, data, seed, budgets[kind], root) for kind in kinds}})
            result["sets"][set_name] = {"runs": runs, **summarize(runs, kinds)}
            result["wall_s"] = time.perf_counter() - started
            with open(args.out, "w") as f:  # written after every seed: a long run keeps what it measured
                json.dump(result, f, indent=1, default=str)
            print(json.dumps({set_name: {k: v for k, v in result["sets"][set_name].items() if k != "runs"}}), flush=True)


if __name__ == "__main__":
    main()
