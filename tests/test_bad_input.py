"""Bad command lines exit with code 2 and one line naming the problem and the fix."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from soundsweep.cli import main
from soundsweep.results import ResultsStore
from tests.conftest import REPO


def run(capsys, *argv):
    code = main(["tune", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


@pytest.mark.parametrize("argv, words", [
    (["--space", "nope"], ["unknown search space 'nope'", "augmentation"]),
    (["--arch", "nope"], ["unknown model 'nope'", "resnet2d"]),
    (["--width", "20"], ["width 20 is not allowed", "16, 32, 64"]),
    (["--num-samples", "0"], ["--num-samples 0"]),
    (["--max-epochs", "-1"], ["--max-epochs -1"]),
    (["--resume"], ["--resume needs --name"]),
    (["--data", "/definitely/missing"], ["--data /definitely/missing", "no such file"]),
    (["--scheduler", "pbt"], ["--scheduler pbt", "asha"]),
    (["--overlap", "1.5"], ["--overlap 1.5", "[0, 1)"]),
    (["--channels", "3"], ["--channels 3", "mono"]),
    (["--segment-seconds", "0"], ["--segment-seconds 0"]),
    (["--segment-mode", "whole"], ["--segment-mode", "invalid choice: 'whole'"]),
    (["--lr", "0"], ["--lr 0.0"]),
    (["--dataset", "bogus"], ["--dataset", "invalid choice: 'bogus'"]),
    (["--num-samples", "two"], ["--num-samples", "invalid int value"]),
    (["--test-fold", "2"], ["option(s) test_fold without --data"]),
    (["--device-cache-share", "0"], ["--device-cache-share 0.0", "in (0, 1]", "e.g. 0.5"]),
    (["--device-cache-share", "1.5"], ["--device-cache-share 1.5", "in (0, 1]"]),
])
def test_bad_flags(capsys, tmp_path, argv, words):
    code, err = run(capsys, *argv, "--results", f"sqlite:///{tmp_path}/r.db", "--storage-path", str(tmp_path))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("soundsweep: error:")
    for word in words:
        assert word in err


def test_manifest_without_label_column(capsys, tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.wav"]}).to_csv(manifest, index=False)
    code, err = run(capsys, "--data", str(manifest), "--results", f"sqlite:///{tmp_path}/r.db",
                    "--storage-path", str(tmp_path))
    assert code == 2 and "lacks column(s) label" in err and len(err.splitlines()) == 1


def test_manifest_with_an_empty_split(capsys, tmp_path):
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.wav", "b.wav"], "label": ["x", "y"], "split": ["train", "test"]}).to_csv(manifest, index=False)
    code, err = run(capsys, "--data", str(manifest), "--results", f"sqlite:///{tmp_path}/r.db",
                    "--storage-path", str(tmp_path))
    assert code == 2 and "the val split is empty" in err


def test_unreachable_results_store(capsys, tmp_path):
    code, err = run(capsys, "--results", "postgresql://soundsweep@127.0.0.1:9/none", "--storage-path", str(tmp_path))
    assert code == 2 and "--results" in err and len(err.splitlines()) == 1


def test_storage_path_not_writable(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, err = run(capsys, "--storage-path", str(blocker / "runs"), "--results", f"sqlite:///{tmp_path}/r.db")
    assert code == 2 and "is not writable" in err


def test_class_with_too_few_examples_to_split(capsys, tmp_path):
    manifest = tmp_path / "m.csv"
    rows = [{"path": f"{c}{i}.wav", "label": c} for c in "ab" for i in range(6)] + [{"path": "c0.wav", "label": "c"}]
    pd.DataFrame(rows).to_csv(manifest, index=False)
    code, err = run(capsys, "--data", str(manifest), "--results", f"sqlite:///{tmp_path}/r.db",
                    "--storage-path", str(tmp_path))
    assert code == 2 and "c (1)" in err and "too few to split" in err


def test_resume_unknown_or_changed_experiment(capsys, tmp_path):
    url = f"sqlite:///{tmp_path}/r.db"
    code, err = run(capsys, "--resume", "--name", "ghost", "--results", url, "--storage-path", str(tmp_path))
    assert code == 2 and "no experiment named 'ghost'" in err
    ResultsStore(url).start_experiment("old", "augmentation", "synthetic", {"space": "augmentation", "seed": 0},
                                       str(tmp_path))
    code, err = run(capsys, "--resume", "--name", "old", "--seed", "1", "--results", url, "--storage-path", str(tmp_path))
    assert code == 2 and "it was run with --seed 0" in err and "new --name" in err


def test_plan_bigger_than_the_cluster(ray_session, capsys, tmp_path):
    code, err = run(capsys, "--train-workers", "8", "--synthetic-clips", "10", "--results", f"sqlite:///{tmp_path}/r.db",
                    "--storage-path", str(tmp_path))
    assert code == 2 and "one trial needs 4.1 CPUs" in err and "lower --train-workers" in err


def test_real_process_prints_no_traceback(tmp_path):
    out = subprocess.run([sys.executable, "-m", "platform.tune", "--space", "nope"], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("soundsweep: error: --space: unknown search space")


@pytest.mark.parametrize("argv, words", [
    (["--gpus-per-worker", "1"], ["one trial needs 1 GPUs but the cluster has 0", "start GPU nodes"]),
    (["--cpus-per-worker", "3"], ["one worker needs 3 CPU on one node", "largest node has 2 CPU"]),
    (["--max-concurrent", "3"], ["--max-concurrent 3: the cluster fits 2", "use --max-concurrent 2"]),
])
def test_plan_bigger_than_the_cluster_stops_before_any_work(ray_session, capsys, tmp_path, argv, words):
    code, err = run(capsys, *argv, "--results", f"sqlite:///{tmp_path}/r.db", "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and len(err.splitlines()) == 1
    for word in words:
        assert word in err
    assert not (tmp_path / "runs").exists()  # nothing decoded, no experiment started


def one_line_error(code: int, err: str) -> str:
    """The single ``soundsweep: error:`` line of a refused command (asserts there is exactly one)."""
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("soundsweep: error:"), err
    return err


@pytest.mark.parametrize("text, words", [
    ("space: [augmentation\nmax_epochs: 3\n", ["is not valid YAML", "line 2", "one 'key: value' per line"]),
    ("- augmentation\n- width\n", ["expected 'key: value' lines", "found a list"]),
    ("max_epoch: 20\n", ["unknown key 'max_epoch'", "did you mean 'max_epochs'?"]),
    ("max_epochs: ten\n", ["max_epochs: 'ten' is not a whole number", "e.g. max_epochs: 10"]),
    ("lr: fast\n", ["lr: 'fast' is not a number"]),
    ("coarse: 1\n", ["coarse: 1 is not true or false", "coarse: true"]),
    ("recipe: nope\n", ["recipe: 'nope' is not one of", "ecapa"]),
    ("num_samples:\n", ["num_samples is empty", "give it a value"]),
])
def test_bad_config_file(capsys, tmp_path, text, words):
    settings = tmp_path / "exp.yaml"
    settings.write_text(text)
    err = one_line_error(*run(capsys, "--config", str(settings)))
    assert f"--config {settings}" in err  # the file is named
    for word in words:
        assert word in err


def test_missing_config_file(capsys, tmp_path):
    err = one_line_error(*run(capsys, "--config", str(tmp_path / "none.yaml")))
    assert f"--config {tmp_path / 'none.yaml'}: no such file" in err and "--print-config writes one" in err


# Run in a fresh process, which starts no Ray unless the command does (this one may have one running).
BEFORE_RAY = """
import contextlib, io, json, sys
import ray
from soundsweep.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["tune", *argv])
    results.append({"code": code, "err": err.getvalue().strip(), "ray_started": ray.is_initialized()})
print(json.dumps(results))
"""


def test_bad_results_url_and_storage_path_stop_before_ray_starts(tmp_path):
    results, storage = f"sqlite:///{tmp_path}/r.db", str(tmp_path / "runs")
    cases = [
        (["--results", "nosuchdb://x", "--storage-path", storage],
         ["--results nosuchdb://x", "no database dialect or driver 'nosuchdb'", "sqlite:///"]),
        (["--storage-path", "/proc/nope", "--results", results],
         ["--storage-path /proc/nope is not writable", "cannot create a folder in /proc", "choose a folder"]),
        (["--storage-path", "nosuch://bucket/x", "--results", results],
         ["--storage-path nosuch://bucket/x: pyarrow cannot open it", "Unrecognized filesystem type", "s3://"]),
    ]
    out = subprocess.run([sys.executable, "-c", BEFORE_RAY, json.dumps([argv for argv, _ in cases])], cwd=REPO,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    for (argv, words), result in zip(cases, json.loads(out.stdout.strip().splitlines()[-1])):
        err = one_line_error(result["code"], result["err"])
        assert not result["ray_started"], argv
        for word in words:
            assert word in err
    assert not (tmp_path / "runs").exists()  # the write check leaves nothing behind
