"""Nothing lost: a SIGKILLed driver resumes, killed trials retry, and a run outlives bad audio."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import ray
import soundfile

from soundsweep.cli import main
from soundsweep.results import ResultsStore
from tests.conftest import REPO

FLAGS = ["--space", "augmentation", "--num-samples", "2", "--max-epochs", "2", "--synthetic-clips", "10",
         "--scheduler", "fifo", "--max-concurrent", "1", "--seed", "11"]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def snapshot(url: str, name: str) -> list[tuple]:
    """(params, status, [(epoch, val_clip_acc, val_loss)]) per trial, in creation order."""
    store = ResultsStore(url)
    experiment = store.experiment(name)
    epochs: dict[str, list] = {}
    for trial, epoch in store.epochs(experiment.id):
        epochs.setdefault(trial.trial_id, []).append(
            (epoch.epoch, epoch.metrics["val_clip_acc"], round(epoch.metrics["val_loss"], 5)))
    return [(sorted(t.params.items()), t.status, sorted(epochs.get(t.trial_id, [])))
            for t in store.trials(experiment.id)]


def state(url: str, name: str) -> tuple:
    """``(experiment status or None, [(trial status, epochs)], models registered)`` of ``name``."""
    store = ResultsStore(url)
    experiment = store.experiment(name)
    if experiment is None:
        return None, [], 0
    return (experiment.status, [(t.status, t.epochs) for t in store.trials(experiment.id)],
            len(store.models(experiment.id)))


# Where the driver is killed, as a predicate on the store's state (polled every 0.5 s). With one
# trial at a time, each holds for seconds: decoding, a trial's start, Tune's shutdown + the test
# evaluation of the best checkpoint.
KILL_POINTS = {
    "before-first-trial": lambda status, trials, models: status == "RUNNING" and not trials,
    "mid-trial": lambda status, trials, models: (len(trials) == 2 and trials[0][0] == "COMPLETED"
                                                 and trials[1][1] >= 1),
    "between-trials": lambda status, trials, models: (len(trials) >= 1 and trials[0][0] == "COMPLETED"
                                                      and all(epochs == 0 for _, epochs in trials[1:])),
    "registering-best": lambda status, trials, models: (status == "RUNNING" and len(trials) == 2
                                                        and all(t == "COMPLETED" for t, _ in trials)),
}


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory):
    """One uninterrupted run of FLAGS: what every killed-and-resumed run must end up equal to."""
    root = tmp_path_factory.mktemp("reference")
    url, storage = f"sqlite:///{root}/r.db", str(root / "runs")
    assert main(["tune", *FLAGS, "--results", url, "--storage-path", storage, "--name", "reference"]) == 0
    return snapshot(url, "reference")


@pytest.mark.parametrize("kill_point", list(KILL_POINTS))
def test_sigkilled_driver_resumes_without_losing_or_repeating_work(ray_session, reference, tmp_path, kill_point):
    url, storage = f"sqlite:///{tmp_path}/r.db", str(tmp_path / "runs")
    # The run in a separate driver process, joined to the same Ray, SIGKILLed at the kill point.
    driver = subprocess.Popen(
        [sys.executable, "-m", "platform.tune", *FLAGS, "--results", url, "--storage-path", storage,
         "--name", "killed", "--address", ray_session.get_runtime_context().gcs_address],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: KILL_POINTS[kill_point](*state(url, "killed")), 300, kill_point)
        if kill_point == "mid-trial":
            time.sleep(2.5)  # let Tune save its state once (TUNE_GLOBAL_CHECKPOINT_S=2)
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert state(url, "killed")[0] == "RUNNING"  # killed before the run could finish

    assert main(["tune", *FLAGS, "--results", url, "--storage-path", storage, "--name", "killed", "--resume"]) == 0
    assert snapshot(url, "killed") == reference  # same configs, statuses and per-epoch metrics, nothing twice
    assert state(url, "killed")[0] == "FINISHED" and state(url, "killed")[2] == 1
    # resuming a finished experiment changes nothing and registers no second model
    assert main(["tune", *FLAGS, "--results", url, "--storage-path", storage, "--name", "killed", "--resume"]) == 0
    assert snapshot(url, "killed") == reference and state(url, "killed")[2] == 1


def test_killed_trials_retry_from_checkpoint_and_persistent_failures_are_stored(ray_session, tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/r.db"
    killed: dict[str, list[int]] = {}
    plan = {0: 2, 1: 1}  # trial index -> how many of its processes to kill (max-failures is 1)
    done = threading.Event()

    def killer():
        while not done.is_set():
            store = ResultsStore(url)
            experiment = store.experiment("faults")
            if experiment:
                trials = store.trials(experiment.id)
                for index, trial in enumerate(trials):
                    pid = (trial.metrics or {}).get("pid")
                    pids = killed.setdefault(trial.trial_id, [])
                    if pid and pid not in pids and len(pids) < plan.get(index, 0) and trial.status == "RUNNING":
                        pids.append(pid)
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            time.sleep(0.3)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        code = main(["tune", "--space", "augmentation", "--num-samples", "2", "--max-epochs", "3", "--synthetic-clips",
                     "10", "--scheduler", "fifo", "--max-concurrent", "1", "--max-failures", "1", "--results", url,
                     "--storage-path", str(tmp_path / "runs"), "--name", "faults"])
    finally:
        done.set()
        thread.join()
    assert code == 0
    store = ResultsStore(url)
    first, second = store.trials(store.experiment("faults").id)
    assert first.status == "ERROR" and first.error and first.retries == 2
    assert second.status == "COMPLETED" and second.retries == 1 and second.epochs == 3
    epochs = sorted(e.epoch for t, e in store.epochs(store.experiment("faults").id) if t.trial_id == second.trial_id)
    assert epochs == [0, 1, 2]  # the retry continued from its checkpoint, no epoch recorded twice
    # With Ray's lines off the console, each failure is one line of the run's own (soundsweep.console)
    out = capsys.readouterr().out
    assert out.count(f"trial {first.trial_id} failed, retrying from its last checkpoint: ") == 1
    assert out.count(f"trial {second.trial_id} failed, retrying from its last checkpoint: ") == 1
    assert f"trial {first.trial_id} failed: {first.error} (traceback: " in out


def _write(path, x, rate, subtype="PCM_16", fmt=None):
    soundfile.write(str(path), x, rate, subtype=subtype, format=fmt)
    return str(path)


@pytest.fixture
def troubled_corpus(tmp_path):
    """Two learnable classes plus one file of each kind of trouble, all in the training split."""
    rng = np.random.default_rng(0)
    rows = []
    for label, freq in (("low", 220.0), ("high", 1760.0)):
        for i, split in enumerate(["train"] * 3 + ["val"] * 2 + ["test"] * 2):
            t = np.arange(16000 * 6) / 16000
            x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
            rows.append((_write(tmp_path / f"{label}{i}.wav", x, 16000), label, split))
    good = tmp_path / "good.flac"
    _write(good, 0.3 * np.sin(np.arange(16000 * 6) / 10), 16000)
    trouble = {
        "empty.wav": lambda p: p.write_bytes(b""),
        "truncated.flac": lambda p: p.write_bytes(good.read_bytes()[:200]),
        "wav_named.flac": lambda p: _write(p, 0.3 * np.sin(np.arange(16000 * 6) / 9), 16000, fmt="WAV"),
        "text.wav": lambda p: p.write_text("RIFF? no, just text"),
        "nan.wav": lambda p: _write(p, np.where(np.arange(48000) % 100 == 0, np.nan, 0.1), 16000, subtype="FLOAT"),
        "silent.wav": lambda p: _write(p, np.zeros(16000 * 6), 16000),
        "10ms.wav": lambda p: _write(p, 0.3 * np.ones(160), 16000),
        "10min.wav": lambda p: _write(p, 0.1 * np.sin(np.arange(8000 * 600) / 7), 8000),
        "odd_rate.wav": lambda p: _write(p, 0.3 * np.sin(np.arange(7350 * 6) / 5), 7350),
        "six_channels.wav": lambda p: _write(p, 0.1 * rng.standard_normal((16000 * 6, 6)), 16000),
        "missing.wav": lambda p: None,
    }
    for name, make in trouble.items():
        make(tmp_path / name)
        rows.append((str(tmp_path / name), "low", "train"))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "label", "split"]).to_csv(manifest, index=False)
    return manifest


def test_a_tune_outlives_bad_audio_and_lists_what_it_skipped(ray_session, tmp_path, troubled_corpus):
    url = f"sqlite:///{tmp_path}/r.db"
    code = main(["tune", "--data", str(troubled_corpus), "--num-samples", "1", "--max-epochs", "1",
                 "--results", url, "--storage-path", str(tmp_path / "runs"), "--name", "bad-audio"])
    assert code == 0
    store = ResultsStore(url)
    experiment = store.experiment("bad-audio")
    skipped = {os.path.basename(f["path"]): f["error"] for f in experiment.summary["skipped_files"]}
    assert set(skipped) == {"empty.wav", "truncated.flac", "text.wav", "nan.wav", "10ms.wav", "missing.wav"}
    assert skipped["nan.wav"] == "NaN or Inf samples" and skipped["10ms.wav"].startswith("too short: 0.010 s")
    assert all(reason for reason in skipped.values())
    assert store.trials(experiment.id)[0].status == "COMPLETED"
    # the handled ones were decoded into training segments
    (published,) = (tmp_path / "runs" / "cache" / "segments").glob("*/_prepared.json")
    segments_dir = json.loads(published.read_text())["path"]
    train = pq.read_table(os.path.join(segments_dir, "split=train"), columns=["clip_id"]).column("clip_id").to_pylist()
    for handled in ("wav_named", "silent", "odd_rate", "six_channels"):
        assert train.count(handled) == 1, handled
    assert train.count("10min") == 159  # 600 s in 5 s windows every 3.75 s


def kill_trial_during(url: str, name: str, when, argv: list[str]) -> dict:
    """Run ``soundsweep argv`` and SIGKILL the process of experiment ``name``'s first trial once
    ``when(trial)`` holds for it while it runs (read from the store every 0.3 s). Returns the
    exit ``code`` and, if it was killed, the ``pid``, ``epochs`` and ``metrics`` it had then."""
    killed: dict = {}
    done = threading.Event()

    def killer():
        while not done.is_set() and not killed:
            experiment = ResultsStore(url).experiment(name)
            trials = ResultsStore(url).trials(experiment.id) if experiment else []
            if trials and trials[0].status == "RUNNING" and when(trials[0]):
                killed.update(pid=trials[0].metrics["pid"], epochs=trials[0].epochs, metrics=trials[0].metrics)
                os.kill(killed["pid"], signal.SIGKILL)
            time.sleep(0.3)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        killed["code"] = main(argv)
    finally:
        done.set()
        thread.join()
    return killed


def test_a_killed_fidelity_trial_keeps_its_finished_folds(ray_session, tmp_path):
    """--fidelity runs: a trial killed during its second fold retries from its checkpoint with the
    first fold's result kept (runs.json beside the checkpoint), and runs the remaining folds once."""
    url = f"sqlite:///{tmp_path}/r.db"

    def second_fold_started(trial) -> bool:  # fold 0 finished, fold 1 has reported an epoch
        metrics = trial.metrics or {}
        return len(metrics.get("runs", [])) == 1 and metrics.get("run") == 1

    seen = kill_trial_during(url, "fid", second_fold_started, [
        "tune", "--space", "augmentation", "--num-samples", "1", "--folds", "3", "--fidelity", "runs",
        "--max-epochs", "2", "--synthetic-clips", "10", "--scheduler", "fifo", "--max-failures", "1",
        "--results", url, "--storage-path", str(tmp_path / "runs"), "--name", "fid"])
    code = seen.pop("code")
    assert code == 0 and "pid" in seen, "the trial was never killed during its second fold"
    store = ResultsStore(url)
    (trial,) = store.trials(store.experiment("fid").id)
    assert trial.status == "COMPLETED" and trial.retries == 1
    runs = trial.metrics["runs"]
    assert [r["fold"] for r in runs] == [0, 1, 2] and runs[0] == seen["metrics"]["runs"][0]  # fold 0 not run again
    epochs = sorted((e.epoch, e.metrics["fold"], e.metrics["run_epoch"]) for _, e in store.epochs(store.experiment("fid").id))
    assert epochs == [(i, i // 2, i % 2) for i in range(6)]


def test_a_killed_torch_trainer_trial_retries_from_its_train_checkpoint(ray_session, tmp_path):
    """--executor train: SIGKILL of a trial's process (the Tune trial that drives the TorchTrainer,
    whose Train controller and worker die with it) after its first epoch. The retry starts a new
    TorchTrainer under the same name, which continues from the last Train checkpoint: the epochs
    stored before the kill keep the killed process's metrics (not run again), the later ones come
    from the new process, and every epoch is stored once."""
    url = f"sqlite:///{tmp_path}/r.db"
    killed = kill_trial_during(url, "train-kill", lambda trial: 1 <= trial.epochs < 3, [
        "tune", "--space", "fixed", "--num-samples", "1", "--max-epochs", "3", "--synthetic-clips", "10",
        "--scheduler", "fifo", "--executor", "train", "--cpus-per-worker", "0.5", "--max-failures", "1",
        "--tta-views", "1", "--results", url, "--storage-path", str(tmp_path / "runs"), "--name", "train-kill"])
    code = killed.pop("code")
    assert code == 0 and "pid" in killed, "the trial was never killed mid-trial"
    store = ResultsStore(url)
    experiment = store.experiment("train-kill")
    assert experiment.summary["executor"] == "train"
    (trial,) = store.trials(experiment.id)
    assert (trial.status, trial.retries, trial.epochs) == ("COMPLETED", 1, 3)
    epochs = sorted((e.epoch, e.metrics["pid"]) for _, e in store.epochs(experiment.id))
    assert [epoch for epoch, _ in epochs] == [0, 1, 2]
    before, after = epochs[:killed["epochs"]], epochs[killed["epochs"]:]
    assert {pid for _, pid in before} == {killed["pid"]}  # not trained again after the kill
    assert after and killed["pid"] not in {pid for _, pid in after}  # trained by the retry
    uris = [e.checkpoint_uri for _, e in store.epochs(experiment.id)]
    assert all("/train_runs/" in uri for uri in uris) and len(set(uris)) == 3  # one Train checkpoint per epoch
    # the killed TorchTrainer's worker group was released: no placement group holds CPUs any more
    assert not [g for g in ray.util.placement_group_table().values() if g["state"] == "CREATED"]
