"""Schema versions on PostgreSQL: a schema of the previous release (its table,
functions and version 1, as that release created them) is upgraded in place,
once, keeping its rows; one of a newer release is refused and left alone."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from storage_core import ConfigurationError, make_storage
from storage_core_postgres.sql import SCHEMA_VERSION

PREVIOUS = (Path(__file__).parent / "data" / "schema-1.sql").read_text()


async def _previous_release(url: str, schema: str, version: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(PREVIOUS.replace("SCHEMA_NAME", schema))
        await conn.execute(
            f'INSERT INTO "{schema}".conversations VALUES '
            "('u', 's', 'a', 0, 'user', '[{\"text\": \"kept\"}]', 1000)"
        )
        await conn.execute(
            f"UPDATE \"{schema}\".storage_core_meta SET value = $1 WHERE key = 'schema_version'",
            version,
        )
    finally:
        await conn.close()


async def _facts(url: str, schema: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "version": await conn.fetchval(
                f"SELECT value FROM \"{schema}\".storage_core_meta WHERE key = 'schema_version'"
            ),
            "requests": await conn.fetchval(
                f"SELECT to_regclass('\"{schema}\".storage_core_requests') IS NOT NULL"
            ),
            "functions": await conn.fetchval(
                "SELECT count(*) FROM pg_proc WHERE pronamespace = to_regnamespace($1)", schema
            ),
        }
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_the_previous_release_is_upgraded_in_place(postgres_database_url: str) -> None:
    schema = f"upgrade_{secrets.token_hex(4)}"
    await _previous_release(postgres_database_url, schema, "1")
    assert (await _facts(postgres_database_url, schema))["requests"] is False
    url = f"{postgres_database_url}?schema={schema}"
    for _ in range(2):  # the second initialize finds everything in place
        async with make_storage(url) as storage:
            assert (await storage.describe())["schema_version"] == SCHEMA_VERSION == 2
            kept = await storage.fetch_chat("u", "s", "a")
            assert kept[0].content == [{"text": "kept"}] and len(kept) <= 2
            reply = {"role": "assistant", "content": [{"text": "new"}]}
            first = await storage.append_messages("u", "s", "a", [reply], request_id="r")
            again = await storage.append_messages("u", "s", "a", [reply], request_id="r")
            assert [m.index for m in first] == [m.index for m in again] == [1]
    facts = await _facts(postgres_database_url, schema)
    assert facts["version"] == "2" and facts["requests"] is True


@pytest.mark.asyncio
async def test_a_newer_schema_is_refused_and_left_alone(postgres_database_url: str) -> None:
    schema = f"newer_{secrets.token_hex(4)}"
    await _previous_release(postgres_database_url, schema, "3")
    before = await _facts(postgres_database_url, schema)
    storage = make_storage(f"{postgres_database_url}?schema={schema}")
    with pytest.raises(ConfigurationError, match="schema version 3 is newer than the 2"):
        await storage.initialize()
    await storage.close()
    assert await _facts(postgres_database_url, schema) == before
    assert before["version"] == "3" and before["requests"] is False
