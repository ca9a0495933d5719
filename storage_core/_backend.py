"""What a backend implements: a small async protocol and the rows it moves.

Backends store and return rows; the core validates input, encodes content
as JSON text and applies every rule that needs no stored data. The one rule a
backend applies itself is the part that must be atomic with the insert (see
[`AppendRequest`][storage_core.AppendRequest]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from ._model import SessionInfo

__all__ = [
    "AppendRequest",
    "AppendResult",
    "Backend",
    "Capabilities",
    "ConversationKey",
    "NewRow",
    "RowValues",
    "StoredRow",
    "SupportsDeleteConversation",
    "SupportsPop",
    "TableRow",
    "TableTools",
]


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Identifies one conversation: ``(user_id, session_id, agent_id)``."""

    user_id: str
    session_id: str
    agent_id: str


class NewRow(NamedTuple):
    """A message ready to insert; ``content`` is JSON text.

    A named tuple, as a save makes one per message.
    """

    role: str
    content: str
    timestamp: int


class StoredRow(NamedTuple):
    """A row of the ``conversations`` table; ``content`` is JSON text.

    A named tuple, so a backend can build one straight from a driver's row
    (``StoredRow._make(row)`` for ``(agent_id, message_index, role, content,
    timestamp)``): reads of long histories make one per row.
    """

    agent_id: str
    message_index: int
    role: str
    content: str
    timestamp: int


RowValues = tuple[str, int, str, str, int]
"""A read row's values in [`StoredRow`][storage_core.StoredRow]'s order: ``(agent_id,
message_index, role, content, timestamp)``. Reads may return StoredRows or
plain tuples (a driver's rows as they come, when they come in this order):
the core only unpacks them, so a backend need not build a StoredRow per row."""


@dataclass(frozen=True, slots=True)
class TableRow:
    """A whole row of the ``conversations`` table, as export and import move it."""

    user_id: str
    session_id: str
    agent_id: str
    message_index: int
    role: str
    content: str
    timestamp: int

    @property
    def sort_key(self) -> tuple[str, str, str, int]:
        return (self.user_id, self.session_id, self.agent_id, self.message_index)


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One atomic save, as the core hands it to a backend.

    A backend must, in one transaction (all or nothing):

    1. if ``skip_same_role`` and the conversation's last stored row has the
       role of ``rows[0]``, leave ``rows[0]`` out (``rows`` never has two
       neighbours with the same role when ``skip_same_role`` is set, so no
       other row needs the check);
    2. insert the remaining rows with ``message_index`` = the conversation's
       highest index ever + 1, + 2, ... (after a trim, the highest remaining
       index; an index is never reused while rows above it exist);
    3. if ``keep`` is not None, delete all but the newest ``keep`` rows;
    4. if ``history`` is true, read the newest ``history_limit`` rows (all if
       None), as the state right after this transaction.

    The check in step 1 must see the last row committed at the moment of the
    insert, never one read earlier.
    """

    key: ConversationKey
    rows: Sequence[NewRow]
    skip_same_role: bool
    keep: int | None
    history: bool
    history_limit: int | None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What a save stored (with indexes) and, if asked, the history after it
    (oldest first; StoredRows or plain tuples, see [`RowValues`][storage_core.RowValues])."""

    stored: Sequence[StoredRow]
    history: Sequence[RowValues] | None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend offers; the conformance suite tests only what is declared.

    ``shared_across_processes``: several processes may open the same URL and
    see one database. ``read_your_writes``: a read always sees the caller's
    earlier writes (false for a bare read replica). ``persistent``: data
    survives ``close()`` and a new ``make_storage`` of the same URL.
    """

    shared_across_processes: bool = True
    read_your_writes: bool = True
    persistent: bool = True


@runtime_checkable
class Backend(Protocol):
    """The async protocol every backend implements.

    Errors are raised as [`storage_core.errors`][storage_core.errors] types, with the driver's
    exception as ``__cause__``; a failure worth retrying is a
    [`TransientError`][storage_core.errors.TransientError].

    The core calls a backend from one event loop at a time, the loop its
    connections belong to. When that loop has stopped (``asyncio.run``
    returned) and another loop calls, or when the core moves the connections
    to a loop of its own, it first calls the backend's optional
    ``detach(self) -> None`` if it has one, then ``initialize()`` again on
    the new loop. ``detach()`` is synchronous and must not await or touch
    the old loop (it may be closed): it forgets, or closes without the loop,
    whatever is bound to that loop (connections, sessions, ``asyncio`` locks
    and semaphores), so that the next ``initialize()`` opens new ones. A
    backend with nothing bound to a loop need not define it.
    """

    capabilities: Capabilities

    async def initialize(self) -> None:
        """Connect and create the schema if missing; idempotent and safe to run
        from many processes at once."""

    async def append(self, request: AppendRequest) -> AppendResult:
        """Store a batch atomically; see [`AppendRequest`][storage_core.AppendRequest]."""

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[RowValues]:
        """The newest ``limit`` rows of a conversation (all if None), oldest
        first: StoredRows or plain tuples (see [`RowValues`][storage_core.RowValues])."""

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[RowValues]:
        """Every row of every agent of a session, in any order: StoredRows or
        plain tuples (see [`RowValues`][storage_core.RowValues])."""

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        """One entry per session of the user, in any order."""

    async def delete_session(self, user_id: str, session_id: str) -> int:
        """Delete a session's rows; return how many were deleted."""

    async def delete_user(self, user_id: str) -> int:
        """Delete all of a user's rows; return how many were deleted."""

    async def close(self) -> None:
        """Release connections; idempotent."""


