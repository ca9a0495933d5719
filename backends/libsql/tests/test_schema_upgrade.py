"""Schema versions on a libSQL server: a database of the previous release is
upgraded in place by the remote engine; one of a newer release is refused
and left alone (the file engine is the SQLite backend's, tested there)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import libsql_client
import pytest
from storage_core_testing import Sqld

from storage_core import ConfigurationError, make_storage

pytestmark = pytest.mark.asyncio

PREVIOUS = (
    Path(__file__).parents[2] / "sqlite" / "tests" / "data" / "schema-1.sql"
).read_text()


def _statements() -> list[str]:
    body = "\n".join(line for line in PREVIOUS.splitlines() if not line.startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]


async def _run(url: str, *statements: str) -> list[Any]:
    async with libsql_client.create_client(url) as client:
        return [r.rows for r in await client.batch(list(statements))]


@pytest.fixture
def server(sqld_launcher: Any) -> Sqld:
    """A sqld of its own: the schema is the database's, not a namespace's."""
    return sqld_launcher()  # type: ignore[no-any-return]


async def test_the_previous_release_is_upgraded(server: Sqld) -> None:
    await _run(server.http_url, *_statements(),
               "INSERT INTO conversations VALUES ('u', 's', 'a', 0, 'user', "
               "'[{\"text\": \"kept\"}]', 1000)")
    for _ in range(2):
        async with make_storage(server.http_url) as storage:
            assert (await storage.describe())["schema_version"] == 2
            kept = await storage.fetch_chat("u", "s", "a")
            assert kept[0].content == [{"text": "kept"}]
    async with make_storage(server.ws_url) as storage:
        rid = secrets.token_hex(4)
        reply = {"role": "assistant", "content": [{"text": "new"}]}
        first = await storage.append_messages("u", "s", "a", [reply], request_id=rid)
        again = await storage.append_messages("u", "s", "a", [reply], request_id=rid)
        assert [m.index for m in first] == [m.index for m in again] == [1]


async def test_a_newer_schema_is_refused_and_left_alone(server: Sqld) -> None:
    await _run(server.http_url, *_statements(),
               "UPDATE storage_core_meta SET value = '3' WHERE key = 'schema_version'")
    storage = make_storage(server.http_url)
    with pytest.raises(ConfigurationError, match="schema version 3, newer than the 2"):
        await storage.initialize()
    await storage.close()
    tables = await _run(
        server.http_url, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    )
    assert [row[0] for row in tables[0]] == ["conversations", "storage_core_meta"]
