"""Shared fixtures: one Ray instance and one tiny tune run for the whole session, a private cache."""
import os

import pytest
import ray

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """Generated data and decode caches go to a per-session folder, never ~/.cache."""
    path = tmp_path_factory.mktemp("cache")
    os.environ["SOUNDSWEEP_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for every test that needs it: 2 CPUs, capped object store, no dashboard.

    ``address="local"`` always starts a private instance: without it ``ray.init`` joins the
    last cluster that ``ray start`` (or a simulated Cluster, see test_multinode.py) recorded
    on this machine, someone else's included.
    """
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
    yield ray
    # Shut down only our own instance; `ray stop` would kill every Ray on the machine.
    ray.shutdown()


@pytest.fixture(scope="session")
def postgres():
    """A private PostgreSQL server (see tests/postgres.py); fails, never skips, without one."""
    from tests.helpers.postgres import PostgresServer, find_bindir

    bindir = find_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed (no initdb): apt-get install postgresql (.ci/run does)")
    server = PostgresServer(bindir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty results database on each backend the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/results.db"
    return request.getfixturevalue("postgres").create_database()


@pytest.fixture
def clean_cwd(tmp_path, monkeypatch):
    """An empty working directory for a command under test: a URI written as if it were a local
    path (``os.makedirs("file:///x/y")``) would leave a folder named ``file:`` in it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


E2E_FIXTURES = {"ray_session", "tiny_run", "postgres", "dashboard"}
"""Fixtures that start Ray, a tune run, PostgreSQL or a served page: a test using one is ``e2e``."""


def pytest_collection_modifyitems(config, items):
    """Mark the end-to-end tests and skip ``@pytest.mark.gpu`` tests without CUDA.

    A test is ``e2e`` when it is marked so (a module that starts Ray in a subprocess) or uses
    a fixture of :data:`E2E_FIXTURES`, or the PostgreSQL side of ``store_url``; ``make
    test-fast`` runs the rest. Skipping GPU tests is the only skip this suite allows.
    """
    import torch

    for item in items:
        on_postgres = getattr(item, "callspec", None) and item.callspec.params.get("store_url") == "postgresql"
        if E2E_FIXTURES & set(item.fixturenames) or on_postgres:
            item.add_marker(pytest.mark.e2e)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is false)")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


# The tiny run's budget: 2 trials x 2 epochs on 10 synthetic clips per class (about 60-90 s here).
TINY = ["--num-samples", "2", "--max-epochs", "2", "--synthetic-clips", "10", "--seed", "3", "--record-augmentation"]


@pytest.fixture(scope="session")
def tiny_run(ray_session, tmp_path_factory):
    """``(exit code, results URL, folder)`` of one real tiny ``soundsweep tune`` run (experiment
    ``tiny``), shared by every test that needs a filled results store: real Ray, FLAC, SQLite, Optuna.

    Its checkpoints and decode cache live under a ``file://`` URI, which pyarrow opens through the
    same code path as ``s3://`` or ``gs://`` (soundsweep.storage)."""
    root = tmp_path_factory.mktemp("e2e")
    return (*run_tiny_experiment(root), root)


def run_tiny_experiment(root) -> tuple[int, str]:
    """``(exit code, results URL)`` of the tiny run (experiment ``tiny``, :data:`TINY`) into the
    folder ``root`` (a ``pathlib.Path``): what :func:`tiny_run` runs, and ``benchmarks.export_parity``."""
    from soundsweep.cli import main

    url = f"sqlite:///{root}/results.db"
    code = main(["tune", "--space", "augmentation", *TINY, "--results", url,
                 "--storage-path", (root / "runs").as_uri(), "--name", "tiny"])
    return code, url


@pytest.fixture(scope="session")
def tiny(tiny_run, tmp_path_factory):
    """``(store, URL, best model row, manifest CSV)`` of the tiny run: its registered best model and
    its experiment's clips with their splits (the tests of ``predict``, ``serve`` and ``export`` use them)."""
    from dataclasses import fields

    from soundsweep.experiment.config import ExperimentConfig
    from soundsweep.experiment.data import experiment_manifest
    from soundsweep.results import ResultsStore

    code, url, _ = tiny_run
    assert code == 0
    store = ResultsStore(url)
    exp = store.experiment("tiny")
    known = {f.name for f in fields(ExperimentConfig)}
    cfg = ExperimentConfig(**{k: v for k, v in exp.config.items() if k in known})
    manifest = tmp_path_factory.mktemp("predict") / "manifest.csv"
    experiment_manifest(cfg)[["path", "label", "split", "clip_id"]].to_csv(manifest, index=False)
    return store, url, store.model(exp.summary["best_model"]["model_id"]), str(manifest)
