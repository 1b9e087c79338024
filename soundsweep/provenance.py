"""Where a result came from: the software, the code and the machine of a run.

A number in the results store is only worth what one can say about how it was made. Every
experiment (``soundsweep tune``, ``soundsweep probe``) records :func:`collect` when it starts, and
again when ``--resume`` restarts it, in ``ss_experiments.provenance``
(:meth:`~soundsweep.results.ResultsStore.start_experiment`); the experiment's page and its static
report show it (:func:`facts`). Recorded:

- ``versions``: Python, torch, torchaudio, Ray, Optuna and SoundSweep (its package metadata);
- ``code``: the git commit of the checkout SoundSweep runs from and whether its working tree had
  changes (``dirty``), both ``"unknown"`` where git is missing or the code is not a git checkout
  (an installed wheel);
- ``machine``: hostname, OS, CPU count and model, GPU names and the CUDA version torch was built
  with (none without a usable GPU).

It describes the process that started the run (the driver): on a cluster the trials run on other
nodes, whose hostname and device each epoch's metrics name.
"""
import importlib
import importlib.metadata
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone

import torch

UNKNOWN = "unknown"
"""What ``code.commit`` and ``code.dirty`` hold when git cannot tell."""
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
LIBRARIES = ("torch", "torchaudio", "ray", "optuna")
"""The libraries whose ``__version__`` is recorded beside Python's and SoundSweep's."""


def collect() -> dict:
    """This process's provenance: ``versions``, ``code``, ``machine`` and ``collected_at`` (UTC)."""
    return {
        "versions": _versions(),
        "code": git_state(PACKAGE_DIR),
        "machine": _machine(),
        "collected_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _versions() -> dict:
    """Versions of Python, :data:`LIBRARIES` and the installed ``soundsweep`` distribution."""
    found = {"python": platform.python_version()}
    found.update({name: importlib.import_module(name).__version__ for name in LIBRARIES})
    try:
        found["soundsweep"] = importlib.metadata.version("soundsweep")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        found["soundsweep"] = UNKNOWN
    return found


def git_state(directory: str) -> dict:
    """``commit`` (HEAD) and ``dirty`` (changed or new files) of the git checkout whose tracked
    files include ``directory``; both :data:`UNKNOWN` without git, outside a checkout, or where
    ``directory`` is not tracked there (a package installed into a virtual environment that
    happens to sit inside some repository)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):  # no git, or it hung
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    tracked = git("ls-files", "--error-unmatch", "--", ".")
    status = git("status", "--porcelain")
    if commit is None or tracked is None or status is None:
        return {"commit": UNKNOWN, "dirty": UNKNOWN}
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


def _machine() -> dict:
    """Hostname, OS, CPU count and model, and the GPUs torch sees with the CUDA version it was built for."""
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "gpus": gpus,
        "cuda": torch.version.cuda if gpus else None,
    }


def _cpu_model() -> str:
    """The processor's name: Linux's ``/proc/cpuinfo`` model name, else what :mod:`platform` says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # not Linux
        pass
    return platform.processor() or platform.machine() or UNKNOWN


def facts(entry: dict) -> list[tuple[str, str]]:
    """``(label, value)`` lines of one recorded :func:`collect`, in reading order (the pages' table)."""
    code, host, v = entry.get("code", {}), entry.get("machine", {}), entry.get("versions", {})
    dirty = code.get("dirty", UNKNOWN)
    state = UNKNOWN if dirty == UNKNOWN else ("uncommitted changes" if dirty else "clean")
    gpus = host.get("gpus") or []
    return [
        ("code", f"{code.get('commit', UNKNOWN)} ({state})"),
        *((name, str(v.get(name, UNKNOWN))) for name in ("soundsweep", "python", *LIBRARIES)),
        ("host", str(host.get("hostname", UNKNOWN))),
        ("platform", str(host.get("platform", UNKNOWN))),
        ("CPU", f"{host.get('cpu_count', '?')} x {host.get('cpu_model', UNKNOWN)}"),
        ("GPU", f"{', '.join(gpus)} (CUDA {host.get('cuda')})" if gpus else "none"),
    ]
