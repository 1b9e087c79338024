"""SQLAlchemy schema and writes of the results store.

One database holds SoundSweep's tables (prefixed ``ss_`` so they never collide with the
Optuna study tables that live beside them) and the Optuna studies, so ``optuna-dashboard <url>``
and SoundSweep's reports read the same file. Every write is one transaction; trials are keyed
by (experiment, Tune trial id) and epochs by (trial, epoch), so recording the same event twice
(a resumed run replays its last results) updates a row instead of adding one.

Several processes may write one store at once (SQLite in WAL mode on one machine, PostgreSQL
on a cluster): a transaction that loses a race to another writer (SQLite's lock, a PostgreSQL
deadlock or serialization failure, two inserts of the same key) is retried, and the retry finds
the other writer's row and updates it.

A newer SoundSweep may add nullable columns to the tables; opening an older store adds them
(:func:`_add_missing_columns`), so such a change keeps :data:`SCHEMA_VERSION` and the store's rows.
"""
import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from soundsweep.errors import UsageError
from trainables.objective import rank_key, representative

SCHEMA_VERSION = 2
"""Bumped when an existing store cannot take the change. Version 2: ``ss_models`` gained ``kind``,
``sources``, ``metrics``, ``test_clip_acc_mean`` and ``size_kb``, and ``ss_comparisons`` was added.
Since then, added on opening: ``ss_experiments.provenance``."""
SCHEMA_LOCK = 0x55_5357  # PostgreSQL advisory-lock key held while tables are created
# Messages of the errors a concurrent writer causes and a retry resolves.
# "already exists": two SQLite processes both saw a new file without tables; the retry sees them.
# "duplicate column": two SQLite processes both added a missing column; the retry sees it.
TRANSIENT = ("locked", "deadlock detected", "could not serialize", "UNIQUE constraint failed",
             "duplicate key value", "already exists", "duplicate column")


class Base(DeclarativeBase):
    pass


class Meta(Base):
    __tablename__ = "ss_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class Experiment(Base):
    """An experiment: its configuration, its summary once finished, and its ``provenance``: one
    :func:`soundsweep.provenance.collect` per start (the first run, then each ``--resume``);
    ``None`` in rows written before SoundSweep recorded it."""

    __tablename__ = "ss_experiments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    space: Mapped[str] = mapped_column(String(128))
    dataset: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32), default="RUNNING")
    config: Mapped[dict] = mapped_column(JSON, default=dict)
    summary: Mapped[dict] = mapped_column(JSON, default=dict)
    storage_path: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[str] = mapped_column(String(40))
    finished_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    provenance: Mapped[list | None] = mapped_column(JSON, nullable=True)

    @property
    def kept_ensemble(self) -> int | None:
        """The id of the ensemble ``--ensemble-top`` kept as this experiment's best model (its
        summary's ``best_model``), ``None`` when the best model is a single trial's."""
        kept = (self.summary or {}).get("best_model") or {}
        return kept["model_id"] if kept.get("kind") == "ensemble" else None


class Trial(Base):
    __tablename__ = "ss_trials"
    __table_args__ = (UniqueConstraint("experiment_id", "trial_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("ss_experiments.id"))
    trial_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), default="PENDING")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    epochs: Mapped[int] = mapped_column(Integer, default=0)
    best_val_clip_acc: Mapped[float | None] = mapped_column(Float, nullable=True)
    num_params: Mapped[int | None] = mapped_column(Integer, nullable=True)
    wall_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    retries: Mapped[int] = mapped_column(Integer, default=0)


