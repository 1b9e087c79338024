"""What a run prints, and where the rest goes: a real ``soundsweep tune`` in a subprocess (its own
local Ray, the embedded set, a file-backed MLflow store) prints SoundSweep's lines only, in the
shape of README's sample; with ``--mlflow`` every trial is an MLflow run; a store that cannot be
used is refused before Ray starts. Plus the two pieces it is made of, each on its own: the
console routing (:mod:`soundsweep.console`) and the progress lines (:mod:`soundsweep.progress`).
"""
import fcntl
import io
import logging
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest

from soundsweep import console
from soundsweep.progress import Progress
from soundsweep.results import ResultsStore
from tests.conftest import REPO

CHATTER = [re.compile(p) for p in (
    r"Traceback", r"Checkpoint successfully created", r"Progress bars disabled", r"TensorBoard", r"Lock blocking",
    r"Unhandled error", r"SystemExit", r"\(\S+ pid=\d+", r"Token authentication", r"View detailed results",
    r"A new study created", r"--logdir \S*session_", r"\b(INFO|WARNING|ERROR)\b", r"Configuration for experiment",
    r"repeated \d+x across cluster",
)]
"""Lines of Ray, Ray Data, Tune, Optuna and MLflow that a run printed between its own before
:mod:`soundsweep.console` (a forwarded worker line starts with ``(name pid=N)``)."""

KINDS = [(kind, re.compile(p)) for kind, p in (
    ("mlflow", r"^mlflow: "),
    ("ray", r"^ray: logs in \S+ \(--verbose prints them here\)$"),
    ("plan", r"^plan: "),
    ("data", r"^data: \d+ classes; "),
    ("reference", r"^reference: "),
    ("tensorboard", r"^tensorboard: tensorboard --logdir \S+$"),
    ("status", r"^\[\s*\d+m\d\ds\] trials \d+/\d+: .* \| .* \| \d+ not started$"),
    ("blank", r"^$"),
    ("leaderboard", r"^leaderboard \(.*, \d+ trials, \d+ s; "),
    ("columns", r"^  trial\s+status\s+epochs\s+best\s+val seg\s+val clip\s+config$"),
    ("reference row", r"^  reference\s+\d\.\d{3}\s+\d\.\d{3}  "),
    ("trial row", r"^  [0-9a-f]{8}\s+[A-Z]+\s+\d+\s+\d+\s+\d\.\d{3}\s+\d\.\d{3}  "),
    ("best model", r"^best model \d+: trial [0-9a-f]{8} epoch \d+, [\d,]+ parameters$"),
    ("chosen", r"^  evaluation chosen on val: "),
    ("plain test", r"^  test without TTA: "),
    ("tta test", r"^  test with TTA \(\d+ views\): "),
    ("vs reference", r"^  vs reference \("),
    ("checkpoint", r"^checkpoint: \S+$"),
    ("skipped", r"^skipped files: \d+$"),
    ("results store", r"^results store: \S+$"),
    ("report", r"^report: \S+/index.html \(\d+ figures beside it\)$"),
    ("dashboard", r"^dashboard: soundsweep dashboard --results \S+$"),
)]
"""Every kind of line a default ``soundsweep tune`` prints on stdout, in README's words."""


def shape(lines: list[str], leave_out: set[str] = frozenset()) -> list[str]:
    """The kinds of ``lines`` in order, a run of one kind counted once (status lines, trial rows);
    a line of no known kind stays itself, so it shows in a failed comparison."""
    kinds: list[str] = []
    for line in lines:
        kind = next((k for k, pattern in KINDS if pattern.search(line)), f"unknown line: {line!r}")
        if kind not in leave_out and (not kinds or kinds[-1] != kind):
            kinds.append(kind)
    return kinds


