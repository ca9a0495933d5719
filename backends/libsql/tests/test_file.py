"""``file:`` URLs: agent-squad's databases, one engine, a free event loop."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from pathlib import Path

import pytest

from storage_core import make_storage
from storage_core_conformance.legacy import Row, write_agent_squad_database
from storage_core_sqlite import SqliteBackend

pytestmark = pytest.mark.asyncio


def write_original_database(path: Path) -> None:
    """A database as SqlChatStorage leaves it: content is json.dumps of the blocks."""
    rows: list[Row] = [
        ("u1", "s1", "support", 0, "user", [{"text": "hello"}], 1_700_000_000_000),
        ("u1", "s1", "support", 1, "assistant", [{"text": "hi, how can I help?"}],
         1_700_000_001_000),
        ("u1", "s1", "billing", 0, "user", [{"text": "invoice?"}], 1_700_000_002_000),
        ("u1", "s1", "billing", 1, "assistant",
         [{"text": "sent"}, {"image": "attachment"}], 1_700_000_003_000),
        ("u2", "s9", "support", 0, "user", [{"text": "someone else"}], 1_700_000_004_000),
    ]
    write_agent_squad_database(path, rows)


async def test_original_sqlchatstorage_database_reads_and_grows(tmp_path: Path) -> None:
    path = tmp_path / "local.db"
    write_original_database(path)
    async with make_storage(f"file:{path}") as storage:
        chat = await storage.fetch_chat("u1", "s1", "support")
        assert [(m.index, m.role, m.content) for m in chat] == [
            (0, "user", [{"text": "hello"}]),
            (1, "assistant", [{"text": "hi, how can I help?"}]),
        ]
        assert chat[0].timestamp == 1_700_000_000_000
        session = await storage.fetch_all_chats("u1", "s1")
        assert [m.content for m in session] == [
            [{"text": "hello"}],
            [{"text": "[support] hi, how can I help?"}],
            [{"text": "invoice?"}],
            [{"text": "[billing] sent"}, {"image": "attachment"}],
        ]
        history = await storage.save_chat_message(
            "u1", "s1", "support", {"role": "user", "content": [{"text": "more"}]}
        )
        assert [m.index for m in history] == [0, 1, 2]
        sessions = await storage.list_sessions("u1")
        assert [(s.session_id, s.message_count) for s in sessions] == [("s1", 5)]
    # What storage_core wrote is what SqlChatStorage would read.
    with sqlite3.connect(path) as db:
        content = db.execute(
            "SELECT content FROM conversations WHERE agent_id = 'support' "
            "AND user_id = 'u1' AND message_index = 2"
        ).fetchone()[0]
    db.close()
    assert json.loads(content) == [{"text": "more"}]


async def test_one_engine_per_storage_and_a_free_loop(tmp_path: Path) -> None:
    storage = make_storage(f"file:{tmp_path}/loop.db")
    assert isinstance(storage.backend, SqliteBackend)
    ticks: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(loop.time())
            await asyncio.sleep(0.005)

    async with storage:
        writer = storage.backend._writer
        task = asyncio.create_task(ticker())
        for i in range(300):
            role = "user" if i % 2 == 0 else "assistant"
            await storage.save_chat_message("u", "s", "a", {"role": role, "content": [i]},
                                            max_history_size=20)
        stop.set()
        await task
        assert writer is not None
        assert storage.backend._writer is writer, "one connection for every save"
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25, f"the event loop was blocked for {max(gaps):.3f} s"