@runtime_checkable
class SupportsDeleteConversation(Protocol):
    """The optional operation behind
    [`ChatStorage.delete_conversation`][storage_core.ChatStorage.delete_conversation].

    Optional so that a backend written before it existed still works for
    every other call; ``delete_conversation`` on a backend without it raises
    [`ConfigurationError`][storage_core.errors.ConfigurationError].
    """

    async def delete_conversation(self, key: ConversationKey) -> int:
        """Delete every row of one conversation (one agent of one session);
        return how many were deleted (0 when it has none). Other agents of
        the session, other sessions and other users are not touched."""


@runtime_checkable
class SupportsPop(Protocol):
    """The optional pop operation behind
    [`ChatStorage.pop_message`][storage_core.ChatStorage.pop_message].

    Optional so that a backend written before it existed still works for
    every other call; ``pop_message`` on a backend without it raises
    [`ConfigurationError`][storage_core.errors.ConfigurationError].
    """

    async def pop(self, key: ConversationKey) -> RowValues | None:
        """Delete the conversation's newest row (highest ``message_index``)
        and return it, or None if the conversation has no rows.

        Atomic: the read and the delete are one step, so two concurrent pops
        never return the same row, and a pop racing a save returns either the
        saved row or the one before it, never a row that stays stored. Nothing
        else is touched; the next save takes the index after the highest one
        then present (so the popped index may be used again).
        """


@runtime_checkable
class TableTools(Protocol):
    """Optional whole-table operations behind the data tools of the CLI
    (``export``, ``import``, ``copy``, ``prune``, ``doctor``).

    A backend that implements them supports those commands; one that does not
    is still a complete backend for the application calls.
    """

    async def export_rows(self, after: TableRow | None, limit: int) -> Sequence[TableRow]:
        """Up to ``limit`` rows ordered by (user_id, session_id, agent_id,
        message_index), strictly after ``after`` in that order (from the start
        if None)."""

    async def import_rows(self, rows: Sequence[TableRow]) -> int:
        """Insert rows as they are (index and timestamp kept) in one
        transaction, skipping any whose (user, session, agent, index) already
        exists; return how many were inserted."""

    async def prune(self, before_timestamp: int) -> int:
        """Delete every conversation whose newest message is older than
        ``before_timestamp``; return how many rows were deleted."""

    async def describe(self) -> dict[str, object]:
        """Facts for ``doctor``: at least ``schema_version`` (int or None) and
        ``indexes`` (names of the indexes on ``conversations``)."""
