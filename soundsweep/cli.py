"""``soundsweep`` command line (also ``python -m soundsweep`` and ``python -m platform.<command>``
from the repo root).

Bad input exits with code 2 and one line naming the problem and the fix, never a traceback.

Start-up is kept short: this module imports no torch, Ray, Optuna or pandas, and a command's
options are added to the parser only when that command is chosen (:class:`Commands`), so
``soundsweep --help`` reads no command's modules and ``soundsweep tune --help`` only the
configuration classes its flags are made from (benchmarks/cli_startup.py measures both). The
modules that run a command are imported when it runs.
"""
import argparse
import re
import sys
from typing import Callable

from soundsweep.errors import UsageError
from soundsweep.experiment.config import GROUPS, RESULTS_URL, ExperimentConfig
from soundsweep.options import add_options, from_args, given
from soundsweep.registries import stored
from trainables.recipes import RECIPES, TrainingConfig, list_recipes

DEFAULT_DASHBOARD_HINT = "soundsweep dashboard --results {url}"
DEFAULTS = {"results": RESULTS_URL, "seed": 0}
SERVE_MAX_MB = 64.0
"""``soundsweep serve --max-mb``: a 10-minute 16 kHz file fits as 16-bit WAV (19 MB) or float WAV (38 MB)."""
SERVE_MAX_SECONDS = 900.0
"""``soundsweep serve --max-seconds``: compressed audio can be small and long; this bounds what one
request decodes (15 minutes of 44.1 kHz stereo are 320 MB of float samples)."""


def _registry_epilog() -> str:
    """``soundsweep tune --help``'s list of spaces, recipes and models (from the stored listing,
    :mod:`soundsweep.registries`, since the space and model registries need torch to fill)."""
    listing = stored()
    spaces = "\n".join(f"  {n:<14} {s['description']} ({s['configurations']} configurations)"
                       for n, s in listing["spaces"].items())
    models = "\n".join(f"  {n:<14} input {m['input']}; {m['paper']}"
                       + (f"; widths {'/'.join(map(str, m['widths']))}" if m["widths"] else "")
                       for n, m in listing["models"].items())
    recipes = "\n".join(f"  {n:<14} {RECIPES[n].epochs} epochs; {RECIPES[n].description}" for n in list_recipes())
    return (f"search spaces (--space):\n{spaces}\n\nrecipes (--recipe):\n{recipes}\n\nmodels (--arch):\n{models}\n\n"
            "With no --data, the embedded synthetic dataset is generated once into ~/.cache/soundsweep.\n"
            "Watch the search: soundsweep dashboard --results URL (SoundSweep's pages and optuna-dashboard;\n"
            "Ray's own dashboard shows the cluster).")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage block) and exit code 2."""

    def error(self, message: str):
        # "argument --x: invalid choice: 'v' (choose from ...)" reads as the config checks do.
        choice = re.fullmatch(r"argument (\S+): invalid choice: (.*) \(choose from (.*)\)", message)
        if choice:
            flag, value, known = (part.replace("'", "") for part in choice.groups())
            message = f"{flag.split('/')[-1]} {value}: invalid choice: '{value}' (choose from {known})"
        self.exit(2, f"soundsweep: error: {message}; see '{self.prog} --help'\n")


class Commands(argparse._SubParsersAction):
    """The sub-commands, each added with the function that adds its options; those run when the
    command is chosen (or :meth:`complete` is asked), so parsing one command, or ``--help``,
    never imports what another command's options are made from (``probe`` lists the model
    zoo, which loads torch)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending: dict[str, Callable[[argparse.ArgumentParser], None]] = {}

    def add_command(self, name: str, options: Callable[[argparse.ArgumentParser], None], **kwargs):
        """A sub-command ``name`` (``kwargs`` as for ``add_parser``) whose options ``options`` adds."""
        self.pending[name] = options
        return self.add_parser(name, **kwargs)

    def complete(self, name: str) -> argparse.ArgumentParser:
        """The parser of command ``name`` with its options."""
        parser = self.choices[name]
        if name in self.pending:
            self.pending.pop(name)(parser)
        return parser

    def __call__(self, parser, namespace, values, option_string=None):
        if values and values[0] in self.choices:
            self.complete(values[0])
        super().__call__(parser, namespace, values, option_string)