def readme_sample() -> list[str]:
    """The lines of README's sample run: the first fenced block under '### What a run prints'."""
    with open(os.path.join(REPO, "README.md")) as f:
        text = f.read()
    section = text[text.index("### What a run prints"):]
    return re.search(r"```\n(.*?)```", section, re.S).group(1).splitlines()


@pytest.fixture(scope="module")
def calm_run(tmp_path_factory):
    """One tiny ``python -m platform.tune --mlflow file://...`` in a subprocess with its own local Ray:
    ``(process, results URL, MLflow URI)`` with stdout and stderr kept apart."""
    root = tmp_path_factory.mktemp("console")
    url, mlflow_uri = f"sqlite:///{root}/results.db", (root / "mlruns").as_uri()
    process = subprocess.run(
        [sys.executable, "-m", "platform.tune", "--space", "augmentation", "--num-samples", "2", "--max-epochs", "2",
         "--synthetic-clips", "10", "--seed", "3", "--name", "calm", "--results", url,
         "--storage-path", str(root / "runs"), "--mlflow", mlflow_uri, "--address", "local"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return process, url, mlflow_uri


@pytest.mark.e2e  # a tune run in a subprocess, with its own Ray
def test_console_holds_no_ray_chatter(calm_run):
    process, _, _ = calm_run
    for stream in (process.stdout, process.stderr):
        noisy = [line for line in stream.splitlines() if any(p.search(line) for p in CHATTER)]
        assert noisy == []
    # stderr holds the progress of the decode, the evaluation and the report, as plain lines (no terminal)
    steps = [line.split(":")[0] for line in process.stderr.splitlines()]
    assert [step for i, step in enumerate(steps) if i == 0 or steps[i - 1] != step] == [
        "decoding", "evaluating the best model", "writing the report"]


@pytest.mark.e2e  # a tune run in a subprocess, with its own Ray
def test_readme_sample_has_the_shape_of_a_real_run(calm_run):
    process, _, _ = calm_run
    sample = readme_sample()
    assert len(sample) > 20 and shape(sample) == shape(sample, {"mlflow"})  # a plain run, no --mlflow in it
    assert shape(process.stdout.splitlines(), {"mlflow"}) == shape(sample)


@pytest.mark.e2e  # a tune run in a subprocess, with its own Ray
def test_driver_log_holds_what_the_console_left_out(calm_run):
    """The folder the 'ray:' line names holds this process's Ray and Optuna records."""
    process, _, _ = calm_run
    folder = re.search(r"^ray: logs in (\S+) ", process.stdout, re.M).group(1)
    with open(os.path.join(folder, console.LOG_FILE)) as f:
        log = f.read()
    assert "Started a local Ray instance" in log and "A new study created in RDB with name: calm" in log


@pytest.mark.e2e  # a tune run in a subprocess, with its own Ray
def test_mlflow_has_a_run_per_trial_with_params_and_epoch_metrics(calm_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    process, url, mlflow_uri = calm_run
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads a file store only when allowed
    client = MlflowClient(tracking_uri=mlflow_uri)
    runs = client.search_runs([client.get_experiment_by_name("calm").experiment_id])
    store = ResultsStore(url)
    experiment = store.experiment("calm")
    trials = {t.trial_id: t for t in store.trials(experiment.id)}
    by_trial = {r.data.tags["trial_name"].rsplit("_", 1)[1]: r for r in runs}
    assert len(runs) == 2 and set(by_trial) == set(trials)
    epochs: dict[str, list] = {}
    for trial, epoch in store.epochs(experiment.id):
        epochs.setdefault(trial.trial_id, []).append(epoch)
    for trial_id, mlflow_run in by_trial.items():
        assert mlflow_run.info.status == "FINISHED"
        assert {k: str(v) for k, v in trials[trial_id].params.items()}.items() <= mlflow_run.data.params.items()
        history = client.get_metric_history(mlflow_run.info.run_id, "val_clip_acc")
        assert sorted((m.step, m.value) for m in history) == sorted(
            (e.epoch + 1, pytest.approx(e.metrics["val_clip_acc"])) for e in epochs[trial_id])
    (model,) = store.models(experiment.id)
    best = by_trial[model.trial_id]
    assert best.data.tags["soundsweep.best_model"] == str(model.id)
    assert best.data.metrics["test_clip_acc"] == pytest.approx(model.test_clip_acc)
    assert [a.path for a in client.list_artifacts(best.info.run_id, "best_model")] == ["best_model/checkpoint.pt"]
    assert "report/index.html" in [a.path for a in client.list_artifacts(best.info.run_id, "report")]
    assert f"run {best.info.run_id} of {mlflow_uri}" in process.stdout


@pytest.mark.parametrize("store, words", [
    ("http://127.0.0.1:9", ["cannot use this tracking store", "Connection refused"]),
    ("file://{tmp}/a-file/mlruns", ["cannot use this tracking store", "Not a directory"]),
])
def test_unusable_mlflow_store_is_refused_before_ray_starts(tmp_path, store, words):
    """Exit 2 and one line; the Ray address given cannot be joined, so had Ray been started first
    the process would have failed there instead."""
    (tmp_path / "a-file").write_text("a file, not a folder")
    uri = store.format(tmp=tmp_path)
    out = subprocess.run([sys.executable, "-m", "platform.tune", "--mlflow", uri, "--address", "127.0.0.1:1",
                          "--results", f"sqlite:///{tmp_path}/r.db", "--storage-path", str(tmp_path / "runs")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"soundsweep: error: --mlflow {uri}: ") and all(w in line for w in words)


@pytest.mark.parametrize("verbose", [False, True])
def test_ray_loggers_reach_the_console_only_when_verbose(verbose, tmp_path):
    """A record of Tune's logger always lands in the driver log, on a console handler of Ray's
    logger only with ``--verbose``; worker output is forwarded to the driver only then too."""
    screen = io.StringIO()
    ray_logger = logging.getLogger("ray")
    ray_logger.addHandler(logging.StreamHandler(screen))  # a console handler beside Ray's own
    try:
        console.calm(verbose)
        console.open_log(str(tmp_path))
        logging.getLogger("ray.tune").warning("a line of Tune's")
        assert ("a line of Tune's" in screen.getvalue()) is verbose
        assert "a line of Tune's" in (tmp_path / console.LOG_FILE).read_text()
        assert console.ray_init_options()["log_to_driver"] is verbose
    finally:
        ray_logger.removeHandler(ray_logger.handlers[-1])
        console.calm(False)


def test_progress_without_a_terminal_prints_plain_lines():
    stream = io.StringIO()
    with Progress(4, "decoding", "clips", stream=stream, every_s=0) as bar:
        for _ in range(4):
            bar.update()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("decoding: 1/4 clips (25%), ") and "s left" in lines[0]
    assert re.fullmatch(r"decoding: 4/4 clips in \d+ s", lines[-1]) and "\r" not in stream.getvalue()


def test_progress_on_a_terminal_draws_a_bar_with_counts_and_time_left():
    main, follower = os.openpty()  # a real terminal: the bar's stream reports isatty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 24 rows, 100 columns
    drawn = b""
    with os.fdopen(follower, "w") as terminal:
        with Progress(10, "evaluating", "segments", stream=terminal) as bar:
            for _ in range(2):
                time.sleep(0.2)  # tqdm redraws at most every 0.1 s
                bar.update(5)
        terminal.flush()
        while select.select([main], [], [], 1)[0]:
            drawn += os.read(main, 65536)
    os.close(main)
    frames = drawn.decode().split("\r")
    assert any("evaluating" in f and "5/10" in f and "<00:0" in f for f in frames)  # count, then elapsed<left
    assert any("10/10" in f for f in frames) and frames[-1].strip() == ""  # the bar is gone when the step ends
