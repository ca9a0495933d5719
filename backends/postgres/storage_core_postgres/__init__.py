"""PostgreSQL backend for storage_core (``postgresql://user@host/db``), on asyncpg.

Installing this distribution registers the ``postgresql``, ``postgres`` and
``postgresql+asyncpg`` schemes through the ``storage_core.backends`` entry
point; use it with ``storage_core.make_storage("postgresql://user@host/db")``.

Importing this package does not import asyncpg (the plugin hook loads it);
``PostgresBackend`` is imported on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import PostgresBackend
    from .config import PostgresConfig

__all__ = ["PostgresBackend", "PostgresConfig"]


def __getattr__(name: str) -> object:
    # Lazy, so loading the plugin (the first make_storage of any URL) stays cheap.
    if name == "PostgresBackend":
        from .backend import PostgresBackend

        return PostgresBackend
    if name == "PostgresConfig":
        from .config import PostgresConfig

        return PostgresConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
