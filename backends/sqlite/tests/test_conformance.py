"""The SQLite backend against the storage_core conformance suite."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from storage_core_conformance import ConformanceTests, Conversation, RawRow, RawRows


def sqlite_rows(path: Path) -> RawRows:
    """The ``raw_rows`` reader of a database file: the table read with sqlite3."""

    async def read(storage: Any, conv: Conversation) -> Sequence[RawRow]:
        with closing(sqlite3.connect(path)) as db:
            return db.execute(
                "SELECT message_index, role, content, timestamp FROM conversations "
                "WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index",
                tuple(conv)).fetchall()

    return read


class TestSqliteFile(ConformanceTests):
    """A database file per test."""

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/chat.db"

    @pytest.fixture
    def raw_rows(self, tmp_path: Path) -> RawRows:
        return sqlite_rows(tmp_path / "chat.db")


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared") / "chat.db"


class TestSqliteSharedFile(ConformanceTests):
    """One database file for every test of the class, as a server would be."""

    @pytest.fixture
    def storage_url(self, shared_db: Path) -> str:
        return f"sqlite:///{shared_db}?synchronous=normal"

    @pytest.fixture
    def raw_rows(self, shared_db: Path) -> RawRows:
        return sqlite_rows(shared_db)


class TestSqliteInMemory(ConformanceTests):
    """``sqlite:///:memory:``: one private database per storage, declared so."""

    @pytest.fixture
    def storage_url(self) -> str:
        return "sqlite:///:memory:"
