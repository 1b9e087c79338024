"""What the dashboard pages and the static report show, computed once from the results store.

The store keeps rows (experiments, trials, epochs, models). The pages need summaries of them:
each trial's best epoch and mean time per epoch, the parameters its space searched, the
augmentation grid averaged over two parameters, the best model's per-class accuracy. They are
computed here as plain objects so that the HTML, the PNG plots and the CLI leaderboard read the
same numbers from one place.
"""
from collections import defaultdict
from dataclasses import dataclass, field
from statistics import fmean

from search_spaces import SPACES
from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore
from soundsweep.results.store import Experiment, Model
from trainables.models import ModelConfigError, model_info
from trainables.objective import METRIC, rank_key, representative


class NotFound(KeyError):
    """A page or figure names something the store does not hold (a trial, a figure, axes)."""


@dataclass
class TrialView:
    """One trial with its per-epoch metrics (``epochs``: one dict per epoch, in order, each with
    ``epoch`` and ``checkpoint_uri``), the folds and seeds it finished (``runs``: with
    ``--fidelity runs`` only) and, if it was registered as best, its test-split model."""

    experiment: str
    space: str
    trial_id: str
    status: str
    params: dict
    epochs: list[dict]
    searched: list[str] = field(default_factory=list)
    error: str | None = None
    model: Model | None = None
    runs: list[dict] = field(default_factory=list)

    @property
    def best(self) -> dict:
        """Metrics of the epoch that stands for the trial: the best (:func:`~trainables.objective.rank_key`;
        the first on ties), or its last with ``select_epoch: last`` (:func:`~trainables.objective.representative`)."""
        return max(representative(self.epochs, self.params.get("select_epoch")), key=rank_key, default={})

    @property
    def model_name(self) -> str:
        return model_name(self.params)

    @property
    def num_params(self) -> int | None:
        return self.best.get("num_params")

    @property
    def epoch_s(self) -> float | None:
        """Mean wall time of one epoch (training and validation), or None before the first."""
        times = [m["epoch_s"] for m in self.epochs if "epoch_s" in m]
        return fmean(times) if times else None


@dataclass
class ExperimentView:
    """An experiment, its trials (store order), its registered models (oldest first) and the
    parameters its space searches (:func:`searched_params`)."""

    row: Experiment
    trials: list[TrialView]
    models: list[Model] = field(default_factory=list)
    searched: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def best_model(self) -> Model | None:
        """The experiment's best model: the ensemble ``--ensemble-top`` kept (the run's summary
        says so), else the trained model (kind ``single``, or a probe's ``probe``) with the highest
        validation clip accuracy, the latest on ties (a resumed run registers its best model again);
        the other derived models (two-stage, ensemble, int8) are listed in ``models``, not chosen here."""
        if self.row.kept_ensemble is not None:
            return next((m for m in self.models if m.id == self.row.kept_ensemble), None)
        trained = [m for m in self.models if m.kind in ("single", "probe")]
        return max(reversed(trained), key=model_rank, default=None)

    def trial(self, trial_id: str) -> TrialView:
        """The trial ``trial_id``; :class:`NotFound` if the experiment has none."""
        for trial in self.trials:
            if trial.trial_id == trial_id:
                return trial
        raise NotFound(f"experiment {self.name!r} has no trial {trial_id!r}")

    @property
    def best_trial(self) -> TrialView | None:
        return max((t for t in self.trials if t.epochs), key=lambda t: rank_key(t.best), default=None)

    def axis_values(self, param: str) -> list:
        """Values of ``param`` on a heatmap axis: the space's whole grid, else the sampled ones."""
        space = SPACES.get(self.row.space)
        if space is not None and param in space.choices:
            return list(space.choices[param])
        return sorted({t.params[param] for t in self.trials if param in t.params}, key=repr)

    def valid_axes(self, x: str | None, y: str | None) -> bool:
        """Whether ``x`` and ``y`` can be the heatmap's axes: two different searched parameters."""
        return x in self.searched and y in self.searched and x != y

    def default_axes(self) -> tuple[str, str] | None:
        """The two searched parameters with the most distinct sampled values (grid order on ties)."""
        searched = self.searched
        if len(searched) < 2:
            return None
        spread = {p: len({repr(t.params.get(p)) for t in self.trials}) for p in searched}
        ranked = sorted(searched, key=lambda p: (-spread[p], searched.index(p)))
        return ranked[0], ranked[1]

    def grid(self, x: str, y: str) -> tuple[list, list, list[list[float | None]], list[list[int]]]:
        """``(x values, y values, mean best val clip acc [y][x] or None, trial counts [y][x])``."""
        xs, ys = self.axis_values(x), self.axis_values(y)
        cells: dict[tuple[int, int], list[float]] = defaultdict(list)
        for t in self.trials:
            if t.epochs and t.params.get(x) in xs and t.params.get(y) in ys:
                cells[ys.index(t.params[y]), xs.index(t.params[x])].append(t.best.get(METRIC, 0.0))
        means = [[fmean(cells[i, j]) if cells[i, j] else None for j in range(len(xs))] for i in range(len(ys))]
        counts = [[len(cells[i, j]) for j in range(len(xs))] for i in range(len(ys))]
        return xs, ys, means, counts


