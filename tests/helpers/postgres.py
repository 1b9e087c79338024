"""A private PostgreSQL server for the tests: its own data folder, loopback only, a free port.

``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` user that
Debian's package creates (``runuser``). Password authentication with a random password, TCP on
127.0.0.1 only, and the Unix socket inside the data folder, so nothing else on the machine is
touched. ``.ci/run`` installs the package; without it the tests that need a server fail.
"""
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile

import psycopg

USER = "soundsweep"


def find_bindir() -> str | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else Debian's versioned folder."""
    found = shutil.which("initdb")
    if found:
        return os.path.dirname(found)
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(versions[-1]) if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``start()`` a throw-away cluster, hand out one fresh database per test, ``stop()`` and remove it."""

    def __init__(self, bindir: str):
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="soundsweep-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            self.as_owner = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        subprocess.run([*self.as_owner, *args], check=True, capture_output=True, text=True)

    def start(self) -> None:
        pwfile = os.path.join(self.root, "password")
        with open(pwfile, "w") as f:
            f.write(self.password)
        if self.as_owner:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", USER, "--pwfile", pwfile,
                  "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.root} -c fsync=off"
        self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-l", os.path.join(self.root, "log"),
                  "-o", options, "-w", "start")

    def stop(self) -> None:
        try:
            self._run(os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        name = f"t_{secrets.token_hex(6)}"
        # CREATE DATABASE cannot run inside a transaction.
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)
