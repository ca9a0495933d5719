"""The core's own backends, registered through the same hook as any plugin."""

from __future__ import annotations

from ._registry import BackendRegistry
from .hookspecs import hookimpl


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    registry.register(
        "memory",
        "storage_core._memory:MemoryBackend.from_url",
        distribution="storage-core",
        description="in-process reference backend (the conformance oracle)",
    )
