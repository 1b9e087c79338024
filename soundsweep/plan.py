"""The resource plan: what each trial asks of the cluster, checked before anything launches.

Ray Data tasks need CPUs next to the training: if trials take every CPU the data tasks never
run and the search hangs (DESIGN.md, verified; a ``read_parquet`` always starts with a
file-listing task that asks for one whole CPU). So the plan always leaves ``data_cpus`` free
after ``max_concurrent`` trials have taken their share, and a plan that cannot run stops with a
message saying what to change instead of hanging.
"""
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
    def cpus_per_trial(self) -> float:
        if self.executor == "local":
            return self.cpus_per_worker
        return TRIAL_DRIVER_CPUS + self.train_workers * self.cpus_per_worker

    def describe(self) -> str:
        how = "loop inside the Tune trial" if self.executor == "local" else f"TorchTrainer x{self.train_workers} workers"
        gpu = f", {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else ""
        return (f"plan: {self.max_concurrent} concurrent trial(s), {how}, {self.cpus_per_worker:g} CPU{gpu} "
                f"per worker, {self.data_cpus:g} CPU kept for Ray Data")


def make_plan(cluster: dict, *, train_workers: int = 1, cpus_per_worker: float = 0.5, gpus_per_worker: float = 0.0,
              max_concurrent: int | None = None, executor: str = "auto", data_cpus: float = 1.0,
              num_samples: int = 1) -> ResourcePlan:
    """Fit the requested trial shape to ``cluster`` (``ray.cluster_resources()``).

    ``executor="auto"`` picks ``train`` for several workers or a GPU and ``local`` otherwise;
    ``max_concurrent=None`` runs as many trials at once as fit (at most ``num_samples``).
    """
    if train_workers < 1:
        raise UsageError(f"--train-workers {train_workers}: need at least 1")
    if cpus_per_worker <= 0:
        raise UsageError(f"--cpus-per-worker {cpus_per_worker}: must be > 0")
    if executor == "auto":
        executor = "train" if train_workers > 1 or gpus_per_worker > 0 else "local"
    if executor == "local" and train_workers > 1:
        raise UsageError("--executor local runs one worker per trial: drop --train-workers or use --executor train")
    total_cpu, total_gpu = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
    plan = ResourcePlan(executor, 1, train_workers, cpus_per_worker, gpus_per_worker, data_cpus)
    usable = total_cpu - data_cpus
    if plan.cpus_per_trial > usable + 1e-9:
        raise UsageError(
            f"one trial needs {plan.cpus_per_trial:g} CPUs plus {data_cpus:g} for Ray Data but the cluster has "
            f"{total_cpu:g}: lower --train-workers or --cpus-per-worker, or add nodes"
        )
    gpus_per_trial = train_workers * gpus_per_worker
    if gpus_per_trial > total_gpu + 1e-9:
        raise UsageError(
            f"one trial needs {gpus_per_trial:g} GPUs but the cluster has {total_gpu:g}: lower --gpus-per-worker "
            "or --train-workers, or start GPU nodes"
        )
    fit = math.floor(usable / plan.cpus_per_trial + 1e-9)
    if gpus_per_trial:
        fit = min(fit, math.floor(total_gpu / gpus_per_trial + 1e-9))
    if max_concurrent is None:
        max_concurrent = max(1, min(fit, num_samples))
    elif max_concurrent < 1:
        raise UsageError(f"--max-concurrent {max_concurrent}: need at least 1")
    elif max_concurrent > fit:
        raise UsageError(
            f"--max-concurrent {max_concurrent} needs {max_concurrent * plan.cpus_per_trial + data_cpus:g} CPUs "
            f"but the cluster has {total_cpu:g}: use --max-concurrent {fit} or smaller trials"
        )
    return ResourcePlan(executor, max_concurrent, train_workers, cpus_per_worker, gpus_per_worker, data_cpus)
