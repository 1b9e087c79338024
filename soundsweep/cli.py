"""``soundsweep`` command line (also ``python -m platform.<command>`` from the repo root).

Bad input exits with code 2 and one line naming the problem and the fix, never a traceback.
"""
import argparse
import sys
from dataclasses import fields

from search_spaces import SPACES, list_spaces
from soundsweep.catalog import list_datasets
from soundsweep.configurations import DEFAULT_METRIC, compare, format_table
from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore
from trainables.models import list_models, model_info

DEFAULT_DASHBOARD_HINT = "optuna-dashboard {url} --host 127.0.0.1"


def _registry_epilog() -> str:
    spaces = "\n".join(f"  {n:<14} {SPACES[n].description} ({SPACES[n].grid_size()} configurations)" for n in list_spaces())
    models = "\n".join(
        f"  {n:<14} input {model_info(n).input}; {model_info(n).paper}"
        + (f"; widths {'/'.join(map(str, model_info(n).widths))}" if model_info(n).widths else "")
        for n in list_models()
    )
    return (f"search spaces (--space):\n{spaces}\n\nmodels (--arch):\n{models}\n\n"
            "With no --data, the embedded synthetic dataset is generated once into ~/.cache/soundsweep.\n"
            "Watch the search: optuna-dashboard <--results URL> (Ray's own dashboard shows the cluster).")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"soundsweep: error: {message}; see '{self.prog} --help'\n")


