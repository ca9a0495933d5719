"""The partitioned layout (``?partitions=N``): the option is checked, initialize()
creates both tables hash-partitioned by user_id, never switches an existing
table's layout (nothing is changed then), and every call stays one round trip."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest

from storage_core import ConfigurationError, make_storage
from storage_core_conformance.wire import PUBLIC_CALLS

MESSAGE = {"role": "user", "content": [{"text": "hello"}]}


def _schema(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


async def _layout(url: str, schema: str) -> dict[str, Any]:
    """Per table: its relkind, partition strategy and key, and its partitions' row counts."""
    conn = await asyncpg.connect(url)
    try:
        facts: dict[str, Any] = {}
        for table in ("conversations", "storage_core_requests"):
            name = f'"{schema}".{table}'
            row = await conn.fetchrow(
                "SELECT c.relkind, p.partstrat, "
                "(SELECT array_agg(a.attname::text) FROM pg_attribute a "
                " WHERE a.attrelid = c.oid AND a.attnum = ANY (p.partattrs)) "
                "FROM pg_class c LEFT JOIN pg_partitioned_table p ON p.partrelid = c.oid "
                "WHERE c.oid = to_regclass($1)", name)
            parts = await conn.fetch(
                "SELECT i.inhrelid::regclass::text FROM pg_inherits i "
                "WHERE i.inhparent = to_regclass($1) ORDER BY 1", name)
            counts = [await conn.fetchval(f"SELECT count(*) FROM {p[0]}") for p in parts]
            facts[table] = (row[0].decode(), row[1] and row[1].decode(), row[2], counts)
        return facts
    finally:
        await conn.close()


@pytest.mark.parametrize("value", ["1", "-2", "1025", "x", "2.5", "", "true"])
def test_a_bad_partitions_value_is_refused(postgres_database_url: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match="partitions must be"):
        make_storage(f"{postgres_database_url}?partitions={value}")


def test_the_partitions_keyword_is_checked_too(postgres_database_url: str) -> None:
    with pytest.raises(ConfigurationError, match="partitions must be"):
        make_storage(postgres_database_url, partitions=4096)
    for good in (0, 2, 1024, "16"):
        make_storage(postgres_database_url, partitions=good)


@pytest.mark.asyncio
async def test_both_tables_are_created_hash_partitioned_by_user(
    postgres_database_url: str,
) -> None:
    schema = _schema("parted")
    url = f"{postgres_database_url}?schema={schema}&partitions=3"
    async with make_storage(url) as storage:
        for n in range(12):
            await storage.save_chat_message(f"user-{n}", "s", "a", MESSAGE)
        assert len(await storage.fetch_chat("user-5", "s", "a")) == 1
    facts = await _layout(postgres_database_url, schema)
    for table in ("conversations", "storage_core_requests"):
        kind, strategy, key, counts = facts[table]
        assert (kind, strategy, key, len(counts), sum(counts)) == ("p", "h", ["user_id"], 3, 12)
        assert sum(1 for c in counts if c) > 1  # the users are spread over the partitions
    # The same layout again, or no layout asked for: the tables are used as they are.
    for again in (url, f"{postgres_database_url}?schema={schema}"):
        async with make_storage(again) as storage:
            assert len(await storage.fetch_chat("user-5", "s", "a")) == 1
    assert await _layout(postgres_database_url, schema) == facts


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("first", "then", "found"),
    [
        ("", "partitions=4", "is a plain \\(unpartitioned\\) table"),
        ("partitions=0", "partitions=2", "is a plain \\(unpartitioned\\) table"),
        ("partitions=4", "partitions=8", "into 4 partitions, but the URL asks for one hash-"
                                         "partitioned by user_id into 8 partitions"),
        ("partitions=4", "partitions=0", "into 4 partitions, but the URL asks for a plain"),
    ],
)
async def test_another_layout_is_refused_and_nothing_changes(
    postgres_database_url: str, first: str, then: str, found: str
) -> None:
    schema = _schema("layout")
    base = f"{postgres_database_url}?schema={schema}"
    async with make_storage(f"{base}&{first}" if first else base) as storage:
        await storage.save_chat_message("u", "s", "a", MESSAGE)
    before = await _layout(postgres_database_url, schema)
    storage = make_storage(f"{base}&{then}")
    with pytest.raises(ConfigurationError, match=found) as caught:
        await storage.initialize()
    await storage.close()
    assert "never changes an existing table's layout" in str(caught.value)
    assert await _layout(postgres_database_url, schema) == before


@pytest.mark.asyncio
async def test_a_table_partitioned_otherwise_is_refused(postgres_database_url: str) -> None:
    schema = _schema("ranged")
    conn = await asyncpg.connect(postgres_database_url)
    try:
        await conn.execute(
            f'CREATE SCHEMA "{schema}"; '
            f'CREATE TABLE "{schema}".conversations (user_id text NOT NULL, '
            "session_id text NOT NULL, agent_id text NOT NULL, message_index integer NOT NULL, "
            'role text NOT NULL, content text NOT NULL, "timestamp" bigint NOT NULL) '
            'PARTITION BY RANGE ("timestamp")')
    finally:
        await conn.close()
    storage = make_storage(f"{postgres_database_url}?schema={schema}&partitions=4")
    with pytest.raises(ConfigurationError, match="is partitioned otherwise"):
        await storage.initialize()
    await storage.close()


@pytest.mark.asyncio
async def test_racing_initializations_of_two_layouts_create_one(
    postgres_database_url: str,
) -> None:
    schema = _schema("race")
    base = f"{postgres_database_url}?schema={schema}"
    storages = [make_storage(f"{base}&partitions=0"), make_storage(f"{base}&partitions=5")]
    results = await asyncio.gather(*(s.initialize() for s in storages), return_exceptions=True)
    for storage in storages:
        await storage.close()
    refused = [r for r in results if isinstance(r, ConfigurationError)]
    assert len(refused) == 1 and results.count(None) == 1, results
    kind = (await _layout(postgres_database_url, schema))["conversations"][0]
    assert kind == ("r" if results[0] is None else "p")


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["", "&pgbouncer=1"], ids=["prepared", "literal"])
async def test_each_call_on_partitioned_tables_is_one_round_trip(
    round_trip_proxy: Any, postgres_database: str, query: str
) -> None:
    url = (f"postgresql://postgres@127.0.0.1:{round_trip_proxy.listen_port}/{postgres_database}"
           f"?min_size=1&max_size=1&schema={_schema('rt')}&partitions=4{query}")
    user = f"rt-{secrets.token_hex(4)}"
    async with make_storage(url) as storage:
        for _ in range(2):
            await PUBLIC_CALLS["save_chat_messages"](storage, user)
        for _ in range(2):  # the first time warms up the prepared statements
            counts = {}
            for name, call in PUBLIC_CALLS.items():
                round_trip_proxy.round_trips = 0
                await call(storage, user)
                counts[name] = round_trip_proxy.round_trips
    assert counts == dict.fromkeys(PUBLIC_CALLS, 1)
