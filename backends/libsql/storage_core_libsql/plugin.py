"""Registers the libSQL URL schemes with storage_core."""

from __future__ import annotations

from storage_core.backend import BackendRegistry, hookimpl

_TARGET = "storage_core_libsql._factory:from_url"
_DIST = "storage-core-libsql"
_REMOTE = {
    "libsql": "libSQL server / Turso (WebSocket, TLS unless ?tls=0)",
    "wss": "libSQL server over TLS WebSocket (Hrana)",
    "ws": "libSQL server over WebSocket (Hrana)",
    "https": "libSQL server over HTTPS (Hrana over HTTP)",
    "http": "libSQL server over HTTP (Hrana over HTTP)",
}


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    for scheme, description in _REMOTE.items():
        registry.register(
            scheme, _TARGET, distribution=_DIST, drivers=("libsql_client",),
            description=description,
        )
    registry.register(
        "file", _TARGET, distribution=_DIST, drivers=("aiosqlite",),
        description="local SQLite file, as libsql-client's file: URLs (aiosqlite engine)",
    )
