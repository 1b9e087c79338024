"""MLflow tracking of a ``soundsweep tune`` run (``--mlflow URI``), through Ray Tune's own
integration.

Every trial is one MLflow run of the MLflow experiment named like the SoundSweep experiment:
Ray's :class:`~ray.air.integrations.mlflow.MLflowLoggerCallback`, on the driver, logs the trial's
configuration as parameters and each reported epoch's metrics (step = Tune's training
iteration). Once the run is scored, :func:`log_best_model` adds the best model's test figures,
its checkpoint folder and the run's report to its trial's MLflow run. MLflow is an optional
extra (``pip install 'soundsweep[mlflow]'``) imported only when ``--mlflow`` is given.

The store is checked before Ray starts (:func:`check_store`): a server that does not answer, a
store that cannot be written or an unknown scheme is a one-line error. MLflow 3 refuses its
file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set; a ``file:`` URI or a path given to
``--mlflow`` asks for that store, so it is allowed for this process.
"""
import os
import re
from contextlib import contextmanager

from soundsweep import console, storage
from soundsweep.errors import UsageError

INSTALL_HINT = "pip install 'soundsweep[mlflow]'"
CHECK_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
"""While checking the store: one try of at most 10 s (MLflow's default retries for minutes)."""


def _mlflow():
    """The ``mlflow`` module, its loggers routed like Ray's (:func:`soundsweep.console.route`)."""
    try:
        import mlflow
    except ImportError:
        raise UsageError(f"--mlflow needs MLflow, an optional extra: {INSTALL_HINT}") from None
    for name in ("mlflow", "alembic"):  # alembic: the migrations of a database-backed store
        console.route(name)
    return mlflow


def _file_store(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri


@contextmanager
def _one_try():
    """:data:`CHECK_ENV` for the duration of the check, unless the user set those variables."""
    added = {k: v for k, v in CHECK_ENV.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def check_store(uri: str, experiment: str) -> str:
    """Reach the tracking store at ``uri`` and find or create the MLflow experiment
    ``experiment`` in it (what the callback does first); return its id. Called before Ray starts,
    so a store that cannot be used costs seconds, not a decode."""
    _mlflow()  # imported, its loggers routed
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if _file_store(uri):
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    try:
        with _one_try():
            client = MlflowClient(tracking_uri=uri)
            found = client.get_experiment_by_name(experiment)
            return found.experiment_id if found else client.create_experiment(experiment)
    except (MlflowException, OSError, ValueError) as exc:
        reason = _reason(exc)
        raise UsageError(f"--mlflow {uri}: cannot use this tracking store ({reason}); start the server, or give a "
                         "store you can write (sqlite:///mlflow.db, file:///folder)") from None


def _reason(exc: Exception) -> str:
    """A short reason for ``exc``: its first line, cut at 200 characters, or for MLflow's failed
    HTTP request the OS error at its root (``[Errno 111] Connection refused``)."""
    text = str(exc).strip()
    errors = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", text) if not isinstance(exc, OSError) else []
    return errors[-1].strip() if errors else (text.splitlines() or [type(exc).__name__])[0][:200]


def logger_callback(uri: str, experiment: str):
    """Ray Tune's MLflow callback: one MLflow run per trial in ``experiment`` (Ray tags it with the
    trial's name, ``<trainable>_<trial id>``)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    return MLflowLoggerCallback(tracking_uri=uri, experiment_name=experiment, tags={"soundsweep.experiment": experiment})


def trial_run(uri: str, experiment: str, trial_id: str):
    """The MLflow run of trial ``trial_id`` (the latest, when a resumed search logged it again)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.trial_name LIKE '%_{trial_id}'",
                              order_by=["attributes.start_time DESC"], max_results=1) if found else []
    return runs[0] if runs else None


def log_best_model(uri: str, experiment: str, best: dict, report: str) -> str | None:
    """Add the best model (a row of :func:`~soundsweep.experiment.evaluation.register_top`) to its
    trial's MLflow run: its test figures as metrics, its id as the tag ``soundsweep.best_model``,
    its checkpoint folder as the artifacts ``best_model/`` and the report folder ``report`` (a
    path or URI) as ``report/``. Returns the run's id (``None`` when the trial has no run)."""
    from mlflow.tracking import MlflowClient

    run = trial_run(uri, experiment, best["trial_id"])
    if run is None:
        return None
    client, run_id = MlflowClient(tracking_uri=uri), run.info.run_id
    for name in ("test_segment_acc", "test_clip_acc", "test_clip_acc_mean"):
        client.log_metric(run_id, name, float(best[name]))
    client.set_tag(run_id, "soundsweep.best_model", str(best["model_id"]))
    with storage.local_folder(best["checkpoint_uri"]) as folder:
        client.log_artifacts(run_id, folder, "best_model")
    with storage.local_folder(report) as folder:
        client.log_artifacts(run_id, folder, "report")
    return run_id