class Version(argparse.Action):
    """``--version``: ``soundsweep <version>`` from the installed package's metadata (looked up
    only when asked; a checkout used without installing says so)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"soundsweep {version('soundsweep')}")
        except PackageNotFoundError:
            from soundsweep import __version__

            print(f"soundsweep {__version__} (not installed: pip install -e . from the repository)")
        parser.exit()


def build_parser() -> OneLineParser:
    """The ``soundsweep`` parser; each command's options are added when it is parsed
    (:func:`command_parser` gives one command's complete parser)."""
    parser = OneLineParser(prog="soundsweep", description="Distributed audio-classification experiments on Ray.")
    parser.add_argument("--version", action=Version, help="print the installed version and exit")
    commands = parser.add_subparsers(dest="command", required=True, action=Commands)
    commands.add_command(
        "tune", tune_options,
        help="search a space with Ray Tune + Optuna and register the best model",
        description="Run a Ray Tune search (Optuna TPE + ASHA) over a search space, train each trial with the "
                    "per-worker loop, record every trial in the results store and evaluate the best model on the "
                    "test split.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands.add_command(
        "dashboard", dashboard_options,
        help="serve the live view of a results store: SoundSweep's pages and optuna-dashboard",
        description="Serve SoundSweep's pages (experiments, leaderboard, trials, figures) and optuna-dashboard "
                    "on one port, both reading the results database live; print their URLs and the Ray "
                    "dashboard's when a Ray cluster is running. Ctrl-C stops it.",
    )
    commands.add_command(
        "report", report_options,
        help="write one experiment as a static HTML page with PNG figures",
        description="Write the experiment's page of the dashboard, with every trial's section, as DIR/index.html "
                    "plus its PNG figures: a folder to archive, attach or publish.",
    )
    commands.add_command(
        "shard", shard_options,
        help="pack a dataset's audio files into shards (Parquet or WebDataset tar)",
        description="Pack every clip's encoded audio, unchanged, with its manifest row into shards of about "
                    "--shard-size-mb, plus shards.json (the shard manifest) and index.parquet (one row per clip). "
                    "Train from them with 'soundsweep tune --data OUT': one Ray Data task decodes each shard.",
    )
    commands.add_command(
        "compare", compare_options,
        help="paired t-test and Wilcoxon signed-rank test of two configurations' per-fold/per-seed scores",
        description="Compare two configurations on the folds and seeds both ran (soundsweep tune --folds/--repeats, "
                    "or a screening): paired t-test and Wilcoxon signed-rank test, recorded in the results store. A "
                    "configuration is EXPERIMENT/TRIAL (the configuration that trial belongs to; the configuration "
                    "table names each by its first trial) or EXPERIMENT (its configuration with the best mean "
                    "validation accuracy).",
    )
    commands.add_command(
        "probe", probe_options,
        help="frozen embeddings of a front-end + OpenL3's MLP probe (1 s windows, lr x weight decay grid)",
        description="Embed every clip's 1 s windows (0.1 s hop) with a frozen registered model (the input of its "
                    "classifier block; seeded random weights, or a stored checkpoint's), train OpenL3's MLP "
                    "(512-128, early stopping, lr x weight decay in {1e-5, 1e-4, 1e-3}^2 selected on the val split) "
                    "and test it, summing window likelihoods per clip; recorded in the results store.",
    )
    commands.add_command("two-stage", two_stage_options,
                         help="fuse a fine and a coarse model (DCASE2020 two-stage classification)",
                         description="Score each fine class by its fine probability times the probability of its "
                                     "super-class, with the best models of two experiments; report coarse, fine and "
                                     "fused accuracy and store the fused model.")
    commands.add_command("ensemble", ensemble_options,
                         help="combine stored models: mean probabilities or logistic-regression stacking",
                         description="Average the members' probabilities (mean) or stack them with a logistic "
                                     "regression fit on the validation split (stack); evaluate on the test split and "
                                     "store the ensemble as a model.")
    commands.add_command("quantize", quantize_options,
                         help="int8 weights for a stored model: size and accuracy before and after",
                         description="Quantize every convolution and linear layer to int8 per output channel, "
                                     "compare size (KB) and test accuracy with the float model, store the result.")
    commands.add_command(
        "predict", predict_options,
        help="label audio files, folders or a manifest with a stored model (Ray Data, any scale)",
        description="Decode, segment and score each clip exactly as the model's test clips were (same decode "
                    "settings, TTA views and clip aggregation as registered) and write one row per clip: path, "
                    "label, probability and the top classes. Progress, throughput and, for a labelled manifest, "
                    "accuracy and the confusion matrix go to stderr; a file that cannot be used is listed and skipped.")
    commands.add_command(
        "serve", serve_options,
        help="serve a stored model over HTTP (Ray Serve): POST an audio file, get its label as JSON",
        description="Start Ray Serve with --replicas replicas of the model (each loads it once) behind an HTTP "
                    "endpoint; each request's audio file (the body, or a multipart upload in the field 'file') is "
                    "decoded, segmented and scored exactly as 'soundsweep predict' does it, and answered with "
                    "predict's JSON row plus segments, seconds and notes. A request that cannot be labelled gets a "
                    "4xx answer {\"error\": ...} (405 not POST, 400 empty, 413 too large, 415 not audio, 422 too "
                    "short). Prints the URL; Ctrl-C shuts Serve down.")
    commands.add_command(
        "export", export_options,
        help="write a stored model as one TorchScript or ONNX file (front-end included) with its model card",
        description="Write the model as one graph from a (batch, channels, samples) float32 waveform batch, one "
                    "segment at the model's sample rate, to (batch, classes) softmax probabilities, front-end "
                    "included: model.pt (TorchScript: torch.jit.load) or model.onnx (ONNX opset 17: onnxruntime), "
                    "checked against the PyTorch model before it is kept, plus model_card.json and model_card.md "
                    "(classes, how to cut clips into segments and aggregate them as the model was evaluated, data, "
                    "metrics, size, search, versions). Test-time augmentation is not in the graph. Trained and "
                    "int8 models export; ensembles and two-stage models are refused: export their members.")
    return parser


def command_parser(name: str, parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The complete parser of command ``name`` (of ``parser``, default a new :func:`build_parser`)."""
    parser = parser or build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, Commands)]
    return commands.complete(name)


def tune_options(tune: argparse.ArgumentParser) -> None:
    """``soundsweep tune``: a flag per :class:`ExperimentConfig` field, the training-recipe flags
    (:class:`TrainingConfig`), ``--config``/``--print-config`` and the registries' list."""
    tune.epilog = _registry_epilog()
    settings = tune.add_argument_group("settings file")
    settings.add_argument("--config", metavar="FILE",
                          help="YAML file of settings, one 'key: value' per flag, the key being the flag's name with _ "
                               "for - (space: augmentation, max_epochs: 20, lr: 0.001); flags given beside it override it")
    settings.add_argument("--print-config", action="store_true",
                          help="print the effective settings (the file's, the flags', the recipe's values) as YAML "
                               "that --config reads, and exit without running")
    add_options(tune, ExperimentConfig, GROUPS)
    add_options(tune, TrainingConfig, group="training recipe (each flag overrides the --recipe's value)", unset=True)


def dashboard_options(dash: argparse.ArgumentParser) -> None:
    add_results_argument(dash)
    dash.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    dash.add_argument("--port", type=int, default=8080, help="port (default %(default)s; 0 = any free port)")
    dash.add_argument("--address", default=None,
                      help="Ray cluster whose dashboard URL to print (default: $RAY_ADDRESS, else one running here)")


def report_options(report: argparse.ArgumentParser) -> None:
    report.add_argument("--experiment", required=True, help="experiment name (--name of the tune run)")
    report.add_argument("--out", required=True, metavar="DIR", help="folder to write (created if missing)")
    add_results_argument(report)


def shard_options(shard: argparse.ArgumentParser) -> None:
    from soundsweep.catalog import DatasetOptions
    from trainables.shards import WRITERS

    add_options(shard, DatasetOptions)
    shard.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="seed of the split for layouts that state none")
    shard.add_argument("--out", required=True, help="folder or URI (s3://..., gs://...) to write the shard set to")
    shard.add_argument("--shard-size-mb", type=float, default=64.0, help="audio MiB per shard (default %(default)s)")
    shard.add_argument("--format", default="parquet", choices=list(WRITERS), help="default %(default)s")


def compare_options(cmp: argparse.ArgumentParser) -> None:
    from soundsweep.configurations import DEFAULT_METRIC

    cmp.add_argument("a", help="EXPERIMENT or EXPERIMENT/TRIAL")
    cmp.add_argument("b", help="EXPERIMENT or EXPERIMENT/TRIAL")
    cmp.add_argument("--metric", default=DEFAULT_METRIC, help="score compared (default %(default)s)")
    add_results_argument(cmp)


def probe_options(probe: argparse.ArgumentParser) -> None:
    from soundsweep.probe import ProbeConfig

    add_options(probe, ProbeConfig, ("what to embed", "data", "training", "where results go"))


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    """``--results``, the results store every command reads or writes."""
    parser.add_argument("--results", default=DEFAULTS["results"], help="SQLAlchemy URL of the results store")


def stored_model_options(command: argparse.ArgumentParser) -> None:
    """What every command on stored models (two-stage, ensemble, quantize, predict) takes."""
    add_results_argument(command)
    command.add_argument("--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")


def two_stage_options(two: argparse.ArgumentParser) -> None:
    two.add_argument("--fine-experiment", required=True, metavar="NAME", help="experiment trained on the labels")
    two.add_argument("--coarse-experiment", required=True, metavar="NAME", help="experiment trained with --coarse")
    two.add_argument("--hierarchy", default=None, metavar="FILE",
                     help="CSV fine,coarse (default: the coarse experiment's, else the dataset's coarse_label)")
    stored_model_options(two)


def ensemble_options(ens: argparse.ArgumentParser) -> None:
    from soundsweep.derived.ensemble import METHODS

    ens.add_argument("--experiment", default=None, metavar="NAME", help="take the --top-k best trials of this experiment")
    ens.add_argument("--top-k", type=int, default=3, help="members from --experiment (default %(default)s)")
    ens.add_argument("--models", default=None, metavar="ID,ID,...", help="stored model ids instead of --experiment")
    ens.add_argument("--method", default="mean", choices=METHODS, help="default %(default)s")
    stored_model_options(ens)


def quantize_options(quant: argparse.ArgumentParser) -> None:
    quant.add_argument("--model", type=int, required=True, metavar="ID", help="stored model id")
    stored_model_options(quant)


def model_reference_options(command: argparse.ArgumentParser) -> None:
    """``--model REF`` and ``--experiment NAME``, as :func:`soundsweep.predict.resolve` takes them."""
    command.add_argument("--model", required=True, metavar="REF",
                         help="model id, experiment name (its registered best model) or checkpoint folder/URI")
    command.add_argument("--experiment", default=None, metavar="NAME",
                         help="for a checkpoint the results store does not list: the experiment whose data settings "
                              "and classes it was trained with")


def predict_options(predict: argparse.ArgumentParser) -> None:
    """``soundsweep predict`` (:mod:`soundsweep.predict`)."""
    model_reference_options(predict)
    predict.add_argument("inputs", nargs="+", metavar="INPUT",
                         help="audio files, folders (searched recursively) or manifest CSVs (path[,label][,split])")
    predict.add_argument("--out", default=None, metavar="FILE", help="write rows here (default: stdout)")
    predict.add_argument("--format", default=None, choices=["csv", "jsonl"],
                         help="default: jsonl for a .jsonl --out, else csv")
    predict.add_argument("--top-k", type=int, default=3, help="classes listed per row (default %(default)s)")
    predict.add_argument("--segments", action="store_true", help="add a row per segment after each clip's row")
    predict.add_argument("--tta", type=int, default=None, metavar="N",
                         help="test-time augmentation views (default: as the model was evaluated; 1 = none)")
    predict.add_argument("--split", default=None, help="keep only this split of a manifest CSV (e.g. test)")
    predict.add_argument("--workers", type=int, default=None,
                         help="model actors, each loading the model once (default: half the cluster's CPUs)")
    predict.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per model actor (default none)")
    predict.add_argument("--verbose", action="store_true", help="print Ray's own log lines here too")
    stored_model_options(predict)


def serve_options(serving: argparse.ArgumentParser) -> None:
    """``soundsweep serve`` (:mod:`soundsweep.serve`)."""
    model_reference_options(serving)
    serving.add_argument("--host", default="127.0.0.1",
                         help="address the HTTP proxy listens on (default %(default)s: this machine only)")
    serving.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    serving.add_argument("--replicas", type=int, default=1,
                         help="model replicas, each loading the model once and taking 1 CPU (default %(default)s)")
    serving.add_argument("--gpus-per-replica", type=float, default=0.0, help="GPUs per replica (default none)")
    serving.add_argument("--max-mb", type=float, default=SERVE_MAX_MB,
                         help="largest request body in MiB, else 413 (default %(default)g: a 10-minute 16 kHz WAV fits)")
    serving.add_argument("--max-seconds", type=float, default=SERVE_MAX_SECONDS,
                         help="longest audio in seconds, read from the file's header before decoding, else 413 "
                              "(default %(default)g)")
    serving.add_argument("--top-k", type=int, default=3, help="classes listed per answer (default %(default)s)")
    serving.add_argument("--tta", type=int, default=None, metavar="N",
                         help="test-time augmentation views (default: as the model was evaluated; 1 = none)")
    serving.add_argument("--verbose", action="store_true", help="print Ray's own log lines here too")
    stored_model_options(serving)


def export_options(export: argparse.ArgumentParser) -> None:
    """``soundsweep export`` (:mod:`soundsweep.export`)."""
    model_reference_options(export)
    export.add_argument("--format", required=True, choices=["torchscript", "onnx"],
                        help="torchscript: model.pt; onnx: model.onnx (needs pip install 'soundsweep[export]')")
    export.add_argument("--out", required=True, metavar="DIR", help="folder to write the artifact and card to")
    add_results_argument(export)


def print_leaderboard(summary, top: int = 5) -> None:
    from soundsweep.configurations import format_table

    varying = sorted({k for t in summary.trials for k in t["params"]
                      if len({str(u["params"].get(k)) for u in summary.trials}) > 1})
    ranked = sorted(summary.trials, key=lambda t: -t["best"].get("val_clip_acc", 0.0))[:top]
    print(f"\nleaderboard ({summary.name}, {len(summary.trials)} trials, {summary.wall_s:.0f} s; "
          "validation accuracy at the epoch each trial keeps, its best or last: --select-epoch):")
    print(f"  {'trial':<10} {'status':<10} {'epochs':>6} {'kept':>5} {'val seg':>8} {'val clip':>9}  config")
    ref = summary.reference
    print(f"  {'reference':<10} {'':<10} {'':>6} {'':>5} {ref['val_segment_acc']:>8.3f} {ref['val_clip_acc']:>9.3f}  "
          f"{ref['method']}, C={ref['C']:g}")
    for t in ranked:
        m = t["best"]
        values = " ".join(f"{k}={t['params'].get(k)}" for k in varying)
        seg = f"{m['val_segment_acc']:>8.3f}" if "val_segment_acc" in m else f"{'-':>8}"  # screening: clips only
        print(f"  {t['trial_id']:<10} {t['status']:<10} {t['epochs']:>6} {m.get('epoch', '-'):>5} "
              f"{seg} {m.get('val_clip_acc', 0):>9.3f}  {values}")
    pruned = [t for t in summary.trials if t["status"] == "PRUNED"]
    if pruned:
        print(f"pruned before training: {len(pruned)} trial(s) over --max-model-kb or --max-params")
    best, single, ens = summary.best, summary.best_single, summary.ensemble
    ensemble_kept = bool(best) and best.get("kind") == "ensemble"
    if best:
        what = (f"the ensemble of models {', '.join(map(str, best['sources']))} (mean probability, kept by "
                "--ensemble-top)" if ensemble_kept else f"trial {best['trial_id']} epoch {best['epoch']}")
        print(f"\nbest model {best['model_id']}: {what}, {best['num_params']:,} parameters")
        print_evaluation(best)
        margin = best["test_clip_acc"] - ref["test_clip_acc"]
        print(f"  vs reference ({ref['method']}): test clip acc {best['test_clip_acc']:.3f} vs "
              f"{ref['test_clip_acc']:.3f}, {abs(margin) * 100:.1f} points {'above' if margin >= 0 else 'below'}")
    if single and ensemble_kept:
        print(f"best single model {single['model_id']}: trial {single['trial_id']} epoch {single['epoch']}, test "
              f"clip acc {single['test_clip_acc']:.3f}; checkpoint: {single['checkpoint_uri']}")
    elif single:
        print(f"checkpoint: {single['checkpoint_uri']}")
    if ens and not ensemble_kept:
        margin = ens["test_clip_acc"] - ref["test_clip_acc"]
        print(f"ensemble model {ens['model_id']}: mean probability of models {', '.join(map(str, ens['sources']))}; "
              f"val clip acc {ens['val_clip_acc']:.3f}, test clip acc {ens['test_clip_acc']:.3f}, "
              f"{abs(margin) * 100:.1f} points {'above' if margin >= 0 else 'below'} the reference (not kept as the "
              "best model: averaging hurt on validation)")
    if summary.pareto:
        print("\nPareto front: " + ", ".join(
            f"{row['trial_id']} ({', '.join(f'{k}={v:.4g}' for k, v in row.items() if k != 'trial_id')})"
            for row in summary.pareto))
    if summary.configurations:
        print("\n" + format_table(summary.configurations))
    skipped = summary.data.failures
    print(f"skipped files: {len(skipped)}" + "".join(f"\n  {f['path']}: {f['error']}" for f in skipped))
    print(f"results store: {summary.results_url}")
    print(f"report: {summary.report[0]} ({len(summary.report) - 1} figures beside it)")
    if summary.mlflow_run:
        print(f"mlflow: best model's checkpoint and report in run {summary.mlflow_run} of {summary.mlflow}")
    print(f"dashboard: {DEFAULT_DASHBOARD_HINT.format(url=summary.results_url)}")


def accuracies(m: dict, prefix: str = "test") -> str:
    """Segment accuracy and clip accuracy by both aggregations, from ``Predictions.metrics(prefix)``."""
    return (f"segment acc {m[f'{prefix}_segment_acc']:.3f}, clip acc {m[f'{prefix}_clip_acc']:.3f} (majority vote), "
            f"{m[f'{prefix}_clip_acc_mean']:.3f} (mean probability)")


def print_evaluation(row: dict) -> None:
    """A stored model's test accuracies: as chosen on validation, plain, and with TTA."""
    m = row["metrics"]
    if "evaluation" in m:
        chosen = m["evaluation"]
        print(f"  evaluation chosen on val: {chosen['views']} view(s), {chosen['aggregation'].replace('_', ' ')}; "
              f"test clip acc {row['test_clip_acc']:.3f}")
        print(f"  test without TTA: {accuracies(m['plain'])}")
    else:
        print(f"  test: {accuracies(m)}")
    if "tta" in m:
        print(f"  test with TTA ({m['tta']['views']} views): {accuracies(m['tta'])}")

def run_protocol(args) -> None:
    """two-stage, ensemble or quantize: evaluate, store, print what was computed."""
    from soundsweep.derived import ensemble, quantize_model, two_stage
    from soundsweep.experiment.preflight import connect_ray
    from soundsweep.results import ResultsStore

    try:
        ids = [int(i) for i in args.models.split(",")] if getattr(args, "models", None) else None
    except ValueError as exc:
        raise UsageError(f"--models {args.models}: give model ids separated by commas, e.g. 3,5,7") from exc
    store = ResultsStore(args.results, must_exist=True)  # the models and experiments it reads must be there
    connect_ray(args.address)
    if args.command == "two-stage":
        row = two_stage(store, args.fine_experiment, args.coarse_experiment, args.hierarchy)
        for part in ("coarse", "fine"):
            print(f"{part} model {row['params'][part + '_model']}: test {accuracies(row['metrics'][part])}")
        print(f"two-stage model {row['model_id']} (fine x coarse):")
    elif args.command == "ensemble":
        row = ensemble(store, args.method, args.experiment, args.top_k, ids)
        for member, m in row["metrics"]["members"].items():
            print(f"member {member}: test {accuracies(m)}")
        fit = " (stacking fit on the validation split)" if args.method == "stack" else ""
        print(f"ensemble model {row['model_id']}, {args.method} of {len(row['sources'])}{fit}:")
    else:
        row = quantize_model(store, args.model)
        m = row["metrics"]
        print(f"float model {args.model}: {m['float_kb']:.1f} KB; test {accuracies(m['float'])}")
        print(f"int8 model {row['model_id']}: {m['int8_kb']:.1f} KB ({m['size_ratio']:.2f}x smaller); agrees with the "
              f"float model on {m['clip_agreement']:.1%} of test clips, {m['segment_agreement']:.1%} of segments; "
              f"saved to {row['checkpoint_uri']}")
    print_evaluation(row)
    print(f"results store: {args.results}")


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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line; for ``tune --config FILE`` the file's settings are the flags'
    defaults, so the flags given override them (a bad file: ``UsageError``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "tune" and args.config:
        from soundsweep import config_file

        tune = command_parser("tune", parser)
        tune.set_defaults(**config_file.read(args.config, tune))
        args = parser.parse_args(argv)
    return args


def experiment_config(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment ``soundsweep tune`` was asked for (the training-recipe flags as overrides)."""
    return from_args(ExperimentConfig, args, overrides=given(TrainingConfig, args))


def main(argv: list[str] | None = None) -> int:
    """Run a command; return the process exit code (also for ``--help`` and bad flags)."""
    try:
        args = parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"soundsweep: error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.command == "tune" and args.print_config:
            from soundsweep import config_file

            print(config_file.write(experiment_config(args).flag_values()), end="")
        elif args.command == "tune":
            from soundsweep.experiment import run_experiment

            print_leaderboard(run_experiment(experiment_config(args)))
        elif args.command == "dashboard":
            from soundsweep.dashboard import serve

            serve(args.results, args.host, args.port, args.address)
        elif args.command == "report":
            from soundsweep.report import write_report

            print(f"report: {write_report(args.results, args.experiment, args.out)[0]}")
        elif args.command == "shard":
            from soundsweep.catalog import DatasetOptions
            from soundsweep.catalog.shards import pack

            manifest = from_args(DatasetOptions, args).manifest(args.seed)
            summary = pack(manifest, args.out, args.shard_size_mb, args.format)
            print(f"packed {summary['clips']} clips ({summary['bytes'] / 2**20:.1f} MiB) into {len(summary['shards'])} "
                  f"{args.format} shard(s) at {args.out}; train from them with --data {args.out}")
            if summary["unreadable"]:
                print(f"{summary['unreadable']} file(s) could not be read: stored empty, the decode step lists them")
        elif args.command == "compare":
            from soundsweep.configurations import compare
            from soundsweep.results import ResultsStore

            print_comparison(compare(ResultsStore(args.results, must_exist=True), args.a, args.b, args.metric))
        elif args.command == "probe":
            from soundsweep.probe import ProbeConfig, run_probe

            print_probe(run_probe(from_args(ProbeConfig, args)))
        elif args.command == "predict":
            from soundsweep.predict import run

            run(args)
        elif args.command == "serve":
            from soundsweep.serve import run

            run(args)
        elif args.command == "export":
            from soundsweep.export import run

            run(args)
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
