"""The resource plan: what each trial asks of the cluster, checked before anything launches.

Ray Data tasks need CPUs next to the training: if trials take every CPU the data tasks never
run and the search hangs (docs/ARCHITECTURE.md, verified; a ``read_parquet`` always starts with a
file-listing task that asks for one whole CPU). So the plan always leaves ``data_cpus`` free
after ``max_concurrent`` trials have taken their share, and a plan that cannot run stops with a
message saying what to change instead of hanging.

On several nodes the free CPUs must also be together on one node: 0.5 CPU free on each of two
nodes runs no data task. Ray places trials where it likes, so the plan counts only what stays
usable whatever the placement: each node's CPUs beyond ``data_cpus``. If the trials use no more
than that sum, some node always keeps ``data_cpus`` free (were every node short of it, the
trials would be using more than the sum). One worker must also fit on one node, GPUs included,
or Ray would wait for it forever.
"""
import dataclasses
import math
from dataclasses import dataclass

from soundsweep.errors import UsageError

TRIAL_DRIVER_CPUS = 0.1  # the Tune function that launches a TorchTrainer


@dataclass(frozen=True)
class ResourcePlan:
    """How trials are placed.

    Attributes:
        executor: ``train`` (each trial fits a TorchTrainer) or ``local`` (the loop runs in the
            Tune trial itself, sparing a TorchTrainer start for single-worker CPU trials).
        max_concurrent: trials running at once.
        train_workers, cpus_per_worker, gpus_per_worker: one trial's Train scaling.
        data_cpus: CPUs that always stay free for Ray Data tasks (each asks 1 CPU by default).
    """

    executor: str
    max_concurrent: int
    train_workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    data_cpus: float

    @property
    def trial_resources(self) -> dict:
        """What ``tune.with_resources`` reserves for the trial function itself."""
        if self.executor == "local":
            return {"CPU": self.cpus_per_worker, "GPU": self.gpus_per_worker}
        return {"CPU": TRIAL_DRIVER_CPUS}

    @property
    def worker_bundle(self) -> dict:
        """One Train worker (or the local trial): what must fit on a single node."""
        return {"CPU": self.cpus_per_worker, **({"GPU": self.gpus_per_worker} if self.gpus_per_worker else {})}

    @property
    def bundles(self) -> list[dict]:
        """Every resource bundle one trial places (what an autoscaler is asked for)."""
        if self.executor == "local":
            return [self.worker_bundle]
        return [{"CPU": TRIAL_DRIVER_CPUS}] + [self.worker_bundle] * self.train_workers

    @property
    def cpus_per_trial(self) -> float:
        if self.executor == "local":
            return self.cpus_per_worker
        return TRIAL_DRIVER_CPUS + self.train_workers * self.cpus_per_worker

    def describe(self) -> str:
        how = "loop inside the Tune trial" if self.executor == "local" else f"TorchTrainer x{self.train_workers} workers"
        gpu = f", {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else ""
        return (f"plan: {self.max_concurrent} concurrent trial(s), {how}, {self.cpus_per_worker:g} CPU{gpu} "
                f"per worker, {self.data_cpus:g} CPU kept for Ray Data")


def trial_shape(*, train_workers: int = 1, cpus_per_worker: float = 0.5, gpus_per_worker: float = 0.0,
                executor: str = "auto", data_cpus: float = 1.0) -> ResourcePlan:
    """One trial's shape as a single-trial plan, the flags checked but not yet fitted to a cluster.

    ``executor="auto"`` picks ``train`` for several workers or a GPU and ``local`` otherwise.
    """
    if train_workers < 1:
        raise UsageError(f"--train-workers {train_workers}: need at least 1")
    if cpus_per_worker <= 0:
        raise UsageError(f"--cpus-per-worker {cpus_per_worker}: must be > 0")
    if gpus_per_worker < 0:
        raise UsageError(f"--gpus-per-worker {gpus_per_worker}: must be >= 0")
    if data_cpus < 1:
        raise UsageError(f"--data-cpus {data_cpus}: Ray Data's file-listing task needs 1 whole CPU; use at least 1")
    if executor == "auto":
        executor = "train" if train_workers > 1 or gpus_per_worker > 0 else "local"
    if executor == "local" and train_workers > 1:
        raise UsageError("--executor local runs one worker per trial: drop --train-workers or use --executor train")
    return ResourcePlan(executor, 1, train_workers, cpus_per_worker, gpus_per_worker, data_cpus)


