"""Fixtures for the agent-squad drop-in tests: one SQLite file, two storages on it.

The original ``SqlChatStorage`` opens the file as ``file:PATH`` (libsql-client);
the drop-in opens the same file as ``sqlite:///PATH`` (storage-core-sqlite).

Each test module that needs agent-squad skips itself when it is missing
(a failure instead under ``CI=true``, where the tests session installs it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "agent-squad.db"


@pytest.fixture
def rows(db_path: Path) -> Callable[..., list[tuple[Any, ...]]]:
    """The raw ``conversations`` rows of one conversation, by message_index."""

    def read(user: str, session: str, agent: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(db_path) as conn:
            return conn.execute(
                "SELECT message_index, role, content, timestamp FROM conversations "
                "WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index",
                (user, session, agent),
            ).fetchall()

    return read


@pytest_asyncio.fixture
async def original(db_path: Path) -> AsyncIterator[Any]:
    """agent-squad's own SqlChatStorage on the file."""
    pytest.importorskip("libsql_client", reason="SqlChatStorage needs libsql-client")
    from agent_squad.storage.sql_chat_storage import SqlChatStorage

    storage = SqlChatStorage(f"file:{db_path}")
    await storage.initialize()
    yield storage
    await storage.close()


@pytest_asyncio.fixture
async def adapter(db_path: Path) -> AsyncIterator[Any]:
    """The drop-in on the same file."""
    from storage_core.agent_squad import StorageCoreChatStorage

    storage = StorageCoreChatStorage(f"sqlite:///{db_path}")
    await storage.initialize()
    yield storage
    await storage.close()
