"""Pre-flight shared by ``tune`` and ``probe``: the Ray connection, a writable storage path and
the experiment's name in the results store (new, or an existing one to resume)."""
import logging
import os

import ray
import ray.data  # before console.calm: importing Ray Data replaces its logger's handlers

from soundsweep import console
from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore


def connect_ray(address: str | None, verbose: bool = False) -> None:
    """Join ``address`` (or ``$RAY_ADDRESS``), else start a local Ray unless one is running; keep
    Ray's lines off the console unless ``verbose`` (:mod:`soundsweep.console`) and say where they are."""
    # Save experiment state every 2 s (Ray's default waits 10 s or more), so a killed driver
    # loses at most that much bookkeeping; trials keep their own per-epoch checkpoints.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    # Frequent snapshots are wanted here, so Tune's warning that they are frequent is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    console.calm(verbose)
    if not ray.is_initialized():
        # Ray Data logs every dataset execution at INFO; trials re-read data each epoch.
        quiet = {"RAY_DATA_LOG_LEVEL": os.environ.get("RAY_DATA_LOG_LEVEL", "WARNING")}
        os.environ.update(quiet)
        # The variable reaches the workers; this process read it when it first imported Ray Data.
        logging.getLogger("ray.data").setLevel(quiet["RAY_DATA_LOG_LEVEL"])
        ray.init(address=address, runtime_env={"env_vars": quiet}, **console.ray_init_options())
    # The driver's own bars (soundsweep.progress) show the decode; Ray Data's would print under them.
    ray.data.DataContext.get_current().enable_progress_bars = False
    folder = console.open_log()
    print(f"ray: logs in {folder}" + ("" if verbose else " (--verbose prints them here)"), flush=True)


def check_writable(storage: str) -> None:
    """Fail before any work if a local ``--storage-path`` cannot be written (creates nothing)."""
    if "://" in storage:
        return
    existing = storage
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        reason = "not a folder" if not os.path.isdir(existing) else "permission denied"
        raise UsageError(f"--storage-path {storage} is not writable ({existing}: {reason}): choose a folder you can write")


def claim_name(store: ResultsStore, name: str, resume: bool = False, resumable: bool = True):
    """The stored experiment ``name`` when resuming it (it must exist), else ``None`` after making
    sure the name is free; ``resumable``: the command has a ``--resume`` to suggest."""
    existing = store.experiment(name)
    if resume and existing is None:
        raise UsageError(f"--resume: no experiment named {name!r} in {store.url}; check --name and --results")
    if not resume and existing is not None:
        hint = "add --resume or pick another --name" if resumable else "pick another --name"
        raise UsageError(f"experiment {name!r} already exists in {store.url}: {hint}")
    return existing


def check_segments(views) -> None:
    """Every split of every prepared dataset in ``views`` holds audio (``segments`` by split)."""
    for view in views:
        for split, count in view.items():
            if count == 0:
                raise UsageError(f"the {split} split has no usable audio after decoding: check --data")