def model_rank(model: Model) -> tuple[float, float]:
    """:func:`~trainables.objective.rank_key` of a registered model: its validation figures."""
    return rank_key({**model.metrics, METRIC: model.val_clip_acc})


def model_name(params: dict) -> str:
    """``arch wWIDTH`` of a trial's or a model's parameters; a trial that left ``width`` unset
    built the architecture at its paper width, which is the one shown."""
    arch, width = params.get("arch", "?"), params.get("width")
    if width is None:
        try:
            width = model_info(arch).options.get("width")
        except ModelConfigError:  # not a registered model (a screening's "mfcc"): no width to show
            pass
    return arch + (f" w{width}" if width is not None else "")


def searched_params(space: str, params: list[dict]) -> list[str]:
    """Parameters the space ``space`` searches (its grid), else those that differ in ``params``."""
    if space in SPACES:
        return list(SPACES[space].choices)
    keys = sorted({k for p in params for k in p})
    return [k for k in keys if len({repr(p.get(k)) for p in params}) > 1]


def per_class(model: Model) -> list[dict]:
    """Per-class test clip accuracy from the model's confusion matrix (rows = true class)."""
    rows = []
    for i, (name, counts) in enumerate(zip(model.classes, model.confusion)):
        total = sum(counts)
        others = [(c, model.classes[j]) for j, c in enumerate(counts) if j != i and c > 0]
        rows.append({"class": name, "clips": total, "correct": counts[i],
                     "accuracy": counts[i] / total if total else None,
                     "confused_with": max(others)[1] if others else None})
    return rows


def per_device(model: Model) -> list[dict]:
    """Test clip accuracy per recording device (``metrics["per_device"]``); empty when the dataset
    records no device."""
    return [{"device": device, "clips": c["clips"], "correct": c["correct"],
             "accuracy": c["correct"] / c["clips"] if c["clips"] else None}
            for device, c in (model.metrics or {}).get("per_device", {}).items()]


def load_experiment(store: ResultsStore, name: str) -> ExperimentView:
    """The experiment ``name`` with every trial and epoch; a one-line error if it is unknown."""
    row = store.experiment(name)
    if row is None:
        known = ", ".join(e.name for e in store.experiments()) or "none yet"
        raise UsageError(f"no experiment {name!r} in {store.url} (known: {known}): check --experiment and --results")
    return _view(store, row)


def load_all(store: ResultsStore) -> list[ExperimentView]:
    """Every experiment in the store, newest first."""
    return [_view(store, row) for row in store.experiments()]


def leaderboard(experiments: list[ExperimentView]) -> list[TrialView]:
    """Trials of all ``experiments``, best validation clip accuracy first, those without a
    reported epoch yet last."""
    trials = [t for e in experiments for t in e.trials]
    return sorted(trials, key=lambda t: -t.best.get(METRIC, -1.0))


def _view(store: ResultsStore, row: Experiment) -> ExperimentView:
    epochs: dict[str, list[dict]] = defaultdict(list)
    for trial, epoch in store.epochs(row.id):
        epochs[trial.trial_id].append({**epoch.metrics, "epoch": epoch.epoch, "checkpoint_uri": epoch.checkpoint_uri})
    models = store.models(row.id)
    registered = {m.trial_id: m for m in models}
    rows = store.trials(row.id)
    searched = searched_params(row.space, [t.params for t in rows])
    trials = [
        TrialView(experiment=row.name, space=row.space, trial_id=t.trial_id, status=t.status, params=t.params,
                  epochs=sorted(epochs[t.trial_id], key=lambda m: m["epoch"]), searched=searched, error=t.error,
                  model=registered.get(t.trial_id), runs=(t.metrics or {}).get("runs", []))
        for t in rows
    ]
    return ExperimentView(row=row, trials=trials, models=models, searched=searched)
