"""Turning storage_core requests into SQLite-family statements and back.

Both engines use it: the aiosqlite engine runs a plan inside one
``BEGIN IMMEDIATE`` transaction, storage-core-libsql sends it to sqld as one
batch. Rows come back as plain tuples in ``sql``'s column order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from storage_core import AppendRequest, AppendResult, RowValues, SessionInfo, StoredRow, TableRow

from . import sql

Statement = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class AppendPlan:
    """How one save runs: inserts, then the trim and the read, if any."""

    request: AppendRequest
    trim: Statement | None
    read: Statement | None

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
        """Every statement, for a remote batch: `inserts`, then trim and
        read if any."""
        out = self.inserts()
        if self.trim is not None:
            out.append(self.trim)
        if self.read is not None:
            out.append(self.read)
        return out

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
        history = newest_first(read_rows) if req.history else None
        return AppendResult(stored=stored, history=history)


def indexes_taken(rows: Iterable[Sequence[Any]]) -> tuple[int | None, int]:
    """(last index before the save, rows inserted) from the rows that the
    statements of `AppendPlan.inserts` returned (one index each)."""
    indexes = [int(row[0]) for row in rows]
    if not indexes:
        return None, 0
    return min(indexes) - 1, len(indexes)


def plan_append(req: AppendRequest) -> AppendPlan:
    """The statements that carry out ``req`` (see ``storage_core.AppendRequest``)."""
    k = req.key
    conv = (k.user_id, k.session_id, k.agent_id)
    trim = (sql.TRIM, (*conv, *conv, req.keep - 1)) if req.keep is not None else None
    read: Statement | None = None
    if req.history:
        limit = -1 if req.history_limit is None else req.history_limit
        read = (sql.NEWEST, (*conv, limit))
    return AppendPlan(req, trim, read)


def newest_first(rows: Sequence[Any]) -> list[RowValues]:
    """Rows of ``sql.NEWEST`` (newest first), oldest first: the driver's
    tuples as they are (``storage_core.RowValues``)."""
    return cast("list[RowValues]", list(reversed(rows)))


def to_sessions(rows: Iterable[Sequence[Any]]) -> list[SessionInfo]:
    """Rows of ``sql.SESSIONS`` -> one SessionInfo per session."""
    merged: dict[str, tuple[list[str], int, int]] = {}
    for session_id, agent_id, count, last in rows:
        agents, total, latest = merged.get(session_id, ([], 0, 0))
        agents.append(str(agent_id))
        merged[session_id] = (agents, total + int(count), max(latest, int(last)))
    return [
        SessionInfo(str(sid), tuple(sorted(agents)), total, latest)
        for sid, (agents, total, latest) in merged.items()
    ]


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


def to_table_rows(rows: Iterable[Sequence[Any]]) -> list[TableRow]:
    """Rows of ``sql.EXPORT_*`` -> TableRow."""
    return [
        TableRow(str(u), str(s), str(a), int(i), str(r), str(c), int(t))
        for u, s, a, i, r, c, t in rows
    ]
