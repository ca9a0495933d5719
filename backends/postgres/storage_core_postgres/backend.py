"""The asyncpg engine: a storage_core backend on a PostgreSQL server.

A pool of connections (`storage_core_postgres.pool`) is opened by
``initialize()`` and closed by ``close()``. Every call borrows one connection
(without awaiting when one is idle) and runs exactly one statement on it, so
each public call is one round trip to the server. A save is a call of the
``storage_core_append`` function, which serialises the saves of one
conversation with a transaction-scoped advisory lock and then checks the last
role, inserts, trims and reads back as separate statements (see
`storage_core_postgres.sql`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import asyncpg

from storage_core import Capabilities, ClosedError, SessionInfo, StorageError
from storage_core.backend import (
    AppendRequest,
    AppendResult,
    ConversationKey,
    RowValues,
    StorageURL,
    StoredRow,
    TableRow,
    merge_sessions,
    replayed_rows,
    reused_request,
    sessions_in_order,
    table_rows,
)

from .config import PostgresConfig
from .pool import Pool
from .sql import LOOKUP_INDEX, SCHEMA_VERSION, Statements
from .translate import connection_broken, translate
from .wire import LiteralRunner, PreparedRunner, Runner

__all__ = ["PostgresBackend"]

T = TypeVar("T")

_ROW_TYPES = (str, int, str, str, int)  # agent_id, message_index, role, content, timestamp
_APPEND_TYPES = (int, *_ROW_TYPES)  # kind first
_SESSION_TYPES = (str, str, int, int)  # session_id, agent_id, count, last timestamp
_TABLE_TYPES = (str, str, str, int, str, str, int)  # a whole conversations row
_DESCRIBE_TYPES = (str, str, int, str)
_CLOSE_TIMEOUT = 10.0


def _flag(text: str) -> bool:
    return text == "t"


class PostgresBackend:
    """A storage_core backend on a PostgreSQL database (asyncpg connection pool)."""

    capabilities = Capabilities(exactly_once=True)

    def __init__(self, config: PostgresConfig, *, url: str = "") -> None:
        self.config = config
        self._url = url or "postgresql://"
        self._sql = Statements(config.schema, config.partitions)
        self._runner: Runner = (
            PreparedRunner(config.command_timeout)
            if config.prepared_statements
            else LiteralRunner(config.command_timeout)
        )
        self._pool: Pool | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"PostgresBackend({self._url!r})"

    @classmethod
    def from_url(cls, url: StorageURL, options: Mapping[str, Any]) -> PostgresBackend:
        """``postgresql://user:password@host:port/database?option=value&...``.

        Also ``postgres://`` and ``postgresql+asyncpg://``. Options (in the
        query or as keywords): see `storage_core_postgres.config.OPTIONS`.
        """
        return cls(PostgresConfig.from_url(url, options), url=url.render())

    # -- connections -------------------------------------------------------

    async def initialize(self) -> None:
        if self._closed:
            raise ClosedError("the PostgreSQL backend is closed")
        if self._pool is not None:
            return
        config = self.config
        pool = Pool(
            functools.partial(asyncpg.connect, **config.connect_kwargs()),
            min_size=config.min_size,
            max_size=config.max_size,
            close_timeout=_CLOSE_TIMEOUT,
        )
        try:
            await pool.open()
        except Exception as exc:
            raise translate(exc, "connect", sent=False, write=False) from exc
        self._pool = pool
        try:
            await self._call("initialize", self._create_schema, write=False)
        except BaseException:
            self._pool = None
            pool.terminate()
            raise

    async def _create_schema(self, conn: Any) -> None:
        rows = await self._runner.rows(conn, self._sql.ready, (), (_flag,))
        if not rows or not rows[0][0]:
            # One simple-protocol query: an implicit transaction that takes an
            # advisory lock first, so concurrent initializations run one by one.
            await conn.execute(self._sql.schema_script, timeout=self.config.command_timeout)

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            await asyncio.wait_for(pool.close(), _CLOSE_TIMEOUT)
        except (Exception, asyncio.CancelledError):
            pool.terminate()
            raise

    def detach(self) -> None:
        """Drop the pool, whose connections belong to an event loop that has
        stopped, without awaiting; the next ``initialize()`` opens a new one
        on the calling loop."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.abandon()

    async def _call(
        self, what: str, action: Callable[[Any], Awaitable[T]], *, write: bool,
        index_race: bool = False,
    ) -> T:
        """Run ``action`` on a pooled connection, translating every driver error
        (``write`` and ``index_race`` as for `translate`)."""
        pool = self._pool
        if pool is None:
            raise ClosedError(
                "the PostgreSQL backend is closed" if self._closed
                else "the PostgreSQL backend is not initialized"
            )
        conn = pool.take()
        if conn is None:
            try:
                conn = await pool.acquire()
            except ClosedError:
                raise
            except Exception as exc:
                if self._closed:
                    raise ClosedError("the PostgreSQL backend is closed") from exc
                raise translate(exc, what, sent=False, write=write) from exc
        try:
            result = await action(conn)
        except Exception as exc:
            # Never hand a connection in a broken state to the next call.
            pool.release(conn, reuse=not connection_broken(exc))
            raise translate(exc, what, sent=True, write=write, index_race=index_race) from exc
        except BaseException:
            # Cancelled: the statement may still run; the pool closes the
            # connection once asyncpg has cancelled it.
            pool.release(conn, reuse=False)
            raise
        pool.release(conn)
        return result

    # -- the protocol ------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        key = request.key
        rows = list(request.rows)
        statement = self._sql.append
        args: tuple[object, ...]
        if len(rows) == 1:
            row = rows[0]
            statement = self._sql.append_one
            args = (key.user_id, key.session_id, key.agent_id,
                    row.role, row.content, row.timestamp)
        else:
            args = (key.user_id, key.session_id, key.agent_id,
                    [r.role for r in rows], [r.content for r in rows],
                    [str(r.timestamp) for r in rows])
        args += (request.skip_same_role, request.keep, request.history, request.history_limit,
                 request.request_id, request.replay)
        result = await self._call(
            "append",
            lambda conn: self._runner.rows(conn, statement, args, _APPEND_TYPES),
            write=True, index_race=True,
        )
        if result and result[0][0] == 2:
            return _replayed(request, result)
        # Kind 0 first, one row per stored row; then kind 1, the history.
        count = 0
        most = min(len(result), len(rows))
        while count < most and result[count][0] == 0:
            count += 1
        skipped = len(rows) - count
        if skipped not in (0, 1) or (skipped and not request.skip_same_role):
            raise StorageError(f"append: the server reported {count} of {len(rows)} rows stored")
        agent_id = key.agent_id
        new = tuple.__new__  # skips the named tuple's Python-level __new__ (one per row)
        stored = [
            new(StoredRow, (agent_id, meta[2], role, content, timestamp))
            for meta, (role, content, timestamp) in zip(
                result[:count], rows[skipped:], strict=True)
        ]
        # Record[1:] is a plain tuple, in RowValues order.
        history = cast(
            "list[RowValues] | None",
            [r[1:] for r in result[count:]] if request.history else None,
        )
        return AppendResult(stored=stored, history=history)

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[RowValues]:
        args = (key.user_id, key.session_id, key.agent_id, limit)
        rows = await self._call(
            "fetch_chat",
            lambda conn: self._runner.rows(conn, self._sql.newest, args, _ROW_TYPES),
            write=False,
        )
        # Read newest first. Records unpack like the RowValues tuples.
        return cast("Sequence[RowValues]", rows[::-1])

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        args = (key.user_id, key.session_id, key.agent_id, request_id, replay)
        rows = await self._call(
            "pop_message",
            lambda conn: self._runner.rows(conn, self._sql.pop, args, _ROW_TYPES),
            write=True,
        )
        return cast("RowValues", tuple(rows[0])) if rows else None

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[RowValues]:
        rows = await self._call(
            "fetch_all_chats",
            lambda conn: self._runner.rows(
                conn, self._sql.session, (user_id, session_id), _ROW_TYPES
            ),
            write=False,
        )
        return cast("Sequence[RowValues]", rows)  # Records unpack like tuples

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        rows = await self._call(
            "list_sessions",
            lambda conn: self._runner.rows(conn, self._sql.sessions, (user_id,), _SESSION_TYPES),
            write=False,
        )
        return merge_sessions(rows)

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        statement = self._sql.sessions_page_first
        args: tuple[Any, ...] = (user_id, limit)
        if before is not None:
            statement = self._sql.sessions_page_after
            args = (user_id, limit, before.last_timestamp, before.session_id)
        rows = await self._call(
            "list_sessions",
            lambda conn: self._runner.rows(conn, statement, args, _SESSION_TYPES),
            write=False,
        )
        return sessions_in_order(merge_sessions(rows))

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        args = (key.user_id, key.session_id, key.agent_id, before_index, limit)
        rows = await self._call(
            "fetch_chat",
            lambda conn: self._runner.rows(conn, self._sql.before, args, _ROW_TYPES),
            write=False,
        )
        return cast("Sequence[RowValues]", rows[::-1])  # read newest first

    async def _count(self, what: str, statement: str, args: tuple[Any, ...]) -> int:
        status = await self._call(
            what, lambda conn: self._runner.status(conn, statement, args), write=True
        )
        return int(status.rsplit(" ", 1)[-1])

    async def delete_session(self, user_id: str, session_id: str) -> int:
        return await self._count(
            "delete_session", self._sql.delete_session, (user_id, session_id)
        )

    async def delete_conversation(self, key: ConversationKey) -> int:
        return await self._count(
            "delete_conversation", self._sql.delete_conversation,
            (key.user_id, key.session_id, key.agent_id),
        )

    async def delete_user(self, user_id: str) -> int:
        return await self._count("delete_user", self._sql.delete_user, (user_id,))

    # -- table tools -------------------------------------------------------

    async def export_rows(self, after: TableRow | None, limit: int) -> Sequence[TableRow]:
        args: tuple[Any, ...]
        if after is None:
            statement, args = self._sql.export_first, (limit,)
        else:
            statement, args = self._sql.export_after, (*after.sort_key, limit)
        rows = await self._call(
            "export",
            lambda conn: self._runner.rows(conn, statement, args, _TABLE_TYPES),
            write=False,
        )
        return table_rows(rows)

    async def import_rows(self, rows: Sequence[TableRow]) -> int:
        columns = (
            [r.user_id for r in rows],
            [r.session_id for r in rows],
            [r.agent_id for r in rows],
            [str(r.message_index) for r in rows],
            [r.role for r in rows],
            [r.content for r in rows],
            [str(r.timestamp) for r in rows],
        )
        return await self._count("import", self._sql.import_rows, columns)

    async def prune(self, before_timestamp: int) -> int:
        return await self._count("prune", self._sql.prune, (before_timestamp,))

    async def describe(self) -> dict[str, object]:
        rows = await self._call(
            "describe",
            lambda conn: self._runner.rows(conn, self._sql.describe, (), _DESCRIBE_TYPES),
            write=False,
        )
        version, indexes, count, server = rows[0]
        schema_version = None if version is None else int(version)
        names = sorted(str(indexes).split(",")) if indexes else []
        problems = []
        if schema_version != SCHEMA_VERSION:
            problems.append(f"schema version {schema_version}, this package writes "
                            f"{SCHEMA_VERSION}")
        if LOOKUP_INDEX not in names:
            problems.append(f"index {LOOKUP_INDEX} on conversations is missing")
        return {
            "schema_version": schema_version,
            "indexes": names,
            "problems": problems,
            "row_count": int(count),
            "server": f"PostgreSQL {server} (schema {self.config.schema})",
        }


def _replayed(request: AppendRequest, result: Sequence[Any]) -> AppendResult:
    """The result of a save whose request id was recorded: kind 2 (the record:
    first index, kind, row count), then kind 1, the history."""
    _, _, first, kind, _, count = result[0]
    if kind != "append":
        raise reused_request(request.request_id, kind)
    history = cast(
        "list[RowValues] | None", [r[1:] for r in result[1:]] if request.history else None
    )
    return AppendResult(stored=replayed_rows(request, int(first), int(count)), history=history)
