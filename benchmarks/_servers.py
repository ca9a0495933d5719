"""The services a benchmark target needs: a private sqld, a fresh PostgreSQL database.

Each is an async context manager that raises :class:`Unavailable` (with the
reason) when the service cannot be had, so the runner reports the target as
unavailable instead of crashing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Unavailable", "fresh_postgres_database", "sqld_server"]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


class Unavailable(Exception):
    """A target cannot run here; the message says why."""


@asynccontextmanager
async def sqld_server(workdir: Path) -> AsyncIterator[int]:
    """Run a private sqld on a free loopback port; yields the port (Hrana over http and ws)."""
    try:
        from storage_core_testing import Sqld, SqldUnavailable, find_sqld
    except ImportError as exc:
        raise Unavailable("storage-core-libsql is not installed") from exc
    try:
        binary = await asyncio.to_thread(find_sqld)
        server = Sqld(binary, Path(tempfile.mkdtemp(prefix="sqld-", dir=workdir)))
        # Started once, before any timing.
        await asyncio.to_thread(server.start)
    except SqldUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    try:
        yield server.port
    finally:
        await asyncio.to_thread(server.stop)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@asynccontextmanager
async def fresh_postgres_database(admin_url: str | None = None) -> AsyncIterator[str]:
    """Create ``bench_<random>`` on the server, yield its URL, drop it afterwards."""
    try:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise Unavailable("asyncpg is not installed") from exc
    admin_url = admin_url or os.environ.get("BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    name = f"bench_{secrets.token_hex(4)}"
    try:
        admin = await asyncio.wait_for(asyncpg.connect(admin_url), 10)
    except Exception as exc:
        raise Unavailable(f"PostgreSQL at {urlsplit(admin_url).hostname} unreachable: "
                          f"{type(exc).__name__}") from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
