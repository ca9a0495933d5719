"""The storage_core conformance suite on PostgreSQL, straight and through PgBouncer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest

from storage_core_conformance import ConformanceTests, Conversation, RawRow, RawRows


def postgres_rows(url: str) -> RawRows:
    """The ``raw_rows`` reader: the table read with asyncpg, on a connection of its own."""

    async def read(storage: Any, conv: Conversation) -> Sequence[RawRow]:
        connection = await asyncpg.connect(url)
        try:
            rows = await connection.fetch(
                "SELECT message_index, role, content, timestamp FROM public.conversations "
                "WHERE user_id = $1 AND session_id = $2 AND agent_id = $3 "
                "ORDER BY message_index", *conv)
        finally:
            await connection.close()
        return [(row[0], row[1], row[2], row[3]) for row in rows]

    return read

class TestPostgres(ConformanceTests):
    """A real server; one database per test session (the suite namespaces ids)."""

    @pytest.fixture
    def storage_url(self, postgres_database_url: str) -> str:
        return postgres_database_url

    @pytest.fixture
    def raw_rows(self, postgres_database_url: str) -> RawRows:
        return postgres_rows(postgres_database_url)


class TestPostgresThroughPgBouncer(ConformanceTests):
    """The same database behind PgBouncer in transaction pooling mode, with a
    SCRAM password (``?pgbouncer=1``: no prepared statements)."""

    @pytest.fixture
    def storage_url(self, pgbouncer_database_url: str) -> str:
        return pgbouncer_database_url

    @pytest.fixture
    def raw_rows(self, postgres_database_url: str) -> RawRows:
        """The table read with asyncpg straight from the server (the same database)."""
        return postgres_rows(postgres_database_url)
