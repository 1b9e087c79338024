"""Planning against a live cluster: waiting for an autoscaler, failing fast when it never comes."""
import time

import pytest

from soundsweep import cluster
from soundsweep.errors import UsageError

GPU_TRIAL = {"gpus_per_worker": 1.0, "cpus_per_worker": 1.0}


@pytest.fixture
def requests(monkeypatch):
    """Record what would be asked of the autoscaler instead of asking a real one."""
    made = []
    monkeypatch.setattr(cluster, "request_resources", lambda bundles: made.append(bundles))
    return made


def test_waits_for_the_gpu_nodes_an_autoscaler_adds(monkeypatch, requests):
    views = [[{"CPU": 4.0}], [{"CPU": 4.0}, {"CPU": 4.0, "GPU": 1.0}], [{"CPU": 4.0}, *[{"CPU": 4.0, "GPU": 1.0}] * 2]]
    monkeypatch.setattr(cluster, "alive_nodes", lambda: views.pop(0) if len(views) > 1 else views[0])
    plan = cluster.plan_on_cluster(wait_s=5, poll_s=0.01, num_samples=2, **GPU_TRIAL)
    assert plan.max_concurrent == 2  # waited until both wanted trials fit
    assert requests == [[{"CPU": 0.1}, {"CPU": 1.0, "GPU": 1.0}] * 2]
    cluster.release()
    assert requests[-1] == []


def test_gives_up_after_the_wait_with_the_plans_message(monkeypatch, requests):
    monkeypatch.setattr(cluster, "alive_nodes", lambda: [{"CPU": 4.0}])
    started = time.monotonic()
    with pytest.raises(UsageError, match="one trial needs 1 GPUs but the cluster has 0"):
        cluster.plan_on_cluster(wait_s=0.3, poll_s=0.05, num_samples=4, **GPU_TRIAL)
    assert 0.3 <= time.monotonic() - started < 2


def test_without_waiting_nothing_is_requested(monkeypatch, requests):
    monkeypatch.setattr(cluster, "alive_nodes", lambda: [{"CPU": 2.0}])
    assert cluster.plan_on_cluster(num_samples=3).max_concurrent == 2
    assert requests == []
