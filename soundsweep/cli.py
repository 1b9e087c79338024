"""``soundsweep`` command line (also ``python -m platform.<command>`` from the repo root).

Bad input exits with code 2 and one line naming the problem and the fix, never a traceback.
"""
import argparse
import sys
from dataclasses import fields

from search_spaces import SPACES, list_spaces
from soundsweep.catalog import list_datasets
from soundsweep.errors import UsageError
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
    data = tune.add_argument_group("data")
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
    data.add_argument("--coarse", action="store_true",
                      help="train on super-classes (the first stage of two-stage classification): each label "
                           "becomes its super-class from --hierarchy, or from the dataset (DCASE2020 coarse_label)")
    data.add_argument("--hierarchy", default=None, metavar="FILE",
                      help="with --coarse: CSV with the header fine,coarse giving each label's super-class")
    data.add_argument("--sample-rate", type=int, default=defaults["sample_rate"], help="resample to this rate (Hz)")
    data.add_argument("--channels", type=int, default=defaults["channels"], help="1 = mono, 2 = stereo")
    data.add_argument("--segment-seconds", type=float, default=defaults["segment_seconds"], help="window length (s)")
    data.add_argument("--overlap", type=float, default=defaults["overlap"], help="window overlap fraction")
    budget = tune.add_argument_group("budget and scheduling")
    budget.add_argument("--num-samples", type=int, default=defaults["num_samples"], help="trials (default %(default)s)")
    budget.add_argument("--max-epochs", type=int, default=defaults["max_epochs"], help="epochs per trial at most")
    budget.add_argument("--scheduler", default=defaults["scheduler"], help=f"{' or '.join(SCHEDULERS)} (early stopping)")
    budget.add_argument("--max-concurrent", type=int, default=None, help="trials at once (default: as many as fit)")
    budget.add_argument("--seed", type=int, default=defaults["seed"], help="experiment seed; every other seed derives from it")
    budget.add_argument("--max-failures", type=int, default=defaults["max_failures"],
                        help="retries of a failing trial from its last checkpoint")
    budget.add_argument("--max-model-kb", type=float, default=None, metavar="KB",
                        help="int8 model size budget (DCASE2020 1b: 500): a configuration whose quantized model is "
                             "larger is pruned before it trains")
    budget.add_argument("--tta-views", type=int, default=defaults["tta_views"],
                        help="test-time augmentation views per segment in the final test (1 = off; default "
                             "%(default)s)")
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
    _protocol_parsers(sub, defaults)
    return parser


def _protocol_parsers(sub, defaults: dict) -> None:
    """The commands that work on stored models: two-stage, ensemble, quantize."""
    from soundsweep.protocols.ensemble import METHODS

    def common(command):
        command.add_argument("--results", default=defaults["results"], help="SQLAlchemy URL of the results store")
        command.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")

    two = sub.add_parser("two-stage", help="fuse a fine and a coarse model (DCASE2020 two-stage classification)",
                         description="Score each fine class by its fine probability times the probability of its "
                                     "super-class, with the best models of two experiments; report coarse, fine and "
                                     "fused accuracy and store the fused model.")
    two.add_argument("--fine-experiment", required=True, metavar="NAME", help="experiment trained on the labels")
    two.add_argument("--coarse-experiment", required=True, metavar="NAME", help="experiment trained with --coarse")
    two.add_argument("--hierarchy", default=None, metavar="FILE",
                     help="CSV fine,coarse (default: the coarse experiment's, else the dataset's coarse_label)")
    common(two)
    ens = sub.add_parser("ensemble", help="combine stored models: mean probabilities or logistic-regression stacking",
                         description="Average the members' probabilities (mean) or stack them with a logistic "
                                     "regression fit on the validation split (stack); evaluate on the test split and "
                                     "store the ensemble as a model.")
    ens.add_argument("--experiment", default=None, metavar="NAME", help="take the --top-k best trials of this experiment")
    ens.add_argument("--top-k", type=int, default=3, help="members from --experiment (default %(default)s)")
    ens.add_argument("--models", default=None, metavar="ID,ID,...", help="stored model ids instead of --experiment")
    ens.add_argument("--method", default="mean", choices=METHODS, help="default %(default)s")
    common(ens)
    quant = sub.add_parser("quantize", help="int8 weights for a stored model: size and accuracy before and after",
                           description="Quantize every convolution and linear layer to int8 per output channel, "
                                       "compare size (KB) and test accuracy with the float model, store the result.")
    quant.add_argument("--model", type=int, required=True, metavar="ID", help="stored model id")
    common(quant)


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
        print(f"  {t['trial_id']:<10} {t['status']:<10} {t['epochs']:>6} {m.get('epoch', '-'):>5} "
              f"{m.get('val_segment_acc', 0):>8.3f} {m.get('val_clip_acc', 0):>9.3f}  {values}")
    pruned = [t for t in summary.trials if t["status"] == "PRUNED"]
    if pruned:
        print(f"pruned before training: {len(pruned)} trial(s) over --max-model-kb")
    best = summary.best
    if best:
        print(f"\nbest model {best['model_id']}: trial {best['trial_id']} epoch {best['epoch']}, "
              f"{best['num_params']:,} parameters")
        print_evaluation(best)
        print(f"checkpoint: {best['checkpoint_uri']}")
    skipped = summary.data.failures
    print(f"skipped files: {len(skipped)}" + "".join(f"\n  {f['path']}: {f['error']}" for f in skipped))
    print(f"results store: {summary.results_url}")
    print(f"dashboard: {DEFAULT_DASHBOARD_HINT.format(url=summary.results_url)}")


