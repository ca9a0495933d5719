"""The backends and URL kinds a run measures, each set up on a fresh database."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from ._raw import AiosqliteRaw, AsyncpgRaw, LibsqlRaw, RawDriver
from ._servers import Unavailable, fresh_postgres_database, sqld_server

__all__ = ["TARGETS", "Target", "provision"]

TARGETS = ("sqlite", "libsql-file", "libsql-http", "libsql-ws", "postgres")


@dataclass
class Target:
    """One backend on one URL kind, ready to measure."""

    name: str
    url: str  # our storage URL
    make_raw: Callable[[int], RawDriver]  # pool size -> a raw driver on the same database
    original_url: str | None  # agent-squad's SqlChatStorage URL, when it supports the kind
    description: str
    # pool size -> a raw driver whose same_work serializes writers on a
    # conversation as ours must (PostgreSQL; the SQLite family's single writer
    # serializes every floor already)
    make_locked_raw: Callable[[int], RawDriver] | None = None


def _check_ours(url: str) -> None:
    """Raise Unavailable when no installed backend serves ``url``."""
    from storage_core import make_storage
    from storage_core.errors import ConfigurationError

    try:
        make_storage(url)
    except ConfigurationError as exc:
        raise Unavailable(f"no backend for this URL: {exc}") from exc


@asynccontextmanager
async def provision(name: str, workdir: Path, postgres_url: str | None) -> AsyncIterator[Target]:
    """Set up ``name`` on a fresh database; raises Unavailable when it cannot run here."""
    if name in ("sqlite", "libsql-file"):
        path = str(workdir / f"{name}.db")
        url = f"sqlite:///{path}" if name == "sqlite" else f"file:{path}"
        _check_ours(url)
        yield Target(name, url, lambda _pool: AiosqliteRaw(path), f"file:{path}",
                     "aiosqlite, WAL, synchronous=FULL" if name == "sqlite"
                     else "libSQL file: URL")
    elif name in ("libsql-http", "libsql-ws"):
        scheme = name.rsplit("-", 1)[1]
        _check_ours(f"{scheme}://127.0.0.1:1")
        async with sqld_server(workdir) as port:
            url = f"{scheme}://127.0.0.1:{port}"
            yield Target(name, url, lambda _pool: LibsqlRaw(url), url,
                         f"sqld on loopback over {scheme}")
    elif name == "postgres":
        _check_ours("postgresql://postgres@127.0.0.1:5432/postgres")
        async with fresh_postgres_database(postgres_url) as url:
            yield Target(name, url, lambda pool: AsyncpgRaw(url, pool), None,
                         "PostgreSQL on loopback",
                         lambda pool: AsyncpgRaw(url, pool, lock=True))
    else:
        raise Unavailable(f"unknown target {name!r}; known: {', '.join(TARGETS)}")
