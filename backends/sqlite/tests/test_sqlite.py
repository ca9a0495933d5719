"""SQLite-specific behaviour of storage-core-sqlite (the contract is in test_conformance)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from storage_core import ConfigurationError, make_storage
from storage_core_conformance.legacy import Row, write_agent_squad_database
from storage_core_sqlite import SqliteBackend


def _pragma(path: Path, name: str) -> object:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


@pytest.mark.asyncio
async def test_wal_mode_and_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    async with make_storage(f"sqlite:///{db}?busy_timeout=1234") as storage:
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
        backend = storage.backend
        assert isinstance(backend, SqliteBackend)
        assert backend.busy_timeout_ms == 1234
        writer = backend._writer
        assert writer is not None
        rows = await writer.execute_fetchall("PRAGMA busy_timeout")
        assert next(iter(rows))[0] == 1234
        rows = await writer.execute_fetchall("PRAGMA journal_mode")
        assert next(iter(rows))[0] == "wal"
    assert _pragma(db, "journal_mode") == "wal", "WAL mode is persistent in the file"


@pytest.mark.asyncio
async def test_default_busy_timeout(tmp_path: Path) -> None:
    async with make_storage(f"sqlite:///{tmp_path}/chat.db") as storage:
        backend = storage.backend
        assert isinstance(backend, SqliteBackend)
        assert backend._writer is not None
        rows = await backend._writer.execute_fetchall("PRAGMA busy_timeout")
        assert next(iter(rows))[0] == 5000


@pytest.mark.asyncio
async def test_relative_url_is_relative_to_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    async with make_storage("sqlite:///relative.db") as storage:
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
    assert (tmp_path / "relative.db").exists()
    (tmp_path / "sub").mkdir()
    async with make_storage("sqlite:///sub/nested.db") as storage:
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
    assert (tmp_path / "sub" / "nested.db").exists()


@pytest.mark.asyncio
async def test_absolute_url(tmp_path: Path) -> None:
    db = tmp_path / "absolute.db"
    assert str(db).startswith("/")
    async with make_storage(f"sqlite:///{db}") as storage:  # four slashes in all
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone()[0] == 1


@pytest.mark.asyncio
async def test_memory_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    async with make_storage("sqlite:///:memory:") as storage:
        assert not storage.capabilities.persistent
        assert not storage.capabilities.shared_across_processes
        h = await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
        assert [m.index for m in h] == [0]
    async with make_storage("sqlite:///:memory:") as storage:
        assert await storage.fetch_chat("u", "s", "a") == [], "each :memory: storage is private"
    assert not any(tmp_path.iterdir()), "no file named :memory: was created"  # noqa: ASYNC240


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///",
        "sqlite://host/chat.db",
        "sqlite:chat.db",
        "sqlite:///chat.db?busy_timeout=soon",
        "sqlite:///chat.db?synchronous=sometimes",
        "sqlite:///chat.db?journal=delete",
    ],
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigurationError):
        make_storage(url)


def test_unknown_keyword_option() -> None:
    with pytest.raises(ConfigurationError, match="auth_token"):
        make_storage("sqlite:///chat.db", auth_token="x")


@pytest.mark.asyncio
async def test_unopenable_file_is_an_error(tmp_path: Path) -> None:
    storage = make_storage(f"sqlite:///{tmp_path}/no/such/dir/chat.db")
    with pytest.raises(ConfigurationError):
        await storage.initialize()
    await storage.close()
    # aiosqlite stops its worker thread after a failed connect without waiting
    # for it; let it finish before the loop closes (else it posts to a closed loop).
    await asyncio.sleep(0.1)


@pytest.mark.asyncio
async def test_reads_and_extends_an_agent_squad_database(tmp_path: Path) -> None:
    db = tmp_path / "agent_squad.db"
    rows: list[Row] = [
        ("u", "s", "a", i, role, [{"text": f"m{i} \u2713"}], 1000 + i)
        for i, role in enumerate(["user", "assistant", "user"])
    ]
    rows.append(("u", "s", "b", 0, "user", [{"text": "other"}], 999))
    write_agent_squad_database(db, rows)
    async with make_storage(f"sqlite:///{db}") as storage:
        history = await storage.fetch_chat("u", "s", "a")
        assert [(m.index, m.role, m.content, m.timestamp) for m in history] == [
            (i, role, [{"text": f"m{i} \u2713"}], 1000 + i)
            for i, role in enumerate(["user", "assistant", "user"])
        ]
        saved = await storage.save_chat_message(
            "u", "s", "a", {"role": "assistant", "content": [{"text": "new"}], "timestamp": 2000})
        assert [m.index for m in saved] == [0, 1, 2, 3]
        view = await storage.fetch_all_chats("u", "s")
        assert [(m.agent_id, m.index) for m in view] == [
            ("b", 0), ("a", 0), ("a", 1), ("a", 2), ("a", 3)]
        assert view[-1].content == [{"text": "[a] new"}]
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT role, content, timestamp FROM conversations WHERE message_index = 3"
        ).fetchone()
        columns = [r[1] for r in conn.execute("PRAGMA table_info(conversations)")]
    conn.close()
    assert row == ("assistant", json.dumps([{"text": "new"}], separators=(",", ":")), 2000)
    assert json.loads(row[1]) == [{"text": "new"}]
    assert columns == ["user_id", "session_id", "agent_id", "message_index", "role",
                       "content", "timestamp"]


@pytest.mark.asyncio
async def test_large_save_does_not_block_the_event_loop(tmp_path: Path) -> None:
    ticks: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            ticks.append(time.perf_counter())
            await asyncio.sleep(0.002)

    batch = [{"role": "user" if i % 2 == 0 else "assistant",
              "content": [{"text": "x" * 2_000}]} for i in range(1000)]
    async with make_storage(f"sqlite:///{tmp_path}/chat.db") as storage:
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
        for _ in range(5):
            await storage.append_messages("u", "s", "a", batch)
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "y"}, 10)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    # Only the core's JSON encoding of one batch runs on the loop; the 5,000
    # inserts and the trim must not (blocking, one gap would be most of it all).
    assert max(gaps) < elapsed / 3, (
        f"the loop stalled for {max(gaps):.3f}s of {elapsed:.3f}s of saving")
    assert len(ticks) > 10


class _CountedQueue:
    """Stands in for a connection's queue to its thread, recording each call put on it."""

    def __init__(self, queue: Any, trips: list[str]) -> None:
        self.queue, self.trips = queue, trips

    def put_nowait(self, item: Any) -> None:
        fn = getattr(item[1], "func", item[1])
        self.trips.append(getattr(fn, "__name__", repr(fn)))
        self.queue.put_nowait(item)


