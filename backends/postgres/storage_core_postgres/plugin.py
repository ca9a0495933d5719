"""Registers the PostgreSQL URL schemes with storage_core."""

from __future__ import annotations

from storage_core.backend import BackendRegistry, hookimpl

_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg", "postgres+asyncpg")


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    for scheme in _SCHEMES:
        registry.register(
            scheme,
            "storage_core_postgres.backend:PostgresBackend.from_url",
            distribution="storage-core-postgres",
            drivers=("asyncpg",),
            description="PostgreSQL server (asyncpg connection pool)",
        )
