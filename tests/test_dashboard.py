"""``python -m platform.dashboard`` on the session's tiny run, its pages loaded in a real headless Chromium.

The server runs as the real command in a subprocess on a free port of 127.0.0.1 and is stopped
when the module's tests end. Screenshots of the pages go to ``artifacts/dashboard/`` (or
``$SOUNDSWEEP_ARTIFACTS/dashboard``); the test prints the folder.
"""
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urljoin, urlparse

import pytest

from soundsweep.cli import main
from soundsweep.results import ResultsStore
from tests.conftest import REPO
from tests.helpers.browser import PNG_MAGIC, load


@pytest.fixture(scope="module")
def dashboard(tiny_run, ray_session):
    """The running dashboard: ``{"pages": URL, "optuna": URL, "output": [lines]}``."""
    _, url, _ = tiny_run
    env = {**os.environ, "RAY_ADDRESS": ray_session.get_runtime_context().gcs_address}
    process = subprocess.Popen([sys.executable, "-m", "platform.dashboard", "--results", url, "--port", "0"],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)  # drains the pipe
    reader.start()
    deadline = time.monotonic() + 180
    while not any(line.startswith("Ray dashboard:") for line in output):  # printed last
        assert process.poll() is None, f"the dashboard exited with {process.returncode}: {''.join(output)}"
        assert time.monotonic() < deadline, f"the dashboard printed no URLs in 180 s: {''.join(output)}"
        time.sleep(0.2)
    urls = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in output if ":" in line}
    yield {"pages": urls["SoundSweep pages"], "optuna": urls["Optuna dashboard"], "output": output}
    process.terminate()
    process.wait(timeout=30)
    reader.join(timeout=5)


@pytest.fixture(scope="module")
def screenshots():
    folder = os.path.join(os.environ.get("SOUNDSWEEP_ARTIFACTS", os.path.join(REPO, "artifacts")), "dashboard")
    os.makedirs(folder, exist_ok=True)
    return folder


def test_serves_on_localhost_and_prints_every_url(dashboard, ray_session):
    pages, optuna = urlparse(dashboard["pages"]), urlparse(dashboard["optuna"])
    assert pages.hostname == "127.0.0.1" and pages.port == optuna.port and optuna.path == "/dashboard"
    ray_line = next(line for line in dashboard["output"] if line.startswith("Ray dashboard:"))
    # The session's Ray was reached through RAY_ADDRESS. It runs with include_dashboard=False, which
    # still starts Ray's API server: a URL once that server has registered, else the note.
    assert "no Ray cluster reached" not in ray_line, ray_line
    assert "http://" in ray_line or "runs without its dashboard" in ray_line, ray_line


def test_optuna_dashboard_api_lists_the_study(dashboard):
    with urllib.request.urlopen(urljoin(dashboard["optuna"], "/api/studies"), timeout=60) as response:
        studies = json.load(response)["study_summaries"]
    assert "tiny" in [s["study_name"] for s in studies]
    with urllib.request.urlopen(dashboard["optuna"], timeout=60) as response:
        assert response.status == 200 and "Optuna Dashboard" in response.read().decode()


def test_pages_in_chromium(dashboard, tiny_run, screenshots, capsys):
    _, url, _ = tiny_run
    store = ResultsStore(url)
    experiment = store.experiment("tiny")
    trials = {t.trial_id: t for t in store.trials(experiment.id)}
    (model,) = store.models(experiment.id)

    index = load(dashboard["pages"], os.path.join(screenshots, "index.png"))
    assert [row[0] for row in index.tables["experiments"]] == ["tiny"]
    board = index.tables["leaderboard"]
    assert sorted(row[3] for row in board) == sorted(trials)  # one row per trial: rank, experiment, space, trial
    assert [(row[1], row[2], row[4]) for row in board] == [("tiny", "augmentation", "resnet2d w16")] * len(board)
    best_row = next(row for row in board if row[3] == model.trial_id)
    assert best_row[9] == f"{model.val_clip_acc:.3f}" and best_row[11] == f"{model.test_clip_acc:.3f}"

    page = load(urljoin(dashboard["pages"], "experiments/tiny"), os.path.join(screenshots, "experiment.png"))
    assert {"heatmap", "tradeoff", "confusion"} <= set(page.images)
    (registered,) = page.tables["models"]
    assert model.checkpoint_uri in registered
    for image in ("heatmap", "tradeoff", "confusion"):
        assert_png(urljoin(dashboard["pages"], page.images[image]))

    trial = load(urljoin(dashboard["pages"], f"experiments/tiny/trials/{model.trial_id}"),
                 os.path.join(screenshots, "trial.png"))
    assert_png(urljoin(dashboard["pages"], trial.images[f"curves-{model.trial_id}"]))
    assert_png(urljoin(dashboard["pages"], trial.images["confusion"]))
    assert len(trial.tables[f"epochs-{model.trial_id}"]) == trials[model.trial_id].epochs
    per_class = trial.tables["per-class"]
    assert [row[0] for row in per_class] == model.classes
    assert [int(row[2]) for row in per_class] == [model.confusion[i][i] for i in range(len(model.classes))]
    per_device = trial.tables["per-device"]  # the synthetic set records each clip's "device" (its EQ)
    assert per_device and all(row[0].startswith("dev") for row in per_device)
    assert sum(int(row[1]) for row in per_device) == sum(map(sum, model.confusion))  # every test clip once
    assert sum(int(row[2]) for row in per_device) == sum(model.confusion[i][i] for i in range(len(model.classes)))

    for name in ("index", "experiment", "trial"):
        with open(os.path.join(screenshots, f"{name}.png"), "rb") as f:
            assert f.read(8) == PNG_MAGIC
    with capsys.disabled():
        print(f"\ndashboard screenshots: {screenshots}")


def test_unknown_pages_are_404(dashboard):
    for path in ("experiments/nope", "experiments/tiny/trials/nope", "experiments/tiny/plots/nope.png"):
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(urljoin(dashboard["pages"], path), timeout=60)
        assert error.value.code == 404


def test_missing_store_or_busy_port_is_one_line_exit_2(tiny_run, tmp_path, capsys):
    assert main(["dashboard", "--results", f"sqlite:///{tmp_path}/missing.db"]) == 2
    assert not (tmp_path / "missing.db").exists()  # not created by looking
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert main(["dashboard", "--results", tiny_run[1], "--port", str(busy.getsockname()[1])]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "no such database file" in lines[0] and "pick another --port" in lines[1]


def assert_png(url: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as response:
        assert response.headers["Content-Type"] == "image/png", url
        assert response.read(8) == PNG_MAGIC, url
