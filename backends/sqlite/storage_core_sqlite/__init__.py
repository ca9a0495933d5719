"""SQLite backend for storage_core (``sqlite:///path.db``), on aiosqlite.

Installing this distribution registers the ``sqlite`` scheme through the
``storage_core.backends`` entry point; use it with
``storage_core.make_storage("sqlite:///chat.db")``. ``SqliteBackend`` and the
shared SQL (`storage_core_sqlite.sql`, `storage_core_sqlite.plan`)
are public so other SQLite-family backends reuse them.

Importing this package does not import aiosqlite (listing backends stays
cheap); ``SqliteBackend`` is imported on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .backend import SqliteBackend

__all__ = ["SqliteBackend"]


def __getattr__(name: str) -> object:
    if name == "SqliteBackend":
        from .backend import SqliteBackend

        return SqliteBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