def add_dataset_arguments(parser: argparse.ArgumentParser, defaults: dict) -> argparse._ArgumentGroup:
    """The flags that say which dataset and split a command reads; returns their group."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=None, help="dataset root (FMA, GTZAN, ESC-50, UrbanSound8K, DCASE2020: "
                      "detected), a folder with one sub-folder per class, or a manifest CSV "
                      "(path,label[,split,fold,group]); default: the embedded synthetic set")
    data.add_argument("--dataset", default=None, choices=list_datasets(), help="force the layout instead of detecting it")
    data.add_argument("--test-fold", type=int, default=None,
                      help="fold held out for test (esc50: 1, urbansound8k: 10, gtzan: 1); the next fold is val")
    data.add_argument("--subset", default=None, help="FMA subset: small or medium")
    data.add_argument("--split-dir", default=None, help="GTZAN: folder with train/valid/test lists (fault-filtered split)")
    data.add_argument("--val-fraction", type=float, default=None, help="DCASE2020: share of train locations used for val")
    data.add_argument("--synthetic-clips", type=int, default=defaults["synthetic_clips"],
                      help="clips per class of the synthetic set (default %(default)s)")
    return data


def build_parser() -> argparse.ArgumentParser:
    from soundsweep.tuner import SCHEDULERS, ExperimentConfig

    defaults = {f.name: f.default for f in fields(ExperimentConfig)}
    parser = OneLineParser(prog="soundsweep", description="Distributed audio-classification experiments on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    tune = sub.add_parser(
        "tune",
        help="search a space with Ray Tune + Optuna and register the best model",
        description="Run a Ray Tune search (Optuna TPE + ASHA) over a search space, train each trial with the "
                    "per-worker loop, record every trial in the results store and evaluate the best model on the "
                    "test split.",
        epilog=_registry_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    what = tune.add_argument_group("what to search")
    what.add_argument("--space", default=defaults["space"], help="search space name (see below; default %(default)s)")
    what.add_argument("--arch", default=defaults["arch"], help="model when the space does not choose one (default %(default)s)")
    what.add_argument("--width", type=int, default=None, help="model width (default: the paper's width of --arch)")
    what.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                      help="checkpoint folder of an earlier run (its 'checkpoint:' line) whose weights start every "
                           "trial; the classifier is re-initialised when the class count differs")
    what.add_argument("--lr", type=float, default=defaults["lr"], help="Adam learning rate (default %(default)s)")
    what.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="default %(default)s")
    data = add_dataset_arguments(tune, defaults)
    data.add_argument("--sample-rate", type=int, default=defaults["sample_rate"], help="resample to this rate (Hz)")
    data.add_argument("--channels", type=int, default=defaults["channels"], help="1 = mono, 2 = stereo")
    data.add_argument("--segment-seconds", type=float, default=defaults["segment_seconds"], help="window length (s)")
    data.add_argument("--overlap", type=float, default=defaults["overlap"], help="window overlap fraction")
    budget = tune.add_argument_group("budget and scheduling")
    budget.add_argument("--num-samples", type=int, default=defaults["num_samples"], help="trials (default %(default)s)")
    budget.add_argument("--max-epochs", type=int, default=defaults["max_epochs"], help="epochs per trial at most")
    budget.add_argument("--scheduler", default=defaults["scheduler"], help=f"{' or '.join(SCHEDULERS)} (early stopping)")
    budget.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as many as fit)")
    budget.add_argument("--folds", type=int, default=defaults["folds"],
                        help="k-fold cross-validation: run every configuration on k folds (the dataset's official "
                             "folds, else stratified group folds; fold k+1 is val) and report mean, std and 95%% CI")
    budget.add_argument("--repeats", type=int, default=defaults["repeats"],
                        help="run every configuration (on every fold) with this many seeds")
    budget.add_argument("--seed", type=int, default=defaults["seed"], help="experiment seed; every other seed derives from it")
    budget.add_argument("--max-failures", type=int, default=defaults["max_failures"],
                        help="retries of a failing trial from its last checkpoint")
    res = tune.add_argument_group("resources")
    res.add_argument("--executor", default=defaults["executor"], choices=("auto", "train", "local"),
                     help="train = a TorchTrainer per trial; local = the loop inside the trial (auto: train for "
                          "several workers or GPUs)")
    res.add_argument("--train-workers", type=int, default=defaults["train_workers"], help="Train workers per trial")
    res.add_argument("--cpus-per-worker", type=float, default=defaults["cpus_per_worker"], help="default %(default)s")
    res.add_argument("--gpus-per-worker", type=float, default=defaults["gpus_per_worker"], help="whole or fractional")
    res.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")
    out = tune.add_argument_group("where results go")
    out.add_argument("--results", default=defaults["results"], help="SQLAlchemy URL of the results store")
    out.add_argument("--storage-path", default=defaults["storage_path"], help="Tune storage (checkpoints, decode cache)")
    out.add_argument("--name", default=None, help="experiment name (default: <space>-<time>)")
    out.add_argument("--resume", action="store_true", help="continue the experiment --name after a crash or kill")

    cmp = sub.add_parser(
        "compare",
        help="paired t-test and Wilcoxon signed-rank test of two configurations' per-fold/per-seed scores",
        description="Compare two configurations on the folds and seeds both ran (soundsweep tune --folds/--repeats, "
                    "or a screening): paired t-test and Wilcoxon signed-rank test, recorded in the results store. A "
                    "configuration is EXPERIMENT/TRIAL (the configuration that trial belongs to; the configuration "
                    "table names each by its first trial) or EXPERIMENT (its best configuration).",
    )
    cmp.add_argument("a", help="EXPERIMENT or EXPERIMENT/TRIAL")
    cmp.add_argument("b", help="EXPERIMENT or EXPERIMENT/TRIAL")
    cmp.add_argument("--metric", default=DEFAULT_METRIC, help="score compared (default %(default)s)")
    cmp.add_argument("--results", default=defaults["results"], help="SQLAlchemy URL of the results store")

    probe = sub.add_parser(
        "probe",
        help="frozen embeddings of a front-end + OpenL3's MLP probe (1 s windows, lr x weight decay grid)",
        description="Embed every clip's 1 s windows (0.1 s hop) with a frozen registered model (the input of its "
                    "classifier block; seeded random weights, or a stored checkpoint's), train OpenL3's MLP "
                    "(512-128, early stopping, lr x weight decay in {1e-5, 1e-4, 1e-3}^2 selected on the val split) "
                    "and test it, summing window likelihoods per clip; recorded in the results store.",
    )
    what = probe.add_argument_group("what to embed")
    what.add_argument("--frontend", required=True, choices=list_models(), metavar="NAME",
                      help="registered model whose classifier input is the embedding (see 'soundsweep tune --help')")
    what.add_argument("--checkpoint", default=None, metavar="URI",
                      help="checkpoint of a run (its 'checkpoint:' line) to load into --frontend; default: seeded "
                           "random weights")
    what.add_argument("--width", type=int, default=None, help="model width (default: the paper's)")
    what.add_argument("--sample-rate", type=int, default=None,
                      help="decode at this rate (default: the front-end paper's, e.g. 48000 for L3)")
    add_dataset_arguments(probe, defaults)
    budget = probe.add_argument_group("training")
    budget.add_argument("--max-epochs", type=int, default=50, help="epochs per grid point at most (default %(default)s)")
    budget.add_argument("--patience", type=int, default=20, help="early-stopping patience (default %(default)s)")
    budget.add_argument("--seed", type=int, default=defaults["seed"], help="seed of the front-end and the MLPs")
    out = probe.add_argument_group("where results go")
    out.add_argument("--results", default=defaults["results"], help="SQLAlchemy URL of the results store")
    out.add_argument("--storage-path", default=defaults["storage_path"], help="where the probe's MLP is saved")
    out.add_argument("--name", default=None, help="experiment name (default: probe-<frontend>-<time>)")
    out.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")
    return parser


def print_leaderboard(summary, top: int = 5) -> None:
    varying = sorted({k for t in summary.trials for k in t["params"]
                      if len({str(u["params"].get(k)) for u in summary.trials}) > 1})
    ranked = sorted(summary.trials, key=lambda t: -t["best"].get("val_clip_acc", 0.0))[:top]
    print(f"\nleaderboard ({summary.name}, {len(summary.trials)} trials, {summary.wall_s:.0f} s; "
          "validation accuracy at each trial's best epoch):")
    print(f"  {'trial':<10} {'status':<10} {'epochs':>6} {'best':>5} {'val seg':>8} {'val clip':>9}  config")
    for t in ranked:
        m = t["best"]
        values = " ".join(f"{k}={t['params'].get(k)}" for k in varying)
        seg = f"{m['val_segment_acc']:>8.3f}" if "val_segment_acc" in m else f"{'-':>8}"  # screening: clips only
        print(f"  {t['trial_id']:<10} {t['status']:<10} {t['epochs']:>6} {m.get('epoch', '-'):>5} "
              f"{seg} {m.get('val_clip_acc', 0):>9.3f}  {values}")
    best = summary.best
    if best:
        print(f"\nbest model: trial {best['trial_id']} epoch {best['epoch']}: test segment acc "
              f"{best['test_segment_acc']:.3f}, test clip acc {best['test_clip_acc']:.3f} (majority vote), "
              f"{best['num_params']:,} parameters")
        print(f"checkpoint: {best['checkpoint_uri']}")
    if summary.configurations:
        print("\n" + format_table(summary.configurations))
    skipped = summary.data.failures
    print(f"skipped files: {len(skipped)}" + "".join(f"\n  {f['path']}: {f['error']}" for f in skipped))
    print(f"results store: {summary.results_url}")
    print(f"dashboard: {DEFAULT_DASHBOARD_HINT.format(url=summary.results_url)}")


def print_comparison(result: dict) -> None:
    a, b, d = result["a_summary"], result["b_summary"], result["difference"]
    print(f"{result['metric']} on {result['n']} paired fold/seed runs")
    for name, s in ((result["a"], a), (result["b"], b)):
        print(f"  {name}: mean {s['mean']:.4f}, std {s['std']:.4f}, 95% CI [{s['ci_low']:.4f}, {s['ci_high']:.4f}]")
    print(f"  difference a - b: mean {d['mean']:+.4f}, 95% CI [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]")
    print(f"  paired t-test: t = {result['t']:.3f}, df = {result['df']}, p = {result['t_p']:.4g}")
    print(f"  Wilcoxon signed-rank: W = {result['wilcoxon']:g}, p = {result['wilcoxon_p']:.4g}")
    print(f"recorded as comparison {result['comparison_id']}")


def print_probe(summary: dict) -> None:
    print(f"\nprobe {summary['name']}: {summary['embedding_dim']}-value embeddings, validation clip accuracy per grid point:")
    for point in summary["grid"]:
        print(f"  lr {point['lr']:g} weight decay {point['weight_decay']:g}: {point['val_clip_acc']:.3f} "
              f"(best epoch {point['best_epoch']}, {point['epochs']} run)")
    model = summary["model"]
    print(f"selected lr {model['params']['lr']:g}, weight decay {model['params']['weight_decay']:g}: test clip acc "
          f"{model['test_clip_acc']:.3f} (summed window likelihoods), window acc {model['test_segment_acc']:.3f}")
    print(f"saved: {model['checkpoint_uri']}")


def main(argv: list[str] | None = None) -> int:
    """Run a command; return the process exit code (also for ``--help`` and bad flags)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    try:
        if args.command == "tune":
            from soundsweep.tuner import ExperimentConfig, run_experiment

            cfg = ExperimentConfig(**{f.name: getattr(args, f.name) for f in fields(ExperimentConfig)})
            print_leaderboard(run_experiment(cfg))
        elif args.command == "compare":
            print_comparison(compare(ResultsStore(args.results), args.a, args.b, args.metric))
        elif args.command == "probe":
            from soundsweep.probe import ProbeConfig, run_probe

            print_probe(run_probe(ProbeConfig(**{f.name: getattr(args, f.name) for f in fields(ProbeConfig)})))
        return 0
    except UsageError as exc:
        print(f"soundsweep: error: {exc}", file=sys.stderr)
        return 2


def console_main() -> None:
    sys.exit(main())
