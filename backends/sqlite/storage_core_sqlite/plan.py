"""Turning storage_core requests into SQLite-family statements and back.

Both engines use it: the aiosqlite engine runs a plan inside one
``BEGIN IMMEDIATE`` transaction, storage-core-libsql sends it to sqld as one
batch. Rows come back as plain tuples in ``sql``'s column order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from storage_core import AppendRequest, AppendResult, SessionInfo, StoredRow, TableRow

from . import sql

Statement = tuple[str, tuple[Any, ...]]


@dataclass(frozen=True)
class AppendPlan:
    """The statements of one save, in order: last index, inserts, trim, read."""

    request: AppendRequest
    last_index: Statement
    insert_sql: str
    insert_params: list[tuple[Any, ...]]
    trim: Statement | None
    read: Statement | None

    @property
    def conversation(self) -> tuple[str, str, str]:
        """(user, session, agent): the parameters of ``sql.LAST_ROW``."""
        k = self.request.key
        return (k.user_id, k.session_id, k.agent_id)

    @property
    def single(self) -> bool:
        """One row to insert: its ``INSERT ... RETURNING`` (:meth:`returning_insert`)
        reports the index it took, so no ``last_index`` statement is needed."""
        return len(self.insert_params) == 1 and sql.HAS_RETURNING

    def returning_insert(self) -> Statement:
        """The one insert of a :attr:`single` plan, returning its index: no
        row back means the role rule left the row out."""
        return (self.insert_sql + sql.RETURNING_INDEX, self.insert_params[0])

    def statements(self) -> list[Statement]:
        """Every statement, one insert per row (for a remote batch): the
        :meth:`returning_insert` alone for a :attr:`single` plan, else
        ``last_index`` and the inserts; then trim and read if any."""
        if self.single:
            out = [self.returning_insert()]
        else:
            out = [self.last_index, *((self.insert_sql, p) for p in self.insert_params)]
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

    @staticmethod
    def index_returned(rows: Sequence[Sequence[Any]]) -> tuple[int | None, int]:
        """(last index before the save, rows inserted) from the rows of
        :meth:`returning_insert`."""
        if not rows:
            return None, 0
        return int(rows[0][0]) - 1, 1

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
        stored = [
            StoredRow(req.key.agent_id, start + 1 + i, r.role, r.content, r.timestamp)
            for i, r in enumerate(rows)
        ]
        history = from_newest(read_rows) if req.history else None
        return AppendResult(stored=stored, history=history)


def plan_append(req: AppendRequest) -> AppendPlan:
    """The statements that carry out ``req`` (see ``storage_core.AppendRequest``)."""
    k = req.key
    conv = (k.user_id, k.session_id, k.agent_id)
    insert_sql = sql.INSERT_NEXT_UNLESS_SAME_ROLE if req.skip_same_role else sql.INSERT_NEXT
    insert_params = [(*conv, r.role, r.content, r.timestamp) for r in req.rows]
    trim = (sql.TRIM, (*conv, *conv, req.keep)) if req.keep is not None else None
    read: Statement | None = None
    if req.history:
        limit = -1 if req.history_limit is None else req.history_limit
        read = (sql.NEWEST, (*conv, limit))
    return AppendPlan(req, (sql.LAST_INDEX, conv), insert_sql, insert_params, trim, read)


def to_rows(rows: Iterable[Sequence[Any]]) -> list[StoredRow]:
    """Rows in ``sql._COLUMNS`` order -> StoredRow (the drivers give str and int)."""
    return list(map(StoredRow._make, rows))


def from_newest(rows: Sequence[Sequence[Any]]) -> list[StoredRow]:
    """Rows of ``sql.NEWEST`` (newest first) -> StoredRow, oldest first."""
    return to_rows(reversed(rows))


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
