"""cluster.yaml passes Ray's own schema check offline, a bad edit fails it, and its setup
commands install the versions pyproject.toml pins."""
import copy
import os
import re
import tomllib

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO

PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([0-9][^\s\"';,]*)")


@pytest.fixture(scope="module")
def cluster():
    with open(os.path.join(REPO, "cluster.yaml")) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def pyproject_pins():
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    return pins(" ".join(dependencies))


def pins(text: str) -> dict:
    """``name[extras]==version`` pins in ``text``: {normalised name: (extras, version)}."""
    return {name.lower().replace("_", "-"): (extras or "", version) for name, extras, version in PIN.findall(text)}


def setup_pins(cluster: dict) -> dict:
    return pins(" ".join(cluster["setup_commands"]))


def test_cluster_yaml_validates(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))
    types = cluster["available_node_types"]
    assert types["gpu_worker"]["min_workers"] == 0 and types["gpu_worker"]["max_workers"] >= 1
    assert "GPU" not in types[cluster["head_node_type"]]["resources"]
    assert any("pip install" in c and "-e ~/soundsweep" in c for c in cluster["setup_commands"])
    assert all("--dashboard-host=127.0.0.1" in c for c in cluster["head_start_ray_commands"] if "--head" in c)


def test_setup_installs_the_pinned_versions(cluster, pyproject_pins):
    assert {"torch", "torchaudio", "ray"} <= set(pyproject_pins)
    assert setup_pins(cluster) == pyproject_pins


@pytest.mark.parametrize("old, new", [
    ("torch==2.11.0", "torch==2.10.0"),
    ("torchaudio==2.11.0 ", ""),
    ("ray[tune,train,data,default,serve]==2.60.0", "ray[default]==2.60.0"),
])
def test_a_drifted_pin_is_caught(cluster, pyproject_pins, old, new):
    drifted = copy.deepcopy(cluster)
    drifted["setup_commands"] = [c.replace(old, new) for c in cluster["setup_commands"]]
    assert drifted["setup_commands"] != cluster["setup_commands"]
    assert setup_pins(drifted) != pyproject_pins


@pytest.mark.parametrize("edit", [
    lambda c: c.update(max_wokers=3),
    lambda c: c["available_node_types"]["head"].pop("node_config"),
    lambda c: c["available_node_types"]["gpu_worker"].update(min_workers="zero"),
])
def test_bad_edit_is_rejected(cluster, edit):
    broken = copy.deepcopy(cluster)
    edit(broken)
    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)):
        validate_config(prepare_config(broken))
