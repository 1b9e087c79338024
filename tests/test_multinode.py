"""A search on a simulated multi-node cluster spreads its trials and records where each ran."""
import json
import subprocess
import sys

from tests.conftest import REPO


def test_trials_spread_over_nodes_and_results_are_complete(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.multinode_run", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["nodes"]) == 3 and report["max_concurrent"] == 3, report["plan"]
    trials = report["trials"]
    assert len(trials) == 3
    assert all(t["status"] == "COMPLETED" and t["epochs"] == 1 for t in trials)
    assert all(t["node_id"] in report["nodes"] and t["node_ip"] and t["hostname"] for t in trials)
    assert len({t["node_id"] for t in trials}) >= 2, trials
    assert report["best_model"]
