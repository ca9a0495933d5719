"""Fixtures for the PostgreSQL backend's tests: a real server, a fresh database
per test session, a real PgBouncer in transaction mode in front of it, and a
proxy that counts round trips.

The server URL comes from ``STORAGE_CORE_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``). Without a server, or
without ``pgbouncer`` for the pooler tests, the tests skip with the reason;
under CI (``CI=true``) they fail instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from storage_core.backend import parse_url
from storage_core_conformance import Conversation, RawRow, RawRows
from storage_core_conformance.wire import RoundTripProxy

URL_ENV = "STORAGE_CORE_POSTGRES_URL"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PGBOUNCER_ENV = "STORAGE_CORE_PGBOUNCER"


def postgres_rows(url: str) -> RawRows:
    """A conformance class's ``raw_rows`` reader for the database at ``url``:
    the table read with asyncpg, on a connection of its own."""

    async def read(storage: Any, conv: Conversation) -> Sequence[RawRow]:
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT message_index, role, content, timestamp FROM public.conversations "
                "WHERE user_id = $1 AND session_id = $2 AND agent_id = $3 "
                "ORDER BY message_index", *conv)
        finally:
            await connection.close()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    return read


@pytest.fixture(scope="session")
def raw_rows_reader() -> Callable[[str], RawRows]:
    """`postgres_rows`, for the conformance classes (test modules do not
    import each other)."""
    return postgres_rows


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


@dataclass(frozen=True)
class Server:
    """Where the test server is, parsed from the URL."""

    url: str
    host: str
    port: int
    user: str
    password: str | None

    def url_for(self, database: str, query: str = "") -> str:
        base = self.url.split("?", 1)[0].rsplit("/", 1)[0]
        return f"{base}/{database}" + (f"?{query}" if query else "")

    async def admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database="postgres", timeout=5,
        )

    @contextlib.contextmanager
    def fresh_database(self, prefix: str) -> Iterator[str]:
        """The name of a new database, dropped on exit."""
        name = f"{prefix}_{secrets.token_hex(6)}"

        async def run(sql: str) -> None:
            conn = await self.admin()
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run(f'CREATE DATABASE "{name}"'))
        try:
            yield name
        finally:
            asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_server() -> Server:
    url = os.environ.get(URL_ENV, DEFAULT_URL)
    parsed = parse_url(url)
    server = Server(
        url=url,
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password.reveal() if parsed.password else None,
    )

    async def check() -> None:
        conn = await server.admin()
        await conn.close()

    try:
        asyncio.run(check())
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        _unavailable(f"no PostgreSQL server at {parsed} ({type(exc).__name__}: {exc}); "
                     f"set {URL_ENV}")
    return server


@pytest.fixture(scope="session")
def postgres_database(postgres_server: Server) -> Iterator[str]:
    """The name of a fresh database, dropped at the end of the session."""
    with postgres_server.fresh_database("storage_core_test") as name:
        yield name


@pytest.fixture(scope="session")
def postgres_database_url(postgres_server: Server, postgres_database: str) -> str:
    """A URL of the fresh test database, straight to the server."""
    return postgres_server.url_for(postgres_database)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgBouncer:
    """A PgBouncer in transaction mode with SCRAM auth for one user."""

    port: int
    user: str
    password: str
    database: str
    log: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    def url(self, *, password: str | None = None, query: str = "pgbouncer=1") -> str:
        pw = self.password if password is None else password
        return (f"postgresql://{self.user}:{pw}@127.0.0.1:{self.port}/{self.database}"
                f"?{query}")


@pytest.fixture(scope="session")
def pgbouncer(postgres_server: Server, postgres_database: str) -> Iterator[PgBouncer]:
    binary = os.environ.get(PGBOUNCER_ENV) or shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None
    )
    if binary is None:
        _unavailable(f"pgbouncer is not installed (apt-get install pgbouncer, or set "
                     f"{PGBOUNCER_ENV})")
        raise AssertionError("unreachable")
    directory = Path(tempfile.mkdtemp(prefix="storage_core_pgbouncer_"))
    password = "pw-" + secrets.token_urlsafe(12)
    port = _free_port()
    # SCRAM between client and PgBouncer (a real password check); PgBouncer
    # logs in to the server with the same user (trust or the URL's password).
    server_password = f" password={postgres_server.password}" if postgres_server.password else ""
    (directory / "userlist.txt").write_text(f'"{postgres_server.user}" "{password}"\n')
    (directory / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={postgres_server.host} port={postgres_server.port}{server_password}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {directory / 'userlist.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 1000\ndefault_pool_size = 20\n"
        "ignore_startup_parameters = extra_float_digits\n"
        f"admin_users = {postgres_server.user}\n"
        f"logfile = {directory / 'pgbouncer.log'}\npidfile = {directory / 'pgbouncer.pid'}\n"
    )
    command = [binary]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        account = next((n for n in ("postgres", "nobody") if _has_user(n)), None)
        if account is None:
            _unavailable("running as root and no 'postgres' or 'nobody' user for pgbouncer")
        assert account is not None
        entry = pwd.getpwnam(account)
        for path in [directory, *directory.iterdir()]:
            os.chown(path, entry.pw_uid, entry.pw_gid)
        command += ["-u", account]
    command.append(str(directory / "pgbouncer.ini"))
    log = directory / "pgbouncer.log"
    # Its log goes to the file; a pipe nobody reads would fill up and stall it.
    process = subprocess.Popen(
        [*command[:-1], "--quiet", command[-1]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if process.poll() is not None:
                text = log.read_text() if log.exists() else ""
                pytest.fail(f"pgbouncer exited ({process.returncode}): {text}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("pgbouncer did not start listening within 10 s")
                time.sleep(0.05)
        yield PgBouncer(port, postgres_server.user, password, postgres_database, log, process)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@pytest.fixture(scope="session")
def pgbouncer_database_url(pgbouncer: PgBouncer) -> str:
    """A URL of the fresh test database through PgBouncer (transaction mode)."""
    return pgbouncer.url()


@pytest_asyncio.fixture
async def round_trip_proxy(postgres_server: Server) -> AsyncIterator[RoundTripProxy]:
    proxy = RoundTripProxy(postgres_server.host, postgres_server.port)
    await proxy.start()
    yield proxy
    await proxy.stop()
