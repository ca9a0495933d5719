"""The remote engine: a storage_core backend on sqld or Turso, over Hrana.

Every save is ONE request, one ``client.batch``: libsql-client wraps the
statements in ``BEGIN`` ... ``COMMIT`` (a ``ROLLBACK`` step runs if any fails)
and the server runs the whole batch on one connection, over HTTP as well as
over a WebSocket, so a save is atomic without interactive transactions. The
statements and the reading of their results come from
`storage_core_sqlite.plan`; the batch starts with
``sql.TAKE_WRITE_LOCK`` so that concurrent writers queue on sqld's write lock
instead of failing with ``SQLITE_BUSY``.

Reads, a save's history included, are plain ``SELECT`` statements. sqld
refuses an answer over its size limit (``--max-response-size``) as a whole;
only then is the read made again within a response budget
(``sql.NEWEST_WITHIN``) and completed in parts, and a save sent again, as a
replay of its request id.

Every request has a timeout. A write that times out is a
``TransientError(ambiguous=True)`` (it may have been committed); the client is
then replaced, since a WebSocket connection whose requests hang is not worth
keeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

import libsql_client

from storage_core import Capabilities, ClosedError, SessionInfo, StorageError
from storage_core.backend import (
    AppendRequest,
    AppendResult,
    ConversationKey,
    RowValues,
    TableRow,
    merge_sessions,
    table_rows,
)
from storage_core_sqlite import sql
from storage_core_sqlite.plan import (
    AppendPlan,
    Statement,
    before_statement,
    check_schema_version,
    export_statement,
    import_params,
    in_order,
    is_duplicate_request,
    newest_statement,
    oldest_first,
    plan_append,
    replayed_pop,
    rest_of_window,
    schema_problems,
    sessions_page_statement,
    to_sessions_page,
    within_statement,
)

from . import _driver as driver
from ._config import Endpoint, RemoteConfig
from ._driver import Result, abandon_client, create_client
from ._errors import response_refused, timeout_error, translate

__all__ = ["LibsqlBackend"]

log = logging.getLogger("storage_core.libsql")
T = TypeVar("T")

# Write batches one client keeps in flight at once (``max_concurrent_writes``).
# sqld runs writes one at a time anyway, and with many writers waiting on its
# write lock it can stall (docs/performance.md has the figures), so one.
DEFAULT_CONCURRENT_WRITES = 1
_CLOSE_TIMEOUT = 5.0
# sqld closes a WebSocket on a message over 16 MiB, so a larger batch (the
# core allows 64 MiB) goes over HTTP to the same server instead; its JSON can
# be twice the size of its values (escaped quotes), hence the margin.
_WS_REQUEST_BUDGET = 6 * 1024 * 1024


class _Server:
    """One libsql-client client to one server, with a timeout on every request."""

    def __init__(self, endpoint: Endpoint, config: RemoteConfig) -> None:
        self.endpoint = endpoint
        self._token = config.auth_token
        self._timeout = config.timeout
        self._concurrent_writes = config.max_concurrent_writes or DEFAULT_CONCURRENT_WRITES
        self._writes = asyncio.Semaphore(self._concurrent_writes)
        self._client: libsql_client.Client | None = None
        self._bulk: libsql_client.Client | None = None  # HTTP, for large batches on ws
        self._closed = False

    def _revealed_token(self) -> str | None:
        return self._token.reveal() if self._token else None

    def _get_client(self, bulk: bool = False) -> libsql_client.Client:
        if self._closed:
            raise ClosedError("the libSQL backend is closed")
        if bulk:
            if self._bulk is None:
                url = self.endpoint.driver_url
                http = "https" + url[3:] if url.startswith("wss:") else "http" + url[2:]
                self._bulk = create_client(http, self._revealed_token())
            return self._bulk
        if self._client is None:
            # Created inside the running loop: the WebSocket client starts
            # connecting at once, and aiohttp sessions belong to one loop.
            self._client = create_client(self.endpoint.driver_url, self._revealed_token())
        return self._client

    def _too_big_for_ws(self, statements: Sequence[Statement]) -> bool:
        if not self.endpoint.driver_url.startswith(("ws:", "wss:")):
            return False
        size = 0
        for text, args in statements:
            size += len(text) + sum(len(a) for a in args if isinstance(a, str))
            if size > _WS_REQUEST_BUDGET:
                return True
        return False

    async def batch(
        self, what: str, statements: Sequence[Statement], *, write: bool
    ) -> list[Result]:
        stmts: list[Any] = [libsql_client.Statement(text, list(args)) for text, args in statements]

        async def send(client: libsql_client.Client) -> list[Result]:
            return await driver.batch(client, stmts)

        return await self._send(what, send, write=write, bulk=self._too_big_for_ws(statements))

    async def query(
        self, what: str, text: str, args: Sequence[Any], *, write: bool = False
    ) -> list[Any]:
        """One statement, in its own transaction; its rows as tuples."""
        statement = libsql_client.Statement(text, list(args))

        async def send(client: libsql_client.Client) -> list[Any]:
            return (await driver.execute(client, statement)).rows

        return await self._send(what, send, write=write)

    async def _send(
        self, what: str, send: Callable[[libsql_client.Client], Awaitable[T]], *, write: bool,
        bulk: bool = False,
    ) -> T:
        if write:
            async with self._writes:
                return await self._request(what, send, write=True, bulk=bulk)
        return await self._request(what, send, write=False, bulk=bulk)

    async def _request(
        self, what: str, send: Callable[[libsql_client.Client], Awaitable[T]], *, write: bool,
        bulk: bool = False,
    ) -> T:
        client = self._get_client(bulk)
        task = asyncio.ensure_future(send(client))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            # Closing the client fails its pending requests, which ends ``task``.
            await self._discard(client)
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise timeout_error(what, self._timeout, write=write)
        try:
            return task.result()
        except StorageError:
            raise
        except Exception as exc:
            error = translate(exc, what, write=write, token=self._revealed_token())
            if self._closed:
                raise ClosedError("the libSQL backend is closed") from exc
            raise error from exc

    async def _discard(self, client: libsql_client.Client) -> None:
        if self._client is client:
            self._client = None
        if self._bulk is client:
            self._bulk = None
        log.warning("no answer from %s within %g s; reconnecting",
                    self.endpoint.shown, self._timeout)
        await _close_client(client)

    async def close(self) -> None:
        self._closed = True
        clients = (self._client, self._bulk)
        self._client = self._bulk = None
        for client in clients:
            if client is not None:
                await _close_client(client)

    def detach(self) -> None:
        """Forget the clients and the write semaphore, which belong to an event
        loop that has stopped; the next request makes new ones on its loop."""
        clients = (self._client, self._bulk)
        self._client = self._bulk = None
        self._writes = asyncio.Semaphore(self._concurrent_writes)
        for client in clients:
            if client is not None:
                abandon_client(client)


async def _close_client(client: libsql_client.Client) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), _CLOSE_TIMEOUT)


class LibsqlBackend:
    """A storage_core backend on a libSQL server (sqld, Turso).

    Built by ``make_storage`` from ``libsql://``, ``wss://``, ``ws://``,
    ``https://`` and ``http://`` URLs. With a primary configured (a replica
    URL plus ``primary_url``), every write and every read the contract needs
    consistent goes to the primary.
    """

    def __init__(self, config: RemoteConfig) -> None:
        self.config = config
        self._main = _Server(config.endpoint, config)
        self._primary = _Server(config.primary, config) if config.primary else None
        bare_replica = config.replica and config.primary is None
        self.capabilities = Capabilities(
            read_your_writes=not (bare_replica or config.replica_reads), exactly_once=True
        )

    def __repr__(self) -> str:
        text = f"LibsqlBackend({self.config.endpoint.shown!r}"
        if self.config.primary is not None:
            text += f", primary={self.config.primary.shown!r}"
        return text + ")"

    @property
    def _writer(self) -> _Server:
        """Writes and consistent reads: the primary if one is named."""
        return self._primary or self._main

    @property
    def _lister(self) -> _Server:
        """``fetch_session`` and ``list_sessions``: the replica only if allowed."""
        return self._main if self.config.replica_reads else self._writer

    async def initialize(self) -> None:
        # Read first: a database already at this schema version needs no write
        # (no lock taken, nothing forwarded by a replica). The DDL batch reads
        # before it writes when some of the schema exists, the lock upgrade
        # that sqld answers with SQLITE_BUSY (retried) under concurrent writers,
        # so it runs only when something is missing.
        version = await self._schema_version()
        if version == sql.SCHEMA_VERSION:
            return
        check_schema_version(version)
        await self._writer.batch("initialize", [(s, ()) for s in sql.SCHEMA], write=True)

    async def _schema_version(self) -> int | None:
        try:
            rows = await self._writer.query("initialize", sql.READ_SCHEMA_VERSION, ())
        except StorageError as exc:
            if "no such table" in str(exc):
                return None
            raise
        return int(rows[0][0]) if rows else None

    async def _window(
        self, server: _Server, what: str, conv: tuple[str, str, str], limit: int | None,
        rows: list[tuple[Any, ...]],
    ) -> list[tuple[Any, ...]]:
        """Complete a window read in parts (``rows``: the first part, of
        `within_statement`), newest first, without the ``upto`` column. Each
        part is its own request: a window over the server's response limit
        cannot be read in one."""
        while (more := rest_of_window(conv, limit, rows)) is not None:
            part = await server.query(what, *more)
            if not part:
                break
            rows.extend(part)
        return [row[:5] for row in rows]

    async def _newest(
        self, what: str, key: ConversationKey, limit: int | None, before_index: int | None
    ) -> Sequence[RowValues]:
        # A plain read first: the budgeted one (`within_statement`) sums the
        # rows' sizes in a window, about twice the server's work, which only a
        # window over sqld's response limit needs; that one is refused as a
        # whole and then read in parts.
        conv = (key.user_id, key.session_id, key.agent_id)
        plain = (
            newest_statement(conv, limit)
            if before_index is None
            else before_statement(key, limit, before_index)
        )
        try:
            return in_order(plain, await self._writer.query(what, *plain))
        except StorageError as exc:
            if not response_refused(exc):
                raise
        first = (
            within_statement(conv, limit)
            if before_index is None
            else within_statement(conv, limit, before_index)
        )
        rows = await self._writer.query(what, *first)
        return oldest_first(await self._window(self._writer, what, conv, limit, rows))

    async def append(self, request: AppendRequest) -> AppendResult:
        # The history is read plainly (`_newest` says why). One over sqld's
        # response limit fails the batch, which rolls back, and the save is
        # sent again with the budgeted read, as a replay: an HTTP 500 may
        # also be a batch that was committed (`response_refused`).
        plan = plan_append(request)
        try:
            results = await self._writer.batch("append", plan.statements(), write=True)
        except StorageError as exc:
            if plan.read is not None and request.request_id is not None and response_refused(exc):
                return await self._append_budgeted(replace(request, replay=True))
            if plan.record is None or not is_duplicate_request(str(exc)):
                raise
            return await self._replayed(plan)
        return plan.batch_result([result.rows for result in results])

    async def _append_budgeted(self, request: AppendRequest) -> AppendResult:
        """`append` with the history read within the response budget and
        completed in further reads (`_window`)."""
        plan = plan_append(request, budgeted=True)
        try:
            results = await self._writer.batch("append", plan.statements(), write=True)
        except StorageError as exc:
            if plan.record is None or not is_duplicate_request(str(exc)):
                raise
            return await self._replayed(plan)
        parts = [result.rows for result in results]
        history = None
        if plan.read is not None:
            history = await self._window(
                self._writer, "append", plan.conversation, request.history_limit, parts[-1]
            )
        return plan.batch_result(parts, history)

    async def _replayed(self, plan: AppendPlan) -> AppendResult:
        """The outcome of a save whose request id was recorded: an earlier
        try was committed."""
        replay = await self._writer.batch("append", plan.replay_reads, write=False)
        record = replay[0].rows
        return plan.replayed(record[0] if record else None,
                             replay[1].rows if plan.request.history else [])

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[RowValues]:
        return await self._newest("fetch_chat", key, limit, None)

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        # One batch: the write lock first (see sql.TAKE_WRITE_LOCK), so a pop
        # queues behind other writers instead of failing its snapshot upgrade.
        conv = (key.user_id, key.session_id, key.agent_id)
        statements: list[Statement] = [(sql.TAKE_WRITE_LOCK, ())]
        if request_id is not None:
            if replay:
                statements.append((sql.PROBE_REQUEST, (*conv, request_id)))
            statements.append((sql.RECORD_POP, (*conv, request_id)))
        statements.append((sql.POP, conv))
        try:
            results = await self._writer.batch("pop_message", statements, write=True)
        except StorageError as exc:
            if request_id is None or not is_duplicate_request(str(exc)):
                raise
            record = await self._writer.query(
                "pop_message", sql.RECORDED, (*conv, request_id)
            )
            if not record:
                raise
            return replayed_pop(record[0], request_id)
        rows = results[-1].rows
        return cast("RowValues", tuple(rows[0])) if rows else None

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[RowValues]:
        return await self._lister.query("fetch_all_chats", sql.SESSION, (user_id, session_id))

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        return merge_sessions(await self._lister.query("list_sessions", sql.SESSIONS, (user_id,)))

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        statement, params = sessions_page_statement(user_id, limit, before)
        return to_sessions_page(await self._lister.query("list_sessions", statement, params))

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        return await self._newest("fetch_chat", key, limit, before_index)

    async def _delete(
        self, what: str, statement: str, params: tuple[Any, ...], requests: str
    ) -> int:
        """Delete rows and, in the same batch, the records of their requests
        (``requests``, same parameters); returns the rows deleted."""
        results = await self._writer.batch(
            what, [(statement, params), (requests, params)], write=True
        )
        return int(results[0].rows_affected)

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

    # -- whole-table tools (storage_core.backend.TableTools: export, import, prune, doctor)

    async def export_rows(self, after: TableRow | None, limit: int) -> Sequence[TableRow]:
        statement, params = export_statement(after, limit)
        return table_rows(await self._writer.query("export", statement, params))

    async def import_rows(self, rows: Sequence[TableRow]) -> int:
        if not rows:
            return 0
        statements = [(sql.IMPORT, params) for params in import_params(rows)]
        results = await self._writer.batch("import", statements, write=True)
        return sum(int(r.rows_affected) for r in results)

    async def prune(self, before_timestamp: int) -> int:
        results = await self._writer.batch(
            "prune", [(sql.PRUNE, (before_timestamp,)), (sql.PRUNE_REQUESTS, ())], write=True
        )
        return int(results[0].rows_affected)

    async def describe(self) -> dict[str, object]:
        results = await self._writer.batch(
            "describe",
            [(sql.READ_SCHEMA_VERSION, ()), (sql.INDEXES, ()), (sql.ROW_COUNT, ())],
            write=False,
        )
        version, indexes, count = (r.rows for r in results)
        schema_version = int(version[0][0]) if version else None
        names = [str(row[0]) for row in indexes]
        return {
            "row_count": int(count[0][0]),
            "schema_version": schema_version,
            "indexes": names,
            "problems": schema_problems(schema_version, names),
            "server": f"libSQL server {self._writer.endpoint.shown}",
        }

    async def close(self) -> None:
        await self._main.close()
        if self._primary is not None:
            await self._primary.close()

    def detach(self) -> None:
        """Drop the clients, bound to an event loop that has stopped, without
        awaiting (see ``storage_core.backend.Backend``)."""
        self._main.detach()
        if self._primary is not None:
            self._primary.detach()
