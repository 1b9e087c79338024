"""``soundsweep dashboard``: the live view of a results store, served on one local port.

One threaded WSGI server from the standard library (``wsgiref``) serves two applications:

- optuna-dashboard (its WSGI app, :func:`optuna_dashboard.wsgi`) on its own fixed routes
  (``/dashboard``, ``/api/...``, ``/static/...``): the search as Optuna sees it (history,
  parameter importances, parallel coordinates), read from the Optuna tables;
- SoundSweep's pages under ``/soundsweep/`` (:mod:`soundsweep.report.pages`), read from the
  ``ss_`` tables of the same database; ``/`` leads to them.

optuna-dashboard runs in this process instead of as an ``optuna-dashboard`` subprocess: one
process and one port to start, stop (Ctrl-C ends both) and forward through SSH; the same
installed Optuna reads the database that the tune run writes; and nothing depends on the
console script being on PATH. Both read the database on every request, so a page shows a
running search as it is now (and reloads itself every 15 s while the experiment runs).
"""
import os
import sys
import threading
import traceback
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, quote, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from soundsweep.errors import UsageError
from soundsweep.report.pages import experiment_page, index_page, trial_page
from soundsweep.report.plots import Plot, render
from soundsweep.report.views import ExperimentView, NotFound, load_all, load_experiment
from soundsweep.results import ResultsStore

PREFIX = "/soundsweep"


class LiveLinks:
    """Links of the running dashboard: pages under :data:`PREFIX`, figures drawn per request."""

    live = True

    def __init__(self, ray_url: str | None = None):
        self.ray_url = ray_url

    def nav(self) -> list[tuple[str, str]]:
        links = [("Experiments", f"{PREFIX}/"), ("Optuna dashboard", "/dashboard")]
        return links + ([("Ray dashboard", self.ray_url)] if self.ray_url else [])

    def experiment(self, name: str) -> str:
        return f"{PREFIX}/experiments/{quote(name, safe='')}"

    def trial(self, experiment: str, trial_id: str) -> str:
        return f"{self.experiment(experiment)}/trials/{quote(trial_id, safe='')}"

    def plot(self, experiment: ExperimentView, plot: Plot) -> str:
        query = urlencode({k: v for k, v in (("trial", plot.trial), ("x", plot.x), ("y", plot.y)) if v})
        return f"{self.experiment(experiment.name)}/plots/{plot.kind}.png" + (f"?{query}" if query else "")


def pages_app(store: ResultsStore, links: LiveLinks):
    """WSGI application of SoundSweep's pages (every path starts with :data:`PREFIX`)."""

    def app(environ, start_response):
        # PEP 3333: PATH_INFO arrives as latin-1 decoded bytes; names may be UTF-8.
        path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
        parts = [p for p in path[len(PREFIX):].split("/") if p]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        try:
            if not parts:
                return _respond(start_response, "200 OK", "text/html; charset=utf-8",
                                index_page(load_all(store), links))
            if parts[0] == "experiments" and len(parts) >= 2:
                experiment = load_experiment(store, parts[1])
                rest = parts[2:]
                if not rest:
                    return _respond(start_response, "200 OK", "text/html; charset=utf-8",
                                    experiment_page(experiment, links, (query.get("x"), query.get("y"))))
                if rest[0] == "trials" and len(rest) == 2:
                    return _respond(start_response, "200 OK", "text/html; charset=utf-8",
                                    trial_page(experiment, rest[1], links))
                if rest[0] == "plots" and len(rest) == 2 and rest[1].endswith(".png"):
                    plot = Plot(rest[1][:-4], query.get("trial"), query.get("x"), query.get("y"))
                    return _respond(start_response, "200 OK", "image/png", render(experiment, plot))
            raise NotFound(f"no page {path}")
        except (NotFound, UsageError) as exc:  # unknown experiment, trial, figure or path
            message = exc.args[0] if exc.args else str(exc)
            return _respond(start_response, "404 Not Found", "text/plain; charset=utf-8", f"{message}\n")
        except Exception as exc:  # one broken page must not stop the server
            traceback.print_exc(file=sys.stderr)
            return _respond(start_response, "500 Internal Server Error", "text/plain; charset=utf-8", f"{exc}\n")

    return app


def make_app(store: ResultsStore, links: LiveLinks):
    """The dashboard's WSGI application: SoundSweep's pages plus optuna-dashboard, one database."""
    import optuna_dashboard

    pages = pages_app(store, links)
    optuna_app = optuna_dashboard.wsgi(store.url)

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in ("", "/"):
            start_response("302 Found", [("Location", f"{PREFIX}/")])
            return [b""]
        if path == PREFIX or path.startswith(f"{PREFIX}/"):
            return pages(environ, start_response)
        return optuna_app(environ, start_response)

    return app


def ray_dashboard(address: str | None) -> tuple[str | None, str]:
    """``(URL, line to print)`` of the Ray dashboard of a cluster that is already running.

    Connects to ``address`` (or ``$RAY_ADDRESS``, else a cluster running on this machine) only to
    read the URL, then disconnects; it never starts Ray. The URL is None when there is no
    cluster, or the cluster runs without its dashboard; the line says which.
    """
    import ray

    target = address or os.environ.get("RAY_ADDRESS") or "auto"
    try:
        context = ray.init(address=target, logging_level="ERROR", log_to_driver=False)
    except Exception as exc:  # ConnectionError when nothing runs; also several clusters, a bad address
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"none (no Ray cluster reached at {target}: {reason})"
    try:
        url = context.dashboard_url  # a ray:// client context has no address_info
        gcs = getattr(context, "address_info", {}).get("gcs_address", target)
    finally:
        ray.shutdown()  # a connected driver only disconnects; the cluster keeps running
    if not url:
        return None, f"none (the Ray cluster at {gcs} runs without its dashboard)"
    url = url if "://" in url else f"http://{url}"
    return url, url


def serve(results_url: str, host: str = "127.0.0.1", port: int = 8080, address: str | None = None) -> None:
    """Serve the dashboard until interrupted, printing its URLs (``--port 0``: any free port).

    The server answers at once; the Ray dashboard's URL is looked up afterwards (an unreachable
    ``--address`` can keep Ray trying for minutes) and printed, and linked, when known.
    """
    store = ResultsStore(results_url, must_exist=True)
    links = LiveLinks()
    try:
        server = _ThreadingServer((host, port), _Handler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port") from exc
    server.set_app(make_app(store, links))
    serving = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    serving.start()
    base = f"http://{host}:{server.server_port}"
    print(f"SoundSweep pages:  {base}{PREFIX}/", flush=True)
    print(f"Optuna dashboard:  {base}/dashboard", flush=True)
    print(f"results store:     {results_url}\nCtrl-C stops the server.", flush=True)
    try:
        links.ray_url, ray_line = ray_dashboard(address)
        print(f"Ray dashboard:     {ray_line}", flush=True)
        serving.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """A browser loads a page's figures in parallel; each request gets a thread."""

    daemon_threads = True


class _Handler(WSGIRequestHandler):
    """Logs failed requests only (a page with figures would print a line per image)."""

    def log_request(self, code="-", size="-"):
        if str(code)[:1] in ("4", "5"):
            super().log_request(code, size)


def _respond(start_response, status: str, content_type: str, body) -> list[bytes]:
    data = body.encode("utf-8") if isinstance(body, str) else body
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))),
                            ("Cache-Control", "no-store")])
    return [data]
