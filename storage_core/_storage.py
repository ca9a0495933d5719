"""``ChatStorage``: the public object every call goes through.

It validates input, encodes content, applies the rules that need no stored
data, retries transient failures, keeps secrets out of errors, and hands
the rest to its backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from operator import itemgetter
from types import TracebackType
from typing import Any, TypeVar

from ._backend import (
    AppendRequest,
    AppendResult,
    Backend,
    Capabilities,
    ConversationKey,
    NewRow,
    RowValues,
    SupportsDeleteConversation,
    SupportsPaging,
    SupportsPop,
    TableRow,
    TableTools,
)
from ._limits import MAX_INDEX, Limits
from ._loops import LoopThread, loop_is_live, run_on
from ._model import SessionInfo, StoredMessage, messages_from_rows
from ._retry import RetryPolicy
from ._rules import (
    TRIM_MODES,
    TrimMode,
    assign_timestamps,
    dedupe_within_batch,
    keep_count,
    newest,
    session_order,
)
from ._tool_calls import leading_tool_results
from ._urls import redact_text, scrub_exception
from ._validate import (
    Encoded,
    check_before_index,
    check_count,
    check_id,
    check_max_history_size,
    check_page_limit,
    check_session_cursor,
    check_table_rows,
    check_timestamp,
    encode_message,
    encode_messages,
)
from .errors import (
    ClosedError,
    ConfigurationError,
    StorageError,
    TransientError,
    ValidationError,
)

__all__ = ["ChatStorage"]

log = logging.getLogger("storage_core")
T = TypeVar("T")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _nothing() -> None:
    return None


def session_order_key(session: SessionInfo) -> tuple[int, str]:
    """The order of ``list_sessions``: newest activity first, then by id."""
    return (-session.last_timestamp, session.session_id)


def sessions_page(
    sessions: Iterable[SessionInfo], limit: int | None, before: SessionInfo | None
) -> list[SessionInfo]:
    """The page of ``sessions`` that ``list_sessions(limit=, before=)`` gives:
    in ``session_order_key`` order, strictly after ``before``, at most ``limit``."""
    ordered = sorted(sessions, key=session_order_key)
    if before is not None:
        cursor = session_order_key(before)
        ordered = [s for s in ordered if session_order_key(s) > cursor]
    return ordered if limit is None else ordered[:limit]


def rows_before(
    rows: Sequence[RowValues], limit: int | None, before_index: int
) -> list[RowValues]:
    """The newest ``limit`` of a conversation's rows (oldest first) whose
    index is below ``before_index``: ``fetch_chat(before_index=)``."""
    return newest([row for row in rows if row[1] < before_index], limit)


# How a call reaches the backend (see ChatStorage._on_home).
_DIRECT, _OWN, _MOVE, _WAIT = "direct", "own loop", "move", "wait"


class ChatStorage:
    """Conversation history on one database, the same on every backend.

    Create it with [`storage_core.make_storage`][storage_core.make_storage]. Use it as
    ``async with make_storage(url) as storage:`` or call
    [`initialize`][storage_core.ChatStorage.initialize] and
    [`close`][storage_core.ChatStorage.close] yourself; a call before
    ``initialize()`` initializes.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        url: str = "",
        skip_consecutive_roles: bool = True,
        trim: TrimMode = "messages",
        limits: Limits | None = None,
        retry: RetryPolicy | None = None,
        secrets: Iterable[str] = (),
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        if trim not in TRIM_MODES:
            raise ConfigurationError(f"trim must be one of {TRIM_MODES}, got {trim!r}")
        if not isinstance(skip_consecutive_roles, bool):
            raise ConfigurationError("skip_consecutive_roles must be a bool")
        self._backend = backend
        self._url = redact_text(url)
        self._skip = skip_consecutive_roles
        self._trim: TrimMode = trim
        self._limits = limits or Limits()
        self._retry = retry or RetryPolicy()
        self._secrets = tuple(s for s in secrets if s)
        self._clock = clock
        self._closed = False
        # Event loops (see _on_home). ``_guard`` covers the fields below it.
        self._guard = threading.Lock()
        self._home: asyncio.AbstractEventLoop | None = None  # the connections' loop
        self._epoch = 0  # bumped whenever the connections are dropped
        self._running = 0  # calls of this epoch running directly on the home loop
        self._moving = False  # a call is moving the connections to _own_loop
        self._own_loop: LoopThread | None = None
        self._ready_epoch = -1  # the epoch the backend was initialized in
        self._init_lock: tuple[int, asyncio.Lock] | None = None

    def __repr__(self) -> str:
        return f"<ChatStorage {self._url!r} on {type(self._backend).__name__}>"

    @property
    def url(self) -> str:
        """The storage URL with its secrets replaced by ``***``."""
        return self._url

    @property
    def backend(self) -> Backend:
        """The backend object (for plugin authors and diagnostics)."""
        return self._backend

    @property
    def capabilities(self) -> Capabilities:
        return self._backend.capabilities

    @property
    def limits(self) -> Limits:
        return self._limits

    # -- lifecycle ---------------------------------------------------------

    async def initialize(self) -> None:
        """Connect and create the schema if needed. Idempotent.

        A storage may be used from any event loop: its connections belong to
        the loop that first used it; once that loop has stopped, the next
        loop to call reconnects and takes over; while it runs in another
        thread, the connections move (once) to a loop of the storage's own
        and every call is run there.
        """
        if self._closed:
            raise ClosedError(f"{self!r} is closed")
        await self._call("initialize", _nothing)

    async def close(self) -> None:
        """Release connections. Idempotent; any later call raises ClosedError."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._call("close", self._backend.close, retry=False,
                             connect=False)
        finally:
            with self._guard:
                own, self._own_loop = self._own_loop, None
            if own is not None:
                await own.stop()

    async def __aenter__(self) -> ChatStorage:
        try:
            await self.initialize()
        except BaseException:
            # ``async with`` never calls __aexit__ when __aenter__ fails, and
            # the caller holds no reference to close: release connections here.
            with contextlib.suppress(Exception):
                await self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- writes ------------------------------------------------------------

    async def save_chat_message(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_message: Any,
        max_history_size: int | None = None,
        *,
        request_id: str | None = None,
    ) -> list[StoredMessage]:
        """Store one message and return the conversation after the save.

        The message is a [`Message`][storage_core.Message], a mapping with ``role`` and
        ``content`` (and optionally ``timestamp``), or any object with
        ``.role`` and ``.content``. It is not stored when its role equals the
        role of the conversation's last message (unless the storage was made
        with ``skip_consecutive_roles=False``). With ``max_history_size`` the
        oldest messages beyond it are deleted in the same transaction and the
        newest ones returned, as [`fetch_chat`][storage_core.ChatStorage.fetch_chat] would.

        ``request_id`` (optional) names this write for exactly-once delivery:
        a call repeated with the same id (after a crash or an ambiguous
        failure) stores nothing again and returns the original outcome. The
        core gives every write an id of its own otherwise, and repeats a
        write whose failure was ambiguous with it.
        """
        message = encode_message(new_message, self._limits)
        return await self._save(
            user_id, session_id, agent_id, [message], max_history_size, request_id
        )

    async def save_chat_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_messages: Sequence[Any],
        max_history_size: int | None = None,
        *,
        request_id: str | None = None,
    ) -> list[StoredMessage]:
        """Store a batch atomically (all or nothing) and return the conversation.

        The same rules as [`save_chat_message`][storage_core.ChatStorage.save_chat_message]
        apply to each message; a message with the role of the one before it in
        the batch is not stored.
        An empty batch stores nothing and returns the conversation.
        ``request_id`` as for ``save_chat_message``.
        """
        messages = encode_messages(new_messages, self._limits)
        return await self._save(
            user_id, session_id, agent_id, messages, max_history_size, request_id
        )

    async def append_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        messages: Sequence[Any],
        max_history_size: int | None = None,
        *,
        request_id: str | None = None,
    ) -> list[StoredMessage]:
        """Store a batch like [`save_chat_messages`][storage_core.ChatStorage.save_chat_messages]
        but read nothing back.

        Returns only the messages that were stored, with their index and
        timestamp. ``request_id`` as for ``save_chat_message``.
        """
        batch = encode_messages(messages, self._limits)
        key, rows, keep = self._prepare(user_id, session_id, agent_id, batch, max_history_size)
        given = self._request_id(request_id)
        if not rows:
            await self._ensure_ready()
            return []
        result = await self._append(key, rows, keep, given, history=False)
        return self._messages(result.stored)

    async def _save(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        batch: list[Encoded],
        max_history_size: int | None,
        request_id: str | None,
    ) -> list[StoredMessage]:
        key, rows, keep = self._prepare(user_id, session_id, agent_id, batch, max_history_size)
        given = self._request_id(request_id)
        if not rows:
            return await self.fetch_chat(user_id, session_id, agent_id, max_history_size)
        result = await self._append(key, rows, keep, given, history=True)
        if result.history is None:
            raise StorageError(f"{self!r}: the backend returned no history for a save")
        return self._window(result.history)

    def _prepare(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        batch: list[Encoded],
        max_history_size: int | None,
    ) -> tuple[ConversationKey, list[NewRow], int | None]:
        """The key, the rows to insert and how many to keep. ``batch`` is
        validated already, also the messages the role rule drops below."""
        key = self._key(user_id, session_id, agent_id)
        keep = keep_count(check_max_history_size(max_history_size), self._trim)
        stamps = assign_timestamps([ts for _, _, ts in batch], self._clock())
        # tuple.__new__ skips the named tuple's Python-level __new__ (a batch
        # makes one per message).
        new = tuple.__new__
        rows = [
            new(NewRow, (role, content, ts))
            for (role, content, _), ts in zip(batch, stamps, strict=True)
        ]
        if self._skip:
            rows = dedupe_within_batch(rows)
        return key, rows, keep

    async def _append(
        self,
        key: ConversationKey,
        rows: list[NewRow],
        keep: int | None,
        request_id: str | None,
        *,
        history: bool,
    ) -> AppendResult:
        await self._ensure_ready()
        backend = self._backend
        skip = self._skip
        if not backend.capabilities.exactly_once:
            request = AppendRequest(key=key, rows=rows, skip_same_role=skip, keep=keep,
                                    history=history, history_limit=keep)
            return await self._call("append", lambda: backend.append(request),
                                    idempotent=False)
        # Only an id the caller gave must be recorded (AppendRequest.must_record).
        given = request_id is not None

        def attempt(replay: bool, rid: str) -> Awaitable[AppendResult]:
            # A new request per try, not dataclasses.replace: that costs 1.5 us a write.
            return backend.append(AppendRequest(
                key=key, rows=rows, skip_same_role=skip, keep=keep, history=history,
                history_limit=keep, request_id=rid, replay=replay, must_record=given))

        return await self._write("append", attempt, request_id)

    def _request_id(self, value: object) -> str | None:
        """A caller's ``request_id``, checked; refused where the backend
        cannot honour it."""
        if value is None:
            return None
        checked = check_id("request_id", value, self._limits)
        if not self._backend.capabilities.exactly_once:
            raise ConfigurationError(
                f"the {type(self._backend).__name__} backend does not support request_id "
                "(it declares no exactly_once capability)"
            )
        return checked

    async def _write(
        self,
        what: str,
        attempt: Callable[[bool, str], Awaitable[T]],
        request_id: str | None,
    ) -> T:
        """A write on a backend with exactly-once writes: every try carries
        the same request id (the caller's, or a new one), so the policy may
        repeat it after any transient failure, ambiguous or not. Every try
        but a first one with a fresh id asks the backend to look the id up.

        If the call still fails and some try failed ambiguously, the error
        says so, with the request id to repeat the call with."""
        rid = request_id if request_id is not None else os.urandom(16).hex()
        tries = 0
        ambiguous = False

        async def once() -> T:
            nonlocal tries, ambiguous
            tries += 1
            try:
                return await attempt(request_id is not None or tries > 1, rid)
            except TransientError as exc:
                ambiguous = ambiguous or exc.ambiguous
                raise

        try:
            return await self._call(what, once)
        except TransientError as exc:
            exc.ambiguous = exc.ambiguous or ambiguous
            exc.request_id = rid
            raise

    async def pop_message(
        self, user_id: str, session_id: str, agent_id: str, *, request_id: str | None = None
    ) -> StoredMessage | None:
        """Delete the conversation's newest message and return it (None when
        the conversation is empty), in one atomic step.

        Two concurrent pops never return the same message. A pop is a write
        with a request id, like a save (``request_id`` as for
        ``save_chat_message``): repeated with the same id, it pops nothing
        more and returns the message it popped. The
        next save takes the index after the highest one still stored, so the
        popped message's index may be given again.
        """
        key = self._key(user_id, session_id, agent_id)
        backend = self._backend
        if not isinstance(backend, SupportsPop):
            raise ConfigurationError(
                f"the {type(backend).__name__} backend does not support pop_message"
            )
        given = self._request_id(request_id)
        await self._ensure_ready()
        if backend.capabilities.exactly_once:

            def attempt(replay: bool, rid: str) -> Awaitable[RowValues | None]:
                return backend.pop(key, request_id=rid, replay=replay)  # type: ignore[call-arg]

            row = await self._write("pop_message", attempt, given)
        else:
            row = await self._call("pop_message", lambda: backend.pop(key),
                                   idempotent=False)
        if row is None:
            return None
        return self._messages([row])[0]

    # -- reads -------------------------------------------------------------

    async def fetch_chat(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        max_history_size: int | None = None,
        *,
        before_index: int | None = None,
    ) -> list[StoredMessage]:
        """The conversation, oldest first; with ``max_history_size``, only the
        newest that many (whole pairs with ``trim="pairs"``; with
        ``trim="tool-safe"``, without the tool results the window begins with).

        With ``before_index``, only messages whose index is below it: the
        same window, counted the same way, further back, for scrolling back
        through a long conversation: pass the ``index`` of the oldest message
        shown. 0 gives nothing; an index beyond the newest gives the same as
        none. One indexed query on a backend with
        [`SupportsPaging`][storage_core.backend.SupportsPaging].
        """
        key = self._key(user_id, session_id, agent_id)
        limit = keep_count(check_max_history_size(max_history_size), self._trim)
        before = check_before_index(before_index)
        await self._ensure_ready()
        rows = await self._fetch_window(key, limit, before)
        return self._window(rows)

    async def fetch_all_chats(self, user_id: str, session_id: str) -> list[StoredMessage]:
        """Every agent's messages of a session, ordered by (timestamp, agent_id,
        message_index); the first text block of each assistant message is
        prefixed with ``[agent_id] ``."""
        user_id = check_id("user_id", user_id, self._limits)
        session_id = check_id("session_id", session_id, self._limits)
        await self._ensure_ready()
        rows = await self._call(
            "fetch_all_chats", lambda: self._backend.fetch_session(user_id, session_id),
        )
        # (agent_id, message_index, role, content, timestamp) by (timestamp,
        # agent_id, message_index); content decoded (and prefixed) when read.
        return messages_from_rows(
            session_order(rows, itemgetter(4, 0, 1)), prefix_assistant=True
        )

    async def _fetch_window(
        self, key: ConversationKey, limit: int | None, before: int | None
    ) -> Sequence[RowValues]:
        """The rows of ``fetch_chat``: the newest ``limit`` below ``before``."""
        backend = self._backend
        if before is None or before > MAX_INDEX:  # no index is that high: all are below
            return await self._call("fetch_chat", lambda: backend.fetch(key, limit))
        if isinstance(backend, SupportsPaging):
            return await self._call(
                "fetch_chat", lambda: backend.fetch_before(key, limit, before))
        # A backend without paged reads: the whole conversation, cut here.
        everything = await self._call(
            "fetch_chat", lambda: backend.fetch(key, None))
        return rows_before(everything, limit, before)

    async def list_sessions(
        self,
        user_id: str,
        *,
        limit: int | None = None,
        before: SessionInfo | None = None,
    ) -> list[SessionInfo]:
        """The user's sessions, newest activity first (ties by ``session_id``).

        A page of them with ``limit`` (at most that many) and ``before`` (the
        last [`SessionInfo`][storage_core.SessionInfo] of the previous page: only the
        sessions after it in this order). A page is one indexed query on a
        backend with [`SupportsPaging`][storage_core.backend.SupportsPaging]. The cursor is
        live: a session with activity since the previous page moves to the
        front, so no later page shows it (see the contract's "Pagination").
        """
        user_id = check_id("user_id", user_id, self._limits)
        page_limit = check_page_limit(limit)
        cursor = check_session_cursor(before)
        await self._ensure_ready()
        backend = self._backend
        if (page_limit is not None or cursor is not None) and isinstance(
            backend, SupportsPaging
        ):
            page = await self._call(
                "list_sessions",
                lambda: backend.list_sessions_page(user_id, page_limit, cursor),
            )
            return list(page)
        sessions = await self._call(
            "list_sessions", lambda: backend.list_sessions(user_id))
        return sessions_page(sessions, page_limit, cursor)

    async def delete_session(self, user_id: str, session_id: str) -> int:
        """Delete every agent's messages of a session; returns how many."""
        user_id = check_id("user_id", user_id, self._limits)
        session_id = check_id("session_id", session_id, self._limits)
        await self._ensure_ready()
        return await self._call(
            "delete_session", lambda: self._backend.delete_session(user_id, session_id),
        )

    async def delete_conversation(self, user_id: str, session_id: str, agent_id: str) -> int:
        """Delete one agent's messages of a session; returns how many.

        The session's other agents are kept. Raises
        [`ConfigurationError`][storage_core.errors.ConfigurationError] when the
        backend does not implement
        [`SupportsDeleteConversation`][storage_core.backend.SupportsDeleteConversation].
        """
        key = self._key(user_id, session_id, agent_id)
        backend = self._backend
        if not isinstance(backend, SupportsDeleteConversation):
            raise ConfigurationError(
                f"the {type(backend).__name__} backend does not support delete_conversation"
            )
        await self._ensure_ready()
        return await self._call(
            "delete_conversation", lambda: backend.delete_conversation(key))

    async def delete_user(self, user_id: str) -> int:
        """Delete all of a user's messages; returns how many."""
        user_id = check_id("user_id", user_id, self._limits)
        await self._ensure_ready()
        return await self._call(
            "delete_user", lambda: self._backend.delete_user(user_id))

    # -- whole-table tools (the CLI's data commands) ----------------------

    def _tools(self, what: str) -> TableTools:
        if not isinstance(self._backend, TableTools):
            raise ConfigurationError(
                f"the {type(self._backend).__name__} backend does not support {what}"
            )
        return self._backend

    async def export(self, *, batch_size: int = 1000) -> AsyncIterator[TableRow]:
        """Every row of the database in (user, session, agent, index) order,
        read in pages of ``batch_size`` (memory stays flat however large)."""
        tools = self._tools("export")
        check_count(batch_size, "batch_size")
        await self._ensure_ready()
        after: TableRow | None = None
        while True:
            page = await self._call(
                "export", functools.partial(tools.export_rows, after, batch_size))
            for row in page:
                yield row
            if len(page) < batch_size:
                return
            after = page[-1]

    async def import_rows(self, rows: Iterable[TableRow]) -> int:
        """Insert exported rows as they are (index and timestamp kept), in one
        transaction; rows whose (user, session, agent, index) exists are skipped,
        so importing the same rows twice adds nothing. Returns how many were
        inserted."""
        tools = self._tools("import")
        checked = check_table_rows(rows, self._limits)
        if not checked:
            return 0
        await self._ensure_ready()
        return await self._call("import", lambda: tools.import_rows(checked))

    async def prune(self, before_timestamp: int) -> int:
        """Delete every conversation whose newest message is older than
        ``before_timestamp`` (milliseconds); returns how many messages."""
        tools = self._tools("prune")
        if check_timestamp(before_timestamp, "before_timestamp") is None:
            raise ValidationError("before_timestamp is required")
        await self._ensure_ready()
        return await self._call("prune", lambda: tools.prune(before_timestamp))

    async def describe(self) -> dict[str, object]:
        """What the backend reports about its database: ``schema_version``,
        ``indexes``, ``server`` and anything else it knows."""
        tools = self._tools("describe")
        await self._ensure_ready()
        return await self._call("describe", tools.describe)

    # -- plumbing ----------------------------------------------------------

    def _key(self, user_id: str, session_id: str, agent_id: str) -> ConversationKey:
        return ConversationKey(
            check_id("user_id", user_id, self._limits),
            check_id("session_id", session_id, self._limits),
            check_id("agent_id", agent_id, self._limits),
        )

    @staticmethod
    def _messages(rows: Sequence[RowValues]) -> list[StoredMessage]:
        return messages_from_rows(rows)

    def _window(self, rows: Sequence[RowValues]) -> list[StoredMessage]:
        """A conversation window as saves and fetches return it: with
        ``trim="tool-safe"``, without the tool results it begins with (their
        calls are before the window)."""
        if self._trim == "tool-safe":
            rows = rows[leading_tool_results(rows):]
        return messages_from_rows(rows)

    async def _ensure_ready(self) -> None:
        if self._closed:
            raise ClosedError(f"{self!r} is closed")
        if self._ready_epoch != self._epoch:
            await self.initialize()

    async def _call(
        self,
        what: str,
        call: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        retry: bool = True,
        connect: bool = True,
    ) -> T:
        """Run a backend call under the retry policy, translating stray errors.

        ``idempotent=False`` marks a call that must not be repeated after an
        ambiguous failure: a write on a backend without exactly-once writes.
        Reads are idempotent, and so are deletes, prune and import (repeating
        one that was committed changes nothing), and writes with a request id
        (`_write`). The call runs on the loop the backend's
        connections belong to, initializing the backend first (unless
        ``connect`` is false) if it is not yet, in this loop.
        """

        async def attempt() -> T:
            return await self._on_home(call, connect=connect)

        try:
            if retry:
                return await self._retry.run(attempt, what=what, idempotent=idempotent)
            return await attempt()
        except StorageError as exc:
            self._scrub(exc)
            raise
        except Exception as exc:
            # A backend let a driver error through; never show it untranslated.
            error = StorageError(f"{what} failed: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._scrub(error)  # the cause too: a traceback shows it
            raise error from error.__cause__

    def _scrub(self, exc: BaseException) -> None:
        scrub_exception(exc, self._secrets)

    # -- event loops -------------------------------------------------------
    #
    # The backend's connections belong to one loop, the home. A call on the
    # home loop runs there directly. A call on another loop when the home
    # loop has stopped (asyncio.run returned) drops the old connections with
    # the backend's synchronous ``detach()`` and reconnects: the caller's
    # loop is the new home. A call on another loop while the home loop runs
    # in another thread moves the connections, once, to a loop of the
    # storage's own (a daemon thread), as soon as no call runs on the old home;
    # from then on every call is handed to that loop. A user's loop is never
    # handed calls: asyncio.run cancels all its tasks when its main coroutine
    # returns, which would cancel another thread's write in the middle.

    async def _on_home(self, call: Callable[[], Awaitable[T]], *, connect: bool) -> T:
        loop = asyncio.get_running_loop()
        while True:
            with self._guard:
                route, epoch, target = self._route(loop)
            if route == _DIRECT:
                try:
                    if connect and self._ready_epoch != epoch:
                        await self._connect_here(epoch)
                    return await call()
                finally:
                    self._leave(epoch)
            if route == _OWN:
                return await run_on(target, functools.partial(self._run_own, call, connect))
            if route == _MOVE:
                # close() itself may move: its own call closes the connections there.
                await self._move_home(target, epoch, closing=not connect)
            else:
                await asyncio.sleep(0.001)  # another call is moving the connections

    def _route(
        self, loop: asyncio.AbstractEventLoop
    ) -> tuple[str, int, asyncio.AbstractEventLoop]:
        """How a call on ``loop`` reaches the backend (under ``_guard``)."""
        home = self._home
        if self._moving or home is None or home is loop:
            if self._moving:
                return _WAIT, self._epoch, loop
            self._home = loop
            self._running += 1
            return _DIRECT, self._epoch, loop
        own = self._own_loop
        if own is not None and home is own.loop:
            return _OWN, self._epoch, home
        if not loop_is_live(home):
            self._drop_home()
            self._home = loop
            self._running = 1
            return _DIRECT, self._epoch, loop
        self._moving = True
        return _MOVE, self._epoch, home

    def _leave(self, epoch: int) -> None:
        """A direct call of ``epoch`` ended; the last one out drops the
        connections if a call is waiting to move them."""
        with self._guard:
            if epoch != self._epoch:
                return
            self._running -= 1
            if self._moving and self._running == 0:
                self._drop_home()

    def _drop_if_idle(self, epoch: int) -> None:
        with self._guard:
            if epoch == self._epoch and self._running == 0:
                self._drop_home()

    def _drop_home(self) -> None:
        """Forget the home loop's connections (under ``_guard``), on its thread
        or after it stopped: the backend's ``detach()`` awaits nothing."""
        self._epoch += 1
        self._running = 0
        detach = getattr(self._backend, "detach", None)
        if detach is None:
            return
        try:
            detach()
        except Exception as exc:  # the old connections are lost either way
            log.warning("%r: detach() failed: %s", self, type(exc).__name__)

    async def _move_home(
        self, home: asyncio.AbstractEventLoop, epoch: int, *, closing: bool = False
    ) -> None:
        """Move the connections from ``home`` (running in another thread) to
        the storage's own loop, once no call runs directly on ``home``."""
        try:
            with self._guard:
                idle = epoch == self._epoch and self._running == 0
            if idle:
                with contextlib.suppress(RuntimeError):  # closed since: dropped below
                    home.call_soon_threadsafe(self._drop_if_idle, epoch)
            while True:
                with self._guard:
                    if epoch != self._epoch:
                        break
                    if not loop_is_live(home):
                        self._drop_home()
                        break
                await asyncio.sleep(0.001)
            if self._closed and not closing:
                raise ClosedError(f"{self!r} is closed")
            own = LoopThread()
        except BaseException:
            with self._guard:
                self._moving = False
            raise
        with self._guard:
            self._own_loop = own
            self._home = own.loop
            self._moving = False

    async def _run_own(self, call: Callable[[], Awaitable[T]], connect: bool) -> T:
        """``call()`` on the storage's own loop."""
        if connect:
            await self._connect_here(self._epoch)
        return await call()

    async def _connect_here(self, epoch: int) -> None:
        """Initialize the backend on the home loop, once per epoch."""
        if self._ready_epoch == epoch:
            return
        lock = self._init_lock
        if lock is None or lock[0] != epoch:
            lock = self._init_lock = (epoch, asyncio.Lock())
        async with lock[1]:
            if self._ready_epoch != epoch:
                await self._backend.initialize()
                self._ready_epoch = epoch
