"""The resource plan keeps CPUs for Ray Data and refuses plans that cannot run."""
import pytest

from soundsweep.errors import UsageError
from soundsweep.plan import make_plan


def test_default_plan_fits_two_cores_with_a_cpu_left_for_ray_data():
    plan = make_plan({"CPU": 2.0}, num_samples=12)
    assert plan.executor == "local" and plan.max_concurrent == 2
    assert plan.max_concurrent * plan.cpus_per_trial + plan.data_cpus <= 2.0


def test_concurrency_never_exceeds_trials():
    assert make_plan({"CPU": 16.0}, num_samples=3).max_concurrent == 3


def test_multi_worker_or_gpu_trials_use_a_torch_trainer():
    plan = make_plan({"CPU": 8.0, "GPU": 2.0}, train_workers=2, cpus_per_worker=1, gpus_per_worker=0.5, num_samples=8)
    assert plan.executor == "train" and plan.trial_resources == {"CPU": 0.1}
    assert plan.max_concurrent == 2  # 2 GPUs / (2 workers x 0.5 GPU)


@pytest.mark.parametrize("kwargs, message", [
    ({"train_workers": 4, "cpus_per_worker": 1.0}, "one trial needs 4.1 CPUs"),
    ({"gpus_per_worker": 1.0}, "one trial needs 1 GPUs but the cluster has 0"),
    ({"max_concurrent": 5}, "--max-concurrent 5 needs"),
    ({"train_workers": 0}, "--train-workers 0"),
    ({"executor": "local", "train_workers": 2}, "--executor local runs one worker"),
])
def test_impossible_plans_fail_fast_with_the_fix(kwargs, message):
    with pytest.raises(UsageError, match=message) as info:
        make_plan({"CPU": 2.0}, **kwargs)
    assert "\n" not in str(info.value)
