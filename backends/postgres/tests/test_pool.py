"""The connection pool: borrowing, waiting, retiring, closing; and, on a real
server, what a cancelled call leaves behind and the upgrade of the save function."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import asyncpg
import pytest

from storage_core import ClosedError, make_storage
from storage_core_postgres.pool import Pool
from storage_core_postgres.sql import Statements


class FakeConnection:
    """What the pool uses of an ``asyncpg.Connection``."""

    ids = itertools.count()

    def __init__(self) -> None:
        self.id = next(self.ids)
        self.closed = False
        self.in_transaction = False
        self.close_calls = 0

    def __repr__(self) -> str:
        return f"<FakeConnection {self.id}>"

    def is_closed(self) -> bool:
        return self.closed

    def is_in_transaction(self) -> bool:
        return self.in_transaction

    async def close(self, *, timeout: float | None = None) -> None:
        self.close_calls += 1
        await asyncio.sleep(0)
        self.closed = True

    def terminate(self) -> None:
        self.closed = True


class Connector:
    """A ``connect`` for the pool: counts, and fails on demand."""

    def __init__(self) -> None:
        self.opened: list[FakeConnection] = []
        self.fail: BaseException | None = None

    async def __call__(self) -> FakeConnection:
        await asyncio.sleep(0)
        if self.fail is not None:
            raise self.fail
        conn = FakeConnection()
        self.opened.append(conn)
        return conn


def _pool(connect: Connector, min_size: int = 1, max_size: int = 2) -> Pool:
    return Pool(connect, min_size=min_size, max_size=max_size, close_timeout=1.0)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_open_makes_min_size_and_take_is_last_in_first_out() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=2, max_size=3)
    await pool.open()
    assert len(connect.opened) == 2 and pool.size == 2
    a = pool.take()
    b = pool.take()
    assert a is not None and b is not None and pool.take() is None
    pool.release(a)
    pool.release(b)
    assert pool.take() is b  # the one used last comes first
    pool.release(b)
    await pool.close()


@pytest.mark.asyncio
async def test_acquire_opens_up_to_max_size_then_waits_for_a_release() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=0, max_size=2)
    await pool.open()
    a = await pool.acquire()
    b = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await _settle()
    assert not waiting.done() and pool.size == 2
    pool.release(a)
    assert await waiting is a
    pool.release(a)
    pool.release(b)
    await pool.close()
    assert all(c.closed for c in connect.opened)


@pytest.mark.asyncio
async def test_a_retired_connection_frees_its_place_for_a_waiting_call() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=1, max_size=1)
    await pool.open()
    a = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await _settle()
    pool.release(a, reuse=False)  # e.g. the call was cancelled
    b = await waiting
    assert b is not a and a.closed and a.close_calls == 1 and pool.size == 1
    pool.release(b)
    await pool.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("state", ["closed", "in_transaction"])
async def test_a_connection_closed_or_in_a_transaction_is_not_reused(state: str) -> None:
    connect = Connector()
    pool = _pool(connect, min_size=1, max_size=1)
    await pool.open()
    a = pool.take()
    assert a is not None
    setattr(a, state, True)
    pool.release(a)
    await _settle()
    assert pool.take() is None and pool.size == 0
    b = await pool.acquire()
    assert b is not a
    pool.release(b)
    await pool.close()


@pytest.mark.asyncio
async def test_an_idle_connection_found_closed_is_skipped() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=2, max_size=2)
    await pool.open()
    first, second = connect.opened
    second.closed = True  # the last released, so the first one take() tries
    assert pool.take() is first and pool.size == 1
    pool.release(first)
    await pool.close()


@pytest.mark.asyncio
async def test_connections_idle_too_long_are_closed_down_to_min_size() -> None:
    connect = Connector()
    pool = Pool(connect, min_size=1, max_size=3, close_timeout=1.0, idle_lifetime=0.05)
    await pool.open()
    conns = [await pool.acquire() for _ in range(3)]
    for conn in conns:
        pool.release(conn)
    await asyncio.sleep(0.1)
    busy = pool.take()
    pool.release(busy)  # the two left idle are now too old: one goes per release
    await _settle()
    assert pool.size == 2
    pool.release(pool.take())
    pool.release(pool.take())
    await _settle()
    assert pool.size == 1  # min_size stays
    await pool.close()


@pytest.mark.asyncio
async def test_a_cancelled_wait_takes_nothing_away() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=1, max_size=1)
    await pool.open()
    a = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await _settle()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    pool.release(a)
    assert pool.take() is a
    pool.release(a)
    await pool.close()


@pytest.mark.asyncio
async def test_a_connection_handed_to_a_call_cancelled_meanwhile_comes_back() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=1, max_size=1)
    await pool.open()
    a = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await _settle()
    pool.release(a)  # handed to the waiter...
    waiting.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert pool.take() is a
    pool.release(a)
    await pool.close()


@pytest.mark.asyncio
async def test_a_failed_connect_frees_its_place() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=0, max_size=1)
    await pool.open()
    connect.fail = OSError("refused")
    with pytest.raises(OSError, match="refused"):
        await pool.acquire()
    assert pool.size == 0
    connect.fail = None
    conn = await pool.acquire()
    pool.release(conn)
    await pool.close()


@pytest.mark.asyncio
async def test_open_fails_whole() -> None:
    connect = Connector()
    connect.fail = OSError("refused")
    pool = _pool(connect, min_size=3, max_size=3)
    with pytest.raises(OSError, match="refused"):
        await pool.open()
    assert pool.size == 0


@pytest.mark.asyncio
async def test_close_waits_for_borrowed_connections_and_fails_waiters() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=1, max_size=1)
    await pool.open()
    a = await pool.acquire()
    waiting = asyncio.ensure_future(pool.acquire())
    await _settle()
    closing = asyncio.ensure_future(pool.close())
    await _settle()
    with pytest.raises(ClosedError):
        await waiting
    assert not closing.done()  # ``a`` is still borrowed
    pool.release(a)
    await asyncio.wait_for(closing, 1)
    assert a.closed and pool.size == 0
    with pytest.raises(ClosedError):
        await pool.acquire()


@pytest.mark.asyncio
async def test_terminate_closes_borrowed_connections_too() -> None:
    connect = Connector()
    pool = _pool(connect, min_size=2, max_size=2)
    await pool.open()
    a = pool.take()
    pool.terminate()
    assert all(c.closed for c in connect.opened) and pool.size == 0
    pool.release(a)  # late: nothing happens
    with pytest.raises(ClosedError):
        await pool.acquire()


# -- on a real server --------------------------------------------------------


@pytest.mark.asyncio
async def test_a_cancelled_save_is_cancelled_on_the_server(postgres_database_url: str) -> None:
    """A save cancelled while the server waits on its lock never commits later:
    its connection is closed only after asyncpg has cancelled the statement."""
    async with make_storage(postgres_database_url + "?min_size=1&max_size=1") as storage:
        await storage.fetch_chat("cancel", "s", "a")
        admin = await asyncpg.connect(postgres_database_url)
        try:
            await admin.execute("BEGIN")
            await admin.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                "length($1::text) || ':' || $1 || length($2::text) || ':' || $2 || $3::text, "
                "$4::bigint))", "cancel", "s", "a", 0x5C0EC0DE)
            save = asyncio.ensure_future(
                storage.save_chat_message("cancel", "s", "a", {"role": "user", "content": "x"})
            )
            await asyncio.sleep(0.3)
            save.cancel()
            with pytest.raises(asyncio.CancelledError):
                await save
            # The next call waits for the cancelled connection's place, then works.
            assert await asyncio.wait_for(storage.fetch_chat("cancel", "s", "a"), 10) == []
            await admin.execute("ROLLBACK")  # lets a statement still waiting go on
            await asyncio.sleep(0.3)
            assert await storage.fetch_chat("cancel", "s", "a") == []
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def _older_schema(database_url: str, schema: str, *changes: str) -> AsyncIterator[str]:
    """The current schema with ``changes`` applied, as an earlier release left
    it (not ``ready``); yields a storage URL on it, then checks that the
    storage's initialize() made it current again, and drops it."""
    statements = Statements(schema)
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.execute(statements.schema_script)
        for change in changes:
            await admin.execute(change)
        assert not await admin.fetchval(statements.ready)
        yield f"{database_url}?schema={schema}&min_size=1&max_size=1"
        assert await admin.fetchval(statements.ready)
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


