"""What a run prints: SoundSweep's own lines on the console, what Ray, Ray Data, Tune, Optuna and
MLflow say in log files.

Left as they are, Ray forwards every worker's output to the driver (each trial's "Checkpoint
successfully created", Ray Data's notices, abseil's "Lock blocking" from the decode, the
``SystemExit`` traceback of a stopped trial's worker, lines that arrive after the leaderboard),
Tune prints a banner pointing TensorBoard into Ray's temporary session folder, and the libraries
log to stderr between the run's status lines. :func:`calm` keeps all of that off the console
without losing it:

- ``ray.init(log_to_driver=False)`` (:func:`ray_init_options`): worker output stays in the worker
  log files of Ray's session folder (``logs/worker-*.out``, ``.err``), where Ray writes it anyway;
- the console handlers of this process's ``ray``, ``ray.data``, ``optuna`` and ``mlflow`` loggers
  are muted and their records go to :data:`LOG_FILE` in the same folder (Ray Data also keeps its
  own ``logs/ray-data/ray-data.log``);
- ``RAY_AIR_NEW_OUTPUT=0``: Tune's legacy output engine, which prints nothing at the
  ``verbose=0`` the run configuration asks for (the new engine prints its banner at every
  verbosity).

With ``--verbose`` (``calm(verbose=True)``) Ray's console output is left as Ray sets it up.
"""
import logging
import os
import tempfile

import ray

LOGGERS = ("ray", "ray.data", "optuna", "mlflow")
"""The loggers that print to the console of the driver process: Ray's (Tune's and Train's
propagate to ``ray``), Ray Data's, Optuna's and MLflow's (each has its own stderr handler)."""
LOG_FILE = "soundsweep-driver.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Muted(logging.Filter):
    """Lets a console handler's records through only with ``--verbose``."""

    verbose = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.verbose


class _DriverLog(logging.Handler):
    """Writes the records of :data:`LOGGERS` to :data:`LOG_FILE` once its folder is known (Ray's
    session folder exists only once ``ray.init`` made it); earlier records wait, at most
    :attr:`PENDING` of them."""

    PENDING = 1000

    def __init__(self):
        super().__init__(logging.INFO)
        self.file: logging.FileHandler | None = None
        self.pending: list[logging.LogRecord] = []

    def open(self, path: str) -> None:
        if self.file is not None and self.file.baseFilename == os.path.abspath(path):
            return
        if self.file is not None:
            self.file.close()
        self.file = logging.FileHandler(path)
        # Its own format: ray.init sets the format of every handler of the "ray" logger, this one's too.
        self.file.setFormatter(logging.Formatter(LOG_FORMAT))
        for record in self.pending:
            self.file.emit(record)
        self.pending.clear()

    def emit(self, record: logging.LogRecord) -> None:
        if self.file is not None:
            self.file.emit(record)
        elif len(self.pending) < self.PENDING:
            self.pending.append(record)


_MUTED = _Muted()
_DRIVER_LOG = _DriverLog()


def calm(verbose: bool = False) -> None:
    """Before ``ray.init``: keep Ray's, Tune's and the libraries' lines off the console (see the
    module's docstring), or with ``verbose`` let them through."""
    _MUTED.verbose = verbose
    if not verbose:
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    for name in LOGGERS:
        route(name)


def route(name: str) -> None:
    """Mute the console handlers of the logger ``name`` (unless verbose) and copy its records to
    the log file. Idempotent; call it again for a library that sets up its handler on import."""
    logger = logging.getLogger(name)
    for handler in logger.handlers:
        console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
        if console and _MUTED not in handler.filters:
            handler.addFilter(_MUTED)
    if _DRIVER_LOG not in logger.handlers:
        logger.addHandler(_DRIVER_LOG)


def ray_init_options() -> dict:
    """The ``ray.init`` arguments of :func:`calm`'s choice: worker output reaches the console only
    with ``--verbose``; this process's Ray records from INFO up reach the log file."""
    return {"log_to_driver": _MUTED.verbose, "logging_level": "INFO"}


def open_log(folder: str | None = None) -> str:
    """Start writing :data:`LOG_FILE` into ``folder``, by default the logs folder of the Ray session
    this process is connected to, which also holds the workers' output and Ray Data's log; return
    the folder."""
    if folder is None:
        # The one place Ray names its session folder to a driver (Ray Data's log file uses it too).
        node = ray._private.worker._global_node
        folder = node.get_logs_dir_path() if node is not None else tempfile.gettempdir()
    _DRIVER_LOG.open(os.path.join(folder, LOG_FILE))
    return folder
