"""The floor: each driver doing the least possible for the same work on the same table.

One INSERT round trip for a save, one indexed SELECT for a fetch, one
``executemany`` (or one batch) in a transaction for a batch. The same objects
seed conversations with H messages in one server-side statement.

``same_work`` is the floor of a call that does more than one statement's
work: insert the rows, optionally record the write's request id
in ``storage_core_requests`` (what exactly-once writes add to every write),
trim to the newest ``keep`` and read back the conversation (or its newest
``keep``), all in one transaction, in the fewest trips the driver allows:
one call on aiosqlite's thread, one libsql-client batch, one PostgreSQL
statement (data-modifying CTEs). Like the one-row floor it knows the rows'
indexes (the benchmark hands them out), and so the record's ``seq``: it
neither reads the conversation's tail nor locks it, which ours must do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Protocol

from ._data import CONTENT_JSON, Conv

__all__ = ["AiosqliteRaw", "AsyncpgRaw", "LibsqlRaw", "RawDriver"]

_COLS = "user_id, session_id, agent_id, message_index, role, content, timestamp"
_READ = "agent_id, message_index, role, content, timestamp"

_SQLITE_SEED = f"""INSERT INTO conversations ({_COLS})
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?)
SELECT ?, ?, ?, i, CASE i % 2 WHEN 0 THEN 'user' ELSE 'assistant' END, ?, ? + i * ?
FROM seq"""
_SQLITE_INSERT = f"INSERT INTO conversations ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)"
_SQLITE_NEWEST = f"""SELECT {_READ} FROM conversations
WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index DESC LIMIT ?"""
_SQLITE_WHOLE = f"""SELECT {_READ} FROM conversations
WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index"""
_SQLITE_SESSION = f"SELECT {_READ} FROM conversations WHERE user_id = ? AND session_id = ?"
_SQLITE_RECORD = """INSERT INTO storage_core_requests
    (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count)
VALUES (?, ?, ?, ?, ?, 'append', ?, ?)"""
# The schema's trigger keeps the newest 100 records, for the floor as for ours.
_SQLITE_TRIM = """DELETE FROM conversations
WHERE user_id = ? AND session_id = ? AND agent_id = ? AND message_index <= ?"""

_PG_SEED = f"""INSERT INTO conversations ({_COLS})
SELECT $1, $2, $3, i, CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, $4,
       $5::bigint + i * $6::bigint
