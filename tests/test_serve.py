"""``soundsweep serve``: the tiny run's model behind Ray Serve answers as ``predict`` labels.

The server runs as the real command, in a subprocess joined to the session's Ray (``ray_session``)
on a free loopback port, and gets real HTTP requests: good files (raw and multipart), bad ones
(each a 4xx JSON error, the server serving on), a 10-minute file. Ctrl-C stops it and Serve.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading

import numpy as np
import pandas as pd
import pytest
import requests
from ray import serve

from soundsweep.cli import main
from tests.conftest import REPO
from tests.test_cli import command_help
from tests.test_predict import rows_of, tone

pytestmark = pytest.mark.e2e
LIMITS = ["--max-mb", "32", "--max-seconds", "610"]
"""The test server's limits: a 10-minute file passes both, an 11-minute one or a 33 MB body does not."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def files(tiny, tmp_path_factory):
    """Audio to send, and ``predict``'s JSON row for each clip (run before the server takes its CPU)."""
    _, url, model, manifest = tiny
    folder = tmp_path_factory.mktemp("serve")
    test = pd.read_csv(manifest).query("split == 'test'")
    good = os.path.join(os.path.dirname(manifest), test["path"].iloc[0])
    short = tone(folder / "short.wav", 1.0)  # under one 5 s segment: padded
    out = folder / "predicted.jsonl"
    assert main(["predict", "--model", str(model.id), good, short, "--out", str(out), "--results", url]) == 0
    expected = {os.path.basename(r["path"]): r for r in rows_of(out)}
    return {"good": good, "short": short, "expected": expected, "folder": folder}


@pytest.fixture(scope="module")
def server(tiny, files, ray_session):
    """``(URL, process, its stdout lines, their reader)`` of ``soundsweep serve`` on the session's Ray."""
    _, url, model, _ = tiny
    port = free_port()
    address = ray_session.get_runtime_context().gcs_address
    process = subprocess.Popen([sys.executable, "-m", "soundsweep", "serve", "--model", str(model.id), "--results",
                                url, "--address", address, "--port", str(port), *LIMITS],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    ready = threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("serving at "):
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(300), "\n".join(lines)
        yield f"http://127.0.0.1:{port}/", process, lines, reader
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(120)
        serve.shutdown()


def post(url: str, data: bytes, **kwargs) -> requests.Response:
    return requests.post(url, data=data, timeout=300, **kwargs)


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def same_prediction(answer: dict, row: dict) -> None:
    assert answer["label"] == row["label"]
    assert answer["probability"] == pytest.approx(row["probability"], abs=2e-6)
    assert [name for name, _ in answer["top"]] == [name for name, _ in row["top"]]
    assert np.allclose([p for _, p in answer["top"]], [p for _, p in row["top"]], atol=2e-6)


def test_it_prints_its_url_and_answers_a_file_as_predict_labels_it(server, files):
    url, _, lines, _ = server
    assert f"serving at {url} " in "\n".join(lines) and "Ctrl-C" in lines[-1]
    name = os.path.basename(files["good"])
    answer = post(url, read(files["good"]), params={"name": name})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    same_prediction(body, files["expected"][name])
    assert body["path"] == name and body["segments"] >= 2 and body["notes"] == [] and body["seconds"] > 5


def test_a_multipart_upload_answers_the_same(server, files):
    url, _, _, _ = server
    name = os.path.basename(files["short"])
    with open(files["short"], "rb") as f:
        answer = requests.post(url, files={"file": (name, f, "audio/wav")}, timeout=300)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    same_prediction(body, files["expected"][name])
    assert body["segments"] == 1 and body["seconds"] == 1.0
    assert body["notes"] == [f"{name} is 1.00 s, shorter than one 5 s segment: zero-padded at its end, as training "
                             "pads it"]


def test_bad_requests_get_a_json_error_and_the_server_serves_on(server, files):
    url, _, _, _ = server
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    long = tone(files["folder"] / "long.wav", 660.0, rate=1000)  # 11 minutes, small: over --max-seconds 610
    cases = [
        (post(url, b"these are text bytes, not audio"), 415, "upload: cannot decode: Error opening the bytes"),
        (post(url, b""), 400, "empty body"),
        (requests.get(url, timeout=60), 405, "POST an audio file"),
        (post(url, read(tone(files["folder"] / "blip.wav", 0.1))), 422, "too short"),
        (post(url, read(long)), 413, "--max-seconds"),
        (requests.post(url, files={"other": ("x.wav", b"RIFF")}, timeout=60), 400, "field 'file'"),
    ]
    # A body announced over --max-mb (32) is refused from its header, before it is read.
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/")
    connection.putheader("Content-Length", str(33 * 2**20))
    connection.endheaders(b"RIFF")
    response = connection.getresponse()
    too_big = json.loads(response.read())
    connection.close()
    assert response.status == 413 and "--max-mb" in too_big["error"]
    for answer, status, words in cases:
        assert answer.status_code == status and words in answer.json()["error"], (status, answer.text)
    good = post(url, read(files["good"]), params={"name": os.path.basename(files["good"])})
    assert good.status_code == 200 and good.json()["label"] == files["expected"][os.path.basename(files["good"])]["label"]


def test_a_ten_minute_file_is_answered(server, files):
    url, _, _, _ = server
    answer = post(url, read(tone(files["folder"] / "ten.wav", 600.0, rate=16000)), params={"name": "ten.wav"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["seconds"] == 600.0 and answer.json()["segments"] > 100


def test_ctrl_c_shuts_serve_down(server):
    _, process, lines, reader = server
    process.send_signal(signal.SIGINT)
    assert process.wait(120) == 0
    reader.join(10)
    assert "serve: stopped" in lines[-1]
    assert serve.status().applications == {}


def test_serve_help_imports_no_heavy_library():
    text = command_help("serve")
    assert "--replicas" in text and "--max-seconds" in text
