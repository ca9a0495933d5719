"""The fixtures of the suite: the one a backend provides and the ones it gets."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from storage_core import Capabilities, make_storage

from ._support import CAPABILITY_NAMES, REQUIRES_MARKER, FreshIds, StorageFactory

__all__ = ["ConformanceFixtures"]


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
        storage = make_storage(storage_url, **storage_options)
        caps = storage.capabilities
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(storage.close())
        finally:
            loop.close()
        return caps

    @pytest.fixture
    def fresh_ids(self) -> FreshIds:
        """A fresh id namespace: ``fresh_ids("user")``, ``fresh_ids.conv()``."""
        return FreshIds()

    @pytest.fixture(autouse=True)
    def _storage_core_capability_check(
        self, request: pytest.FixtureRequest, backend_capabilities: Capabilities
    ) -> None:
        """Skip a test needing a capability the backend declares it lacks."""
        for marker in request.node.iter_markers(REQUIRES_MARKER):
            for name in marker.args:
                if name not in CAPABILITY_NAMES:
                    raise pytest.UsageError(f"unknown capability {name!r}")
                if not getattr(backend_capabilities, name):
                    pytest.skip(f"backend declares no {name}")
