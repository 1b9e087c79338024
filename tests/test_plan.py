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
    ({"max_concurrent": 5}, "--max-concurrent 5: the cluster fits 2 such trials"),
    ({"train_workers": 0}, "--train-workers 0"),
    ({"executor": "local", "train_workers": 2}, "--executor local runs one worker"),
])
def test_impossible_plans_fail_fast_with_the_fix(kwargs, message):
    with pytest.raises(UsageError, match=message) as info:
        make_plan({"CPU": 2.0}, **kwargs)
    assert "\n" not in str(info.value)


def test_ray_data_cpus_stay_free_on_one_node_whatever_the_placement():
    # Head 1 CPU + two 2-CPU nodes: only 1 + 1 CPUs are usable beyond each node's data CPU.
    plan = make_plan([{"CPU": 1.0}, {"CPU": 2.0}, {"CPU": 2.0}], num_samples=12)
    assert plan.max_concurrent == 4  # 4 x 0.5 CPU; 5 could leave 0.5 free on each 2-CPU node
    assert make_plan({"CPU": 4.0}, num_samples=12, data_cpus=2).max_concurrent == 4


def test_fractional_gpus_are_counted_per_node():
    nodes = [{"CPU": 8.0}] + [{"CPU": 4.0, "GPU": 1.0}] * 3
    plan = make_plan(nodes, gpus_per_worker=0.4, num_samples=10)
    assert plan.executor == "train" and plan.max_concurrent == 6  # two 0.4-GPU workers per 1-GPU node
    assert plan.bundles == [{"CPU": 0.1}, {"CPU": 0.5, "GPU": 0.4}]
    # Two 0.6-GPU workers fit when they may go to different nodes.
    assert make_plan([{"CPU": 4.0}, {"CPU": 2.0, "GPU": 0.7}, {"CPU": 2.0, "GPU": 0.7}], gpus_per_worker=0.6,
                     train_workers=2).max_concurrent == 1


@pytest.mark.parametrize("nodes, kwargs, message", [
    ([{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}], {"gpus_per_worker": 2.0},
     "one worker needs 0.5 CPU and 2 GPU on one node but the largest node has 8 CPU / 1 GPU"),
    ([{"CPU": 8.0}, {"CPU": 4.0, "GPU": 1.0}], {"gpus_per_worker": 1.0, "cpus_per_worker": 6.0},
     "one worker needs 6 CPU and 1 GPU on one node"),
    ([{"CPU": 4.0}, {"CPU": 2.0, "GPU": 1.0}, {"CPU": 2.0, "GPU": 0.5}], {"gpus_per_worker": 0.6, "train_workers": 2},
     "2 workers of 0.6 GPU do not fit on the GPU nodes"),
    ({"CPU": 2.0}, {"data_cpus": 0.5}, "--data-cpus 0.5"),
])
def test_plans_that_cannot_be_placed_on_the_nodes_fail_fast(nodes, kwargs, message):
    with pytest.raises(UsageError, match=message):
        make_plan(nodes, **kwargs)
