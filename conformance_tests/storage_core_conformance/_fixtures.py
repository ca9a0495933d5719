"""The fixtures of the suite: the one a backend provides and the ones it gets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from storage_core import Capabilities, make_storage
from storage_core.backend import Backend, ConversationKey, MemoryBackend

from ._support import (
    CAPABILITY_NAMES,
    REQUIRES_MARKER,
    Conversation,
    FreshIds,
    RawRow,
    RawRows,
    StorageFactory,
    TimedStorage,
)

__all__ = ["SUITE_FIXTURES", "ConformanceFixtures", "unopened_backend"]

SUITE_FIXTURES = (
    "storage_factory", "backend_capabilities", "fresh_ids", "_storage_core_capability_check",
)
"""Fixtures a backend's test class must not override: they decide what is tested."""


async def _memory_rows(storage: TimedStorage, conv: Conversation) -> list[RawRow]:
    """The rows of an in-memory store as they sit in it (no driver to read with)."""
    backend = storage.raw.backend
    assert isinstance(backend, MemoryBackend)
    rows = backend._store.conversations.get(ConversationKey(*conv), [])
    return [(r.message_index, r.role, r.content, r.timestamp) for r in rows]


def unopened_backend(url: str, options: dict[str, Any]) -> Backend:
    """The backend ``make_storage(url, **options)`` makes, its storage closed unopened."""
    storage = make_storage(url, **options)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(storage.close())
    finally:
        loop.close()
    return storage.backend


class ConformanceFixtures:
    """Fixtures of :class:`~storage_core_conformance.ConformanceTests`."""

    @pytest.fixture
    def storage_url(self) -> str:
        """The URL of the database under test; every backend overrides this."""
        raise pytest.UsageError(
            f"{type(self).__name__} must define a `storage_url` fixture returning the URL "
            "of the database to test"
        )

    @pytest.fixture
    def storage_options(self) -> dict[str, Any]:
        """Extra keyword arguments for ``make_storage`` (e.g. ``auth_token``)."""
        return {}

    @pytest.fixture
    def call_timeout(self) -> float:
        """Seconds any one storage call may take before the test fails."""
        return 60.0

    @pytest.fixture
    def storage_factory(
        self, storage_url: str, storage_options: dict[str, Any], call_timeout: float
    ) -> StorageFactory:
        """Makes storages on the database under test."""
        return StorageFactory(storage_url, storage_options, call_timeout)

    @pytest.fixture
    def backend_capabilities(
        self, storage_url: str, storage_options: dict[str, Any]
    ) -> Capabilities:
        """What the backend declares it offers (read from an unopened storage)."""
        return unopened_backend(storage_url, storage_options).capabilities

    @pytest.fixture
    def raw_rows(self, storage_url: str, storage_options: dict[str, Any]) -> RawRows | None:
        """Reads a conversation's rows straight from the database, bypassing
        storage_core: an async ``(storage, conversation) -> [(message_index,
        role, content, timestamp), ...]`` in index order, or None when the
        backend has no driver to read with (the stored-format test then skips).

        Override it with your driver (``storage`` is the storage that wrote,
        for a database private to it). The default reads ``memory://`` stores.
        """
        backend = unopened_backend(storage_url, storage_options)
        return _memory_rows if isinstance(backend, MemoryBackend) else None

    @pytest.fixture
    def fresh_ids(self) -> FreshIds:
        """A fresh id namespace: ``fresh_ids("user")``, ``fresh_ids.conv()``."""
        return FreshIds()

    @pytest.fixture(autouse=True)
    def _storage_core_capability_check(
        self, request: pytest.FixtureRequest, backend_capabilities: Capabilities,
        storage_factory: StorageFactory, storage_url: str, storage_options: dict[str, Any],
    ) -> None:
        """Skip a test needing a capability the backend declares it lacks; fail
        one whose storages are not made from ``storage_url``."""
        if (storage_factory.url, storage_factory.options) != (storage_url, storage_options):
            pytest.fail(
                "storage_factory does not make storages of storage_url and storage_options: "
                "the storage under test must be the one the URL names"
            )
        for marker in request.node.iter_markers(REQUIRES_MARKER):
            for name in marker.args:
                if name not in CAPABILITY_NAMES:
                    raise pytest.UsageError(f"unknown capability {name!r}")
                if not getattr(backend_capabilities, name):
                    pytest.skip(f"backend declares no {name}")
