"""The storage_core conformance suite on PostgreSQL, straight and through PgBouncer."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from storage_core_conformance import ConformanceTests, RawRows


class TestPostgres(ConformanceTests):
    """A real server; one database per test session (the suite namespaces ids)."""

    @pytest.fixture
    def storage_url(self, postgres_database_url: str) -> str:
        return postgres_database_url

    @pytest.fixture
    def raw_rows(
        self, raw_rows_reader: Callable[[str], RawRows], postgres_database_url: str
    ) -> RawRows:
        return raw_rows_reader(postgres_database_url)


class TestPostgresThroughPgBouncer(ConformanceTests):
    """The same database behind PgBouncer in transaction pooling mode, with a
    SCRAM password (``?pgbouncer=1``: no prepared statements)."""

    @pytest.fixture
    def storage_url(self, pgbouncer_database_url: str) -> str:
        return pgbouncer_database_url

    @pytest.fixture
    def raw_rows(
        self, raw_rows_reader: Callable[[str], RawRows], postgres_database_url: str
    ) -> RawRows:
        """The table read with asyncpg straight from the server (the same database)."""
        return raw_rows_reader(postgres_database_url)
