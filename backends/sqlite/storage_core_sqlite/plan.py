"""Turning storage_core requests into SQLite-family statements and back.

Both engines use it: the aiosqlite engine runs a plan inside one
``BEGIN IMMEDIATE`` transaction, storage-core-libsql sends it to sqld as one
batch. Rows come back as plain tuples in ``sql``'s column order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from storage_core import ConfigurationError, SessionInfo
from storage_core.backend import (
    AppendRequest,
    AppendResult,
    ConversationKey,
    RowValues,
    StoredRow,
    TableRow,
    merge_sessions,
    replayed_rows,
    reused_request,
    sessions_in_order,
)

from . import sql

Statement = tuple[str, tuple[Any, ...]]

_NO_BOUND = 2**31  # above every message_index (the core's limit is 2**31 - 1)


@dataclass(frozen=True)
class AppendPlan:
    """How one save runs: the request's record (exactly-once writes), the
    inserts, then the trim and the read, if any."""

    request: AppendRequest
    trim: Statement | None
    read: Statement | None
    record: Statement | None = None

    @property
    def conversation(self) -> tuple[str, str, str]:
        """(user, session, agent): the parameters of ``sql.LAST_ROW``."""
        k = self.request.key
        return (k.user_id, k.session_id, k.agent_id)

    @property
    def single(self) -> bool:
        """One row to insert: its ``INSERT ... RETURNING`` (`returning_insert`)
        reports the index it took, so nothing needs reading first."""
        return len(self.request.rows) == 1 and sql.HAS_RETURNING

    def returning_insert(self) -> Statement:
        """The insert of a one-row plan, returning its index: no row back means
        the role rule left the row out."""
        req = self.request
        row = req.rows[0]
        text = sql.INSERT_NEXT_UNLESS_SAME_ROLE if req.skip_same_role else sql.INSERT_NEXT
        return (text + sql.RETURNING_INDEX, (*self.conversation, *row))

    def inserts(self) -> list[Statement]:
        """Statements that insert every row and return the indexes they took
        (see `indexes_taken`), for an engine that cannot read between
        statements: `returning_insert` for one row, else one
        ``sql.insert_rows`` statement per ``sql.ROWS_PER_INSERT`` rows."""
        req = self.request
        if len(req.rows) == 1:
            return [self.returning_insert()]
        out: list[Statement] = []
        step = sql.ROWS_PER_INSERT
        for start in range(0, len(req.rows), step):
            chunk = req.rows[start : start + step]
            # Only a batch's first row can have the stored last role.
            skip = req.skip_same_role and start == 0
            params: list[Any] = [*self.conversation]
            for row in chunk:
                params.extend(row)
            out.append((sql.insert_rows(len(chunk), skip_same_role=skip), tuple(params)))
        return out

    @property
    def insert_count(self) -> int:
        """How many statements `inserts` gives."""
        rows = len(self.request.rows)
        return 1 if rows <= 1 else -(-rows // sql.ROWS_PER_INSERT)

    def statements(self) -> list[Statement]:
        """Every statement of the save as one batch, for an engine that cannot
        read between statements (a libSQL server): ``sql.TAKE_WRITE_LOCK``, the
        probe of a replayed request id, the record, `inserts`, then trim and
        read if any. `batch_result` reads their results; a replayed request
        whose id was recorded fails the batch on the UNIQUE constraint
        (`is_duplicate_request`), and `replay_reads` then read its outcome."""
        out: list[Statement] = [(sql.TAKE_WRITE_LOCK, ())]
        if self.record is not None:
            if self.request.replay:
                out.append((sql.PROBE_REQUEST, (*self.conversation, self.request.request_id)))
            out.append(self.record)
        out.extend(self.inserts())
        if self.trim is not None:
            out.append(self.trim)
        if self.read is not None:
            out.append(self.read)
        return out

    def batch_result(
        self,
        results: Sequence[Sequence[Sequence[Any]]],
        history: Sequence[Sequence[Any]] | None = None,
    ) -> AppendResult:
        """The result from the rows each statement of `statements` returned,
        in order; ``history``, if given, replaces the read's rows (a window
        the engine completed in further reads)."""
        first = 1 + (0 if self.record is None else 2 if self.request.replay else 1)
        inserted = results[first : first + self.insert_count]
        last_index, count = indexes_taken(row for rows in inserted for row in rows)
        if history is None:
            history = results[-1] if self.read is not None else []
        return self.result(last_index, count, history)

    def record_of(self, last_index: int | None, inserted: int) -> Statement:
        """The record for an engine that has run the inserts and knows the
        last index before them and how many rows they stored (cheaper than
        ``record``, which computes both in SQL before the inserts)."""
        first = 0 if last_index is None else last_index + 1
        return (sql.RECORD_KNOWN, (*self.conversation, self.request.request_id, first, inserted))

    @property
    def replay_reads(self) -> list[Statement]:
        """For a request whose id was recorded before: read the record (see
        `replayed`), then, if asked, the history as the recorded save left it
        (the newest rows up to its last one, as far as they are still stored)."""
        req = self.request
        out: list[Statement] = [(sql.RECORDED, (*self.conversation, req.request_id))]
        if req.history:
            limit = -1 if req.history_limit is None else req.history_limit
            out.append((sql.REPLAY_HISTORY, (*self.conversation, req.request_id, limit)))
        return out

    def replayed(
        self, record: Sequence[Any] | None, read_rows: Sequence[Sequence[Any]]
    ) -> AppendResult:
        """The result of a replayed request from its record (a row of
        ``sql.RECORDED``) and the rows of ``read``."""
        req = self.request
        if record is None or record[0] != "append":
            raise reused_request(req.request_id, "unknown" if record is None else record[0])
        stored = replayed_rows(req, int(record[1]), int(record[2]))
        history = oldest_first(read_rows) if req.history else None
        return AppendResult(stored=stored, history=history)

    def rows_after(self, last: Sequence[Any] | None) -> tuple[int | None, list[tuple[Any, ...]]]:
        """For an engine holding the write lock that has read ``sql.LAST_ROW``
        (``last``: its row, or None): the last index before the save, and the
        parameters of ``sql.INSERT_AT`` for every row to store."""
        req = self.request
        rows = list(req.rows)
        last_index = None if last is None else int(last[0])
        if last is not None and req.skip_same_role and rows and last[1] == rows[0].role:
            rows = rows[1:]
        user, session, agent = self.conversation
        start = -1 if last_index is None else last_index
        params = [
            (user, session, agent, start + 1 + i, r.role, r.content, r.timestamp)
            for i, r in enumerate(rows)
        ]
        return last_index, params

    def result(
        self, last_index: int | None, inserted: int, read_rows: Sequence[Sequence[Any]]
    ) -> AppendResult:
        """Build the result from the last index before the save, the number of
        rows inserted, and the rows of the ``read`` statement."""
        req = self.request
        rows = list(req.rows)
        if inserted == len(rows) - 1:
            rows = rows[1:]  # the first row had the stored last role
        elif inserted != len(rows):
            raise AssertionError(f"inserted {inserted} of {len(rows)} rows")
        start = -1 if last_index is None else last_index
        agent = req.key.agent_id
        stored = [
            StoredRow(agent, start + 1 + i, r.role, r.content, r.timestamp)
            for i, r in enumerate(rows)
        ]
        history = in_order(self.read, read_rows) if req.history and self.read else None
        return AppendResult(stored=stored, history=history)


def indexes_taken(rows: Iterable[Sequence[Any]]) -> tuple[int | None, int]:
    """(last index before the save, rows inserted) from the rows that the
    statements of `AppendPlan.inserts` returned (one index each)."""
    indexes = [int(row[0]) for row in rows]
    if not indexes:
        return None, 0
    return min(indexes) - 1, len(indexes)


def plan_append(
    req: AppendRequest, *, budgeted: bool = False, local: bool = False
) -> AppendPlan:
    """The statements that carry out ``req`` (see ``storage_core.backend.AppendRequest``).

    ``budgeted``: the history is read with `within_statement` (for a server
    with a response size limit; the caller completes it with `rest_of_window`).
    ``local``: the engine's failures are never ambiguous (a file), so a
    request id the core generated (``req.must_record`` false) is not recorded."""
    k = req.key
    conv = (k.user_id, k.session_id, k.agent_id)
    trim = (sql.TRIM, (*conv, *conv, req.keep - 1)) if req.keep is not None else None
    read: Statement | None = None
    if req.history and budgeted:
        read = within_statement(conv, req.history_limit)
    elif req.history:
        read = newest_statement(conv, req.history_limit)
    record: Statement | None = None
    if req.request_id is not None and req.rows and (req.must_record or not local):
        text = sql.record_append(skip_same_role=req.skip_same_role)
        params = (*conv, req.request_id, len(req.rows))
        record = (text, (*params, req.rows[0].role) if req.skip_same_role else params)
    return AppendPlan(req, trim, read, record)


def replayed_pop(record: Sequence[Any], request_id: str) -> RowValues:
    """The row a recorded pop returned, from its record (a row of ``sql.RECORDED``)."""
    if record[0] != "pop":
        raise reused_request(request_id, record[0])
    return (str(record[3]), int(record[1]), str(record[4]), str(record[5]), int(record[6]))


def schema_problems(version: int | None, indexes: Sequence[str]) -> list[str]:
    """What ``doctor`` reports for a database of this family: a schema version
    other than the one this package writes, a missing index."""
    problems = []
    if version != sql.SCHEMA_VERSION:
        problems.append(f"schema version {version}, this package writes {sql.SCHEMA_VERSION}")
    if sql.LOOKUP_INDEX not in indexes:
        problems.append(f"index {sql.LOOKUP_INDEX} on conversations is missing")
    return problems


def check_schema_version(version: int | None) -> None:
    """Refuse a database written by a newer release (its schema version is
    above ``sql.SCHEMA_VERSION``); older ones are upgraded by ``sql.SCHEMA``."""
    if version is not None and version > sql.SCHEMA_VERSION:
        raise ConfigurationError(
            f"the database has storage_core schema version {version}, newer than the "
            f"{sql.SCHEMA_VERSION} this storage-core-sqlite writes: upgrade the package "
            "(nothing was changed)"
        )


def is_duplicate_request(text: str) -> bool:
    """Whether a constraint error's text is the one a recorded request id raises."""
    return "UNIQUE" in text and sql.DUPLICATE_REQUEST in text


