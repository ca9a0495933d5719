"""What a backend implements: a small async protocol and the rows it moves.

Backends store and return rows; the core validates input, encodes content
as JSON text and applies every rule that needs no stored data. The one rule a
backend applies itself is the part that must be atomic with the insert (see
[`AppendRequest`][storage_core.backend.AppendRequest]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from ._model import SessionInfo
from .errors import ValidationError

__all__ = [
    "REQUESTS_REMEMBERED",
    "AppendRequest",
    "AppendResult",
    "Backend",
    "Capabilities",
    "ConversationKey",
    "NewRow",
    "RowValues",
    "StoredRow",
    "SupportsDeleteConversation",
    "SupportsPaging",
    "SupportsPop",
    "TableRow",
    "TableTools",
    "replayed_rows",
    "reused_request",
]

REQUESTS_REMEMBERED = 100
"""How many write requests (the newest) a backend remembers per conversation
for exactly-once writes: a call repeated with its ``request_id`` is recognised
while fewer than this many later writes to the same conversation stored something."""


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
"""A read row's values in [`StoredRow`][storage_core.backend.StoredRow]'s order: ``(agent_id,
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

    A backend that declares ``Capabilities.exactly_once`` also honours
    ``request_id`` (never None for such a backend), in the same transaction:

    5. when at least one row was stored, record ``request_id`` with the index
       of the first stored row and how many were stored, and forget all but
       the conversation's newest [`REQUESTS_REMEMBERED`][storage_core.REQUESTS_REMEMBERED]
       records;
    6. if ``replay`` is true and a record of ``request_id`` exists for this
       conversation (looked up under the write lock, before step 1), store
       nothing and return as ``stored`` what the record names (see
       [`replayed_rows`][storage_core.backend.replayed_rows]); steps 3 and 4 run as
       usual. ``replay`` is false only for an id the core just generated,
       which no record can hold yet: the lookup is skipped.

    ``must_record`` is false when the core generated ``request_id`` (the
    caller gave none). The core repeats such a write only after a transient
    failure, so a backend whose failures are never ambiguous (a transaction
    on a local file either commits or reports that it stored nothing) may
    skip step 5 then: no repeat can find the write stored. A backend that
    can fail ambiguously (over a network) records every id.
    """

    key: ConversationKey
    rows: Sequence[NewRow]
    skip_same_role: bool
    keep: int | None
    history: bool
    history_limit: int | None
    request_id: str | None = None
    replay: bool = False
    must_record: bool = True


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What a save stored (with indexes) and, if asked, the history after it
    (oldest first; StoredRows or plain tuples, see
    [`RowValues`][storage_core.backend.RowValues])."""

    stored: Sequence[StoredRow]
    history: Sequence[RowValues] | None


def reused_request(request_id: str | None, kind: str) -> ValidationError:
    """The error for a request id recorded by another kind of call (``kind``:
    ``"append"`` or ``"pop"``) or with other messages."""
    what = {"append": "an append", "pop": "a pop"}.get(kind, kind)
    return ValidationError(f"request_id {request_id!r} was used for another call ({what})")


def replayed_rows(request: AppendRequest, first_index: int, count: int) -> list[StoredRow]:
    """What a recorded append stored, from its record: the last ``count`` rows
    of ``request`` (the role rule can only have left out the first) at indexes
    ``first_index``, ``first_index + 1``, ...

    Roles, contents and timestamps are the request's: on a retry by the core
    they are the original ones; a caller repeating a call gives the same
    messages (and their timestamps, if it wants them identical).
    """
    rows = request.rows
    if not 0 < count <= len(rows):
        raise reused_request(request.request_id, f"one that stored {count} messages")
    agent = request.key.agent_id
    return [
        StoredRow(agent, first_index + i, r.role, r.content, r.timestamp)
        for i, r in enumerate(rows[len(rows) - count :])
    ]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend offers; the conformance suite tests only what is declared.

    ``shared_across_processes``: several processes may open the same URL and
    see one database. ``read_your_writes``: a read always sees the caller's
    earlier writes (false for a bare read replica). ``persistent``: data
    survives ``close()`` and a new ``make_storage`` of the same URL.
    ``exactly_once``: writes honour request ids (``AppendRequest.request_id``
    and the ``request_id`` of ``pop``), so the core may repeat a write whose
    failure was ambiguous; false (the default, for backends written before
    request ids existed) makes such a failure reach the caller instead.
    """

    shared_across_processes: bool = True
    read_your_writes: bool = True
    persistent: bool = True
    exactly_once: bool = False


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
        """Store a batch atomically; see [`AppendRequest`][storage_core.backend.AppendRequest]."""

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[RowValues]:
        """The newest ``limit`` rows of a conversation (all if None), oldest
        first: StoredRows or plain tuples (see [`RowValues`][storage_core.backend.RowValues])."""

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[RowValues]:
        """Every row of every agent of a session, in any order: StoredRows or
        plain tuples (see [`RowValues`][storage_core.backend.RowValues])."""

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

        A backend declaring ``Capabilities.exactly_once`` is called as
        ``pop(key, request_id=..., replay=...)`` and, in the same transaction,
        records ``request_id`` with the popped row when it popped one (kept
        like an append's record); with ``replay`` and a record of that id, it
        pops nothing and returns the recorded row.

        Atomic: the read and the delete are one step, so two concurrent pops
        never return the same row, and a pop racing a save returns either the
        saved row or the one before it, never a row that stays stored. Nothing
        else is touched; the next save takes the index after the highest one
        then present (so the popped index may be used again).
        """


@runtime_checkable
class SupportsPaging(Protocol):
    """The optional paged reads behind ``list_sessions(limit=, before=)`` and
    ``fetch_chat(before_index=)`` of [`ChatStorage`][storage_core.ChatStorage].

    Optional: without it the core reads everything with ``list_sessions`` /
    ``fetch`` and cuts the page out in Python, which gives the same results
    but reads the user's whole listing (or the whole conversation) per page.
    A backend implements it to make each page one indexed query.
    """

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        """At most ``limit`` (all if None) of the user's sessions, ordered by
        ``(-last_timestamp, session_id)``; with ``before``, only the sessions
        strictly after it in that order (``last_timestamp <
        before.last_timestamp``, or equal and ``session_id >
        before.session_id``). Only ``before.session_id`` and
        ``before.last_timestamp`` are used; the session need not exist."""

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        """The newest ``limit`` rows (all if None) of the conversation whose
        ``message_index`` is below ``before_index``, oldest first: StoredRows
        or plain tuples (see [`RowValues`][storage_core.backend.RowValues])."""


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
        """Facts for ``doctor``: at least ``schema_version`` (int or None),
        ``indexes`` (names of the indexes on ``conversations``) and
        ``problems``, a list of what the backend found wrong, as sentences
        (a missing index, a schema older or newer than it writes, ...; empty
        when all is well). ``doctor`` prints every fact and every problem and
        fails when there is one; it knows nothing of any backend's schema."""
