"""Shared fixtures: one Ray instance for the whole session, a private cache, tiny data."""
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

    ``address="local"`` always starts our own: a plain ``ray.init()`` joins any cluster that
    ``ray start`` left running on the machine (someone else's, on a shared host).
    """
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, object_store_memory=512 * 1024**2, include_dashboard=False,
                 logging_level="WARNING", log_to_driver=False)
    yield ray
    # Shut down only our own instance; `ray stop` would kill every Ray on the machine.
    ray.shutdown()
