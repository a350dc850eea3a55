"""A throwaway PostgreSQL cluster on a free loopback port, started and stopped by the tests.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as
root, so as root the cluster belongs to the `postgres` user (REAL-SERVERS.md). Without the
binaries the tests skip with a reason, except under CI, where a missing server is a failure:
scripts/test installs it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; scripts/test installs it, so CI must have it")
    pytest.skip(reason)


class PostgresServer:
    def __init__(self, root: Path, port: int, *, owned_dir: Path | None = None):
        """`owned_dir`: a directory made for this cluster alone, removed by `stop` (a cluster's data
        is 0.6-1.2 GB after a suite run; left behind, a few hundred runs fill the disk)."""
        self.root, self.port = root, port
        self.owned_dir = owned_dir
        self.data = root / "data"
        bin_dir = _binaries()
        if bin_dir is None:
            missing("PostgreSQL server binaries not installed (apt-get install postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            missing("psycopg is not installed (pip install -e '.[test]')")
        self.bin = bin_dir
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run([*self.as_user, *command], check=True, capture_output=True, cwd="/")

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "agentdesk", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )

    def stop(self) -> None:
        subprocess.run(
            [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            cwd="/",
        )
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(f"postgresql://agentdesk@127.0.0.1:{self.port}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://agentdesk@127.0.0.1:{self.port}/{name}"


def start_server() -> PostgresServer:
    root = Path(tempfile.mkdtemp(prefix="agentdesk-pg-"))
    if os.geteuid() == 0:
        os.chmod(root, 0o755)
    try:
        server = PostgresServer(root / "cluster", free_port(), owned_dir=root)
        started = time.monotonic()
        server.start()
    except BaseException:  # a skip, a failed initdb: nothing of this cluster is left on disk
        shutil.rmtree(root, ignore_errors=True)
        raise
    server.startup_seconds = time.monotonic() - started
    return server
