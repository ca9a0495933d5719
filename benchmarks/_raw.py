"""The floor: each driver doing the least possible for the same work on the same table.

One INSERT round trip for a save, one indexed SELECT for a fetch, one
``executemany`` (or one batch) in a transaction for a batch. The same objects
seed conversations with H messages in one server-side statement.
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


class LibsqlRaw:
    """libsql-client on a ``file:``, ``http://`` or ``ws://`` URL."""

    name = "libsql-client"

    def __init__(self, url: str) -> None:
        self.url = url
        self._client: Any = None

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


class AsyncpgRaw:
    """asyncpg: one connection (latency), or a pool (throughput), prepared statements."""

    name = "asyncpg"

    def __init__(self, url: str, pool_size: int = 1) -> None:
        self.url = url
        self.pool_size = pool_size
        self._db: Any = None

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
