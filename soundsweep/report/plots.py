"""PNG figures of an experiment, drawn with matplotlib's Agg canvas.

Figures are built with :class:`matplotlib.figure.Figure` directly instead of ``pyplot``: no
global figure state, so the dashboard's server threads can draw at the same time and nothing
needs a display. A figure is named by a :class:`Plot` (what the pages link to); :func:`render`
turns one into PNG bytes, for an HTTP response or a file of the static report alike.
"""
import io
from dataclasses import dataclass

from matplotlib.figure import Figure

from soundsweep.report.views import METRIC, ExperimentView, NotFound


@dataclass(frozen=True)
class Plot:
    """A figure of one experiment: ``kind`` is a key of :data:`KINDS`; ``trial`` names the trial
    of ``curves``; ``x`` and ``y`` are the parameters on the axes of ``heatmap``."""

    kind: str
    trial: str | None = None
    x: str | None = None
    y: str | None = None

    def filename(self) -> str:
        """A file name unique within one experiment's report."""
        return "-".join(p for p in (self.kind, self.trial, self.x, self.y) if p) + ".png"


def render(experiment: ExperimentView, plot: Plot) -> bytes:
    """PNG bytes of ``plot``; :class:`NotFound` if the kind, trial or axes are not in the experiment."""
    if plot.kind not in KINDS:
        raise NotFound(f"unknown plot {plot.kind!r}")
    fig = KINDS[plot.kind](experiment, plot)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _curves(experiment: ExperimentView, plot: Plot) -> Figure:
    """Train and validation loss, validation segment and clip accuracy per epoch of one trial."""
    trial = experiment.trial(plot.trial)
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    loss, acc = fig.subplots(1, 2)
    epochs = [m["epoch"] for m in trial.epochs]
    for axes, keys in ((loss, ("train_loss", "val_loss")), (acc, ("val_segment_acc", METRIC))):
        for key in keys:
            points = [(m["epoch"], m[key]) for m in trial.epochs if key in m]
            if points:
                axes.plot(*zip(*points), marker="o", label=key)
        axes.set_xlabel("epoch")
        axes.set_xticks(epochs)
        axes.grid(alpha=0.3)
        if axes.get_legend_handles_labels()[0]:  # a protocol may report no loss (screening)
            axes.legend(fontsize=8)
    loss.set_title("loss")
    acc.set_title("validation accuracy")
    acc.set_ylim(0, 1)
    return fig


def _confusion(experiment: ExperimentView, plot: Plot) -> Figure:
    """Test-split clip-level confusion matrix of the experiment's best model, counts in the cells."""
    model = experiment.best_model
    if model is None:
        raise NotFound(f"experiment {experiment.name!r} has no registered model yet")
    n = len(model.classes)
    fig = Figure(figsize=(1.2 + 0.6 * n, 1.2 + 0.55 * n), layout="constrained")
    axes = fig.subplots()
    axes.imshow(model.confusion, cmap="Blues")
    peak = max(max(row) for row in model.confusion) or 1
    for i, row in enumerate(model.confusion):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", fontsize=9,
                      color="white" if count > peak / 2 else "black")
    axes.set_xticks(range(n), model.classes, rotation=45, ha="right", fontsize=8)
    axes.set_yticks(range(n), model.classes, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"trial {model.trial_id}, epoch {model.epoch}: test clips", fontsize=9)
    return fig


def _heatmap(experiment: ExperimentView, plot: Plot) -> Figure:
    """Mean best validation clip accuracy of the trials in each cell of a two-parameter grid."""
    if not experiment.valid_axes(plot.x, plot.y):
        raise NotFound(f"heatmap axes must be two different searched parameters: {', '.join(experiment.searched)}")
    xs, ys, means, counts = experiment.grid(plot.x, plot.y)
    fig = Figure(figsize=(1.8 + 0.9 * len(xs), 1.4 + 0.6 * len(ys)), layout="constrained")
    axes = fig.subplots()
    masked = [[float("nan") if v is None else v for v in row] for row in means]
    image = axes.imshow(masked, cmap="viridis", vmin=0, vmax=1, origin="lower", aspect="auto")
    axes.set_facecolor("#e6e6e6")  # cells no trial sampled
    for i, row in enumerate(means):
        for j, value in enumerate(row):
            if value is not None:
                axes.text(j, i, f"{value:.2f}\nn={counts[i][j]}", ha="center", va="center", fontsize=8,
                          color="white" if value < 0.6 else "black")
    axes.set_xticks(range(len(xs)), [str(v) for v in xs])
    axes.set_yticks(range(len(ys)), [str(v) for v in ys])
    axes.set_xlabel(plot.x)
    axes.set_ylabel(plot.y)
    axes.set_title("mean best val clip accuracy", fontsize=9)
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def _tradeoff(experiment: ExperimentView, plot: Plot) -> Figure:
    """Best validation clip accuracy against parameter count and against time per epoch, one
    colour per model (the layout of SoundFusion's figure 1); a multi-objective search's Pareto
    front (``summary["pareto"]``) circled in black."""
    fig = Figure(figsize=(9, 3.4), layout="constrained")
    by_params, by_time = fig.subplots(1, 2, sharey=True)
    trials = [t for t in experiment.trials if t.epochs]
    for name in sorted({t.model_name for t in trials}):
        group = [t for t in trials if t.model_name == name]
        acc = [t.best.get(METRIC, 0.0) for t in group]
        by_params.scatter([t.num_params or 0 for t in group], acc, label=name, alpha=0.8)
        by_time.scatter([t.epoch_s or 0 for t in group], acc, label=name, alpha=0.8)
    front = {row["trial_id"] for row in (experiment.row.summary or {}).get("pareto", [])}
    pareto = [t for t in trials if t.trial_id in front]
    if pareto:
        style = {"facecolors": "none", "edgecolors": "black", "s": 120, "linewidths": 1.5}
        acc = [t.best.get(METRIC, 0.0) for t in pareto]
        by_params.scatter([t.num_params or 0 for t in pareto], acc, **style)
        by_time.scatter([t.epoch_s or 0 for t in pareto], acc, label="Pareto front", **style)
    by_params.set_xscale("log")
    by_params.set_xlabel("parameters")
    by_params.set_ylabel("best val clip accuracy")
    by_time.set_xlabel("time per epoch (s)")
    for axes in (by_params, by_time):
        axes.set_ylim(0, 1)
        axes.grid(alpha=0.3)
    if trials:
        by_time.legend(fontsize=8)
    return fig


KINDS = {"curves": _curves, "confusion": _confusion, "heatmap": _heatmap, "tradeoff": _tradeoff}
