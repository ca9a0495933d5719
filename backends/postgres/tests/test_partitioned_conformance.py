"""The storage_core conformance suite on the partitioned layout: a fresh
database whose tables initialize() creates hash-partitioned by user_id
(``?partitions=4``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from storage_core_conformance import ConformanceTests, RawRows

PARTITIONS = 4


@pytest.fixture(scope="session")
def partitioned_database(postgres_server: Any) -> Iterator[str]:
    """A fresh database of its own, so its tables are created partitioned."""
    with postgres_server.fresh_database("storage_core_partitioned") as name:
        yield name


class TestPostgresPartitioned(ConformanceTests):
    """A real server, the conversations and request tables each in 4 hash partitions."""

    @pytest.fixture
    def storage_url(self, postgres_server: Any, partitioned_database: str) -> str:
        url: str = postgres_server.url_for(partitioned_database, f"partitions={PARTITIONS}")
        return url

    @pytest.fixture
    def raw_rows(
        self, raw_rows_reader: Callable[[str], RawRows], postgres_server: Any,
        partitioned_database: str,
    ) -> RawRows:
        """The partitioned table read with asyncpg, on a connection of its own."""
        return raw_rows_reader(postgres_server.url_for(partitioned_database))