def newest_statement(conv: Sequence[str], limit: int | None) -> Statement:
    """The plain read of a conversation's newest ``limit`` rows; None: every
    row, with ``sql.WHOLE`` (SQLite walks the key forwards faster than
    backwards). `in_order` puts its rows oldest first."""
    if limit is None:
        return (sql.WHOLE, tuple(conv))
    return (sql.NEWEST, (*conv, limit))


def in_order(statement: Statement, rows: Sequence[Any]) -> list[RowValues]:
    """The rows a read of a conversation returned, oldest first: ``sql.WHOLE``
    reads them in that order, every other read newest first (`oldest_first`)."""
    if statement[0] == sql.WHOLE:
        return cast("list[RowValues]", list(rows))
    return oldest_first(rows)


def oldest_first(rows: Sequence[Any]) -> list[RowValues]:
    """Rows read newest first (``sql.NEWEST``, ``sql.BEFORE``), turned round
    to oldest first: the driver's tuples as they are
    (``storage_core.backend.RowValues``)."""
    return cast("list[RowValues]", list(reversed(rows)))


def sessions_page_statement(
    user_id: str, limit: int | None, before: SessionInfo | None
) -> Statement:
    """The statement for one page of ``list_sessions`` (see
    ``storage_core.backend.SupportsPaging``); its rows go to `to_sessions_page`."""
    count = -1 if limit is None else limit
    if before is None:
        return (sql.SESSIONS_PAGE_FIRST, (user_id, count))
    return (sql.SESSIONS_PAGE_AFTER, (user_id, count, before.last_timestamp, before.session_id))


