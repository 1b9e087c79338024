"""Stored models brought back to life: their experiment's data, their weights, their predictions.

Every derived model starts from models of the results store: it rebuilds the experiment that made a
model from the experiment's recorded configuration (the prepared segments are a cache hit),
loads the weights (a trial's checkpoint, or the int8 state of a quantized model) and predicts
a split. The Ray connection must be open (:func:`soundsweep.experiment.preflight.connect_ray`).
"""
from dataclasses import dataclass
from functools import cached_property

from soundsweep import storage
from soundsweep.errors import UsageError
from soundsweep.experiment.config import ExperimentConfig
from soundsweep.experiment.data import experiment_data, experiment_manifest, fold_data, trial_config
from soundsweep.prepare import PreparedData
from soundsweep.report.views import model_rank
from soundsweep.results import ResultsStore
from soundsweep.results.store import Experiment, Model
from trainables.config import TrialConfig
from trainables.evaluate import TTA, Predictions
from trainables.inference import Network
from trainables.model_io import predict_split
from trainables.models import ModelConfigError

LOADABLE = ("single", "quantized")
"""Kinds of models the derivations load (derived kinds are recomputed from their sources; a probe's MLP
classifies a front-end's embeddings, not segments)."""


@dataclass
class StoredExperiment:
    """An experiment of the store with its configuration and the datasets its trials ran on (one,
    or one per fold with ``--folds``; :func:`~soundsweep.experiment.data.experiment_data`).

    The datasets are opened on first use (a cache hit, or a decode if the data changed): loading
    a model to label other audio (``soundsweep predict``) needs the configuration only."""

    row: Experiment
    cfg: ExperimentConfig

    @classmethod
    def open(cls, row: Experiment) -> "StoredExperiment":
        return cls(row, ExperimentConfig.from_record(row.config))

    @cached_property
    def folds(self) -> list[PreparedData]:
        return experiment_data(self.cfg, self.row.storage_path, experiment_manifest(self.cfg))[1]

    @property
    def data(self) -> PreparedData:
        """The experiment's (first) dataset; every fold has the same classes."""
        return self.folds[0]


@dataclass
class StoredModel:
    """A model of the store whose weights can be loaded (kind ``single`` or ``quantized``)."""

    row: Model
    experiment: StoredExperiment

    @property
    def data(self) -> PreparedData:
        """The dataset the model's trial ran on (its fold's, with ``--folds``)."""
        return fold_data(self.row.metrics, self.experiment.folds)

    @property
    def classes(self) -> list[str]:
        """The class names of the model's outputs, in order (a model row records them)."""
        return self.row.classes or self.data.classes

    def trial_config(self) -> TrialConfig:
        """The config that rebuilds the model: its trial's settings and the experiment's runtime.
        Building needs the class names, not the data (the data path is left empty)."""
        exp = self.experiment
        labels_only = PreparedData(path="", classes=self.classes, spec={}, segments={}, clips={})
        return trial_config(self.row.params, labels_only, exp.cfg, None, exp.row.storage_path)

    def network(self, tta: TTA | None = None) -> Network:
        """What a worker needs to load the model (:class:`~trainables.inference.Network`)."""
        return Network(self.trial_config(), self.row.checkpoint_uri, self.row.kind == "quantized", tta)

    def load(self):
        """``(model, frontend)`` with the stored weights, in eval mode on the CPU; ``UsageError``
        (one line) when the weights do not fit the model."""
        try:
            return self.network().load()
        except ModelConfigError as exc:
            raise UsageError(f"model {self.row.id or self.row.checkpoint_uri}: {exc}") from exc

    def predict(self, split: str, tta: TTA | None = None) -> Predictions:
        return predict_split(*self.load(), self.data.path, split, tta)


def find_experiment(store: ResultsStore, name: str, flag: str = "--experiment") -> StoredExperiment:
    row = store.experiment(name)
    if row is None:
        raise UsageError(f"{flag} {name}: no such experiment in {store.url}; check the name and --results")
    try:
        present = storage.exists(row.storage_path)
    except OSError as exc:  # a URI this machine cannot reach (credentials, network)
        raise UsageError(f"{flag} {name}: its storage {row.storage_path} cannot be read ({exc})".splitlines()[0]) from exc
    if not present:
        raise UsageError(f"{flag} {name}: its storage {row.storage_path} is gone; the checkpoints are needed")
    return StoredExperiment.open(row)


def find_model(store: ResultsStore, model_id: int, experiments: dict[int, StoredExperiment] | None = None) -> StoredModel:
    """The stored model ``model_id``; ``experiments`` caches opened experiments by id."""
    row = store.model(model_id)
    if row is None:
        raise UsageError(f"--model {model_id}: no such model in {store.url}; the tune summary and the ss_models "
                         "table list the ids")
    if row.kind not in LOADABLE:
        built = f", built from models {row.sources}: use those" if row.sources else ""
        raise UsageError(f"model {model_id} is a {row.kind} model{built} (only {' or '.join(LOADABLE)} models "
                         "can be loaded here)")
    experiments = {} if experiments is None else experiments
    if row.experiment_id not in experiments:
        experiments[row.experiment_id] = StoredExperiment.open(store.experiment_by_id(row.experiment_id))
    return StoredModel(row, experiments[row.experiment_id])


def best_model(store: ResultsStore, experiment: StoredExperiment, flag: str) -> StoredModel:
    """The best trained model of ``experiment`` (:func:`~soundsweep.report.views.model_rank`)."""
    trained = [m for m in store.models(experiment.row.id) if m.kind == "single"]
    if not trained:
        raise UsageError(f"{flag} {experiment.row.name}: it has no registered model; let its tune run finish "
                         "(or --resume it)")
    return StoredModel(max(trained, key=model_rank), experiment)
