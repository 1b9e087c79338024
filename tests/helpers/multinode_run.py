"""A small search on a simulated three-node cluster; writes WORKDIR/report.json (see test_multinode.py).

    python -m tests.helpers.multinode_run WORKDIR

The test session already runs its own Ray, so this runs in a process of its own: a head with
1 CPU and two nodes with 2 CPUs each (``ray.cluster_utils.Cluster``, all on this machine), then
``run_experiment`` with three one-epoch local trials. The plan keeps 1 CPU per node for Ray
Data and fits 3 trials of 0.5 CPU, more than the head can hold, so trials must spread. The
report goes to a file because Ray keeps printing worker logs to stdout until it shuts down.
"""
import json
import os
import sys

import ray
from ray.cluster_utils import Cluster

from soundsweep.experiment import ExperimentConfig, run_experiment
from soundsweep.results import ResultsStore

NODE = {"object_store_memory": 150 * 1024**2}


def main(workdir: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False, **NODE})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=2, **NODE)
        cluster.wait_for_nodes()
        cfg = ExperimentConfig(space="augmentation", num_samples=3, max_epochs=1, synthetic_clips=10, seed=3,
                               results=f"sqlite:///{workdir}/results.db", storage_path=f"{workdir}/runs",
                               name="multinode", address=cluster.address)
        summary = run_experiment(cfg)
        store = ResultsStore(cfg.results)
        trials = [{"trial_id": t.trial_id, "status": t.status, "epochs": t.epochs,
                   **{k: t.metrics.get(k) for k in ("node_id", "node_ip", "hostname")}}
                  for t in store.trials(summary.experiment_id)]
        report = {
            "nodes": [n["NodeID"] for n in ray.nodes() if n["Alive"]],
            "plan": summary.plan.describe(),
            "max_concurrent": summary.plan.max_concurrent,
            "trials": trials,
            "best_model": summary.best is not None,
            "wall_s": summary.wall_s,
        }
        with open(os.path.join(workdir, "report.json"), "w") as f:
            json.dump(report, f)
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
