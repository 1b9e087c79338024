"""Provenance: what :mod:`soundsweep.provenance` records is what this process runs (its library
versions, the checkout's commit and changes, the machine), and git that cannot tell is "unknown"
rather than an error. The e2e side (a tune run stores it, its report shows it) is in test_report.py."""
import importlib.metadata
import os
import platform
import socket
import subprocess

import optuna
import ray
import torch
import torchaudio

from soundsweep import provenance
from tests.conftest import REPO

UNKNOWN = {"commit": "unknown", "dirty": "unknown"}


def git(directory, *args: str) -> str:
    """Run git in ``directory`` (a throwaway identity for commits) and return its output."""
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    return subprocess.run(["git", *identity, "-C", str(directory), *args], check=True, capture_output=True,
                          text=True).stdout


def test_collect_names_this_process_versions_checkout_and_machine():
    assert provenance.PACKAGE_DIR == os.path.join(REPO, "soundsweep")  # the code under test is this checkout's
    entry = provenance.collect()
    assert entry["versions"] == {
        "python": platform.python_version(), "torch": torch.__version__, "torchaudio": torchaudio.__version__,
        "ray": ray.__version__, "optuna": optuna.__version__, "soundsweep": importlib.metadata.version("soundsweep"),
    }
    assert entry["code"] == {"commit": git(REPO, "rev-parse", "HEAD").strip(),
                             "dirty": bool(git(REPO, "status", "--porcelain").strip())}
    host = entry["machine"]
    assert (host["hostname"], host["cpu_count"], host["platform"]) == (socket.gethostname(), os.cpu_count(),
                                                                       platform.platform())
    assert host["cpu_model"] and host["cpu_model"] != "unknown"
    if torch.cuda.is_available():
        assert host["gpus"] == [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        assert host["cuda"] == torch.version.cuda
    else:
        assert (host["gpus"], host["cuda"]) == ([], None)
    facts = dict(provenance.facts(entry))
    assert facts["code"].startswith(entry["code"]["commit"]) and facts["torch"] == torch.__version__
    assert facts["GPU"] == ("none" if not host["gpus"] else f"{', '.join(host['gpus'])} (CUDA {host['cuda']})")


def test_dirty_follows_the_working_tree_of_a_checkout(tmp_path):
    package = tmp_path / "checkout" / "pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("VALUE = 1\n")
    git(package.parent, "init", "-q")
    git(package.parent, "add", ".")
    git(package.parent, "commit", "-q", "-m", "first")
    head = git(package.parent, "rev-parse", "HEAD").strip()
    assert provenance.git_state(str(package)) == {"commit": head, "dirty": False}
    (package / "__init__.py").write_text("VALUE = 2\n")  # an edit
    assert provenance.git_state(str(package)) == {"commit": head, "dirty": True}
    git(package.parent, "checkout", "-q", "--", ".")
    assert provenance.git_state(str(package))["dirty"] is False
    (package / "extra.py").write_text("")  # a new file the run imports as well
    assert provenance.git_state(str(package)) == {"commit": head, "dirty": True}
    git(package.parent, "add", ".")
    git(package.parent, "commit", "-q", "-m", "second")
    assert provenance.git_state(str(package)) == {"commit": git(package.parent, "rev-parse", "HEAD").strip(),
                                                  "dirty": False}


def test_git_that_cannot_tell_is_unknown(tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert provenance.git_state(str(plain)) == UNKNOWN  # not a checkout
    checkout = tmp_path / "checkout"
    (checkout / "venv" / "pkg").mkdir(parents=True)
    (checkout / ".gitignore").write_text("venv/\n")
    git(checkout, "init", "-q")
    git(checkout, "add", ".")
    git(checkout, "commit", "-q", "-m", "first")
    # An installed package in an ignored virtual environment is not the checkout's code.
    assert provenance.git_state(str(checkout / "venv" / "pkg")) == UNKNOWN
    monkeypatch.setenv("PATH", str(plain))  # no git on the PATH
    assert provenance.git_state(provenance.PACKAGE_DIR) == UNKNOWN
    assert provenance.collect()["code"] == UNKNOWN
    assert dict(provenance.facts({}))["code"] == "unknown (unknown)"  # a row with nothing recorded still reads
