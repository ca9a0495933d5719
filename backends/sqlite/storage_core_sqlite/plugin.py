"""Registers the ``sqlite`` URL scheme with storage_core."""

from __future__ import annotations

from storage_core.backend import BackendRegistry, hookimpl


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    registry.register(
        "sqlite",
        "storage_core_sqlite.backend:SqliteBackend.from_url",
        distribution="storage-core-sqlite",
        drivers=("aiosqlite",),
        description="embedded SQLite file (aiosqlite, WAL)",
    )
    registry.register(
        "sqlite+aiosqlite",
        "storage_core_sqlite.backend:SqliteBackend.from_url",
        distribution="storage-core-sqlite",
        drivers=("aiosqlite",),
        description="embedded SQLite file (aiosqlite, WAL)",
    )
