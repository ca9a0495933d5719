"""Step 1: tell storage_core which URL scheme this distribution serves."""

from storage_core.backend import BackendRegistry, hookimpl


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    # A string, not the class: the backend module is imported only when a
    # jsonfile:// URL is opened, so `storage-core backends` stays cheap.
    registry.register(
        "jsonfile",
        "storage_core_jsonfile.backend:JsonFileBackend.from_url",
        distribution="storage-core-jsonfile",
        description="example: one JSON file per database",
    )