@pytest.mark.asyncio
async def test_initialize_replaces_an_older_save_function(postgres_database_url: str) -> None:
    """A schema made by an earlier release (same tables, older function body,
    comment without the revision) gets the current function on initialize()."""
    schema = "older_function"
    # What an earlier release left: another body, the plain comment.
    older_body = (
        f'CREATE OR REPLACE FUNCTION "{schema}".storage_core_append('
        "p_user text, p_session text, p_agent text, p_roles text[], p_contents text[], "
        "p_timestamps bigint[], p_skip_same_role boolean, p_keep integer, "
        "p_history boolean, p_history_limit integer, p_request text, p_replay boolean) "
        "RETURNS TABLE (r_kind smallint, r_agent_id text, r_index integer, r_role text, "
        "r_content text, r_timestamp bigint) LANGUAGE sql AS 'SELECT NULL::smallint, "
        "NULL, NULL::integer, NULL, NULL, NULL::bigint WHERE false'"
    )
    plain_comment = (
        f'COMMENT ON FUNCTION "{schema}".storage_core_append(text, text, text, text[], '
        f"text[], bigint[], boolean, integer, boolean, integer, text, boolean) "
        "IS 'storage_core schema 1'"
    )
    async with _older_schema(
        postgres_database_url, schema, older_body, plain_comment
    ) as url, make_storage(url) as storage:
        stored = await storage.save_chat_message(
            "up", "s", "a", {"role": "user", "content": "hi"})
        assert [(m.index, m.role) for m in stored] == [(0, "user")]