class Epoch(Base):
    __tablename__ = "ss_epochs"
    __table_args__ = (UniqueConstraint("trial_pk", "epoch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_pk: Mapped[int] = mapped_column(ForeignKey("ss_trials.id"))
    epoch: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    checkpoint_uri: Mapped[str | None] = mapped_column(Text, nullable=True)


class Model(Base):
    """A model with its test-split evaluation: a trained checkpoint, or one derived from stored models.

    ``kind`` is ``single`` (a trial's checkpoint), ``two_stage`` (fine x coarse score fusion),
    ``ensemble`` (mean or stacked probabilities), ``quantized`` (int8 weights) or ``probe`` (the
    MLP ``soundsweep probe`` selected); ``sources`` lists the ids of the models a derived one was
    built from. ``test_clip_acc`` and ``confusion`` use the clip aggregation named in
    ``aggregation`` (majority vote; the probe's is the mean probability);
    ``test_clip_acc_mean`` is the clip accuracy by mean probability. ``metrics`` holds every
    figure of the evaluation by name (``test_*``/``val_*`` with ``_clip_acc`` = majority vote and
    ``_clip_acc_mean`` = mean probability, test-time augmentation under ``tta``, and what the
    protocol adds). ``size_kb`` is the int8 size of a quantized model.
    """

    __tablename__ = "ss_models"
    __table_args__ = (UniqueConstraint("experiment_id", "trial_id", "epoch"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("ss_experiments.id"))
    trial_id: Mapped[str] = mapped_column(String(128))
    epoch: Mapped[int] = mapped_column(Integer)
    checkpoint_uri: Mapped[str] = mapped_column(Text)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    num_params: Mapped[int] = mapped_column(Integer)
    val_clip_acc: Mapped[float] = mapped_column(Float)
    test_segment_acc: Mapped[float] = mapped_column(Float)
    test_clip_acc: Mapped[float] = mapped_column(Float)
    test_clip_acc_mean: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str] = mapped_column(String(32), default="single")
    sources: Mapped[list] = mapped_column(JSON, default=list)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    size_kb: Mapped[float | None] = mapped_column(Float, nullable=True)
    aggregation: Mapped[str] = mapped_column(String(64), default="majority_vote")
    classes: Mapped[list] = mapped_column(JSON, default=list)
    confusion: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[str] = mapped_column(String(40))


class Comparison(Base):
    """A paired test of two configurations' per-fold / per-seed scores (``soundsweep compare``).

    ``a`` and ``b`` name the configurations (``experiment/trial``); ``result`` holds the scores
    compared and the tests (:class:`soundsweep.stats.PairedTests`).
    """

    __tablename__ = "ss_comparisons"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    a: Mapped[str] = mapped_column(Text)
    b: Mapped[str] = mapped_column(Text)
    metric: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[str] = mapped_column(String(40))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _jsonable(value):
    """Round-trip through JSON so numpy scalars and tuples are stored as plain values."""
    return json.loads(json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


class ResultsStore:
    """Read and write SoundSweep's tables in any SQLAlchemy database.

    SQLite files get WAL mode and a busy timeout so that several tune processes can write one
    store at once; the parent folder of a SQLite file is created on first use. Readers pass
    ``must_exist=True``: a mistyped SQLite path is then an error instead of a new empty store.
    """

    def __init__(self, url: str, must_exist: bool = False):
        self.url = url
        try:
            parsed = make_url(url)
        except Exception as exc:
            raise UsageError(f"--results {url!r} is not a database URL: use e.g. sqlite:///results/soundsweep.db") from exc
        try:
            if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
                if must_exist and not os.path.exists(parsed.database):
                    raise UsageError(f"--results {url}: no such database file; run soundsweep tune first or fix the path")
                os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": 60} if parsed.get_backend_name() == "sqlite" else {})
        except OSError as exc:
            raise UsageError(f"cannot create the results store {url!r} ({exc.strerror}): check --results") from exc
        except NoSuchModuleError:  # a scheme SQLAlchemy has no dialect for
            raise UsageError(f"--results {url}: SQLAlchemy has no database dialect or driver '{parsed.drivername}'; use e.g. "
                             "sqlite:///results/soundsweep.db or postgresql://USER@HOST/DB") from None
        except ImportError as exc:  # a dialect whose DBAPI driver is not installed
            raise UsageError(f"no database driver for {url!r} ({exc}): install it or use another --results") from exc
        if parsed.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._write(self._create_schema)
        except OperationalError as exc:
            reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc)
            raise UsageError(f"cannot open results store {url!r} ({reason}): check --results") from exc

    def _create_schema(self, s: Session) -> None:
        """Create missing tables, check the schema version and add missing columns (one transaction).

        On PostgreSQL an advisory lock serialises this, so that two processes opening a new
        database at once do not both create the tables; on SQLite the loser's "already exists"
        is retried.
        """
        if self.engine.dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        Base.metadata.create_all(s.connection())
        row = s.get(Meta, "schema_version")
        if row is None:
            s.add(Meta(key="schema_version", value=str(SCHEMA_VERSION)))
        elif int(row.value) != SCHEMA_VERSION:
            raise UsageError(
                f"results store {self.url} has schema version {row.value}, this SoundSweep writes "
                f"{SCHEMA_VERSION}: use a new --results database"
            )
        _add_missing_columns(s.connection())

    def _write(self, fn):
        """Run ``fn(session)`` in one transaction, retrying when it lost a race to another writer."""
        for attempt in range(20):
            try:
                with Session(self.engine, expire_on_commit=False) as s, s.begin():
                    return fn(s)
            except (OperationalError, IntegrityError) as exc:
                if attempt == 19 or not _transient(exc):
                    raise
                time.sleep(0.05 * (attempt + 1))

    # Experiments -----------------------------------------------------------------------------

    def experiment(self, name: str) -> Experiment | None:
        with Session(self.engine) as s:
            return s.scalar(select(Experiment).where(Experiment.name == name))

    def experiments(self) -> list[Experiment]:
        """Every experiment, newest first (what the dashboard lists)."""
        with Session(self.engine) as s:
            return list(s.scalars(select(Experiment).order_by(Experiment.created_at.desc(), Experiment.id.desc())))

    def start_experiment(self, name: str, space: str, dataset: str, config: dict, storage_path: str,
                         provenance: dict | None = None) -> int:
        """Create the experiment row, or return the existing one's id (a resumed run); a
        ``provenance`` (:func:`soundsweep.provenance.collect`) is appended to the row's list."""

        def write(s):
            row = s.scalar(select(Experiment).where(Experiment.name == name))
            if row is None:
                row = Experiment(name=name, space=space, dataset=dataset, config=_jsonable(config),
                                 storage_path=storage_path, created_at=_now())
                s.add(row)
                s.flush()
            row.status = "RUNNING"
            if provenance is not None:
                row.provenance = [*(row.provenance or []), _jsonable(provenance)]
            return row.id

        return self._write(write)

    def finish_experiment(self, experiment_id: int, status: str, summary: dict) -> None:
        def write(s):
            row = s.get(Experiment, experiment_id)
            row.status, row.summary, row.finished_at = status, _jsonable(summary), _now()

        self._write(write)

    # Trials and epochs -----------------------------------------------------------------------

    def _trial(self, s: Session, experiment_id: int, trial_id: str) -> Trial:
        row = s.scalar(select(Trial).where(Trial.experiment_id == experiment_id, Trial.trial_id == trial_id))
        if row is None:
            row = Trial(experiment_id=experiment_id, trial_id=trial_id, params={}, metrics={})
            s.add(row)
            s.flush()
        return row

    def record_trial(self, experiment_id: int, trial_id: str, **fields) -> None:
        """Insert or update one trial; ``fields`` are columns of ``ss_trials``."""

        def write(s):
            row = self._trial(s, experiment_id, trial_id)
            for key, value in fields.items():
                setattr(row, key, _jsonable(value) if key in ("params", "metrics") else value)

        self._write(write)

    def record_epoch(self, experiment_id: int, trial_id: str, epoch: int, metrics: dict | None = None,
                     checkpoint_uri: str | None = None) -> None:
        """Insert or update one epoch of a trial and keep the trial's summary columns current."""

        def write(s):
            trial = self._trial(s, experiment_id, trial_id)
            row = s.scalar(select(Epoch).where(Epoch.trial_pk == trial.id, Epoch.epoch == epoch))
            if row is None:
                row = Epoch(trial_pk=trial.id, epoch=epoch, metrics={})
                s.add(row)
            if metrics is not None:
                row.metrics = _jsonable(metrics)
                trial.metrics = row.metrics
                trial.epochs = max(trial.epochs or 0, epoch + 1)
                trial.num_params = metrics.get("num_params", trial.num_params)
                acc = metrics.get("val_clip_acc")
                if acc is not None and (trial.best_val_clip_acc is None or acc > trial.best_val_clip_acc):
                    trial.best_val_clip_acc = acc
            if checkpoint_uri is not None:
                row.checkpoint_uri = checkpoint_uri

        self._write(write)

    def trials(self, experiment_id: int) -> list[Trial]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Trial).where(Trial.experiment_id == experiment_id).order_by(Trial.id)))

    def epochs(self, experiment_id: int) -> list[tuple[Trial, Epoch]]:
        """Every (trial, epoch) pair of an experiment."""
        with Session(self.engine) as s:
            rows = s.execute(
                select(Trial, Epoch).join(Epoch, Epoch.trial_pk == Trial.id).where(Trial.experiment_id == experiment_id)
            )
            return [(t, e) for t, e in rows]

    def epoch_count(self, experiment_id: int) -> int:
        """How many epochs the experiment's trials have stored (one SQL count)."""
        with Session(self.engine) as s:
            return s.scalar(select(func.count(Epoch.id)).join(Trial, Epoch.trial_pk == Trial.id)
                            .where(Trial.experiment_id == experiment_id))

    def best_epochs(self, experiment_id: int, k: int | None = None,
                    usable: Callable[[str], bool] = lambda uri: True) -> list[tuple[Trial, Epoch]]:
        """The best checkpointed epoch of each trial whose checkpoint passes ``usable``, for the
        ``k`` best trials (every trial when ``k`` is None), best first.

        Best: :func:`~trainables.objective.rank_key`, among the epochs that may stand for the trial
        (:func:`~trainables.objective.representative`: all, or its last). Ray Tune keeps only
        the best ``num_to_keep`` checkpoints of a trial and breaks ties its own way (the newer one
        wins), so the caller passes a check that the files still exist."""
        by_trial: dict[str, list[tuple[Trial, Epoch]]] = {}
        for t, e in self.epochs(experiment_id):
            if e.checkpoint_uri:
                by_trial.setdefault(t.trial_id, []).append((t, e))
        eligible = [(t, e) for pairs in by_trial.values() for t, e in pairs
                    if e in representative([e for _, e in pairs], pairs[0][0].params.get("select_epoch"))]
        candidates = sorted(eligible, key=lambda te: rank_key(te[1].metrics), reverse=True)
        per_trial: dict[str, tuple[Trial, Epoch]] = {}  # filled best first: a trial's first usable epoch is its best
        for t, e in candidates:
            if len(per_trial) == k:
                break
            if t.trial_id not in per_trial and usable(e.checkpoint_uri):
                per_trial[t.trial_id] = (t, e)
        return list(per_trial.values())

    def checkpoint_owner(self, uris: list[str]) -> tuple[Trial, Epoch] | None:
        """The trial and epoch that saved a checkpoint, given its folder or URI spelled every way
        it may be stored (``/runs/x`` and ``file:///runs/x``); ``None`` if no epoch did."""
        with Session(self.engine) as s:
            row = s.execute(select(Trial, Epoch).join(Epoch, Epoch.trial_pk == Trial.id)
                            .where(Epoch.checkpoint_uri.in_(uris)).order_by(Epoch.id.desc())).first()
            return None if row is None else (row[0], row[1])

    # Models ----------------------------------------------------------------------------------

    def add_model(self, experiment_id: int, trial_id: str, epoch: int, **fields) -> int:
        """Register a model; registering the same (trial, epoch) again updates it (a resumed run)."""

        def write(s):
            row = s.scalar(select(Model).where(Model.experiment_id == experiment_id, Model.trial_id == trial_id,
                                               Model.epoch == epoch))
            if row is None:
                row = Model(experiment_id=experiment_id, trial_id=trial_id, epoch=epoch, created_at=_now())
                s.add(row)
            for key, value in _jsonable(fields).items():
                setattr(row, key, value)
            s.flush()
            return row.id

        return self._write(write)

    def models(self, experiment_id: int) -> list[Model]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Model).where(Model.experiment_id == experiment_id).order_by(Model.id)))

    def model(self, model_id: int) -> Model | None:
        with Session(self.engine) as s:
            return s.get(Model, model_id)

    def experiment_by_id(self, experiment_id: int) -> Experiment | None:
        with Session(self.engine) as s:
            return s.get(Experiment, experiment_id)

    # Comparisons -----------------------------------------------------------------------------

    def add_comparison(self, a: str, b: str, metric: str, result: dict) -> int:
        """Record one paired comparison; returns its id."""

        def write(s):
            row = Comparison(a=a, b=b, metric=metric, result=_jsonable(result), created_at=_now())
            s.add(row)
            s.flush()
            return row.id

        return self._write(write)

    def comparisons(self) -> list[Comparison]:
        with Session(self.engine) as s:
            return list(s.scalars(select(Comparison).order_by(Comparison.id)))


def _transient(exc: DBAPIError) -> bool:
    """Whether ``exc`` came from a concurrent writer (see ``TRANSIENT``), so a retry can succeed."""
    message = str(exc.orig if exc.orig is not None else exc)
    return any(m in message for m in TRANSIENT)


def _add_missing_columns(connection) -> None:
    """Add the columns this SoundSweep defines that an older store's tables lack. Only nullable
    columns are added this way (old rows read ``None``); any other change bumps :data:`SCHEMA_VERSION`."""
    inspector = inspect(connection)
    for table in Base.metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present and column.nullable:
                kind = column.type.compile(dialect=connection.dialect)
                connection.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()

