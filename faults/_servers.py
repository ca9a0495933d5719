"""Private PostgreSQL clusters the scenarios may stop and restart at will.

Nothing here touches a shared server: PostgreSQL runs as a private cluster
made with ``initdb`` in a temporary directory on a free port. sqld comes from
:mod:`storage_core_testing` (a private process on its own data
directory).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from storage_core_testing import free_port

__all__ = ["PgCluster", "ServerUnavailable", "find_pg_bindir"]


class ServerUnavailable(RuntimeError):
    """PostgreSQL's binaries are missing or unusable (a skip locally, a failure under CI)."""


def _wait_port(port: int, up: bool, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if up:
                return True
        except OSError:
            if not up:
                return True
        time.sleep(0.05)
    return False


# -- PostgreSQL ---------------------------------------------------------------


def find_pg_bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl`` (``PG_BINDIR`` overrides)."""
    configured = os.environ.get("PG_BINDIR")
    candidates = [Path(configured)] if configured else []
    if not configured:
        found = shutil.which("initdb")
        if found:
            candidates.append(Path(found).parent)
        versions = glob.glob("/usr/lib/postgresql/*/bin")
        candidates += sorted(
            (Path(p) for p in versions),
            key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
            reverse=True,
        )
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise ServerUnavailable(
        "initdb and pg_ctl not found (install the PostgreSQL server package or set PG_BINDIR)"
    )


class PgCluster:
    """A throw-away PostgreSQL cluster: ``initdb`` in a temp dir, trust auth, a free port.

    As root, every command runs as the ``postgres`` OS user (``runuser``),
    since PostgreSQL refuses to run as root.
    """

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="storage_core_faults_pg_"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log = self.root / "postgres.log"
        self.sockets.mkdir()
        self._as: list[str] = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable(
                    "running as root and there is no 'postgres' OS user for initdb"
                ) from None
            for path in (self.root, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [*self._as, str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({done.returncode}): {done.stdout}{done.stderr}"
                f"{self.log_tail()}"
            )

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n--- postgres.log ---\n" + self.log.read_text(errors="replace")[-3000:]
        return ""

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--no-locale", "--no-sync", timeout=120)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")
        if not _wait_port(self.port, up=True, timeout=10):
            raise RuntimeError(f"postgres does not listen on {self.port}{self.log_tail()}")

    def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop -m fast`` (sessions ended, clean) or ``immediate`` (like a crash)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if (self.data / "postmaster.pid").exists():
                self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
