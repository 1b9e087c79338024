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

    ``address="local"``: always this session's own instance; a bare ``ray.init()`` joins any
    cluster that someone started with ``ray start`` on this (shared) machine.
    """
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
    yield ray
    # Shut down only our own instance; `ray stop` would kill every Ray on the machine.
    ray.shutdown()


# The tiny run's budget: 2 trials x 2 epochs on 10 synthetic clips per class (about 60-90 s here).
TINY = ["--num-samples", "2", "--max-epochs", "2", "--synthetic-clips", "10", "--seed", "3"]


@pytest.fixture(scope="session")
def tiny_run(ray_session, tmp_path_factory):
    """``(exit code, results URL, folder)`` of one real tiny ``soundsweep tune`` run (experiment
    ``tiny``), shared by every test that needs a filled results store: real Ray, FLAC, SQLite, Optuna."""
    from soundsweep.cli import main

    root = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{root}/results.db"
    code = main(["tune", "--space", "augmentation", *TINY, "--results", url,
                 "--storage-path", str(root / "runs"), "--name", "tiny"])
    return code, url, root