def to_sessions_page(rows: Iterable[Sequence[Any]]) -> list[SessionInfo]:
    """Rows of ``sql.SESSIONS_PAGE_*`` -> the page's SessionInfos, in
    ``list_sessions`` order (newest activity first, then session id)."""
    return sessions_in_order(merge_sessions(rows))


def within_statement(
    conv: Sequence[str], limit: int | None, before_index: int = _NO_BOUND
) -> Statement:
    """The statement of a remote read (``sql.NEWEST_WITHIN``): the newest
    ``limit`` rows below ``before_index``, within the response budget; see
    `rest_of_window`."""
    count = -1 if limit is None else limit
    return (sql.NEWEST_WITHIN, (*conv, before_index, count, sql.RESPONSE_BUDGET))


def rest_of_window(
    conv: Sequence[str], limit: int | None, rows: Sequence[Sequence[Any]]
) -> Statement | None:
    """After rows of `within_statement` (newest first, with ``upto``; every
    part read so far), the statement reading the next part of the window, or
    None when the window is complete."""
    if not rows or rows[-1][5] < sql.RESPONSE_BUDGET:
        return None
    if limit is not None and len(rows) >= limit:
        return None
    rest = None if limit is None else limit - len(rows)
    return within_statement(conv, rest, int(rows[-1][1]))


def before_statement(key: ConversationKey, limit: int | None, before_index: int) -> Statement:
    """The statement of ``fetch_before``: rows newest first (`oldest_first`
    turns them round)."""
    count = -1 if limit is None else limit
    return (sql.BEFORE, (key.user_id, key.session_id, key.agent_id, before_index, count))


def export_statement(after: TableRow | None, limit: int) -> Statement:
    """The statement that reads the next page of the table after ``after``."""
    if after is None:
        return (sql.EXPORT_FIRST, (limit,))
    return (sql.EXPORT_AFTER, (*after.sort_key, limit))


def import_params(rows: Iterable[TableRow]) -> list[tuple[Any, ...]]:
    """Parameters of ``sql.IMPORT``, one tuple per row."""
    return [
        (r.user_id, r.session_id, r.agent_id, r.message_index, r.role, r.content, r.timestamp)
        for r in rows
    ]
