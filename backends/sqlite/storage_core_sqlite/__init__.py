"""SQLite backend for storage_core (``sqlite:///path.db``), on aiosqlite.

Installing this distribution registers the ``sqlite`` scheme through the
``storage_core.backends`` entry point; use it with
``storage_core.make_storage("sqlite:///chat.db")``. ``SqliteBackend`` and the
shared SQL (:mod:`storage_core_sqlite.sql`, :mod:`storage_core_sqlite.plan`)
are public so other SQLite-family backends reuse them.
"""

from __future__ import annotations

from .backend import SqliteBackend

__all__ = ["SqliteBackend"]
