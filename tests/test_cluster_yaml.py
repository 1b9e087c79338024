"""cluster.yaml passes Ray's own schema check offline, and a bad edit fails it."""
import copy
import os

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from tests.conftest import REPO


@pytest.fixture(scope="module")
def cluster():
    with open(os.path.join(REPO, "cluster.yaml")) as f:
        return yaml.safe_load(f)


def test_cluster_yaml_validates(cluster):
    validate_config(prepare_config(copy.deepcopy(cluster)))
    assert cluster["available_node_types"]["gpu_worker"]["min_workers"] == 0
    assert any("pip install" in c for c in cluster["setup_commands"])


@pytest.mark.parametrize("edit", [
    lambda c: c.update(max_wokers=3),
    lambda c: c["available_node_types"]["head"].pop("node_config"),
])
def test_bad_edit_is_rejected(cluster, edit):
    broken = copy.deepcopy(cluster)
    edit(broken)
    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)):
        validate_config(prepare_config(broken))