@pytest.mark.asyncio
async def test_initialize_adds_the_one_row_function_to_a_revision_2_schema(
    postgres_database_url: str,
) -> None:
    """Revision 2 had only storage_core_append; initialize() adds
    storage_core_append_one, which single-message saves call."""
    schema = "revision_2"
    no_one_row_function = (
        f'DROP FUNCTION "{schema}".storage_core_append_one(text, text, text, text, text, '
        "bigint, boolean, integer, boolean, integer, text, boolean)"
    )
    revision_2_comment = (
        f'COMMENT ON FUNCTION "{schema}".storage_core_append(text, text, text, text[], '
        "text[], bigint[], boolean, integer, boolean, integer, text, boolean) "
        "IS 'storage_core schema 1, append revision 2'"
    )
    async with _older_schema(
        postgres_database_url, schema, no_one_row_function, revision_2_comment
    ) as url, make_storage(url) as storage:
        await storage.save_chat_messages(
            "up", "s", "a", [{"role": "user", "content": "a"},
                             {"role": "assistant", "content": "b"}])
        stored = await storage.save_chat_message(
            "up", "s", "a", {"role": "user", "content": "c"}, max_history_size=2)
        assert [(m.index, m.role) for m in stored] == [(1, "assistant"), (2, "user")]


@pytest.mark.asyncio
async def test_initialize_adds_the_pop_function_to_a_revision_5_schema(
    postgres_database_url: str,
) -> None:
    """Revision 5 had no storage_core_pop; initialize() adds it (and marks
    every function with the current revision), and pop_message works."""
    schema = "revision_5"
    comments = [
        f'COMMENT ON FUNCTION "{schema}".{name}({args}) '
        "IS 'storage_core schema 1, append revision 5'"
        for name, args in (
            ("storage_core_append", "text, text, text, text[], text[], bigint[], boolean, "
             "integer, boolean, integer, text, boolean"),
            ("storage_core_append_one", "text, text, text, text, text, bigint, boolean, "
             "integer, boolean, integer, text, boolean"),
        )
    ]
    no_pop_function = (
        f'DROP FUNCTION "{schema}".storage_core_pop(text, text, text, text, boolean)'
    )
    async with _older_schema(
        postgres_database_url, schema, no_pop_function, *comments
    ) as url, make_storage(url) as storage:
        await storage.save_chat_messages(
            "up", "s", "a", [{"role": "user", "content": "a"},
                             {"role": "assistant", "content": "b"}])
        popped = await storage.pop_message("up", "s", "a")
        assert popped is not None and (popped.index, popped.content) == (1, "b")
        assert [m.index for m in await storage.fetch_chat("up", "s", "a")] == [0]