def _count_trips(backend: SqliteBackend, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every call queued on the writer's and reader's threads."""
    trips: list[str] = []
    for conn in {id(c): c for c in (backend._writer, backend._reader) if c}.values():
        monkeypatch.setattr(conn, "_tx", _CountedQueue(conn._tx, trips))
    return trips


@pytest.mark.asyncio
async def test_every_call_is_one_trip_to_the_database_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = {"role": "user", "content": [{"text": "hi"}]}
    async with make_storage(f"sqlite:///{tmp_path / 'chat.db'}") as storage:
        backend = storage.backend
        assert isinstance(backend, SqliteBackend)
        trips = _count_trips(backend, monkeypatch)
        calls = {
            "save_chat_message": storage.save_chat_message("u", "s", "a", message, 50),
            "save_chat_messages": storage.save_chat_messages(
                "u", "s", "a", [{"role": "assistant", "content": "x"}, message]
            ),
            "append_messages": storage.append_messages("u", "s", "b", [message]),
            "fetch_chat": storage.fetch_chat("u", "s", "a", 20),
            "fetch_all_chats": storage.fetch_all_chats("u", "s"),
            "list_sessions": storage.list_sessions("u"),
            "delete_session": storage.delete_session("u", "s"),
            "delete_user": storage.delete_user("u"),
        }
        for name, call in calls.items():
            before = len(trips)
            await call
            assert len(trips) - before == 1, f"{name}: {trips[before:]}"


@pytest.mark.asyncio
async def test_a_cancelled_save_is_all_or_nothing(tmp_path: Path) -> None:
    async with make_storage(f"sqlite:///{tmp_path / 'chat.db'}") as storage:
        batch = [{"role": ("user", "assistant")[i % 2], "content": "x" * 1000} for i in range(500)]
        for delay in (0, 0.0005, 0.002, 0.01):
            task = asyncio.create_task(storage.append_messages("u", "s", f"a{delay}", batch))
            await asyncio.sleep(delay)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            stored = await storage.fetch_chat("u", "s", f"a{delay}")
            assert len(stored) in (0, 500)
        # The writer is left usable, with no transaction open.
        await storage.save_chat_message("u", "s", "after", {"role": "user", "content": "ok"})
        backend = storage.backend
        assert isinstance(backend, SqliteBackend) and backend._writer is not None
        assert not backend._writer.in_transaction


def test_missing_aiosqlite_internals_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import aiosqlite

    from storage_core_sqlite.thread import check_aiosqlite

    check_aiosqlite()
    monkeypatch.delattr(aiosqlite.Connection, "_conn")
    with pytest.raises(ConfigurationError, match=r"aiosqlite>=0.20,<0.23"):
        check_aiosqlite()


def _records(path: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT request_id, first_index, row_count FROM storage_core_requests ORDER BY seq"
        ).fetchall()


@pytest.mark.asyncio
async def test_only_a_callers_request_id_is_recorded(tmp_path: Path) -> None:
    # A transaction on a file commits or stores nothing, so the core's own
    # ids need no record: a repeat only follows a failure that stored nothing.
    path = tmp_path / "chat.db"
    async with make_storage(f"sqlite:///{path}") as storage:
        await storage.save_chat_message("u", "s", "a", {"role": "user", "content": "1"})
        await storage.append_messages("u", "s", "a", [{"role": "assistant", "content": "2"}])
        assert _records(path) == []
        await storage.save_chat_message(
            "u", "s", "a", {"role": "user", "content": "3"}, request_id="mine"
        )
        assert _records(path) == [("mine", 2, 1)]
        again = await storage.save_chat_message(
            "u", "s", "a", {"role": "user", "content": "3"}, request_id="mine"
        )
        assert [m.index for m in again] == [0, 1, 2]


@pytest.mark.asyncio
async def test_a_save_retried_after_busy_is_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "chat.db"
    async with make_storage(f"sqlite:///{path}?busy_timeout=20") as storage:
        await storage.initialize()
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # holds the write lock past the busy timeout
        try:
            save = asyncio.ensure_future(
                storage.save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
            )
            # Five tries of 20 ms each at least: still trying after the first.
            await asyncio.sleep(0.06)
            assert not save.done()
        finally:
            other.execute("COMMIT")
            other.close()
        saved = await save
        assert [m.index for m in saved] == [0]
        assert [m.index for m in await storage.fetch_chat("u", "s", "a")] == [0]
        assert _records(path) == []