FROM generate_series(0, $7::int - 1) AS i"""
_PG_INSERT = f"INSERT INTO conversations ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
_PG_NEWEST = f"""SELECT {_READ} FROM conversations
WHERE user_id = $1 AND session_id = $2 AND agent_id = $3 ORDER BY message_index DESC LIMIT $4"""
_PG_WHOLE = f"""SELECT {_READ} FROM conversations
WHERE user_id = $1 AND session_id = $2 AND agent_id = $3 ORDER BY message_index"""
_PG_SESSION = f"SELECT {_READ} FROM conversations WHERE user_id = $1 AND session_id = $2"

Row = tuple[int, str, str, int]  # index, role, content, timestamp


def _seq(rows: list[Row]) -> int:
    """The record's ``seq``: known, like the rows' indexes (one past the first
    row's index: unique and increasing in a conversation, as the schema needs)."""
    return rows[0][0] + 1


def _sqlite_statements(key: tuple[str, str, str], rows: list[Row], record: str | None,
                       keep: int | None, read: bool) -> list[tuple[str, tuple[Any, ...]]]:
    """The statements of ``same_work`` on the SQLite family, in order; the last
    one's rows are the answer when ``read``."""
    out: list[tuple[str, tuple[Any, ...]]] = []
    if record is not None:
        out.append((_SQLITE_RECORD, (*key, _seq(rows), record, rows[0][0], len(rows))))
    out += [(_SQLITE_INSERT, (*key, *r)) for r in rows]
    if keep is not None:
        out.append((_SQLITE_TRIM, (*key, rows[-1][0] - keep)))
    if read:
        out.append((_SQLITE_NEWEST, (*key, keep)) if keep is not None
                   else (_SQLITE_WHOLE, key))
    return out


def _sqlite_work(db: Any, statements: list[tuple[str, tuple[Any, ...]]], read: bool) -> int:
    """Run ``statements`` in one ``BEGIN IMMEDIATE`` transaction on a sqlite3 connection."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, params in statements[:-1] if read else statements:
            db.execute(sql, params)
        count = len(db.execute(*statements[-1]).fetchall()) if read else 0
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return count


def _pg_same_work(key: tuple[str, str, str], rows: list[Row], record: str | None,
                  keep: int | None, read: bool) -> tuple[str, list[Any]]:
    """``same_work`` on PostgreSQL as one statement: CTEs for the record, its
    bound, the insert and the trim; the read sees the table as it was before
    the statement, so it leaves out what the trim deletes and adds the new rows."""
    params: list[Any] = [*key, [r[0] for r in rows], [r[1] for r in rows],
                         [r[2] for r in rows], [r[3] for r in rows]]

    def param(value: Any) -> str:
        params.append(value)
        return f"${len(params)}"

    conv = "user_id = $1 AND session_id = $2 AND agent_id = $3"
    ctes = []
    if record is not None:
        ctes.append(f"""rec AS (INSERT INTO storage_core_requests
    (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count)
    VALUES ($1, $2, $3, {param(_seq(rows))}::bigint, {param(record)}, 'append',
            {param(rows[0][0])}::int, {param(len(rows))}::int))""")
        ctes.append(f"""bound AS (DELETE FROM storage_core_requests
    WHERE {conv} AND seq <= {param(_seq(rows) - 100)}::bigint)""")
    insert = f"""INSERT INTO conversations ({_COLS})
    SELECT $1, $2, $3, i, r, c, t
    FROM unnest($4::int[], $5::text[], $6::text[], $7::bigint[]) AS u(i, r, c, t)"""
    if not read:
        head = f"WITH {', '.join(ctes)}\n" if ctes else ""
        return head + insert, params
    ctes.append(f"ins AS ({insert} RETURNING {_READ})")
    if keep is None:
        old = f"SELECT {_READ} FROM conversations WHERE {conv} ORDER BY message_index"
    else:
        cut = param(rows[-1][0] - keep)
        ctes.append(f"cut AS (DELETE FROM conversations WHERE {conv} AND message_index <= {cut})")
        old = (f"SELECT {_READ} FROM conversations WHERE {conv} AND message_index > {cut} "
               f"ORDER BY message_index DESC LIMIT {param(max(0, keep - len(rows)))}")
    return f"WITH {', '.join(ctes)}\n({old}) UNION ALL (SELECT * FROM ins)", params


class RawDriver(Protocol):
    """A driver used directly: the floor, and the seeder of every subject's data."""

    name: str

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def seed(self, conv: Conv, count: int, ts0: int, step: int = 1) -> None: ...
    async def insert_one(self, conv: Conv, row: Row) -> None: ...
    async def insert_many(self, conv: Conv, rows: list[Row]) -> None: ...
    async def newest(self, conv: Conv, limit: int) -> Sequence[Any]: ...
    async def whole(self, conv: Conv) -> int: ...
    async def session(self, user_id: str, session_id: str) -> int: ...
    async def same_work(self, conv: Conv, rows: list[Row], *, record: str | None,
                        keep: int | None, read: bool) -> int: ...


class AiosqliteRaw:
    """aiosqlite on the file with our SQLite defaults: WAL, synchronous=FULL, autocommit."""

    name = "aiosqlite"

    def __init__(self, path: str, synchronous: str = "full") -> None:
        self.path = path
        self.synchronous = synchronous
        self._conn: Any = None

    async def open(self) -> None:
        import aiosqlite

        self._conn = await aiosqlite.connect(self.path, timeout=5, isolation_level=None)
        await self._conn.execute("PRAGMA busy_timeout = 5000")
        await self._conn.execute("PRAGMA journal_mode = WAL")
        await self._conn.execute(f"PRAGMA synchronous = {self.synchronous}")

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def seed(self, conv: Conv, count: int, ts0: int, step: int = 1) -> None:
        if count:
            await self._conn.execute(_SQLITE_SEED, (count, *conv.key, CONTENT_JSON, ts0, step))
        conv.seeded(count)

    async def insert_one(self, conv: Conv, row: Row) -> None:
        await self._conn.execute(_SQLITE_INSERT, (*conv.key, *row))

    async def insert_many(self, conv: Conv, rows: list[Row]) -> None:
        await self._conn.execute("BEGIN IMMEDIATE")
        await self._conn.executemany(_SQLITE_INSERT, [(*conv.key, *r) for r in rows])
        await self._conn.execute("COMMIT")

    async def newest(self, conv: Conv, limit: int) -> Sequence[Any]:
        return list(await self._conn.execute_fetchall(_SQLITE_NEWEST, (*conv.key, limit)))

    async def whole(self, conv: Conv) -> int:
        return len(await self._conn.execute_fetchall(_SQLITE_WHOLE, conv.key))

    async def session(self, user_id: str, session_id: str) -> int:
        return len(await self._conn.execute_fetchall(_SQLITE_SESSION, (user_id, session_id)))

    async def same_work(self, conv: Conv, rows: list[Row], *, record: str | None,
                        keep: int | None, read: bool) -> int:
        """The whole transaction as one call on aiosqlite's thread: ``_execute`` is
        the queue every public aiosqlite call goes through (private, as the
        backend's own one-trip path is), so this is one trip, not one per statement."""
        statements = _sqlite_statements(conv.key, rows, record, keep, read)
        conn = self._conn
        count = await conn._execute(_sqlite_work, conn._conn, statements, read)
        return int(count) if read else len(rows)


class LibsqlRaw:
    """libsql-client on a ``file:``, ``http://`` or ``ws://`` URL."""

    name = "libsql-client"

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None
        # One same-work transaction in flight, as ours sends by default: sqld
        # stalls, or answers SQLITE_BUSY, with many concurrent transactions
        # from one client (measured: 64 batches at once wedged it), and runs
        # one writer at a time anyway.
        self._batches = asyncio.Semaphore(1)

    async def open(self) -> None:
        import libsql_client  # type: ignore[import-untyped,unused-ignore]

        self._client = libsql_client.create_client(self.url)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def seed(self, conv: Conv, count: int, ts0: int, step: int = 1) -> None:
        if count:
            await self._client.execute(
                _SQLITE_SEED, [count, *conv.key, CONTENT_JSON, ts0, step]
            )
        conv.seeded(count)

    async def insert_one(self, conv: Conv, row: Row) -> None:
        await self._client.execute(_SQLITE_INSERT, [*conv.key, *row])

    async def insert_many(self, conv: Conv, rows: list[Row]) -> None:
        import libsql_client

        await self._client.batch(
            [libsql_client.Statement(_SQLITE_INSERT, [*conv.key, *r]) for r in rows]
        )

    async def newest(self, conv: Conv, limit: int) -> Sequence[Any]:
        return list((await self._client.execute(_SQLITE_NEWEST, [*conv.key, limit])).rows)

    async def whole(self, conv: Conv) -> int:
        return len((await self._client.execute(_SQLITE_WHOLE, list(conv.key))).rows)

    async def session(self, user_id: str, session_id: str) -> int:
        return len((await self._client.execute(_SQLITE_SESSION, [user_id, session_id])).rows)

    async def same_work(self, conv: Conv, rows: list[Row], *, record: str | None,
                        keep: int | None, read: bool) -> int:
        """One batch (libsql-client runs it in one transaction, one round trip);
        it starts with a write, so it takes the write lock before it reads."""
        import libsql_client

        statements = _sqlite_statements(conv.key, rows, record, keep, read)
        async with self._batches:
            results = await self._client.batch(
                [libsql_client.Statement(sql, list(params)) for sql, params in statements])
        return len(results[-1].rows) if read else len(rows)


class AsyncpgRaw:
    """asyncpg: one connection (latency), or a pool (throughput), prepared statements."""

    name = "asyncpg"

    def __init__(self, url: str, pool_size: int = 1, *, lock: bool = False) -> None:
        self.url = url
        self.pool_size = pool_size
        self.lock = lock  # same_work under a per-conversation lock (see _locked)
        self._db: Any = None

    async def _locked(self, conv: Conv, sql: str, params: list[Any], read: bool,
                      count: int) -> int:
        """``same_work`` holding a per-conversation advisory lock until commit, as
        any writer must that finds the next index itself (ours does): writers
        on one conversation then commit one after another, each its own WAL
        flush, where the unlocked floor's concurrent commits share flushes."""
        async with self._db.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                               "\x1f".join(conv.key))
            if read:
                return len(await conn.fetch(sql, *params))
            await conn.execute(sql, *params)
            return count

    async def open(self) -> None:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]

        if self.pool_size == 1:
            self._db = await asyncpg.connect(self.url)
        else:
            self._db = await asyncpg.create_pool(
                self.url, min_size=self.pool_size, max_size=self.pool_size
            )

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.wait_for(self._db.close(), 30)
            self._db = None

    async def seed(self, conv: Conv, count: int, ts0: int, step: int = 1) -> None:
        if count:
            await self._db.execute(_PG_SEED, *conv.key, CONTENT_JSON, ts0, step, count)
            # Statistics as a long-lived table has them (autovacuum would add them
            # later), so both ours and the floor get the plans they would in production.
            await self._db.execute("ANALYZE conversations")
        conv.seeded(count)

    async def insert_one(self, conv: Conv, row: Row) -> None:
        await self._db.execute(_PG_INSERT, *conv.key, *row)

    async def insert_many(self, conv: Conv, rows: list[Row]) -> None:
        # asyncpg's executemany is atomic on its own (one pipelined round trip).
        await self._db.executemany(_PG_INSERT, [(*conv.key, *r) for r in rows])

    async def newest(self, conv: Conv, limit: int) -> Sequence[Any]:
        return list(await self._db.fetch(_PG_NEWEST, *conv.key, limit))

    async def whole(self, conv: Conv) -> int:
        return len(await self._db.fetch(_PG_WHOLE, *conv.key))

    async def session(self, user_id: str, session_id: str) -> int:
        return len(await self._db.fetch(_PG_SESSION, user_id, session_id))

    async def same_work(self, conv: Conv, rows: list[Row], *, record: str | None,
                        keep: int | None, read: bool) -> int:
        """One statement (one round trip, its own transaction), prepared once."""
        sql, params = _pg_same_work(conv.key, rows, record, keep, read)
        if self.lock:
            return await self._locked(conv, sql, params, read, len(rows))
        if read:
            return len(await self._db.fetch(sql, *params))
        await self._db.execute(sql, *params)
        return len(rows)
