"""The driver's view of the Ray cluster: alive nodes, and a plan fitted to them.

On an autoscaling cluster (``cluster.yaml``: GPU workers from zero) the GPUs a search needs are
not there when it starts. With ``wait_s > 0`` the driver asks the autoscaler for the bundles of
the trials it wants to run at once (``ray.autoscaler.sdk.request_resources``), waits until they
fit or ``wait_s`` has passed, and then plans with what is there; a plan that still cannot run
fails with its message. :func:`release` withdraws the request when the search ends, so the
autoscaler may scale down again.
"""
import time

import ray
from ray.autoscaler.sdk import request_resources

from soundsweep.errors import UsageError
from soundsweep.plan import ResourcePlan, make_plan, trial_shape


def alive_nodes() -> list[dict]:
    """Resources of every alive node of the connected cluster."""
    return [node["Resources"] for node in ray.nodes() if node["Alive"]]


def plan_on_cluster(*, wait_s: float = 0.0, poll_s: float = 5.0, max_concurrent: int | None = None,
                    num_samples: int = 1, **shape) -> ResourcePlan:
    """:func:`~soundsweep.plan.make_plan` against the alive nodes, after waiting for an autoscaler.

    ``shape`` are :func:`~soundsweep.plan.trial_shape`'s arguments.
    """
    if wait_s > 0:
        wanted = max_concurrent or num_samples
        request_resources(bundles=trial_shape(**shape).bundles * wanted)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                if make_plan(alive_nodes(), num_samples=num_samples, **shape).max_concurrent >= wanted:
                    break
            except UsageError:
                pass  # not even one trial fits yet
            time.sleep(poll_s)
    return make_plan(alive_nodes(), max_concurrent=max_concurrent, num_samples=num_samples, **shape)


def release() -> None:
    """Withdraw a :func:`plan_on_cluster` request to the autoscaler."""
    request_resources(bundles=[])
