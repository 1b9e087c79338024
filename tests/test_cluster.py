"""Planning against a live cluster: waiting for an autoscaler, failing fast when it never comes."""
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


class Clock:
    """The wait loop's clock (``cluster.time``): ``sleep`` moves it on at once and is recorded, so
    a test counts the polls instead of measuring seconds."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_gives_up_after_the_wait_with_the_plans_message(monkeypatch, requests):
    """It asks for the trials' bundles, polls every poll_s until wait_s has passed, then fails with the plan's message."""
    clock = Clock()
    monkeypatch.setattr(cluster, "time", clock)
    polls = []
    monkeypatch.setattr(cluster, "alive_nodes", lambda: polls.append(clock.now) or [{"CPU": 4.0}])
    with pytest.raises(UsageError, match="one trial needs 1 GPUs but the cluster has 0"):
        cluster.plan_on_cluster(wait_s=3, poll_s=1, num_samples=4, **GPU_TRIAL)
    assert requests == [[{"CPU": 0.1}, {"CPU": 1.0, "GPU": 1.0}] * 4]  # 4 wanted trials: driver + worker each
    assert clock.sleeps == [1, 1, 1]  # waited wait_s in poll_s steps, no longer
    assert polls == [0, 1, 2, 3]  # one poll per step, then the final plan on what is there after the wait


def test_without_waiting_nothing_is_requested(monkeypatch, requests):
    monkeypatch.setattr(cluster, "alive_nodes", lambda: [{"CPU": 2.0}])
    assert cluster.plan_on_cluster(num_samples=3).max_concurrent == 2
    assert requests == []
