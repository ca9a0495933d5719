"""The aiosqlite engine: a storage_core backend on one SQLite file.

One writer connection runs each save as a ``BEGIN IMMEDIATE`` transaction, so
the write lock is taken before anything is read and the consecutive-role
check, the index and the trim all see the latest committed state. Several
processes on one file queue on SQLite's lock (busy timeout), and a busy error
that outlasts it is a ``TransientError`` the core retries. A second connection
serves reads without waiting for writers (WAL). aiosqlite runs every call on
its own thread, so the event loop never waits on file I/O; a whole write
transaction is one call there (`storage_core_sqlite.thread`), so a save
costs one trip to the thread, as a single ``execute`` does.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, cast

import aiosqlite

from storage_core import (
    Capabilities,
    ClosedError,
    ConfigurationError,
    SessionInfo,
    StorageError,
    TransientError,
)
from storage_core.backend import (
    AppendRequest,
    AppendResult,
    ConversationKey,
    RowValues,
    StorageURL,
    TableRow,
    merge_sessions,
    table_rows,
)

from . import sql
from .plan import (
    AppendPlan,
    before_statement,
    check_schema_version,
    export_statement,
    import_params,
    in_order,
    indexes_taken,
    newest_statement,
    oldest_first,
    plan_append,
    replayed_pop,
    schema_problems,
    sessions_page_statement,
    to_sessions_page,
)
from .thread import check_aiosqlite, connect, fetch_all, on_thread, transaction

__all__ = ["SqliteBackend"]

T = TypeVar("T")

_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6
_SYNCHRONOUS = ("off", "normal", "full", "extra")
_OPTIONS = ("busy_timeout", "synchronous")


def translate(exc: sqlite3.Error, what: str) -> StorageError:
    """A storage_core error for an sqlite3 error (kept as ``__cause__`` by the caller)."""
    text = str(exc)
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        busy = code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    else:
        busy = "database is locked" in text or "busy" in text
    if busy:
        return TransientError(f"{what}: the database is busy ({text})")
    if isinstance(exc, sqlite3.IntegrityError):
        return StorageError(f"{what}: constraint failed ({text})")
    return StorageError(f"{what} failed: {text}")


class SqliteBackend:
    """A storage_core backend on an SQLite database file (or ``:memory:``)."""

    def __init__(self, path: str, *, busy_timeout_ms: int = 5000, synchronous: str = "full"):
        if synchronous not in _SYNCHRONOUS:
            raise ConfigurationError(f"synchronous must be one of {_SYNCHRONOUS}")
        self.path = path
        self.in_memory = path in ("", ":memory:") or path.startswith("file::memory:")
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self.capabilities = Capabilities(
            shared_across_processes=not self.in_memory, persistent=not self.in_memory,
            exactly_once=True,
        )
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteBackend({self.path!r})"

    @classmethod
    def from_url(cls, url: StorageURL, options: Mapping[str, Any]) -> SqliteBackend:
        """``sqlite:///relative.db``, ``sqlite:////absolute.db``, ``sqlite:///:memory:``.

        Query options: ``busy_timeout`` (milliseconds, default 5000) and
        ``synchronous`` (``full`` by default, or ``normal``).
        """
        if options:
            raise ConfigurationError(
                f"sqlite:// takes no keyword options, got: {', '.join(sorted(options))}"
            )
        if url.opaque or url.host:
            raise ConfigurationError(
                f"SQLite URLs have three slashes and no host: sqlite:///relative.db, "
                f"sqlite:////absolute/path.db or sqlite:///:memory: (got {url})"
            )
        if not url.path:
            raise ConfigurationError(f"the SQLite URL {url} names no database file")
        # make_storage(create=False): open an existing file only, never create one.
        if not getattr(options, "create", True) and url.path != ":memory:":
            if not os.path.exists(url.path):
                raise ConfigurationError(
                    f"the SQLite database {url.path!r} does not exist (an existing "
                    "database was asked for, so none was created)"
                )
            if not os.path.isfile(url.path):
                raise ConfigurationError(f"the SQLite database {url.path!r} is not a file")
        return cls.with_query(url.path, url, scheme="sqlite://")

    @classmethod
    def with_query(
        cls, path: str, url: StorageURL, *, scheme: str, ignore: frozenset[str] = frozenset()
    ) -> SqliteBackend:
        """The backend for ``path`` with the URL's query options (``busy_timeout``,
        ``synchronous``); other parameters are an error unless in ``ignore``.
        Shared by every URL form that opens a SQLite file."""
        unknown = set(url.query) - set(_OPTIONS) - ignore
        if unknown:
            raise ConfigurationError(
                f"unknown {scheme} option(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(_OPTIONS)}"
            )
        timeout = url.query_value("busy_timeout") or "5000"
        if not timeout.isdigit():
            raise ConfigurationError(f"busy_timeout must be milliseconds, got {timeout!r}")
        return cls(
            path,
            busy_timeout_ms=int(timeout),
            synchronous=(url.query_value("synchronous") or "full").lower(),
        )

    # -- connections -------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        try:
            conn = await connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise ConfigurationError(
                f"cannot open the SQLite database {self.path!r}: {exc}"
            ) from exc
        try:
            await on_thread(conn, _set_pragmas, int(self.busy_timeout_ms), self.synchronous)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def initialize(self) -> None:
        if self._closed:
            raise ClosedError("the SQLite backend is closed")
        if self._writer is not None:
            return
        check_aiosqlite()
        writer = await self._connect()
        try:
            await on_thread(writer, _create_schema, not self.in_memory)
            reader = writer if self.in_memory else await self._connect()
        except sqlite3.Error as exc:
            await writer.close()
            raise translate(exc, "initialize") from exc
        self._writer, self._reader = writer, reader

    async def close(self) -> None:
        self._closed = True
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()

    def _conn(self, which: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if which is None:
            raise ClosedError("the SQLite backend is closed" if self._closed
                              else "the SQLite backend is not initialized")
        return which

    async def _write(
        self, what: str, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` ... ``COMMIT`` on the writer's
        thread, as one call there; rolled back on any error.

        No lock on this side: aiosqlite runs a connection's calls one at a
        time in the order they were queued, and each transaction is one call,
        so concurrent saves queue on the thread back to back (a lock here
        would add a trip through the event loop between any two of them)."""
        conn = self._conn(self._writer)
        try:
            return await on_thread(conn, transaction, work)
        except sqlite3.Error as exc:
            raise translate(exc, what) from exc

    async def _read(self, what: str, statement: str, params: Sequence[Any]) -> list[Any]:
        conn = self._conn(self._reader)
        try:
            return await on_thread(conn, fetch_all, statement, params)
        except sqlite3.Error as exc:
            raise translate(exc, what) from exc

    # -- the protocol ------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        plan = plan_append(request, local=True)
        return await self._write("append", lambda db: _run_append(db, plan))

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[RowValues]:
        statement = newest_statement((key.user_id, key.session_id, key.agent_id), limit)
        return in_order(statement, await self._read("fetch_chat", *statement))

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        conv = (key.user_id, key.session_id, key.agent_id)
        return await self._write(
            "pop_message", lambda db: _run_pop(db, conv, request_id, replay)
        )

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[RowValues]:
        return await self._read("fetch_all_chats", sql.SESSION, (user_id, session_id))

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        return merge_sessions(await self._read("list_sessions", sql.SESSIONS, (user_id,)))

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        statement, params = sessions_page_statement(user_id, limit, before)
        return to_sessions_page(await self._read("list_sessions", statement, params))

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        statement, params = before_statement(key, limit, before_index)
        return oldest_first(await self._read("fetch_chat", statement, params))

    async def _delete(
        self, what: str, statement: str, params: tuple[Any, ...], requests: str
    ) -> int:
        """Delete rows, and in the same transaction the records of their
        requests (``requests``, same parameters); returns the rows deleted."""

        def delete(db: sqlite3.Connection) -> int:
            count = db.execute(statement, params).rowcount
            db.execute(requests, params)
            return int(count)

        return await self._write(what, delete)

    async def delete_session(self, user_id: str, session_id: str) -> int:
        return await self._delete("delete_session", sql.DELETE_SESSION, (user_id, session_id),
                                  sql.DELETE_SESSION_REQUESTS)

    async def delete_conversation(self, key: ConversationKey) -> int:
        return await self._delete(
            "delete_conversation", sql.DELETE_CONVERSATION,
            (key.user_id, key.session_id, key.agent_id), sql.DELETE_CONVERSATION_REQUESTS,
        )

    async def delete_user(self, user_id: str) -> int:
        return await self._delete("delete_user", sql.DELETE_USER, (user_id,),
                                  sql.DELETE_USER_REQUESTS)

    # -- table tools -------------------------------------------------------

    async def export_rows(self, after: TableRow | None, limit: int) -> Sequence[TableRow]:
        statement, params = export_statement(after, limit)
        return table_rows(await self._read("export", statement, params))

    async def import_rows(self, rows: Sequence[TableRow]) -> int:
        params = import_params(rows)

        def insert(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.executemany(sql.IMPORT, params)
            return db.total_changes - before

        return await self._write("import", insert)

    async def prune(self, before_timestamp: int) -> int:
        def prune(db: sqlite3.Connection) -> int:
            count = db.execute(sql.PRUNE, (before_timestamp,)).rowcount
            db.execute(sql.PRUNE_REQUESTS)
            return int(count)

        return await self._write("prune", prune)

    async def describe(self) -> dict[str, object]:
        version = await self._read("describe", sql.READ_SCHEMA_VERSION, ())
        indexes = await self._read("describe", sql.INDEXES, ())
        count = await self._read("describe", sql.ROW_COUNT, ())
        schema_version = int(version[0][0]) if version else None
        names = [str(row[0]) for row in indexes]
        return {
            "row_count": int(count[0][0]),
            "schema_version": schema_version,
            "indexes": names,
            "problems": schema_problems(schema_version, names),
            "server": f"SQLite {sqlite3.sqlite_version} (file {self.path})",
        }


def _set_pragmas(db: sqlite3.Connection, busy_timeout_ms: int, synchronous: str) -> None:
    db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    db.execute(f"PRAGMA synchronous = {synchronous}")


def _create_schema(db: sqlite3.Connection, wal: bool) -> None:
    check_schema_version(_read_version(db))  # before WAL mode changes the file
    if wal:
        db.execute("PRAGMA journal_mode = WAL")

    def create(db: sqlite3.Connection) -> None:
        check_schema_version(_read_version(db))
        for statement in sql.SCHEMA:
            db.execute(statement)

    transaction(db, create)


def _read_version(db: sqlite3.Connection) -> int | None:
    try:
        row = db.execute(sql.READ_SCHEMA_VERSION).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return None if row is None else int(row[0])


def _run_pop(
    db: sqlite3.Connection, conv: tuple[str, str, str], request_id: str | None, replay: bool
) -> RowValues | None:
    """The newest row, deleted, inside the caller's ``BEGIN IMMEDIATE``: the
    write lock is held from the read to the delete (any SQLite version). With
    a request id, the pop is recorded (or, replayed, the recorded row returned)."""
    if request_id is not None:
        if replay:
            record = db.execute(sql.RECORDED, (*conv, request_id)).fetchone()
            if record is not None:
                return replayed_pop(record, request_id)
        db.execute(sql.RECORD_POP, (*conv, request_id))
    row = db.execute(sql.NEWEST, (*conv, 1)).fetchone()
    if row is None:
        return None
    db.execute(sql.NEWEST_INDEX_DELETE, (*conv, row[1]))
    return cast("RowValues", tuple(row))


def _run_append(db: sqlite3.Connection, plan: AppendPlan) -> AppendResult:
    """The statements of one save, inside the caller's transaction."""
    if plan.record is not None and plan.request.replay:
        first, *history = plan.replay_reads
        record = db.execute(*first).fetchone()
        if record is not None:
            read_rows = db.execute(*history[0]).fetchall() if history else []
            return plan.replayed(record, read_rows)
    if plan.single:
        last_index, inserted = indexes_taken(db.execute(*plan.returning_insert()).fetchall())
    else:
        # A batch: the last row once, then plain inserts at known indexes.
        last_index, params = plan.rows_after(db.execute(sql.LAST_ROW, plan.conversation).fetchone())
        inserted = db.executemany(sql.INSERT_AT, params).rowcount
    if plan.record is not None and inserted:
        # Interactive: the record takes what the inserts reported.
        db.execute(*plan.record_of(last_index, inserted))
    if plan.trim is not None:
        db.execute(*plan.trim)
    read_rows = db.execute(*plan.read).fetchall() if plan.read is not None else []
    return plan.result(last_index, inserted, read_rows)
