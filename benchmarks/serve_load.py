"""Load test of ``soundsweep serve``: requests/s and latency at 1, 4 and 16 concurrent clients.

    python -m benchmarks.serve_load [--out benchmarks/results/serve_load.json] [--seconds 15]
                                    [--clients 1,4,16] [--replicas 1] [--cpus 2] [--results URL --model REF]

The server is the command's own (:func:`soundsweep.serve.start`: Ray Serve's HTTP proxy on a free
loopback port, ``--replicas`` replicas) in a local Ray of ``--cpus`` CPUs started here. Each
level runs ``--clients`` threads for ``--seconds``; each thread POSTs clips back to back over
its own keep-alive connection (``requests.Session``), cycling through 8 generated
``--clip-seconds`` clips (half 44.1 kHz stereo FLAC, half 16 kHz mono WAV: the corpus of
``benchmarks.predict_throughput``), and times every request from send to the parsed answer.
One request first loads the replica's lazy state and is not counted.

Model: ``--model REF`` of ``--results URL``, else the best model of a one-trial, one-epoch tune on
the embedded synthetic set (``benchmarks.predict_throughput.trained_model``).

Figures written (JSON), per level: ``requests`` answered (200) in the level's span,
``requests_per_s``, latency ``p50_ms``, ``p99_ms`` and ``mean_ms``, ``errors`` (any other answer
or a failed connection) and the machine's load average when the level ended (the 2-core
development machine is shared: other work changes these figures, as it does not change the
labels).
"""
import argparse
import json
import os
import platform as stdlib_platform  # run from the repo root: the stdlib module either way
import socket
import sys
import tempfile
import threading
import time

import numpy as np
import ray
import requests
from ray import serve

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.predict_throughput import corpus, trained_model  # noqa: E402
from soundsweep.predict import read_inputs, resolve  # noqa: E402
from soundsweep.results import ResultsStore  # noqa: E402
from soundsweep.serve import start  # noqa: E402

CLIPS = 8


def level(url: str, bodies: list[tuple[str, bytes]], clients: int, seconds: float) -> dict:
    """``clients`` threads POSTing ``bodies`` in turn for ``seconds``; their latencies and errors."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        with requests.Session() as session:
            n = i
            while time.perf_counter() < deadline:
                name, body = bodies[n % len(bodies)]
                sent = time.perf_counter()
                try:
                    answer = session.post(url, data=body, params={"name": name}, timeout=120)
                    answer.json()
                    ok = answer.status_code == 200
                except (requests.RequestException, ValueError):
                    ok = False
                if ok:
                    latencies[i].append(time.perf_counter() - sent)
                else:
                    errors[i] += 1
                n += clients

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    span = time.perf_counter() - started  # the last requests finish after the deadline
    times = np.array([t for each in latencies for t in each]) * 1000
    return {"clients": clients, "seconds": span, "requests": len(times), "requests_per_s": len(times) / span,
            "p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
            "mean_ms": float(times.mean()), "errors": sum(errors), "load_average": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "serve_load.json"))
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each level (default %(default)s)")
    parser.add_argument("--clients", default="1,4,16", help="concurrent clients per level (default %(default)s)")
    parser.add_argument("--clip-seconds", type=float, default=6.0)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    parser.add_argument("--results", default=None, help="results store holding --model (default: train one)")
    parser.add_argument("--model", default=None, help="model id, experiment or checkpoint (with --results)")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level="WARNING",
             log_to_driver=False)
    url, ref = (args.results, args.model) if args.model else trained_model(tempfile.mkdtemp(prefix="serve-bench-"))
    predictor = resolve(ResultsStore(url, must_exist=True), ref)
    paths = read_inputs([corpus(CLIPS, args.clip_seconds)])["path"]
    bodies = []
    for path in paths:
        with open(path, "rb") as f:
            bodies.append((os.path.basename(path), f.read()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.perf_counter()
    endpoint = start(predictor, port=port, replicas=args.replicas)
    ready_s = time.perf_counter() - started
    try:
        assert requests.post(endpoint, data=bodies[0][1], timeout=300).status_code == 200, "the first request failed"
        levels = [level(endpoint, bodies, int(n), args.seconds) for n in args.clients.split(",")]
    finally:
        serve.shutdown()
    result = {
        "machine": f"{stdlib_platform.machine()}, {os.cpu_count()} cores", "ray_cpus": args.cpus,
        "replicas": args.replicas, "model": predictor.description, "tta_views": predictor.views,
        "segment_s": predictor.spec.segment_s, "sample_rate": predictor.spec.sample_rate,
        "clip_seconds": args.clip_seconds, "clips": CLIPS, "seconds_per_level": args.seconds,
        "serve_ready_s": ready_s, "levels": levels,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
