"""Schema versions: a database of the previous release is upgraded in place,
once, keeping its rows; one of a newer release is refused and left alone."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from storage_core import ConfigurationError, make_storage
from storage_core_sqlite import sql

PREVIOUS = (Path(__file__).parent / "data" / "schema-1.sql").read_text()
ROW = ("u", "s", "a", 0, "user", '[{"text": "kept"}]', 1000)


def _database(path: Path, version: str | None) -> None:
    db = sqlite3.connect(path)
    db.executescript(PREVIOUS)
    db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?, ?, ?)", ROW)
    if version is None:  # agent-squad's database: no storage_core_meta
        db.execute("DROP TABLE storage_core_meta")
    else:
        db.execute("UPDATE storage_core_meta SET value = ? WHERE key = 'schema_version'",
                   (version,))
    db.commit()
    db.close()


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        db.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["1", None], ids=["previous-release", "agent-squad"])
async def test_an_older_schema_is_upgraded_in_place(tmp_path: Path, version: str | None) -> None:
    path = tmp_path / "old.db"
    _database(path, version)
    assert "storage_core_requests" not in _tables(path)
    for _ in range(2):  # idempotent: the second initialize finds version 2
        async with make_storage(f"sqlite:///{path}") as storage:
            facts = await storage.describe()
            assert facts["schema_version"] == sql.SCHEMA_VERSION == 2
            assert [m.content for m in await storage.fetch_chat("u", "s", "a")] == [
                [{"text": "kept"}]
            ]
    async with make_storage(f"sqlite:///{path}") as storage:
        reply = {"role": "assistant", "content": [{"text": "new"}]}
        first = await storage.append_messages("u", "s", "a", [reply], request_id="r")
        again = await storage.append_messages("u", "s", "a", [reply], request_id="r")
        assert [m.index for m in first] == [m.index for m in again] == [1]
    assert "storage_core_requests" in _tables(path)


@pytest.mark.asyncio
async def test_a_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    _database(path, "3")
    before = path.read_bytes()
    storage = make_storage(f"sqlite:///{path}")
    with pytest.raises(ConfigurationError, match="schema version 3, newer than the 2"):
        await storage.initialize()
    await storage.close()
    assert "storage_core_requests" not in _tables(path)
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM storage_core_meta").fetchall() == [("3",)]
    db.close()
    assert path.read_bytes() == before
