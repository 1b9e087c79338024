"""Pre-flight shared by ``tune`` and ``probe``: the Ray connection, a writable storage path and
the experiment's name in the results store (new, or an existing one to resume)."""
import logging
import os
import tempfile

import ray
import ray.data  # before console.calm: importing Ray Data replaces its logger's handlers

from soundsweep import console
from soundsweep.errors import UsageError
from soundsweep.results import ResultsStore
from soundsweep.storage import open_fs


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
    """Fail before any work (and before Ray starts) if ``--storage-path`` cannot be used: a URI
    whose scheme pyarrow cannot open, which Tune, Train and Ray Data would only trip over deep
    in a run, or a local folder (a path or ``file://``) that cannot be created or written.

    A local check writes for real, since permissions alone do not tell (root may "write" to
    ``/proc``, a read-only mount says yes too): it makes a temporary folder in the path, or in
    its nearest existing parent when the path does not exist yet, and removes it again, so
    nothing stays behind. Remote stores are only opened here; writing to them is their first
    checkpoint's job."""
    try:
        filesystem, path = open_fs(storage)
    except (ValueError, NotImplementedError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"--storage-path {storage}: pyarrow cannot open it ({reason}); give a local folder or a "
                         "URI it opens (s3://, gs://, hdfs://, file://)") from None
    if filesystem.type_name != "local":
        return
    existing = path
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--storage-path {storage} is not writable ({existing} is a file, not a folder): "
                         "choose a folder you can write")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".soundsweep-write-check-", dir=existing))
    except OSError as exc:
        raise UsageError(f"--storage-path {storage} is not writable (cannot create a folder in {existing}: "
                         f"{exc.strerror}): choose a folder you can write") from None


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