def print_evaluation(row: dict) -> None:
    """Test accuracy at segment level and at clip level by both aggregations (and with TTA)."""
    m = row["metrics"]
    print(f"  test: segment acc {m['test_segment_acc']:.3f}, clip acc {m['test_clip_acc']:.3f} (majority vote), "
          f"{m['test_clip_acc_mean']:.3f} (mean probability)")
    if "tta" in m:
        t = m["tta"]
        print(f"  test with TTA ({t['views']} views): segment acc {t['test_segment_acc']:.3f}, clip acc "
              f"{t['test_clip_acc']:.3f} (majority vote), {t['test_clip_acc_mean']:.3f} (mean probability)")


def run_protocol(args) -> None:
    """two-stage, ensemble or quantize: evaluate, store, print what was computed."""
    from soundsweep.protocols import ensemble, quantize_model, two_stage
    from soundsweep.results import ResultsStore
    from soundsweep.tuner import connect_ray

    store = ResultsStore(args.results)
    connect_ray(args.address)
    if args.command == "two-stage":
        row = two_stage(store, args.fine_experiment, args.coarse_experiment, args.hierarchy)
        m = row["metrics"]
        for part in ("coarse", "fine"):
            print(f"{part} model {row['params'][part + '_model']}: test segment acc {m[part]['test_segment_acc']:.3f}, "
                  f"clip acc {m[part]['test_clip_acc']:.3f} (majority vote), {m[part]['test_clip_acc_mean']:.3f} (mean)")
        print(f"two-stage model {row['model_id']} (fine x coarse):")
    elif args.command == "ensemble":
        try:
            ids = [int(i) for i in args.models.split(",")] if args.models else None
        except ValueError as exc:
            raise UsageError(f"--models {args.models}: give model ids separated by commas, e.g. 3,5,7") from exc
        row = ensemble(store, args.method, args.experiment, args.top_k, ids)
        for member, m in row["metrics"]["members"].items():
            print(f"member {member}: test segment acc {m['test_segment_acc']:.3f}, clip acc {m['test_clip_acc']:.3f} "
                  f"(majority vote), {m['test_clip_acc_mean']:.3f} (mean)")
        fit = " (stacking fit on the validation split)" if args.method == "stack" else ""
        print(f"ensemble model {row['model_id']}, {args.method} of {len(row['sources'])}{fit}:")
    else:
        row = quantize_model(store, args.model)
        m = row["metrics"]
        print(f"float model {args.model}: {m['float_kb']:.1f} KB; test segment acc {m['float']['test_segment_acc']:.3f}, "
              f"clip acc {m['float']['test_clip_acc']:.3f} (majority vote), {m['float']['test_clip_acc_mean']:.3f} (mean)")
        print(f"int8 model {row['model_id']}: {m['int8_kb']:.1f} KB ({m['size_ratio']:.2f}x smaller); agrees with the "
              f"float model on {m['clip_agreement']:.1%} of test clips, {m['segment_agreement']:.1%} of segments; "
              f"saved to {row['checkpoint_uri']}")
    print_evaluation(row)
    print(f"results store: {args.results}")


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
        else:
            run_protocol(args)
        return 0
    except UsageError as exc:
        print(f"soundsweep: error: {exc}", file=sys.stderr)
        return 2


def console_main() -> None:
    sys.exit(main())


def run_command(command: str) -> None:
    """``python -m platform.<command>``: ``soundsweep <command>`` with the process's arguments."""
    sys.exit(main([command, *sys.argv[1:]]))
