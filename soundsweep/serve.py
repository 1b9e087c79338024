"""``soundsweep serve --model REF``: a stored model behind an HTTP endpoint, on Ray Serve.

One Ray Serve application, :data:`APP`: ``--replicas`` replicas of :class:`Labeller`, each
loading the model's networks once (``--gpus-per-replica`` GPUs each), behind Serve's HTTP proxy
on ``--host``:``--port`` (127.0.0.1:8000 by default: this machine only). The model is resolved
as ``soundsweep predict`` resolves it (:func:`soundsweep.predict.resolve`) and a request's clip
goes through predict's own steps (:class:`~trainables.inference.ClipScorer`, then
:class:`~soundsweep.predict.ClipCollector`): decoded with soundfile, mixed, resampled, cut into
segments and padded as training did, scored with the registered evaluation's TTA and aggregated
its way. The answer is predict's JSON line for the clip plus ``segments``, ``seconds`` and
``notes`` (a clip shorter than one segment says it was padded).

A request POSTs the audio file as its body, or as a multipart upload in the field ``file``. The
TTA noise is seeded by the clip id, the file name without its extension as in predict: the
upload's file name, or ``?name=FILE`` with a raw body (default ``upload``), so a named request
answers exactly what ``soundsweep predict FILE`` writes.

A request that cannot be labelled gets a 4xx answer ``{"error": "..."}`` and the replica goes
on serving: another method than POST 405, an empty body or a multipart form without ``file``
400, a body over ``--max-mb`` or audio longer than ``--max-seconds`` 413 (both read before
decoding: the header's length, then the file's own header), bytes soundfile cannot decode 415,
audio too short to use 422.
"""
import asyncio
import io
import os
import signal
import socket
import threading
import time

import pandas as pd
import soundfile
from ray import serve
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import JSONResponse

from soundsweep.cli import SERVE_MAX_MB, SERVE_MAX_SECONDS
from soundsweep.errors import UsageError
from soundsweep.predict import ClipCollector, Predictor, json_row
from trainables.inference import ClipScorer

APP = "soundsweep"
"""The Serve application's name."""


class Rejected(Exception):
    """A request that cannot be labelled: its HTTP status and the reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


@serve.deployment(name="labeller")
class Labeller:
    """One replica: loads the model once, then labels one uploaded clip per request."""

    def __init__(self, predictor: Predictor, max_bytes: int, max_seconds: float, top_k: int = 3):
        self.predictor, self.max_bytes, self.max_seconds, self.top_k = predictor, max_bytes, max_seconds, top_k
        self.scorer = ClipScorer(predictor.networks, predictor.spec)
        # Requests are read concurrently on the event loop; one scores at a time (torch threads
        # are the replica's CPUs), off the loop so the next bodies arrive meanwhile.
        self.lock = threading.Lock()

    async def __call__(self, request: Request) -> JSONResponse:
        try:
            if request.method != "POST":
                raise Rejected(405, f"{request.method} is not supported: POST an audio file (the body, or a "
                                    "multipart upload in the field 'file')")
            name, audio = await self.upload(request)
            self.check_duration(audio)
            return JSONResponse(await asyncio.to_thread(self.label, audio, name))
        except Rejected as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)

    async def upload(self, request: Request) -> tuple[str, bytes]:
        """``(file name, encoded audio)`` of a raw body or a multipart upload; over the size limit: 413."""
        limit = f"over the {self.max_bytes / 2**20:g} MiB limit (--max-mb)"
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise Rejected(413, f"the body is {int(declared) / 2**20:.1f} MiB, {limit}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise Rejected(413, f"the body is {limit}")
            chunks.append(chunk)
        body = b"".join(chunks)
        name, audio = request.query_params.get("name", "upload"), body
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            async def stream():
                yield body

            try:
                form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=10).parse()
            except MultiPartException as exc:
                raise Rejected(400, f"bad multipart upload: {exc.message}") from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise Rejected(400, "the multipart upload has no file in the field 'file'")
            name, audio = upload.filename or name, await upload.read()
        if not audio:
            raise Rejected(400, "empty body: POST the bytes of an audio file")
        return name, audio

    def check_duration(self, audio: bytes) -> None:
        """413 for audio longer than ``max_seconds``, read from the file's header; bytes that are
        not audio pass here and the decode says why."""
        try:
            seconds = soundfile.info(io.BytesIO(audio)).duration
        except Exception:  # soundfile raises several types for what it cannot read
            return
        if seconds > self.max_seconds:
            raise Rejected(413, f"the audio is {seconds:.0f} s long, over the {self.max_seconds:g} s limit "
                                "(--max-seconds)")

    def label(self, audio: bytes, name: str) -> dict:
        """The clip's row (:func:`~soundsweep.predict.json_row`) with its segments, length and notes."""
        clip_id = os.path.splitext(os.path.basename(name))[0] or "upload"
        notes = []

        def report(kind: str, text: str) -> None:
            if kind == "note":
                notes.append(text.removeprefix("note: "))

        clip = pd.DataFrame({"path": [name], "clip_id": [clip_id], "label": [None]})
        collector = ClipCollector(self.predictor, clip, self.top_k, report=report)
        with self.lock:
            scored = self.scorer(audio, clip_id)
        rows = collector.add(scored)
        if not rows:
            (_, error), = collector.outcome.skipped
            raise Rejected(415 if error.startswith("cannot decode") else 422, f"{name}: {error}")
        return {**json_row(rows[0]), "segments": len(scored["segment"]),
                "seconds": round(float(scored["seconds"][0]), 3), "notes": notes}