def make_plan(nodes: dict | list[dict], *, max_concurrent: int | None = None, num_samples: int = 1,
              **shape) -> ResourcePlan:
    """Fit the requested trial shape to the cluster.

    ``nodes`` holds the resources of each alive node (``soundsweep.cluster.alive_nodes()``); a
    single dict stands for a one-node cluster. ``shape`` are :func:`trial_shape`'s arguments.
    ``max_concurrent=None`` runs as many trials at once as fit (at most ``num_samples``).
    """
    plan = trial_shape(**shape)
    nodes = [nodes] if isinstance(nodes, dict) else nodes
    cpus = [float(n.get("CPU", 0)) for n in nodes]
    gpus = [float(n.get("GPU", 0)) for n in nodes]
    data_cpus, gpw = plan.data_cpus, plan.gpus_per_worker
    gpus_per_trial = plan.train_workers * gpw
    if gpus_per_trial > sum(gpus) + 1e-9:
        raise UsageError(
            f"one trial needs {gpus_per_trial:g} GPUs but the cluster has {sum(gpus):g}: lower --gpus-per-worker "
            "or --train-workers, or start GPU nodes (--wait-for-resources lets an autoscaler add them)"
        )
    if not any(c + 1e-9 >= plan.cpus_per_worker and g + 1e-9 >= gpw for c, g in zip(cpus, gpus)):
        raise UsageError(
            f"one worker needs {plan.cpus_per_worker:g} CPU{f' and {gpw:g} GPU' if gpw else ''} on one node but the "
            f"largest node has {max(cpus, default=0):g} CPU / {max(gpus, default=0):g} GPU: use smaller workers "
            "(--cpus-per-worker, --gpus-per-worker) and more of them (--train-workers)"
        )
    usable = sum(max(c - data_cpus, 0.0) for c in cpus)
    if plan.cpus_per_trial > usable + 1e-9:
        raise UsageError(
            f"one trial needs {plan.cpus_per_trial:g} CPUs plus {data_cpus:g} for Ray Data on one node but the cluster "
            f"has {sum(cpus):g} on {len(cpus)} node(s): lower --train-workers or --cpus-per-worker, or add nodes"
        )
    fit = math.floor(usable / plan.cpus_per_trial + 1e-9)
    if gpw:
        worker_slots = sum(math.floor(g / gpw + 1e-9) for g in gpus)  # a fractional GPU never spans nodes
        fit = min(fit, worker_slots // plan.train_workers)
        if fit < 1:
            per_node = ", ".join(f"{g:g}" for g in gpus if g)
            raise UsageError(f"{plan.train_workers} workers of {gpw:g} GPU do not fit on the GPU nodes "
                             f"({per_node} GPUs each): lower --gpus-per-worker or --train-workers")
    if max_concurrent is None:
        max_concurrent = max(1, min(fit, num_samples))
    elif max_concurrent < 1:
        raise UsageError(f"--max-concurrent {max_concurrent}: need at least 1")
    elif max_concurrent > fit:
        gpu_note = f", {sum(gpus):g} GPUs" if gpw else ""
        raise UsageError(
            f"--max-concurrent {max_concurrent}: the cluster fits {fit} such trials at once ({usable:g} of its "
            f"{sum(cpus):g} CPUs can hold trials, {data_cpus:g} per node stay free for Ray Data{gpu_note}): "
            f"use --max-concurrent {fit} or smaller trials"
        )
    return dataclasses.replace(plan, max_concurrent=max_concurrent)
