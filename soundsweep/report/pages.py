"""Server-rendered HTML of SoundSweep's pages: plain tables and PNG figures, no JavaScript.

One renderer serves two outputs. Where a page points (another page, a figure) is asked of a
:class:`Links` object: the dashboard's answers with URLs and renders figures on request; the
static report's writes each figure next to ``index.html`` and links trials to sections of the
same page. The page functions themselves do not know which output they feed.
"""
from html import escape
from typing import Protocol

from soundsweep import provenance
from soundsweep.report.plots import Plot
from soundsweep.report.views import METRIC, ExperimentView, TrialView, leaderboard, model_name, per_class, per_device
from soundsweep.results.store import Model

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1250px; }
nav a { margin-right: 1.2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.2em; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: 12px; word-break: break-all; }
td a { white-space: nowrap; }
code.config { word-break: normal; }
.bar { background: #4c78a8; height: 0.8em; display: inline-block; }
.note { color: #666; }
section.trial { border-top: 2px solid #ccc; margin-top: 1.5em; }
"""


class Links(Protocol):
    """Where the pages of one output live. ``live`` is true for the dashboard (pages refresh
    while an experiment runs, the heatmap axes can be chosen)."""

    live: bool

    def nav(self) -> list[tuple[str, str]]:
        """(label, URL) pairs for the top of every page."""

    def experiment(self, name: str) -> str:
        """URL of an experiment's page."""

    def trial(self, experiment: str, trial_id: str) -> str:
        """URL of a trial's page or section."""

    def plot(self, experiment: ExperimentView, plot: Plot) -> str:
        """URL of a figure (the static output writes the PNG here)."""


def index_page(experiments: list[ExperimentView], links: Links) -> str:
    """Every experiment in the store and one leaderboard of all their trials."""
    rows = []
    for e in experiments:
        best, model = e.best_trial, e.best_model
        rows.append([
            _a(links.experiment(e.name), e.name), escape(e.row.space), escape(e.row.dataset), escape(e.row.status),
            _num(len(e.trials)), _num(best.best.get(METRIC) if best else None),
            _num(model.test_clip_acc if model else None),
            escape(_time(e.row.created_at)), escape(_time(e.row.finished_at)),
        ])
    body = [
        "<h2>Experiments</h2>",
        _table("experiments", ["experiment", "space", "dataset", "status", "trials", "best val clip acc",
                               "best model test clip acc", "started", "finished"], rows),
        "<h2>Leaderboard</h2>",
        '<p class="note">Every trial of every experiment, ranked by validation clip accuracy at its best '
        "epoch; test accuracies for the models registered as an experiment's best.</p>",
        _leaderboard(leaderboard(experiments), links, across=True),
    ]
    running = any(e.row.status == "RUNNING" for e in experiments)
    return _document("SoundSweep experiments", body, links, refresh=running)


def experiment_page(experiment: ExperimentView, links: Links, axes: tuple[str | None, str | None] | None = None,
                    trial_sections: bool = False) -> str:
    """An experiment: summary, its trials ranked, the augmentation-grid heatmap on ``axes``
    (if not valid: :meth:`ExperimentView.default_axes`), accuracy against size and speed, the best
    models with their checkpoints and the best model's test results; ``trial_sections`` adds
    every trial's section (the static report is this one page)."""
    e = experiment
    summary = e.row.summary or {}
    facts = [
        ("status", e.row.status), ("space", e.row.space), ("dataset", e.row.dataset),
        ("started", _time(e.row.created_at)), ("finished", _time(e.row.finished_at)),
        ("data", summary.get("data", "-").removeprefix("data: ")),
        ("resources", summary.get("plan", "-").removeprefix("plan: ")),
        ("wall time", f"{summary['wall_s']:.0f} s" if "wall_s" in summary else "-"),
        ("skipped files", str(len(summary.get("skipped_files", [])))),
    ]
    runs = escape(f"{e.row.storage_path}/{e.name}")
    body = [
        _table("facts", None, [[escape(k), escape(str(v))] for k, v in facts]),
        f'<p class="note">Checkpoints and TensorBoard event files: <code>{runs}</code> (view with '
        f"<code>tensorboard --logdir {runs}</code>); the Optuna study <code>{escape(e.name)}</code> is in the "
        "same database.</p>",
        "<h2>Trials</h2>",
        _leaderboard(leaderboard([e]), links, across=False),
        *_grid_section(e, links, axes if axes and e.valid_axes(*axes) else e.default_axes()),
        "<h2>Accuracy against parameters and time per epoch</h2>",
        _img(links.plot(e, Plot("tradeoff")), "tradeoff", "best val clip accuracy against parameters and time per epoch"),
        *_pareto_section(summary),
        *_configurations_section(summary),
        *_settings_section(e.row.config or {}),
        *(["<h2>Best models</h2>", _models(e)] if e.models else []),
        *_best_model_section(e, links),
        *_provenance_section(e.row.provenance or []),
    ]
    if trial_sections:
        body += [_trial_section(e, t, links) for t in e.trials]
    return _document(f"Experiment {e.name}", body, links, refresh=e.row.status == "RUNNING")


def trial_page(experiment: ExperimentView, trial_id: str, links: Links) -> str:
    """One trial (parameters, learning curves, epochs) and the experiment's best model's results."""
    trial = experiment.trial(trial_id)
    body = [f'<p>{_a(links.experiment(experiment.name), "experiment " + experiment.name)}</p>',
            _trial_section(experiment, trial, links), *_best_model_section(experiment, links)]
    return _document(f"Trial {trial_id} of {experiment.name}", body, links, refresh=trial.status == "RUNNING")


def _leaderboard(trials: list[TrialView], links: Links, across: bool) -> str:
    rows = []
    for rank, t in enumerate(trials, 1):
        best = t.best
        rows.append([
            _num(rank),
            *([_a(links.experiment(t.experiment), t.experiment), escape(t.space)] if across else []),
            _a(links.trial(t.experiment, t.trial_id), t.trial_id), escape(t.model_name),
            f'<code class="config">{escape(" ".join(f"{k}={t.params[k]}" for k in t.searched if k in t.params))}</code>',
            escape(t.status), _num(best.get("epoch")), _num(best.get("val_segment_acc")), _num(best.get(METRIC)),
            _num(t.model.test_segment_acc if t.model else None), _num(t.model.test_clip_acc if t.model else None),
            _num(t.num_params), _num(t.epoch_s, "{:.1f}"),
        ])
    head = ["#", *(["experiment", "space"] if across else []), "trial", "model", "config", "status", "best epoch",
            "val segment acc", "val clip acc", "test segment acc", "test clip acc", "parameters", "s / epoch"]
    return _table("leaderboard", head, rows)


def _grid_section(e: ExperimentView, links: Links, axes: tuple[str, str] | None) -> list[str]:
    out = ["<h2>Search grid</h2>"]
    if axes is None:
        return out + ['<p class="note">The space searches fewer than two parameters: no grid to show.</p>']
    x, y = axes
    if links.live:
        choices = e.searched
        selects = "".join(
            f'<label>{name} <select name="{name}">'
            + "".join(f'<option{" selected" if p == current else ""}>{escape(p)}</option>' for p in choices)
            + "</select></label> "
            for name, current in (("x", x), ("y", y))
        )
        out.append(f'<form method="get">{selects}<button>show</button></form>')
    out.append('<p class="note">Mean of the best validation clip accuracy of the trials in each cell, over all '
               "other parameters (n = trials; grey = not sampled).</p>")
    out.append(_img(links.plot(e, Plot("heatmap", x=x, y=y)), "heatmap", f"heatmap of {y} against {x}"))
    return out


def _models(e: ExperimentView) -> str:
    rows = [[
        _num(m.id), escape(m.trial_id), _num(m.epoch), escape(model_name(m.params)),
        _num(m.num_params), _num(m.val_clip_acc), _num(m.test_segment_acc), _num(m.test_clip_acc),
        escape(m.aggregation), f"<code>{escape(m.checkpoint_uri)}</code>", escape(_time(m.created_at)),
    ] for m in e.models]
    return _table("models", ["model", "trial", "epoch", "architecture", "parameters", "val clip acc",
                             "test segment acc", "test clip acc", "clip vote", "checkpoint", "registered"], rows)


def _best_model_section(e: ExperimentView, links: Links) -> list[str]:
    model = e.best_model
    if model is None:
        return ['<p class="note">No model registered yet: the best model is evaluated when the run ends.</p>']
    rows = [[escape(r["class"]), _num(r["clips"]), _num(r["correct"]), _bar(r["accuracy"]),
             escape(r["confused_with"] or "-")] for r in per_class(model)]
    return [
        f"<h2>Best model of {escape(e.name)}: test split</h2>",
        f"<p>{_model_origin(e, model, links)}: test clip accuracy {model.test_clip_acc:.3f} "
        f"({escape(model.aggregation)}), segment accuracy {model.test_segment_acc:.3f}.</p>",
        *_reference_section(e.row.summary or {}, model),
        *_evaluation_section(model),
        _img(links.plot(e, Plot("confusion")), "confusion", "confusion matrix of the best model on the test split"),
        "<h3>Per-class accuracy</h3>",
        _table("per-class", ["class", "test clips", "correct", "accuracy", "most often predicted instead"], rows),
        *_per_device_section(model),
    ]


def _model_origin(e: ExperimentView, model, links: Links) -> str:
    """Where the best model comes from: its trial and epoch, or the ensemble's members."""
    if model.kind == "ensemble":
        return (f"Model {model.id}, the mean probability of models {', '.join(map(str, model.sources))} "
                "(kept by --ensemble-top)")
    return f"Trial {_a(links.trial(e.name, model.trial_id), model.trial_id)}, epoch {model.epoch}"


def _reference_section(summary: dict, model) -> list[str]:
    """How far the best model is above or below the run's reference baseline, on the same split."""
    ref = summary.get("reference")
    if not ref:
        return []
    margin = model.test_clip_acc - ref["test_clip_acc"]
    rows = [["best model", _num(model.val_clip_acc), _num(model.test_clip_acc)],
            [escape(f"reference: {ref['method']} (C={ref['C']:g})"), _num(ref["val_clip_acc"]),
             _num(ref["test_clip_acc"])]]
    return [f"<p><strong>{abs(margin) * 100:.1f} points {'above' if margin >= 0 else 'below'} the reference</strong> "
            "(test clip accuracy, same split and clip vote).</p>",
            _table("reference", ["", "val clip acc", "test clip acc"], rows)]


def _evaluation_section(model) -> list[str]:
    """The test-time evaluation chosen on validation, every candidate's validation figure, and the
    test figures without TTA and with the run's TTA beside the chosen one."""
    chosen = model.metrics.get("evaluation")
    if not chosen:
        return []
    rows = [[_num(c["views"]), escape(c["aggregation"]), _num(c["val_clip_acc"]),
             "chosen" if (c["views"], c["aggregation"]) == (chosen["views"], chosen["aggregation"]) else ""]
            for c in chosen["val"]]
    plain, tta = model.metrics.get("plain", {}), model.metrics.get("tta", {})
    tests = [["no TTA", _num(plain.get("test_clip_acc")), _num(plain.get("test_clip_acc_mean"))],
             *([[f"TTA, {tta['views']} views", _num(tta.get("test_clip_acc")), _num(tta.get("test_clip_acc_mean"))]]
               if tta else [])]
    return ["<h3>Evaluation chosen on validation</h3>",
            _table("evaluation", ["TTA views", "clip aggregation", "val clip acc", ""], rows),
            _table("test-sides", ["test", "majority vote", "mean probability"], tests)]


def _settings_section(config: dict) -> list[str]:
    """The run's settings as the ``--config`` file that repeats it (``config["config_yaml"]``,
    recorded by ``soundsweep tune``; absent for other commands and older runs)."""
    if not config.get("config_yaml"):
        return []
    return ["<h2>Settings</h2>",
            '<p class="note">Every setting of this run, as resolved; saved as a file, <code>soundsweep tune --config '
            "FILE</code> runs the same search again (add <code>--name</code> for a new experiment).</p>",
            f"<details><summary>settings (YAML)</summary><pre>{escape(config['config_yaml'])}</pre></details>"]


def _pareto_section(summary: dict) -> list[str]:
    """A multi-objective search's Pareto front (``summary["pareto"]``): each trial's objective values."""
    front = summary.get("pareto") or []
    if not front:
        return []
    metrics = [k for k in front[0] if k != "trial_id"]
    rows = [[escape(r["trial_id"]), *(_num(r[m]) for m in metrics)] for r in front]
    return [f"<h3>Pareto front ({escape(', '.join(summary.get('objectives', [])))})</h3>",
            _table("pareto", ["trial", *metrics], rows)]


def _configurations_section(summary: dict) -> list[str]:
    """Each configuration's test clip accuracy over its folds and seeds (``summary["configurations"]``)."""
    table = summary.get("configurations") or []
    if not table:
        return []
    rows = [[escape(r["configuration"]), _num(r["score"]["n"]), _num(r["val_mean"]), _num(r["score"]["mean"]),
             _num(r["score"]["std"]), f"[{_num(r['score']['ci_low'])}, {_num(r['score']['ci_high'])}]",
             escape(r["setting"])] for r in table]
    return ["<h2>Configurations over folds and seeds</h2>",
            '<p class="note">Test clip accuracy of each run (fold x seed): mean, sample std and 95% interval.</p>',
            _table("configurations", ["configuration", "runs", "val", "mean", "std", "95% CI", "setting"], rows)]


def _provenance_section(entries: list[dict]) -> list[str]:
    """The software, code and machine of each start of the run (:mod:`soundsweep.provenance`): one
    column for the first run, one for each ``--resume``."""
    if not entries:
        return ["<h2>Provenance</h2>", '<p class="note">Not recorded: the run predates provenance records.</p>']
    head = ["", *(f"{'started' if i == 0 else 'resumed'} {_time(entry.get('collected_at'))}"
                  for i, entry in enumerate(entries))]
    columns = [provenance.facts(entry) for entry in entries]
    rows = [[escape(label), *(f"<code>{escape(column[i][1])}</code>" for column in columns)]
            for i, (label, _) in enumerate(columns[0])]
    return ["<h2>Provenance</h2>",
            '<p class="note">Versions, code and machine of the process that started the run (the driver); '
            "each epoch's metrics name the node its trial ran on.</p>",
            _table("provenance", head, rows)]


def _per_device_section(model: Model) -> list[str]:
    rows = [[escape(r["device"]), _num(r["clips"]), _num(r["correct"]), _bar(r["accuracy"])] for r in per_device(model)]
    if not rows:
        return []
    return ["<h3>Per-device accuracy</h3>", _table("per-device", ["device", "test clips", "correct", "accuracy"], rows)]


def _trial_section(e: ExperimentView, t: TrialView, links: Links) -> str:
    params = ", ".join(f"{k}={v}" for k, v in sorted(t.params.items()))
    epochs = [[
        _num(m["epoch"]), _num(m.get("train_loss")), _num(m.get("val_loss")), _num(m.get("val_segment_acc")),
        _num(m.get(METRIC)), _num(m.get("epoch_s"), "{:.1f}"), f"<code>{escape(m.get('checkpoint_uri') or '-')}</code>",
    ] for m in t.epochs]
    parts = [
        f'<section class="trial" id="trial-{escape(t.trial_id)}">',
        f"<h2>Trial {escape(t.trial_id)} ({escape(t.status)})</h2>",
        f"<p>{escape(t.model_name)}, {_num(t.num_params)} parameters. <code>{escape(params)}</code></p>",
        f'<p class="note">Error: {escape(t.error)}</p>' if t.error else "",
    ]
    if t.epochs:
        parts.append(_img(links.plot(e, Plot("curves", trial=t.trial_id)), f"curves-{t.trial_id}",
                          f"learning curves of trial {t.trial_id}"))
    parts.append(_table(f"epochs-{t.trial_id}", ["epoch", "train loss", "val loss", "val segment acc", "val clip acc",
                                                 "s / epoch", "checkpoint"], epochs))
    if t.runs:  # --fidelity runs: the folds and seeds this configuration finished
        parts.append(_table(f"runs-{t.trial_id}", ["run", "fold", "seed repeat", "val clip acc", "test clip acc"],
                            [[_num(r["run"]), _num(r["fold"]), _num(r["repeat"]), _num(r["val_clip_acc"]),
                              _num(r["test_clip_acc"])] for r in t.runs]))
    return "\n".join(parts + ["</section>"])


def _document(title: str, body: list[str], links: Links, refresh: bool) -> str:
    nav = " ".join(_a(url, label) for label, url in links.nav())
    meta = '<meta http-equiv="refresh" content="15">' if refresh and links.live else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">{meta}<title>{escape(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n<nav>{nav}</nav>\n<h1>{escape(title)}</h1>\n"
            + "\n".join(body) + "\n</body></html>\n")


class _Num(str):
    """An escaped number cell (right-aligned)."""


def _table(table_id: str, head: list[str] | None, rows: list[list[str]]) -> str:
    """A table (``head`` None: no header row); ``rows`` hold HTML already escaped."""
    th = f'<thead><tr>{"".join(f"<th>{escape(h)}</th>" for h in head)}</tr></thead>' if head else ""
    trs = "\n".join("<tr>" + "".join(f"<td{' class=num' if isinstance(c, _Num) else ''}>{c}</td>" for c in r)
                    + "</tr>" for r in rows)
    return f'<table id="{escape(table_id)}">\n{th}\n<tbody>\n{trs}\n</tbody></table>'


def _num(value, fmt: str | None = None) -> str:
    """A number cell: ints with thousands separators, fractions with 3 decimals, None as a dash."""
    if value is None:
        return _Num("-")
    if fmt is None:
        fmt = "{:,}" if isinstance(value, int) else "{:.3f}"
    return _Num(escape(fmt.format(value)))


def _time(iso: str | None) -> str:
    """A stored UTC timestamp (ISO 8601) as ``YYYY-MM-DD HH:MM:SS UTC`` (plain text)."""
    return iso.replace("T", " ").replace("+00:00", " UTC") if iso else "-"


def _bar(fraction: float | None) -> str:
    if fraction is None:
        return _num(None)
    return f'{_num(fraction)} <span class="bar" style="width:{fraction * 80:.0f}px"></span>'


def _a(href: str, text: str) -> str:
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _img(src: str, img_id: str, alt: str) -> str:
    return f'<p><img id="{escape(img_id)}" src="{escape(src)}" alt="{escape(alt)}"></p>'