def check_plan(replicas: int, gpus_per_replica: float) -> None:
    """Refuse a plan the cluster cannot place (replicas would wait for resources forever), or a
    cluster where Serve already runs (its host and port could not change)."""
    import ray

    if replicas < 1:
        raise UsageError(f"--replicas {replicas}: must be at least 1")
    if gpus_per_replica < 0:
        raise UsageError(f"--gpus-per-replica {gpus_per_replica}: must be >= 0")
    have = ray.cluster_resources()
    if replicas > have.get("CPU", 0):
        raise UsageError(f"--replicas {replicas}: each replica takes 1 CPU and the cluster has {have.get('CPU', 0):g}; "
                         "give fewer replicas")
    if replicas * gpus_per_replica > have.get("GPU", 0):
        raise UsageError(f"--replicas {replicas} x --gpus-per-replica {gpus_per_replica:g}: the cluster has "
                         f"{have.get('GPU', 0):g} GPU(s); give fewer")
    running = serve.status()
    if running.applications or running.proxies:
        raise UsageError("Ray Serve already runs on this cluster (applications: "
                         f"{', '.join(running.applications) or 'none'}); stop it first (serve shutdown)")


def start(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, replicas: int = 1,
          gpus_per_replica: float = 0.0, max_mb: float = SERVE_MAX_MB, max_seconds: float = SERVE_MAX_SECONDS,
          top_k: int = 3, local: bool = True) -> str:
    """Start Serve and the application on the connected Ray; return its URL once every replica
    has loaded the model. ``local``: the proxy runs on this machine, so check the port is free
    (Serve would retry a taken port forever)."""
    check_plan(replicas, gpus_per_replica)
    if local:
        try:
            with socket.create_server((host, port)):
                pass
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port") from None
    app = Labeller.options(num_replicas=replicas, ray_actor_options={"num_cpus": 1, "num_gpus": gpus_per_replica})
    try:
        serve.start(proxy_location="HeadOnly", http_options={"host": host, "port": port})
        serve.run(app.bind(predictor, int(max_mb * 2**20), max_seconds, top_k), name=APP, route_prefix="/")
    except BaseException:  # a failed or interrupted start leaves no Serve behind
        serve.shutdown()
        raise
    return f"http://{host}:{port}/"


def run(args) -> None:
    """``soundsweep serve``: resolve the model, start Serve, print the URL, serve until Ctrl-C (or
    SIGTERM), then shut Serve down."""
    from soundsweep import console
    from soundsweep.experiment.preflight import connect_ray
    from soundsweep.predict import resolve
    from soundsweep.results import ResultsStore

    if args.top_k < 1:
        raise UsageError(f"--top-k {args.top_k}: must be at least 1")
    if args.max_mb <= 0 or args.max_seconds <= 0:
        raise UsageError(f"--max-mb {args.max_mb:g} / --max-seconds {args.max_seconds:g}: both must be above 0")
    predictor = resolve(ResultsStore(args.results, must_exist=True), args.model, args.experiment, args.tta)
    connect_ray(args.address, args.verbose)
    console.route("ray.serve")  # Serve's own logger prints every deployment step otherwise
    local = not (args.address or os.environ.get("RAY_ADDRESS", "")).startswith("ray://")
    print(f"serve: {predictor.description}; {args.replicas} replica(s), {args.gpus_per_replica:g} GPU(s) each; "
          f"{predictor.views} TTA view(s), {predictor.aggregation.replace('_', ' ')}", flush=True)
    url = start(predictor, args.host, args.port, args.replicas, args.gpus_per_replica, args.max_mb,
                args.max_seconds, args.top_k, local)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as Ctrl-C does
    try:
        print(f"serving at {url} (POST an audio file: curl --data-binary @clip.wav {url}); Ctrl-C stops it", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        serve.shutdown()
        print("serve: stopped", flush=True)
